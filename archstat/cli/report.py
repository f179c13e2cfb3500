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
                    "mobilenet_layer_types, shufflenet_complexity, senet_overhead, dw_separable_ratio, training_cost, "
                    "training_peak. Figures: accuracy_vs_madds, latency_vs_cost, layer_type_shares, dw_ratio, "
                    "peak_memory_vs_batch. With --from DB, instead draw "
                    "the Pareto fronts of an `archstat sweep` database: published ImageNet accuracy against "
                    "multiply-adds, memory access and (per machine) latency, with the points as CSV/Markdown. "
                    "Needs matplotlib: pip install 'archstat[reports]'.")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="build only this table or figure (repeatable; a figure builds the tables it needs)")
    p.add_argument("--from", dest="source", metavar="DB",
                   help="draw accuracy-against-cost Pareto fronts from this `archstat sweep` database instead")
    add_run_options(p)
    add_out_dir_option(p, help="output folder, created if missing (default: reports/, or reports/sweep/ with --from)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from archstat.errors import ArchstatError
    from archstat.reports.writers import check_output_dir

    out_dir = args.out_dir or ("reports/sweep" if args.source else "reports")
    if args.source and (args.only or args.quick or args.threads):
        raise ArchstatError("--from draws a sweep's figures from its database: --only, --quick and --threads "
                            "do not apply")
    check_output_dir(out_dir)
    require_extra("matplotlib", "reports", "archstat report")
    if args.source:
        from archstat.reports.sweep_figures import generate_from_sweep

        written = generate_from_sweep(args.source, out_dir)
    else:
        from archstat.reports.run import generate

        written = generate(out_dir, args.only, args.quick, args.threads)
    print(f"archstat: wrote {len(written)} files to {out_dir}/ (index: {out_dir}/README.md)", file=sys.stderr)
    return 0
