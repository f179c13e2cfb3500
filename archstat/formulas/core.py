"""The vocabulary every formula speaks: shapes, costs and the one formula registry.

Nothing here imports torch: a formula is a pure function of shapes and layer
hyper-parameters, so the analytical path (tables, guideline experiments) and the
hook-based counter call exactly the same code.

Units
-----
``params``
    Learnable parameters the op owns (weights and biases; BN gamma/beta).
``madds``
    Multiply-accumulates of conv / linear / matmul / attention: one multiply-add
    counts 1. This is the "FLOPs" of the ResNet, MobileNet, ShuffleNet and SENet
    papers and the "GFLOPS" of torchvision's weight metadata.
``flops``
    Floating-point operations: ``2 * madds`` for the multiply-add ops; for every
    other op its own documented count (one per output element for element-wise
    ops, one per element combined for pooling and reductions).
``mem_access``
    Memory access cost as defined by ShuffleNet V2 (Ma et al., arXiv:1807.11164,
    Sec. 2, G1): the number of *elements* read and written when every tensor is
    touched exactly once, i.e. inputs + outputs + weights. Bytes follow from the
    dtype (``mem_access * itemsize``). A different cache model is a different
    function, never a silent change to this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Callable, Iterable, Sequence, TypeVar

Shape = tuple[int, ...]
IntOrSeq = int | Sequence[int]

__all__ = [
    "Cost",
    "OpCost",
    "Shape",
    "ShapeError",
    "FORMULAS",
    "formula",
    "numel",
    "expand",
]


class ShapeError(ValueError):
    """A layer cannot run on the shape it was given (e.g. input smaller than the kernel)."""


@dataclass(frozen=True)
class Cost:
    """What one op (or a sum of ops) costs. All fields are exact integers."""

    params: int = 0
    madds: int = 0
    flops: int = 0
    mem_access: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(
            self.params + other.params,
            self.madds + other.madds,
            self.flops + other.flops,
            self.mem_access + other.mem_access,
        )

    def scaled(self, times: int) -> "Cost":
        """The cost of running the op ``times`` times (weights shared, so params unchanged)."""
        return Cost(self.params, self.madds * times, self.flops * times, self.mem_access * times)


@dataclass(frozen=True)
class OpCost:
    """A formula's answer: the cost, the output shape it implies, and the layer's category.

    ``kind`` is a human label used for by-type summaries (``"conv 1x1"``,
    ``"conv dw 3x3"``, ``"linear"``, ``"add"`` ...), in the spirit of the MobileNet
    paper's Table 2 (resource per layer type).
    """

    cost: Cost
    output_shape: Shape | tuple[Shape, ...]
    kind: str
    attrs: dict = field(default_factory=dict)


F = TypeVar("F", bound=Callable[..., OpCost])

#: The one registry of formulas: name -> function. Filled by :func:`formula`.
FORMULAS: dict[str, Callable[..., OpCost]] = {}


def formula(name: str) -> Callable[[F], F]:
    """Register a formula under ``name``; a second registration of the same name is an error."""

    def register(fn: F) -> F:
        if name in FORMULAS:
            raise ValueError(f"formula {name!r} is already registered by {FORMULAS[name].__qualname__}")
        FORMULAS[name] = fn
        return fn

    return register


def numel(shape: Iterable[int]) -> int:
    """Number of elements of a tensor of ``shape`` (1 for a scalar shape ``()``)."""
    return prod(shape)


def expand(value: IntOrSeq, ndim: int, what: str = "value") -> tuple[int, ...]:
    """``3 -> (3, 3)`` for ``ndim=2``; a sequence must already have ``ndim`` entries."""
    if isinstance(value, int):
        return (value,) * ndim
    values = tuple(int(v) for v in value)
    if len(values) == 1 and ndim > 1:
        return values * ndim
    if len(values) != ndim:
        raise ValueError(f"{what} {values} does not have {ndim} entries")
    return values
