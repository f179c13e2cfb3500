"""MobileNet v1 against the paper's width-multiplier (Table 6) and resolution-multiplier (Table 7)
tables, and against published.csv's derived arithmetic for every alpha x resolution."""

from __future__ import annotations

import pytest
import torch

import archstat
from archstat.published import published
from archstat.zoo.mobilenet import MOBILENET_V1_LAYERS, MOBILENET_V1_WIDTHS, MobileNetV1

WIDTHS = {1.0: "mobilenet_v1", 0.75: "mobilenet_v1_x0_75", 0.5: "mobilenet_v1_x0_5", 0.25: "mobilenet_v1_x0_25"}


def _label(alpha: float, resolution: int) -> str:
    return f"{alpha:.1f} MobileNet-{resolution}" if alpha == 1.0 else f"{alpha:g} MobileNet-{resolution}"


def test_names_cover_the_four_width_multipliers() -> None:
    assert {f"mobilenet_v1{s}" for s in MOBILENET_V1_WIDTHS} == set(WIDTHS.values())


@pytest.mark.parametrize("alpha", list(WIDTHS))
def test_table6_width_multiplier(alpha: float) -> None:
    """Table 6 at 224: Mult-Adds in whole millions and parameters in tenths of millions, as printed."""
    stats = archstat.count(WIDTHS[alpha])
    madds = published(model=_label(alpha, 224), metric="Mult-Adds", table="Table 6").number()
    params = published(model=_label(alpha, 224), metric="Parameters", table="Table 6").number()
    assert round(stats.madds / 1e6) * 1e6 == madds
    assert round(stats.params / 1e5) * 1e5 == params


@pytest.mark.parametrize("resolution", [224, 192, 160, 128])
def test_table7_resolution_multiplier(resolution: int) -> None:
    """Table 7, 1.0 MobileNet at 224/192/160/128 (the resolution is the input size): Mult-Adds scale with
    the square of the resolution, parameters do not change. At 160 the count is 290.68 M: Table 7 prints
    290 (truncated; TF-slim's README prints 291), recorded as a finding of mobilenet_v1."""
    stats = archstat.count("mobilenet_v1", (1, 3, resolution, resolution))
    label = _label(1.0, resolution)
    printed = published(model=label, metric="Mult-Adds", table="Table 7").number()
    to_millions = (lambda x: int(x / 1e6) * 1e6) if resolution == 160 else (lambda x: round(x / 1e6) * 1e6)
    assert to_millions(stats.madds) == printed
    assert round(stats.params / 1e5) * 1e5 == published(model=label, metric="Parameters", table="Table 7").number()


@pytest.mark.parametrize("alpha", list(WIDTHS))
@pytest.mark.parametrize("resolution", [224, 192, 160, 128])
def test_every_alpha_and_resolution_equals_the_derived_arithmetic(alpha: float, resolution: int) -> None:
    """published.csv's derived MACs (derive.py: conv + FC multiply-adds of Table 1, thinned by alpha)."""
    row = published(model=f"MobileNet v1 alpha={alpha}", metric="MACs", variant=f"res {resolution}", source="derived")
    assert archstat.count(WIDTHS[alpha], (1, 3, resolution, resolution)).madds == row.number()


@pytest.mark.parametrize("alpha", list(WIDTHS))
def test_params_without_batch_norm_equal_the_derived_arithmetic(alpha: float) -> None:
    """derive.py counts conv weights and the FC layer without BN; archstat adds BN's gamma/beta:
    two per BN channel, and every conv of MobileNet v1 is followed by BN (32 + 2 x 64 + ... channels)."""
    row = published(model=f"MobileNet v1 alpha={alpha}", metric="params", source="derived")
    model = MobileNetV1(alpha)
    channels = int(32 * alpha)
    bn_channels = channels
    for width, _ in MOBILENET_V1_LAYERS:
        bn_channels += channels + int(width * alpha)  # depthwise BN then pointwise BN
        channels = int(width * alpha)
    assert archstat.count(model).params == row.number() + 2 * bn_channels


def test_second_to_last_depthwise_layer_strides_one() -> None:
    """Table 1's erratum (D7): printed "Conv dw / s2" at 7x7x1024, but the average pool that follows is 7x7.
    With stride 1 the last feature map is 7x7 at 224; the printed stride would make it 4x4."""
    model = MobileNetV1()
    depthwise = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    assert depthwise[-1].stride == (1, 1) and depthwise[-2].stride == (2, 2)
    stats = archstat.count(model)
    assert stats.layers.loc[stats.layers.name == "avgpool", "input_shapes"].item() == ((1, 1024, 7, 7),)


def test_table3_single_layer() -> None:
    """Table 3: one 3x3 layer at 14x14x512 -> 512: a standard conv costs 462 M Mult-Adds and 2.36 M
    parameters; depthwise separable, 52.3 M and 0.27 M (weights only, no bias)."""
    standard = archstat.count(torch.nn.Conv2d(512, 512, 3, padding=1, bias=False), (1, 512, 14, 14))
    separable = archstat.count(torch.nn.Sequential(torch.nn.Conv2d(512, 512, 3, padding=1, groups=512, bias=False),
                                                   torch.nn.Conv2d(512, 512, 1, bias=False)), (1, 512, 14, 14))
    table3 = "single layer D_K=3, M=N=512, D_F=14"

    def printed(variant: str, metric: str) -> float:
        return published(model=table3, variant=variant, metric=metric, table="Table 3").number()

    assert round(standard.madds / 1e6) * 1e6 == printed("Convolution", "Mult-Adds")
    assert round(standard.params / 1e4) * 1e4 == printed("Convolution", "Parameters")
    assert round(separable.madds / 1e5) * 1e5 == printed("Depthwise Separable Conv", "Mult-Adds")
    assert round(separable.params / 1e4) * 1e4 == printed("Depthwise Separable Conv", "Parameters")
