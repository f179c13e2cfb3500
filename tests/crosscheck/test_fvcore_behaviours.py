"""fvcore behaviours on real models, reproduced by ``convention="fvcore"`` (each pinned by running
fvcore itself) and, for the dropped ``padding="same"`` convolutions, flagged by ``archstat check``."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archstat

fvcore_nn = pytest.importorskip("fvcore.nn", reason="fvcore is needed to pin its behaviour")


def fvcore_total(model: nn.Module, shape: tuple[int, ...]) -> int:
    analysis = fvcore_nn.FlopCountAnalysis(model.eval(), (torch.rand(shape),))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        return int(analysis.total())


class TrainingBatchNorm(nn.Module):
    """A conv followed by an affine batch norm on batch statistics (F.batch_norm(training=True))."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.weight, self.bias = nn.Parameter(torch.ones(8)), nn.Parameter(torch.zeros(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(self.conv(x), None, None, self.weight, self.bias, training=True)


class StandardisedConv(nn.Conv2d):
    """Weight standardisation (Qiao et al., arXiv:1903.10520) as timm's StdConv2d computes it:
    batch statistics of the weight, with F.batch_norm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True, momentum=0.0,
                         eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


# Each case: the model, its input, and fvcore's total derived by hand.
CASES = {
    # same-padded 3x3 conv 3->8 on 16x16 (dropped by fvcore: aten::_convolution_mode), then a 3x3 conv 8->8
    # on 16x16 -> 14x14: 8*14*14 * 8*9 = 112,896
    "padding_same": (nn.Sequential(nn.Conv2d(3, 8, 3, padding="same"), nn.ReLU(), nn.Conv2d(8, 8, 3)),
                     (1, 3, 16, 16), 112_896),
    # padding="valid" is a string too: the only conv is dropped
    "padding_valid": (nn.Sequential(nn.Conv2d(3, 8, 3, padding="valid")), (1, 3, 16, 16), 0),
    # conv 3->8 3x3 on 16x16: 8*14*14*27 = 42,336; weight standardisation: batch_norm (training, no affine) over the
    # 8*3*9 = 216 weights at 4 per element = 864
    "weight_standardisation": (nn.Sequential(StandardisedConv(3, 8, 3)), (1, 3, 16, 16), 42_336 + 864),
    # conv 3->8 3x3 on 2x3x16x16: 2*8*14*14*27 = 84,672; training batch norm, affine, on 2*8*14*14 = 3,136 elements
    # at 5 per element = 15,680
    "training_batch_norm": (TrainingBatchNorm(), (2, 3, 16, 16), 84_672 + 15_680),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fvcore_convention_reproduces_fvcore(case: str) -> None:
    model, shape, expected = CASES[case]
    assert fvcore_total(model, shape) == expected  # the hand derivation describes fvcore 0.1.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert archstat.count(model, shape, convention="fvcore").madds == expected


def test_check_flags_the_dropped_same_padded_convolution() -> None:
    model, shape, _ = CASES["padding_same"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = archstat.check(model, shape, tools=["fvcore"])
    [flag] = [f for f in report.flags if f.tool == "fvcore"]
    # the dropped conv: 8*16*16 * 3*9 = 55,296 multiply-adds
    assert flag.layer == "0" and flag.count == 0 and flag.right == 55_296
    assert "_convolution_mode" in flag.why
    # archstat counts it: 55,296 + 112,896
    assert report.totals["archstat"] == 168_192 and report.totals["fvcore"] == 112_896
