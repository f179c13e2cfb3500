"""Timing: sound procedure, recorded environment, the user's model left alone, clear errors.

No assertion here is about how fast anything ran."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archstat.errors import ArchstatError
from archstat.latency import calibrate, measure, measure_interleaved, prepare
from archstat.latency.machine import ENVIRONMENT_COLUMNS, DeviceUnavailableError, check_device, environment
from archstat.latency.timing import TIMING_COLUMNS, MeasureError, parse_dtype


def test_measure_a_module() -> None:
    t = measure(nn.Conv2d(3, 4, 3), (2, 3, 16, 16), warmup=1, repeats=3)
    assert len(t.times_ms) == 3 and t.spread.n == 3 and t.warmup == 1 and t.input_shape == (2, 3, 16, 16)
    row = t.row()
    assert tuple(row)[:len(TIMING_COLUMNS)] == TIMING_COLUMNS
    assert tuple(row)[len(TIMING_COLUMNS):] == ENVIRONMENT_COLUMNS
    assert (row["model"], row["input"], row["batch"], row["device"], row["dtype"]) == \
        ("Conv2d", "3x16x16", 2, "cpu", "float32")
    assert row["median_ms"] == round(t.spread.median, 4)


def test_measure_a_name_with_real_weights() -> None:
    runner = prepare("resnet18", (1, 3, 32, 32))
    assert not any(p.is_meta for p in runner.model.parameters()) and not runner.model.training
    t = measure("resnet18", (1, 3, 32, 32), warmup=0, repeats=1)
    assert t.model == "resnet18" and len(t.times_ms) == 1


def test_the_callers_model_is_left_as_it_was() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    weight = model[0].weight
    measure(model, (1, 3, 8, 8), dtype="bfloat16", channels_last=True, warmup=0, repeats=1)
    assert model.training and model[0].weight is weight and weight.dtype == torch.float32
    assert weight.is_contiguous() and model[1].num_batches_tracked.item() == 0


def test_threads_are_set_and_restored() -> None:
    before = torch.get_num_threads()
    t = measure(nn.Conv2d(3, 4, 3), (1, 3, 8, 8), threads=1, warmup=0, repeats=1)
    assert t.threads == 1 and t.environment["threads"] == 1 and torch.get_num_threads() == before
    with pytest.raises(ArchstatError, match="at least 1"):
        measure(nn.Conv2d(3, 4, 3), (1, 3, 8, 8), threads=0)


def test_interleaved_rows_get_the_same_number_of_runs() -> None:
    runners = [prepare(nn.Conv2d(3, 4, 1), (1, 3, 8, 8), label="a"), prepare(nn.Conv2d(3, 8, 1), (1, 3, 8, 8))]
    a, b = measure_interleaved(runners, warmup=1, repeats=4)
    assert (a.model, b.model, len(a.times_ms), len(b.times_ms)) == ("a", "Conv2d", 4, 4)


def test_meta_models_cannot_be_timed() -> None:
    with pytest.raises(MeasureError, match="meta tensors"):
        measure(nn.Conv2d(3, 4, 3, device="meta"), (1, 3, 8, 8))


def test_a_failing_forward_is_one_line() -> None:
    with pytest.raises(MeasureError) as info:
        measure(nn.Conv2d(3, 4, 3), (1, 5, 8, 8), warmup=1, repeats=1)
    message = str(info.value)
    assert message.startswith("Conv2d on input 1x5x8x8: forward failed: RuntimeError") and "\n" not in message


def test_dtype_and_device_names() -> None:
    assert parse_dtype("bf16") is torch.bfloat16 and parse_dtype(torch.float16) is torch.float16
    with pytest.raises(ArchstatError, match="unknown dtype 'int3'"):
        parse_dtype("int3")
    with pytest.raises(ArchstatError, match="'cpu' or 'cuda"):
        check_device("tpu")


def test_cuda_unavailable_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a machine without a GPU, also on one with
    with pytest.raises(DeviceUnavailableError, match=r"^--device cuda: CUDA is not available here") as info:
        measure(nn.Conv2d(3, 4, 3), (1, 3, 8, 8), device="cuda")
    assert "\n" not in str(info.value)


def test_environment_records_machine_and_versions() -> None:
    import torchvision

    env = environment("cpu", 3)
    assert tuple(env) == ENVIRONMENT_COLUMNS
    assert env["threads"] == 3 and env["torch"] == torch.__version__ and env["torchvision"] == torchvision.__version__
    assert env["cpu"] and env["device_name"] == env["cpu"] and env["logical_cores"] >= env["usable_cores"] >= 1


def test_calibration_reports_positive_peaks_and_how() -> None:
    peaks = calibrate(matmul_size=64, copy_mib=1, repeats=2)
    assert peaks.flops_per_s > 0 and peaks.bytes_per_s > 0
    assert "64x64 matmul" in peaks.source and "1 MiB copy" in peaks.source and "float32" in peaks.source


def test_contention_is_noted_from_the_recorded_load() -> None:
    from archstat.latency.machine import contention_note

    quiet = {"device_name": "x", "cpu": "x", "usable_cores": 2, "load_avg_1m": 2.4, "other_busy": 0}
    assert contention_note(quiet) is None                                  # our own 2 threads: expected
    assert "1 other process(es) running" in contention_note({**quiet, "other_busy": 1})
    assert "load 2.6 on 2 usable core(s)" in contention_note({**quiet, "load_avg_1m": 2.6})
    assert contention_note({**quiet, "other_busy": 3, "device_name": "H100"}) is None  # a GPU run
    assert contention_note({**quiet, "load_avg_1m": None, "other_busy": None}) is None  # nothing recorded


class _Noisy(nn.Module):
    """Draws random numbers in every forward pass, as a model sampling noise in eval mode may."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand_like(x)


@pytest.mark.parametrize("make,channels_last", [
    # a lazy module gets its weights on a first pass: it used to be the first warm-up run, unseeded
    (lambda: nn.Sequential(nn.LazyConv2d(4, 3)), False),
    # channels_last converted the copy before that pass and failed on the uninitialised weight
    (lambda: nn.Sequential(nn.LazyConv2d(4, 3)), True),
    (_Noisy, False),  # every warm-up and timed run draws
])
def test_timing_leaves_the_callers_random_state(make, channels_last: bool) -> None:
    model = make()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    t = measure(model, (2, 3, 8, 8), warmup=1, repeats=2, channels_last=channels_last)
    assert torch.equal(torch.get_rng_state(), state) and len(t.times_ms) == 2
    lazy = [m for m in model.modules() if isinstance(m, nn.LazyConv2d)]
    assert all(m.has_uninitialized_params() for m in lazy)  # the caller's lazy module is still lazy


def test_a_lazy_model_is_timed_with_seeded_channels_last_weights() -> None:
    runner = prepare(nn.Sequential(nn.LazyConv2d(4, 3)), (2, 3, 8, 8), channels_last=True)
    again = prepare(nn.Sequential(nn.LazyConv2d(4, 3)), (2, 3, 8, 8), channels_last=True)
    weight = runner.model[0].weight
    assert weight.shape == (4, 3, 3, 3) and weight.is_contiguous(memory_format=torch.channels_last)
    assert not weight.is_contiguous()  # really converted, not contiguous both ways (a 3x3 kernel is not)
    assert torch.equal(weight, again.model[0].weight)  # drawn from the seed, so two runs time the same numbers


def test_a_lazy_model_on_input_it_rejects_is_one_line() -> None:
    with pytest.raises(MeasureError, match=r"^Sequential on input 2x3x2x2: forward failed: RuntimeError"):
        prepare(nn.Sequential(nn.LazyConv2d(4, 3)), (2, 3, 2, 2))  # 2x2 is smaller than the 3x3 kernel


def test_an_oversized_shape_is_refused_before_the_model_is_built(monkeypatch) -> None:
    monkeypatch.setattr("archstat.models.create_model", lambda *a, **k: pytest.fail("the model was built"))
    with pytest.raises(ArchstatError, match="too large"):
        prepare("resnet18", (1, 3, 4000000000, 4000000000))


def test_calibration_leaves_the_callers_random_state() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    calibrate(matmul_size=16, copy_mib=1, repeats=1)  # its matrices are random: it used to draw them from here
    assert torch.equal(torch.get_rng_state(), state)
