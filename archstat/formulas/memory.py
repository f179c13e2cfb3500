"""Ops that move data without arithmetic: concat, split, channel shuffle, copies,
padding, interpolation, fills.

ShuffleNet V2 (Ma et al., arXiv:1807.11164, G3/G4) stresses that these cost no
FLOPs but real memory access. Each is counted as reading its inputs and writing its
outputs once. Pure views (``view``, ``reshape`` of a contiguous tensor, ``flatten``,
``permute``, ``transpose``, slicing) move nothing and cost nothing; the counter
treats them as free, never as unknown.
"""

from __future__ import annotations

from math import ceil, floor
from struct import pack, unpack
from typing import Sequence

from archstat.formulas.core import Category, Cost, OpCost, Shape, ShapeError, expand, formula, numel
from archstat.formulas.pool import adaptive_pool

__all__ = ["concat", "split", "copy", "channel_shuffle", "pad", "interpolate", "antialias_taps", "fill",
           "INTERPOLATION_TAPS", "ANTIALIAS_SUPPORT"]


@formula("concat", counts="memory")
def concat(shapes: Sequence[Shape], dim: int = 0) -> OpCost:
    """``torch.cat``: flops 0; mem_access = inputs + output (2x the output size)."""
    first = tuple(shapes[0])
    d = dim % len(first)
    for s in shapes[1:]:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != d):
            raise ShapeError(f"cannot concatenate shapes {[tuple(s) for s in shapes]} along dim {dim}")
    out = (*first[:d], sum(s[d] for s in shapes), *first[d + 1:])
    return OpCost(Cost(mem_access=sum(numel(s) for s in shapes) + numel(out)), out, _moves("concat"))


@formula("split", counts="memory")
def split(input_shape: Shape, sizes: Sequence[int], dim: int = 0) -> OpCost:
    """``torch.split`` / ``chunk`` into pieces of ``sizes`` along ``dim``.

    torch returns views, but a channel split feeds separate branches and, in the
    ShuffleNet V2 accounting, reads the input once and writes each piece once:
    mem_access = ``2 * numel(input)``; flops 0.
    """
    d = dim % len(input_shape)
    if sum(sizes) != input_shape[d]:
        raise ShapeError(f"split sizes {list(sizes)} do not add up to {input_shape[d]}")
    outs = tuple((*input_shape[:d], s, *input_shape[d + 1:]) for s in sizes)
    return OpCost(Cost(mem_access=2 * numel(input_shape)), outs, _moves("split"))


@formula("copy", counts="memory")
def copy(input_shape: Shape, op: str = "copy", read: int | None = None) -> OpCost:
    """A materialising copy: ``contiguous`` of a permuted tensor, ``roll``, ``flip``, a dtype
    cast (``op="cast"``), a gather or index (``op="gather"``: the output's elements are read
    from wherever they lie), im2col.

    mem_access: ``numel`` written + ``read`` elements read (default: as many as written;
    a gather also reads its index tensor, passed in ``read``); flops 0.
    """
    n = numel(input_shape)
    return OpCost(Cost(mem_access=n + (n if read is None else read)), tuple(input_shape), _moves(op))


@formula("channel_shuffle", counts="memory")
def channel_shuffle(input_shape: Shape, groups: int) -> OpCost:
    """ShuffleNet's channel shuffle (reshape to ``(g, C/g)``, transpose, flatten).

    Zhang et al., arXiv:1707.01083, Sec. 3.1. mem_access: ``2 * numel``; flops 0.
    """
    if input_shape[1] % groups:
        raise ShapeError(f"channel shuffle: {groups} groups do not divide {input_shape[1]} channels")
    return OpCost(Cost(mem_access=2 * numel(input_shape)), tuple(input_shape), _moves("channel_shuffle"))


@formula("pad", counts="memory")
def pad(input_shape: Shape, padding: Sequence[int]) -> OpCost:
    """``F.pad``: ``padding`` as torch gives it (last dim first, ``(left, right, ...)``).

    mem_access: input + output; flops 0.
    """
    if len(padding) % 2 or len(padding) // 2 > len(input_shape):
        raise ShapeError(f"padding {list(padding)} does not fit shape {tuple(input_shape)}")
    out = list(input_shape)
    for i in range(len(padding) // 2):
        out[-1 - i] += padding[2 * i] + padding[2 * i + 1]
    if any(s <= 0 for s in out):
        raise ShapeError(f"padding {list(padding)} makes shape {tuple(input_shape)} empty")
    return OpCost(Cost(mem_access=numel(input_shape) + numel(out)), tuple(out), _moves("pad"))


#: Input elements combined per output element by each interpolation mode without anti-aliasing
#: (``area`` is not one: torch runs adaptive average pooling for it, counted as :func:`adaptive_pool`).
INTERPOLATION_TAPS = {"nearest": 1, "nearest-exact": 1, "linear": 2, "bilinear": 4, "trilinear": 8, "bicubic": 16}

#: The anti-aliased filters' half-widths at scale 1, in input pixels: ``interp_size / 2`` in torch's
#: ``UpSampleKernel.cpp`` (triangle 2 taps, Keys cubic 4, Lanczos-3 6), as in Pillow's ``Resample.c``.
ANTIALIAS_SUPPORT = {"bilinear": 1.0, "bicubic": 2.0, "lanczos": 3.0}


#: The input ranks each ``F.interpolate`` mode takes, as torch's ``F.interpolate`` dispatches
#: them: 3-D, 4-D or 5-D for nearest and area, only the rank the name implies for the
#: others (``"Got 4D input, but trilinear mode needs 5D input"``); any other rank or mode is
#: a ``NotImplementedError`` ("Only 3D, 4D and 5D input Tensors supported").
_INTERPOLATION_RANKS = {"nearest": (3, 4, 5), "nearest-exact": (3, 4, 5), "area": (3, 4, 5), "linear": (3,),
                        "bilinear": (4,), "bicubic": (4,), "lanczos": (4,), "trilinear": (5,)}


def _f32(x: float) -> float:
    """``x`` rounded to float32, as a C++ ``float`` holds it (a sum, product or quotient of float32
    values computed in double and rounded once is the float32 operation's result)."""
    return unpack("f", pack("f", x))[0]


def antialias_taps(input_size: int, output_size: int, scale: float, support: float, float64: bool = False) -> int:
    """Input pixels read over one dimension's outputs by an anti-aliased resampling pass: the
    sum over outputs ``i`` of the window torch's ``_compute_indices_min_size_weights_aa`` (and
    Pillow's ``precompute_coeffs``) gives it. ``scale`` is input pixels per output pixel
    (:func:`_area_scale`), ``support`` the filter's half-width at scale 1
    (:data:`ANTIALIAS_SUPPORT`). Downsampling widens the filter by ``scale``::

        width  = support * max(scale, 1)
        center = scale * (i + 0.5)
        xmin   = max(trunc(center - width + 0.5), 0)
        xsize  = min(trunc(center + width + 0.5), input_size) - xmin,  clipped to [0, 2 ceil(width) + 1]

    torch computes ``scale``, ``width`` and ``center`` in the input's dtype: float32 (rounded
    here as it rounds them) unless ``float64`` (float64 and uint8 inputs); a window edge can
    move by one pixel between the two.
    """
    rounded = (lambda x: x) if float64 else _f32
    width = rounded(support * scale) if scale >= 1.0 else support
    widest = int(ceil(width)) * 2 + 1
    total = 0
    for i in range(output_size):
        center = rounded(scale * (i + 0.5))
        xmin = max(int(rounded(center - width) + 0.5), 0)
        total += min(max(min(int(rounded(center + width) + 0.5), input_size) - xmin, 0), widest)
    return total


def _area_scale(n_in: int, n_out: int, align_corners: bool, scale_factor: float | None, float64: bool) -> float:
    """Input pixels per output pixel, as torch's ``area_pixel_compute_scale`` gives it in the
    input's dtype: ``(in - 1) / (out - 1)`` with aligned corners, else ``1 / scale_factor`` where
    the kernel is given one, else ``in / out``."""
    rounded = (lambda x: x) if float64 else _f32
    if align_corners:
        return rounded((n_in - 1) / (n_out - 1)) if n_out > 1 else 0.0
    return rounded(1.0 / scale_factor) if scale_factor is not None and scale_factor > 0 else rounded(n_in / n_out)


@formula("interpolate")
def interpolate(input_shape: Shape, size: int | Sequence[int] | None = None,
                scale_factor: float | Sequence[float] | None = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False, float64: bool = False) -> OpCost:
    """``F.interpolate`` / ``nn.Upsample`` over ``(N, C, *spatial)``.

    Output size: ``size``, else ``floor(in * scale_factor)``. flops: output elements x
    taps of the mode (:data:`INTERPOLATION_TAPS`: nearest 1, bilinear 4, bicubic 16 ...);
    ``area`` is the adaptive average pool torch runs for it (:func:`adaptive_pool`'s flops).
    With ``antialias`` (bilinear, bicubic, lanczos; Pillow's resampling) the filter widens
    with the downscale factor and is applied separably, as torch's CPU kernel does: the
    width pass reads :func:`antialias_taps` per row of ``N C H``, then the height pass per
    column of ``N C W_out``; a dimension whose size does not change has no pass; ``float64``:
    the windows as torch computes them for a float64 or uint8 input. (torch's CUDA kernel
    applies both windows per output: the product of the two, more work.)
    mem_access: input + output. Refused as ``F.interpolate`` refuses them: an input rank
    the mode does not take (``linear`` 3-D, ``bilinear`` / ``bicubic`` / ``lanczos`` 4-D,
    ``trilinear`` 5-D, nearest and area 3-D to 5-D), both or neither of ``size`` and
    ``scale_factor``, a sequence of either whose length is not the input's number of
    spatial dimensions, ``align_corners`` with nearest or area, anti-aliasing in another
    mode, and lanczos without it or with aligned corners.
    """
    ranks = _INTERPOLATION_RANKS.get(mode, ())
    if len(input_shape) not in ranks:
        if len(ranks) == 1 and len(input_shape) in (3, 4, 5):
            raise ShapeError(f"Got {len(input_shape)}D input, but {mode} mode needs {ranks[0]}D input")
        raise ShapeError(f"Only 3D, 4D and 5D input Tensors supported (got {len(input_shape)}D) for the modes: "
                         f"{' | '.join(_INTERPOLATION_RANKS)} (got {mode})")
    if align_corners is not None and mode in ("nearest", "area", "nearest-exact"):
        raise ShapeError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                         "bicubic | trilinear")
    if antialias and mode not in ANTIALIAS_SUPPORT:
        raise ShapeError("Anti-alias option is restricted to bilinear, bicubic, and lanczos modes and requires a 4-D "
                         "tensor as input")
    if mode == "lanczos" and (align_corners or not antialias):
        raise ShapeError("Lanczos mode does not support align_corners=True" if align_corners
                         else "Lanczos mode requires antialias=True")
    nd = len(input_shape) - 2
    factors: tuple[float, ...] | None = None
    if size is not None and scale_factor is not None:
        raise ShapeError("only one of size or scale_factor should be defined")
    if size is not None:
        if not isinstance(size, int) and len(size) != nd:
            raise ShapeError(f"Input and output must have the same number of spatial dimensions, but got input "
                             f"{tuple(input_shape)} and output size {list(size)}")
        if recompute_scale_factor:
            raise ShapeError("recompute_scale_factor is not meaningful with an explicit size.")
        out_spatial = expand(size, nd, "size")
    elif scale_factor is not None:
        factors = (scale_factor,) * nd if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        if len(factors) != nd:
            raise ShapeError(f"Input and scale_factor must have the same number of spatial dimensions, but got input "
                             f"{tuple(input_shape)} and scale_factor {factors}")
        out_spatial = tuple(floor(i * f) for i, f in zip(input_shape[2:], factors))
        if recompute_scale_factor:  # the kernel is given the output size only
            factors = None
    else:
        raise ShapeError("interpolate needs size or scale_factor")
    out = (*input_shape[:2], *out_spatial)
    if any(s <= 0 for s in out):
        raise ShapeError(f"interpolate to {out} is empty")
    if mode == "area":
        return OpCost(adaptive_pool(input_shape, out_spatial).cost, out, Category("resample", "interpolate_area"))
    if antialias:
        (n, c, h, w), (h_out, w_out) = input_shape, out_spatial
        flops = 0
        for length, n_in, n_out, axis in ((n * c * h, w, w_out, 1), (n * c * w_out, h, h_out, 0)):
            if n_in != n_out:
                scale = _area_scale(n_in, n_out, bool(align_corners), None if factors is None else factors[axis],
                                    float64)
                flops += length * antialias_taps(n_in, n_out, scale, ANTIALIAS_SUPPORT[mode], float64)
        return OpCost(Cost(flops=flops, mem_access=numel(input_shape) + numel(out)), out,
                      Category("resample", f"interpolate_{mode}_antialias"))
    taps = INTERPOLATION_TAPS[mode]
    return OpCost(Cost(flops=numel(out) * taps, mem_access=numel(input_shape) + numel(out)), out,
                  Category("resample", f"interpolate_{mode}"))


@formula("fill", counts="memory")
def fill(output_shape: Shape) -> OpCost:
    """A tensor created in the forward pass (``zeros``, ``new_zeros``, ``arange``,
    ``x[idx] = v``): mem_access = the elements written; flops 0."""
    return OpCost(Cost(mem_access=numel(output_shape)), tuple(output_shape), _moves("fill"))


def _moves(op: str) -> Category:
    return Category("data_movement", op)

