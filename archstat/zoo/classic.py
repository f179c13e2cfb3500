"""The pre-2014 networks: LeNet-5, AlexNet, ZFNet, Network in Network, VGG.

* :class:`LeNet5` is LeCun et al. (1998), Sec. II-B, as printed: scaled tanh, the
  trainable subsampling layers S2/S4 (sum of 2x2, one coefficient and one bias per
  map), C3's partial connection table (Table I), and Euclidean RBF output units whose
  centres are fixed (a buffer, not a trainable parameter).
* :class:`PlainConvNet` is the family of plain conv stacks with max pooling of 2012-13:
  each stage is a conv (optionally grouped, as AlexNet's two towers), optional 1x1
  "cccp" convs (Network in Network's mlpconv), optional local response norm and a
  3x3/2 max pool with Caffe's rounding up (``ceil_mode``). The head is either AlexNet's
  three fully connected layers or NiN's global average pool.
* VGG-16/19 are torchvision's ``vgg16``/``vgg19``: configurations D and E of Simonyan &
  Zisserman, Table 1, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from archstat.zoo.registry import Expected, Ref, register_model, torchvision_builder

__all__ = ["LeNet5", "PlainConvNet", "Stage", "LENET5_C3_TABLE"]

#: LeNet-5 Table I: which S2 maps (0-5) each of C3's 16 maps reads. Six maps read 3
#: contiguous maps, six read 4 contiguous, three read 4 non-contiguous, one reads all.
LENET5_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


class ScaledTanh(nn.Module):
    """LeNet-5's squashing function ``A tanh(S a)`` with ``A = 1.7159``, ``S = 2/3`` (Appendix A)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2 / 3))


class Subsampling(nn.Module):
    """S2/S4: the four inputs of each 2x2 cell are added, multiplied by a trainable
    coefficient and shifted by a trainable bias (2 parameters per map). Written as an
    average pool followed by a per-channel (depthwise 1x1) affine map."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(2)
        self.affine = nn.Conv2d(channels, channels, 1, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.affine(self.pool(x))


class PartialConv(nn.Module):
    """C3: one 5x5 conv per output map over the input maps its row of ``table`` names."""

    def __init__(self, table: Sequence[Sequence[int]], kernel_size: int) -> None:
        super().__init__()
        self.table = tuple(tuple(t) for t in table)
        self.maps = nn.ModuleList(nn.Conv2d(len(inputs), 1, kernel_size) for inputs in self.table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(x[:, list(inputs)]) for conv, inputs in zip(self.maps, self.table)], 1)


class EuclideanRBF(nn.Module):
    """Output units ``y_i = sum_j (x_j - w_ij)^2``; the centres ``w`` were set by hand
    (stylised 7x12 bitmaps) and kept fixed, so they are a buffer, not parameters."""

    centres: torch.Tensor

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("centres", torch.zeros(num_classes, in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.unsqueeze(1) - self.centres) ** 2).sum(-1)


class LeNet5(nn.Module):
    """LeNet-5 on 32x32 inputs: C1-S2-C3-S4-C5-F6-RBF, 60,000 trainable parameters."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5)
        self.s2 = Subsampling(6)
        self.c3 = PartialConv(LENET5_C3_TABLE, 5)
        self.s4 = Subsampling(16)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.act = ScaledTanh()
        self.output = EuclideanRBF(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.s2(self.act(self.c1(x))))
        x = self.act(self.s4(self.act(self.c3(x))))
        x = self.act(self.c5(x)).flatten(1)
        return self.output(self.act(self.f6(x)))


@dataclass(frozen=True)
class Stage:
    """One stage of a :class:`PlainConvNet`: conv ``out`` channels ``kernel`` x ``kernel``,
    then ReLU; ``cccp`` 1x1 convs (each with ReLU); then LRN and/or a 3x3/2 max pool."""

    out: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    cccp: tuple[int, ...] = ()
    lrn: bool = False
    pool: bool = False


class PlainConvNet(nn.Module):
    """AlexNet / ZFNet / Network in Network: plain conv stages and a classifier head.

    ``fc`` gives the hidden fully connected widths (AlexNet: 4096, 4096), fed by the
    flattened ``fc_input`` = (channels, height, width) of the last stage (average-pooled
    to that size first, so other input resolutions run too); an empty
    ``fc`` means NiN's head: dropout before the last stage and a global average pool
    over its (class-count) channels. ``lrn_before_pool`` orders normalisation and
    pooling (AlexNet normalises then pools; ZFNet, Fig. 3, pools then normalises).
    """

    def __init__(self, stages: Sequence[Stage], fc: Sequence[int] = (), fc_input: tuple[int, int, int] | None = None,
                 num_classes: int = 1000, lrn_before_pool: bool = True, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i, stage in enumerate(stages):
            if not fc and i == len(stages) - 1:
                layers.append(nn.Dropout(0.5))
            layers += [nn.Conv2d(channels, stage.out, stage.kernel, stage.stride, stage.padding, groups=stage.groups),
                       nn.ReLU(inplace=True)]
            channels = stage.out
            for width in stage.cccp:
                layers += [nn.Conv2d(channels, width, 1), nn.ReLU(inplace=True)]
                channels = width
            post: list[nn.Module] = [nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)] if stage.lrn else []
            pool: list[nn.Module] = [nn.MaxPool2d(3, 2, ceil_mode=True)] if stage.pool else []
            layers += post + pool if lrn_before_pool else pool + post
        self.features = nn.Sequential(*layers)
        if fc:
            if fc_input is None:
                raise ValueError("a fully connected head needs fc_input (channels, height, width)")
            widths = [fc_input[0] * fc_input[1] * fc_input[2], *fc]
            # Pooling to fc_input's map size is the identity at the paper's input and lets the
            # network run at other resolutions, as torchvision's AlexNet does (ShuffleNet's
            # Table 8 times AlexNet at 480x640 and 720x1280).
            head: list[nn.Module] = [nn.AdaptiveAvgPool2d(fc_input[1:]), nn.Flatten()]
            for a, b in zip(widths, widths[1:]):
                head += [nn.Dropout(0.5), nn.Linear(a, b), nn.ReLU(inplace=True)]
            head.append(nn.Linear(widths[-1], num_classes))
            self.classifier = nn.Sequential(*head)
        else:
            if channels != num_classes:
                raise ValueError(f"a global-pool head needs the last stage to have num_classes={num_classes} channels")
            self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# --------------------------------------------------------------------------- configurations

#: AlexNet (Krizhevsky et al. 2012, Sec. 3.5 and Fig. 2) on a 227x227 crop: conv2, conv4 and
#: conv5 see only the maps on their own GPU (groups=2); conv3 and the FC layers see both.
ALEXNET_STAGES = (
    Stage(96, 11, 4, lrn=True, pool=True),
    Stage(256, 5, padding=2, groups=2, lrn=True, pool=True),
    Stage(384, 3, padding=1),
    Stage(384, 3, padding=1, groups=2),
    Stage(256, 3, padding=1, groups=2, pool=True),
)

#: ZFNet (Zeiler & Fergus, Fig. 3) at 224: 7x7/2 first layer (padding 1 gives the printed
#: 110x110), 5x5/2 second layer, dense (single-GPU) conv3-5, pooled maps 55, 13, 6.
ZFNET_STAGES = (
    Stage(96, 7, 2, padding=1, lrn=True, pool=True),
    Stage(256, 5, 2, lrn=True, pool=True),
    Stage(384, 3, padding=1),
    Stage(384, 3, padding=1),
    Stage(256, 3, padding=1, pool=True),
)

#: Network in Network for ImageNet, the authors' Caffe Model Zoo release: four mlpconv
#: layers (conv + two 1x1 "cccp" convs), the last producing the 1000 class maps.
NIN_STAGES = (
    Stage(96, 11, 4, cccp=(96, 96), pool=True),
    Stage(256, 5, padding=2, cccp=(256, 256), pool=True),
    Stage(384, 3, padding=1, cccp=(384, 384), pool=True),
    Stage(1024, 3, padding=1, cccp=(1024, 1000)),
)


# --------------------------------------------------------------------------- registry

_D2 = ("AlexNet has three networks behind its figures (published.csv NOTES, D2): this is the 2012 two-tower "
       "net; torchvision's alexnet is the single-tower 64-192-384-256-256 net of 'One weird trick' "
       "(61.1 M, 0.714 G at 224).")


@register_model(
    "lenet5", family="lenet", paper="Gradient-Based Learning Applied to Document Recognition (LeCun et al., "
    "Proc. IEEE 1998)", arxiv="", input_size=(1, 32, 32), table="Sec. II-B",
    params=Expected(Ref("LeNet-5", "trainable parameters", source="LeCun", variant="total"), 0.0,
                    "Sec. II-B's per-layer counts (156 + 12 + 1,516 + 32 + 48,120 + 10,164) add up exactly; the RBF "
                    "centres are fixed, not trained"),
    madds=Expected(Ref("LeNet-5", "connections", source="LeCun", variant="total"), 0.041,
                   "the paper counts connections: every multiply-add plus one per bias, the 4 inputs of each "
                   "subsampling sum and the 840 RBF distance terms; those are 13,652 of the 340,908 (4.0%) and are "
                   "exactly reproduced in tests/zoo (madds + biases + pooled inputs + RBF terms = 340,908)"),
    differs="Not in torchvision or timm; the usual 'LeNet-5' of tutorials (full C3, max pooling, softmax FC) has "
            "61,706 parameters, not 60,000.",
)
def lenet5(**kwargs: object) -> LeNet5:
    """LeNet-5 as printed in 1998: 32x32 grey input, 10 RBF output units."""
    return LeNet5(**kwargs)  # type: ignore[arg-type]


@register_model(
    "alexnet_v1", family="alexnet", paper="ImageNet Classification with Deep Convolutional Neural Networks "
    "(Krizhevsky et al., NIPS 2012)", arxiv="", input_size=(3, 227, 227), table="MobileNet Table 9 / ShuffleNet "
    "Table 6",
    params=Expected(Ref("AlexNet", "Parameters", source="Howard", table="Table 9"), 0.02,
                    "'60 million' is a round figure (the paper's own words; MobileNet Table 9 repeats it): the count "
                    "60,965,224 lies 1.6% above it"),
    madds=Expected(Ref("AlexNet", "Mult-Adds", source="Howard", table="Table 9"), 0.007,
                   "720 is 724.4 M rounded to two significant digits (0.6%); ShuffleNet Table 6 prints the same 720"),
    differs=_D2 + " Input is the 227x227 crop that makes conv1's 55x55 output (224 gives 54.25).",
    finding="ShuffleNet and MobileNet quote 720 M mult-adds for the grouped net at 227 (724.4 M); the ungrouped "
            "variant would be 1.135 G.",
)
def alexnet_v1(**kwargs: object) -> PlainConvNet:
    """The 2012 two-tower AlexNet: grouped conv2/4/5, LRN after conv1/conv2, 227x227 input."""
    return PlainConvNet(ALEXNET_STAGES, fc=(4096, 4096), fc_input=(256, 6, 6), **kwargs)  # type: ignore[arg-type]


@register_model(
    "zfnet", family="alexnet", paper="Visualizing and Understanding Convolutional Networks (Zeiler & Fergus, "
    "ECCV 2014)", arxiv="1311.2901", input_size=(3, 224, 224), table="Fig. 3",
    note="The paper prints no parameter or operation count; tests/zoo checks the map sizes of Fig. 3 "
         "(110, 55, 26, 13, 13, 13, 6) and the parameter count derived by hand.",
    differs="Not in torchvision or timm. AlexNet with a 7x7/2 first layer, a 5x5/2 second layer and dense "
            "(single-GPU) conv3-5; pooling before contrast normalisation as in Fig. 3.",
)
def zfnet(**kwargs: object) -> PlainConvNet:
    """ZFNet (Fig. 3): 7x7/2 and 5x5/2 first layers, feature maps 110-55-26-13-13-13-6."""
    return PlainConvNet(ZFNET_STAGES, fc=(4096, 4096), fc_input=(256, 6, 6), lrn_before_pool=False,
                        **kwargs)  # type: ignore[arg-type]


@register_model(
    "nin", family="nin", paper="Network In Network (Lin, Chen & Yan, ICLR 2014)", arxiv="1312.4400",
    input_size=(3, 224, 224), table="Caffe Model Zoo (NIN-ImageNet)",
    note="The paper reports CIFAR-10/100, SVHN and MNIST only and prints no parameter count; this is the authors' "
         "ImageNet release. tests/zoo checks its parameter count derived by hand.",
    differs="Not in torchvision or timm.",
)
def nin(**kwargs: object) -> PlainConvNet:
    """NiN for ImageNet: four mlpconv layers (conv + two 1x1 convs), global average pooling, no FC layer."""
    return PlainConvNet(NIN_STAGES, **kwargs)  # type: ignore[arg-type]


_VGG = dict(family="vgg", paper="Very Deep Convolutional Networks for Large-Scale Image Recognition (Simonyan & "
            "Zisserman, ICLR 2015)", arxiv="1409.1556", input_size=(3, 224, 224),
            differs="torchvision's vgg16/vgg19 are configurations D/E unchanged (the same builder); timm's "
                    "vgg16/vgg19 write fc6/fc7 as convs (ConvMlp), same parameters and multiply-adds.")

register_model(
    "vgg16", **_VGG, table="VGG Table 2; ResNet Sec. 4.1",
    params=Expected.rounded(Ref("VGG", "Number of parameters", variant="D (VGG-16)"),
                            "Table 2 prints 138 (million): 138,357,544 rounded to the million"),
    madds=Expected.rounded(Ref("VGG-16", "FLOPs", source="He et al", table="Sec.4.1"),
                           "one decimal in billions (tolerance: half a unit); the gap is larger, see finding",
                           finding="the count is 15.470 G (conv 15.347 G + FC 0.124 G), as SENet, torchvision and "
                                   "timm print (15.47); the ResNet paper's 15.3 matches the conv layers alone, yet its "
                                   "VGG-19 figure (19.6) includes the FC layers: published.csv NOTES, D5. A "
                                   "hypothesis, unconfirmed by the paper.", observed="15.470 G"),
    top1_err=Ref("VGG-16 (their test)", "top-1 error", table="Table 3"),
    top5_err=Ref("VGG-16 (their test)", "top-5 error", table="Table 3"),
    same_as=("timm:vgg16",),
)(torchvision_builder("vgg16"))

register_model(
    "vgg19", **_VGG, table="VGG Table 2; ResNet Sec. 3.3",
    params=Expected.rounded(Ref("VGG", "Number of parameters", variant="E (VGG-19)"),
                            "Table 2 prints 144 (million): 143,667,240 rounded to the million"),
    madds=Expected.rounded(Ref("VGG-19", "FLOPs", source="He et al", table="Sec.3.3"),
                           "19.6 is 19.632 G (conv + FC) rounded to one decimal (tolerance: half a unit)"),
    same_as=("timm:vgg19",),
)(torchvision_builder("vgg19"))
