"""``archstat report``: regenerate the paper tables and figures (needs ``archstat[reports]``)."""

from __future__ import annotations

import argparse
import sys

from archstat.cli.common import add_out_dir_option, add_run_options, require_extra


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="regenerate the papers' comparison tables (CSV/Markdown/LaTeX) and figures (PNG/PDF)",
        description="Count (and time) the zoo's networks and write each paper table beside its published values, "
                    "with deltas and flagged discrepancies, as CSV, Markdown and LaTeX, the figures as PNG and PDF, "
                    "and an index README.md. Tables: imagenet_top5, shufflenet_latency, resnet_flops, "
                    "mobilenet_layer_types, shufflenet_complexity, senet_overhead, dw_separable_ratio. Figures: "
                    "accuracy_vs_madds, latency_vs_cost, layer_type_shares, dw_ratio. Needs matplotlib: "
                    "pip install 'archstat[reports]'.")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="build only this table or figure (repeatable; a figure builds the tables it needs)")
    add_run_options(p)
    add_out_dir_option(p, default="reports", help="output folder, created if missing (default: reports/)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    require_extra("matplotlib", "reports", "archstat report")
    from archstat.reports.run import generate

    written = generate(args.out_dir, args.only, args.quick, args.threads)
    print(f"archstat: wrote {len(written)} files to {args.out_dir}/ (index: {args.out_dir}/README.md)",
          file=sys.stderr)
    return 0
