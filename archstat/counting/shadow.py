"""Counting a user's model without touching it: a shadow copy with stand-in tensors.

``archstat.count(model)`` never runs ``model`` itself. It deep-copies the module tree with
every parameter and buffer replaced, through ``copy.deepcopy``'s memo, by a stand-in:
on ``meta`` an empty tensor of the same shape, dtype and ``requires_grad`` (no memory),
for the CPU fallback a detached copy of the values. Because the memo maps each original
tensor to exactly one stand-in and each module object is copied once, tied weights stay
tied and a submodule registered under two names stays one module in the copy; nothing
depends on ``torch.func.functional_call``'s handling of aliases (pytorch#164759).

The copy's forward hooks are removed, so the user's hooks never run and never see a
meta tensor. Kept are the hooks that are part of the network's definition: lazy modules'
parameter inference, ``weight_norm`` and ``spectral_norm``. A forward that changes its
module (``self.calls += 1``, a cached tensor) changes the copy. What the copy cannot
isolate are effects outside the module tree: globals, files, closures the forward
writes, and global module hooks (``register_module_forward_hook``).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from archstat.errors import CountError

__all__ = ["shadow_copy", "unique_tensors", "has_uninitialized", "KEPT_HOOKS"]

#: Hook types that define the network rather than observe it: kept on the copy.
KEPT_HOOKS: tuple[type, ...] = (WeightNorm, SpectralNorm)

_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks")
_KWARG_SETS = ("_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs", "_forward_hooks_always_called")


def unique_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every parameter and buffer of ``model`` once, under its first qualified name."""
    seen: set[int] = set()
    out = []
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            out.append((name, t))
    return out


def _plain_tensors(model: nn.Module) -> list[torch.Tensor]:
    """Tensors modules keep as plain attributes (not parameters or buffers), directly or in a
    list, tuple or dict: the weight old-style ``weight_norm`` / ``spectral_norm`` compute,
    caches, anchor lists. A non-leaf one (computed with grad) could not be deep-copied."""
    found: list[torch.Tensor] = []

    def collect(value: Any, depth: int = 0) -> None:
        if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
            found.append(value)
        elif depth < 2 and isinstance(value, (list, tuple)):
            for v in value:
                collect(v, depth + 1)
        elif depth < 2 and isinstance(value, dict):
            for v in value.values():
                collect(v, depth + 1)

    for module in model.modules():
        for key, value in vars(module).items():
            if key not in ("_parameters", "_buffers", "_modules"):
                collect(value)
    return found


def _stand_in(t: torch.Tensor, device: str) -> torch.Tensor:
    if isinstance(t, (UninitializedParameter, UninitializedBuffer)):  # torch's stubs omit device and dtype
        return type(t)(requires_grad=t.requires_grad, device=device, dtype=t.dtype)  # type: ignore[call-arg]
    data = torch.empty_like(t, device="meta") if device == "meta" else t.detach().to(device, copy=True)
    if isinstance(t, nn.Parameter):
        return nn.Parameter(data, requires_grad=t.requires_grad)
    return data.requires_grad_(t.requires_grad and t.is_leaf)


def _is_kept(hook: Any) -> bool:
    if isinstance(hook, KEPT_HOOKS):
        return True
    return getattr(hook, "__func__", None) is LazyModuleMixin._infer_parameters


def _strip_hooks(module: nn.Module) -> None:
    for attr in _HOOK_DICTS:
        hooks = getattr(module, attr, None)
        if not hooks:
            continue
        for key in [k for k, h in hooks.items() if not _is_kept(h)]:
            del hooks[key]
            for kwarg_set in _KWARG_SETS:
                getattr(module, kwarg_set, {}).pop(key, None)


def shadow_copy(model: nn.Module, device: str = "meta") -> tuple[nn.Module, dict[int, str]]:
    """A copy of ``model`` to run instead of it (see the module docstring).

    ``device``: ``"meta"`` (stand-ins without data) or a real device (copies of the
    values). Tensors kept as plain attributes get the same treatment. Returns the copy, in
    the same training mode, and ``{id(stand-in parameter): canonical name}`` for every
    parameter. Raises :class:`CountError` when the model cannot be deep-copied.
    """
    memo: dict[int, Any] = {}
    for t in [t for _, t in unique_tensors(model)] + _plain_tensors(model):
        if id(t) not in memo:
            memo[id(t)] = _stand_in(t, device)
    try:
        shadow = copy.deepcopy(model, memo)
    except Exception as exc:
        raise CountError(f"{type(model).__name__} cannot be copied to count it without touching it "
                         f"(copy.deepcopy failed: {type(exc).__name__}: {exc}); pass a model that can be "
                         f"deep-copied, or count it by name") from None
    for module in shadow.modules():
        _strip_hooks(module)
    names = {id(memo[id(p)]): name for name, p in model.named_parameters()}
    return shadow, names



def has_uninitialized(model: nn.Module) -> bool:
    """Does ``model`` hold lazy modules whose parameters are not materialised yet?"""
    return any(isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.modules())
