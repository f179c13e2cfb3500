"""Every class in the module registry counts the same through a trivial subclass, and through a
subclass that overrides ``forward`` (then the functional ops it calls are counted instead).

:data:`MODULE_HANDLERS` is looked up along the module's MRO (see
:func:`archstat.counting.handlers.handler_for_module`), so ``type("SubConv2d", (nn.Conv2d,), {})``
must give the very same rows as ``nn.Conv2d``, apart from the class shown in ``type`` /
``module_class``. The table below has one entry per registered class; a class registered
later without a sample fails :func:`test_every_registered_class_has_a_sample`.

The oracle here is the stock class itself (a different code path: the module hook versus
the function interception for the overriding subclass), not a second call of the same path.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import warnings
from typing import Any, NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm
from torch.utils.flop_counter import FlopCounterMode

import archstat
from archstat.counting.handlers import MODULE_HANDLERS, handler_for_module
from archstat.counting.stats import ModelStats
from archstat.errors import UncountedOpWarning


class Sample(NamedTuple):
    """One concrete module to build: ``cls(*args, **kwargs)`` on ``shape`` (or ``examples``)."""

    cls: type
    args: tuple
    kwargs: dict
    shape: Any = None
    examples: Any = None

    @property
    def id(self) -> str:
        extra = ",".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        return f"{self.cls.__name__}({extra})"


def _s(cls: type, *args: Any, shape: Any = None, examples: Any = None, **kwargs: Any) -> Sample:
    return Sample(cls, args, kwargs, shape, examples)


_ACT = (2, 3, 4, 4)
_LONG = torch.zeros(2, 3, dtype=torch.long)

#: Registered class -> concrete samples. Abstract registered bases (``_BatchNorm``,
#: ``_InstanceNorm``) get their concrete torch subclasses.
SAMPLES: dict[type, list[Sample]] = {
    nn.Conv1d: [_s(nn.Conv1d, 3, 4, 3, shape=(1, 3, 8)),
                _s(nn.Conv1d, 4, 4, 3, groups=2, bias=False, shape=(2, 4, 9))],
    nn.Conv2d: [_s(nn.Conv2d, 3, 4, 3, shape=(1, 3, 8, 8)), _s(nn.Conv2d, 4, 8, 3, stride=2, padding=1, groups=4,
                                                               shape=(1, 4, 9, 9))],
    nn.Conv3d: [_s(nn.Conv3d, 3, 4, 3, shape=(1, 3, 6, 6, 6))],
    nn.ConvTranspose1d: [_s(nn.ConvTranspose1d, 3, 4, 3, stride=2, shape=(1, 3, 5))],
    nn.ConvTranspose2d: [_s(nn.ConvTranspose2d, 3, 4, 3, stride=2, output_padding=1, shape=(1, 3, 5, 5))],
    nn.ConvTranspose3d: [_s(nn.ConvTranspose3d, 3, 4, 2, stride=2, shape=(1, 3, 3, 3, 3))],
    nn.Linear: [_s(nn.Linear, 8, 4, shape=(2, 8)), _s(nn.Linear, 8, 4, bias=False, shape=(2, 5, 8))],
    _BatchNorm: [_s(nn.BatchNorm1d, 4, shape=(2, 4, 5)), _s(nn.BatchNorm2d, 4, shape=(2, 4, 5, 5)),
                 _s(nn.BatchNorm3d, 4, affine=False, shape=(2, 4, 3, 3, 3))],
    _InstanceNorm: [_s(nn.InstanceNorm1d, 4, shape=(2, 4, 5)),
                    _s(nn.InstanceNorm2d, 4, affine=True, shape=(2, 4, 5, 5)),
                    _s(nn.InstanceNorm3d, 4, shape=(2, 4, 3, 3, 3))],
    nn.LayerNorm: [_s(nn.LayerNorm, 8, shape=(2, 3, 8))],
    nn.GroupNorm: [_s(nn.GroupNorm, 2, 4, shape=(2, 4, 5, 5))],
    nn.LocalResponseNorm: [_s(nn.LocalResponseNorm, 2, shape=(1, 4, 5, 5))],
    nn.AvgPool1d: [_s(nn.AvgPool1d, 2, shape=(1, 3, 8))],
    nn.AvgPool2d: [_s(nn.AvgPool2d, 3, stride=2, padding=1, shape=(1, 3, 8, 8))],
    nn.AvgPool3d: [_s(nn.AvgPool3d, 2, shape=(1, 3, 4, 4, 4))],
    nn.MaxPool1d: [_s(nn.MaxPool1d, 2, shape=(1, 3, 8))],
    nn.MaxPool2d: [_s(nn.MaxPool2d, 3, stride=2, ceil_mode=True, shape=(1, 3, 8, 8))],
    nn.MaxPool3d: [_s(nn.MaxPool3d, 2, shape=(1, 3, 4, 4, 4))],
    nn.AdaptiveMaxPool1d: [_s(nn.AdaptiveMaxPool1d, 3, shape=(1, 3, 8))],
    nn.AdaptiveMaxPool2d: [_s(nn.AdaptiveMaxPool2d, (3, 2), shape=(1, 3, 8, 8))],
    nn.AdaptiveMaxPool3d: [_s(nn.AdaptiveMaxPool3d, 2, shape=(1, 3, 4, 4, 4))],
    nn.AdaptiveAvgPool1d: [_s(nn.AdaptiveAvgPool1d, 3, shape=(1, 3, 8))],
    nn.AdaptiveAvgPool2d: [_s(nn.AdaptiveAvgPool2d, 1, shape=(1, 3, 8, 8))],
    nn.AdaptiveAvgPool3d: [_s(nn.AdaptiveAvgPool3d, 2, shape=(1, 3, 4, 4, 4))],
    nn.ReLU: [_s(nn.ReLU, shape=_ACT)],
    nn.ReLU6: [_s(nn.ReLU6, shape=_ACT)],
    nn.LeakyReLU: [_s(nn.LeakyReLU, 0.2, shape=_ACT)],
    nn.ELU: [_s(nn.ELU, shape=_ACT)],
    nn.SELU: [_s(nn.SELU, shape=_ACT)],
    nn.CELU: [_s(nn.CELU, shape=_ACT)],
    nn.GELU: [_s(nn.GELU, shape=_ACT), _s(nn.GELU, approximate="tanh", shape=_ACT)],
    nn.Sigmoid: [_s(nn.Sigmoid, shape=_ACT)],
    nn.Hardsigmoid: [_s(nn.Hardsigmoid, shape=_ACT)],
    nn.Tanh: [_s(nn.Tanh, shape=_ACT)],
    nn.Hardtanh: [_s(nn.Hardtanh, shape=_ACT)],
    nn.SiLU: [_s(nn.SiLU, shape=_ACT)],
    nn.Mish: [_s(nn.Mish, shape=_ACT)],
    nn.Hardswish: [_s(nn.Hardswish, shape=_ACT)],
    nn.Softplus: [_s(nn.Softplus, shape=_ACT)],
    nn.Softsign: [_s(nn.Softsign, shape=_ACT)],
    nn.Tanhshrink: [_s(nn.Tanhshrink, shape=_ACT)],
    nn.LogSigmoid: [_s(nn.LogSigmoid, shape=_ACT)],
    nn.Threshold: [_s(nn.Threshold, 0.1, 20.0, shape=_ACT)],
    nn.Hardshrink: [_s(nn.Hardshrink, shape=_ACT)],
    nn.Softshrink: [_s(nn.Softshrink, shape=_ACT)],
    nn.RReLU: [_s(nn.RReLU, shape=_ACT)],
    nn.Softmax: [_s(nn.Softmax, dim=1, shape=_ACT)],
    nn.LogSoftmax: [_s(nn.LogSoftmax, dim=-1, shape=_ACT)],
    nn.Softmin: [_s(nn.Softmin, dim=1, shape=_ACT)],
    nn.Softmax2d: [_s(nn.Softmax2d, shape=_ACT)],
    nn.GLU: [_s(nn.GLU, shape=(2, 8)), _s(nn.GLU, 1, shape=(2, 6, 3))],
    nn.PReLU: [_s(nn.PReLU, shape=_ACT), _s(nn.PReLU, 3, shape=_ACT)],
    nn.Identity: [_s(nn.Identity, shape=_ACT)],
    nn.Dropout: [_s(nn.Dropout, 0.5, shape=_ACT)],
    nn.Dropout1d: [_s(nn.Dropout1d, shape=(2, 3, 4))],
    nn.Dropout2d: [_s(nn.Dropout2d, shape=_ACT)],
    nn.Dropout3d: [_s(nn.Dropout3d, shape=(2, 3, 2, 4, 4))],
    nn.AlphaDropout: [_s(nn.AlphaDropout, shape=_ACT)],
    nn.FeatureAlphaDropout: [_s(nn.FeatureAlphaDropout, shape=_ACT)],
    nn.Flatten: [_s(nn.Flatten, shape=_ACT)],
    nn.Unflatten: [_s(nn.Unflatten, 1, (2, 2), shape=(2, 4, 5))],
    nn.Upsample: [_s(nn.Upsample, scale_factor=2, shape=_ACT),
                  _s(nn.Upsample, size=(6, 7), mode="bilinear", align_corners=False, shape=_ACT)],
    nn.ChannelShuffle: [_s(nn.ChannelShuffle, 2, shape=(1, 4, 3, 3))],
    nn.PixelShuffle: [_s(nn.PixelShuffle, 2, shape=(1, 8, 3, 3))],
    nn.PixelUnshuffle: [_s(nn.PixelUnshuffle, 2, shape=(1, 2, 4, 4))],
    nn.MultiheadAttention: [_s(nn.MultiheadAttention, 8, 2, shape=((5, 2, 8), (6, 2, 8), (6, 2, 8))),
                            _s(nn.MultiheadAttention, 8, 2, batch_first=True, kdim=4, vdim=6,
                               shape=((2, 5, 8), (2, 6, 4), (2, 6, 6)))],
    nn.RNN: [_s(nn.RNN, 8, 16, shape=(5, 2, 8)), _s(nn.RNN, 8, 16, nonlinearity="relu", num_layers=2, shape=(5, 2, 8))],
    nn.LSTM: [_s(nn.LSTM, 8, 16, num_layers=2, shape=(5, 2, 8)),
              _s(nn.LSTM, 8, 16, bidirectional=True, proj_size=4, batch_first=True, shape=(2, 5, 8))],
    nn.GRU: [_s(nn.GRU, 8, 16, bidirectional=True, shape=(5, 2, 8))],
    nn.LSTMCell: [_s(nn.LSTMCell, 8, 16, shape=(2, 8))],
    nn.GRUCell: [_s(nn.GRUCell, 8, 16, shape=(2, 8))],
    nn.RNNCell: [_s(nn.RNNCell, 8, 16, shape=(2, 8)), _s(nn.RNNCell, 8, 16, nonlinearity="relu", shape=(2, 8))],
    nn.Embedding: [_s(nn.Embedding, 10, 4, examples=_LONG)],
    nn.EmbeddingBag: [_s(nn.EmbeddingBag, 10, 4, mode="mean", examples=_LONG)],
    nn.Fold: [_s(nn.Fold, (4, 4), 2, shape=(1, 3 * 4, 9))],
}

_ALL = [pytest.param(base, s, id=s.id) for base, samples in SAMPLES.items() for s in samples]


def test_every_registered_class_has_a_sample() -> None:
    missing = [c.__qualname__ for c in MODULE_HANDLERS if not SAMPLES.get(c)]
    assert not missing, f"registered module classes without a sample in SAMPLES: {missing}"
    stale = [c.__qualname__ for c in SAMPLES if c not in MODULE_HANDLERS]
    assert not stale, f"SAMPLES lists classes that are no longer registered: {stale}"


@pytest.mark.parametrize("base, sample", _ALL)
def test_sample_is_handled_by_its_registered_class(base: type, sample: Sample) -> None:
    module = sample.cls(*sample.args, **sample.kwargs)
    assert issubclass(sample.cls, base) and handler_for_module(module) is MODULE_HANDLERS[base]
    sub = type("Sub" + sample.cls.__name__, (sample.cls,), {})(*sample.args, **sample.kwargs)
    assert handler_for_module(sub) is MODULE_HANDLERS[base]
    assert handler_for_module(_overriding(sample.cls)(*sample.args, **sample.kwargs)) is None


def _count(cls: type, sample: Sample) -> ModelStats:
    torch.manual_seed(0)
    module = cls(*sample.args, **sample.kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UncountedOpWarning)
        if sample.examples is not None:
            return archstat.count(module, example_inputs=sample.examples)
        return archstat.count(module, sample.shape)


def _display_free(record: Any) -> Any:
    """The record without its display of the class: ``type``, ``module_class``, and ``name``, which for the
    root module (the one counted here) is its class name."""
    return dataclasses.replace(record, name="", type="", module_class=None)


@pytest.mark.parametrize("base, sample", _ALL)
def test_trivial_subclass_counts_like_its_base(base: type, sample: Sample) -> None:
    sub_cls = type("Sub" + sample.cls.__name__, (sample.cls,), {})
    stock, sub = _count(sample.cls, sample), _count(sub_cls, sample)
    assert len(stock.records) == len(sub.records) and stock.free_ops == sub.free_ops
    for a, b in zip(stock.records, sub.records):
        # everything but the display of the class: cost, shapes, category, formula call, notes
        assert _display_free(a) == _display_free(b)
        assert (a.cost.params, a.cost.madds, a.cost.flops, a.cost.mem_access) == \
            (b.cost.params, b.cost.madds, b.cost.flops, b.cost.mem_access)
        assert a.category == b.category and a.kind == b.kind and a.output_shape == b.output_shape
        assert a.type == sample.cls.__name__ and b.type == sub_cls.__name__
        assert a.module_class is sample.cls and b.module_class is sub_cls
    assert (stock.params, stock.madds, stock.flops, stock.mem_access) == (sub.params, sub.madds, sub.flops,
                                                                          sub.mem_access)


def _overriding(cls: type) -> type:
    def forward(self, *args, **kwargs):
        return super(sub, self).forward(*args, **kwargs)

    sub = type("Own" + cls.__name__, (cls,), {"forward": forward})
    return sub


@pytest.mark.parametrize("base, sample", _ALL)
def test_subclass_with_its_own_forward_counts_the_same_totals(base: type, sample: Sample) -> None:
    sub_cls = _overriding(sample.cls)
    stock, own = _count(sample.cls, sample), _count(sub_cls, sample)
    # counted through the functional ops the stock forward calls, not the module handler
    assert all(r.module_class is None for r in own.records)
    assert (own.params, own.madds, own.flops) == (stock.params, stock.madds, stock.flops)
    # the only extra work the functional path sees is the stock forward creating zero initial states
    # (torch.zeros in nn.RNNBase / nn.RNNCellBase): writes, no multiply-adds; the module formula already
    # reads those states, so everything else moves the same memory
    fills = [r for r in own.records if r.kind == "fill"]
    assert all(r.cost.madds == 0 and r.cost.flops == 0 for r in fills)
    assert own.mem_access - sum(r.cost.mem_access for r in fills) == stock.mem_access


#: Methods torch's own forward calls on ``self`` that are not helpers: the input checks torch's concrete
#: subclasses of an abstract registered base override themselves (nn.BatchNorm2d._check_input_dim,
#: nn.InstanceNorm2d._get_no_batch_dim), which the handlers call (or read) on the module in turn.
_CHECKS_THE_HANDLER_CALLS = {"_check_input_dim", "_get_no_batch_dim"}


def _self_calls(cls: type) -> set[str]:
    """The methods ``cls.forward``'s source calls on ``self`` (``self._conv_forward(...)``)."""
    return set(re.findall(r"self\.(\w+)\(", inspect.getsource(cls.forward)))


@pytest.mark.parametrize("cls", list(MODULE_HANDLERS), ids=lambda c: c.__qualname__)
def test_every_method_the_stock_forward_delegates_to_is_a_registered_helper(cls: type) -> None:
    # read off torch's source: nn.Conv2d.forward is `return self._conv_forward(input, self.weight, self.bias)`,
    # nn.ConvTranspose2d's calls self._output_padding, nn.LSTM's self._update_flat_weights ...; a method
    # torch adds to a forward later, and the registration misses, fails here
    assert _self_calls(cls) - _CHECKS_THE_HANDLER_CALLS == set(MODULE_HANDLERS[cls].helpers)


_WITH_HELPERS = [pytest.param(base, s, helper, id=f"{s.id}.{helper}") for base, samples in SAMPLES.items()
                 for s in samples[:1] for helper in MODULE_HANDLERS[base].helpers]


def _overriding_helper(cls: type, helper: str) -> type:
    def delegate(self, *args, **kwargs):
        return getattr(super(sub, self), helper)(*args, **kwargs)

    sub = type(f"Own{helper}{cls.__name__}", (cls,), {helper: delegate})
    return sub


@pytest.mark.parametrize("base, sample, helper", _WITH_HELPERS)
def test_subclass_overriding_a_helper_counts_through_its_functional_ops(base: type, sample: Sample,
                                                                        helper: str) -> None:
    # the override only delegates, so the functional ops give the stock totals (as for an own forward)
    sub_cls = _overriding_helper(sample.cls, helper)
    assert handler_for_module(sub_cls(*sample.args, **sample.kwargs)) is None
    stock, own = _count(sample.cls, sample), _count(sub_cls, sample)
    assert all(r.module_class is None for r in own.records)
    assert (own.params, own.madds, own.flops) == (stock.params, stock.madds, stock.flops)


class DoubleConv(nn.Conv2d):
    """A conv whose ``_conv_forward`` (not ``forward``) convolves twice and adds the results."""

    def _conv_forward(self, x, w, b):
        y = F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)
        return y + F.conv2d(x, w, b, self.stride, self.padding, self.dilation, self.groups)


def test_conv_with_its_own_conv_forward_counts_what_it_computes() -> None:
    # Conv2d(3, 8, 3) on 8x8 -> 6x6: one conv is 8*6*6 * 3*3*3 = 7,776 madds; twice 15,552, as torch's
    # FlopCounterMode (31,104 flops / 2) counts it; plus the add of two 1x8x6x6 outputs: 288 flops
    model = nn.Sequential(DoubleConv(3, 8, 3))
    stats = archstat.count(model, (1, 3, 8, 8))
    with FlopCounterMode(display=False) as torch_counter:
        model(torch.rand(1, 3, 8, 8))
    assert stats.madds == 2 * 7_776 == torch_counter.get_total_flops() // 2
    assert [r.kind for r in stats.records] == ["conv 3x3", "conv 3x3", "add"]
    assert stats.flops == 2 * 2 * 7_776 + 288
    assert stats.params == 8 * 3 * 9 + 8  # the weight and bias, once


def test_a_helper_set_on_the_instance_is_an_own_forward_too() -> None:
    conv = nn.Conv2d(3, 8, 3)
    assert handler_for_module(conv) is MODULE_HANDLERS[nn.Conv2d]
    conv._conv_forward = types.MethodType(DoubleConv._conv_forward, conv)  # type: ignore[method-assign]
    assert handler_for_module(conv) is None
