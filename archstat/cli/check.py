"""``archstat check MODEL``: fvcore, thop, torch's FlopCounterMode and ptflops side by side, explained."""

from __future__ import annotations

import argparse
import sys

from archstat.cli.common import (add_output_options, add_shape_options, emit, input_shape, quiet_warnings, tables,
                                 warn_lines)

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
                    "papers' figures. CSV and JSON: one row per tool with raw totals.")
    p.add_argument("model", help="model name (zoo, torchvision, timm:<name>)")
    add_shape_options(p)
    p.add_argument("--tools", metavar="NAMES",
                   help="comma-separated subset of fvcore,thop,torch,ptflops (default: all)")
    p.add_argument("--all-flags", action="store_true",
                   help="one row per flagged layer (default: grouped by layer type)")
    add_output_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import archstat
    from archstat.counting.stats import format_shape

    tools = [t.strip() for t in args.tools.split(",") if t.strip()] if args.tools else None
    report, lines = quiet_warnings(lambda: archstat.check(args.model, input_shape(args, args.model), tools=tools))
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
    return 0
