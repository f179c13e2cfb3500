"""Ground truth by brute force: real convolutions written as explicit loops that count
every multiplication they perform.

Each loop is a working implementation (its output is checked against torch's), so the
count is the count of an algorithm that really computes the layer, not a restatement of
the formula. This is how over-counts such as thop's ``output size x kernel`` for
transposed convolutions (``stride**d`` times too many) are caught.

Conventions pinned here: taps that fall on zero padding are multiplied like any other
(every paper and torchvision count them); a transposed conv scatters every input element
through the full kernel, including taps that land in the cropped ``padding`` border.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from archstat.formulas import conv, conv_transpose, linear, matmul

CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T_FN = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def loop_conv(x, w, stride, padding, dilation, groups):
    """Direct convolution; returns (output, number of multiplications)."""
    n, c_in, *size = x.shape
    c_out, c_per_group, *kernel = w.shape
    nd = len(size)
    xp = F.pad(x, [p for pad in reversed(padding) for p in (pad, pad)])
    out_size = [(s + 2 * p - d * (k - 1) - 1) // st + 1
                for s, p, d, k, st in zip(size, padding, dilation, kernel, stride)]
    out = torch.zeros(n, c_out, *out_size, dtype=x.dtype)
    mults = 0
    out_per_group = c_out // groups
    for b, co in itertools.product(range(n), range(c_out)):
        g = co // out_per_group
        for pos in itertools.product(*(range(o) for o in out_size)):
            acc = 0.0
            for ci, tap in itertools.product(range(c_per_group), itertools.product(*(range(k) for k in kernel))):
                src = tuple(pos[i] * stride[i] + tap[i] * dilation[i] for i in range(nd))
                acc += float(xp[(b, g * c_per_group + ci) + src]) * float(w[(co, ci) + tap])
                mults += 1
            out[(b, co) + pos] = acc
    return out, mults


def loop_conv_transpose(x, w, stride, padding, output_padding, dilation, groups):
    """Scatter form of the transposed convolution; returns (output, multiplications)."""
    n, c_in, *size = x.shape
    _, out_per_group, *kernel = w.shape
    nd = len(size)
    c_out = out_per_group * groups
    in_per_group = c_in // groups
    full = [(s - 1) * st + d * (k - 1) + 1 + op
            for s, st, d, k, op in zip(size, stride, dilation, kernel, output_padding)]
    buf = torch.zeros(n, c_out, *full, dtype=x.dtype)
    mults = 0
    for b, ci in itertools.product(range(n), range(c_in)):
        g = ci // in_per_group
        for pos in itertools.product(*(range(s) for s in size)):
            value = float(x[(b, ci) + pos])
            for co, tap in itertools.product(range(out_per_group), itertools.product(*(range(k) for k in kernel))):
                dst = tuple(pos[i] * stride[i] + tap[i] * dilation[i] for i in range(nd))
                buf[(b, g * out_per_group + co) + dst] += value * float(w[(ci, co) + tap])
                mults += 1
    crop = tuple(slice(p, f - p) for p, f in zip(padding, full))
    return buf[(slice(None), slice(None)) + crop], mults


# (nd, c_in, c_out, size, kernel, stride, padding, dilation, groups): one case per form the
# formulas must cover: standard, pointwise, grouped, depthwise, dilated, strided, 1d and 3d.
CONV_CASES = {
    "standard 2d": (2, 3, 4, (5, 6), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    "pointwise 2d": (2, 4, 3, (4, 4), (1, 1), (1, 1), (0, 0), (1, 1), 1),
    "grouped 2d": (2, 4, 6, (5, 5), (3, 3), (2, 2), (1, 1), (1, 1), 2),
    "depthwise 2d": (2, 4, 4, (5, 5), (3, 3), (1, 1), (1, 1), (1, 1), 4),
    "depthwise x2 multiplier": (2, 2, 4, (4, 5), (3, 3), (1, 1), (0, 1), (1, 1), 2),
    "dilated 2d": (2, 2, 3, (7, 7), (3, 3), (1, 1), (2, 2), (2, 2), 1),
    "strided asymmetric": (2, 3, 2, (7, 6), (3, 2), (2, 3), (1, 0), (1, 1), 1),
    "1d": (1, 3, 4, (9,), (3,), (2,), (1,), (1,), 1),
    "3d grouped": (3, 4, 4, (4, 3, 4), (2, 2, 3), (1, 1, 2), (1, 0, 1), (1, 1, 1), 2),
}


@pytest.mark.parametrize("case", list(CONV_CASES), ids=list(CONV_CASES))
def test_conv_formula_counts_every_multiplication(case: str) -> None:
    nd, c_in, c_out, size, kernel, stride, padding, dilation, groups = CONV_CASES[case]
    torch.manual_seed(0)
    x = torch.randn(2, c_in, *size, dtype=torch.float64)
    w = torch.randn(c_out, c_in // groups, *kernel, dtype=torch.float64)
    out, mults = loop_conv(x, w, stride, padding, dilation, groups)
    torch.testing.assert_close(out, CONV_FN[nd](x, w, None, stride, padding, dilation, groups))
    op = conv(tuple(x.shape), c_out, kernel, stride, padding, dilation, groups, bias=False)
    assert op.cost.madds == mults
    assert op.output_shape == tuple(out.shape)
    assert op.cost.params == w.numel()


# (nd, c_in, c_out, size, kernel, stride, padding, output_padding, dilation, groups)
CONV_T_CASES = {
    "upsample x2": (2, 3, 2, (3, 4), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 1),
    "output_padding": (2, 2, 3, (3, 3), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1),
    "grouped": (2, 4, 6, (3, 3), (3, 3), (2, 2), (0, 0), (1, 0), (1, 1), 2),
    "dilated": (2, 2, 2, (3, 4), (3, 3), (1, 1), (1, 1), (0, 0), (2, 2), 1),
    "stride 3 no padding": (2, 2, 2, (2, 3), (2, 3), (3, 3), (0, 0), (2, 1), (1, 1), 1),
    "1d": (1, 3, 2, (5,), (3,), (2,), (1,), (1,), (1,), 1),
    "3d": (3, 2, 2, (2, 3, 2), (2, 2, 2), (2, 1, 2), (0, 0, 1), (1, 0, 0), (1, 1, 1), 1),
}


@pytest.mark.parametrize("case", list(CONV_T_CASES), ids=list(CONV_T_CASES))
def test_conv_transpose_formula_counts_every_multiplication(case: str) -> None:
    nd, c_in, c_out, size, kernel, stride, padding, output_padding, dilation, groups = CONV_T_CASES[case]
    torch.manual_seed(0)
    x = torch.randn(2, c_in, *size, dtype=torch.float64)
    w = torch.randn(c_in, c_out // groups, *kernel, dtype=torch.float64)
    out, mults = loop_conv_transpose(x, w, stride, padding, output_padding, dilation, groups)
    expected = CONV_T_FN[nd](x, w, None, stride, padding, output_padding, groups, dilation)
    torch.testing.assert_close(out, expected)
    op = conv_transpose(tuple(x.shape), c_out, kernel, stride, padding, output_padding, groups, bias=False,
                        dilation=dilation)
    assert op.cost.madds == mults
    assert op.output_shape == tuple(out.shape)


def test_thop_style_output_size_count_overstates_transposed_conv() -> None:
    """Counting ``output elements x C_in/g x k^2`` (thop's rule) instead of the scatter's real
    work over-counts an x2 upsampling transposed conv by about stride^2 = 4x."""
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    w = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    out, mults = loop_conv_transpose(x, w, (2, 2), (1, 1), (0, 0), (1, 1), 1)
    thop_rule = out.numel() * 2 * 16  # 3*8*8 outputs x 2 input channels x 4x4 taps
    assert mults == 2 * 16 * 3 * 16  # 2*4*4 inputs, each scattering 3 x 4x4 products
    assert thop_rule / mults == pytest.approx(4.0)


def loop_matmul(a, b):
    """Schoolbook matrix product over broadcast batch dims; returns (product, multiplications)."""
    batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = a.expand(*batch, *a.shape[-2:]), b.expand(*batch, *b.shape[-2:])
    out = torch.zeros(*batch, a.shape[-2], b.shape[-1], dtype=a.dtype)
    mults = 0
    for idx in itertools.product(*(range(s) for s in batch)):
        for i, j in itertools.product(range(a.shape[-2]), range(b.shape[-1])):
            for k in range(a.shape[-1]):
                out[idx + (i, j)] += a[idx + (i, k)] * b[idx + (k, j)]
                mults += 1
    return out, mults


@pytest.mark.parametrize("a_shape,b_shape", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 2), (3, 2, 4))])
def test_matmul_formula_counts_every_multiplication(a_shape, b_shape) -> None:
    a, b = torch.randn(a_shape, dtype=torch.float64), torch.randn(b_shape, dtype=torch.float64)
    out, mults = loop_matmul(a, b)
    torch.testing.assert_close(out, a @ b)
    op = matmul(a_shape, b_shape)
    assert op.cost.madds == mults and op.output_shape == tuple(out.shape)


def test_linear_formula_counts_every_multiplication() -> None:
    x, w = torch.randn(2, 5, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    out, mults = loop_matmul(x, w.T)
    torch.testing.assert_close(out, F.linear(x, w))
    op = linear((2, 5, 6), 6, 3, bias=True)
    assert op.cost.madds == mults
    assert op.cost.params == w.numel() + 3
