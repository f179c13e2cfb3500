"""Counting under ``autocast``: which ops take lower-precision copies of their inputs
(:mod:`archstat.counting.autocast`), checked against ``torch.autocast`` itself on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archstat


class _Product(nn.Module):
    """A bfloat16 activation times a float32 parameter, by torch.einsum."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.rand(4, 5))

    def forward(self, x):
        return torch.einsum("ij,jk->ik", x.bfloat16(), self.w)


def test_einsum_runs_in_the_lower_precision_on_the_cpu() -> None:
    # torch's oracle: CPU autocast does not list einsum, but casts the bmm it runs inside, so a bfloat16 x
    # float32 product works and gives bfloat16 (without autocast torch refuses it)
    model = _Product()
    with torch.autocast("cpu", torch.bfloat16):
        assert model(torch.rand(8, 4)).dtype == torch.bfloat16
    with pytest.raises(RuntimeError):
        model(torch.rand(8, 4))
    # archstat counts it as autocast runs it: 8*4*5 = 160 multiply-adds, the output in bfloat16 (2 bytes)
    stats = archstat.count(model, (8, 4), autocast="cpu:bfloat16")
    [product] = [r for r in stats.records if r.counted and r.cost.madds]
    assert product.cost.madds == 160 and product.outputs[0].itemsize == 2


@pytest.mark.parametrize("name", ["maxvit_t", "mvit_v2_s"])
def test_torchvision_attention_with_einsum_counts_under_cpu_autocast(name: str) -> None:
    # their relative-position attention multiplies a float32 softmax or parameter with a bfloat16 tensor by
    # torch.einsum, which CPU autocast runs (see above); this used to fail as a dtype mismatch
    assert archstat.count(name, autocast="cpu:bfloat16").madds == archstat.count(name).madds
