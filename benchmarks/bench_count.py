"""Counting time and peak memory: archstat vs fvcore vs thop, per model, in one run.

Every (tool, model) pair runs in a fresh Python process, so each peak RSS is that tool's
own (``ru_maxrss``, imports included) and no tool profits from another's warm caches.
The tools are used as their documentation says:

* ``archstat``: ``archstat.count(name)``: builds the model on the meta device and counts it
  there (the time includes building);
* ``archstat-module``: ``archstat.count(model)`` on a model already built on the CPU with
  random weights (the whole call: the shadow copy with meta stand-ins, the counting pass,
  the statistics);
* ``archstat-pass``: the counting pass alone (:class:`archstat.counting.counter.OpCounter`
  over a shadow copy made beforehand): what archstat spends per recorded op;
* ``fvcore``: ``FlopCountAnalysis(model, x).total()`` on the CPU model (a JIT trace);
* ``thop``: ``thop.profile(model, (x,))`` on the CPU model (hooks around a real forward).

``count_s`` is the best of ``--repeats`` calls of the counting step, in the best of
``--rounds`` fresh processes per pair, the rounds interleaved over all pairs (warm; the best, so a
cyclic garbage collection of the whole interpreter, which any of the tools may trigger, is
not one tool's time); ``first_s`` is the first call (cold: kernel selection, caches);
``build_s`` is the CPU construction (random initialisation) the other tools need before
they can count. ``records`` is the number of rows archstat counts and ``us_per_op`` its
``count_s`` per row. Two speed-ups per model, each against the faster of fvcore and thop:

* ``speedup_warm``: ``count_s`` against ``count_s`` (for ``archstat-module``, the same
  built model given to every tool: the like-for-like comparison);
* ``speedup_from_name``: from a model name to its numbers in a fresh process, archstat's
  ``first_s`` against ``build_s + first_s``.

    python benchmarks/bench_count.py [--models resnet50,regnet_y_128gf] [--out benchmarks/results/bench_count.csv]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

DEFAULT_MODELS = ("resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "shufflenet_v2_x1_0",
                  "convnext_tiny", "swin_t", "vit_b_16", "regnet_y_128gf")
TOOLS = ("archstat", "archstat-module", "archstat-pass", "fvcore", "thop")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def worker(tool: str, name: str, repeats: int, threads: int | None) -> dict:
    """Runs in the child process: build what the tool needs, time its counting call."""
    warnings.simplefilter("ignore")
    import torch
    import torchvision  # noqa: F401  (imported up front: library import time is nobody's counting time)

    import archstat
    from archstat.models import default_input_size

    if threads:
        torch.set_num_threads(threads)
    shape = (1, *default_input_size(name))
    build_s, model, x = 0.0, None, None
    if tool != "archstat":
        start = time.perf_counter()
        model = archstat.create_model(name).eval()
        x = torch.randn(shape)
        build_s = time.perf_counter() - start

    if tool == "archstat":
        def step() -> int:
            return archstat.count(name, shape).madds
    elif tool == "archstat-module":
        def step() -> int:
            return archstat.count(model, shape).madds
    elif tool == "archstat-pass":
        from archstat.counting.counter import OpCounter
        from archstat.counting.shadow import shadow_copy

        shadow, names = shadow_copy(model)
        x_meta = torch.empty(shape, device="meta")

        def step() -> int:  # with the cyclic collector paused, as count() runs its pass
            counter = OpCounter(shadow, names)
            gc.disable()
            try:
                counter.run(lambda: shadow(x_meta), [x_meta])
            finally:
                gc.enable()
            return sum(r.cost.madds for r in counter.records)
    elif tool == "fvcore":
        from fvcore.nn import FlopCountAnalysis

        def step() -> int:
            with torch.no_grad():
                analysis = FlopCountAnalysis(model, x)
                analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
                return int(analysis.total())
    else:
        import thop

        def step() -> int:
            with torch.no_grad():
                return int(thop.profile(model, inputs=(x,), verbose=False)[0])

    start = time.perf_counter()
    total = step()  # cold: imports inside the tool, kernel selection, caches
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats if first < 20 else 0):  # one slow call is measurement enough
        start = time.perf_counter()
        total = step()
        times.append(time.perf_counter() - start)
    times = times or [first]
    peak = _peak_rss_mb()
    records = len(archstat.count(name, shape).records) if tool.startswith("archstat") else None
    return {"tool": tool, "model": name, "input": "x".join(map(str, shape)), "threads": torch.get_num_threads(),
            "count_s": round(min(times), 5), "records": records,
            "us_per_op": round(min(times) / records * 1e6, 1) if records else None,
            "first_s": round(first, 4), "runs": len(times), "build_s": round(build_s, 3),
            "peak_rss_mb": round(peak, 1), "total": total}


def measure(tool: str, name: str, repeats: int, threads: int | None) -> dict:
    command = [sys.executable, __file__, "--worker", tool, name, "--repeats", str(repeats)]
    proc = subprocess.run(command + (["--threads", str(threads)] if threads else []), capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"tool": tool, "model": name, "error": last}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="archstat vs fvcore vs thop: counting time and peak RSS")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per (tool, model): the best is kept")
    parser.add_argument("--threads", type=int, help="torch intra-op threads in every process (default: torch's)")
    parser.add_argument("--out", default="benchmarks/results/bench_count.csv")
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeats, args.threads)))
        return 0

    from archstat.reports.writers import write_csv

    models, tools = args.models.split(","), args.tools.split(",")
    best: dict[tuple[str, str], dict] = {}
    for _ in range(args.rounds):  # interleaved: a burst of load on the shared machine hits one round, not one tool
        for name in models:
            for tool in tools:
                row = measure(tool, name, args.repeats, args.threads)
                kept = best.get((name, tool))
                if kept is None or "count_s" not in kept or ("count_s" in row and row["count_s"] < kept["count_s"]):
                    best[(name, tool)] = row
    rows = []
    for name in models:
        results = {tool: best[(name, tool)] for tool in tools}
        others = [results[t] for t in ("fvcore", "thop") if "count_s" in results.get(t, {})]
        for tool, row in results.items():
            if "count_s" in row and others and tool in ("archstat", "archstat-module"):
                row["speedup_warm"] = round(min(o["count_s"] for o in others) / row["count_s"], 1)
                row["speedup_from_name"] = round(min(o["build_s"] + o["first_s"] for o in others) / row["first_s"], 1)
            rows.append(row)
            per_op = f"  {row['us_per_op']:6.1f} us/op" if row.get("us_per_op") else ""
            shown = (f"{row['count_s']:8.4f} s  first {row['first_s']:7.3f} s  build {row['build_s']:6.2f} s  "
                     f"peak {row['peak_rss_mb']:6.0f} MB  total {row['total']:>16,}{per_op}"
                     if "count_s" in row else f"ERROR {row['error']}")
            speedup = (f"  warm x{row['speedup_warm']}  from name x{row['speedup_from_name']}"
                       if "speedup_warm" in row else "")
            print(f"{name:20s} {tool:16s} {shown}{speedup}", flush=True)
    columns = ["model", "tool", "input", "threads", "count_s", "first_s", "runs", "build_s", "peak_rss_mb", "total",
               "records", "us_per_op", "speedup_warm", "speedup_from_name", "error"]
    out = Path(args.out)
    write_csv(out, rows, columns)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
