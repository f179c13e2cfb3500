"""Disagreement report: archstat, fvcore, thop, FlopCounterMode and ptflops on every
torchvision classification model, with the op types that explain each gap.

For each model (random weights, its published input size, batch 1) runs
:func:`archstat.check` and writes two CSVs:

* ``crosscheck_torchvision.csv``: one row per model: archstat's multiply-adds; per tool
  its raw total, its multiply-add equivalent (FlopCounterMode's FLOPs / 2), archstat
  under the tool's convention, the number of flagged layers and what they account for,
  the layers whose difference has no known cause (unverified) and what they add up to,
  and the op types behind the gap to archstat (computed from the tools' own per-module
  counts);
* ``crosscheck_torchvision_by_type.csv``: one row per model and op type: archstat's count
  and each tool's, with the flagged part.

    python benchmarks/crosscheck_torchvision.py [--models 'resnet*'] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import archstat
from archstat.crosscheck import TOOLS, CheckReport
from archstat.crosscheck.reconcile import close
from archstat.models import torchvision_models
from archstat.reports.writers import write_csv


def gap_text(report: CheckReport, tool: str) -> str:
    """``"batch norm +22.23M (2/el); adaptive avg pool +0.10M (1/el)"``: the op types where the
    tool differs from archstat, largest first."""
    parts = []
    for row in report.by_type():
        delta = row.tools.get(tool, 0) - row.archstat
        if not close(delta, 0):
            flagged = row.flagged.get(tool, 0)
            parts.append(f"{row.op_type} {delta / 1e6:+.2f}M ({row.rate(row.tools[tool])}"
                         + (f", {flagged / 1e6:+.2f}M flagged" if flagged else "") + ")")
    return "; ".join(parts)


def flag_text(report: CheckReport, tool: str) -> str:
    """``"MultiheadAttention x12"``: the layer types the tool is wrong on."""
    kinds = Counter(f"{f.module_type or f.layer} ({f.kind})" for f in report.flags if f.tool == tool)
    return "; ".join(f"{k} x{n}" for k, n in kinds.items())


def model_row(report: CheckReport, seconds: float) -> dict:
    row = {"model": report.model, "input": "x".join(map(str, report.input_shape)), "archstat": report.stats.madds}
    for tool in TOOLS:
        result, rec = report.results.get(tool), report.reconciliations.get(tool)
        if result is None:
            row.update({f"{tool}_raw": "", f"{tool}": "", f"{tool}_convention": "", f"{tool}_flagged_layers": "",
                        f"{tool}_flagged": "", f"{tool}_unverified_layers": "", f"{tool}_unverified": "",
                        f"{tool}_gap": report.missing.get(tool) or f"failed: {report.failed.get(tool, '')}",
                        f"{tool}_flags": ""})
            continue
        flagged = sum(rec.flagged.values())
        row.update({f"{tool}_raw": round(result.raw_total), tool: round(result.total),
                    f"{tool}_convention": rec.convention_total, f"{tool}_flagged_layers": len(rec.flags),
                    f"{tool}_flagged": round(flagged), f"{tool}_unverified_layers": len(rec.unverified),
                    f"{tool}_unverified": round(result.total - rec.convention_total - flagged),
                    f"{tool}_gap": gap_text(report, tool), f"{tool}_flags": flag_text(report, tool)})
    row.update(uncounted_ops=len(report.stats.uncounted), seconds=round(seconds, 2))
    return row


def type_rows(report: CheckReport) -> list[dict]:
    rows = []
    for r in report.by_type():
        row = {"model": report.model, "op_type": r.op_type, "ops": r.ops, "elements": r.elements,
               "archstat": r.archstat}
        for tool in TOOLS:
            row[tool] = round(r.tools[tool]) if tool in r.tools else ""
            row[f"{tool}_flagged"] = round(r.flagged.get(tool, 0)) if tool in r.tools else ""
        rows.append(row)
    return rows


def headline(rows: list[dict]) -> list[str]:
    """Per tool: models it agrees with its own convention on, models with flagged layers, and
    the largest gap to archstat."""
    lines = [f"{len(rows)} models"]
    for tool in TOOLS:
        ran = [r for r in rows if r[tool] != ""]
        if not ran:
            lines.append(f"{tool}: not run")
            continue
        agree = sum(abs(r[tool] - r[f"{tool}_convention"]) <= 1e-3 * max(r[tool], 1) for r in ran)
        flagged = [r for r in ran if r[f"{tool}_flagged_layers"]]
        unverified = [r["model"] for r in ran if r[f"{tool}_unverified_layers"]]
        worst = max(ran, key=lambda r: abs(r[tool] - r["archstat"]) / r["archstat"])
        lines.append(f"{tool}: equals archstat under its convention (0.1%) on {agree}/{len(ran)}; flagged layers on "
                     f"{len(flagged)} models ({sum(r[f'{tool}_flagged_layers'] for r in flagged)} layers); "
                     f"layers without a known cause on {len(unverified)} {unverified[:5]}; largest gap to archstat "
                     f"{100 * (worst[tool] - worst['archstat']) / worst['archstat']:+.1f}% ({worst['model']})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results", help="folder for the two CSVs")
    parser.add_argument("--models", default="*", help="glob over torchvision model names")
    args = parser.parse_args(argv)
    names = [n for n in torchvision_models() if fnmatch.fnmatch(n, args.models)]
    rows, by_type = [], []
    for name in names:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = archstat.check(name)
        rows.append(model_row(report, time.perf_counter() - start))
        by_type += type_rows(report)
        r = rows[-1]
        print(f"{name:24s} archstat {r['archstat'] / 1e9:8.3f} G  " + "  ".join(
            f"{t} {r[t] / 1e9:8.3f}" + (f" ({r[f'{t}_flagged_layers']} flagged)" if r[f"{t}_flagged_layers"] else "")
            if r[t] != "" else f"{t} -" for t in TOOLS) + f"  {r['seconds']:.1f}s", flush=True)
        del report
        gc.collect()
    out = Path(args.out)
    write_csv(out / "crosscheck_torchvision.csv", rows)
    write_csv(out / "crosscheck_torchvision_by_type.csv", by_type)
    print("\n".join(headline(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
