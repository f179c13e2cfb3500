"""Golden files for the table writers: every format, byte for byte.

The golden files in ``golden/`` were written by the writers and then read and checked by
hand (alignment, escaping, raw integers in CSV/JSON). To regenerate after a deliberate
change: ``ARCHSTAT_UPDATE_GOLDEN=1 pytest tests/reports/test_writers.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from archstat.reports.writers import FORMATS, render, write_atomic

GOLDEN = Path(__file__).parent / "golden"
ROWS = [
    {"model": "resnet50", "params": 25557032, "MAdds (G)": "4.089", "note": "v1.5 & stride_in_3x3"},
    {"model": "se_resnet50", "params": 28088024, "MAdds (G)": "3.860", "note": "50% of 100_000 #SE"},
]
EXTENSION = {"table": "txt", "csv": "csv", "markdown": "md", "latex": "tex", "json": "json"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_matches_golden(fmt: str) -> None:
    text = render(ROWS, fmt, caption="Two models", numeric=("params", "MAdds (G)"))
    path = GOLDEN / f"rows.{EXTENSION[fmt]}"
    if os.environ.get("ARCHSTAT_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(ROWS, "xlsx")


def test_write_atomic_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with write_atomic(target) as fh:
            fh.write("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    with write_atomic(target) as fh:
        fh.write("new\n")
    assert target.read_text() == "new\n"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
