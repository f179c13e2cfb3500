"""The memory-access relations behind the ShuffleNet V2 guidelines G1 and G2.

Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", arXiv:1807.11164, Sec. 2. Notation: a 1x1 convolution with ``c1`` input and
``c2`` output channels on an ``h x w`` feature map, ``g`` groups, no bias. Its FLOPs in
the paper's sense (multiply-adds) are ``B = hw c1 c2 / g`` and, when the cache holds
every tensor, its memory access cost is

    MAC = hw (c1 + c2) + c1 c2 / g                       (Eq. 1 for g = 1, Eq. 2)

The cost itself is never recomputed here: :func:`pointwise_mem_access` and
:func:`group_mem_access_excess` evaluate the one ``conv`` formula. What this module
adds are the relations the paper derives from it: the G1 lower bound at fixed
FLOPs, and the memory a group convolution spends over a dense one of equal FLOPs.
A batch of ``N`` images is the same as one image with ``N hw`` pixels, so ``hw``
below may include the batch.
"""

from __future__ import annotations

from math import sqrt

from archstat.formulas.conv import conv

__all__ = ["pointwise_mem_access", "g1_mem_access_bound", "g1_bound_gap", "group_mem_access_excess"]


def pointwise_mem_access(hw: int, c1: int, c2: int, groups: int = 1) -> int:
    """MAC of a bias-free 1x1 convolution: ``hw (c1 + c2) + c1 c2 / g`` elements.

    Evaluated through the ``conv`` formula on a ``(1, c1, hw, 1)`` map, so it is the
    number every archstat table shows for such a layer. Source: arXiv:1807.11164,
    Sec. 2, G1 (Eq. 1 setting) and G2 (Eq. 2).
    """
    return conv((1, c1, hw, 1), c2, 1, groups=groups, bias=False).cost.mem_access


def g1_mem_access_bound(hw: int, madds: int) -> float:
    """The G1 lower bound on the MAC of a 1x1 convolution of ``B = madds`` FLOPs.

    ``MAC >= 2 sqrt(hw B) + B / (hw)``, from the mean value inequality
    ``c1 + c2 >= 2 sqrt(c1 c2)``; equality holds exactly when ``c1 = c2`` (then the
    bound is ``2 hw c + c^2``). Source: arXiv:1807.11164, Sec. 2, G1, Eq. 1. ``hw``
    must be positive; ``madds`` is the dense (``g = 1``) multiply-add count.
    """
    if hw <= 0:
        raise ValueError(f"hw must be positive, got {hw}")
    return 2.0 * sqrt(hw * madds) + madds / hw


def g1_bound_gap(hw: int, c1: int, c2: int) -> float:
    """How far a dense 1x1 convolution's MAC lies above the G1 bound, relative.

    ``MAC / (2 sqrt(hw B) + B/(hw)) - 1`` with ``B = hw c1 c2``: 0 for ``c1 = c2``,
    growing with the imbalance: 6.0% at 1:2, 42% at 1:6 and 86% at 1:12 for the
    GPU channels of arXiv:1807.11164, Table 1 ((90,180), (52,312), (36,432) at 56x56).
    """
    return pointwise_mem_access(hw, c1, c2) / g1_mem_access_bound(hw, hw * c1 * c2) - 1.0


def group_mem_access_excess(input_shape: tuple[int, ...], out_channels: int, kernel_size: int | tuple[int, ...],
                            groups: int, stride: int | tuple[int, ...] = 1, padding: int | tuple[int, ...] | str = 0,
                            dilation: int | tuple[int, ...] = 1) -> int:
    """Memory access a ``groups``-way convolution spends over a dense one of equal FLOPs.

    G2 (arXiv:1807.11164, Eq. 2): with the input fixed, a group convolution with
    ``c2`` outputs does the multiply-adds of a dense convolution with ``c2 / g``
    outputs, but writes ``g`` times as many output channels. The excess is
    ``MAC(c2, g) - MAC(c2 / g, 1) = N hw_out c2 (1 - 1/g)`` elements; both terms come
    from the ``conv`` formula (bias-free), so any kernel size works.
    """
    grouped = conv(input_shape, out_channels, kernel_size, stride, padding, dilation, groups=groups, bias=False)
    dense = conv(input_shape, out_channels // groups, kernel_size, stride, padding, dilation, groups=1, bias=False)
    return grouped.cost.mem_access - dense.cost.mem_access
