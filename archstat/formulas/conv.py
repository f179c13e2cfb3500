"""Convolution and transposed convolution, 1d/2d/3d, in every form.

Standard, pointwise (1x1), grouped, depthwise and dilated convolutions are one
formula: the seeds' tables (``003_44db5bec362a28e2.txt``, "complexity analysis")
give them as special cases of

    params = k_h * k_w * C_in / g * C_out (+ C_out bias)
    madds  = N * C_out * H_out * W_out * (C_in / g) * k_h * k_w

(depthwise: g = C_in, so madds = N * k_h k_w * C_out * H_out W_out). Padded taps
are counted like real ones, as every paper and torchvision count them.
"""

from __future__ import annotations

from math import prod

from archstat.formulas.core import Cost, IntOrSeq, OpCost, Shape, ShapeError, expand, formula, numel
from archstat.formulas.shapes import conv_output_size, conv_transpose_output_size

__all__ = ["conv", "conv_transpose", "conv_kind"]


def conv_kind(
    in_channels: int, out_channels: int, kernel_size: tuple[int, ...], groups: int,
    dilation: tuple[int, ...] = (1,), transposed: bool = False,
) -> str:
    """Layer-type label used for by-type summaries (MobileNet paper, Table 2 style).

    ``"conv 3x3"``, ``"conv 1x1"``, ``"conv dw 3x3"`` (depthwise: one group per input
    channel), ``"conv grouped 3x3"``, ``"conv 1x1 grouped"``, ``"conv transpose 4x4"``;
    ``" dilated"`` is appended when any dilation exceeds 1.
    """
    k = "x".join(map(str, kernel_size))
    if transposed:
        label = f"conv transpose {k}"
    elif groups > 1 and groups == in_channels and out_channels % in_channels == 0:
        label = f"conv dw {k}"
    elif prod(kernel_size) == 1:
        label = "conv 1x1 grouped" if groups > 1 else "conv 1x1"
    elif groups > 1:
        label = f"conv grouped {k}"
    else:
        label = f"conv {k}"
    return label + (" dilated" if any(d > 1 for d in dilation) else "")


def _check_groups(in_channels: int, out_channels: int, groups: int) -> None:
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise ShapeError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")


@formula("conv")
def conv(
    input_shape: Shape,
    out_channels: int,
    kernel_size: IntOrSeq,
    stride: IntOrSeq = 1,
    padding: IntOrSeq | str = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
    bias: bool = True,
    count_bias: bool = False,
) -> OpCost:
    """Convolution over ``input_shape = (N, C_in, *spatial)`` (1, 2 or 3 spatial dims).

    - params: ``C_out * C_in/g * prod(k)`` weights, plus ``C_out`` if ``bias``.
    - madds: ``N * C_out * prod(out) * C_in/g * prod(k)``; the bias additions are
      not multiply-adds and are left out unless ``count_bias`` (ptflops counts them), which
      adds ``N * C_out * prod(out)``.
    - flops: ``2 * madds``.
    - mem_access: input + output + weights (+ bias) elements (ShuffleNet V2 MAC); for
      a bias-free 1x1 conv this is ``hw(c1 + c2) + c1 c2`` (paper Eq. 1 setting).
    - ``padding`` may be ``"valid"`` (0) or ``"same"`` (output size = input size, as
      torch allows only with stride 1).
    Source: seed ``003_44db5bec362a28e2.txt``; He et al. (arXiv:1512.03385) Sec. 3.3.
    """
    n, c_in, *spatial = input_shape
    nd = len(spatial)
    k = expand(kernel_size, nd, "kernel_size")
    s, d = expand(stride, nd, "stride"), expand(dilation, nd, "dilation")
    _check_groups(c_in, out_channels, groups)
    if padding == "same":
        if any(si != 1 for si in s):
            raise ShapeError("padding='same' needs stride 1")
        out_spatial = tuple(spatial)
    else:
        out_spatial = conv_output_size(tuple(spatial), k, s, 0 if padding == "valid" else padding, d)
    weights = out_channels * (c_in // groups) * prod(k)
    params = weights + (out_channels if bias else 0)
    out_elems = n * out_channels * prod(out_spatial)
    madds = out_elems * (c_in // groups) * prod(k) + (out_elems if bias and count_bias else 0)
    output_shape = (n, out_channels, *out_spatial)
    return OpCost(
        Cost(params=params, madds=madds, flops=2 * madds, mem_access=numel(input_shape) + out_elems + params),
        output_shape,
        conv_kind(c_in, out_channels, k, groups, d),
        {"kernel_size": k, "stride": s, "dilation": d, "groups": groups, "bias": bias},
    )


@formula("conv_transpose")
def conv_transpose(
    input_shape: Shape,
    out_channels: int,
    kernel_size: IntOrSeq,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    output_padding: IntOrSeq = 0,
    groups: int = 1,
    bias: bool = True,
    dilation: IntOrSeq = 1,
    count_bias: bool = False,
) -> OpCost:
    """Transposed convolution over ``input_shape = (N, C_in, *spatial)``.

    Every input element scatters a ``prod(k) x C_out/g`` patch, so

    - madds: ``N * C_in * prod(in) * C_out/g * prod(k)``. This is what the scatter
      algorithm computes, including taps that land in the cropped ``padding`` border;
      it does not depend on the output size, so ``output_padding`` adds none. (thop
      multiplies by the *output* size instead and over-counts by about ``stride**d``.)
    - params: ``C_in * C_out/g * prod(k)`` weights (+ ``C_out`` bias).
    - flops: ``2 * madds``; ``count_bias`` adds one madd per output element.
    - mem_access: input + output + weights (+ bias) elements.
    Output size: :func:`~archstat.formulas.shapes.conv_transpose_output_size`.
    """
    n, c_in, *spatial = input_shape
    nd = len(spatial)
    k = expand(kernel_size, nd, "kernel_size")
    s, d = expand(stride, nd, "stride"), expand(dilation, nd, "dilation")
    _check_groups(c_in, out_channels, groups)
    out_spatial = conv_transpose_output_size(tuple(spatial), k, s, padding, output_padding, d)
    weights = c_in * (out_channels // groups) * prod(k)
    params = weights + (out_channels if bias else 0)
    out_elems = n * out_channels * prod(out_spatial)
    madds = numel(input_shape) * (out_channels // groups) * prod(k) + (out_elems if bias and count_bias else 0)
    return OpCost(
        Cost(params=params, madds=madds, flops=2 * madds, mem_access=numel(input_shape) + out_elems + params),
        (n, out_channels, *out_spatial),
        conv_kind(c_in, out_channels, k, groups, d, transposed=True),
        {"kernel_size": k, "stride": s, "dilation": d, "groups": groups, "bias": bias},
    )
