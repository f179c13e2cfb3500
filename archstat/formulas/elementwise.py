"""Element-wise ops: activations, arithmetic between tensors, softmax.

One flop per output element (a transcendental such as ``exp`` inside SiLU or GELU
counts as one as well: this is a convention, not a hardware instruction count), no
multiply-adds. mem_access: every input tensor once (a broadcast operand such as the
SE scale ``s`` of shape ``(N, C, 1, 1)`` is read once) plus the output. An in-place op
(``relu(inplace=True)``, ``x += y``) still reads and writes its tensor; the "fused"
cache model of :mod:`archstat.latency.memory_model` is the one that makes it free.
"""

from __future__ import annotations

from archstat.formulas.core import Category, Cost, OpCost, Shape, formula, numel, wrap_dim
from archstat.formulas.linear import broadcast_shapes

__all__ = ["elementwise", "loss", "ACTIVATIONS", "ELEMENTWISE_OPS"]

#: Activation functions the counter recognises (module class names, lower-cased, and
#: functional names). Each costs one flop per output element.
ACTIVATIONS = frozenset({
    "relu", "relu6", "leaky_relu", "prelu", "rrelu", "elu", "selu", "celu", "gelu", "sigmoid",
    "hardsigmoid", "tanh", "hardtanh", "silu", "swish", "mish", "hardswish", "softplus", "softsign",
    "tanhshrink", "threshold", "logsigmoid", "glu", "softshrink", "hardshrink", "quick_gelu",
})

#: Other element-wise ops: arithmetic and comparisons between tensors, unary math,
#: softmax. Each costs one flop per output element.
ELEMENTWISE_OPS = frozenset({
    "add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "fmod", "pow",
    "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
    "bitwise_and", "bitwise_or", "where", "masked_fill", "addcmul", "addcdiv", "lerp", "rsub",
    "clamp", "clip", "abs", "neg", "exp", "log", "sqrt", "rsqrt", "reciprocal", "erf", "square",
    "sign", "floor", "ceil", "round", "sin", "cos", "logical_not", "softmax", "log_softmax",
    "normalize", "isnan", "isinf", "nan_to_num",
})


@formula("elementwise")
def elementwise(op: str, *shapes: Shape, params: int = 0, dim: int | None = None) -> OpCost:
    """Element-wise ``op`` over tensors of ``shapes`` (broadcast together).

    flops: ``numel(output)``. mem_access: ``sum(numel(inputs)) + numel(output)``.
    Category: ``activation`` for :data:`ACTIVATIONS`, else ``elementwise``; ``op`` is the
    op's registered name (never a class name).
    A python scalar operand is not a tensor and is not passed here. ``params`` is the
    size of operands that are learnable (PReLU's slopes, ConvNeXt's layer scale, ViT's
    position embedding): they are among ``shapes`` already, so mem_access is unchanged.
    ``dim``: the dimension a softmax (log-softmax, softmin) normalises over; out of range
    of the output's dimensions it is refused with torch's message
    (:func:`~archstat.formulas.core.wrap_dim`); it does not change the cost.
    """
    out = broadcast_shapes(*shapes)
    if dim is not None:
        wrap_dim(dim, len(out))
    family = "activation" if op in ACTIVATIONS else "elementwise"
    return OpCost(Cost(params=params, flops=numel(out), mem_access=sum(numel(s) for s in shapes) + numel(out)),
                  out, Category(family, op))


@formula("loss")
def loss(input_shape: Shape, target_shape: Shape, reduction: str = "mean", op: str = "loss") -> OpCost:
    """A loss function (``F.cross_entropy``, ``F.mse_loss``, ``F.l1_loss`` ...) over ``input``.

    flops: one per input element for the element-wise term (the difference, the
    log-probability picked by the target ...) and, unless ``reduction="none"``, one per
    input element for the sum or mean: a convention like the element-wise ops', not an
    instruction count (a cross entropy's log-softmax is inside it). mem_access: input +
    target + output. Output: a scalar, or the input's shape with ``reduction="none"``.
    """
    out: Shape = tuple(input_shape) if reduction == "none" else ()
    n = numel(input_shape)
    return OpCost(Cost(flops=n * (1 if reduction == "none" else 2),
                       mem_access=n + numel(target_shape) + numel(out)), out, Category("loss", op))
