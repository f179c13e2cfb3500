"""Roofline estimates per op and per model, against hand arithmetic."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import archstat
from archstat.errors import ArchstatError
from archstat.latency.peaks import Peaks
from archstat.latency.roofline import arithmetic_intensity, model_estimate, op_estimates, roofline_seconds


def test_roofline_seconds_is_the_max_of_the_two_times() -> None:
    assert roofline_seconds(2e9, 1e9, 1e9, 1e9) == 2.0   # compute-bound: 2 s of compute, 1 s of memory
    assert roofline_seconds(1e9, 4e9, 1e9, 1e9) == 4.0   # memory-bound
    assert arithmetic_intensity(10, 4) == 2.5 and math.isinf(arithmetic_intensity(1, 0))
    assert arithmetic_intensity(0, 0) == 0.0


def test_peaks() -> None:
    p = Peaks.given(100, 10)
    assert (p.flops_per_s, p.bytes_per_s, p.ridge) == (100e9, 10e9, 10.0) and "given" in p.source
    with pytest.raises(ArchstatError, match="positive"):
        Peaks(0.0, 1.0, "x")


def test_op_and_model_estimates_by_hand() -> None:
    # conv 3->8 3x3 on 1x3x8x8: 288 outputs x 27 = 7,776 madds -> 15,552 flops; 696 elements = 2,784 bytes.
    # relu on 288: 288 flops, 576 elements = 2,304 bytes. At 1 GFLOP/s and 1 GB/s:
    # conv max(15.552 us, 2.784 us) = 15.552 us (compute); relu max(0.288, 2.304) = 2.304 us (memory).
    stats = archstat.count(nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU()), (1, 3, 8, 8))
    peaks = Peaks.given(1, 1)
    conv, relu = op_estimates(stats, peaks)
    assert (conv.flops, conv.bytes, conv.bound) == (15_552, 2_784, "compute")
    assert conv.seconds == pytest.approx(15.552e-6) and relu.seconds == pytest.approx(2.304e-6)
    assert relu.bound == "memory" and relu.intensity == pytest.approx(288 / 2304)
    total = model_estimate(stats, peaks)
    assert total.seconds == pytest.approx(17.856e-6) and total.memory_bound_share == pytest.approx(2.304 / 17.856)
    # fused: the ReLU moves nothing, so it costs its 0.288 us of compute only
    assert model_estimate(stats, peaks, "fused").seconds == pytest.approx(15.84e-6)


def test_bytes_follow_the_dtype() -> None:
    stats = archstat.count(nn.Conv2d(3, 8, 3, bias=False), (1, 3, 8, 8), dtype=torch.bfloat16)
    [op] = op_estimates(stats, Peaks.given(1, 1))
    assert op.bytes == 696 * 2
