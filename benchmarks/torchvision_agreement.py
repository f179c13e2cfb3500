"""archstat against torchvision's published weight metadata, for every classification model.

For each (model, weights) pair in ``torchvision.models.get_model_weights``: params must
equal ``meta["num_params"]`` exactly and madds must be within 0.5% of ``meta["_ops"]``
(GFLOPS in torchvision's docs, but multiply-adds of conv/linear/matmul; see
``archstat/data/NOTES.md``, convention 3), at the weights' crop size, or round to the
printed figure where its three decimals are coarser than 0.5% (0.057, 0.040). Counting
runs with ``check_shapes=True``, so every op's output shape is also checked against
torch's meta kernels (``shape_mismatches`` must be 0). Writes a CSV.

    python benchmarks/torchvision_agreement.py [--out benchmarks/results/torchvision_agreement.csv]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from pathlib import Path

import torchvision
from torchvision.models import get_model_weights, list_models

import archstat
from archstat.errors import FormulaMismatchWarning
from archstat.published import agrees_with_printed
from archstat.reports.writers import write_atomic

TOLERANCE = 0.005  # relative, on madds


def weight_cases() -> list[tuple[str, str, int, int, float]]:
    """(model, weights, crop, num_params, _ops in G) for every published weight."""
    cases = []
    for name in sorted(list_models(module=torchvision.models)):
        for w in get_model_weights(name):
            crop = w.transforms().crop_size[0]
            cases.append((name, w.name, crop, w.meta["num_params"], w.meta["_ops"]))
    return cases


def model_kwargs(name: str, crop: int) -> dict:
    """Build the network the weights belong to: ViTs carry a position embedding per patch
    (their larger SWAG weights need image_size); torchvision drops GoogLeNet's auxiliary
    heads when it loads weights."""
    if name.startswith("vit_") and crop != 224:
        return {"image_size": crop}
    return {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}


def check(name: str, weights: str, crop: int, num_params: int, ops: float) -> dict:
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = archstat.count(name, (1, 3, crop, crop), model_kwargs=model_kwargs(name, crop), check_shapes=True)
    seconds = time.perf_counter() - start
    madds_g = stats.madds / 1e9
    rel = (madds_g - ops) / ops
    mismatches = sum(issubclass(w.category, FormulaMismatchWarning) for w in caught)
    return {
        "model": name, "weights": weights, "input": f"3x{crop}x{crop}", "params": stats.params,
        "torchvision_num_params": num_params, "params_equal": stats.params == num_params,
        "madds": stats.madds, "torchvision_ops_g": ops, "madds_rel_delta": round(rel, 6),
        "madds_within_tolerance": agrees_with_printed(madds_g, repr(ops), TOLERANCE),
        "uncounted_ops": len(stats.uncounted), "shape_mismatches": mismatches, "device": stats.device,
        "seconds": round(seconds, 3),
    }


def agree(row: dict) -> bool:
    return row["params_equal"] and row["madds_within_tolerance"] and not row["shape_mismatches"] \
        and not row["uncounted_ops"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/torchvision_agreement.csv")
    parser.add_argument("--models", default="*", help="glob over model names")
    args = parser.parse_args(argv)
    import fnmatch

    rows = [check(*case) for case in weight_cases() if fnmatch.fnmatch(case[0], args.models)]
    for r in rows:
        flag = "" if agree(r) else "  <-- MISMATCH"
        print(f"{r['model']:22s} {r['weights']:26s} params {r['params']:>11,} vs {r['torchvision_num_params']:>11,}"
              f"  madds {r['madds'] / 1e9:9.3f} G vs {r['torchvision_ops_g']:9.3f} ({100 * r['madds_rel_delta']:+.2f}%)"
              f"  {r['seconds']:.2f}s{flag}")
    ok = sum(agree(r) for r in rows)
    print(f"{ok}/{len(rows)} weight entries agree ({len({r['model'] for r in rows})} models)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with write_atomic(out) as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
