"""``archstat report``: regenerate the paper tables and figures."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="regenerate the papers' comparison tables (CSV/Markdown/LaTeX) and figures (PNG/PDF)",
        description="Count (and time) the zoo's networks and write each paper table beside its published values, "
                    "with deltas and flagged discrepancies, as CSV, Markdown and LaTeX, the figures as PNG and PDF, "
                    "and an index README.md. Tables: imagenet_top5, shufflenet_latency, resnet_flops, "
                    "mobilenet_layer_types, shufflenet_complexity, senet_overhead, dw_separable_ratio. Figures: "
                    "accuracy_vs_madds, latency_vs_cost, layer_type_shares, dw_ratio.")
    p.add_argument("--out", default="reports", metavar="DIR", help="output folder (default: reports/)")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="build only this table or figure (repeatable; a figure builds the tables it needs)")
    p.add_argument("--quick", action="store_true", help="fewest latency repeats: every output, fast")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for the latency measurements")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from archstat.reports.run import generate

    written = generate(args.out, args.only, args.quick, args.threads)
    print(f"archstat: wrote {len(written)} files to {args.out}/ (index: {args.out}/README.md)", file=sys.stderr)
    return 0
