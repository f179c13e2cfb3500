"""A real training step, measured: its peak memory and the tensors autograd saved.

:func:`measure_step` builds the model with random weights (a name) or copies it (a
module: the caller's is never run), takes one warm-up step so the optimizer's state
exists, then measures one step (``zero_grad(set_to_none=True)``, forward in training mode,
a scalar loss, backward, ``optimizer.step()``), the same step the estimate of
:mod:`archstat.training.memory` describes:

* **peak memory**: on the CPU, from the allocation and free events of torch's profiler
  (``profile_memory=True``): the bytes alive at the start (parameters, buffers, optimizer
  state, inputs) plus the highest running sum of allocations minus frees; on CUDA,
  ``torch.cuda.max_memory_allocated``. Both are tensor bytes as the allocator hands them out
  (CUDA rounds blocks to 512 bytes and reserves more than it allocates; neither is counted);
* **saved tensors**: every tensor ``torch.autograd.graph.saved_tensors_hooks`` sees in the
  forward pass, by storage (a storage saved twice counts once), parameters and buffers
  excluded, each attributed to the innermost module running when it was saved.

The optimizers run with ``foreach=False`` (torch's single-tensor loop, the default on the
CPU), as the estimate assumes.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from archstat.counting.inputs import cast_floating, initialise_lazy, inputs_from_shapes, seeded
from archstat.counting.shadow import shadow_copy
from archstat.errors import ArchstatError
from archstat.latency.machine import check_device, cuda_indices

__all__ = ["StepMeasurement", "measure_step", "measure_forward", "make_optimizer", "check_dtype"]


@dataclass(frozen=True)
class StepMeasurement:
    """What one measured training step held (bytes; see the module docstring)."""

    model: str
    input_shape: Any
    device: str
    dtype: str
    optimizer: str
    peak_bytes: int
    baseline_bytes: int
    saved_bytes: int
    saved_by_module: dict[str, int] = field(default_factory=dict)
    method: str = ""
    params_bytes: int = 0
    state_bytes: int = 0


def make_optimizer(name: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The torch optimizer an archstat optimizer name stands for (single-tensor loop)."""
    from archstat.formulas.training import OPTIMIZERS

    makers: dict[str, Callable[[], torch.optim.Optimizer]] = {
        "sgd": lambda: torch.optim.SGD(params, lr=0.01, foreach=False),
        "sgd_momentum": lambda: torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=False),
        "adam": lambda: torch.optim.Adam(params, lr=1e-3, foreach=False),
        "adamw": lambda: torch.optim.AdamW(params, lr=1e-3, foreach=False),
    }
    if name not in OPTIMIZERS:  # the optimizers archstat counts: each must be measurable too (a test checks)
        raise ArchstatError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return makers[name]()


def check_dtype(device: str, dtype: torch.dtype) -> None:
    """Refuse, in one line, a dtype the device cannot train a convolution in. The probe's random
    weights come from a seeded fork of the generators: the caller's are left as they were."""
    try:
        with seeded(cuda_devices=cuda_indices(device)):
            conv = nn.Conv2d(2, 2, 3).to(device=device, dtype=dtype)
        conv(torch.ones(1, 2, 4, 4, device=device, dtype=dtype)).sum().backward()
    except (RuntimeError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArchstatError(f"{device} cannot train in {str(dtype).removeprefix('torch.')}: {first}") from None


def _scalar(output: Any) -> torch.Tensor:
    """A scalar loss of any output: the sum of the means of its floating-point tensors."""
    from archstat.counting.counter import flat_tensors

    parts = [t.float().mean() for t in flat_tensors(output) if t.is_floating_point() and t.requires_grad]
    if not parts:
        raise ArchstatError("the model's output has no floating-point tensor that needs a gradient")
    return torch.stack(parts).sum()


def _nbytes(tensors) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage._cdata] = storage.nbytes()
    return sum(seen.values())


def _prepared(model_or_name: nn.Module | str, input_shape: Any, device: str, dtype: torch.dtype,
              model_kwargs: dict[str, Any] | None) -> tuple[str, nn.Module, Any, tuple, dict]:
    """The model (built with random weights, or a copy of the caller's, its lazy modules given
    their parameters) and its inputs on the checked ``device``; call it inside :func:`seeded`."""
    from archstat.models import create_model, input_spec

    check_dtype(device, dtype)
    if isinstance(model_or_name, str):
        name = model_or_name
        shape = input_shape if input_shape is not None else input_spec(name).shapes()
        inputs = inputs_from_shapes(shape)  # a bad shape is refused before the model is built
        model = create_model(name, **(model_kwargs or {}))
    else:
        name = type(model_or_name).__name__
        inputs = inputs_from_shapes(input_shape if input_shape is not None else (1, 3, 224, 224))
        model = shadow_copy(model_or_name, "cpu")[0]
    model = model.to(device=device, dtype=dtype)
    args, kwargs = inputs.materialise(device)
    args, kwargs = cast_floating(args, dtype), cast_floating(kwargs, dtype)
    initialise_lazy(model, args, kwargs)
    return name, model, inputs.shapes, args, kwargs


def _peak_of(run: Callable[[], None], device: str, baseline: int) -> tuple[int, str]:
    """The peak bytes while ``run()`` runs, from ``baseline`` bytes alive at its start."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        run()
        torch.cuda.synchronize()
        return baseline + torch.cuda.max_memory_allocated() - start, "torch.cuda.max_memory_allocated"
    return baseline + _cpu_peak_delta(run), "CPU profiler memory events"


def measure_forward(model_or_name: nn.Module | str, input_shape: Any = None, *, device: str = "cpu",
                    dtype: torch.dtype = torch.float32, model_kwargs: dict[str, Any] | None = None
                    ) -> StepMeasurement:
    """Measure the peak memory of one inference forward pass (eval mode, no grad) after a warm-up
    one. The caller's random number generators are left as they were."""
    device = check_device(device)
    with seeded(cuda_devices=cuda_indices(device)):
        return _measure_forward(model_or_name, input_shape, device, dtype, model_kwargs)


def _measure_forward(model_or_name: nn.Module | str, input_shape: Any, device: str, dtype: torch.dtype,
                     model_kwargs: dict[str, Any] | None) -> StepMeasurement:
    from archstat.counting.counter import flat_tensors

    name, model, shapes, args, kwargs = _prepared(model_or_name, input_shape, device, dtype, model_kwargs)
    model.eval()

    def forward() -> None:
        with torch.no_grad():
            model(*args, **kwargs)

    forward()
    params = _nbytes([*model.parameters(), *model.buffers()])
    baseline = _nbytes([*model.parameters(), *model.buffers(), *flat_tensors((args, kwargs))])
    peak, method = _peak_of(forward, device, baseline)
    return StepMeasurement(name, shapes, device, str(dtype).removeprefix("torch."), "", peak, baseline, 0, {},
                           method, params)


def measure_step(model_or_name: nn.Module | str, input_shape: Any = None, *, optimizer: str = "sgd_momentum",
                 device: str = "cpu", dtype: torch.dtype = torch.float32, autocast: torch.dtype | None = None,
                 model_kwargs: dict[str, Any] | None = None) -> StepMeasurement:
    """Measure one training step of a model (see the module docstring); ``autocast``: the forward
    pass under ``torch.autocast(device, autocast)``, float16 or bfloat16. The caller's random
    number generators are left as they were."""
    if autocast is not None and autocast not in (torch.float16, torch.bfloat16):
        raise ArchstatError(f"autocast takes torch.float16 or torch.bfloat16, not {autocast!r}")
    device = check_device(device)
    with seeded(cuda_devices=cuda_indices(device)):
        return _measure_step(model_or_name, input_shape, optimizer, device, dtype, autocast, model_kwargs)


def _measure_step(model_or_name: nn.Module | str, input_shape: Any, optimizer: str, device: str, dtype: torch.dtype,
                  autocast: torch.dtype | None, model_kwargs: dict[str, Any] | None) -> StepMeasurement:
    name, model, shapes, args, kwargs = _prepared(model_or_name, input_shape, device, dtype, model_kwargs)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ArchstatError(f"{name}: a training step needs parameters that require grad; all are frozen")
    opt = make_optimizer(optimizer, trainable)

    def forward() -> Any:
        if autocast is None:
            return model(*args, **kwargs)
        with torch.autocast(device_type=device.split(":")[0], dtype=autocast):
            return model(*args, **kwargs)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        _scalar(forward()).backward()
        opt.step()

    step()  # warm-up: the optimizer allocates its state
    opt.zero_grad(set_to_none=True)
    saved_by_module, saved = _saved_in_forward(model, args, kwargs, forward)
    from archstat.counting.counter import flat_tensors

    state = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    params = _nbytes([*model.parameters(), *model.buffers()])
    baseline = _nbytes([*model.parameters(), *model.buffers(), *state, *flat_tensors((args, kwargs))])
    opt.zero_grad(set_to_none=True)
    peak, method = _peak_of(step, device, baseline)
    return StepMeasurement(name, shapes, device, str(dtype).removeprefix("torch."), optimizer, peak, baseline, saved,
                           dict(saved_by_module), method, params, _nbytes(state) if state else 0)


def _saved_in_forward(model: nn.Module, args: tuple, kwargs: dict,
                      forward: Callable[[], Any] | None = None) -> tuple[Counter, int]:
    """Bytes of the storages autograd saves in a forward pass, by innermost module, and in all
    (parameters and buffers excluded; a storage saved twice counts once)."""
    from torch.autograd.graph import saved_tensors_hooks

    excluded = {t.untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
    stack = [""]
    handles = []
    for module_name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda m, a, n=module_name: stack.append(n)))
        handles.append(module.register_forward_hook(lambda m, a, o: stack.pop() and None))
    seen: dict[int, int] = {}
    by_module: Counter = Counter()
    kept: list[torch.Tensor] = []  # keeps storages alive so their addresses stay unique

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        kept.append(t)
        if storage._cdata not in excluded and storage._cdata not in seen:
            seen[storage._cdata] = storage.nbytes()
            by_module[stack[-1]] += storage.nbytes()
        return t

    try:
        with saved_tensors_hooks(pack, lambda t: t):
            forward() if forward is not None else model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return by_module, sum(seen.values())


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """The profiler's C++ side prints start/stop lines to file descriptor 2: send them to /dev/null."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _cpu_peak_delta(step: Callable[[], None]) -> int:
    """The highest running sum of CPU allocations minus frees during ``step()`` (bytes)."""
    import warnings

    from torch.profiler import ProfilerActivity, profile

    level = os.environ.get("KINETO_LOG_LEVEL")
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    try:
        with warnings.catch_warnings(), _native_stderr_silenced():
            warnings.simplefilter("ignore")
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                step()
    finally:
        if level is None:
            os.environ.pop("KINETO_LOG_LEVEL", None)
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return peak
