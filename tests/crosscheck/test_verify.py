"""``count(..., verify=True)``: every module layer recomputed from the module's own attributes agrees
with the hook-based count, and a handler that reads the wrong arguments is caught by name."""

from __future__ import annotations

from dataclasses import replace

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from torch import nn

import archstat
from archstat.counting import handlers
from archstat.counting.handlers import FormulaCall
from archstat.crosscheck.verify import LayerMismatchError
from archstat.errors import InputShapeError


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v3_small", "vit_b_16", "efficientnet_b0", "densenet121",
                                  "inception_v3", "swin_t", "regnet_y_400mf", "se_resnet50"])
def test_models_verify(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = archstat.count(name, verify=True)
    assert stats.notes[-1].startswith("verify: ") and " agree with the count" in stats.notes[-1]
    checked = int(stats.notes[-1].split()[1])
    assert checked >= sum(1 for r in stats.records if r.module and ":" not in r.name) // 2


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 4), groups=st.sampled_from([1, 2, 4]), k=st.integers(1, 4), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), size=st.integers(8, 16), transposed=st.booleans(), bias=st.booleans(),
       batch=st.integers(1, 2))
def test_random_convs_verify(c, groups, k, stride, dilation, size, transposed, bias, batch) -> None:
    cls = nn.ConvTranspose2d if transposed else nn.Conv2d
    model = nn.Sequential(cls(4 * c, 4 * groups, k, stride=stride, dilation=dilation, groups=groups, bias=bias),
                          nn.InstanceNorm2d(4 * groups, affine=bias), nn.GroupNorm(groups, 4 * groups),
                          nn.AvgPool2d(2, ceil_mode=True), nn.ReLU())
    try:  # torch's verdict: a conv output of one spatial element is refused by the instance norm
        model(torch.rand(batch, 4 * c, size, size))
    except ValueError as exc:
        assert "more than 1 spatial element" in str(exc)
        with pytest.raises(InputShapeError, match=r"layer '1' \(InstanceNorm2d\)"):
            archstat.count(model, (batch, 4 * c, size, size), verify=True)
        return
    stats = archstat.count(model, (batch, 4 * c, size, size), verify=True)
    assert "agree with the count" in stats.notes[-1]


def test_instance_norm_regression() -> None:
    """InstanceNorm2d(16, affine=True) holds gamma and beta, 2*16 = 32 params; on (2, 16, 8, 8) it
    normalises 2*16*64 = 2,048 elements. (The handler once added a batch dimension to batched input.)"""
    stats = archstat.count(nn.InstanceNorm2d(16, affine=True), (2, 16, 8, 8), verify=True)
    [row] = stats.records
    assert (row.cost.params, row.cost.flops, row.output_shape) == (32, 2_048, (2, 16, 8, 8))


def test_a_wrong_handler_is_caught_by_name(monkeypatch) -> None:
    original = handlers.MODULE_HANDLERS[nn.Conv2d]

    def forgets_dilation(m: nn.Conv2d, args: tuple, kwargs: dict, **options) -> FormulaCall:
        call = original(m, args, kwargs)
        return FormulaCall(call.formula, call.args, {**call.kwargs, "dilation": 1})

    monkeypatch.setitem(handlers.MODULE_HANDLERS, nn.Conv2d, replace(original, handler=forgets_dilation))
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, padding=2, dilation=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the counter also warns that torch's output shape differs
        with pytest.raises(LayerMismatchError, match=r"verify: layer '1' \(Conv2d"):
            archstat.count(model, (1, 3, 16, 16), verify=True)
        archstat.count(model, (1, 3, 16, 16))  # without verify the count goes through


@pytest.mark.parametrize("make", [lambda: nn.utils.weight_norm(nn.Conv2d(3, 8, 3)),
                                  lambda: nn.utils.parametrizations.weight_norm(nn.Conv2d(3, 8, 3))],
                         ids=["old-weight-norm", "parametrized-weight-norm"])
@pytest.mark.filterwarnings("ignore:.*weight_norm.* is deprecated:FutureWarning")
def test_a_weight_normalised_layer_verifies(make) -> None:
    # the layer holds g (8) and v (8*3*9 = 216) and the bias (8): 232 params, where the formula's weight is
    # 216 + 8 = 224; the weights are computed from g and v, so the rows and the module agree on 232 in all
    stats = archstat.count(nn.Sequential(make()), (1, 3, 8, 8), verify=True)
    assert stats.params == 232 and "1 layers recomputed" in stats.notes[-1]


def test_verify_never_runs_the_callers_parametrizations() -> None:
    import torch.nn.utils.parametrize as parametrize

    class Symmetric(nn.Module):
        def forward(self, x):
            return x + x.T

    model = nn.Sequential(nn.Linear(4, 4))
    parametrize.register_parametrization(model[0], "weight", Symmetric())
    calls: list[int] = []
    model[0].parametrizations.weight[0].register_forward_hook(lambda *args: calls.append(1))
    archstat.count(model, (1, 4), verify=True)
    assert calls == []  # verification reads the weight of its own copy
