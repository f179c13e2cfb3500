"""``archstat guidelines --quick``: what its output must show (never how fast anything ran)."""

from __future__ import annotations

import csv
import re

import pytest

from archstat.cli import main

HW = 56 * 56


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[list[dict], object]:
    out = tmp_path_factory.mktemp("guidelines")
    assert main(["guidelines", "--quick", "--out-dir", str(out), "--format", "csv"]) == 0
    with open(out / "guidelines.csv", newline="") as fh:
        return list(csv.DictReader(fh)), out


def _rows(rows: list[dict], experiment: str) -> list[dict]:
    return [r for r in rows if r["experiment"] == experiment]


def _pairs(channels: str) -> tuple[int, int]:
    """``"(90,182)"`` -> (90, 182); ``"c=180/182 alternating"`` -> (180, 182); ``"c=128"`` -> (128, 128)."""
    numbers = [int(n) for n in re.findall(r"\d+", channels)]
    return (numbers[0], numbers[1]) if len(numbers) > 1 else (numbers[0], numbers[0])


def test_csv_columns_and_rows(run) -> None:
    rows, out = run
    with open(out / "guidelines.csv") as fh:
        assert fh.readline().startswith("experiment,config,madds,flops,mem_access,median_ms,")
    assert [r["config"] for r in _rows(rows, "G1")] == ["1:1", "1:2", "1:6", "1:12"]
    assert [r["config"] for r in _rows(rows, "G2")] == ["g=1", "g=2", "g=4", "g=8"]
    assert [r["config"] for r in _rows(rows, "G3")] == ["1-fragment", "2-fragment-series", "4-fragment-series",
                                                       "2-fragment-parallel", "4-fragment-parallel"]
    assert [r["config"] for r in _rows(rows, "G4")] == ["ReLU+shortcut", "ReLU", "shortcut", "none"]
    assert all(float(r["median_ms"]) == float(r["median_ms"]) for r in rows)  # a number (no timing assertion)


@pytest.mark.parametrize("experiment", ["G1", "G2", "G3", "G4"])
def test_multiply_adds_are_equal_within_one_percent(run, experiment) -> None:
    madds = [int(r["madds"]) for r in _rows(run[0], experiment)]
    assert max(madds) / min(madds) - 1 <= 0.01, madds


@pytest.mark.parametrize("experiment", ["G1", "G2", "G3"])
def test_flops_are_equal_within_one_percent(run, experiment) -> None:
    flops = [int(r["flops"]) for r in _rows(run[0], experiment)]
    assert max(flops) / min(flops) - 1 <= 0.01, flops


def test_g4_flops_differ_by_exactly_the_element_wise_work(run) -> None:
    # archstat's flops count one per element-wise output, which the paper's FLOPs leave out. Per unit
    # (c = 32: 32 -> 8 -> 8 -> 32 on 56x56): ReLUs write 3136 * (8 + 8 + 32), the add 3136 * 32.
    per_unit = {"ReLU+shortcut": HW * (8 + 8 + 32 + 32), "ReLU": HW * (8 + 8 + 32), "shortcut": HW * 32, "none": 0}
    for r in _rows(run[0], "G4"):
        assert int(r["flops"]) - 2 * int(r["madds"]) == 10 * per_unit[r["config"]]


def test_g1_mac_is_eq1_and_grows_with_imbalance(run) -> None:
    rows = _rows(run[0], "G1")
    for r in rows:  # 10 blocks x (c1 -> c2, c2 -> c1): 20 convs, each hw(c1 + c2) + c1 c2
        c1, c2 = _pairs(r["channels"])
        assert int(r["mem_access"]) == 20 * (HW * (c1 + c2) + c1 * c2)
    mac = [int(r["mem_access"]) for r in rows]
    assert mac == sorted(mac) and len(set(mac)) == 4  # minimal at 1:1, increasing to 1:12


def test_g2_mac_is_eq2_and_grows_with_groups(run) -> None:
    rows = _rows(run[0], "G2")
    for r in rows:  # 5 x (ca -> cb, cb -> ca) with g groups: 10 convs, each hw(ca + cb) + ca cb / g
        g = int(r["config"].split("=")[1])
        ca, cb = _pairs(r["channels"])
        assert int(r["mem_access"]) == 10 * (HW * (ca + cb) + ca * cb // g)
    mac = [int(r["mem_access"]) for r in rows]
    assert mac == sorted(mac) and len(set(mac)) == 4


def test_paper_figures_sit_beside_each_row(run) -> None:
    rows = run[0]
    first = _rows(rows, "G1")[0]
    # Table 1, 1:1 at x1: GTX 1080Ti 1480 batches/s, Snapdragon 810 76.2 images/s
    assert (float(first["paper_gpu_batches_per_s"]), float(first["paper_arm_images_per_s"])) == (1480, 76.2)
    assert all("arXiv:1807.11164" in r["paper_source"] for r in rows)
    # relative paper speeds: Table 2 g=8 GPU 634 / 2451 = 0.2587
    assert float(_rows(rows, "G2")[3]["paper_gpu_rel"]) == pytest.approx(634 / 2451, abs=1e-4)


def test_environment_is_recorded(run) -> None:
    r = run[0][0]
    assert r["device"] == "cpu" and r["torch"] and r["torchvision"] and r["cpu"] and int(r["threads"]) >= 1


def test_figure_written_as_png_and_pdf(run) -> None:
    out = run[1]
    assert (out / "guidelines.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "guidelines.pdf").read_bytes()[:5] == b"%PDF-"


def test_bad_input_is_one_line_exit_2(capsys) -> None:
    assert main(["guidelines", "--experiments", "G9", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archstat: error: unknown experiment") and err.count("\n") == 1
