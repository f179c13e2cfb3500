"""Training-step counts against torch itself, for every torchvision classification model.

For each model at batch 2 (``--batch``), its weights' smallest crop:

* **multiply-adds**: archstat's forward + backward multiply-adds (``mode="train"``) against
  ``torch.utils.flop_counter.FlopCounterMode`` on a real CPU forward + backward (its FLOPs / 2),
  with the math attention kernel (FlopCounterMode counts the CPU flash kernel as 0). Two
  archstat columns: its own count, and the count under the ``torch`` convention, which
  reproduces FlopCounterMode's known bug of counting a grouped convolution's weight
  gradient ``groups`` times (pytorch#183405): that one must agree within 0.5%;
* **saved activations**: archstat's ``saved_bytes`` against the unique storage bytes
  ``torch.autograd.graph.saved_tensors_hooks`` sees on a real CPU forward in training mode,
  parameters and buffers excluded: within 2%.

With ``--peak``, the measured peak memory of a real training step (``archstat.training.measure``)
beside the estimate, for the models and batch sizes given, in a second CSV. Every model runs
in a fresh process (the real passes of the largest models hold several GB).

    python benchmarks/training_agreement.py [--models GLOB] [--out benchmarks/results/training_agreement.csv]
    python benchmarks/training_agreement.py --peak --models 'resnet18,resnet50,...' --batches 4,16 \\
        --out benchmarks/results/training_peak.csv
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import multiprocessing
import sys
import time
import warnings
from pathlib import Path

import torch

import archstat
from archstat.counting.inputs import SEED
from archstat.models import create_model, input_spec, torchvision_models
from archstat.reports.writers import write_csv
from archstat.training.measure import _saved_in_forward, _scalar, measure_step

MADDS_TOLERANCE = 0.005
SAVED_TOLERANCE = 0.02
PEAK_TARGET = 0.10


def torch_madds(name: str, shape: tuple[int, ...]) -> float:
    """FlopCounterMode's FLOPs / 2 of a real CPU forward + backward in training mode."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = create_model(name).train()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(SEED))
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        _scalar(model(x)).backward()
    return counter.get_total_flops() / 2


def measured_saved(name: str, shape: tuple[int, ...]) -> int:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = create_model(name).train()
    return _saved_in_forward(model, (torch.rand(shape),), {})[1]


def agreement_row(name: str, batch: int) -> dict:
    shape = input_spec(name).shapes(batch)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        own = archstat.count(name, shape, mode="train")
        as_torch = archstat.count(name, shape, mode="train", convention="torch")
    seconds = time.perf_counter() - start
    reference = torch_madds(name, shape)
    saved = measured_saved(name, shape)
    gc.collect()
    total = own.madds + own.backward_madds
    torch_total = as_torch.madds + as_torch.backward_madds
    return {
        "model": name, "input": archstat.counting.stats.format_shape(shape), "forward_madds": own.madds,
        "backward_madds": own.backward_madds, "archstat_total": total, "archstat_torch_convention": torch_total,
        "flopcountermode_total": int(reference), "delta_own": round((total - reference) / reference, 6),
        "delta_torch_convention": round((torch_total - reference) / reference, 6),
        "madds_within_0.5pct": abs(torch_total - reference) <= MADDS_TOLERANCE * reference,
        "saved_bytes": own.saved_bytes, "measured_saved_bytes": saved,
        "saved_delta": round((own.saved_bytes - saved) / saved, 6) if saved else 0.0,
        "saved_within_2pct": abs(own.saved_bytes - saved) <= SAVED_TOLERANCE * saved,
        "count_seconds": round(seconds, 3),
    }


def peak_row(name: str, batch: int, optimizer: str) -> dict:
    shape = input_spec(name).shapes(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimate = archstat.count(name, shape, mode="train", optimizer=optimizer)
        measured = measure_step(name, shape, optimizer=optimizer)
    gc.collect()
    mem = estimate.memory
    ratio = mem.peak_train_bytes / measured.peak_bytes
    return {"model": name, "batch": batch, "optimizer": optimizer, "estimated_peak_bytes": mem.peak_train_bytes,
            "measured_peak_bytes": measured.peak_bytes, "ratio": round(ratio, 4),
            "within_10pct": abs(ratio - 1) <= PEAK_TARGET, "estimated_phase": mem.peak_phase,
            "params_bytes": mem.params_bytes, "grads_bytes": mem.grads_bytes, "state_bytes": mem.state_bytes,
            "saved_bytes": mem.saved_bytes, "measured_saved_bytes": measured.saved_bytes,
            "measured_baseline_bytes": measured.baseline_bytes, "method": measured.method}


def _isolated(task: tuple) -> dict:
    """One row, computed in a worker process (see :func:`main`)."""
    kind, *rest = task
    return peak_row(*rest) if kind == "peak" else agreement_row(*rest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--models", default="*", help="glob (or comma-separated names) over classification models")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--peak", action="store_true", help="measure peak memory of real steps instead")
    parser.add_argument("--batches", default="4,16", help="with --peak: batch sizes")
    parser.add_argument("--optimizer", default="sgd_momentum")
    args = parser.parse_args(argv)
    patterns = [p.strip() for p in args.models.split(",") if p.strip()]
    names = [n for n in torchvision_models("classification") if any(fnmatch.fnmatch(n, p) for p in patterns)]

    if args.peak:
        tasks = [("peak", name, int(b), args.optimizer) for name in names for b in args.batches.split(",")]
    else:
        tasks = [("agreement", name, args.batch) for name in names]
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        results = pool.imap(_isolated, tasks)
        rows = []
        for r in results:
            rows.append(r)
            _print(args.peak, r)
    if args.peak:
        out = Path(args.out or "benchmarks/results/training_peak.csv")
        ok = sum(r["within_10pct"] for r in rows)
        print(f"{ok}/{len(rows)} within 10%; ratio {min(r['ratio'] for r in rows):.3f} .. "
              f"{max(r['ratio'] for r in rows):.3f}")
    else:
        out = Path(args.out or "benchmarks/results/training_agreement.csv")
        ok = sum(r["madds_within_0.5pct"] for r in rows)
        saved_ok = sum(r["saved_within_2pct"] for r in rows)
        print(f"{ok}/{len(rows)} within 0.5% of FlopCounterMode; {saved_ok}/{len(rows)} saved bytes within 2%")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, rows)
    return 0


def _print(peak: bool, r: dict) -> None:
    if peak:
        print(f"{r['model']:22s} batch {r['batch']:3d}  estimated {r['estimated_peak_bytes'] / 1e6:9.1f} MB  "
              f"measured {r['measured_peak_bytes'] / 1e6:9.1f} MB  ratio {r['ratio']:.3f}", flush=True)
    else:
        print(f"{r['model']:22s} fwd+bwd {r['archstat_total'] / 1e9:8.3f} G (torch convention "
              f"{r['archstat_torch_convention'] / 1e9:8.3f}) vs FlopCounterMode {r['flopcountermode_total'] / 1e9:8.3f}"
              f" ({100 * r['delta_torch_convention']:+.2f}%)  saved {r['saved_bytes'] / 1e6:8.2f} MB vs "
              f"{r['measured_saved_bytes'] / 1e6:8.2f} ({100 * r['saved_delta']:+.2f}%)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
