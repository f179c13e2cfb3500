"""Published figures (papers, official repositories) with their sources.

The data is ``archstat/data/published.csv``, a copy of the project's reference table
(``shared/references/published.csv``; its ``NOTES.md`` sits beside it in
``archstat/data``, explaining conventions and the known discrepancies between papers
and implementations). Values are kept exactly as printed (``"3.8"`` with unit
``x10^9``, ``"28.1M"``); :meth:`Published.number` converts them to plain numbers. Every
figure archstat shows next to a measurement is a :class:`Published` row, so it
carries its source and table.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["Published", "published_rows", "published", "PublishedLookupError", "agrees_with_printed"]

_SUFFIX = {"K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9}
_UNIT_SCALE = {
    "x10^9": 1e9, "G": 1e9, "GFLOPs": 1e9, "GMACs": 1e9, "million": 1e6, "M": 1e6, "M params": 1e6,
    "MFLOPs": 1e6, "MAdds": 1e6, "%": 1.0, "ms": 1.0, "params": 1.0, "FLOPs": 1.0, "MACs": 1.0,
    "multiply-adds": 1.0, "count": 1.0, "Batches/sec": 1.0, "Images/sec": 1.0, "ops": 1.0,
}


class PublishedLookupError(LookupError):
    """A lookup matched no published row, or more than one."""


@dataclass(frozen=True)
class Published:
    """One published figure, as printed, with where it was printed."""

    source: str
    table: str
    model: str
    variant: str
    input_res: str
    metric: str
    value: str
    unit: str
    convention: str
    note: str

    @property
    def citation(self) -> str:
        """``"arXiv:1709.01507v4 (Hu et al., ...), Table 2"``."""
        return f"{self.source}, {self.table}" if self.table and self.table != "-" else self.source

    def number(self) -> float:
        """The value in base units: ``"3.87"`` GFLOPs -> 3.87e9, ``"28.1M"`` -> 28.1e6,
        ``"23.29"`` % -> 23.29. Raises ``ValueError`` for a value that is not one number."""
        text = self.value.strip().replace(",", "")
        power = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*x\s*10\^([0-9]+)", text)  # ResNeXt's "25.0x10^6"
        if power:
            return float(f"{power.group(1)}e{power.group(2)}")
        match = re.fullmatch(r"~?\s*([0-9]*\.?[0-9]+)\s*([KMGB]?)\s*(?:%|ms)?", text)
        if not match:
            raise ValueError(f"published value {self.value!r} ({self.model}, {self.metric}) is not a single number")
        value, suffix = float(match.group(1)), match.group(2)
        if suffix:
            return value * _SUFFIX[suffix]
        if self.unit.isdigit():  # derived rows repeat the exact integer in the unit column
            return value
        if self.unit not in _UNIT_SCALE:
            raise ValueError(f"unit {self.unit!r} of {self.model} {self.metric} has no known scale")
        return value * _UNIT_SCALE[self.unit]


@lru_cache(maxsize=1)
def published_rows() -> tuple[Published, ...]:
    """Every row of the reference table."""
    text = resources.files("archstat.data").joinpath("published.csv").read_text(encoding="utf-8")
    return tuple(Published(**row) for row in csv.DictReader(text.splitlines()))


def published(*, model: str, metric: str, source: str = "", table: str = "", variant: str | None = None,
              input_res: str | None = None) -> Published:
    """The one row matching: exact ``model`` and ``metric``, ``source`` and ``table`` as
    substrings, ``variant`` / ``input_res`` exact when given. Anything but exactly one
    match raises :class:`PublishedLookupError`, so a citation can never silently change."""
    hits = [
        r for r in published_rows()
        if r.model == model and r.metric == metric and source in r.source and table in r.table
        and (variant is None or r.variant == variant) and (input_res is None or r.input_res == input_res)
    ]
    if len(hits) != 1:
        raise PublishedLookupError(
            f"{len(hits)} published rows for model={model!r} metric={metric!r} source~{source!r} table~{table!r}"
            f" variant={variant!r}")
    return hits[0]


def agrees_with_printed(measured: float, printed: str, rel_tol: float) -> bool:
    """Does ``measured`` agree with a figure printed as ``printed`` (e.g. ``"0.057"``)?

    Yes when within ``rel_tol`` (relative), or when it rounds to the printed digits: a
    figure printed as 0.057 only says "between 0.0565 and 0.0575", a 0.9% window, so a
    0.5% test would demand more precision than the publication has.
    """
    value = float(printed)
    if abs(measured - value) <= rel_tol * abs(value):
        return True
    decimals = len(printed.partition(".")[2])
    return round(measured, decimals) == round(value, decimals)
