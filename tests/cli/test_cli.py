"""The command line: what ``archstat table`` / ``archstat layers`` print and how they fail."""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import archstat
from archstat.cli import main
from archstat.zoo import ZOO, ZooEntry


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_table_csv_has_raw_integers_from_the_api(capsys) -> None:
    code, out, _ = run_cli(capsys, "table", "--models", "resnet50,se_resnet50", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert out.splitlines()[0].startswith("model,input,params,madds,flops,mem_access")
    for row in rows:
        stats = archstat.count(row["model"])
        assert int(row["params"]) == stats.params and int(row["madds"]) == stats.madds
        assert int(row["flops"]) == stats.flops and int(row["mem_access"]) == stats.mem_access
    assert [r["model"] for r in rows] == ["resnet50", "se_resnet50"]
    assert rows[0]["params"] == "25557032"  # torchvision ResNet50_Weights num_params


def test_table_human_units(capsys) -> None:
    code, out, _ = run_cli(capsys, "table", "--models", "resnet50")
    header, _, row = out.splitlines()[:3]
    assert "params (M)" in header and "MAdds (G)" in header and "mem access (MB)" in header
    assert "25.557" in row and "4.089" in row


def test_input_size_and_batch(capsys) -> None:
    _, out, _ = run_cli(capsys, "table", "--models", "resnet18", "--input-size", "112x112", "--batch", "2",
                        "--format", "json")
    [row] = json.loads(out)
    assert row["input"] == "2x3x112x112"
    assert row["madds"] == archstat.count("resnet18", (2, 3, 112, 112)).madds


def test_glob_sweeps(capsys) -> None:
    code, out, _ = run_cli(capsys, "table", "--models", "resnet1*", "--format", "csv")
    got = [r["model"] for r in csv.DictReader(io.StringIO(out))]
    assert code == 0 and got == fnmatch.filter(archstat.available_models(), "resnet1*") and "resnet152" in got


@pytest.mark.parametrize("fmt,check", [
    ("markdown", lambda text: text.splitlines()[1].startswith("| ---")),
    ("latex", lambda text: r"\begin{tabular}" in text and r"\bottomrule" in text),
    ("json", lambda text: json.loads(text)[0]["model"] == "squeezenet1_1"),
])
def test_formats(capsys, fmt, check) -> None:
    code, out, _ = run_cli(capsys, "table", "--models", "squeezenet1_1", "--format", fmt)
    assert code == 0 and check(out)


def test_out_is_written_and_a_failed_run_keeps_the_old_file(capsys, tmp_path) -> None:
    target = tmp_path / "t.csv"
    assert run_cli(capsys, "table", "--models", "resnet18", "--format", "csv", "--out", str(target))[0] == 0
    first = target.read_text()
    assert first.startswith("model,input,params")
    code, _, err = run_cli(capsys, "table", "--models", "not_a_model", "--out", str(target))
    assert code == 2 and target.read_text() == first
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no temporary files left behind


@pytest.mark.parametrize("argv,needle", [
    (["table", "--models", "resnt50"], "did you mean resnet50"),
    (["table", "--models", "alexnet", "--input-size", "3x32x32"], "layer 'features.12' (MaxPool2d)"),
    (["table", "--models", "resnet18", "--input-size", "3xtwo"], "not of the form"),
    (["table", "--models", "nothing_matches_*"], "no model matches"),
    (["layers", "--models", "resnet18", "--depth", "0"], "--depth must be at least 1"),
    (["table", "--models", "resnet18", "--batch", "0"], "--batch must be at least 1"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_console_script_never_shows_a_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "archstat", "table", "--models", "resnt50"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("archstat: error: unknown model") and "Traceback" not in proc.stderr


def test_layers_per_op_depth_and_type(capsys) -> None:
    stats = archstat.count("resnet18")
    _, out, _ = run_cli(capsys, "layers", "--models", "resnet18", "--format", "csv")
    assert len(out.strip().splitlines()) == 1 + len(stats.records)
    _, out, _ = run_cli(capsys, "layers", "--models", "resnet18", "--depth", "1", "--format", "csv")
    modules = [r["module"] for r in csv.DictReader(io.StringIO(out))]
    assert modules == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    _, out, _ = run_cli(capsys, "layers", "--models", "resnet18", "--by-type", "--format", "json")
    shares = json.loads(out)
    assert sum(r["madds_share"] for r in shares) == pytest.approx(100.0)
    assert shares[0]["kind"] == "conv 3x3"  # ResNet-18's 3x3 convs carry most of the work


class FFT(nn.Module):
    def forward(self, x):
        return torch.special.bessel_j0(x)  # a Bessel function: no formula


def test_layers_marks_uncounted_ops(capsys, monkeypatch) -> None:
    # registered under a name so the CLI can build it; the table flags the op archstat does not know
    monkeypatch.setitem(ZOO, "fft_probe", ZooEntry(name="fft_probe", builder=FFT, family="test", paper="-",
                                                   arxiv="-", input_size=(3, 8, 8)))
    code, out, err = run_cli(capsys, "layers", "--models", "fft_probe")
    assert code == 0 and "UNCOUNTED" in out and "not counted" in err
