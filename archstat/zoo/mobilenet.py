"""MobileNet v1 (Howard et al., arXiv:1704.04861) at every width multiplier, and MobileNetV2.

:class:`MobileNetV1` is Table 1: a 3x3/2 conv with 32 filters, thirteen depthwise
separable layers (3x3 depthwise + BN + ReLU, 1x1 pointwise + BN + ReLU), global average
pool and a fully connected classifier. The width multiplier alpha thins every layer
(``int(alpha * channels)``; Sec. 3.3); the resolution multiplier is the input size
(``--input-size 3x192x192``; the final pool is global, so any size works).

Table 1 prints the second-to-last depthwise layer as "Conv dw / s2" at 7x7x1024; it
must be stride 1, or the next layer's input would be 4x4 and Table 1's own "Avg Pool
7x7" impossible (published.csv NOTES, D7). The multiply-adds of Tables 6 and 7 are
reproduced only with stride 1.

torchvision's ``mobilenet_v2`` is the MobileNetV2 paper's network (Sandler et al.,
Table 2) and is reused.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from archstat.zoo.registry import Expected, Ref, register_model, torchvision_builder

__all__ = ["MobileNetV1", "MOBILENET_V1_LAYERS", "MOBILENET_V1_WIDTHS"]

#: Table 1 after the first conv: (pointwise output channels, depthwise stride), with the
#: erratum fixed (the second-to-last depthwise layer strides 1).
MOBILENET_V1_LAYERS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)

#: name suffix -> width multiplier (torchvision-style suffixes)
MOBILENET_V1_WIDTHS = {"": 1.0, "_x0_75": 0.75, "_x0_5": 0.5, "_x0_25": 0.25}


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class MobileNetV1(nn.Module):
    """MobileNet v1 with width multiplier ``width_mult`` (alpha)."""

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        cin = int(32 * width_mult)
        layers: list[nn.Module] = [_conv_bn_relu(3, cin, 3, 2)]
        for channels, stride in MOBILENET_V1_LAYERS:
            cout = int(channels * width_mult)
            layers += [_conv_bn_relu(cin, cin, 3, stride, groups=cin), _conv_bn_relu(cin, cout, 1)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))


# --------------------------------------------------------------------------- registry

_MOBILENET = dict(family="mobilenet", paper="MobileNets: Efficient Convolutional Neural Networks for Mobile Vision "
                  "Applications (Howard et al., 2017)", arxiv="1704.04861", table="Table 6 (width multiplier)")


def _mobilenet_v1(width: float) -> Callable[..., MobileNetV1]:
    def build(**kwargs: Any) -> MobileNetV1:
        return MobileNetV1(width, **kwargs)

    build.__doc__ = f"{width} MobileNet (Table 6), resolution from the input size."
    return build


for _suffix, _width in MOBILENET_V1_WIDTHS.items():
    _label = f"{_width:g} MobileNet-224" if _width != 1.0 else "1.0 MobileNet-224"
    _params, _madds = Ref(_label, "Parameters", table="Table 6"), Ref(_label, "Mult-Adds", table="Table 6")
    register_model(
        f"mobilenet_v1{_suffix}", **_MOBILENET,
        params=Expected.rounded(_params, "Table 6 prints one decimal in millions (tolerance: half a unit); the "
                                         "count with BN gamma/beta and without both round to it"),
        madds=Expected.rounded(_madds, "Table 6 prints whole millions (tolerance: half a unit)"),
        same_as=("timm:mobilenetv1_100",) if _width == 1.0 else (),
        differs="Not in torchvision; timm's mobilenetv1_100 is the same network at alpha = 1. Table 1's stride "
                "erratum is fixed (second-to-last depthwise layer stride 1, D7).",
        finding=("MobileNetV2 (Table 4) quotes MobileNetV1 at 575 M MAdds; this paper and the count give 569 M "
                 "(568.7 M). Table 7 prints 290 M at 160x160, where the count is 290.68 M (TF-slim's README: "
                 "291): truncated; the other resolutions round to the printed figures." if _width == 1.0 else
                 "The TF-slim README's alpha = 0.75 rows (317/233/162/104 M) are 2.6% under the count and the "
                 "paper (325/239 M): unexplained (D7)." if _width == 0.75 else ""),
    )(_mobilenet_v1(_width))

_V2_PARAMS = Ref("MobileNetV2", "Params", table="Table 4", source="Sandler")
register_model(
    "mobilenet_v2", family="mobilenet", paper="MobileNetV2: Inverted Residuals and Linear Bottlenecks (Sandler et "
    "al., CVPR 2018)", arxiv="1801.04381", table="Table 4",
    params=Expected.rounded(
        _V2_PARAMS, "Table 4 prints one decimal in millions (tolerance: half a unit); the gap is larger, see finding",
        finding="the network has 3,504,872 parameters (3,470,760 without BN gamma/beta; TF-slim's README prints "
                "3.47 M): both round to 3.5 M, not the printed 3.4 M, which looks truncated (D8).",
        observed="3,504,872"),
    madds=Expected.rounded(Ref("MobileNetV2", "MAdds", table="Table 4", source="Sandler"),
                           "Table 4 prints whole millions (tolerance: half a unit); the gap is larger, see finding",
                           finding="the count is 300.77 M (torchvision's _ops: 0.301 G); Table 4's 300 M, like its "
                                   "3.4 M parameters, is below the count's rounding: truncated?", observed="300.77 M"),
    same_as=("timm:mobilenetv2_100",),
    differs="torchvision's mobilenet_v2 is the paper's network (the same builder).",
)(torchvision_builder("mobilenet_v2"))
