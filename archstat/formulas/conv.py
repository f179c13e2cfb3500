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
from typing import cast

from archstat.formulas.core import (Category, Cost, IntOrSeq, OpCost, Shape, ShapeError, expand, formula, numel,
                                    with_batch, without_batch)
from archstat.formulas.shapes import conv_output_size, conv_transpose_output_size

__all__ = ["conv", "conv_transpose", "conv_category", "deform_conv"]


def conv_category(in_channels: int, out_channels: int, kernel_size: tuple[int, ...], groups: int,
                  dilation: tuple[int, ...] = (1,), op: str = "conv") -> Category:
    """The category of a convolution: depthwise (one group per input channel, the output a
    multiple of the input channels), pointwise (1x1 kernel), grouped, dilated.

    Labels: ``"conv 3x3"``, ``"conv 1x1"``, ``"conv dw 3x3"``, ``"conv grouped 3x3"``,
    ``"conv 1x1 grouped"``, ``"conv transpose 4x4"`` (+ ``" dilated"``).
    """
    depthwise = op == "conv" and groups > 1 and groups == in_channels and out_channels % in_channels == 0
    return Category("conv", op, len(kernel_size), tuple(kernel_size), groups, depthwise, max(kernel_size) == 1,
                    max(dilation) > 1)


def _check_channels(c_in: int, in_channels: int | None, out_channels: int, groups: int, shape: Shape) -> None:
    if in_channels is not None and c_in != in_channels:
        raise ShapeError(f"expects {in_channels} input channels, got {c_in} (input {'x'.join(map(str, shape))})")
    if groups < 1 or c_in % groups or out_channels % groups:
        raise ShapeError(f"groups={groups} must divide in_channels={c_in} and out_channels={out_channels}")


@formula("conv", counts="madds")
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
    in_channels: int | None = None,
    spatial_dims: int | None = None,
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
    - ``in_channels`` (the layer's own) refuses an input with another channel count;
      ``spatial_dims`` lets the input be unbatched ``(C_in, *spatial)``, as torch does.
    Source: seed ``003_44db5bec362a28e2.txt``; He et al. (arXiv:1512.03385) Sec. 3.3.
    """
    shape, unbatched = with_batch(input_shape, spatial_dims, "conv")
    n, c_in, *spatial = shape
    nd = len(spatial)
    k = expand(kernel_size, nd, "kernel_size")
    s, d = expand(stride, nd, "stride"), expand(dilation, nd, "dilation")
    _check_channels(c_in, in_channels, out_channels, groups, shape)
    if padding == "same":
        if any(si != 1 for si in s):
            raise ShapeError("padding='same' needs stride 1")
        out_spatial = tuple(spatial)
    else:
        if isinstance(padding, str) and padding != "valid":
            raise ShapeError(f"padding must be 'valid', 'same' or sizes, not {padding!r}")
        out_spatial = conv_output_size(tuple(spatial), k, s, 0 if isinstance(padding, str) else padding, d)
    weights = out_channels * (c_in // groups) * prod(k)
    params = weights + (out_channels if bias else 0)
    out_elems = n * out_channels * prod(out_spatial)
    madds = out_elems * (c_in // groups) * prod(k) + (out_elems if bias and count_bias else 0)
    return OpCost(
        Cost(params=params, madds=madds, flops=2 * madds, mem_access=numel(shape) + out_elems + params),
        without_batch((n, out_channels, *out_spatial), unbatched),
        conv_category(c_in, out_channels, k, groups, d),
        {"kernel_size": k, "stride": s, "dilation": d, "groups": groups, "bias": bias, "padding": padding},
    )


@formula("conv_transpose", counts="madds")
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
    in_channels: int | None = None,
    spatial_dims: int | None = None,
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
    shape, unbatched = with_batch(input_shape, spatial_dims, "transposed conv")
    n, c_in, *spatial = shape
    nd = len(spatial)
    k = expand(kernel_size, nd, "kernel_size")
    s, d = expand(stride, nd, "stride"), expand(dilation, nd, "dilation")
    _check_channels(c_in, in_channels, out_channels, groups, shape)
    out_spatial = conv_transpose_output_size(tuple(spatial), k, s, padding, output_padding, d)
    weights = c_in * (out_channels // groups) * prod(k)
    params = weights + (out_channels if bias else 0)
    out_elems = n * out_channels * prod(out_spatial)
    madds = numel(shape) * (out_channels // groups) * prod(k) + (out_elems if bias and count_bias else 0)
    return OpCost(
        Cost(params=params, madds=madds, flops=2 * madds, mem_access=numel(shape) + out_elems + params),
        without_batch((n, out_channels, *out_spatial), unbatched),
        conv_category(c_in, out_channels, k, groups, d, op="conv_transpose"),
        {"kernel_size": k, "stride": s, "dilation": d, "groups": groups, "bias": bias},
    )


@formula("deform_conv", counts="madds")
def deform_conv(
    input_shape: Shape,
    out_channels: int,
    kernel_size: IntOrSeq,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
    offset_groups: int = 1,
    bias: bool = True,
    mask: bool = False,
    count_bias: bool = False,
) -> OpCost:
    """Deformable convolution (``torchvision.ops.deform_conv2d``; Dai et al., arXiv:1703.06211;
    with ``mask``, modulated DCN v2, Zhu et al., arXiv:1811.11168).

    The convolution itself is the :func:`conv` of the same geometry (its madds, params and
    output size). Each of the ``N * C_in * prod(k) * prod(out)`` sampled input values is
    read at a fractional position by bilinear interpolation (4 taps, counted as 4 flops
    like ``F.interpolate(mode="bilinear")``), and multiplied by its mask value with
    ``mask`` (1 flop more). Those are flops, not multiply-adds: the papers count the
    conv only. mem_access: input + offsets (``2 * offset_groups * prod(k)`` channels per
    output position) + mask (half of that) + output + weights.
    """
    base = conv(input_shape, out_channels, kernel_size, stride, padding, dilation, groups, bias, count_bias)
    n, c_in, *spatial = input_shape
    out = cast(Shape, base.output_shape)  # a conv has one output
    positions = prod(out[2:])
    k = prod(expand(kernel_size, len(spatial), "kernel_size"))
    samples = n * c_in * k * positions
    offsets = n * 2 * offset_groups * k * positions
    masks = offsets // 2 if mask else 0
    cost = base.cost
    return OpCost(Cost(cost.params, cost.madds, cost.flops + samples * (4 + int(mask)),
                       cost.mem_access + offsets + masks),
                  out, conv_category(c_in, out_channels, expand(kernel_size, len(spatial)), groups,
                                     expand(dilation, len(spatial)), op="deform_conv"), base.attrs)
