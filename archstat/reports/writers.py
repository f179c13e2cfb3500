"""Writing tables: plain text, CSV, Markdown, LaTeX and JSON, always atomically.

:func:`write_atomic` writes to a temporary file beside the target and renames it over
the target only when everything was written, so an interrupted run never leaves a
half-written file nor destroys the previous one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Sequence

__all__ = ["write_atomic", "render", "FORMATS"]

FORMATS = ("table", "csv", "markdown", "latex", "json")


@contextmanager
def write_atomic(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
