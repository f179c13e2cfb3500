"""One latency result: the measured time next to what the model costs and what the roofline predicts.

:func:`profile` is what ``archstat latency`` and ``benchmarks/bench_latency_zoo.py`` run
for each (model, input): count on ``meta`` (exact madds, FLOPs, memory access),
time on the real device (:func:`~archstat.latency.timing.measure`) and, given peaks,
estimate the roofline time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from archstat.counting.stats import ModelStats
from archstat.latency.peaks import Peaks
from archstat.latency.machine import ENVIRONMENT_COLUMNS
from archstat.latency.memory_model import mem_access_total
from archstat.latency.roofline import ModelEstimate, model_estimate
from archstat.latency.timing import TIMING_COLUMNS, Timing, measure, parse_dtype

__all__ = ["LatencyResult", "profile", "RESULT_COLUMNS"]

#: Cost and roofline columns of :meth:`LatencyResult.row`, between the timing and the environment.
COST_COLUMNS = ("params", "madds", "flops", "mem_access", "mem_access_bytes", "cache_model", "model_mem_access",
                "model_bytes", "intensity", "roofline_ms", "memory_bound_share", "peak_gflops", "peak_gbs")
#: Every column of :meth:`LatencyResult.row`, in order.
RESULT_COLUMNS = (*TIMING_COLUMNS, *COST_COLUMNS, *ENVIRONMENT_COLUMNS)


@dataclass(frozen=True)
class LatencyResult:
    """A measured latency with the model's counted cost and (optionally) its roofline estimate.

    ``mem_access``/``mem_access_bytes`` are archstat's default (lower-bound) figures;
    ``model_mem_access``/``model_bytes`` are under ``estimate.cache_model`` (the same
    numbers for the default cache model).
    """

    timing: Timing
    stats: ModelStats
    estimate: ModelEstimate | None
    peaks: Peaks | None
    cache_model: str = "lower-bound"

    def row(self) -> dict[str, Any]:
        t = self.timing.row()
        s, e = self.stats, self.estimate
        model_elements = mem_access_total(s, self.cache_model)
        model_bytes = model_elements * s.itemsize
        costs = {
            "params": s.params, "madds": s.madds, "flops": s.flops, "mem_access": s.mem_access,
            "mem_access_bytes": s.mem_access_bytes, "cache_model": self.cache_model,
            "model_mem_access": model_elements, "model_bytes": model_bytes,
            "intensity": round(s.flops / model_bytes, 4) if model_bytes else None,
            "roofline_ms": round(e.seconds * 1e3, 4) if e else None,
            "memory_bound_share": round(e.memory_bound_share, 4) if e else None,
            "peak_gflops": round(self.peaks.flops_per_s / 1e9, 3) if self.peaks else None,
            "peak_gbs": round(self.peaks.bytes_per_s / 1e9, 3) if self.peaks else None,
        }
        merged = {**t, **costs}
        return {c: merged.get(c) for c in RESULT_COLUMNS}


def profile(model_or_name: nn.Module | str, input_shape: Sequence[int] | None = None, *,
            peaks: Peaks | None = None, cache_model: str = "lower-bound", device: str = "cpu",
            threads: int | None = None, warmup: int = 5, repeats: int = 20, channels_last: bool = False,
            dtype: torch.dtype | str = torch.float32, model_kwargs: dict[str, Any] | None = None) -> LatencyResult:
    """Count, time and (with ``peaks``) roofline-estimate one model on one input.

    The count runs first, on ``meta`` (an input too small for the network fails there,
    naming the layer, before any weights are allocated), with the same input shape and
    dtype as the timing, so FLOPs, bytes and milliseconds describe the same computation.
    """
    import archstat

    dtype = parse_dtype(dtype)
    stats = archstat.count(model_or_name, input_shape, dtype=dtype, model_kwargs=model_kwargs)
    timing = measure(model_or_name, stats.input_shape, device=device, threads=threads, warmup=warmup,
                     repeats=repeats, channels_last=channels_last, dtype=dtype, model_kwargs=model_kwargs)
    estimate = model_estimate(stats, peaks, cache_model) if peaks else None
    return LatencyResult(timing, stats, estimate, peaks, cache_model)
