"""How counters count: archstat's per-op records re-evaluated under each tool's rules.

fvcore, thop, ptflops, torch's ``FlopCounterMode`` and the papers agree on what one
multiply-add of a convolution or a matrix product is. They differ in

* **bias additions**: ptflops adds one per output element of a conv / linear layer;
  the others (and the papers, and torchvision's ``_ops``) do not;
* **the other work**: batch norm, activations, pooling, interpolation, each at a
  per-element rate of the tool's own (thop: 4 per element for an affine batch norm,
  fvcore 2, ptflops 2, torch and the papers 0);
* **units**: ``FlopCounterMode`` reports 2 FLOPs per multiply-add, the others one
  "MAC" or "flop" per multiply-add.

A :class:`~archstat.tools.rules.Convention` turns one
:class:`~archstat.counting.stats.OpRecord` into what that counter counts for it. This
module is the registry: archstat's own convention and the papers' are defined here, each
external tool's in its own module of :mod:`archstat.tools` (with the release its rules
were read from and the known bugs it reproduces). A convention describes what the tool
*means* to count; where a tool miscounts by its own rules (thop multiplying a transposed
conv by its output size, ptflops counting a ReLU twice) that is a bug, which ``archstat
check`` flags layer by layer, never folded into a convention.

What a paper counts is defined here once: the ``paper`` convention (which work is a
multiply-add) and :class:`PaperScope` (what a published figure includes: the FC layer,
BN's gamma/beta, biases), which ``archstat zoo --check`` and the report tables use.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from archstat.errors import ArchstatError
from archstat.formulas import Cost
from archstat.tools import TOOL_MODULES
from archstat.tools.rules import (BIAS, MULTIPLY_ADD_TYPES, Convention, KnownBug, Parts, multiply_adds_only,
                                  op_type)

if TYPE_CHECKING:
    from archstat.counting.stats import ModelStats, OpRecord

__all__ = ["Convention", "KnownBug", "CONVENTIONS", "convention", "components", "intended", "record_madds",
           "total_madds", "apply_convention", "op_type", "MULTIPLY_ADD_TYPES", "BIAS", "PaperScope", "final_fc"]


def _archstat(record: "OpRecord") -> Parts:
    """archstat's own count: the record's multiply-adds as counted (bias when ``count_bias``)."""
    if record.call is None or record.call.formula not in MULTIPLY_ADD_TYPES:
        return {}
    plain = record.call.evaluate(count_bias=False).cost.madds
    kind = MULTIPLY_ADD_TYPES[record.call.formula]
    return {kind: plain, BIAS: record.cost.madds - plain} if record.cost.madds != plain else {kind: plain}


CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    Convention("archstat", "archstat", "multiply-adds", 1,
               "multiply-adds of conv, linear, matmul, einsum and attention; bias additions only with count_bias",
               ("element-wise, norm and pooling work is in flops, not in madds",), _archstat),
    Convention("paper", "the papers (ResNet, MobileNet, ShuffleNet, SENet ...) and torchvision's _ops", "multiply-adds",
               1, "multiply-adds of conv, fully connected, matmul and attention layers; no bias, BN, activation, "
                  "pooling or element-wise work",
               ("what a figure also leaves out (the FC layer, BN gamma/beta) is its PaperScope; differences from a "
                "printed figure beyond this are the network's (see archstat.published)",), multiply_adds_only),
    *(module.CONVENTION for module in TOOL_MODULES),
)}


def convention(name: str) -> Convention:
    """The :class:`Convention` called ``name``; an :class:`ArchstatError` lists the known ones."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ArchstatError(f"unknown convention {name!r}; choose one of {', '.join(CONVENTIONS)}") from None


def components(record: "OpRecord", name: str) -> Parts:
    """What convention ``name`` counts for ``record``, by op type, in multiply-add equivalents
    (nothing for an op a known bug of the tool drops)."""
    rules = convention(name)
    if rules.bug(record) is not None:
        return {}
    return {k: v for k, v in rules.rule(record).items() if v}


def intended(record: "OpRecord", name: str) -> Parts:
    """What convention ``name``'s rules count for ``record``, its known bugs aside."""
    return {k: v for k, v in convention(name).rule(record).items() if v}


def record_madds(record: "OpRecord", name: str) -> int:
    """The multiply-add equivalents convention ``name`` counts for ``record``."""
    return sum(components(record, name).values())


def total_madds(stats: "ModelStats", name: str) -> int:
    """The model's total under convention ``name`` (what that tool's total should be)."""
    return sum(record_madds(r, name) for r in stats.records)


def apply_convention(stats: "ModelStats", name: str) -> "ModelStats":
    """``stats`` with every record's ``madds`` replaced by what convention ``name`` counts.

    ``flops`` becomes ``2 * madds`` (``FlopCounterMode``'s unit: under ``"torch"`` it is
    exactly the figure ``FlopCounterMode`` reports); in a training count each record's
    ``backward`` becomes the tool's (:meth:`~archstat.tools.rules.Convention.backward`);
    ``params`` and ``mem_access`` do not depend on the convention. ``"archstat"`` returns
    ``stats`` unchanged.
    """
    rules = convention(name)
    if rules.name == "archstat":
        return stats
    records = []
    for r in stats.records:
        madds = record_madds(r, name)
        records.append(replace(r, cost=Cost(r.cost.params, madds, 2 * madds, r.cost.mem_access),
                               backward=rules.backward(r)))
    note = f"convention {name} ({rules.tool}): madds = {rules.summary}; flops = 2 x madds"
    return replace(stats, records=records, notes=[*stats.notes, note])


# --------------------------------------------------------------------------- what a paper counts


@dataclass(frozen=True)
class PaperScope:
    """What one published figure covers, counted under the ``paper`` convention.

    The ``paper`` convention fixes what a multiply-add is (conv, fully connected, matmul
    and attention work; no bias, batch norm, activation, pooling or element-wise work).
    Publications also choose what their figure includes, and a count set beside the figure
    must choose the same; archstat never adjusts the figure instead:

    * ``with_fc=False``: multiply-adds without the final fully connected layer (ShuffleNet's
      Table 1 per-g complexities);
    * ``bn_affine=False``: parameters without batch norm's gamma/beta (ResNeXt's 25.5 M for
      ResNet-50);
    * ``biases=False``: parameters without the biases of conv, linear and attention layers
      (MobileNet's Table 2 parameter shares).

    Parameters are always those the inference forward pass uses: a training-only auxiliary
    head (torchvision's ``inception_v3``) is in ``stats.params`` but in no record.
    """

    with_fc: bool = True
    bn_affine: bool = True
    biases: bool = True

    def record_madds(self, record: "OpRecord") -> int:
        """The paper convention's multiply-adds of one op."""
        return record_madds(record, "paper")

    def record_params(self, record: "OpRecord") -> int:
        """The parameters one op first uses, within this scope."""
        call, category = record.call, record.category
        if not self.bn_affine and category is not None and category.op == "batch_norm":
            return 0
        if not self.biases and call is not None and call.formula in MULTIPLY_ADD_TYPES and call.kwargs.get("bias"):
            weights = replace(call, kwargs={**call.kwargs, "bias": False}).evaluate().cost.params
            return min(record.cost.params, weights)  # 0 stays 0 for a weight counted at its first use
        return record.cost.params

    def count(self, stats: "ModelStats", metric: str) -> int:
        """``metric`` (``"params"`` or ``"madds"``) of ``stats`` as the publication counted it."""
        if metric == "params":
            return sum(self.record_params(r) for r in stats.records)
        if metric != "madds":
            raise ValueError(f"metric must be 'params' or 'madds', not {metric!r}")
        total = sum(self.record_madds(r) for r in stats.records)
        return total if self.with_fc else total - self.record_madds(final_fc(stats))

    def describe(self, metric: str) -> str:
        """``"multiply-adds without the FC layer"``, ``"params without BN gamma/beta"`` ..."""
        if metric == "madds":
            return "multiply-adds" if self.with_fc else "multiply-adds without the FC layer"
        left_out = [what for what, kept in (("BN gamma/beta", self.bn_affine), ("biases", self.biases)) if not kept]
        return "params" + (f" without {' and '.join(left_out)}" if left_out else "")


def final_fc(stats: "ModelStats") -> "OpRecord":
    """The final fully connected layer: the last linear op counted."""
    linear = [r for r in stats.records if r.category is not None and r.category.family == "linear"]
    if not linear:
        raise ValueError(f"{stats.model} has no fully connected layer")
    return linear[-1]
