"""``--out FILE`` and ``--out-dir DIR``: checked before any work starts, refused in one line with exit
status 2, and nothing that is not a regular file is ever replaced by one: a symbolic link's target is
written (the link stays), a FIFO or character device is written in place, a directory is refused."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator

import pytest

from archstat.cli import main



def _writes_through_permissions() -> bool:
    """Whether this process may write a read-only file (root with CAP_DAC_OVERRIDE may)."""
    with tempfile.NamedTemporaryFile() as probe:
        os.chmod(probe.name, 0o444)
        return os.access(probe.name, os.W_OK)


PRIVILEGED = _writes_through_permissions()

#: Each command writing one file, with arguments it needs; its handler must never start on a bad --out.
OUT_FILE = {"table": ["--models", "lenet5"], "layers": ["--models", "lenet5"], "ops": [],
            "latency": ["--models", "lenet5"], "guidelines": ["--quick"], "zoo": [], "check": ["--models", "lenet5"]}
OUT_DIR = {"guidelines": ["--quick"], "report": ["--quick"]}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, monkeypatch, command: str, argv: list[str], needle: str) -> None:
    """``archstat COMMAND ARGV`` ends in one ``cannot write`` line, exit 2, before its handler runs."""
    monkeypatch.setattr(f"archstat.cli.{command}.run", lambda args: pytest.fail("the work started"))
    code, out, err = run_cli(capsys, command, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1, (code, err)
    assert err.startswith("archstat: error: cannot write") and needle in err, err


def _directory(tmp: Path) -> str:
    (tmp / "results").mkdir()
    (tmp / "results" / "kept.csv").write_text("kept\n")
    return "results"


def _missing_folder(tmp: Path) -> str:
    return "no_such_folder/t.csv"


def _file_as_folder(tmp: Path) -> str:
    (tmp / "notes.txt").write_text("kept\n")
    return "notes.txt/t.csv"


def _socket(tmp: Path) -> str:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock")  # relative: a socket path must be short
    sock.close()
    return "sock"


def _link_loop(tmp: Path) -> str:
    os.symlink("loop", "loop")
    return "loop"


def _read_only_file(tmp: Path) -> str:
    (tmp / "t.csv").write_text("kept\n")
    (tmp / "t.csv").chmod(0o444)
    return "t.csv"


def _read_only_folder(tmp: Path) -> str:
    (tmp / "locked").mkdir(mode=0o555)
    return "locked/t.csv"


BAD_FILES: dict[str, tuple[Callable[[Path], str], str]] = {
    "directory": (_directory, "results: it is a directory"),
    "missing folder": (_missing_folder, "does not exist"),
    "file as folder": (_file_as_folder, "Not a directory"),
    "socket": (_socket, "sock: it is a socket"),
    "symlink loop": (_link_loop, "Too many levels of symbolic links"),
    "read-only file": (_read_only_file, "the file is read-only"),
    "read-only folder": (_read_only_folder, "is not writable"),
}


def snapshot(tmp: Path) -> dict[str, tuple[int, bytes | str]]:
    """Every entry under ``tmp``: its type bits and content (or link target)."""
    out = {}
    for path in sorted(tmp.rglob("*")):
        mode = path.lstat().st_mode
        content = os.readlink(path) if stat.S_ISLNK(mode) else path.read_bytes() if stat.S_ISREG(mode) else b""
        out[str(path.relative_to(tmp))] = (stat.S_IFMT(mode), content)
    return out


@pytest.mark.parametrize("command", OUT_FILE)
@pytest.mark.parametrize("kind", [
    pytest.param(kind, marks=pytest.mark.skipif(
        PRIVILEGED and kind.startswith("read-only") and not hasattr(os, "seteuid"),
        reason="running as root without seteuid: no unprivileged user to judge permissions by"))
    for kind in BAD_FILES])
def test_a_bad_out_file_is_refused_before_any_work(capsys, monkeypatch, request, tmp_path: Path, command: str,
                                                   kind: str) -> None:
    unprivileged = PRIVILEGED and kind.startswith("read-only")
    if unprivileged:  # root writes through permission bits: the check runs as user nobody
        refused(capsys, monkeypatch, command, [*OUT_FILE[command], "--out", "."], "directory")  # imports, as root
        tmp_path = Path(tempfile.mkdtemp())  # pytest's own tmp_path is closed to other users
        tmp_path.chmod(0o777)
        request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
    monkeypatch.chdir(tmp_path)
    make, needle = BAD_FILES[kind]
    path = make(tmp_path)
    before = snapshot(tmp_path)
    with as_nobody() if unprivileged else nullcontext():
        refused(capsys, monkeypatch, command, [*OUT_FILE[command], "--out", path], needle)
    assert snapshot(tmp_path) == before  # nothing replaced, nothing left behind


@contextmanager
def as_nobody() -> Iterator[None]:
    """Effective user and group 65534 (nobody) for the block, then root again (the real and saved
    ids stay 0): the permission bits then apply, as they do for any user."""
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def _file(tmp: Path) -> str:
    (tmp / "out.csv").write_text("kept\n")
    return "out.csv"


def _below_a_file(tmp: Path) -> str:
    return _file(tmp) + "/new"


def _dangling(tmp: Path) -> str:
    os.symlink("nowhere", "dangling")
    return "dangling"


BAD_DIRS: dict[str, tuple[Callable[[Path], str], str]] = {
    "file": (_file, "into out.csv: it is not a folder"),
    "below a file": (_below_a_file, "into out.csv/new: out.csv is not a folder"),
    "dangling link": (_dangling, "into dangling: it is not a folder"),
}


@pytest.mark.parametrize("command", OUT_DIR)
@pytest.mark.parametrize("kind", BAD_DIRS)
def test_a_bad_out_dir_is_refused_before_any_work(capsys, monkeypatch, tmp_path: Path, command: str,
                                                  kind: str) -> None:
    monkeypatch.chdir(tmp_path)
    make, needle = BAD_DIRS[kind]
    path = make(tmp_path)
    before = snapshot(tmp_path)
    refused(capsys, monkeypatch, command, [*OUT_DIR[command], "--out-dir", path], needle)
    assert snapshot(tmp_path) == before


def test_guidelines_checks_the_files_it_will_write_before_timing(capsys, monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "guidelines.png").mkdir()
    refused(capsys, monkeypatch, "guidelines", ["--quick", "--out-dir", str(tmp_path)], "guidelines.png: it is a dir")


def _ops_csv(capsys) -> str:
    code, out, _ = run_cli(capsys, "ops", "lstm", "--format", "csv")
    assert code == 0
    return out


def test_a_symlink_is_followed_and_kept(capsys, tmp_path: Path) -> None:
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to("real.csv")
    (tmp_path / "dangling.csv").symlink_to("new.csv")
    for link in ("link.csv", "dangling.csv"):
        code, out, err = run_cli(capsys, "ops", "lstm", "--out", str(tmp_path / link))
        assert code == 0 and out == "" and f"wrote {tmp_path / link}" in err
    expected = _ops_csv(capsys)
    assert os.readlink(tmp_path / "link.csv") == "real.csv" and (tmp_path / "real.csv").read_text() == expected
    assert os.readlink(tmp_path / "dangling.csv") == "new.csv" and (tmp_path / "new.csv").read_text() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling.csv", "link.csv", "new.csv", "real.csv"]


def test_a_fifo_is_written_in_place(capsys, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so that opening it to write does not block
    try:
        code, _, err = run_cli(capsys, "ops", "lstm", "--format", "csv", "--out", str(fifo))
        received = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert code == 0 and received == _ops_csv(capsys)
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and [p.name for p in tmp_path.iterdir()] == ["pipe"]


def test_a_character_device_is_written_in_place(capsys) -> None:
    code, out, _ = run_cli(capsys, "ops", "lstm", "--out", os.devnull)
    assert code == 0 and out == "" and stat.S_ISCHR(os.stat(os.devnull).st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_full_device_is_one_line_and_stays_a_device(capsys) -> None:
    code, out, err = run_cli(capsys, "ops", "lstm", "--format", "csv", "--out", "/dev/full")
    assert code == 2 and out == "" and err == "archstat: error: cannot write /dev/full: No space left on device\n"
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


def test_files_get_the_users_umask_and_a_replaced_file_keeps_its_mode(capsys, tmp_path: Path) -> None:
    (tmp_path / "old.csv").write_text("old\n")
    (tmp_path / "old.csv").chmod(0o600)
    mask = os.umask(0o027)
    try:
        for name in ("new.csv", "old.csv"):
            assert run_cli(capsys, "ops", "lstm", "--out", str(tmp_path / name))[0] == 0
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "old.csv").stat().st_mode) == 0o600
    assert (tmp_path / "old.csv").read_text() == _ops_csv(capsys)


@pytest.mark.parametrize("option,command", [("--out", "table"), ("--out-dir", "report")])
def test_an_empty_output_name_is_refused_before_any_work(capsys, monkeypatch, option: str, command: str) -> None:
    # "" used to be taken as no option at all: stdout for --out, the default folder for --out-dir
    monkeypatch.setattr(f"archstat.cli.{command}.run", lambda args: pytest.fail("the work started"))
    argv = {"table": ["--models", "lenet5"], "report": ["--quick"]}[command]
    code, out, err = run_cli(capsys, command, *argv, option, "")
    assert code == 2 and out == "" and err == f"archstat: error: {option} is empty: give a " \
        f"{'file' if option == '--out' else 'folder'} name, or leave {option} out\n"


def _cli(argv: list[str], stdout) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "archstat", *argv], stdout=stdout, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("argv", [["ops", "lstm", "--format", "csv"], ["ops"], ["--help"], ["sweep", "--help"]],
                         ids=["fits the buffer: fails at the flush", "115 kB: fails in the write",
                              "help (used to exit 0)", "a command's help"])
def test_stdout_on_a_full_device_is_one_line(argv: list[str]) -> None:
    # as --out /dev/full is (test_a_full_device_is_one_line_and_stays_a_device); it used to be an internal error
    with open("/dev/full", "w") as full:
        proc = _cli(argv, full)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and err == "archstat: error: cannot write to stdout: No space left on device\n"


@pytest.mark.skipif(not hasattr(signal, "SIGPIPE"), reason="no SIGPIPE on this platform")
def test_a_closed_pipe_ends_quietly_with_the_sigpipe_status() -> None:
    # `archstat ... | head -1`: head has what it wanted; no message, the status the shell gives a program
    # SIGPIPE ended (128 + the signal), as `cat` gets there; it used to be an internal error, status 1
    proc = _cli(["ops"], subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before archstat writes (it is still importing)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 128 + signal.SIGPIPE and err == ""
