"""Published against counted: the comparison ``archstat zoo --check`` prints and tests/zoo asserts.

For each figure a :class:`~archstat.zoo.registry.ZooEntry` is checked against, a
:class:`Comparison` holds the published row (with its citation), the count measured the
way the publication counted, the relative delta and a verdict:

``ok``
    within the entry's stated tolerance;
``finding``
    outside it, and the entry records why archstat cannot explain the gap;
``mismatch``
    outside it with nothing recorded: the implementation or the metadata is wrong;
``stale finding``
    inside the tolerance although a finding is recorded: the finding no longer holds;
``unpublished``
    no publication prints this figure (the count is shown on its own).

Counts are at the entry's input size (the paper's). Parameters are those the inference
forward pass uses (torchvision's ``inception_v3`` also holds an auxiliary head that only
training runs), without batch norm's gamma/beta where the publication counted so;
multiply-adds are conv + FC, without the final FC layer where the publication left it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from archstat.counting.stats import ModelStats
from archstat.published import Published
from archstat.zoo.registry import Expected, ZooEntry

__all__ = ["Comparison", "compare", "count_entry", "measured", "bn_affine_params", "classifier_madds", "VERDICTS"]

METRICS = ("params", "madds")
VERDICTS = ("ok", "finding", "mismatch", "stale finding", "unpublished")


@dataclass(frozen=True)
class Comparison:
    """One published figure of one model beside its count."""

    model: str
    metric: str
    counted: int
    expected: Expected | None = None

    @property
    def published(self) -> Published | None:
        return self.expected.ref.resolve() if self.expected else None

    @property
    def published_value(self) -> float | None:
        row = self.published
        return row.number() if row else None

    @property
    def delta(self) -> float | None:
        """(counted - published) / published."""
        value = self.published_value
        return None if value is None else (self.counted - value) / value

    @property
    def within_tolerance(self) -> bool:
        delta = self.delta
        return delta is not None and self.expected is not None and abs(delta) <= self.expected.tolerance

    @property
    def verdict(self) -> str:
        if self.expected is None:
            return "unpublished"
        if self.within_tolerance:
            return "stale finding" if self.expected.finding else "ok"
        return "finding" if self.expected.finding else "mismatch"

    @property
    def convention(self) -> str:
        if self.metric == "madds":
            return "multiply-adds without the FC layer" if self.expected and not self.expected.with_fc else \
                "multiply-adds"
        return "params without BN gamma/beta" if self.expected and not self.expected.bn_affine else "params"


def bn_affine_params(stats: ModelStats) -> int:
    """Parameters of batch norm layers (gamma and beta), from the counted rows."""
    return sum(r.cost.params for r in stats.records if r.category is not None and r.category.op == "batch_norm")


def classifier_madds(stats: ModelStats) -> int:
    """Multiply-adds of the final fully connected layer (the last linear op counted)."""
    linear = [r for r in stats.records if r.category is not None and r.category.family == "linear"]
    if not linear:
        raise ValueError(f"{stats.model} has no fully connected layer")
    return linear[-1].cost.madds


def measured(stats: ModelStats, metric: str, expected: Expected | None = None) -> int:
    """The count of ``metric`` in the convention ``expected`` says the publication used."""
    if metric == "madds":
        return stats.madds - (classifier_madds(stats) if expected is not None and not expected.with_fc else 0)
    if metric != "params":
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    params = stats.params - sum(stats.unused_params.values())
    if expected is not None and not expected.bn_affine:
        params -= bn_affine_params(stats)
    return params


def compare(entry: ZooEntry, stats: ModelStats) -> list[Comparison]:
    """Both metrics of ``entry`` against ``stats`` (a count of ``entry`` at its input size)."""
    expected = entry.expected()
    return [Comparison(entry.name, metric, measured(stats, metric, expected.get(metric)), expected.get(metric))
            for metric in METRICS]


def count_entry(entry: ZooEntry, **options: object) -> ModelStats:
    """Count ``entry`` at the input size its paper used (``options`` go to :func:`archstat.count`)."""
    from archstat.api import count

    return count(entry.name, (1, *entry.input_size), **options)  # type: ignore[arg-type]
