"""The Python API: :func:`count` a model (or a model name) and get :class:`ModelStats`.

Running on the ``meta`` device is the default: a model built from a name is
constructed on meta (no weights allocated) and run on a meta input (no activations);
a model passed in is run through ``torch.func.functional_call`` with meta stand-ins for
its parameters and buffers, leaving its own tensors untouched. Where that fails (code
that reads tensor values, such as ``.item()`` or ``.tolist()``), the count falls back to
the CPU and says so in ``ModelStats.notes``.
"""

from __future__ import annotations

import gc
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from archstat.conventions import apply_convention
from archstat.conventions import convention as convention_rules
from archstat.counting.build import build_meta
from archstat.counting.counter import OpCounter
from archstat.counting.stats import ModelStats, format_shape
from archstat.errors import ArchstatError, CountError, InputTooSmallError, UncountedOpWarning
from archstat.models import default_input_size, model_builder

__all__ = ["count", "parse_input_size"]


def parse_input_size(text: str, batch: int = 1) -> tuple[int, ...]:
    """``"3x224x224"`` -> ``(batch, 3, 224, 224)``; ``"224x224"`` (or ``"224"``) assumes 3 channels."""
    try:
        dims = tuple(int(d) for d in text.lower().replace(",", "x").split("x") if d.strip())
    except ValueError:
        raise ArchstatError(f"input size {text!r} is not of the form CxHxW or HxW (e.g. 3x224x224)") from None
    if not dims or any(d <= 0 for d in dims):
        raise ArchstatError(f"input size {text!r} must be positive integers like 3x224x224")
    if len(dims) == 1:
        dims = (3, dims[0], dims[0])
    elif len(dims) == 2:
        dims = (3, *dims)
    return (batch, *dims)


def count(
    model_or_name: nn.Module | str,
    input_shape: Sequence[int] | None = None,
    *,
    count_bias: bool = False,
    device: str = "meta",
    dtype: torch.dtype = torch.float32,
    model_kwargs: dict[str, Any] | None = None,
    check_shapes: bool = False,
    convention: str = "archstat",
    verify: bool = False,
) -> ModelStats:
    """Count params, multiply-adds, FLOPs and memory access of a model on one input.

    ``model_or_name``: an ``nn.Module`` or a name (zoo, torchvision, ``timm:<name>``).
    ``input_shape``: the full input shape with batch, ``(N, C, H, W)``; by default the
    size the model was published at for a name (``(1, 3, 299, 299)`` for
    ``inception_v3``) and ``(1, 3, 224, 224)`` for a module.
    ``count_bias``: count bias additions as multiply-adds (ptflops does; thop 0.1.1,
    fvcore, FlopCounterMode and torchvision's figures do not). ``device``: ``"meta"``
    (default, falls back to CPU when the model cannot run on meta) or ``"cpu"``. ``dtype``
    sets the bytes per element of ``mem_access_bytes``. Ops archstat does not know are
    listed in ``stats.uncounted`` and announced with an
    :class:`~archstat.errors.UncountedOpWarning`.
    ``check_shapes``: on meta, run every op's meta kernel and compare its output shape with
    the formula's (slower; by default shape-only ops are not run, their formula gives the
    output shape).
    ``convention``: count madds the way another tool does, one of ``archstat``, ``paper``,
    ``torch``, ``fvcore``, ``thop``, ``ptflops`` (see :mod:`archstat.conventions`; flops
    become ``2 * madds``). ``verify``: recompute every layer from its module's attributes,
    without hooks, and raise :class:`~archstat.crosscheck.verify.LayerMismatchError`
    naming the first layer where the two disagree.
    """
    with _gc_paused():
        return _count(model_or_name, input_shape, count_bias, device, dtype, model_kwargs, check_shapes,
                      convention, verify)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Counting allocates many short-lived objects and frees them all at the end; a cyclic
    garbage collection in between only adds a pause (0.2 s at times), so it waits."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _count(model_or_name: nn.Module | str, input_shape: Sequence[int] | None, count_bias: bool, device: str,
           dtype: torch.dtype, model_kwargs: dict[str, Any] | None, check_shapes: bool, convention: str,
           verify: bool) -> ModelStats:
    rules = convention_rules(convention)
    if count_bias and rules.name != "archstat":
        raise ArchstatError(f"count_bias applies to the archstat convention; {rules.name} fixes its own bias rule")
    if device not in ("meta", "cpu"):
        raise ArchstatError(f"device must be 'meta' or 'cpu', not {device!r}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    if isinstance(model_or_name, str):
        name = model_or_name
        builder = model_builder(name, **(model_kwargs or {}))
        shape = tuple(input_shape) if input_shape is not None else (1, *default_input_size(name))
        stats = _count_built(name, builder, shape, count_bias, device, check_shapes)
    elif isinstance(model_or_name, nn.Module):
        shape = tuple(input_shape) if input_shape is not None else (1, 3, 224, 224)
        stats = _count_module(model_or_name, shape, count_bias, device, check_shapes)
    else:
        raise ArchstatError(f"count() takes an nn.Module or a model name, not {type(model_or_name).__name__}")
    stats.itemsize = itemsize
    _warn_uncounted(stats)
    if verify:
        from archstat.crosscheck.verify import verify_layers

        target = model_or_name if isinstance(model_or_name, nn.Module) else builder
        stats.notes.append(verify_layers(target, stats, count_bias))
    return apply_convention(stats, rules.name)


# --------------------------------------------------------------------------- strategies


def _count_built(name: str, builder: Callable[[], nn.Module], shape: tuple[int, ...], count_bias: bool,
                 device: str, check_shapes: bool) -> ModelStats:
    """Build and count ``name``, trying meta, meta with small init tensors on CPU, then CPU."""
    attempts: list[tuple[str, Callable[[], nn.Module], str]] = []
    if device == "meta":
        attempts += [("meta", lambda: build_meta(builder), "meta"),
                     ("meta (small init tensors on CPU)", lambda: build_meta(builder, True), "meta")]
    attempts.append(("cpu", builder, "cpu"))
    notes: list[str] = []
    for label, build, run_on in attempts:
        try:
            model = build()
        except ArchstatError:
            raise
        except Exception as exc:  # a constructor that computes on tensor values
            notes.append(f"building on {label} failed ({_one_line(exc)})")
            continue
        try:
            stats = _run(model, shape, count_bias, run_on, name, check_shapes)
        except (InputTooSmallError, ArchstatError) as exc:
            if isinstance(exc, CountError) and run_on != "cpu":
                notes.append(f"running on {label} failed ({exc})")
                continue
            raise
        stats.notes = notes + ([f"counted on {label}"] if notes else []) + stats.notes
        return stats
    raise CountError(f"{name}: could not be counted: {'; '.join(notes)}")


def _count_module(model: nn.Module, shape: tuple[int, ...], count_bias: bool, device: str,
                  check_shapes: bool) -> ModelStats:
    name = type(model).__name__
    if device == "meta":
        try:
            return _run(model, shape, count_bias, "meta", name, check_shapes)
        except CountError as exc:
            if all(t.is_meta for t in _tensors_of(model)) and any(True for _ in _tensors_of(model)):
                raise
            stats = _run(model, shape, count_bias, "own", name, check_shapes)
            stats.notes.insert(0, f"running on meta failed ({exc}); counted on the model's own device")
            return stats
    return _run(model, shape, count_bias, "own", name, check_shapes)


def _tensors_of(model: nn.Module):
    yield from model.parameters()
    yield from model.buffers()


def _run(model: nn.Module, shape: tuple[int, ...], count_bias: bool, where: str, name: str,
         check_shapes: bool = False) -> ModelStats:
    """One forward pass under the counter. ``where``: "meta" (meta stand-ins for any real
    tensors), "cpu" or "own" (the model's own tensors and device)."""
    named_params = dict(model.named_parameters())
    if where == "meta" and not all(t.is_meta for t in _tensors_of(model)):
        stand_ins = {n: torch.empty_like(t, device="meta") for n, t in
                     list(named_params.items()) + list(model.named_buffers())}
        param_ids = {id(stand_ins[n]): n for n in named_params}
        x = torch.empty(shape, device="meta")

        def call() -> Any:
            return torch.func.functional_call(model, stand_ins, (x,), tie_weights=True, strict=False)
    else:
        param_ids = {id(p): n for n, p in named_params.items()}
        dev = "meta" if where == "meta" else next((t.device for t in _tensors_of(model)), torch.device("cpu"))
        x = torch.empty(shape, device=dev) if where == "meta" else torch.randn(shape, device=dev)

        def call() -> Any:
            return model(x)

    counter = OpCounter(model, param_ids, count_bias=count_bias, check_shapes=check_shapes)
    try:
        counter.run(call)
    except ArchstatError:
        raise
    except Exception as exc:
        layer = counter.current_module
        where_text = f"layer '{layer}'" if layer else "the model"
        raise CountError(f"{name} on input {format_shape(shape)}: {where_text} failed: {_one_line(exc)}") from None
    params = sum(p.numel() for p in named_params.values())
    used = counter.attributed
    unused = {n: p.numel() for n, p in named_params.items() if n not in used}
    notes = list(counter.mismatches)
    if unused:
        heads = _outermost({n.rpartition(".")[0] for n in unused})
        notes.append(f"{sum(unused.values()):,} params are never used by the forward pass ({', '.join(heads[:5])}"
                     f"{', ...' if len(heads) > 5 else ''}); they are in params, not in any row")
    return ModelStats(model=name, input_shape=shape, records=counter.records, params=params,
                      device="meta" if where == "meta" else str(x.device), unused_params=unused, notes=notes,
                      free_ops=counter.free_ops)


def _outermost(paths: set[str]) -> list[str]:
    """``{"aux1", "aux1.conv", "fc"}`` -> ``["aux1", "fc"]``: drop paths inside another."""
    return sorted(p for p in paths if not any(p.startswith(q + ".") for q in paths if q != p))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _warn_uncounted(stats: ModelStats) -> None:
    missing = stats.uncounted
    if missing:
        listed = "; ".join(f"{r.name} ({r.type}, in {format_shape(r.input_shapes)})" for r in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        warnings.warn(f"archstat: {stats.model}: {len(missing)} op(s) not counted: {listed}{more}",
                      UncountedOpWarning, stacklevel=3)
