"""torch's ``FlopCounterMode``: how to run it, what it counts, and where it is wrong.

``FlopCounterMode`` reports 2 FLOPs per multiply-add of aten convolution, ``mm`` /
``addmm`` / ``bmm`` / ``baddbmm`` and scaled-dot-product attention, and nothing for
bias or any other op. It sees every aten op, functional calls included.

Read from ``torch/utils/flop_counter.py`` of :data:`CHECKED` and pinned by
``tests/crosscheck``. It has no formula for ``nn.MultiheadAttention``'s fused inference
path, the CPU kernel of ``F.scaled_dot_product_attention`` or a broadcast ``aten.mul``
(an outer-product einsum): those ops count 0, which the reconciliation names from the
aten ops it recorded as skipped (:func:`~archstat.tools.base.not_counted`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from archstat.tools.base import Tool, ToolResult, module_names, own_counts
from archstat.tools.rules import Convention, KnownBug, multiply_adds_only

if TYPE_CHECKING:
    from archstat.counting.stats import OpRecord
    from archstat.formulas.training import Backward

__all__ = ["CHECKED", "CONVENTION", "TOOL"]

#: The release these rules were read from and checked against.
CHECKED = "torch 2.14.1"

def _recurrent(record: "OpRecord") -> bool:
    """A recurrent layer: on the CPU torch runs it as ``aten.mkldnn_rnn_layer`` (oneDNN)."""
    return record.call is not None and record.call.formula in ("rnn", "rnn_cell")


def _grouped_weight_gradients(record: "OpRecord") -> "Backward | None":
    """FlopCounterMode's ``convolution_backward`` rule computes a grouped convolution's weight
    gradient as if the convolution were dense: ``groups`` times its multiply-adds
    (pytorch#183405, fixed after 2.14). Reproduced so a training count under the ``torch``
    convention gives what FlopCounterMode gives."""
    back, call = record.backward, record.call
    if back is None or call is None or call.formula not in ("conv", "conv_transpose"):
        return back
    groups = int(call.kwargs.get("groups", 1))
    if groups == 1 or not back.weight_madds:
        return back
    weight = back.weight_madds * groups
    return replace(back, weight_madds=weight, flops=back.flops + 2 * (weight - back.weight_madds))


CONVENTION = Convention(
    "torch", "torch.utils.flop_counter.FlopCounterMode", "FLOPs, 2 per multiply-add", 2,
    "2 FLOPs per multiply-add of aten convolution, mm/addmm/bmm/baddbmm and scaled-dot-product attention; bias "
    "and everything else 0",
    ("madds-equivalent = its FLOPs / 2",
     "backward (a training count): the gradients' multiply-adds, a grouped convolution's weight gradient "
     "counted groups times (a known bug)",
     "recurrent layers on the CPU: 0 (a known bug)"), multiply_adds_only,
    (KnownBug(_recurrent, "drops the recurrent layer: on the CPU it runs as aten.mkldnn_rnn_layer, which has no "
                          "FLOP formula", CHECKED),),
    _grouped_weight_gradients)


class _Unformulated(TorchDispatchMode):
    """Records, per innermost module, the aten ops FlopCounterMode has no formula for."""

    def __init__(self, counter: Any) -> None:
        super().__init__()
        self.counter = counter
        self.seen: dict[str, Counter] = defaultdict(Counter)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func._overloadpacket not in self.counter.flop_registry:
            parents = [p for p in self.counter.mod_tracker.parents if p != "Global"]
            innermost = max(parents, key=lambda p: p.count("."), default="")
            self.seen[innermost][str(func._overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def _strip_root(key: str, root: str) -> str | None:
    if key == root:
        return ""
    return key[len(root) + 1:] if key.startswith(root + ".") else None


def _run(tool: Tool, model: nn.Module, x: torch.Tensor) -> ToolResult:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter, _Unformulated(counter) as unformulated:
        model(x)
    root = type(model).__name__
    counts = counter.get_flop_counts()
    aggregated = {}
    for key, ops in counts.items():
        name = _strip_root(key, root)
        if name is not None:
            aggregated[name] = sum(ops.values()) / 2
    own = own_counts(aggregated, module_names(model))
    flops = counter.get_total_flops()
    outside = flops / 2 - sum(own.values())
    if outside:
        own[""] = own.get("", 0) + outside  # counted outside the root module's forward
    skipped = {_strip_root(k, root) or "": v for k, v in unformulated.seen.items()}
    return ToolResult(tool.name, tool.version, tool.reports, float(flops), flops / 2, own,
                      {str(op): v / 2 for op, v in counts.get("Global", {}).items()}, skipped)


TOOL = Tool("torch", "torch.utils.flop_counter", "torch", CONVENTION.name, "FLOPs (2 per multiply-add)", _run, CHECKED)
