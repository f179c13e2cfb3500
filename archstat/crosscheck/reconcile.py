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

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import product
from math import prod

from archstat.conventions import components, convention, intended, op_type
from archstat.counting.stats import ModelStats, OpRecord
from archstat.tools.base import Cause, Layer, Tool, ToolResult, not_counted

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


def _rekey(own: dict[str, float], known: set[str]) -> dict[str, float]:
    """Move each module's count to its nearest ancestor-or-self where archstat recorded ops
    (ops inside a module archstat counts whole, such as nn.MultiheadAttention, belong to it)."""
    out: dict[str, float] = {}
    for name, value in own.items():
        while name not in known and name:
            name = name.rpartition(".")[0]
        out[name] = out.get(name, 0) + value
    return out


#: At most this many combinations of causes are tried per layer.
_SEARCH_LIMIT = 20000


def diagnose(layer: Layer, main: OpRecord) -> list[Cause]:
    """The smallest set of causes (at most one per op) among the tool's known miscounts and
    :func:`~archstat.tools.base.not_counted` whose deltas add up to the tool's difference, or
    one whole-layer miscount that alone does; empty when nothing does."""
    for miscount in (m for m in layer.tool.miscounts if m.whole_layer):
        cause = miscount.find(layer, main, layer.right)
        if cause is not None and close(layer.count, layer.right + cause.delta):
            return [cause]
    finders = (not_counted, *(m.find for m in layer.tool.miscounts if not m.whole_layer))
    options = []
    for r, p in zip(layer.records, layer.parts):
        if r.call is not None:
            found = [c for find in finders if (c := find(layer, r, sum(p.values())))]
            if found:
                options.append(found)
    if prod(len(o) + 1 for o in options) > _SEARCH_LIMIT:
        return []
    best: list[Cause] | None = None
    for choice in product(*[[None, *o] for o in options]):
        causes = [c for c in choice if c is not None]
        if close(layer.count, layer.right + sum(c.delta for c in causes)) and (best is None or len(causes) < len(best)):
            best = causes
    return best or []


def explain(layer: Layer, causes: list[Cause]) -> str:
    """The flag's text: each cause with the difference it makes."""
    texts: dict[str, list[Cause]] = {}
    for c in causes:
        texts.setdefault(c.text, []).append(c)
    return f"{layer.tool.name} " + "; ".join(
        t.replace("{ops}", ", ".join(dict.fromkeys(c.record.type for c in cs))) + f" ({sum(c.delta for c in cs):+,.0f})"
        for t, cs in texts.items())


def _unexplained(layer: Layer) -> str:
    uncounted = sorted({r.type for r in layer.records if not r.counted})
    if uncounted:
        return f"the layer holds ops archstat does not count ({', '.join(uncounted)})"
    if not layer.records:
        return "archstat recorded no op in this layer"
    ratio = f" (x{layer.count / layer.right:.4g})" if layer.right else ""
    return f"archstat's reading of {layer.tool.name}'s rules gives {layer.right:,}{ratio}; no known cause"


# --------------------------------------------------------------------------- reconciliation


def _main_record(records: list[OpRecord], parts: list[dict[str, int]]) -> OpRecord | None:
    if not records:
        return None
    return max(zip(records, parts), key=lambda rp: (sum(rp[1].values()), rp[0].call is not None))[0]


def reconcile_tool(stats: ModelStats, result: ToolResult, tool: Tool,
                   module_types: dict[str, str]) -> ToolReconciliation:
    """Compare ``result`` (``tool``'s run) with ``stats`` under the tool's convention, module by module."""
    out = ToolReconciliation(result.tool)
    groups = _records_by_module(stats)
    parts = {m: [components(r, tool.convention) for r in recs] for m, recs in groups.items()}
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
        layer = Layer(tool, name, module_types.get(name, ""), records, layer_parts, count, right, result)
        checkable = all(r.counted for r in records) and not close(count, right)
        causes = diagnose(layer, main) if main is not None and checkable else []
        if not causes:
            out.by_type[kind] += count - right  # type: ignore[assignment]  # typeshed's Counter holds ints only
            if not close(count, right):
                out.unverified.append(Unverified(result.tool, name or "(root)", layer.module_type, count, right,
                                                 _unexplained(layer)))
            continue
        assert main is not None  # there are causes only where there is a main record
        rest = count - right - sum(c.delta for c in causes)
        shares = [(op_type(c.record), c.delta) for c in causes] + [(kind, rest)]
        for kind_of, delta in shares:
            out.by_type[kind_of] += delta  # type: ignore[assignment]
            out.flagged[kind_of] += delta  # type: ignore[assignment]
        out.flagged_layers.update({kind_of for kind_of, delta in shares if not close(delta, 0)})
        out.flags.append(Flag(result.tool, name or "(root)", layer.module_type, kind, count, right,
                              explain(layer, causes), main.kind))
    _flag_known_bugs(out, stats, tool, module_types)
    return out


def _flag_known_bugs(out: ToolReconciliation, stats: ModelStats, tool: Tool, module_types: dict[str, str]) -> None:
    """Flag the ops the tool drops by a known bug its convention reproduces (the tool's count
    and the convention agree there, so the layer comparison above cannot see them)."""
    rules = convention(tool.convention)
    for r in stats.records:
        bug = rules.bug(r)
        right = sum(intended(r, tool.convention).values()) if bug is not None else 0
        if bug is None or not right:
            continue
        kind = op_type(r)
        out.flagged[kind] -= right
        out.flagged_layers[kind] += 1
        out.flags.append(Flag(tool.name, r.module or "(root)", module_types.get(r.module, r.type), kind, 0, right,
                              f"{tool.name} {bug.why} ({-right:+,}; seen in {bug.checked})", r.kind))
