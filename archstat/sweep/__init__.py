"""Zoo-scale sweeps: every model x size x batch x metric, into one results database.

::

    from archstat.sweep import sweep
    summary = sweep("resnet*,timm:convnext_*", sizes="224", metrics="count,latency", db="sweep.sqlite",
                    workers=2)

A sweep expands its cells (:mod:`~archstat.sweep.cells`), skips those the database
(:mod:`~archstat.sweep.store`) already holds, runs the rest on local worker processes
(:mod:`~archstat.sweep.local`) or on a Ray cluster (:mod:`~archstat.sweep.ray_cluster`),
and stores each row the moment it arrives. Rerunning the same sweep resumes it; an
interrupt loses only the cells in flight. :func:`export` writes the table as CSV or
Parquet; ``archstat report --from DB`` draws accuracy against cost from it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from archstat.errors import ArchstatError
from archstat.grammar import parse_batches, parse_sizes
from archstat.sweep.cells import METRICS, Cell, expand_cells, parse_metrics, variants
from archstat.sweep.progress import Progress
from archstat.sweep.store import ANY_MACHINE, COLUMN_DTYPES, COLUMNS, ResultStore
from archstat.sweep.work import CellOptions, machine_id

__all__ = ["sweep", "plan", "export", "check_export", "SweepSummary", "Cell", "CellOptions", "ResultStore", "METRICS",
           "EXPORT_FORMATS"]

#: What :func:`export` writes, by file suffix.
EXPORT_FORMATS = {".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class SweepSummary:
    """What one run of a sweep did: ``cells`` in the sweep, ``skipped`` (already in the
    database), ``ok`` and ``failed`` among those run now, and the wall time."""

    cells: int
    skipped: int
    ok: int
    failed: int
    seconds: float
    backend: str

    @property
    def run(self) -> int:
        return self.ok + self.failed

    @property
    def cells_per_second(self) -> float:
        return self.run / self.seconds if self.seconds > 0 else 0.0


def plan(models: str | Sequence[str], sizes: str | None = None, batches: str | int | None = 1,
         metrics: str | None = "count", options: CellOptions = CellOptions()) -> list[Cell]:
    """The cells of a sweep: ``models`` names and globs (zoo, torchvision, ``timm:``),
    ``sizes`` input sizes or ``default`` (:mod:`archstat.grammar`), ``batches`` and ``metrics`` comma-separated;
    ``options`` give the cells their variants (the optimizer of ``train`` cells ...)."""
    from archstat.models import model_builder, resolve_names

    names = resolve_names(models)
    for name in names:  # an unknown name is refused with close matches, before any cell runs
        model_builder(name)
    return expand_cells(names, parse_sizes(sizes), parse_batches(batches), parse_metrics(metrics),
                        variants(options.optimizer, options.threads))


def sweep(models: str | Sequence[str], *, db: str | os.PathLike = "sweep.sqlite", sizes: str | None = None,
          batches: str | int | None = 1, metrics: str | None = "count", workers: int = 1, ray: str | None = None,
          timing_resource: str | None = None, timeout: float | None = 1800.0, retry_failed: bool = False,
          options: CellOptions = CellOptions(), progress: bool = True) -> SweepSummary:
    """Run a sweep into the SQLite database ``db`` (see the module docstring).

    ``workers``: local worker processes (ignored with ``ray``, the address of a running Ray
    cluster). ``timing_resource``: the Ray resource that marks the nodes timing cells run on.
    ``timeout``: seconds one cell may take before it is stopped and stored as failed.
    ``retry_failed``: run again the cells whose stored row failed. ``options``: how cells
    are measured (optimizer, timing device and runs).
    """
    from archstat.sweep.ray_cluster import DEFAULT_TIMING_RESOURCE, ray_target

    if workers < 1:
        raise ArchstatError(f"--workers must be at least 1, got {workers}")
    if timeout is not None and not timeout > 0:  # NaN too
        raise ArchstatError(f"--timeout must be positive seconds, got {timeout}")
    cells = plan(models, sizes, batches, metrics, options)
    resource = timing_resource or DEFAULT_TIMING_RESOURCE
    if options.device.startswith("cuda") and any(c.timing for c in cells) and not ray:
        from archstat.latency.machine import check_device

        check_device(options.device)
    target = ray_target(resource) if ray else (machine_id(options.device) if any(c.timing for c in cells)
                                               else ANY_MACHINE)
    if ray:  # an address nothing answers on is refused before the database is created
        from archstat.sweep.ray_cluster import reachable

        reachable(ray)
    start = time.monotonic()
    local = 0  # local worker processes started
    with ResultStore(db) as store:
        done = store.finished(cells, target, retry_failed)
        todo = [c for c in cells if c.key not in done]
        bar = Progress(len(todo), len(done), enabled=progress)
        try:
            if ray:
                from archstat.sweep.ray_cluster import run_ray

                run_ray(todo, options, store.put, ray, resource, timeout, bar.update)
            elif todo:
                from archstat.sweep.local import run_local

                local = min(workers, len(todo))
                run_local(todo, options, store.put, workers=local, timeout=timeout, tick=bar.update)
        finally:
            bar.close()
    return SweepSummary(len(cells), len(done), bar.ok, bar.failed, time.monotonic() - start,
                        f"ray {ray}" if ray else f"{local} local worker{'s' * (local != 1)}" if local
                        else "nothing left to run")


def check_export(db: str | os.PathLike, out: str | os.PathLike) -> str:
    """Refuse (one line) an export ``out`` that :func:`export` could not write: another suffix
    than :data:`EXPORT_FORMATS`, a path :func:`~archstat.reports.writers.check_output_file`
    refuses, or the database ``db`` itself. Returns the format."""
    from archstat.reports.writers import check_output_file

    kind = EXPORT_FORMATS.get(Path(out).suffix.lower())
    if kind is None:
        raise ArchstatError(f"--export writes {' or '.join(EXPORT_FORMATS)} files, not {os.fspath(out)!r}")
    check_output_file(out)
    if os.path.realpath(out) == os.path.realpath(db) or (os.path.exists(out) and os.path.exists(db)
                                                         and os.path.samefile(out, db)):
        raise ArchstatError(f"--export {os.fspath(out)} is the sweep database itself: export to another file")
    return kind


def export(db: str | os.PathLike, out: str | os.PathLike) -> int:
    """Write every row of the sweep database ``db`` to ``out`` (``.csv`` or ``.parquet``,
    atomically); returns the number of rows. ``extra`` is written as its JSON text. Parquet
    columns have the database's types whatever the rows hold (nullable integers, floats,
    strings), so exports of different sweeps concatenate."""
    import json

    from archstat.reports.writers import write_atomic, write_csv

    kind = check_export(db, out)
    with ResultStore(db, read_only=True) as store:
        rows = store.rows()
    for row in rows:
        row["extra"] = json.dumps(row["extra"], sort_keys=True, default=str) if row["extra"] else ""
    if kind == "csv":
        write_csv(out, rows, COLUMNS)
        return len(rows)
    try:
        import pandas as pd
        import pyarrow  # noqa: F401
    except ImportError:
        raise ArchstatError("Parquet export needs pandas and pyarrow: pip install 'archstat[reports]'") from None
    frame = pd.DataFrame(rows, columns=list(COLUMNS)).astype(COLUMN_DTYPES)
    with write_atomic(out, "wb") as fh:
        frame.to_parquet(fh, index=False)
    return len(rows)
