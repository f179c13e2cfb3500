"""The registries that map an op the counter observes to a formula, and nothing else.

Two registries, one per way an op reaches the counter:

* :data:`MODULE_HANDLERS`: ``nn.Module`` classes whose *stock* ``forward`` is one op
  (``nn.Conv2d``, ``nn.LSTM``, ``nn.MultiheadAttention`` ...), each registered with the
  options that class fixes (``spatial_dims=2``, ``mode="max"``, ``op="relu"``) and the
  helper methods its ``forward`` delegates to (``nn.Conv2d._conv_forward``). Looked up
  along the module's MRO, so a subclass that keeps the stock ``forward`` and its helpers
  counts exactly like its base; a subclass with its own ``forward`` (timm's
  ``Conv2dSame``) or its own helper (a ``_conv_forward`` that convolves twice) is counted
  through the functional ops it calls instead.
* :data:`FUNCTION_HANDLERS`: torch functions, tensor methods and ``torch.ops`` operators,
  keyed by their normalised name (``"add"`` for ``torch.add``, ``Tensor.add``, ``x + y``
  and ``x += y``).

A handler never computes a number: it returns a :class:`FormulaCall` naming a formula of
:mod:`archstat.formulas` and its arguments, or :data:`FREE`. :data:`FREE_FUNCTIONS` are
the known zero-cost ops (views, metadata); :data:`REFUSED` the ops archstat knows and will
not count, each with its reason; :data:`UNCOUNTED` the ops archstat knows it cannot count,
each with the note of its *uncounted* row; any other name is *uncounted* and reported.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from torch import nn
from torch._ops import OpOverload

from archstat.formulas import FORMULAS, OpCost

__all__ = ["FormulaCall", "FREE", "MODULE_HANDLERS", "FUNCTION_HANDLERS", "FREE_FUNCTIONS", "REFUSED",
           "SHAPE_ONLY_FUNCTIONS", "BOOL_RESULT", "METADATA_FUNCTIONS", "UNCOUNTED", "NeedsValuesError",
           "ModuleRule", "FunctionRule", "module_handler", "function_handler", "handler_for_module", "call_handler",
           "normalise_name", "declare_free", "declare_uncounted", "refuse", "RefusedOpError"]


@dataclass(frozen=True, slots=True)
class FormulaCall:
    """A formula of :data:`archstat.formulas.FORMULAS` and the arguments to call it with.

    Kept on every counted row, so a row can be re-evaluated under other options
    (``count_bias``) or other tools' conventions without running the model again.
    """

    formula: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def evaluate(self, **options: Any) -> OpCost:
        """Call the formula; ``options`` it does not accept (e.g. ``count_bias``) are ignored."""
        fn = FORMULAS[self.formula]
        accepted = _accepted_options(fn, tuple(options))
        if accepted:
            return fn(*self.args, **self.kwargs, **{k: options[k] for k in accepted})
        return fn(*self.args, **self.kwargs)


_OPTION_CACHE: dict[tuple[Callable, tuple[str, ...]], tuple[str, ...]] = {}


def _accepted_options(fn: Callable, names: tuple[str, ...]) -> tuple[str, ...]:
    key = (fn, names)
    found = _OPTION_CACHE.get(key)
    if found is None:
        params = inspect.signature(fn).parameters
        found = _OPTION_CACHE[key] = tuple(n for n in names if n in params)
    return found


#: Returned by a handler for an op that costs nothing (a view, dropout at inference).
FREE = FormulaCall("free")

ModuleHandler = Callable[..., FormulaCall]
FunctionHandler = Callable[..., FormulaCall]


@dataclass(frozen=True)
class ModuleRule:
    """How one registered module class is counted: its handler, the options the class fixes,
    the formula the handler calls (for ``archstat ops``), and ``helpers``: the methods the
    class's stock ``forward`` delegates its work to, which a subclass must keep as well to be
    counted by this rule (see :func:`handler_for_module`)."""

    cls: type
    handler: ModuleHandler
    options: Mapping[str, Any]
    formula: str
    helpers: tuple[str, ...] = ()

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> FormulaCall:
        return self.handler(module, args, kwargs, **self.options)


@dataclass(frozen=True)
class FunctionRule:
    """How one function name is counted: its handler (called as ``handler(args, kwargs, out,
    **options)``, plus ``name=`` / ``func=`` where it asks for them) and its formula."""

    handler: FunctionHandler
    options: Mapping[str, Any]
    formula: str
    wants: frozenset[str]

    def __call__(self, name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> FormulaCall:
        if not self.wants:
            return self.handler(args, kwargs, out, **self.options)
        extras = {k: v for k, v in (("name", name), ("func", func)) if k in self.wants}
        return self.handler(args, kwargs, out, **self.options, **extras)


MODULE_HANDLERS: dict[type, ModuleRule] = {}
FUNCTION_HANDLERS: dict[str, FunctionRule] = {}

#: Calls that only read tensor metadata (``x.size()``, ``x.dim()``): the counter passes them
#: straight through without looking at their arguments.
METADATA_FUNCTIONS = frozenset({"size", "dim", "numel", "stride", "is_contiguous", "element_size", "nelement",
                                "ndimension", "storage_offset", "is_floating_point", "is_complex", "data_ptr"})

#: Known zero-cost functions: views, metadata and bookkeeping. Anything that returns no
#: tensor at all (``size``, ``dim``, ``shape``) is free without being listed.
FREE_FUNCTIONS: set[str] = set(METADATA_FUNCTIONS)

#: Ops archstat knows and refuses to count, with the one-line reason a count gives.
REFUSED: dict[str, str] = {}

#: Ops archstat knows it cannot count, with the note of the *uncounted* row (and
#: :class:`~archstat.errors.UncountedOpWarning`) a count gives them instead of a cost:
#: ``Tensor.numpy`` hands the values to NumPy, whose work torch never sees.
UNCOUNTED: dict[str, str] = {}

#: Ops whose one output tensor is fully described by its formula's output shape and its
#: inputs' dtype. On the meta device the counter returns an empty tensor of that shape
#: instead of running them: torch's meta kernels for batch norm and element-wise ops are
#: Python decompositions, slower than the real CPU kernels. (``count(..., check_shapes=True)``
#: runs them and compares; the tests and the torchvision benchmark do.)
SHAPE_ONLY_FUNCTIONS: set[str] = set()

#: Ops whose output is boolean whatever their inputs' dtype (comparisons, logical ops, tests).
BOOL_RESULT = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not", "logical_xor",
                         "isnan", "isinf", "isfinite", "signbit", "isposinf", "isneginf"})


class RefusedOpError(ValueError):
    """An op in :data:`REFUSED` was met; the message is its reason."""


class NeedsValuesError(RuntimeError):
    """A handler needs tensor values (the boxes of an adaptive roi_align) and got meta tensors:
    the count must run on the CPU."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs tensor values, which meta tensors do not have")


def _known_formula(formula: str) -> str:
    if formula not in FORMULAS and formula != FREE.formula:
        raise ValueError(f"unknown formula {formula!r}")
    return formula


def module_handler(*classes: type | Mapping[type, Mapping[str, Any]], formula: str, helpers: tuple[str, ...] = (),
                   **options: Any) -> Callable[[ModuleHandler], ModuleHandler]:
    """Register a handler for module classes (and subclasses that keep their ``forward``).

    Each positional argument is a class, or a mapping of classes to the options that class
    fixes (``{nn.MaxPool1d: {"spatial_dims": 1}, ...}``); ``options`` apply to all of them.
    The handler is called as ``handler(module, args, kwargs, **options)`` and returns a
    :class:`FormulaCall` of ``formula`` (or :data:`FREE`). ``helpers`` names the methods the
    stock ``forward`` delegates to (``"_conv_forward"``): a subclass overriding one has a
    forward of its own (:func:`handler_for_module`). Each must be a method of every class.
    """

    def register(fn: ModuleHandler) -> ModuleHandler:
        for item in classes:
            table = item if isinstance(item, Mapping) else {item: {}}
            for cls, own in table.items():
                if cls in MODULE_HANDLERS:
                    raise ValueError(f"module {cls.__qualname__} already has a handler")
                missing = [h for h in helpers if not callable(getattr(cls, h, None))]
                if missing:
                    raise ValueError(f"module {cls.__qualname__} has no method {', '.join(missing)}")
                MODULE_HANDLERS[cls] = ModuleRule(cls, fn, {**options, **own}, _known_formula(formula), helpers)
        return fn

    return register


def _registered(name: str) -> bool:
    return name in FUNCTION_HANDLERS or name in FREE_FUNCTIONS or name in REFUSED or name in UNCOUNTED


def function_handler(*names: str, formula: str, shape_only: bool = False, **options: Any
                     ) -> Callable[[FunctionHandler], FunctionHandler]:
    """Register a handler for torch functions / tensor methods by normalised name.

    The handler returns a :class:`FormulaCall` of ``formula`` (or :data:`FREE` where the call
    costs nothing). ``shape_only``: the op's output is described by its formula (see
    :data:`SHAPE_ONLY_FUNCTIONS`). ``options`` are bound into the handler.
    """

    def register(fn: FunctionHandler) -> FunctionHandler:
        wants = frozenset(inspect.signature(fn).parameters) & {"name", "func"}
        for name in names:
            if _registered(name):
                raise ValueError(f"function {name!r} already has a handler")
            FUNCTION_HANDLERS[name] = FunctionRule(fn, options, _known_formula(formula), wants)
            if shape_only:
                SHAPE_ONLY_FUNCTIONS.add(name)
        return fn

    return register


def declare_free(*names: str) -> None:
    """Declare functions that cost nothing (views, metadata)."""
    for name in names:
        if _registered(name) and name not in FREE_FUNCTIONS:
            raise ValueError(f"function {name!r} already has a handler")
        FREE_FUNCTIONS.add(name)


def refuse(reason: str, *names: str) -> None:
    """Declare ops archstat will not count, and why (one line)."""
    for name in names:
        if _registered(name):
            raise ValueError(f"function {name!r} already has a handler")
        REFUSED[name] = reason


def declare_uncounted(note: str, *names: str) -> None:
    """Declare ops archstat knows and cannot count: a count gives each an *uncounted* row
    with ``note`` (one line) and an :class:`~archstat.errors.UncountedOpWarning`."""
    for name in names:
        if _registered(name):
            raise ValueError(f"function {name!r} already has a handler")
        UNCOUNTED[name] = note


def handler_for_module(module: nn.Module) -> ModuleRule | None:
    """The rule of the nearest registered class in the module's MRO, if the module still
    runs that class's ``forward`` and the helper methods it delegates to (the rule's
    ``helpers``: a ``_conv_forward`` of its own, on a subclass or set on the instance,
    makes the module's forward its own); else
    ``None`` (its functional ops get counted). A rule is called as
    ``rule(module, args, kwargs) -> FormulaCall``."""
    cls = type(module)
    for base in cls.__mro__:
        found = MODULE_HANDLERS.get(base)
        if found is not None:
            own = module.__dict__  # a helper set on the instance overrides the class's too
            stock = cls.forward is getattr(base, "forward", None) and \
                all(getattr(cls, h) is getattr(base, h) and h not in own for h in found.helpers)
            return found if stock else None
    return None


_ALIASES = {
    "truediv": "div", "rtruediv": "div", "rdiv": "div", "itruediv": "div", "divide": "div",
    "floordiv": "floor_divide", "rfloordiv": "floor_divide", "mod": "remainder", "rmod": "remainder",
    "radd": "add", "iadd": "add", "rmul": "mul", "imul": "mul", "multiply": "mul", "isub": "sub",
    "subtract": "sub", "rsub": "rsub", "rpow": "pow", "ipow": "pow", "invert": "bitwise_not", "and": "bitwise_and",
    "or": "bitwise_or", "xor": "bitwise_xor", "rand": "bitwise_and", "ror": "bitwise_or", "rxor": "bitwise_xor",
    "iand": "bitwise_and", "ior": "bitwise_or", "ixor": "bitwise_xor", "concat": "cat",
    "concatenate": "cat", "native_channel_shuffle": "channel_shuffle", "max_pool2d_with_indices": "max_pool2d",
    "max_pool1d_with_indices": "max_pool1d", "max_pool3d_with_indices": "max_pool3d",
    "adaptive_max_pool1d_with_indices": "adaptive_max_pool1d",
    "adaptive_max_pool2d_with_indices": "adaptive_max_pool2d",
    "adaptive_max_pool3d_with_indices": "adaptive_max_pool3d", "swish": "silu", "clip": "clamp",
    "greater": "gt", "less": "lt", "greater_equal": "ge", "less_equal": "le", "not_equal": "ne",
    "matrix_multiply": "matmul", "absolute": "abs", "negative": "neg", "arccos": "acos", "arcsin": "asin",
    "arctan": "atan", "arctan2": "atan2", "fix": "trunc", "special_expit": "sigmoid", "expit": "sigmoid",
    "log_sigmoid": "logsigmoid", "fractional_max_pool2d_with_indices": "fractional_max_pool2d",
    "fractional_max_pool3d_with_indices": "fractional_max_pool3d",
}

_NAMES: dict[Any, str] = {}


def normalise_name(func: Callable) -> str:
    """``Tensor.add_`` -> ``"add"``, ``Tensor.__iadd__`` -> ``"add"``, ``torch.concat`` -> ``"cat"``,
    ``torch.ops.torchvision.nms`` -> ``"nms"``, ``torch.ops.aten.mm.default`` -> ``"mm"``."""
    try:
        return _NAMES[func]
    except (KeyError, TypeError):
        if isinstance(func, OpOverload):  # its __name__ is "mm.default": the op's name is its packet's
            name = func.overloadpacket.__name__
        else:
            name = getattr(func, "__name__", repr(func))
        name = name.strip("_")
        name = _ALIASES.get(name, name)
        try:
            _NAMES[func] = name
        except TypeError:  # an unhashable callable: not cached
            pass
        return name


def call_handler(name: str, func: Callable, args: tuple, kwargs: dict, out: Any) -> FormulaCall | None:
    """The :class:`FormulaCall` for a function call, :data:`FREE` if it costs nothing,
    ``None`` if archstat does not know it or cannot count it (:data:`UNCOUNTED`, whose note
    the row carries); raises :class:`RefusedOpError` for a refused op."""
    if name in FREE_FUNCTIONS:
        return FREE
    rule = FUNCTION_HANDLERS.get(name)
    if rule is None:
        if name in REFUSED:
            raise RefusedOpError(REFUSED[name])
        return None
    return rule(name, func, args, kwargs, out)
