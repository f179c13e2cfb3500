"""Runners for the other counters: fvcore, thop, torch's FlopCounterMode and ptflops.

Each runner takes a real model (random weights, eval mode) and an input tensor, runs
one tool the way its documentation says to, under ``torch.no_grad()`` (inference, as
archstat counts), and returns a :class:`ToolResult`: the tool's total as it reports it,
the same in multiply-add equivalents, and the tool's *own* per-module and per-op
counts, from which :mod:`archstat.crosscheck.reconcile` explains every difference.

Every tool is optional: :meth:`Tool.unavailable` says why one cannot run (not
installed) and the others still do. thop and ptflops store their counters on the
modules they count (thop's ``total_ops`` buffers, ptflops's ``__flops__`` attributes
and, for ptflops, patched ``torch.nn.functional`` functions while it runs): each of
them runs on its own deep copy of the model, never on the model it was given.
"""

from __future__ import annotations

import copy
import importlib
import io
import types
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from typing import Any, Callable, Iterable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["Tool", "ToolResult", "TOOLS", "own_counts"]


@dataclass
class ToolResult:
    """What one tool reported for one model and input.

    ``raw_total`` is the tool's own figure in its own unit; ``total`` is the same in
    multiply-add equivalents for the whole input (FlopCounterMode's FLOPs / 2).
    ``own`` maps a module's qualified name (``""`` for the root) to the multiply-add
    equivalents the tool counted in that module itself, not in its submodules.
    ``by_op`` is the tool's own breakdown by its op names; ``skipped`` lists, per module,
    ops the tool met there and did not count; ``detail`` splits a module's count by where
    it came from (ptflops: module hook vs patched functions); ``rules`` maps module names
    to the class of modules the tool has no rule for.
    """

    tool: str
    version: str
    reports: str
    raw_total: float
    total: float
    own: dict[str, float] = field(default_factory=dict)
    by_op: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, Counter] = field(default_factory=dict)
    detail: dict[str, dict[str, float]] = field(default_factory=dict)
    no_rule: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _import(name: str) -> Any:
    return importlib.import_module(name)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown version"


@dataclass(frozen=True)
class Tool:
    """One counter: the module it needs, the convention it follows, and its runner."""

    name: str
    package: str
    distribution: str
    convention: str
    reports: str
    runner: Callable[["Tool", nn.Module, torch.Tensor], ToolResult]

    def unavailable(self) -> str | None:
        """Why the tool cannot run here (``None`` when it can)."""
        try:
            _import(self.package)
        except ImportError as exc:
            return f"not installed ({exc}); pip install {self.distribution} (or archstat[crosscheck])"
        return None

    def run(self, model: nn.Module, x: torch.Tensor) -> ToolResult:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.runner(self, model, x)

    @property
    def version(self) -> str:
        return _version(self.distribution)


def own_counts(aggregated: dict[str, float], names: Iterable[str]) -> dict[str, float]:
    """Per-module counts that include submodules -> each module's own share.

    ``names`` are the model's qualified module names (``""`` for the root): a module's own
    count is its aggregate minus its direct children's aggregates.
    """
    names = list(names)
    children: dict[str, list[str]] = defaultdict(list)
    for name in names:
        if name:
            children[name.rpartition(".")[0]].append(name)
    return {name: aggregated.get(name, 0) - sum(aggregated.get(c, 0) for c in children[name]) for name in names
            if aggregated.get(name, 0) or any(aggregated.get(c, 0) for c in children[name])}


def _module_names(model: nn.Module) -> list[str]:
    return [name for name, _ in model.named_modules()]


# --------------------------------------------------------------------------- fvcore


def _run_fvcore(tool: Tool, model: nn.Module, x: torch.Tensor) -> ToolResult:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, (x,))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with torch.no_grad():
        aggregated = dict(analysis.by_module())
    names = [n for n in _module_names(model) if n in aggregated]
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


# --------------------------------------------------------------------------- thop


def _flatten_thop(layers: dict, prefix: str, out: dict[str, float]) -> None:
    for name, (ops, _params, children) in layers.items():
        qualified = f"{prefix}{name}"
        out[qualified] = float(ops)
        _flatten_thop(children, qualified + ".", out)


def _run_thop(tool: Tool, model: nn.Module, x: torch.Tensor) -> ToolResult:
    thop = _import("thop")
    from thop.profile import register_hooks

    work = copy.deepcopy(model)  # thop leaves total_ops buffers on modules it has no rule for
    total, _params, layers = thop.profile(work, inputs=(x,), verbose=False, ret_layer_info=True)
    aggregated = {"": float(total)}
    _flatten_thop(layers, "", aggregated)
    modules = dict(work.named_modules())
    no_rule = {name: type(m).__name__ for name, m in modules.items() if type(m) not in register_hooks}
    own = own_counts(aggregated, modules)
    by_type: Counter = Counter()
    for name, value in own.items():
        by_type[type(modules[name]).__name__] += value
    return ToolResult(tool.name, tool.version, tool.reports, float(total), float(total), own, dict(by_type),
                      no_rule=no_rule)


# --------------------------------------------------------------------------- torch


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


def _run_torch(tool: Tool, model: nn.Module, x: torch.Tensor) -> ToolResult:
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
    names = _module_names(model)
    own = own_counts(aggregated, names)
    flops = counter.get_total_flops()
    outside = flops / 2 - sum(own.values())
    if outside:
        own[""] = own.get("", 0) + outside  # counted outside the root module's forward
    skipped = {_strip_root(k, root) or "": v for k, v in unformulated.seen.items()}
    return ToolResult(tool.name, tool.version, tool.reports, float(flops), flops / 2, own,
                      {str(op): v / 2 for op, v in counts.get("Global", {}).items()}, skipped)


# --------------------------------------------------------------------------- ptflops


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
                 by_module: dict[str, Counter] | None = None) -> None:
        self.stack, self.function = stack, function
        self.by_module: dict[str, Counter] = by_module if by_module is not None else defaultdict(Counter)

    def named(self, function: str) -> "_Collector":
        return _Collector(self.stack, function, self.by_module)

    def append(self, value: Any) -> None:
        module = self.stack.names[-1] if self.stack.names else ""
        self.by_module[module][self.function] += float(value)


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


def _run_ptflops(tool: Tool, model: nn.Module, x: torch.Tensor) -> ToolResult:
    engine = _import("ptflops.pytorch_engine")
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
            batches = max(work.__batch_counter__, 1)
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


#: The tools ``archstat check`` runs, in column order.
TOOLS: dict[str, Tool] = {t.name: t for t in (
    Tool("fvcore", "fvcore.nn", "fvcore", "fvcore", "flops (1 per multiply-add)", _run_fvcore),
    Tool("thop", "thop", "thop", "thop", "MACs", _run_thop),
    Tool("torch", "torch.utils.flop_counter", "torch", "torch", "FLOPs (2 per multiply-add)", _run_torch),
    Tool("ptflops", "ptflops.pytorch_engine", "ptflops", "ptflops", "MACs", _run_ptflops),
)}
