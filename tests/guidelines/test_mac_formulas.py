"""The ShuffleNet V2 memory-access relations (arXiv:1807.11164, Sec. 2, Eq. 1 and 2), by hand and as properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import archstat
from archstat.formulas import (conv, g1_bound_gap, g1_mem_access_bound, group_mem_access_excess,
                               pointwise_mem_access)


def _counted_mem_access(c1: int, c2: int, h: int, w: int, groups: int = 1) -> int:
    """The counter's figure for a real bias-free 1x1 conv module (one record, on meta)."""
    return archstat.count(nn.Conv2d(c1, c2, 1, groups=groups, bias=False), (1, c1, h, w)).mem_access


@pytest.mark.parametrize("h,w,c1,c2", [(56, 56, 128, 128), (56, 56, 36, 432), (7, 9, 3, 5), (1, 1, 64, 16)])
def test_bias_free_pointwise_conv_mac_is_eq1(h, w, c1, c2) -> None:
    # Eq. 1 setting: MAC = hw(c1 + c2) + c1 c2 (feature maps in and out, then the weights)
    expected = h * w * (c1 + c2) + c1 * c2
    assert pointwise_mem_access(h * w, c1, c2) == expected
    assert conv((1, c1, h, w), c2, 1, bias=False).cost.mem_access == expected
    assert _counted_mem_access(c1, c2, h, w) == expected


@pytest.mark.parametrize("h,w,c1,c2,g", [(56, 56, 128, 128, 1), (56, 56, 180, 180, 2), (56, 56, 360, 360, 8),
                                         (14, 14, 240, 60, 3), (5, 3, 12, 24, 4)])
def test_grouped_pointwise_conv_mac_is_eq2(h, w, c1, c2, g) -> None:
    # Eq. 2: MAC = hw(c1 + c2) + c1 c2 / g  =  hw c1 + B g / c1 + B / hw  with  B = hw c1 c2 / g
    expected = h * w * (c1 + c2) + c1 * c2 // g
    b = h * w * c1 * c2 // g
    assert expected == h * w * c1 + b * g // c1 + b // (h * w)
    assert pointwise_mem_access(h * w, c1, c2, groups=g) == expected
    assert _counted_mem_access(c1, c2, h, w, groups=g) == expected


def test_g1_worked_example_from_notes() -> None:
    # NOTES.md convention 7: 56x56, (128,128): B = 3136*128*128 = 51,380,224; MAC = 819,200 = the bound
    # (2*sqrt(3136*51,380,224) + 51,380,224/3136 = 2*401,408 + 16,384); (36,432): MAC = 1,483,200.
    assert g1_mem_access_bound(3136, 51_380_224) == 819_200
    assert pointwise_mem_access(3136, 128, 128) == 819_200
    assert pointwise_mem_access(3136, 36, 432) == 1_483_200


@settings(max_examples=300, deadline=None)
@given(h=st.integers(1, 64), w=st.integers(1, 64), c1=st.integers(1, 1024), c2=st.integers(1, 1024))
def test_g1_bound_holds_for_any_channels(h, w, c1, c2) -> None:
    op = conv((1, c1, h, w), c2, 1, bias=False)
    bound = g1_mem_access_bound(h * w, op.cost.madds)
    assert op.cost.mem_access >= bound * (1 - 1e-12)
    assert g1_bound_gap(h * w, c1, c2) >= -1e-12


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 64), w=st.integers(1, 64), c=st.integers(1, 1024))
def test_g1_bound_is_reached_at_equal_channels(h, w, c) -> None:
    # c1 = c2 = c: 2 sqrt(hw * hw c^2) + c^2 = 2 hw c + c^2 = hw(c + c) + c c exactly
    op = conv((1, c, h, w), c, 1, bias=False)
    assert math.isclose(op.cost.mem_access, g1_mem_access_bound(h * w, op.cost.madds), rel_tol=1e-12)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 16), w=st.integers(1, 16), c1=st.integers(1, 96), c2=st.integers(1, 96))
def test_g1_bound_holds_on_the_counters_figures(h, w, c1, c2) -> None:
    stats = archstat.count(nn.Conv2d(c1, c2, 1, bias=False), (1, c1, h, w))
    bound = g1_mem_access_bound(h * w, stats.madds)
    assert stats.mem_access >= bound * (1 - 1e-12)
    if c1 == c2:
        assert math.isclose(stats.mem_access, bound, rel_tol=1e-12)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(3, 20), per_group_in=st.integers(1, 8), per_group_out=st.integers(1, 8),
       g=st.integers(2, 8), k=st.sampled_from([1, 3]), stride=st.sampled_from([1, 2]))
def test_group_excess_is_the_extra_output_channels(n, h, per_group_in, per_group_out, g, k, stride) -> None:
    # Dense conv with c2/g outputs does the same multiply-adds; the grouped one writes g times the
    # output channels: excess = N * hw_out * c2 * (1 - 1/g) = N * hw_out * (c2 - c2/g).
    c1, c2 = per_group_in * g, per_group_out * g
    out = (h + 2 * (k // 2) - k) // stride + 1
    expected = n * out * out * (c2 - c2 // g)
    assert group_mem_access_excess((n, c1, h, h), c2, k, g, stride, k // 2) == expected
    grouped = conv((n, c1, h, h), c2, k, stride, k // 2, groups=g, bias=False)
    dense = conv((n, c1, h, h), c2 // g, k, stride, k // 2, bias=False)
    assert grouped.cost.madds == dense.cost.madds


def test_bound_rejects_empty_maps() -> None:
    with pytest.raises(ValueError, match="hw must be positive"):
        g1_mem_access_bound(0, 10)
