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

__all__ = ["Cell", "METRICS", "TIMING_METRICS", "expand_cells", "parse_sizes", "variants"]

#: What a cell can measure, in the order a sweep runs them.
METRICS = ("count", "train", "latency")

#: Metrics whose result depends on the machine.
TIMING_METRICS = frozenset({"latency"})


@dataclass(frozen=True, order=True)
class Cell:
    """One measurement: ``model`` (a resolved name), ``size`` (the square image side, or None
    for the size the model was published at), ``batch`` and ``metric``; ``variant``, the
    setting that changes the metric's numbers (a ``train`` cell's optimizer, a ``latency``
    cell's thread count when one is asked for: :func:`variants`), so a sweep with another
    optimizer is other cells, never the old rows."""

    model: str
    size: int | None
    batch: int
    metric: str
    variant: str = ""

    @property
    def key(self) -> str:
        """``resnet50|224|b1|count``, ``resnet50|224|b1|train|adam``: the cell's identity in the
        results database."""
        base = f"{self.model}|{self.size if self.size is not None else 'default'}|b{self.batch}|{self.metric}"
        return f"{base}|{self.variant}" if self.variant else base

    @property
    def timing(self) -> bool:
        """Does the result depend on the machine (and need cores of its own)?"""
        return self.metric in TIMING_METRICS

    @property
    def size_text(self) -> str | None:
        """``"224x224"`` for :func:`archstat.api.resolve_inputs`, None for the published size."""
        return None if self.size is None else f"{self.size}x{self.size}"

    @classmethod
    def from_key(cls, key: str) -> "Cell":
        parts = key.split("|")
        variant = "" if parts[-1] in METRICS else parts.pop()
        model, size, batch, metric = "|".join(parts[:-3]), *parts[-3:]
        return cls(model, None if size == "default" else int(size), int(batch.removeprefix("b")), metric, variant)


def variants(optimizer: str, threads: int | None) -> dict[str, str]:
    """The :attr:`Cell.variant` of each metric: ``train`` cells carry their optimizer, ``latency``
    cells ``t<threads>`` when a thread count is given (else the cores the worker is pinned to)."""
    return {"train": optimizer, "latency": f"t{threads}" if threads else ""}


def parse_sizes(text: str | None) -> list[int | None]:
    """``"224,320"`` -> ``[224, 320]``; ``"default"`` (or None) is each model's published size."""
    if text is None:
        return [None]
    sizes: list[int | None] = []
    for part in (p.strip().lower() for p in text.split(",")):
        if not part:
            continue
        if part == "default":
            sizes.append(None)
            continue
        side, cross, other = part.partition("x")
        if not side.isdigit() or (cross and other != side) or int(side) < 1:
            raise ArchstatError(f"--sizes takes square image sides (224,320 or 224x224) or 'default', not {part!r}")
        sizes.append(int(side))
    if not sizes:
        raise ArchstatError(f"--sizes takes square image sides (224,320 or 224x224) or 'default', not {text!r}")
    return list(dict.fromkeys(sizes))


def parse_batches(text: str | int | None) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]``."""
    given = "1" if text is None else str(text)
    parts = [text] if isinstance(text, int) else [p for p in given.split(",") if p.strip()]
    try:
        batches = [int(p) for p in parts]
    except ValueError:
        raise ArchstatError(f"--batch takes comma-separated positive integers (1,8,32), not {text!r}") from None
    if not batches or any(b < 1 for b in batches):
        raise ArchstatError(f"--batch takes positive integers, not {text!r}")
    return list(dict.fromkeys(batches))


def parse_metrics(text: str | None) -> list[str]:
    """``"count,latency"`` -> ``["count", "latency"]`` (in :data:`METRICS` order)."""
    wanted = [p.strip() for p in ("count" if text is None else text).split(",") if p.strip()]
    unknown = [m for m in wanted if m not in METRICS]
    if unknown or not wanted:
        raise ArchstatError(f"unknown metric {', '.join(unknown) or '(none)'}; --metrics takes {', '.join(METRICS)}")
    return [m for m in METRICS if m in wanted]


def expand_cells(models: Sequence[str], sizes: Iterable[int | None], batches: Iterable[int],
                 metrics: Iterable[str], variant: Mapping[str, str] | None = None) -> list[Cell]:
    """Every cell of the product, grouped by model (so one model's cells run close together);
    ``variant``: each metric's :attr:`Cell.variant` (see :func:`variants`)."""
    sizes, batches, metrics = list(sizes), list(batches), list(metrics)
    variant = variant or {}
    return [Cell(m, s, b, metric, variant.get(metric, "")) for m in models for s in sizes for b in batches
            for metric in metrics]
