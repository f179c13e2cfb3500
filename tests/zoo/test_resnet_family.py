"""ResNet v1 stride placement, the seed's SE-PreAct-ResNet-18, Res2Net's hierarchy."""

from __future__ import annotations

import pytest
import torch

import archstat
from archstat.zoo.res2net import Bottle2neck


@pytest.mark.parametrize("name", ["resnet50_v1", "resnet101_v1", "resnet152_v1", "se_resnet50", "se_resnet101"])
def test_v1_strides_in_the_first_1x1(name: str) -> None:
    model = archstat.create_model(name)
    for stage in (model.layer2, model.layer3, model.layer4):
        first = stage[0]
        assert first.conv1.stride == (2, 2) and first.conv2.stride == (1, 1)


@pytest.mark.parametrize("name", ["resnext50_32x4d", "se_resnext50_32x4d", "res2net50_26w_4s"])
def test_resnext_and_res2net_stride_in_the_3x3(name: str) -> None:
    model = archstat.create_model(name)
    first = model.layer2[0]
    assert first.conv1.stride == (1, 1)
    convs = first.convs if isinstance(first, Bottle2neck) else [first.conv2]
    assert all(c.stride == (2, 2) for c in convs)


def test_se_preact_resnet18_parameters_by_hand() -> None:
    """The seed's SENet18 (PreActBlock, [2, 2, 2, 2], 10 classes). Per block (in -> out):
    BN1 2*in + conv 9*in*out + BN2 2*out + conv 9*out^2 + SE fc1 (out*out/16 + out/16) + fc2 (out/16*out + out)
    + shortcut in*out where the shape changes; stem conv 3*9*64 + BN 2*64; linear 512*10 + 10."""

    def block(cin: int, cout: int) -> int:
        se = cout * (cout // 16) + cout // 16 + (cout // 16) * cout + cout
        shortcut = cin * cout if cin != cout else 0
        return 2 * cin + 9 * cin * cout + 2 * cout + 9 * cout * cout + se + shortcut

    widths = [64, 64, 64, 128, 128, 256, 256, 512, 512]
    expected = 3 * 9 * 64 + 2 * 64 + sum(block(a, b) for a, b in zip(widths, widths[1:])) + 512 * 10 + 10
    stats = archstat.count("se_preact_resnet18")
    assert stats.params == expected == 11_260_354
    assert stats.input_shape == (1, 3, 32, 32)


def test_se_preact_resnet18_runs_on_cifar_images() -> None:
    model = archstat.create_model("se_preact_resnet18").eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_res2net_splits_into_scale_groups() -> None:
    """26w x 4s: the first stage's 1x1 conv widens to 26 x 4 = 104 channels; three 3x3 convs of 26."""
    block = archstat.create_model("res2net50_26w_4s").layer1[1]
    assert block.conv1.out_channels == 104 and len(block.convs) == 3
    assert all(c.in_channels == c.out_channels == 26 for c in block.convs)
