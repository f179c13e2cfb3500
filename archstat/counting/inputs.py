"""A model's inputs: from shapes (or example tensors) to the arguments of its forward.

One grammar for every model, in ``input_shape`` and ``example_inputs`` alike:

* a shape ``(N, C, H, W)`` (a tuple of ints, or ``torch.Size``), or a tensor: the one input;
* a tuple of those: the positional inputs (RAFT's ``(frame1, frame2)``);
* a list: one input that is a list (torchvision's detectors take ``[image, ...]``);
* a dict: keyword inputs (``{"pixel_values": (1, 3, 224, 224)}``).

Nested lists, tuples and dicts are kept as they are. Generated tensors are float32,
uniform in [0, 1) from a generator seeded with :data:`SEED` on a real device (so a count
that has to run the model for real is reproducible), empty on ``meta``. Example tensors
keep their dtypes; on meta they are replaced by empty tensors of the same shape. A shape
torch could not make a tensor of (:data:`MAX_TENSOR_BYTES`) is refused when it is given.
"""

from __future__ import annotations

from contextlib import contextmanager
from math import prod
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from archstat.counting.shadow import has_uninitialized
from archstat.errors import ArchstatError

__all__ = ["SEED", "MAX_TENSOR_BYTES", "seeded", "initialise_lazy", "Inputs", "inputs_from_shapes",
           "inputs_from_examples", "is_shape", "check_shapes", "cast_floating"]

#: Seed of every random input and random weight a count draws.
SEED = 0

#: The most bytes one tensor may hold: torch's ``storage_max()``, the largest int64 (``int64_t``
#: and ``size_t`` must both hold a storage's size), which ``computeStorageNbytesContiguous`` in
#: aten/src/ATen/EmptyTensor.cpp checks elements x element size against ("Storage size
#: calculation overflowed"); a dimension itself must fit in an int64 too ("Overflow when
#: unpacking long long"), which this bound implies.
MAX_TENSOR_BYTES = 2 ** 63 - 1

#: Bytes of the widest element a generated input is made in or cast to: float64, torch's
#: widest default dtype and the widest dtype a count or a timing takes.
_WIDEST_ELEMENT_BYTES = 8


@contextmanager
def seeded(seed: int = SEED, cuda_devices: Sequence[int] = ()) -> Iterator[None]:
    """Draw from the CPU generator (and those of ``cuda_devices``) seeded with ``seed``, and
    give the caller's states back afterwards. Only the generators forked are seeded:
    ``torch.manual_seed`` would reseed every CUDA generator, or queue that for when CUDA
    starts, and ``fork_rng`` restores only the devices it forked."""
    with torch.random.fork_rng(devices=list(cuda_devices)):
        torch.default_generator.manual_seed(seed)
        for index in cuda_devices:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def initialise_lazy(model: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
    """Give ``model``'s lazy modules (``nn.LazyLinear``, ``nn.LazyConv2d`` ...) their parameters
    with one forward pass on ``(args, kwargs)`` without autograd, when any are uninitialised, so
    that what runs it afterwards (a timing, a tool, a memory measurement) runs a model with
    shapes. Call it inside :func:`seeded`: the new parameters' values are random draws."""
    if has_uninitialized(model):
        with torch.no_grad():
            model(*args, **kwargs)


def is_shape(value: Any) -> bool:
    """A tensor shape: a tuple / list / ``torch.Size`` of non-negative ints."""
    return isinstance(value, (tuple, list, torch.Size)) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in value)


class Inputs:
    """Positional and keyword inputs as a tree of shapes or example tensors (see the module docstring)."""

    def __init__(self, args: tuple, kwargs: dict[str, Any], examples: bool) -> None:
        self.args, self.kwargs, self.examples = args, kwargs, examples

    @property
    def shapes(self) -> Any:
        """The tree of shapes, in ``input_shape``'s grammar (a lone input as its shape)."""
        def shape(v: Any) -> Any:
            if isinstance(v, torch.Tensor):
                return tuple(v.shape)
            if isinstance(v, PackedSequence):
                return tuple(v.data.shape)
            if isinstance(v, tuple) and not is_shape(v):
                return tuple(shape(x) for x in v)
            if isinstance(v, list) and not is_shape(v):
                return [shape(x) for x in v]
            if isinstance(v, dict):
                return {k: shape(x) for k, x in v.items()}
            return v

        if self.kwargs:
            return {**({"args": shape(self.args)} if self.args else {}), **shape(self.kwargs)}
        return shape(self.args[0]) if len(self.args) == 1 else shape(self.args)

    def materialise(self, device: str | torch.device) -> tuple[tuple, dict[str, Any]]:
        """The forward's ``(args, kwargs)`` on ``device``: seeded random tensors for shapes,
        the examples (moved, or empty on meta) for tensors."""
        generator = None if str(device) == "meta" else torch.Generator(device=device).manual_seed(SEED)

        def make(v: Any) -> Any:
            if isinstance(v, torch.Tensor):
                if str(device) == "meta":
                    return torch.empty_like(v, device="meta")
                return v.detach().to(device, copy=True)
            if isinstance(v, PackedSequence):  # batch sizes and orders are metadata: kept, on the CPU
                return PackedSequence(make(v.data), v.batch_sizes, v.sorted_indices, v.unsorted_indices)
            if self.examples:
                if _is_namedtuple(v):
                    return type(v)(*(make(x) for x in v))
                if isinstance(v, (list, tuple)):
                    return type(v)(make(x) for x in v)
                if isinstance(v, dict):
                    return {k: make(x) for k, x in v.items()}
                return v
            if is_shape(v):
                shape = tuple(v)
                if str(device) == "meta":
                    return torch.empty(shape, device="meta")
                return torch.rand(shape, generator=generator, device=device)
            if isinstance(v, (list, tuple)):
                return type(v)(make(x) for x in v)
            if isinstance(v, dict):
                return {k: make(x) for k, x in v.items()}
            raise ArchstatError(f"input spec {v!r} is not a shape, a tuple, a list or a dict of shapes")

        return tuple(make(a) for a in self.args), {k: make(v) for k, v in self.kwargs.items()}


def check_shapes(spec: Any) -> None:
    """Refuse (one line) an ``input_shape`` that is not shapes, or one torch could not make."""
    if is_shape(spec):
        if any(d < 0 for d in spec):
            raise ArchstatError(f"input shape {tuple(spec)} has a negative size")
        # Dimensions of size 0 left out: torch computes strides and the storage size as running
        # products and refuses one that overflows, even when a 0 later makes the tensor empty.
        elements = prod(d for d in spec if d)
        if elements * _WIDEST_ELEMENT_BYTES > MAX_TENSOR_BYTES:
            raise ArchstatError(f"input shape {tuple(spec)} is too large: {elements} elements of up to "
                                f"{_WIDEST_ELEMENT_BYTES} bytes exceed torch's limit of 2**63 - 1 bytes for one tensor")
        return
    if isinstance(spec, (list, tuple)) and spec:
        for s in spec:
            check_shapes(s)
        return
    if isinstance(spec, dict) and spec:
        for s in spec.values():
            check_shapes(s)
        return
    raise ArchstatError(f"input shape {spec!r} is not a shape such as (1, 3, 224, 224), a tuple of shapes, "
                        f"a list or a dict of shapes")


def inputs_from_shapes(spec: Any) -> Inputs:
    """:class:`Inputs` from ``input_shape`` (see the module docstring)."""
    check_shapes(spec)
    if isinstance(spec, dict):
        return Inputs((), dict(spec), examples=False)
    if is_shape(spec) or isinstance(spec, list):
        return Inputs((tuple(spec) if is_shape(spec) and not isinstance(spec, list) else spec,), {}, examples=False)
    return Inputs(tuple(spec), {}, examples=False)


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def inputs_from_examples(examples: Any) -> Inputs:
    """:class:`Inputs` from ``example_inputs``: a tensor (or a ``PackedSequence``, a named
    tuple), a tuple of positional inputs, a list (one list input) or a dict of keyword inputs."""
    if isinstance(examples, dict):
        return Inputs((), dict(examples), examples=True)
    if isinstance(examples, tuple) and not _is_namedtuple(examples):
        return Inputs(examples, {}, examples=True)
    return Inputs((examples,), {}, examples=True)


def cast_floating(value: Any, dtype: torch.dtype) -> Any:
    """``value`` (tensors nested in tuples, lists and dicts) with its floating-point tensors in
    ``dtype``; integer and boolean tensors, and everything else, unchanged."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if _is_namedtuple(value):
        return type(value)(*(cast_floating(v, dtype) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(cast_floating(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: cast_floating(v, dtype) for k, v in value.items()}
    return value
