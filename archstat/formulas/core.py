"""The vocabulary every formula speaks: shapes, costs and the one formula registry.

Nothing here imports torch: a formula is a pure function of shapes and layer
hyper-parameters, so the analytical path (tables, guideline experiments) and the
counter call exactly the same code.

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
    "Category",
    "FAMILIES",
    "MULTIPLY_ADD_FAMILIES",
    "Shape",
    "ShapeError",
    "EmptyOutputError",
    "with_batch",
    "without_batch",
    "FORMULAS",
    "COUNTS",
    "formula",
    "numel",
    "expand",
    "wrap_dim",
]


class ShapeError(ValueError):
    """A layer cannot run on the shape it was given (wrong rank or channel count, input
    smaller than the kernel): torch would reject the input, so archstat refuses it."""


class EmptyOutputError(ShapeError):
    """The input is too small for the layer: its output would have no elements."""


@dataclass(frozen=True, slots=True)
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


#: The op families a :class:`Category` names. Consumers (memory models, guidelines, zoo
#: checks, paper tables, conventions) dispatch on these, never on display labels.
FAMILIES = frozenset({
    "conv",           # convolution and transposed convolution (also deformable)
    "linear",         # fully connected layers
    "matmul",         # matmul / bmm / einsum / outer products
    "attention",      # scaled dot-product and multi-head attention
    "recurrent",      # RNN / LSTM / GRU layers and cells
    "norm",           # batch / instance / layer / group / RMS / local response norm
    "activation",     # ReLU, SiLU, GELU ... (ACTIVATIONS)
    "elementwise",    # arithmetic, comparisons, unary math, softmax
    "pool",           # max / average / adaptive pooling, fold
    "reduction",      # mean, sum, amax ... over dimensions
    "scan",           # cumulative sum / product
    "resample",       # interpolate, grid_sample, roi_align
    "spectral",       # FFTs
    "sort",           # sort, topk, unique, nms
    "embedding",      # embedding lookups
    "loss",           # loss functions (cross entropy, MSE ...)
    "data_movement",  # cat, split, shuffle, copy, cast, pad, gather, scatter, fill
})

#: Families whose multiply-adds are the "FLOPs" of the papers (and of every counter).
MULTIPLY_ADD_FAMILIES = frozenset({"conv", "linear", "matmul", "attention", "recurrent"})


@dataclass(frozen=True, slots=True)
class Category:
    """What an op is, as structured fields every consumer reads.

    ``family`` is one of :data:`FAMILIES`; ``op`` the specific op within it (``"conv"``,
    ``"conv_transpose"``, ``"batch_norm"``, ``"relu"``, ``"max_pool"``, ``"add"``,
    ``"cat"`` ...). Convolutions and pools also carry their geometry: ``spatial_dims``,
    ``kernel``, ``groups`` and whether they are ``depthwise`` (one group per input
    channel), ``pointwise`` (a 1x1 kernel) or ``dilated``. :attr:`label` is the display
    label of by-type summaries and nothing else.
    """

    family: str
    op: str
    spatial_dims: int = 0
    kernel: tuple[int, ...] = ()
    groups: int = 1
    depthwise: bool = False
    pointwise: bool = False
    dilated: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown op family {self.family!r}; one of {sorted(FAMILIES)}")

    @property
    def grouped(self) -> bool:
        """A grouped convolution that is not depthwise."""
        return self.groups > 1 and not self.depthwise

    @property
    def multiply_adds(self) -> bool:
        """An op whose work is multiply-adds (conv, linear, matmul, attention, recurrent)."""
        return self.family in MULTIPLY_ADD_FAMILIES

    @property
    def label(self) -> str:
        """Display label for by-type summaries, in the spirit of the MobileNet paper's Table 2
        (``"conv 1x1"``, ``"conv dw 3x3"``, ``"max pool 3x3"``, ``"batch norm"``, ``"add"``)."""
        k = "x".join(map(str, self.kernel))
        if self.family == "conv":
            if self.op == "conv_transpose":
                text = f"conv transpose {k}"
            elif self.op == "deform_conv":
                text = f"deform conv {k}"
            elif self.depthwise:
                text = f"conv dw {k}"
            elif self.pointwise:
                text = "conv 1x1 grouped" if self.groups > 1 else "conv 1x1"
            else:
                text = f"conv grouped {k}" if self.groups > 1 else f"conv {k}"
            return text + (" dilated" if self.dilated else "")
        if self.family == "pool" and self.kernel:
            return f"{self.op.replace('_', ' ')} {k}"
        return _LABELS.get(self.op, self.op.replace("_", " "))


#: Display labels that are not the op name with spaces.
_LABELS = {"local_response_norm": "lrn", "channel_shuffle": "shuffle", "concat": "cat", "sdpa": "attention",
           "mha": "attention"}


@dataclass(frozen=True, slots=True)
class OpCost:
    """A formula's answer: the cost, the output shape it implies, and the op's category.

    ``category`` is structured (:class:`Category`); ``kind`` is its display label, used
    only for by-type summaries.
    """

    cost: Cost
    output_shape: Shape | tuple[Shape, ...]
    category: Category
    attrs: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.category.label


F = TypeVar("F", bound=Callable[..., OpCost])

#: The one registry of formulas: name -> function. Filled by :func:`formula`.
FORMULAS: dict[str, Callable[..., OpCost]] = {}


#: What a formula's cost consists of, for ``archstat ops``: multiply-adds (and flops = 2 x
#: madds plus any element-wise work), flops and memory access without multiply-adds, or
#: memory access alone (data movement).
COUNTS = ("madds", "flops", "memory")


def formula(name: str, counts: str = "flops") -> Callable[[F], F]:
    """Register a formula under ``name``; a second registration of the same name is an error.

    ``counts`` (one of :data:`COUNTS`) says what kind of cost it returns; it is kept as the
    function's ``counts`` attribute."""
    if counts not in COUNTS:
        raise ValueError(f"counts must be one of {COUNTS}, not {counts!r}")

    def register(fn: F) -> F:
        if name in FORMULAS:
            raise ValueError(f"formula {name!r} is already registered by {FORMULAS[name].__qualname__}")
        fn.counts = counts  # type: ignore[attr-defined]
        FORMULAS[name] = fn
        return fn

    return register


def numel(shape: Iterable[int]) -> int:
    """Number of elements of a tensor of ``shape`` (1 for a scalar shape ``()``)."""
    return prod(shape)


def expand(value: IntOrSeq, ndim: int, what: str = "value") -> tuple[int, ...]:
    """``3 -> (3, 3)`` for ``ndim=2``; a sequence must already have ``ndim`` entries."""
    if type(value) is int:
        return (value,) * ndim
    if type(value) is tuple and len(value) == ndim:
        for v in value:
            if type(v) is not int:
                break
        else:
            return value  # already expanded (every module's own sizes): nothing to convert
    if isinstance(value, int):
        return (int(value),) * ndim
    values = tuple(int(v) for v in value)
    if len(values) == 1 and ndim > 1:
        return values * ndim
    if len(values) != ndim:
        raise ValueError(f"{what} {values} does not have {ndim} entries")
    return values


def wrap_dim(dim: int, ndim: int) -> int:
    """``dim`` of a tensor of ``ndim`` dimensions as an index ``0 <= d < ndim`` (``-1`` -> the
    last); out of range it is refused as torch's ``maybe_wrap_dim`` refuses it, with its
    message. A 0-d tensor takes ``dim`` -1 and 0, as in torch (its index is 0)."""
    top = max(ndim, 1)
    if not -top <= dim < top:
        raise ShapeError(f"Dimension out of range (expected to be in range of [{-top}, {top - 1}], but got {dim})")
    return dim % top


def _int_tuple(values: Sequence[int]) -> tuple[int, ...]:
    if type(values) is tuple:
        for v in values:
            if type(v) is not int:
                break
        else:
            return values
    return tuple(int(v) for v in values)


def with_batch(input_shape: Sequence[int], spatial_dims: int | None, what: str = "layer") -> tuple[Shape, bool]:
    """``(N, C, *spatial)`` of an input, and whether it was unbatched.

    Convolutions, pools and instance norms accept ``(C, *spatial)`` without the batch
    dimension (torch treats it as a batch of one and returns an unbatched output). With
    ``spatial_dims`` given, any other rank is refused as torch refuses it; with ``None``
    the shape must already be batched.
    """
    shape = _int_tuple(input_shape)
    if spatial_dims is None:
        if len(shape) < 2:
            raise ShapeError(f"{what} expects an (N, C, ...) input, got {shape}")
        return shape, False
    if len(shape) == spatial_dims + 1:
        return (1, *shape), True
    if len(shape) != spatial_dims + 2:
        raise ShapeError(f"{what} expects a {spatial_dims + 1}D (unbatched) or {spatial_dims + 2}D (batched) "
                         f"input, got {len(shape)}D input {shape}")
    return shape, False


def without_batch(output_shape: Shape, unbatched: bool) -> Shape:
    """Drop the batch of one :func:`with_batch` added, so the output is unbatched like the input."""
    return tuple(output_shape[1:]) if unbatched else tuple(output_shape)
