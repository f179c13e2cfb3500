"""``archstat latency``: measured forward time next to FLOPs, memory access and the roofline."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from archstat.cli.common import (add_dtype_option, add_model_options, add_output_options, add_per_layer_option,
                                 add_sizes_options, add_timing_options, emit, group, model_names, report_failures,
                                 run_counts, sweep, tables, warn_lines)

_NUMERIC = ("batch", "median ms", "IQR ms", "min ms", "max ms", "GFLOPs", "mem access (MB)", "FLOP/B",
            "roofline ms", "mem-bound %", "MFLOPs", "K el.", "KB", "roofline us")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "latency", help="measure forward latency (median, spread) with FLOPs, memory access and roofline",
        description="Time models on this machine: random weights, warm-up runs, then repeated forward passes "
                    "under torch.inference_mode; reports the median and spread (IQR, min, max) with the hardware "
                    "and library versions, next to the counted FLOPs, memory access (bytes under a stated cache "
                    "model), arithmetic intensity and the roofline estimate max(FLOPs/peak, bytes/bandwidth) "
                    "summed over ops. CSV columns start model,input,batch,device,median_ms,...")
    add_model_options(p)
    add_sizes_options(p)
    add_timing_options(p)
    timing = group(p, "timing")
    timing.add_argument("--channels-last", action="store_true", help="run in channels_last memory format")
    add_dtype_option(p, "timing")
    roofline = p.add_argument_group("roofline")
    roofline.add_argument("--cache-model", choices=("lower-bound", "fused"), default="lower-bound",
                          help="memory access model: every tensor once per op (default), or BN folded and "
                               "activations free")
    roofline.add_argument("--peak-gflops", type=float, metavar="X", help="peak compute in GFLOP/s (skips calibration)")
    roofline.add_argument("--peak-gbs", type=float, metavar="Y", help="peak bandwidth in GB/s (skips calibration)")
    roofline.add_argument("--no-roofline", action="store_true", help="skip calibration and the roofline estimate")
    add_per_layer_option(p, "roofline")
    add_output_options(p)
    p.set_defaults(handler=run)


def _peaks(args: argparse.Namespace):
    from archstat.errors import ArchstatError
    from archstat.latency import Peaks, calibrate

    if args.no_roofline:
        return None
    if (args.peak_gflops is None) != (args.peak_gbs is None):
        raise ArchstatError("give both --peak-gflops and --peak-gbs, or neither (to calibrate)")
    if args.peak_gflops is not None:
        return Peaks.given(args.peak_gflops, args.peak_gbs)
    print("archstat: calibrating peak compute and bandwidth ...", file=sys.stderr)
    return calibrate(args.device, threads=args.threads, dtype=args.dtype)


def _cases(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Every model at every size and batch (sizes and batches are read before any model is)."""
    from archstat.api import resolve_inputs
    from archstat.grammar import parse_batches, parse_sizes

    sizes, batches = parse_sizes(args.sizes), parse_batches(args.batch)
    return [(name, resolve_inputs(name, size, batch)) for name in model_names(args) for size in sizes
            for batch in batches]


def _human(row: dict) -> dict:
    def fmt(value, spec: str) -> str:
        return "" if value is None else format(value, spec)

    return {"model": row["model"], "input": row["input"], "batch": row["batch"],
            "median ms": fmt(row["median_ms"], ".2f"), "IQR ms": fmt(row["iqr_ms"], ".2f"),
            "min ms": fmt(row["min_ms"], ".2f"), "max ms": fmt(row["max_ms"], ".2f"),
            "GFLOPs": fmt(row["flops"] / 1e9, ".3f"), "mem access (MB)": fmt(row["model_bytes"] / 1e6, ".1f"),
            "FLOP/B": fmt(row["intensity"], ".1f"), "roofline ms": fmt(row["roofline_ms"], ".2f"),
            "mem-bound %": fmt(None if row["memory_bound_share"] is None else 100 * row["memory_bound_share"], ".0f")}


def _layer_rows(result, peaks, human: bool) -> list[dict]:
    from archstat.latency import op_estimates

    rows = []
    for op in op_estimates(result.stats, peaks, result.cache_model):
        if human:
            rows.append({"name": op.name, "kind": op.kind, "MFLOPs": f"{op.flops / 1e6:.3f}",
                         "K el.": f"{op.elements / 1e3:.1f}", "KB": f"{op.bytes / 1e3:.1f}",
                         "FLOP/B": f"{op.intensity:.1f}",
                         "roofline us": f"{op.seconds * 1e6:.1f}", "bound": op.bound})
        else:
            rows.append({"model": result.timing.model, "input": result.row()["input"], **op.row()})
    return rows


def _caption(results, peaks, cache_model: str) -> str:
    from archstat.latency.memory_model import CACHE_MODEL_TEXT

    env = results[0].timing.environment
    t = results[0].timing
    lines = [f"device {t.device} ({env['device_name']}), {env['threads']} thread(s) of {env['usable_cores']} usable "
             f"core(s), {t.dtype}{', channels_last' if t.channels_last else ''}; torch {env['torch']}, "
             f"torchvision {env['torchvision']}, Python {env['python']}, {env['os']}",
             f"median of {t.spread.n} runs after {t.warmup} warm-up runs; "
             f"memory access: {CACHE_MODEL_TEXT[cache_model]}"]
    if peaks:
        lines.append(f"roofline peaks: {peaks.describe()}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from archstat.latency import profile
    from archstat.latency.machine import check_device, contention_note

    check_device(args.device)
    cases = _cases(args)
    peaks = _peaks(args)
    warmup, repeats = run_counts(args)
    results, failures, notes = sweep(cases, "timing", lambda case: profile(
        case[0], case[1], peaks=peaks, cache_model=args.cache_model, device=args.device, threads=args.threads,
        warmup=warmup, repeats=repeats, channels_last=args.channels_last, dtype=args.dtype),
        label=lambda case: case[0])
    busy = contention_note(results[-1].timing.environment) if results else None
    warn_lines(dict.fromkeys(notes + ([busy] if busy else [])))
    if results:
        emit(args, _render(args, results, peaks))
    return report_failures(failures)


def _render(args: argparse.Namespace, results, peaks) -> str:
    human = args.format not in ("csv", "json")
    machine_layers = args.per_layer and not human and peaks
    if machine_layers:
        rows = [r for res in results for r in _layer_rows(res, peaks, human=False)]
        return tables(args, [("", rows, _NUMERIC)])
    rows = [_human(r.row()) if human else r.row() for r in results]
    parts = [(_caption(results, peaks, args.cache_model) if human else "", rows, _NUMERIC)]
    if args.per_layer and peaks:
        parts += [(f"{res.timing.model} {res.row()['input']}: ops on the roofline", _layer_rows(res, peaks, True),
                   _NUMERIC) for res in results]
    return tables(args, parts)
