"""Where torchvision or timm has the paper's architecture, our params and madds equal theirs exactly;
where they differ (v1 vs v1.5, the 2012 AlexNet), the difference is the one derived by hand."""

from __future__ import annotations

import importlib.util

import pytest
import torchvision

import archstat
from archstat.conventions import PaperScope
from archstat.published import published
from archstat.zoo import ZOO
from archstat.zoo.classic import ALEXNET_STAGES, PlainConvNet, Stage
from archstat.zoo.squeezenet import SqueezeNet

HAS_TIMM = importlib.util.find_spec("timm") is not None
PAIRS = [(name, other) for name, entry in ZOO.items() for other in entry.same_as]


def _count_other(other: str, shape: tuple[int, ...]) -> archstat.ModelStats:
    kind, name = other.split(":")
    if kind == "torchvision":  # torchvision's own builder, bypassing the zoo's name
        return archstat.count(torchvision.models.get_model(name, weights=None), shape)
    return archstat.count(other, shape)


@pytest.mark.parametrize(("name", "other"), [
    pytest.param(n, o, marks=pytest.mark.skipif(o.startswith("timm:") and not HAS_TIMM,
                                                reason="timm is not installed (pip install timm)"))
    for n, o in PAIRS], ids=[f"{n}={o}" for n, o in PAIRS])
def test_same_architecture_same_counts(name: str, other: str) -> None:
    shape = (1, *ZOO[name].input_size)
    ours, theirs = archstat.count(name, shape), _count_other(other, shape)
    # params of the inference network (timm's inception_v3 has no auxiliary head; torchvision's has)
    assert PaperScope().count(ours, "params") == PaperScope().count(theirs, "params")
    assert ours.madds == theirs.madds


def test_same_as_covers_the_issue_examples() -> None:
    assert "timm:legacy_seresnet50" in ZOO["se_resnet50"].same_as
    assert "timm:legacy_seresnet101" in ZOO["se_resnet101"].same_as
    assert "timm:legacy_seresnext50_32x4d" in ZOO["se_resnext50_32x4d"].same_as
    assert "timm:legacy_xception" in ZOO["xception"].same_as
    assert "torchvision:shufflenet_v2_x1_0" in ZOO["shufflenet_v2_x1_0"].same_as


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_resnet_v1_and_v15_same_params_madds_differ_by_the_stride_move(depth: int) -> None:
    """D1: v1.5 strides in the 3x3 instead of the first 1x1 of each downsampling bottleneck (stages 3-5).
    The 3x3 then runs at the same output size in both; only the first 1x1 changes: it runs at the input
    size H instead of H/2, so v1.5 costs 3/4 * H^2 * Cin * width more per stage:
    H=56, Cin=256, width=128; H=28, 512, 256; H=14, 1024, 512 -> 77,070,336 each, 231,211,008 in all."""
    v1, v15 = archstat.count(f"resnet{depth}_v1"), archstat.count(f"resnet{depth}")
    assert v1.params == v15.params
    assert v15.madds - v1.madds == sum(3 * h * h * cin * w // 4 for h, cin, w in
                                       ((56, 256, 128), (28, 512, 256), (14, 1024, 512))) == 231_211_008


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_resnet_v1_equals_the_derived_arithmetic(depth: int) -> None:
    """published.csv's derived rows (derive.py, pure arithmetic from the layer tables) for v1."""
    variant = "v1" if depth < 50 else "v1 (stride on 1x1)"
    row = published(model=f"ResNet-{depth}", metric="MACs", source="derived", variant=variant)
    assert archstat.count(f"resnet{depth}_v1").madds == row.number()


def test_alexnet_is_the_grouped_two_tower_net_and_not_torchvisions() -> None:
    """D2: the 2012 net (groups=2 in conv2/4/5) at 227 and the same channels without groups, both against
    published.csv's derived rows; torchvision's alexnet is a third network."""
    grouped = archstat.count("alexnet_v1")
    assert grouped.params == published(model="AlexNet", metric="params", source="derived",
                                       variant="original two-tower (groups=2)").number()
    assert grouped.madds == published(model="AlexNet", metric="MACs", source="derived",
                                      variant="original two-tower (groups=2 in conv2,4,5), 96-256-384-384-256").number()
    dense = [Stage(s.out, s.kernel, s.stride, s.padding, 1, s.cccp, s.lrn, s.pool) for s in ALEXNET_STAGES]
    ungrouped = archstat.count(PlainConvNet(dense, fc=(4096, 4096), fc_input=(256, 6, 6)), (1, 3, 227, 227))
    variant = "same channels, no grouping (single tower)"
    assert ungrouped.params == published(model="AlexNet", metric="params", source="derived", variant=variant).number()
    assert ungrouped.madds == published(model="AlexNet", metric="MACs", source="derived", variant=variant).number()
    assert archstat.count("alexnet").params != grouped.params


@pytest.mark.parametrize("name", ["vgg16", "vgg19"])
def test_vgg_equals_the_derived_arithmetic(name: str) -> None:
    model = f"VGG-{name[3:]}"
    stats = archstat.count(name)
    assert stats.params == published(model=model, metric="params", source="derived").number()
    assert stats.madds == published(model=model, metric="MACs", source="derived").number()


def test_vgg16_conv_layers_alone_are_the_resnet_papers_15_3() -> None:
    """D5 hypothesis behind vgg16's finding: the conv layers alone cost 15.35 G (prints as 15.3); with the three
    FC layers (25088x4096 + 4096x4096 + 4096x1000 = 123,633,664) 15.47 G."""
    stats = archstat.count("vgg16")
    fc = 25088 * 4096 + 4096 * 4096 + 4096 * 1000
    conv = stats.madds - fc
    assert round(conv / 1e9, 1) == published(model="VGG-16", metric="FLOPs", source="He et al").number() / 1e9
    assert round(stats.madds / 1e9, 2) == 15.47


@pytest.mark.parametrize("size", [227, 224])
def test_squeezenet_at_227_and_224(size: int) -> None:
    """D6: 833 M (ShuffleNet Table 6) is the 227 count, 819 M (torchvision) the 224 one."""
    row = published(model="SqueezeNet 1.0", metric="MACs", source="derived", input_res=str(size))
    assert archstat.count("squeezenet1_0", (1, 3, size, size)).madds == row.number()


def test_our_squeezenet_class_without_bypass_is_torchvisions() -> None:
    shape = (1, 3, 227, 227)
    ours = archstat.count(SqueezeNet(), shape)
    theirs = archstat.count(torchvision.models.squeezenet1_0(), shape)
    assert (ours.params, ours.madds) == (theirs.params, theirs.madds)


@pytest.mark.parametrize("scale", ["0.5x", "1x", "1.5x", "2x"])
def test_shufflenet_v2_equals_the_derived_arithmetic(scale: str) -> None:
    name = {"0.5x": "shufflenet_v2_x0_5", "1x": "shufflenet_v2_x1_0", "1.5x": "shufflenet_v2_x1_5",
            "2x": "shufflenet_v2_x2_0"}[scale]
    row = published(model="ShuffleNet v2", metric="MACs (conv+fc)", variant=scale, source="derived")
    assert archstat.count(name).madds == row.number()


def test_se_resnet50_params_equal_the_derived_arithmetic() -> None:
    row = published(model="SE-ResNet-50", metric="params", source="derived")
    assert archstat.count("se_resnet50").params == row.number()
