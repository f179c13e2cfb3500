"""SqueezeNet (Iandola et al., arXiv:1602.07360) with and without bypass connections.

:class:`SqueezeNet` is the v1.0 macro-architecture of Table 1 / Fig. 2: conv1 (96,
7x7/2), Fire modules fire2-fire9, conv10 (1x1, 1000 maps), global average pool, with
3x3/2 max pools (rounding up, as Caffe does) after conv1, fire4 and fire8. ``bypass``
adds the Sec. 6 shortcuts of Fig. 2:

* ``"simple"``: identity shortcuts around fire3, fire5, fire7 and fire9, the modules
  whose input and output widths agree (no extra parameters);
* ``"complex"``: additionally 1x1 conv shortcuts (with bias, "the number of filters
  equal to the number of output channels") around fire2, fire4, fire6 and fire8.

Table 1's spatial sizes (conv1 output 111x111) need a 227x227 input, not the printed
224 (published.csv NOTES, D6); ShuffleNet Table 6's 833 M multiply-adds are the 227
count. torchvision's ``squeezenet1_0`` is this network without bypass and is reused for
the plain model, as is ``squeezenet1_1`` (the v1.1 of the authors' repository: 64
3x3/2 filters in conv1, pools after conv1, fire3 and fire5, 2.4x less computation).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import torch
from torch import nn

from archstat.zoo.registry import Expected, Ref, register_model, torchvision_builder

__all__ = ["SqueezeNet", "Fire", "FIRE_TABLE1"]

#: Table 1, fire2-fire9: (s1x1, e1x1, e3x3); their outputs are e1x1 + e3x3 wide.
FIRE_TABLE1: tuple[tuple[int, int, int], ...] = (
    (16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128),
    (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256),
)


class Fire(nn.Module):
    """Squeeze 1x1 (``s1x1``) then expand 1x1 (``e1x1``) and 3x3 (``e3x3``), concatenated; all ReLU."""

    def __init__(self, cin: int, s1x1: int, e1x1: int, e3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, s1x1, 1)
        self.expand1x1 = nn.Conv2d(s1x1, e1x1, 1)
        self.expand3x3 = nn.Conv2d(s1x1, e3x3, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.relu(self.squeeze(x))
        return torch.cat([self.relu(self.expand1x1(s)), self.relu(self.expand3x3(s))], 1)


class FireBypass(nn.Module):
    """A Fire module plus its Sec. 6 shortcut: the input itself, or a 1x1 conv of it."""

    def __init__(self, fire: Fire, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.fire = fire
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fire(x) + (x if self.shortcut is None else self.shortcut(x))


class SqueezeNet(nn.Module):
    """SqueezeNet v1.0, plain (``bypass=None``) or with simple / complex bypass."""

    def __init__(self, bypass: Literal["simple", "complex"] | None = None, num_classes: int = 1000) -> None:
        super().__init__()
        if bypass not in (None, "simple", "complex"):
            raise ValueError(f"bypass must be None, 'simple' or 'complex', not {bypass!r}")
        layers: list[nn.Module] = [nn.Conv2d(3, 96, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True)]
        cin = 96
        for index, (s1x1, e1x1, e3x3) in enumerate(FIRE_TABLE1, start=2):
            fire = Fire(cin, s1x1, e1x1, e3x3)
            cout = e1x1 + e3x3
            if bypass is not None and cin == cout:
                layers.append(FireBypass(fire, None))
            elif bypass == "complex":
                layers.append(FireBypass(fire, nn.Conv2d(cin, cout, 1)))
            else:
                layers.append(fire)
            if index in (4, 8):
                layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(cin, num_classes, 1), nn.ReLU(inplace=True),
                                        nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# --------------------------------------------------------------------------- registry

_SQUEEZENET = dict(family="squeezenet", paper="SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and "
                   "<0.5MB model size (Iandola et al., 2016)", arxiv="1602.07360", input_size=(3, 227, 227))
_TABLE1_PARAMS = Expected(
    Ref("SqueezeNet (v1.0)", "# parameters before pruning", variant="total", table="Table 1"), 0.0,
    "Table 1 prints the exact count (weights and biases of every conv); tests/zoo pins each layer's row too")
_SHUFFLENET_T6 = Expected.rounded(
    Ref("SqueezeNet", "Complexity", table="Table 6", source="Zhang"),
    "ShuffleNet Table 6 prints 833 (MFLOPs = multiply-adds): the 227x227 count rounded to the million "
    "(tolerance: half a unit)")

register_model(
    "squeezenet1_0", **_SQUEEZENET, table="Table 1 (params); ShuffleNet Table 6 (multiply-adds)",
    params=_TABLE1_PARAMS, madds=_SHUFFLENET_T6,
    same_as=("torchvision:squeezenet1_0",),
    differs="torchvision's squeezenet1_0 is this network (the same builder); its metadata counts it at 224 (0.819 "
            "G), where conv1 would give 109x109 instead of Table 1's 111x111: the zoo counts at 227 (D6).",
    finding="MobileNet Table 9 quotes SqueezeNet at 1700 M mult-adds, about twice the 833 M count: probably 2 "
            "FLOPs per multiply-add (unconfirmed; D6).",
)(torchvision_builder("squeezenet1_0"))

register_model(
    "squeezenet1_1", **{**_SQUEEZENET, "input_size": (3, 224, 224)}, table="torchvision metadata",
    params=Expected(Ref("SqueezeNet1_1", "num_params", source="torchvision"), 0.0,
                    "v1.1 is not in the paper (it is in the authors' repository); torchvision's num_params is exact"),
    madds=Expected.rounded(Ref("SqueezeNet1_1", "_ops (GFLOPS column)", source="torchvision"),
                           "torchvision's 0.349 G is the count at 224 to three decimals (tolerance: half a unit)"),
    note="Counted at 224 like torchvision's metadata, the only published figure for v1.1.",
    same_as=("torchvision:squeezenet1_1",),
    differs="torchvision's squeezenet1_1 (the same builder); v1.1 has no paper of its own.",
)(torchvision_builder("squeezenet1_1"))

register_model(
    "squeezenet1_0_simple_bypass", **_SQUEEZENET, table="Table 1 (params); Sec. 6",
    params=Expected(Ref("SqueezeNet (v1.0)", "# parameters before pruning", variant="total", table="Table 1"), 0.0,
                    "identity shortcuts add no parameters (Sec. 6), so Table 1's exact count holds"),
    madds=_SHUFFLENET_T6,
    differs="Not in torchvision or timm.",
    note="Sec. 6 / Fig. 2 (middle): identity bypass around fire3, fire5, fire7, fire9; the four additions are "
         "element-wise work (FLOPs), not multiply-adds.",
)(partial(SqueezeNet, bypass="simple"))

register_model(
    "squeezenet1_0_complex_bypass", **_SQUEEZENET, table="Sec. 6",
    note="Sec. 6 / Fig. 2 (right): simple bypass plus 1x1 conv bypasses around fire2, fire4, fire6, fire8. The "
         "reference table holds no figure for it; tests/zoo checks the extra parameters and multiply-adds of the "
         "four 1x1 convs derived by hand.",
    differs="Not in torchvision or timm.",
)(partial(SqueezeNet, bypass="complex"))
