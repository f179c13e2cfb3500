"""What one cell does, wherever it runs (a local worker process or a Ray task).

:func:`run_cell` measures one :class:`~archstat.sweep.cells.Cell` and returns the row the
results database stores; it never raises for a model that fails (that is a failed row,
with the one-line reason). :func:`machine_id` names the machine a timing cell ran on.
"""

from __future__ import annotations

import os
import platform
import socket
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from archstat.sweep.cells import Cell
from archstat.sweep.store import ANY_MACHINE

__all__ = ["CellOptions", "run_cell", "machine_id", "failed_row", "overdue"]


@dataclass(frozen=True)
class CellOptions:
    """How cells are measured: the optimizer of ``train`` cells; the device, threads and run
    counts of ``latency`` cells (threads None: the cores the worker was given)."""

    optimizer: str = "sgd_momentum"
    device: str = "cpu"
    threads: int | None = None
    warmup: int = 5
    repeats: int = 20


def machine_id(device: str = "cpu") -> str:
    """``host/cpu`` or ``host/cuda:0 (NVIDIA H200)``: where a timing cell's numbers hold."""
    host = socket.gethostname() or platform.node() or "unknown-host"
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        return f"{host}/cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"{host}/cpu"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _base(cell: Cell, machine: str, target: str) -> dict[str, Any]:
    """What every row says of its cell, ok or failed: its key and fields, the versions that ran
    it and when it finished. A ``train`` cell's optimizer is its variant."""
    import torch

    import archstat

    return {"cell": cell.key, "machine": machine, "target": target, "model": cell.model, "size": cell.size,
            "batch": cell.batch, "metric": cell.metric, "archstat_version": archstat.__version__,
            "torch_version": torch.__version__, "finished": _now(),
            **({"optimizer": cell.variant} if cell.metric == "train" and cell.variant else {})}


def failed_row(cell: Cell, reason: str, seconds: float | None = None, machine: str | None = None,
               target: str | None = None) -> dict[str, Any]:
    """The row of a cell that did not finish: ``reason`` in one line, and the input the cell was
    given (empty where it has none: a size the model cannot take)."""
    from archstat.errors import ArchstatError

    where = ANY_MACHINE if not cell.timing else machine or "unknown"
    row = {**_base(cell, where, target or where), "status": "failed", "seconds": seconds}
    try:
        row["input"] = _input_text(_inputs(cell))
    except ArchstatError:
        pass
    row["reason"] = " ".join(str(reason).split())[:500]
    return row


def overdue(cell: Cell, started: float, now: float, timeout: float | None, target: str | None) -> dict[str, Any] | None:
    """The failed row of a cell still running ``timeout`` seconds after it ``started``, else None
    (the one timeout rule of both schedulers)."""
    if timeout is None or now - started <= timeout:
        return None
    return failed_row(cell, f"timeout: still running after {timeout:g} s", round(now - started, 3), target, target)


def run_cell(cell: Cell, options: CellOptions, target: str | None = None) -> dict[str, Any]:
    """Measure ``cell``; a failure of the model is a failed row, not an exception. ``target``:
    what a timing row is filed under (this machine when None; a cluster label under Ray)."""
    import torch

    device = options.device if cell.timing else "cpu"
    machine = machine_id(device) if cell.timing else ANY_MACHINE
    target = (target or machine) if cell.timing else ANY_MACHINE
    start, wall = time.perf_counter(), time.time()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            row = {**_base(cell, machine, target), **_MEASURE[cell.metric](cell, options)}
    except Exception as exc:  # whatever the model raises is its cell's failure, with the reason
        if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
            reason = f"out of memory: {str(exc).splitlines()[0] if str(exc) else 'MemoryError'}"
        else:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        return failed_row(cell, reason, round(time.perf_counter() - start, 4), machine, target)
    from archstat.errors import FormulaMismatchWarning, UncountedOpWarning

    notes = list(dict.fromkeys(str(w.message) for w in caught
                               if issubclass(w.category, (UncountedOpWarning, FormulaMismatchWarning))))
    if notes:
        row.setdefault("extra", {})["warnings"] = notes
    if cell.timing:  # when and on which cores: timing cells never share one
        row.setdefault("extra", {}).update(wall=[wall, time.time()], cores=sorted(_cores_set()))
    row["status"] = "ok"
    row["seconds"] = round(time.perf_counter() - start, 4)
    return row


def _inputs(cell: Cell) -> Any:
    from archstat.api import resolve_inputs

    return resolve_inputs(cell.model, cell.size, cell.batch)


def _input_text(shape: Any) -> str:
    from archstat.counting.stats import format_shape

    return format_shape(shape)


def _count(cell: Cell, options: CellOptions) -> dict[str, Any]:
    import archstat

    shape = _inputs(cell)
    stats = archstat.count(cell.model, shape)
    return {"input": _input_text(shape), "params": stats.params, "madds": stats.madds, "flops": stats.flops,
            "mem_access": stats.mem_access, "mem_access_bytes": stats.mem_access_bytes,
            "records": len(stats.records), "uncounted": len(stats.uncounted),
            "extra": {"notes": stats.notes} if stats.notes else {}}


def _train(cell: Cell, options: CellOptions) -> dict[str, Any]:
    import archstat

    shape = _inputs(cell)
    optimizer = cell.variant or options.optimizer
    stats = archstat.count(cell.model, shape, mode="train", optimizer=optimizer)
    return {"input": _input_text(shape), "params": stats.params, "madds": stats.madds, "flops": stats.flops,
            "mem_access": stats.mem_access, "mem_access_bytes": stats.mem_access_bytes,
            "records": len(stats.records), "uncounted": len(stats.uncounted), "optimizer": optimizer,
            "backward_madds": stats.backward_madds, "step_flops": stats.step_flops,
            "saved_bytes": stats.saved_bytes, "peak_train_bytes": stats.peak_train_bytes,
            "extra": {"notes": stats.notes} if stats.notes else {}}


def _latency(cell: Cell, options: CellOptions) -> dict[str, Any]:
    from archstat.latency import measure

    shape = _inputs(cell)
    threads = options.threads or _cores()
    timing = measure(cell.model, shape, device=options.device, threads=threads, warmup=options.warmup,
                     repeats=options.repeats)
    s, env = timing.spread, timing.environment
    return {"input": _input_text(shape), "device": options.device, "threads": timing.threads,
            "median_ms": round(s.median, 4), "iqr_ms": round(s.iqr, 4), "min_ms": round(s.min, 4),
            "repeats": s.n, "under_load": env.get("under_load"),
            "extra": {"environment": env, "times_ms": list(timing.times_ms)}}


def _cores_set() -> set[int]:
    """The cores this process may run on (a worker pinned to some is timed on those)."""
    return set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def _cores() -> int:
    return len(_cores_set())


_MEASURE = {"count": _count, "train": _train, "latency": _latency}
