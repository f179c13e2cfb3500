"""Every tool bug ``archstat check`` knows, pinned: the layer, the tool's wrong count and the right
count (derived by hand in the comments), and the cause named in the flag."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archstat
from archstat.crosscheck import CheckReport, Flag


def check(model: nn.Module, shape: tuple[int, ...], *tools: str) -> CheckReport:
    for tool in tools:
        pytest.importorskip(archstat.crosscheck.TOOLS[tool].package, reason=f"{tool} is an optional counter")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return archstat.check(model, shape, tools=list(tools))


def flag(report: CheckReport, tool: str, layer: str) -> Flag:
    found = [f for f in report.flags if f.tool == tool and f.layer == layer]
    assert len(found) == 1, report.flags
    return found[0]


def only(layer: nn.Module) -> nn.Sequential:
    """The layer as submodule "0" of a model."""
    return nn.Sequential(layer)


class SelfAttention(nn.Module):
    """nn.MultiheadAttention(16, 2 heads) as submodule "attn", called on (x, x, x)."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


# --------------------------------------------------------------------------- thop


@pytest.mark.parametrize("conv, shape, wrong, right", [
    # ConvTranspose2d(32 -> 8, k4, s2, p1) on 16x16 -> 32x32. Right: every input element scatters
    # C_out/g * k^2 products: 32*16*16 * 8*16 = 1,048,576. thop: numel(out) * C_in/g * k^2
    # = 8*32*32 * 32*16 = 4,194,304 (x4 = stride^2).
    (nn.ConvTranspose2d(32, 8, 4, stride=2, padding=1), (1, 32, 16, 16), 4_194_304, 1_048_576),
    # ConvTranspose2d(8 -> 8, k3, s3, groups 2) on 32x32 -> 96x96. Right: 8*1024 * 4*9 = 294,912.
    # thop: 8*96*96 * 4*9 = 2,654,208 (x9).
    (nn.ConvTranspose2d(8, 8, 3, stride=3, groups=2, bias=False), (1, 8, 32, 32), 2_654_208, 294_912),
    # ConvTranspose1d(4 -> 6, k5, s2) on length 10 -> (10-1)*2 + 5 = 23. Right: 4*10 * 6*5 = 1,200.
    # thop: 6*23 * 4*5 = 2,760 (x2.3).
    (nn.ConvTranspose1d(4, 6, 5, stride=2), (1, 4, 10), 2_760, 1_200),
])
def test_thop_counts_transposed_conv_at_output_size(conv: nn.Module, shape: tuple, wrong: int, right: int) -> None:
    report = check(only(conv), shape, "thop", "fvcore", "torch", "ptflops")
    f = flag(report, "thop", "0")
    assert (f.count, f.right, f.op_type) == (wrong, right, "conv transpose")
    assert "output positions" in f.why and f"x{wrong / right:g}" in f.why
    # fvcore and FlopCounterMode count the input positions; ptflops too (plus its bias additions).
    assert [f.tool for f in report.flags] == ["thop"]
    assert report.results["torch"].total == report.results["fvcore"].total == right


def test_thop_has_no_rule_for_multihead_attention() -> None:
    # MHA(16, 2 heads) on 64 tokens: q, k, v and output projections 4*64*16*16 = 65,536; scores and
    # weighted sum 2 * 2*64*64*8 = 131,072: 196,608 multiply-adds; thop has no rule: 0.
    report = check(SelfAttention(), (1, 64, 16), "thop")
    f = flag(report, "thop", "attn")
    assert (f.count, f.right) == (0, 196_608) and "no rule for MultiheadAttention" in f.why


class Functional(nn.Module):
    """Multiply-adds made by functional calls, not by nn.Module layers."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(32, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight) @ self.weight


def test_thop_and_ptflops_do_not_see_functional_calls() -> None:
    # x (1, 8, 16): F.linear to 32 features 8*16*32 = 4,096; (1,8,32) @ (32,16): 8*32*16 = 4,096.
    report = check(Functional(), (1, 8, 16), "thop", "ptflops", "torch")
    for tool in ("thop", "ptflops"):
        f = flag(report, tool, "(root)")
        assert (f.count, f.right) == (0, 8_192) and "functional calls linear, matmul" in f.why
    assert report.results["torch"].total == 8_192


# --------------------------------------------------------------------------- ptflops


@pytest.mark.parametrize("layer, shape, once", [
    # nn.ReLU on 1x32x16x16: 8,192 elements; its hook counts them and so does its patch of F.relu.
    (nn.ReLU(), (1, 32, 16, 16), 8_192),
    # nn.MaxPool2d: 1 per input element, 8,192, by the hook and again by F.max_pool2d.
    (nn.MaxPool2d(2), (1, 32, 16, 16), 8_192),
    # nn.GELU on 1x64x16: 1,024 elements, by the hook and by F.gelu.
    (nn.GELU(), (1, 64, 16), 1_024),
])
def test_ptflops_counts_activations_and_pools_twice(layer: nn.Module, shape: tuple, once: int) -> None:
    report = check(only(layer), shape, "ptflops")
    f = flag(report, "ptflops", "0")
    assert (f.count, f.right) == (2 * once, once)
    assert "counts it twice" in f.why and "by its module hook" in f.why and "by F." in f.why


class Broadcast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.weight, x)


def test_fvcore_and_ptflops_drop_broadcast_batch_of_matmul() -> None:
    # (8, 16) @ (4, 16, 64): 4 products of 8x16 by 16x64 = 4*8*16*64 = 32,768 multiply-adds.
    # fvcore and ptflops: numel(A) * B.shape[-1] = 128 * 64 = 8,192.
    report = check(Broadcast(), (4, 16, 64), "fvcore", "ptflops", "torch")
    for tool in ("fvcore", "ptflops"):
        f = flag(report, tool, "(root)")
        assert (f.count, f.right) == (8_192, 32_768) and "dropping the batch dimensions only B has" in f.why
    assert report.results["torch"].total == 32_768 and not [f for f in report.flags if f.tool == "torch"]


# --------------------------------------------------------------------------- fvcore and torch


def test_fvcore_and_torch_miss_multihead_attention_fast_path() -> None:
    # In eval mode under no_grad nn.MultiheadAttention runs one fused op, aten::_native_multi_head_attention:
    # neither tool has a formula for it. Right: 196,608 (see the thop test above).
    report = check(SelfAttention(), (1, 64, 16), "fvcore", "torch")
    for tool in ("fvcore", "torch"):
        f = flag(report, tool, "attn")
        assert (f.count, f.right) == (0, 196_608) and "_native_multi_head_attention" in f.why
        assert "fast path" in f.why


class Attention(nn.Module):
    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, q, q)


def test_fvcore_and_torch_miss_scaled_dot_product_attention_on_cpu() -> None:
    # q = k = v (1, 2, 64, 32): scores 2*64*64*32 = 262,144 and weighted sum as much: 524,288.
    # fvcore has no handle for aten::scaled_dot_product_attention; FlopCounterMode has formulas for
    # the CUDA kernels but not for aten._scaled_dot_product_flash_attention_for_cpu.
    report = check(Attention(), (1, 2, 64, 32), "fvcore", "torch")
    assert "aten::scaled_dot_product_attention" in flag(report, "fvcore", "(root)").why
    f = flag(report, "torch", "(root)")
    assert (f.count, f.right) == (0, 524_288) and "_scaled_dot_product_flash_attention_for_cpu" in f.why


class Einsums(nn.Module):
    def __init__(self, equation: str) -> None:
        super().__init__()
        self.equation = equation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum(self.equation, x, x)


def test_fvcore_takes_einsum_counts_from_numpy_printout() -> None:
    # 'bqd,bkd->bqk' on (1, 64, 16): 64*64*16 = 65,536 multiply-adds; numpy prints 2 * 65,536 as
    # "1.311e+05", and fvcore floors 131,100 / 2 = 65,550.
    report = check(Einsums("bqd,bkd->bqk"), (1, 64, 16), "fvcore", "torch")
    f = flag(report, "fvcore", "(root)")
    assert (f.count, f.right) == (65_550, 65_536) and "numpy.einsum_path" in f.why
    assert report.results["torch"].total == 65_536


def test_fvcore_halves_and_torch_drops_an_outer_product_einsum() -> None:
    # 'bi,bj->bij' on (1, 1024): 1024*1024 = 1,048,576 products. numpy counts one op each (no sum) and
    # prints "1.049e+06": fvcore gives 524,500. torch runs it as a broadcast aten.mul: no formula, 0.
    report = check(Einsums("bi,bj->bij"), (1, 1024), "fvcore", "torch")
    f = flag(report, "fvcore", "(root)")
    assert (f.count, f.right) == (524_500, 1_048_576)
    f = flag(report, "torch", "(root)")
    assert (f.count, f.right) == (0, 1_048_576) and "aten.mul" in f.why


def test_flags_account_for_every_difference_on_vit_b_16() -> None:
    """vit_b_16 in eval mode without grad: 12 MultiheadAttention layers of 524,391,936 multiply-adds each
    (197 tokens, 768 wide, 12 heads: 4*197*768^2 = 464,781,312 projections + 2*197^2*768 = 59,610,624
    attention) are lost by fvcore, thop and FlopCounterMode: 17.564 G -> about 11.3 G."""
    report = check("vit_b_16", (1, 3, 224, 224), "torch")
    f = flag(report, "torch", "encoder.layers.encoder_layer_0.self_attention")
    assert (f.count, f.right) == (0, 524_391_936)
    assert report.stats.madds == 17_563_828_224  # torchvision's ViT_B_16 _ops: 17.564 G
    assert report.results["torch"].total == 17_563_828_224 - 12 * 524_391_936


def test_a_difference_without_a_known_cause_is_unverified_not_flagged() -> None:
    # nn.Softmax(dim=1) on (4, 3): thop counts 3 + 2 + 3 = 8 per row of 3, 4 rows: 32. archstat's
    # thop convention counts 3 per element, 36 (the -1 per row needs the softmax dim, which the
    # record does not keep): the 4 apart are listed as unverified, no flag blames thop.
    report = check(only(nn.Softmax(dim=1)), (4, 3), "thop")
    assert report.flags == []
    [u] = report.unverified
    assert (u.tool, u.layer, u.count, u.right) == ("thop", "0", 32, 36) and "no known cause" in u.why
