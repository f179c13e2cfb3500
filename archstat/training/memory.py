"""How much memory a forward pass and a training step hold, from the tensors a count saw.

Every record of a count lists the storages it read, wrote and (in a training count)
saved for backward (:class:`~archstat.counting.stats.TensorRef`). From them:

* **saved activations**: the unique storages autograd keeps, parameters and buffers
  excluded (they are in their own columns): a storage saved by several ops (a ReLU's output
  that the next conv saves as its input) counts once, for the first op that saves it;
* **inference peak** (:attr:`MemoryModel.peak_infer_bytes`): parameters and buffers plus
  the largest set of activations alive at once, a tensor living from the op that writes it
  to the last op that reads it (the model's outputs to the end), inputs and outputs of the
  running op alive together;
* **training peak** (:attr:`MemoryModel.peak_train_bytes`): a step as torch runs it with
  ``optimizer.zero_grad(set_to_none=True)``: the forward pass as above, except that saved
  tensors stay alive; then the backward pass in reverse order, each op allocating the
  gradients of its operands that need one (a parameter's once, kept), freeing its outputs'
  gradients and releasing what it saved once no op still to run saved it too; then the
  optimizer step over parameters, gradients and state (Adam and AdamW add two
  parameter-sized temporaries for the largest parameter). Parameters, buffers and the
  optimizer state (allocated in the first step) are alive throughout.

What this does not model: allocator rounding and caching (CUDA's caching allocator keeps
freed blocks), kernel workspaces (cuDNN, oneDNN), autograd's own bookkeeping, and the
internals of ops archstat counts whole (an attention module's score matrix is never
materialised by the fused kernels; the math kernel would hold it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from archstat.formulas.training import optimizer as optimizer_rule

if TYPE_CHECKING:
    from archstat.counting.stats import ModelStats, OpRecord

__all__ = ["MemoryModel", "ADAM_TEMPORARIES"]

#: Parameter-sized temporaries torch.optim's single-tensor Adam / AdamW make per parameter
#: (``exp_avg_sq.sqrt()`` and its quotient by the bias correction).
ADAM_TEMPORARIES = 2


@dataclass(frozen=True)
class MemoryModel:
    """The memory of a count (bytes).

    ``params_bytes``: parameters and buffers. In a training count: ``grads_bytes`` (the
    gradients of trainable parameters), ``state_bytes`` (the optimizer's),
    ``saved_bytes`` (activations kept for backward), ``peak_train_bytes`` and where the
    step peaks (``peak_phase``: forward, backward or step), ``step_flops``.
    ``saved_per_record``: the bytes each record saves that no earlier record saved.
    """

    params_bytes: int
    grads_bytes: int
    state_bytes: int
    saved_bytes: int
    saved_per_record: tuple[int, ...]
    peak_infer_bytes: int
    peak_train_bytes: int
    peak_phase: str
    step_flops: int
    forward_peak_bytes: int
    backward_peak_bytes: int
    step_peak_bytes: int

    @classmethod
    def of(cls, stats: "ModelStats") -> "MemoryModel":
        records = stats.records
        params = {t.key: t for t in stats.tensors}
        params_bytes = sum(t.nbytes for t in params.values())
        trainable = [t for t in params.values() if t.grad]
        grads_bytes = sum(t.nbytes for t in trainable)
        saved_per_record, saved_keys = _saved(records)
        saved_bytes = sum(saved_per_record)
        infer_peak = params_bytes + _forward_peak(records, stats.inputs, stats.outputs, pinned=set())
        if stats.mode != "train":
            return cls(params_bytes, 0, 0, saved_bytes, saved_per_record, infer_peak, 0, "", 0, 0, 0, 0)
        rule = optimizer_rule(stats.optimizer or "sgd")
        state_bytes = rule.state * grads_bytes  # the state is kept in the parameters' dtype
        step_flops = rule.flops * sum(t.nbytes // t.itemsize for t in trainable)
        persistent = params_bytes + state_bytes
        forward = persistent + _forward_peak(records, stats.inputs, stats.outputs, pinned=saved_keys)
        backward = persistent + _backward_peak(records, stats.inputs, stats.outputs, saved_keys)
        largest = max((t.nbytes for t in trainable), default=0)
        temporaries = ADAM_TEMPORARIES * largest if rule.name in ("adam", "adamw") else 0
        step = persistent + grads_bytes + temporaries
        phases = {"forward": forward, "backward": backward, "step": step}
        phase = max(phases, key=phases.__getitem__)
        return cls(params_bytes, grads_bytes, state_bytes, saved_bytes, saved_per_record, infer_peak,
                   phases[phase], phase, step_flops, forward, backward, step)


def _saved(records: list["OpRecord"]) -> tuple[tuple[int, ...], set[int]]:
    """Bytes each record newly saves (params and buffers excluded), and every saved key."""
    seen: set[int] = set()
    per_record = []
    for r in records:
        fresh = 0
        for t in r.saved:
            if not t.param and t.key not in seen:
                seen.add(t.key)
                fresh += t.nbytes
        per_record.append(fresh)
    return tuple(per_record), seen


def _activations(refs) -> dict[int, int]:
    return {t.key: t.nbytes for t in refs if not t.param}


def _forward_peak(records: list["OpRecord"], inputs, outputs, pinned: set[int]) -> int:
    """The most activation bytes alive at once in the forward pass (``pinned`` storages,
    the ones saved for backward, are not freed)."""
    last_use: dict[int, int] = {}
    for i, r in enumerate(records):
        for t in r.operands:
            last_use[t.key] = i
    keep = {t.key for t in (*inputs, *outputs)} | pinned  # the caller holds the inputs
    live = _activations(inputs)
    total = peak = sum(live.values())
    for i, r in enumerate(records):
        for t in (*r.outputs, *r.saved):
            if not t.param and t.key not in live:
                live[t.key] = t.nbytes
                total += t.nbytes
        peak = max(peak, total)
        for t in (*r.operands, *r.outputs, *r.saved):
            if t.key in live and t.key not in keep and last_use.get(t.key, -1) <= i:
                total -= live.pop(t.key)
    return peak


def _backward_peak(records: list["OpRecord"], inputs, outputs, saved_keys: set[int]) -> int:
    """The most bytes of saved activations, activation gradients and parameter gradients
    alive at once in the backward pass (see the module docstring)."""
    alive = {t.key: t.nbytes for r in records for t in r.saved if not t.param}
    held = {t.key: t.nbytes for t in (*inputs, *outputs) if not t.param}  # the caller holds them throughout
    release: dict[int, int] = {}  # saved key -> the earliest record saving it: released after its backward
    for i, r in enumerate(records):
        for t in r.saved:
            release.setdefault(t.key, i)
    releases: dict[int, list[int]] = defaultdict(list)
    for key, i in release.items():
        releases[i].append(key)
    grads = {t.key: t.nbytes for t in outputs if t.grad and not t.param}
    param_grads: set[int] = set()
    param_bytes = 0
    total = sum(alive.values()) + sum(b for k, b in held.items() if k not in alive) + sum(grads.values())
    peak = total
    for i in range(len(records) - 1, -1, -1):
        r = records[i]
        if any(t.grad for t in r.operands):
            for t in r.operands:
                if not t.grad:
                    continue
                if t.param:
                    if t.key not in param_grads:
                        param_grads.add(t.key)
                        param_bytes += t.nbytes
                        total += t.nbytes
                elif t.key not in grads:
                    grads[t.key] = t.nbytes
                    total += t.nbytes
            peak = max(peak, total)
            operand_keys = {t.key for t in r.operands}
            for t in r.outputs:
                if t.key in grads and t.key not in operand_keys:
                    total -= grads.pop(t.key)
        for key in releases.get(i, ()):
            if key in alive and key not in held:
                total -= alive.pop(key)
    return peak
