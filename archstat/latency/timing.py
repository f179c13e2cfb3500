"""Measuring latency soundly: real weights, warm-up, repeated runs, median and spread.

A latency needs real execution, so models are built with random weights on the CPU
(never on ``meta``) and moved to the device. Each measurement

* runs under ``torch.inference_mode()`` (no autograd bookkeeping) with the model in
  eval mode, with an explicit intra-op thread count (restored afterwards);
* discards ``warmup`` runs (allocator, oneDNN/cuDNN kernel selection, caches);
* times ``repeats`` single forward passes with ``time.perf_counter``, synchronising
  CUDA after each, with Python's garbage collector paused;
* records how many other processes were running (sampled after each round) and the
  load average, so a timing taken on a busy machine says so
  (:func:`~archstat.latency.machine.contention_note`);
* reports the median and the spread (quartiles, min, max), not a mean alone;
* draws every random number (weights, inputs, a lazy module's parameters, a forward pass
  that samples) from forks of the CPU and CUDA generators it uses, seeded
  (:func:`~archstat.counting.inputs.seeded`): the caller's random state is left as it was.

:func:`measure_interleaved` times several prepared models round-robin (one run of
each per round), so a slow drift of the machine (turbo, another process) spreads
over all of them instead of biasing whichever ran last; the guideline experiments
use it for rows that must be compared with each other.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from archstat.counting.inputs import initialise_lazy, inputs_from_shapes, is_shape, seeded
from archstat.counting.shadow import shadow_copy
from archstat.counting.stats import format_shape
from archstat.errors import ArchstatError
from archstat.latency.machine import check_device, contention_note, cuda_indices, environment, other_busy_processes
from archstat.latency.statistics import Spread, spread

__all__ = ["Timing", "Runner", "prepare", "measure", "measure_interleaved", "torch_threads", "parse_dtype",
           "MeasureError", "TIMING_COLUMNS"]

#: Leading columns of :meth:`Timing.row` (then the :data:`~archstat.latency.machine.ENVIRONMENT_COLUMNS`).
TIMING_COLUMNS = ("model", "input", "batch", "device", "median_ms", "iqr_ms", "p25_ms", "p75_ms", "min_ms", "max_ms",
                  "mean_ms", "std_ms", "repeats", "warmup", "channels_last", "dtype")

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float64": torch.float64, "fp64": torch.float64}


class MeasureError(ArchstatError, RuntimeError):
    """A model could not be built or run for timing (the message names it and the input)."""


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"float32"``/``"fp32"``, ``"bfloat16"``/``"bf16"``, ``"float16"``/``"fp16"`` -> a torch dtype."""
    if isinstance(name, torch.dtype):
        return name
    try:
        return _DTYPES[name.lower()]
    except KeyError:
        raise ArchstatError(f"unknown dtype {name!r}; choose one of float32, bfloat16, float16, float64") from None


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op threads (None: leave torch's setting), restoring it afterwards."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ArchstatError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@dataclass
class Runner:
    """A model placed on its device with its inputs, ready to be timed (see :func:`prepare`)."""

    label: str
    model: nn.Module
    args: tuple
    kwargs: dict
    input_shape: Any
    device: str
    channels_last: bool
    dtype: torch.dtype

    def run(self) -> None:
        """One forward pass, waiting for the device to finish."""
        self.model(*self.args, **self.kwargs)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(torch.device(self.device))


@dataclass(frozen=True)
class Timing:
    """Repeated forward-pass times of one model on one input, with where they were taken."""

    model: str
    input_shape: Any
    device: str
    dtype: str
    channels_last: bool
    threads: int
    warmup: int
    times_ms: tuple[float, ...]
    environment: dict = field(default_factory=dict)

    @property
    def spread(self) -> Spread:
        return spread(self.times_ms)

    @property
    def median_ms(self) -> float:
        return self.spread.median

    @property
    def contention(self) -> str | None:
        """Why these times are not the model's alone (other processes shared the CPU), or None."""
        return contention_note(self.environment)

    def row(self) -> dict[str, Any]:
        """Plain values: :data:`TIMING_COLUMNS` then the environment (which holds the thread count).
        ``input`` is one sample's shape and ``batch`` the batch, for a model with one input tensor;
        a model with several inputs gives all their shapes and an empty batch."""
        s = self.spread
        single = is_shape(self.input_shape)
        return {
            "model": self.model, "input": format_shape(self.input_shape[1:] if single else self.input_shape),
            "batch": self.input_shape[0] if single else "",
            "device": self.device, "median_ms": round(s.median, 4), "iqr_ms": round(s.iqr, 4),
            "p25_ms": round(s.p25, 4), "p75_ms": round(s.p75, 4), "min_ms": round(s.min, 4),
            "max_ms": round(s.max, 4), "mean_ms": round(s.mean, 4), "std_ms": round(s.std, 4), "repeats": s.n,
            "warmup": self.warmup, "channels_last": self.channels_last, "dtype": self.dtype,
            **self.environment,
        }


def _has_meta_tensors(model: nn.Module) -> bool:
    return any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))


def _placed(model: nn.Module, device: str, dtype: torch.dtype) -> nn.Module:
    """A copy of ``model`` on ``device``/``dtype`` in eval mode, without the caller's hooks
    (:func:`~archstat.counting.shadow.shadow_copy`): the caller's model is never run, and keeps
    its device, dtype, memory format, hooks and training flag."""
    return shadow_copy(model, device)[0].to(device=device, dtype=dtype).eval()


def _build(name: str, model_kwargs: dict[str, Any] | None, device: str, dtype: torch.dtype) -> nn.Module:
    """Model ``name`` with random weights, built on the CPU, then placed on ``device`` in eval mode."""
    from archstat.models import create_model

    try:
        with torch.device("cpu"):
            model = create_model(name, **(model_kwargs or {}))
    except ArchstatError:
        raise
    except Exception as exc:
        raise MeasureError(f"{name}: building with random weights failed: {type(exc).__name__}: {exc}") from None
    return model.to(device=device, dtype=dtype).eval()


def prepare(model_or_name: nn.Module | str, input_shape: Sequence[int] | None = None, *, device: str = "cpu",
            dtype: torch.dtype | str = torch.float32, channels_last: bool = False,
            model_kwargs: dict[str, Any] | None = None, label: str | None = None, seed: int = 0) -> Runner:
    """Build (a name, with random weights on the CPU) or copy a model onto ``device`` with an input.

    ``input_shape`` is the full ``(N, C, H, W)`` (or several inputs, in
    :func:`archstat.count`'s grammar); by default the input a named model was published at,
    ``(1, 3, 224, 224)`` for a module. ``seed`` fixes the random weights and inputs (and a lazy
    module's parameters, given by one untimed pass here), so two runs time the same numbers;
    the caller's random state is restored.
    """
    from archstat.models import input_spec

    device = check_device(device)
    dtype = parse_dtype(dtype)
    if isinstance(model_or_name, str):
        name = model_or_name
        shape = input_shape if input_shape is not None else input_spec(name).shapes()
    elif isinstance(model_or_name, nn.Module):
        name = label or type(model_or_name).__name__
        shape = input_shape if input_shape is not None else (1, 3, 224, 224)
        if _has_meta_tensors(model_or_name):
            raise MeasureError(f"{name}: the model holds meta tensors (no weights); latency needs a model built "
                               "with real weights (on the CPU)")
    else:
        raise ArchstatError(f"measure() takes an nn.Module or a model name, not {type(model_or_name).__name__}")
    inputs = inputs_from_shapes(shape)  # a bad shape is refused before the model is built
    with seeded(seed, cuda_indices(device)):
        model = _build(name, model_kwargs, device, dtype) if isinstance(model_or_name, str) \
            else _placed(model_or_name, device, dtype)
        args, kwargs = _cast(inputs.materialise(device), dtype, channels_last)
        runner = Runner(label or name, model, args, kwargs, inputs.shapes, device, channels_last, dtype)
        try:
            initialise_lazy(model, args, kwargs)
        except Exception as exc:
            raise _forward_failed(runner, exc) from None
    if channels_last:  # after initialise_lazy: an uninitialised parameter has no memory format
        model.to(memory_format=torch.channels_last)
    return runner


def _cast(value: Any, dtype: torch.dtype, channels_last: bool) -> Any:
    """Floating-point input tensors in ``dtype``; 4-D ones channels_last when asked."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            value = value.to(dtype)
        return value.contiguous(memory_format=torch.channels_last) if channels_last and value.dim() == 4 else value
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, dtype, channels_last) for v in value)
    if isinstance(value, dict):
        return {k: _cast(v, dtype, channels_last) for k, v in value.items()}
    return value


def measure_interleaved(runners: Sequence[Runner], *, warmup: int = 5, repeats: int = 20,
                        threads: int | None = None) -> list[Timing]:
    """Time ``runners`` round-robin: ``warmup`` untimed runs each, then ``repeats`` rounds
    of one timed run of each. Returns one :class:`Timing` per runner, in order."""
    if warmup < 0 or repeats < 1:
        raise ArchstatError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
    times: list[list[float]] = [[] for _ in runners]
    busy = [other_busy_processes()]
    gpus = sorted({index for r in runners for index in cuda_indices(r.device)})
    # seeded: a forward pass that draws random numbers draws them from a fork, not the caller's generators
    with torch_threads(threads) as used, seeded(cuda_devices=gpus), torch.inference_mode():
        for runner in runners:
            for _ in range(warmup):
                _run(runner)
        gc.collect()
        gc_enabled = gc.isenabled()
        gc.disable()
        try:
            for _ in range(repeats):
                for i, runner in enumerate(runners):
                    start = time.perf_counter()
                    _run(runner)
                    times[i].append((time.perf_counter() - start) * 1e3)
                busy.append(other_busy_processes())
        finally:
            if gc_enabled:
                gc.enable()
    seen = [b for b in busy if b is not None]
    env = environment(runners[0].device, used, max(seen) if seen else None) if runners else {}
    return [Timing(r.label, r.input_shape, r.device, str(r.dtype).removeprefix("torch."), r.channels_last, used,
                   warmup, tuple(t), env) for r, t in zip(runners, times)]


def _run(runner: Runner) -> None:
    try:
        runner.run()
    except Exception as exc:
        raise _forward_failed(runner, exc) from None


def _forward_failed(runner: Runner, exc: Exception) -> MeasureError:
    """The one-line error of ``runner``'s forward pass raising ``exc``."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return MeasureError(f"{runner.label} on input {format_shape(runner.input_shape)}: forward failed: "
                        f"{type(exc).__name__}: {first}")


def measure(model_or_name: nn.Module | str, input_shape: Sequence[int] | None = None, *, device: str = "cpu",
            threads: int | None = None, warmup: int = 5, repeats: int = 20, channels_last: bool = False,
            dtype: torch.dtype | str = torch.float32, model_kwargs: dict[str, Any] | None = None,
            label: str | None = None) -> Timing:
    """Latency of one model on one input: median and spread of ``repeats`` forward passes.

    ``model_or_name``: an ``nn.Module`` (copied if it must change device, dtype or
    memory format; the caller's model is left as it was) or a name (zoo, torchvision,
    ``timm:<name>``), built with random weights on the CPU. ``input_shape``: full
    ``(N, C, H, W)``, default the model's published size. ``device``: ``"cpu"`` or
    ``"cuda"`` (a clear error when no GPU is visible). ``threads``: intra-op threads
    (default torch's current setting). Example::

        t = archstat.latency.measure("shufflenet_v2_x1_0", (1, 3, 480, 640), threads=2)
        t.median_ms, t.spread.iqr, t.environment["cpu"]
    """
    runner = prepare(model_or_name, input_shape, device=device, dtype=dtype, channels_last=channels_last,
                     model_kwargs=model_kwargs, label=label)
    return measure_interleaved([runner], warmup=warmup, repeats=repeats, threads=threads)[0]
