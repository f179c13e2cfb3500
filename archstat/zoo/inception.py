"""GoogLeNet (Inception v1) as in the paper, and Inception v3.

:class:`GoogLeNet` follows Szegedy et al. (arXiv:1409.4842), Table 1 and Fig. 3: convs
with bias and ReLU and no batch norm, local response norm after the first max pool and
after the 3x3 conv, the 5x5 branch a real 5x5 conv, Caffe's rounding-up max pools,
a 7x7 average pool, 40% dropout and a linear classifier. The two auxiliary classifiers
are used only in training ("at inference time, these auxiliary networks are
discarded"), so the inference network here has none.

torchvision's ``googlenet`` differs: batch norm after every conv, no LRN, and a 3x3
conv in the "5x5" branch (a bug kept for its pretrained weights, pytorch/vision#906;
published.csv NOTES, D14). torchvision's ``inception_v3`` is the paper's Inception v3
and is reused as it is.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from archstat.zoo.registry import Expected, Ref, register_model, torchvision_builder

__all__ = ["GoogLeNet", "Inception", "InceptionSpec", "GOOGLENET_TABLE1"]


class InceptionSpec(NamedTuple):
    """One row of GoogLeNet Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj."""

    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj


#: GoogLeNet Table 1, inception (3a) to (5b); ``None`` marks the 3x3/2 max pools between them.
GOOGLENET_TABLE1: tuple[tuple[str, InceptionSpec] | None, ...] = (
    ("inception3a", InceptionSpec(64, 96, 128, 16, 32, 32)),
    ("inception3b", InceptionSpec(128, 128, 192, 32, 96, 64)),
    None,
    ("inception4a", InceptionSpec(192, 96, 208, 16, 48, 64)),
    ("inception4b", InceptionSpec(160, 112, 224, 24, 64, 64)),
    ("inception4c", InceptionSpec(128, 128, 256, 24, 64, 64)),
    ("inception4d", InceptionSpec(112, 144, 288, 32, 64, 64)),
    ("inception4e", InceptionSpec(256, 160, 320, 32, 128, 128)),
    None,
    ("inception5a", InceptionSpec(256, 160, 320, 32, 128, 128)),
    ("inception5b", InceptionSpec(384, 192, 384, 48, 128, 128)),
)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    """Conv with bias followed by ReLU: "all convolutions, including those inside the
    Inception modules, use rectified linear activation"."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.ReLU(inplace=True))


class Inception(nn.Module):
    """Fig. 2(b): 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1, concatenated."""

    def __init__(self, cin: int, spec: InceptionSpec) -> None:
        super().__init__()
        self.branch1 = _conv(cin, spec.ch1x1, 1)
        self.branch2 = nn.Sequential(_conv(cin, spec.ch3x3red, 1), _conv(spec.ch3x3red, spec.ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(_conv(cin, spec.ch5x5red, 1), _conv(spec.ch5x5red, spec.ch5x5, 5, padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), _conv(cin, spec.pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    """The inference network of GoogLeNet (Table 1), without the auxiliary classifiers."""

    def __init__(self, table: Sequence[tuple[str, InceptionSpec] | None] = GOOGLENET_TABLE1,
                 num_classes: int = 1000) -> None:
        super().__init__()
        lrn: dict[str, Any] = dict(size=5, alpha=1e-4, beta=0.75)
        self.stem = nn.Sequential(
            _conv(3, 64, 7, 2, 3), nn.MaxPool2d(3, 2, ceil_mode=True), nn.LocalResponseNorm(**lrn),
            _conv(64, 64, 1), _conv(64, 192, 3, padding=1), nn.LocalResponseNorm(**lrn),
            nn.MaxPool2d(3, 2, ceil_mode=True))
        blocks: list[tuple[str, nn.Module]] = []
        channels = 192
        for i, row in enumerate(table):
            if row is None:
                blocks.append((f"maxpool{i}", nn.MaxPool2d(3, 2, ceil_mode=True)))
                continue
            name, spec = row
            blocks.append((name, Inception(channels, spec)))
            channels = spec.out_channels
        self.inception = nn.Sequential(OrderedDict(blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inception(self.stem(x))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


# --------------------------------------------------------------------------- registry


@register_model(
    "googlenet_v1", family="inception", paper="Going Deeper with Convolutions (Szegedy et al., CVPR 2015)",
    arxiv="1409.4842", table="MobileNet Table 8; ShuffleNet Table 6; GoogLeNet Table 1 per block",
    params=Expected.rounded(
        Ref("GoogleNet", "Parameters", source="Howard", table="Table 8"),
        "6.8 million, one decimal (tolerance: half a unit); the gap is larger, see finding",
        finding="the count is 6,998,552 (6,990,272 weights without biases). 6.8 M is the sum of Table 1's params "
                "column (6,797.7 K), whose K are 1024 weights and several of whose rows disagree with the filter "
                "numbers printed beside them: conv1 2.7 K (a 7x7x3 conv with 64 filters has 9.2 K), inception (4c) "
                "463 K (497.5 K), (4d) 580 K (590.5 K), (5a) 1072 K (1018 K), (5b) 1388 K (1409 K).",
        observed="6,998,552"),
    madds=Expected.rounded(
        Ref("GoogleNet (BVLC impl.)", "Complexity", table="Table 6"),
        "1500 M is the paper's 1.5 billion (ShuffleNet Table 6, whole millions: tolerance half a unit; MobileNet "
        "Table 8 prints 1550); the gap is larger, see finding",
        finding="the count is 1,582.7 M. Table 1's ops column (sum 1,502 M) matches the count row by row to the "
                "printed million except conv1 (34 M printed; a 7x7x3 conv with 64 filters at 112x112 costs 118.0 M) "
                "and inception (5a) (54 M printed, 51.1 M counted); with those two rows corrected the sum is the "
                "count.",
        observed="1,582.7 M"),
    top5_err=Ref("GoogLeNet", "top-5 error", variant="1 model, 1 crop", table="Table 3"),
    differs="torchvision's googlenet adds batch norm, drops LRN and uses a 3x3 conv in the 5x5 branch "
            "(pytorch/vision#906; D14): 6,624,904 params and 1.498 G at 224.",
)
def googlenet_v1(**kwargs: Any) -> GoogLeNet:
    """GoogLeNet as in the paper: no batch norm, real 5x5 branch, LRN, no auxiliary heads at inference."""
    return GoogLeNet(**kwargs)


register_model(
    "inception_v3", family="inception", paper="Rethinking the Inception Architecture for Computer Vision (Szegedy "
    "et al., CVPR 2016)", arxiv="1512.00567", input_size=(3, 299, 299),
    table="Xception Table 3 (params); abstract (multiply-adds)",
    params=Expected.rounded(
        Ref("Inception V3", "Parameter count", source="Chollet", table="Table 3"),
        "Xception Table 3 prints an exact count; compared with the parameters the inference forward pass uses "
        "(torchvision's builder also holds the 3.3 M auxiliary classifier, unused at inference); the gap is larger, "
        "see finding",
        finding="the inference network has 23,834,568 parameters (23,817,352 counting only BN's beta, as Keras's "
                "InceptionV3 with scale=False does; timm 23.83 M); Xception's 23,626,728 is 0.88% lower. "
                "Unexplained.", observed="23,834,568"),
    madds=Expected.rounded(
        Ref("Inception-v3", "multiply-adds", table="Abstract"),
        "the abstract's '5 billion multiply-adds' has one significant digit (tolerance: half a unit); the gap is "
        "larger, see finding",
        finding="the count at 299x299 is 5.713 G (torchvision's _ops: 5.713), 14% above the abstract's '5 billion'; "
                "MobileNet Table 10 repeats 5000 M. The paper gives no breakdown. Unexplained.", observed="5.713 G"),
    same_as=("timm:inception_v3",),
    differs="torchvision's inception_v3 (the same builder, with init_weights=False: a random initialisation that "
            "skips scipy's slow truncated normal and changes no shape) also builds the auxiliary classifier, used "
            "only in training: its 3,326,696 parameters are in `archstat table`'s params but never run.",
)(torchvision_builder("inception_v3", init_weights=False))
