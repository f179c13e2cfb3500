"""Writing tables: plain text, CSV, Markdown, LaTeX and JSON; writing files safely.

:func:`write_atomic` writes a regular file through a temporary file beside it, renamed
over it only when everything was written, so an interrupted run never leaves a
half-written file nor destroys the previous one. What is not a regular file is never
replaced: a symbolic link is followed (its target is replaced, the link stays), a FIFO or
a character device (``/dev/null``, ``/dev/stdout``) is written in place, and a directory
or any other kind of file is refused. A new file gets the user's umask; a replaced file
keeps its permissions. Figures go through it too::

    with write_atomic("figure.png", "wb") as fh:
        fig.savefig(fh, format="png")

:func:`check_output_file` and :func:`check_output_dir` apply the same rules up front, so
a command refuses an unusable path before it starts minutes of work. Every failure is an
:class:`OutputPathError` with a one-line message naming the path.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from archstat.errors import ArchstatError

__all__ = ["write_atomic", "write_csv", "check_output_file", "check_output_dir", "may_write", "format_for", "render",
           "FORMATS", "SUFFIX_FORMATS", "OutputPathError"]

FORMATS = ("table", "csv", "markdown", "latex", "json")

#: The format a file suffix implies (``archstat ... --out t.csv`` writes CSV).
SUFFIX_FORMATS = {".txt": "table", ".csv": "csv", ".md": "markdown", ".tex": "latex", ".json": "json"}


class OutputPathError(ArchstatError):
    """An output path that cannot be written, or must not be replaced; the message names it."""


def format_for(path: str | os.PathLike) -> str | None:
    """The format ``path``'s suffix implies (:data:`SUFFIX_FORMATS`), or None."""
    return SUFFIX_FORMATS.get(Path(path).suffix.lower())


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def may_write(path: str | os.PathLike, mode: int = os.W_OK) -> bool:
    """Whether this process may write ``path`` (``mode``: ``os.W_OK``, with ``os.X_OK`` for a
    folder), judged by its effective user and group, as ``open`` judges it."""
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def _target(path: str | os.PathLike) -> tuple[Path, bool]:
    """Where writing ``path`` goes: ``(file, in_place)``. A regular file (or a new one) is the
    resolved path, symbolic links followed; a FIFO or character device is written in place."""
    try:
        mode = os.stat(path).st_mode  # follows symbolic links
    except FileNotFoundError:  # a new file, or a dangling link: its target
        return Path(os.path.realpath(path)), False
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: {exc.strerror}") from None
    if stat.S_ISREG(mode):
        return Path(os.path.realpath(path)), False
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return Path(path), True
    raise OutputPathError(f"cannot write {path}: it is {_kind(mode)} (archstat writes regular files, FIFOs and "
                          "character devices)")


def check_output_file(path: str | os.PathLike) -> None:
    """Raise :class:`OutputPathError` unless :func:`write_atomic` can write ``path``: its
    folder exists and is writable, and it is not a directory (nor named as one, ending in a
    separator), a socket or a read-only file."""
    if os.fspath(path).endswith(("/", os.sep)):
        raise OutputPathError(f"cannot write {os.fspath(path)}: it names a folder, not a file")
    target, in_place = _target(path)
    if in_place:
        if not may_write(target):
            raise OutputPathError(f"cannot write {path}: permission denied")
        return
    folder = target.parent
    if not folder.is_dir():
        raise OutputPathError(f"cannot write {path}: folder {folder} does not exist")
    if not may_write(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {path}: folder {folder} is not writable")
    if target.exists() and not may_write(target):
        raise OutputPathError(f"cannot write {path}: the file is read-only")


def check_output_dir(path: str | os.PathLike, files: Iterable[str] = ()) -> None:
    """Raise :class:`OutputPathError` unless ``files`` can be written into folder ``path``:
    it is a writable folder, or its nearest existing ancestor is one (it is then created
    when written); each of ``files`` already there passes :func:`check_output_file`."""
    folder = Path(path)
    base = folder
    while not os.path.lexists(base) and base != base.parent:
        base = base.parent
    if not base.is_dir():
        where = "it is" if base == folder else f"{base} is"
        raise OutputPathError(f"cannot write into {path}: {where} not a folder")
    if not may_write(base, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write into {path}: folder {base} is not writable")
    if base == folder:
        for name in files:
            if os.path.lexists(folder / name):
                check_output_file(folder / name)


@contextmanager
def write_atomic(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open ``path`` for writing (``mode`` ``"w"`` or ``"wb"``): a regular file through a
    temporary file renamed over it on success; a FIFO or character device in place.

    Raises :class:`OutputPathError` (one line) for a path that cannot be written, or when
    writing fails (disk full, permissions).
    """
    target, in_place = _target(path)
    encoding, newline = (None, None) if "b" in mode else ("utf-8", "")
    try:
        if in_place:
            with open(target, mode, encoding=encoding, newline=newline) as fh:
                yield fh
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        permissions = _permissions(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, mode, encoding=encoding, newline=newline) as fh:
                yield fh
            os.chmod(tmp, permissions)  # mkstemp creates 0600
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _permissions(target: Path) -> int:
    """The mode bits for ``target``: an existing file's own, else ``0666`` less the umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):
        text = text.replace(a, b)
    return text


def render(rows: Sequence[dict], fmt: str, columns: Sequence[str] | None = None, caption: str = "",
           numeric: Sequence[str] = ()) -> str:
    """Render ``rows`` (dicts with the same keys) as ``fmt`` (one of :data:`FORMATS`).

    LaTeX output uses booktabs rules (``\\usepackage{booktabs}``).

    ``columns`` picks and orders the keys. ``numeric`` names right-aligned columns in the
    text, Markdown and LaTeX forms. CSV and JSON keep the values as they are (raw
    integers stay raw); the other forms show ``str(value)``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in columns} for r in rows], indent=2) + "\n"
    if fmt == "csv":
        import csv

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    right = [c in numeric for c in columns]
    if fmt == "latex":
        spec = "".join("r" if r else "l" for r in right)
        lines = [r"\begin{table}[t]", r"\centering"]
        if caption:
            lines.append(rf"\caption{{{_latex_escape(caption)}}}")
        lines += [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                  " & ".join(_latex_escape(c) for c in columns) + r" \\", r"\midrule"]
        lines += [" & ".join(_latex_escape(v) for v in row) + r" \\" for row in cells]
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines) + "\n"
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> list[str]:
        return [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]

    if fmt == "markdown":
        cells = [[v.replace("|", r"\|") for v in row] for row in cells]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
        out = []
        if caption:
            out += [f"*{caption}*", ""]
        out.append("| " + " | ".join(line(columns)) + " |")
        out.append("| " + " | ".join(("-" * (w - 1) + ":") if r else "-" * w for w, r in zip(widths, right)) + " |")
        out += ["| " + " | ".join(line(row)) + " |" for row in cells]
        return "\n".join(out) + "\n"
    out = [caption] if caption else []
    out.append("  ".join(line(columns)).rstrip())
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(line(row)).rstrip() for row in cells]
    return "\n".join(out) + "\n"


def write_csv(path: str | os.PathLike, rows: Sequence[dict], columns: Sequence[str] | None = None) -> None:
    """``rows`` as CSV (:func:`render`, ``columns`` picking and ordering the keys) at ``path``,
    written atomically (:func:`write_atomic`): the one CSV writer of commands and benchmarks."""
    with write_atomic(path) as fh:
        fh.write(render(rows, "csv", columns))
