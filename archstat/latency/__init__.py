"""Latency on the user's own hardware, and what memory access and the roofline predict of it.

* :func:`measure`: median and spread of repeated forward passes (warm-up,
  ``torch.inference_mode``, explicit threads, optional channels_last, CPU or CUDA),
  with the machine and library versions recorded (:func:`environment`);
* :func:`calibrate` / :class:`Peaks`: peak FLOP/s (matmul) and bytes/s (large copy);
* :mod:`~archstat.latency.memory_model`: the cache model behind memory access
  (``"lower-bound"``, the default, or ``"fused"``);
* :mod:`~archstat.latency.roofline`: arithmetic intensity and ``max(F/P, M/W)`` per op;
* :func:`profile`: all of it for one model and input (one row of ``archstat latency``).

Example::

    from archstat import latency
    t = latency.measure("mobilenet_v2", (1, 3, 224, 224), threads=2)
    print(t.median_ms, t.spread.iqr, t.environment["cpu"])
"""

from __future__ import annotations

from archstat._lazy import lazy_exports

_LAZY = {
    "measure": "archstat.latency.timing",
    "measure_interleaved": "archstat.latency.timing",
    "prepare": "archstat.latency.timing",
    "Timing": "archstat.latency.timing",
    "MeasureError": "archstat.latency.timing",
    "environment": "archstat.latency.machine",
    "calibrate": "archstat.latency.peaks",
    "Peaks": "archstat.latency.peaks",
    "profile": "archstat.latency.results",
    "LatencyResult": "archstat.latency.results",
    "CACHE_MODELS": "archstat.latency.memory_model",
    "mem_access_per_op": "archstat.latency.memory_model",
    "mem_access_total": "archstat.latency.memory_model",
    "op_estimates": "archstat.latency.roofline",
    "model_estimate": "archstat.latency.roofline",
    "roofline_seconds": "archstat.latency.roofline",
    "spearman": "archstat.latency.statistics",
    "spread": "archstat.latency.statistics",
}

__all__ = list(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY)
