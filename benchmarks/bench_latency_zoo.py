"""Measured latency across the zoo against FLOPs, memory access (MAC) and the roofline estimate.

ShuffleNet V2's lesson (Ma et al., arXiv:1807.11164, Sec. 1-2) is that FLOPs are an
indirect metric of speed. This benchmark asks how well each indirect metric *ranks*
the models by their measured latency on this machine: Spearman's rank correlation
between the median latency and

* FLOPs, multiply-adds and params (the usual proxies),
* memory access in bytes, under the lower-bound and the fused cache models,
* the roofline estimate ``sum over ops of max(FLOPs/peak, bytes/bandwidth)`` under
  both cache models, with peaks from a short calibration of this machine.

Models: by default every zoo and torchvision classification model whose
multiply-adds at the chosen input are at most ``--max-gmacs`` (the list is taken
from the registry and torchvision at run time); ``--models`` takes names and globs
instead. The first model is run once untimed before the sweep (burn-in). The machine
may be shared: every timing records the other running processes and the load
average, models timed under contention are re-timed at the end (``--retries``
passes, keeping the quieter measurement), and the peaks are the better of a calibration before and one
after the sweep. Writes (atomically):

    benchmarks/results/latency_zoo.csv           one row per model
    benchmarks/results/latency_zoo_spearman.csv  one row per predictor
    benchmarks/results/latency_zoo.png / .pdf    scatter plots, log-log

    python benchmarks/bench_latency_zoo.py [--models 'resnet*,mobilenet*'] [--size 224x224]
        [--max-gmacs 4.5] [--threads N] [--warmup 3] [--repeats 10] [--retries 2] [--out-dir benchmarks/results]
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import warnings
from dataclasses import replace
from pathlib import Path

import archstat
from archstat.latency import LatencyResult, Peaks, calibrate, model_estimate, profile, spearman
from archstat.latency.machine import contention_note
from archstat.latency.results import RESULT_COLUMNS
from archstat.reports.writers import write_atomic, write_csv

#: Predictors ranked against the measured median latency: column -> description.
PREDICTORS = {
    "flops": "FLOPs (2 per multiply-add + element-wise)",
    "madds": "multiply-adds (the papers' 'FLOPs')",
    "params": "parameters",
    "mem_access_bytes": "memory access, lower bound (every tensor once per op)",
    "fused_bytes": "memory access, fused (BN folded, activations free)",
    "roofline_ms": "roofline estimate, lower-bound memory access",
    "fused_roofline_ms": "roofline estimate, fused memory access",
}
EXTRA_COLUMNS = ("fused_bytes", "fused_roofline_ms", "measured_over_roofline")


def default_models(shape: tuple[int, ...], max_gmacs: float) -> list[str]:
    """Zoo and torchvision classification models with at most ``max_gmacs`` multiply-adds at ``shape``."""
    chosen = []
    for name in archstat.available_models():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stats = archstat.count(name, shape)
        except archstat.ArchstatError as exc:
            print(f"skip {name}: {exc}", file=sys.stderr)
            continue
        if stats.madds <= max_gmacs * 1e9:
            chosen.append(name)
    return chosen


def measure_one(name: str, shape: tuple[int, ...], args: argparse.Namespace) -> LatencyResult:
    """Count and time one model (the roofline is added at the end, with the final peaks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return profile(name, shape, threads=args.threads, warmup=args.warmup, repeats=args.repeats)


def make_row(result: LatencyResult, peaks: Peaks) -> dict:
    """The CSV row: the result with both roofline estimates under ``peaks``."""
    lower = model_estimate(result.stats, peaks, "lower-bound")
    fused = model_estimate(result.stats, peaks, "fused")
    row = replace(result, estimate=lower, peaks=peaks).row()
    row.update(fused_bytes=fused.bytes, fused_roofline_ms=round(fused.seconds * 1e3, 4),
               measured_over_roofline=round(row["median_ms"] / row["roofline_ms"], 3))
    return row


def busy(result: LatencyResult) -> bool:
    """Was this model timed while other processes competed for the CPU (see ``contention_note``)?"""
    return contention_note(result.timing.environment) is not None


def load_of(result: LatencyResult) -> tuple[float, float]:
    """(other running processes, 1-minute load) during the timing: lower is quieter."""
    env = result.timing.environment
    return (env["other_busy"] or 0, env["load_avg_1m"] or 0.0)


def correlations(rows: list[dict]) -> list[dict]:
    latency = [r["median_ms"] for r in rows]
    return [{"predictor": key, "spearman_rho": round(spearman([r[key] for r in rows], latency), 4), "n": len(rows),
             "description": text} for key, text in PREDICTORS.items()]


def plot(rows: list[dict], rhos: list[dict], stem: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rho = {r["predictor"]: r["spearman_rho"] for r in rhos}
    panels = [("flops", "GFLOPs", 1e-9), ("mem_access_bytes", "memory access, lower bound (MB)", 1e-6),
              ("roofline_ms", "roofline estimate, lower bound (ms)", 1.0), ("params", "params (M)", 1e-6),
              ("fused_bytes", "memory access, fused (MB)", 1e-6),
              ("fused_roofline_ms", "roofline estimate, fused (ms)", 1.0)]
    fig = Figure(figsize=(15, 9), layout="constrained")
    FigureCanvasAgg(fig)
    latency = [r["median_ms"] for r in rows]
    for i, (key, label, scale) in enumerate(panels):
        ax = fig.add_subplot(2, 3, i + 1)
        ax.scatter([r[key] * scale for r in rows], latency, s=14)
        for r in rows:
            ax.annotate(r["model"], (r[key] * scale, r["median_ms"]), fontsize=5, alpha=0.7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("measured median latency (ms)")
        ax.set_title(f"Spearman rho = {rho[key]:.3f}", fontsize=10)
    fig.suptitle(textwrap.fill(title, 200), fontsize=9)
    for ext in ("png", "pdf"):
        with write_atomic(f"{stem}.{ext}", "wb") as fh:
            fig.savefig(fh, format=ext, dpi=150)


def write(rows: list[dict], out_dir: Path, title: str) -> list[dict]:
    columns = (*RESULT_COLUMNS, *EXTRA_COLUMNS)
    write_csv(out_dir / "latency_zoo.csv", rows, columns)
    rhos = correlations(rows)
    write_csv(out_dir / "latency_zoo_spearman.csv", rhos)
    if len(rows) >= 3:
        plot(rows, rhos, out_dir / "latency_zoo", title)
    return rhos


def sweep(names: list[str], shape: tuple[int, ...], args: argparse.Namespace) -> dict[str, LatencyResult]:
    """Time every model, then re-time (up to ``--retries`` passes) those timed under load, keeping the
    measurement taken under the lower load."""
    results: dict[str, LatencyResult] = {}
    todo = list(names)
    for attempt in range(args.retries + 1):
        for i, name in enumerate(todo, 1):
            try:
                result = measure_one(name, shape, args)
            except archstat.ArchstatError as exc:
                print(f"[{i}/{len(todo)}] {name}: error: {exc}", file=sys.stderr)
                continue
            old = results.get(name)
            if old is None or load_of(result) < load_of(old):
                results[name] = result
            t = results[name].timing
            print(f"[{i}/{len(todo)}] {name}: {t.median_ms:.2f} ms (IQR {t.spread.iqr:.2f}), other busy "
                  f"{t.environment['other_busy']}, load {t.environment['load_avg_1m']}", file=sys.stderr, flush=True)
        todo = [n for n in names if n in results and busy(results[n])]
        if not todo or attempt == args.retries:
            break
        print(f"re-timing {len(todo)} model(s) measured under load (pass {attempt + 2})", file=sys.stderr)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="names/globs (default: zoo + torchvision under --max-gmacs)")
    parser.add_argument("--size", default="224x224", help="input HxW for every model (default 224x224)")
    parser.add_argument("--max-gmacs", type=float, default=4.5, help="default set: at most this many G multiply-adds")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: torch's setting)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--retries", type=int, default=2, help="passes re-timing models timed under load")
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()

    shape = archstat.parse_input_size(args.size)
    names = archstat.resolve_names(args.models) if args.models else default_models(shape, args.max_gmacs)
    first = calibrate(threads=args.threads)
    measure_one(names[0], shape, args)  # burn-in: first-run costs (allocator, oneDNN) land here, unused
    results = sweep(names, shape, args)
    if not results:
        return 1
    last = calibrate(threads=args.threads)
    # A peak is the best the device reached: keep the better of the two calibrations (one may be under load).
    peaks = Peaks(max(first.flops_per_s, last.flops_per_s), max(first.bytes_per_s, last.bytes_per_s),
                  f"best of two calibrations ({first.source})")
    rows = [make_row(results[n], peaks) for n in names if n in results]
    env = rows[0]
    loaded = sum(busy(results[n]) for n in results)
    title = (f"{len(rows)} models at {args.size}, batch 1, {env['device_name']}, {env['threads']} thread(s), "
             f"torch {env['torch']}; peaks {peaks.describe()}; {loaded} model(s) still timed under load")
    print(title, file=sys.stderr)
    for r in write(rows, Path(args.out_dir), title):
        print(f"{r['predictor']:>18}: rho = {r['spearman_rho']:+.3f}  ({r['description']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
