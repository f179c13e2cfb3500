"""``count(..., verify=True)``: every layer recomputed from its module, without hooks.

The counter derives a layer's formula call as the layer's forward is entered
(:mod:`archstat.counting.handlers`), from the arguments the module is called with.
Verification walks the model's modules instead and, for every row the counter recorded
for a module, rebuilds the call from what the module itself holds (its weight shapes,
its stored hyper-parameters), the options its class was registered with (spatial
dimensions, pooling mode, activation) and the input shape the row recorded; it
evaluates the same formula and compares cost and output shape. Where the two disagree it
raises :class:`LayerMismatchError` naming the layer. It is a second derivation of the
*arguments*, not a second formula. It also checks that every parameter is counted
exactly once: in the row that first used it, or in ``unused_params``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.instancenorm import _InstanceNorm

from archstat.counting.build import build_structure
from archstat.counting.handlers import FormulaCall, handler_for_module
from archstat.counting.shadow import KEPT_HOOKS
from archstat.counting.stats import ModelStats, OpRecord, format_shape
from archstat.errors import ArchstatError

__all__ = ["verify_layers", "LayerMismatchError"]

#: A rebuilder takes a module of the class it is registered for (see :data:`REBUILDERS`).
Rebuild = Callable[[Any, OpRecord, Mapping[str, Any]], FormulaCall]


class LayerMismatchError(ArchstatError):
    """A layer's recorded cost differs from the cost recomputed from its module's attributes."""


def _conv(m: _ConvNd, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    w = tuple(m.weight.shape)  # (C_out, C_in/g, *k), or (C_in, C_out/g, *k) transposed
    x = r.input_shapes[0]
    nd = len(w) - 2
    if m.transposed:
        assert r.call is not None  # verify_layers rebuilds counted rows only
        # output_padding may come from forward's output_size, which no attribute holds
        return FormulaCall("conv_transpose", (x, w[1] * m.groups, w[2:]), dict(
            stride=m.stride, padding=m.padding, output_padding=r.call.kwargs["output_padding"], groups=m.groups,
            bias=m.bias is not None, dilation=m.dilation, in_channels=w[0], spatial_dims=nd))
    return FormulaCall("conv", (x, w[0], w[2:]), dict(stride=m.stride, padding=m.padding, dilation=m.dilation,
                                                       groups=m.groups, bias=m.bias is not None,
                                                       in_channels=w[1] * m.groups, spatial_dims=nd))


def _linear(m: nn.Linear, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    out_features, in_features = m.weight.shape
    return FormulaCall("linear", (r.input_shapes[0], in_features, out_features), dict(bias=m.bias is not None))


def _batch_norm(m: _BatchNorm, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    if r.input_shapes[0][1] != m.num_features:
        raise LayerMismatchError(f"verify: layer '{r.name}' normalises {m.num_features} channels, "
                                 f"its recorded input is {format_shape(r.input_shapes[0])}")
    assert r.call is not None  # verify_layers rebuilds counted rows only
    return FormulaCall("batch_norm", (r.input_shapes[0],), dict(
        affine=m.weight is not None, track_running_stats=m.running_mean is not None,
        training=r.call.kwargs.get("training", False)))


def _instance_norm(m: _InstanceNorm, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    return FormulaCall("batch_norm", (r.input_shapes[0],), dict(
        affine=m.weight is not None, track_running_stats=m.running_mean is not None, op="instance_norm",
        spatial_dims=m._get_no_batch_dim() - 1))


def _layer_norm(m: nn.LayerNorm, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    return FormulaCall("layer_norm", (r.input_shapes[0], tuple(m.normalized_shape)),
                       dict(elementwise_affine=m.weight is not None, bias=m.bias is not None))


def _group_norm(m: nn.GroupNorm, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    return FormulaCall("group_norm", (r.input_shapes[0], m.num_groups), dict(affine=m.weight is not None))


def _pool(m: nn.Module, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    mode = options["mode"]
    kwargs = dict(stride=m.stride, padding=m.padding, ceil_mode=m.ceil_mode, mode=mode,
                  spatial_dims=options["spatial_dims"])
    if mode == "max":
        kwargs["dilation"] = m.dilation
    return FormulaCall("pool", (r.input_shapes[0], m.kernel_size), kwargs)


def _adaptive_pool(m: nn.Module, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    return FormulaCall("adaptive_pool", (r.input_shapes[0], m.output_size),
                       dict(mode=options["mode"], spatial_dims=options["spatial_dims"]))


def _activation(m: nn.Module, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    return FormulaCall("elementwise", (options["op"], r.input_shapes[0]))


def _attention(m: nn.MultiheadAttention, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    q, k, v = r.input_shapes[:3]
    return FormulaCall("mha", (q, k, v, m.embed_dim, m.num_heads),
                       dict(kdim=m.kdim, vdim=m.vdim, bias=m.in_proj_bias is not None, add_bias_kv=m.bias_k is not None,
                            add_zero_attn=m.add_zero_attn, batch_first=m.batch_first))


def _recurrent(m: nn.RNNBase, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    w_ih = m.weight_ih_l0  # (gates * hidden, input_size)
    assert isinstance(w_ih, torch.Tensor)
    assert r.call is not None  # verify_layers rebuilds counted rows only
    return FormulaCall("rnn", (r.input_shapes[0], w_ih.shape[1], m.hidden_size), dict(
        mode=m.mode, num_layers=m.num_layers, bidirectional=m.bidirectional, proj_size=getattr(m, "proj_size", 0),
        bias=m.bias, batch_first=m.batch_first, packed_batch=r.call.kwargs.get("packed_batch")))


def _upsample(m: nn.Upsample, r: OpRecord, options: Mapping[str, Any]) -> FormulaCall:
    return FormulaCall("interpolate", (r.input_shapes[0],), dict(
        size=m.size, scale_factor=m.scale_factor, mode=m.mode, align_corners=m.align_corners,
        recompute_scale_factor=m.recompute_scale_factor))


#: Formulas whose module rows verification rebuilds, and how (keyed by the formula the
#: counter recorded, so a module class is matched by its registration, not its name).
REBUILDERS: dict[tuple[str, type], Rebuild] = {
    ("conv", _ConvNd): _conv, ("conv_transpose", _ConvNd): _conv, ("linear", nn.Linear): _linear,
    ("batch_norm", _BatchNorm): _batch_norm, ("batch_norm", _InstanceNorm): _instance_norm,
    ("layer_norm", nn.LayerNorm): _layer_norm, ("group_norm", nn.GroupNorm): _group_norm, ("pool", nn.Module): _pool,
    ("adaptive_pool", nn.Module): _adaptive_pool, ("elementwise", nn.Module): _activation,
    ("mha", nn.MultiheadAttention): _attention, ("rnn", nn.RNNBase): _recurrent,
    ("interpolate", nn.Upsample): _upsample,
}


def _rebuilder(module: nn.Module, formula: str) -> Rebuild | None:
    return next((fn for (name, cls), fn in REBUILDERS.items() if name == formula and isinstance(module, cls)), None)


def _derived_weights(module: nn.Module) -> bool:
    """Are ``module``'s weights computed from other parameters (``parametrize``, the old
    ``weight_norm`` / ``spectral_norm`` hooks)? Then it holds those, not the weights its formula
    counts, as the counter's rows do (the parameters are in the rows that compute the weights)."""
    return parametrize.is_parametrized(module) or any(isinstance(h, KEPT_HOOKS)
                                                      for h in module._forward_pre_hooks.values())


def _compare(r: OpRecord, module: nn.Module, call: FormulaCall, count_bias: bool) -> None:
    op = call.evaluate(count_bias=count_bias)
    recorded = {"madds": r.cost.madds, "flops": r.cost.flops, "mem_access": r.cost.mem_access,
                "output shape": format_shape(r.output_shape)}
    rebuilt = {"madds": op.cost.madds, "flops": op.cost.flops, "mem_access": op.cost.mem_access,
               "output shape": format_shape(op.output_shape)}
    held = sum(p.numel() for p in module.parameters())
    if op.cost.params != held and not _derived_weights(module):
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
    modules: dict[str, nn.Module] = dict(model.named_modules())
    checked = skipped = 0
    for r in stats.records:
        module = modules.get(r.module)
        if module is None or r.module_class is not type(module) or r.call is None:
            continue  # a functional op: no module attributes to rebuild it from
        rule = handler_for_module(module)
        rebuild = _rebuilder(module, r.call.formula) if rule is not None else None
        if rule is None or rebuild is None:
            skipped += 1
            continue
        _compare(r, module, rebuild(module, r, rule.options), count_bias)
        checked += 1
    counted = sum(r.cost.params for r in stats.records) + sum(stats.unused_params.values())
    if counted != stats.params:
        raise LayerMismatchError(f"verify: {stats.model}: the rows and unused_params hold {counted:,} parameters, "
                                 f"the model {stats.params:,}")
    other = f"; {skipped} of module types verification has no rebuilder for" if skipped else ""
    return f"verify: {checked} layers recomputed from their modules' attributes agree with the count{other}"
