"""A sweep as Ray tasks on an existing Ray cluster (``pip install 'archstat[ray]'``).

Counting cells (``count``, ``train``) are machine-independent and run on any node with a
free CPU. Timing cells (``latency``) run only on the nodes the user selected by a custom
resource, ``--timing-resource NAME`` (start those nodes with ``ray start ... --resources
'{"NAME": 1}'``): each takes one unit, so a node offering one unit times one cell at a
time. Every timing row records the node's machine (:func:`~archstat.sweep.work.machine_id`)
and is filed under ``ray:NAME``.

Every node needs archstat (and the models' libraries) installed in the Python Ray runs.
A task that crashes, is killed for memory, or outlives ``timeout`` seconds is a failed row;
tasks are not retried, so a crashing model fails once instead of three times.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any, Callable

from archstat.errors import ArchstatError
from archstat.sweep.cells import Cell
from archstat.sweep.work import CellOptions, failed_row, run_cell

__all__ = ["run_ray", "DEFAULT_TIMING_RESOURCE", "ray_target"]

#: The custom resource timing cells ask for unless ``--timing-resource`` names another.
DEFAULT_TIMING_RESOURCE = "archstat_timing"

_TICK = 0.5


def ray_target(resource: str) -> str:
    """What the timing rows of a Ray sweep are filed under (resumed by)."""
    return f"ray:{resource}"


def _task(key: str, options: CellOptions, target: str | None) -> dict[str, Any]:
    """One cell in a Ray worker."""
    return run_cell(Cell.from_key(key), options, target)


def _reachable(address: str, seconds: float = 10.0) -> None:
    """Refuse a ``host:port`` nothing answers on, before Ray would retry it for minutes."""
    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not port.isdigit():
        return  # Ray resolves these itself
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=seconds):
            pass
    except OSError as exc:
        raise ArchstatError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _connect(address: str) -> Any:
    try:
        import ray
    except ImportError:
        raise ArchstatError("--ray needs Ray: pip install 'archstat[ray]'") from None
    _reachable(address)
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as exc:  # Ray's own errors: a connection refused, a version mismatch
        raise ArchstatError(f"cannot connect to the Ray cluster at {address}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return ray


def run_ray(cells: list[Cell], options: CellOptions, store_row: Callable[[dict], None], address: str,
            timing_resource: str = DEFAULT_TIMING_RESOURCE, timeout: float | None = None,
            tick: Callable[[dict], None] | None = None) -> None:
    """Run ``cells`` as tasks on the Ray cluster at ``address``, handing each finished row to
    ``store_row`` as it arrives (and to ``tick``)."""
    ray = _connect(address)
    try:
        resources = ray.cluster_resources()
        if any(c.timing for c in cells) and resources.get(timing_resource, 0) < 1:
            raise ArchstatError(f"no node of the Ray cluster at {address} offers the resource {timing_resource!r} "
                                f"that timing cells run on: start the nodes to time on with ray start ... "
                                f"--resources '{{\"{timing_resource}\": 1}}', or pass --timing-resource")
        slots = max(1, int(resources.get("CPU", 1))) + int(resources.get(timing_resource, 0))
        remote = ray.remote(max_retries=0)(_task)
        target = ray_target(timing_resource)
        pending = list(cells)
        flight: dict[Any, tuple[Cell, float]] = {}

        def finish(row: dict) -> None:
            store_row(row)
            if tick:
                tick(row)

        try:
            while pending or flight:
                while pending and len(flight) < slots:
                    cell = pending.pop(0)
                    if cell.timing:
                        ref = remote.options(num_cpus=options.threads or 1,
                                             resources={timing_resource: 1}).remote(cell.key, options, target)
                    else:
                        ref = remote.options(num_cpus=1).remote(cell.key, options, None)
                    flight[ref] = (cell, time.monotonic())
                done, _ = ray.wait(list(flight), num_returns=1, timeout=_TICK)
                for ref in done:
                    cell, started = flight.pop(ref)
                    try:
                        row = ray.get(ref)
                    except Exception as exc:  # the task died: a crash, Ray's memory monitor, a lost node
                        first = str(exc).splitlines()[0] if str(exc) else ""
                        reason = f"the Ray task failed: {type(exc).__name__}: {first}"
                        row = failed_row(cell, reason, round(time.monotonic() - started, 3), target, target)
                    finish(row)
                if timeout:
                    now = time.monotonic()
                    for ref, (cell, started) in list(flight.items()):
                        if now - started > timeout:
                            ray.cancel(ref, force=True)
                            flight.pop(ref)
                            finish(failed_row(cell, f"timeout: still running after {timeout:g} s",
                                              round(now - started, 3), target, target))
        finally:
            for ref in flight:
                ray.cancel(ref, force=True)
    finally:
        ray.shutdown()
