"""Xception (Chollet, arXiv:1610.02357, Fig. 5): Inception replaced by depthwise
separable convolutions with residual connections.

Entry flow: 3x3/2 conv 32 and 3x3 conv 64 (no padding), then three blocks of two
separable convs with a 3x3/2 max pool and a strided 1x1 conv shortcut (128, 256, 728
channels). Middle flow: eight blocks of three separable 728-channel convs with identity
shortcuts. Exit flow: a block 728 -> 1024 with max pool, separable convs to 1536 and
2048, global average pool and a logistic-regression layer. Every separable conv is a
depthwise 3x3 and a pointwise 1x1 without biases, followed by batch norm, with no
activation between the depthwise and the pointwise (Sec. 4.7).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from archstat.zoo.registry import Expected, Ref, register_model

__all__ = ["Xception", "XceptionBlock", "SeparableConv2d"]


class SeparableConv2d(nn.Module):
    """Depthwise ``k x k`` conv then pointwise 1x1 conv, both without bias."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, kernel_size, padding=padding, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """``reps`` x (ReLU, separable conv, BN), a 3x3/2 max pool if ``stride`` is 2, and a
    shortcut (1x1 strided conv + BN where the shape changes). ``grow_first`` widens in
    the first separable conv (entry flow) or the last (exit flow)."""

    def __init__(self, cin: int, cout: int, reps: int, stride: int = 1, start_with_relu: bool = True,
                 grow_first: bool = True) -> None:
        super().__init__()
        widths = [cin] + ([cout] * reps if grow_first else [cin] * (reps - 1) + [cout])
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            if i > 0 or start_with_relu:
                layers.append(nn.ReLU(inplace=i > 0))
            layers += [SeparableConv2d(a, b), nn.BatchNorm2d(b)]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*layers)
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if cout != cin or stride != 1 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rep(x) + (x if self.skip is None else self.skip(x))


class Xception(nn.Module):
    """Xception for 299x299 ImageNet images."""

    def __init__(self, num_classes: int = 1000, middle_blocks: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        self.entry = nn.Sequential(XceptionBlock(64, 128, 2, 2, start_with_relu=False), XceptionBlock(128, 256, 2, 2),
                                   XceptionBlock(256, 728, 2, 2))
        self.middle = nn.Sequential(*[XceptionBlock(728, 728, 3) for _ in range(middle_blocks)])
        self.exit = nn.Sequential(
            XceptionBlock(728, 1024, 2, 2, grow_first=False),
            SeparableConv2d(1024, 1536), nn.BatchNorm2d(1536), nn.ReLU(inplace=True),
            SeparableConv2d(1536, 2048), nn.BatchNorm2d(2048), nn.ReLU(inplace=True))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.exit(self.middle(self.entry(self.stem(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model(
    "xception", family="xception", paper="Xception: Deep Learning with Depthwise Separable Convolutions (Chollet, "
    "CVPR 2017)", arxiv="1610.02357", input_size=(3, 299, 299), table="Table 3",
    params=Expected(Ref("Xception", "Parameter count", source="Chollet", table="Table 3"), 0.0,
                    "Table 3 prints the exact count (trainable parameters: conv weights, BN gamma/beta, the "
                    "logistic-regression layer), so it must match exactly"),
    note="The paper reports no FLOPs (timm's legacy_xception: 8.4 GMACs at 299, counting BN and activations too).",
    same_as=("timm:legacy_xception",),
    differs="timm's legacy_xception is the same network (ported from Keras); timm's xception41/65/71 are the "
            "'aligned' DeepLab variants.",
)
def xception(**kwargs: Any) -> Xception:
    """Xception (Fig. 5): entry flow, eight middle-flow blocks, exit flow."""
    return Xception(**kwargs)
