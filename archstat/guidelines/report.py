"""The ShuffleNet V2 guidelines, block by block, for any model (``archstat layers MODEL --guidelines``).

For every building block of a counted model (a ResNet bottleneck, a MobileNet
inverted residual, an Inception module ...), the four quantities the guidelines of
Ma et al. (arXiv:1807.11164, Sec. 2) are about:

G1  balance of the dense stride-1 1x1 convs on feature maps (not on 1x1 maps, such as
    SE's squeeze/excite, which are fully-connected layers): the worst ``c1:c2`` ratio
    and how far their memory access lies above the Eq. 1 bound ``2 sqrt(hwB) + B/hw``;
G2  group convolution (depthwise excluded, which the paper counts under G4): the
    largest group count and the memory access the groups cost over dense convs of
    equal FLOPs (Eq. 2), as a share of the block's;
G3  fragmentation: the number of individual convolution and pooling ops in the
    block (the paper's count: 13 in a NASNet-A cell, 2 or 3 in a ResNet block);
G4  the share of the block's memory access spent in element-wise ops: activations,
    adds and multiplies, normalisations, and depthwise convs ("we also consider
    depthwise convolution as an element-wise operator"); plus data movement
    (concat, split, shuffle, copies), which costs no FLOPs either.

Flags mark G1-G3 past the point where the paper's own tables already measured a
slowdown on both platforms: c1:c2 of 1:2 (Table 1), g = 2 (Table 2), more than 3
fragments (Table 3 and the ResNet remark). The paper gives no threshold for G4; its
share is reported, not flagged.

Blocks are found from the module tree: pure containers (``nn.Sequential``,
``nn.ModuleList``, ``nn.ModuleDict``) and stages (a module holding at least two
blocks of one class, each with two or more weighted ops, such as ViT's encoder or a
DenseNet dense block, or a wrapper around a single such block) are opened; the first
other module on each path holding two or more weighted ops is a block.
Consecutive ops outside any block (a stem, a classifier head) are grouped into one
row, which is reported but never flagged (it is not a building block).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from math import prod
from typing import TYPE_CHECKING, Any, Iterator

from archstat.formulas import g1_mem_access_bound, group_mem_access_excess, pointwise_mem_access
from archstat.latency.memory_model import mem_access_per_op

if TYPE_CHECKING:
    from torch import nn

    from archstat.counting.handlers import FormulaCall
    from archstat.counting.stats import ModelStats

__all__ = ["guideline_report", "find_blocks", "module_tree", "BlockGuidelines", "G1_RATIO_FLAG",
           "G2_GROUPS_FLAG", "G3_FRAGMENTS_FLAG", "GUIDELINE_NUMERIC"]

#: Flag G1 when a block's worst dense 1x1 c1:c2 imbalance reaches this (Table 1: 1:2 is slower).
G1_RATIO_FLAG = 2.0
#: Flag G2 when a non-depthwise conv has at least this many groups (Table 2: g=2 is slower).
G2_GROUPS_FLAG = 2
#: Flag G3 when a block has more conv/pool ops than this (paper: ResNet blocks have 2 or 3).
G3_FRAGMENTS_FLAG = 3

#: Right-aligned columns of the report (human and raw forms).
GUIDELINE_NUMERIC = ("ops", "MAdds (M)", "mem access (K el.)", "1x1 convs", "worst c1:c2", "G1 MAC over bound",
                     "max groups", "G2 group MAC", "G3 fragments", "G4 element-wise MAC", "data movement MAC",
                     "madds", "flops", "mem_access", "conv1x1", "worst_c1c2_ratio", "g1_mac_over_bound_pct",
                     "max_groups", "g2_group_mac_pct", "g3_fragments", "g4_elementwise_mac_pct",
                     "data_movement_mac_pct")

_WEIGHTED = frozenset({"conv", "conv_transpose", "linear", "mha"})
_FRAGMENTS = frozenset({"conv", "pool"})
_ELEMENTWISE = frozenset({"elementwise", "activation", "norm"})
_DATA_MOVEMENT = frozenset({"data_movement"})


def module_tree(model_or_name: "nn.Module | str") -> "nn.Module":
    """The module whose tree names the blocks: the module itself, or a name built on meta."""
    from torch import nn

    if isinstance(model_or_name, nn.Module):
        return model_or_name
    from archstat.counting.build import build_structure
    from archstat.models import model_builder

    return build_structure(model_builder(model_or_name))


def _weighted_counts(stats: "ModelStats") -> Counter:
    counts: Counter = Counter()
    for r in stats.records:
        if r.call is not None and r.call.formula in _WEIGHTED:
            parts = r.module.split(".") if r.module else []
            for i in range(1, len(parts) + 1):
                counts[".".join(parts[:i])] += 1
    return counts


def _is_container(module: "nn.Module") -> bool:
    from torch import nn

    return type(module) in (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _qualified(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _candidates(module: "nn.Module", prefix: str) -> Iterator[tuple[str, "nn.Module"]]:
    """Non-container descendants reached through containers only."""
    for name, child in module.named_children():
        qualified = _qualified(prefix, name)
        if _is_container(child):
            yield from _candidates(child, qualified)
        else:
            yield qualified, child


def _is_stage(module: "nn.Module", prefix: str, weighted: Counter) -> bool:
    """Holds two blocks of one class, or is a wrapper around a single block (a one-block stage)."""
    inner = [(n, c) for n, c in _candidates(module, prefix) if weighted[n] >= 2]
    if len(inner) == 1:
        return weighted[inner[0][0]] == weighted[prefix]
    return any(n >= 2 for n in Counter(type(c) for _, c in inner).values())


def find_blocks(model: "nn.Module", stats: "ModelStats") -> dict[str, str]:
    """Qualified name -> class name of each building block of ``model`` (see the module docstring)."""
    weighted = _weighted_counts(stats)
    blocks: dict[str, str] = {}

    def visit(module: "nn.Module", prefix: str) -> None:
        for name, child in module.named_children():
            qualified = _qualified(prefix, name)
            if _is_container(child) or _is_stage(child, qualified, weighted):
                visit(child, qualified)
            elif weighted[qualified] >= 2:
                blocks[qualified] = type(child).__name__

    visit(model, "")
    return blocks


@dataclass
class BlockGuidelines:
    """The records of one block (or of a run of ops outside blocks) and their guideline figures."""

    name: str
    type: str
    is_block: bool = False
    last: str = ""
    records: list = field(default_factory=list)
    mem_access: list = field(default_factory=list)

    def _share(self, kinds: frozenset, depthwise: bool = False) -> float:
        total = sum(self.mem_access)
        part = sum(m for r, m in zip(self.records, self.mem_access)
                   if r.category is not None and (r.category.family in kinds or (depthwise and r.category.depthwise)))
        return 100.0 * part / total if total else 0.0

    def _pointwise(self) -> list[tuple[int, int, int]]:
        """``(hw, c1, c2)`` of the dense stride-1 1x1 convs (the G1 setting); ``hw`` includes the batch."""
        out = []
        for r in self.records:
            call = r.call
            if call is None or call.formula != "conv" or not r.category.pointwise or r.category.groups > 1:
                continue
            shape = call.args[0]
            if any(s != 1 for s in _tuple(call.kwargs.get("stride", 1))) or prod(shape[2:]) == 1:
                continue
            out.append((shape[0] * prod(shape[2:]), shape[1], call.args[1]))
        return out

    def _grouped(self) -> list["FormulaCall"]:
        """The calls of the group convs (depthwise excluded)."""
        return [r.call for r in self.records if r.call is not None and r.call.formula == "conv" and r.category.grouped]

    def row(self, human: bool) -> dict[str, Any]:
        pointwise = self._pointwise()
        worst = max((max(c1, c2) / min(c1, c2) for _, c1, c2 in pointwise), default=None)
        bound = sum(g1_mem_access_bound(hw, hw * c1 * c2) for hw, c1, c2 in pointwise)
        spent = sum(pointwise_mem_access(hw, c1, c2) for hw, c1, c2 in pointwise)
        g1 = 100.0 * (spent / bound - 1.0) if bound else None
        grouped = self._grouped()
        max_groups = max((call.kwargs["groups"] for call in grouped), default=1)
        total = sum(self.mem_access)
        excess = sum(_group_excess(call) for call in grouped)
        g2 = 100.0 * excess / total if total and grouped else None
        fragments = sum(1 for r in self.records if r.category is not None and r.category.family in _FRAGMENTS)
        flags = [g for g, hit in (("G1", worst is not None and worst >= G1_RATIO_FLAG),
                                  ("G2", max_groups >= G2_GROUPS_FLAG),
                                  ("G3", fragments > G3_FRAGMENTS_FLAG)) if hit and self.is_block]
        elementwise, movement = self._share(_ELEMENTWISE, depthwise=True), self._share(_DATA_MOVEMENT)
        madds = sum(r.cost.madds for r in self.records)
        if human:
            return {"block": self.name, "type": self.type, "ops": len(self.records),
                    "MAdds (M)": f"{madds / 1e6:.2f}", "mem access (K el.)": f"{total / 1e3:.1f}",
                    "1x1 convs": len(pointwise), "worst c1:c2": f"1:{worst:.2f}" if worst else "",
                    "G1 MAC over bound": f"{g1:.1f}%" if g1 is not None else "",
                    "max groups": max_groups, "G2 group MAC": f"{g2:.1f}%" if g2 is not None else "",
                    "G3 fragments": fragments, "G4 element-wise MAC": f"{elementwise:.1f}%",
                    "data movement MAC": f"{movement:.1f}%", "flags": " ".join(flags)}
        return {"block": self.name, "type": self.type, "ops": len(self.records), "madds": madds,
                "flops": sum(r.cost.flops for r in self.records), "mem_access": total, "conv1x1": len(pointwise),
                "worst_c1c2_ratio": round(worst, 4) if worst else None,
                "g1_mac_over_bound_pct": round(g1, 3) if g1 is not None else None, "max_groups": max_groups,
                "g2_group_mac_pct": round(g2, 3) if g2 is not None else None, "g3_fragments": fragments,
                "g4_elementwise_mac_pct": round(elementwise, 3), "data_movement_mac_pct": round(movement, 3),
                "flags": " ".join(flags)}


def _tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _group_excess(call: "FormulaCall") -> int:
    kw = call.kwargs
    return group_mem_access_excess(call.args[0], call.args[1], call.args[2], kw["groups"], kw.get("stride", 1),
                                   kw.get("padding", 0), kw.get("dilation", 1))


def _block_of(module: str, blocks: dict[str, str]) -> str | None:
    parts = module.split(".") if module else []
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in blocks:
            return prefix
    return None


def guideline_report(model_or_name: "nn.Module | str", stats: "ModelStats", *, human: bool = False,
                     cache_model: str = "lower-bound") -> list[dict[str, Any]]:
    """One row per block of ``stats`` (counted from ``model_or_name``) with its G1-G4 figures.

    Ops outside any block are grouped by runs (``"conv1 .. maxpool"``). ``cache_model``
    sets the memory access the shares are taken of (:mod:`archstat.latency.memory_model`).
    """
    blocks = find_blocks(module_tree(model_or_name), stats)
    groups: list[BlockGuidelines] = []
    for record, elements in zip(stats.records, mem_access_per_op(stats, cache_model)):
        if not record.counted:
            continue
        block = _block_of(record.module, blocks)
        current = groups[-1] if groups else None
        if block is not None:
            if current is None or current.name != block or not current.is_block:
                groups.append(BlockGuidelines(block, blocks[block], is_block=True))
        else:
            where = record.module or "(root)"
            if current is None or current.is_block:
                groups.append(BlockGuidelines(where, "ops", last=where))
            elif current.last != where:  # a run of ops outside blocks: "conv1 .. maxpool"
                current.name, current.last = f"{current.name.split(' .. ')[0]} .. {where}", where
        groups[-1].records.append(record)
        groups[-1].mem_access.append(elements)
    return [g.row(human) for g in groups]
