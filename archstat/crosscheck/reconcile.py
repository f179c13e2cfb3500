"""Layer-by-layer reconciliation of another tool's counts with archstat's records.

For every module, the tool's *own* count (from its per-module output) is compared with
what the tool's convention (:mod:`archstat.conventions`) gives for archstat's records in
that module. Where they agree, the tool's count is explained op type by op type by the
convention. Where they do not, the tool is wrong on that layer by its own rules: a
:class:`Flag` records its count, the right count and why, the why computed from the
numbers (a transposed conv counted at ``out/in`` times its cost, a layer counted twice,
an op the tool reported skipping) rather than written per model.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import product
from math import prod
from typing import Callable

from archstat.conventions import MULTIPLY_ADD_TYPES, components, convention, intended, op_type
from archstat.counting.stats import ModelStats, OpRecord, format_shape
from archstat.crosscheck.tools import ToolResult

__all__ = ["Flag", "Unverified", "ToolReconciliation", "reconcile_tool", "close"]


@dataclass(frozen=True)
class Flag:
    """A layer where a tool's count differs from what its own rules give.

    ``count`` is the tool's count for the layer and ``right`` what its convention gives
    for archstat's ops there, both in multiply-add equivalents (FlopCounterMode's FLOPs
    halved); ``op_type`` is the reconciliation's op type of the layer's main op and
    ``kind`` its finer label (``"conv transpose 4x4"``); ``why`` the diagnosis.
    """

    tool: str
    layer: str
    module_type: str
    op_type: str
    count: float
    right: int
    why: str
    kind: str = ""


@dataclass(frozen=True)
class Unverified:
    """A layer where the tool's count differs from archstat's reading of its rules and no
    known cause explains the difference (or the layer holds ops archstat does not count):
    reported, not blamed on the tool."""

    tool: str
    layer: str
    module_type: str
    count: float
    right: int
    why: str


@dataclass
class ToolReconciliation:
    """One tool's count split by op type (``by_type``), of which ``flagged`` is what the
    flags account for, on ``flagged_layers`` layers per op type; ``convention_total`` is
    archstat under the tool's convention."""

    tool: str
    by_type: Counter = field(default_factory=Counter)
    flagged: Counter = field(default_factory=Counter)
    flagged_layers: Counter = field(default_factory=Counter)
    convention_total: int = 0
    flags: list[Flag] = field(default_factory=list)
    unverified: list[Unverified] = field(default_factory=list)


def close(a: float, b: float) -> bool:
    """Equal up to float noise: half a unit, or one part in a million."""
    return abs(a - b) <= max(0.5, 1e-6 * max(abs(a), abs(b)))


def _records_by_module(stats: ModelStats) -> dict[str, list[OpRecord]]:
    groups: dict[str, list[OpRecord]] = defaultdict(list)
    for r in stats.records:
        groups[r.module].append(r)
    return groups


def _rekey(own: dict[str, float], known: set[str]) -> Counter:
    """Move each module's count to its nearest ancestor-or-self where archstat recorded ops
    (ops inside a module archstat counts whole, such as nn.MultiheadAttention, belong to it)."""
    out: Counter = Counter()
    for name, value in own.items():
        while name not in known and name:
            name = name.rpartition(".")[0]
        out[name] += value
    return out


def _first_shape(shape: tuple) -> tuple:
    return shape[0] if shape and isinstance(shape[0], tuple) else shape


@dataclass(frozen=True)
class _Layer:
    tool: str
    name: str
    module_type: str
    records: list[OpRecord]
    parts: list[dict[str, int]]
    count: float
    right: int
    result: ToolResult


@dataclass(frozen=True)
class _Cause:
    """One way a layer's count can be off: ``delta`` multiply-add equivalents on ``record``.
    ``text`` may name ``{ops}``: the op types of every cause with the same text, joined."""

    delta: float
    record: OpRecord
    text: str


# --------------------------------------------------------------------------- diagnoses


def _plain_madds(r: OpRecord) -> int:
    return r.call.evaluate(count_bias=False).cost.madds


def _transposed_output_size(layer: _Layer, r: OpRecord, right: int) -> _Cause | None:
    """thop's ConvTranspose rule: ``numel(output) * C_in/g * k`` instead of ``numel(input) * C_out/g * k``."""
    if r.call.formula != "conv_transpose":
        return None
    madds = _plain_madds(r)
    i, o = prod(r.call.args[0][2:]), prod(_first_shape(r.output_shape)[2:])
    if i == o:
        return None
    return _Cause(madds // i * o - madds, r,
                  f"multiplies the kernel work of the transposed conv by its {o:,} output positions "
                  f"({format_shape(_first_shape(r.output_shape)[2:])}) instead of its {i:,} input positions "
                  f"({format_shape(r.call.args[0][2:])}), x{o / i:g}: a transposed conv does C_out/g x k multiply-adds "
                  f"per input element")


def _broadcast_dropped(layer: _Layer, r: OpRecord, right: int) -> _Cause | None:
    """fvcore's and ptflops's matmul rule ``numel(A) * B.shape[-1]`` drops batch dimensions only B has."""
    if r.call.formula != "matmul":
        return None
    a, b = r.call.args
    naive = prod(a) * b[-1] - _plain_madds(r)
    if not naive:
        return None
    return _Cause(naive, r, f"counts matmul {format_shape(a)} @ {format_shape(b)} as numel(A) x B.shape[-1] = "
                            f"{prod(a):,} x {b[-1]}, dropping the batch dimensions only B has")


def _numpy_einsum_count(equation: str, shapes: tuple) -> float | None:
    """fvcore's count for a general einsum: numpy's printed "Optimized FLOP count" / 2."""
    import numpy as np

    operands = [np.broadcast_to(np.zeros(()), s) for s in shapes]
    report = np.einsum_path(equation.replace(" ", ""), *operands, optimize="optimal")[1]
    found = re.search(r"optimized flop count:\s*([0-9.eE+-]+)", report, re.IGNORECASE)
    return float(np.floor(float(found.group(1)) / 2)) if found else None


def _einsum_from_numpy(layer: _Layer, r: OpRecord, right: int) -> _Cause | None:
    if r.call.formula != "einsum":
        return None
    counted, madds = _numpy_einsum_count(r.call.args[0], r.call.args[1:]), _plain_madds(r)
    if counted is None or counted == madds:
        return None
    return _Cause(counted - madds, r,
                  f"takes einsum {r.call.args[0]!r} ({madds:,} multiply-adds) from the FLOP count numpy.einsum_path "
                  f"prints, to 4 significant digits, halved: {counted:,.0f}")


#: What the skipped ops seen most often are, for the diagnosis text.
_OP_NOTES = {
    "_native_multi_head_attention": "nn.MultiheadAttention's fused fast path, taken in eval mode without grad",
    "_scaled_dot_product_flash_attention_for_cpu": "the CPU kernel of F.scaled_dot_product_attention",
    "scaled_dot_product_attention": "F.scaled_dot_product_attention",
    "mul": "a broadcast multiply",
}
_HEAVY = ("attention", "conv", "mm", "linear", "matmul", "dot", "mv", "einsum", "outer", "mul")


def _skipped_ops(layer: _Layer) -> list[str]:
    seen = layer.result.skipped.get(layer.name, Counter())
    heavy = [op for op in seen if any(h in op for h in _HEAVY)]
    heavy.sort(key=lambda op: next(i for i, h in enumerate(_HEAVY) if h in op))
    out = []
    for op in heavy[:3]:
        bare = re.sub(r"^aten(::|\.)", "", op)
        out.append(f"{op} ({_OP_NOTES[bare]})" if bare in _OP_NOTES else op)
    return out


def _not_counted(layer: _Layer, r: OpRecord, right: int) -> _Cause | None:
    if r.call.formula not in MULTIPLY_ADD_TYPES or not right:
        return None
    skipped = _skipped_ops(layer)
    if skipped:
        text = f"skips {', '.join(skipped)}: no formula for it"
    elif r.module_class is None and layer.tool in ("thop", "ptflops"):
        sees = "nn.Module layers and the torch functions it patches" if layer.tool == "ptflops" else "nn.Module layers"
        text = f"does not see the functional calls {{ops}}: it counts {sees}"
    elif r.module_class is not None and layer.name in layer.result.no_rule:
        text = f"has no rule for {layer.module_type}"
    else:
        text = f"does not count the {r.kind}"
    return _Cause(-right, r, text)


_RECORD_CAUSES: tuple[Callable[[_Layer, OpRecord, int], _Cause | None], ...] = (
    _not_counted, _transposed_output_size, _broadcast_dropped, _einsum_from_numpy)

#: At most this many combinations of causes are tried per layer.
_SEARCH_LIMIT = 20000


def _counted_twice(layer: _Layer, main: OpRecord) -> _Cause | None:
    if layer.right <= 0:
        return None
    sources = {k: v for k, v in layer.result.detail.get(layer.name, {}).items() if v}
    how = " + ".join(f"{v:,.0f} by {k}" for k, v in sources.items())
    return _Cause(layer.right, main, "counts it twice" + (f": {how}" if len(sources) > 1 else ""))


def diagnose(layer: _Layer, main: OpRecord) -> list[_Cause]:
    """The smallest set of causes (at most one per op, or the whole layer counted twice) whose
    deltas add up to the tool's difference; empty when no combination does."""
    options = []
    for r, p in zip(layer.records, layer.parts):
        if r.call is not None:
            found = [c for check in _RECORD_CAUSES if (c := check(layer, r, sum(p.values())))]
            if found:
                options.append(found)
    twice = _counted_twice(layer, main)
    if twice and close(layer.count, 2 * layer.right):
        return [twice]
    if prod(len(o) + 1 for o in options) > _SEARCH_LIMIT:
        return []
    best: list[_Cause] | None = None
    for choice in product(*[[None, *o] for o in options]):
        causes = [c for c in choice if c is not None]
        if close(layer.count, layer.right + sum(c.delta for c in causes)) and (best is None or len(causes) < len(best)):
            best = causes
    return best or []


def explain(layer: _Layer, causes: list[_Cause]) -> str:
    """The flag's text: each cause with the difference it makes."""
    texts: dict[str, list[_Cause]] = {}
    for c in causes:
        texts.setdefault(c.text, []).append(c)
    return f"{layer.tool} " + "; ".join(
        t.replace("{ops}", ", ".join(dict.fromkeys(c.record.type for c in cs))) + f" ({sum(c.delta for c in cs):+,.0f})"
        for t, cs in texts.items())


def _unexplained(layer: _Layer) -> str:
    uncounted = sorted({r.type for r in layer.records if not r.counted})
    if uncounted:
        return f"the layer holds ops archstat does not count ({', '.join(uncounted)})"
    if not layer.records:
        return "archstat recorded no op in this layer"
    ratio = f" (x{layer.count / layer.right:.4g})" if layer.right else ""
    return f"archstat's reading of {layer.tool}'s rules gives {layer.right:,}{ratio}; no known cause"


# --------------------------------------------------------------------------- reconciliation


def _main_record(records: list[OpRecord], parts: list[dict[str, int]]) -> OpRecord | None:
    if not records:
        return None
    return max(zip(records, parts), key=lambda rp: (sum(rp[1].values()), rp[0].call is not None))[0]


def reconcile_tool(stats: ModelStats, result: ToolResult, convention: str,
                   module_types: dict[str, str]) -> ToolReconciliation:
    """Compare ``result`` with ``stats`` under ``convention``, module by module."""
    out = ToolReconciliation(result.tool)
    groups = _records_by_module(stats)
    parts = {m: [components(r, convention) for r in recs] for m, recs in groups.items()}
    out.convention_total = sum(sum(p.values()) for ps in parts.values() for p in ps)
    counted = _rekey(result.own, set(groups))
    for name in list(groups) + [n for n in counted if n not in groups]:
        records, layer_parts = groups.get(name, []), parts.get(name, [])
        for p in layer_parts:
            out.by_type.update(p)
        right = sum(sum(p.values()) for p in layer_parts)
        count = counted.get(name, 0.0)
        if count == right:
            continue
        main = _main_record(records, layer_parts)
        kind = op_type(main) if main else "(outside any op)"
        layer = _Layer(result.tool, name, module_types.get(name, ""), records, layer_parts, count, right, result)
        checkable = main is not None and all(r.counted for r in records) and not close(count, right)
        causes = diagnose(layer, main) if checkable else []
        if not causes:
            out.by_type[kind] += count - right
            if not close(count, right):
                out.unverified.append(Unverified(result.tool, name or "(root)", layer.module_type, count, right,
                                                 _unexplained(layer)))
            continue
        rest = count - right - sum(c.delta for c in causes)
        shares = [(op_type(c.record), c.delta) for c in causes] + [(kind, rest)]
        for kind_of, delta in shares:
            out.by_type[kind_of] += delta
            out.flagged[kind_of] += delta
        out.flagged_layers.update({kind_of for kind_of, delta in shares if not close(delta, 0)})
        out.flags.append(Flag(result.tool, name or "(root)", layer.module_type, kind, count, right,
                              explain(layer, causes), main.kind))
    _flag_known_bugs(out, stats, result.tool, convention, module_types)
    return out


def _flag_known_bugs(out: ToolReconciliation, stats: ModelStats, tool: str, name: str,
                     module_types: dict[str, str]) -> None:
    """Flag the ops the tool drops by a known bug its convention reproduces (the tool's count
    and the convention agree there, so the layer comparison above cannot see them)."""
    rules = convention(name)
    for r in stats.records:
        bug = rules.bug(r)
        right = sum(intended(r, name).values()) if bug is not None else 0
        if not right:
            continue
        kind = op_type(r)
        out.flagged[kind] -= right
        out.flagged_layers[kind] += 1
        out.flags.append(Flag(tool, r.module or "(root)", module_types.get(r.module, r.type), kind, 0, right,
                              f"{tool} {bug.why} ({-right:+,}; seen in {bug.checked})", r.kind))
