"""The benchmark networks of ShuffleNet V2, Sec. 2 (Ma et al., arXiv:1807.11164).

Every network is one building block stacked 10 times, run on a 56x56 feature map
(the paper's setting for Tables 1-4). Convolutions have no bias and there is no batch
norm: the experiments isolate the convolutions (G1-G3) and ReLU / shortcut (G4),
and at inference a batch norm is folded into its conv anyway.

* G1 (Table 1): two 1x1 convs, ``c1 -> c2`` then ``c2 -> c1``.
* G2 (Table 2): "10 pointwise group convolution layers", here as 5 pairs
  ``ca -> cb -> ca`` with ``g`` groups (``ca = cb = c`` when the FLOPs allow it).
* G3 (Table 3, appendix Fig. 1): ``n`` 1x1 convs in series, or ``n`` 1x1 convs in
  parallel on the block input whose outputs are concatenated (the Inception-style
  merge; the paper's figure is not available as text, see :class:`ParallelBranches`).
* G4 (Table 4): ResNet's bottleneck (1x1, 3x3, 1x1, ReLU after each, identity
  shortcut added before the last ReLU) with ReLU and/or shortcut removed. ``c`` is
  the unit's input/output width and the bottleneck width is ``c / 4``, as in ResNet.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["REPEATS", "SPATIAL", "pointwise", "stack", "ConvChain", "ParallelBranches", "Bottleneck"]

#: Blocks per benchmark network (paper: "stacking 10 building blocks repeatedly").
REPEATS = 10
#: Feature map size of every benchmark (paper: "Input image size is 56 x 56").
SPATIAL = (56, 56)


def pointwise(c_in: int, c_out: int, groups: int = 1) -> nn.Conv2d:
    """A bias-free 1x1 convolution."""
    return nn.Conv2d(c_in, c_out, 1, groups=groups, bias=False)


class ConvChain(nn.Sequential):
    """1x1 convolutions in series through ``widths`` (``widths[0] -> widths[1] -> ...``), ``groups`` each."""

    def __init__(self, widths: Sequence[int], groups: int = 1) -> None:
        super().__init__(*(pointwise(a, b, groups) for a, b in zip(widths[:-1], widths[1:])))


class ParallelBranches(nn.Module):
    """``n`` parallel 1x1 convs on the same input, ``c -> c / n`` each, concatenated to ``c``.

    Same FLOPs and weights as one ``c -> c`` conv, but ``n`` kernel launches, the input
    read ``n`` times, and a concat. The merge is an assumption: the paper's appendix
    Fig. 1 (d, e) shows the blocks only as a picture; concatenation (Inception style)
    keeps the FLOPs of the 1-fragment block exactly, as the Table 3 caption requires.
    """

    def __init__(self, channels: int, branches: int) -> None:
        super().__init__()
        if channels % branches:
            raise ValueError(f"{branches} parallel branches cannot split {channels} channels evenly")
        self.branches = nn.ModuleList(pointwise(channels, channels // branches) for _ in range(branches))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class Bottleneck(nn.Module):
    """ResNet's bottleneck unit without batch norm, with ``relu`` and ``shortcut`` switchable.

    ``c -> c/4`` (1x1), ``c/4 -> c/4`` (3x3, padding 1), ``c/4 -> c`` (1x1); ReLU after
    the first two convs and after the (optional) identity addition.
    """

    def __init__(self, channels: int, relu: bool = True, shortcut: bool = True) -> None:
        super().__init__()
        if channels % 4:
            raise ValueError(f"bottleneck width {channels} is not divisible by 4")
        inner = channels // 4
        self.conv1 = pointwise(channels, inner)
        self.conv2 = nn.Conv2d(inner, inner, 3, padding=1, bias=False)
        self.conv3 = pointwise(inner, channels)
        self.relu = nn.ReLU(inplace=True) if relu else None
        self.shortcut = shortcut

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x) if self.relu is not None else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._act(self.conv1(x))
        out = self._act(self.conv2(out))
        out = self.conv3(out)
        if self.shortcut:
            out = out + x
        return self._act(out)


def stack(block, repeats: int = REPEATS) -> nn.Sequential:
    """``repeats`` fresh blocks from the zero-argument factory ``block``, in series."""
    return nn.Sequential(*(block() for _ in range(repeats)))
