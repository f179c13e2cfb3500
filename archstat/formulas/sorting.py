"""Sorting and selection: ``sort``, ``argsort``, ``topk``, ``kthvalue``, ``unique`` and
non-maximum suppression (``torchvision.ops.nms``), the post-processing of detectors.

None of them multiplies: ``madds = 0``. Their ``flops`` are comparisons, by the usual
comparison-count bounds (Knuth, TAOCP vol. 3): sorting ``n`` keys takes
``n * ceil(log2 n)`` comparisons, selecting the ``k`` largest with a heap
``n * ceil(log2(k + 1))``, a selection (k-th value) ``n``. ``mem_access`` reads the input
once and writes every output (values and indices) once.
"""

from __future__ import annotations

from math import ceil, log2

from archstat.formulas.core import Category, Cost, OpCost, Shape, ShapeError, formula, numel

__all__ = ["sort", "topk", "nms", "IOU_FLOPS"]

#: Flops of one box IoU in torchvision's NMS kernel: 4 max / min for the intersection
#: corners, 2 subtractions and 2 clamps for its sides, 1 product (intersection area),
#: 2 for the union (area_i + area_j - inter), 1 division and 1 comparison with the threshold.
IOU_FLOPS = 13


def _rows(input_shape: Shape, dim: int) -> tuple[int, int]:
    if not input_shape:
        return 1, 1
    n = input_shape[dim % len(input_shape)]
    return numel(input_shape) // max(n, 1), n


def _comparisons(n: int, k: int | None = None) -> int:
    if n <= 1:
        return 0
    return n * ceil(log2(k + 1 if k is not None else n))


@formula("sort")
def sort(input_shape: Shape, dim: int = -1, op: str = "sort", outputs: int = 2,
         output_shape: Shape | None = None) -> OpCost:
    """``sort`` / ``argsort`` / ``msort`` / ``unique`` along ``dim``.

    flops: ``rows * n * ceil(log2 n)`` comparisons (``unique`` adds one per element to find
    the runs). mem_access: input + ``outputs`` tensors of the output's size (values and
    indices for ``sort``, indices for ``argsort``). ``output_shape``: for ``unique``, whose
    size depends on the values, the shape torch returned.
    """
    rows, n = _rows(input_shape, dim)
    flops = rows * _comparisons(n) + (numel(input_shape) if op == "unique" else 0)
    out = tuple(input_shape) if output_shape is None else tuple(output_shape)
    return OpCost(Cost(flops=flops, mem_access=numel(input_shape) + outputs * numel(out)), out, Category("sort", op))


@formula("topk")
def topk(input_shape: Shape, k: int, dim: int = -1, op: str = "topk") -> OpCost:
    """``topk`` (heap selection: ``rows * n * ceil(log2(k + 1))`` comparisons), ``kthvalue``,
    ``median``, ``mode`` (selection: ``rows * n``). Output: values and indices, ``k`` per row
    (one for a selection); mem_access: input + both outputs."""
    rows, n = _rows(input_shape, dim)
    if not 0 <= k <= n:
        raise ShapeError(f"topk: k={k} is out of range for a dimension of size {n}")
    flops = rows * (_comparisons(n, k) if op == "topk" else n)
    d = dim % len(input_shape) if input_shape else 0
    out = tuple(k if i == d else s for i, s in enumerate(input_shape)) if op == "topk" else \
        tuple(s for i, s in enumerate(input_shape) if i != d)
    return OpCost(Cost(flops=flops, mem_access=numel(input_shape) + 2 * numel(out)), out, Category("sort", op))


@formula("nms")
def nms(boxes_shape: Shape, kept: int) -> OpCost:
    """Greedy non-maximum suppression (``torchvision.ops.nms``) of ``n`` boxes ``(n, 4)``.

    flops: sorting the scores (``n * ceil(log2 n)``), the box areas (3 per box) and
    :data:`IOU_FLOPS` per IoU for at most ``n (n - 1) / 2`` pairs: the *upper bound*
    (every box compared with every later one). The pairs actually compared depend on the
    boxes (a suppressed box is not compared again); this formula does not see them.
    mem_access: boxes + scores + the ``kept`` indices written.
    """
    if len(boxes_shape) != 2 or boxes_shape[1] != 4:
        raise ShapeError(f"nms expects (n, 4) boxes, got {tuple(boxes_shape)}")
    n = boxes_shape[0]
    flops = _comparisons(n) + 3 * n + IOU_FLOPS * n * (n - 1) // 2
    return OpCost(Cost(flops=flops, mem_access=5 * n + kept), (kept,), Category("sort", "nms"))
