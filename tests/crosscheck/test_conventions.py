"""archstat under each tool's convention equals that tool's total, on torchvision models and
small custom models, except on layers the tool gets wrong by its own rules: there the flags
account for the whole rest of the difference."""

from __future__ import annotations

import warnings
from functools import lru_cache

import pytest
import torch
from torch import nn

import archstat
from archstat.conventions import CONVENTIONS, apply_convention, op_type
from archstat.crosscheck import TOOLS, CheckReport
from archstat.errors import ArchstatError

pytest.importorskip("fvcore", reason="fvcore is an optional counter (pip install archstat[crosscheck])")
pytest.importorskip("thop", reason="thop is an optional counter (pip install archstat[crosscheck])")
pytest.importorskip("ptflops", reason="ptflops is an optional counter (pip install archstat[crosscheck])")


class Convs(nn.Module):
    """Grouped, dilated, depthwise and transposed convolutions, with and without bias."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.grouped = nn.Conv2d(16, 32, 3, padding=1, groups=4, bias=False)
        self.dilated = nn.Conv2d(32, 32, 3, padding=2, dilation=2, bias=False)
        self.depthwise = nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.bn = nn.BatchNorm2d(32)
        self.act = nn.ReLU6()
        self.up = nn.ConvTranspose2d(32, 8, 4, stride=2, padding=1)
        self.up_grouped = nn.ConvTranspose2d(8, 8, 3, stride=3, groups=2, bias=False)
        self.conv1d = nn.Conv1d(8, 4, 5, dilation=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.depthwise(self.dilated(self.grouped(self.stem(x))))))
        x = self.up_grouped(self.up(x))
        return self.conv1d(x.flatten(2))


class TinyViT(nn.Module):
    """A two-block attention model: patch conv, LayerNorm, nn.MultiheadAttention, GELU MLP."""

    def __init__(self, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, stride=8)
        self.blocks = nn.ModuleList(nn.ModuleDict(dict(
            norm=nn.LayerNorm(dim), attn=nn.MultiheadAttention(dim, heads, batch_first=True),
            mlp=nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)))) for _ in range(2))
        self.head = nn.Linear(dim, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)
        for block in self.blocks:
            h = block["norm"](t)
            t = t + block["attn"](h, h, h, need_weights=False)[0]
            t = t + block["mlp"](t)
        return self.head(t.mean(1))


CUSTOM = {"Convs": (Convs, (1, 3, 16, 16)), "TinyViT": (TinyViT, (1, 3, 32, 32))}
MODELS = ["resnet50", "mobilenet_v2", "shufflenet_v2_x1_0", "densenet121", "vit_b_16", *CUSTOM]


@lru_cache(maxsize=None)
def report(name: str) -> CheckReport:
    """One check per model for the whole module (each runs all four tools)."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name in CUSTOM:
            build, shape = CUSTOM[name]
            return archstat.check(build(), shape)
        return archstat.check(name)


@pytest.mark.parametrize("tool", list(TOOLS))
@pytest.mark.parametrize("name", MODELS)
def test_count_under_a_tool_convention_is_the_tool_total_except_flagged_layers(name: str, tool: str) -> None:
    """The oracle is the tool itself: its reported total. ``archstat.count(..., convention=tool)`` (archstat's
    reading of the tool's rules) equals it where no layer is flagged; otherwise the whole gap lies in the
    flagged layers, each the tool's own count for that layer against the reading."""
    rep = report(name)
    assert tool in rep.results, rep.missing or rep.failed
    result, rec = rep.results[tool], rep.reconciliations[tool]
    model = CUSTOM[name][0]() if name in CUSTOM else name
    stats = archstat.count(model, rep.input_shape, convention=TOOLS[tool].convention)
    if not rec.flags:
        assert abs(result.total - stats.madds) <= 1e-6 * result.total + 1, (name, tool, result.total, stats.madds)
    # every difference is in the flagged layers (up to float noise in thop's adaptive pools)
    in_flagged = sum(f.count - f.right for f in rec.flags)
    assert abs(result.total - stats.madds - in_flagged) <= 1e-6 * result.total + 1, (name, tool, rec.flags[:3])
    assert not rep.unverified
    # the convention changes madds only; flops follow FlopCounterMode's 2 per multiply-add
    assert stats.flops == 2 * stats.madds
    assert stats.params == rep.stats.params and stats.mem_access == rep.stats.mem_access


def test_torch_convention_flops_are_flop_counter_mode_flops() -> None:
    """Under convention="torch", flops is FlopCounterMode's own figure (it reports 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = archstat.create_model("resnet18").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, 224, 224))
    assert archstat.count("resnet18", convention="torch").flops == counter.get_total_flops()
    # ResNet-18 multiply-adds by hand: stem 112^2*64*3*49 = 118,013,952; every 3x3 conv with C in and
    # out channels at side S costs S^2*C*C*9 = 115,605,504 (64@56, 128@28, 256@14, 512@7): 4 + 3 + 3 + 3
    # of them; the three stride-2 3x3 convs cost half that (57,802,752 each), the three 1x1 downsamples
    # 6,422,528 each, the fc 512*1000: 118,013,952 + 13*115,605,504 + 3*57,802,752 + 3*6,422,528
    # + 512,000 = 1,814,073,344 (torchvision's _ops: 1.814 G).
    assert counter.get_total_flops() == 2 * archstat.count("resnet18").madds == 2 * 1_814_073_344


def test_grouped_dilated_depthwise_convs_agree_across_tools() -> None:
    """No tool miscounts a grouped, dilated, depthwise or 1-d conv: no flag on them."""
    rep = report("Convs")
    flagged = {(f.tool, f.layer) for f in rep.flags}
    for layer in ("stem", "grouped", "dilated", "depthwise", "conv1d"):
        assert not any(lay == layer for _, lay in flagged), rep.flags
    # ptflops counts the transposed convs right (input positions), with their bias.
    assert not any(t == "ptflops" and lay.startswith("up") for t, lay in flagged)


def test_paper_convention_is_multiply_adds_without_bias() -> None:
    """Convs on 1x3x16x16: the bias additions, by hand, are one per output element of each conv with a
    bias: stem 16 x 16x16 = 4,096; depthwise 32 x 16x16 = 8,192; the transposed conv to 8 x 32x32 = 8,192;
    the conv1d to 4 x (96*96 - 3*4) = 36,816: 57,296. The paper convention counts none of them."""
    stats = archstat.count(Convs(), (1, 3, 16, 16), count_bias=True)
    plain = archstat.count(Convs(), (1, 3, 16, 16))
    assert stats.madds - plain.madds == 4_096 + 8_192 + 8_192 + 36_816 == 57_296
    assert apply_convention(stats, "paper").madds == plain.madds


def test_conventions_split_by_op_type() -> None:
    """resnet50 under thop: 4 per batch-norm input element, (49 + 1) per output of the 7x7 average pool."""
    stats = archstat.count("resnet50")
    thop = apply_convention(stats, "thop")
    by_type: dict[str, int] = {}
    for r, t in zip(stats.records, thop.records):
        by_type[op_type(r)] = by_type.get(op_type(r), 0) + t.cost.madds
    # 11,113,984 batch-norm elements: stem 64x112x112 = 802,816; layer1 3 x (64+64+256) + 256 channels
    # at 56x56 = 4,415,488; layer2 3,110,912; layer3 2,157,568; layer4 627,200 (v1.5 strides).
    assert by_type["batch norm"] == 4 * 11_113_984
    assert by_type["adaptive avg pool"] == (49 + 1) * 2048
    assert by_type["conv"] + by_type["linear"] == 4_089_184_256  # torchvision's _ops for ResNet50


def test_bad_convention_arguments() -> None:
    with pytest.raises(ArchstatError, match="unknown convention 'flops'"):
        archstat.count("resnet18", convention="flops")
    with pytest.raises(ArchstatError, match="count_bias applies to the archstat convention"):
        archstat.count("resnet18", convention="thop", count_bias=True)
    assert set(CONVENTIONS) == {"archstat", "paper", "torch", "fvcore", "thop", "ptflops"}


def test_cli_convention_option(capsys) -> None:
    import csv
    import io

    from archstat.cli import main

    assert main(["table", "--models", "mobilenet_v2", "--convention", "thop", "--format", "csv"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert int(row["madds"]) == archstat.count("mobilenet_v2", convention="thop").madds
    assert int(row["madds"]) > archstat.count("mobilenet_v2").madds  # thop adds 4 per batch-norm element
    assert main(["layers", "--models", "mobilenet_v2", "--convention", "fvcore", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sum(int(r["madds"]) for r in rows) == archstat.count("mobilenet_v2", convention="fvcore").madds
    assert main(["table", "--models", "resnet18", "--convention", "thop", "--bias"]) == 2
    assert "count_bias applies to the archstat convention" in capsys.readouterr().err
