"""``archstat layers --models MODEL``: the per-op breakdown, by module depth, or by layer type."""

from __future__ import annotations

import argparse

from archstat.cli.common import (ONE_MODEL_HELP, Part, add_count_options, add_input_options, add_model_options,
                                 add_output_options, add_training_options, count_options, emit, input_shape,
                                 one_model, quiet_warnings, tables, warn_lines)

_NUMERIC = ("params", "MAdds (M)", "FLOPs (M)", "mem access (K el.)", "ops", "MAdds share", "params share",
            "madds", "flops", "mem_access", "uncounted", "params (M)", "MAdds (G)", "FLOPs (G)",
            "mem access (M el.)", "mem access (MB)", "bwd MAdds (M)", "saved (KB)", "backward_madds", "saved_bytes",
            "peak infer (MB)", "backward MAdds (G)", "step GFLOPs", "saved (MB)", "peak train (MB)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "layers", help="per-op breakdown of one model (or by module depth / layer type)",
        description="Print every op the counter recorded (qualified name, type, shapes, params, MAdds, FLOPs, "
                    "memory access; ops archstat does not know are marked UNCOUNTED; with --mode train also its "
                    "backward multiply-adds and the activations it saves for backward), followed by the share of "
                    "multiply-adds and params per layer type (as in the MobileNet paper, Table 2).")
    add_model_options(p, help=ONE_MODEL_HELP)
    view = p.add_argument_group("view")
    view.add_argument("--depth", type=int, metavar="N", help="aggregate by module name truncated to N components")
    view.add_argument("--by-type", action="store_true", help="print only the per-layer-type summary")
    view.add_argument("--guidelines", action="store_true",
                      help="ShuffleNet V2 guidelines per building block: G1 c1:c2 balance, G2 groups, G3 fragments, "
                           "G4 element-wise memory access share")
    add_input_options(p)
    add_count_options(p)
    add_training_options(p)
    add_output_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import archstat
    from archstat.errors import ArchstatError
    from archstat.reports.stats_tables import depth_rows, kind_rows, layer_rows, summary_rows

    if args.depth is not None and args.depth < 1:
        raise ArchstatError(f"--depth must be at least 1, got {args.depth}")
    name = one_model(args)
    shape = input_shape(args, name)
    stats, lines = quiet_warnings(lambda: archstat.count(name, shape, **count_options(args)))
    warn_lines(lines)
    human = args.format not in ("csv", "json")
    by_type: Part = ("by layer type", kind_rows(stats, human), _NUMERIC)
    parts: list[Part]
    if args.guidelines:
        from archstat.guidelines.report import GUIDELINE_NUMERIC, guideline_report

        parts = [(f"{stats.model}: ShuffleNet V2 guidelines per block (arXiv:1807.11164, Sec. 2)",
                  guideline_report(name, stats, human=human), GUIDELINE_NUMERIC)]
    elif args.by_type:
        parts = [by_type]
    elif args.depth is not None:
        parts = [(f"{stats.model}: by module, depth {args.depth}", depth_rows(stats, args.depth, human), _NUMERIC),
                 by_type]
    else:
        parts = [(f"{stats.model}: {len(stats.records)} ops", layer_rows(stats, human), _NUMERIC), by_type]
    if human:
        parts.append(("total", summary_rows([stats], human), _NUMERIC))
    text = tables(args, parts)
    if human and stats.notes:
        text += "\n" + "\n".join(f"note: {n}" for n in stats.notes) + "\n"
    emit(args, text)
    return 0
