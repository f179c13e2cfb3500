"""Every op archstat knows, for ``archstat ops``: read off the handler registries, never kept by hand.

One :class:`OpEntry` per registered module class, function name, free function, refused
op and op known to be uncountable: how it reaches the counter (``module`` / ``function``),
the formula it is costed with, what that formula counts (multiply-adds, flops, memory
access only; or free, refused, uncounted) and the formula's first docstring line.
"""

from __future__ import annotations

from dataclasses import dataclass

from archstat.counting.handlers import FREE, FREE_FUNCTIONS, FUNCTION_HANDLERS, MODULE_HANDLERS, REFUSED, UNCOUNTED
from archstat.formulas import FORMULAS

__all__ = ["OpEntry", "catalog", "COUNTS_TEXT"]

#: What each kind of cost means, in the catalog's words.
COUNTS_TEXT = {"madds": "multiply-adds (flops = 2 x madds + element-wise work)",
               "flops": "flops and memory access, no multiply-adds",
               "memory": "memory access only", "free": "nothing (a view, metadata, or dropout at inference)",
               "refused": "refused", "uncounted": "an uncounted row with its reason"}


@dataclass(frozen=True)
class OpEntry:
    """One op archstat knows (see the module docstring)."""

    name: str
    via: str
    formula: str
    counts: str
    summary: str

    def row(self) -> dict[str, str]:
        return {"op": self.name, "via": self.via, "formula": self.formula, "counts": self.counts,
                "what": self.summary}


def _summary(formula: str) -> str:
    if formula == FREE.formula:
        return COUNTS_TEXT["free"]
    doc = " ".join((FORMULAS[formula].__doc__ or "").strip().split("\n\n")[0].split())
    return doc.split(". ")[0].rstrip(".:")


def _counts(formula: str) -> str:
    return "free" if formula == FREE.formula else str(getattr(FORMULAS[formula], "counts"))


def catalog() -> list[OpEntry]:
    """Module classes, then functions, free functions, refused and uncounted ops, each sorted by name."""
    entries = [OpEntry(f"{cls.__module__}.{cls.__qualname__}", "module", rule.formula, _counts(rule.formula),
                       _summary(rule.formula))
               for cls, rule in sorted(MODULE_HANDLERS.items(), key=lambda kv: kv[0].__qualname__)]
    entries += [OpEntry(name, "function", rule.formula, _counts(rule.formula), _summary(rule.formula))
                for name, rule in sorted(FUNCTION_HANDLERS.items())]
    entries += [OpEntry(name, "function", "free", "free", COUNTS_TEXT["free"]) for name in sorted(FREE_FUNCTIONS)]
    entries += [OpEntry(name, "function", "-", "refused", reason) for name, reason in sorted(REFUSED.items())]
    entries += [OpEntry(name, "function", "-", "uncounted", note) for name, note in sorted(UNCOUNTED.items())]
    return entries
