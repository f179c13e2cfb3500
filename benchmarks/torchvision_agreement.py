"""archstat against torchvision's published weight metadata, for every model of every task.

For each (model, weights) pair of ``torchvision.models.get_model_weights``, in every task
module (classification, quantization, segmentation, detection, video, optical flow), the
model is counted by name (the network the weights describe, random weights, nothing
downloaded) at the input the weights were published at (the weights' crop, 16-frame
clips, 520 x 520 segmentation, the detector's resize, two 512 x 512 frames for RAFT):

* params must equal ``meta["num_params"]`` exactly;
* nothing may be left uncounted, and with ``check_shapes=True`` every op's output shape
  must match torch's own;
* madds must be within 0.5% of ``meta["_ops"]`` (torchvision's "GFLOPS" are multiply-adds;
  ``archstat/data/NOTES.md``, convention 3), or round to the printed figure where its three
  decimals are coarser than 0.5% (0.057, 0.040), for every *deterministic* model: one
  counted on the meta device, whose count therefore cannot depend on tensor values.
  Detectors read values (NMS keeps a number of boxes that depends on the weights and the
  image): they are counted on the CPU with random weights and inputs from a fixed seed,
  and their madds are reported beside torchvision's, not judged.

Writes a CSV; exit status 1 if a deterministic model disagrees or anything is uncounted.

    python benchmarks/torchvision_agreement.py [--out benchmarks/results/torchvision_agreement.csv] [--models GLOB]
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
import warnings
from pathlib import Path

from torchvision.models import get_model_weights

import archstat
from archstat.errors import FormulaMismatchWarning
from archstat.models import input_spec, torchvision_models, torchvision_task
from archstat.published import agrees_with_printed
from archstat.reports.writers import write_csv

TOLERANCE = 0.005  # relative, on madds


def weight_cases(pattern: str = "*") -> list[tuple[str, str, tuple[int, ...] | None, int, float]]:
    """(model, weights, the weights' crop or None, num_params, _ops in G) for every published weight."""
    cases = []
    for name in torchvision_models():
        if not fnmatch.fnmatch(name, pattern):
            continue
        for w in get_model_weights(name):
            crop = getattr(w.transforms(), "crop_size", None)
            cases.append((name, w.name, tuple(crop) if crop else None, w.meta["num_params"], w.meta["_ops"]))
    return cases


def check(name: str, weights: str, crop: tuple[int, ...] | None, num_params: int, ops: float) -> dict:
    """One weight entry counted by name at the weights' crop (ViTs with SWAG weights built for their image size)."""
    spec = input_spec(name)
    h, w = (crop[0], crop[-1]) if crop else spec.size[-2:]
    kwargs = {"image_size": h} if name.startswith("vit_") and h != 224 else None
    shape = spec.shapes(1, (*spec.size[:-2], h, w))
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = archstat.count(name, shape, model_kwargs=kwargs, check_shapes=True)
    seconds = time.perf_counter() - start
    madds_g = stats.madds / 1e9
    deterministic = stats.device == "meta"
    mismatches = sum(issubclass(w.category, FormulaMismatchWarning) for w in caught)
    return {
        "task": torchvision_task(name), "model": name, "weights": weights,
        "input": archstat.counting.stats.format_shape(stats.input_shape), "params": stats.params,
        "torchvision_num_params": num_params, "params_equal": stats.params == num_params,
        "madds": stats.madds, "torchvision_ops_g": ops, "madds_rel_delta": round((madds_g - ops) / ops, 6),
        "deterministic": deterministic,
        "madds_within_tolerance": agrees_with_printed(madds_g, repr(ops), TOLERANCE),
        "uncounted_ops": len(stats.uncounted), "shape_mismatches": mismatches, "device": stats.device,
        "seconds": round(seconds, 3),
    }


def agree(row: dict) -> bool:
    """Params exact, nothing uncounted, no shape mismatch, and (deterministic models) madds within tolerance."""
    return row["params_equal"] and not row["shape_mismatches"] and not row["uncounted_ops"] \
        and (row["madds_within_tolerance"] or not row["deterministic"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/torchvision_agreement.csv")
    parser.add_argument("--models", default="*", help="glob over model names")
    args = parser.parse_args(argv)

    rows = []
    for case in weight_cases(args.models):
        r = check(*case)
        rows.append(r)
        flag = "" if agree(r) else "  <-- MISMATCH"
        note = "" if r["deterministic"] else "  (value-dependent: counted on the CPU, seed 0)"
        print(f"{r['task']:14s} {r['model']:34s} {r['weights']:26s} params {r['params']:>11,} vs "
              f"{r['torchvision_num_params']:>11,}  madds {r['madds'] / 1e9:9.3f} G vs {r['torchvision_ops_g']:9.3f} "
              f"({100 * r['madds_rel_delta']:+.2f}%)  {r['seconds']:.2f}s{note}{flag}", flush=True)
    ok = sum(agree(r) for r in rows)
    deterministic = [r for r in rows if r["deterministic"]]
    print(f"{ok}/{len(rows)} weight entries agree ({len({r['model'] for r in rows})} models); "
          f"{sum(r['madds_within_tolerance'] for r in deterministic)}/{len(deterministic)} deterministic entries "
          f"within tolerance on madds; {sum(r['params_equal'] for r in rows)}/{len(rows)} params exact; "
          f"{sum(r['uncounted_ops'] > 0 for r in rows)} with uncounted ops")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(out, rows)
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
