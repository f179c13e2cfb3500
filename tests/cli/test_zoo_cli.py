"""``archstat zoo`` and ``archstat zoo --check``: listing, counting, formats, errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

import archstat
from archstat.cli import main
from archstat.zoo import ZOO


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_csv_has_every_model_with_its_sources(capsys) -> None:
    code, out, _ = run_cli(capsys, "zoo", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["model"] for r in rows] == list(ZOO)
    se = next(r for r in rows if r["model"] == "se_resnet50")
    assert se["arxiv"] == "1709.01507" and se["madds_as_printed"] == "3.87" and float(se["madds_published"]) == 3.87e9
    assert "Table 2" in se["madds_source"] and se["same_as"] == "timm:legacy_seresnet50"


def test_list_human_table_shows_printed_figures(capsys) -> None:
    code, out, _ = run_cli(capsys, "zoo", "--family", "senet")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "archstat zoo: 4 models"
    assert any(line.startswith("se_resnet50 ") and "28.1M" in line and "3.87 GFLOPs" in line for line in lines)


def test_check_json_counts_at_the_papers_input(capsys) -> None:
    code, out, _ = run_cli(capsys, "zoo", "--check", "--models", "mobilenet_v1*,squeezenet1_0", "--format", "json")
    assert code == 0
    rows = json.loads(out)
    assert {r["model"] for r in rows} == {"mobilenet_v1", "mobilenet_v1_x0_75", "mobilenet_v1_x0_5",
                                          "mobilenet_v1_x0_25", "squeezenet1_0"}
    squeeze = {r["metric"]: r for r in rows if r["model"] == "squeezenet1_0"}
    assert squeeze["madds"]["input_size"] == "3x227x227"
    assert squeeze["madds"]["counted_value"] == archstat.count("squeezenet1_0", (1, 3, 227, 227)).madds
    assert squeeze["params"]["published_value"] == 1_248_424 and squeeze["params"]["verdict"] == "ok"
    for r in rows:
        assert r["delta"] == pytest.approx((r["counted_value"] - r["published_value"]) / r["published_value"])


def test_check_human_output_lists_findings_with_their_reason(capsys) -> None:
    code, out, _ = run_cli(capsys, "zoo", "--check", "--models", "resnet50_v1,xception")
    assert code == 0
    assert "findings and mismatches" in out and "Table 1 prints 3.8 G" in out
    assert "unpublished" in out  # Xception's paper prints no FLOPs


@pytest.mark.parametrize("fmt", ["markdown", "latex"])
def test_check_paper_formats(capsys, fmt: str) -> None:
    code, out, _ = run_cli(capsys, "zoo", "--check", "--models", "lenet5", "--format", fmt)
    assert code == 0
    assert ("| lenet5" in out) if fmt == "markdown" else (r"\begin{tabular}" in out and "lenet5" in out)


def test_check_writes_out_file(capsys, tmp_path) -> None:
    target = tmp_path / "check.csv"
    code, out, err = run_cli(capsys, "zoo", "--check", "--models", "lenet5", "--format", "csv", "--out", str(target))
    assert code == 0 and out == "" and "wrote" in err
    rows = list(csv.DictReader(target.open()))
    assert [(r["model"], r["metric"], r["verdict"]) for r in rows] == [("lenet5", "params", "ok"),
                                                                      ("lenet5", "madds", "ok")]


def test_check_exits_1_on_a_mismatch(capsys, monkeypatch) -> None:
    """A tolerance too tight for the count, with no finding recorded, is a mismatch: exit status 1."""
    from dataclasses import replace

    entry = ZOO["lenet5"]
    monkeypatch.setitem(ZOO, "lenet5", replace(entry, madds=replace(entry.madds, tolerance=0.001)))
    code, out, _ = run_cli(capsys, "zoo", "--check", "--models", "lenet5")
    assert code == 1 and "mismatch" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--models", "nosuchnet*"], "no zoo model matches"),
    (["--family", "transformers"], "unknown family"),
])
def test_bad_selection_is_a_one_line_error(capsys, argv: list[str], message: str) -> None:
    code, out, err = run_cli(capsys, "zoo", *argv)
    assert code == 2 and out == ""
    assert err.startswith("archstat: error:") and message in err and len(err.strip().splitlines()) == 1


def test_console_script_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "archstat", "zoo", "--models", "lenet5", "--format", "csv"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("lenet5,lenet,")


def test_zoo_models_work_in_table_and_layers(capsys) -> None:
    code, out, _ = run_cli(capsys, "table", "--models", "alexnet_v1,shufflenet_v1_g3_x0_5", "--format", "csv")
    assert code == 0 and [r["input"] for r in csv.DictReader(io.StringIO(out))] == ["1x3x227x227", "1x3x224x224"]
    code, out, _ = run_cli(capsys, "layers", "--models", "lenet5", "--by-type")
    assert code == 0 and "conv" in out
