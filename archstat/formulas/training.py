"""Training cost: the backward pass of every op, what autograd keeps for it, and the optimizer step.

Backward rules are registered per forward formula (:data:`BACKWARD`, keyed like
:data:`~archstat.formulas.core.FORMULAS`) and take the forward formula's arguments plus
:class:`Needs`: which of the op's tensor operands need a gradient (the data input of the
first layer does not; a frozen parameter does not). An op none of whose operands needs a
gradient has no backward at all and saves nothing.

Multiply-adds of the backward pass (Griewank & Walther, "Evaluating Derivatives", 2nd ed.,
2008, ch. 4: reverse mode costs a small multiple of the forward): for ``y = W x`` (conv,
transposed conv, linear, matmul, einsum), the gradient with respect to the input,
``W^T dy``, and with respect to the weight, ``dy x^T``, each cost exactly the forward
multiply-adds: a layer whose input and weight both need gradients costs 2x its forward in
backward, the first layer (whose input needs none) 1x. Attention ``softmax(Q K^T) V``
costs 2x its forward (dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q). Every other op
(norms, pooling, activations, element-wise, data movement) multiplies nothing in
backward either: its backward work is in ``flops``, by the per-element rates stated with
each rule.

What autograd saves (:class:`SavedTensor`) follows torch's derivative definitions
(``tools/autograd/derivatives.yaml``) as torch 2.14 runs them on the CPU, and is checked
against ``torch.autograd.graph.saved_tensors_hooks`` by ``tests/training``: an operand,
the output, or a new tensor (batch statistics, pooling indices, dropout masks, the
projections inside attention) with its size and dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Callable

from archstat.formulas.core import FORMULAS, Shape, numel
from archstat.formulas.recurrent import GATES

__all__ = ["Needs", "SavedTensor", "Backward", "BACKWARD", "backward_rule", "backward", "OPTIMIZERS", "Optimizer",
           "optimizer", "NORM_BACKWARD_FLOPS", "SAVES_OUTPUT", "SAVES_NOTHING"]


@dataclass(frozen=True, slots=True)
class Needs:
    """Which tensor operands of an op need a gradient, in the order the counter lists them
    (a function's tensor arguments in order; a module's inputs, then its parameters)."""

    operands: tuple[bool, ...]

    def __getitem__(self, i: int) -> bool:
        return 0 <= i < len(self.operands) and self.operands[i]

    @property
    def any(self) -> bool:
        return any(self.operands)


@dataclass(frozen=True, slots=True)
class SavedTensor:
    """A tensor autograd keeps for the backward pass: operand ``operand`` of the op, its
    output (``output=True``), or a new tensor of ``numel`` elements of ``dtype`` (``"act"``:
    the op's own dtype; ``"float32"``, ``"int64"``, ``"bool"``). ``contiguous``: the op saves
    the operand as it reads it, a contiguous copy (a new tensor) of a strided view, where it
    is called as a composite that reshapes (``torch.matmul``)."""

    operand: int | None = None
    output: bool = False
    numel: int = 0
    dtype: str = "act"
    contiguous: bool = False


@dataclass(frozen=True, slots=True)
class Backward:
    """An op's backward pass: multiply-adds of the input gradients and of the weight
    gradients, all its flops (2 per multiply-add plus element-wise work), and what it needs
    saved from the forward pass."""

    input_madds: int = 0
    weight_madds: int = 0
    flops: int = 0
    saved: tuple[SavedTensor, ...] = ()

    @property
    def madds(self) -> int:
        return self.input_madds + self.weight_madds


NONE = Backward()

#: Flops per element of a normalisation's input gradient: the sums of dy and dy * x_hat over
#: each normalised group (1 add; 1 multiply and 1 add), then dx = a dy + b x_hat + c (2 multiplies,
#: 2 adds, folded to 2 multiply-adds): 5 per element.
NORM_BACKWARD_FLOPS = 5

#: Element-wise ops whose derivative is a function of their output (autograd saves the output).
SAVES_OUTPUT = frozenset({"relu", "sigmoid", "tanh", "softmax", "log_softmax", "softmin", "exp", "sqrt", "rsqrt",
                          "reciprocal", "exp2", "logsigmoid"})

#: Element-wise ops whose derivative needs none of their operands (saves nothing).
SAVES_NOTHING = frozenset({"add", "sub", "rsub", "neg", "positive", "nan_to_num", "sign", "floor",
                           "ceil", "round", "trunc", "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
                           "logical_not", "logical_xor", "isnan", "isinf", "isfinite", "bitwise_and", "bitwise_or",
                           "bitwise_xor", "bitwise_not", "signbit"})

BackwardRule = Callable[..., Backward]

#: Forward formula name -> its backward rule.
BACKWARD: dict[str, BackwardRule] = {}


def backward_rule(*names: str) -> Callable[[BackwardRule], BackwardRule]:
    """Register the backward rule of forward formulas ``names`` (called with the forward
    formula's arguments and ``needs=``)."""

    def register(fn: BackwardRule) -> BackwardRule:
        for name in names:
            if name not in FORMULAS:
                raise ValueError(f"no forward formula {name!r}")
            if name in BACKWARD:
                raise ValueError(f"formula {name!r} already has a backward rule")
            BACKWARD[name] = fn
        return fn

    return register


def backward(formula: str, args: tuple, kwargs: dict, needs: Needs, in_place: bool = False) -> Backward:
    """The backward pass of forward formula ``formula`` called with ``args`` / ``kwargs``.

    ``in_place``: the op overwrote its first operand (``relu6_``, ``x.mul_(y)``); where its
    derivative needs that operand's old value, autograd saves a copy of it (a new tensor),
    not the overwritten storage (as torch does for ``hardtanh_``, ``silu_``, ``hardswish_``)."""
    if not needs.any:
        return NONE
    result = BACKWARD[formula](*args, needs=needs, **{k: v for k, v in kwargs.items() if k != "count_bias"})
    if in_place and any(s.operand == 0 for s in result.saved):
        copy = SavedTensor(numel=numel(_first_shape(formula, args)))
        result = Backward(result.input_madds, result.weight_madds, result.flops,
                          tuple(copy if s.operand == 0 else s for s in result.saved))
    return result


def _first_shape(formula: str, args: tuple) -> Shape:
    """The shape of a formula's first tensor operand (the element-wise op name comes first)."""
    return args[1] if formula == "elementwise" else args[0]


def _forward(formula: str, *args, **kwargs):
    return FORMULAS[formula](*args, **kwargs)


def _grads(saved: tuple[SavedTensor, ...], madds_in: int, madds_w: int, extra_flops: int = 0) -> Backward:
    return Backward(madds_in, madds_w, 2 * (madds_in + madds_w) + extra_flops, saved)


def _input_grad_flops(op_shapes: tuple[Shape, ...], needs: Needs, per_element: int = 1) -> int:
    """``per_element`` flops per element of every operand gradient the op produces."""
    return sum(per_element * numel(s) for i, s in enumerate(op_shapes) if needs[i])


# --------------------------------------------------------------------------- multiply-add ops


def _conv_rule(formula: str) -> BackwardRule:
    def rule(input_shape: Shape, out_channels: int, kernel_size, *args, needs: Needs, **kwargs) -> Backward:
        op = _forward(formula, input_shape, out_channels, kernel_size, *args, **kwargs)
        madds = op.cost.madds
        bias = numel(op.output_shape) if needs[2] else 0
        sampling = op.cost.flops - 2 * madds  # deform_conv: the bilinear sampling's gradient, the same again
        return _grads((SavedTensor(0), SavedTensor(1)), madds if needs[0] else 0, madds if needs[1] else 0,
                      bias + sampling)

    rule.__doc__ = (f"``{formula}`` (operands: input, weight, bias): the input gradient costs the forward "
                    "multiply-adds if the input needs one, the weight gradient the same if the weight does; the "
                    "bias gradient sums the output gradient (1 flop per output element). Saves the input and the "
                    "weight (even for a first layer: the weight gradient needs the input).")
    return rule


for _name in ("conv", "conv_transpose", "deform_conv"):
    backward_rule(_name)(_conv_rule(_name))


@backward_rule("linear")
def _linear(input_shape: Shape, in_features: int, out_features: int, bias: bool = True, *, needs: Needs) -> Backward:
    """``linear`` (operands: input, weight, bias): input gradient ``dy W`` and weight gradient
    ``dy^T x`` cost the forward multiply-adds each, when needed; the bias gradient sums ``dy``
    (1 flop per output element). Saves the input if the weight needs a gradient and the weight
    if the input does (``addmm``'s derivatives)."""
    op = _forward("linear", input_shape, in_features, out_features, bias)
    madds = op.cost.madds
    saved = tuple(s for s, keep in ((SavedTensor(0), needs[1]), (SavedTensor(1), needs[0])) if keep)
    return _grads(saved, madds if needs[0] else 0, madds if needs[1] else 0,
                  numel(op.output_shape) if needs[2] else 0)


@backward_rule("matmul")
def _matmul(a_shape: Shape, b_shape: Shape, *, needs: Needs) -> Backward:
    """``a @ b``: ``dA = dC B^T`` and ``dB = A^T dC`` cost the forward multiply-adds each, when
    needed (a broadcast operand's gradient is summed over the batch: the same products). Saves
    ``a`` if ``b`` needs a gradient and ``b`` if ``a`` does, in the layout the product reads
    them (``torch.matmul`` reshapes a strided batched operand into a contiguous copy first)."""
    madds = _forward("matmul", a_shape, b_shape).cost.madds
    saved = tuple(s for s, keep in ((SavedTensor(0, contiguous=True), needs[1]),
                                    (SavedTensor(1, contiguous=True), needs[0])) if keep)
    return _grads(saved, madds if needs[0] else 0, madds if needs[1] else 0)


@backward_rule("pdist")
def _pdist(input_shape: Shape, *, needs: Needs) -> Backward:
    """``pdist``: each row's gradient sums, over the ``N - 1`` other rows, the pair's output
    gradient times the pair's difference scaled by its distance: ``N (N - 1) M = 2 P M``
    multiply-adds (torch's ``_pdist_backward`` runs every pair from both of its rows). Saves
    the input and the distances it divides by."""
    return _grads((SavedTensor(0), SavedTensor(output=True)), 2 * _forward("pdist", input_shape).cost.madds, 0)


@backward_rule("einsum")
def _einsum(equation: str, *shapes: Shape, needs: Needs) -> Backward:
    """``einsum``: each operand's gradient is an einsum of the output gradient with the other
    operands, the same loop nest as the forward: the forward multiply-adds per operand that
    needs a gradient (exact for two operands). Saves every operand another one needs, as the
    batched product reads it (a strided view as a contiguous copy, like ``torch.matmul``)."""
    madds = _forward("einsum", equation, *shapes).cost.madds
    grads = sum(madds for i in range(len(shapes)) if needs[i])
    saved = tuple(SavedTensor(i, contiguous=True) for i in range(len(shapes))
                  if any(needs[j] for j in range(len(shapes)) if j != i))
    return _grads(saved, grads, 0)


@backward_rule("sdpa")
def _sdpa(q_shape: Shape, k_shape: Shape, v_shape: Shape, *, needs: Needs) -> Backward:
    """Scaled dot-product attention: dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q: twice
    the forward multiply-adds; the softmax gradient 2 flops per score. Saves Q, K, V, the
    output and the log-sum-exp of every query row (float32; the CPU flash kernel's)."""
    op = _forward("sdpa", q_shape, k_shape, v_shape)
    scores = op.cost.flops - 2 * op.cost.madds
    rows = numel(op.output_shape) // op.output_shape[-1]
    return _grads((SavedTensor(0), SavedTensor(1), SavedTensor(2), SavedTensor(output=True),
                   SavedTensor(numel=rows, dtype="float32")), 2 * op.cost.madds, 0, 2 * scores)


@backward_rule("mha")
def _mha(query_shape: Shape, key_shape: Shape, value_shape: Shape, embed_dim: int, num_heads: int,
         kdim: int | None = None, vdim: int | None = None, bias: bool = True, add_bias_kv: bool = False,
         add_zero_attn: bool = False, batch_first: bool = False, packed: bool = False, *,
         needs: Needs) -> Backward:
    """``nn.MultiheadAttention`` (operands: query, key, value, then its parameters): the input
    and output projections are linear layers (weight gradients = forward when the weights
    need them; the query / key / value gradients where those need one; the output
    projection's input gradient always) and the attention costs twice its forward.

    Saves what ``F.multi_head_attention_forward`` keeps on the way: the inputs of the input
    projections (with ``batch_first``, contiguous copies of the transposed inputs, new
    tensors), the projected q, k, v, and the attention's output (which the output projection
    reads as a view) and log-sum-exp (float32, per head and query row), and the projection
    weights (parameters; under autocast their lower-precision copies). Self-attention
    (``packed``) projects its one input once."""
    forward = _forward("mha", query_shape, key_shape, value_shape, embed_dim, num_heads, kdim, vdim, bias,
                       add_bias_kv, add_zero_attn, batch_first)
    kdim, vdim = kdim or embed_dim, vdim or embed_dim
    rows_q, rows_k = numel(query_shape) // query_shape[-1], numel(key_shape) // key_shape[-1]
    q_proj, k_proj, v_proj = rows_q * embed_dim ** 2, rows_k * kdim * embed_dim, rows_k * vdim * embed_dim
    out_proj = rows_q * embed_dim ** 2
    attention = forward.cost.madds - q_proj - k_proj - v_proj - out_proj
    weights_need = any(needs[i] for i in range(3, len(needs.operands)))
    inputs = q_proj * needs[0] + k_proj * needs[1] + v_proj * needs[2] + out_proj + 2 * attention
    weights = (q_proj + k_proj + v_proj + out_proj) if weights_need else 0
    shapes = (query_shape,) if packed else (query_shape, key_shape, value_shape)
    if batch_first and len(query_shape) == 3:
        projected_inputs = tuple(SavedTensor(numel=numel(shape)) for shape in shapes)
    else:
        projected_inputs = tuple(SavedTensor(i) for i in range(len(shapes)))
    # the projection weights (operands after query, key, value: in_proj_weight or q/k/v_proj_weight, then
    # in_proj_bias, bias_k / bias_v, out_proj.weight): parameters, except under autocast, whose casts are saved
    own_weights = 1 if kdim == vdim == embed_dim else 3
    out_weight = 3 + own_weights + int(bias) + 2 * int(add_bias_kv)
    saved = (*projected_inputs, *(SavedTensor(i) for i in (*range(3, 3 + own_weights), out_weight)),
             SavedTensor(numel=(rows_q + 2 * rows_k) * embed_dim),  # q, k, v after the projections
             SavedTensor(numel=rows_q * embed_dim),  # the attention's output
             SavedTensor(numel=rows_q * num_heads, dtype="float32"))  # its log-sum-exp
    return _grads(saved, inputs, weights)


@backward_rule("rnn")
def _rnn(input_shape: Shape, input_size: int, hidden_size: int, mode: str = "LSTM", num_layers: int = 1,
         bidirectional: bool = False, proj_size: int = 0, bias: bool = True, batch_first: bool = False,
         packed_batch: int | None = None, *, needs: Needs) -> Backward:
    """Recurrent layers (operands: input, then the initial state, then the parameters): every
    gate product is a linear layer, so the weight gradients cost the forward multiply-adds and
    the input / recurrent-state gradients the same again (backpropagation through time): 2x
    the forward. Saves the input, the output and, per layer, direction and step, the gates
    and cell states the kernel keeps (an approximation: ``gates + 2`` hidden-size vectors per
    step; torch's CPU kernel adds a workspace)."""
    forward = _forward("rnn", input_shape, input_size, hidden_size, mode, num_layers, bidirectional, proj_size,
                       bias, batch_first, packed_batch=packed_batch)
    madds = forward.cost.madds
    rows = numel(input_shape) // input_shape[-1]
    gates = GATES[mode]
    directions = 2 if bidirectional else 1
    state = rows * directions * num_layers * (gates + 2) * hidden_size
    return _grads((SavedTensor(0), SavedTensor(output=True), SavedTensor(numel=state)), madds, madds)


@backward_rule("rnn_cell")
def _rnn_cell(input_shape: Shape, input_size: int, hidden_size: int, mode: str = "LSTM", bias: bool = True,
              *, needs: Needs) -> Backward:
    """One recurrent step: as :func:`_rnn` (2x the forward); saves the input, the state and the
    gates (``gates`` hidden-size vectors per row)."""
    madds = _forward("rnn_cell", input_shape, input_size, hidden_size, mode, bias).cost.madds
    rows = numel(input_shape) // input_shape[-1]
    gates = GATES[mode]
    return _grads((SavedTensor(0), SavedTensor(1), SavedTensor(numel=rows * gates * hidden_size)), madds, madds)


# --------------------------------------------------------------------------- normalisation


@backward_rule("batch_norm")
def _batch_norm(input_shape: Shape, affine: bool = True, track_running_stats: bool = True, op: str = "batch_norm",
                num_features: int | None = None, training: bool = False, spatial_dims: int | None = None,
                input_stats: bool = False, *, needs: Needs) -> Backward:
    """Batch / instance norm (operands: input, weight, bias; ``input_stats`` only decides what the
    forward refuses): :data:`NORM_BACKWARD_FLOPS` per
    element for the input gradient, 2 per element for the weight and bias gradients (sums of
    ``dy x_hat`` and ``dy``). Saves the input and, per normalised group, the batch mean and
    inverse standard deviation (float32; in eval mode empty). (Weight and running statistics
    are saved too: parameters and buffers, counted in their own columns.)"""
    n = numel(input_shape)
    shape = input_shape if spatial_dims is None or len(input_shape) == spatial_dims + 2 else (1, *input_shape)
    groups = shape[1] * (shape[0] if op == "instance_norm" else 1)
    stats = 2 * groups if training or op == "instance_norm" else 0
    flops = NORM_BACKWARD_FLOPS * n * needs[0] + 2 * n * (needs[1] or needs[2])
    return Backward(0, 0, flops, (SavedTensor(0), SavedTensor(numel=stats, dtype="float32")))


@backward_rule("layer_norm")
def _layer_norm(input_shape: Shape, normalized_shape: Shape, elementwise_affine: bool = True, bias: bool = True,
                op: str = "layer_norm", *, needs: Needs) -> Backward:
    """Layer / RMS norm: as batch norm; saves the input and, per normalised row, the mean and
    reciprocal standard deviation (float32; RMS norm: the reciprocal RMS only)."""
    n = numel(input_shape)
    rows = n // max(prod(normalized_shape), 1)
    stats = rows * (1 if op == "rms_norm" else 2)
    flops = NORM_BACKWARD_FLOPS * n * needs[0] + 2 * n * (needs[1] or needs[2])
    return Backward(0, 0, flops, (SavedTensor(0), SavedTensor(numel=stats, dtype="float32")))


@backward_rule("group_norm")
def _group_norm(input_shape: Shape, num_groups: int, affine: bool = True, num_channels: int | None = None, *,
                needs: Needs) -> Backward:
    """Group norm: as batch norm; saves the input and, per sample and group, the mean and
    reciprocal standard deviation (float32)."""
    n = numel(input_shape)
    flops = NORM_BACKWARD_FLOPS * n * needs[0] + 2 * n * (needs[1] or needs[2])
    return Backward(0, 0, flops, (SavedTensor(0), SavedTensor(numel=2 * input_shape[0] * num_groups,
                                                              dtype="float32")))


@backward_rule("local_response_norm")
def _lrn(input_shape: Shape, size: int, *, needs: Needs) -> Backward:
    """LRN (a composite of pooling and element-wise ops in torch): ``2 * size`` flops per
    element; saves the input and the normalising denominator (same size)."""
    n = numel(input_shape)
    return Backward(0, 0, 2 * size * n, (SavedTensor(0), SavedTensor(numel=n)))


# --------------------------------------------------------------------------- element-wise


@backward_rule("elementwise")
def _elementwise(op: str, *shapes: Shape, params: int = 0, dim: int | None = None, needs: Needs) -> Backward:
    """Element-wise ops: 1 flop per element of every operand gradient (the product with the
    local derivative; a broadcast operand's gradient is then summed, included). Saves what
    the derivative needs: the output for :data:`SAVES_OUTPUT` (ReLU, sigmoid, softmax ...),
    nothing for :data:`SAVES_NOTHING` (add, sub ...), for ``mul`` each operand the *other*
    one's gradient needs, for ``div`` the divisor (and the dividend if the divisor needs a
    gradient), for ``where`` the condition, for dropout (recorded in training only) its
    mask (on the CPU, torch keeps the scaled noise tensor in the op's dtype), and otherwise
    the operands (GELU, SiLU, hardswish, clamp, pow ...). ``dim`` (a softmax's, checked by
    the forward formula) changes none of it."""
    flops = _input_grad_flops(shapes, needs)
    if op in SAVES_OUTPUT:
        saved: tuple[SavedTensor, ...] = (SavedTensor(output=True),)
    elif op in SAVES_NOTHING:
        saved = ()
    elif op in ("mul", "div", "addcmul", "addcdiv") and len(shapes) < 2:
        saved = ()  # times a Python number: the derivative is that number
    elif op in ("mul", "addcmul"):
        saved = tuple(SavedTensor(i) for i in range(len(shapes)) if any(needs[j] for j in range(len(shapes))
                                                                        if j != i))
    elif op == "div":
        saved = (SavedTensor(1),) + ((SavedTensor(0),) if needs[1] else ())
    elif op == "where":
        saved = (SavedTensor(0),)
    elif op == "dropout":  # recorded in training only (at inference dropout is free)
        saved = (SavedTensor(numel=numel(shapes[0])),)
    else:
        saved = tuple(SavedTensor(i) for i in range(len(shapes)))
    return Backward(0, 0, flops, saved)


@backward_rule("loss")
def _loss(input_shape: Shape, target_shape: Shape, reduction: str = "mean", op: str = "loss", *,
          needs: Needs) -> Backward:
    """Losses: 2 flops per input element (the gradient of the element-wise term, scaled by the
    reduction); saves the input-sized intermediate (a cross entropy's log-probabilities) and
    the target."""
    return Backward(0, 0, 2 * numel(input_shape) * needs[0],
                    (SavedTensor(numel=numel(input_shape)), SavedTensor(1)))


# --------------------------------------------------------------------------- pooling, reductions, resampling


@backward_rule("pool")
def _pool(input_shape: Shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
          mode: str = "max", spatial_dims: int | None = None, output_size=None, *, needs: Needs) -> Backward:
    """Max / average pooling: average pooling spreads each output gradient over its window
    (1 flop per window element); max pooling routes it to the argmax (1 per output element).
    Saves the input, and for max pooling the argmax indices (int64, one per output)."""
    op = _forward("pool", input_shape, kernel_size, stride, padding, dilation, ceil_mode, mode, spatial_dims,
                  output_size)
    out = numel(op.output_shape)
    if mode == "max":
        return Backward(0, 0, out, (SavedTensor(0), SavedTensor(numel=out, dtype="int64")))
    return Backward(0, 0, op.cost.flops, (SavedTensor(0),))


@backward_rule("adaptive_pool")
def _adaptive_pool(input_shape: Shape, output_size, mode: str = "avg", spatial_dims: int | None = None, *,
                   needs: Needs) -> Backward:
    """Adaptive pooling: the average spreads each output gradient over its window (the
    forward's flops); a global average (output 1 x 1 ...) is a mean and saves nothing, any
    other size saves the input. The max routes it to the argmax and saves the input and the
    indices (int64)."""
    op = _forward("adaptive_pool", input_shape, output_size, mode, spatial_dims)
    out = numel(op.output_shape)
    if mode == "max":
        return Backward(0, 0, out, (SavedTensor(0), SavedTensor(numel=out, dtype="int64")))
    nd = spatial_dims or len(input_shape) - 2
    global_mean = all(s == 1 for s in op.output_shape[-nd:])
    return Backward(0, 0, op.cost.flops, () if global_mean else (SavedTensor(0),))


@backward_rule("reduction")
def _reduction(input_shape: Shape, dims=None, keepdim: bool = False, op: str = "mean", *, needs: Needs) -> Backward:
    """Reductions: the gradient is broadcast back, 1 flop per input element. ``sum`` / ``mean``
    save nothing; ``var`` / ``std`` the input; ``amax`` / ``max`` / ``norm`` / ``logsumexp``
    the input and the result."""
    n = numel(input_shape)
    if op in ("sum", "mean", "nansum", "nanmean"):
        saved: tuple[SavedTensor, ...] = ()
    elif op in ("var", "std", "var_mean", "std_mean"):
        saved = (SavedTensor(0),)
    else:
        saved = (SavedTensor(0), SavedTensor(output=True))
    return Backward(0, 0, n, saved)


@backward_rule("interpolate")
def _interpolate(input_shape: Shape, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None, antialias: bool = False, float64: bool = False, *,
                 needs: Needs) -> Backward:
    """Interpolation: each output gradient is scattered to its taps (the forward's flops); only
    the sizes are needed, nothing is saved."""
    forward = _forward("interpolate", input_shape, size, scale_factor, mode, align_corners, recompute_scale_factor,
                       antialias, float64)
    return Backward(0, 0, forward.cost.flops, ())


@backward_rule("grid_sample")
def _grid_sample(input_shape: Shape, grid_shape: Shape, mode: str = "bilinear", *, needs: Needs) -> Backward:
    """``grid_sample``: the gradient is scattered to the taps and, for the grid, the taps'
    weights differentiated: twice the forward's flops. Saves the input and the grid."""
    return Backward(0, 0, 2 * _forward("grid_sample", input_shape, grid_shape, mode).cost.flops,
                    (SavedTensor(0), SavedTensor(1)))


@backward_rule("roi_align")
def _roi_align(input_shape: Shape, rois: int, output_size, samples: int, op: str = "roi_align",
               channels_out: int | None = None, taps: int = 4, *, needs: Needs) -> Backward:
    """RoI align / pool: each output gradient is scattered back to its samples (the forward's
    flops). Saves the boxes (and, for the max of roi_pool, the argmax indices)."""
    fwd = _forward("roi_align", input_shape, rois, output_size, samples, op, channels_out, taps)
    extra = (SavedTensor(numel=numel(fwd.output_shape), dtype="int64"),) if taps == 0 else ()
    return Backward(0, 0, fwd.cost.flops, (SavedTensor(1), *extra))


@backward_rule("fft")
def _fft(input_shape: Shape, output_shape: Shape, points, batch: int, real: bool = False, op: str = "fft", *,
         needs: Needs) -> Backward:
    """FFTs: the gradient of a linear transform is the adjoint transform, the same flops; only
    sizes are needed, nothing is saved."""
    return Backward(0, 0, _forward("fft", input_shape, output_shape, points, batch, real, op).cost.flops, ())


# --------------------------------------------------------------------------- data movement and the rest


def _moves_back(formula: str) -> BackwardRule:
    def rule(*args, needs: Needs, **kwargs) -> Backward:
        return NONE if formula != "fold" else Backward(0, 0, numel(_forward(formula, *args, **kwargs).output_shape))

    rule.__doc__ = (f"``{formula}`` moves data: its gradient is moved back the same way, without flops "
                    f"{'(fold: unfolded, 1 flop per element) ' if formula == 'fold' else ''}and from sizes alone "
                    "(nothing is saved).")
    return rule


for _name in ("concat", "split", "copy", "channel_shuffle", "pad", "fill", "fold"):
    backward_rule(_name)(_moves_back(_name))


@backward_rule("scatter")
def _scatter(target_shape: Shape, source_elements: int, index_elements: int, op: str = "scatter_add",
             reduces: bool = True, *, needs: Needs) -> Backward:
    """Scatters: the source gradient is gathered back through the index (no flops); saves the
    index (operand 1)."""
    return Backward(0, 0, 0, (SavedTensor(1),))


@backward_rule("embedding")
def _embedding(indices_shape: Shape, num_embeddings: int, embedding_dim: int, mode: str | None = None,
               bags: int | None = None, *, needs: Needs) -> Backward:
    """Embedding: the weight gradient adds each output row's gradient into its table row (1
    flop per gathered element); saves the indices."""
    return Backward(0, 0, numel(indices_shape) * embedding_dim, (SavedTensor(0),))


@backward_rule("scan")
def _scan(input_shape: Shape, op: str = "cumsum", *, needs: Needs) -> Backward:
    """Scans: the gradient of a cumulative sum is a reversed cumulative sum (1 flop per
    element; nothing saved); a cumulative product's also needs the input and the output."""
    saved = () if op == "cumsum" else (SavedTensor(0), SavedTensor(output=True))
    return Backward(0, 0, numel(input_shape), saved)


def _selection_rule(formula: str) -> BackwardRule:
    def rule(*args, needs: Needs, **kwargs) -> Backward:
        out = numel(_forward(formula, *args, **kwargs).output_shape)
        return Backward(0, 0, out, (SavedTensor(numel=out, dtype="int64"),))

    rule.__doc__ = (f"``{formula}``: the gradient is scattered back through the indices (1 flop per output "
                    "element); saves the indices (int64).")
    return rule


for _name in ("sort", "topk"):
    backward_rule(_name)(_selection_rule(_name))


@backward_rule("nms")
def _nms(boxes_shape: Shape, kept: int, *, needs: Needs) -> Backward:
    """NMS selects indices: no gradient flows through it."""
    return NONE


# --------------------------------------------------------------------------- optimizers


@dataclass(frozen=True)
class Optimizer:
    """An optimizer's step, per trainable parameter element: ``flops`` of the update and
    ``state`` elements it keeps between steps (momentum buffers, Adam's moments), in
    torch.optim's single-tensor implementation (``foreach=False``, ``fused=False``)."""

    name: str
    flops: int
    state: int
    weight_decay_flops: int
    source: str


#: torch.optim's update equations (torch/optim/sgd.py, adam.py, adamw.py), counted:
#: SGD ``p -= lr g`` (2); with momentum ``b = mu b + g`` (2) then ``p -= lr b`` (2);
#: Adam ``m.lerp_(g, 1 - b1)`` (3), ``v.mul_(b2).addcmul_(g, g, 1 - b2)`` (4),
#: ``denom = v.sqrt() / sqrt(bc2) + eps`` (3), ``p.addcdiv_(m, denom, -lr / bc1)`` (3): 13;
#: AdamW the same plus the decoupled decay ``p *= 1 - lr wd`` (1). L2 weight decay
#: (``g += wd p``, SGD and Adam) adds 2.
OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in (
    Optimizer("sgd", 2, 0, 2, "torch.optim.SGD(momentum=0)"),
    Optimizer("sgd_momentum", 4, 1, 2, "torch.optim.SGD(momentum>0)"),
    Optimizer("adam", 13, 2, 2, "torch.optim.Adam"),
    Optimizer("adamw", 14, 2, 0, "torch.optim.AdamW"),
)}


def optimizer(name: str) -> Optimizer:
    """The :class:`Optimizer` called ``name`` (``KeyError`` names the known ones)."""
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise KeyError(f"unknown optimizer {name!r}; one of {', '.join(OPTIMIZERS)}") from None
