"""Building models without allocating their weights.

``torch.device("meta")`` as a context makes every tensor a constructor creates a
meta tensor (shape and dtype, no storage), so a 600M-parameter network costs no
memory. Some constructors compute on small tensors (torchvision's RegNet derives its
widths with ``torch.round(...).tolist()``), which meta tensors cannot do;
:func:`meta_init` with ``keep_small_on_cpu=True`` leaves tensors under
:data:`SMALL_TENSOR_ELEMENTS` on the CPU, and :func:`to_meta` moves them afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager
from math import prod
from typing import Any, Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

__all__ = ["meta_init", "to_meta", "SMALL_TENSOR_ELEMENTS"]

#: Tensors smaller than this stay real under ``meta_init(keep_small_on_cpu=True)``.
SMALL_TENSOR_ELEMENTS = 1 << 16

_SIZED_BY_FIRST_ARG = {"empty", "zeros", "ones", "rand", "randn", "full", "empty_strided"}


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


class _SmallOnCpu(TorchFunctionMode):
    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _device_constructors() and kwargs.get("device") is None:
            n = _requested_elements(func, args, kwargs)
            if n is not None and n >= SMALL_TENSOR_ELEMENTS:
                kwargs["device"] = "meta"
        return func(*args, **kwargs)


@contextmanager
def meta_init(keep_small_on_cpu: bool = False) -> Iterator[None]:
    """Construct modules on the meta device (optionally keeping small tensors real)."""
    if keep_small_on_cpu:
        with _SmallOnCpu():
            yield
    else:
        with torch.device("meta"):
            yield


def to_meta(model: torch.nn.Module) -> torch.nn.Module:
    """Move every parameter and buffer still on a real device to meta (drops their data)."""
    return model.to("meta")
