"""The zoo's registry: every paper-faithful model with the metadata that says what it is.

Like torchvision's ``register_model`` (and unlike a hand-kept list), registering the
same name twice raises. Each :class:`ZooEntry` names its paper and arXiv id, the
input size the paper used, and :class:`Ref` pointers into the published-figures table
(:mod:`archstat.published`) for the figures the paper prints, so a published number is
never typed twice and always travels with its source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from torch import nn

from archstat.conventions import PaperScope
from archstat.published import Published, printed_number, published

__all__ = ["Ref", "Expected", "ZooEntry", "ZOO", "register_model", "torchvision_builder", "printed_rounding"]


@dataclass(frozen=True)
class Ref:
    """Where a published figure lives in the reference table (see :func:`archstat.published.published`)."""

    model: str
    metric: str
    source: str = ""
    table: str = ""
    variant: str | None = None
    input_res: str | None = None

    def resolve(self) -> Published:
        return published(**asdict(self))


@dataclass(frozen=True)
class Expected:
    """A published figure and the one judgement of a count against it.

    ``tolerance`` is relative (0.005 = 0.5%) and ``reason`` says what it allows for (the
    paper's rounding, a round figure, ...). A count within it is ``ok``.

    ``finding`` records a gap larger than ``tolerance`` that archstat reports instead of
    closing, and ``observed`` the count that gap is, quoted as the finding text prints it
    (``"3.8605 G"``, ``"6,998,552"``): the finding explains counts that print so, the band
    :attr:`band`, and nothing else. A count outside the tolerance and outside the band is a
    ``mismatch`` (the finding does not explain it), one back within the tolerance a
    ``stale finding``. A finding is never absorbed by widening the tolerance.

    ``scope`` says what the publication's figure covers (without the FC layer, without BN
    gamma/beta ...: :class:`~archstat.conventions.PaperScope`); the count is taken the same
    way before it is judged.
    """

    ref: Ref
    tolerance: float
    reason: str
    finding: str = ""
    observed: str = ""
    scope: PaperScope = PaperScope()

    def __post_init__(self) -> None:
        name = f"{self.ref.model} {self.ref.metric}"
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance {self.tolerance} of {name} must be in [0, 1)")
        if not self.reason:
            raise ValueError(f"{name}: a tolerance needs a written reason")
        if bool(self.finding) != bool(self.observed):
            raise ValueError(f"{name}: a finding states the count it explains (observed=...), and only a finding does")
        if self.observed:
            if self.observed not in self.finding:
                raise ValueError(f"{name}: the finding must quote the count it explains, {self.observed!r}")
            lo, hi = self.band  # type: ignore[misc]
            if lo <= self.value * (1 + self.tolerance) and hi >= self.value * (1 - self.tolerance):
                raise ValueError(f"{name}: the observed {self.observed} is within the tolerance of "
                                 f"{self.ref.resolve().value}: that is no finding")

    @classmethod
    def rounded(cls, ref: Ref, reason: str, **options: object) -> "Expected":
        """The figure ``ref`` judged to half a unit of its last printed digit (:func:`printed_rounding`):
        the tolerance its printing alone explains. ``reason`` says how it is printed."""
        return cls(ref, printed_rounding(ref), reason, **options)  # type: ignore[arg-type]

    @property
    def value(self) -> float:
        """The published figure in base units."""
        return self.ref.resolve().number()

    @property
    def band(self) -> tuple[float, float] | None:
        """The counts the finding explains: those that print as ``observed``; None without a finding."""
        return printed_number(self.observed).interval if self.observed else None

    def verdict(self, counted: float) -> str:
        """``ok``, ``finding``, ``mismatch`` or ``stale finding`` for ``counted`` (taken in :attr:`scope`)."""
        if abs(counted - self.value) <= self.tolerance * self.value:
            return "stale finding" if self.finding else "ok"
        band = self.band
        return "finding" if band is not None and band[0] <= counted <= band[1] else "mismatch"


@dataclass(frozen=True)
class ZooEntry:
    """A registered model: how to build it and what the literature says about it.

    ``input_size`` is ``(C, H, W)`` as the paper used it. ``params`` / ``madds`` are the
    figures the implementation is checked against (``None`` where no publication
    prints one; ``note`` then says so); ``top1_err`` / ``top5_err`` are quoted only.
    ``table`` names where the figures come from. ``differs`` says how this network
    differs from torchvision's or timm's network of the same name; ``finding``
    records what archstat noticed about the publication (each :class:`Expected`
    carries its own metric's finding). ``same_as`` lists ``timm:<name>`` /
    ``torchvision:<name>`` networks with the same architecture, whose params and
    madds must equal ours exactly.
    """

    name: str
    builder: Callable[..., nn.Module]
    family: str
    paper: str
    arxiv: str
    input_size: tuple[int, int, int] = (3, 224, 224)
    params: Expected | None = None
    madds: Expected | None = None
    top1_err: Ref | None = None
    top5_err: Ref | None = None
    differs: str = ""
    finding: str = ""
    same_as: tuple[str, ...] = field(default_factory=tuple)
    table: str = ""
    note: str = ""

    def build(self, **kwargs: object) -> nn.Module:
        return self.builder(**kwargs)

    def expected(self) -> dict[str, Expected]:
        """``{"params": ..., "madds": ...}`` for the figures this entry is checked against."""
        return {metric: e for metric, e in (("params", self.params), ("madds", self.madds)) if e is not None}


#: name -> entry, filled by :func:`register_model` when the family modules are imported.
ZOO: dict[str, ZooEntry] = {}


def register_model(name: str, **metadata: object) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder (called with no arguments, or with model keyword arguments
    such as ``num_classes``) under ``name`` with :class:`ZooEntry` ``metadata``.

    Raises ``ValueError`` if ``name`` is taken: two builders under one name would make
    a published table ambiguous.
    """

    def register(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in ZOO:
            raise ValueError(f"model {name!r} is already registered")
        ZOO[name] = ZooEntry(name=name, builder=builder, **metadata)  # type: ignore[arg-type]
        return builder

    return register


def printed_rounding(ref: Ref) -> float:
    """Half a unit in the last digit ``ref``'s figure is printed with, relative to the
    figure: the tolerance that printed rounding alone explains. ``"569"`` -> 0.5/569,
    ``"3.86"`` -> 0.005/3.86, ``"25.0x10^6"`` -> 0.05/25.0, ``"28.1M"`` -> 0.05/28.1."""
    printed = printed_number(ref.resolve().value)
    return printed.half_unit / printed.value


def torchvision_builder(name: str, **defaults: object) -> Callable[..., nn.Module]:
    """A builder for torchvision's ``name`` (random weights), for entries where
    torchvision's network is the paper's: one implementation, not a copy of it.
    ``defaults`` are construction options that change no parameter (``init_weights``)."""

    def build(**kwargs: object) -> nn.Module:
        from torchvision.models import get_model  # type: ignore[import-untyped]

        return get_model(name, weights=None, **{**defaults, **kwargs})

    build.__name__ = name
    build.__doc__ = f"torchvision's ``{name}`` with random weights."
    return build
