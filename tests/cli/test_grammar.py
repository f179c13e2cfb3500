"""One grammar for every command: each option word means one thing everywhere, models are always
``--models``, ``--format`` follows ``--out``'s suffix, ``--debug`` goes anywhere, ``--version``
exists, every user error (argparse's too) is one line on stderr with exit status 2, ``check``
fails when a requested counter did not run, and counting never needs matplotlib."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

import archstat
from archstat.cli import COMMANDS, build_parser, main
from archstat.errors import UnknownModelError
from archstat.reports.writers import SUFFIX_FORMATS


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, out: str, err: str, needle: str = "") -> None:
    assert code == 2 and out == "", (code, out)
    assert err.startswith("archstat: error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert "usage:" not in err and "Traceback" not in err
    assert needle in err, err


def subcommands() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def commands_with(option: str) -> set[str]:
    return {name for name, parser in subcommands().items() if option in options(parser)}


def test_every_command_is_registered() -> None:
    assert list(subcommands()) == list(COMMANDS)


@pytest.mark.parametrize("option,commands", [
    ("--models", {"table", "layers", "memory", "latency", "zoo", "check", "sweep"}),
    ("--count-device", {"table", "layers", "zoo"}),  # where counting runs: meta or cpu
    ("--device", {"memory", "latency", "guidelines", "sweep"}),  # where real passes run: cpu or cuda
    ("--mode", {"table", "layers", "memory"}),  # an inference pass or a training step
    ("--out", {"table", "layers", "memory", "ops", "latency", "guidelines", "zoo", "check", "sweep"}),  # one file
    ("--format", {"table", "layers", "memory", "ops", "latency", "guidelines", "zoo", "check"}),
    ("--out-dir", {"guidelines", "report"}),  # a folder
    ("--debug", set(COMMANDS)),
])
def test_which_commands_take_an_option(option: str, commands: set[str]) -> None:
    assert commands_with(option) == commands


def test_no_command_takes_a_model_positionally() -> None:
    positional = {name: [a.dest for a in p._actions if not a.option_strings and a.dest != "help"]
                  for name, p in subcommands().items()}
    assert positional == {name: (["pattern"] if name == "ops" else []) for name in COMMANDS}


# options whose help rightly differs: one model or several; what a file or a folder receives
_HELP_DIFFERS = {"--models", "--out", "--out-dir", "--threads"}  # --threads: a sweep's default is the worker's cores
# the commands that run every combination of several sizes and batches take lists; the others one value
_LISTS = {"--batch", "--sizes"}
_LIST_COMMANDS = {"latency", "sweep"}


def test_an_option_means_the_same_in_every_command() -> None:
    seen: dict[tuple[str, bool], tuple[str, tuple]] = {}
    for name, parser in subcommands().items():
        for option, action in options(parser).items():
            if option in ("-h", "--help"):
                continue
            meaning = (type(action).__name__, action.choices and tuple(action.choices), action.metavar, action.type,
                       None if option in _HELP_DIFFERS else (action.help, action.default))
            listed = option in _LISTS and name in _LIST_COMMANDS
            first = seen.setdefault((option, listed), (name, meaning))
            assert meaning == first[1], f"{option} in {name} differs from {option} in {first[0]}"
    assert tuple(options(subcommands()["table"])["--count-device"].choices) == ("meta", "cpu")
    assert commands_with("--sizes") == _LIST_COMMANDS  # one spelling of several sizes, one of one size
    assert not any({"--sizes", "--input-size"} <= set(options(p)) for p in subcommands().values())


def test_version_has_one_source(capsys) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out == f"archstat {archstat.__version__}\n"
    assert importlib.metadata.version("archstat") == archstat.__version__


@pytest.mark.parametrize("argv", [
    ["--debug", "table", "--models", "resnt50"],
    ["table", "--debug", "--models", "resnt50"],
    ["table", "--models", "resnt50", "--debug"],
])
def test_debug_before_or_after_the_command_shows_the_traceback(argv: list[str]) -> None:
    with pytest.raises(UnknownModelError, match="did you mean resnet50"):
        main(argv)


@pytest.mark.parametrize("argv,needle", [
    ([], "the following arguments are required: COMMAND"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["table"], "the following arguments are required: --models (see 'archstat table --help')"),
    (["table", "--models", "resnet18", "--format", "xlsx"], "invalid choice: 'xlsx'"),
    (["table", "--models", "resnet18", "--batch", "two"], "invalid int value: 'two'"),
    (["layers", "resnet18"], "the following arguments are required: --models"),  # a model is --models here too
    (["check", "resnet18", "--models", "resnet18"], "unrecognized arguments: resnet18 (see 'archstat check --help')"),
    (["table", "--model", "resnet18"], "the following arguments are required: --models"),  # no abbreviations
    (["report", "--out", "x"], "unrecognized arguments: --out x (see 'archstat report --help')"),
    (["table", "--models", "resnet18", "--out-dir", "x"], "unrecognized arguments: --out-dir x"),
    (["table", "--models", "resnet18", "--device", "cpu"], "unrecognized arguments: --device cpu"),
    (["latency", "--models", "resnet18", "--count-device", "meta"], "unrecognized arguments: --count-device meta"),
])
def test_argparse_errors_are_one_line_exit_2(capsys, monkeypatch, tmp_path: Path, argv: list[str],
                                             needle: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert_one_line_error(code, out, err, needle)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_console_script_argparse_error_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "archstat", "table", "--models", "resnet18", "--format", "xlsx"],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, "invalid choice: 'xlsx'")


@pytest.mark.parametrize("command", ["layers", "check"])
def test_a_single_model_command_refuses_several(capsys, monkeypatch, command: str) -> None:
    monkeypatch.setattr(archstat, "count", lambda *a, **k: pytest.fail("counted"))
    monkeypatch.setattr(archstat, "check", lambda *a, **k: pytest.fail("checked"))
    code, out, err = run_cli(capsys, command, "--models", "resnet18,resnet34")
    assert_one_line_error(code, out, err, f"archstat {command} works on one model; --models resnet18,resnet34 names 2")


def test_a_glob_naming_one_model_is_one_model(capsys) -> None:
    code, out, _ = run_cli(capsys, "layers", "--models", "lenet*", "--by-type", "--format", "json")
    assert code == 0 and sum(r["params"] for r in json.loads(out)) == archstat.count("lenet5").params


def test_count_device_is_where_counting_runs(capsys) -> None:
    code, out, _ = run_cli(capsys, "table", "--models", "lenet5", "--count-device", "cpu", "--format", "json")
    [row] = json.loads(out)
    meta = archstat.count("lenet5")
    assert code == 0 and row["device"] == "cpu" and (row["params"], row["madds"]) == (meta.params, meta.madds)


def test_device_is_where_timing_runs_and_never_meta(capsys) -> None:
    code, out, err = run_cli(capsys, "latency", "--models", "lenet5", "--device", "meta")
    assert_one_line_error(code, out, err, "device must be 'cpu' or 'cuda[:N]', not 'meta'")


def _ops(capsys, *argv: str) -> str:
    code, out, err = run_cli(capsys, "ops", "lstm", *argv)
    assert code == 0, err
    return out


@pytest.mark.parametrize("suffix,fmt", SUFFIX_FORMATS.items())
def test_format_follows_the_out_suffix(capsys, tmp_path: Path, suffix: str, fmt: str) -> None:
    target = tmp_path / f"ops{suffix.upper() if fmt == 'csv' else suffix}"  # .CSV is CSV too
    assert _ops(capsys, "--out", str(target)) == ""
    assert target.read_text() == _ops(capsys, "--format", fmt)


def test_an_unknown_suffix_gets_the_default_format(capsys, tmp_path: Path) -> None:
    target = tmp_path / "ops.dat"
    _ops(capsys, "--out", str(target))
    assert target.read_text() == _ops(capsys) == _ops(capsys, "--format", "table")


def test_a_format_that_contradicts_the_suffix_is_refused(capsys, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "ops", "lstm", "--format", "json", "--out", str(tmp_path / "ops.csv"))
    assert_one_line_error(code, out, err, "--format json contradicts --out")
    assert list(tmp_path.iterdir()) == []
    assert _ops(capsys, "--format", "table", "--out", str(tmp_path / "ops.txt")) == ""  # agreeing is fine


def _failing(tool: str):
    from archstat.crosscheck import TOOLS

    def broken(*args):
        raise RuntimeError("cannot trace this")

    return dataclasses.replace(TOOLS[tool], runner=broken)


def test_check_fails_when_a_counter_raised(capsys, monkeypatch) -> None:
    from archstat.crosscheck import TOOLS

    pytest.importorskip("fvcore", reason="fvcore is an optional counter")
    monkeypatch.setitem(TOOLS, "fvcore", _failing("fvcore"))
    code, out, err = run_cli(capsys, "check", "--models", "lenet5", "--tools", "fvcore,torch")
    assert code == 1 and "archstat: fvcore not run: RuntimeError: cannot trace this" in err and "torch" in out
    assert run_cli(capsys, "check", "--models", "lenet5", "--tools", "torch")[0] == 0


def test_check_fails_when_a_requested_counter_is_missing(capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "thop", None)  # `import thop` raises ImportError
    code, _, err = run_cli(capsys, "check", "--models", "lenet5", "--tools", "thop,torch")
    assert code == 1 and "archstat: thop not run: not installed" in err


@pytest.mark.parametrize("argv,work", [
    (["report", "--quick"], "archstat.reports.run.generate"),
    (["guidelines", "--quick"], "archstat.guidelines.run.run_experiments"),
])
def test_figures_without_matplotlib_name_the_extra(capsys, monkeypatch, tmp_path: Path, argv: list[str],
                                                   work: str) -> None:
    monkeypatch.setattr(work, lambda *a, **k: pytest.fail("work started"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run_cli(capsys, *argv, "--out-dir", str(tmp_path / "out"))
    assert_one_line_error(code, out, err, "needs matplotlib, which is not installed: pip install 'archstat[reports]'")


def test_counting_commands_run_without_matplotlib(tmp_path: Path) -> None:
    script = ("import sys; sys.modules['matplotlib'] = None\n"  # as if not installed
              "from archstat.cli import main\n"
              "codes = [main(a) for a in (['table', '--models', 'lenet5'], ['layers', '--models', 'lenet5'],"
              " ['zoo', '--check', '--models', 'lenet5'], ['ops', 'conv2d'])]\n"
              "sys.exit(max(codes))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "lenet5" in proc.stdout and "Conv2d" in proc.stdout


@pytest.mark.parametrize("argv,runs", [([], (5, 20)), (["--quick"], (1, 3)), (["--quick", "--repeats", "7"], (1, 7))])
def test_quick_means_fewest_runs_unless_counts_are_given(capsys, monkeypatch, argv: list[str],
                                                         runs: tuple[int, int]) -> None:
    import archstat.latency
    from archstat.errors import ArchstatError

    seen = []

    def profile(*args, warmup: int, repeats: int, **kwargs):
        seen.append((warmup, repeats))
        raise ArchstatError("stopped before timing")

    monkeypatch.setattr(archstat.latency, "profile", profile)
    code, _, err = run_cli(capsys, "latency", "--models", "lenet5", "--no-roofline", *argv)
    assert seen == [runs] and code == 2 and "stopped before timing" in err
