"""The counter: run a model once and record every op it executes.

Two observers work together, and never on the same op:

* every module's ``forward`` is wrapped for the run (an instance attribute on the copy
  being counted, removed afterwards) to keep the qualified name of the module being run;
  for a module with a registered handler (``nn.Conv2d``, ``nn.LSTM``,
  ``nn.MultiheadAttention`` ...) the wrapper evaluates the handler's formula from the
  module's hyper-parameters and input shapes before the module runs, and everything the
  module does inside is *suppressed* (not recorded again). Wrapping the forward rather
  than registering hooks keeps every call on ``nn.Module``'s fast path; hooks the copy
  kept (``weight_norm``, lazy initialisation) still run before the wrapper, as they would
  before the module's own forward;
* a :class:`~torch.overrides.TorchFunctionMode`, active only during the run, sees
  every torch function and tensor method called outside such modules (``x + y``,
  ``torch.cat``, ``F.interpolate``, ``q @ k.transpose(-2, -1)``, ``torchvision.ops.nms``)
  and maps it to a formula through :mod:`archstat.counting.handlers`.

On the meta device a handled module whose one output its formula fully describes
(:data:`STAND_IN_FORMULAS`: convolutions, linear layers, norms, pools, activations, on one
contiguous input of the module's dtype) is not run at all: the wrapper returns an empty
meta tensor of the formula's output shape, as the counter does for shape-only functions
(:data:`~archstat.counting.handlers.SHAPE_ONLY_FUNCTIONS`), and ``contiguous``, ``reshape``
and indexing by a tensor of integers are answered as torch answers them (:data:`_LAYOUT_PLANS`:
a view where torch returns one, else a contiguous copy). torch's meta kernels are Python
decompositions, slower than the formula. ``check_shapes=True`` runs everything and compares.
The counter's own reading of shapes and storages runs with torch function handling disabled,
so it is never intercepted.

What neither observer sees is not a silent zero either. Every tensor an op reads must come from the
run's inputs, the model's parameters, buffers and tensor attributes, or a call the counter saw; one
that does not (a TorchScript function's or a C++ extension's result) is an uncounted ``unseen`` row
in front of the op that reads it. On meta such code runs torch's Python meta kernels, whose own
calls reach the interceptor: each kernel is one uncounted row, its calls are not the model's ops.

The counter runs the model it is given; :func:`archstat.count` gives it a shadow copy
(:mod:`archstat.counting.shadow`), never the user's module. The wrapped forwards and
the training flags are restored when the run ends, whatever happens.
"""

from __future__ import annotations

import inspect
import itertools
import os
import sys
from functools import partial
from math import prod
import warnings
from collections import Counter
from dataclasses import replace
from types import CodeType, FrameType
from typing import Any, Callable, Sequence, cast

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode

from archstat.counting.autocast import cast_target, restores_dtype
from archstat.counting.handlers import (BOOL_RESULT, FREE, FREE_FUNCTIONS, METADATA_FUNCTIONS, SHAPE_ONLY_FUNCTIONS,
                                        UNCOUNTED, FormulaCall, ModuleRule, NeedsValuesError, RefusedOpError,
                                        call_handler, handler_for_module, normalise_name)
from archstat.counting.shadow import UNINITIALIZED, meta_empty
from archstat.counting.stats import OpRecord, TensorRef, format_shape
from archstat.errors import FormulaMismatchWarning, InputShapeError, InputTooSmallError, RefusedError
from archstat.formulas import Cost, EmptyOutputError, OpCost, ShapeError
from archstat.formulas.training import Backward, Needs, SavedTensor, backward

__all__ = ["OpCounter", "flat_tensors", "STAND_IN_FORMULAS"]

#: Formulas of handled modules whose output the formula describes (see the module docstring):
#: one tensor of the formula's shape where the module takes one tensor, keeps its input's
#: dtype and returns no indices; for ``nn.MultiheadAttention`` (``"mha"``) its output and
#: attention weights, called without masks.
STAND_IN_FORMULAS = frozenset({"conv", "conv_transpose", "linear", "batch_norm", "layer_norm", "group_norm",
                               "local_response_norm", "pool", "adaptive_pool", "elementwise", "interpolate",
                               "channel_shuffle", "mha"})

_no_torch_function = torch._C.DisableTorchFunction
#: ``TensorRef`` from a tuple of its fields, without the named tuple's Python ``__new__`` (a count makes
#: several per op).
_tensor_ref: Callable[[tuple], TensorRef] = partial(tuple.__new__, TensorRef)


def flat_tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor in ``value`` (nested tuples, lists, dicts, PackedSequences), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = tuple(value.values())
    elif not isinstance(value, (list, tuple)):
        return []
    out: list[torch.Tensor] = []
    for v in value:  # most entries are tensors or numbers: only containers recurse
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, (list, tuple, dict)):
            out.extend(flat_tensors(v))
    return out


def _observed_shapes(output: Any) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in flat_tensors(output)]


def _shapes_agree(predicted: Any, observed: list[tuple[int, ...]]) -> bool:
    """Does the formula's output shape match what torch produced?"""
    if not observed:
        return True
    wanted = list(predicted) if predicted and isinstance(predicted[0], tuple) else [tuple(predicted)]
    return all(w == g for w, g in zip(wanted, observed[: len(wanted)]))


class _Interceptor(TorchFunctionMode):
    """Forwards every torch function call to :meth:`OpCounter.on_function`."""

    def __init__(self, counter: "OpCounter") -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = normalise_name(func)
        counter = self.counter
        if name in METADATA_FUNCTIONS:
            return func(*args, **kwargs)
        if name in FREE_FUNCTIONS:  # views: free, but a view of a parameter is that parameter
            out = func(*args, **kwargs)
            if not counter._suppress and type(out) not in _NOT_TENSORS:
                counter.on_free(args, kwargs, out)
            return out
        operands = flat_tensors(args) + flat_tensors(kwargs) if kwargs else flat_tensors(args)
        if not counter._suppress and not _is_compiling():  # torch.compile traces this mode: no frames for it
            caller = sys._getframe(1)
            if _CODE_KIND.get(caller.f_code) != "other" and (kernel := _calling_kernel(caller)) is not None:
                out = func(*args, **kwargs)
                counter.on_kernel_call(kernel, operands, out)
                return out
        if _vmap_level() is not None and not counter._suppress and _vmapped(operands):
            out = func(*args, **kwargs)
            counter._uncounted(name, func, operands, out, _VMAP_NOTE)
            return out
        read = operands  # what the op reads: under autocast, the casts of its operands
        if counter.autocast is not None:
            args, kwargs = counter.autocast_args(name, args, kwargs)
            read = flat_tensors(args) + flat_tensors(kwargs) if kwargs else flat_tensors(args)
        planned = counter.plan(name, func, args, kwargs, read)
        out = func(*args, **kwargs) if planned is None else planned[2]
        if counter.autocast is not None and restores_dtype(counter.autocast[0], name):
            out = _in_dtype(out, operands[0].dtype)  # torchvision's autocast kernels
        if not counter._suppress:
            counter.on_function(name, func, args, kwargs, operands, out, planned, read)
        return out


def _in_dtype(out: Any, dtype: torch.dtype) -> Any:
    """``out`` (or the first tensor of a tuple: ``roi_pool``'s output beside its argmax) in ``dtype``."""
    if isinstance(out, tuple):
        return (out[0].to(dtype), *out[1:])
    return out.to(dtype)


_vmap_level: Callable[[], int | None] = torch._C._functorch.maybe_current_level
_is_batched: Callable[[torch.Tensor], bool] = torch._C._functorch.is_batchedtensor
_get_unwrapped: Callable[[torch.Tensor], torch.Tensor] = torch._C._functorch.get_unwrapped
_is_compiling: Callable[[], bool] = torch.compiler.is_compiling

#: The note of an op under ``torch.vmap``: its tensors have one example's shapes, and what one op
#: costs over the batch is not one example's cost times the batch (weights are read once).
_VMAP_NOTE = "under torch.vmap: archstat sees one example's shapes, not the batch's; not counted"


def _unbatched(t: torch.Tensor) -> torch.Tensor:
    """The tensor a ``torch.vmap`` batch wraps (what vmap returns once it unwraps it), or ``t``."""
    while _is_batched(t):
        t = _get_unwrapped(t)
    return t


def _vmapped(tensors: list[torch.Tensor]) -> bool:
    """Is one of ``tensors`` a ``torch.vmap`` batch (only asked while a functorch transform runs)?"""
    return any(_is_batched(t) for t in tensors)


_TORCH_ROOT = os.path.dirname(torch.__file__) + os.sep
#: Code of torch's own Python kernels (meta kernels, references, decompositions) and of the custom-op
#: library's dispatch to registered kernels, by where it lies in the torch package (see
#: :func:`_calling_kernel`).
_KERNEL_CODE = ("_refs" + os.sep, "_prims" + os.sep, "_prims_common" + os.sep, "_decomp" + os.sep,
                "_meta_registrations.py")
_LIBRARY_CODE = (os.path.join("_library", "autograd.py"), os.path.join("_library", "fake_impl.py"))
#: Names of the functions torch wraps its kernels in (decorators, reference factories): not a kernel's name.
_WRAPPER_NAMES = frozenset({"_fn", "_ref", "inner", "wrapper", "_wrapper"})
#: ``"kernel"``, ``"library"``, ``"torch"`` (torch's other code) or ``"other"`` per code object, as
#: :func:`_code_kind` found it; emptied when it holds :data:`_CODE_KINDS_KEPT` (generated code, an fx
#: graph's, is new code every time).
_CODE_KIND: dict[CodeType, str] = {}
_CODE_KINDS_KEPT = 4096


def _path_kind(code: CodeType) -> str:
    path = code.co_filename
    if not path.startswith(_TORCH_ROOT):
        return "other"
    inside = path[len(_TORCH_ROOT):]
    return "kernel" if inside.startswith(_KERNEL_CODE) else "library" if inside in _LIBRARY_CODE else "torch"


def _code_kind(frame: FrameType) -> str:
    """What the code ``frame`` runs is, found the first time it runs: torch's kernel code, the
    custom-op library's (``"library"``), torch's other code, or other code; other code first called
    by a kernel or the library (through torch's code) is a kernel too: a fake kernel registered
    from outside torch (``torchvision``'s meta ``roi_align``)."""
    code = frame.f_code
    kind = _CODE_KIND.get(code)
    if kind is None:
        kind = _path_kind(code)
        caller = frame.f_back
        while kind == "other" and caller is not None:
            caller_kind = _path_kind(caller.f_code)
            if caller_kind != "torch":
                kind = "other" if caller_kind == "other" else "kernel"
                break
            caller = caller.f_back
        if len(_CODE_KIND) >= _CODE_KINDS_KEPT:
            _CODE_KIND.clear()
        _CODE_KIND[code] = kind
    return kind


def _calling_kernel(frame: FrameType | None) -> tuple[FrameType, FrameType] | None:
    """The torch kernel that made this torch call, or None: its outermost frame before the calling
    code outside torch (a kernel calling kernels, as ``log_softmax``'s reference calls ``amax``'s,
    is the outer one) and the outermost that is not one of torch's wrappers
    (:data:`_WRAPPER_NAMES`), whose name and arguments are the kernel's. The counter runs every op
    it sees with itself out of the way, so the calls inside a kernel reach it only when the kernel
    ran for an op called where it cannot see: a TorchScript function or a C++ extension calling
    ATen, whose meta kernels are Python."""
    outer = named = None
    while frame is not None:
        kind = _code_kind(frame)
        if kind == "other":
            break
        if kind in ("kernel", "library"):
            outer = frame
            if kind == "kernel" and frame.f_code.co_name not in _WRAPPER_NAMES:
                named = frame
        frame = frame.f_back
    return None if outer is None else (outer, named or outer)


#: What property reads (``x.shape``, ``x.dtype``) return: no tensor, nothing for :meth:`OpCounter.on_free` to see.
_NOT_TENSORS = frozenset({torch.Size, torch.dtype, torch.device, bool, int, type(None)})

_NO_FORWARD = object()  # a module without a forward of its own on the instance


def _named_subtree(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """``list(module.named_modules())`` (pre-order, each module once under its first name),
    without its generators."""
    out: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()
    stack = [("", module)]
    while stack:
        name, m = stack.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        out.append((name, m))
        prefix = name + "." if name else ""
        stack.extend((prefix + k, c) for k, c in reversed(m._modules.items()) if c is not None)
    return out


def _subtree_tensors(modules: Sequence[nn.Module], attr: str) -> list[torch.Tensor]:
    """The tensors of ``modules``' ``_parameters`` (or ``_buffers``), each once, in order:
    ``list(module.parameters())`` for a module's subtree."""
    out: list[torch.Tensor] = []
    seen: set[int] = set()
    for m in modules:
        for t in getattr(m, attr).values():
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                out.append(t)
    return out


def _empty(shape: tuple[int, ...], dtype: torch.dtype, requires_grad: bool) -> torch.Tensor:
    """A contiguous meta stand-in; it needs a gradient where autograd would give it one."""
    out = meta_empty(shape, dtype)
    return _with_grad(out) if requires_grad and torch.is_grad_enabled() else out


def _module_stand_in(info: _ModuleInfo, x: torch.Tensor, op: OpCost,
                     own: _OwnTensors) -> torch.Tensor | None:
    """The output of a module on ``x`` as its formula describes it, or None where torch must
    run it: an input off meta, not contiguous, or of another dtype than the module's (torch
    would refuse it); a formula with several outputs. ``own``: the module's tensors, usable
    ones (see :meth:`OpCounter._read_tensors`)."""
    shape = op.output_shape
    if not x.is_meta or (own[1] is not None and own[1] != x.dtype) or not x.is_floating_point() \
            or not x.is_contiguous() or (shape and type(shape[0]) is not int):
        return None
    if info.inplace and tuple(x.shape) == tuple(shape):
        return x  # relu(inplace=True): the result is the input's storage
    return _empty(cast(tuple[int, ...], shape), x.dtype, own[2] or x.requires_grad)


def _with_grad(out: torch.Tensor) -> torch.Tensor:
    """``out`` as the output of an op autograd records: requiring a gradient and not a leaf, so
    that an in-place op on it (``y[:, 0] = 0``, ``y.clamp_min_(0)``) is allowed, as it is on
    the output it stands in for."""
    with _no_torch_function():
        return out.requires_grad_(True).clone()


#: A handled module's parameters (see :meth:`OpCounter._read_tensors`): ``(canonical name,
#: tensor)`` pairs, the set of those names, their elements, and the tensors alone.
_Owned = tuple[list[tuple[str, torch.Tensor]], frozenset[str], int, list[torch.Tensor]]
#: Whether a stand-in may answer for a handled module, its tensors' dtype, whether one needs a gradient.
_OwnTensors = tuple[bool, torch.dtype | None, bool]


class _ModuleInfo:
    """What the counter knows of one module of the run, looked up once: its qualified name,
    its rule, whether it may return a stand-in, and (read when it first runs, after a lazy
    module has materialised) the canonical names and tensors of its subtree's parameters."""

    __slots__ = ("name", "rule", "parametrized", "stand_in", "inplace", "same_dtype", "floating", "owned", "tensors")

    def __init__(self, name: str, rule: ModuleRule | None, parametrized: bool, stand_in: bool, inplace: bool,
                 same_dtype: bool, floating: bool = False) -> None:
        self.name = name
        self.rule = rule
        self.parametrized = parametrized
        self.stand_in = stand_in
        self.inplace = inplace
        self.same_dtype = same_dtype  # its input must have its weights' dtype (see _SAME_DTYPE_PRODUCTS)
        self.floating = floating  # its input must be floating-point (see _FLOATING_INPUT)
        self.owned: _Owned | None = None
        self.tensors: _OwnTensors | None = None  # see OpCounter._read_tensors


class OpCounter:
    """Records the ops of one forward pass of ``model``.

    ``param_names`` maps ``id(tensor)`` of every parameter the run will see to its
    canonical qualified name. ``train``: run in training mode (batch statistics,
    dropout) instead of eval. Use :meth:`run`; read :attr:`records`.
    """

    def __init__(self, model: nn.Module, param_names: dict[int, str], count_bias: bool = False,
                 check_shapes: bool = False, train: bool = False,
                 autocast: tuple[str, torch.dtype] | None = None) -> None:
        self.model = model
        self.count_bias = count_bias
        self.check_shapes = check_shapes
        self.train = train
        self.autocast = autocast
        self._casts: dict[int, torch.Tensor] = {}  # storage key -> its autocast copy (parameters: per forward)
        self.records: list[OpRecord] = []
        self.free_ops = 0
        self.mismatches: list[str] = []
        self._param_names = dict(param_names)
        self._modules = _named_subtree(model)
        modules = [m for _, m in self._modules]
        parameters = _subtree_tensors(modules, "_parameters")
        self._params_by_name = {name: t for t in parameters if (name := param_names.get(id(t)))}
        self._param_views: list[torch.Tensor] = []  # keeps ids of parameter views valid
        self._attributed: set[str] = set()
        self._stack: list[str] = []
        self._suppress = 0
        self._op_index: Counter[str] = Counter()
        self._evaluated: dict[tuple, OpCost] = {}  # this run's formula evaluations (see evaluate)
        self._storages: dict[int, tuple[int, StorageWeakRef | None, Any]] = {}
        self._last_key = 0  # the newest storage key (see _storage_key): keys only grow
        self._held: frozenset[int] | None = None  # keys of tensors modules hold as plain attributes (see _unseen)
        # the last kernel run where the counter cannot see and its row (on_kernel_call): the frame, and
        # with it its locals, is kept until the next such kernel or the end of the run
        self._kernel: FrameType | None = None
        self._kernel_row: OpRecord | None = None
        self._fresh = itertools.count(-1, -1)
        self._fixed: dict[int, tuple[torch.Tensor, TensorRef]] = {}  # parameters and buffers: read once
        fixed = self._fixed
        with _no_torch_function():
            for t in (*parameters, *_subtree_tensors(modules, "_buffers")):
                if not isinstance(t, UNINITIALIZED):
                    key, nbytes = self._storage_key(t)
                    fixed[id(t)] = (t, _tensor_ref((key, nbytes, t.element_size(), True, t.requires_grad)))
        self._param_keys = {r.key for _, r in fixed.values()}

    def model_parameters(self) -> list[torch.Tensor]:
        """``list(model.parameters())`` now (a forward may register new ones), without its generators."""
        return _subtree_tensors([m for _, m in _named_subtree(self.model)], "_parameters")

    @property
    def tensor_refs(self) -> list[TensorRef]:
        """The model's parameters and buffers, each storage once."""
        return list({r.key: r for _, r in self._fixed.values()}.values())

    # ----------------------------------------------------------------- storages

    def ref(self, t: torch.Tensor) -> TensorRef:
        """``t`` by its storage: views and in-place results share their base's key; a storage
        freed and replaced at the same address gets a new one. (Meta storages hold no memory:
        they are kept alive for the run, so their addresses are never reused; others are
        watched through weak references.)"""
        fixed = self._fixed.get(id(t))
        if fixed is not None:
            return fixed[1]
        key, nbytes = self._storage_key(t)
        return _tensor_ref((key, nbytes, t.element_size(), key in self._param_keys, t.requires_grad))

    def _storage_key(self, t: torch.Tensor) -> tuple[int, int]:
        """The key and size of ``t``'s storage (see :meth:`ref`)."""
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # no storage (sparse, nested): the tensor itself
            return id(t), t.numel() * t.element_size()
        address = storage._cdata
        entry = self._storages.get(address)
        if entry is None or (entry[1] is not None and entry[1].expired()):
            meta = t.is_meta
            self._last_key += 1
            entry = (self._last_key, None if meta else StorageWeakRef(storage), storage if meta else None)
            self._storages[address] = entry
        return entry[0], storage.nbytes()

    def refs(self, tensors: Sequence[torch.Tensor]) -> tuple[TensorRef, ...]:
        """:meth:`ref` of each of ``tensors`` (parameters and buffers looked up directly)."""
        fixed, ref = self._fixed, self.ref
        return tuple([found[1] if (found := fixed.get(id(t))) is not None else ref(t) for t in tensors])

    # ----------------------------------------------------------------- formulas

    def evaluate(self, call: FormulaCall) -> OpCost:
        """``call``'s formula evaluated. A network repeats its layers, so within this one run
        an identical call (same formula, same shapes and hyper-parameters) is evaluated
        once; nothing is kept between runs."""
        try:
            key = (call.formula, call.args, tuple(call.kwargs.items()))
            found = self._evaluated.get(key)
        except TypeError:  # an unhashable argument (a list of shapes): evaluate it
            return call.evaluate(count_bias=self.count_bias)
        if found is None:
            found = self._evaluated[key] = call.evaluate(count_bias=self.count_bias)
        return found

    # ----------------------------------------------------------------- autocast

    def autocast_args(self, name: str, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """``args`` / ``kwargs`` with the floating-point tensors cast as autocast casts them for op
        ``name`` (see :mod:`archstat.counting.autocast`)."""
        device_type, lower = self.autocast  # type: ignore[misc]
        target = cast_target(device_type, name)
        if target is None:
            return args, kwargs
        dtype = lower if target == "lower" else torch.float32

        def cast(v: Any) -> Any:
            if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != dtype:
                key = self.ref(v).key
                leaf = v.is_leaf and v.requires_grad
                copy = self._casts.get(key) if leaf else None
                if copy is None:
                    copy = v.to(dtype)
                    self._casts[key] = copy
                return copy
            if isinstance(v, (list, tuple)) and not hasattr(v, "_fields"):
                return type(v)(cast(x) for x in v)
            return v

        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}

    def cast_of(self, t: torch.Tensor) -> torch.Tensor:
        """The autocast copy of ``t`` the last lower- or float32-precision op read, or ``t``."""
        return self._casts.get(self.ref(t).key, t)

    # ----------------------------------------------------------------- running

    @property
    def attributed(self) -> frozenset[str]:
        """Canonical names of the parameters some recorded op used."""
        return frozenset(self._attributed)

    @property
    def current_module(self) -> str:
        """Qualified name of the innermost module running now (``""`` for the root)."""
        return self._stack[-1] if self._stack else ""

    def run(self, call: Callable[[], Any], inputs: Sequence[torch.Tensor]) -> Any:
        """Run ``call()`` (which runs the model on ``inputs``, its tensors) with the counting
        forwards and the interceptor in place.

        Every module's ``forward`` is wrapped for the run by an instance attribute that keeps
        the module stack and evaluates handled modules (cheaper than forward hooks, which
        send every call through ``nn.Module``'s slow path; hooks the copy kept still run
        first). The model is put in eval mode (train mode with ``train``) for the run; the
        forwards and every module's training flag are restored afterwards, also on error.
        """
        modes = [(m, m.training) for _, m in self._modules]
        wrapped: list[tuple[nn.Module, Any]] = []
        try:
            for name, m in self._modules:
                attrs = vars(m)
                own = attrs.get("forward", _NO_FORWARD)
                wrapped.append((m, own))
                attrs["forward"] = self._counting_forward(m, self._module_info(m, name), own)
                object.__setattr__(m, "training", self.train)
            self._casts.clear()
            with _no_torch_function():
                self.refs(inputs)  # tensors the model starts from: every other one is made by a call seen
            with torch.set_grad_enabled(self.train), _Interceptor(self):
                output = call()
            with _no_torch_function():
                self._check_seen("the model", "", flat_tensors(output), "returns")
            return output
        finally:
            self._kernel = self._kernel_row = None
            for m, own in wrapped:
                if own is _NO_FORWARD:
                    vars(m).pop("forward", None)
                else:
                    vars(m)["forward"] = own
            for m, training in modes:
                object.__setattr__(m, "training", training)

    # ----------------------------------------------------------------- modules

    def _module_info(self, module: nn.Module, name: str) -> _ModuleInfo:
        """What the run needs of ``module`` (qualified name ``name``), before its forward is wrapped."""
        attrs = vars(module)
        # a forward set on the instance is the module's own: counted through the ops it calls
        rule = None if "forward" in attrs else handler_for_module(module)
        if rule is None:
            return _ModuleInfo(name, None, False, False, False, False)
        parametrized = parametrize.is_parametrized(module) if "parametrizations" in module._modules else False
        stand_in = rule.formula in STAND_IN_FORMULAS and not parametrized and not attrs.get("return_indices", False) \
            and not self.check_shapes and self.autocast is None
        same_dtype = rule.formula in _SAME_DTYPE_PRODUCTS and self.autocast is None
        return _ModuleInfo(name, rule, parametrized, stand_in, bool(attrs.get("inplace", False)), same_dtype,
                           rule.formula in _FLOATING_INPUT)

    def _counting_forward(self, module: nn.Module, info: _ModuleInfo, own: Any) -> Callable[..., Any]:
        """``module``'s forward for the run: its name on the stack and, for a handled module,
        :meth:`_count_module`. On an error the stack keeps the failing module, so the error can
        name it."""
        forward = own if own is not _NO_FORWARD else type(module).forward.__get__(module)
        stack, name = self._stack, info.name

        if info.rule is None:  # a container, or a module counted through the ops it calls
            def counting_forward(*args: Any, **kwargs: Any) -> Any:
                stack.append(name)
                output = forward(*args, **kwargs)
                stack.pop()
                return output
        else:
            count_module, counter = self._count_module, self

            def counting_forward(*args: Any, **kwargs: Any) -> Any:
                stack.append(name)
                output = forward(*args, **kwargs) if counter._suppress \
                    else count_module(module, info, forward, args, kwargs)
                stack.pop()
                return output

        counting_forward.__wrapped__ = forward  # type: ignore[attr-defined]  # inspect.signature sees the module's
        return counting_forward

    def _param_numel(self, name: str) -> int:
        """Elements of parameter ``name`` (read when used: a lazy one has materialised by then)."""
        t = self._params_by_name.get(name)
        return t.numel() if t is not None and not isinstance(t, UNINITIALIZED) else 0

    def _read_tensors(self, info: _ModuleInfo, module: nn.Module) -> tuple[_Owned, _OwnTensors]:
        """Fill (and return) ``info.owned`` and ``info.tensors`` when ``module`` first runs, after a
        lazy module has materialised its parameters:

        * ``owned``: the canonical names and tensors of the parameters of ``module``'s subtree (a
          handled module answers for all of it: nn.MultiheadAttention owns out_proj), the set of
          those names, their elements and the tensors alone;
        * ``tensors``: whether a stand-in may answer for ``module`` (its own floating-point
          parameters and buffers all on meta, materialised, of one dtype), that dtype, and whether
          any needs a gradient."""
        own_params = module._parameters
        tensors = _subtree_tensors([m for _, m in _named_subtree(module)], "_parameters") if module._modules \
            else dict.fromkeys(p for p in own_params.values() if p is not None)
        names = self._param_names
        owned = [(names.get(id(p), ""), p) for p in tensors if not isinstance(p, UNINITIALIZED)]
        info.owned = (owned, frozenset([n for n, _ in owned]), sum([p.numel() for _, p in owned]),
                      [p for _, p in owned])
        usable, dtype, grad = True, None, False
        for t in itertools.chain(own_params.values(), module._buffers.values()):
            if t is None or not t.is_floating_point():
                continue
            usable = usable and t.is_meta and not isinstance(t, UNINITIALIZED) and t.dtype == (dtype or t.dtype)
            dtype, grad = dtype or t.dtype, grad or t.requires_grad
        info.tensors = (usable, dtype, grad)
        return info.owned, info.tensors

    def _count_module(self, module: nn.Module, info: _ModuleInfo, forward: Callable[..., Any], args: tuple,
                      kwargs: dict) -> Any:
        """A handled module runs: its formula (refusing an input it would reject), its output
        (the stand-in where one answers for it, else its own forward, whose inner calls are
        suppressed: not recorded again) and its row."""
        if _vmap_level() is not None and _vmapped(flat_tensors(args) + flat_tensors(kwargs)):
            return forward(*args, **kwargs)  # one example's shapes: its ops are uncounted rows (_VMAP_NOTE)
        if info.parametrized:  # the weight is computed from its originals: count that too
            for tensor_name in getattr(module, "parametrizations"):
                getattr(module, tensor_name)
        with _no_torch_function():
            try:
                call = info.rule(module, args, kwargs)  # type: ignore[misc]
                op = None if call is FREE else self.evaluate(call)
            except ShapeError as exc:
                shapes = format_shape(tuple(tuple(t.shape) for t in flat_tensors(args) + flat_tensors(kwargs)))
                error = InputTooSmallError if isinstance(exc, EmptyOutputError) else InputShapeError
                raise error(f"layer '{info.name or type(module).__name__}' ({type(module).__name__}) cannot take "
                            f"input {shapes}: {exc}") from None
            x = args[0] if not kwargs and len(args) == 1 and isinstance(args[0], torch.Tensor) else None
            if x is not None:  # most layers: one tensor
                inputs = [x]
                in_shapes: tuple = (tuple(x.shape),)
            else:
                inputs = flat_tensors(args) + flat_tensors(kwargs) if kwargs else flat_tensors(args)
                in_shapes = tuple([tuple(t.shape) for t in (inputs if not kwargs else flat_tensors(args))])
            own = info.tensors or self._read_tensors(info, module)[1]
            if info.same_dtype and inputs and own[1] is not None and inputs[0].dtype != own[1] \
                    or info.floating and inputs and not inputs[0].is_floating_point():
                weights = f"its weights are {str(own[1]).removeprefix('torch.')}" if own[1] is not None \
                    else "it takes floating-point values"
                raise InputShapeError(f"layer '{info.name or type(module).__name__}' ({type(module).__name__}) cannot "
                                      f"take input of dtype {str(inputs[0].dtype).removeprefix('torch.')}: {weights}")
            stand_in: Any = None  # a tensor, or MHA's (output, weights)
            if info.stand_in and op is not None and own[0]:
                if call.formula == "mha":
                    stand_in = self._attention_stand_in(module, args, kwargs, inputs, own)
                elif x is not None:
                    stand_in = _module_stand_in(info, x, op, own)
        if stand_in is None:
            self._suppress += 1
            output = forward(*args, **kwargs)
            self._suppress -= 1
        else:
            output = stand_in
        if op is None:  # FREE
            self.free_ops += 1
            if not _is_compiling():
                with _no_torch_function():
                    self._check_seen(info.name or type(module).__name__, None, inputs)
                    self.refs(flat_tensors(output))  # nn.Flatten's copy of a strided input: made by a call seen
            return output
        with _no_torch_function():  # its row
            owned, owned_names, held, owned_tensors = info.owned or self._read_tensors(info, module)[0]
            attributed = self._attributed
            fresh = owned_names.isdisjoint(attributed)  # none of its parameters was used before
            note = ""
            if op.cost.params != held and not info.parametrized and fresh:
                note = f"formula gives {op.cost.params:,} params, module holds {held:,}"
            # the row holds the module's parameters not used before (a parametrization's originals are
            # used by the rows that compute the weight from them), and parameters it takes as input
            # (a learned query passed to a linear layer)
            params = held if fresh else sum(p.numel() for n, p in owned if n not in attributed)
            names = self._param_names
            if x is None or id(x) in names:
                fed = {names[id(t)] for t in inputs if id(t) in names} - owned_names
                params += sum(self._param_numel(p) for p in fed if p not in attributed)
                attributed.update(fed)
            attributed.update(owned_names)
            operands = inputs + owned_tensors
            read = None
            if self.autocast is not None:  # the module's inner ops read autocast copies: those are saved
                if call.formula in _COMPOSITE_LOWER:  # its inner ops run outside the interceptor: cast here
                    read = list(self.autocast_args("linear", tuple(operands), {})[0])
                else:
                    read = [self.cast_of(t) for t in operands]
            cls = type(module)
            self._record(info.name or cls.__name__, info.name, cls.__name__, call, op, in_shapes, output, params, note,
                         cls, operands, info.inplace, read, stand_in is not None)
        return output

    def _attention_stand_in(self, module: nn.Module, args: tuple, kwargs: dict, inputs: list[torch.Tensor],
                            own: _OwnTensors
                            ) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """``nn.MultiheadAttention``'s ``(output, weights)`` as its forward returns them: the
        output ``(L, N, E)`` (transposed to ``(N, L, E)`` with ``batch_first``, ``(L, E)``
        unbatched), the weights ``(N, L, S)`` averaged over heads or ``(N, H, L, S)``, None
        without ``need_weights``. None (torch runs it) with a mask, ``is_causal`` or inputs
        that are not three meta tensors of the module's dtype."""
        names = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights",
                 "is_causal")
        bound = dict(zip(names, args))
        if len(args) > len(names) or set(kwargs) - set(names) or set(kwargs) & set(bound):
            return None
        bound.update(kwargs)
        q, k, v = bound.get("query"), bound.get("key"), bound.get("value")
        if not all(isinstance(t, torch.Tensor) for t in (q, k, v)) or len(inputs) != 3 \
                or bound.get("key_padding_mask") is not None or bound.get("attn_mask") is not None \
                or bound.get("is_causal", False):
            return None
        q, k, v = cast(torch.Tensor, q), cast(torch.Tensor, k), cast(torch.Tensor, v)
        _, dtype, requires_grad = own
        if any(not t.is_meta or t.dtype != (dtype or q.dtype) for t in (q, k, v)):
            return None
        m = cast(nn.MultiheadAttention, module)
        grad = requires_grad or any(t.requires_grad for t in (q, k, v))
        batched = q.dim() == 3
        if batched and m.batch_first:
            (n, length, embed), source = q.shape, k.shape[1]
            out = _empty((length, n, embed), q.dtype, grad).transpose(1, 0)
        elif batched:
            (length, n, embed), source = q.shape, k.shape[0]
            out = _empty((length, n, embed), q.dtype, grad)
        else:
            (length, embed), source, n = q.shape, k.shape[0], 1
            out = _empty((length, embed), q.dtype, grad)
        if not bound.get("need_weights", True):
            return out, None
        source += int(m.bias_k is not None) + int(m.add_zero_attn)
        heads = () if bound.get("average_attn_weights", True) else (m.num_heads,)
        weights = (*((n,) if batched else ()), *heads, length, source)
        return out, _empty(weights, q.dtype, grad)

    # ----------------------------------------------------------------- functions

    def plan(self, name: str, func: Callable, args: tuple, kwargs: dict,
             tensors: list[torch.Tensor]) -> tuple[FormulaCall, OpCost | None, Any] | None:
        """For a shape-only op on meta tensors, its formula and a stand-in output, so the op
        need not run (see :data:`~archstat.counting.handlers.SHAPE_ONLY_FUNCTIONS`); else None."""
        if self.check_shapes or not tensors:
            return None
        layout = _LAYOUT_PLANS.get(name)
        if layout is not None:
            return self._plan_layout(layout, name, func, args, kwargs, tensors)
        if name not in SHAPE_ONLY_FUNCTIONS or not all(t.is_meta for t in tensors):
            return None
        if name not in _ANY_DTYPE and not all(t.is_floating_point() for t in tensors) \
                or kwargs.get("dtype") is not None:
            return None  # sqrt or division of integers gives floats, dtype= another: torch says which
        try:
            call = call_handler(name, func, args, kwargs, None)
            if call is None:
                return None
            if call is FREE:  # dropout at inference returns its input
                return call, None, tensors[0]
            op = self.evaluate(call)
        except Exception:  # let torch run it and report whatever is wrong
            return None
        first = tensors[0]
        if _in_place(func, args, kwargs) and tuple(first.shape) == tuple(op.output_shape):
            return call, op, first  # relu_(x), x += y: the result is the input's storage
        dtype = _result_dtype(name, args, tensors)
        shape = cast(tuple[int, ...], op.output_shape)  # shape-only ops have one output
        channels_last = len(shape) == 4 and first.dim() == 4 and not first.is_contiguous() \
            and first.is_contiguous(memory_format=torch.channels_last)
        out = meta_empty(shape, dtype, torch.channels_last if channels_last else torch.contiguous_format)
        if torch.is_grad_enabled() and out.is_floating_point() and any(t.requires_grad for t in tensors):
            out = _with_grad(out)  # the stand-in carries what autograd would: a gradient is needed
        return call, op, out

    def _plan_layout(self, layout: Callable[[tuple, dict], torch.Tensor | None], name: str, func: Callable,
                     args: tuple, kwargs: dict, tensors: list[torch.Tensor]
                     ) -> tuple[FormulaCall, OpCost | None, Any] | None:
        """A copy or view op on meta tensors answered by ``layout`` (see :data:`_LAYOUT_PLANS`)
        instead of torch's meta kernels, which are Python decompositions; None (torch runs it)
        where ``layout`` cannot say what torch would return."""
        if not all(t.is_meta for t in tensors):
            return None
        try:
            with _no_torch_function():
                out = layout(args, kwargs)
            if out is None:
                return None
            if out is not tensors[0] and not out._is_view() and torch.is_grad_enabled() \
                    and out.is_floating_point() and tensors[0].requires_grad:
                out = _with_grad(out)  # a copy autograd records: it needs a gradient, as the input does
            call = call_handler(name, func, args, kwargs, out)
            if call is None:
                return None
            return call, None if call is FREE else self.evaluate(call), out
        except Exception:  # let torch run it and report whatever is wrong
            return None

    def on_kernel_call(self, kernel: tuple[FrameType, FrameType], operands: list[torch.Tensor], out: Any) -> None:
        """A call made inside torch kernel ``kernel`` (its frames: :func:`_calling_kernel`): not the
        model's op but part of one archstat did not see called. The kernel's first call gives it an
        uncounted row, with the tensors the kernel was given; the row's output is the latest
        call's (the kernel's result, once it returns), so the memory models hold it as they hold
        any op's."""
        with _no_torch_function():
            outputs = self.refs(flat_tensors(out))
            outer, named = kernel
            if outer is self._kernel and self._kernel_row is not None:
                self._kernel_row.outputs = outputs
                return
            self._kernel = outer
            code = named.f_code
            wrapped = outer.f_locals.get("fn")  # what torch's outermost wrapper wraps: the kernel itself
            kernel_name = wrapped.__name__ if callable(wrapped) and hasattr(wrapped, "__name__") else code.co_name
            names = list(code.co_varnames[:code.co_argcount])  # its positional arguments, and *args
            if code.co_flags & inspect.CO_VARARGS:
                names.append(code.co_varnames[code.co_argcount + code.co_kwonlyargcount])
            given = [t for name in names for t in flat_tensors(named.f_locals.get(name))]
            module = self.current_module
            self._kernel_row = OpRecord(
                name=self._function_row_name(module, kernel_name), module=module, type=_KERNEL_TYPE, category=None,
                input_shapes=tuple(tuple(t.shape) for t in given or operands), output_shape=(), cost=Cost(),
                counted=False, call=None, note=_KERNEL_NOTE.format(kernel=kernel_name), outputs=outputs)
            self.records.append(self._kernel_row)

    def on_free(self, args: tuple, kwargs: dict, out: Any) -> None:
        """A view or other free call outside any handled module: no row, but a view of a
        parameter is still that parameter."""
        outputs = [out] if isinstance(out, torch.Tensor) else flat_tensors(out)
        if not outputs:
            return  # metadata: shape, dtype ...
        self.free_ops += 1
        names = self._param_names
        owner = None
        for value in (*args, *kwargs.values()) if kwargs else args:
            for t in (value,) if isinstance(value, torch.Tensor) else flat_tensors(value):
                owner = names.get(id(t))
                if owner is not None:
                    break
            if owner is not None:
                break
        if owner is not None:
            for t in outputs:
                names[id(t)] = owner
                self._param_views.append(t)

    def on_function(self, name: str, func: Callable, args: tuple, kwargs: dict, operands: list[torch.Tensor],
                    out: Any, planned: tuple[FormulaCall, OpCost | None, Any] | None = None,
                    read: list[torch.Tensor] | None = None) -> None:
        """Record one torch function call made outside any handled module. ``operands`` are its
        tensor arguments; ``read`` what it read of them (under autocast: their casts)."""
        note = UNCOUNTED.get(name)
        if note is not None:  # an op archstat knows it cannot count (x.numpy()): its row says why
            self._uncounted(name, func, operands, out, note)
            return
        outputs = flat_tensors(out)
        if not outputs:
            return  # metadata: size(), dim(), shape ...
        param_operands = [self._param_names[id(t)] for t in operands if id(t) in self._param_names]
        try:
            call = planned[0] if planned else call_handler(name, func, args, kwargs, out)
        except RefusedOpError as exc:
            raise RefusedError(f"op {name} in '{self.current_module or '(root)'}' is not counted: {exc}") from None
        except NeedsValuesError:
            raise  # the count moves to the CPU
        except Exception as exc:  # a known op with arguments its handler cannot read
            self._uncounted(name, func, operands, out, f"handler failed: {type(exc).__name__}: {exc}")
            return
        if call is None:
            self._uncounted(name, func, operands, out, "unknown op: not counted")
            return
        if call is FREE:  # a view or the input itself (see the handlers): its storage is its input's
            self.free_ops += 1
            if param_operands:  # a view of a parameter is still that parameter
                for t in outputs:
                    self._param_names[id(t)] = param_operands[0]
                    self._param_views.append(t)
            return
        op = planned[1] if planned else None
        params = 0
        if param_operands:
            first_use = {p for p in param_operands if p not in self._attributed}
            numels = {p: self._param_numel(p) for p in set(param_operands)}  # a view's parameter: all of it
            if call.formula == "elementwise":
                call = replace(call, kwargs={**call.kwargs, "params": sum(numels.values())})
                op = None
            params = sum(numels[p] for p in first_use)
        try:
            op = op or self.evaluate(call)
        except (ShapeError, ValueError, TypeError, KeyError) as exc:
            self._uncounted(name, func, operands, out, f"formula failed: {exc}")
            return
        if param_operands:
            self._attributed.update(first_use)
        module = self.current_module
        self._record(self._function_row_name(module, name), module, name, call, op,
                     tuple([tuple(t.shape) for t in operands]), out, params, "", None, operands,
                     self.train and _in_place(func, args, kwargs), read, planned is not None and op is planned[1])

    def _function_row_name(self, module: str, op: str) -> str:
        key = f"{module}:{op}" if module else op
        self._op_index[key] += 1
        n = self._op_index[key]
        return key if n == 1 else f"{key}#{n}"

    def _caller(self) -> str:
        """The module that called the module running now."""
        return self._stack[-2] if len(self._stack) > 1 else ""

    def _check_seen(self, consumer: str, module: str | None, tensors: Sequence[torch.Tensor],
                    verb: str = "reads") -> tuple[TensorRef, ...]:
        """:meth:`refs` of ``tensors``, which ``consumer`` (an op, a layer) reads (or returns), in
        ``module`` (None: the caller of the module running now, where a layer's inputs were made):
        one uncounted row (:meth:`_unseen`) for each in a storage no call archstat saw made."""
        last = self._last_key
        refs = self.refs(tensors)
        if self._last_key != last and not _is_compiling():  # (torch.cond traces this: no graph break in it)
            self._unseen(f"{consumer} {verb}", self._caller() if module is None else module, tensors, refs, last)
        return refs

    def _unseen(self, consumer: str, module: str, tensors: Sequence[torch.Tensor], refs: tuple[TensorRef, ...],
                last: int) -> None:
        """Rows for the tensors among ``tensors`` whose storage (``refs``) is newer than key ``last``
        and that no module or its class holds as a plain attribute: ``consumer`` (``"fc reads"``) a
        tensor that no call archstat saw made, so what made it was not counted (:data:`_UNSEEN_NOTE`)."""
        if self._held is None:
            self._held = frozenset(r.key for r in self.refs(_held_tensors(m for _, m in self._modules)))
        for t, r in zip(tensors, refs):  # keys after last: storages new to this run (a sparse tensor has none)
            if last < r.key <= self._last_key and r.key not in self._held:
                shape = tuple(t.shape)
                self.records.append(OpRecord(
                    name=self._function_row_name(module, "unseen"), module=module, type=_UNSEEN_TYPE, category=None,
                    input_shapes=(shape,), output_shape=shape, cost=Cost(), counted=False, call=None,
                    note=_UNSEEN_NOTE.format(consumer=consumer, shape=format_shape(shape)), outputs=(r,)))

    def _uncounted(self, name: str, func: Callable, operands: list[torch.Tensor], out: Any, note: str) -> None:
        module = self.current_module
        if not _is_compiling():  # (torch.cond traces this mode and takes no graph break in it)
            with _no_torch_function():
                self._check_seen(name, module, operands)
                self.refs([_unbatched(t) for t in flat_tensors(out)])  # made by a call seen: not unseen when read
        qualified = f"{getattr(func, '__module__', None) or 'torch.Tensor'}.{getattr(func, '__name__', name)}"
        self.records.append(OpRecord(
            name=self._function_row_name(module, name), module=module, type=qualified, category=None,
            input_shapes=tuple(tuple(t.shape) for t in operands),
            output_shape=tuple(_observed_shapes(out)[0]) if _observed_shapes(out) else (),
            cost=Cost(), counted=False, call=None, note=note))

    # ----------------------------------------------------------------- shared

    def _record(self, name: str, module: str, type_name: str, call: FormulaCall, op: OpCost,
                in_shapes: tuple, output: Any, params: int, note: str, module_class: type | None,
                operands: Sequence[torch.Tensor], in_place: bool = False,
                read: Sequence[torch.Tensor] | None = None, described: bool = False) -> None:
        """Append the row of one counted op (``described``: its output is the stand-in its
        formula described, so the shapes agree by construction)."""
        outputs = [output] if isinstance(output, torch.Tensor) else flat_tensors(output)
        if not described:
            observed = [tuple(t.shape) for t in outputs]
            if not _shapes_agree(op.output_shape, observed):
                note = (note + "; " if note else "") + (f"formula predicts output {format_shape(op.output_shape)}, "
                                                        f"torch gave {format_shape(tuple(observed))}")
        if note:
            self.mismatches.append(f"{name}: {note}")
            warnings.warn(f"archstat: {name}: {note}", FormulaMismatchWarning, stacklevel=2)
        cost = op.cost if op.cost.params == params else Cost(params, op.cost.madds, op.cost.flops, op.cost.mem_access)
        operand_refs = self._check_seen(name, module if module_class is None else None, operands)
        output_refs = self.refs(outputs)
        back, saved = self._backward(call, operands, outputs, operand_refs, output_refs, in_place, read) \
            if self.train else (None, ())
        self.records.append(OpRecord(name, module, type_name, op.category, in_shapes, op.output_shape, cost, True, call,
                                     note, module_class, operand_refs, output_refs, back, saved))

    def _backward(self, call: FormulaCall, operands: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor],
                  operand_refs: tuple[TensorRef, ...], output_refs: tuple[TensorRef, ...], in_place: bool,
                  read: Sequence[torch.Tensor] | None) -> tuple[Backward | None, tuple[TensorRef, ...]]:
        """The op's backward pass and the storages it saves (operands as the op read them, outputs,
        new tensors)."""
        needs = Needs(tuple(t.requires_grad for t in operands))
        if not needs.any:
            return None, ()
        back = backward(call.formula, call.args, call.kwargs, needs, in_place)
        itemsize = (outputs or operands)[0].element_size()
        if self.autocast is not None and call.formula in _COMPOSITE_LOWER:  # its inner tensors are lower precision
            itemsize = torch.empty((), dtype=self.autocast[1]).element_size()
        sources = list(read) if read is not None else list(operands)
        source_refs = self.refs(sources) if read is not None else operand_refs
        return back, tuple(r for r in (self._saved_ref(s, sources, source_refs, output_refs, itemsize)
                                       for s in back.saved) if r is not None)

    def _saved_ref(self, saved: SavedTensor, operands: Sequence[torch.Tensor], operand_refs: tuple[TensorRef, ...],
                   outputs: tuple[TensorRef, ...], itemsize: int) -> TensorRef | None:
        if saved.operand is not None:
            if saved.operand >= len(operand_refs):
                return None
            t = operands[saved.operand]
            if saved.contiguous and _reshape_copies(t):  # saved as the contiguous copy the product reads
                return TensorRef(next(self._fresh), t.numel() * t.element_size(), t.element_size())
            return operand_refs[saved.operand]
        if saved.output:
            return outputs[0] if outputs else None
        if not saved.numel:
            return None
        size = _DTYPE_BYTES.get(saved.dtype, itemsize)
        return TensorRef(next(self._fresh), saved.numel * size, size)


#: The type and note of the row of a torch kernel run for an op archstat did not see called.
_KERNEL_TYPE = "(torch kernel run where archstat cannot see)"
_KERNEL_NOTE = ("torch ran its kernel {kernel} for an op called where archstat cannot see (a TorchScript function, "
                "a C++ extension calling torch): the ops of that code are not counted")

#: The type and note of the row of a tensor no call archstat saw made (see :meth:`OpCounter._unseen`).
_UNSEEN_TYPE = "(made where archstat cannot see)"
_UNSEEN_NOTE = ("{consumer} a tensor {shape} that no torch call archstat saw made: a TorchScript function, a "
                "C++/CUDA extension, autograd (torch.autograd.grad in a forward), NumPy or a legacy constructor "
                "(torch.Tensor(...)) made it, or it is held outside the model (a global, a closure, an object); what "
                "made it is not counted")


def _held_tensors(modules: Any) -> list[torch.Tensor]:
    """The tensors ``modules`` hold as plain attributes (not parameters or buffers) or their classes
    hold, directly or in a list, tuple or dict (anchors, cached tables, a class's constant): made
    before the run, seen by no call."""
    out: list[torch.Tensor] = []
    classes: set[type] = set()
    for m in modules:
        for key, value in vars(m).items():
            if key not in ("_parameters", "_buffers", "_modules"):
                out.extend(flat_tensors(value))
        classes.update(c for c in type(m).__mro__ if c is not nn.Module and c is not object)
    for cls in classes:
        out.extend(t for value in vars(cls).values() for t in flat_tensors(value))
    return out


#: Formulas of modules that multiply their input by their weights: both must have one dtype (torch:
#: "mat1 and mat2 must have the same dtype", "Input type (long int) and bias type (float) should be the same").
_SAME_DTYPE_PRODUCTS = frozenset({"conv", "conv_transpose", "linear", "mha", "rnn", "rnn_cell"})

#: Formulas of norm modules, which take floating-point input only (torch: '"batch_norm" not implemented for
#: 'Long'', "mixed dtype (CPU): all inputs must share same datatype"); a lower-precision float is allowed.
_FLOATING_INPUT = frozenset({"batch_norm", "layer_norm", "group_norm"})

#: Formulas of modules whose inner ops (linear layers, attention) autocast runs in lower precision but
#: that reach the interceptor as one composite call (F.multi_head_attention_forward).
_COMPOSITE_LOWER = frozenset({"mha"})

#: Shape-only ops whose output dtype promotes over their operands (the others keep the first's).
_PROMOTING = frozenset({"add", "sub", "mul", "div", "cat", "stack", "hstack", "vstack", "dstack", "column_stack", "pow",
                        "maximum", "minimum"})


#: Shape-only ops planned whatever their operands' dtype; the others only on floating-point ones.
_ANY_DTYPE = BOOL_RESULT | {"add", "sub", "mul", "neg", "clamp", "masked_fill", "cat", "stack", "hstack", "vstack",
                            "dstack", "column_stack", "roll", "flip", "fliplr", "flipud", "tril", "triu",
                            "fft_fftshift", "fft_ifftshift", "maximum", "minimum", "abs"}


def _result_dtype(name: str, args: tuple, tensors: list[torch.Tensor]) -> torch.dtype:
    """The dtype torch would give a planned op's output."""
    if name in BOOL_RESULT:
        return torch.bool
    if name not in _PROMOTING:
        return tensors[0].dtype
    if name != "cat" and len(args) > 1 and isinstance(args[0], torch.Tensor) \
            and isinstance(args[1], (torch.Tensor, int, float)):
        return torch.result_type(args[0], args[1])
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _contiguous_layout(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``x.contiguous()``: ``x`` itself where it is contiguous, else a contiguous copy."""
    x = args[0]
    if len(args) > 1 or kwargs.get("memory_format", torch.contiguous_format) is not torch.contiguous_format:
        return None
    return x if x.is_contiguous() else _empty(tuple(x.shape), x.dtype, False)


def _reshape_layout(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``x.reshape(shape)``: the view torch returns where the strides allow one, else a contiguous
    copy of the shape (torch's rule, resolving one ``-1`` the same way). Whether they allow one
    is :func:`_viewable`'s answer, not a failed ``view`` (a raised error costs 20 us)."""
    x = args[0]
    shape = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:] or kwargs.get("shape")
    if not shape or set(kwargs) - {"shape"} or not all(type(d) is int for d in shape):
        return None
    dims = list(shape)
    numel = x.numel()
    if dims.count(-1) == 1:
        known = prod(d for d in dims if d != -1)
        dims[dims.index(-1)] = numel // known if known else -1
    if any(d < 0 for d in dims) or prod(dims) != numel:
        return None  # a size torch refuses: let it say why
    if x.is_contiguous() or _viewable(tuple(x.shape), x.stride(), dims):
        return x.view(*dims) if dims else x.view(())  # sizes one by one: parsed faster than a list
    return _empty(tuple(dims), x.dtype, False)


def _viewable(shape: tuple[int, ...], strides: tuple[int, ...], new: Sequence[int]) -> bool:
    """Can a tensor of ``shape`` and ``strides`` be viewed as ``new`` (same number of elements)?
    torch's rule (``computeStride`` in ATen's ``TensorUtils.cpp``): split ``shape`` into chunks
    of dimensions that are contiguous among themselves (``strides[i] == shape[i + 1] *
    strides[i + 1]``, size-1 dimensions joining either side); ``new`` must split into chunks of
    the same sizes, in order. No elements, or a 0-d tensor: always."""
    if not shape or 0 in shape:
        return True
    view_d = len(new) - 1
    base_stride, tensor_numel, view_numel = strides[-1], 1, 1
    for d in range(len(shape) - 1, -1, -1):
        tensor_numel *= shape[d]
        if d == 0 or (shape[d - 1] != 1 and strides[d - 1] != tensor_numel * base_stride):  # a chunk ends at d
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return False
            if d > 0:
                base_stride, tensor_numel, view_numel = strides[d - 1], 1, 1
    return view_d == -1


def _index_layout(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """``table[index]`` with one tensor of integers: a gathered copy of shape
    ``index.shape + table.shape[1:]``."""
    if len(args) != 2 or kwargs:
        return None
    table, index = args
    if not isinstance(index, torch.Tensor) or index.dtype not in (torch.int64, torch.int32) or table.dim() == 0:
        return None
    return _empty((*index.shape, *table.shape[1:]), table.dtype, False)


#: Copy-or-view ops whose result on meta the counter gives without torch's meta kernels (Python
#: decompositions, 10-100 us each): name -> what the op returns (a copy without gradient:
#: :meth:`OpCounter._plan_layout` gives it one where autograd would), or None where torch must say.
_LAYOUT_PLANS: dict[str, Callable[[tuple, dict], torch.Tensor | None]] = {
    "contiguous": _contiguous_layout, "reshape": _reshape_layout, "getitem": _index_layout}


def _reshape_copies(t: torch.Tensor) -> bool:
    """Does merging ``t``'s batch dimensions into one (what ``torch.matmul`` does before its
    batched product) copy it? Only where its strides allow no view."""
    if t.dim() <= 3 or t.is_contiguous():
        return False
    merged = t.reshape(-1, *t.shape[-2:])
    return merged.untyped_storage()._cdata != t.untyped_storage()._cdata


_INPLACE_ARG: dict[Callable, int | None] = {}
_INPLACE_DUNDERS = frozenset({"__iadd__", "__isub__", "__imul__", "__itruediv__", "__idiv__"})


def _in_place(func: Callable, args: tuple, kwargs: dict) -> bool:
    """Does this call write its first argument in place (``relu_``, ``x += y``, ``inplace=True``)?"""
    name = getattr(func, "__name__", "")
    if name in _INPLACE_DUNDERS or (name.endswith("_") and not name.startswith("_")):
        return True
    if kwargs.get("inplace"):
        return True
    try:
        position = _INPLACE_ARG[func]
    except (KeyError, TypeError):
        try:
            names = list(inspect.signature(func).parameters)
            position = names.index("inplace") if "inplace" in names else None
        except (TypeError, ValueError):
            position = None
        try:
            _INPLACE_ARG[func] = position
        except TypeError:
            pass
    return position is not None and len(args) > position and bool(args[position])


#: Bytes per element of the dtypes new saved tensors name (``"act"``: the op's own).
_DTYPE_BYTES = {"float32": 4, "int64": 8, "bool": 1, "uint8": 1}
