"""Counting a user's model without touching it: a shadow copy with stand-in tensors.

``archstat.count(model)`` never runs ``model`` itself. It copies the module tree with every
parameter and buffer replaced by a stand-in: on ``meta`` an empty tensor of the same
shape, dtype and ``requires_grad`` (no memory), for the CPU fallback a detached copy of
the values. The copy follows ``copy.deepcopy``'s rules and shares its memo, so each
original tensor maps to exactly one stand-in and each module object is copied once:
tied weights stay tied and a submodule registered under two names stays one module in
the copy; nothing depends on ``torch.func.functional_call``'s handling of aliases
(pytorch#164759).

Modules of ordinary classes are copied directly (a new instance whose ``__dict__`` holds
the copied attributes, set through the class's ``__setstate__``), which is what
``copy.deepcopy`` does for them, without its generic machinery; a class with its own
``__deepcopy__``, ``__reduce_ex__``, ``__getstate__`` or ``__slots__`` (parametrized
modules) goes through ``copy.deepcopy`` itself. Attributes that are neither modules nor
tensors are deep-copied too (immutable ones are shared, as deepcopy shares them).

The copy's forward and backward hooks are removed, so the user's hooks never run and
never see a meta tensor. Kept are the hooks that are part of the network's definition:
lazy modules' parameter inference, ``weight_norm`` and ``spectral_norm``. A forward that
changes its module (``self.calls += 1``, a cached tensor) changes the copy. What the copy
cannot isolate are effects outside the module tree: globals, files, closures the forward
writes, and global module hooks (``register_module_forward_hook``).
"""

from __future__ import annotations

import copy
import copyreg
import types
from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn import parameter as _parameter
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from archstat.errors import ArchstatError, CountError, RefusedError

__all__ = ["shadow_copy", "unique_tensors", "has_uninitialized", "meta_empty", "KEPT_HOOKS", "UNINITIALIZED", "META"]

#: Lazy modules' parameters and buffers before their first call: no shape yet (torch's stubs do not
#: export the mixin both classes share).
UNINITIALIZED: type = getattr(_parameter, "UninitializedTensorMixin")

#: Hook types that define the network rather than observe it: kept on the copy.
KEPT_HOOKS: tuple[type, ...] = (WeightNorm, SpectralNorm)

#: Hook dictionaries whose entries run on a forward or backward pass (stripped on the copy),
#: and the per-hook flags kept beside them.
_HOOK_DICTS = frozenset({"_forward_pre_hooks", "_forward_hooks", "_backward_pre_hooks", "_backward_hooks"})
_KWARG_SETS = frozenset({"_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs",
                         "_forward_hooks_always_called"})

#: How a module's own attributes are copied (every other attribute: as deepcopy copies it;
#: ``_compiled_call_impl`` is dropped, as ``nn.Module.__getstate__`` drops it).
_ROLES = {"_parameters": "parameters", "_buffers": "buffers", "_modules": "modules",
**{k: "hooks" for k in _HOOK_DICTS}, **{k: "flags" for k in _KWARG_SETS}}

#: Values ``copy.deepcopy`` returns as they are.
_ATOMIC = frozenset({type(None), bool, int, float, complex, str, bytes, type, range, types.FunctionType,
                     types.BuiltinFunctionType, type(Ellipsis), type(NotImplemented), torch.dtype, torch.device,
                     torch.layout, torch.memory_format})
_EMPTY_CONTAINERS = (dict, OrderedDict, set, list)
#: The device of the stand-ins (and of the counter's planned outputs).
META = torch.device("meta")


def meta_empty(shape: tuple[int, ...], dtype: torch.dtype,
               memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """``torch.empty(shape, dtype=dtype, device="meta", memory_format=memory_format)``. The sizes
    are passed one by one: torch's argument parser takes them 0.4 us faster than a tuple, and a
    count makes one such tensor per op."""
    if not shape:
        return torch.empty((), dtype=dtype, device=META)
    return torch.empty(*shape, dtype=dtype, device=META, memory_format=memory_format)


def unique_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every parameter and buffer of ``model`` once, under its first qualified name."""
    seen: set[int] = set()
    out = []
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            out.append((name, t))
    return out


def _stand_in(t: torch.Tensor, device: str, dtype: torch.dtype | None) -> torch.Tensor:
    """``t``'s stand-in on ``device``; a floating-point one in ``dtype`` where given."""
    dtype = dtype if dtype is not None and t.is_floating_point() else t.dtype
    if isinstance(t, UNINITIALIZED):  # torch's stubs omit device and dtype
        return type(t)(requires_grad=t.requires_grad, device=device, dtype=dtype)  # type: ignore[call-overload]
    data = _meta_empty_like(t, dtype) if device == "meta" else t.detach().to(device, dtype, copy=True)
    if type(t) is nn.Parameter:  # what nn.Parameter(data, requires_grad) makes of a plain tensor
        return torch.Tensor._make_subclass(nn.Parameter, data, t.requires_grad)
    if type(t) is not torch.Tensor and isinstance(t, nn.Parameter):
        return nn.Parameter(data, requires_grad=t.requires_grad)
    return data.requires_grad_(t.requires_grad and t.is_leaf)


def _meta_empty_like(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``torch.empty_like(t, device="meta", dtype=dtype)``. From a meta tensor (a model built on
    meta) ``empty_like`` runs a Python decomposition, 25 us a tensor against 1 us from the CPU; a
    dense one (contiguous, channels-last) is made with its own strides directly, as ``empty_like``
    keeps them."""
    if t.is_meta and (t.is_contiguous() or t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
                      or t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d)):
        return torch.empty_strided(t.shape, t.stride(), dtype=dtype, device=META)
    return torch.empty_like(t, device=META, dtype=dtype)


def _is_kept(hook: Any) -> bool:
    if isinstance(hook, KEPT_HOOKS):
        return True
    return getattr(hook, "__func__", None) is LazyModuleMixin._infer_parameters


_DIRECT: dict[type, bool] = {}


def _copied_directly(cls: type) -> bool:
    """Does deep-copying an instance of ``cls`` amount to copying its ``__dict__`` (no custom
    ``__deepcopy__``, reduction, state or slots)?"""
    known = _DIRECT.get(cls)
    if known is None:
        known = _DIRECT[cls] = (getattr(cls, "__deepcopy__", None) is None
                                and cls.__reduce_ex__ is object.__reduce_ex__
                                and cls.__reduce__ is object.__reduce__
                                and getattr(cls, "__getstate__") is nn.Module.__getstate__
                                and not copyreg._slotnames(cls))  # type: ignore[attr-defined]
    return known


class _Copier:
    """One shadow copy in the making: the deepcopy memo and the canonical parameter names."""

    def __init__(self, device: str, dtype: torch.dtype | None) -> None:
        self.device, self.dtype = device, dtype
        self.memo: dict[int, Any] = {}
        self.names: dict[int, str] = {}  # id(stand-in parameter) -> first qualified name
        self.deep_copied: list[nn.Module] = []  # modules copy.deepcopy made: their hooks are stripped after

    def tensor(self, t: torch.Tensor) -> torch.Tensor:
        found = self.memo.get(id(t))
        if found is None:
            found = self.memo[id(t)] = _stand_in(t, self.device, self.dtype)
        return found

    def seed(self, value: Any, depth: int = 0) -> None:
        """Stand-ins for tensors kept in plain attributes, directly or in a list, tuple or
        dict (old-style ``weight_norm`` weights, caches, anchor lists), before deepcopy meets
        them. A non-leaf one (computed with grad) could not be deep-copied."""
        if isinstance(value, torch.Tensor):
            self.tensor(value)
        elif depth < 2 and isinstance(value, (list, tuple)):
            for v in value:
                self.seed(v, depth + 1)
        elif depth < 2 and isinstance(value, dict):
            for v in value.values():
                self.seed(v, depth + 1)

    def value(self, value: Any) -> Any:
        """An attribute that is neither a module nor a tensor, as deepcopy copies it."""
        kind = type(value)
        if kind in _ATOMIC:
            return value
        if kind is tuple:
            for v in value:
                if type(v) not in _ATOMIC:
                    break
            else:
                return value
        found = self.memo.get(id(value))
        if found is not None:
            return found
        if kind in _EMPTY_CONTAINERS and not value:
            found = self.memo[id(value)] = kind()
            return found
        self.seed(value)
        return copy.deepcopy(value, self.memo)

    def hooks(self, hooks: OrderedDict) -> OrderedDict:
        return OrderedDict((k, copy.deepcopy(h, self.memo)) for k, h in hooks.items() if _is_kept(h))

    def module(self, m: nn.Module, prefix: str) -> nn.Module:
        memo = self.memo
        found = memo.get(id(m))
        if found is not None:
            return found
        cls = type(m)
        if not _copied_directly(cls):
            return self.deep(m, prefix)
        new = cls.__new__(cls)
        memo[id(m)] = new
        attrs = m.__dict__
        state = attrs.copy()  # atomic attributes (sizes, flags, names) are shared, as deepcopy shares them
        flags = []
        for key, v in attrs.items():
            kind = type(v)
            if kind in _ATOMIC:
                continue
            if kind is tuple:  # kernel sizes, strides ...: shared when every element is atomic
                for item in v:
                    if type(item) not in _ATOMIC:
                        break
                else:
                    continue
            if kind in _EMPTY_CONTAINERS and not v:  # most of nn.Module's own dictionaries (hooks, flags ...)
                found = memo.get(id(v))
                if found is None:
                    found = memo[id(v)] = kind()
                state[key] = found
                continue
            role = _ROLES.get(key)
            if role is None:
                state[key] = self.value(v)
            elif role == "parameters":
                params = state[key] = memo[id(v)] = kind()
                for name, p in v.items():
                    params[name] = stand_in = None if p is None else self.tensor(p)
                    if stand_in is not None:
                        self.names.setdefault(id(stand_in), prefix + name)
            elif role == "modules":
                children = state[key] = memo[id(v)] = kind()
                for name, c in v.items():
                    children[name] = None if c is None else self.module(c, f"{prefix}{name}.")
            elif role == "buffers":
                state[key] = memo[id(v)] = kind((name, None if b is None else self.tensor(b)) for name, b in v.items())
            elif role == "hooks":
                state[key] = memo[id(v)] = self.hooks(v)
            else:  # flags of hooks: filtered below to the hooks kept
                state[key] = memo[id(v)] = kind(v)
                flags.append(key)
        for key in flags:
            if state[key]:
                kept = {k for attr in _HOOK_DICTS for k in state.get(attr, ())}
                for k in [k for k in state[key] if k not in kept]:
                    del state[key][k]
        state.pop("_compiled_call_impl", None)  # Module.compile()'s graph: the copy runs the module's Python
        new.__setstate__(state)
        return new

    def deep(self, m: nn.Module, prefix: str) -> nn.Module:
        """``copy.deepcopy`` of a module of a class with its own copy rules; a TorchScript
        submodule is refused (its compiled graph runs outside the calls archstat sees)."""
        if isinstance(m, torch.jit.ScriptModule):
            raise RefusedError(f"submodule '{prefix.rstrip('.')}' ({getattr(m, 'original_name', type(m).__name__)}) "
                               "is a TorchScript module: its compiled graph runs outside the Python calls archstat "
                               "counts; count the model with that submodule as an nn.Module, before torch.jit.script "
                               "/ torch.jit.trace")
        for _, t in unique_tensors(m):
            self.tensor(t)
        for name, p in m.named_parameters():
            self.names.setdefault(id(self.memo[id(p)]), prefix + name)
        for sub in m.modules():
            for key, v in vars(sub).items():
                if key not in ("_parameters", "_buffers", "_modules"):
                    self.seed(v)
        new = copy.deepcopy(m, self.memo)
        self.deep_copied.extend(new.modules())
        return new


def _strip_hooks(module: nn.Module) -> None:
    for attr in _HOOK_DICTS:
        hooks = getattr(module, attr, None)
        if not hooks:
            continue
        for key in [k for k, h in hooks.items() if not _is_kept(h)]:
            del hooks[key]
            for kwarg_set in _KWARG_SETS:
                getattr(module, kwarg_set, {}).pop(key, None)


def shadow_copy(model: nn.Module, device: str = "meta",
                dtype: torch.dtype | None = None) -> tuple[nn.Module, dict[int, str]]:
    """A copy of ``model`` to run instead of it (see the module docstring).

    ``device``: ``"meta"`` (stand-ins without data) or a real device (copies of the
    values). ``dtype``: the floating-point stand-ins' dtype (None: each tensor's own), as
    ``model.to(dtype)`` would make them. Tensors kept as plain attributes get the same treatment. Returns the copy, in
    the same training mode, and ``{id(stand-in parameter): canonical name}`` for every
    parameter. Raises :class:`CountError` when the model cannot be deep-copied.
    """
    copier = _Copier(device, dtype)
    try:
        shadow = copier.module(model, "")
    except ArchstatError:
        raise
    except Exception as exc:
        raise CountError(f"{type(model).__name__} cannot be copied to count it without touching it "
                         f"(copy.deepcopy failed: {type(exc).__name__}: {exc}); pass a model that can be "
                         f"deep-copied, or count it by name") from None
    for module in copier.deep_copied:
        _strip_hooks(module)
    return shadow, copier.names


def has_uninitialized(model: nn.Module) -> bool:
    """Does ``model`` hold lazy modules whose parameters are not materialised yet?"""
    stack, seen = [model], set()
    while stack:  # model.modules() without its generators: every count asks
        m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        if isinstance(m, LazyModuleMixin) and m.has_uninitialized_params():
            return True
        stack.extend(c for c in m._modules.values() if c is not None)
    return False
