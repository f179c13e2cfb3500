"""How other counters count: archstat's per-op records re-evaluated under each tool's rules.

fvcore, thop, ptflops, torch's ``FlopCounterMode`` and the papers agree on what one
multiply-add of a convolution or a matrix product is. They differ in

* **bias additions**: ptflops adds one per output element of a conv / linear layer;
  the others (and the papers, and torchvision's ``_ops``) do not;
* **the other work**: batch norm, activations, pooling, interpolation, each at a
  per-element rate of the tool's own (thop: 4 per element for an affine batch norm,
  fvcore 2, ptflops 2, torch and the papers 0);
* **units**: ``FlopCounterMode`` reports 2 FLOPs per multiply-add, the others one
  "MAC" or "flop" per multiply-add.

A :class:`Convention` turns one :class:`~archstat.counting.stats.OpRecord` into what
that tool counts for it, in multiply-add equivalents, split by op type. It never keeps
a formula of its own: the multiply-adds come from the record's own formula,
re-evaluated through ``record.call.evaluate(count_bias=...)``, and the extra work is a
per-element rate applied to the record's shapes. A convention describes what the tool
*means* to count. Where a tool miscounts by its own rules (thop multiplying a transposed
conv by its output size, fvcore skipping an attention op it cannot parse, ptflops
counting a ReLU twice) that is a bug, which ``archstat check`` flags layer by layer; it is
never folded into a convention.

The rules were read from the sources of fvcore 0.1.5.post20221221
(``fvcore/nn/flop_count.py``, ``jit_handles.py``), thop 0.1.1.post2209072238
(``thop/profile.py``, ``vision/basic_hooks.py``, ``vision/calc_func.py``), ptflops 0.7.5
(``pytorch_ops.py``, ``pytorch_engine.py``; its default "pytorch" backend) and torch 2.14
(``torch/utils/flop_counter.py``), and checked against them by ``tests/crosscheck``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod
from typing import TYPE_CHECKING, Callable

from torch import nn

from archstat.errors import ArchstatError
from archstat.formulas import Cost

if TYPE_CHECKING:
    from archstat.counting.stats import ModelStats, OpRecord

__all__ = ["Convention", "KnownBug", "CONVENTIONS", "convention", "components", "intended", "record_madds",
           "total_madds", "apply_convention", "op_type", "MULTIPLY_ADD_TYPES", "BIAS"]

#: Op type of each multiply-add formula (the work every counter means to count).
MULTIPLY_ADD_TYPES = {"conv": "conv", "conv_transpose": "conv transpose", "deform_conv": "conv", "linear": "linear",
                      "matmul": "matmul", "einsum": "einsum", "sdpa": "attention", "mha": "attention",
                      "rnn": "recurrent", "rnn_cell": "recurrent"}

#: The op type of bias additions, split off the conv / linear they belong to.
BIAS = "bias"

_SOFTMAX = frozenset({"softmax", "log_softmax", "softmin"})
_NORMS = {"layer_norm": "layer norm", "rms_norm": "layer norm", "group_norm": "group norm",
          "local_response_norm": "local response norm", "batch_norm": "batch norm", "instance_norm": "instance norm"}

Parts = dict[str, int]
Rule = Callable[["OpRecord"], Parts]


def op_type(record: "OpRecord") -> str:
    """The op type a record's work is reported under in the reconciliation: ``"conv"``,
    ``"batch norm"``, ``"activation"``, ``"max pool"``, ``"element-wise"``, ``"uncounted"`` ...
    read from the record's formula and category."""
    call, category = record.call, record.category
    if call is None or category is None or not record.counted:
        return "uncounted"
    if call.formula in MULTIPLY_ADD_TYPES:
        return MULTIPLY_ADD_TYPES[call.formula]
    family, op = category.family, category.op
    if family == "norm":
        return _NORMS.get(op, op.replace("_", " "))
    if family == "pool":
        return op.replace("_", " ")
    if family == "activation":
        return "activation"
    if family == "elementwise":
        return "softmax" if op in _SOFTMAX else "element-wise"
    if family == "data_movement":
        return "data movement"
    if family == "resample" and op.startswith("interpolate"):
        return "interpolate"
    return family

# --------------------------------------------------------------------------- building blocks


def _in(record: "OpRecord") -> int:
    """Elements of the record's first input (what per-input-element rates multiply)."""
    return prod(record.input_shapes[0]) if record.input_shapes else 0


def _out(record: "OpRecord") -> int:
    """Elements of the record's (first) output."""
    shape = record.output_shape
    if shape and isinstance(shape[0], tuple):
        shape = shape[0]
    return prod(shape)


def _multiply_adds(record: "OpRecord", bias: bool) -> Parts:
    """The record's multiply-adds through its own formula, bias additions split off as
    :data:`BIAS` (kept only when ``bias``)."""
    call = record.call
    if call is None or call.formula not in MULTIPLY_ADD_TYPES:
        return {}
    plain = call.evaluate(count_bias=False).cost.madds
    parts = {MULTIPLY_ADD_TYPES[call.formula]: plain}
    if bias:
        extra = call.evaluate(count_bias=True).cost.madds - plain
        if extra:
            parts[BIAS] = extra
    return parts


def _affine(record: "OpRecord") -> bool:
    kwargs = record.call.kwargs if record.call else {}
    return bool(kwargs.get("affine", kwargs.get("elementwise_affine", True)))


def _rate(per_element: int, affine: int | None = None, of: str = "input") -> Callable[["OpRecord"], int]:
    """``per_element`` units per input (or output) element; ``affine`` per element instead
    when the layer is affine (a norm with gamma and beta)."""

    def rule(record: "OpRecord") -> int:
        n = _in(record) if of == "input" else _out(record)
        return n * (affine if affine is not None and _affine(record) else per_element)

    return rule


def _module_rules(table: dict[tuple[type, ...], Callable[["OpRecord"], int]]) -> dict[type, Callable]:
    return {cls: rule for classes, rule in table.items() for cls in classes}


def _with_type(record: "OpRecord", value: int) -> Parts:
    return {op_type(record): value} if value else {}


# --------------------------------------------------------------------------- the conventions


def _archstat(record: "OpRecord") -> Parts:
    """archstat's own count: the record's multiply-adds as counted (bias when ``count_bias``)."""
    if record.call is None or record.call.formula not in MULTIPLY_ADD_TYPES:
        return {}
    plain = record.call.evaluate(count_bias=False).cost.madds
    kind = MULTIPLY_ADD_TYPES[record.call.formula]
    return {kind: plain, BIAS: record.cost.madds - plain} if record.cost.madds != plain else {kind: plain}


def _multiply_adds_only(record: "OpRecord") -> Parts:
    return _multiply_adds(record, bias=False)


#: fvcore counts by aten op on a JIT trace: no bias; aten::batch_norm 2 per element in eval
#: mode when affine (1 without), and in training mode (batch statistics, as weight
#: standardisation computes them on a conv's weight) 5 per element when affine (4 without),
#: like layer / group / instance norm; 1 per input element of aten::adaptive_avg_pool2d, 1
#: per output element of aten::upsample_nearest2d and 4 of aten::upsample_bilinear2d;
#: nothing else (aten::lstm, aten::gru: no handle).
_FVCORE_INTERPOLATION = {"nearest": 1, "bilinear": 4}


def _fvcore(record: "OpRecord") -> Parts:
    call, category = record.call, record.category
    if call is None or category is None:
        return {}
    if call.formula in ("rnn", "rnn_cell"):
        return {}
    parts = _multiply_adds(record, bias=False)
    if parts:
        return parts
    if category.op == "batch_norm" and not call.kwargs.get("training", False):
        value = _rate(1, affine=2)(record)
    elif category.op in ("batch_norm", "instance_norm", "group_norm", "layer_norm"):
        value = _rate(4, affine=5)(record)
    elif category.op == "adaptive_avg_pool" and call.kwargs.get("spatial_dims") == 2:
        value = _in(record)
    elif call.formula == "interpolate" and len(record.output_shape) == 4:
        value = _out(record) * _FVCORE_INTERPOLATION.get(call.kwargs.get("mode", "nearest"), 0)
    else:
        value = 0
    return _with_type(record, value)


def _string_padding(record: "OpRecord") -> bool:
    """A convolution given ``padding="same"`` or ``"valid"``: traced as aten::_convolution_mode."""
    return record.call is not None and record.call.formula == "conv" and isinstance(
        record.call.kwargs.get("padding"), str)


def _thop_adaptive_avg(record: "OpRecord") -> int:
    """thop: ``int((prod(in_i / out_i) + 1) * numel(out))`` in floating point, as thop computes it."""
    spatial_in, spatial_out = record.call.args[0][2:], record.output_shape[2:]
    kernel = prod(i / o for i, o in zip(spatial_in, spatial_out))
    return int((kernel + 1) * _out(record))


_THOP_UPSAMPLE = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 259}

#: thop counts nn.Module layers by exact class (``type(m) in register_hooks``): a subclass,
#: and every functional call, is invisible to it. Per-element rates of its rules:
_THOP_MODULES = _module_rules({
    (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm, nn.InstanceNorm1d,
     nn.InstanceNorm2d, nn.InstanceNorm3d): _rate(2, affine=4),
    (nn.PReLU,): _rate(1),
    (nn.Softmax,): _rate(3),  # exp, add, divide per element (thop's n - 1 adds per row: -1 per row not modelled)
    (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d): _rate(1, of="output"),
    (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d): _thop_adaptive_avg,
    (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d):
        lambda r: _out(r) * _THOP_UPSAMPLE.get(r.call.kwargs.get("mode", "nearest"), 0),
})


def _thop(record: "OpRecord") -> Parts:
    parts = _multiply_adds(record, bias=False)
    if parts or record.call is None:
        return parts
    rule = _THOP_MODULES.get(record.module_class)
    return _with_type(record, rule(record)) if rule else {}


#: ptflops (pytorch backend) counts nn.Module layers by exact class through forward hooks,
#: plus calls of the torch functions it patches during the run (F.relu, F.gelu, F.silu,
#: F.softmax, the F.*pool*d functions, F.interpolate, torch.matmul / mm / bmm ...). A
#: module without a hook whose forward calls a patched function is counted through it.
_PTFLOPS_MODULES = _module_rules({
    (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
     nn.GroupNorm): _rate(1, affine=2),
    (nn.LayerNorm,): _rate(1),  # its hook doubles for `affine`, an attribute LayerNorm does not have
    (nn.ReLU, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Softmax, nn.Softmax2d):
        _rate(1, of="output"),
    (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveMaxPool1d,
     nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d):
        _rate(1),
    (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d): _rate(1, of="output"),
})

_PTFLOPS_FUNCTIONS = {name: _rate(1) for name in (
    "relu", "prelu", "elu", "relu6", "gelu", "silu", "softmax",
    *(f"{kind}_pool{nd}d" for kind in ("max", "avg", "adaptive_avg", "adaptive_max") for nd in (1, 2, 3)))}
_PTFLOPS_FUNCTIONS.update(interpolate=_rate(1, of="output"), upsample=_rate(1, of="output"))


def _ptflops_attention(record: "OpRecord") -> Parts:
    """ptflops's nn.MultiheadAttention hook: projections and attention with their biases,
    plus one per attention score (softmax) and one per query element (the q scaling)."""
    parts = _multiply_adds(record, bias=True)
    plain = record.call.evaluate(count_bias=False).cost
    parts["attention softmax"] = plain.flops - 2 * plain.madds
    parts["attention q scaling"] = prod(record.call.args[0])
    return parts


def _ptflops(record: "OpRecord") -> Parts:
    if record.call is None:
        return {}
    if record.call.formula == "mha":
        return _ptflops_attention(record)
    parts = _multiply_adds(record, bias=True)
    if parts:
        return parts
    rule = _PTFLOPS_MODULES.get(record.module_class) if record.module_class is not None \
        else _PTFLOPS_FUNCTIONS.get(record.type)
    return _with_type(record, rule(record)) if rule else {}


@dataclass(frozen=True)
class KnownBug:
    """An op a tool means to count and drops, reproduced by its convention (so a count under
    that convention gives what the tool gives) and flagged by ``archstat check``.

    ``applies(record)`` says whether the op is one it drops; ``why`` is the flag's text;
    ``checked`` the tool version the behaviour was observed in.
    """

    applies: Callable[["OpRecord"], bool]
    why: str
    checked: str


@dataclass(frozen=True)
class Convention:
    """What one counter counts, as a rule over archstat's records.

    ``rule(record)`` gives the multiply-add equivalents the tool means to count for that
    op, by op type; ``bugs`` are the ops it drops although its rules count them (the
    convention drops them too, and ``check`` flags them). ``per_madd`` is how many units
    the tool reports per multiply-add (2 for ``FlopCounterMode``'s FLOPs, 1 for the
    others). ``rules`` lists, for the docs and ``archstat check``, what the tool counts
    beyond multiply-adds.
    """

    name: str
    tool: str
    reports: str
    per_madd: int
    summary: str
    rules: tuple[str, ...]
    rule: Rule
    bugs: tuple[KnownBug, ...] = ()

    def bug(self, record: "OpRecord") -> KnownBug | None:
        """The known bug that makes the tool drop ``record``, if any."""
        return next((b for b in self.bugs if b.applies(record)), None)


CONVENTIONS: dict[str, Convention] = {c.name: c for c in (
    Convention("archstat", "archstat", "multiply-adds", 1,
               "multiply-adds of conv, linear, matmul, einsum and attention; bias additions only with count_bias",
               ("element-wise, norm and pooling work is in flops, not in madds",), _archstat),
    Convention("paper", "the papers (ResNet, MobileNet, ShuffleNet, SENet ...) and torchvision's _ops", "multiply-adds",
               1, "multiply-adds of conv, fully connected, matmul and attention layers; no bias, BN, activation, "
                  "pooling or element-wise work",
               ("differences from a printed figure beyond this are the network's (see archstat.published)",),
               _multiply_adds_only),
    Convention("torch", "torch.utils.flop_counter.FlopCounterMode", "FLOPs, 2 per multiply-add", 2,
               "2 FLOPs per multiply-add of aten convolution, mm/addmm/bmm/baddbmm and scaled-dot-product "
               "attention; bias and everything else 0",
               ("madds-equivalent = its FLOPs / 2",), _multiply_adds_only),
    Convention("fvcore", "fvcore.nn.FlopCountAnalysis", "flops, 1 per multiply-add", 1,
               "multiply-adds (no bias) plus norm, adaptive-average-pool and upsampling work",
               ("batch norm (eval): 2 per element if affine, else 1",
                "layer / group / instance norm: 5 per element if affine, else 4",
                "aten::adaptive_avg_pool2d: 1 per input element", "upsample: nearest 1, bilinear 4 per output element",
                "batch norm in training mode (batch statistics, weight standardisation): 5 per element if affine, "
                "else 4",
                "activations, max/avg pooling, element-wise ops, recurrent layers: 0 (unsupported or ignored "
                "operators)",
                "convolutions with padding='same' or 'valid': 0 (a known bug, flagged by check)"), _fvcore,
               (KnownBug(_string_padding, "drops the convolution: padding='same' / 'valid' traces as "
                                          "aten::_convolution_mode, which has no handle in fvcore",
                         "fvcore 0.1.5.post20221221"),)),
    Convention("thop", "thop.profile", "MACs", 1,
               "multiply-adds (no bias) of the nn.Module classes it has rules for, plus norm, pooling, softmax and "
               "upsampling work of those modules; functional calls are invisible to it",
               ("batch / layer / instance norm: 2 per element, 4 if affine (group norm: no rule, 0)",
                "avg pool: 1 per output element; adaptive avg pool: (in/out window + 1) per output element",
                "nn.Softmax: 3 per element; nn.PReLU: 1 per element; ReLU, ReLU6, LeakyReLU, max pool: 0",
                "nn.Upsample: nearest 1, linear 5, bilinear 11, bicubic 259 per output element"), _thop),
    Convention("ptflops", "ptflops.get_model_complexity_info (pytorch backend)", "MACs", 1,
               "multiply-adds with bias additions, plus 1 per element of norms, activations and pooling",
               ("bias: 1 per output element of conv, linear and attention projections",
                "batch / group / instance norm: 1 per element, 2 if affine; layer norm: 1 per element",
                "ReLU, PReLU, ELU, LeakyReLU, ReLU6, GELU, SiLU, softmax: 1 per element",
                "max / avg / adaptive pooling: 1 per input element; upsample: 1 per output element",
                "nn.MultiheadAttention: also 1 per attention score and 1 per query element",
                "x + y, x * y and other operators: 0 (only named torch.add / torch.mul calls are patched)"),
               _ptflops),
)}


def convention(name: str) -> Convention:
    """The :class:`Convention` called ``name``; an :class:`ArchstatError` lists the known ones."""
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ArchstatError(f"unknown convention {name!r}; choose one of {', '.join(CONVENTIONS)}") from None


def components(record: "OpRecord", name: str) -> Parts:
    """What convention ``name`` counts for ``record``, by op type, in multiply-add equivalents
    (nothing for an op a known bug of the tool drops)."""
    rules = convention(name)
    if rules.bug(record) is not None:
        return {}
    return {k: v for k, v in rules.rule(record).items() if v}


def intended(record: "OpRecord", name: str) -> Parts:
    """What convention ``name``'s rules count for ``record``, its known bugs aside."""
    return {k: v for k, v in convention(name).rule(record).items() if v}


def record_madds(record: "OpRecord", name: str) -> int:
    """The multiply-add equivalents convention ``name`` counts for ``record``."""
    return sum(components(record, name).values())


def total_madds(stats: "ModelStats", name: str) -> int:
    """The model's total under convention ``name`` (what that tool's total should be)."""
    return sum(record_madds(r, name) for r in stats.records)


def apply_convention(stats: "ModelStats", name: str) -> "ModelStats":
    """``stats`` with every record's ``madds`` replaced by what convention ``name`` counts.

    ``flops`` becomes ``2 * madds`` (``FlopCounterMode``'s unit: under ``"torch"`` it is
    exactly the figure ``FlopCounterMode`` reports); ``params`` and ``mem_access`` do not
    depend on the convention. ``"archstat"`` returns ``stats`` unchanged.
    """
    rules = convention(name)
    if rules.name == "archstat":
        return stats
    records = []
    for r in stats.records:
        madds = record_madds(r, name)
        records.append(replace(r, cost=Cost(r.cost.params, madds, 2 * madds, r.cost.mem_access)))
    note = f"convention {name} ({rules.tool}): madds = {rules.summary}; flops = 2 x madds"
    return replace(stats, records=records, notes=[*stats.notes, note])
