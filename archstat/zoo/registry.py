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

from archstat.published import Published, published

__all__ = ["Ref", "Expected", "ZooEntry", "ZOO", "register_model"]


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
    """

    ref: Ref
    tolerance: float
    reason: str


@dataclass(frozen=True)
class ZooEntry:
    """A registered model: how to build it and what the literature says about it.

    ``input_size`` is ``(C, H, W)`` as the paper used it. ``params`` / ``madds`` are the
    figures the implementation is checked against; ``top1_err`` / ``top5_err`` are quoted
    only. ``differs`` says how this network differs from torchvision's or timm's network
    of the same name; ``finding`` records a gap to the paper that archstat could
    explain or could not.
    """

    name: str
    builder: Callable[[], nn.Module]
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

    def build(self) -> nn.Module:
        return self.builder()


#: name -> entry, filled by :func:`register_model` when the family modules are imported.
ZOO: dict[str, ZooEntry] = {}


def register_model(name: str, **metadata: object) -> Callable[[Callable[[], nn.Module]], Callable[[], nn.Module]]:
    """Register a zero-argument builder under ``name`` with :class:`ZooEntry` ``metadata``.

    Raises ``ValueError`` if ``name`` is taken: two builders under one name would make
    a published table ambiguous.
    """

    def register(builder: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
        if name in ZOO:
            raise ValueError(f"model {name!r} is already registered")
        ZOO[name] = ZooEntry(name=name, builder=builder, **metadata)  # type: ignore[arg-type]
        return builder

    return register
