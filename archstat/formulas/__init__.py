"""The formula library: pure functions of shapes and layer hyper-parameters (no torch).

Every number archstat reports comes from a function registered here (see
:data:`FORMULAS`); the hook-based counter only decides *which* formula applies to
an op it observes and checks the output shape the formula predicts.
"""

from archstat.formulas.core import FORMULAS, Cost, OpCost, Shape, ShapeError, formula, numel
from archstat.formulas.shapes import (
    adaptive_windows,
    conv_output_size,
    conv_transpose_output_size,
    pool_output_size,
)
from archstat.formulas.conv import conv, conv_kind, conv_transpose
from archstat.formulas.linear import (
    broadcast_shapes,
    einsum,
    linear,
    matmul,
    multi_head_attention,
    scaled_dot_product_attention,
)
from archstat.formulas.norm import batch_norm, group_norm, layer_norm, local_response_norm
from archstat.formulas.pool import adaptive_pool, pool, reduction
from archstat.formulas.elementwise import ACTIVATIONS, ELEMENTWISE_OPS, elementwise
from archstat.formulas.memory import channel_shuffle, concat, copy, fill, interpolate, pad, split
from archstat.formulas.guidelines import (g1_bound_gap, g1_mem_access_bound, group_mem_access_excess,
                                          pointwise_mem_access)

__all__ = [
    "FORMULAS", "Cost", "OpCost", "Shape", "ShapeError", "formula", "numel",
    "adaptive_windows", "conv_output_size", "conv_transpose_output_size", "pool_output_size",
    "conv", "conv_kind", "conv_transpose",
    "broadcast_shapes", "einsum", "linear", "matmul", "multi_head_attention", "scaled_dot_product_attention",
    "batch_norm", "group_norm", "layer_norm", "local_response_norm",
    "adaptive_pool", "pool", "reduction",
    "ACTIVATIONS", "ELEMENTWISE_OPS", "elementwise",
    "channel_shuffle", "concat", "copy", "fill", "interpolate", "pad", "split",
    "g1_bound_gap", "g1_mem_access_bound", "group_mem_access_excess", "pointwise_mem_access",
]
