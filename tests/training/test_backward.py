"""Backward multiply-adds and the optimizer step, against hand derivations and torch's own
FlopCounterMode on real forward + backward passes."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import archstat
from archstat.errors import ArchstatError
from archstat.formulas.training import Needs, backward


def train_count(model, shape, **kwargs) -> archstat.ModelStats:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return archstat.count(model, shape, mode="train", **kwargs)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def test_first_layer_needs_no_input_gradient() -> None:
    # forward: 3*8*16 = 384 + 3*16*4 = 192 multiply-adds. backward: the first linear's input (the data) needs
    # no gradient, so only its weight gradient (384); the second both (2 * 192) -> 768
    stats = train_count(mlp(), (3, 8))
    assert stats.madds == 576 and stats.backward_madds == 384 + 2 * 192
    assert [r.backward_madds for r in stats.records] == [384, 0, 384]


def test_frozen_parameters_get_no_gradient() -> None:
    # first linear frozen: neither it nor the ReLU after it needs a backward (nothing upstream needs a
    # gradient); the second linear needs its weight gradient only: 3*16*4 = 192
    model = mlp()
    model[0].requires_grad_(False)
    stats = train_count(model, (3, 8))
    assert stats.backward_madds == 192 and [r.backward is None for r in stats.records] == [True, True, False]
    # gradients only for the second linear: (16*4 + 4) * 4 bytes
    assert stats.memory.grads_bytes == 68 * 4


def test_conv_backward_formula() -> None:
    # conv 3->8 3x3 on 2x3x8x8: forward 2*8*6*6 * 27 = 15,552; a first layer: weight gradient only; a hidden
    # layer: input and weight gradients, 2 * 15,552; the bias gradient sums 2*8*6*6 = 576 output elements
    args = ((2, 3, 8, 8), 8, 3)
    first = backward("conv", args, {}, Needs((False, True, True)))
    hidden = backward("conv", args, {}, Needs((True, True, True)))
    assert (first.input_madds, first.weight_madds) == (0, 15_552)
    assert (hidden.madds, hidden.flops) == (31_104, 2 * 31_104 + 576)


def test_attention_backward_is_twice_its_forward() -> None:
    # sdpa q, k, v (2, 4, 16, 8): forward 2*4*16*16*(8+8) = 32,768; backward 2x
    op = backward("sdpa", ((2, 4, 16, 8),) * 3, {}, Needs((True, True, True)))
    assert op.madds == 65_536


def test_optimizer_step_flops() -> None:
    # mlp: 8*16 + 16 + 16*4 + 4 = 212 trainable parameters; SGD with momentum 4 flops each, Adam 13
    assert train_count(mlp(), (3, 8)).step_flops == 4 * 212
    assert train_count(mlp(), (3, 8), optimizer="adam").step_flops == 13 * 212
    assert train_count(mlp(), (3, 8), optimizer="adam").memory.state_bytes == 2 * 212 * 4


def flop_counter_madds(model: nn.Module, shape: tuple[int, ...]) -> float:
    """FlopCounterMode's FLOPs / 2 of a real CPU forward + backward (math attention: FlopCounterMode
    counts the CPU flash kernel as 0)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    model.train()
    with sdpa_kernel(SDPBackend.MATH), counter:
        out = model(torch.rand(shape))
        out.float().mean().backward()
    return counter.get_total_flops() / 2


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "vit_b_16"])
def test_forward_plus_backward_equals_flop_counter_mode(name: str) -> None:
    torch.manual_seed(0)
    model = archstat.create_model(name)
    shape = (1, 3, 224, 224)
    reference = flop_counter_madds(model, shape)
    stats = train_count(model, shape, convention="torch")
    # FlopCounterMode's FLOPs of a real forward + backward, halved, is an integer count of the same ops:
    # the torch convention reproduces it exactly (benchmarks/results/training_agreement.csv: 0.000% on 80 models)
    assert stats.madds + stats.backward_madds == reference


def test_flop_counter_mode_counts_grouped_weight_gradients_groups_times() -> None:
    # depthwise conv 16 channels 3x3 on 2x16x10x10, after a conv so its input needs a gradient:
    # forward 2*16*8*8 * 9 = 18,432; archstat's backward: 2 * 18,432. FlopCounterMode counts the weight
    # gradient as if the conv were dense (x16): 18,432 + 16 * 18,432 (pytorch#183405)
    model = nn.Sequential(nn.Conv2d(3, 16, 1, bias=False), nn.Conv2d(16, 16, 3, groups=16, bias=False))
    shape = (2, 3, 10, 10)
    depthwise_forward = 18_432
    own = train_count(model, shape)
    torch_like = train_count(model, shape, convention="torch")
    assert own.records[1].backward_madds == 2 * depthwise_forward
    assert torch_like.records[1].backward_madds == depthwise_forward + 16 * depthwise_forward
    assert torch_like.madds + torch_like.backward_madds == flop_counter_madds(model, shape)


@pytest.mark.parametrize("kwargs,message", [
    ({"optimizer": "lion"}, "unknown optimizer 'lion'"),
    ({"convention": "fvcore"}, "counts inference only"),
    ({"dtype": torch.int8}, "floating-point torch dtype"),
])
def test_bad_training_options_are_one_line_errors(kwargs, message) -> None:
    with pytest.raises(ArchstatError, match=message):
        archstat.count(mlp(), (3, 8), mode="train", **kwargs)


def test_training_a_frozen_model_is_refused() -> None:
    with pytest.raises(ArchstatError, match="require grad"):
        archstat.count(mlp().requires_grad_(False), (3, 8), mode="train")
