"""ResNet, ResNeXt, SE-ResNet and SE-ResNeXt, with the stride where each paper put it.

One parametrised :class:`ResNet` covers the ImageNet family; the block class and its
keyword arguments say which member:

* ``stride_in_1x1=True`` is the original (Caffe) ResNet "v1" of He et al.
  (arXiv:1512.03385) and of SENet (arXiv:1709.01507): a downsampling bottleneck
  strides in its first 1x1 conv. ResNet-50 then costs 3.86 G multiply-adds (Table 1
  prints 3.8). torchvision's ResNets stride in the 3x3 conv ("v1.5", from
  fb.resnet.torch), 4.09 G: the same parameters, a quarter of the 3x3 work moved to
  the higher resolution (``published.csv`` NOTES, D1). ResNet-18/34's basic blocks
  stride in their first 3x3 in every variant.
* ``se_reduction=r`` adds a squeeze-and-excitation block (Hu et al., Fig. 3) before the
  residual addition: global average pool, 1x1 conv C -> C/r, ReLU, 1x1 conv C/r -> C,
  sigmoid, channel-wise scale. Like the SENet reference code (and timm's ``legacy_``
  models), the two FC layers are 1x1 convs with bias.
* ``groups`` / ``width_per_group`` give ResNeXt's grouped 3x3 (Xie et al., arXiv:1611.05431),
  which strides in the 3x3 (ResNeXt Sec. 4 follows fb.resnet.torch).

:class:`PreActResNet` is the CIFAR network of the SENet tutorial (seed
``004_4082feb81fb5f9f1.txt``): pre-activation basic blocks with an SE block, a 3x3 stem
and no max pool, for 32x32 inputs.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ResNet", "Bottleneck", "BasicBlock", "SqueezeExcitation", "PreActSEBlock", "PreActResNet"]


class SqueezeExcitation(nn.Module):
    """SE block: ``x * sigmoid(W2 relu(W1 avgpool(x)))`` with ``W1: C -> C/r``, ``W2: C/r -> C``."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * s


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34); the first one strides, in every variant."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, se_reduction: int | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcitation(planes, se_reduction) if se_reduction else None
        self.downsample = _shortcut(inplanes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand x4; the stride sits in the
    first 1x1 when ``stride_in_1x1`` (v1), else in the 3x3 (v1.5)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, groups: int = 1, width_per_group: int = 64,
                 stride_in_1x1: bool = True, se_reduction: int | None = None) -> None:
        super().__init__()
        width = int(planes * width_per_group / 64) * groups
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(inplanes, width, 1, s1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, s3, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcitation(planes * 4, se_reduction) if se_reduction else None
        self.downsample = _shortcut(inplanes, planes * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _shortcut(inplanes: int, outplanes: int, stride: int) -> nn.Module | None:
    """Projection shortcut (option B of the ResNet paper): 1x1 conv + BN where the shape changes."""
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), nn.BatchNorm2d(outplanes))


class ResNet(nn.Module):
    """ImageNet ResNet: 7x7/2 stem, 3x3/2 max pool, four stages, global pool, FC.

    ``block`` is any residual block class with an ``expansion`` attribute and the
    signature ``block(inplanes, planes, stride, **block_kwargs)`` (:class:`BasicBlock`,
    :class:`Bottleneck`, Res2Net's bottleneck).
    """

    def __init__(self, block: Callable[..., nn.Module], layers: Sequence[int], num_classes: int = 1000,
                 **block_kwargs: Any) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        expansion = block.expansion  # type: ignore[attr-defined]
        inplanes, stages = 64, []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stage = []
            for j in range(blocks):
                stage.append(block(inplanes, planes, 2 if i > 0 and j == 0 else 1, **block_kwargs))
                inplanes = planes * expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class PreActSEBlock(nn.Module):
    """Seed 004's ``PreActBlock``: BN-ReLU-conv3x3-BN-ReLU-conv3x3, an SE block (r = 16,
    1x1 convs with bias) and the addition; the shortcut is a bias-free 1x1 conv on the
    pre-activated input where the shape changes, else the raw input."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, se_reduction: int = 16) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(inplanes, planes, 1, stride, bias=False)
                         if stride != 1 or inplanes != planes else None)
        self.fc1 = nn.Conv2d(planes, planes // se_reduction, 1)
        self.fc2 = nn.Conv2d(planes // se_reduction, planes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        w = F.avg_pool2d(out, out.size(2))
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(w))))
        return out * w + shortcut


class PreActResNet(nn.Module):
    """Seed 004's ``SENet``: 3x3 stem (64, stride 1, BN, ReLU), four stages of
    :class:`PreActSEBlock` (64-128-256-512, stride 1-2-2-2), a 4x4 average pool and a
    linear classifier; for 32x32 inputs (CIFAR-10)."""

    def __init__(self, layers: Sequence[int] = (2, 2, 2, 2), num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        inplanes, stages = 64, []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stage = []
            for j in range(blocks):
                stage.append(PreActSEBlock(inplanes, planes, 2 if i > 0 and j == 0 else 1))
                inplanes = planes
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.avg_pool2d(out, 4).flatten(1))


# --------------------------------------------------------------------------- registry

from archstat.conventions import PaperScope  # noqa: E402
from archstat.published import printed_number  # noqa: E402
from archstat.zoo.registry import Expected, Ref, register_model, torchvision_builder  # noqa: E402

_RESNET = dict(family="resnet", paper="Deep Residual Learning for Image Recognition (He et al., CVPR 2016)",
               arxiv="1512.03385", table="Table 1 (FLOPs); torchvision metadata (params)")
_SENET = dict(family="senet", paper="Squeeze-and-Excitation Networks (Hu et al., TPAMI)", arxiv="1709.01507")
_DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
           101: (Bottleneck, (3, 4, 23, 3)), 152: (Bottleneck, (3, 8, 36, 3))}
#: The counts of the two depths whose Table 1 figure they do not round to, as the findings quote them.
_TABLE1_COUNTS = {34: "3.664 G", 50: "3.858 G"}
_TABLE1_FINDING = ("Table 1 prints {printed} G; the count {count} would round to {rounded:.1f}. SENet's "
                   "re-implementation (Table 2) prints 3.86 G for ResNet-50, the count to two decimals. "
                   "Unexplained: ResNet-34 with option-A (parameter-free) shortcuts would give 3.645 G -> 3.6, but "
                   "no shortcut choice brings ResNet-50 to 3.8 (without any projection it is 3.50 G).")


def _table1(depth: int) -> Expected:
    """ResNet Table 1's FLOPs for ``depth``: one decimal in units of 10^9, judged to half a unit."""
    ref = Ref(f"ResNet-{depth}", "FLOPs", source="He et al", table="Table 1")
    reason = "Table 1 prints one decimal in units of 10^9 (tolerance: half a unit)"
    count = _TABLE1_COUNTS.get(depth)
    if count is None:
        return Expected.rounded(ref, reason)
    finding = _TABLE1_FINDING.format(printed=ref.resolve().value, count=count,
                                     rounded=printed_number(count).value / 1e9)
    return Expected.rounded(ref, reason + "; the gap is larger, see finding", finding=finding, observed=count)


def _resnet_v1(depth: int) -> Callable[..., ResNet]:
    block, layers = _DEPTHS[depth]
    kwargs = {} if block is BasicBlock else {"stride_in_1x1": True}

    def build(**extra: Any) -> ResNet:
        return ResNet(block, layers, **kwargs, **extra)

    build.__name__ = f"resnet{depth}_v1"
    build.__doc__ = f"ResNet-{depth} as in the paper (v1): downsampling bottlenecks stride in their first 1x1."
    return build


for _depth in _DEPTHS:
    register_model(
        f"resnet{_depth}_v1", **_RESNET,
        params=Expected(Ref(f"ResNet{_depth}", "num_params", source="torchvision"), 0.0,
                        "the paper prints no parameter counts; v1 and v1.5 have the same parameters (D1), so "
                        "torchvision's num_params must match exactly"),
        madds=_table1(_depth),
        top1_err=Ref(f"ResNet-{_depth}", "top-1 error", source="He et al", table="Table 3") if _depth >= 50 else None,
        top5_err=Ref(f"ResNet-{_depth}", "top-5 error", source="He et al", table="Table 3") if _depth >= 50 else None,
        same_as=(f"torchvision:resnet{_depth}",) if _depth < 50 else (),
        differs=("identical to torchvision's resnet{0} (basic blocks stride in the 3x3 in every variant)"
                 if _depth < 50 else
                 "torchvision's resnet{0} is v1.5 (stride in the 3x3): same parameters, more multiply-adds "
                 "(D1)").format(_depth),
    )(_resnet_v1(_depth))


register_model(
    "resnext50_32x4d", family="resnext", paper="Aggregated Residual Transformations for Deep Neural Networks (Xie "
    "et al., CVPR 2017)", arxiv="1611.05431", table="Table 1",
    params=Expected(Ref("ResNeXt-50", "# params", table="Table 1"), 0.005,
                    "Table 1 prints 25.0x10^6; ResNeXt counts without BN gamma/beta (its ResNet-50 is 25.5, "
                    "25,510,056 without, 25,557,032 with): 24,960,680 rounds to 25.0",
                    scope=PaperScope(bn_affine=False)),
    madds=Expected.rounded(Ref("ResNeXt-50", "FLOPs", table="Table 1"),
                           "Table 1 prints one decimal in units of 10^9 (4.23 G -> 4.2; tolerance: half a unit)"),
    top1_err=Ref("ResNeXt-50", "top-1 error", variant="32x4d", table="Table 3"),
    same_as=("timm:resnext50_32x4d",),
    differs="torchvision's resnext50_32x4d is the paper's network (stride in the grouped 3x3, as ResNeXt Sec. 4 "
            "says); the same builder.",
)(torchvision_builder("resnext50_32x4d"))


@register_model(
    "se_resnet50", **_SENET, table="Table 2 (GFLOPs), Table 10 (params)",
    params=Expected.rounded(Ref("SE-ResNet-50", "Params", table="Table 10", variant="r=16"),
                            "Table 10 prints 28.1M, one decimal in millions (tolerance: half a unit)"),
    madds=Expected.rounded(Ref("SE-ResNet-50", "GFLOPs", table="Table 2"),
                           "Table 2 prints two decimals in G (tolerance: half a unit); the gap is larger, see finding",
                           finding="conv+fc multiply-adds are 3.8605 G (ResNet-50 v1 3.8580 G + 2.5 M in the SE "
                                   "FCs), 0.25% under the printed 3.87 G; the paper's +0.01 G over ResNet-50 (3.86) "
                                   "matches the FCs plus the SE squeeze and scale element-wise work (about 11 M), "
                                   "which archstat counts as flops, not madds.", observed="3.8605 G"),
    top1_err=Ref("SE-ResNet-50", "top-1 error", table="Table 2"),
    top5_err=Ref("SE-ResNet-50", "top-5 error", table="Table 2"),
    same_as=("timm:legacy_seresnet50",),
    differs="timm's seresnet50 strides in the 3x3 (v1.5, 4.11 G); this and timm's legacy_seresnet50 stride "
            "in the first 1x1 as the SENet reference code does.",
)
def se_resnet50(**kwargs: Any) -> ResNet:
    """SE-ResNet-50 (SENet Table 2): ResNet-50 v1 with an SE block (r = 16) in every bottleneck."""
    return ResNet(Bottleneck, (3, 4, 6, 3), stride_in_1x1=True, se_reduction=16, **kwargs)


@register_model(
    "se_resnet101", **_SENET, table="Table 2 (GFLOPs); timm benchmark (params)",
    params=Expected.rounded(Ref("legacy_seresnet101", "param_count", source="pytorch-image-models", input_res="224"),
                            "SENet prints no SE-ResNet-101 parameter count; timm's 49.33 M (two decimals, "
                            "tolerance: half a unit) is the reference implementation's"),
    madds=Expected.rounded(Ref("SE-ResNet-101", "GFLOPs", table="Table 2"),
                           "Table 2 prints two decimals in G (tolerance: half a unit); the gap is larger, see finding",
                           finding="conv+fc multiply-adds are 7.575 G (ResNet-101 v1 7.570 G + 4.7 M in the SE FCs), "
                                   "0.33% under the printed 7.60 G; the printed +0.02 G over ResNet-101 (7.58) is "
                                   "about what the SE squeeze and scale element-wise work adds, counted by archstat "
                                   "as flops.", observed="7.575 G"),
    top1_err=Ref("SE-ResNet-101", "top-1 error", table="Table 2"),
    top5_err=Ref("SE-ResNet-101", "top-5 error", table="Table 2"),
    same_as=("timm:legacy_seresnet101",),
    differs="timm's seresnet101 strides in the 3x3 (v1.5); this is timm's legacy_seresnet101 (stride in the 1x1).",
)
def se_resnet101(**kwargs: Any) -> ResNet:
    """SE-ResNet-101: ResNet-101 v1 with an SE block (r = 16) in every bottleneck."""
    return ResNet(Bottleneck, (3, 4, 23, 3), stride_in_1x1=True, se_reduction=16, **kwargs)


@register_model(
    "se_resnext50_32x4d", **_SENET, table="Table 2 (GFLOPs); timm benchmark (params)",
    params=Expected.rounded(Ref("legacy_seresnext50_32x4d", "param_count", source="pytorch-image-models"),
                            "SENet prints no SE-ResNeXt-50 parameter count; timm's 27.56 M (two decimals, "
                            "tolerance: half a unit) is the reference implementation's"),
    madds=Expected.rounded(Ref("SE-ResNeXt-50", "GFLOPs", table="Table 2"),
                           "Table 2 prints two decimals in G (tolerance: half a unit); the gap is larger, see finding",
                           finding="conv+fc multiply-adds are 4.233 G (ResNeXt-50 4.230 G + 2.5 M in the SE FCs), "
                                   "0.42% under the printed 4.25 G; SENet's own ResNeXt-50 baseline is printed as "
                                   "4.24 G, 0.24% over its count (4.230 G) too. Unexplained.", observed="4.233 G"),
    top1_err=Ref("SE-ResNeXt-50", "top-1 error", table="Table 2"),
    top5_err=Ref("SE-ResNeXt-50", "top-5 error", table="Table 2"),
    same_as=("timm:legacy_seresnext50_32x4d",),
    differs="ResNeXt-50 (32x4d, stride in the grouped 3x3) with SE (r = 16): timm's legacy_seresnext50_32x4d.",
)
def se_resnext50_32x4d(**kwargs: Any) -> ResNet:
    """SE-ResNeXt-50 (32x4d): ResNeXt-50 with an SE block (r = 16) in every bottleneck."""
    return ResNet(Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4, stride_in_1x1=False, se_reduction=16,
                  **kwargs)


@register_model(
    "se_preact_resnet18", family="senet", paper="PyTorch SENet tutorial, seed 004_4082feb81fb5f9f1.txt (SE block "
    "of Hu et al. on a pre-activation ResNet-18 for CIFAR-10)", arxiv="1709.01507", input_size=(3, 32, 32),
    table="seed code",
    note="The seed gives code, not figures; tests/zoo checks the parameter count derived by hand from that code.",
    differs="Not in torchvision or timm; kuangliu/pytorch-cifar's SENet18 is the same code. No final BN-ReLU "
            "after the last pre-activation block (as in the seed).",
)
def se_preact_resnet18(**kwargs: Any) -> PreActResNet:
    """The seed's ``SENet18()``: pre-activation SE-ResNet-18 for 32x32 CIFAR-10 images."""
    return PreActResNet((2, 2, 2, 2), **kwargs)
