"""What every external counter module provides: a :class:`Tool` (how to run it) and the
:class:`Miscount` s it is known for (how :mod:`archstat.crosscheck.reconcile` recognises them).

Each runner takes a real model (random weights, eval mode) and an input tensor, runs one
tool the way its documentation says to, under ``torch.no_grad()`` (inference, as archstat
counts), and returns a :class:`ToolResult`: the tool's total as it reports it, the same in
multiply-add equivalents, and the tool's *own* per-module and per-op counts, from which
the reconciliation explains every difference. Every tool is optional:
:meth:`Tool.unavailable` says why one cannot run (not installed) and the others still do.

A miscount is a layer a tool counts wrong by its own rules; the reconciliation tries a
tool's miscounts (and :func:`not_counted`, which any tool can show) on every layer where
the tool's count and its convention disagree, and flags the layer with the cause whose
difference is the observed one.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from math import prod
from typing import TYPE_CHECKING, Callable, Iterable

import torch
from torch import nn

from archstat.counting.stats import format_shape
from archstat.tools.rules import MULTIPLY_ADD_TYPES

if TYPE_CHECKING:
    from archstat.counting.stats import OpRecord

__all__ = ["Tool", "ToolResult", "Miscount", "Layer", "Cause", "own_counts", "module_names", "plain_madds",
           "not_counted", "broadcast_dropped"]


@dataclass
class ToolResult:
    """What one tool reported for one model and input.

    ``raw_total`` is the tool's own figure in its own unit; ``total`` is the same in
    multiply-add equivalents for the whole input (FlopCounterMode's FLOPs / 2).
    ``own`` maps a module's qualified name (``""`` for the root) to the multiply-add
    equivalents the tool counted in that module itself, not in its submodules.
    ``by_op`` is the tool's own breakdown by its op names; ``skipped`` lists, per module,
    ops the tool met there and did not count; ``detail`` splits a module's count by where
    it came from (ptflops: module hook vs patched functions); ``no_rule`` maps module names
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


@dataclass(frozen=True)
class Layer:
    """One layer where a tool's count differs from its convention, as the diagnoses see it:
    archstat's records there, what the convention gives for each (``parts``), the tool's
    ``count`` and the convention's ``right`` total, and the tool's whole result."""

    tool: "Tool"
    name: str
    module_type: str
    records: list["OpRecord"]
    parts: list[dict[str, int]]
    count: float
    right: int
    result: ToolResult


@dataclass(frozen=True)
class Cause:
    """One way a layer's count can be off: ``delta`` multiply-add equivalents on ``record``.
    ``text`` may name ``{ops}``: the op types of every cause with the same text, joined."""

    delta: float
    record: "OpRecord"
    text: str


@dataclass(frozen=True)
class Miscount:
    """A way a tool counts a layer wrong by its own rules, as observed in version ``checked``.

    ``find(layer, record, right)`` returns the :class:`Cause` it would make of ``record``
    (whose convention total is ``right``), or None where it does not apply. A
    ``whole_layer`` miscount explains a layer alone (ptflops counting a module twice) and is
    tried first, on the layer's main record with ``right`` the layer's total.
    """

    find: Callable[[Layer, "OpRecord", int], Cause | None]
    checked: str
    whole_layer: bool = False


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown version"


@dataclass(frozen=True)
class Tool:
    """One counter: the module it needs, the convention it follows, its runner, the release
    its rules and miscounts were read from and checked against (``checked``: distribution and
    version as installed then), what it can see of a model when it cannot see functional calls
    (``sees``; empty for tools that trace every aten op), and its known miscounts."""

    name: str
    package: str
    distribution: str
    convention: str
    reports: str
    runner: Callable[["Tool", nn.Module, torch.Tensor], ToolResult]
    checked: str
    sees: str = ""
    miscounts: tuple[Miscount, ...] = ()

    def unavailable(self) -> str | None:
        """Why the tool cannot run here (``None`` when it can)."""
        try:
            importlib.import_module(self.package)
        except ImportError as exc:
            return f"not installed ({exc}); pip install {self.distribution} (or archstat[crosscheck])"
        return None

    def run(self, model: nn.Module, x: torch.Tensor) -> ToolResult:
        """The tool's count of ``model`` on ``x``; its notes say when the installed release is not
        the one the rules and miscounts were checked against."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = self.runner(self, model, x)
        installed = f"{self.distribution} {self.version}"
        if installed != self.checked:
            result.notes.append(f"its rules and known bugs were checked against {self.checked}, this is {installed}")
        return result

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


def module_names(model: nn.Module) -> list[str]:
    """The qualified names of every module of ``model`` (``""`` for the root)."""
    return [name for name, _ in model.named_modules()]


# --------------------------------------------------------------------------- diagnoses more than one tool shows


def plain_madds(record: "OpRecord") -> int:
    """The record's multiply-adds without bias, through its own formula."""
    assert record.call is not None  # a counted record
    return record.call.evaluate(count_bias=False).cost.madds


#: What the skipped ops seen most often are, for the diagnosis text.
_OP_NOTES = {
    "_native_multi_head_attention": "nn.MultiheadAttention's fused fast path, taken in eval mode without grad",
    "_scaled_dot_product_flash_attention_for_cpu": "the CPU kernel of F.scaled_dot_product_attention",
    "scaled_dot_product_attention": "F.scaled_dot_product_attention",
    "mul": "a broadcast multiply",
}
_HEAVY = ("attention", "conv", "mm", "linear", "matmul", "dot", "mv", "einsum", "outer", "mul")


def _skipped_ops(layer: Layer) -> list[str]:
    seen = layer.result.skipped.get(layer.name, Counter())
    heavy = [op for op in seen if any(h in op for h in _HEAVY)]
    heavy.sort(key=lambda op: next(i for i, h in enumerate(_HEAVY) if h in op))
    out = []
    for op in heavy[:3]:
        bare = re.sub(r"^aten(::|\.)", "", op)
        out.append(f"{op} ({_OP_NOTES[bare]})" if bare in _OP_NOTES else op)
    return out


def not_counted(layer: Layer, r: "OpRecord", right: int) -> Cause | None:
    """The tool counted none of a multiply-add op: it skipped the op (no formula for an aten op
    it reported), cannot see a functional call, or has no rule for the module."""
    assert r.call is not None  # the diagnoses try counted records only
    if r.call.formula not in MULTIPLY_ADD_TYPES or not right:
        return None
    skipped = _skipped_ops(layer)
    if skipped:
        text = f"skips {', '.join(skipped)}: no formula for it"
    elif r.module_class is None and layer.tool.sees:
        text = f"does not see the functional calls {{ops}}: it counts {layer.tool.sees}"
    elif r.module_class is not None and layer.name in layer.result.no_rule:
        text = f"has no rule for {layer.module_type}"
    else:
        text = f"does not count the {r.kind}"
    return Cause(-right, r, text)


def broadcast_dropped(layer: Layer, r: "OpRecord", right: int) -> Cause | None:
    """The matmul rule ``numel(A) * B.shape[-1]``, which drops batch dimensions only B has."""
    assert r.call is not None  # the diagnoses try counted records only
    if r.call.formula != "matmul":
        return None
    a, b = r.call.args
    naive = prod(a) * b[-1] - plain_madds(r)
    if not naive:
        return None
    return Cause(naive, r, f"counts matmul {format_shape(a)} @ {format_shape(b)} as numel(A) x B.shape[-1] = "
                           f"{prod(a):,} x {b[-1]}, dropping the batch dimensions only B has")
