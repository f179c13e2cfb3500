"""Which formula applies to an op the counter observes, and with which arguments.

Two registries, one per way an op reaches the counter, and nothing else:

* :data:`MODULE_HANDLERS`: ``nn.Module`` classes whose *stock* ``forward`` is one op
  (``nn.Conv2d``, ``nn.MultiheadAttention`` ...). Looked up along the module's MRO, and
  only used when the class does not override that ``forward`` (a subclass with its
  own ``forward``, such as timm's ``Conv2dSame``, is counted through the functional
  ops it calls instead). Handlers see the module's hyper-parameters and its inputs
  *before* it runs, so an input too small for the layer is reported by name.
* :data:`FUNCTION_HANDLERS`: torch functions and tensor methods, keyed by their
  normalised name (``"add"`` for ``torch.add``, ``Tensor.add``, ``x + y`` and ``x += y``).

A handler never computes a number: it returns a :class:`FormulaCall` naming a
formula of :mod:`archstat.formulas` and its arguments. :data:`FREE_FUNCTIONS` are the
known zero-cost ops (views, metadata); any other name is *uncounted* and reported.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F

from archstat.formulas import ACTIVATIONS, ELEMENTWISE_OPS, FORMULAS, OpCost

__all__ = [
    "FormulaCall",
    "FREE",
    "MODULE_HANDLERS",
    "FUNCTION_HANDLERS",
    "FREE_FUNCTIONS",
    "SHAPE_ONLY_FUNCTIONS",
    "module_handler",
    "function_handler",
    "normalise_name",
    "handler_for_module",
]


@dataclass(frozen=True)
class FormulaCall:
    """A formula of :data:`archstat.formulas.FORMULAS` and the arguments to call it with.

    Kept on every counted row, so a row can be re-evaluated under other options
    (``count_bias``) or other tools' conventions without running the model again.
    """

    formula: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def evaluate(self, **options: Any) -> OpCost:
        """Call the formula; ``options`` it does not accept (e.g. ``count_bias``) are ignored."""
        fn = FORMULAS[self.formula]
        accepted = _accepted_options(fn, tuple(options))
        return fn(*self.args, **self.kwargs, **{k: options[k] for k in accepted})


_OPTION_CACHE: dict[tuple[Callable, tuple[str, ...]], tuple[str, ...]] = {}


def _accepted_options(fn: Callable, names: tuple[str, ...]) -> tuple[str, ...]:
    key = (fn, names)
    if key not in _OPTION_CACHE:
        params = inspect.signature(fn).parameters
        _OPTION_CACHE[key] = tuple(n for n in names if n in params)
    return _OPTION_CACHE[key]


#: Returned by a handler for an op that costs nothing (a view, dropout at inference).
FREE = FormulaCall("free")

ModuleHandler = Callable[[nn.Module, tuple, dict], FormulaCall]
FunctionHandler = Callable[[tuple, dict, Any], FormulaCall]

MODULE_HANDLERS: dict[type, ModuleHandler] = {}
FUNCTION_HANDLERS: dict[str, FunctionHandler] = {}


def module_handler(*classes: type) -> Callable[[ModuleHandler], ModuleHandler]:
    """Register a handler for module classes (and subclasses that keep their ``forward``)."""

    def register(fn: ModuleHandler) -> ModuleHandler:
        for cls in classes:
            if cls in MODULE_HANDLERS:
                raise ValueError(f"module {cls.__name__} already has a handler")
            MODULE_HANDLERS[cls] = fn
        return fn

    return register


def function_handler(*names: str) -> Callable[[FunctionHandler], FunctionHandler]:
    """Register a handler for torch functions / tensor methods by normalised name."""

    def register(fn: FunctionHandler) -> FunctionHandler:
        for name in names:
            if name in FUNCTION_HANDLERS:
                raise ValueError(f"function {name!r} already has a handler")
            FUNCTION_HANDLERS[name] = fn
        return fn

    return register


def handler_for_module(module: nn.Module) -> ModuleHandler | None:
    """The handler of the nearest registered class in the module's MRO, if the module
    still runs that class's ``forward``; else ``None`` (its functional ops get counted)."""
    forward = type(module).forward
    for cls in type(module).__mro__:
        handler = MODULE_HANDLERS.get(cls)
        if handler is not None:
            return handler if forward is cls.forward else None
    return None


_ALIASES = {
    "truediv": "div", "rtruediv": "div", "rdiv": "div", "itruediv": "div", "divide": "div",
    "floordiv": "floor_divide", "rfloordiv": "floor_divide", "mod": "remainder", "rmod": "remainder",
    "radd": "add", "iadd": "add", "rmul": "mul", "imul": "mul", "multiply": "mul", "isub": "sub",
    "subtract": "sub", "rpow": "pow", "ipow": "pow", "invert": "logical_not", "and": "bitwise_and",
    "or": "bitwise_or", "rand": "bitwise_and", "ror": "bitwise_or", "concat": "cat",
    "concatenate": "cat", "native_channel_shuffle": "channel_shuffle", "max_pool2d_with_indices": "max_pool2d",
    "max_pool1d_with_indices": "max_pool1d", "max_pool3d_with_indices": "max_pool3d",
    "adaptive_max_pool2d_with_indices": "adaptive_max_pool2d", "swish": "silu", "clip": "clamp",
    "greater": "gt", "less": "lt", "greater_equal": "ge", "less_equal": "le", "not_equal": "ne",
}


_NAMES: dict[Any, str] = {}


def normalise_name(func: Callable) -> str:
    """``Tensor.add_`` -> ``"add"``, ``Tensor.__iadd__`` -> ``"add"``, ``torch.concat`` -> ``"cat"``."""
    try:
        return _NAMES[func]
    except (KeyError, TypeError):
        name = getattr(func, "__name__", repr(func)).strip("_")
        name = _ALIASES.get(name, name)
        try:
            _NAMES[func] = name
        except TypeError:  # an unhashable callable: not cached
            pass
        return name


# --------------------------------------------------------------------------- helpers


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(t.shape)


def _batched(t: torch.Tensor, spatial_dims: int) -> tuple[int, ...]:
    """Add the batch dimension torch allows convs and pools to omit."""
    shape = _shape(t)
    return (1, *shape) if len(shape) == spatial_dims + 1 else shape


def _tensors(values: Any) -> list[torch.Tensor]:
    if isinstance(values, torch.Tensor):
        return [values]
    if isinstance(values, (list, tuple)):
        return [t for v in values for t in _tensors(v)]
    return []


# --------------------------------------------------------------------------- modules


@module_handler(nn.Conv1d, nn.Conv2d, nn.Conv3d)
def _conv_module(m: nn.Conv2d, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("conv", (_batched(x, len(m.kernel_size)), m.out_channels, m.kernel_size),
                       dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups,
                            bias=m.bias is not None))


@module_handler(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def _conv_transpose_module(m: nn.ConvTranspose2d, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    output_size = _arg(args, kwargs, 1, "output_size")
    nd = len(m.kernel_size)
    shape = _batched(x, nd)
    output_padding = m.output_padding
    if output_size is not None:
        # nn.ConvTranspose derives output_padding from the requested size.
        smallest = [(i - 1) * s - 2 * p + d * (k - 1) + 1
                    for i, s, p, d, k in zip(shape[2:], m.stride, m.padding, m.dilation, m.kernel_size)]
        output_padding = tuple(int(o) - s for o, s in zip(list(output_size)[-nd:], smallest))
    return FormulaCall("conv_transpose", (shape, m.out_channels, m.kernel_size),
                       dict(stride=m.stride, padding=m.padding, output_padding=output_padding,
                            groups=m.groups, bias=m.bias is not None, dilation=m.dilation))


@module_handler(nn.Linear)
def _linear_module(m: nn.Linear, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("linear", (_shape(x), m.in_features, m.out_features), dict(bias=m.bias is not None))


@module_handler(nn.modules.batchnorm._BatchNorm)
def _batch_norm_module(m: nn.BatchNorm2d, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("batch_norm", (_shape(x),), dict(affine=m.affine, track_running_stats=m.track_running_stats))


@module_handler(nn.modules.instancenorm._InstanceNorm)
def _instance_norm_module(m: nn.InstanceNorm2d, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("batch_norm", (_batched(x, m._get_no_batch_dim() - 1),),  # unbatched ndim - 1 spatial dims
                       dict(affine=m.affine, track_running_stats=m.track_running_stats, kind="instance norm"))


@module_handler(nn.LayerNorm)
def _layer_norm_module(m: nn.LayerNorm, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("layer_norm", (_shape(x), m.normalized_shape),
                       dict(elementwise_affine=m.elementwise_affine, bias=m.bias is not None))


@module_handler(nn.GroupNorm)
def _group_norm_module(m: nn.GroupNorm, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("group_norm", (_shape(x), m.num_groups), dict(affine=m.affine))


@module_handler(nn.LocalResponseNorm)
def _lrn_module(m: nn.LocalResponseNorm, args: tuple, kwargs: dict) -> FormulaCall:
    return FormulaCall("local_response_norm", (_shape(_arg(args, kwargs, 0, "input")), m.size))


@module_handler(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
def _max_pool_module(m: nn.MaxPool2d, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    nd = int(type(m).__name__[-2])
    return FormulaCall("pool", (_batched(x, nd), m.kernel_size),
                       dict(stride=m.stride, padding=m.padding, dilation=m.dilation, ceil_mode=m.ceil_mode,
                            mode="max", spatial_dims=nd))


@module_handler(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def _avg_pool_module(m: nn.AvgPool2d, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    nd = int(type(m).__name__[-2])
    return FormulaCall("pool", (_batched(x, nd), m.kernel_size),
                       dict(stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode, mode="avg", spatial_dims=nd))


@module_handler(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
def _adaptive_pool_module(m: nn.Module, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    nd = int(type(m).__name__[-2])
    mode = "max" if "Max" in type(m).__name__ else "avg"
    return FormulaCall("adaptive_pool", (_batched(x, nd), m.output_size), dict(mode=mode, spatial_dims=nd))


_ACTIVATION_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.Sigmoid, nn.Hardsigmoid,
    nn.Tanh, nn.Hardtanh, nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.LogSigmoid, nn.Softmax, nn.LogSoftmax, nn.Softmax2d, nn.Threshold, nn.GLU, nn.Hardshrink,
    nn.Softshrink, nn.RReLU,
)


@module_handler(*_ACTIVATION_MODULES)
def _activation_module(m: nn.Module, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("elementwise", (type(m).__name__.lower(), _shape(x)))


@module_handler(nn.PReLU)
def _prelu_module(m: nn.PReLU, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    n = m.num_parameters  # one slope, or one per channel (dim 1)
    slope = (n, *(1,) * (x.dim() - 2)) if n > 1 else (1,)
    return FormulaCall("elementwise", ("prelu", _shape(x), slope), dict(params=n))


@module_handler(nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                nn.FeatureAlphaDropout, nn.Flatten, nn.Unflatten)
def _free_module(m: nn.Module, args: tuple, kwargs: dict) -> FormulaCall:
    # Identity and reshapes move no data; dropout is the identity at inference.
    return FREE


@module_handler(nn.Upsample)
def _upsample_module(m: nn.Upsample, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("interpolate", (_shape(x),), dict(size=m.size, scale_factor=m.scale_factor, mode=m.mode))


@module_handler(nn.ChannelShuffle)
def _channel_shuffle_module(m: nn.ChannelShuffle, args: tuple, kwargs: dict) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("channel_shuffle", (_shape(x), m.groups))


@module_handler(nn.MultiheadAttention)
def _mha_module(m: nn.MultiheadAttention, args: tuple, kwargs: dict) -> FormulaCall:
    q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    return FormulaCall("mha", (_shape(q), _shape(k), _shape(v), m.embed_dim, m.num_heads),
                       dict(kdim=m.kdim, vdim=m.vdim, bias=m.in_proj_bias is not None,
                            add_bias_kv=m.bias_k is not None, add_zero_attn=m.add_zero_attn,
                            batch_first=m.batch_first))


# --------------------------------------------------------------------------- functions


@function_handler("conv1d", "conv2d", "conv3d")
def _conv_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x, w = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "weight")
    nd = w.dim() - 2
    return FormulaCall("conv", (_batched(x, nd), w.shape[0], tuple(w.shape[2:])),
                       dict(stride=_arg(args, kwargs, 3, "stride", 1), padding=_arg(args, kwargs, 4, "padding", 0),
                            dilation=_arg(args, kwargs, 5, "dilation", 1), groups=_arg(args, kwargs, 6, "groups", 1),
                            bias=_arg(args, kwargs, 2, "bias") is not None))


@function_handler("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def _conv_transpose_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x, w = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "weight")
    nd, groups = w.dim() - 2, _arg(args, kwargs, 6, "groups", 1)
    return FormulaCall("conv_transpose", (_batched(x, nd), w.shape[1] * groups, tuple(w.shape[2:])),
                       dict(stride=_arg(args, kwargs, 3, "stride", 1), padding=_arg(args, kwargs, 4, "padding", 0),
                            output_padding=_arg(args, kwargs, 5, "output_padding", 0), groups=groups,
                            bias=_arg(args, kwargs, 2, "bias") is not None,
                            dilation=_arg(args, kwargs, 7, "dilation", 1)))


@function_handler("linear")
def _linear_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x, w = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "weight")
    if w.dim() == 1:  # F.linear with a vector weight is a dot product
        return FormulaCall("matmul", (_shape(x), _shape(w)))
    return FormulaCall("linear", (_shape(x), w.shape[1], w.shape[0]), dict(bias=_arg(args, kwargs, 2, "bias") is not None))


@function_handler("matmul", "mm", "bmm", "dot", "mv", "inner")
def _matmul_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    a, b = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "other", kwargs.get("mat2", kwargs.get("vec")))
    return FormulaCall("matmul", (_shape(a), _shape(b)))


@function_handler("addmm", "baddbmm", "addbmm", "addmv")
def _addmm_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # bias + a @ b: the product is the multiply-add work, the bias add is the convention's bias.
    a, b = _arg(args, kwargs, 1, "mat1", kwargs.get("batch1")), _arg(args, kwargs, 2, "mat2", kwargs.get("batch2"))
    return FormulaCall("matmul", (_shape(a), _shape(b)))


@function_handler("einsum")
def _einsum_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    equation, operands = args[0], args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return FormulaCall("einsum", (equation, *(_shape(t) for t in operands)))


@function_handler("scaled_dot_product_attention")
def _sdpa_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    return FormulaCall("sdpa", (_shape(q), _shape(k), _shape(v)))


@function_handler("multi_head_attention_forward")
def _mha_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    q, k, v = (_arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    embed_dim, num_heads = _arg(args, kwargs, 3, "embed_dim_to_check"), _arg(args, kwargs, 4, "num_heads")
    separate = _arg(args, kwargs, 13, "use_separate_proj_weight", False)
    k_w, v_w = _arg(args, kwargs, 15, "k_proj_weight"), _arg(args, kwargs, 16, "v_proj_weight")
    return FormulaCall("mha", (_shape(q), _shape(k), _shape(v), embed_dim, num_heads),
                       dict(kdim=k_w.shape[1] if separate else None, vdim=v_w.shape[1] if separate else None,
                            bias=_arg(args, kwargs, 6, "in_proj_bias") is not None,
                            add_bias_kv=_arg(args, kwargs, 7, "bias_k") is not None,
                            add_zero_attn=bool(_arg(args, kwargs, 9, "add_zero_attn", False))))


@function_handler("batch_norm")
def _batch_norm_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("batch_norm", (_shape(x),), dict(affine=_arg(args, kwargs, 3, "weight") is not None,
                                                         track_running_stats=_arg(args, kwargs, 1, "running_mean") is not None))


@function_handler("instance_norm")
def _instance_norm_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("batch_norm", (_shape(x),), dict(affine=_arg(args, kwargs, 3, "weight") is not None,
                                                         track_running_stats=_arg(args, kwargs, 1, "running_mean") is not None,
                                                         kind="instance norm"))


@function_handler("layer_norm", "rms_norm")
def _layer_norm_fn(args: tuple, kwargs: dict, out: Any, name: str = "layer_norm") -> FormulaCall:
    x, shape = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "normalized_shape")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    weight = _arg(args, kwargs, 2, "weight")
    bias = _arg(args, kwargs, 3, "bias") if name == "layer_norm" else None  # rms_norm has no bias
    return FormulaCall("layer_norm", (_shape(x), shape),
                       dict(elementwise_affine=weight is not None, bias=isinstance(bias, torch.Tensor)))


@function_handler("local_response_norm")
def _lrn_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    return FormulaCall("local_response_norm", (_shape(_arg(args, kwargs, 0, "input")), _arg(args, kwargs, 1, "size")))


@function_handler("group_norm")
def _group_norm_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("group_norm", (_shape(x), _arg(args, kwargs, 1, "num_groups")),
                       dict(affine=_arg(args, kwargs, 2, "weight") is not None))


def _pool_fn(mode: str, nd: int) -> FunctionHandler:
    def handler(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
        x = _arg(args, kwargs, 0, "input")
        opts = dict(stride=_arg(args, kwargs, 2, "stride"), padding=_arg(args, kwargs, 3, "padding", 0), mode=mode,
                    spatial_dims=nd)
        if mode == "max":
            opts.update(dilation=_arg(args, kwargs, 4, "dilation", 1), ceil_mode=_arg(args, kwargs, 5, "ceil_mode", False))
        else:
            opts.update(ceil_mode=_arg(args, kwargs, 4, "ceil_mode", False))
        return FormulaCall("pool", (_batched(x, nd), _arg(args, kwargs, 1, "kernel_size")), opts)

    return handler


def _adaptive_pool_fn(mode: str, nd: int) -> FunctionHandler:
    def handler(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
        x = _arg(args, kwargs, 0, "input")
        return FormulaCall("adaptive_pool", (_batched(x, nd), _arg(args, kwargs, 1, "output_size")),
                           dict(mode=mode, spatial_dims=nd))

    return handler


for _nd in (1, 2, 3):
    function_handler(f"max_pool{_nd}d")(_pool_fn("max", _nd))
    function_handler(f"avg_pool{_nd}d")(_pool_fn("avg", _nd))
    function_handler(f"adaptive_avg_pool{_nd}d")(_adaptive_pool_fn("avg", _nd))
    function_handler(f"adaptive_max_pool{_nd}d")(_adaptive_pool_fn("max", _nd))


@function_handler("mean", "sum", "amax", "amin", "prod", "std", "var", "logsumexp", "norm", "argmax",
                  "argmin", "all", "any", "nansum", "nanmean", "max", "min", "std_mean", "var_mean")
def _reduction_fn(args: tuple, kwargs: dict, out: Any, name: str = "mean") -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    second = _arg(args, kwargs, 1, "other")
    if isinstance(second, torch.Tensor):  # torch.max(a, b) is element-wise
        return FormulaCall("elementwise", ("maximum" if name == "max" else "minimum", _shape(x), _shape(second)))
    position = 2 if name == "norm" else 1  # norm(input, p, dim, ...)
    dim = kwargs.get("dim", args[position] if len(args) > position else None)
    if not isinstance(dim, (int, list, tuple)) or isinstance(dim, bool):
        dim = None
    first_out = out[0] if isinstance(out, (tuple, list)) else out
    keepdim = x.dim() > 0 and first_out.dim() == x.dim() and dim is not None
    return FormulaCall("reduction", (_shape(x),), dict(dims=dim, keepdim=keepdim, op="reduce"))


@function_handler(*sorted(ACTIVATIONS | ELEMENTWISE_OPS | {"cumsum", "cumprod", "tril", "triu"}))
def _elementwise_fn(args: tuple, kwargs: dict, out: Any, name: str = "") -> FormulaCall:
    shapes = [_shape(t) for t in _tensors(list(args) + list(kwargs.values()))]
    return FormulaCall("elementwise", (name, *shapes))


@function_handler("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout")
def _dropout_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    training = _arg(args, kwargs, 2, "training", True)
    x = _arg(args, kwargs, 0, "input")
    return FormulaCall("elementwise", ("dropout", _shape(x))) if training else FREE


@function_handler("cat", "stack", "hstack", "vstack")
def _cat_fn(args: tuple, kwargs: dict, out: Any, name: str = "cat") -> FormulaCall:
    tensors = _arg(args, kwargs, 0, "tensors")
    dim = _arg(args, kwargs, 1, "dim", 0)
    shapes = [_shape(t) for t in tensors]
    if name == "stack":
        d = dim % (len(shapes[0]) + 1)
        shapes = [(*s[:d], 1, *s[d:]) for s in shapes]
    elif name in ("hstack", "vstack"):
        return FormulaCall("concat", (shapes,), dict(dim=1 if name == "hstack" and len(shapes[0]) > 1 else 0))
    return FormulaCall("concat", (shapes,), dict(dim=dim))


@function_handler("split", "chunk", "tensor_split", "split_with_sizes")
def _split_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    x = _arg(args, kwargs, 0, "input", kwargs.get("tensor"))
    dim = _arg(args, kwargs, 2, "dim", 0)
    return FormulaCall("split", (_shape(x), [t.shape[dim] for t in out]), dict(dim=dim))


@function_handler("channel_shuffle")
def _channel_shuffle_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    return FormulaCall("channel_shuffle", (_shape(_arg(args, kwargs, 0, "input")), _arg(args, kwargs, 1, "groups")))


@function_handler("interpolate", "upsample", "upsample_nearest", "upsample_bilinear")
def _interpolate_fn(args: tuple, kwargs: dict, out: Any, name: str = "interpolate") -> FormulaCall:
    x = _arg(args, kwargs, 0, "input")
    default_mode = {"upsample_bilinear": "bilinear"}.get(name, "nearest")
    return FormulaCall("interpolate", (_shape(x),), dict(size=_arg(args, kwargs, 1, "size"),
                                                         scale_factor=_arg(args, kwargs, 2, "scale_factor"),
                                                         mode=_arg(args, kwargs, 3, "mode", default_mode)))


@function_handler("pad")
def _pad_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    return FormulaCall("pad", (_shape(_arg(args, kwargs, 0, "input")), tuple(_arg(args, kwargs, 1, "pad"))))


@function_handler("contiguous", "clone", "to", "type", "float", "half", "double", "bfloat16", "cpu", "cuda",
                  "roll", "flip", "repeat", "tile", "repeat_interleave", "type_as", "copy")
def _copy_fn(args: tuple, kwargs: dict, out: Any, name: str = "copy") -> FormulaCall:
    source = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if out is source:  # .contiguous() of a contiguous tensor, .to() of the same dtype: nothing moves
        return FREE
    if name in ("repeat", "tile", "repeat_interleave"):
        return FormulaCall("fill", (_shape(out),))
    return FormulaCall("copy", (_shape(out),), dict(kind=name if name in ("roll", "flip") else "copy"))


@function_handler("reshape", "reshape_as", "flatten")
def _reshape_fn(args: tuple, kwargs: dict, out: Any) -> FormulaCall:
    # A view where the strides allow one; otherwise torch copies (e.g. after a transpose,
    # as in ShuffleNet's channel shuffle), and the copy is memory traffic.
    if out is None or out is args[0] or out._is_view():
        return FREE
    return FormulaCall("copy", (_shape(out),))


@function_handler("getitem", "index_select", "gather", "take", "take_along_dim", "embedding", "masked_select")
def _index_fn(args: tuple, kwargs: dict, out: Any, name: str = "getitem") -> FormulaCall:
    if name == "getitem" and not _tensors(args[1:]) and not _has_list_index(args[1] if len(args) > 1 else None):
        return FREE  # basic slicing is a view
    return FormulaCall("copy", (_shape(out),), dict(kind="gather"))


def _has_list_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, list) for i in items)


@function_handler("setitem", "index_put", "masked_scatter", "scatter", "scatter_add", "index_add", "index_copy",
                  "fill", "zero")
def _write_fn(args: tuple, kwargs: dict, out: Any, name: str = "setitem") -> FormulaCall:
    target = args[0]
    if name == "setitem":
        region = target[args[1]]  # evaluated on the same device (free on meta)
        return FormulaCall("fill", (_shape(region),))
    return FormulaCall("fill", (_shape(target),))


@function_handler("zeros", "ones", "full", "empty", "rand", "randn", "randint", "arange", "linspace", "eye",
                  "tensor", "as_tensor", "zeros_like", "ones_like", "full_like", "empty_like", "rand_like",
                  "randn_like", "new_zeros", "new_ones", "new_full", "new_empty", "new_tensor", "scalar_tensor",
                  "meshgrid", "broadcast_tensors", "outer")
def _fill_fn(args: tuple, kwargs: dict, out: Any, name: str = "fill") -> FormulaCall:
    if name == "outer":
        a, b = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "vec2")
        return FormulaCall("matmul", ((*_shape(a), 1), (1, *_shape(b))))
    if name in ("meshgrid", "broadcast_tensors"):
        return FREE  # expanded views
    return FormulaCall("fill", (_shape(out),))


@function_handler("unfold")
def _unfold_fn(args: tuple, kwargs: dict, out: Any, func: Callable | None = None) -> FormulaCall:
    if func is F.unfold:  # im2col copies every patch
        return FormulaCall("copy", (_shape(out),), dict(kind="im2col"))
    return FREE  # Tensor.unfold is a strided view


#: Known zero-cost functions: views, metadata and bookkeeping. Anything that returns
#: no tensor at all (``size``, ``dim``, ``shape``) is free without being listed.
FREE_FUNCTIONS = frozenset({
    "view", "view_as", "unflatten", "permute", "transpose", "swapaxes",
    "swapdims", "t", "squeeze", "unsqueeze", "expand", "expand_as", "narrow", "select", "unbind", "as_strided",
    "detach", "movedim", "moveaxis", "diagonal", "get", "assert", "requires_grad", "identity", "view_as_real",
    "view_as_complex", "real", "align_to", "refine_names", "rename", "record_stream", "retain_grad",
    "resolve_conj", "resolve_neg", "atleast_1d", "atleast_2d", "atleast_3d", "alias", "broadcast_to",
    "adjoint", "is_floating_point", "is_complex",
})


#: Ops whose one output tensor is fully described by its formula's output shape and its
#: inputs' dtype. On the meta device the counter returns an empty tensor of that shape
#: instead of running them: torch's meta kernels for batch norm and element-wise ops are
#: Python decompositions, slower than the real CPU kernels. (``count(..., check_shapes=True)``
#: runs them and compares; the tests and the torchvision benchmark do.)
SHAPE_ONLY_FUNCTIONS = frozenset({
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "linear",
    "batch_norm", "instance_norm", "layer_norm", "group_norm", "rms_norm", "local_response_norm",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "matmul", "mm", "bmm", "scaled_dot_product_attention", "interpolate", "cat", "dropout", "dropout1d", "dropout2d",
    "dropout3d", "add", "sub", "mul", "div", "softmax", "log_softmax", "clamp", "exp", "sqrt", "rsqrt", "neg",
    *(ACTIVATIONS - {"glu", "prelu", "rrelu"}),
})


def call_handler(name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> FormulaCall | None:
    """The :class:`FormulaCall` for a function call, :data:`FREE` if it costs nothing,
    ``None`` if archstat does not know it."""
    if name in FREE_FUNCTIONS:
        return FREE
    handler = FUNCTION_HANDLERS.get(name)
    if handler is None:
        return None
    params = _handler_extras(handler)
    extras = {}
    if "name" in params:
        extras["name"] = name
    if "func" in params:
        extras["func"] = func
    return handler(args, kwargs, out, **extras)


_EXTRAS: dict[Callable, frozenset[str]] = {}


def _handler_extras(handler: Callable) -> frozenset[str]:
    if handler not in _EXTRAS:
        _EXTRAS[handler] = frozenset(inspect.signature(handler).parameters) & {"name", "func"}
    return _EXTRAS[handler]
