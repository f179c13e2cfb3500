"""Output-size formulas against torch itself (on the meta device: shapes only, no memory)."""

from __future__ import annotations

from math import floor

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from archstat.formulas import (ShapeError, adaptive_windows, conv_output_size, conv_transpose_output_size,
                               interpolate, pool, pool_output_size)

META = torch.device("meta")


@st.composite
def conv_geometry(draw, nd: int | None = None):
    nd = nd or draw(st.integers(1, 3))
    k = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    p = tuple(draw(st.integers(0, 3)) for _ in range(nd))
    size = tuple(draw(st.integers(1, 20)) for _ in range(nd))
    return nd, size, k, s, p, d


@settings(max_examples=200, deadline=None)
@given(conv_geometry())
def test_conv_output_size_matches_torch(geometry) -> None:
    nd, size, k, s, p, d = geometry
    x = torch.empty(1, 1, *size, device=META)
    w = torch.empty(1, 1, *k, device=META)
    fn = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    try:
        expected = tuple(fn(x, w, None, s, p, d).shape[2:])
    except RuntimeError:
        with pytest.raises(ShapeError):
            conv_output_size(size, k, s, p, d)
        return
    assert conv_output_size(size, k, s, p, d) == expected


@settings(max_examples=200, deadline=None)
@given(conv_geometry(), st.data())
def test_conv_transpose_output_size_matches_torch(geometry, data) -> None:
    nd, size, k, s, p, d = geometry
    op = tuple(data.draw(st.integers(0, max(si, di) - 1)) for si, di in zip(s, d))
    x = torch.empty(1, 1, *size, device=META)
    w = torch.empty(1, 1, *k, device=META)
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nd - 1]
    try:
        expected = tuple(fn(x, w, None, s, p, op, 1, d).shape[2:])
        if 0 in expected:  # torch returns an empty tensor; archstat calls that an error
            raise RuntimeError("empty output")
    except RuntimeError:
        with pytest.raises(ShapeError):
            conv_transpose_output_size(size, k, s, p, op, d)
        return
    assert conv_transpose_output_size(size, k, s, p, op, d) == expected


@settings(max_examples=200, deadline=None)
@given(conv_geometry(nd=2), st.booleans())
def test_pool_output_size_matches_torch_including_ceil_mode(geometry, ceil_mode) -> None:
    _, size, k, s, p, d = geometry
    p = tuple(min(pi, ki // 2) for pi, ki in zip(p, k))  # torch: padding at most half the kernel
    x = torch.empty(1, 1, *size, device=META)
    try:
        expected = tuple(F.max_pool2d(x, k, s, p, d, ceil_mode).shape[2:])
    except RuntimeError:
        with pytest.raises(ShapeError):
            pool_output_size(size, k, s, p, d, ceil_mode)
        return
    assert pool_output_size(size, k, s, p, d, ceil_mode) == expected


def test_ceil_mode_drops_a_window_starting_in_the_padding() -> None:
    # in=5, k=2, s=2, p=1: ceil((5+2-2)/2)+1 = 4, but window 4 would start at 6 >= 5+1: dropped -> 3.
    assert pool_output_size((5,), 2, 2, 1, ceil_mode=True) == (3,)
    assert pool_output_size((6,), 2, 2, 0, ceil_mode=True) == (3,)


@pytest.mark.parametrize("n_in,n_out,expected", [
    (7, 1, [7]),            # global pool: one window over everything
    (6, 3, [2, 2, 2]),      # divisible: disjoint windows
    (5, 3, [2, 3, 2]),      # [0,2), [1,4), [3,5): windows overlap
    (3, 6, [1, 1, 1, 1, 1, 1]),
])
def test_adaptive_windows(n_in: int, n_out: int, expected: list[int]) -> None:
    assert adaptive_windows(n_in, n_out) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 5), st.integers(0, 3))
def test_seed_shorthand_is_right_only_rounded_up(h: int, k: int, s: int, p: int) -> None:
    """Seed 000 writes Ho = (H + 2p + 1 - K) / stride. Against torch's own output size: rounded up it is
    always right; rounded down only when the stride divides H + 2p + 1 - K (always at stride 1, never for
    H=5, K=1, s=2: 5 // 2 = 2 where torch reads rows 0, 2, 4)."""
    assume(h + 2 * p >= k)
    x, w = torch.empty(1, 1, h, device=META), torch.empty(1, 1, k, device=META)
    rows = F.conv1d(x, w, stride=s, padding=p).shape[-1]
    shorthand = h + 2 * p + 1 - k
    assert -(-shorthand // s) == rows == conv_output_size((h,), k, s, p)[0]
    assert (shorthand // s == rows) == (shorthand % s == 0)


@settings(max_examples=200, deadline=None)
@given(conv_geometry(), st.sampled_from(["max", "avg"]))
def test_pool_padding_over_half_the_kernel_is_refused_as_torch_refuses_it(geometry, mode: str) -> None:
    """torch refuses ``padding > kernel_size // 2`` in any dimension, whatever the dilation (ATen's
    pool2d/pool3d_shape_check compare it with the undilated kernel, max_pool1d too); the padding here is
    drawn up to 3, above half of most kernels. Average pools have no dilation; a 3-D one also refuses an
    input smaller than its kernel before padding."""
    nd, size, k, s, p, d = geometry
    d = d if mode == "max" else (1,) * nd
    x = torch.empty(1, 1, *size, device=META)
    fn = getattr(F, f"{mode}_pool{nd}d")
    try:
        expected = tuple((fn(x, k, s, p, d) if mode == "max" else fn(x, k, s, p)).shape[2:])
    except RuntimeError as exc:
        with pytest.raises(ShapeError) as refused:
            pool((1, 1, *size), k, s, p, d, mode=mode)
        if "pad should be" in str(exc):  # torch's padding check (else the output would be empty)
            assert "pad should be at most half of kernel size" in str(refused.value)
        return
    assert pool((1, 1, *size), k, s, p, d, mode=mode).output_shape[2:] == expected


def test_pool_padding_check_matches_the_reviewers_case() -> None:
    # nn.MaxPool2d(2, padding=2) / nn.AvgPool2d(2, padding=2) on 8x8: torch raises "pad should be at most
    # half of effective kernel size, but got pad=2, kernel_size=2"; padding 1 = 2 // 2 is allowed
    x = torch.empty(1, 3, 8, 8)
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ShapeError, match="pad=2 and kernel_size=2"):
        pool_output_size((8, 8), 2, padding=2)
    assert pool_output_size((8, 8), 2, padding=1) == tuple(F.max_pool2d(x, 2, padding=1).shape[2:]) == (5, 5)


@pytest.mark.parametrize("n_in,n_out", [(8, 0), (8, -1), (0, 2)])
def test_adaptive_windows_follow_torch_at_zero_sizes(n_in: int, n_out: int) -> None:
    # torch (CPU kernels): output size 0 is an empty output (no windows); a negative output size ("elements of
    # output_size must be greater than or equal to 0") and an empty input ("Expected input to have non-zero
    # size for non-batch dimensions") are refused
    x = torch.rand(1, 1, n_in)
    try:
        torch_windows = F.adaptive_avg_pool1d(x, n_out).shape[-1]
    except RuntimeError:
        with pytest.raises(ShapeError):
            adaptive_windows(n_in, n_out)
        return
    assert len(adaptive_windows(n_in, n_out)) == torch_windows == 0


_MODES = ["nearest", "nearest-exact", "area", "linear", "bilinear", "bicubic", "trilinear"]


@pytest.mark.parametrize("mode", _MODES)
@pytest.mark.parametrize("rank", [2, 3, 4, 5, 6])
def test_interpolate_takes_the_ranks_torch_takes_for_each_mode(mode: str, rank: int) -> None:
    """F.interpolate dispatches each mode to a kernel of one rank (linear 3-D, bilinear and bicubic 4-D,
    trilinear 5-D; nearest and area 3-D to 5-D) and raises NotImplementedError for any other rank: the
    oracle is torch itself, on meta."""
    shape = (1, 2, *(4,) * (rank - 2))
    try:
        expected = tuple(F.interpolate(torch.empty(shape, device=META), scale_factor=2, mode=mode).shape)
    except NotImplementedError as exc:
        with pytest.raises(ShapeError) as refused:
            interpolate(shape, scale_factor=2, mode=mode)
        if "needs" in str(exc):  # "Got 4D input, but trilinear mode needs 5D input": the same words
            assert str(refused.value) == str(exc)
        return
    assert interpolate(shape, scale_factor=2, mode=mode).output_shape == expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "lanczos"])
def test_antialiased_windows_are_torchs(mode: str, dtype: torch.dtype) -> None:
    """The oracle is torch's own kernel: resample n rows along the width (the height kept, so one
    pass), row k holding a NaN at input k and zeros elsewhere, and count the NaN outputs: every
    output whose window reads input k, with a zero weight too (0 * NaN is NaN). Summed over the
    rows that is the number of taps. torch computes the windows in the input's dtype (a float32
    window edge can differ by one pixel from float64's), so both are checked."""
    for n_in in (5, 7, 13, 37, 64):
        sizes = [dict(size=(1, n_out)) for n_out in (1, 3, 4, 9, 16, 23, 50)]
        factors = [dict(scale_factor=(1.0, f)) for f in (0.137, 0.31, 0.77, 1.37, 2.71) if floor(n_in * f) >= 1]
        for kwargs in sizes + factors:
            probes = torch.zeros(n_in, 1, 1, n_in, dtype=dtype)
            probes[range(n_in), 0, 0, range(n_in)] = float("nan")
            reached = int(F.interpolate(probes, mode=mode, antialias=True, **kwargs).isnan().sum())
            counted = interpolate((1, 1, 1, n_in), mode=mode, antialias=True, float64=dtype == torch.float64,
                                  **kwargs).cost.flops
            assert counted == reached, (n_in, kwargs)


@pytest.mark.parametrize("kwargs", [dict(size=(8,)), dict(scale_factor=(2.0, 2.0, 2.0)),
                                    dict(size=8, scale_factor=2.0)])
def test_interpolate_refuses_sizes_torch_refuses(kwargs: dict) -> None:
    # torch: a size / scale_factor sequence must have one entry per spatial dim, and only one of them is given
    with pytest.raises(ValueError):
        F.interpolate(torch.empty(1, 2, 4, 4, device=META), **kwargs)
    with pytest.raises(ShapeError):
        interpolate((1, 2, 4, 4), **kwargs)
