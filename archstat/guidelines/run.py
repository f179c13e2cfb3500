"""Running the guideline experiments on the local device: count, predict, time, compare.

For each row of each experiment (:mod:`archstat.guidelines.experiments`) the benchmark
network is built, **counted by archstat's counter** (madds, FLOPs and memory access
are those of the network that is timed, not of a separate hand formula), and timed
round-robin with the other rows of its experiment
(:func:`~archstat.latency.timing.measure_interleaved`). Each output row puts the
measurement next to the paper's figures for the same row, as absolute speeds and
relative to the experiment's first row (the only comparison that transfers across
hardware).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from archstat.errors import FormulaMismatchWarning, UncountedOpWarning
from archstat.guidelines.experiments import EXPERIMENTS, FLOPS_TOLERANCE, Setup, setups
from archstat.latency.machine import ENVIRONMENT_COLUMNS
from archstat.latency.memory_model import mem_access_total

__all__ = ["run_experiments", "flops_spread_notes", "GUIDELINE_COLUMNS", "QUICK", "DEFAULTS"]

T = TypeVar("T")

#: Columns of every row :func:`run_experiments` returns, in order.
GUIDELINE_COLUMNS = (
    "experiment", "config", "madds", "flops", "mem_access", "median_ms", "iqr_ms", "min_ms", "max_ms",
    "mem_access_bytes", "fused_mem_access", "madds_vs_ref_pct", "rel_speed", "mac_rel_speed",
    "measured_batches_per_s", "paper_gpu_batches_per_s", "paper_gpu_rel", "paper_arm_images_per_s", "paper_arm_rel",
    "paper_source", "channels", "paper_channels", "width", "platform", "input", "batch", "device", "dtype",
    "warmup", "repeats", *ENVIRONMENT_COLUMNS,
)

#: Timing settings of a full run and of ``--quick`` (the smallest sound run: one warm-up, three repeats).
DEFAULTS = {"warmup": 5, "repeats": 20}
QUICK = {"warmup": 1, "repeats": 3}


def _identity(items: Sequence[T], desc: str) -> Iterator[T]:
    yield from items


def run_experiments(experiments: Iterable[str] = tuple(EXPERIMENTS), *, quick: bool = False,
                    widths: Sequence[int] = (1,), platform: str = "gpu", paper_channels: bool = False,
                    device: str = "cpu", threads: int | None = None, batch: int = 1, warmup: int | None = None,
                    repeats: int | None = None,
                    progress: Callable[[Sequence[Any], str], Iterator[Any]] = _identity) -> list[dict[str, Any]]:
    """Reproduce the ShuffleNet V2 guideline experiments here; one dict per row (:data:`GUIDELINE_COLUMNS`).

    ``quick`` uses :data:`QUICK` timing settings unless ``warmup``/``repeats`` are given.
    ``widths`` picks the paper's x1/x2/x4 columns, ``platform`` whose channels ("gpu":
    the paper's GPU column, "arm": its ARM column), ``paper_channels`` the printed
    channels instead of FLOPs-matched ones (see :mod:`archstat.guidelines.experiments`).
    """
    from archstat.latency.timing import measure_interleaved, prepare

    settings = {**(QUICK if quick else DEFAULTS), **{k: v for k, v in (("warmup", warmup), ("repeats", repeats))
                                                      if v is not None}}
    groups = setups(tuple(experiments), tuple(widths), platform, paper_channels)
    rows: list[dict[str, Any]] = []
    for group in progress(groups, "guidelines"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UncountedOpWarning)
            warnings.simplefilter("error", FormulaMismatchWarning)
            counted = [_count(s, batch) for s in group]
        runners = [prepare(net, stats.input_shape, device=device, label=f"{s.experiment} {s.config}")
                   for s, (net, stats) in zip(group, counted)]
        timings = measure_interleaved(runners, threads=threads, **settings)
        rows += _rows(group, [stats for _, stats in counted], timings)
    return rows


def _count(setup: Setup, batch: int):
    import archstat

    net = setup.build()
    return net, archstat.count(net, (batch, *setup.input_shape))


def _ratio(value: float | None, ref: float | None) -> float | None:
    return round(value / ref, 4) if value is not None and ref else None


def _rows(group: list[Setup], all_stats: list, timings: list) -> list[dict[str, Any]]:
    ref_stats, ref_time = all_stats[0], timings[0].median_ms
    ref_paper = {p: group[0].paper[p].number() for p in group[0].paper}
    rows = []
    for setup, stats, timing in zip(group, all_stats, timings):
        paper = {p: setup.paper[p].number() for p in setup.paper}
        s = timing.spread
        rows.append({
            "experiment": setup.experiment, "config": setup.config, "madds": stats.madds, "flops": stats.flops,
            "mem_access": stats.mem_access, "median_ms": round(s.median, 4), "iqr_ms": round(s.iqr, 4),
            "min_ms": round(s.min, 4), "max_ms": round(s.max, 4), "mem_access_bytes": stats.mem_access_bytes,
            "fused_mem_access": mem_access_total(stats, "fused"),
            "madds_vs_ref_pct": round(100.0 * (stats.madds / ref_stats.madds - 1.0), 3),
            "rel_speed": _ratio(ref_time, s.median), "mac_rel_speed": _ratio(ref_stats.mem_access, stats.mem_access),
            "measured_batches_per_s": round(1e3 / s.median, 2),
            "paper_gpu_batches_per_s": paper.get("GPU"),
            "paper_gpu_rel": _ratio(paper.get("GPU"), ref_paper.get("GPU")),
            "paper_arm_images_per_s": paper.get("ARM"), "paper_arm_rel": _ratio(paper.get("ARM"), ref_paper.get("ARM")),
            "paper_source": setup.paper["GPU"].citation, "channels": setup.channels,
            "paper_channels": setup.paper_channels, "width": f"x{setup.width}", "platform": setup.platform,
            "input": "x".join(map(str, stats.input_shape[1:])), "batch": stats.input_shape[0],
            "device": timing.device, "dtype": timing.dtype, "warmup": timing.warmup, "repeats": s.n,
            **timing.environment,
        })
    return rows


def flops_spread_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """One line per (experiment, width) whose madds differ from its first row by more than the tolerance."""
    notes = []
    for row in rows:
        if abs(row["madds_vs_ref_pct"]) > 100 * FLOPS_TOLERANCE:
            notes.append(f"{row['experiment']} {row['config']} ({row['width']}): {row['madds_vs_ref_pct']:+.2f}% "
                         f"multiply-adds vs the first row (channels {row['channels']})")
    return notes
