"""The hook-based counter: run a model once and record every op it executes.

Two observers work together, and never on the same op:

* forward pre/post hooks on every submodule keep the qualified name of the module
  being run; for a module with a registered handler (``nn.Conv2d``, ``nn.LSTM``,
  ``nn.MultiheadAttention`` ...) the pre-hook evaluates the handler's formula from the
  module's hyper-parameters and input shapes, and everything the module does inside
  is *suppressed* (not recorded again);
* a :class:`~torch.overrides.TorchFunctionMode`, active only during the run, sees
  every torch function and tensor method called outside such modules (``x + y``,
  ``torch.cat``, ``F.interpolate``, ``q @ k.transpose(-2, -1)``, ``torchvision.ops.nms``)
  and maps it to a formula through :mod:`archstat.counting.handlers`.

The counter runs the model it is given; :func:`archstat.count` gives it a shadow copy
(:mod:`archstat.counting.shadow`), never the user's module. Hooks are removed and
training flags restored when the run ends, whatever happens.
"""

from __future__ import annotations

import inspect
import itertools
import warnings
from collections import Counter
from dataclasses import replace
from typing import Any, Callable, Sequence, cast

import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter
from torch.nn.utils import parametrize
from torch.multiprocessing.reductions import StorageWeakRef
from torch.overrides import TorchFunctionMode

from archstat.counting.autocast import cast_target
from archstat.counting.handlers import (FREE, METADATA_FUNCTIONS, SHAPE_ONLY_FUNCTIONS, FormulaCall, NeedsValuesError,
                                        RefusedOpError, call_handler, handler_for_module, normalise_name)
from archstat.counting.stats import OpRecord, TensorRef, format_shape
from archstat.errors import FormulaMismatchWarning, InputShapeError, InputTooSmallError, RefusedError
from archstat.formulas import Cost, EmptyOutputError, OpCost, ShapeError
from archstat.formulas.training import Backward, Needs, SavedTensor, backward

__all__ = ["OpCounter", "flat_tensors"]


def flat_tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor in ``value`` (nested tuples, lists, dicts, PackedSequences), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in flat_tensors(v)] if value else []
    if isinstance(value, dict):
        return [t for v in value.values() for t in flat_tensors(v)]
    return []


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
        if name in METADATA_FUNCTIONS or self.counter.bookkeeping:
            return func(*args, **kwargs)
        operands = flat_tensors(args) + flat_tensors(kwargs) if kwargs else flat_tensors(args)
        read = operands  # what the op reads: under autocast, the casts of its operands
        if self.counter.autocast is not None:
            args, kwargs = self.counter.autocast_args(name, args, kwargs)
            read = flat_tensors(args) + flat_tensors(kwargs) if kwargs else flat_tensors(args)
        planned = self.counter.plan(name, func, args, kwargs, read)
        out = func(*args, **kwargs) if planned is None else planned[2]
        if not self.counter.suppressed:
            self.counter.on_function(name, func, args, kwargs, operands, out, planned, read)
        return out


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
        self._params_by_name = {name: t for t in model.parameters() if (name := param_names.get(id(t)))}
        self._param_views: list[torch.Tensor] = []  # keeps ids of parameter views valid
        self._attributed: set[str] = set()
        self._modules = list(model.named_modules())
        self._module_names = {id(m): name for name, m in self._modules}
        self._owned: dict[int, list[tuple[str, torch.Tensor]]] = {}
        self._stack: list[str] = []
        self._pending: list[tuple[nn.Module, FormulaCall, OpCost | None, tuple, list[torch.Tensor]] | None] = []
        self._suppress = 0
        self.bookkeeping = False  # the counter's own tensor calls, never recorded
        self._op_index: Counter[str] = Counter()
        self._storages: dict[int, tuple[int, StorageWeakRef]] = {}
        self._serial = itertools.count(1)
        self._fresh = itertools.count(-1, -1)
        self._param_keys = {self.ref(t).key for t in (*model.parameters(), *model.buffers())
                            if not isinstance(t, UninitializedParameter)}

    # ----------------------------------------------------------------- storages

    def ref(self, t: torch.Tensor) -> TensorRef:
        """``t`` by its storage: views and in-place results share their base's key; a storage
        freed and replaced at the same address gets a new one."""
        try:
            storage = t.untyped_storage()
            address, nbytes = storage._cdata, storage.nbytes()
        except (RuntimeError, NotImplementedError):  # no storage (sparse, nested): the tensor itself
            return TensorRef(id(t), t.numel() * t.element_size(), t.element_size(), grad=t.requires_grad)
        entry = self._storages.get(address)
        if entry is None or entry[1].expired():
            entry = (next(self._serial), StorageWeakRef(storage))
            self._storages[address] = entry
        key = entry[0]
        return TensorRef(key, nbytes, t.element_size(), key in getattr(self, "_param_keys", ()), t.requires_grad)

    def refs(self, tensors: Sequence[torch.Tensor]) -> tuple[TensorRef, ...]:
        return tuple(self.ref(t) for t in tensors)

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
                self.bookkeeping = True
                try:
                    key = self.ref(v).key
                    leaf = v.is_leaf and v.requires_grad
                    copy = self._casts.get(key) if leaf else None
                    if copy is None:
                        copy = v.to(dtype)
                        self._casts[key] = copy
                finally:
                    self.bookkeeping = False
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
    def suppressed(self) -> bool:
        return self._suppress > 0

    @property
    def attributed(self) -> frozenset[str]:
        """Canonical names of the parameters some recorded op used."""
        return frozenset(self._attributed)

    @property
    def current_module(self) -> str:
        """Qualified name of the innermost module running now (``""`` for the root)."""
        return self._stack[-1] if self._stack else ""

    def run(self, call: Callable[[], Any]) -> Any:
        """Run ``call()`` (which runs the model) with hooks and the interceptor in place.

        The model is put in eval mode (train mode with ``train``) for the run; every
        module's training flag and the hook dictionaries are restored afterwards, also on
        error.
        """
        modes = {m: m.training for _, m in self._modules}
        handles = []
        try:
            for m in modes:
                handles.append(m.register_forward_pre_hook(self._pre_hook, with_kwargs=True))
                handles.append(m.register_forward_hook(self._post_hook, with_kwargs=True))
            for m in modes:
                m.training = self.train
            self._casts.clear()
            with torch.set_grad_enabled(self.train), _Interceptor(self):
                return call()
        finally:
            for h in handles:
                h.remove()
            for m, training in modes.items():
                m.training = training

    # ----------------------------------------------------------------- modules

    def _param_numel(self, name: str) -> int:
        """Elements of parameter ``name`` (read when used: a lazy one has materialised by then)."""
        t = self._params_by_name.get(name)
        return t.numel() if t is not None and not isinstance(t, UninitializedParameter) else 0

    def _owned_params(self, module: nn.Module) -> list[tuple[str, int]]:
        """Canonical names and sizes of the parameters of ``module``'s subtree (a handled module
        answers for all of it: nn.MultiheadAttention owns out_proj). Read when the module
        first runs, after a lazy module has materialised its parameters."""
        key = id(module)
        if key not in self._owned:
            self._owned[key] = [(self._param_names.get(id(p), ""), p) for p in module.parameters()]
        return [(name, p.numel()) for name, p in self._owned[key] if not isinstance(p, UninitializedParameter)]

    def _pre_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        name = self._module_names.get(id(module), type(module).__name__)
        self._stack.append(name)
        rule = None if self.suppressed else handler_for_module(module)
        if rule is None:
            self._pending.append(None)
            return
        if parametrize.is_parametrized(module):  # the weight is computed from its originals: count that too
            for tensor_name in getattr(module, "parametrizations"):
                getattr(module, tensor_name)
        try:
            call = rule(module, args, kwargs)
            op = None if call is FREE else call.evaluate(count_bias=self.count_bias)
        except ShapeError as exc:
            shapes = format_shape(tuple(tuple(t.shape) for t in flat_tensors(args) + flat_tensors(kwargs)))
            error = InputTooSmallError if isinstance(exc, EmptyOutputError) else InputShapeError
            raise error(f"layer '{name or type(module).__name__}' ({type(module).__name__}) cannot take input "
                        f"{shapes}: {exc}") from None
        inputs = flat_tensors(args) + flat_tensors(kwargs) if kwargs else flat_tensors(args)
        self._pending.append((module, call, op, tuple(tuple(t.shape) for t in flat_tensors(args)), inputs))
        self._suppress += 1

    def _post_hook(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        entry = self._pending.pop()
        name = self._stack.pop()
        if entry is None:
            return
        self._suppress -= 1
        _, call, op, in_shapes, inputs = entry
        if op is None:  # FREE
            self.free_ops += 1
            return
        owned = self._owned_params(module)
        held = sum(n for _, n in owned)
        note = ""
        if op.cost.params != held and not parametrize.is_parametrized(module) and not (
                self._attributed & {p for p, _ in owned}):
            note = f"formula gives {op.cost.params:,} params, module holds {held:,}"
        # the row holds the module's parameters not used before (a parametrization's originals are
        # used by the rows that compute the weight from them), and parameters it takes as input
        # (a learned query passed to a linear layer)
        fed = {self._param_names[id(t)] for t in inputs if id(t) in self._param_names} - {p for p, _ in owned}
        params = sum(n for p, n in owned if p not in self._attributed) + \
            sum(self._param_numel(p) for p in fed if p not in self._attributed)
        self._attributed.update(p for p, _ in owned)
        self._attributed.update(fed)
        operands = [*inputs, *module.parameters()]
        read = None
        if self.autocast is not None:  # the module's inner ops read autocast copies: those are saved
            self.bookkeeping = True
            try:
                if call.formula in _COMPOSITE_LOWER:  # its inner ops run outside the interceptor: cast here
                    read = list(self.autocast_args("linear", tuple(operands), {})[0])
                else:
                    read = [self.cast_of(t) for t in operands]
            finally:
                self.bookkeeping = False
        self._record(name or type(module).__name__, name, type(module).__name__, call, op, in_shapes,
                     output, params, note, type(module), operands, bool(getattr(module, "inplace", False)), read)

    # ----------------------------------------------------------------- functions

    def plan(self, name: str, func: Callable, args: tuple, kwargs: dict,
             tensors: list[torch.Tensor]) -> tuple[FormulaCall, OpCost | None, Any] | None:
        """For a shape-only op on meta tensors, its formula and a stand-in output, so the op
        need not run (see :data:`~archstat.counting.handlers.SHAPE_ONLY_FUNCTIONS`); else None."""
        if self.check_shapes or name not in SHAPE_ONLY_FUNCTIONS:
            return None
        if not tensors or not all(t.is_meta for t in tensors):
            return None
        try:
            call = call_handler(name, func, args, kwargs, None)
            if call is None:
                return None
            if call is FREE:  # dropout at inference returns its input
                return call, None, tensors[0]
            op = call.evaluate(count_bias=self.count_bias)
        except Exception:  # let torch run it and report whatever is wrong
            return None
        first = tensors[0]
        if _in_place(func, args, kwargs) and tuple(first.shape) == tuple(op.output_shape):
            return call, op, first  # relu_(x), x += y: the result is the input's storage
        dtype = _result_dtype(name, args, tensors)
        shape = cast(tuple[int, ...], op.output_shape)  # shape-only ops have one output
        channels_last = len(shape) == 4 and first.dim() == 4 and not first.is_contiguous() \
            and first.is_contiguous(memory_format=torch.channels_last)
        out = torch.empty(shape, dtype=dtype, device="meta",
                          memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        if torch.is_grad_enabled() and out.is_floating_point() and any(t.requires_grad for t in tensors):
            out.requires_grad_(True)  # the stand-in carries what autograd would: a gradient is needed
        return call, op, out

    def on_function(self, name: str, func: Callable, args: tuple, kwargs: dict, operands: list[torch.Tensor],
                    out: Any, planned: tuple[FormulaCall, OpCost | None, Any] | None = None,
                    read: list[torch.Tensor] | None = None) -> None:
        """Record one torch function call made outside any handled module. ``operands`` are its
        tensor arguments; ``read`` what it read of them (under autocast: their casts)."""
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
        if call is FREE:
            self.free_ops += 1
            if param_operands:  # a view of a parameter is still that parameter
                for t in outputs:
                    self._param_names[id(t)] = param_operands[0]
                    self._param_views.append(t)
            return
        first_use = {p for p in param_operands if p not in self._attributed}
        numels = {p: self._param_numel(p) for p in set(param_operands)}  # a view's parameter: all of it
        op = planned[1] if planned else None
        if call.formula == "elementwise" and param_operands:
            call = replace(call, kwargs={**call.kwargs, "params": sum(numels[p] for p in set(param_operands))})
            op = None
        try:
            op = op or call.evaluate(count_bias=self.count_bias)
        except (ShapeError, ValueError, TypeError, KeyError) as exc:
            self._uncounted(name, func, operands, out, f"formula failed: {exc}")
            return
        self._attributed.update(first_use)
        params = sum(numels[p] for p in first_use) if param_operands else 0
        module = self.current_module
        self._record(self._function_row_name(module, name), module, name, call, op,
                     tuple(tuple(t.shape) for t in operands), out, params, "", None, operands,
                     self.train and _in_place(func, args, kwargs), read)

    def _function_row_name(self, module: str, op: str) -> str:
        key = f"{module}:{op}" if module else op
        self._op_index[key] += 1
        n = self._op_index[key]
        return key if n == 1 else f"{key}#{n}"

    def _uncounted(self, name: str, func: Callable, operands: list[torch.Tensor], out: Any, note: str) -> None:
        module = self.current_module
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
                read: Sequence[torch.Tensor] | None = None) -> None:
        observed = _observed_shapes(output)
        if not _shapes_agree(op.output_shape, observed):
            note = (note + "; " if note else "") + (
                f"formula predicts output {format_shape(op.output_shape)}, torch gave {format_shape(tuple(observed))}")
        if note:
            self.mismatches.append(f"{name}: {note}")
            warnings.warn(f"archstat: {name}: {note}", FormulaMismatchWarning, stacklevel=2)
        cost = Cost(params, op.cost.madds, op.cost.flops, op.cost.mem_access)
        outputs = flat_tensors(output)
        self.bookkeeping = True
        try:
            operand_refs, output_refs = self.refs(operands), self.refs(outputs)
            back, saved = self._backward(call, operands, outputs, operand_refs, output_refs, in_place, read) \
                if self.train else (None, ())
        finally:
            self.bookkeeping = False
        self.records.append(OpRecord(name=name, module=module, type=type_name, category=op.category,
                                     input_shapes=in_shapes, output_shape=op.output_shape, cost=cost, counted=True,
                                     call=call, note=note, module_class=module_class, operands=operand_refs,
                                     outputs=output_refs, backward=back, saved=saved))

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


#: Formulas of modules whose inner ops (linear layers, attention) autocast runs in lower precision but
#: that reach the interceptor as one composite call (F.multi_head_attention_forward).
_COMPOSITE_LOWER = frozenset({"mha"})

#: Shape-only ops whose output dtype promotes over their operands (the others keep the first's).
_PROMOTING = frozenset({"add", "sub", "mul", "div", "cat"})


def _result_dtype(name: str, args: tuple, tensors: list[torch.Tensor]) -> torch.dtype:
    """The dtype torch would give a planned op's output."""
    if name not in _PROMOTING:
        return tensors[0].dtype
    if name != "cat" and len(args) > 1 and isinstance(args[0], torch.Tensor) \
            and isinstance(args[1], (torch.Tensor, int, float)):
        return torch.result_type(args[0], args[1])
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


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
