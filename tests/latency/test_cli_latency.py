"""``archstat latency``: CSV like ``archstat table``, the roofline as the formula says, one-line errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

import archstat
from archstat.cli import main

FAST = ["--warmup", "1", "--repeats", "2", "--peak-gflops", "100", "--peak-gbs", "10"]


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_rows_per_model_and_size(capsys) -> None:
    assert main(["latency", "--models", "resnet18", "--sizes", "32x32,48x64", "--format", "csv", *FAST]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model,input,batch,device,median_ms,")
    rows = _csv(out)
    assert [(r["model"], r["input"], r["batch"]) for r in rows] == [("resnet18", "3x32x32", "1"),
                                                                     ("resnet18", "3x48x64", "1")]
    # the roofline column is sum over ops of max(flops / 100e9, bytes / 10e9), recomputed here
    stats = archstat.count("resnet18", (1, 3, 32, 32))
    expected = sum(max(r.cost.flops / 100e9, r.cost.mem_access * 4 / 10e9) for r in stats.records) * 1e3
    assert float(rows[0]["roofline_ms"]) == pytest.approx(expected, abs=1e-4)
    assert int(rows[0]["flops"]) == stats.flops and int(rows[0]["mem_access_bytes"]) == stats.mem_access * 4
    assert rows[0]["torch"] == torch.__version__ and rows[0]["peak_gflops"] == "100.0"


def test_every_size_at_every_batch_in_the_sweeps_grammar(capsys) -> None:
    # --sizes and --batch are lists, as in archstat sweep: 2 sizes x 2 batches are 4 rows, size by size;
    # 'default' is resnet18's published size (ResNet18_Weights.IMAGENET1K_V1: crop 224, 3 channels), and a
    # side alone keeps its 3 channels
    assert main(["latency", "--models", "resnet18", "--sizes", "32,default", "--batch", "1,2", "--format",
                 "csv", "--no-roofline", "--warmup", "1", "--repeats", "2"]) == 0
    rows = _csv(capsys.readouterr().out)
    assert [(r["input"], r["batch"]) for r in rows] == [("3x32x32", "1"), ("3x32x32", "2"), ("3x224x224", "1"),
                                                         ("3x224x224", "2")]


def test_fused_cache_model_and_batch(capsys) -> None:
    assert main(["latency", "--models", "resnet18", "--sizes", "32x32", "--batch", "2", "--cache-model", "fused",
                 "--format", "json", *FAST]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["batch"] == 2 and row["cache_model"] == "fused" and row["model_bytes"] < row["mem_access_bytes"]


def test_per_layer_csv(capsys) -> None:
    assert main(["latency", "--models", "resnet18", "--sizes", "32x32", "--per-layer", "--format", "csv", *FAST]) == 0
    rows = _csv(capsys.readouterr().out)
    assert list(rows[0])[:4] == ["model", "input", "name", "kind"] and rows[0]["name"] == "conv1"
    assert {r["bound"] for r in rows} <= {"compute", "memory", "none"}


def test_human_table_says_where_it_ran(capsys) -> None:
    assert main(["latency", "--models", "resnet18", "--sizes", "32x32", *FAST]) == 0
    out = capsys.readouterr().out
    assert "thread(s)" in out and f"torch {torch.__version__}" in out and "roofline peaks: 100.0 GFLOP/s" in out


def test_one_failing_model_does_not_stop_the_others(capsys) -> None:
    # alexnet at 16x16: its second max pool gets a 1x1 map; resnet18 runs
    assert main(["latency", "--models", "resnet18,alexnet", "--sizes", "16x16", "--format", "csv", *FAST]) == 2
    captured = capsys.readouterr()
    assert [r["model"] for r in _csv(captured.out)] == ["resnet18"]
    assert "archstat: error: alexnet:" in captured.err


@pytest.mark.parametrize("argv,message", [
    (["--peak-gflops", "10"], "give both --peak-gflops and --peak-gbs"),
    (["--batch", "0"], "--batch must be at least 1"),
    (["--sizes", "224xabc"], "input size '224xabc' is not of the form"),
])
def test_bad_options_are_one_line_errors(capsys, argv, message) -> None:
    assert main(["latency", "--models", "resnet18", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cuda_without_a_gpu(capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without a GPU, also on one with
    assert main(["latency", "--models", "resnet18", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("archstat: error: --device cuda: CUDA is not available") and err.count("\n") == 1
