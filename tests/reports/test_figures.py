"""Every figure a paper could use: print resolution, no label over another label or a marker, no
legend over data. The boxes are measured on the drawn figure with matplotlib's own transforms
(each marker's path under its collection's transforms, each bar's patch, each line's path)."""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from pathlib import Path

import matplotlib
import pytest
from matplotlib.collections import PathCollection
from matplotlib.patches import Rectangle
from matplotlib.transforms import Affine2D, Bbox
from PIL import Image

import archstat
from archstat.guidelines.figure import guideline_figure
from archstat.reports.figures import FIGURES, PRINT_DPI, save_figure
from archstat.reports.paper_tables import LATENCY_ROWS, LATENCY_SIZES, TABLES, ReportOptions, TableResult, \
    latency_threads
from archstat.reports.sweep_figures import SweepPoint, draw_pareto
from archstat.reports.training_tables import PEAK_MODELS, peak_batches

OPTIONS = ReportOptions(quick=True)


@lru_cache(maxsize=1)
def results() -> dict[str, TableResult]:
    """The tables the figures draw from; the latency table with made-up times (the layout is under
    test, not the timing): 1 ms per 10 M multiply-adds, divided by the thread count."""
    tables = {name: TABLES[name].build(OPTIONS) for name in ("mobilenet_layer_types", "dw_separable_ratio")}
    rows = []
    for label, model in LATENCY_ROWS:
        for size in LATENCY_SIZES:
            madds = archstat.count(model, (1, 3, *size)).madds
            rows.append({"model": label, "zoo model": model, "input": "x".join(map(str, size)),
                         **{f"ms ({t} thr.)": madds / 1e7 / t for t in latency_threads(OPTIONS)}})
    tables["shufflenet_latency"] = TableResult(rows, list(rows[0]))
    peaks = []  # the training peaks: estimated by counting, "measured" made up 2% above
    for model in PEAK_MODELS:
        for batch in peak_batches(OPTIONS):
            estimate = archstat.count(model, (batch, 3, 224, 224), mode="train").peak_train_bytes / 1e6
            peaks.append({"model": model, "batch": batch, "estimated (MB)": estimate, "measured (MB)": 1.02 * estimate})
    tables["training_peak"] = TableResult(peaks, list(peaks[0]))
    return tables


def guideline_rows() -> list[dict]:
    """Rows shaped like run_experiments' for two panels of four configurations (made-up speeds)."""
    return [{"experiment": e, "width": "x1", "platform": "gpu", "config": f"{1}:{k}", "rel_speed": 1 / k,
             "paper_gpu_rel": 1 / (k + 0.5), "paper_arm_rel": None if k == 2 else 1 / (k + 1),
             "mac_rel_speed": 1 / (0.5 + k / 2)} for e in ("G1", "G2") for k in (1, 2, 6, 12)]


@lru_cache(maxsize=1)
def zoo_points() -> list[SweepPoint]:
    """A crowded sweep: every torchvision classification model whose default weights were evaluated
    at 224, at the GFLOPS and accuracy its weights' metadata publish (made-up memory access and
    latency, proportional)."""
    from torchvision.models import get_model_weights, list_models

    points = []
    for name in list_models(module=__import__("torchvision").models):
        weights = get_model_weights(name).DEFAULT
        if getattr(weights.transforms(), "crop_size", [0])[0] == 224:
            gflops, top1 = weights.meta["_ops"], weights.meta["_metrics"]["ImageNet-1K"]["acc@1"]
            points.append(SweepPoint(name, 224, top1, "torchvision", 0, gflops * 1e9, gflops * 4e8,
                                     {"box/cpu": 10 * gflops + 1}))
    return points


SWEEP_FIGURES = {"pareto_madds": ("madds", None), "pareto_latency": ("latency", "box/cpu")}


def drawn(name: str) -> matplotlib.figure.Figure:
    if name in SWEEP_FIGURES:
        return draw_pareto(zoo_points(), *SWEEP_FIGURES[name])
    fig = guideline_figure(guideline_rows(), "a title") if name == "guidelines" else \
        FIGURES[name].draw(results(), OPTIONS)
    fig.canvas.draw()
    return fig


def markers(ax) -> list[Bbox]:
    """Each scatter marker's extent: the marker path under its own scale, at its offset."""
    boxes = []
    for collection in ax.collections:
        if not isinstance(collection, PathCollection) or not len(collection.get_offsets()):
            continue
        [path] = collection.get_paths()
        scales = collection.get_transforms()
        offsets = collection.get_offset_transform().transform(collection.get_offsets())
        for i, (x, y) in enumerate(offsets):
            transform = Affine2D(scales[i % len(scales)]).translate(x, y)
            boxes.append(path.transformed(transform).get_extents())
    return boxes


def bars(ax) -> list[Bbox]:
    return [p.get_window_extent() for p in ax.patches if isinstance(p, Rectangle) and p.get_height()]


def labels(ax, renderer) -> list[tuple[str, Bbox]]:
    return [(t.get_text(), t.get_window_extent(renderer)) for t in ax.texts if t.get_text()]


FIGURE_NAMES = [*FIGURES, "guidelines", *SWEEP_FIGURES]


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_no_label_covers_another_label_or_a_marker(name: str) -> None:
    fig = drawn(name)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        placed = labels(ax, renderer)
        frame = ax.get_window_extent(renderer)
        for (a, box_a), (b, box_b) in combinations(placed, 2):
            assert not box_a.overlaps(box_b), f"{name}: label {a!r} covers label {b!r}"
        for text, box in placed:
            assert not any(box.overlaps(m) for m in markers(ax)), f"{name}: label {text!r} covers a marker"
            assert Bbox.intersection(box, frame) is not None and frame.containsx(box.x0) and \
                frame.containsx(box.x1) and frame.containsy(box.y0) and frame.containsy(box.y1), \
                f"{name}: label {text!r} leaves the axes"
    if name == "accuracy_vs_madds":  # no label is dropped to make room: every ImageNet model with a top-1 error
        from archstat.zoo import ZOO    # is named, ShuffleNet v1 once per scale (g = 3)

        named = {n for n, e in ZOO.items() if e.top1_err and e.input_size[1] >= 200
                 and (not n.startswith("shufflenet_v1_") or "_g3_" in n)}
        assert {text for text, _ in labels(fig.axes[0], renderer)} == named


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_no_legend_covers_data(name: str) -> None:
    fig = drawn(name)
    renderer = fig.canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    assert legends, f"{name} has no legend"
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not any(box.overlaps(m) for m in markers(ax)), f"{name}: the legend covers a marker"
            assert not any(box.overlaps(b) for b in bars(ax)), f"{name}: the legend covers a bar"
            for line in ax.get_lines():
                path = line.get_transform().transform_path(line.get_path())
                assert not path.intersects_bbox(box, filled=False), f"{name}: the legend covers a line"
            assert not any(box.overlaps(b) for _, b in labels(ax, renderer)), f"{name}: the legend covers a label"


def test_figures_are_written_at_print_resolution(tmp_path: Path) -> None:
    """300 dpi: a single-column figure (3.5 in) is over 1,000 px wide, and the PNG says 300 dpi."""
    png, pdf = save_figure(drawn("dw_ratio"), tmp_path / "dw_ratio")
    with Image.open(png) as image:
        assert image.width >= 3.0 * PRINT_DPI and round(image.info["dpi"][0]) == PRINT_DPI == 300
    assert pdf.read_bytes().startswith(b"%PDF")


def test_labels_are_placed_beside_error_bars_too() -> None:
    # error bars draw a LineCollection beside the scatter's PathCollection: it has no marker sizes, and
    # place_labels raised AttributeError ('get_sizes') on such axes
    from archstat.reports.figures import marker_boxes, place_labels, plt

    fig, ax = plt.subplots()
    ax.errorbar([1, 2, 3], [1, 2, 3], yerr=0.2, fmt="none")
    ax.scatter([1, 2, 3], [1, 2, 3], s=30)
    assert len(marker_boxes(ax)) == 3  # the three scatter markers, nothing for the bars
    place_labels(ax, [1, 2, 3], [1, 2, 3], ["a", "b", "c"], [30, 30, 30])
    assert sorted(t.get_text() for t in ax.texts) == ["a", "b", "c"]
    plt.close(fig)
