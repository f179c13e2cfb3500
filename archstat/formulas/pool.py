"""Pooling and reductions.

A pooling window combines its elements with one comparison (max) or addition (avg)
each, so ``flops = output elements * window size`` (the nominal window, padded taps
included, like the conv formulas). Reductions (``mean``, ``sum``, ``amax`` ...) cost one
flop per input element. No multiply-adds: papers do not count pooling.
"""

from __future__ import annotations

from math import prod
from typing import Sequence

from archstat.formulas.core import (Category, Cost, EmptyOutputError, IntOrSeq, OpCost, Shape, ShapeError, expand,
                                    formula, numel, wrap_dim)
from archstat.formulas.shapes import adaptive_windows, pool_output_size

__all__ = ["pool", "adaptive_pool", "reduction"]


@formula("pool")
def pool(
    input_shape: Shape,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    ceil_mode: bool = False,
    mode: str = "max",
    spatial_dims: int | None = None,
    output_size: IntOrSeq | None = None,
) -> OpCost:
    """Max / average pooling over the last ``spatial_dims`` dimensions of ``input_shape``.

    Output size: :func:`~archstat.formulas.shapes.pool_output_size`, or ``output_size`` for
    pools that place their windows themselves (fractional max pooling, at random). A 3-D
    average pool also refuses an input smaller than its kernel before padding, as ATen's
    ``avg_pool3d`` does (``pool3d_shape_check`` with ``check_input_size``: "input image
    smaller than kernel size").
    flops: ``numel(output) * prod(kernel)``. mem_access: input + output.
    """
    nd = spatial_dims or len(input_shape) - 2
    _check_rank(input_shape, nd, f"{mode} pool")
    lead, spatial = tuple(input_shape[:-nd]), tuple(input_shape[-nd:])
    k = expand(kernel_size, nd, "kernel_size")
    out_spatial = expand(output_size, nd, "output_size") if output_size is not None else \
        pool_output_size(spatial, k, stride, padding, dilation, ceil_mode)  # first: torch checks the padding first
    if mode == "avg" and nd == 3 and output_size is None and any(i < ki for i, ki in zip(spatial, k)):
        raise EmptyOutputError(f"input image {'x'.join(map(str, spatial))} smaller than kernel size "
                               f"{'x'.join(map(str, k))}")
    out = (*lead, *out_spatial)
    return OpCost(
        Cost(flops=numel(out) * prod(k), mem_access=numel(input_shape) + numel(out)),
        out,
        Category("pool", f"{mode}_pool", spatial_dims=nd, kernel=k),
    )


def _check_rank(input_shape: Shape, nd: int, what: str) -> None:
    """Pools take ``(C, *spatial)`` or ``(N, C, *spatial)``, as torch's pooling layers do."""
    if len(input_shape) not in (nd + 1, nd + 2):
        raise ShapeError(f"{what} expects a {nd + 1}D (unbatched) or {nd + 2}D (batched) input, "
                         f"got {len(input_shape)}D input {tuple(input_shape)}")


@formula("adaptive_pool")
def adaptive_pool(input_shape: Shape, output_size: IntOrSeq | Sequence[int | None], mode: str = "avg",
                  spatial_dims: int | None = None) -> OpCost:
    """Adaptive max / average pooling to ``output_size`` (``None`` keeps that input size).

    flops: the exact number of elements combined, ``prod_d sum_i window_d(i)`` per
    channel (windows from :func:`~archstat.formulas.shapes.adaptive_windows`); a global
    average pool over ``H x W`` costs ``N C H W``. mem_access: input + output; an empty
    output (``output_size`` 0, which torch allows) reads nothing, as torch's kernels loop over
    the outputs.
    """
    if isinstance(output_size, int):
        nd = spatial_dims or len(input_shape) - 2
        sizes: tuple = (output_size,) * nd
    else:
        sizes = tuple(output_size)
        nd = len(sizes)
    _check_rank(input_shape, nd, f"adaptive {mode} pool")
    lead, spatial = tuple(input_shape[:-nd]), tuple(input_shape[-nd:])
    out_spatial = tuple(i if o is None else int(o) for i, o in zip(spatial, sizes))
    combined = prod(sum(adaptive_windows(i, o)) for i, o in zip(spatial, out_spatial))
    out = (*lead, *out_spatial)
    return OpCost(
        Cost(flops=numel(lead) * combined, mem_access=numel(input_shape) + numel(out) if numel(out) else 0),
        out,
        Category("pool", f"adaptive_{mode}_pool", spatial_dims=nd),
    )


@formula("reduction")
def reduction(input_shape: Shape, dims: Sequence[int] | int | None = None, keepdim: bool = False,
              op: str = "mean") -> OpCost:
    """``mean`` / ``sum`` / ``amax`` ... over ``dims`` (all dims when ``None``).

    flops: one per input element. mem_access: input + output. A dim out of range is
    refused with torch's message (:func:`~archstat.formulas.core.wrap_dim`).
    """
    ndim = len(input_shape)
    if dims is None or (not isinstance(dims, int) and len(dims) == 0):
        reduced = set(range(ndim))
    else:
        reduced = {wrap_dim(d, ndim) for d in ((dims,) if isinstance(dims, int) else dims)}
    out = tuple(1 if i in reduced else s for i, s in enumerate(input_shape) if keepdim or i not in reduced)
    return OpCost(Cost(flops=numel(input_shape), mem_access=numel(input_shape) + numel(out)), out,
                  Category("reduction", op))
