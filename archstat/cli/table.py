"""``archstat table``: params, multiply-adds, FLOPs and memory access of models, one row each."""

from __future__ import annotations

import argparse

from archstat.cli.common import (add_count_options, add_input_options, add_model_options, add_output_options,
                                 add_training_options, count_options, emit, input_shape, model_names, report_failures,
                                 sweep, tables, warn_lines)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table", help="one row per model: params, MAdds, FLOPs, memory access",
        description="Count models and print one row each: params (M), multiply-adds (G), FLOPs (G, 2 per "
                    "multiply-add plus element-wise work), memory access (M elements read and written, and MB in "
                    "the model's dtype) and the estimated peak memory of a forward pass. With --mode train: a "
                    "training step, adding its backward multiply-adds, optimizer-step FLOPs, the activations "
                    "saved for backward and the step's estimated peak memory. CSV and JSON keep raw integers: "
                    "model,input,params,madds,flops,mem_access,...")
    add_model_options(p)
    add_input_options(p)
    add_count_options(p)
    add_training_options(p)
    add_output_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import archstat
    from archstat.reports.stats_tables import SUMMARY_NUMERIC, summary_rows

    results, failures, notes = sweep(model_names(args), "counting", lambda name: archstat.count(
        name, input_shape(args, name), **count_options(args)))
    warn_lines(notes)
    if results:
        rows = summary_rows(results, human=args.format not in ("csv", "json"))
        emit(args, tables(args, [("", rows, SUMMARY_NUMERIC)]))
    return report_failures(failures)
