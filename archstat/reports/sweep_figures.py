"""Accuracy against cost from a sweep's database: the Pareto fronts of ``archstat report --from DB``.

Every model of the sweep with a published ImageNet accuracy at the size it was counted at
(:func:`archstat.accuracy.published_accuracy`, each with its source) is a point: accuracy
against multiply-adds, against memory access, and against latency (one figure per machine
that timed the models; a latency is only meaningful where it was measured). Costs are per
image (a cell's count divided by its batch; latencies from the smallest batch timed). The
Pareto front, the points no other point beats on both axes (cheaper and at least as
accurate), is highlighted, joined and labelled; labels never overlap a marker or each other
(:func:`~archstat.reports.figures.place_labels`). The points, their sources and their front
membership are written as CSV and Markdown beside the figures, with an index.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from archstat.accuracy import TIMM_SOURCE
from archstat.errors import ArchstatError
from archstat.grammar import square_side
from archstat.models import TIMM_PREFIX
from archstat.reports.figures import DOUBLE_COLUMN, OKABE_ITO, paper_style, place_labels, plt, save_figure
from archstat.reports.writers import render, write_atomic

__all__ = ["SweepPoint", "sweep_points", "pareto_front", "generate_from_sweep", "draw_pareto", "AXES"]


@dataclass
class SweepPoint:
    """One model at one size: its published accuracy (and source), its counted cost per image,
    and its latency on each machine that timed it."""

    model: str
    size: int
    top1: float
    source: str
    params: int
    madds: float
    mem_access_bytes: float
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """Where the model comes from: ``timm``, ``zoo`` or ``torchvision``."""
        from archstat.zoo import ZOO

        return "timm" if self.model.startswith(TIMM_PREFIX) else "zoo" if self.model in ZOO else "torchvision"


#: The cost axes: name, how a point gives it, axis label, file stem.
AXES = {
    "madds": (lambda p, m: p.madds / 1e9,
              "multiply-adds per image (G, counted; log scale)", "pareto_accuracy_vs_madds"),
    "mem_access": (lambda p, m: p.mem_access_bytes / 1e6,
                   "memory access per image (MB at fp32, counted; log scale)", "pareto_accuracy_vs_mem_access"),
    "latency": (lambda p, m: p.latency_ms.get(m),
                "latency (ms per forward, smallest batch timed, median; log scale)", "pareto_accuracy_vs_latency"),
}


def sweep_points(db: str | Path) -> tuple[list[SweepPoint], list[str]]:
    """The points of the sweep at ``db`` and the models left out, as ``"model at size"`` (no
    published accuracy at that size) or ``"model at size (timed, not counted)"`` (latency rows
    but no count to plot them at). A point's costs come from its ``count`` row of the smallest
    batch; a ``train`` row (a training-mode forward) only where the model has no ``count`` row."""
    from archstat.accuracy import published_accuracy
    from archstat.models import default_input_size
    from archstat.sweep.store import ResultStore

    with ResultStore(db, read_only=True) as store:
        rows = store.rows(status="ok")
    counts: dict[tuple[str, int | str], dict] = {}
    latencies: dict[tuple[str, int | str], dict[str, tuple[int, float]]] = {}
    for row in rows:  # a square size is keyed by its side (224, 3x224x224), the published one too; others by text
        side = (square_side(row["size"]) or row["size"]) if row["size"] is not None \
            else _published_side(row["model"], default_input_size)
        key = (row["model"], side)
        if row["metric"] in ("count", "train") and row["madds"] is not None:
            if key not in counts or _preference(row) < _preference(counts[key]):
                counts[key] = row
        elif row["metric"] == "latency" and row["median_ms"] is not None:
            seen = latencies.setdefault(key, {})
            if row["machine"] not in seen or row["batch"] < seen[row["machine"]][0]:
                seen[row["machine"]] = (row["batch"], row["median_ms"])
    points: list[SweepPoint] = []
    missing = [f"{model} at {side} (timed, not counted)"
               for model, side in sorted(set(latencies) - set(counts), key=_size_order)]
    for (model, side), row in sorted(counts.items(), key=lambda item: _size_order(item[0])):
        accuracy = published_accuracy(model, side) if isinstance(side, int) else None  # published: square crops
        if accuracy is None or not isinstance(side, int):
            missing.append(f"{model} at {side}")
            continue
        batch = row["batch"]
        points.append(SweepPoint(model, side, accuracy.top1, accuracy.source, row["params"], row["madds"] / batch,
                                 row["mem_access_bytes"] / batch,
                                 {m: ms for m, (_, ms) in latencies.get((model, side), {}).items()}))
    return points, missing


def _size_order(key: tuple[str, int | str]) -> tuple[str, int, str]:
    """Model, then square sides in order, then other sizes by their text."""
    model, side = key
    return (model, side, "") if isinstance(side, int) else (model, 1 << 62, side)


def _preference(row: dict) -> tuple[bool, int]:
    """Which of a model's count rows gives its point: inference counts first, then the smallest batch."""
    return row["metric"] != "count", row["batch"]


def _published_side(model: str, default_input_size) -> int:
    try:
        return int(default_input_size(model)[-1])
    except Exception:  # a model no longer known: its rows have no size to plot at
        return 0


def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> list[int]:
    """Indices of the points no other point dominates (no cost higher and accuracy at least as
    high, one of them strictly better), in order of cost."""
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accuracies[i]))
    front, best = [], -math.inf
    for i in order:
        if accuracies[i] > best:
            front.append(i)
            best = accuracies[i]
    return front


#: Each family's colour, the same in every figure.
FAMILY_COLOURS = {family: OKABE_ITO[i] for i, family in enumerate(("timm", "torchvision", "zoo"))}


def _labels(points: Sequence[SweepPoint], among: Sequence[SweepPoint]) -> list[str]:
    """Names of ``points`` without ``timm:``, unless that would make two labels alike (timm's and
    torchvision's ``convnext_tiny``), with the size where the model is in ``among`` at several."""
    short = {p.model: p.model.removeprefix(TIMM_PREFIX) for p in among}
    names = list(short.values())
    sizes: dict[str, set[int]] = {}
    for p in among:
        sizes.setdefault(p.model, set()).add(p.size)
    return [(short[p.model] if names.count(short[p.model]) == 1 else p.model)
            + (f" ({p.size})" if len(sizes[p.model]) > 1 else "") for p in points]


def draw_pareto(points: list[SweepPoint], axis: str, machine: str | None) -> plt.Figure:
    """Accuracy against the cost ``axis`` (a key of :data:`AXES`; latency on ``machine``), the
    Pareto front outlined, joined and labelled."""
    cost, xlabel, _ = AXES[axis]
    chosen = [p for p in points if cost(p, machine) is not None]
    xs = [float(cost(p, machine)) for p in chosen]
    ys = [p.top1 for p in chosen]
    front = pareto_front(xs, ys)
    families = [f for f in FAMILY_COLOURS if any(p.family == f for p in chosen)]
    colour = FAMILY_COLOURS
    with paper_style():
        fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN, 4.6), layout="constrained")
        others = [i for i in range(len(chosen)) if i not in front]
        for family in families:
            mine = [i for i in others if chosen[i].family == family]
            ax.scatter([xs[i] for i in mine], [ys[i] for i in mine], s=12, color=colour[family], alpha=0.35,
                       linewidth=0, label=family if mine else None)
        ax.plot([xs[i] for i in front], [ys[i] for i in front], color="0.2", linewidth=0.8, zorder=2,
                drawstyle="steps-post")
        for family in families:
            mine = [i for i in front if chosen[i].family == family]
            ax.scatter([xs[i] for i in mine], [ys[i] for i in mine], s=28, color=colour[family], edgecolor="black",
                       linewidth=0.7, zorder=3, label=f"{family}, Pareto front" if mine else None)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.08, y=0.08)
        ax.set_xlabel(xlabel + (f"\n{machine}" if machine else ""))
        ax.set_ylabel("ImageNet-1k top-1 accuracy (%, published)")
        models = len({p.model for p in chosen})
        title = f"{models} models" + (f", {len(chosen)} points" if len(chosen) != models else "")
        fig.legend(loc="outside right upper", title=title)
        place_labels(ax, [xs[i] for i in front], [ys[i] for i in front], _labels([chosen[i] for i in front], chosen),
                     [28.0] * len(front))
        for text in ax.texts:  # the front's line may pass behind a label: keep the label readable
            text.set_bbox({"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.3})
    return fig


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def generate_from_sweep(db: str | Path, out: str | Path) -> list[Path]:
    """Draw the Pareto figures of the sweep at ``db`` into ``out`` (created if missing), with
    ``sweep_points.csv|md`` and an index ``README.md``; returns the files written."""
    points, missing = sweep_points(db)
    if not points:
        listed = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise ArchstatError(f"{db}: nothing to plot: no counted model has a published ImageNet accuracy at the "
                            f"size it was counted at ({listed or 'no count rows'}); accuracies are published at "
                            "the models' own sizes (sweep classification models with --sizes default)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    machines = sorted({m for p in points for m in p.latency_ms})
    written: list[Path] = []
    figures: list[tuple[str, str]] = []
    sources = f"accuracies: zoo papers' tables, {TIMM_SOURCE}, torchvision weights " \
              "metadata (each point's source in sweep_points.csv); costs counted by archstat"
    for axis in ("madds", "mem_access"):
        stem = AXES[axis][2]
        caption = f"Published ImageNet top-1 accuracy against counted {axis.replace('_', ' ')}; {sources}."
        written += save_figure(draw_pareto(points, axis, None), out / stem)
        figures.append((stem, caption))
    for machine in machines:
        stem = f"{AXES['latency'][2]}_{_slug(machine)}"
        caption = f"Published ImageNet top-1 accuracy against latency measured on {machine}; {sources}."
        written += save_figure(draw_pareto(points, "latency", machine), out / stem)
        figures.append((stem, caption))
    rows = _point_rows(points, machines)
    columns = list(rows[0])
    numeric = [c for c in columns if c not in ("model", "source", "family") and not c.startswith("front")]
    rendered = {fmt: render(rows, fmt, columns, numeric=numeric) for fmt in ("csv", "markdown")}
    for fmt, ext in (("csv", "csv"), ("markdown", "md")):
        with write_atomic(out / f"sweep_points.{ext}") as fh:
            fh.write(rendered[fmt])
        written.append(out / f"sweep_points.{ext}")
    lines = ["# Accuracy against cost", "",
             f"Generated by `archstat report --from {Path(db).name}`: {len(points)} models with a published "
             f"ImageNet-1k top-1 accuracy at the size they were counted at. Published accuracies carry their "
             f"source (column `source` of [sweep_points.csv](sweep_points.csv)); costs are counted by archstat per "
             f"image; latencies are medians measured on the machine named. Pareto-front models (no other model is "
             f"cheaper and at least as accurate) are outlined, joined and labelled.", ""]
    for stem, caption in figures:
        lines += [f"## {stem}", "", f"![{stem}]({stem}.png)", "", f"{caption} ([PDF]({stem}.pdf))", ""]
    lines += ["## Points", "", rendered["markdown"].strip(), ""]
    if missing:
        lines += [f"Not plotted (no published accuracy at the size counted, or timed but not counted): "
                  f"{len(missing)} models: {', '.join(missing)}.", ""]
    with write_atomic(out / "README.md") as fh:
        fh.write("\n".join(lines))
    return written + [out / "README.md"]


def _point_rows(points: list[SweepPoint], machines: list[str]) -> list[dict]:
    fronts = {}
    for axis in ("madds", "mem_access"):
        cost = AXES[axis][0]
        xs = [float(cost(p, None)) for p in points]
        fronts[axis] = {(points[i].model, points[i].size) for i in pareto_front(xs, [p.top1 for p in points])}
    rows = []
    for p in sorted(points, key=lambda p: p.madds):
        row = {"model": p.model, "size": p.size, "top1": p.top1, "params": p.params,
               "GMAdds": round(p.madds / 1e9, 4), "mem access MB": round(p.mem_access_bytes / 1e6, 2)}
        for machine in machines:
            ms = p.latency_ms.get(machine)
            row[f"ms {machine}"] = "" if ms is None else round(ms, 3)
        row.update({"front madds": "yes" if (p.model, p.size) in fronts["madds"] else "",
                    "front mem access": "yes" if (p.model, p.size) in fronts["mem_access"] else "",
                    "family": p.family, "source": p.source})
        rows.append(row)
    return rows
