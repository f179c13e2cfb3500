"""How much of the counting pass is the model's own Python: the pass against a replay of it.

For each model, on a shadow copy with meta stand-ins (what ``archstat.count(model)`` counts):

* ``pass_ms``: the counting pass (:class:`archstat.counting.counter.OpCounter` over the copy),
  as ``bench_count.py``'s ``archstat-pass`` measures it;
* ``floor_ms``: the same forward replayed on a second copy with every handled module
  (``nn.Conv2d``, ``nn.BatchNorm2d`` ...: a module the counter answers for in one call) returning
  the output it gave once, and every torch call the counter would intercept returning the result
  it gave once, in order, through a :class:`~torch.overrides.TorchFunctionMode` that does nothing
  else. What is left is what no counter can avoid: the model's own Python (containers, residual
  blocks, the functional code of unhandled modules), ``nn.Module``'s call dispatch and torch's
  dispatch to a mode;
* ``floor_share``: ``floor_ms / pass_ms``. The rest of the pass is archstat's own work per op.

Both are the best of ``--repeats`` calls with the cyclic collector paused, interleaved, in one
process per model (thread CPU time, so another process on the shared machine does not count).

    python benchmarks/bench_pass_floor.py [--models resnet50,swin_t] [--out benchmarks/results/bench_pass_floor.csv]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

DEFAULT_MODELS = ("resnet18", "resnet50", "mobilenet_v2", "efficientnet_b0", "densenet121", "shufflenet_v2_x1_0",
                  "convnext_tiny", "swin_t", "vit_b_16", "regnet_y_128gf")
COLUMNS = ("model", "records", "handled_modules", "intercepted_calls", "pass_ms", "floor_ms", "floor_share", "error")


def _best(step: Callable[[], Any], repeats: int) -> float:
    gc.disable()
    try:
        times = []
        for _ in range(repeats):
            start = time.thread_time()
            step()
            times.append(time.thread_time() - start)
        return min(times)
    finally:
        gc.enable()


def worker(name: str, repeats: int) -> dict:
    """Runs in the child process: one model's pass and its replay."""
    warnings.simplefilter("ignore")
    import torch
    from torch.overrides import TorchFunctionMode

    import archstat
    from archstat.counting.counter import OpCounter
    from archstat.counting.handlers import handler_for_module
    from archstat.counting.shadow import shadow_copy
    from archstat.models import default_input_size

    model = archstat.create_model(name).eval()
    x = torch.empty((1, *default_input_size(name)), device="meta")
    shadow, names = shadow_copy(model)

    def counting_pass() -> OpCounter:
        counter = OpCounter(shadow, names)
        counter.run(lambda: shadow(x), [x])
        return counter

    records = len(counting_pass().records)

    replayed, _ = shadow_copy(model)
    handled = [m for m in replayed.modules() if handler_for_module(m) is not None]
    outputs: dict[int, Any] = {}
    hooks = [m.register_forward_hook(lambda m, args, out: outputs.__setitem__(id(m), out)) for m in handled]
    with torch.no_grad():
        replayed(x)
    for hook in hooks:
        hook.remove()
    handled = [m for m in handled if id(m) in outputs]  # MHA's out_proj is read, never called
    for m in handled:  # an instance forward, as the counter's wrappers are
        m.forward = (lambda out: lambda *args, **kwargs: out)(outputs[id(m)])

    results: list[Any] = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            out = func(*args, **(kwargs or {}))
            results.append(out)
            return out

    class Replay(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.next = iter(results)

        def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            return next(self.next)

    with torch.no_grad(), Record():
        replayed(x)

    def replay() -> None:
        with torch.no_grad(), Replay():
            replayed(x)

    counting_pass(), replay()  # warm
    pass_s, floor_s = float("inf"), float("inf")
    for _ in range(3):  # interleaved, so a burst of load hits both
        pass_s = min(pass_s, _best(counting_pass, repeats))
        floor_s = min(floor_s, _best(replay, repeats))
    return {"model": name, "records": records, "handled_modules": len(handled), "intercepted_calls": len(results),
            "pass_ms": round(pass_s * 1e3, 3), "floor_ms": round(floor_s * 1e3, 3),
            "floor_share": round(floor_s / pass_s, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the counting pass against a replay of the model's own Python")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/bench_pass_floor.csv")
    parser.add_argument("--worker", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.repeats)))
        return 0

    from archstat.reports.writers import write_csv

    rows = []
    for name in args.models.split(","):
        proc = subprocess.run([sys.executable, __file__, "--worker", name, "--repeats", str(args.repeats)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            rows.append({"model": name, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]})
        else:
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        row = rows[-1]
        print(f"{name:20s} " + (f"pass {row['pass_ms']:7.2f} ms  floor {row['floor_ms']:6.2f} ms  "
                                f"share {row['floor_share']:.1%}" if "pass_ms" in row else f"ERROR {row['error']}"),
              flush=True)
    out = Path(args.out)
    write_csv(out, rows, COLUMNS)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
