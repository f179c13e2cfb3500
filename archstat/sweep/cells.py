"""The unit of a sweep: one model, at one input size and batch, measured one way.

A sweep is the product ``models x sizes x batches x metrics``; each element is a
:class:`Cell`, identified by :attr:`Cell.key`. What a metric measures:

``count``
    an inference count (:func:`archstat.count`): params, multiply-adds, FLOPs, memory access.
    Machine-independent: it runs anywhere and is stored once.
``train``
    a training step (``archstat.count(..., mode="train")``): the backward multiply-adds, the
    optimizer step, the saved activations and the estimated peak. Machine-independent.
``latency``
    the median forward time on a device (:func:`archstat.latency.measure`): only meaningful
    on the machine it ran on, so it is stored per machine, and a timing cell never shares a
    core (or a GPU) with another timing cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from archstat.errors import ArchstatError
from archstat.grammar import DEFAULT_SIZE, size_text

__all__ = ["Cell", "METRICS", "TIMING_METRICS", "expand_cells", "parse_metrics", "variants"]

#: What a cell can measure, in the order a sweep runs them.
METRICS = ("count", "train", "latency")

#: Metrics whose result depends on the machine.
TIMING_METRICS = frozenset({"latency"})


@dataclass(frozen=True, order=True)
class Cell:
    """One measurement: ``model`` (a resolved name), ``size`` (an input size in its canonical
    spelling, :func:`archstat.grammar.size_text`: ``"224"``, ``"480x640"``; None for the size
    the model was published at), ``batch`` and ``metric``; ``variant``, the
    setting that changes the metric's numbers (a ``train`` cell's optimizer, a ``latency``
    cell's thread count when one is asked for: :func:`variants`), so a sweep with another
    optimizer is other cells, never the old rows."""

    model: str
    size: str | None
    batch: int
    metric: str
    variant: str = ""

    def __post_init__(self) -> None:  # a side given as a number (224), or spelled 224x224, is the cell "224"
        if self.size is not None:
            object.__setattr__(self, "size", size_text(str(self.size)))

    @property
    def key(self) -> str:
        """``resnet50|224|b1|count``, ``resnet50|224|b1|train|adam``: the cell's identity in the
        results database."""
        base = f"{self.model}|{self.size if self.size is not None else DEFAULT_SIZE}|b{self.batch}|{self.metric}"
        return f"{base}|{self.variant}" if self.variant else base

    @property
    def timing(self) -> bool:
        """Does the result depend on the machine (and need cores of its own)?"""
        return self.metric in TIMING_METRICS

    @classmethod
    def from_key(cls, key: str) -> "Cell":
        parts = key.split("|")
        variant = "" if parts[-1] in METRICS else parts.pop()
        model, size, batch, metric = "|".join(parts[:-3]), *parts[-3:]
        return cls(model, None if size == DEFAULT_SIZE else size, int(batch.removeprefix("b")), metric, variant)


def variants(optimizer: str, threads: int | None) -> dict[str, str]:
    """The :attr:`Cell.variant` of each metric: ``train`` cells carry their optimizer, ``latency``
    cells ``t<threads>`` when a thread count is given (else the cores the worker is pinned to)."""
    return {"train": optimizer, "latency": f"t{threads}" if threads else ""}


def parse_metrics(text: str | None) -> list[str]:
    """``"count,latency"`` -> ``["count", "latency"]`` (in :data:`METRICS` order)."""
    wanted = [p.strip() for p in ("count" if text is None else text).split(",") if p.strip()]
    unknown = [m for m in wanted if m not in METRICS]
    if unknown or not wanted:
        raise ArchstatError(f"unknown metric {', '.join(unknown) or '(none)'}; --metrics takes {', '.join(METRICS)}")
    return [m for m in METRICS if m in wanted]


def expand_cells(models: Sequence[str], sizes: Iterable[str | None], batches: Iterable[int],
                 metrics: Iterable[str], variant: Mapping[str, str] | None = None) -> list[Cell]:
    """Every cell of the product, grouped by model (so one model's cells run close together);
    ``variant``: each metric's :attr:`Cell.variant` (see :func:`variants`)."""
    sizes, batches, metrics = list(sizes), list(batches), list(metrics)
    variant = variant or {}
    return [Cell(m, s, b, metric, variant.get(metric, "")) for m in models for s in sizes for b in batches
            for metric in metrics]
