"""Local execution of a sweep: worker processes, each cell isolated, timing cells on cores of their own.

Every worker is a separate Python process (``spawn``) pinned to its own cores: the
machine's usable cores are split into one disjoint set per worker (when there are more
workers than cores, sets overlap). A cell goes to an idle worker, and a timing cell has its
cores to itself (:func:`may_start`): it starts only where no other cell runs on them (and,
on a GPU, while no other timing cell runs), and no cell starts on the cores of a running
timing cell; while one waits, counting cells stop doubling up on shared cores, so its cores
come free. Workers ignore Ctrl-C: the scheduler alone decides, and on an interrupt it
stops them and keeps every row already stored.

A cell that fails in the model is a failed row sent back by its worker. A worker that
dies (a crash, the out-of-memory killer) or outlives ``timeout`` seconds on one cell is
killed and replaced, and its cell becomes a failed row saying so. Workers are replaced
after ``recycle`` cells, so a long sweep does not grow one process's memory without bound.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator

from archstat.sweep.cells import Cell
from archstat.sweep.work import CellOptions, failed_row, machine_id, overdue, run_cell

__all__ = ["run_local", "core_sets", "may_start"]

#: How long the scheduler waits for a result before it looks at deadlines and progress again.
_TICK = 0.5


def core_sets(workers: int, cpus: list[int] | None = None) -> list[tuple[int, ...]]:
    """The cores of each worker: the usable cores split into ``workers`` disjoint, contiguous
    sets when there are enough, else one core each, round-robin."""
    if cpus is None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if workers <= len(cpus):
        size, extra = divmod(len(cpus), workers)
        sets, start = [], 0
        for i in range(workers):
            n = size + (1 if i < extra else 0)
            sets.append(tuple(cpus[start:start + n]))
            start += n
        return sets
    return [(cpus[i % len(cpus)],) for i in range(workers)]


def may_start(timing: bool, cores: tuple[int, ...], running: list[tuple[bool, tuple[int, ...]]], gpu: bool,
              timing_waits: bool = False) -> bool:
    """May a cell (a timing cell if ``timing``) start on a worker pinned to ``cores``, while
    ``running`` cells (``(timing, cores)`` of each) run? Not on the cores of a running timing
    cell; a timing cell not beside any cell on its cores, nor, on a GPU, beside another
    timing cell. While a timing cell waits (``timing_waits``), a counting cell does not join
    another cell on shared cores either, so that cores come free for it."""
    mine = set(cores)
    for other_timing, other_cores in running:
        shared = not mine.isdisjoint(other_cores)
        if other_timing and (shared or (timing and gpu)) or shared and (timing or timing_waits):
            return False
    return True


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals are not this thread's to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker_main(conn: Connection, cores: tuple[int, ...]) -> None:
    """A worker: pinned to ``cores``, one thread per core, measuring cells until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler handles Ctrl-C
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    import torch

    torch.set_num_threads(max(1, len(cores)))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        cell, options, target = message
        conn.send(run_cell(cell, options, target))


@dataclass(eq=False)
class _Worker:
    cores: tuple[int, ...]
    context: Any
    process: Any = None
    conn: Connection | None = None
    cell: Cell | None = None
    started: float = 0.0
    done: int = 0

    def start(self) -> None:
        parent, child = self.context.Pipe()
        self.process = self.context.Process(target=_worker_main, args=(child, self.cores), daemon=True)
        with _sigint_ignored():  # inherited through exec: Ctrl-C never reaches a worker, even while it starts
            self.process.start()
        child.close()
        self.conn, self.done, self.cell = parent, 0, None

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if not kill and self.conn is not None:
            try:
                self.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        if self.conn is not None:
            self.conn.close()
        self.process, self.conn, self.cell = None, None, None

    def death(self) -> str:
        """Why the worker process ended, in words."""
        code = self.process.exitcode if self.process is not None else None
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"the worker process was killed by {name}{hint}"
        return f"the worker process exited with status {code}"


def run_local(cells: list[Cell], options: CellOptions, store_row: Callable[[dict], None], workers: int = 1,
              timeout: float | None = None, recycle: int = 100,
              tick: Callable[[dict], None] | None = None) -> None:
    """Run ``cells`` on ``workers`` local processes, handing each finished row to ``store_row``
    (in the calling process, as it arrives) and each one to ``tick`` for progress."""
    context = multiprocessing.get_context("spawn")
    pool = [_Worker(cores, context) for cores in core_sets(workers)]
    gpu = options.device.startswith("cuda")
    pending = deque(cells)
    timing_target = machine_id(options.device) if any(c.timing for c in cells) else None

    def finish(worker: _Worker, row: dict) -> None:
        worker.cell = None
        worker.done += 1
        store_row(row)
        if tick:
            tick(row)
        if worker.done >= recycle and pending:  # a fresh process for the next cells
            worker.stop()
            worker.start()

    def next_cell(worker: _Worker) -> Cell | None:
        """The first pending cell that may start on ``worker`` now (see :func:`may_start`)."""
        running = [(w.cell.timing, w.cores) for w in pool if w.cell is not None]
        waits = any(c.timing for c in pending)
        allowed = {timing: may_start(timing, worker.cores, running, gpu, waits) for timing in (False, True)}
        for i, cell in enumerate(pending):
            if allowed[cell.timing]:
                del pending[i]
                return cell
        return None

    try:
        for worker in pool:
            worker.start()
        while pending or any(w.cell is not None for w in pool):
            for worker in pool:
                if worker.cell is None and pending:
                    cell = next_cell(worker)
                    if cell is not None:
                        worker.cell, worker.started = cell, time.monotonic()
                        try:
                            worker.conn.send((cell, options, timing_target if cell.timing else None))  # type: ignore[union-attr]
                        except OSError:  # it died while idle: a new worker, and the cell waits its turn
                            worker.stop(kill=True)
                            worker.start()
                            pending.appendleft(cell)
            busy = [w for w in pool if w.cell is not None]
            handles: dict[Any, _Worker] = {}
            for w in busy:
                handles[w.conn] = w
                handles[w.process.sentinel] = w
            for ready in wait(list(handles), timeout=_TICK):
                worker = handles[ready]
                if worker.cell is None:
                    continue  # its result and its sentinel were both ready: handled
                cell = worker.cell
                try:
                    row = worker.conn.recv() if worker.conn is not None and worker.conn.poll() else None
                except (EOFError, OSError):
                    row = None
                if row is not None:
                    finish(worker, row)
                    continue
                if worker.process.is_alive():
                    continue  # the sentinel fired late for an earlier process, or a spurious wake-up
                reason, elapsed = worker.death(), round(time.monotonic() - worker.started, 3)
                worker.stop(kill=True)
                worker.start()
                finish(worker, failed_row(cell, reason, elapsed, timing_target, timing_target))
            now = time.monotonic()
            for worker in pool:
                late = overdue(worker.cell, worker.started, now, timeout, timing_target) if worker.cell else None
                if late is not None:
                    worker.stop(kill=True)
                    worker.start()
                    finish(worker, late)
    finally:
        for worker in pool:
            worker.stop(kill=True)
