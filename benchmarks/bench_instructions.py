"""Instructions per counting step, counted by valgrind's callgrind: a cost that machine load does not move.

Wall-clock timings on this shared machine vary by up to 2x between runs (README, Benchmarks), so a
change of a few percent in archstat's own work is invisible in them. callgrind counts the instructions
the process executes, whatever else runs beside it: with string hashing fixed (``PYTHONHASHSEED=0``),
runs of the same step on the same model gave counts within 0.2% of each other (addresses still vary,
and with them the probing of dicts keyed by ``id``), and two versions of the code can be compared side
by side. It counts instructions, not cache misses or stalls: it ranks changes to Python code, where
nearly all of the cost is the interpreter's instructions; it is not a latency.

For each model and step, one child process builds the model (as ``bench_count.py`` does), warms the
step up, then runs it ``--calls`` times inside ``ascii(_Region())``. callgrind collects only while
CPython's ``builtin_ascii`` runs (``--toggle-collect``), which nothing else in a count calls, so
imports, building and warm-up are left out. The steps:

* ``pass``: the counting pass, :class:`archstat.counting.counter.OpCounter` over a shadow copy made
  beforehand (``bench_count.py``'s ``archstat-pass``);
* ``shadow``: :func:`archstat.counting.shadow.shadow_copy` of the model built on the CPU;
* ``count``: ``archstat.count(model)`` on that model (``bench_count.py``'s ``archstat-module``).

``minstr_per_call`` is millions of instructions per call, ``kinstr_per_op`` thousands per recorded op.

    python benchmarks/bench_instructions.py [--models shufflenet_v2_x1_0,mobilenet_v2] [--steps pass,count]
        [--out benchmarks/results/bench_instructions.csv]

Needs valgrind on the PATH. One (model, step) takes 1-3 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from typing import Any, Callable

DEFAULT_MODELS = ("shufflenet_v2_x1_0", "mobilenet_v2", "efficientnet_b0", "densenet121")
STEPS = ("pass", "shadow", "count")
COLUMNS = ("model", "step", "records", "calls", "minstr_per_call", "kinstr_per_op", "error")


def worker(name: str, step: str, calls: int) -> dict:
    """Runs in the child process, under callgrind: build, warm up, then the measured calls."""
    warnings.simplefilter("ignore")
    import gc

    import torch
    import torchvision  # noqa: F401  (imported before the measured region, as bench_count.py does)

    import archstat
    from archstat.counting.counter import OpCounter
    from archstat.counting.shadow import shadow_copy
    from archstat.models import default_input_size

    torch.set_num_threads(1)
    shape = (1, *default_input_size(name))
    model = archstat.create_model(name).eval()
    shadow, names = shadow_copy(model)
    x = torch.empty(shape, device="meta")

    def counting_pass() -> OpCounter:
        counter = OpCounter(shadow, names)
        counter.run(lambda: shadow(x), [x])
        return counter

    steps: dict[str, Callable[[], Any]] = {"pass": counting_pass, "shadow": lambda: shadow_copy(model),
                                           "count": lambda: archstat.count(model, shape)}
    records = len(counting_pass().records)
    run = steps[step]
    for _ in range(2):
        run()

    class _Region:
        """What ``ascii()`` runs: the measured calls (see the module docstring)."""

        def __repr__(self) -> str:
            for _ in range(calls):
                run()
            return ""

    gc.disable()  # as count() runs its pass: a collection is no step's own work
    ascii(_Region())
    gc.enable()
    return {"model": name, "step": step, "records": records, "calls": calls}


def _instructions(out_file: str) -> int:
    with open(out_file) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise ValueError(f"{out_file}: no instruction total")


def measure(name: str, step: str, calls: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out_file = os.path.join(tmp, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=builtin_ascii",
                   f"--callgrind-out-file={out_file}", sys.executable, __file__, "--worker", name, step,
                   "--calls", str(calls)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # string hashes, and with them dict probing, fixed
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["?"])[-1]
            return {"model": name, "step": step, "error": last}
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        per_call = _instructions(out_file) / calls
    row["minstr_per_call"] = round(per_call / 1e6, 3)
    row["kinstr_per_op"] = round(per_call / row["records"] / 1e3, 1)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="instructions per counting step, counted by callgrind")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--calls", type=int, default=3, help="measured calls per process (their mean is kept)")
    parser.add_argument("--out", default="benchmarks/results/bench_instructions.csv")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "STEP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.calls)))
        return 0
    if shutil.which("valgrind") is None:
        print("bench_instructions: valgrind is not on the PATH", file=sys.stderr)
        return 2

    from archstat.reports.writers import write_csv

    rows = []
    for name in args.models.split(","):
        for step in args.steps.split(","):
            row = measure(name, step, args.calls)
            rows.append(row)
            shown = (f"{row['minstr_per_call']:9.3f} M instructions per call  {row['kinstr_per_op']:6.1f} k per op"
                     if "error" not in row else f"ERROR {row['error']}")
            print(f"{name:20s} {step:7s} {shown}", flush=True)
    write_csv(args.out, rows, list(COLUMNS))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
