"""Building models without allocating their weights.

:func:`meta_init` makes every tensor a constructor creates a meta tensor (shape and
dtype, no storage), so a 600M-parameter network costs no memory, like the
``torch.device("meta")`` context. It also skips the weight initialisation: an in-place
fill of a meta tensor (``normal_``, ``uniform_``, ``zero_`` ... as ``nn.init`` uses) has
no data to change, and torch runs those through slow Python decompositions on meta.

Some constructors compute on small tensors (torchvision's RegNet derives its widths
with ``torch.round(...).tolist()``), which meta tensors cannot do; with
``keep_small_on_cpu=True`` tensors under :data:`SMALL_TENSOR_ELEMENTS` stay real on the
CPU, and :func:`to_meta` moves them afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager
from math import prod
from typing import Any, Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

__all__ = ["meta_init", "to_meta", "build_meta", "build_structure", "SMALL_TENSOR_ELEMENTS"]

#: Tensors smaller than this stay real under ``meta_init(keep_small_on_cpu=True)``.
SMALL_TENSOR_ELEMENTS = 1 << 16

_SIZED_BY_FIRST_ARG = {"empty", "zeros", "ones", "rand", "randn", "full", "empty_strided"}

#: In-place ops that only change values (never shape): no-ops on a meta tensor. The
#: ``nn.init`` functions are listed too: they reach the mode before the tensor methods
#: they call, which would otherwise run torch's slow meta decompositions.
_VALUE_ONLY_INPLACE = frozenset({
    "kaiming_normal_", "kaiming_uniform_", "xavier_normal_", "xavier_uniform_", "trunc_normal_", "constant_",
    "ones_", "zeros_", "orthogonal_", "eye_", "dirac_", "sparse_",
    "normal_", "uniform_", "zero_", "fill_", "copy_", "exponential_", "bernoulli_", "random_", "log_normal_",
    "cauchy_", "geometric_", "erfinv_", "mul_", "add_", "sub_", "div_", "clamp_", "clamp_min_", "clamp_max_",
    "abs_", "neg_", "exp_", "log_", "sqrt_", "pow_", "masked_fill_", "fill_diagonal_", "addcmul_", "addcdiv_",
    "lerp_", "floor_", "ceil_", "round_", "trunc_", "sign_", "sigmoid_", "tanh_", "relu_", "index_fill_",
})


def _requested_elements(func: Callable, args: tuple, kwargs: dict) -> int | None:
    """Elements a constructor call will create, when its arguments say so plainly."""
    name = func.__name__
    if name in _SIZED_BY_FIRST_ARG:
        size = kwargs.get("size", args[0] if args else ())
        if isinstance(size, int):
            size = [a for a in args if isinstance(a, int)] if name not in ("full", "empty_strided") else [size]
        try:
            return prod(int(s) for s in size)
        except TypeError:
            return None
    return None


class _MetaInit(TorchFunctionMode):
    def __init__(self, keep_small_on_cpu: bool) -> None:
        super().__init__()
        self.keep_small_on_cpu = keep_small_on_cpu
        self.constructors = _device_constructors()

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in self.constructors and kwargs.get("device") is None:
            if not self.keep_small_on_cpu:
                kwargs["device"] = "meta"
            else:
                n = _requested_elements(func, args, kwargs)
                if n is not None and n >= SMALL_TENSOR_ELEMENTS:
                    kwargs["device"] = "meta"
        elif getattr(func, "__name__", "") in _VALUE_ONLY_INPLACE and args and isinstance(args[0], torch.Tensor) \
                and args[0].is_meta:
            return args[0]
        return func(*args, **kwargs)


@contextmanager
def meta_init(keep_small_on_cpu: bool = False) -> Iterator[None]:
    """Construct modules on the meta device (optionally keeping small tensors real)."""
    with _MetaInit(keep_small_on_cpu):
        yield


def to_meta(model: torch.nn.Module) -> torch.nn.Module:
    """Move every parameter and buffer still on a real device to meta (drops their data)."""
    return model.to("meta")


def build_meta(builder: Callable[[], torch.nn.Module], keep_small_on_cpu: bool = False) -> torch.nn.Module:
    """``builder()`` on the meta device; with ``keep_small_on_cpu`` the small tensors are real
    while the constructor runs and moved to meta afterwards."""
    with meta_init(keep_small_on_cpu):
        model = builder()
    return to_meta(model) if keep_small_on_cpu else model


def build_structure(builder: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """A model for its structure only (module tree, hyper-parameters): built on meta, then
    on meta keeping small tensors real (constructors that compute on tensor values), and
    on the CPU only if both fail."""
    for keep_small_on_cpu in (False, True):
        try:
            return build_meta(builder, keep_small_on_cpu)
        except Exception:  # a constructor that reads tensor values: try the next way
            continue
    return builder()
