"""``archstat`` command line: a thin layer over the Python API, one grammar for every command.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``; :data:`COMMANDS` lists them, and :mod:`archstat.cli.common` holds the
option groups they share. Every error a user can cause, argparse's included, ends in one
line on stderr and exit status 2, never a traceback (``--debug``, before or after the
command, shows it); output paths are checked before any work starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from importlib import import_module
from typing import Any, NoReturn, Sequence

from archstat.errors import ArchstatError

__all__ = ["main", "run", "build_parser", "ArgumentParser", "UsageError", "COMMANDS", "EXIT_STATUS",
           "EXIT_BROKEN_PIPE"]

#: Subcommand modules under ``archstat.cli``, in ``--help`` order.
COMMANDS = ("table", "layers", "memory", "ops", "latency", "guidelines", "sweep", "report", "zoo", "check")

#: Exit status when stdout's reader has gone (a closed pipe): 128 + SIGPIPE (13 on Linux and macOS),
#: what the shell reports for a program the signal ended, so ``set -o pipefail`` sees a cut-short
#: output as it does from ``cat``.
EXIT_BROKEN_PIPE = 141

EXIT_STATUS = ("exit status: 0 done; 1 a finding: a zoo --check mismatch, a check whose requested counter did not "
               "run, or an internal error; 2 bad input, one line on stderr (unknown model or option, unusable "
               f"--out or --out-dir, stdout that cannot be written, ...); 130 interrupted; {EXIT_BROKEN_PIPE} "
               "stdout's reader went away (| head), quietly")


class UsageError(ArchstatError):
    """A command line argparse refused (its message, one line)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` (one line) instead of printing a usage block and
    exiting, and that takes options only as spelled (no abbreviations: ``--out`` is never
    ``--out-dir``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        """Parse ``args``; words no option takes are refused naming the command's help."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            raise UsageError(f"unrecognized arguments: {' '.join(extras)} (see '{prog} --help')")
        return parsed


def build_parser() -> ArgumentParser:
    """The ``archstat`` parser with every subcommand of :data:`COMMANDS`."""
    from archstat import __version__

    parser = ArgumentParser(
        prog="archstat", epilog=EXIT_STATUS,
        description="What a CNN costs: parameters, multiply-adds (MAdds), FLOPs and memory access cost, "
                    "counted on the meta device (no weights, no activations) and checked against the papers.",
    )
    parser.add_argument("--version", action="version", version=f"archstat {__version__}")
    debug = "show tracebacks instead of one-line errors (before or after the command)"
    parser.add_argument("--debug", action="store_true", help=debug)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        import_module(f"archstat.cli.{name}").add_parser(sub)
    for command in sub.choices.values():  # after the command too; SUPPRESS keeps one given before it
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug)
        command.epilog = command.epilog or EXIT_STATUS
    return parser


def _fail(message: object) -> int:
    lines = str(message).splitlines() or [""]
    print("archstat: error: " + " ".join(line.strip() for line in lines), file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line; returns its exit status (see :data:`EXIT_STATUS`).

    A command's output is flushed before it returns, so that a write to stdout that fails is
    answered here: a full disk in one line (status 2, as for ``--out``); a closed pipe
    (``archstat table ... | head -1``: the reader has all it wanted) quietly, with the status
    of a program the pipe's ``SIGPIPE`` ended, as ``cat`` and other filters end there."""
    from archstat.cli.common import StdoutClosed

    try:
        return _main(argv)
    except StdoutClosed:
        # Later output, and the interpreter's own flush at exit, go to /dev/null instead of failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    from archstat.cli.common import StdoutClosed, prepare_outputs, to_stdout

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _fail(exc)
    except SystemExit as exc:  # --help, --version: their text, too, is flushed here
        try:
            to_stdout()
        except ArchstatError as failed:
            return _fail(failed)
        return exc.code if isinstance(exc.code, int) else 0
    try:
        prepare_outputs(args)
        status = int(args.handler(args) or 0)
        to_stdout()  # what is still buffered, now: a failed write is answered here, not at interpreter exit
        return status
    except StdoutClosed:
        raise  # not a bug: main() ends quietly
    except ArchstatError as exc:
        if args.debug:
            raise
        return _fail(exc)
    except KeyboardInterrupt:
        print("archstat: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, still reported in one line
        if args.debug:
            raise
        print(f"archstat: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


def run() -> None:
    """Console-script entry point."""
    warnings.simplefilter("default")
    sys.exit(main())
