"""``archstat check --models MODEL``: fvcore, thop, torch's FlopCounterMode and ptflops side by side, explained.

Exit status 1 when a counter the user asked for did not run: one that raised, or one named
in ``--tools`` that is not installed (without ``--tools``, a missing counter is listed and
the check still passes).
"""

from __future__ import annotations

import argparse
import sys

from archstat.cli.common import (ONE_MODEL_HELP, add_input_options, add_model_options, add_output_options, emit,
                                 input_shape, one_model, quiet_warnings, tables, warn_lines)

_NUMERIC = ("its total (G)", "MAdds-equiv. (G)", "archstat, its convention (G)", "flagged layers", "ops", "archstat",
            "fvcore", "thop", "torch", "ptflops", "layers", "its count", "right count", "raw_total",
            "madds_equivalent", "archstat_same_convention", "flagged_layers")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="run fvcore, thop, torch's FlopCounterMode and ptflops on one model and explain every gap",
        description="Run archstat and every installed counter (fvcore FlopCountAnalysis, thop.profile, "
                    "torch.utils.flop_counter.FlopCounterMode, ptflops) on the same model with random weights and "
                    "the same input, in eval mode under no_grad. Prints each tool's total and its multiply-add "
                    "equivalent (FlopCounterMode reports 2 FLOPs per multiply-add: halved), archstat's total "
                    "under that tool's convention, the reconciliation by op type computed from each tool's own "
                    "per-module counts (rates per input element, or ratios for multiply-add ops; * marks counts "
                    "that include flagged layers), the layers where a tool is wrong by its own rules, and the "
                    "papers' figures. CSV and JSON: one row per tool with raw totals. Exit status 1 when a counter "
                    "raised, or one named in --tools is not installed.")
    add_model_options(p, help=ONE_MODEL_HELP)
    add_input_options(p)
    tools = p.add_argument_group("counters")
    tools.add_argument("--tools", metavar="NAMES",
                       help="comma-separated subset of fvcore,thop,torch,ptflops (default: all that are installed)")
    tools.add_argument("--all-flags", action="store_true",
                       help="one row per flagged layer (default: grouped by layer type)")
    add_output_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import archstat
    from archstat.counting.stats import format_shape

    tools = [t.strip() for t in args.tools.split(",") if t.strip()] if args.tools else None
    name = one_model(args)
    report, lines = quiet_warnings(lambda: archstat.check(name, input_shape(args, name), tools=tools))
    warn_lines(lines)
    human = args.format not in ("csv", "json")
    where = f"{report.model} on {format_shape(report.input_shape)}"
    parts = [(f"{where}: totals (G); MAdds-equiv. = multiply-add equivalents", report.totals_rows(human), _NUMERIC)]
    if human:
        parts.append(("by op type (M multiply-add equivalents; rate per input element or ratio to archstat)",
                      report.type_rows(human), _NUMERIC))
        if report.flags:
            parts.append((f"{len(report.flags)} flagged layers: the tool's count differs from its own rules",
                          report.flag_rows(human, grouped=not args.all_flags), _NUMERIC))
    text = tables(args, parts)
    if human:
        text += "\n" + "\n".join(report.explain()) + "\n"
        for u in report.unverified:
            text += f"unverified: {u.tool} counts {u.count:,.0f} in {u.layer} ({u.module_type}): {u.why}\n"
        text += "".join(f"note: {n}\n" for n in report.notes)
    emit(args, text)
    for tool, reason in {**report.missing, **report.failed}.items():
        print(f"archstat: {tool} not run: {reason}", file=sys.stderr)
    not_run = set(report.failed) | (set(report.missing) & set(tools or ()))
    return 1 if not_run else 0
