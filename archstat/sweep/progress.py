"""The progress of a sweep on stderr: cells done, failed, the rate and the time left.

On a terminal one line is redrawn in place; otherwise (a log file, CI) a line is printed
every ``every`` seconds and at the end, so a long sweep's log shows it moving.
"""

from __future__ import annotations

import sys
import time
from typing import IO

__all__ = ["Progress", "duration"]

#: What ends a redrawn line: erases what a longer line before it left on the right.
_CLEAR_TO_END = "\x1b[K"


def duration(seconds: float) -> str:
    """``3723`` -> ``"1h02m03s"``, ``75`` -> ``"1m15s"``, ``4.2`` -> ``"4s"``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """Counts finished cells out of ``total`` (``skipped`` were finished before this run)."""

    def __init__(self, total: int, skipped: int = 0, stream: IO[str] | None = None, every: float = 30.0,
                 enabled: bool = True) -> None:
        self.total, self.skipped = total, skipped
        self.ok = self.failed = 0
        self.stream = stream or sys.stderr
        self.every = every
        self.enabled = enabled and total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = self.last = time.monotonic()

    @property
    def done(self) -> int:
        return self.ok + self.failed

    def update(self, row: dict) -> None:
        if row.get("status") == "ok":
            self.ok += 1
        else:
            self.failed += 1
        now = time.monotonic()
        if self.enabled and (self.tty or now - self.last >= self.every or self.done == self.total):
            self.last = now
            self._show(final=self.done == self.total)

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else None
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        eta = duration(left) if left is not None else "?"
        return (f"sweep [{bar}] {self.done}/{self.total} cells ({self.ok} ok, {self.failed} failed), "
                f"{rate:.2f} cells/s, {duration(elapsed)} elapsed, ETA {eta}")

    def _show(self, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + _CLEAR_TO_END + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the redrawn line (after an interrupt, say)."""
        if self.enabled and self.tty and self.done < self.total:
            self.stream.write("\n")
            self.stream.flush()
