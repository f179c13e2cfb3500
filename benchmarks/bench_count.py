"""Counting time and peak memory: archstat vs fvcore vs thop, per model, in one run.

Every (tool, model) pair runs in a fresh Python process, so each peak RSS is that tool's
own (``ru_maxrss``, imports included) and no tool profits from another's warm caches.
The tools are used as their documentation says:

* ``archstat``: ``archstat.count(name)``: builds the model on the meta device and counts it
  there (the time includes building);
* ``archstat-module``: ``archstat.count(model)`` on a model already built on the CPU with
  random weights (meta stand-ins through ``functional_call``);
* ``fvcore``: ``FlopCountAnalysis(model, x).total()`` on the CPU model (a JIT trace);
* ``thop``: ``thop.profile(model, (x,))`` on the CPU model (hooks around a real forward).

``count_s`` is the best of ``--repeats`` calls of the counting step (warm); ``first_s``
is the first call (cold: kernel selection, caches); ``build_s`` is the CPU construction
(random initialisation) the other tools need before they can count. Two speed-ups per
model, each against the faster of fvcore and thop:

* ``speedup_warm``: ``count_s`` against ``count_s``;
* ``speedup_from_name``: from a model name to its numbers in a fresh process, archstat's
  ``first_s`` against ``build_s + first_s``.

    python benchmarks/bench_count.py [--models resnet50,regnet_y_128gf] [--out benchmarks/results/bench_count.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

DEFAULT_MODELS = ("resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "shufflenet_v2_x1_0",
                  "convnext_tiny", "swin_t", "vit_b_16", "regnet_y_128gf")
TOOLS = ("archstat", "archstat-module", "fvcore", "thop")


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

    times, total = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        total = step()
        times.append(time.perf_counter() - start)
        if times[0] > 20:  # one slow call is measurement enough
            break
    return {"tool": tool, "model": name, "input": "x".join(map(str, shape)), "threads": torch.get_num_threads(),
            "count_s": round(min(times), 4),
            "first_s": round(times[0], 4), "runs": len(times), "build_s": round(build_s, 3),
            "peak_rss_mb": round(_peak_rss_mb(), 1), "total": total}


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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch intra-op threads in every process (default: torch's)")
    parser.add_argument("--out", default="benchmarks/results/bench_count.csv")
    parser.add_argument("--worker", nargs=2, metavar=("TOOL", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.repeats, args.threads)))
        return 0

    from archstat.reports.writers import write_atomic

    rows = []
    for name in args.models.split(","):
        results = {tool: measure(tool, name, args.repeats, args.threads) for tool in args.tools.split(",")}
        others = [results[t] for t in ("fvcore", "thop") if "count_s" in results.get(t, {})]
        for tool, row in results.items():
            if "count_s" in row and others and tool.startswith("archstat"):
                row["speedup_warm"] = round(min(o["count_s"] for o in others) / row["count_s"], 1)
                row["speedup_from_name"] = round(min(o["build_s"] + o["first_s"] for o in others) / row["first_s"], 1)
            rows.append(row)
            shown = (f"{row['count_s']:8.3f} s  first {row['first_s']:7.3f} s  build {row['build_s']:6.2f} s  "
                     f"peak {row['peak_rss_mb']:6.0f} MB  total {row['total']:>16,}"
                     if "count_s" in row else f"ERROR {row['error']}")
            speedup = (f"  warm x{row['speedup_warm']}  from name x{row['speedup_from_name']}"
                       if "speedup_warm" in row else "")
            print(f"{name:20s} {tool:16s} {shown}{speedup}", flush=True)
    columns = ["model", "tool", "input", "threads", "count_s", "first_s", "runs", "build_s", "peak_rss_mb", "total",
               "speedup_warm", "speedup_from_name", "error"]
    out = Path(args.out)
    with write_atomic(out) as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
