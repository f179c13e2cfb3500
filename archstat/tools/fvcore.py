"""fvcore's ``FlopCountAnalysis``: how to run it, what it counts, and where it is wrong.

fvcore counts by aten op on a JIT trace: multiply-adds without bias; ``aten::batch_norm``
2 per element in eval mode when affine (1 without), and in training mode (batch
statistics, as weight standardisation computes them on a conv's weight) 5 per element
when affine (4 without), like layer / group / instance norm; 1 per input element of
``aten::adaptive_avg_pool2d``, 1 per output element of ``aten::upsample_nearest2d`` and 4
of ``aten::upsample_bilinear2d``; nothing else (``aten::lstm``, ``aten::gru``: no handle).

Read from ``fvcore/nn/flop_count.py`` and ``jit_handles.py`` of :data:`CHECKED` and
pinned by ``tests/crosscheck``. Known to be wrong by its own rules: convolutions given
``padding="same"``/``"valid"`` are dropped (a :class:`~archstat.tools.rules.KnownBug` its
convention reproduces); the broadcast batch of ``A @ B`` is dropped and einsum costs come
from numpy's rounded printout (:data:`TOOL`'s miscounts, flagged by ``archstat check``).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

import torch
from torch import nn

from archstat.tools.base import Cause, Layer, Miscount, Tool, ToolResult, broadcast_dropped, module_names, \
    own_counts, plain_madds
from archstat.tools.rules import Convention, KnownBug, Parts, in_elements, multiply_adds, out_elements, rate, \
    with_type

if TYPE_CHECKING:
    from archstat.counting.stats import OpRecord

__all__ = ["CHECKED", "CONVENTION", "TOOL"]

#: The release these rules and miscounts were read from and checked against.
CHECKED = "fvcore 0.1.5.post20221221"

_INTERPOLATION = {"nearest": 1, "bilinear": 4}


def _rule(record: "OpRecord") -> Parts:
    call, category = record.call, record.category
    if call is None or category is None or call.formula in ("rnn", "rnn_cell"):
        return {}
    parts = multiply_adds(record, bias=False)
    if parts:
        return parts
    if category.op == "batch_norm" and not call.kwargs.get("training", False):
        value = rate(1, affine=2)(record)
    elif category.op in ("batch_norm", "instance_norm", "group_norm", "layer_norm"):
        value = rate(4, affine=5)(record)
    elif category.op == "adaptive_avg_pool" and call.kwargs.get("spatial_dims") == 2:
        value = in_elements(record)
    elif call.formula == "interpolate" and len(record.output_shape) == 4:
        value = out_elements(record) * _INTERPOLATION.get(call.kwargs.get("mode", "nearest"), 0)
    else:
        value = 0
    return with_type(record, value)


def _string_padding(record: "OpRecord") -> bool:
    """A convolution given ``padding="same"`` or ``"valid"``: traced as aten::_convolution_mode."""
    return record.call is not None and record.call.formula == "conv" and isinstance(
        record.call.kwargs.get("padding"), str)


CONVENTION = Convention(
    "fvcore", "fvcore.nn.FlopCountAnalysis", "flops, 1 per multiply-add", 1,
    "multiply-adds (no bias) plus norm, adaptive-average-pool and upsampling work",
    ("batch norm (eval): 2 per element if affine, else 1",
     "layer / group / instance norm: 5 per element if affine, else 4",
     "aten::adaptive_avg_pool2d: 1 per input element", "upsample: nearest 1, bilinear 4 per output element",
     "batch norm in training mode (batch statistics, weight standardisation): 5 per element if affine, else 4",
     "activations, max/avg pooling, element-wise ops, recurrent layers: 0 (unsupported or ignored operators)",
     "convolutions with padding='same' or 'valid': 0 (a known bug, flagged by check)"),
    _rule,
    (KnownBug(_string_padding, "drops the convolution: padding='same' / 'valid' traces as aten::_convolution_mode, "
                               "which has no handle in fvcore", CHECKED),))


def _numpy_einsum_count(equation: str, shapes: tuple) -> float | None:
    """fvcore's count for a general einsum: numpy's printed "Optimized FLOP count" / 2."""
    import numpy as np

    operands = [np.broadcast_to(np.zeros(()), s) for s in shapes]
    report = np.einsum_path(equation.replace(" ", ""), *operands, optimize="optimal")[1]
    found = re.search(r"optimized flop count:\s*([0-9.eE+-]+)", report, re.IGNORECASE)
    return float(np.floor(float(found.group(1)) / 2)) if found else None


def _einsum_from_numpy(layer: Layer, r: "OpRecord", right: int) -> Cause | None:
    assert r.call is not None  # the diagnoses try counted records only
    if r.call.formula != "einsum":
        return None
    counted, madds = _numpy_einsum_count(r.call.args[0], r.call.args[1:]), plain_madds(r)
    if counted is None or counted == madds:
        return None
    return Cause(counted - madds, r,
                 f"takes einsum {r.call.args[0]!r} ({madds:,} multiply-adds) from the FLOP count numpy.einsum_path "
                 f"prints, to 4 significant digits, halved: {counted:,.0f}")


def _run(tool: Tool, model: nn.Module, x: torch.Tensor) -> ToolResult:
    from fvcore.nn import FlopCountAnalysis  # type: ignore[import-untyped]

    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with torch.no_grad():
        aggregated = dict(analysis.by_module())
    names = [n for n in module_names(model) if n in aggregated]
    unsupported = {n: analysis.unsupported_ops(n) for n in names}
    skipped = {}
    for name in names:
        own = Counter(unsupported[name])
        for child in (c for c in names if c and c.rpartition(".")[0] == name):
            own.subtract(unsupported[child])
        if +own:
            skipped[name] = +own
    total = float(analysis.total())
    return ToolResult(tool.name, tool.version, tool.reports, total, total, own_counts(aggregated, names),
                      {k: float(v) for k, v in analysis.by_operator().items()}, skipped)


TOOL = Tool("fvcore", "fvcore.nn", "fvcore", CONVENTION.name, "flops (1 per multiply-add)", _run, CHECKED,
            miscounts=(Miscount(broadcast_dropped, CHECKED), Miscount(_einsum_from_numpy, CHECKED)))
