"""``archstat`` command line: a thin layer over the Python API.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> int``; :data:`COMMANDS` lists them. Errors a user can cause end in one
line on stderr and exit status 2, never a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from importlib import import_module
from typing import Sequence

__all__ = ["main", "COMMANDS"]

#: Subcommand modules under ``archstat.cli``, in ``--help`` order.
COMMANDS = ("table", "layers", "ops", "latency", "guidelines", "report", "zoo", "check")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archstat",
        description="What a CNN costs: parameters, multiply-adds (MAdds), FLOPs and memory access cost, "
                    "counted on the meta device (no weights, no activations) and checked against the papers.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        import_module(f"archstat.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from archstat.errors import ArchstatError

    try:
        return int(args.handler(args) or 0)
    except ArchstatError as exc:
        if args.debug:
            raise
        print(f"archstat: error: {exc}", file=sys.stderr)
        return 2
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
