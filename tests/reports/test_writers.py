"""Golden files for the table writers: every format, byte for byte; and how files are written.

The golden files in ``golden/`` were written by the writers and then read and checked by
hand (alignment, escaping, raw integers in CSV/JSON). To regenerate after a deliberate
change: ``ARCHSTAT_UPDATE_GOLDEN=1 pytest tests/reports/test_writers.py`` and review the diff.
(How the command line refuses bad paths is in ``tests/cli/test_output_paths.py``.)
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from archstat.reports.writers import (FORMATS, SUFFIX_FORMATS, OutputPathError, check_output_dir, check_output_file,
                                      format_for, render, write_atomic)

GOLDEN = Path(__file__).parent / "golden"
ROWS = [
    {"model": "resnet50", "params": 25557032, "MAdds (G)": "4.089", "note": "v1.5 & stride_in_3x3"},
    {"model": "se_resnet50", "params": 28088024, "MAdds (G)": "3.860", "note": "50% of 100_000 #SE"},
]
EXTENSION = {fmt: suffix[1:] for suffix, fmt in SUFFIX_FORMATS.items()}  # one suffix per format


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_every_format_has_a_suffix() -> None:
    assert sorted(EXTENSION) == sorted(FORMATS)
    assert format_for("out/T.CSV") == "csv" and format_for("t.csv.gz") is None and format_for("/dev/stdout") is None


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
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask()  # kept, as write_text made it


def test_a_write_error_keeps_the_old_file_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(OutputPathError, match=r"^cannot write .*out.csv: No space left on device$"):
        with write_atomic(target) as fh:
            fh.write("half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_new_files_get_the_umask_replaced_ones_keep_their_mode(tmp_path: Path) -> None:
    (tmp_path / "secret.csv").write_text("old\n")
    (tmp_path / "secret.csv").chmod(0o600)
    mask = os.umask(0o022)
    try:
        for name in ("new.csv", "secret.csv"):
            with write_atomic(tmp_path / name) as fh:
                fh.write("new\n")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o644  # not mkstemp's private 0600
    assert stat.S_IMODE((tmp_path / "secret.csv").stat().st_mode) == 0o600


def test_a_figure_saved_through_write_atomic_gets_the_umask(tmp_path: Path) -> None:
    """How figure code writes: ``fig.savefig(fh, format=...)`` into ``write_atomic(path, "wb")``."""
    pytest.importorskip("matplotlib", reason="figures need archstat[reports]")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    fig.add_subplot().plot([0, 1], [1, 0])
    for ext in ("png", "pdf"):
        with write_atomic(tmp_path / f"fig.{ext}", "wb") as fh:
            fig.savefig(fh, format=ext)
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "fig.pdf").read_bytes()[:5] == b"%PDF-"
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {0o666 & ~umask()}


def test_a_symlink_is_followed_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to("data/real.csv")
    with write_atomic(tmp_path / "link.csv") as fh:
        fh.write("new\n")
    assert (tmp_path / "link.csv").is_symlink() and os.readlink(tmp_path / "link.csv") == "data/real.csv"
    assert (tmp_path / "data" / "real.csv").read_text() == "new\n"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["real.csv"]  # the temporary file was beside it


def test_non_regular_files_are_written_in_place_or_refused(tmp_path: Path) -> None:
    with write_atomic(os.devnull) as fh:
        fh.write("gone\n")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    (tmp_path / "folder").mkdir()
    with pytest.raises(OutputPathError, match="folder: it is a directory"):
        with write_atomic(tmp_path / "folder") as fh:
            pytest.fail("opened a directory")
    assert (tmp_path / "folder").is_dir() and list((tmp_path / "folder").iterdir()) == []


def test_output_checks_write_nothing(tmp_path: Path) -> None:
    check_output_file(tmp_path / "new.csv")
    check_output_dir(tmp_path / "a" / "b", files=("x.csv",))  # created only when written
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.csv").mkdir()
    with pytest.raises(OutputPathError, match="x.csv: it is a directory"):
        check_output_dir(tmp_path / "out", files=("x.csv",))
    with pytest.raises(OutputPathError, match="does not exist"):
        check_output_file(tmp_path / "a" / "new.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
