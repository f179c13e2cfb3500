"""Saved activations against what autograd really saves, and the memory model's liveness and
training-step simulation against derivations by hand."""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch
from torch import nn

import archstat
from archstat.training.measure import _saved_in_forward


def count(model, shape, **kwargs) -> archstat.ModelStats:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return archstat.count(model, shape, **kwargs)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def test_saved_activations_by_hand() -> None:
    # batch 3: the first linear saves its input x (3*8 floats = 96 B; the weight is a parameter, not counted),
    # the ReLU its output (3*16 = 192 B), which the second linear saves again (counted once)
    stats = count(mlp(), (3, 8), mode="train")
    assert stats.saved_bytes == 96 + 192
    assert list(stats.layers["saved_bytes"]) == [96, 192, 0]


def test_inference_peak_by_hand() -> None:
    # params: (8*16 + 16 + 16*4 + 4) * 4 B = 848. The caller holds x (96 B). Linear 1 writes 192 B; the ReLU reads
    # it and writes another 192 B: x + both = 480 B alive at once, the peak; then linear 1's output is freed.
    stats = count(mlp(), (3, 8))
    assert stats.memory.params_bytes == 848 and stats.peak_infer_bytes == 848 + 480


def test_training_peak_by_hand() -> None:
    # SGD without momentum (no state). Forward: as inference (x and the ReLU output are saved, linear 1's output
    # is not): 848 + 480. Backward, reverse order: alive are the saved x, ReLU output (96 + 192), the model
    # output (48) and its gradient (48): 384. Linear 2 adds its input's gradient (192) and its weight and bias
    # gradients (64*4 + 4*4 = 272): 848, frees the output's gradient (800). The ReLU adds its input's gradient
    # (192): 992, frees its output's (800) and releases the saved ReLU output (608). Linear 1 adds its
    # parameter gradients (128*4 + 16*4 = 576): 1,184, the backward peak; + 848 of parameters = 2,032.
    stats = count(mlp(), (3, 8), mode="train", optimizer="sgd")
    memory = stats.memory
    assert memory.forward_peak_bytes == 848 + 480
    assert memory.backward_peak_bytes == 848 + 1_184
    assert memory.peak_train_bytes == 2_032 and memory.peak_phase == "backward"
    # the step: parameters + gradients (848 + 848)
    assert memory.step_peak_bytes == 1_696


def hooks_by_module(model: nn.Module, shape: tuple[int, ...]) -> tuple[Counter, int]:
    """What autograd saves on a real CPU forward in training mode, by innermost module."""
    model.train()
    return _saved_in_forward(model, (torch.rand(shape),), {})


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "vgg11", "vit_b_16", "swin_t", "maxvit_t"])
def test_saved_bytes_equal_what_autograd_saves_layer_by_layer(name: str) -> None:
    # resnet18: in-place ReLUs share storages; mobilenet_v2: in-place ReLU6 saves a copy; vgg11: dropout masks and
    # a non-global adaptive pool; vit_b_16: attention inside nn.MultiheadAttention; swin_t / maxvit_t: matmul and
    # einsum on strided views (saved as contiguous copies)
    torch.manual_seed(0)
    model = archstat.create_model(name)
    shape = (1, 3, 224, 224)
    measured_by_module, measured = hooks_by_module(model, shape)
    stats = count(model, shape, mode="train")
    estimated_by_module = Counter()
    for record, saved in zip(stats.records, stats.memory.saved_per_record):
        estimated_by_module[record.module] += saved
    assert stats.saved_bytes == measured
    assert +estimated_by_module == +measured_by_module


@pytest.mark.parametrize("name", sorted(__import__("archstat.formulas.training", fromlist=["OPTIMIZERS"]).OPTIMIZERS))
def test_every_counted_optimizer_can_be_measured(name: str) -> None:
    from archstat.training.measure import make_optimizer

    opt = make_optimizer(name, [nn.Parameter(torch.ones(3))])
    assert isinstance(opt, torch.optim.Optimizer)


def test_measuring_a_step_leaves_the_callers_random_state_and_environment() -> None:
    import os

    from archstat.training.measure import measure_step

    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Linear(8, 2))  # dropout draws numbers
    torch.manual_seed(123)
    state, env = torch.get_rng_state(), dict(os.environ)
    measure_step(model, (4, 8))
    assert torch.equal(torch.get_rng_state(), state) and dict(os.environ) == env


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()),      # the dtype probe's conv drew its weights here
    lambda: nn.Sequential(nn.LazyConv2d(4, 3), nn.Flatten()),     # and the lazy conv its weights in the warm-up
    lambda: "lenet5",                                             # and a name its random weights
], ids=["module", "lazy module", "name"])
def test_measuring_a_forward_pass_leaves_the_callers_random_state(make) -> None:
    from archstat.training.measure import measure_forward

    model = make()  # built before the state is taken: its own draws are the caller's
    torch.manual_seed(123)
    state = torch.get_rng_state()
    measured = measure_forward(model, None if isinstance(model, str) else (1, 3, 8, 8))  # a name: its own size
    assert torch.equal(torch.get_rng_state(), state) and measured.peak_bytes > 0


def test_a_lazy_model_is_measured_with_its_parameters() -> None:
    from archstat.training.measure import measure_forward, measure_step

    lazy = nn.Sequential(nn.LazyConv2d(4, 3), nn.Flatten())
    forward = measure_forward(lazy, (1, 3, 8, 8))
    step = measure_step(lazy, (1, 3, 8, 8), optimizer="sgd")
    # the conv's 4*3*3*3 weights and 4 biases, float32: there before the measured pass, as for a built conv
    assert forward.params_bytes == step.params_bytes == (4 * 3 * 3 * 3 + 4) * 4
    assert lazy[0].has_uninitialized_params()  # the caller's copy is still lazy


def test_the_dtype_probe_leaves_the_callers_random_state() -> None:
    from archstat.training.measure import check_dtype

    torch.manual_seed(123)
    state = torch.get_rng_state()
    check_dtype("cpu", torch.float32)  # builds an nn.Conv2d, whose init draws random weights
    assert torch.equal(torch.get_rng_state(), state)
