"""``archstat report --from DB``: the accuracy-against-cost Pareto fronts of a sweep."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archstat.cli import main
from archstat.reports.sweep_figures import draw_pareto, pareto_front, sweep_points
from archstat.sweep.cells import Cell
from archstat.sweep.store import ANY_MACHINE, ResultStore

#: Models with a published accuracy at 224 (torchvision's weights metadata, timm's table) and
#: made-up costs: the figures' layout and the front are under test, not the counts.
MODELS = {"resnet18": 1.8, "resnet50": 4.1, "mobilenet_v2": 0.30, "mobilenet_v3_large": 0.22,
          "shufflenet_v2_x1_0": 0.15, "efficientnet_b0": 0.39, "regnet_y_400mf": 0.40, "convnext_tiny": 4.5,
          "timm:resnet18": 1.8, "densenet121": 2.9, "lenet5": 0.0003}


def sweep_db(path: Path, machines: tuple[str, ...] = ("box-a/cpu",)) -> Path:
    with ResultStore(path) as store:
        for model, gmadds in MODELS.items():
            for batch in (1, 4):  # per image: the smallest batch is read, its count divided by its batch
                cell = Cell(model, None, batch, "count")
                store.put({"cell": cell.key, "machine": "box-a/cpu", "target": ANY_MACHINE, "model": model,
                           "batch": batch, "metric": "count", "status": "ok", "params": 10 ** 7,
                           "madds": int(gmadds * 1e9) * batch, "mem_access_bytes": int(gmadds * 4e8) * batch})
            for machine in machines:
                cell = Cell(model, None, 1, "latency")
                store.put({"cell": cell.key, "machine": machine, "target": machine, "model": model, "batch": 1,
                           "metric": "latency", "status": "ok", "median_ms": 10 * gmadds + 1})
        failed = Cell("vit_b_16", None, 1, "count")  # a failed cell is no point
        store.put({"cell": failed.key, "machine": "box-a/cpu", "target": ANY_MACHINE, "model": "vit_b_16",
                   "batch": 1, "metric": "count", "status": "failed", "reason": "timed out"})
    return path


def test_the_front_is_what_no_other_point_beats() -> None:
    # By hand: (cost, accuracy) a=(1, 70), b=(2, 69) beaten by a, c=(2, 75), d=(3, 75) beaten by c (same
    # accuracy, dearer), e=(0.5, 60), f=(5, 80). Front in cost order: e, a, c, f.
    costs, accs = [1, 2, 2, 3, 0.5, 5], [70, 69, 75, 75, 60, 80]
    assert pareto_front(costs, accs) == [4, 0, 2, 5]


@given(st.lists(st.tuples(st.integers(1, 20), st.integers(50, 90)), min_size=1, max_size=30))
def test_front_points_are_undominated_and_the_rest_dominated(points: list[tuple[int, int]]) -> None:
    costs, accs = [p[0] for p in points], [p[1] for p in points]
    front = set(pareto_front(costs, accs))

    def beaten(i: int) -> bool:  # the definition, checked pairwise
        return any(costs[j] <= costs[i] and accs[j] >= accs[i] and (costs[j], accs[j]) != (costs[i], accs[i])
                   for j in range(len(points)))

    for i in range(len(points)):
        if i in front:
            assert not beaten(i)
        elif not beaten(i):  # a duplicate of a front point: the same cost and accuracy, named once
            assert any((costs[j], accs[j]) == (costs[i], accs[i]) for j in front)


def test_points_carry_published_accuracy_and_per_image_cost(tmp_path: Path) -> None:
    points, missing = sweep_points(sweep_db(tmp_path / "s.sqlite"))
    by_model = {p.model: p for p in points}
    # torchvision's ResNet50_Weights.DEFAULT (IMAGENET1K_V2) publishes acc@1 80.858 at crop 224.
    assert by_model["resnet50"].top1 == pytest.approx(80.858)
    assert "ResNet50_Weights.IMAGENET1K_V2" in by_model["resnet50"].source
    # timm's results-imagenet.csv: resnet18.a1_in1k (timm's default tag) 71.504 at 224.
    assert by_model["timm:resnet18"].top1 == pytest.approx(71.504) and "resnet18.a1_in1k" in \
        by_model["timm:resnet18"].source
    assert by_model["resnet50"].madds == pytest.approx(4.1e9)  # batch 1's count, not batch 4's
    assert by_model["resnet50"].latency_ms == {"box-a/cpu": pytest.approx(42.0)}
    assert missing == ["lenet5 at 32"] and "vit_b_16" not in by_model  # MNIST; a failed cell


def test_report_from_a_sweep_writes_figures_points_and_index(tmp_path: Path) -> None:
    db = sweep_db(tmp_path / "s.sqlite", machines=("box-a/cpu", "box-b/cuda:0"))
    out = tmp_path / "fig"
    assert main(["report", "--from", str(db), "--out-dir", str(out)]) == 0
    stems = ["pareto_accuracy_vs_madds", "pareto_accuracy_vs_mem_access", "pareto_accuracy_vs_latency_box_a_cpu",
             "pareto_accuracy_vs_latency_box_b_cuda_0"]
    for stem in stems:
        assert (out / f"{stem}.png").stat().st_size > 10_000 and (out / f"{stem}.pdf").is_file()
        assert f"({stem}.png)" in (out / "README.md").read_text()
    with open(out / "sweep_points.csv", newline="") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(MODELS) - {"lenet5"}
    # Front by multiply-adds, by hand from MODELS and the published accuracies: shufflenet_v2_x1_0 (0.15 G,
    # 69.36) < mobilenet_v3_large (0.22, 75.27) < efficientnet_b0 (0.39, 77.69) < regnet_y_400mf (0.40,
    # 75.80: dearer and worse, off) ... convnext_tiny (4.5, 82.52) tops the list.
    front = {m for m, r in rows.items() if r["front madds"] == "yes"}
    assert {"shufflenet_v2_x1_0", "mobilenet_v3_large", "efficientnet_b0", "convnext_tiny"} <= front
    assert "regnet_y_400mf" not in front and "resnet18" not in front
    assert "Not plotted" in (out / "README.md").read_text() and "lenet5 at 32" in (out / "README.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--from", "missing.sqlite"], "no sweep database"),
    (["--from", "s.sqlite", "--only", "resnet_flops"], "do not apply"),
])
def test_bad_report_from_is_one_line_exit_2(tmp_path: Path, capsys, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    sweep_db(tmp_path / "s.sqlite")
    assert main(["report", *args, "--out-dir", "fig"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def _count_row(model: str, size: str, batch: int, gmadds: float, metric: str = "count") -> dict:
    cell = Cell(model, size, batch, metric)
    return {"cell": cell.key, "machine": ANY_MACHINE, "target": ANY_MACHINE, "model": model, "size": size,
            "batch": batch, "metric": metric, "status": "ok", "params": 10 ** 7, "madds": int(gmadds * 1e9),
            "mem_access_bytes": int(gmadds * 4e8)}


def test_a_model_at_several_sizes_is_one_point_per_size(tmp_path: Path) -> None:
    # Made-up costs; published top-1: timm's results-imagenet.csv, resnet18.a1_in1k, 71.504 at 224 and
    # 73.164 at 288; torchvision's MobileNet_V2_Weights.IMAGENET1K_V2, 72.154 at 224. By hand: mobilenet_v2
    # (0.3 G, 72.154) beats timm:resnet18 at 224 (1.8 G, 71.504); at 288 (3.0 G, 73.164) it is the most
    # accurate, so on the front: the front is per (model, size), not per model.
    db = tmp_path / "s.sqlite"
    with ResultStore(db) as store:
        store.put(_count_row("mobilenet_v2", "224", 4, 4 * 0.3))  # an inference count, per image 0.3 G ...
        store.put(_count_row("mobilenet_v2", "224", 1, 0.9, metric="train"))  # ... not a training-mode forward's
        store.put(_count_row("timm:resnet18", "224", 1, 1.8))
        store.put(_count_row("timm:resnet18", "288", 1, 3.0))
        store.put(_count_row("timm:resnet18", "224x288", 1, 2.4))  # published accuracies are of square crops
        store.put(_count_row("mobilenet_v2", "3x224x224", 8, 8 * 0.3))  # the same input as 224: one point
        cell = Cell("alexnet", "224", 1, "latency")  # timed, never counted: nothing to plot it at
        store.put({"cell": cell.key, "machine": "box/cpu", "target": "box/cpu", "model": "alexnet", "size": "224",
                   "batch": 1, "metric": "latency", "status": "ok", "median_ms": 5.0})
    points, missing = sweep_points(db)
    assert {(p.model, p.size): p.madds for p in points} == {
        ("mobilenet_v2", 224): pytest.approx(0.3e9), ("timm:resnet18", 224): 1.8e9, ("timm:resnet18", 288): 3.0e9}
    assert missing == ["alexnet at 224 (timed, not counted)", "timm:resnet18 at 224x288"]
    out = tmp_path / "fig"
    assert main(["report", "--from", str(db), "--out-dir", str(out)]) == 0
    with open(out / "sweep_points.csv", newline="") as fh:
        front = {(r["model"], r["size"]): r["front madds"] for r in csv.DictReader(fh)}
    assert front == {("mobilenet_v2", "224"): "yes", ("timm:resnet18", "224"): "", ("timm:resnet18", "288"): "yes"}
    assert "alexnet at 224 (timed, not counted)" in (out / "README.md").read_text()
    fig = draw_pareto(points, "madds", None)
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["mobilenet_v2", "resnet18 (288)"]
    legend = fig.legends[0]
    assert legend.get_title().get_text() == "2 models, 3 points"
    # no entry without points: the one zoo point (mobilenet_v2 is a seed paper's) is on the front
    assert [t.get_text() for t in legend.get_texts()] == ["timm", "timm, Pareto front", "zoo, Pareto front"]


def test_a_sweep_without_published_accuracies_says_what_it_counted(tmp_path: Path, capsys) -> None:
    db = tmp_path / "s.sqlite"
    with ResultStore(db) as store:  # no source publishes resnet18's accuracy at 64x64
        store.put(_count_row("resnet18", "64", 1, 0.15))
    assert main(["report", "--from", str(db), "--out-dir", str(tmp_path / "fig")]) == 2
    err = capsys.readouterr().err.strip()
    assert "resnet18 at 64" in err and "--sizes default" in err and len(err.splitlines()) == 1
