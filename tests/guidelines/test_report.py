"""Per-block G1-G4 report (``archstat layers MODEL --guidelines``)."""

from __future__ import annotations

import csv
import io

import pytest
import torch
from torch import nn

import archstat
from archstat.cli import main
from archstat.guidelines.report import find_blocks, guideline_report, module_tree


def _report(name: str) -> dict[str, dict]:
    stats = archstat.count(name)
    return {r["block"]: r for r in guideline_report(name, stats)}


@pytest.fixture(scope="module")
def resnet50() -> dict[str, dict]:
    return _report("resnet50")


def test_resnet50_blocks_are_its_16_bottlenecks(resnet50) -> None:
    blocks = [b for b, r in resnet50.items() if r["type"] == "Bottleneck"]
    assert len(blocks) == 3 + 4 + 6 + 3 and blocks[0] == "layer1.0" and blocks[-1] == "layer4.2"
    assert list(resnet50)[0] == "conv1 .. maxpool" and list(resnet50)[-1] == "avgpool .. fc"


def test_resnet50_g1_figures_by_hand(resnet50) -> None:
    # layer1.1: conv1 256 -> 64 and conv3 64 -> 256 at 56x56 (the 3x3 is not 1x1). Each: MAC =
    # 3136 * 320 + 16,384 = 1,019,904; bound with B = 3136 * 16,384: 2 * 3136 * 128 + 16,384 = 819,200.
    r = resnet50["layer1.1"]
    assert r["conv1x1"] == 2 and r["worst_c1c2_ratio"] == 4.0
    assert r["g1_mac_over_bound_pct"] == pytest.approx(100 * (1_019_904 / 819_200 - 1), abs=1e-3)
    # 3 convs per block, a 4th (the projection) in each stage's first block; no groups
    assert (r["g3_fragments"], resnet50["layer2.0"]["g3_fragments"], r["max_groups"]) == (3, 4, 1)
    assert r["flags"] == "G1" and resnet50["layer2.0"]["flags"] == "G1 G3"
    # the stride-2 projection 1x1 of layer2.0 is not a G1 (equal hw in and out) conv
    assert resnet50["layer2.0"]["conv1x1"] == 2


def test_resnext50_group_excess_by_hand() -> None:
    stats = archstat.count("resnext50_32x4d")
    rows = {r["block"]: r for r in guideline_report("resnext50_32x4d", stats)}
    r = rows["layer1.1"]
    # conv2: 3x3, 128 -> 128, g = 32 at 56x56: a dense conv of equal FLOPs has 128/32 = 4 outputs,
    # so the groups cost 3136 * (128 - 4) = 388,864 extra elements
    total = sum(rec.cost.mem_access for rec in stats.records  # its modules' ops and its own (the add)
                if rec.module == "layer1.1" or rec.module.startswith("layer1.1."))
    assert r["max_groups"] == 32 and r["mem_access"] == total
    assert r["g2_group_mac_pct"] == pytest.approx(100 * 388_864 / total, abs=1e-3)
    assert "G2" in r["flags"]


def test_shufflenet_v2_units_are_balanced_and_move_data() -> None:
    rows = _report("shufflenet_v2_x1_0")
    unit = rows["stage2.1"]
    # branch2: 1x1 58 -> 58, dw 3x3, 1x1 58 -> 58: balanced (bound reached), depthwise is not a group conv
    assert (unit["worst_c1c2_ratio"], unit["g1_mac_over_bound_pct"], unit["max_groups"]) == (1.0, 0.0, 1)
    assert unit["data_movement_mac_pct"] > 0 and unit["flags"] == ""  # split, concat, shuffle move data


def test_depthwise_counts_as_element_wise_for_g4() -> None:
    # one block: dw 3x3 on 8x8x16 then a 1x1 16 -> 16; G4 share = dw MAC / block MAC
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
            self.pw = nn.Conv2d(16, 16, 1, bias=False)

        def forward(self, x):
            return self.pw(self.dw(x))

    net = nn.Sequential(Block(), Block())
    stats = archstat.count(net, (1, 16, 8, 8))
    rows = guideline_report(net, stats)
    assert [r["block"] for r in rows] == ["0", "1"]
    dw = 1024 + 1024 + 144      # in + out + 16 * 9 weights
    pw = 1024 + 1024 + 256      # in + out + 16 * 16 weights
    assert rows[0]["g4_elementwise_mac_pct"] == pytest.approx(100 * dw / (dw + pw), abs=1e-3)


def test_stages_are_opened_and_single_block_wrappers_too() -> None:
    class Unit(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.b(self.a(x)) + x

    class Stage(nn.Module):  # not a container, but holds two blocks of one class
        def __init__(self, n: int) -> None:
            super().__init__()
            self.units = nn.ModuleList(Unit() for _ in range(n))

        def forward(self, x):
            for u in self.units:
                x = u(x)
            return x

    net = nn.Sequential(Stage(2), Stage(1), nn.Conv2d(4, 4, 1))
    stats = archstat.count(net, (1, 4, 8, 8))
    assert find_blocks(net, stats) == {"0.units.0": "Unit", "0.units.1": "Unit", "1.units.0": "Unit"}
    assert [r["block"] for r in guideline_report(net, stats)] == ["0.units.0", "0.units.1", "1.units.0", "2"]


def test_fused_cache_model_removes_bn_and_relu_from_the_g4_share(resnet50) -> None:
    stats = archstat.count("resnet50")
    fused = {r["block"]: r for r in guideline_report("resnet50", stats, cache_model="fused")}
    assert fused["layer1.1"]["g4_elementwise_mac_pct"] < resnet50["layer1.1"]["g4_elementwise_mac_pct"]


def test_module_tree_of_a_name_is_built_on_meta() -> None:
    model = module_tree("resnet18")
    assert next(model.parameters()).device == torch.device("meta")


def test_layers_guidelines_cli_csv(capsys) -> None:
    assert main(["layers", "--models", "resnet18", "--guidelines", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0])[:3] == ["block", "type", "ops"]
    assert [r["block"] for r in rows if r["type"] == "BasicBlock"][:2] == ["layer1.0", "layer1.1"]
