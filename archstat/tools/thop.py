"""thop's ``profile``: how to run it, what it counts, and where it is wrong.

thop counts ``nn.Module`` layers by exact class (``type(m) in register_hooks``): a
subclass, and every functional call, is invisible to it. Multiply-adds without bias, plus
per-element rates for the norm, pooling, softmax and upsampling modules it has rules for.

Read from ``thop/profile.py``, ``vision/basic_hooks.py`` and ``vision/calc_func.py`` of
:data:`CHECKED` and pinned by ``tests/crosscheck``. Known to be wrong by its own rules: a
transposed convolution is counted at its output size instead of its input size (flagged
by ``archstat check``); no rule for ``nn.MultiheadAttention``.
"""

from __future__ import annotations

import copy
import importlib
from math import prod
from typing import TYPE_CHECKING

import torch
from torch import nn

from archstat.counting.stats import format_shape
from archstat.tools.base import Cause, Layer, Miscount, Tool, ToolResult, own_counts, plain_madds
from archstat.tools.rules import Convention, Parts, module_rules, multiply_adds, out_elements, rate, with_type

if TYPE_CHECKING:
    from archstat.counting.stats import OpRecord

__all__ = ["CHECKED", "CONVENTION", "TOOL"]

#: The release these rules and miscounts were read from and checked against.
CHECKED = "thop 0.1.1-2209072238"


def _adaptive_avg(record: "OpRecord") -> int:
    """thop: ``int((prod(in_i / out_i) + 1) * numel(out))`` in floating point, as thop computes it."""
    assert record.call is not None  # a counted record
    spatial_in, spatial_out = record.call.args[0][2:], record.output_shape[2:]
    kernel = prod(i / o for i, o in zip(spatial_in, spatial_out))
    return int((kernel + 1) * out_elements(record))


_UPSAMPLE = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 259}


def _upsample(record: "OpRecord") -> int:
    """thop: a per-output-element rate by interpolation mode (0 for a mode it has no rate for)."""
    assert record.call is not None  # a counted record
    return out_elements(record) * _UPSAMPLE.get(record.call.kwargs.get("mode", "nearest"), 0)


#: Per-element rates of thop's module rules, by exact class.
_MODULES = module_rules({
    (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm, nn.InstanceNorm1d,
     nn.InstanceNorm2d, nn.InstanceNorm3d): rate(2, affine=4),
    (nn.PReLU,): rate(1),
    (nn.Softmax,): rate(3),  # exp, add, divide per element (thop's n - 1 adds per row: -1 per row not modelled)
    (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d): rate(1, of="output"),
    (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d): _adaptive_avg,
    (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d): _upsample,
})


def _rule(record: "OpRecord") -> Parts:
    parts = multiply_adds(record, bias=False)
    if parts or record.call is None:
        return parts
    rule = _MODULES.get(record.module_class) if record.module_class is not None else None
    return with_type(record, rule(record)) if rule else {}


CONVENTION = Convention(
    "thop", "thop.profile", "MACs", 1,
    "multiply-adds (no bias) of the nn.Module classes it has rules for, plus norm, pooling, softmax and upsampling "
    "work of those modules; functional calls are invisible to it",
    ("batch / layer / instance norm: 2 per element, 4 if affine (group norm: no rule, 0)",
     "avg pool: 1 per output element; adaptive avg pool: (in/out window + 1) per output element",
     "nn.Softmax: 3 per element; nn.PReLU: 1 per element; ReLU, ReLU6, LeakyReLU, max pool: 0",
     "nn.Upsample: nearest 1, linear 5, bilinear 11, bicubic 259 per output element"),
    _rule)


def _first_shape(shape: tuple) -> tuple:
    return shape[0] if shape and isinstance(shape[0], tuple) else shape


def _transposed_output_size(layer: Layer, r: "OpRecord", right: int) -> Cause | None:
    """thop's ConvTranspose rule: ``numel(output) * C_in/g * k`` instead of ``numel(input) * C_out/g * k``."""
    assert r.call is not None  # the diagnoses try counted records only
    if r.call.formula != "conv_transpose":
        return None
    madds = plain_madds(r)
    out = _first_shape(r.output_shape)
    i, o = prod(r.call.args[0][2:]), prod(out[2:])
    if i == o:
        return None
    return Cause(madds // i * o - madds, r,
                 f"multiplies the kernel work of the transposed conv by its {o:,} output positions "
                 f"({format_shape(out[2:])}) instead of its {i:,} input positions "
                 f"({format_shape(r.call.args[0][2:])}), x{o / i:g}: a transposed conv does C_out/g x k multiply-adds "
                 f"per input element")


def _flatten(layers: dict, prefix: str, out: dict[str, float]) -> None:
    for name, (ops, _params, children) in layers.items():
        qualified = f"{prefix}{name}"
        out[qualified] = float(ops)
        _flatten(children, qualified + ".", out)


def _run(tool: Tool, model: nn.Module, x: torch.Tensor) -> ToolResult:
    thop = importlib.import_module("thop")
    from thop.profile import register_hooks  # type: ignore[import-untyped]

    work = copy.deepcopy(model)  # thop leaves total_ops buffers on modules it has no rule for
    total, _params, layers = thop.profile(work, inputs=(x,), verbose=False, ret_layer_info=True)
    aggregated = {"": float(total)}
    _flatten(layers, "", aggregated)
    modules = dict(work.named_modules())
    no_rule = {name: type(m).__name__ for name, m in modules.items() if type(m) not in register_hooks}
    own = own_counts(aggregated, modules)
    by_type: dict[str, float] = {}
    for name, value in own.items():
        kind = type(modules[name]).__name__
        by_type[kind] = by_type.get(kind, 0) + value
    return ToolResult(tool.name, tool.version, tool.reports, float(total), float(total), own, by_type,
                      no_rule=no_rule)


TOOL = Tool("thop", "thop", "thop", CONVENTION.name, "MACs", _run, CHECKED, sees="nn.Module layers",
            miscounts=(Miscount(_transposed_output_size, CHECKED),))
