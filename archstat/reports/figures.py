"""Publication figures from the report's tables (matplotlib, PNG and PDF).

One style for all: 8-pt sans-serif text, single-column (3.5 in) or double-column (7 in)
widths, the Okabe-Ito colour-blind-safe palette, labelled axes with units, labels
placed so they do not overlap. Each figure is built from :class:`TableResult` s (or the
zoo), never from numbers typed here, and saved atomically.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from cycler import cycler  # noqa: E402

from archstat.published import Published  # noqa: E402
from archstat.reports.paper_tables import RATIO_CHANNELS, RATIO_KERNELS, ReportOptions, TableResult, _count  # noqa: E402

__all__ = ["FIGURES", "Figure", "OKABE_ITO", "save_figure", "paper_style"]

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
SINGLE_COLUMN, DOUBLE_COLUMN = 3.5, 7.0

_RC = {
    "font.size": 8, "axes.labelsize": 8, "axes.titlesize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "font.family": "DejaVu Sans", "axes.prop_cycle": cycler(color=OKABE_ITO),
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.5, "lines.linewidth": 1.2, "lines.markersize": 4, "legend.frameon": False,
    "pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": 300, "figure.dpi": 100,
}


def paper_style():
    """The context every figure is drawn in."""
    return plt.rc_context(_RC)


def save_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` atomically (temporary file, then rename)."""
    paths = []
    for ext in ("png", "pdf"):
        target = stem.with_suffix(f".{ext}")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".{ext}", dir=target.parent)
        os.close(fd)
        try:
            fig.savefig(tmp, format=ext, bbox_inches="tight", metadata={"CreationDate": None} if ext == "pdf"
                        else None)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(target)
    plt.close(fig)
    return paths


def _place_labels(ax: plt.Axes, xs: list[float], ys: list[float], labels: list[str]) -> None:
    """Annotate points, trying offsets around each until its label overlaps no earlier
    label and no point."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed = []
    offsets = [(4, 4), (4, -9), (-4, 4), (-4, -9), (6, -2), (-6, -2), (0, 8), (0, -12), (10, 10), (-10, -14)]
    points = [ax.transData.transform((x, y)) for x, y in zip(xs, ys)]
    for x, y, label in zip(xs, ys, labels):
        best = None
        for dx, dy in offsets:
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=6,
                               ha="left" if dx >= 0 else "right")
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            clash = any(box.overlaps(other) for other in placed) or any(
                box.contains(px, py) for px, py in points)
            if not clash:
                best = box
                break
            text.remove()
        if best is None:  # every offset clashes: keep the first, still readable
            text = ax.annotate(label, (x, y), xytext=offsets[0], textcoords="offset points", fontsize=6)
            best = text.get_window_extent(renderer)
        placed.append(best)


class Figure:
    """A figure: its name, the tables it is drawn from, and how to draw it."""

    def __init__(self, name: str, caption: str, needs: tuple[str, ...],
                 draw: Callable[[dict[str, TableResult], ReportOptions], plt.Figure]) -> None:
        self.name, self.caption, self.needs, self.draw = name, caption, needs, draw


FIGURES: dict[str, Figure] = {}


def figure(name: str, caption: str, needs: tuple[str, ...] = ()) -> Callable:
    def register(draw: Callable[[dict[str, TableResult], ReportOptions], plt.Figure]) -> Callable:
        if name in FIGURES:
            raise ValueError(f"figure {name!r} is already registered")
        FIGURES[name] = Figure(name, caption, needs, draw)
        return draw

    return register


def _single_crop(row: Published) -> float:
    """The single-crop error of a row printed as "single-crop / 10-crop" (DenseNet Table 3)."""
    if "single-crop /" in row.metric:
        return float(row.value.split("/")[0])
    return row.number()


@figure("accuracy_vs_madds", "ImageNet top-1 error (published, single model) against multiply-adds counted by "
        "archstat; bubble area proportional to counted parameters. Errors cite each zoo entry's paper.")
def accuracy_vs_madds(results: dict[str, TableResult], options: ReportOptions) -> plt.Figure:
    from archstat.zoo import ZOO

    points = []
    for name, entry in ZOO.items():
        if entry.top1_err is None or entry.input_size[1] < 200:
            continue
        stats = _count(name)
        points.append((stats.madds / 1e9, _single_crop(entry.top1_err.resolve()), stats.params / 1e6, name,
                       entry.family))
    families = list(dict.fromkeys(p[4] for p in sorted(points)))
    colour = {f: OKABE_ITO[i % len(OKABE_ITO)] for i, f in enumerate(families)}
    with paper_style():
        fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN, 3.8), layout="constrained")
        for family in families:
            mine = [p for p in points if p[4] == family]
            ax.scatter([p[0] for p in mine], [p[1] for p in mine], s=[4 + 2.5 * p[2] for p in mine],
                       color=colour[family], alpha=0.55, edgecolor=colour[family], linewidth=0.6)
            ax.scatter([], [], s=25, color=colour[family], alpha=0.55, label=family)
        ax.set_xscale("log")
        ax.set_xlabel("multiply-adds per image (G, log scale; counted)")
        ax.set_ylabel("ImageNet top-1 error (%; published)")
        family_legend = ax.legend(loc="upper right", title="family", ncols=2)
        ax.add_artist(family_legend)
        sizes = [ax.scatter([], [], s=4 + 2.5 * p, color="grey", alpha=0.45) for p in (5, 25, 100)]
        ax.legend(sizes, ["5 M params", "25 M", "100 M"], loc="lower left", labelspacing=1.3, borderpad=1.0)
        # One label per ShuffleNet v1 scale (g = 3, the paper's default); every other model by name.
        labelled = [p for p in points if not p[3].startswith("shufflenet_v1_") or "_g3_" in p[3]]
        _place_labels(ax, [p[0] for p in labelled], [p[1] for p in labelled], [p[3] for p in labelled])
    return fig


@figure("latency_vs_cost", "Measured CPU latency against multiply-adds (left) and memory access (right) for the "
        "ShuffleNet Table 8 models at three resolutions; counted by archstat, timed on this machine.",
        needs=("shufflenet_latency",))
def latency_vs_cost(results: dict[str, TableResult], options: ReportOptions) -> plt.Figure:
    from archstat.reports.paper_tables import LATENCY_SIZES

    table = results["shufflenet_latency"]
    with paper_style():
        fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN, 2.8), layout="constrained", sharey=True)
        markers = "os^"
        for colour, row in zip(OKABE_ITO, table.rows):
            for marker, (h, w) in zip(markers, LATENCY_SIZES):
                stats = _count(row["zoo model"], (3, h, w))
                ms = row[f"{h}x{w} ms (here)"]
                axes[0].scatter(stats.madds / 1e9, ms, color=colour, marker=marker)
                axes[1].scatter(stats.mem_access_bytes / 1e6, ms, color=colour, marker=marker)
        for ax, label in zip(axes, ("multiply-adds (G, counted)", "memory access (MB at fp32, counted)")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(label)
        axes[0].set_ylabel("latency (ms, median, this CPU)")
        for colour, row in zip(OKABE_ITO, table.rows):
            axes[1].scatter([], [], color=colour, label=row["model"])
        for marker, (h, w) in zip(markers, LATENCY_SIZES):
            axes[1].scatter([], [], color="grey", marker=marker, label=f"{h}x{w}")
        axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


@figure("layer_type_shares", "Share of multiply-adds and parameters per layer type in MobileNet (1.0, 224): "
        "published (Howard et al., Table 2) and counted by archstat.", needs=("mobilenet_layer_types",))
def layer_type_shares(results: dict[str, TableResult], options: ReportOptions) -> plt.Figure:
    rows = results["mobilenet_layer_types"].rows
    labels = [r["layer type"] for r in rows]
    series = (("Mult-Adds % (pub.)", "mult-adds, published", OKABE_ITO[0], ""),
              ("madds % (here)", "mult-adds, counted", OKABE_ITO[5], "//"),
              ("Parameters % (pub.)", "parameters, published", OKABE_ITO[1], ""),
              ("params % (here)", "parameters, counted", OKABE_ITO[6], "//"))
    with paper_style():
        fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.6), layout="constrained")
        width = 0.2
        for i, (column, label, colour, hatch) in enumerate(series):
            xs = [j + (i - 1.5) * width for j in range(len(rows))]
            ax.bar(xs, [r[column] for r in rows], width, label=label, color=colour, hatch=hatch, edgecolor="black",
                   linewidth=0.4)
        ax.set_xticks(range(len(rows)), labels)
        ax.set_ylabel("share of total (%)")
        ax.set_ylim(0, 105)
        ax.legend(loc="upper right")
    return fig


@figure("dw_ratio", "Cost of a depthwise separable convolution relative to a standard one: 1/N + 1/Dk^2 (lines) "
        "and the ratio of archstat's counted multiply-adds (markers).", needs=("dw_separable_ratio",))
def dw_ratio(results: dict[str, TableResult], options: ReportOptions) -> plt.Figure:
    rows = [r for r in results["dw_separable_ratio"].rows if r["layer"].startswith("grid")]
    with paper_style():
        fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.5), layout="constrained")
        dense = [2 ** (i / 8) for i in range(40, 81)]
        for colour, k in zip(OKABE_ITO, RATIO_KERNELS):
            ax.plot(dense, [1 / n + 1 / k ** 2 for n in dense], color=colour, label=f"Dk = {k}: 1/N + 1/Dk²")
            mine = [r for r in rows if r["Dk"] == k]
            ax.scatter([r["N"] for r in mine], [r["counted ratio"] for r in mine], color=colour, marker="o",
                       facecolor="none", zorder=3)
        ax.scatter([], [], color="grey", facecolor="none", label="counted")
        ax.set_xscale("log", base=2)
        ax.set_xticks(RATIO_CHANNELS, [str(n) for n in RATIO_CHANNELS])
        ax.set_xlabel("output channels N")
        ax.set_ylabel("separable / standard cost")
        ax.legend(loc="center right")
    return fig
