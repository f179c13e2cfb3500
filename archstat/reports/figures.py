"""Publication figures from the report's tables (matplotlib, PNG and PDF).

One style for all: 8-pt sans-serif text, single-column (3.5 in) or double-column (7 in)
widths, the Okabe-Ito colour-blind-safe palette, labelled axes with units. PNGs are
written at print resolution (:data:`PRINT_DPI`, beside a vector PDF). Point labels are
placed where they cover no other label and no marker (:func:`place_labels`), with a
leader line when they sit away from their point; legends stand outside the axes, so no
legend covers data. Each figure is built from :class:`TableResult` s (or the zoo), never
from numbers typed here, and saved atomically.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import ScalarFormatter  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from archstat.published import Published  # noqa: E402
from archstat.reports.paper_tables import (RATIO_CHANNELS, RATIO_KERNELS, ReportOptions, TableResult,  # noqa: E402
                                           _count, latency_threads)
from archstat.reports.writers import write_atomic  # noqa: E402

__all__ = ["FIGURES", "Figure", "OKABE_ITO", "PRINT_DPI", "save_figure", "paper_style", "place_labels",
           "marker_boxes"]

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
SINGLE_COLUMN, DOUBLE_COLUMN = 3.5, 7.0
#: Print resolution of every PNG (dots per inch); the PDF beside it is vector.
PRINT_DPI = 300

_RC = {
    "font.size": 8, "axes.labelsize": 8, "axes.titlesize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "font.family": "DejaVu Sans", "axes.prop_cycle": cycler(color=OKABE_ITO),
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.5, "lines.linewidth": 1.2, "lines.markersize": 4, "legend.frameon": False,
    "pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": PRINT_DPI, "figure.dpi": 100,
}


def paper_style():
    """The context every figure is drawn in."""
    return plt.rc_context(_RC)


def save_figure(fig: matplotlib.figure.Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` (at :data:`PRINT_DPI`) and ``stem.pdf`` atomically (temporary file, then rename)."""
    paths = []
    for ext in ("png", "pdf"):
        target = Path(stem).with_suffix(f".{ext}")
        with write_atomic(target, "wb") as fh:
            fig.savefig(fh, format=ext, dpi=PRINT_DPI, bbox_inches="tight",
                        metadata={"CreationDate": None} if ext == "pdf" else None)
        paths.append(target)
    plt.close(fig)
    return paths


def marker_boxes(ax: matplotlib.axes.Axes) -> list[Bbox]:
    """The display-space square around every scatter marker in ``ax`` (side: the marker's size,
    ``sqrt(s)`` points, plus its edge). Other collections (error bars' lines) have no markers."""
    boxes = []
    scale = ax.figure.dpi / 72.0
    for collection in ax.collections:
        if not isinstance(collection, PathCollection):
            continue
        offsets = collection.get_offset_transform().transform(collection.get_offsets())
        sizes = collection.get_sizes()
        widths = collection.get_linewidths()  # type: ignore[attr-defined]  # an alias matplotlib's stubs lack
        for i, (x, y) in enumerate(offsets):
            half = (math.sqrt(sizes[i % len(sizes)]) + widths[i % len(widths)]) / 2 * scale
            boxes.append(Bbox.from_extents(x - half, y - half, x + half, y + half))
    return boxes


#: Directions tried around a point, nearest first: right, upper right, up, ... (radians).
_ANGLES = [math.radians(a) for a in (0, 30, -30, 60, -60, 90, -90, 150, -150, 120, -120, 180, 15, -15, 165, -165)]
#: Gaps between a marker's edge and its label tried, in points; past the first two a leader line is drawn.
_GAPS = (1.5, 4, 8, 13, 19, 26, 34, 43, 53, 64, 76)


def place_labels(ax: matplotlib.axes.Axes, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str],
                 sizes: Sequence[float]) -> None:
    """Label the points ``(xs[i], ys[i])`` (markers of ``sizes[i]`` points²): each label goes to the
    nearest spot, around its point, where it lies inside the axes and covers no marker of ``ax`` and
    no label placed before it; labels away from their point get a thin leader line. Crowded points
    are placed first. Raises ``RuntimeError`` when a label finds no free spot (the figure would lie)."""
    fig = ax.figure
    fig.canvas.draw()
    assert isinstance(fig, matplotlib.figure.Figure)  # a figure's own axes, not a subfigure's
    fig.set_layout_engine("none")  # freeze the layout: the boxes below stay where they are measured
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's canvas (matplotlib.use above)
    frame = ax.get_window_extent(renderer)
    taken = marker_boxes(ax)
    scale = fig.dpi / 72.0
    centres = [ax.transData.transform((x, y)) for x, y in zip(xs, ys)]

    def crowding(i: int) -> int:
        return sum(math.dist(centres[i], c) < 40 * scale for c in centres)

    for i in sorted(range(len(labels)), key=lambda i: -crowding(i)):
        radius = math.sqrt(sizes[i]) / 2
        text = ax.annotate(labels[i], (xs[i], ys[i]), textcoords="offset points", fontsize=6, xytext=(0, 0))
        for gap in _GAPS:
            spot = None
            for angle in _ANGLES:
                dx, dy = math.cos(angle), math.sin(angle)
                text.xyann = ((radius + gap) * dx, (radius + gap) * dy)
                text.set_horizontalalignment("left" if dx > 0.3 else "right" if dx < -0.3 else "center")
                text.set_verticalalignment("bottom" if dy > 0.3 else "top" if dy < -0.3 else "center")
                box = text.get_window_extent(renderer)
                if frame.containsx(box.x0) and frame.containsx(box.x1) and frame.containsy(box.y0) and \
                        frame.containsy(box.y1) and not any(box.overlaps(other) for other in taken):
                    spot = box
                    break
            if spot is not None:
                break
        else:
            raise RuntimeError(f"no free spot for the label {labels[i]!r}")
        if gap > _GAPS[1]:  # a leader line from the label's anchor to the marker's edge
            ax.annotate("", (xs[i], ys[i]), xytext=text.xyann, textcoords="offset points",
                        arrowprops=dict(arrowstyle="-", color="0.4", linewidth=0.5, shrinkA=0,
                                        shrinkB=radius))
        taken.append(spot)


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


def _dot(colour: str, label: str, size: float = 25.0, marker: str = "o", filled: bool = True,
         alpha: float = 1.0) -> Line2D:
    """A legend entry for scatter markers of area ``size`` points² (drawn nowhere in the axes)."""
    return Line2D([], [], linestyle="", marker=marker, markersize=math.sqrt(size), color=colour, alpha=alpha,
                  markerfacecolor=colour if filled else "none", label=label)


@figure("accuracy_vs_madds", "ImageNet top-1 error (published, single model) against multiply-adds counted by "
        "archstat; bubble area proportional to counted parameters. Errors cite each zoo entry's paper.")
def accuracy_vs_madds(results: dict[str, TableResult], options: ReportOptions) -> plt.Figure:
    from archstat.zoo import ZOO

    points = []
    for name, entry in ZOO.items():
        if entry.top1_err is None or entry.input_size[1] < 200:
            continue
        stats = _count(name)
        points.append((stats.madds / 1e9, _single_crop(entry.top1_err.resolve()), 4 + 2.5 * stats.params / 1e6, name,
                       entry.family))
    families = list(dict.fromkeys(p[4] for p in sorted(points)))
    colour = {f: OKABE_ITO[i % len(OKABE_ITO)] for i, f in enumerate(families)}
    with paper_style():
        fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN, 3.8), layout="constrained")
        for family in families:
            mine = [p for p in points if p[4] == family]
            ax.scatter([p[0] for p in mine], [p[1] for p in mine], s=[p[2] for p in mine],
                       color=colour[family], alpha=0.55, edgecolor=colour[family], linewidth=0.6)
        ax.set_xscale("log")
        ax.margins(x=0.06, y=0.1)  # room around the crowded corners for their labels
        ax.set_xlabel("multiply-adds per image (G, log scale; counted)")
        ax.set_ylabel("ImageNet top-1 error (%; published)")
        fig.legend(handles=[_dot(colour[f], f, alpha=0.55) for f in families], loc="outside right upper",
                   title="family")
        fig.legend(handles=[_dot("grey", f"{m} M", 4 + 2.5 * m, alpha=0.45) for m in (5, 25, 100)],
                   loc="outside right lower", title="parameters", labelspacing=1.3, borderpad=1.0)
        # One label per ShuffleNet v1 scale (g = 3, the paper's default); every other model by name.
        labelled = [p for p in points if not p[3].startswith("shufflenet_v1_") or "_g3_" in p[3]]
        place_labels(ax, [p[0] for p in labelled], [p[1] for p in labelled], [p[3] for p in labelled],
                     [p[2] for p in labelled])
    return fig


@figure("latency_vs_cost", "Measured CPU latency against multiply-adds (left) and memory access (right) for the "
        "ShuffleNet Table 8 models at three resolutions, at one thread (filled: the paper's setting) and at this "
        "machine's default thread count (open); counted by archstat, timed on this machine.",
        needs=("shufflenet_latency",))
def latency_vs_cost(results: dict[str, TableResult], options: ReportOptions) -> plt.Figure:
    rows = results["shufflenet_latency"].rows
    threads = latency_threads(options)
    models = list(dict.fromkeys(r["model"] for r in rows))
    inputs = list(dict.fromkeys(r["input"] for r in rows))
    markers = "os^"
    with paper_style():
        fig, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN, 2.8), layout="constrained", sharey=True)
        for row in rows:
            colour, marker = OKABE_ITO[models.index(row["model"])], markers[inputs.index(row["input"])]
            stats = _count(row["zoo model"], (3, *map(int, row["input"].split("x"))))
            for k, t in enumerate(threads):
                for ax, x in zip(axes, (stats.madds / 1e9, stats.mem_access_bytes / 1e6)):
                    ax.scatter(x, row[f"ms ({t} thr.)"], marker=marker, edgecolors=colour, linewidths=0.8,
                               facecolors=colour if k == 0 else "none")
        for ax, label in zip(axes, ("multiply-adds (G, counted)", "memory access (MB at fp32, counted)")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(label)
        axes[0].set_ylabel("latency (ms, median, this CPU)")
        handles = [_dot(OKABE_ITO[i], m) for i, m in enumerate(models)]
        handles += [_dot("grey", size, marker=marker) for marker, size in zip(markers, inputs)]
        handles += [_dot("grey", f"{t} thread{'s' * (t > 1)}", filled=k == 0) for k, t in enumerate(threads)]
        fig.legend(handles=handles, loc="outside right center")
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
        fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.8), layout="constrained")
        width = 0.2
        for i, (column, label, colour, hatch) in enumerate(series):
            xs = [j + (i - 1.5) * width for j in range(len(rows))]
            ax.bar(xs, [r[column] for r in rows], width, label=label, color=colour, hatch=hatch, edgecolor="black",
                   linewidth=0.4)
        ax.set_xticks(range(len(rows)), labels)
        ax.set_ylabel("share of total (%)")
        ax.set_ylim(0, 100)
        fig.legend(loc="outside upper center", ncols=2)
    return fig


@figure("dw_ratio", "Cost of a depthwise separable convolution relative to a standard one: 1/N + 1/Dk^2 (lines) "
        "and the ratio of archstat's counted multiply-adds (markers).", needs=("dw_separable_ratio",))
def dw_ratio(results: dict[str, TableResult], options: ReportOptions) -> plt.Figure:
    rows = [r for r in results["dw_separable_ratio"].rows if r["layer"].startswith("grid")]
    with paper_style():
        fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.8), layout="constrained")
        dense = [2 ** (i / 8) for i in range(40, 81)]
        for colour, k in zip(OKABE_ITO, RATIO_KERNELS):
            ax.plot(dense, [1 / n + 1 / k ** 2 for n in dense], color=colour, label=f"Dk = {k}: 1/N + 1/Dk²")
            mine = [r for r in rows if r["Dk"] == k]
            ax.scatter([r["N"] for r in mine], [r["counted ratio"] for r in mine], color=colour, marker="o",
                       facecolor="none", zorder=3)
        ax.set_xscale("log", base=2)
        ax.set_xticks(RATIO_CHANNELS, [str(n) for n in RATIO_CHANNELS])
        ax.set_xlabel("output channels N")
        ax.set_ylabel("separable / standard cost")
        handles, _ = ax.get_legend_handles_labels()
        fig.legend(handles=[*handles, _dot("grey", "counted", filled=False)], loc="outside upper center", ncols=2)
    return fig


@figure("peak_memory_vs_batch", "Peak memory of a training step (fp32, SGD with momentum) against the batch size: "
        "archstat's estimate (lines, counted on the meta device) and a real step measured on this machine "
        "(markers).", needs=("training_peak",))
def peak_memory_vs_batch(results: dict[str, TableResult], options: ReportOptions) -> plt.Figure:
    rows = results["training_peak"].rows
    models = list(dict.fromkeys(r["model"] for r in rows))
    with paper_style():
        fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.6), layout="constrained")
        for i, model in enumerate(models):
            mine = [r for r in rows if r["model"] == model]
            batches = [r["batch"] for r in mine]
            ax.plot(batches, [r["estimated (MB)"] for r in mine], color=OKABE_ITO[i])
            ax.scatter(batches, [r["measured (MB)"] for r in mine], color=OKABE_ITO[i], zorder=3)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        batches = sorted({r["batch"] for r in rows})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(ScalarFormatter())
        ax.set_xlabel("batch size")
        ax.set_ylabel("peak memory (MB)")
        handles = [Line2D([], [], color=OKABE_ITO[i], label=m) for i, m in enumerate(models)]
        handles += [Line2D([], [], color="grey", label="estimated"), _dot("grey", "measured")]
        fig.legend(handles=handles, loc="outside right center")
    return fig
