"""``archstat ops``: every op archstat knows, the formula it is costed with and what that counts."""

from __future__ import annotations

import argparse
import fnmatch

from archstat.cli.common import add_output_options, emit, tables


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ops", help="every op archstat knows: its formula and what it counts",
        description="List every module class and torch function archstat counts (with the formula of "
                    "archstat.formulas that costs it and what that formula counts: multiply-adds, flops, memory "
                    "access only), the functions it declares free (views, metadata) and the ops it refuses, with "
                    "the reason. Any other op met in a model is reported as uncounted.")
    p.add_argument("pattern", nargs="?",
                   help="only ops whose name matches this glob, in any case (e.g. '*conv*', 'lstm')")
    p.add_argument("--counts", choices=("madds", "flops", "memory", "free", "refused"),
                   help="only ops that count this")
    add_output_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from archstat.counting.catalog import catalog
    from archstat.errors import ArchstatError

    pattern = args.pattern.lower() if args.pattern else None
    entries = [e for e in catalog() if (args.counts is None or e.counts == args.counts)
               and (pattern is None or fnmatch.fnmatchcase(e.name.rpartition(".")[2].lower(), pattern)
                    or fnmatch.fnmatchcase(e.name.lower(), pattern))]
    if not entries:
        raise ArchstatError(f"no op matches {args.pattern!r}; `archstat ops` lists them all")
    rows = [e.row() for e in entries]
    emit(args, tables(args, [(f"archstat knows {len(rows)} ops", rows, ())]))
    return 0
