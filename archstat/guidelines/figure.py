"""The guideline figure: measured speed against the paper's and against what MAC predicts.

One panel per (experiment, width). Bars: speed relative to the experiment's first
row, measured here, on the paper's GPU and on its ARM phone; markers: the speed
memory access alone would predict (``MAC_first / MAC``). One legend for all panels,
below them (never over a bar). Uses matplotlib's object-oriented API (no pyplot
state), written atomically as a print-resolution PNG and a PDF
(:func:`archstat.reports.figures.save_figure`).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Sequence

from matplotlib.figure import Figure

__all__ = ["plot_guidelines", "guideline_figure"]

_SERIES = (("rel_speed", "measured here"), ("paper_gpu_rel", "paper GPU (GTX 1080Ti)"),
           ("paper_arm_rel", "paper ARM (Snapdragon 810)"))


def _groups(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["experiment"], row["width"]), []).append(row)
    return list(groups.values())


def guideline_figure(rows: Sequence[dict[str, Any]], title: str = "") -> Figure:
    """The figure of the rows of :func:`~archstat.guidelines.run.run_experiments`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    groups = _groups(rows)
    cols = 2 if len(groups) > 1 else 1
    nrows = (len(groups) + cols - 1) // cols
    fig = Figure(figsize=(6.0 * cols, 3.6 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    for i, group in enumerate(groups):
        ax = fig.add_subplot(nrows, cols, i + 1)
        x = range(len(group))
        width = 0.8 / len(_SERIES)
        for j, (key, label) in enumerate(_SERIES):
            values = [r[key] if r[key] is not None else 0.0 for r in group]
            ax.bar([k + (j - 1) * width for k in x], values, width, label=label)
        ax.plot(list(x), [r["mac_rel_speed"] for r in group], "kD", label="MAC predicts (MAC first / MAC)")
        ax.axhline(1.0, color="grey", linewidth=0.6)
        ax.set_xticks(list(x), [r["config"] for r in group], rotation=20 if group[0]["experiment"] == "G3" else 0,
                      fontsize=8)
        ax.set_ylabel("speed relative to first row")
        ax.set_title(f"{group[0]['experiment']} ({group[0]['width']}, {group[0]['platform']} channels)", fontsize=10)
        if i == 0:
            fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=len(_SERIES) + 1,
                       fontsize=8, frameon=False)
    if title:
        fig.suptitle(textwrap.fill(title, 80 * cols), fontsize=8)
    return fig


def plot_guidelines(rows: Sequence[dict[str, Any]], stem: str | Path, title: str = "") -> list[Path]:
    """Draw the rows of :func:`~archstat.guidelines.run.run_experiments`; write ``stem``.png and ``stem``.pdf."""
    from archstat.reports.figures import save_figure

    return save_figure(guideline_figure(rows, title), Path(stem))
