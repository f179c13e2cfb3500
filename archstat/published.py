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

__all__ = ["Published", "PrintedNumber", "printed_number", "published_rows", "published", "PublishedLookupError",
           "agrees_with_printed"]

_SUFFIX = {"K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9}
_UNIT_SCALE = {
    "x10^9": 1e9, "G": 1e9, "GFLOPs": 1e9, "GMACs": 1e9, "million": 1e6, "M": 1e6, "M params": 1e6,
    "MFLOPs": 1e6, "MAdds": 1e6, "%": 1.0, "ms": 1.0, "params": 1.0, "FLOPs": 1.0, "MACs": 1.0,
    "multiply-adds": 1.0, "count": 1.0, "Batches/sec": 1.0, "Images/sec": 1.0, "ops": 1.0,
}


class PublishedLookupError(LookupError):
    """A lookup matched no published row, or more than one."""


#: One printed number: digits (commas allowed), then a power of ten (``x10^6``) or a K/M/G/B
#: suffix, then an optional ``%`` or ``ms``; a leading ``~`` is allowed.
_PRINTED = re.compile(r"~?\s*(?P<digits>[0-9]*\.?[0-9]+)\s*(?:x\s*10\^(?P<power>[0-9]+)|(?P<suffix>[KMGB]))?"
                      r"\s*(?:%|ms)?")


@dataclass(frozen=True)
class PrintedNumber:
    """A number as printed, and what its printing says about the exact value.

    ``value`` and ``half_unit`` (half a unit of the last printed digit: ``"3.86"`` -> 0.005)
    carry the scale the text itself gives (``"28.1M"``, ``"25.0x10^6"``), not a unit
    column's; ``scaled`` says whether the text gave one. A value printed as ``x`` stands
    for anything in ``[x - half_unit, x + half_unit]``.
    """

    value: float
    half_unit: float
    scaled: bool

    @property
    def interval(self) -> tuple[float, float]:
        """The exact values that print as this number."""
        return self.value - self.half_unit, self.value + self.half_unit


def printed_number(text: str) -> PrintedNumber:
    """Parse one printed number: ``"3.8605 G"`` -> 3.8605e9 +- 5e4, ``"6,998,552"`` -> exact to
    +-0.5, ``"25.0x10^6"`` -> 25.0e6 +- 0.05e6, ``"1.19"`` (a percentage) -> 1.19 +- 0.005.
    Raises ``ValueError`` for text that is not one number."""
    match = _PRINTED.fullmatch(text.strip().replace(",", ""))
    if match is None:
        raise ValueError(f"{text!r} is not a single printed number")
    digits, power, suffix = match["digits"], match["power"], match["suffix"]
    decimals = len(digits.partition(".")[2])
    if power:  # "4.1x10^9" read as 4.1e9 exactly (4.1 * 1e9 is not)
        return PrintedNumber(float(f"{digits}e{power}"), float(f"5e{int(power) - decimals - 1}"), True)
    scale = _SUFFIX[suffix] if suffix else 1.0
    return PrintedNumber(float(digits) * scale, 0.5 * 10.0 ** -decimals * scale, bool(suffix))


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
        try:
            printed = printed_number(self.value)
        except ValueError:
            raise ValueError(f"published value {self.value!r} ({self.model}, {self.metric}) is not a single "
                             "number") from None
        if printed.scaled or self.unit.isdigit():  # derived rows repeat the exact integer in the unit column
            return printed.value
        if self.unit not in _UNIT_SCALE:
            raise ValueError(f"unit {self.unit!r} of {self.model} {self.metric} has no known scale")
        return printed.value * _UNIT_SCALE[self.unit]


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
