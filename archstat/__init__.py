"""archstat: what a CNN costs: parameters, multiply-adds, FLOPs, memory access, latency.

``import archstat.formulas`` needs no torch; the counting API is loaded on first use::

    import archstat
    stats = archstat.count("resnet50")          # ModelStats
    stats.params, stats.madds, stats.layers     # 25557032, 4089184256, DataFrame
"""

from __future__ import annotations

from archstat._lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "count": "archstat.api",
    "check": "archstat.crosscheck",
    "parse_input_size": "archstat.grammar",
    "ModelStats": "archstat.counting.stats",
    "OpRecord": "archstat.counting.stats",
    "create_model": "archstat.models",
    "resolve_names": "archstat.models",
    "available_models": "archstat.models",
    "ArchstatError": "archstat.errors",
    "UnknownModelError": "archstat.errors",
    "InputTooSmallError": "archstat.errors",
    "CountError": "archstat.errors",
    "UncountedOpWarning": "archstat.errors",
}

__all__ = ["__version__", *_LAZY]


__getattr__ = lazy_exports(__name__, _LAZY)
