"""The ShuffleNet V2 guidelines G1-G4 (Ma et al., arXiv:1807.11164, Sec. 2), measured and reported.

* :func:`run_experiments`: the paper's four controlled experiments (Tables 1-4) rebuilt,
  counted by archstat and timed on the local device, beside the paper's figures;
* :func:`plot_guidelines`: their figure (PNG and PDF);
* :func:`guideline_report`: G1-G4 figures for each building block of any model.

Example::

    from archstat.guidelines import run_experiments
    rows = run_experiments(["G1", "G2"], quick=True)
    [(r["config"], r["mem_access"], r["median_ms"]) for r in rows]
"""

from __future__ import annotations

from archstat._lazy import lazy_exports

_LAZY = {
    "run_experiments": "archstat.guidelines.run",
    "GUIDELINE_COLUMNS": "archstat.guidelines.run",
    "plot_guidelines": "archstat.guidelines.figure",
    "guideline_report": "archstat.guidelines.report",
    "find_blocks": "archstat.guidelines.report",
    "EXPERIMENTS": "archstat.guidelines.experiments",
    "balanced_pair": "archstat.guidelines.experiments",
    "setups": "archstat.guidelines.experiments",
}

__all__ = list(_LAZY)


__getattr__ = lazy_exports(__name__, _LAZY)
