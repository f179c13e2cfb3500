"""SqueezeNet against Table 1 (per-layer parameters before pruning) and the Sec. 6 bypass variants."""

from __future__ import annotations

from functools import lru_cache

import pytest

import archstat
from archstat.counting.stats import ModelStats
from archstat.published import published

#: Table 1 row -> module of torchvision's squeezenet1_0 (features.N / classifier.1)
TABLE1_LAYERS = {"conv1": "features.0", "fire2": "features.3", "fire3": "features.4", "fire4": "features.5",
                 "fire5": "features.7", "fire6": "features.8", "fire7": "features.9", "fire8": "features.10",
                 "fire9": "features.12", "conv10": "classifier.1"}
#: (input channels, output channels, map size) of the four complex-bypass 1x1 convs (Fig. 2, right):
#: around fire2 and fire4 at 55x55, fire6 and fire8 at 27x27 (227 input)
COMPLEX_BYPASSES = ((96, 128, 55), (128, 256, 55), (256, 384, 27), (384, 512, 27))


@lru_cache(maxsize=None)
def counted(name: str) -> ModelStats:
    return archstat.count(name)


@pytest.mark.parametrize("layer", list(TABLE1_LAYERS))
def test_table1_parameters_before_pruning(layer: str) -> None:
    layers = counted("squeezenet1_0").layers
    prefix = TABLE1_LAYERS[layer]
    rows = layers[(layers.module == prefix) | layers.module.str.startswith(prefix + ".")]
    printed = published(model="SqueezeNet (v1.0)", variant=layer, metric="# parameters before pruning").number()
    assert int(rows.params.sum()) == printed


def test_table1_sizes_need_a_227_input() -> None:
    """Table 1 prints conv1's output as 111x111x96 (7x7/2, no padding): (227 - 7) / 2 + 1 = 111."""
    layers = counted("squeezenet1_0").layers
    assert layers.loc[layers.name == "features.0", "output_shape"].item() == (1, 96, 111, 111)
    assert archstat.count("squeezenet1_0", (1, 3, 224, 224)).layers.loc[
        lambda df: df.name == "features.0", "output_shape"].item() == (1, 96, 109, 109)


def test_simple_bypass_adds_additions_only() -> None:
    """Identity shortcuts around fire3, 5, 7, 9: same parameters and multiply-adds, four element-wise
    additions more (128x55x55, 256x27x27, 384x27x27, 512x13x13 elements)."""
    plain, bypass = counted("squeezenet1_0"), counted("squeezenet1_0_simple_bypass")
    assert (bypass.params, bypass.madds) == (plain.params, plain.madds)
    added = 128 * 55 * 55 + 256 * 27 * 27 + 384 * 27 * 27 + 512 * 13 * 13
    adds = bypass.layers[bypass.layers.type == "add"]
    assert len(adds) == 4 and int(adds.flops.sum()) == added


def test_complex_bypass_adds_four_1x1_convs() -> None:
    """Complex bypass = simple bypass + 1x1 convs (with bias) around fire2, 4, 6, 8:
    params sum(cin*cout + cout) = 341,248; multiply-adds sum(h*w*cin*cout) = 351,285,248."""
    plain, complex_ = counted("squeezenet1_0"), counted("squeezenet1_0_complex_bypass")
    assert complex_.params - plain.params == sum(cin * cout + cout for cin, cout, _ in COMPLEX_BYPASSES) == 341_248
    assert complex_.madds - plain.madds == sum(h * h * cin * cout for cin, cout, h in COMPLEX_BYPASSES)


def test_bad_bypass_is_rejected() -> None:
    from archstat.zoo.squeezenet import SqueezeNet

    with pytest.raises(ValueError, match="bypass"):
        SqueezeNet(bypass="dense")  # type: ignore[arg-type]
