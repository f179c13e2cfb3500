"""Cells of a sweep and the database they are stored in."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archstat.errors import ArchstatError
from archstat.sweep import CellOptions, plan
from archstat.sweep.cells import Cell, expand_cells, parse_metrics
from archstat.sweep.local import core_sets, may_start
from archstat.sweep.progress import Progress, duration
from archstat.sweep.store import ANY_MACHINE, COLUMNS, ResultStore
from archstat.sweep.work import failed_row


def test_a_cell_key_names_everything_and_reads_back() -> None:
    cell = Cell("timm:convnext_tiny", "224", 8, "latency")
    assert cell.key == "timm:convnext_tiny|224|b8|latency" and Cell.from_key(cell.key) == cell
    assert Cell.from_key("resnet50|default|b1|count") == Cell("resnet50", None, 1, "count")
    # one cell however its side is written (an int before schema 3)
    assert Cell("resnet50", 224, 1, "count") == Cell("resnet50", "224x224", 1, "count") == Cell("resnet50", "224", 1,
                                                                                              "count")
    assert cell.timing and not Cell("resnet50", None, 1, "train").timing


def test_the_settings_that_change_a_metric_are_in_its_key() -> None:
    # another optimizer, or an asked-for thread count, is another cell: a rerun never takes the old rows
    cells = plan("resnet18", metrics="count,train,latency", options=CellOptions(optimizer="adam", threads=1))
    assert [c.key for c in cells] == ["resnet18|default|b1|count", "resnet18|default|b1|train|adam",
                                      "resnet18|default|b1|latency|t1"]
    assert all(Cell.from_key(c.key) == c for c in cells)
    assert [c.key for c in plan("timm:resnet18", metrics="train,latency")] == [
        "timm:resnet18|default|b1|train|sgd_momentum", "timm:resnet18|default|b1|latency"]  # the worker's cores


def test_the_sweep_is_the_product_grouped_by_model() -> None:
    cells = plan("resnet18,squeezenet1_0", sizes="224,160", batches="1,4", metrics="latency,count")
    assert len(cells) == 2 * 2 * 2 * 2
    assert [c.model for c in cells[:8]] == ["resnet18"] * 8  # one model's cells together
    assert [c.metric for c in cells[:2]] == ["count", "latency"]  # metrics in METRICS order, not as typed


@pytest.mark.parametrize("bad", [lambda: parse_metrics("count,flops"), lambda: parse_metrics(","),
                                 lambda: parse_metrics(""), lambda: plan("resnet18", sizes="224x"),
                                 lambda: plan("resnet18", batches="0")])
def test_bad_cell_options_are_refused_in_one_line(bad) -> None:
    with pytest.raises(ArchstatError) as info:
        bad()
    assert "\n" not in str(info.value)


@given(st.integers(1, 12), st.lists(st.integers(0, 63), min_size=1, max_size=16, unique=True))
def test_workers_get_disjoint_cores_when_there_are_enough(workers: int, cpus: list[int]) -> None:
    sets = core_sets(workers, sorted(cpus))
    assert len(sets) == workers and all(sets)
    used = [c for s in sets for c in s]
    if workers <= len(cpus):
        assert sorted(used) == sorted(cpus)  # every core used, none twice
    else:
        assert set(used) == set(cpus) and all(len(s) == 1 for s in sets)


def test_a_timing_cell_has_its_cores_to_itself() -> None:
    # Three workers on two cores: core_sets gives (0,), (1,), (0,); the first and third share core 0.
    count_on_0, timing_on_0, timing_on_1 = (False, (0,)), (True, (0,)), (True, (1,))
    assert may_start(True, (0,), [], gpu=False) and may_start(False, (0,), [timing_on_1], gpu=False)
    assert not may_start(False, (0,), [timing_on_0], gpu=False)  # no cell beside a timing cell on its core
    assert not may_start(True, (0,), [count_on_0], gpu=False)  # a timing cell waits for its core to be free
    assert may_start(True, (0,), [(False, (1,)), timing_on_1], gpu=False)  # other cores: no contention
    assert not may_start(True, (0,), [timing_on_1], gpu=True)  # one GPU: one timing cell at a time
    assert may_start(False, (0,), [timing_on_1], gpu=True)  # counting runs on the CPU
    assert may_start(False, (0,), [count_on_0], gpu=False)  # counting cells may share a core ...
    assert not may_start(False, (0,), [count_on_0], gpu=False, timing_waits=True)  # ... unless a timing cell waits
    assert may_start(False, (1,), [count_on_0], gpu=False, timing_waits=True)  # a core of its own: it runs


def test_ray_cells_are_placed_where_their_resources_are_free() -> None:
    from archstat.sweep.ray_cluster import place

    # Node "a" (4 CPUs) times, node "b" (2 CPUs) does not.
    cpus, timers = {"a": 4, "b": 2}, {"a"}
    assert place(False, dict(cpus), cpus, timers, set()) == "b"  # counting goes to nodes that do not time first
    assert place(False, {"a": 4, "b": 0}, cpus, timers, set()) == "a"  # then to a timing node with a free CPU
    assert place(True, dict(cpus), cpus, timers, set()) == "a"  # a timing cell takes a whole timing node ...
    assert place(True, {"a": 3, "b": 2}, cpus, timers, set()) is None  # ... only with every CPU of it free
    assert place(False, {"a": 4, "b": 0}, cpus, timers, {"a"}) is None  # nothing beside a timing cell
    assert place(False, {"a": 4, "b": 0}, cpus, timers, set(), timing_waits=True) is None  # "a" kept for timing
    assert place(False, {"a": 4, "b": 1}, cpus, timers, set(), timing_waits=True) == "b"
    assert place(True, dict(cpus), cpus, timers, {"a"}) is None  # one timing cell per timing node
    assert place(True, {"c": 0}, {"c": 0}, {"c"}, set()) is None  # a timing node without CPUs never times


def _row(cell: Cell, status: str = "ok", machine: str = ANY_MACHINE, **values) -> dict:
    return {"cell": cell.key, "machine": machine, "target": machine, "model": cell.model, "size": cell.size,
            "batch": cell.batch, "metric": cell.metric, "status": status, **values}


def test_store_keeps_one_row_per_cell_and_machine(tmp_path: Path) -> None:
    count, latency = Cell("resnet18", None, 1, "count"), Cell("resnet18", None, 1, "latency")
    with ResultStore(tmp_path / "s.sqlite") as store:
        store.put(_row(count, madds=1814073344, extra={"notes": ["a"]}))
        store.put(_row(count, madds=1814073344))  # the same cell again: replaced, not added
        store.put(_row(latency, machine="host-a/cpu", median_ms=10.5, under_load=True))
        store.put(_row(latency, machine="host-b/cpu", median_ms=20.5, status="failed", reason="timeout"))
        assert len(store) == 3
        rows = store.rows()
        assert [r["machine"] for r in rows] == ["*", "host-a/cpu", "host-b/cpu"]
        assert rows[1]["under_load"] is True and rows[0]["extra"] == {}
        assert list(rows[0]) == list(COLUMNS)
        # a count is finished for every machine; a latency only for the machine that timed it
        assert store.finished([count, latency], "host-a/cpu") == {count.key, latency.key}
        assert store.finished([count, latency], "host-c/cpu") == {count.key}
        assert store.finished([latency], "host-b/cpu") == {latency.key}
        assert store.finished([latency], "host-b/cpu", retry_failed=True) == set()


def test_store_refuses_what_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not sqlite at all, " * 100)
    with pytest.raises(ArchstatError, match="not an archstat sweep database"):
        ResultStore(tmp_path / "notes.txt")
    with pytest.raises(ArchstatError, match="not a regular file"):
        ResultStore(tmp_path)
    with pytest.raises(ArchstatError, match="does not exist"):
        ResultStore(tmp_path / "missing" / "s.sqlite")
    other = sqlite3.connect(tmp_path / "old.sqlite")
    other.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    other.execute("INSERT INTO meta VALUES ('schema', '0')")
    other.commit()
    other.close()
    with pytest.raises(ArchstatError, match="schema 0"):
        ResultStore(tmp_path / "old.sqlite")
    assert os.path.getsize(tmp_path / "notes.txt") == len("not sqlite at all, " * 100)  # left as it was


@pytest.mark.parametrize("schema", ["CREATE TABLE users (name TEXT)",
                                    "CREATE TABLE results (cell TEXT, score REAL)"])
def test_another_programs_database_is_refused_and_left_as_it_is(tmp_path: Path, schema: str) -> None:
    path = tmp_path / "theirs.sqlite"
    other = sqlite3.connect(path)
    other.execute(schema)
    other.commit()
    other.close()
    before = path.read_bytes()
    for read_only in (False, True):  # a sweep into it, a report or export from it
        with pytest.raises(ArchstatError, match="not an archstat sweep database"):
            ResultStore(path, read_only=read_only)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["theirs.sqlite"]


def test_a_version_1_database_gets_train_keys_with_their_optimizer(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    with ResultStore(path) as store:  # version 1 wrote train keys without the optimizer
        store.put(_row(Cell("resnet18", None, 1, "train"), optimizer="adam", madds=1))
        store.put(_row(Cell("vgg11", None, 1, "train"), status="failed", reason="timeout"))
        store.put(_row(Cell("resnet18", None, 1, "count"), madds=1))
        with store.db:
            store.db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    with ResultStore(path, read_only=True) as store:  # a report reads it as it is
        assert len(store) == 3
    with ResultStore(path) as store:  # a sweep brings it to version 3; the failed row (no optimizer) is rerun
        assert [r["cell"] for r in store.rows()] == ["resnet18|default|b1|count", "resnet18|default|b1|train|adam"]
        assert store.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)


def test_a_version_2_database_resumes_and_takes_sizes_of_any_shape(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite"
    with ResultStore(path) as store:
        store.put(_row(Cell("resnet18", "224", 1, "count"), madds=1))
        with store.db:
            store.db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    db = sqlite3.connect(path)  # version 2 declared size INTEGER (square sides only) and stored 224 as one
    with db:
        create = db.execute("SELECT sql FROM sqlite_master WHERE name = 'results'").fetchone()[0]
        db.execute("ALTER TABLE results RENAME TO old")
        db.execute(create.replace("size TEXT", "size INTEGER"))
        db.execute("INSERT INTO results SELECT * FROM old")
        db.execute("DROP TABLE old")
    assert db.execute("SELECT typeof(size) FROM results").fetchall() == [("integer",)]
    db.close()
    with ResultStore(path) as store:
        cells = [Cell("resnet18", "224", 1, "count"), Cell("resnet18", "480x640", 1, "count")]
        assert store.finished(cells, ANY_MACHINE) == {"resnet18|224|b1|count"}  # resumes: its cell is done
        store.put(_row(cells[1], madds=2))
        assert [(r["cell"], r["size"]) for r in store.rows()] == [("resnet18|224|b1|count", "224"),
                                                                 ("resnet18|480x640|b1|count", "480x640")]
        assert store.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)


def test_a_failed_row_says_what_ran_it_and_on_what_input() -> None:
    import torch

    import archstat

    row = failed_row(Cell("alexnet", "32", 2, "train", "adam"), "InputTooSmallError:\n  too small")
    assert (row["archstat_version"], row["torch_version"]) == (archstat.__version__, torch.__version__)
    assert row["input"] == "2x3x32x32" and row["optimizer"] == "adam"
    assert row["reason"] == "InputTooSmallError: too small"


def test_progress_line_counts_and_estimates() -> None:
    import io

    out = io.StringIO()
    bar = Progress(4, skipped=2, stream=out, every=0)
    for status in ("ok", "failed", "ok"):
        bar.update({"status": status})
    line = out.getvalue().strip().splitlines()[-1]
    assert "3/4 cells (2 ok, 1 failed)" in line and "ETA" in line
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    bar = Progress(2, stream=tty)
    bar.update({"status": "ok"})
    assert tty.getvalue().startswith("\r") and tty.getvalue().endswith("\x1b[K")  # a shorter line erases the rest
    assert duration(3723) == "1h02m03s" and duration(75) == "1m15s" and duration(4.2) == "4s"


def test_expand_cells_orders_by_model() -> None:
    cells = expand_cells(["a", "b"], [None], [1], ["count", "latency"])
    assert [c.key for c in cells] == ["a|default|b1|count", "a|default|b1|latency", "b|default|b1|count",
                                      "b|default|b1|latency"]
