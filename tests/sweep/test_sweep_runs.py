"""Sweeps that run: interrupted and resumed, with failing and hanging cells, locally and on Ray.

Each test runs real worker processes (and, for Ray, a real local Ray head), on small
torchvision models so the whole file stays within a minute or two.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from archstat.sweep import CellOptions, export, sweep
from archstat.sweep.local import core_sets
from archstat.sweep.store import ResultStore

#: Small models: a count takes well under a second each.
SMALL = ["squeezenet1_1", "squeezenet1_0", "shufflenet_v2_x0_5", "mnasnet0_5", "mobilenet_v3_small", "resnet18",
         "googlenet"]
#: At 32x32, AlexNet's last max pool gets a 1x1 map it cannot take: its cells fail while the others finish.
FAILING, TINY = "alexnet", "32"

_COUNT_COLUMNS = ("cell", "machine", "model", "input", "status", "params", "madds", "flops", "mem_access",
                  "mem_access_bytes", "records", "uncounted")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "archstat", "sweep", *args, "--no-progress"]


def _rows(db: Path) -> list[dict]:
    with ResultStore(db) as store:
        return store.rows()


def _count_table(db: Path) -> list[tuple]:
    """What a count sweep found, without when and how long."""
    return [tuple(r[c] for c in _COUNT_COLUMNS) for r in _rows(db)]


def test_interrupted_sweep_resumes_and_stores_every_cell_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "sweep.sqlite"
    models = ",".join([*SMALL[:4], FAILING, *SMALL[4:]])
    command = _cli("--models", models, "--sizes", TINY, "--batch", "1,2,3", "--out", str(db), "--workers", "1")
    cells = [f"{m}|{TINY}|b{b}|count" for m in [*SMALL, FAILING] for b in (1, 2, 3)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # interrupt once a few cells are in, mid-way
        time.sleep(0.2)
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    if conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] >= 3:
                        break
                except sqlite3.OperationalError:  # the table is being created
                    continue
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "rerun the same command to resume" in err and "Traceback" not in err
    before = {r["cell"]: r for r in _rows(db)}
    assert 3 <= len(before) < len(cells)  # interrupted mid-way

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(before)} already in" in done.stderr
    after = _rows(db)
    keys = [r["cell"] for r in after]
    assert sorted(keys) == sorted(cells)  # every cell, once
    for row in after:  # cells finished before the interrupt were not run again
        if row["cell"] in before:
            assert row["finished"] == before[row["cell"]]["finished"]
    failed = [r for r in after if r["status"] == "failed"]
    assert [r["model"] for r in failed] == [FAILING] * 3 and "cannot take input" in failed[0]["reason"]
    assert all(r["madds"] > 0 for r in after if r["status"] == "ok")

    again = subprocess.run(command, capture_output=True, text=True, timeout=120)  # nothing left to do
    assert again.returncode == 0 and f"{len(cells)} already in" in again.stderr and len(_rows(db)) == len(after)


def test_a_hanging_cell_times_out_and_a_killed_worker_is_a_failed_row(tmp_path: Path) -> None:
    db = tmp_path / "sweep.sqlite"
    options = CellOptions(warmup=0, repeats=1_000_000)  # a latency cell that would run for hours
    summary = sweep("squeezenet1_1", db=db, metrics="count,latency", options=options, timeout=8, progress=False)
    rows = {r["metric"]: r for r in _rows(db)}
    assert summary.ok == 1 and summary.failed == 1
    assert rows["count"]["status"] == "ok" and rows["latency"]["status"] == "failed"
    assert "timeout" in rows["latency"]["reason"] and rows["latency"]["machine"].endswith("/cpu")

    def kill_workers() -> None:  # the worker dies under the cell, as the out-of-memory killer would do it
        import multiprocessing

        for child in multiprocessing.active_children():
            os.kill(child.pid, signal.SIGKILL)

    db2 = tmp_path / "killed.sqlite"
    timer = threading.Timer(6.0, kill_workers)
    timer.start()
    try:
        sweep("squeezenet1_0", db=db2, metrics="latency", options=options, timeout=120, progress=False)
    finally:
        timer.cancel()
    (row,) = _rows(db2)
    assert row["status"] == "failed" and "SIGKILL" in row["reason"], row["reason"]


def test_timing_cells_never_share_a_core(tmp_path: Path) -> None:
    db = tmp_path / "sweep.sqlite"
    options = CellOptions(warmup=1, repeats=5)
    sweep(",".join(SMALL[:4]), db=db, metrics="count,latency", workers=2, options=options, progress=False)
    timed = [r for r in _rows(db) if r["metric"] == "latency"]
    assert len(timed) == 4 and all(r["status"] == "ok" for r in timed)
    # Each cell was timed on one worker's pinned cores, with as many threads: the two disjoint sets
    # core_sets() splits this machine's cores into (on one core, both workers share it).
    allowed = [sorted(s) for s in core_sets(2, sorted(os.sched_getaffinity(0)))]
    for row in timed:
        assert sorted(row["extra"]["cores"]) in allowed and row["threads"] == len(row["extra"]["cores"]), row["cell"]
    for i, a in enumerate(timed):
        for b in timed[i + 1:]:
            (a0, a1), (b0, b1) = a["extra"]["wall"], b["extra"]["wall"]
            if a0 < b1 and b0 < a1:  # they ran at the same time: then on different cores
                assert not set(a["extra"]["cores"]) & set(b["extra"]["cores"]), (a["cell"], b["cell"])


def test_export_csv_and_parquet(tmp_path: Path) -> None:
    db = tmp_path / "sweep.sqlite"
    sweep(f"squeezenet1_1,{FAILING}", db=db, sizes=f"default,{TINY}", progress=False)
    assert export(db, tmp_path / "out.csv") == 4
    with open(tmp_path / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # squeezenet1_1: torchvision's metadata says 0.35 GFLOPs (multiply-adds) and 1,235,496 params
    ok = next(r for r in rows if r["cell"] == "squeezenet1_1|default|b1|count")
    assert int(ok["params"]) == 1_235_496 and round(int(ok["madds"]) / 1e9, 2) == 0.35
    assert [r["cell"] for r in rows if r["status"] == "failed"] == [f"{FAILING}|{TINY}|b1|count"]
    pytest.importorskip("pyarrow", reason="parquet export needs pyarrow (archstat[reports]; archstat[test] has it)")
    import pandas as pd  # a dependency of archstat
    assert export(db, tmp_path / "out.parquet") == 4
    frame = pd.read_parquet(tmp_path / "out.parquet")
    assert list(frame["status"]) == [r["status"] for r in rows]
    assert int(frame.set_index("cell").loc["squeezenet1_1|default|b1|count", "params"]) == 1_235_496


def test_export_never_writes_over_its_database_and_keeps_column_types(tmp_path: Path) -> None:
    from archstat.errors import ArchstatError

    db = tmp_path / "sweep.csv"  # a database may have any name, even an export's
    with ResultStore(db) as store:
        store.put({"cell": "resnet18|default|b1|count", "machine": "*", "target": "*", "model": "resnet18",
                   "batch": 1, "metric": "count", "status": "ok", "params": 11_689_512})
    (tmp_path / "link.csv").symlink_to(db)
    before = db.read_bytes()
    for out in (db, tmp_path / "link.csv"):
        with pytest.raises(ArchstatError, match="is the sweep database itself"):
            export(db, out)
    with pytest.raises(ArchstatError, match="names a folder"):
        export(db, f"{tmp_path / 'new.csv'}/")
    assert db.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "sweep.csv"]
    pytest.importorskip("pyarrow", reason="parquet export needs pyarrow (archstat[reports]; archstat[test] has it)")
    import pyarrow.parquet as pq

    export(db, tmp_path / "count.parquet")  # a count-only sweep: its latency columns are empty, still typed
    timed = tmp_path / "timed.sqlite"
    with ResultStore(timed) as store:
        store.put({"cell": "resnet18|default|b1|latency", "machine": "box/cpu", "target": "box/cpu",
                   "model": "resnet18", "batch": 1, "metric": "latency", "status": "ok", "threads": 2,
                   "median_ms": 12.5, "under_load": False})
    export(timed, tmp_path / "timed.parquet")
    schema = pq.read_schema(tmp_path / "count.parquet")
    assert schema == pq.read_schema(tmp_path / "timed.parquet")  # two sweeps' exports concatenate
    types = {name: str(schema.field(name).type) for name in ("params", "median_ms", "threads", "under_load")}
    assert types == {"params": "int64", "median_ms": "double", "threads": "int64", "under_load": "bool"}


def test_bad_sweep_arguments_fail_in_one_line_before_any_work(tmp_path: Path) -> None:
    from archstat.cli import main

    folder = tmp_path / "a-folder"
    folder.mkdir()
    for args in (["--models", "resnet18", "--out", str(folder)],
                 ["--models", "resnet18", "--out", str(tmp_path / "s.sqlite"), "--export", str(tmp_path / "x.json")],
                 ["--models", "resnet18", "--metrics", "watts"], ["--models", "resnet18", "--workers", "0"],
                 ["--out", str(tmp_path / "s.sqlite")],
                 ["--models", "resnet18,resnt50", "--out", str(tmp_path / "s.sqlite")],  # unknown: did you mean
                 ["--models", "resnet18", "--out", str(tmp_path / "s.sqlite"), "--ray", f"127.0.0.1:{_closed_port()}"],
                 ["--models", "resnet18", "--out", str(tmp_path / "s.csv"), "--export", str(tmp_path / "s.csv")],
                 ["--models", "resnet18", "--out", str(tmp_path / "s.sqlite"), "--timeout", "nan"],
                 ["--models", "resnet18", "--out", str(tmp_path / "s.sqlite"), "--sizes", "224x"],
                 ["--models", "resnet18", "--out", str(tmp_path / "s.sqlite"), "--metrics", ""],
                 # beyond SQLite's int64: was an internal OverflowError when the row was stored
                 ["--models", "resnet18", "--out", str(tmp_path / "s.sqlite"), "--batch", "99999999999999999999"],
                 ["--models", "resnet18", "--out", str(tmp_path / "s.sqlite"), "--sizes", "64,,32"],
                 ["--models", "resnet18", "--out", ""]):
        assert main(["sweep", *args]) == 2
    assert list(tmp_path.iterdir()) == [folder]  # nothing was created


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    """A local Ray head on 127.0.0.1 with 2 CPUs, stopped afterwards (only its own processes)."""
    pytest.importorskip("ray", reason="--ray needs Ray (archstat[ray]; archstat[test] has it)")
    from archstat.sweep.ray_cluster import head_processes, local_head

    with local_head(num_cpus=2) as head:
        yield head.address, head.env
    assert not head_processes(head.temp_dir)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="stopping only this test's Ray processes needs /proc")
def test_ray_sweep_gives_the_local_count_table(tmp_path: Path, ray_head: tuple[str, dict]) -> None:
    address, env = ray_head
    models = ",".join([*SMALL[:3], FAILING])
    local, remote = tmp_path / "local.sqlite", tmp_path / "ray.sqlite"
    assert subprocess.run(_cli("--models", models, "--sizes", TINY, "--out", str(local)), timeout=300).returncode == 0
    done = subprocess.run(_cli("--models", models, "--sizes", TINY, "--out", str(remote), "--ray", address),
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert _count_table(remote) == _count_table(local) and len(_count_table(local)) == 4
    again = subprocess.run(_cli("--models", models, "--sizes", TINY, "--out", str(remote), "--ray", address),
                           capture_output=True, text=True, timeout=300, env=env)  # resumed on Ray too: nothing to run
    assert again.returncode == 0 and "4 already in" in again.stderr
    no_timing = subprocess.run(_cli("--models", "resnet18", "--metrics", "latency", "--out", str(remote), "--ray",
                                    address), capture_output=True, text=True, timeout=300, env=env)
    assert no_timing.returncode == 2 and "archstat_timing" in no_timing.stderr  # no node offers it: said so
