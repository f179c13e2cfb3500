"""The grammar of sizes and batches every command and the sweep share (archstat.grammar)."""

from __future__ import annotations

import pytest

from archstat.api import resolve_inputs
from archstat.errors import ArchstatError
from archstat.grammar import parse_batches, parse_input_size, parse_sizes, sample_size, size_text, square_side


@pytest.mark.parametrize("text, wanted", [
    ("224,320", ["224", "320"]),
    ("224x224", ["224"]),                      # a square is spelled by its side: one cell key for both spellings
    ("480x640, 224", ["480x640", "224"]),      # in the order given, spaces ignored
    ("3x224x224", ["3x224x224"]),              # channels given: kept as typed
    ("default", [None]), ("DEFAULT", [None]), (None, [None]),
    ("224,default,224x224", ["224", None]),    # each once
])
def test_sizes(text: str | None, wanted: list) -> None:
    assert parse_sizes(text) == wanted


@pytest.mark.parametrize("text, published, wanted", [
    ("320", (3, 16, 112, 112), (3, 16, 320, 320)),  # a video model keeps its channels and 16 frames
    ("480x640", (3, 224, 224), (3, 480, 640)),       # height then width
    ("64", (1, 28, 28), (1, 64, 64)),                # a one-channel model keeps its one channel
    ("1x28x28", (3, 224, 224), (1, 28, 28)),         # a size with channels replaces the sample
    ("3x8x64x64", (3, 16, 112, 112), (3, 8, 64, 64)),
])
def test_a_side_sets_height_and_width_only(text: str, published: tuple, wanted: tuple) -> None:
    assert sample_size(text, published) == wanted


def test_a_size_on_its_own_assumes_three_channels() -> None:
    assert parse_input_size("224") == (1, 3, 224, 224)
    assert parse_input_size("224x160", batch=2) == (2, 3, 224, 160)
    assert parse_input_size("1x16x32x32") == (1, 1, 16, 32, 32)


def test_a_models_input_at_a_side() -> None:
    # torchvision's video models take 3x16x112x112 clips (their weights' transforms: crop 112, 16 frames);
    # --input-size 224 used to give 1x3x224x224, which their Conv3d stem refuses
    assert resolve_inputs("r3d_18", "224", 2) == (2, 3, 16, 224, 224)
    assert resolve_inputs("resnet18", "160x224", 1) == (1, 3, 160, 224)
    assert resolve_inputs("raft_small", "128", 1) == ((1, 3, 128, 128), (1, 3, 128, 128))  # both frames


@pytest.mark.parametrize("text, side", [("224", 224), ("224x224", 224), ("224x160", None), ("3x224x224", 224),
                                        ("3x16x112x112", 112), ("3x224x160", None)])
def test_square_side(text: str, side: int | None) -> None:
    assert square_side(text) == side


def test_size_text_is_canonical() -> None:
    assert [size_text(t) for t in ("96", "96x96", "96x128", "1x96x96")] == ["96", "96", "96x128", "1x96x96"]


@pytest.mark.parametrize("text, wanted", [(None, [1]), ("1,8,32", [1, 8, 32]), ("4,4", [4]), (2, [2])])
def test_batches(text, wanted: list[int]) -> None:
    assert parse_batches(text) == wanted


@pytest.mark.parametrize("bad", [
    lambda: parse_sizes("big"), lambda: parse_sizes("224x"), lambda: parse_sizes(","), lambda: parse_sizes(""),
    lambda: parse_sizes("0"), lambda: parse_sizes("224x-1"), lambda: parse_sizes("1x2x3x4x5"),
    lambda: parse_batches("0"), lambda: parse_batches("1,x"), lambda: parse_batches(""),
    lambda: parse_input_size("3xx224"),
    # an empty item is refused, not skipped (a stray comma is a typo, not a request)
    lambda: parse_sizes("224,,320"), lambda: parse_sizes("224,"), lambda: parse_batches("1,,2"),
    # ASCII digits only: int() would read 2_24 as 224, +3 as 3 and other scripts' digits
    lambda: parse_sizes("2_24"), lambda: parse_sizes("+3"), lambda: parse_batches("\uff11"),
    lambda: parse_batches("99999999999999999999"),  # beyond int64 (SQLite, torch)
])
def test_bad_text_is_refused_in_one_line(bad) -> None:
    with pytest.raises(ArchstatError) as info:
        bad()
    assert "\n" not in str(info.value)
