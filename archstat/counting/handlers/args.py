"""Reading a call's arguments: the helpers every handler shares."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["arg", "shape_of", "tensors_in"]


def arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    """Argument ``index`` of ``args``, else keyword ``name``, else ``default``."""
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def shape_of(t: Any) -> tuple[int, ...]:
    return tuple(t.shape)


def tensors_in(values: Any) -> list[torch.Tensor]:
    """Every tensor in ``values`` (nested lists and tuples), in order."""
    if isinstance(values, torch.Tensor):
        return [values]
    if isinstance(values, (list, tuple)):
        return [t for v in values for t in tensors_in(v)]
    return []
