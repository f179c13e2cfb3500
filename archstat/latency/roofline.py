"""Arithmetic intensity and the roofline estimate of time, per op and per model.

For an op with ``F`` FLOPs moving ``M`` bytes on a device with peak compute ``P``
(FLOP/s) and bandwidth ``W`` (bytes/s), the roofline model (Williams, Waterman and
Patterson, CACM 52(4), 2009) bounds its time from below by

    t = max(F / P, M / W)

and calls it compute-bound when ``F / M`` (the arithmetic intensity, FLOP/byte)
exceeds the ridge ``P / W``, memory-bound otherwise. The model's estimate is the sum
over its ops (ops run one after another). ``F`` is archstat's ``flops`` (2 per
multiply-add, 1 per element-wise output), ``M`` the op's memory access under a
stated cache model (:mod:`archstat.latency.memory_model`) times the dtype size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from archstat.latency.memory_model import mem_access_per_op

if TYPE_CHECKING:
    from archstat.counting.stats import ModelStats
    from archstat.latency.peaks import Peaks

__all__ = ["roofline_seconds", "arithmetic_intensity", "OpEstimate", "op_estimates", "model_estimate",
           "ModelEstimate"]


def roofline_seconds(flops: float, bytes_moved: float, peak_flops: float, peak_bytes: float) -> float:
    """``max(flops / peak_flops, bytes_moved / peak_bytes)``: the roofline lower bound on time."""
    return max(flops / peak_flops, bytes_moved / peak_bytes)


def arithmetic_intensity(flops: float, bytes_moved: float) -> float:
    """FLOPs per byte moved (``inf`` for an op that moves nothing but computes, 0 for neither)."""
    if bytes_moved:
        return flops / bytes_moved
    return float("inf") if flops else 0.0


@dataclass(frozen=True)
class OpEstimate:
    """One op on the roofline."""

    name: str
    kind: str
    flops: int
    elements: int
    bytes: int
    seconds: float
    bound: str

    @property
    def intensity(self) -> float:
        return arithmetic_intensity(self.flops, self.bytes)

    def row(self) -> dict:
        return {"name": self.name, "kind": self.kind, "flops": self.flops, "mem_access": self.elements,
                "bytes": self.bytes,
                "intensity": round(self.intensity, 4), "roofline_us": round(self.seconds * 1e6, 4),
                "bound": self.bound}


@dataclass(frozen=True)
class ModelEstimate:
    """A model's roofline estimate: the sum over its ops."""

    seconds: float
    flops: int
    bytes: int
    memory_bound_seconds: float
    cache_model: str

    @property
    def intensity(self) -> float:
        return arithmetic_intensity(self.flops, self.bytes)

    @property
    def memory_bound_share(self) -> float:
        """Fraction of the estimated time spent in memory-bound ops."""
        return self.memory_bound_seconds / self.seconds if self.seconds else 0.0


def op_estimates(stats: "ModelStats", peaks: "Peaks", cache_model: str = "lower-bound") -> list[OpEstimate]:
    """Every recorded op of ``stats`` on the roofline of ``peaks`` (uncounted ops: zero, as counted)."""
    result = []
    for record, elements in zip(stats.records, mem_access_per_op(stats, cache_model)):
        moved = elements * stats.itemsize
        flops = record.cost.flops
        compute, memory = flops / peaks.flops_per_s, moved / peaks.bytes_per_s
        bound = "memory" if memory > compute else "compute" if flops else "none"
        result.append(OpEstimate(record.name, record.kind, flops, elements, moved, max(compute, memory), bound))
    return result


def model_estimate(stats: "ModelStats", peaks: "Peaks", cache_model: str = "lower-bound") -> ModelEstimate:
    """Sum of :func:`op_estimates`: the model's roofline time, FLOPs and bytes."""
    ops = op_estimates(stats, peaks, cache_model)
    return ModelEstimate(sum(o.seconds for o in ops), sum(o.flops for o in ops), sum(o.bytes for o in ops),
                         sum(o.seconds for o in ops if o.bound == "memory"), cache_model)
