"""Published against counted: the comparison ``archstat zoo --check`` prints and tests/zoo asserts.

For each figure a :class:`~archstat.zoo.registry.ZooEntry` is checked against, a
:class:`Comparison` holds the published row (with its citation), the count taken the way
the publication counted (:class:`~archstat.conventions.PaperScope`), the relative delta
and the verdict of the figure's :class:`~archstat.zoo.registry.Expected`:

``ok``
    within the figure's stated tolerance;
``finding``
    outside it, at the count the recorded finding explains (its ``observed`` band);
``mismatch``
    outside the tolerance and outside any recorded finding's band: the implementation or
    the metadata is wrong;
``stale finding``
    inside the tolerance although a finding is recorded: the finding no longer holds;
``unpublished``
    no publication prints this figure (the count is shown on its own).

Counts are at the entry's input size (the paper's). The paper tables of
:mod:`archstat.reports.paper_tables` judge their figures with the same
:class:`Comparison`, so a figure has one verdict wherever it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

from archstat.conventions import PaperScope
from archstat.counting.stats import ModelStats
from archstat.published import Published
from archstat.zoo.registry import Expected, ZooEntry

__all__ = ["Comparison", "judge", "compare", "count_entry", "VERDICTS", "METRICS"]

METRICS = ("params", "madds")
VERDICTS = ("ok", "finding", "mismatch", "stale finding", "unpublished")


@dataclass(frozen=True)
class Comparison:
    """One published figure of one model beside its count (``counted``: in the figure's scope)."""

    model: str
    metric: str
    counted: float
    expected: Expected | None = None

    @property
    def published(self) -> Published | None:
        return self.expected.ref.resolve() if self.expected else None

    @property
    def published_value(self) -> float | None:
        return self.expected.value if self.expected else None

    @property
    def delta(self) -> float | None:
        """(counted - published) / published."""
        value = self.published_value
        return None if value is None else (self.counted - value) / value

    @property
    def verdict(self) -> str:
        return "unpublished" if self.expected is None else self.expected.verdict(self.counted)

    @property
    def convention(self) -> str:
        """What the count covers: ``"multiply-adds without the FC layer"``, ``"params"`` ..."""
        return (self.expected.scope if self.expected else PaperScope()).describe(self.metric)


def judge(model: str, metric: str, stats: ModelStats, expected: Expected | None) -> Comparison:
    """``stats``'s ``metric`` counted in ``expected``'s scope (the default scope without one), judged."""
    scope = expected.scope if expected is not None else PaperScope()
    return Comparison(model, metric, scope.count(stats, metric), expected)


def compare(entry: ZooEntry, stats: ModelStats) -> list[Comparison]:
    """Both metrics of ``entry`` against ``stats`` (a count of ``entry`` at its input size)."""
    expected = entry.expected()
    return [judge(entry.name, metric, stats, expected.get(metric)) for metric in METRICS]


def count_entry(entry: ZooEntry, **options: object) -> ModelStats:
    """Count ``entry`` at the input size its paper used (``options`` go to :func:`archstat.count`)."""
    from archstat.api import count

    return count(entry.name, (1, *entry.input_size), **options)  # type: ignore[arg-type]
