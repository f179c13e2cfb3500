"""Input shapes torch could not make a tensor of are refused where they are given, in one line.

The bound is checked against torch itself: each shape archstat accepts at the edge is one torch
makes (float64, the widest dtype an input is made in), each it refuses is one torch refuses."""

from __future__ import annotations

import pytest
import torch

import archstat
from archstat.counting.inputs import MAX_TENSOR_BYTES, inputs_from_shapes
from archstat.errors import ArchstatError


def test_the_bound_is_the_largest_int64() -> None:
    assert MAX_TENSOR_BYTES == torch.iinfo(torch.int64).max


def test_the_largest_shape_accepted_is_one_torch_makes_in_float64() -> None:
    # 2**60 - 1 elements of 8 bytes: 2**63 - 8 bytes, the most that fits in 2**63 - 1
    shape = (2 ** 60 - 1,)
    inputs_from_shapes(shape)
    assert torch.empty(shape, dtype=torch.float64, device="meta").numel() == 2 ** 60 - 1


@pytest.mark.parametrize("shape", [
    (2 ** 60,),                       # one element more: 2**63 bytes in float64, which torch refuses
    (1, 3, 4000000000, 4000000000),   # 4.8e19 elements: overflows even in float32
    (2 ** 40, 2 ** 40, 0),            # empty, yet torch's running product of the sizes overflows
])
def test_a_shape_torch_refuses_is_refused_first(shape: tuple[int, ...]) -> None:
    with pytest.raises(RuntimeError, match="overflow"):  # torch's own refusal, the independent reference
        torch.empty(shape, dtype=torch.float64, device="meta")
    with pytest.raises(ArchstatError, match=r"is too large: .* exceed torch's limit of 2\*\*63 - 1 bytes") as info:
        inputs_from_shapes(shape)
    assert "\n" not in str(info.value)


def test_a_dimension_beyond_int64_is_an_archstat_error_not_a_type_error() -> None:
    # torch cannot even unpack it ("Overflow when unpacking long long"): a TypeError without the check
    with pytest.raises(TypeError):
        torch.empty((2 ** 63, 1), device="meta")
    with pytest.raises(ArchstatError, match="too large"):
        inputs_from_shapes((2 ** 63, 1))


@pytest.mark.parametrize("shape", [(10 ** 23, 3, 227, 227), (1, 3, 4000000000, 4000000000)])
def test_count_refuses_an_oversized_shape_in_one_line(shape: tuple[int, ...]) -> None:
    # through the Python API these were a TypeError (batch) and a RuntimeError (storage size) from torch
    with pytest.raises(ArchstatError, match="too large"):
        archstat.count("squeezenet1_0", shape)


def test_every_input_of_a_tree_is_checked() -> None:
    # the oversized shape is nested in a list in a dict, and is the one the message names (2**62 written out)
    with pytest.raises(ArchstatError, match=r"^input shape \(1, 4611686018427387904\) is too large"):
        inputs_from_shapes({"x": (1, 3, 8, 8), "y": [(1, 3, 8, 8), (1, 2 ** 62)]})
