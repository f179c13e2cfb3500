"""What a count returns: one :class:`OpRecord` per op, summed into :class:`ModelStats`."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from archstat.formulas import Category, Cost, Shape

if TYPE_CHECKING:
    import pandas as pd

    from archstat.counting.handlers import FormulaCall
    from archstat.formulas.training import Backward
    from archstat.training.memory import MemoryModel

__all__ = ["OpRecord", "ModelStats", "TensorRef", "LAYER_COLUMNS", "TRAIN_COLUMNS", "format_shape"]

#: Columns of :attr:`ModelStats.layers`, in order.
LAYER_COLUMNS = ("name", "module", "type", "kind", "family", "input_shapes", "output_shape", "params", "madds",
                 "flops", "mem_access", "counted", "note")

#: Columns :attr:`ModelStats.layers` adds in a training count.
TRAIN_COLUMNS = ("backward_madds", "saved_bytes")


def format_shape(shape: Any) -> str:
    """``(1, 3, 224, 224)`` -> ``"1x3x224x224"``; several shapes are joined with ``", "``, a
    list of shapes is bracketed (``"[3x800x800]"``) and a dict names its keys (``"x=1x3x8x8"``)."""
    if shape is None:
        return ""
    if isinstance(shape, dict):
        return ", ".join(f"{k}={format_shape(v)}" for k, v in shape.items())
    if isinstance(shape, list):
        return "[" + ", ".join(format_shape(s) for s in shape) + "]"
    if shape and all(isinstance(s, (tuple, list, dict)) for s in shape):
        return ", ".join(format_shape(s) for s in shape)
    return "x".join(map(str, shape)) if shape else "scalar"


class TensorRef(NamedTuple):
    """A tensor an op read, wrote or saved, by its storage: ``key`` identifies the storage
    (views and in-place results share their base's), ``nbytes`` is the storage's size and
    ``itemsize`` its element size, ``param`` marks a parameter's or buffer's storage, ``grad``
    a tensor that needs a gradient. (A named tuple: a count makes several per op.)"""

    key: int
    nbytes: int
    itemsize: int = 4
    param: bool = False
    grad: bool = False


@dataclass(slots=True)
class OpRecord:
    """One op as the counter saw it.

    ``name`` is the qualified module name for a module-level op (``layer1.0.conv1``)
    or ``<module>:<function>`` for a functional op inside a module (``layer1.0:add``).
    ``type`` is the module's class name or the function's name, for display;
    ``module_class`` the module's class itself (``None`` for a function). ``category``
    says what the op is (family, depthwise, pointwise ...) and is what code reads;
    ``kind`` is its display label. ``cost.params`` holds only parameters used here for
    the first time, so that a module called twice, or a shared weight, is not counted
    twice. ``counted`` is False for an op archstat does not know: its cost is zero *and*
    it is reported (``category`` is then ``None``).

    ``operands`` and ``outputs`` are the tensors the op read (a module's inputs, then its
    parameters; a function's tensor arguments) and wrote, by storage (:class:`TensorRef`),
    for the memory models. In a training count, ``backward`` is the op's backward pass and
    ``saved`` the tensors autograd keeps for it (operands, outputs or new ones).
    """

    name: str
    module: str
    type: str
    category: Category | None
    input_shapes: tuple[Shape, ...]
    output_shape: Shape | tuple[Shape, ...]
    cost: Cost
    counted: bool = True
    call: "FormulaCall | None" = None
    note: str = ""
    module_class: builtins.type | None = None
    operands: tuple[TensorRef, ...] = ()
    outputs: tuple[TensorRef, ...] = ()
    backward: "Backward | None" = None
    saved: tuple[TensorRef, ...] = ()

    @property
    def backward_madds(self) -> int:
        return self.backward.madds if self.backward is not None else 0

    @property
    def kind(self) -> str:
        """Display label of the op's category (``"uncounted"`` for an op archstat does not know)."""
        return self.category.label if self.category is not None else "uncounted"

    @property
    def family(self) -> str:
        return self.category.family if self.category is not None else "uncounted"

    def row(self) -> dict:
        return {
            "name": self.name, "module": self.module, "type": self.type, "kind": self.kind, "family": self.family,
            "input_shapes": self.input_shapes, "output_shape": self.output_shape, "params": self.cost.params,
            "madds": self.cost.madds, "flops": self.cost.flops, "mem_access": self.cost.mem_access,
            "counted": self.counted, "note": self.note,
        }


@dataclass
class ModelStats:
    """The cost of one model on one input.

    ``params`` counts every unique ``nn.Parameter`` of the model (torchvision's
    ``num_params`` convention), including any the forward pass never uses (those are
    listed in ``unused_params``). ``madds``, ``flops`` and ``mem_access`` are sums over
    the counted ops. ``mem_access`` is in elements; ``mem_access_bytes`` multiplies by
    the dtype size. ``input_shape`` is the shape of the one input, or the shapes of
    several (a tuple of positional inputs, a list, a dict of keyword inputs).

    ``mode`` is ``"eval"`` (inference) or ``"train"`` (a training step with ``optimizer``:
    the forward pass in training mode, its backward pass, the optimizer step). ``inputs``,
    ``outputs`` and ``tensors`` (every parameter and buffer) are the model's tensors by
    storage, for the memory model (:attr:`memory`).
    """

    model: str
    input_shape: tuple
    records: list[OpRecord]
    params: int
    device: str = "meta"
    itemsize: int = 4
    unused_params: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    free_ops: int = 0
    mode: str = "eval"
    optimizer: str | None = None
    inputs: tuple[TensorRef, ...] = ()
    outputs: tuple[TensorRef, ...] = ()
    tensors: tuple[TensorRef, ...] = ()

    @property
    def madds(self) -> int:
        return sum(r.cost.madds for r in self.records)

    @property
    def flops(self) -> int:
        return sum(r.cost.flops for r in self.records)

    @property
    def mem_access(self) -> int:
        return sum(r.cost.mem_access for r in self.records)

    @property
    def mem_access_bytes(self) -> int:
        return self.mem_access * self.itemsize

    @property
    def backward_madds(self) -> int:
        """Multiply-adds of the backward pass (a training count; 0 otherwise)."""
        return sum(r.backward_madds for r in self.records)

    @cached_property
    def memory(self) -> "MemoryModel":
        """Memory of the forward pass (and, in a training count, of the whole step): see
        :class:`~archstat.training.memory.MemoryModel`."""
        from archstat.training.memory import MemoryModel

        return MemoryModel.of(self)

    @property
    def saved_bytes(self) -> int:
        """Bytes of activations autograd saves for the backward pass (training count)."""
        return self.memory.saved_bytes

    @property
    def peak_train_bytes(self) -> int:
        """Estimated peak memory of a training step (training count)."""
        return self.memory.peak_train_bytes

    @property
    def peak_infer_bytes(self) -> int:
        """Estimated peak memory of a forward pass: parameters, buffers and live activations."""
        return self.memory.peak_infer_bytes

    @property
    def step_flops(self) -> int:
        """Flops of the optimizer step (training count)."""
        return self.memory.step_flops

    @property
    def uncounted(self) -> list[OpRecord]:
        """Ops archstat does not know (each also raised an :class:`UncountedOpWarning`)."""
        return [r for r in self.records if not r.counted]

    @cached_property
    def layers(self) -> "pd.DataFrame":
        """One row per op, columns :data:`LAYER_COLUMNS` (and :data:`TRAIN_COLUMNS` in a training
        count: each op's backward multiply-adds and the bytes it saves that no earlier op saved)."""
        import pandas as pd

        rows = [r.row() for r in self.records]
        columns = list(LAYER_COLUMNS)
        if self.mode == "train":
            for row, r, saved in zip(rows, self.records, self.memory.saved_per_record):
                row.update(backward_madds=r.backward_madds, saved_bytes=saved)
            columns += TRAIN_COLUMNS
        return pd.DataFrame(rows, columns=columns)

    def by_kind(self) -> "pd.DataFrame":
        """Totals and shares per layer type (MobileNet paper, Table 2: "Resource per layer type").

        Columns: kind, ops, params, madds, flops, mem_access, madds_share, params_share
        (shares in percent of the counted totals), sorted by madds.
        """
        df = self.layers
        grouped = df.groupby("kind", sort=False).agg(
            ops=("name", "size"), params=("params", "sum"), madds=("madds", "sum"), flops=("flops", "sum"),
            mem_access=("mem_access", "sum")).reset_index()
        for col in ("madds", "params"):
            total = grouped[col].sum()
            grouped[f"{col}_share"] = 100.0 * grouped[col] / total if total else 0.0
        return grouped.sort_values(["madds", "params"], ascending=False, ignore_index=True)

    def by_depth(self, depth: int) -> "pd.DataFrame":
        """Totals per module, truncating qualified names to ``depth`` components
        (``depth=1``: ``conv1``, ``layer1``, ...), in order of first appearance."""
        df = self.layers.copy()
        df["module"] = df["module"].map(lambda m: ".".join(m.split(".")[:depth]) if m else "(root)")
        return df.groupby("module", sort=False).agg(
            ops=("name", "size"), params=("params", "sum"), madds=("madds", "sum"), flops=("flops", "sum"),
            mem_access=("mem_access", "sum"), uncounted=("counted", lambda c: int((~c).sum()))).reset_index()

    def summary(self) -> dict:
        """The model-level figures as plain values (one row of ``archstat table``); a training
        count adds the backward pass, the optimizer step and the step's memory."""
        row = {
            "model": self.model, "input": format_shape(self.input_shape), "params": self.params,
            "madds": self.madds, "flops": self.flops, "mem_access": self.mem_access,
            "mem_access_bytes": self.mem_access_bytes, "uncounted": len(self.uncounted), "device": self.device,
            "peak_infer_bytes": self.peak_infer_bytes,
        }
        if self.mode == "train":
            memory = self.memory
            row.update(mode=self.mode, optimizer=self.optimizer, backward_madds=self.backward_madds,
                       step_flops=memory.step_flops, params_bytes=memory.params_bytes,
                       grads_bytes=memory.grads_bytes, state_bytes=memory.state_bytes,
                       saved_bytes=memory.saved_bytes, peak_train_bytes=memory.peak_train_bytes,
                       peak_phase=memory.peak_phase)
        return row
