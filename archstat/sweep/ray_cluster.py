"""A sweep as Ray tasks on an existing Ray cluster (``pip install 'archstat[ray]'``).

Counting cells (``count``, ``train``) are machine-independent and run on any node with a
free CPU, nodes that do not time first. Timing cells (``latency``) run only on the nodes the
user selected by a custom resource, ``--timing-resource NAME`` (start those nodes with ``ray
start ... --resources '{"NAME": 1}'``), and each has its node to itself: it takes one unit
of the resource and every CPU of the node, so no other cell of the sweep runs beside it.
Every timing row records the node's machine (:func:`~archstat.sweep.work.machine_id`) and is
filed under ``ray:NAME``.

The driver places every task on a node itself (:func:`place`, from the CPUs the cluster
reported when the sweep started), and only where the resources it asks for are free, so a
task starts when it is sent and ``timeout`` counts its running time, not time spent in a
queue. (Other jobs on the same cluster can still hold those resources; a task then waits for
them, and that wait counts.) While a timing cell waits, counting cells stay off the timing
nodes, so one comes free for it. A node offering several units of the timing resource still
times one cell at a time. When a task fails, nodes that are gone are dropped; cells no live
node can take are failed rows.

Every node needs archstat (and the models' libraries) installed in the Python Ray runs.
A task that crashes, is killed for memory, or outlives ``timeout`` seconds is a failed row;
tasks are not retried, so a crashing model fails once instead of three times.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from archstat.errors import ArchstatError
from archstat.sweep.cells import Cell
from archstat.sweep.work import CellOptions, failed_row, overdue, run_cell

__all__ = ["run_ray", "place", "DEFAULT_TIMING_RESOURCE", "ray_target", "reachable", "local_head", "LocalHead",
           "head_processes"]

#: The custom resource timing cells ask for unless ``--timing-resource`` names another.
DEFAULT_TIMING_RESOURCE = "archstat_timing"

_TICK = 0.5


def ray_target(resource: str) -> str:
    """What the timing rows of a Ray sweep are filed under (resumed by)."""
    return f"ray:{resource}"


def _task(key: str, options: CellOptions, target: str | None) -> dict[str, Any]:
    """One cell in a Ray worker."""
    return run_cell(Cell.from_key(key), options, target)


def reachable(address: str, seconds: float = 10.0) -> None:
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
    reachable(address)
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as exc:  # Ray's own errors: a connection refused, a version mismatch
        raise ArchstatError(f"cannot connect to the Ray cluster at {address}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return ray


def place(timing: bool, free: dict[str, int], cpus: dict[str, int], timers: set[str], timing_busy: set[str],
          timing_waits: bool = False) -> str | None:
    """The node a cell starts on now, or None where none can take it: for a timing cell a node
    of ``timers`` (offering the timing resource) not timing and with every one of its ``cpus``
    free; for any other cell a node with a ``free`` CPU and no timing cell, nodes that do not
    time first, then the one with the most free CPUs; while a timing cell waits
    (``timing_waits``), no timing node, so that one comes free for it."""
    if timing:
        return next((n for n in sorted(timers) if n not in timing_busy and cpus[n] and free[n] == cpus[n]), None)
    nodes = [n for n in free if free[n] > 0 and n not in timing_busy and not (timing_waits and n in timers)]
    return min(nodes, key=lambda n: (n in timers, -free[n], n), default=None)


def run_ray(cells: list[Cell], options: CellOptions, store_row: Callable[[dict], None], address: str,
            timing_resource: str = DEFAULT_TIMING_RESOURCE, timeout: float | None = None,
            tick: Callable[[dict], None] | None = None) -> None:
    """Run ``cells`` as tasks on the Ray cluster at ``address``, handing each finished row to
    ``store_row`` as it arrives (and to ``tick``)."""
    ray = _connect(address)
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = {n["NodeID"]: int(n.get("Resources", {}).get("CPU", 0)) for n in nodes}
        timers = {n["NodeID"] for n in nodes if n.get("Resources", {}).get(timing_resource, 0) >= 1}
        if any(c.timing for c in cells) and not any(cpus[n] for n in timers):
            raise ArchstatError(f"no node of the Ray cluster at {address} offers the resource {timing_resource!r} "
                                f"that timing cells run on: start the nodes to time on with ray start ... "
                                f"--resources '{{\"{timing_resource}\": 1}}', or pass --timing-resource")
        if not any(cpus.values()):
            raise ArchstatError(f"no node of the Ray cluster at {address} offers a CPU to run cells on")
        remote = ray.remote(max_retries=0)(_task)
        target = ray_target(timing_resource)
        pending = list(cells)
        free, timing_busy = dict(cpus), set()
        flight: dict[Any, tuple[Cell, float, str]] = {}

        def finish(row: dict) -> None:
            store_row(row)
            if tick:
                tick(row)

        def release(cell: Cell, node: str) -> None:
            if node not in cpus:  # a lost node
                return
            if cell.timing:
                timing_busy.discard(node)
                free[node] = cpus[node]
            else:
                free[node] += 1

        def drop_lost_nodes() -> None:
            """Forget the nodes that are gone (a task bound to one would fail at once)."""
            alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
            for node in [n for n in cpus if n not in alive]:
                del cpus[node], free[node]
                timers.discard(node)
                timing_busy.discard(node)

        try:
            while pending or flight:
                waits = any(c.timing for c in pending)
                for cell in list(pending):
                    node = place(cell.timing, free, cpus, timers, timing_busy, waits)
                    if node is None:
                        continue
                    pending.remove(cell)
                    strategy = NodeAffinitySchedulingStrategy(node, soft=False)
                    if cell.timing:
                        timing_busy.add(node)
                        free[node] = 0
                        ref = remote.options(num_cpus=cpus[node], resources={timing_resource: 1},
                                             scheduling_strategy=strategy).remote(cell.key, options, target)
                    else:
                        free[node] -= 1
                        ref = remote.options(num_cpus=1, scheduling_strategy=strategy).remote(cell.key, options, None)
                    flight[ref] = (cell, time.monotonic(), node)
                if not flight:  # no live node can take what is left
                    for cell in pending:
                        finish(failed_row(cell, "no live node of the Ray cluster offers what it needs"
                                          + (f" (the resource {timing_resource!r} and CPUs)" if cell.timing else
                                             " (a CPU)"), None, target, target))
                    break
                done, _ = ray.wait(list(flight), num_returns=1, timeout=_TICK)
                for ref in done:
                    cell, started, node = flight.pop(ref)
                    release(cell, node)
                    try:
                        row = ray.get(ref)
                    except Exception as exc:  # the task died: a crash, Ray's memory monitor, a lost node
                        first = str(exc).splitlines()[0] if str(exc) else ""
                        reason = f"the Ray task failed: {type(exc).__name__}: {first}"
                        row = failed_row(cell, reason, round(time.monotonic() - started, 3), target, target)
                        drop_lost_nodes()
                    finish(row)
                now = time.monotonic()
                for ref, (cell, started, node) in list(flight.items()):
                    late = overdue(cell, started, now, timeout, target)
                    if late is not None:
                        ray.cancel(ref, force=True)
                        flight.pop(ref)
                        release(cell, node)
                        finish(late)
        finally:
            for ref in flight:
                ray.cancel(ref, force=True)
    finally:
        ray.shutdown()


class LocalHead(NamedTuple):
    """A running local Ray head: its address, the environment its drivers need, its temp dir."""

    address: str
    env: dict[str, str]
    temp_dir: str


@contextmanager
def local_head(num_cpus: int = 2, resources: str | None = None) -> Iterator[LocalHead]:
    """A Ray head of its own on 127.0.0.1 with ``num_cpus`` CPUs (and custom ``resources``, JSON),
    for tests and benchmarks on one machine. Its drivers need its ``env`` (Ray >= 2.59
    authenticates local clusters with a token: one made here). On exit it
    stops only this head's processes, found by its temp dir under ``/proc``, so a Ray cluster
    already running on the machine is left alone."""
    if not Path("/proc").is_dir():
        raise ArchstatError("a local Ray head is stopped by finding its processes in /proc, which is missing")
    ray = Path(sys.executable).with_name("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    start = [str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={num_cpus}",
             "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
             *([f"--resources={resources}"] if resources else [])]
    try:
        started = subprocess.run(start, capture_output=True, text=True, env=env, timeout=180)
        if started.returncode != 0:
            raise ArchstatError(f"ray start failed: {started.stderr.strip().splitlines()[-1:]}")
        yield LocalHead(f"127.0.0.1:{port}", env, temp)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in head_processes(temp):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        shutil.rmtree(temp, ignore_errors=True)


def head_processes(folder: str) -> list[int]:
    """Processes whose command line names ``folder`` (a Ray head's temp dir: its raylet, GCS, agents)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if folder.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
