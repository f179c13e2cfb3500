"""Sweep throughput: every timm architecture plus the zoo and torchvision, counted at their
published sizes, by ``archstat sweep`` with 1 local worker, 2 local workers and on a Ray
head of 2 CPUs on this machine.

Each configuration is one ``archstat sweep --metrics count`` command, run as a user would
(a fresh process, a fresh database, ``--no-progress``), over the same cells; its wall time
includes Python's start, the imports, the workers' start (or the Ray driver connecting)
and every cell. ``cells_per_s`` is cells over wall time. The Ray head is started before
its timer runs and stopped afterwards (only its own processes). The rows also say how many
cells were ok and failed, and whether the three databases hold the same counts.

    python benchmarks/bench_sweep.py [--models 'timm:*,*'] [--configs 1,2,ray]
        [--out benchmarks/results/bench_sweep.csv]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

FIELDS = ("config", "workers", "cells", "ok", "failed", "wall_s", "cells_per_s", "same_counts", "cpus", "models")
#: The columns two runs of one sweep must agree on.
COUNTS = "cell, status, params, madds, flops, mem_access, mem_access_bytes, records, uncounted"


def _counts(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT {COUNTS} FROM results ORDER BY cell").fetchall()


def run_config(config: str, models: str, folder: Path, timeout: float) -> tuple[dict, list[tuple]]:
    from archstat.sweep.ray_cluster import local_head

    db = folder / f"{config}.sqlite"
    command = [sys.executable, "-m", "archstat", "sweep", "--models", models, "--metrics", "count", "--out", str(db),
               "--no-progress", "--timeout", str(timeout)]
    with local_head(num_cpus=2) if config == "ray" else nullcontext() as head:
        if head is not None:
            command += ["--ray", head.address]
        else:
            command += ["--workers", config]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=head.env if head else None)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{config}: archstat sweep exited {done.returncode}: {done.stderr.strip()[-500:]}")
    counts = _counts(db)
    ok = sum(1 for row in counts if row[1] == "ok")
    return {"config": "ray (local head, 2 CPUs)" if config == "ray" else f"{config} local worker(s)",
            "workers": 2 if config == "ray" else int(config), "cells": len(counts), "ok": ok,
            "failed": len(counts) - ok, "wall_s": round(wall, 1), "cells_per_s": round(len(counts) / wall, 2),
            "cpus": len(os.sched_getaffinity(0)), "models": models}, counts


def main() -> None:
    parser = argparse.ArgumentParser(description="archstat sweep throughput: 1 worker, 2 workers, Ray")
    parser.add_argument("--models", default="timm:*,*", help="the sweep's --models (default: every timm "
                        "architecture, the zoo and torchvision)")
    parser.add_argument("--configs", default="1,2,ray", help="comma-separated: a local worker count, or ray")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per cell (default 600)")
    parser.add_argument("--out", default="benchmarks/results/bench_sweep.csv")
    parser.add_argument("--keep", metavar="DIR", help="keep every configuration's database in DIR")
    args = parser.parse_args()
    from archstat.reports.writers import write_csv

    rows, reference = [], None
    with tempfile.TemporaryDirectory(prefix="bench_sweep") as tmp:
        for config in args.configs.split(","):
            row, counts = run_config(config.strip(), args.models, Path(tmp), args.timeout)
            reference = counts if reference is None else reference
            row["same_counts"] = counts == reference
            rows.append(row)
            for ours, theirs in [(a, b) for a, b in zip(counts, reference) if a != b][:5]:
                print(f"  differs from the first configuration: {ours} vs {theirs}", file=sys.stderr)
            if args.keep:
                Path(args.keep).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(tmp) / f"{config.strip()}.sqlite", Path(args.keep) / f"{config.strip()}.sqlite")
            print(f"{row['config']}: {row['cells']} cells ({row['failed']} failed) in {row['wall_s']} s, "
                  f"{row['cells_per_s']} cells/s", file=sys.stderr)
    write_csv(args.out, rows, FIELDS)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
