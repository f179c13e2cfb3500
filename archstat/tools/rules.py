"""The shared machinery of the counting conventions: what a convention is, and its building blocks.

A :class:`Convention` turns one :class:`~archstat.counting.stats.OpRecord` into what one
counter counts for it, in multiply-add equivalents, split by op type. It never keeps a
formula of its own: the multiply-adds come from the record's own formula, re-evaluated
through ``record.call.evaluate(count_bias=...)`` (:func:`multiply_adds`), and the extra
work is a per-element rate applied to the record's shapes (:func:`rate`). Each external
tool's module (:mod:`archstat.tools.fvcore`, ...) builds its convention from these;
:mod:`archstat.conventions` registers them beside archstat's and the papers'.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING, Callable, cast

if TYPE_CHECKING:
    from archstat.counting.stats import OpRecord
    from archstat.formulas.training import Backward

__all__ = ["Convention", "KnownBug", "Parts", "Rule", "MULTIPLY_ADD_TYPES", "BIAS", "op_type", "in_elements",
           "out_elements", "multiply_adds", "multiply_adds_only", "rate", "module_rules", "with_type"]

#: Op type of each multiply-add formula (the work every counter means to count).
MULTIPLY_ADD_TYPES = {"conv": "conv", "conv_transpose": "conv transpose", "deform_conv": "conv", "linear": "linear",
                      "matmul": "matmul", "einsum": "einsum", "sdpa": "attention", "mha": "attention",
                      "rnn": "recurrent", "rnn_cell": "recurrent"}

#: The op type of bias additions, split off the conv / linear they belong to.
BIAS = "bias"

_SOFTMAX = frozenset({"softmax", "log_softmax", "softmin"})
_NORMS = {"layer_norm": "layer norm", "rms_norm": "layer norm", "group_norm": "group norm",
          "local_response_norm": "local response norm", "batch_norm": "batch norm", "instance_norm": "instance norm"}

Parts = dict[str, int]
Rule = Callable[["OpRecord"], Parts]


def op_type(record: "OpRecord") -> str:
    """The op type a record's work is reported under in the reconciliation: ``"conv"``,
    ``"batch norm"``, ``"activation"``, ``"max pool"``, ``"element-wise"``, ``"uncounted"`` ...
    read from the record's formula and category."""
    call, category = record.call, record.category
    if call is None or category is None or not record.counted:
        return "uncounted"
    if call.formula in MULTIPLY_ADD_TYPES:
        return MULTIPLY_ADD_TYPES[call.formula]
    family, op = category.family, category.op
    if family == "norm":
        return _NORMS.get(op, op.replace("_", " "))
    if family == "pool":
        return op.replace("_", " ")
    if family == "activation":
        return "activation"
    if family == "elementwise":
        return "softmax" if op in _SOFTMAX else "element-wise"
    if family == "data_movement":
        return "data movement"
    if family == "resample" and op.startswith("interpolate"):
        return "interpolate"
    return family


def in_elements(record: "OpRecord") -> int:
    """Elements of the record's first input (what per-input-element rates multiply)."""
    return prod(record.input_shapes[0]) if record.input_shapes else 0


def out_elements(record: "OpRecord") -> int:
    """Elements of the record's (first) output."""
    shape = record.output_shape
    if shape and isinstance(shape[0], tuple):
        shape = shape[0]
    return prod(cast(tuple[int, ...], shape))  # the first output's shape, or the only one


def multiply_adds(record: "OpRecord", bias: bool) -> Parts:
    """The record's multiply-adds through its own formula, bias additions split off as
    :data:`BIAS` (kept only when ``bias``)."""
    call = record.call
    if call is None or call.formula not in MULTIPLY_ADD_TYPES:
        return {}
    plain = call.evaluate(count_bias=False).cost.madds
    parts = {MULTIPLY_ADD_TYPES[call.formula]: plain}
    if bias:
        extra = call.evaluate(count_bias=True).cost.madds - plain
        if extra:
            parts[BIAS] = extra
    return parts


def multiply_adds_only(record: "OpRecord") -> Parts:
    """Multiply-adds without bias and nothing else (the papers' and FlopCounterMode's rule)."""
    return multiply_adds(record, bias=False)


def _affine(record: "OpRecord") -> bool:
    kwargs = record.call.kwargs if record.call else {}
    return bool(kwargs.get("affine", kwargs.get("elementwise_affine", True)))


def rate(per_element: int, affine: int | None = None, of: str = "input") -> Callable[["OpRecord"], int]:
    """``per_element`` units per input (or output) element; ``affine`` per element instead
    when the layer is affine (a norm with gamma and beta)."""

    def rule(record: "OpRecord") -> int:
        n = in_elements(record) if of == "input" else out_elements(record)
        return n * (affine if affine is not None and _affine(record) else per_element)

    return rule


def module_rules(table: dict[tuple[type, ...], Callable[["OpRecord"], int]]) -> dict[type, Callable]:
    """``{(classes...): rule}`` -> ``{class: rule}``: a tool that counts modules by exact class."""
    return {cls: rule for classes, rule in table.items() for cls in classes}


def with_type(record: "OpRecord", value: int) -> Parts:
    """``value`` under the record's op type (nothing for 0)."""
    return {op_type(record): value} if value else {}


@dataclass(frozen=True)
class KnownBug:
    """An op a tool means to count and drops, reproduced by its convention (so a count under
    that convention gives what the tool gives) and flagged by ``archstat check``.

    ``applies(record)`` says whether the op is one it drops; ``why`` is the flag's text;
    ``checked`` the tool version the behaviour was observed in.
    """

    applies: Callable[["OpRecord"], bool]
    why: str
    checked: str


@dataclass(frozen=True)
class Convention:
    """What one counter counts, as a rule over archstat's records.

    ``rule(record)`` gives the multiply-add equivalents the tool means to count for that
    op, by op type; ``bugs`` are the ops it drops although its rules count them (the
    convention drops them too, and ``check`` flags them). ``per_madd`` is how many units
    the tool reports per multiply-add (2 for ``FlopCounterMode``'s FLOPs, 1 for the
    others). ``rules`` lists, for the docs and ``archstat check``, what the tool counts
    beyond multiply-adds.
    """

    name: str
    tool: str
    reports: str
    per_madd: int
    summary: str
    rules: tuple[str, ...]
    rule: Rule
    bugs: tuple[KnownBug, ...] = ()
    backward_rule: "Callable[[OpRecord], Backward | None] | None" = None

    def bug(self, record: "OpRecord") -> KnownBug | None:
        """The known bug that makes the tool drop ``record``, if any."""
        return next((b for b in self.bugs if b.applies(record)), None)

    def backward(self, record: "OpRecord") -> "Backward | None":
        """The record's backward pass as the tool counts it (a training count): archstat's,
        unless the tool has a rule of its own (``backward_rule``); nothing for an op it drops."""
        if record.backward is None or self.bug(record) is not None:
            return None if self.bug(record) is not None else record.backward
        return self.backward_rule(record) if self.backward_rule is not None else record.backward
