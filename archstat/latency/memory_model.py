"""Cache models: how many elements each recorded op reads and writes.

archstat's ``mem_access`` (on every :class:`~archstat.counting.stats.OpRecord`) is the
ShuffleNet V2 lower bound (Ma et al., arXiv:1807.11164, Sec. 2, G1): a cache large
enough to hold every tensor, so each op reads its inputs and weights once and writes
its output once. That is the ``"lower-bound"`` model here, and the default
everywhere. Inference engines do better than op-by-op execution by fusing, which
the ``"fused"`` model states explicitly:

* a batch norm whose input is the output of the conv (or linear) just before it is
  folded into that layer's weights: its own read and write disappear and only the
  bias the folded layer now adds is read (``C`` elements, nothing when the layer had
  a bias already);
* activations (ReLU, ReLU6, SiLU, hardswish, ... : :data:`~archstat.formulas.ACTIVATIONS`)
  are applied in registers as their producer writes its output, so they cost no
  memory access (the "in-place activations free" case);
* everything else (convs, adds, concat, split, shuffle, pooling, ...) is unchanged:
  a residual add still reads two tensors and writes one.

Both are functions of a :class:`~archstat.counting.stats.ModelStats`' records; neither
changes the records or the default ``mem_access``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    from archstat.counting.stats import ModelStats, OpRecord

__all__ = ["CACHE_MODELS", "CACHE_MODEL_TEXT", "mem_access_per_op", "mem_access_total", "is_activation",
           "folds_into_previous"]

_FOLDS_INTO = frozenset({"conv", "conv_transpose", "linear"})


def is_activation(record: "OpRecord") -> bool:
    """An element-wise activation (``relu``, ``leaky_relu``, ``silu``, ``hardswish`` ...: the
    ``activation`` family, whatever module class or function produced it)."""
    return record.category is not None and record.category.family == "activation"


def folds_into_previous(record: "OpRecord", previous: "OpRecord | None") -> bool:
    """An inference batch norm applied directly to the output of the conv/linear recorded just before it."""
    return (previous is not None and record.category is not None and record.category.op == "batch_norm"
            and not (record.call is not None and record.call.kwargs.get("training", False))
            and previous.category is not None and previous.category.op in _FOLDS_INTO
            and bool(record.input_shapes) and tuple(record.input_shapes[0]) == tuple(previous.output_shape))


def _lower_bound(records: Sequence["OpRecord"]) -> list[int]:
    return [r.cost.mem_access for r in records]


def _folded_bias(previous: "OpRecord", record: "OpRecord") -> int:
    had_bias = bool(previous.call.kwargs.get("bias", True)) if previous.call is not None else True
    return 0 if had_bias else int(record.input_shapes[0][1] if len(record.input_shapes[0]) > 1 else 1)


def _fused(records: Sequence["OpRecord"]) -> list[int]:
    out: list[int] = []
    previous: "OpRecord | None" = None
    for r in records:
        if is_activation(r):
            out.append(0)
        elif folds_into_previous(r, previous):
            out.append(_folded_bias(previous, r))  # type: ignore[arg-type]
        else:
            out.append(r.cost.mem_access)
        previous = r
    return out


#: Cache model name -> per-op memory access (elements), aligned with ``stats.records``.
CACHE_MODELS: dict[str, Callable[[Sequence["OpRecord"]], list[int]]] = {
    "lower-bound": _lower_bound,
    "fused": _fused,
}

#: One line per cache model, for table captions and CSV notes.
CACHE_MODEL_TEXT = {
    "lower-bound": "ShuffleNet V2 lower bound: every tensor read/written once per op (arXiv:1807.11164, Sec. 2)",
    "fused": "fused: BN folded into the preceding conv/linear, activations free; other ops as the lower bound",
}


def mem_access_per_op(stats: "ModelStats", cache_model: str = "lower-bound") -> list[int]:
    """Elements each op of ``stats.records`` reads and writes under ``cache_model``."""
    try:
        model = CACHE_MODELS[cache_model]
    except KeyError:
        from archstat.errors import ArchstatError

        raise ArchstatError(f"unknown cache model {cache_model!r}; choose one of {', '.join(CACHE_MODELS)}") from None
    return model(stats.records)


def mem_access_total(stats: "ModelStats", cache_model: str = "lower-bound") -> int:
    """The model's memory access in elements under ``cache_model`` (``"lower-bound"`` = ``stats.mem_access``)."""
    return sum(mem_access_per_op(stats, cache_model))
