"""``count(..., verify=True)``: every layer recomputed from its module, without hooks.

The counter derives a layer's formula call in a forward pre-hook
(:mod:`archstat.counting.handlers`). Verification walks the model's modules instead and,
for every row the counter recorded for a module, rebuilds the call from what the module
itself holds (its weight shapes, its stored hyper-parameters) and the input shape the
row recorded, evaluates the same formula and compares cost and output shape. Where the
two disagree it raises :class:`LayerMismatchError` naming the layer. It is a second
derivation of the *arguments*, not a second formula. It also checks that every parameter
is counted exactly once: in the row that first used it, or in ``unused_params``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.instancenorm import _InstanceNorm

from archstat.counting.build import build_structure
from archstat.counting.handlers import FormulaCall
from archstat.counting.stats import ModelStats, OpRecord, format_shape
from archstat.errors import ArchstatError

__all__ = ["verify_layers", "LayerMismatchError"]

Shape = tuple[int, ...]
Rebuild = Callable[[nn.Module, OpRecord], FormulaCall]


class LayerMismatchError(ArchstatError):
    """A layer's recorded cost differs from the cost recomputed from its module's attributes."""


def _batched(shape: Shape, spatial_dims: int) -> Shape:
    return (1, *shape) if len(shape) == spatial_dims + 1 else tuple(shape)


def _conv(m: _ConvNd, r: OpRecord) -> FormulaCall:
    w = tuple(m.weight.shape)  # (C_out, C_in/g, *k), or (C_in, C_out/g, *k) transposed
    x = _batched(r.input_shapes[0], len(w) - 2)
    if m.transposed:
        # output_padding may come from forward's output_size, which no attribute holds
        return FormulaCall("conv_transpose", (x, w[1] * m.groups, w[2:]),
                           dict(stride=m.stride, padding=m.padding, output_padding=r.call.kwargs["output_padding"],
                                groups=m.groups, bias=m.bias is not None, dilation=m.dilation))
    return FormulaCall("conv", (x, w[0], w[2:]), dict(stride=m.stride, padding=m.padding, dilation=m.dilation,
                                                       groups=m.groups, bias=m.bias is not None))


def _linear(m: nn.Linear, r: OpRecord) -> FormulaCall:
    out_features, in_features = m.weight.shape
    return FormulaCall("linear", (r.input_shapes[0], in_features, out_features), dict(bias=m.bias is not None))


def _batch_norm(m: _BatchNorm, r: OpRecord) -> FormulaCall:
    if r.input_shapes[0][1] != m.num_features:
        raise LayerMismatchError(f"verify: layer '{r.name}' normalises {m.num_features} channels, "
                                 f"its recorded input is {format_shape(r.input_shapes[0])}")
    return FormulaCall("batch_norm", (r.input_shapes[0],),
                       dict(affine=m.weight is not None, track_running_stats=m.running_mean is not None))


def _instance_norm(m: _InstanceNorm, r: OpRecord) -> FormulaCall:
    x = _batched(r.input_shapes[0], m._get_no_batch_dim() - 1)
    return FormulaCall("batch_norm", (x,), dict(affine=m.weight is not None,
                                                track_running_stats=m.running_mean is not None, kind="instance norm"))


def _layer_norm(m: nn.LayerNorm, r: OpRecord) -> FormulaCall:
    return FormulaCall("layer_norm", (r.input_shapes[0], tuple(m.normalized_shape)),
                       dict(elementwise_affine=m.weight is not None, bias=m.bias is not None))


def _group_norm(m: nn.GroupNorm, r: OpRecord) -> FormulaCall:
    return FormulaCall("group_norm", (r.input_shapes[0], m.num_groups), dict(affine=m.weight is not None))


def _pool(m: nn.Module, r: OpRecord) -> FormulaCall:
    nd, mode = int(type(m).__name__[-2]), "max" if "Max" in type(m).__name__ else "avg"
    options = dict(stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode, mode=mode, spatial_dims=nd)
    if mode == "max":
        options["dilation"] = m.dilation
    return FormulaCall("pool", (_batched(r.input_shapes[0], nd), m.kernel_size), options)


def _adaptive_pool(m: nn.Module, r: OpRecord) -> FormulaCall:
    nd, mode = int(type(m).__name__[-2]), "max" if "Max" in type(m).__name__ else "avg"
    return FormulaCall("adaptive_pool", (_batched(r.input_shapes[0], nd), m.output_size),
                       dict(mode=mode, spatial_dims=nd))


def _activation(m: nn.Module, r: OpRecord) -> FormulaCall:
    return FormulaCall("elementwise", (type(m).__name__.lower(), r.input_shapes[0]))


def _attention(m: nn.MultiheadAttention, r: OpRecord) -> FormulaCall:
    q, k, v = r.input_shapes[:3]
    return FormulaCall("mha", (q, k, v, m.embed_dim, m.num_heads),
                       dict(kdim=m.kdim, vdim=m.vdim, bias=m.in_proj_bias is not None, add_bias_kv=m.bias_k is not None,
                            add_zero_attn=m.add_zero_attn, batch_first=m.batch_first))


def _upsample(m: nn.Upsample, r: OpRecord) -> FormulaCall:
    return FormulaCall("interpolate", (r.input_shapes[0],), dict(size=m.size, scale_factor=m.scale_factor, mode=m.mode))


_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
             nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.Sigmoid, nn.Hardsigmoid,
                nn.Tanh, nn.Hardtanh, nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus, nn.Softsign, nn.Softmax,
                nn.LogSoftmax)

#: Module classes whose rows verification rebuilds, and how.
REBUILDERS: tuple[tuple[tuple[type, ...], Rebuild], ...] = (
    ((_ConvNd,), _conv), ((nn.Linear,), _linear), ((_BatchNorm,), _batch_norm), ((_InstanceNorm,), _instance_norm),
    ((nn.LayerNorm,), _layer_norm), ((nn.GroupNorm,), _group_norm), (_POOLS, _pool), (_ADAPTIVE, _adaptive_pool),
    (_ACTIVATIONS, _activation), ((nn.MultiheadAttention,), _attention), ((nn.Upsample,), _upsample),
)


def _rebuilder(module: nn.Module) -> Rebuild | None:
    return next((fn for classes, fn in REBUILDERS if isinstance(module, classes)), None)


def _compare(r: OpRecord, module: nn.Module, call: FormulaCall, count_bias: bool) -> None:
    op = call.evaluate(count_bias=count_bias)
    recorded = {"madds": r.cost.madds, "flops": r.cost.flops, "mem_access": r.cost.mem_access,
                "output shape": format_shape(r.output_shape)}
    rebuilt = {"madds": op.cost.madds, "flops": op.cost.flops, "mem_access": op.cost.mem_access,
               "output shape": format_shape(op.output_shape)}
    held = sum(p.numel() for p in module.parameters())
    if op.cost.params != held:
        recorded["params"], rebuilt["params"] = held, op.cost.params
    diffs = [f"{k} {recorded[k]} vs {rebuilt[k]}" for k in rebuilt if recorded[k] != rebuilt[k]]
    if diffs:
        raise LayerMismatchError(
            f"verify: layer '{r.name}' ({type(module).__name__}, input {format_shape(r.input_shapes)}): counted vs "
            f"recomputed from the module's attributes: {'; '.join(diffs)}")


def verify_layers(model_or_builder: nn.Module | Callable[[], nn.Module], stats: ModelStats,
                  count_bias: bool = False) -> str:
    """Recompute every module row of ``stats`` from ``model``'s modules; raise
    :class:`LayerMismatchError` at the first disagreement. Returns a one-line summary."""
    model = model_or_builder if isinstance(model_or_builder, nn.Module) else build_structure(model_or_builder)
    modules = dict(model.named_modules())
    checked = skipped = 0
    for r in stats.records:
        module = modules.get(r.module)
        if module is None or type(module).__name__ != r.type or r.call is None:
            continue  # a functional op: no module attributes to rebuild it from
        rebuild = _rebuilder(module)
        if rebuild is None:
            skipped += 1
            continue
        _compare(r, module, rebuild(module, r), count_bias)
        checked += 1
    counted = sum(r.cost.params for r in stats.records) + sum(stats.unused_params.values())
    if counted != stats.params:
        raise LayerMismatchError(f"verify: {stats.model}: the rows and unused_params hold {counted:,} parameters, "
                                 f"the model {stats.params:,}")
    other = f"; {skipped} of module types verification has no rebuilder for" if skipped else ""
    return f"verify: {checked} layers recomputed from their modules' attributes agree with the count{other}"
