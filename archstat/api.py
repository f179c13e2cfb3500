"""The Python API: :func:`count` a model (or a model name) and get :class:`ModelStats`.

Running on the ``meta`` device is the default: a model built from a name is constructed
on meta (no weights allocated) and run on meta inputs (no activations); a model passed
in is never run itself: a shadow copy with meta stand-ins for its parameters and buffers
is (:mod:`archstat.counting.shadow`), so the caller's tensors, hooks and flags are left
exactly as they were. Where meta cannot run a model (it reads tensor values: ``.item()``,
``nonzero``, ``torchvision.ops.nms``), the count falls back to the CPU with real values,
random weights and inputs drawn from a fixed seed (:data:`~archstat.counting.inputs.SEED`),
and says so in ``ModelStats.notes``; ``example_inputs`` gives it real inputs instead.
"""

from __future__ import annotations

import gc
import itertools
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch import nn

from archstat.conventions import apply_convention
from archstat.conventions import convention as convention_rules
from archstat.counting.autocast import AUTOCAST_DEVICES
from archstat.counting.build import build_meta
from archstat.counting.counter import OpCounter, flat_tensors
from archstat.counting.handlers import NeedsValuesError
from archstat.counting.inputs import (SEED, Inputs, cast_floating, check_shapes, inputs_from_examples,
                                     inputs_from_shapes, seeded)
from archstat.counting.shadow import has_uninitialized, shadow_copy, unique_tensors
from archstat.counting.stats import ModelStats, format_shape
from archstat.errors import ArchstatError, CountError, InputShapeError, RefusedError, UncountedOpWarning
from archstat.formulas.training import OPTIMIZERS
from archstat.grammar import parse_batches, parse_input_shape, parse_input_size, sample_size
from archstat.models import input_spec, model_builder

__all__ = ["count", "parse_input_size", "parse_input_shape", "resolve_inputs"]


def resolve_inputs(name: str, size: str | None, batch: int) -> Any:
    """The ``input_shape`` of model ``name`` for ``--input-size`` text (``None``: the published
    size; a side or ``HxW`` keeps the model's channels and frames: :func:`~archstat.grammar.sample_size`)
    and a batch: a detector gets a list of ``batch`` images, RAFT two frames."""
    [batch] = parse_batches(batch)  # the one batch rule: at least 1, within int64
    spec = input_spec(name)
    sample = sample_size(size, spec.size) if size is not None else spec.size
    check_shapes((batch, *sample))  # the batch as one tensor, also where it is a list of images: torch's limit
    return spec.shapes(batch, sample)


@dataclass(frozen=True)
class _Options:
    """How a count runs (see :func:`count`)."""

    count_bias: bool
    check_shapes: bool
    mode: str
    optimizer: str | None
    dtype: torch.dtype | None  # None: as the model is
    autocast: tuple[str, torch.dtype] | None = None


def count(
    model_or_name: nn.Module | str,
    input_shape: Any = None,
    *,
    example_inputs: Any = None,
    mode: str = "eval",
    optimizer: str = "sgd_momentum",
    count_bias: bool = False,
    device: str = "meta",
    dtype: torch.dtype | None = None,
    autocast: tuple[str, torch.dtype] | str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    check_shapes: bool = False,
    convention: str = "archstat",
    verify: bool = False,
) -> ModelStats:
    """Count params, multiply-adds, FLOPs and memory access of a model on one input.

    ``model_or_name``: an ``nn.Module`` or a name (zoo, torchvision of any task, ``timm:<name>``).
    ``input_shape``: the full input shape with batch, ``(N, C, H, W)``; a tuple of shapes
    for several positional inputs, a list for an input that is a list (detectors), a dict
    for keyword inputs. By default the input the model was published at for a name
    (``(1, 3, 299, 299)`` for ``inception_v3``, 16-frame clips for video models, a list of
    one image for detectors, two frames for RAFT) and ``(1, 3, 224, 224)`` for a module.
    ``example_inputs``: real inputs instead of shapes (a tensor, a tuple of positional
    inputs, a list, a dict of keyword inputs); their values drive a CPU fallback.
    ``mode``: ``"eval"`` (an inference forward pass) or ``"train"``: a training step, the
    forward pass in training mode (batch statistics, dropout, auxiliary heads), its backward
    pass (``stats.backward_madds``, per op in ``stats.layers``) and the ``optimizer`` step
    (``"sgd"``, ``"sgd_momentum"`` (default), ``"adam"``, ``"adamw"``: ``stats.step_flops``),
    with the memory it holds (``stats.saved_bytes``, ``stats.peak_train_bytes``, and
    ``stats.memory`` for the parts). Parameters with ``requires_grad=False`` get no gradient.
    ``count_bias``: count bias additions as multiply-adds (ptflops does; thop 0.1.1,
    fvcore, FlopCounterMode and torchvision's figures do not). ``device``: ``"meta"``
    (default, falls back to the CPU when the model cannot run on meta) or ``"cpu"``.
    ``dtype``: the floating-point dtype to count in (``float32``, ``float16``, ``bfloat16``
    ...): parameters, buffers, inputs and activations are cast to it; it gives the bytes of
    memory access and of every memory figure. None (default): as the model is, a module in its
    own dtype (archstat's random inputs in the dtype of its first floating-point tensor,
    example inputs as they are), a name in torch's default dtype (float32). ``autocast``: mixed precision as
    ``torch.autocast`` runs it, ``("cuda", torch.float16)`` or ``"cpu:bfloat16"``: parameters
    stay in ``dtype``, convolutions, matrix
    products and attention take lower-precision copies of their inputs (see
    :mod:`archstat.counting.autocast`). Ops archstat does not know are listed in ``stats.uncounted`` and
    announced with an :class:`~archstat.errors.UncountedOpWarning`; an input a layer would
    reject raises :class:`~archstat.errors.InputShapeError` naming the layer.
    ``check_shapes``: on meta, run every op's meta kernel and compare its output shape with
    the formula's (slower; by default shape-only ops are not run, their formula gives the
    output shape).
    ``convention``: count madds the way another tool does, one of ``archstat``, ``paper``,
    ``torch``, ``fvcore``, ``thop``, ``ptflops`` (see :mod:`archstat.conventions`; flops
    become ``2 * madds``; a training count takes ``archstat``, ``paper`` or ``torch``).
    ``verify``: recompute every layer from its module's attributes, without hooks, and
    raise :class:`~archstat.crosscheck.verify.LayerMismatchError` naming the first layer
    where the two disagree.
    """
    options = _options(mode, optimizer, count_bias, check_shapes, dtype, convention, autocast)
    with _gc_paused(), torch.inference_mode(False):  # a caller's inference mode would drop the training graph
        return _count(model_or_name, input_shape, example_inputs, device, model_kwargs, convention, verify, options)


_TRAIN_CONVENTIONS = ("archstat", "paper", "torch")


def _options(mode: str, optimizer: str, count_bias: bool, check_shapes: bool, dtype: torch.dtype | None,
             convention: str, autocast: tuple[str, torch.dtype] | str | None) -> _Options:
    if mode not in ("eval", "train"):
        raise ArchstatError(f"mode must be 'eval' or 'train', not {mode!r}")
    if mode == "train":
        if optimizer not in OPTIMIZERS:
            raise ArchstatError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        from archstat.conventions import convention as known_convention

        known_convention(convention)  # an unknown name is said to be unknown, not inference-only
        if convention not in _TRAIN_CONVENTIONS:
            raise ArchstatError(f"{convention} counts inference only; a training count takes the "
                                f"{', '.join(_TRAIN_CONVENTIONS)} convention")
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise ArchstatError(f"dtype must be a floating-point torch dtype (torch.float32, torch.bfloat16 ...), "
                            f"not {dtype!r}")
    return _Options(count_bias, check_shapes, mode, optimizer if mode == "train" else None, dtype,
                    parse_autocast(autocast))


def parse_autocast(value: tuple[str, torch.dtype] | str | None) -> tuple[str, torch.dtype] | None:
    """``("cuda", torch.float16)``, ``"cuda:fp16"`` or ``"cpu:bfloat16"`` -> ``(device type, dtype)``."""
    if value is None:
        return None
    from archstat.latency.timing import parse_dtype

    if isinstance(value, str):
        device_type, _, dtype_name = value.partition(":")
        dtype = parse_dtype(dtype_name or "float16")
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        device_type, dtype = value
    else:
        device_type, dtype = None, None
    if device_type not in AUTOCAST_DEVICES or dtype not in (torch.float16, torch.bfloat16):
        raise ArchstatError(f"autocast must be a device type ({', '.join(AUTOCAST_DEVICES)}) and float16 or "
                            f"bfloat16, e.g. cuda:float16 or cpu:bfloat16; got {value!r}")
    return device_type, dtype


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


def _inputs(name_or_model: nn.Module | str, input_shape: Any, example_inputs: Any) -> Inputs:
    if example_inputs is not None:
        if input_shape is not None:
            raise ArchstatError("give input_shape or example_inputs, not both")
        return inputs_from_examples(example_inputs)
    if input_shape is None:
        input_shape = input_spec(name_or_model).shapes() if isinstance(name_or_model, str) else (1, 3, 224, 224)
    return inputs_from_shapes(input_shape)


def _count(model_or_name: nn.Module | str, input_shape: Any, example_inputs: Any, device: str,
           model_kwargs: dict[str, Any] | None, convention: str, verify: bool, options: _Options) -> ModelStats:
    rules = convention_rules(convention)
    if options.count_bias and rules.name != "archstat":
        raise ArchstatError(f"count_bias applies to the archstat convention; {rules.name} fixes its own bias rule")
    if device not in ("meta", "cpu"):
        raise ArchstatError(f"device must be 'meta' or 'cpu', not {device!r}")
    if isinstance(model_or_name, str):
        builder = model_builder(model_or_name, **(model_kwargs or {}))
        inputs = _inputs(model_or_name, input_shape, example_inputs)
        stats = _count_built(model_or_name, builder, inputs, device, options)
    elif isinstance(model_or_name, nn.Module):
        model = _countable(model_or_name)
        inputs = _inputs(model, input_shape, example_inputs)
        stats = _count_module(model, inputs, device, options)
    else:
        raise ArchstatError(f"count() takes an nn.Module or a model name, not {type(model_or_name).__name__}")
    _warn_uncounted(stats)
    if verify:
        from archstat.crosscheck.verify import verify_layers

        # the caller's modules are read through a shadow copy: a parametrized weight is computed on it
        target = shadow_copy(model)[0] if isinstance(model_or_name, nn.Module) else builder
        stats.notes.append(verify_layers(target, stats, options.count_bias))
    return apply_convention(stats, rules.name)


def _countable(model: nn.Module) -> nn.Module:
    """The module to count: a compiled module's original; TorchScript refused."""
    if isinstance(model, torch.jit.ScriptModule):
        raise RefusedError(f"{getattr(model, 'original_name', type(model).__name__)} is a TorchScript module: its "
                           "compiled graph runs outside the Python calls archstat counts; count the nn.Module "
                           "before torch.jit.script / torch.jit.trace")
    original = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
    return original if isinstance(original, nn.Module) else model


# --------------------------------------------------------------------------- strategies


def meta_limitation(exc: BaseException) -> bool:
    """Did ``exc`` come from the meta device's limits (an op reading values, a kernel
    without a meta implementation) rather than from the model rejecting its input?"""
    text = str(exc).lower()
    return isinstance(exc, (NotImplementedError, NeedsValuesError)) or "meta" in text or "data-dependent" in text \
        or "data dependent" in text


def _fallback_note(label: str, inputs: Inputs, reason: str) -> str:
    what = "the example inputs" if inputs.examples else f"random inputs (seed {SEED}, uniform in [0, 1))"
    return f"counted on the CPU ({label}) with {what}: {reason}"


def _count_built(name: str, builder: Callable[[], nn.Module], inputs: Inputs, device: str,
                 options: _Options) -> ModelStats:
    """Build and count ``name``: on meta, on meta with small init tensors on the CPU (for
    constructors that compute on tensor values), then on the CPU with random weights from
    a fixed seed (for forwards that read tensor values)."""
    notes: list[str] = []
    if device == "meta":
        for label, keep_small in (("meta", False), ("meta, small init tensors on CPU", True)):
            try:
                model = build_meta(builder, keep_small)
            except ArchstatError:
                raise
            except Exception as exc:  # a constructor that computes on tensor values
                notes.append(f"building on {label} failed ({_one_line(exc)})")
                continue
            try:
                stats = _run(model, _param_names(model), inputs, "meta", name, options, _built_dtype(options), True)
            except _MetaLimit as limit:
                notes.append(f"meta cannot run it ({limit})")
                break
            if notes:
                stats.notes.insert(0, f"counted on {label}: {'; '.join(notes)}")
            return stats
    try:
        model = _seeded(builder)
    except ArchstatError:
        raise
    except Exception as exc:
        notes.append(f"building on the CPU failed ({_one_line(exc)})")
        raise CountError(f"{name}: could not be built: {'; '.join(notes)}") from None
    stats = _run(model, _param_names(model), inputs, "cpu", name, options, _built_dtype(options), True)
    if notes:
        stats.notes.insert(0, _fallback_note(f"random weights, seed {SEED}", inputs, "; ".join(notes)))
    return stats


def _built_dtype(options: _Options) -> torch.dtype:
    """The dtype a model archstat builds is counted in: the one asked for, else torch's default."""
    return options.dtype or torch.get_default_dtype()


def _own_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of ``model``'s first floating-point parameter or buffer (torch's default if none)."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    return next((t.dtype for t in tensors if t.is_floating_point()), torch.get_default_dtype())


def _param_names(model: nn.Module) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters()}


def _seeded(builder: Callable[[], nn.Module]) -> nn.Module:
    with seeded():
        return builder()


def _count_module(model: nn.Module, inputs: Inputs, device: str, options: _Options) -> ModelStats:
    name = type(model).__name__
    dtype = options.dtype or _own_dtype(model)
    if device == "meta":
        shadow, names = shadow_copy(model, "meta", options.dtype)
        try:
            return _run(shadow, names, inputs, "meta", name, options, dtype)
        except _MetaLimit as limit:
            tensors = [t for _, t in unique_tensors(model)]
            if tensors and all(t.is_meta for t in tensors):
                raise CountError(f"{name}: meta cannot run it ({limit}) and its tensors are on meta too: build it "
                                 "with real weights to count it on the CPU") from None
            reason = f"meta cannot run it ({limit})"
    else:
        reason = ""
    shadow, names = shadow_copy(model, "cpu", options.dtype)
    stats = _run(shadow, names, inputs, "cpu", name, options, dtype)
    if reason:
        stats.notes.insert(0, _fallback_note("a copy of the model's weights", inputs, reason))
    return stats


@contextmanager
def _one_thread(on: bool) -> Iterator[None]:
    """One intra-op thread while counting on the CPU (restored afterwards): the order of
    floating-point reductions, and with it a value-dependent branch (how many boxes NMS keeps),
    then does not depend on the thread count, so a count is reproducible across machines of
    one CPU type and across ``torch.set_num_threads`` settings."""
    if not on:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _MetaLimit(Exception):
    """The count failed on meta for a reason the CPU would not have (see :func:`meta_limitation`)."""


def _run(model: nn.Module, param_names: dict[int, str], inputs: Inputs, where: str, name: str,
         options: _Options, dtype: torch.dtype, built: bool = False) -> ModelStats:
    """One forward pass of ``model`` under the counter, on ``where`` ("meta" or "cpu"), counted in
    ``dtype``: a shadow copy has its tensors in it already, a private build (``built``) is cast
    from torch's default. ``param_names`` names its parameters after the caller's model.
    archstat's own inputs are made in ``dtype``, example inputs only cast to a dtype asked for."""
    args, kwargs = inputs.materialise(where)
    if options.dtype is not None or not inputs.examples:
        args, kwargs = cast_floating((args, kwargs), dtype)
    train = options.mode == "train"
    if built and dtype != torch.get_default_dtype():
        model.to(dtype)
    shape_text = format_shape(inputs.shapes)
    if train and not any(p.requires_grad for p in model.parameters()):
        raise ArchstatError(f"{name}: mode='train' needs parameters that require grad; every parameter of this "
                            f"model is frozen (requires_grad=False)")
    counter = None
    try:
        with seeded(), _one_thread(where == "cpu"):
            if has_uninitialized(model):  # lazy modules infer their shapes on a first pass, not counted
                with torch.no_grad():
                    model(*args, **kwargs)
            counter = OpCounter(model, param_names, count_bias=options.count_bias, check_shapes=options.check_shapes,
                                train=train, autocast=options.autocast)
            output = counter.run(lambda: model(*args, **kwargs), flat_tensors((args, kwargs)))
    except ArchstatError as exc:
        if isinstance(exc, InputShapeError):
            raise type(exc)(f"{name} on input {shape_text}: {exc}") from None
        raise
    except Exception as exc:
        layer = counter.current_module if counter is not None else ""
        where_text = f"layer '{layer}' ({type(dict(model.named_modules())[layer]).__name__})" if layer else "the model"
        if where == "meta" and meta_limitation(exc):
            raise _MetaLimit(f"{where_text}: {_one_line(exc)}") from None
        raise CountError(f"{name} on input {shape_text}: {where_text} failed: {_one_line(exc)}") from None
    parameters = counter.model_parameters()
    params = sum([p.numel() for p in parameters])
    if not all(id(p) in param_names for p in parameters):  # registered by the forward: named where they are
        param_names = {**{id(p): n for n, p in model.named_parameters()}, **param_names}
    used = counter.attributed
    unused = {qualified: p.numel() for p in parameters if (qualified := param_names[id(p)]) not in used}
    notes = list(counter.mismatches)
    if unused:
        heads = _outermost({n.rpartition(".")[0] or n for n in unused})
        notes.append(f"{sum(unused.values()):,} params are never used by the forward pass ({', '.join(heads[:5])}"
                     f"{', ...' if len(heads) > 5 else ''}); they are in params, not in any row")
    return ModelStats(model=name, input_shape=inputs.shapes, records=counter.records, params=params,
                      device=where, unused_params=unused, notes=notes, free_ops=counter.free_ops, mode=options.mode,
                      optimizer=options.optimizer, inputs=counter.refs(flat_tensors((args, kwargs))),
                      outputs=counter.refs(flat_tensors(output)), tensors=tuple(counter.tensor_refs),
                      itemsize=torch.empty((), dtype=dtype).element_size())


def _outermost(paths: set[str]) -> list[str]:
    """``{"aux1", "aux1.conv", "fc"}`` -> ``["aux1", "fc"]``: drop paths inside another."""
    return sorted(p for p in paths if not any(p.startswith(q + ".") for q in paths if q != p))


def _one_line(exc: BaseException) -> str:
    """``"TypeName: first sentence"`` of an exception's message."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    sentence = first.split(". ")[0] if len(first) > 160 else first
    return f"{type(exc).__name__}: {sentence}".strip()


def _warn_uncounted(stats: ModelStats) -> None:
    missing = stats.uncounted
    if missing:
        listed = "; ".join(f"{r.name} ({r.type}, in {format_shape(r.input_shapes)})" for r in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        warnings.warn(f"archstat: {stats.model}: {len(missing)} op(s) not counted: {listed}{more}",
                      UncountedOpWarning, stacklevel=3)
