"""ptflops's ``get_model_complexity_info`` (its default "pytorch" backend): how to run it,
what it counts, and where it is wrong.

ptflops counts ``nn.Module`` layers by exact class through forward hooks, plus calls of
the torch functions it patches during the run (``F.relu``, ``F.gelu``, ``F.silu``,
``F.softmax``, the ``F.*pool*d`` functions, ``F.interpolate``, ``torch.matmul`` / ``mm`` /
``bmm`` ...). A module without a hook whose forward calls a patched function is counted
through it. Multiply-adds *with* bias additions, plus one per element of norms,
activations and pooling.

Read from ``pytorch_ops.py`` and ``pytorch_engine.py`` of :data:`CHECKED` and pinned by
``tests/crosscheck``. Known to be wrong by its own rules: a module whose hook counts it
and whose forward calls a patched function is counted twice (activations, pools), and
the broadcast batch of ``A @ B`` is dropped (flagged by ``archstat check``).
"""

from __future__ import annotations

import copy
import importlib
import io
import types
from collections import Counter, defaultdict
from functools import partial
from math import prod
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from archstat.tools.base import Cause, Layer, Miscount, Tool, ToolResult, broadcast_dropped
from archstat.tools.rules import Convention, Parts, module_rules, multiply_adds, rate, with_type

if TYPE_CHECKING:
    from archstat.counting.stats import OpRecord

__all__ = ["CHECKED", "CONVENTION", "TOOL"]

#: The release these rules and miscounts were read from and checked against.
CHECKED = "ptflops 0.7.5"

#: Per-element rates of ptflops's module hooks, by exact class.
_MODULES = module_rules({
    (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
     nn.GroupNorm): rate(1, affine=2),
    (nn.LayerNorm,): rate(1),  # its hook doubles for `affine`, an attribute LayerNorm does not have
    (nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Softmax, nn.Softmax2d):
        rate(1, of="output"),
    (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveMaxPool1d,
     nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d):
        rate(1),
    (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d): rate(1, of="output"),
})

#: Per-element rates of the torch functions it patches.
_FUNCTIONS = {name: rate(1) for name in (
    "relu", "prelu", "elu", "relu6", "gelu", "silu", "softmax",
    *(f"{kind}_pool{nd}d" for kind in ("max", "avg", "adaptive_avg", "adaptive_max") for nd in (1, 2, 3)))}
_FUNCTIONS.update(interpolate=rate(1, of="output"), upsample=rate(1, of="output"))


def _attention(record: "OpRecord") -> Parts:
    """ptflops's nn.MultiheadAttention hook: projections and attention with their biases,
    plus one per attention score (softmax) and one per query element (the q scaling)."""
    assert record.call is not None  # a counted record
    parts = multiply_adds(record, bias=True)
    plain = record.call.evaluate(count_bias=False).cost
    parts["attention softmax"] = plain.flops - 2 * plain.madds
    parts["attention q scaling"] = prod(record.call.args[0])
    return parts


def _rule(record: "OpRecord") -> Parts:
    if record.call is None:
        return {}
    if record.call.formula == "mha":
        return _attention(record)
    parts = multiply_adds(record, bias=True)
    if parts:
        return parts
    rule = _MODULES.get(record.module_class) if record.module_class is not None else _FUNCTIONS.get(record.type)
    return with_type(record, rule(record)) if rule else {}


CONVENTION = Convention(
    "ptflops", "ptflops.get_model_complexity_info (pytorch backend)", "MACs", 1,
    "multiply-adds with bias additions, plus 1 per element of norms, activations and pooling",
    ("bias: 1 per output element of conv, linear and attention projections",
     "batch / group / instance norm: 1 per element, 2 if affine; layer norm: 1 per element",
     "ReLU, PReLU, ELU, LeakyReLU, ReLU6, GELU, SiLU, softmax: 1 per element",
     "max / avg / adaptive pooling: 1 per input element; upsample: 1 per output element",
     "nn.MultiheadAttention: also 1 per attention score and 1 per query element",
     "x + y, x * y and other operators: 0 (only named torch.add / torch.mul calls are patched)"),
    _rule)


def _counted_twice(layer: Layer, main: "OpRecord", right: int) -> Cause | None:
    """The module hook and a patched function inside its forward both count the layer."""
    if right <= 0:
        return None
    sources = {k: v for k, v in layer.result.detail.get(layer.name, {}).items() if v}
    how = " + ".join(f"{v:,.0f} by {k}" for k, v in sources.items())
    return Cause(right, main, "counts it twice" + (f": {how}" if len(sources) > 1 else ""))


class _ModuleStack:
    """Forward pre/post hooks on a (copied) model that keep the running module's name."""

    def __init__(self, model: nn.Module) -> None:
        self.names: list[str] = []
        self.handles = []
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(partial(self._enter, name)))
            self.handles.append(module.register_forward_hook(self._leave))

    def _enter(self, name: str, module: nn.Module, args: tuple) -> None:
        self.names.append(name)

    def _leave(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.names.pop()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


class _Collector:
    """Stands in for ptflops's list of functional counts: each patched function gets its own
    (see :func:`_name_collectors`), which attributes a count to the module running it."""

    def __init__(self, stack: _ModuleStack, function: str = "patched functions",
                 by_module: dict[str, dict[str, float]] | None = None) -> None:
        self.stack, self.function = stack, function
        self.by_module: dict[str, dict[str, float]] = by_module if by_module is not None else defaultdict(dict)

    def named(self, function: str) -> "_Collector":
        return _Collector(self.stack, function, self.by_module)

    def append(self, value: Any) -> None:
        module = self.stack.names[-1] if self.stack.names else ""
        counts = self.by_module[module]
        counts[self.function] = counts.get(self.function, 0) + float(value)


def _name_collectors(engine: Any, collector: _Collector) -> None:
    """Give every function ptflops patched a collector named after it (``F.relu``,
    ``Tensor.matmul``), so a count says which function made it."""
    for owner, prefix in ((torch.nn.functional, "F."), (torch, "torch."), (torch.Tensor, "Tensor.")):
        for attr, value in list(vars(owner).items()):
            cells = value.__closure__ or () if isinstance(value, types.FunctionType) else ()
            wrapper = value if isinstance(value, engine.torch_function_wrapper) else next(
                (c.cell_contents for c in cells if isinstance(c.cell_contents, engine.torch_function_wrapper)), None)
            if wrapper is not None:
                wrapper.collector = collector.named(prefix + attr)


def _run(tool: Tool, model: nn.Module, x: torch.Tensor) -> ToolResult:
    engine = importlib.import_module("ptflops.pytorch_engine")
    work = copy.deepcopy(model).eval()  # ptflops sets attributes on the modules it counts
    stack = _ModuleStack(work)
    collector = _Collector(stack)
    counted = engine.add_flops_counting_methods(work)
    counted.start_flops_count(ost=io.StringIO(), verbose=False, ignore_list=[])
    engine.patch_functional(collector)
    try:
        engine.patch_tensor_ops(collector)
        try:
            _name_collectors(engine, collector)
            with torch.no_grad():
                work(x)
            hooked = {name: float(m.__flops__) for name, m in work.named_modules() if engine.is_supported_instance(m)}
            batches = max(cast(int, work.__batch_counter__), 1)  # the batch size ptflops counted
        finally:
            engine.unpatch_tensor_ops()
    finally:
        engine.unpatch_functional()
        counted.stop_flops_count()
        stack.remove()
    functional = {n: sum(c.values()) for n, c in collector.by_module.items()}
    own = {n: hooked.get(n, 0.0) + functional.get(n, 0.0) for n in set(hooked) | set(functional)}
    detail = {n: {**({"its module hook": hooked[n]} if n in hooked else {}), **collector.by_module.get(n, {})}
              for n in own}
    raw = sum(hooked.values()) / batches + sum(functional.values())
    notes = [] if batches == 1 else [f"ptflops divides its module-hook counts by the batch size ({batches}) and not "
                                     f"its functional counts: it reports {raw:,.0f}; the per-batch sum is used here"]
    by_op: Counter = Counter({"module hooks": sum(hooked.values())})
    for c in collector.by_module.values():
        by_op.update(c)
    no_rule = {name: type(m).__name__ for name, m in work.named_modules() if not engine.is_supported_instance(m)}
    return ToolResult(tool.name, tool.version, tool.reports, raw, sum(own.values()), own, dict(by_op),
                      detail=detail, no_rule=no_rule, notes=notes)


TOOL = Tool("ptflops", "ptflops.pytorch_engine", "ptflops", CONVENTION.name, "MACs", _run, CHECKED,
            sees="nn.Module layers and the torch functions it patches",
            miscounts=(Miscount(_counted_twice, CHECKED, whole_layer=True), Miscount(broadcast_dropped, CHECKED)))
