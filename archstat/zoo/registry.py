"""The zoo's registry: every paper-faithful model with the metadata that says what it is.

Like torchvision's ``register_model`` (and unlike a hand-kept list), registering the
same name twice raises. Each :class:`ZooEntry` names its paper and arXiv id, the
input size the paper used, and :class:`Ref` pointers into the published-figures table
(:mod:`archstat.published`) for the figures the paper prints, so a published number is
never typed twice and always travels with its source.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Callable

from torch import nn

from archstat.published import Published, published

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
    """A published figure and how close a faithful implementation must come to it.

    ``tolerance`` is relative (0.005 = 0.5%); ``reason`` says where the remaining gap
    comes from (the paper's rounding, a classifier the paper left out, ...).
    ``finding`` records a gap larger than ``tolerance`` that archstat cannot explain:
    such a figure is reported as a finding, never absorbed by widening the tolerance
    (and a finding that stops being one, because the count moved inside the
    tolerance, is flagged too). ``bn_affine=False`` says the publication counted
    parameters without batch norm's gamma/beta (ResNeXt's 25.5 M for ResNet-50);
    ``with_fc=False`` says it counted multiply-adds without the final fully connected
    layer (ShuffleNet's Table 1): the measured side is then counted the same way.
    """

    ref: Ref
    tolerance: float
    reason: str
    finding: str = ""
    bn_affine: bool = True
    with_fc: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance {self.tolerance} of {self.ref.model} {self.ref.metric} must be in [0, 1)")
        if not self.reason:
            raise ValueError(f"{self.ref.model} {self.ref.metric}: a tolerance needs a written reason")


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
    text = ref.resolve().value.strip().replace(",", "")
    match = re.match(r"~?\s*([0-9]*\.?([0-9]*))", text)
    if match is None or not match.group(1):
        raise ValueError(f"{ref.model} {ref.metric}: {text!r} is not a printed number")
    return 0.5 * 10.0 ** -len(match.group(2)) / float(match.group(1))


def torchvision_builder(name: str, **defaults: object) -> Callable[..., nn.Module]:
    """A builder for torchvision's ``name`` (random weights), for entries where
    torchvision's network is the paper's: one implementation, not a copy of it.
    ``defaults`` are construction options that change no parameter (``init_weights``)."""

    def build(**kwargs: object) -> nn.Module:
        from torchvision.models import get_model

        return get_model(name, weights=None, **{**defaults, **kwargs})

    build.__name__ = name
    build.__doc__ = f"torchvision's ``{name}`` with random weights."
    return build
