"""``archstat.check`` and ``archstat check``: what they report, how they run without the optional
counters, and that the caller's model is left exactly as it was."""

from __future__ import annotations

import copy
import csv
import io
import sys
import warnings

import pytest
import torch
from torch import nn

import archstat
from archstat.cli import main
from archstat.crosscheck import TOOLS
from archstat.errors import ArchstatError


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def small() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 4))


def quiet_check(*args, **kwargs) -> archstat.crosscheck.CheckReport:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return archstat.check(*args, **kwargs)


def test_missing_counters_are_reported_and_the_rest_still_runs(monkeypatch) -> None:
    # A None entry in sys.modules makes `import thop` raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, "thop", None)
    monkeypatch.setitem(sys.modules, "ptflops.pytorch_engine", None)
    report = quiet_check(small(), (1, 3, 8, 8))
    assert set(report.missing) == {"thop", "ptflops"} and "not installed" in report.missing["thop"]
    assert "pip install thop" in report.missing["thop"]
    assert set(report.results) == {"torch", "fvcore"} - ({"fvcore"} if TOOLS["fvcore"].unavailable() else set())
    rows = {r["tool"]: r for r in report.totals_rows(human=False)}
    assert rows["thop"]["madds_equivalent"] is None and "not installed" in rows["thop"]["status"]


def test_cli_says_which_counters_are_missing(capsys, monkeypatch) -> None:
    for name in ("fvcore.nn", "thop", "ptflops.pytorch_engine"):
        monkeypatch.setitem(sys.modules, name, None)
    code, out, err = run_cli(capsys, "check", "--models", "resnet18", "--input-size", "64x64")
    assert code == 0
    for tool in ("fvcore", "thop", "ptflops"):
        assert f"archstat: {tool} not run: not installed" in err
    assert "torch" in out and "archstat" in out


def test_a_failing_counter_is_reported_not_raised(monkeypatch) -> None:
    def broken(tool, model, x):
        raise RuntimeError("cannot trace this")

    monkeypatch.setitem(TOOLS, "fvcore", TOOLS["fvcore"].__class__(**{**TOOLS["fvcore"].__dict__, "runner": broken}))
    report = quiet_check(small(), (1, 3, 8, 8), tools=["fvcore", "torch"])
    assert report.failed == {"fvcore": "RuntimeError: cannot trace this"} and "torch" in report.results


def test_the_callers_model_is_left_untouched() -> None:
    pytest.importorskip("thop", reason="thop is an optional counter")
    model = small().train()
    before = copy.deepcopy(model.state_dict())
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    attributes = [set(vars(m)) for m in model.modules()]
    quiet_check(model, (1, 3, 8, 8))
    assert model.training and all(m.training for m in model.modules())
    assert list(model.state_dict()) == list(before)  # no total_ops / total_params buffers
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # BN running stats too
    assert [set(vars(m)) for m in model.modules()] == attributes  # no __flops__ / __params__
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks
    assert torch.nn.functional.relu.__module__ == "torch.nn.functional"  # ptflops's patches undone


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.LazyConv2d(4, 3), nn.Flatten()),  # the first tool's run gave it weights, unseeded
    lambda: "lenet5",                                           # its random weights were drawn from the caller's
], ids=["lazy module", "name"])
def test_check_leaves_the_callers_random_state(make) -> None:
    model = make()  # built before the state is taken: its own draws are the caller's
    torch.manual_seed(123)
    state = torch.get_rng_state()
    report = quiet_check(model, None if isinstance(model, str) else (2, 3, 8, 8), tools=["torch"])
    assert torch.equal(torch.get_rng_state(), state)
    # FlopCounterMode's FLOPs / 2 are archstat's madds for conv and linear (all the madds here): it ran on the
    # initialised model, as archstat counted it
    assert report.results["torch"].total == report.stats.madds > 0
    if isinstance(model, nn.Module):
        assert model[0].has_uninitialized_params()  # the caller's lazy module is still lazy


def test_totals_and_csv(capsys) -> None:
    pytest.importorskip("fvcore", reason="fvcore is an optional counter")
    code, out, _ = run_cli(capsys, "check", "--models", "resnet18", "--input-size", "112x112", "--format", "csv",
                           "--tools", "fvcore,torch")
    rows = {r["tool"]: r for r in csv.DictReader(io.StringIO(out))}
    assert code == 0 and list(rows)[:3] == ["archstat", "fvcore", "torch"]
    madds = archstat.count("resnet18", (1, 3, 112, 112)).madds
    assert int(rows["archstat"]["madds_equivalent"]) == madds
    # FlopCounterMode reports 2 FLOPs per multiply-add: its raw total is twice its madds equivalent.
    assert int(rows["torch"]["raw_total"]) == 2 * int(rows["torch"]["madds_equivalent"]) == 2 * madds
    # fvcore adds 2 per batch-norm element and the global average pool's input to the multiply-adds.
    assert int(rows["fvcore"]["madds_equivalent"]) == archstat.count("resnet18", (1, 3, 112, 112),
                                                                    convention="fvcore").madds
    # ResNet-18 is its own paper network (basic blocks: v1 and v1.5 are the same): the paper row.
    assert rows["paper"]["reports"] == "multiply-adds (printed)" and "1512.03385" in rows["paper"]["version"]


def test_check_resnet50_names_the_op_types_behind_the_spread(capsys) -> None:
    """The 4.09 / 4.11 / 4.13 G spread: torch 4.0892 (8.1784 GFLOPs / 2), fvcore 4.1115 (+ batch norm at
    2 per element, + the 2048x7x7 average pool's input), thop 4.1337 (batch norm at 4 per element,
    + (49 + 1) per pooled output), ptflops 4.1324 (batch norm 2, ReLU and pools 1 per element, counted
    twice, + the fc bias); the paper's 3.8 is ResNet v1 (stride in the first 1x1)."""
    for tool in TOOLS:
        pytest.importorskip(TOOLS[tool].package, reason=f"{tool} is an optional counter")
    code, out, _ = run_cli(capsys, "check", "--models", "resnet50")
    assert code == 0
    lines = {line.split(" ")[0]: line for line in out.splitlines()
             if " = archstat " in line or line.startswith("paper")}
    # BN elements 11,113,984 (see test_conventions); ReLU outputs 9,608,704 = BN elements minus the
    # four downsample BNs (802,816 + 401,408 + 200,704 + 100,352); max pool input 64x112x112 = 802,816.
    assert lines["fvcore"].startswith("fvcore 4.1115 G = archstat 4.0892 G + 22.23 M batch norm (2/el)")
    assert lines["thop"].startswith("thop 4.1337 G = archstat 4.0892 G + 44.46 M batch norm (4/el)")
    assert "adaptive avg pool" in lines["fvcore"] and "adaptive avg pool" in lines["thop"]
    assert lines["torch"] == "torch 4.0892 G (8.1784 GFLOPs / 2) = archstat 4.0892 G: the same ops, counted the same"
    assert "+ 19.22 M activation (2/el; 9.61 M of it on 17 flagged layers)" in lines["ptflops"]
    assert "1,000 bias" in lines["ptflops"] and "max pool" in lines["ptflops"]
    assert "resnet50_v1" in lines["paper"] and "3.8580 G" in lines["paper"] and "stride in the 3x3" in lines["paper"]
    assert "ptflops  ReLU" in out and "counts it twice" in out


def test_report_api() -> None:
    report = quiet_check(small(), (1, 3, 8, 8), tools=["torch"])
    assert set(report.totals) == {"archstat", "torch"}
    # Conv 8x8x8 outputs x 3*9 = 13,824 and the linear 8*4 = 32 multiply-adds, as FlopCounterMode sees them.
    assert report.totals["archstat"] == report.totals["torch"] == 13_824 + 32
    assert report.flags == [] and report.by_type()[0].op_type == "conv"


def test_bad_arguments(capsys) -> None:
    with pytest.raises(ArchstatError, match="unknown tool"):
        archstat.check(small(), (1, 3, 8, 8), tools=["deepspeed"])
    with torch.device("meta"):
        meta = small()
    with pytest.raises(ArchstatError, match="meta parameters"):
        archstat.check(meta, (1, 3, 8, 8), tools=["torch"])
    code, _, err = run_cli(capsys, "check", "--models", "resnet18", "--tools", "deepspeed")
    assert code == 2 and err.startswith("archstat: error: unknown tool(s) deepspeed") and len(err.splitlines()) == 1
