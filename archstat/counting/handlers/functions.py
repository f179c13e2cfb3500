"""Function handlers: torch functions, tensor methods and ``torch.ops`` operators.

Keyed by normalised name (:func:`~archstat.counting.handlers.registry.normalise_name`).
A handler reads the call's arguments and returns the :class:`FormulaCall` that costs it;
``out`` is the op's output (``None`` when the counter asks before running it, for the
shape-only ops of :data:`SHAPE_ONLY_FUNCTIONS`).
"""

from __future__ import annotations

from math import ceil, prod
from typing import Any, Callable

import torch
from torch.nn import functional as F

from archstat.counting.handlers.args import arg, shape_of, tensors_in
from archstat.counting.handlers.registry import (BOOL_RESULT, FREE, FormulaCall, NeedsValuesError, declare_free,
                                                 declare_uncounted, function_handler, refuse)
from archstat.formulas import ACTIVATIONS, ELEMENTWISE_OPS

__all__: list[str] = []


# --------------------------------------------------------------------------- multiply-add ops


@function_handler("conv1d", "conv2d", "conv3d", shape_only=True, formula="conv")
def _conv(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x, w = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight")
    groups = arg(args, kwargs, 6, "groups", 1)
    return FormulaCall("conv", (shape_of(x), w.shape[0], tuple(w.shape[2:])),
                       dict(stride=arg(args, kwargs, 3, "stride", 1), padding=arg(args, kwargs, 4, "padding", 0),
                            dilation=arg(args, kwargs, 5, "dilation", 1), groups=groups,
                            bias=arg(args, kwargs, 2, "bias") is not None, in_channels=w.shape[1] * groups,
                            spatial_dims=w.dim() - 2))


@function_handler("conv_transpose1d", "conv_transpose2d", "conv_transpose3d", shape_only=True, formula="conv_transpose")
def _conv_transpose(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x, w = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight")
    groups = arg(args, kwargs, 6, "groups", 1)
    return FormulaCall("conv_transpose", (shape_of(x), w.shape[1] * groups, tuple(w.shape[2:])),
                       dict(stride=arg(args, kwargs, 3, "stride", 1), padding=arg(args, kwargs, 4, "padding", 0),
                            output_padding=arg(args, kwargs, 5, "output_padding", 0), groups=groups,
                            bias=arg(args, kwargs, 2, "bias") is not None, dilation=arg(args, kwargs, 7, "dilation", 1),
                            in_channels=w.shape[0], spatial_dims=w.dim() - 2))


@function_handler("deform_conv2d", formula="deform_conv")
def _deform_conv(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # torch.ops.torchvision.deform_conv2d(input, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w,
    #   dil_h, dil_w, n_weight_grps, n_offset_grps, use_mask); torchvision.ops.deform_conv2d calls it.
    x, w, offset, mask, bias = (args[i] for i in range(5))
    stride, padding, dilation = (args[5], args[6]), (args[7], args[8]), (args[9], args[10])
    return FormulaCall("deform_conv", (shape_of(x), w.shape[0], tuple(w.shape[2:])), dict(
        stride=stride, padding=padding, dilation=dilation, groups=args[11], offset_groups=args[12],
        bias=bias is not None and bias.numel() > 0 and bool(bias.shape[0]), mask=bool(args[13])))


@function_handler("linear", shape_only=True, formula="linear")
def _linear(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x, w = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight")
    if w.dim() == 1:  # F.linear with a vector weight is a dot product
        return FormulaCall("matmul", (shape_of(x), shape_of(w)))
    return FormulaCall("linear", (shape_of(x), w.shape[1], w.shape[0]),
                       dict(bias=arg(args, kwargs, 2, "bias") is not None))


@function_handler("bilinear", formula="einsum")
def _bilinear(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # y_o = x1^T W_o x2 (+ b_o): contracted as (x1 W) then with x2.
    x1, x2, w = arg(args, kwargs, 0, "input1"), arg(args, kwargs, 1, "input2"), arg(args, kwargs, 2, "weight")
    return FormulaCall("einsum", ("...i,oij,...j->...o", shape_of(x1), shape_of(w), shape_of(x2)))


@function_handler("matmul", "mm", "bmm", "dot", "vdot", "mv", "inner", shape_only=True, formula="matmul")
def _matmul(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    a, b = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "other", kwargs.get("mat2", kwargs.get("vec")))
    if a.dim() == 0 or b.dim() == 0:  # a scalar tensor: a product of elements, not a matrix one
        return FormulaCall("elementwise", ("mul", shape_of(a), shape_of(b)))
    return FormulaCall("matmul", (shape_of(a), shape_of(b)))


@function_handler("addmm", "baddbmm", "addbmm", "addmv", "addr", formula="matmul")
def _addmm(args: tuple, kwargs: dict, out: Any, name: str = "addmm") -> FormulaCall:
    # bias + a @ b: the product is the multiply-add work, the bias add is the convention's bias.
    a = arg(args, kwargs, 1, "mat1", kwargs.get("batch1", kwargs.get("mat", kwargs.get("vec1"))))
    b = arg(args, kwargs, 2, "mat2", kwargs.get("batch2", kwargs.get("vec", kwargs.get("vec2"))))
    if name == "addr":
        return FormulaCall("matmul", ((*shape_of(a), 1), (1, *shape_of(b))))
    if name == "addbmm":  # sum over the batch of products: the same multiply-adds as bmm
        return FormulaCall("matmul", (shape_of(a), shape_of(b)))
    return FormulaCall("matmul", (shape_of(a), shape_of(b)))


@function_handler("outer", "ger", formula="matmul")
def _outer(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    a, b = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "vec2")
    return FormulaCall("matmul", ((*shape_of(a), 1), (1, *shape_of(b))))


@function_handler("einsum", formula="einsum")
def _einsum(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    equation, operands = args[0], args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return FormulaCall("einsum", (equation, *(shape_of(t) for t in operands)))


@function_handler("scaled_mm", "grouped_mm", "scaled_grouped_mm", formula="matmul")
def _special_mm(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # fp8 (scaled) and grouped products: (mat_a, mat_b, ...); a 2-D by 3-D grouped product runs each
    # row of a through the one group of b its offset selects: rows x K x N multiply-adds
    a, b = arg(args, kwargs, 0, "mat_a", kwargs.get("self")), arg(args, kwargs, 1, "mat_b", kwargs.get("mat2"))
    if a.dim() == 2 and b.dim() == 3:
        return FormulaCall("matmul", (shape_of(a), tuple(b.shape[1:])))
    return FormulaCall("matmul", (shape_of(a), shape_of(b)))


@function_handler("pdist", formula="pdist")
def _pdist(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    return FormulaCall("pdist", (shape_of(arg(args, kwargs, 0, "input")),))


@function_handler("tensordot", formula="matmul")
def _tensordot(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    a, b = arg(args, kwargs, 0, "a"), arg(args, kwargs, 1, "b")
    dims = arg(args, kwargs, 2, "dims", 2)
    if isinstance(dims, int):
        contracted = prod(a.shape[a.dim() - dims:]) if dims else 1
    else:
        contracted = prod(a.shape[d] for d in dims[0]) if len(dims[0]) else 1
    free_a = a.numel() // max(contracted, 1)
    return FormulaCall("matmul", ((free_a, contracted), (contracted, b.numel() // max(contracted, 1))))


@function_handler("cdist", formula="matmul")
def _cdist(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # ||x1_p - x2_r|| for every pair: one multiply-add per feature and pair (the matmul form torch uses).
    x1, x2 = arg(args, kwargs, 0, "x1"), arg(args, kwargs, 1, "x2")
    return FormulaCall("matmul", (shape_of(x1), (*shape_of(x2)[:-2], x2.shape[-1], x2.shape[-2])))


@function_handler("scaled_dot_product_attention", shape_only=True, formula="sdpa")
def _sdpa(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    q, k, v = (arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    return FormulaCall("sdpa", (shape_of(q), shape_of(k), shape_of(v)))


@function_handler("multi_head_attention_forward", formula="mha")
def _mha(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    q, k, v = (arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    embed_dim, num_heads = arg(args, kwargs, 3, "embed_dim_to_check"), arg(args, kwargs, 4, "num_heads")
    separate = arg(args, kwargs, 13, "use_separate_proj_weight", False)
    k_w, v_w = arg(args, kwargs, 15, "k_proj_weight"), arg(args, kwargs, 16, "v_proj_weight")
    return FormulaCall("mha", (shape_of(q), shape_of(k), shape_of(v), embed_dim, num_heads),
                       dict(kdim=k_w.shape[1] if separate else None, vdim=v_w.shape[1] if separate else None,
                            bias=arg(args, kwargs, 6, "in_proj_bias") is not None,
                            add_bias_kv=arg(args, kwargs, 7, "bias_k") is not None,
                            add_zero_attn=bool(arg(args, kwargs, 9, "add_zero_attn", False)),
                            packed=q is k and k is v))


#: The recurrent kernels nn.RNN / nn.LSTM / nn.GRU call (``torch._VF``), by function name.
_RNN_KERNELS = {"lstm": ("LSTM", 4), "gru": ("GRU", 3), "rnn_tanh": ("RNN_TANH", 1), "rnn_relu": ("RNN_RELU", 1)}


@function_handler(*_RNN_KERNELS, formula="rnn")
def _rnn(args: tuple, kwargs: dict, out: Any, name: str = "lstm") -> FormulaCall:
    # (input, hx, flat_weights, bias, num_layers, dropout, train, bidirectional, batch_first), or with a
    # packed input (data, batch_sizes, hx, flat_weights, bias, num_layers, dropout, train, bidirectional).
    mode, gates = _RNN_KERNELS[name]
    packed = isinstance(args[1], torch.Tensor) and not args[1].is_floating_point()
    if packed:
        data, batch_sizes, _, weights, bias, layers, _, _, bidirectional = args[:9]
        batch_first = False
    else:
        data, _, weights, bias, layers, _, _, bidirectional, batch_first = args[:9]
    w_ih, w_hh = weights[0], weights[1]
    hidden = w_ih.shape[0] // gates
    proj = w_hh.shape[1] if w_hh.shape[1] != hidden else 0
    return FormulaCall("rnn", (shape_of(data), w_ih.shape[1], hidden), dict(
        mode=mode, num_layers=layers, bidirectional=bool(bidirectional), proj_size=proj, bias=bool(bias),
        batch_first=bool(batch_first), packed_batch=int(batch_sizes[0]) if packed else None))


_CELL_KERNELS = {"lstm_cell": "LSTM", "gru_cell": "GRU", "rnn_tanh_cell": "RNN_TANH", "rnn_relu_cell": "RNN_RELU"}


@function_handler(*_CELL_KERNELS, formula="rnn_cell")
def _rnn_cell(args: tuple, kwargs: dict, out: Any, name: str = "lstm_cell") -> FormulaCall:
    # (input, hx, w_ih, w_hh, b_ih, b_hh)
    x, w_ih, w_hh = args[0], args[2], args[3]
    return FormulaCall("rnn_cell", (shape_of(x), w_ih.shape[1], w_hh.shape[1]),
                       dict(mode=_CELL_KERNELS[name], bias=len(args) > 4 and args[4] is not None))


@function_handler("conv_tbc", formula="conv")
def _conv_tbc(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # (input (T, B, C_in), weight (k, C_in, C_out), bias, pad): a 1-D conv over time
    x, w = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight")
    steps, batch, channels = x.shape
    return FormulaCall("conv", ((batch, channels, steps), w.shape[2], (w.shape[0],)),
                       dict(padding=arg(args, kwargs, 3, "pad", 0), bias=True, in_channels=w.shape[1]))


# --------------------------------------------------------------------------- normalisation


@function_handler("batch_norm", shape_only=True, formula="batch_norm")
def _batch_norm(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x, running_mean = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "running_mean")
    training = bool(arg(args, kwargs, 5, "training", False))
    return FormulaCall("batch_norm", (shape_of(x),), dict(
        affine=arg(args, kwargs, 3, "weight") is not None, track_running_stats=running_mean is not None,
        training=training or running_mean is None))


@function_handler("instance_norm", shape_only=True, formula="batch_norm")
def _instance_norm(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x = arg(args, kwargs, 0, "input")
    return FormulaCall("batch_norm", (shape_of(x),), dict(
        affine=arg(args, kwargs, 3, "weight") is not None,
        track_running_stats=arg(args, kwargs, 1, "running_mean") is not None, op="instance_norm",
        input_stats=bool(arg(args, kwargs, 5, "use_input_stats", True))))


@function_handler("layer_norm", "rms_norm", shape_only=True, formula="layer_norm")
def _layer_norm(args: tuple, kwargs: dict, out: Any, name: str = "layer_norm") -> FormulaCall:
    x, shape = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "normalized_shape")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    weight = arg(args, kwargs, 2, "weight")
    bias = arg(args, kwargs, 3, "bias") if name == "layer_norm" else None  # rms_norm has no bias
    return FormulaCall("layer_norm", (shape_of(x), shape),
                       dict(elementwise_affine=weight is not None, bias=isinstance(bias, torch.Tensor), op=name))


@function_handler("local_response_norm", shape_only=True, formula="local_response_norm")
def _lrn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    return FormulaCall("local_response_norm", (shape_of(arg(args, kwargs, 0, "input")), arg(args, kwargs, 1, "size")))


@function_handler("group_norm", shape_only=True, formula="group_norm")
def _group_norm(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x = arg(args, kwargs, 0, "input")
    return FormulaCall("group_norm", (shape_of(x), arg(args, kwargs, 1, "num_groups")),
                       dict(affine=arg(args, kwargs, 2, "weight") is not None))


# --------------------------------------------------------------------------- pooling and reductions


def _pool(args: tuple, kwargs: dict, out: Any, mode: str, spatial_dims: int) -> FormulaCall:
    x = arg(args, kwargs, 0, "input")
    opts: dict[str, Any] = dict(stride=arg(args, kwargs, 2, "stride"), padding=arg(args, kwargs, 3, "padding", 0),
                                mode=mode, spatial_dims=spatial_dims)
    if mode == "max":
        opts.update(dilation=arg(args, kwargs, 4, "dilation", 1), ceil_mode=arg(args, kwargs, 5, "ceil_mode", False))
    else:
        opts.update(ceil_mode=arg(args, kwargs, 4, "ceil_mode", False))
    return FormulaCall("pool", (shape_of(x), arg(args, kwargs, 1, "kernel_size")), opts)


def _adaptive_pool(args: tuple, kwargs: dict, out: Any, mode: str, spatial_dims: int) -> FormulaCall:
    return FormulaCall("adaptive_pool", (shape_of(arg(args, kwargs, 0, "input")), arg(args, kwargs, 1, "output_size")),
                       dict(mode=mode, spatial_dims=spatial_dims))


for _nd in (1, 2, 3):
    function_handler(f"max_pool{_nd}d", mode="max", spatial_dims=_nd, formula="pool")(_pool)
    function_handler(f"avg_pool{_nd}d", shape_only=True, mode="avg", spatial_dims=_nd, formula="pool")(_pool)
    function_handler(f"adaptive_avg_pool{_nd}d", shape_only=True, mode="avg", spatial_dims=_nd,
                     formula="adaptive_pool")(_adaptive_pool)
    function_handler(f"adaptive_max_pool{_nd}d", mode="max", spatial_dims=_nd, formula="adaptive_pool")(_adaptive_pool)


@function_handler("fractional_max_pool2d", "fractional_max_pool3d", formula="pool")
def _fractional_pool(args: tuple, kwargs: dict, out: Any, name: str = "fractional_max_pool2d") -> FormulaCall:
    # (input, kernel_size, output_size, output_ratio, return_indices, _random_samples): windows at random places
    result = out[0] if isinstance(out, tuple) else out
    nd = int(name[-2])
    return FormulaCall("pool", (shape_of(arg(args, kwargs, 0, "input")), arg(args, kwargs, 1, "kernel_size")),
                       dict(mode="max", spatial_dims=nd, output_size=tuple(result.shape[-nd:])))


@function_handler("max_unpool1d", "max_unpool2d", "max_unpool3d", formula="scatter")
def _max_unpool(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x, indices = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "indices")
    return FormulaCall("scatter", (shape_of(out), x.numel(), indices.numel()), dict(op="max_unpool", reduces=False))


@function_handler("lp_pool1d", "lp_pool2d", "lp_pool3d", formula="pool")
def _lp_pool(args: tuple, kwargs: dict, out: Any, name: str = "lp_pool2d") -> FormulaCall:
    # (input, norm_type, kernel_size, stride, ceil_mode): a power-average pool
    x, kernel = arg(args, kwargs, 0, "input"), arg(args, kwargs, 2, "kernel_size")
    return FormulaCall("pool", (shape_of(x), kernel), dict(stride=arg(args, kwargs, 3, "stride"),
                                                           ceil_mode=arg(args, kwargs, 4, "ceil_mode", False),
                                                           mode="lp", spatial_dims=int(name[-2])))


@function_handler("aminmax", "prod", "std", "var", "logsumexp", "norm", "argmax", "argmin", "all", "any", "nansum",
                  "nanmean", "max", "min", "std_mean", "var_mean", "count_nonzero", "linalg_vector_norm",
                  "linalg_norm", "frobenius_norm", "nuclear_norm", formula="reduction")
@function_handler("mean", "sum", "amax", "amin", shape_only=True, formula="reduction")
def _reduction(args: tuple, kwargs: dict, out: Any, name: str = "mean") -> FormulaCall:
    x = arg(args, kwargs, 0, "input")
    second = arg(args, kwargs, 1, "other")
    if isinstance(second, torch.Tensor) and name in ("max", "min"):  # torch.max(a, b) is element-wise
        return FormulaCall("elementwise", ("maximum" if name == "max" else "minimum", shape_of(x), shape_of(second)))
    position = 2 if name in ("norm", "linalg_vector_norm", "linalg_norm") else 1  # norm(input, p, dim, ...)
    dim = kwargs.get("dim", args[position] if len(args) > position else None)
    if not isinstance(dim, (int, list, tuple)) or isinstance(dim, bool):
        dim = None
    if out is None:  # planned (mean, sum, amax, amin): keepdim as the call gives it
        keepdim = bool(arg(args, kwargs, 2, "keepdim", False)) and x.dim() > 0
    else:
        first_out = out[0] if isinstance(out, (tuple, list)) else out
        keepdim = x.dim() > 0 and first_out.dim() == x.dim() and dim is not None
    return FormulaCall("reduction", (shape_of(x),), dict(dims=dim, keepdim=keepdim, op=name))


@function_handler("cumsum", "cumprod", "cummax", "cummin", "logcumsumexp", formula="scan")
def _scan(args: tuple, kwargs: dict, out: Any, name: str = "cumsum") -> FormulaCall:
    return FormulaCall("scan", (shape_of(arg(args, kwargs, 0, "input")),), dict(op=name))


# --------------------------------------------------------------------------- element-wise


#: Element-wise ops beyond :data:`~archstat.formulas.ELEMENTWISE_OPS` that torch spells
#: differently or that only tensors have.
_MORE_ELEMENTWISE = frozenset({
    "expm1", "log1p", "log2", "log10", "tan", "atan", "atan2", "asin", "acos", "sinh", "cosh", "asinh", "acosh",
    "atanh", "trunc", "frac", "hypot", "logit", "xlogy", "clamp_min", "clamp_max", "heaviside", "copysign",
    "bitwise_xor", "bitwise_not", "logical_xor", "erfc", "erfinv", "lgamma", "digamma", "sgn", "float_power",
    "fmax", "fmin", "softmin", "isfinite", "signbit", "exp2", "sinc", "deg2rad", "rad2deg", "i0", "nextafter",
    "ldexp", "polygamma", "mvlgamma", "igamma", "igammac", "bitwise_left_shift", "bitwise_right_shift", "lshift",
    "rshift", "positive", "conj_physical", "angle", "isreal", "isposinf", "isneginf", "logaddexp", "logaddexp2",
    "gcd", "lcm", "cosine_similarity", "pairwise_distance", "special_erfcx", "xlog1py", "nan_to_num",
})


#: Element-wise ops whose output has the dtype of their (promoted) inputs, or is boolean
#: (:data:`BOOL_RESULT`): on meta, their formula's shape stands in for running them (see
#: :data:`SHAPE_ONLY_FUNCTIONS`).
_SAME_DTYPE = frozenset({"add", "sub", "mul", "div", "softmax", "log_softmax", "clamp", "exp", "sqrt", "rsqrt",
                         "neg", "pow", "maximum", "minimum", "abs", "sin", "cos", "log", "erf", "reciprocal",
                         "square", "floor", "ceil", "round", "sign", "masked_fill", "addcmul", "addcdiv",
                         "lerp"} | BOOL_RESULT | (ACTIVATIONS - {"glu", "prelu", "rrelu"}))


#: Element-wise ops over a ``dim`` (``softmax(input, dim)``), which the formula checks is in range.
_SOFTMAXES = frozenset({"softmax", "log_softmax", "softmin"})


def _elementwise(args: tuple, kwargs: dict, out: Any, name: str = "") -> FormulaCall:
    shapes = [shape_of(t) for t in tensors_in(list(args) + list(kwargs.values()))]
    if name == "glu":
        dim = arg(args, kwargs, 1, "dim", -1)
        half = list(shapes[0])
        half[dim] //= 2
        shapes = [tuple(half), tuple(half)]
    elif name == "where" and len(shapes) == 1:
        return FormulaCall("copy", (shape_of(out[0]) if isinstance(out, tuple) else shape_of(out),),
                           dict(op="nonzero", read=prod(shapes[0])))
    elif name in ("cosine_similarity", "pairwise_distance"):  # element-wise products, then a sum per row
        dim = arg(args, kwargs, 2, "dim", 1) if name == "cosine_similarity" else -1
        return FormulaCall("reduction", (shapes[0],), dict(dims=dim, op=name))
    elif name in _SOFTMAXES:
        dim = arg(args, kwargs, 1, "dim")  # None: F.softmax picks a legacy dim, always in range
        if isinstance(dim, int):
            return FormulaCall("elementwise", (name, *shapes), dict(dim=dim))
    return FormulaCall("elementwise", (name, *shapes))


function_handler(*sorted(_SAME_DTYPE), shape_only=True, formula="elementwise")(_elementwise)
function_handler(*sorted((ACTIVATIONS | ELEMENTWISE_OPS | _MORE_ELEMENTWISE) - _SAME_DTYPE - {"prelu"}),
                 formula="elementwise")(_elementwise)


_LOSSES = ("binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss", "kl_div",
           "l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
           "multilabel_margin_loss", "multi_margin_loss", "hinge_embedding_loss", "poisson_nll_loss",
           "gaussian_nll_loss", "cosine_embedding_loss", "margin_ranking_loss", "triplet_margin_loss",
           "triplet_margin_with_distance_loss", "ctc_loss", "sigmoid_focal_loss", "linear_cross_entropy")


@function_handler(*_LOSSES, formula="loss")
def _loss(args: tuple, kwargs: dict, out: Any, name: str = "loss") -> FormulaCall:
    tensors = tensors_in(list(args) + list(kwargs.values()))
    reduction = kwargs.get("reduction", "mean")
    target = shape_of(tensors[1]) if len(tensors) > 1 else ()
    return FormulaCall("loss", (shape_of(tensors[0]), target), dict(reduction=reduction, op=name))


@function_handler("prelu", formula="elementwise")
def _prelu(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # F.prelu(input, weight): one slope, or one per channel of dim 1 (not broadcast from the right)
    x, w = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight")
    slope = (w.numel(), *(1,) * (x.dim() - 2)) if w.numel() > 1 else (1,)
    return FormulaCall("elementwise", ("prelu", shape_of(x), slope))


@function_handler("weight_norm", formula="elementwise")
def _weight_norm(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # torch._weight_norm(v, g, dim): w = v * g / ||v|| per output unit, one flop per weight element
    v, g = arg(args, kwargs, 0, "v"), arg(args, kwargs, 1, "g")
    return FormulaCall("elementwise", ("weight_norm", shape_of(v), shape_of(g)))


@function_handler("pack_padded_sequence", "pad_packed_sequence", formula="copy")
def _packing(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # torch._pack_padded_sequence(input, lengths, batch_first) -> (data, batch_sizes): the data is gathered
    data = out[0] if isinstance(out, tuple) else out
    return FormulaCall("copy", (shape_of(data),))


@function_handler("gumbel_softmax", formula="elementwise")
def _gumbel_softmax(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    return FormulaCall("elementwise", ("gumbel_softmax", shape_of(arg(args, kwargs, 0, "logits"))))


@function_handler("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
                  shape_only=True, formula="elementwise")
def _dropout(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # the identity at inference and with p = 0 (torch returns the input itself)
    training, p = arg(args, kwargs, 2, "training", True), arg(args, kwargs, 1, "p", 0.5)
    x = arg(args, kwargs, 0, "input")
    return FormulaCall("elementwise", ("dropout", shape_of(x))) if training and p > 0 else FREE


# --------------------------------------------------------------------------- data movement


@function_handler("cat", "stack", "hstack", "vstack", "dstack", "column_stack", shape_only=True,
                  formula="concat")
def _cat(args: tuple, kwargs: dict, out: Any, name: str = "cat") -> FormulaCall:
    tensors = arg(args, kwargs, 0, "tensors")
    dim = arg(args, kwargs, 1, "dim", 0)
    shapes = [shape_of(t) for t in tensors]
    if name == "stack":
        d = dim % (len(shapes[0]) + 1)
        shapes = [(*s[:d], 1, *s[d:]) for s in shapes]
    elif name != "cat":  # hstack, vstack ...: the output's size tells where they were joined
        return FormulaCall("copy", (shape_of(out),), dict(op="concat", read=sum(prod(s) for s in shapes)))
    return FormulaCall("concat", (shapes,), dict(dim=dim))


@function_handler("split", "chunk", "tensor_split", "split_with_sizes", "unsafe_split", "unsafe_chunk", formula="split")
def _split(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x = arg(args, kwargs, 0, "input", kwargs.get("tensor"))
    dim = arg(args, kwargs, 2, "dim", 0)
    return FormulaCall("split", (shape_of(x), [t.shape[dim] for t in out]), dict(dim=dim))


@function_handler("channel_shuffle", formula="channel_shuffle")
def _channel_shuffle(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    return FormulaCall("channel_shuffle", (shape_of(arg(args, kwargs, 0, "input")), arg(args, kwargs, 1, "groups")))


@function_handler("pixel_shuffle", "pixel_unshuffle", formula="copy")
def _pixel_shuffle(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    return FormulaCall("copy", (shape_of(out),), dict(op="pixel_shuffle"))


@function_handler("interpolate", "upsample", "upsample_nearest", "upsample_bilinear", shape_only=True,
                  formula="interpolate")
def _interpolate(args: tuple, kwargs: dict, out: Any, name: str = "interpolate") -> FormulaCall:
    x = arg(args, kwargs, 0, "input")
    options = dict(size=arg(args, kwargs, 1, "size"), scale_factor=arg(args, kwargs, 2, "scale_factor"))
    if name == "upsample_bilinear":  # F.upsample_bilinear(input, size, scale_factor): aligned corners
        options.update(mode="bilinear", align_corners=True)
    elif name != "upsample_nearest":  # F.upsample: (..., mode, align_corners); F.interpolate: then the rest
        options.update(mode=arg(args, kwargs, 3, "mode", "nearest"),
                       align_corners=arg(args, kwargs, 4, "align_corners"))
        if name == "interpolate":
            options.update(recompute_scale_factor=arg(args, kwargs, 5, "recompute_scale_factor"),
                           antialias=bool(arg(args, kwargs, 6, "antialias", False)))
            if options["antialias"]:  # torch computes the windows in the input's dtype (double for uint8)
                options.update(float64=x.dtype in (torch.float64, torch.uint8))
    return FormulaCall("interpolate", (shape_of(x),), options)


@function_handler("grid_sample", formula="grid_sample")
def _grid_sample(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    return FormulaCall("grid_sample", (shape_of(arg(args, kwargs, 0, "input")), shape_of(arg(args, kwargs, 1, "grid"))),
                       dict(mode=arg(args, kwargs, 2, "mode", "bilinear")))


@function_handler("affine_grid", formula="matmul")
def _affine_grid(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # every output position (x, y, 1) times theta^T: a (N, positions, 3) @ (N, 3, 2) product
    theta = arg(args, kwargs, 0, "theta")
    grid = shape_of(out)
    return FormulaCall("matmul", ((grid[0], prod(grid[1:-1]), theta.shape[-1]), (grid[0], theta.shape[-1], grid[-1])))


@function_handler("pad", formula="pad")
def _pad(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    return FormulaCall("pad", (shape_of(arg(args, kwargs, 0, "input")), tuple(arg(args, kwargs, 1, "pad"))))


#: Casts: the tensor method names that convert to a dtype.
_CASTS = ("long", "int", "short", "char", "byte", "bool", "half", "float", "double", "bfloat16", "cfloat",
          "cdouble", "type", "type_as")


@function_handler("roll", "flip", "fliplr", "flipud", "tril", "triu", "fft_fftshift", "fft_ifftshift", shape_only=True,
                  formula="copy")
def _rearranged(args: tuple, kwargs: dict, out: Any, name: str = "roll") -> FormulaCall:
    # a new tensor of the input's shape, every element moved (or zeroed) once
    op = name if name in ("roll", "flip", "tril", "triu") else "copy"
    return FormulaCall("copy", (shape_of(arg(args, kwargs, 0, "input")),), dict(op=op))


@function_handler("contiguous", "clone", "to", "cpu", "cuda", "rot90", "repeat", "tile", "repeat_interleave", "copy",
                  *_CASTS, formula="copy")
def _copy(args: tuple, kwargs: dict, out: Any, name: str = "copy") -> FormulaCall:
    source = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if name == "copy":  # dst.copy_(src) writes dst in place
        return FormulaCall("copy", (shape_of(args[0]),))
    if out is source:  # .contiguous() of a contiguous tensor, .to() of the same dtype: nothing moves
        return FREE
    if name in ("repeat", "tile", "repeat_interleave"):
        read = source.numel() if source is not None else None
        return FormulaCall("copy", (shape_of(out),), dict(op="repeat", read=read))
    op = "cast" if name in _CASTS or (name == "to" and source is not None and out.dtype != source.dtype) else "copy"
    return FormulaCall("copy", (shape_of(out),), dict(op=op))


@function_handler("reshape", "reshape_as", "flatten", "ravel", formula="copy")
def _reshape(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # A view where the strides allow one; otherwise torch copies (e.g. after a transpose,
    # as in ShuffleNet's channel shuffle), and the copy is memory traffic.
    if out is None or out is args[0] or out._is_view():
        return FREE
    return FormulaCall("copy", (shape_of(out),))


@function_handler("getitem", "index_select", "gather", "take", "take_along_dim", "masked_select", "index",
                  formula="copy")
def _gather(args: tuple, kwargs: dict, out: Any, name: str = "getitem") -> FormulaCall:
    # basic slicing is a view; an index of integers (a tensor, a list, a tuple, a range, an array) or of
    # booleans gathers a copy: torch's result says which
    if name == "getitem" and isinstance(out, torch.Tensor) and (out is args[0] or out._is_view()):
        return FREE
    index = sum(t.numel() for t in tensors_in(list(args[1:]) + list(kwargs.values())))
    return FormulaCall("copy", (shape_of(out),), dict(op="gather", read=prod(shape_of(out)) + index))


@function_handler("nonzero", "argwhere", "nonzero_static", formula="copy")
def _nonzero(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    result = out[0] if isinstance(out, tuple) else out
    return FormulaCall("copy", (shape_of(result),), dict(op="nonzero", read=arg(args, kwargs, 0, "input").numel()))


@function_handler("embedding", formula="embedding")
def _embedding(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    indices, weight = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight")
    return FormulaCall("embedding", (shape_of(indices), *weight.shape))


@function_handler("embedding_bag", formula="embedding")
def _embedding_bag(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    indices, weight = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "weight")
    result = out[0] if isinstance(out, tuple) else out
    modes = {0: "sum", 1: "mean", 2: "max"}
    mode = arg(args, kwargs, 4, "mode", "mean")
    return FormulaCall("embedding", (shape_of(indices), *weight.shape),
                       dict(mode=modes.get(mode, mode), bags=result.shape[0]))


@function_handler("scatter", "scatter_add", "scatter_reduce", "index_add", "index_copy", "index_put", "index_fill",
                  "masked_scatter", "put", "index_reduce", formula="scatter")
def _scatter(args: tuple, kwargs: dict, out: Any, name: str = "scatter") -> FormulaCall:
    target = args[0]
    others = tensors_in(list(args[1:]) + list(kwargs.values()))
    source = others[-1].numel() if others else target.numel()
    index = sum(t.numel() for t in others[:-1])
    reduces = name in ("scatter_add", "scatter_reduce", "index_add", "index_reduce") or (
        name == "index_put" and bool(arg(args, kwargs, 3, "accumulate", False))) or (
        name == "scatter" and kwargs.get("reduce") is not None)
    return FormulaCall("scatter", (shape_of(target), source, index), dict(op=name, reduces=reduces))


@function_handler("setitem", formula="fill")
def _setitem(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    region = args[0][args[1]]  # evaluated on the same device (free on meta)
    return FormulaCall("fill", (shape_of(region),))


@function_handler("fill", "zero", "zeros", "ones", "full", "empty", "rand", "randn", "randint", "randperm", "arange",
                  "range", "linspace", "logspace", "eye", "tensor", "as_tensor", "from_numpy", "zeros_like",
                  "ones_like",
                  "full_like", "empty_like", "rand_like", "randn_like", "randint_like", "new_zeros", "new_ones",
                  "new_full", "new_empty", "new_tensor", "scalar_tensor", "normal", "bernoulli", "multinomial",
                  "one_hot", "empty_strided", "tril_indices", "triu_indices", "uniform", "random", "exponential",
                  formula="fill")
def _fill(args: tuple, kwargs: dict, out: Any, name: str = "fill") -> FormulaCall:
    target = out if isinstance(out, torch.Tensor) else args[0]
    return FormulaCall("fill", (shape_of(target),))


@function_handler("unfold", formula="copy")
def _unfold(args: tuple, kwargs: dict, out: Any, func: Callable | None = None) -> FormulaCall:
    if func is F.unfold:  # im2col copies every patch
        return FormulaCall("copy", (shape_of(out),), dict(op="im2col"))
    return FREE  # Tensor.unfold is a strided view


@function_handler("fold", formula="fold")
def _fold(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    return FormulaCall("fold", (shape_of(arg(args, kwargs, 0, "input")), arg(args, kwargs, 1, "output_size"),
                                arg(args, kwargs, 2, "kernel_size")),
                       dict(dilation=arg(args, kwargs, 3, "dilation", 1), padding=arg(args, kwargs, 4, "padding", 0),
                            stride=arg(args, kwargs, 5, "stride", 1)))


# --------------------------------------------------------------------------- sorting, FFT, detection ops


@function_handler("sort", "argsort", "msort", "unique", "unique_consecutive", formula="sort")
def _sort(args: tuple, kwargs: dict, out: Any, name: str = "sort") -> FormulaCall:
    x = arg(args, kwargs, 0, "input")
    if name in ("unique", "unique_consecutive"):
        first = out[0] if isinstance(out, tuple) else out
        dim = kwargs.get("dim")
        flat = (x.numel(),) if dim is None else shape_of(x)
        return FormulaCall("sort", (flat,), dict(dim=-1 if dim is None else dim, op=name,
                                                  outputs=len(tensors_in(out)), output_shape=shape_of(first)))
    dim = kwargs.get("dim", args[1] if len(args) > 1 and isinstance(args[1], int) else -1 if name != "msort" else 0)
    return FormulaCall("sort", (shape_of(x),), dict(dim=dim, op=name, outputs=1 if name != "sort" else 2))


@function_handler("topk", "kthvalue", "median", "nanmedian", "mode", formula="topk")
def _topk(args: tuple, kwargs: dict, out: Any, name: str = "topk") -> FormulaCall:
    x = arg(args, kwargs, 0, "input")
    if name == "topk":
        k = arg(args, kwargs, 1, "k")
        dim = arg(args, kwargs, 2, "dim", -1)
        return FormulaCall("topk", (shape_of(x), int(k)), dict(dim=dim))
    dim = kwargs.get("dim", args[2] if name == "kthvalue" and len(args) > 2 else args[1] if name != "kthvalue"
                     and len(args) > 1 else None)
    if dim is None:  # the median of all elements
        return FormulaCall("topk", ((x.numel(),), 1), dict(dim=0, op=name))
    return FormulaCall("topk", (shape_of(x), 1), dict(dim=dim, op=name))


@function_handler("nms", formula="nms")
def _nms(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # torch.ops.torchvision.nms(boxes, scores, iou_threshold); batched_nms offsets boxes, then calls it
    return FormulaCall("nms", (shape_of(args[0]), out.shape[0]))


def _roi_samples(rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float, sampling_ratio: int,
                 aligned: bool) -> int:
    """Bilinear samples per output bin: ``sampling_ratio**2``, or (adaptive, ``<= 0``) the
    mean over the boxes of ``ceil(roi_h / ph) * ceil(roi_w / pw)``, read from the boxes."""
    if sampling_ratio > 0:
        return sampling_ratio * sampling_ratio
    if rois.is_meta:
        raise NeedsValuesError("roi_align with an adaptive sampling ratio")
    if rois.numel() == 0:
        return 0
    ph, pw = output_size
    scaled = rois[:, 1:].double() * spatial_scale - (0.5 if aligned else 0.0)
    h = (scaled[:, 3] - scaled[:, 1]).clamp(min=0 if aligned else 1)
    w = (scaled[:, 2] - scaled[:, 0]).clamp(min=0 if aligned else 1)
    grid = (torch.ceil(h / ph).clamp(min=1) * torch.ceil(w / pw).clamp(min=1))
    return ceil(float(grid.mean()))


def _roi_bin_elements(rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float) -> int:
    """Input elements per output bin of roi_pool: the mean over the boxes of
    ``ceil(roi_h / ph) * ceil(roi_w / pw)`` (torchvision rounds boxes to whole pixels)."""
    if rois.is_meta:
        raise NeedsValuesError("roi_pool")
    if rois.numel() == 0:
        return 0
    ph, pw = output_size
    scaled = torch.round(rois[:, 1:].double() * spatial_scale)
    h = (scaled[:, 3] - scaled[:, 1] + 1).clamp(min=1)
    w = (scaled[:, 2] - scaled[:, 0] + 1).clamp(min=1)
    return ceil(float((torch.ceil(h / ph) * torch.ceil(w / pw)).mean()))


@function_handler("roi_pool", "ps_roi_pool", formula="roi_align")
def _roi_pool(args: tuple, kwargs: dict, out: Any, name: str = "roi_pool") -> FormulaCall:
    # torch.ops.torchvision.roi_pool(input, rois, spatial_scale, pooled_h, pooled_w)
    x, rois, scale, ph, pw = args[:5]
    result = out[0] if isinstance(out, tuple) else out
    return FormulaCall("roi_align", (shape_of(x), rois.shape[0], (ph, pw), _roi_bin_elements(rois, (ph, pw), scale)),
                       dict(op=name, channels_out=result.shape[1], taps=0))


@function_handler("roi_align", "ps_roi_align", formula="roi_align")
def _roi_align(args: tuple, kwargs: dict, out: Any, name: str = "roi_align") -> FormulaCall:
    # torch.ops.torchvision.roi_align(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio, aligned);
    # ps_roi_align(input, rois, spatial_scale, pooled_h, pooled_w, sampling_ratio)
    x, rois, scale, ph, pw, ratio = args[:6]
    aligned = bool(args[6]) if name == "roi_align" and len(args) > 6 else False
    result = out[0] if isinstance(out, tuple) else out
    samples = _roi_samples(rois, (ph, pw), scale, ratio, aligned)
    return FormulaCall("roi_align", (shape_of(x), rois.shape[0], (ph, pw), samples),
                       dict(op=name, channels_out=result.shape[1]))


_FFTS = {"fft": 1, "ifft": 1, "rfft": 1, "irfft": 1, "hfft": 1, "ihfft": 1, "fft2": 2, "ifft2": 2, "rfft2": 2,
         "irfft2": 2, "hfft2": 2, "ihfft2": 2, "fftn": 0, "ifftn": 0, "rfftn": 0, "irfftn": 0, "hfftn": 0,
         "ihfftn": 0}


@function_handler(*(f"fft_{n}" for n in _FFTS), formula="fft")
def _fft(args: tuple, kwargs: dict, out: Any, name: str = "fft_fft") -> FormulaCall:
    kind = name.removeprefix("fft_")
    x = arg(args, kwargs, 0, "input")
    ndims = _FFTS[kind]
    size = arg(args, kwargs, 1, "n" if ndims == 1 else "s")
    dim = arg(args, kwargs, 2, "dim", -1 if ndims == 1 else (-2, -1) if ndims == 2 else None)
    if dim is None:
        dims = list(range(x.dim() - len(size), x.dim())) if size is not None else list(range(x.dim()))
    else:
        dims = [d % x.dim() for d in ([dim] if isinstance(dim, int) else dim)]
    if kind.startswith(("r", "ih")):  # rfft*, ihfft*: a real signal in, its last length as given
        last = (size if isinstance(size, int) else size[-1]) if size is not None else x.shape[dims[-1]]
        points = [out.shape[d] for d in dims[:-1]] + [last]
    else:  # complex, or irfft* / hfft* whose real output is the signal
        points = [out.shape[d] for d in dims]
    batch = out.numel() // max(prod(out.shape[d] for d in dims), 1)
    real = kind.startswith(("r", "ih", "ir", "h"))
    return FormulaCall("fft", (shape_of(x), shape_of(out), points, batch), dict(real=real, op=name))


# --------------------------------------------------------------------------- free, uncounted and refused


declare_free(
    "view", "view_as", "unflatten", "permute", "transpose", "swapaxes", "swapdims", "t", "T", "mT", "H", "mH",
    "squeeze", "unsqueeze", "expand", "expand_as", "narrow", "select", "unbind", "as_strided", "detach",
    "movedim", "moveaxis", "diagonal", "get", "assert", "requires_grad", "requires_grad_", "identity",
    "view_as_real", "view_as_complex", "real", "imag", "conj", "align_to", "refine_names", "rename",
    "record_stream", "retain_grad", "resolve_conj", "resolve_neg", "atleast_1d", "atleast_2d", "atleast_3d",
    "alias", "broadcast_to", "adjoint", "is_floating_point", "is_complex", "meshgrid", "broadcast_tensors",
    "item", "tolist", "is_nonzero", "is_same_size", "equal", "has_names", "is_inference", "is_pinned",
    "is_set_to", "is_shared", "is_signed", "pin_memory", "share_memory", "storage", "untyped_storage",
    "get_device", "dim_order", "data", "grad", "device", "dtype", "shape", "layout", "names", "is_cuda", "is_meta",
    "is_sparse", "is_quantized", "is_leaf", "grad_fn", "output_nr", "version", "nbytes", "itemsize", "ndim",
    "register_hook", "chunk_view", "split_view", "unsafe_view", "lift_fresh", "sym_size",
    "sym_stride", "sym_numel", "has_torch_function", "set_", "is_contiguous_or_false",
)

# Tensor.numpy and Tensor.__array__ (np.asarray(x)) hand a tensor's values to NumPy: what is computed
# there runs outside torch, where no torch function is called, so archstat cannot see it, let alone count it.
declare_uncounted("leaves torch for NumPy: what is computed outside torch is not counted", "numpy", "array")

refuse("quantized int8 kernels run outside the formulas archstat checks; count the float model the quantized one "
       "was converted from (quantize=False, the default for torchvision's quantized_* names)",
       "quantize_per_tensor", "quantize_per_channel", "dequantize", "quantized_max_pool2d", "quantized_batch_norm")
