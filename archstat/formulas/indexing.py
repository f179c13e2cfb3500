"""Lookups, scatters, scans and patch rearrangements: ``nn.Embedding``, ``scatter_add`` /
``index_add`` / ``scatter_reduce``, ``cumsum`` / ``cumprod``, ``F.fold`` (col2im).

Gathers, index selects and ``F.unfold`` (im2col) only move data: they are
:func:`~archstat.formulas.memory.copy` with ``op="gather"`` / ``"im2col"``.
"""

from __future__ import annotations

from math import prod
from archstat.formulas.core import Category, Cost, IntOrSeq, OpCost, Shape, ShapeError, expand, formula, numel
from archstat.formulas.shapes import conv_output_size

__all__ = ["embedding", "scatter", "scan", "fold"]


@formula("embedding", counts="memory")
def embedding(indices_shape: Shape, num_embeddings: int, embedding_dim: int, mode: str | None = None,
              bags: int | None = None) -> OpCost:
    """``nn.Embedding`` (``mode=None``: one row per index, output ``(*indices, dim)``) or
    ``nn.EmbeddingBag`` (``mode`` ``"sum"`` / ``"mean"`` / ``"max"`` over ``bags`` bags:
    output ``(bags, dim)``).

    params: ``num_embeddings * embedding_dim``; a lookup multiplies nothing (``madds = 0``).
    flops: 0 for a lookup; a bag combines its rows, one flop per gathered element.
    mem_access: the indices + every gathered row + the output. Only the rows indexed are
    read, never the whole table.
    """
    gathered = numel(indices_shape) * embedding_dim
    if mode is None:
        out = (*indices_shape, embedding_dim)
        flops = 0
    else:
        out = (bags if bags is not None else indices_shape[0], embedding_dim)
        flops = gathered
    return OpCost(Cost(params=num_embeddings * embedding_dim, flops=flops,
                       mem_access=numel(indices_shape) + gathered + numel(out)),
                  out, Category("embedding", "embedding" if mode is None else "embedding_bag"))


@formula("scatter")
def scatter(target_shape: Shape, source_elements: int, index_elements: int, op: str = "scatter_add",
            reduces: bool = True) -> OpCost:
    """``scatter_add`` / ``index_add`` / ``scatter_reduce`` / ``index_put(accumulate=True)``
    (``reduces``: one flop per source element combined into the target) and their
    non-reducing forms ``scatter`` / ``index_copy`` / ``masked_scatter`` (0 flops).

    mem_access: the target read and written once + source + index elements.
    """
    return OpCost(Cost(flops=source_elements if reduces else 0,
                       mem_access=2 * numel(target_shape) + source_elements + index_elements),
                  tuple(target_shape), Category("data_movement", op))


@formula("scan")
def scan(input_shape: Shape, op: str = "cumsum") -> OpCost:
    """``cumsum`` / ``cumprod`` / ``cummax`` / ``logcumsumexp``: one flop per element (each
    output combines the previous one with one input). mem_access: input + output."""
    return OpCost(Cost(flops=numel(input_shape), mem_access=2 * numel(input_shape)), tuple(input_shape),
                  Category("scan", op))


@formula("fold")
def fold(input_shape: Shape, output_size: IntOrSeq, kernel_size: IntOrSeq, dilation: IntOrSeq = 1,
         padding: IntOrSeq = 0, stride: IntOrSeq = 1) -> OpCost:
    """``F.fold`` / ``nn.Fold`` (col2im): ``(N, C * prod(k), L)`` -> ``(N, C, *output_size)``,
    summing the overlapping patches.

    flops: one addition per input element (each patch value is added into its output
    position). mem_access: input + output. The ``L`` blocks must be the number of sliding
    windows over ``output_size``, as torch requires.
    """
    if len(input_shape) not in (2, 3):
        raise ShapeError(f"fold expects a 2D (unbatched) or 3D (batched) input, got {tuple(input_shape)}")
    shape = tuple(input_shape) if len(input_shape) == 3 else (1, *input_shape)
    size = expand(output_size, 2, "output_size")
    k = expand(kernel_size, 2, "kernel_size")
    blocks = prod(conv_output_size(size, k, stride, padding, dilation))
    n, ck, length = shape
    if ck % prod(k) or length != blocks:
        raise ShapeError(f"fold: input {tuple(input_shape)} does not hold {blocks} blocks of a {k} kernel")
    out = (n, ck // prod(k), *size)
    out = out if len(input_shape) == 3 else out[1:]
    return OpCost(Cost(flops=numel(input_shape), mem_access=numel(input_shape) + numel(out)), out,
                  Category("pool", "fold"))
