"""Property tests: for random layers, what the counter records equals the formula evaluated
directly from the layer's hyper-parameters, whether the layer runs as a module (module
hook) or as a functional call (function interception)."""

from __future__ import annotations

import warnings

import pytest
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import archstat
from archstat.errors import FormulaMismatchWarning
from archstat.formulas import ShapeError, conv, conv_transpose, linear

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T_FN = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@st.composite
def layers(draw):
    nd = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2, 3, 4]))
    c_in, c_out = groups * draw(st.integers(1, 4)), groups * draw(st.integers(1, 4))
    ints = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(nd))  # noqa: E731
    kernel, stride, dilation, padding = ints(1, 4), ints(1, 3), ints(1, 2), ints(0, 2)
    size = ints(1, 12 if nd < 3 else 6)
    transposed = draw(st.booleans())
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    return dict(nd=nd, groups=groups, c_in=c_in, c_out=c_out, kernel=kernel, stride=stride, dilation=dilation,
                padding=padding, size=size, transposed=transposed, output_padding=output_padding,
                bias=draw(st.booleans()), batch=draw(st.integers(1, 3)))


def expected_cost(spec):
    shape = (spec["batch"], spec["c_in"], *spec["size"])
    if spec["transposed"]:
        return conv_transpose(shape, spec["c_out"], spec["kernel"], spec["stride"], spec["padding"],
                              spec["output_padding"], spec["groups"], spec["bias"], spec["dilation"])
    return conv(shape, spec["c_out"], spec["kernel"], spec["stride"], spec["padding"], spec["dilation"],
                spec["groups"], spec["bias"])


def build_module(spec) -> nn.Module:
    nd = spec["nd"]
    common = dict(stride=spec["stride"], padding=spec["padding"], dilation=spec["dilation"], groups=spec["groups"],
                  bias=spec["bias"], device="meta")
    if spec["transposed"]:
        return CONV_T[nd](spec["c_in"], spec["c_out"], spec["kernel"], output_padding=spec["output_padding"], **common)
    return CONV[nd](spec["c_in"], spec["c_out"], spec["kernel"], **common)


class Functional(nn.Module):
    """The same layer written with torch.nn.functional, so the function interception counts it."""

    def __init__(self, spec) -> None:
        super().__init__()
        self.spec = spec
        self.inner = build_module(spec)

    def forward(self, x):
        s, m = self.spec, self.inner
        if s["transposed"]:
            return CONV_T_FN[s["nd"]](x, m.weight, m.bias, s["stride"], s["padding"], s["output_padding"],
                                      s["groups"], s["dilation"])
        return CONV_FN[s["nd"]](x, m.weight, m.bias, s["stride"], s["padding"], s["dilation"], s["groups"])


@settings(max_examples=150, deadline=None)
@given(layers(), st.booleans())
def test_conv_layers_hook_count_equals_formula(spec, functional) -> None:
    try:
        expected = expected_cost(spec)
    except ShapeError:
        return  # an impossible geometry; the "input too small" tests cover the error path
    model = Functional(spec) if functional else build_module(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FormulaMismatchWarning)  # predicted output shape == torch's
        stats = archstat.count(model, (spec["batch"], spec["c_in"], *spec["size"]))
    assert len(stats.records) == 1, [r.name for r in stats.records]
    record = stats.records[0]
    assert record.cost == expected.cost
    assert record.output_shape == expected.output_shape
    assert stats.params == expected.cost.params  # the model's own parameters agree with the formula


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 16), st.integers(1, 16), st.integers(1, 9), st.integers(1, 9), st.booleans())
def test_mem_access_of_bias_free_pointwise_conv(c1: int, c2: int, h: int, w: int, functional: bool) -> None:
    # ShuffleNet V2, Sec. 2 (G1): MAC = hw(c1 + c2) + c1 c2 for a 1x1 conv without bias.
    spec = dict(nd=2, groups=1, c_in=c1, c_out=c2, kernel=(1, 1), stride=(1, 1), dilation=(1, 1), padding=(0, 0),
                size=(h, w), transposed=False, output_padding=(0, 0), bias=False, batch=1)
    model = Functional(spec) if functional else build_module(spec)
    stats = archstat.count(model, (1, c1, h, w))
    assert stats.mem_access == h * w * (c1 + c2) + c1 * c2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=0, max_size=3), st.integers(1, 20), st.integers(1, 20), st.booleans())
def test_linear_layers_hook_count_equals_formula(lead, n_in, n_out, bias) -> None:
    shape = (*lead, n_in) if lead else (n_in,)
    stats = archstat.count(nn.Linear(n_in, n_out, bias=bias, device="meta"), shape)
    assert stats.records[0].cost == linear(shape, n_in, n_out, bias).cost


def test_conv_transpose_output_size_argument_sets_output_padding() -> None:
    # ConvTranspose2d(4, 2, 3, stride=2, padding=1) on 5x5 gives 9x9 or, asked for 10x10,
    # output_padding 1. The scatter costs the same either way: 4*5*5 inputs x 2 x 9 taps = 1800.
    layer = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, bias=False, device="meta")

    class Sized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = layer

        def forward(self, x):
            return self.up(x, output_size=(10, 10))

    stats = archstat.count(Sized(), (1, 4, 5, 5))
    assert stats.records[0].output_shape == (1, 2, 10, 10)
    assert stats.madds == 1800


@pytest.mark.parametrize("unbatched", [(3, 8, 8)])
def test_unbatched_input_counts_like_a_batch_of_one(unbatched) -> None:
    layer = nn.Conv2d(3, 4, 3, device="meta")
    assert archstat.count(layer, unbatched).madds == archstat.count(layer, (1, *unbatched)).madds
