"""ShuffleNet v1 against the paper: Table 1 (per group count) and Table 2 (per scale).

Published figures come from ``published.csv`` (arXiv:1707.01083v2). The paper's
"FLOPs" are multiply-adds (Table 1 caption), archstat's ``madds``.
"""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch

import archstat
from archstat.counting.stats import ModelStats
from archstat.published import published
from archstat.zoo import ZOO
from archstat.zoo.shufflenet import ChannelShuffle, ShuffleNetV1, nominal_complexity, shufflenet_v1_widths

GROUPS = (1, 2, 3, 4, 8)
SCALES = {"0.25x": "x0_25", "0.5x": "x0_5", "1x": "x1_0", "1.5x": "x1_5", "2x": "x2_0"}


@lru_cache(maxsize=None)
def counted(groups: int, suffix: str) -> ModelStats:
    return archstat.count(f"shufflenet_v1_g{groups}_{suffix}")


def _fc_madds(stats: ModelStats) -> int:
    return int(stats.layers.loc[stats.layers.name == "fc", "madds"].item())


@pytest.mark.parametrize("groups", GROUPS)
def test_table1_stage_widths(groups: int) -> None:
    _, widths = shufflenet_v1_widths(groups, 1.0)
    printed = tuple(int(published(model="ShuffleNet 1x", metric=f"Stage{s} output channels", variant=f"g={groups}",
                                  table="Table 1").value) for s in (2, 3, 4))
    assert widths == printed


@pytest.mark.parametrize("groups", GROUPS)
def test_table1_complexity_per_group_count(groups: int) -> None:
    """Table 1's complexity (143/140/137/133/137 M for g = 1/2/3/4/8) is the count without the final FC
    layer, rounded to the million; the FC layer (1000 x stage-4 width) is what it leaves out."""
    stats = counted(groups, "x1_0")
    printed = published(model="ShuffleNet 1x", metric="Complexity", variant=f"g={groups}", table="Table 1").number()
    _, widths = shufflenet_v1_widths(groups, 1.0)
    assert _fc_madds(stats) == 1000 * widths[-1]
    assert round((stats.madds - _fc_madds(stats)) / 1e6) * 1e6 == printed


def test_table1_complexity_is_roughly_constant_across_g_by_design() -> None:
    """Sec. 4.1.1: the widths of Table 1 keep the complexity about the same for every g; the counts
    spread 133-143 M (without the FC layer), within the tolerance Table 2's nominal 140 M is judged by."""
    for g in GROUPS:
        stats = counted(g, "x1_0")
        assert nominal_complexity(g, 1.0).verdict(stats.madds - _fc_madds(stats)) == "ok"


@pytest.mark.parametrize("groups", GROUPS)
@pytest.mark.parametrize("scale", [0.5, 1.0])
def test_table2_complexity_per_scale(groups: int, scale: float) -> None:
    """Table 2 prints one nominal complexity per scale (140 M at 1x, 38 M at 0.5x) for all g: counted like
    Table 1 (without the FC layer), every network is within the spread Table 1's per-g networks show."""
    expected = nominal_complexity(groups, scale)
    assert expected.ref.resolve() == published(model=f"ShuffleNet {scale:g}x", metric="Complexity",
                                               variant="all g", table="Table 2")
    stats = counted(groups, SCALES[f"{scale:g}x"])
    assert expected.verdict(stats.madds - _fc_madds(stats)) == "ok"


@pytest.mark.parametrize("groups", GROUPS)
def test_table2_quarter_scale_is_a_recorded_finding(groups: int) -> None:
    """At 0.25x the counts without the FC layer (10.8-12.0 M) are 7-17% under Table 2's 13 M: beyond the
    nominal spread, and explained by the finding every 0.25x entry records."""
    stats = counted(groups, "x0_25")
    entry = ZOO[f"shufflenet_v1_g{groups}_x0_25"].madds
    assert entry == nominal_complexity(groups, 0.25)
    assert entry.verdict(stats.madds - _fc_madds(stats)) == "finding"


@pytest.mark.parametrize("groups", GROUPS)
def test_unit_cost_is_the_papers_formula(groups: int) -> None:
    """Sec. 3.2: a stride-1 ShuffleNet unit with input c x h x w and bottleneck m costs hw(2cm/g + 9m)
    multiply-adds (the first and last grouped 1x1 convs, and the 3x3 depthwise conv). Stage 3 of the 1x
    network: c = Table 1's stage-3 width, m = c/4, h = w = 14."""
    stats = counted(groups, "x1_0")
    rows = stats.layers[stats.layers.name.str.startswith("stage3.1.")]
    c = shufflenet_v1_widths(groups, 1.0)[1][1]
    m = c // 4
    assert int(rows.madds.sum()) == 14 * 14 * (2 * c * m // groups + 9 * m)


@pytest.mark.parametrize("groups", GROUPS)
def test_first_pointwise_of_stage2_is_not_grouped(groups: int) -> None:
    """Sec. 3.3: "we do not apply group convolution on the first pointwise layer [of Stage 2] because the
    number of input channels is relatively small"; every other 1x1 conv is grouped."""
    model = ShuffleNetV1(groups, 1.0)
    pointwise = [(name, m) for name, m in model.named_modules()
                 if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
    assert pointwise[0][0] == "stage2.0.branch.0" and pointwise[0][1].groups == 1
    assert all(m.groups == groups for _, m in pointwise[1:])


def test_bottleneck_is_a_quarter_of_the_output() -> None:
    unit = ShuffleNetV1(3, 1.0).stage3[1]
    assert unit.branch[0].out_channels == 480 // 4


def test_channel_shuffle_interleaves_the_groups() -> None:
    """Fig. 1(c): with 3 groups of 3 channels, channel j of group i moves to position 3j + i."""
    x = torch.arange(9.0).view(1, 9, 1, 1)
    assert ChannelShuffle(3)(x).flatten().tolist() == [0, 3, 6, 1, 4, 7, 2, 5, 8]


@pytest.mark.parametrize(("groups", "scale", "widths"), [
    # stage_out_channels of megvii-model/ShuffleNet-Series, ShuffleNetV1/network.py (stem, stage 2, 3, 4)
    (3, 0.5, (12, 120, 240, 480)), (3, 1.0, (24, 240, 480, 960)), (3, 1.5, (24, 360, 720, 1440)),
    (3, 2.0, (48, 480, 960, 1920)), (8, 0.5, (16, 192, 384, 768)), (8, 1.0, (24, 384, 768, 1536)),
    (8, 1.5, (24, 576, 1152, 2304)), (8, 2.0, (48, 768, 1536, 3072)),
])
def test_width_rule_reproduces_the_official_code(groups: int, scale: float, widths: tuple[int, ...]) -> None:
    stem, stages = shufflenet_v1_widths(groups, scale)
    assert (stem, *stages) == widths


@pytest.mark.parametrize("groups", GROUPS)
@pytest.mark.parametrize("scale", [0.25, 0.5, 1.0, 1.5, 2.0])
def test_every_width_is_valid_for_its_groups(groups: int, scale: float) -> None:
    stem, stages = shufflenet_v1_widths(groups, scale)
    assert stem % groups == 0
    assert all(w % (4 * groups) == 0 for w in stages)
    assert (stages[0] - stem) % groups == 0  # the concat branch of the first unit
