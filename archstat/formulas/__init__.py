"""The formula library: pure functions of shapes and layer hyper-parameters (no torch).

Every number archstat reports comes from a function registered here (see
:data:`FORMULAS`); the counter only decides *which* formula applies to
an op it observes and checks the output shape the formula predicts. Every formula
returns an :class:`OpCost` whose :class:`Category` (op family, depthwise, pointwise,
grouped ...) is what consumers read.
"""

from archstat.formulas.core import (FAMILIES, FORMULAS, MULTIPLY_ADD_FAMILIES, Category, Cost, EmptyOutputError,
                                    OpCost, Shape, ShapeError, formula, numel, with_batch, without_batch)
from archstat.formulas.shapes import (
    adaptive_windows,
    conv_output_size,
    conv_transpose_output_size,
    pool_output_size,
)
from archstat.formulas.conv import conv, conv_category, conv_transpose, deform_conv
from archstat.formulas.linear import (
    broadcast_shapes,
    einsum,
    linear,
    matmul,
    multi_head_attention,
    pdist,
    scaled_dot_product_attention,
)
from archstat.formulas.norm import batch_norm, group_norm, layer_norm, local_response_norm
from archstat.formulas.pool import adaptive_pool, pool, reduction
from archstat.formulas.elementwise import ACTIVATIONS, ELEMENTWISE_OPS, elementwise, loss
from archstat.formulas.memory import INTERPOLATION_TAPS, channel_shuffle, concat, copy, fill, interpolate, pad, split
from archstat.formulas.recurrent import rnn, rnn_cell
from archstat.formulas.sorting import nms, sort, topk
from archstat.formulas.spectral import fft
from archstat.formulas.sampling import grid_sample, roi_align
from archstat.formulas.indexing import embedding, fold, scan, scatter
from archstat.formulas.guidelines import (g1_bound_gap, g1_mem_access_bound, group_mem_access_excess,
                                          pointwise_mem_access)

__all__ = [
    "FAMILIES", "FORMULAS", "MULTIPLY_ADD_FAMILIES", "Category", "Cost", "EmptyOutputError", "OpCost", "Shape",
    "ShapeError", "formula", "numel", "with_batch", "without_batch",
    "adaptive_windows", "conv_output_size", "conv_transpose_output_size", "pool_output_size",
    "conv", "conv_category", "conv_transpose", "deform_conv",
    "broadcast_shapes", "einsum", "linear", "matmul", "multi_head_attention", "pdist",
    "scaled_dot_product_attention",
    "batch_norm", "group_norm", "layer_norm", "local_response_norm",
    "adaptive_pool", "pool", "reduction",
    "ACTIVATIONS", "ELEMENTWISE_OPS", "elementwise", "loss",
    "INTERPOLATION_TAPS", "channel_shuffle", "concat", "copy", "fill", "interpolate", "pad", "split",
    "rnn", "rnn_cell", "nms", "sort", "topk", "fft", "grid_sample", "roi_align",
    "embedding", "fold", "scan", "scatter",
    "g1_bound_gap", "g1_mem_access_bound", "group_mem_access_excess", "pointwise_mem_access",
]
