"""``archstat report``: every table and figure is written, measured columns are measured."""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import pytest

from archstat.cli import main
from archstat.reports import paper_tables
from archstat.reports.figures import FIGURES
from archstat.reports.paper_tables import TABLES, ReportOptions, clear_cache, separable_ratio
from archstat.zoo import ZOO
from archstat.zoo.resnet import Bottleneck, ResNet


def test_quick_report_writes_every_table_and_figure(tmp_path: Path, capsys) -> None:
    assert main(["report", "--quick", "--out-dir", str(tmp_path)]) == 0
    for name in TABLES:
        for ext in ("csv", "md", "tex"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0, (name, ext)
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 1000, (name, ext)
    index = (tmp_path / "README.md").read_text()
    assert all(f"({name}.png)" in index for name in FIGURES) and all(f"### {name}:" in index for name in TABLES)
    latency = list(csv.DictReader((tmp_path / "shufflenet_latency.csv").open()))
    assert {(r["zoo model"], r["input"]) for r in latency} == {
        (m, f"{h}x{w}") for _, m in paper_tables.LATENCY_ROWS for h, w in paper_tables.LATENCY_SIZES}
    # timed at one thread (Table 8's setting) and at the default count, each with its spread and the load
    threads = paper_tables.latency_threads(ReportOptions(quick=True))
    assert threads[0] == 1
    for r in latency:
        for t in threads:
            assert float(r[f"ms ({t} thr.)"]) > 0 and float(r[f"IQR ms ({t} thr.)"]) >= 0
        assert r["other busy"].isdigit() and (r["flag"].startswith("UNDER LOAD") == (r["flag"] != ""))
    notes = (tmp_path / "shufflenet_latency.md").read_text()
    assert "No other process shared the CPU" in notes or "UNDER LOAD" in notes


def test_measured_columns_follow_the_model_not_the_paper(monkeypatch) -> None:
    """Swap the network standing for ResNet-50 for a slimmer one: its measured MAdds move,
    the published 3.8 G stays."""
    before = {r["model"]: r for r in TABLES["resnet_flops"].build(ReportOptions()).rows}
    entry = ZOO["resnet50_v1"]
    slim = type(entry)(**{**entry.__dict__, "builder": lambda: ResNet(Bottleneck, (3, 4, 6, 3), width_per_group=32)})
    monkeypatch.setitem(ZOO, "resnet50_v1", slim)
    clear_cache()
    after = {r["model"]: r for r in TABLES["resnet_flops"].build(ReportOptions()).rows}
    clear_cache()
    assert after["ResNet-50"]["FLOPs (pub., G)"] == before["ResNet-50"]["FLOPs (pub., G)"] == "3.8"
    assert float(after["ResNet-50"]["MAdds v1 (G)"]) < float(before["ResNet-50"]["MAdds v1 (G)"])
    # the recorded finding explains 3.858 G, not the slim net's count: a mismatch, flagged
    assert (before["ResNet-50"]["verdict"], after["ResNet-50"]["verdict"]) == ("finding", "mismatch")
    assert after["ResNet-50"]["flag"].startswith("MISMATCH")
    assert after["ResNet-18"] == before["ResNet-18"]


def test_a_figure_has_the_verdict_zoo_check_gives_it(capsys) -> None:
    """Where a report row shows a zoo model's own figure, its verdict is the one ``archstat zoo --check``
    prints: ResNet Table 1 for every resnet<N>_v1 (ResNet-34 and -50 are findings in both), and ShuffleNet
    Table 2's nominal complexity for the networks whose zoo figure it is."""
    import json

    from archstat.cli import main

    resnet = {f"resnet{r['model'].removeprefix('ResNet-')}_v1": r["verdict"]
              for r in TABLES["resnet_flops"].build(ReportOptions()).rows}
    shufflenet = {r["zoo model"]: r["verdict"] for r in TABLES["shufflenet_complexity"].build(ReportOptions()).rows}
    assert main(["zoo", "--check", "--models", ",".join([*resnet, *shufflenet]), "--format", "json"]) == 0
    zoo = {r["model"]: r for r in json.loads(capsys.readouterr().out) if r["metric"] == "madds"}
    assert resnet == {name: zoo[name]["verdict"] for name in resnet}
    assert [resnet[f"resnet{d}_v1"] for d in (18, 34, 50, 101, 152)] == ["ok", "finding", "finding", "ok", "ok"]
    table2 = [name for name in shufflenet if "Table 2" in zoo[name]["source"]]
    assert len(table2) == 7  # 0.25x for all five g, 0.5x for g = 1 and 2
    assert {name: shufflenet[name] for name in table2} == {name: zoo[name]["verdict"] for name in table2}


@pytest.mark.parametrize("n", paper_tables.RATIO_CHANNELS)
@pytest.mark.parametrize("k", paper_tables.RATIO_KERNELS)
def test_ratio_grid_equals_one_over_n_plus_one_over_k_squared(n: int, k: int) -> None:
    # dw: k^2*M*DF^2, pw: M*N*DF^2, std: k^2*M*N*DF^2 -> exactly 1/N + 1/k^2
    assert separable_ratio(paper_tables.RATIO_INPUT, n, k) == Fraction(1, n) + Fraction(1, k * k)


def test_ratio_table_rows_are_exact_to_floating_point() -> None:
    table = TABLES["dw_separable_ratio"].build(ReportOptions())
    assert all(r["exact"] for r in table.rows)
    assert all(r["counted ratio"] == pytest.approx(r["1/N + 1/Dk^2"], rel=1e-15) for r in table.rows)
    assert sum(r["layer"].startswith("mobilenet_v1") for r in table.rows) == 13  # MobileNet v1's 13 dw layers


def test_unknown_report_item_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(["report", "--only", "no_such_table", "--out-dir", str(tmp_path)]) == 2
    assert "unknown report item no_such_table" in capsys.readouterr().err


def test_report_help_names_every_registered_table_and_figure() -> None:
    """The help text is written by hand (building the parser must not import matplotlib): it must
    name every table and figure the registries hold."""
    import archstat.reports.run  # noqa: F401  (registers the training tables too)
    from archstat.cli import build_parser

    [sub] = [a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction"]
    description = " ".join(sub.choices["report"].description.split())
    missing = [name for name in (*TABLES, *FIGURES) if name not in description]
    assert not missing, f"archstat report --help does not name {missing}"
