"""Module handlers: ``nn.Module`` classes whose stock ``forward`` is one op.

Every option a class fixes (spatial dimensions, pooling mode, activation name, recurrent
cell mode) is given at registration, never read off a class name; everything else comes
from the module's attributes. So are the ``helpers``: the methods of torch's own ``forward``
that do the work (``_conv_forward``, ``_output_padding``, ``_apply_instance_norm``, the
recurrent layers' weight and state plumbing, ``merge_masks``), which a subclass overrides
to change what the layer computes; the input checks torch's subclasses of an abstract base
override themselves (``_BatchNorm._check_input_dim``, ``_InstanceNorm._get_no_batch_dim``)
are not helpers: the handlers call them. Handlers refuse an input the layer would reject (wrong
rank or channel count) by passing the layer's own sizes to the formula.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.nn.utils.rnn import PackedSequence

from archstat.counting.handlers.args import arg, shape_of
from archstat.counting.handlers.registry import FREE, FormulaCall, module_handler
from archstat.formulas import ShapeError

__all__ = ["ACTIVATION_MODULES"]


def _input(args: tuple, kwargs: dict) -> Any:
    return arg(args, kwargs, 0, "input")


@module_handler({nn.Conv1d: {"spatial_dims": 1}, nn.Conv2d: {"spatial_dims": 2}, nn.Conv3d: {"spatial_dims": 3}},
                formula="conv", helpers=("_conv_forward",))
def _conv(m: nn.Conv2d, args: tuple, kwargs: dict, spatial_dims: int) -> FormulaCall:
    return FormulaCall("conv", (shape_of(_input(args, kwargs)), m.out_channels, m.kernel_size),
                       dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups,
                            bias=m.bias is not None, in_channels=m.in_channels, spatial_dims=spatial_dims))


@module_handler({nn.ConvTranspose1d: {"spatial_dims": 1}, nn.ConvTranspose2d: {"spatial_dims": 2},
                 nn.ConvTranspose3d: {"spatial_dims": 3}}, formula="conv_transpose", helpers=("_output_padding",))
def _conv_transpose(m: nn.ConvTranspose2d, args: tuple, kwargs: dict, spatial_dims: int) -> FormulaCall:
    x = _input(args, kwargs)
    output_size = arg(args, kwargs, 1, "output_size")
    output_padding = m.output_padding
    if output_size is not None:  # nn.ConvTranspose derives output_padding from the requested size
        spatial = shape_of(x)[-spatial_dims:]
        geometry = zip(spatial, m.stride, cast(tuple[int, ...], m.padding), m.dilation, m.kernel_size)
        smallest = [(i - 1) * s - 2 * p + d * (k - 1) + 1 for i, s, p, d, k in geometry]
        output_padding = tuple(int(o) - s for o, s in zip(list(output_size)[-spatial_dims:], smallest))
    return FormulaCall("conv_transpose", (shape_of(x), m.out_channels, m.kernel_size),
                       dict(stride=m.stride, padding=m.padding, output_padding=output_padding, groups=m.groups,
                            bias=m.bias is not None, dilation=m.dilation, in_channels=m.in_channels,
                            spatial_dims=spatial_dims))


@module_handler(nn.Linear, formula="linear")
def _linear(m: nn.Linear, args: tuple, kwargs: dict) -> FormulaCall:
    return FormulaCall("linear", (shape_of(_input(args, kwargs)), m.in_features, m.out_features),
                       dict(bias=m.bias is not None))


def _checked(m: nn.Module, x: torch.Tensor) -> None:
    """torch's own input check of a norm layer (``_check_input_dim``: the rank it accepts)."""
    try:
        getattr(m, "_check_input_dim")(x)
    except ValueError as exc:
        raise ShapeError(str(exc)) from None


@module_handler(_BatchNorm, formula="batch_norm")
def _batch_norm(m: _BatchNorm, args: tuple, kwargs: dict) -> FormulaCall:
    x = _input(args, kwargs)
    _checked(m, x)
    return FormulaCall("batch_norm", (shape_of(x),), dict(
        affine=m.affine, track_running_stats=m.track_running_stats, num_features=m.num_features,
        training=m.training or not m.track_running_stats))


@module_handler(_InstanceNorm, formula="batch_norm", helpers=("_handle_no_batch_input", "_apply_instance_norm"))
def _instance_norm(m: _InstanceNorm, args: tuple, kwargs: dict) -> FormulaCall:
    x = _input(args, kwargs)
    _checked(m, x)
    return FormulaCall("batch_norm", (shape_of(x),), dict(
        affine=m.affine, track_running_stats=m.track_running_stats, op="instance_norm",
        num_features=m.num_features, spatial_dims=m._get_no_batch_dim() - 1,
        input_stats=m.training or not m.track_running_stats))


@module_handler(nn.LayerNorm, formula="layer_norm")
def _layer_norm(m: nn.LayerNorm, args: tuple, kwargs: dict) -> FormulaCall:
    return FormulaCall("layer_norm", (shape_of(_input(args, kwargs)), m.normalized_shape),
                       dict(elementwise_affine=m.elementwise_affine, bias=m.bias is not None))


@module_handler(nn.GroupNorm, formula="group_norm")
def _group_norm(m: nn.GroupNorm, args: tuple, kwargs: dict) -> FormulaCall:
    return FormulaCall("group_norm", (shape_of(_input(args, kwargs)), m.num_groups),
                       dict(affine=m.affine, num_channels=m.num_channels))


@module_handler(nn.LocalResponseNorm, formula="local_response_norm")
def _lrn(m: nn.LocalResponseNorm, args: tuple, kwargs: dict) -> FormulaCall:
    return FormulaCall("local_response_norm", (shape_of(_input(args, kwargs)), m.size))


@module_handler({nn.MaxPool1d: {"spatial_dims": 1}, nn.MaxPool2d: {"spatial_dims": 2},
                 nn.MaxPool3d: {"spatial_dims": 3}}, mode="max", formula="pool")
@module_handler({nn.AvgPool1d: {"spatial_dims": 1}, nn.AvgPool2d: {"spatial_dims": 2},
                 nn.AvgPool3d: {"spatial_dims": 3}}, mode="avg", formula="pool")
def _pool(m: nn.Module, args: tuple, kwargs: dict, spatial_dims: int, mode: str) -> FormulaCall:
    options: dict[str, Any] = dict(stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode, mode=mode,
                                   spatial_dims=spatial_dims)
    if mode == "max":
        options["dilation"] = m.dilation
    return FormulaCall("pool", (shape_of(_input(args, kwargs)), m.kernel_size), options)


@module_handler({nn.AdaptiveAvgPool1d: {"spatial_dims": 1}, nn.AdaptiveAvgPool2d: {"spatial_dims": 2},
                 nn.AdaptiveAvgPool3d: {"spatial_dims": 3}}, mode="avg", formula="adaptive_pool")
@module_handler({nn.AdaptiveMaxPool1d: {"spatial_dims": 1}, nn.AdaptiveMaxPool2d: {"spatial_dims": 2},
                 nn.AdaptiveMaxPool3d: {"spatial_dims": 3}}, mode="max", formula="adaptive_pool")
def _adaptive_pool(m: nn.Module, args: tuple, kwargs: dict, spatial_dims: int, mode: str) -> FormulaCall:
    return FormulaCall("adaptive_pool", (shape_of(_input(args, kwargs)), m.output_size),
                       dict(mode=mode, spatial_dims=spatial_dims))


#: Activation modules and the op name each registers (an element-wise formula's ``op``).
ACTIVATION_MODULES: dict[type, str] = {
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.SELU: "selu",
    nn.CELU: "celu", nn.GELU: "gelu", nn.Sigmoid: "sigmoid", nn.Hardsigmoid: "hardsigmoid", nn.Tanh: "tanh",
    nn.Hardtanh: "hardtanh", nn.SiLU: "silu", nn.Mish: "mish", nn.Hardswish: "hardswish", nn.Softplus: "softplus",
    nn.Softsign: "softsign", nn.Tanhshrink: "tanhshrink", nn.LogSigmoid: "logsigmoid", nn.Threshold: "threshold",
    nn.Hardshrink: "hardshrink", nn.Softshrink: "softshrink", nn.RReLU: "rrelu", nn.Softmax: "softmax",
    nn.LogSoftmax: "log_softmax", nn.Softmin: "softmin", nn.Softmax2d: "softmax",
}


#: The input ranks an activation module's forward accepts, where it checks them (``Softmax2d.forward``).
_ACTIVATION_RANKS: dict[type, tuple[int, ...]] = {nn.Softmax2d: (3, 4)}


@module_handler({cls: {"op": op, "ranks": _ACTIVATION_RANKS.get(cls)} for cls, op in ACTIVATION_MODULES.items()},
                formula="elementwise")
def _activation(m: nn.Module, args: tuple, kwargs: dict, op: str, ranks: tuple[int, ...] | None) -> FormulaCall:
    # nn.Softmax / LogSoftmax / Softmin normalise over their ``dim`` (None: torch picks a legacy dim, always
    # in range), which the formula refuses out of range as torch does
    shape = shape_of(_input(args, kwargs))
    if ranks is not None and len(shape) not in ranks:
        raise ShapeError(f"{type(m).__name__}: expected input to be {' or '.join(f'{r}D' for r in ranks)}, "
                         f"got {len(shape)}D instead")
    dim = getattr(m, "dim", None)
    return FormulaCall("elementwise", (op, shape), {} if dim is None else dict(dim=dim))


@module_handler(nn.GLU, formula="elementwise")
def _glu(m: nn.GLU, args: tuple, kwargs: dict) -> FormulaCall:
    shape = list(shape_of(_input(args, kwargs)))
    d = m.dim % len(shape)
    if shape[d] % 2:
        raise ShapeError(f"GLU halves dim {m.dim}, which has odd size {shape[d]}")
    shape[d] //= 2
    return FormulaCall("elementwise", ("glu", tuple(shape), tuple(shape)))  # a * sigmoid(b) of the two halves


@module_handler(nn.PReLU, formula="elementwise")
def _prelu(m: nn.PReLU, args: tuple, kwargs: dict) -> FormulaCall:
    x = _input(args, kwargs)
    n = m.num_parameters  # one slope, or one per channel (dim 1)
    if n > 1 and (x.dim() < 2 or x.shape[1] != n):
        raise ShapeError(f"expects {n} channels in dim 1, got input {tuple(x.shape)}")
    slope = (n, *(1,) * (x.dim() - 2)) if n > 1 else (1,)
    return FormulaCall("elementwise", ("prelu", shape_of(x), slope), dict(params=n))


@module_handler(nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                nn.FeatureAlphaDropout, nn.Flatten, nn.Unflatten, formula="free")
def _free(m: nn.Module, args: tuple, kwargs: dict) -> FormulaCall:
    # Identity and reshapes move no data; dropout is the identity at inference.
    if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0:
        return FormulaCall("elementwise", ("dropout", shape_of(_input(args, kwargs))))
    return FREE


@module_handler(nn.Upsample, formula="interpolate")
def _upsample(m: nn.Upsample, args: tuple, kwargs: dict) -> FormulaCall:
    return FormulaCall("interpolate", (shape_of(_input(args, kwargs)),),
                       dict(size=m.size, scale_factor=m.scale_factor, mode=m.mode, align_corners=m.align_corners,
                            recompute_scale_factor=m.recompute_scale_factor))


@module_handler(nn.ChannelShuffle, formula="channel_shuffle")
def _channel_shuffle(m: nn.ChannelShuffle, args: tuple, kwargs: dict) -> FormulaCall:
    return FormulaCall("channel_shuffle", (shape_of(_input(args, kwargs)), m.groups))


@module_handler(nn.PixelShuffle, nn.PixelUnshuffle, formula="copy")
def _pixel_shuffle(m: nn.Module, args: tuple, kwargs: dict) -> FormulaCall:
    x = _input(args, kwargs)
    r = int(getattr(m, "upscale_factor", None) or getattr(m, "downscale_factor"))
    *lead, c, h, w = shape_of(x)
    up = isinstance(m, nn.PixelShuffle)
    if up and c % (r * r) or not up and (h % r or w % r):
        raise ShapeError(f"{'pixel shuffle' if up else 'pixel unshuffle'} by {r} does not fit input {tuple(x.shape)}")
    out = (*lead, c // (r * r), h * r, w * r) if up else (*lead, c * r * r, h // r, w // r)
    return FormulaCall("copy", (out,), dict(op="pixel_shuffle"))


@module_handler(nn.MultiheadAttention, formula="mha", helpers=("merge_masks",))
def _mha(m: nn.MultiheadAttention, args: tuple, kwargs: dict) -> FormulaCall:
    q, k, v = (arg(args, kwargs, i, n) for i, n in enumerate(("query", "key", "value")))
    for what, t, width in (("query", q, m.embed_dim), ("key", k, m.kdim), ("value", v, m.vdim)):
        if t.shape[-1] != width:
            raise ShapeError(f"expects {what} features {width}, got {what} {tuple(t.shape)}")
    return FormulaCall("mha", (shape_of(q), shape_of(k), shape_of(v), m.embed_dim, m.num_heads),
                       dict(kdim=m.kdim, vdim=m.vdim, bias=m.in_proj_bias is not None,
                            add_bias_kv=m.bias_k is not None, add_zero_attn=m.add_zero_attn,
                            batch_first=m.batch_first, packed=q is k and k is v))


@module_handler(nn.RNN, nn.LSTM, nn.GRU, formula="rnn",
                helpers=("_update_flat_weights", "check_forward_args", "permute_hidden"))
def _rnn(m: nn.RNNBase, args: tuple, kwargs: dict) -> FormulaCall:
    x = _input(args, kwargs)
    packed = isinstance(x, PackedSequence)
    data = x.data if packed else x
    return FormulaCall("rnn", (shape_of(data), m.input_size, m.hidden_size), dict(
        mode=m.mode, num_layers=m.num_layers, bidirectional=m.bidirectional, proj_size=getattr(m, "proj_size", 0),
        bias=m.bias, batch_first=m.batch_first, packed_batch=int(x.batch_sizes[0]) if packed else None))


@module_handler({nn.LSTMCell: {"mode": "LSTM"}, nn.GRUCell: {"mode": "GRU"}, nn.RNNCell: {}}, formula="rnn_cell")
def _rnn_cell(m: nn.RNNCellBase, args: tuple, kwargs: dict, mode: str | None = None) -> FormulaCall:
    cell_mode = mode or ("RNN_TANH" if m.nonlinearity == "tanh" else "RNN_RELU")
    return FormulaCall("rnn_cell", (shape_of(_input(args, kwargs)), m.input_size, m.hidden_size),
                       dict(mode=cell_mode, bias=m.bias))


@module_handler(nn.Embedding, formula="embedding")
def _embedding(m: nn.Embedding, args: tuple, kwargs: dict) -> FormulaCall:
    x = _input(args, kwargs)
    if x.is_floating_point() or x.is_complex():
        raise ShapeError(f"embedding indices must be integers, got {x.dtype}")
    return FormulaCall("embedding", (shape_of(x), m.num_embeddings, m.embedding_dim))


@module_handler(nn.EmbeddingBag, formula="embedding")
def _embedding_bag(m: nn.EmbeddingBag, args: tuple, kwargs: dict) -> FormulaCall:
    x, offsets = _input(args, kwargs), arg(args, kwargs, 1, "offsets")
    bags = x.shape[0] if x.dim() == 2 else offsets.shape[0] - int(m.include_last_offset)
    return FormulaCall("embedding", (shape_of(x), m.num_embeddings, m.embedding_dim), dict(mode=m.mode, bags=bags))


@module_handler(nn.Fold, formula="fold")
def _fold(m: nn.Fold, args: tuple, kwargs: dict) -> FormulaCall:
    return FormulaCall("fold", (shape_of(_input(args, kwargs)), m.output_size, m.kernel_size),
                       dict(dilation=m.dilation, padding=m.padding, stride=m.stride))
