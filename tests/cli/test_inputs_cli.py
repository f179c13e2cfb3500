"""The command line's inputs: --batch always applies, models of every task by name, several inputs,
and input a layer would reject refused in one line with exit status 2."""

from __future__ import annotations

import json

import pytest

from archstat.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_json(capsys, *argv: str) -> list[dict]:
    code, out, err = run_cli(capsys, "table", *argv, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_batch_applies_without_input_size(capsys) -> None:
    # resnet18 at its published 224x224, batch 8: 8 x torchvision's 1,814,073,344 multiply-adds
    [row] = table_json(capsys, "--models", "resnet18", "--batch", "8")
    assert row["input"] == "8x3x224x224" and row["madds"] == 8 * 1_814_073_344


@pytest.mark.parametrize("models", ["", ",", " , "])
def test_an_empty_model_list_is_an_error(capsys, models: str) -> None:
    code, out, err = run_cli(capsys, "table", "--models", models)
    assert code == 2 and out == "" and err.count("\n") == 1 and "no model names" in err


def test_every_task_by_name(capsys) -> None:
    # torchvision's published params (weights' num_params) and multiply-adds (_ops): r3d_18 33,371,472 / 40.697 G
    # on 16-frame 112x112 clips; fcn_resnet50 35,322,218 / 152.717 G at 520x520; raft_small 990,162 / 47.655 G on
    # two 512x512 frames
    rows = {r["model"]: r for r in table_json(capsys, "--models", "r3d_18,fcn_resnet50,raft_small")}
    assert rows["r3d_18"]["input"] == "1x3x16x112x112" and rows["r3d_18"]["params"] == 33_371_472
    assert abs(rows["r3d_18"]["madds"] / 1e9 - 40.697) < 0.0005
    assert rows["fcn_resnet50"]["params"] == 35_322_218 and abs(rows["fcn_resnet50"]["madds"] / 1e9 - 152.717) < 0.0005
    assert rows["raft_small"]["input"] == "1x3x512x512, 1x3x512x512" and rows["raft_small"]["params"] == 990_162
    assert abs(rows["raft_small"]["madds"] / 1e9 - 47.655) < 0.0005


def test_a_detector_takes_a_list_of_batch_images(capsys) -> None:
    # ssdlite320 resizes to 320x320 and publishes 3,440,060 params; --batch 2 means two images in the list
    [row] = table_json(capsys, "--models", "ssdlite320_mobilenet_v3_large", "--batch", "2")
    assert row["input"] == "[3x320x320, 3x320x320]" and row["params"] == 3_440_060 and row["uncounted"] == 0


def test_input_shape_gives_several_inputs(capsys) -> None:
    small = table_json(capsys, "--models", "raft_small", "--input-shape", "1x3x256x256,1x3x256x256")
    same = table_json(capsys, "--models", "raft_small", "--input-size", "3x256x256")
    assert small[0]["madds"] == same[0]["madds"] and small[0]["input"] == "1x3x256x256, 1x3x256x256"


def test_input_shape_excludes_input_size(capsys) -> None:
    code, _, err = run_cli(capsys, "table", "--models", "resnet18", "--input-shape", "1x3x64x64", "--batch", "2")
    assert code == 2 and "without --input-size and --batch" in err


@pytest.mark.parametrize("argv,named", [
    # 1 channel into resnet18's 3-channel stem conv
    (("--models", "resnet18", "--input-size", "1x224x224"), "layer 'conv1' (Conv2d)"),
    # unbatched (3, 224, 224): conv1 accepts it, bn1 (BatchNorm2d) rejects the 3D result as torch does
    (("--models", "resnet18", "--input-shape", "3x224x224"), "layer 'bn1' (BatchNorm2d)"),
])
def test_input_a_layer_rejects_is_refused_in_one_line(capsys, argv, named: str) -> None:
    code, out, err = run_cli(capsys, "table", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and named in err and "Traceback" not in err


def test_ops_lists_what_archstat_knows(capsys) -> None:
    # nn.LSTM (the module) and lstm (the kernel it calls, as torch._VF.lstm) are both costed by the rnn formula
    code, out, _ = run_cli(capsys, "ops", "lstm", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and {r["via"] for r in rows} == {"module", "function"}
    assert all(r["formula"] == "rnn" and r["counts"] == "madds" for r in rows)
    code, _, err = run_cli(capsys, "ops", "no_such_op")
    assert code == 2 and "no op matches" in err


@pytest.mark.parametrize("argv", [
    ("--input-size", "99999999999999999999x64x64"),  # a dimension beyond int64: was a TypeError from torch
    ("--batch", "99999999999999999999999"),          # the same, in the batch
    ("--input-size", "3x4000000000x4000000000"),     # 4.8e19 elements: was torch's storage size overflow
    ("--input-shape", "1x3x4000000000x4000000000"),
])
def test_an_oversized_input_is_refused_in_one_line(capsys, argv) -> None:
    code, out, err = run_cli(capsys, "table", "--models", "squeezenet1_0", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and "too large" in err and "internal error" not in err


@pytest.mark.parametrize("argv,needle", [
    (("--input-size", ""), "input size is empty"),          # used to mean the published size
    (("--input-size", "  "), "input size is empty"),
    (("--input-size", "3x224x224x"), "has an empty part"),    # used to be 3x224x224
    (("--input-size", "3xx224"), "has an empty part"),
    (("--input-shape", ""), "has an empty shape"),  # used to mean the published size
    (("--input-shape", "1x3x64x64,"), "has an empty shape"),  # used to be 1x3x64x64
    (("--models", "fasterrcnn_mobilenet_v3_large_320_fpn", "--batch", "99999999999999999999999"), "too large"),
])
def test_an_empty_size_or_part_is_refused(capsys, argv, needle: str) -> None:
    code, out, err = run_cli(capsys, "table", "--models", "squeezenet1_0", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err


@pytest.mark.parametrize("sizes", ["", " , "])
def test_latency_refuses_empty_sizes_before_timing(capsys, sizes: str) -> None:
    # '' used to mean each model's own size, as an absent --sizes does
    code, out, err = run_cli(capsys, "latency", "--models", "squeezenet1_0", "--sizes", sizes, "--no-roofline")
    assert code == 2 and out == "" and err.count("\n") == 1 and "--sizes takes comma-separated sizes" in err


def test_input_size_excludes_input_shape_even_when_empty(capsys) -> None:
    code, _, err = run_cli(capsys, "table", "--models", "resnet18", "--input-shape", "1x3x64x64", "--input-size", "")
    assert code == 2 and "without --input-size and --batch" in err
