"""The guideline experiments' setups: channels, FLOPs matching, the paper's figures and the networks."""

from __future__ import annotations

import pytest

import archstat
from archstat.errors import ArchstatError
from archstat.guidelines.experiments import FLOPS_TOLERANCE, WIDTHS, balanced_pair, setups
from archstat.guidelines.networks import Bottleneck, ParallelBranches, stack


@pytest.mark.parametrize("product,ratio,multiple,expected", [
    (128 * 128, 1, 1, (128, 128)),   # exact square
    (128 * 128, 2, 1, (90, 182)),    # 16,380 = 0.02% off; ratio 2.02 (printed (90,180) is 1.1% off)
    (128 * 128, 12, 1, (37, 443)),   # 16,391 = 0.04% off; ratio 11.97 (printed (36,432) is 5.1% off)
    (2 * 128 * 128, 1, 2, (180, 182)),  # g=2: 180*182/2 = 16,380; no even c gives c*c/2 within 1%
    (8 * 128 * 128, 1, 8, (336, 392)),  # g=8: 336*392/8 = 16,464 (+0.49%): most balanced within 0.5%
])
def test_balanced_pair(product, ratio, multiple, expected) -> None:
    c1, c2 = balanced_pair(product, ratio, multiple)
    assert (c1, c2) == expected
    assert abs(c1 * c2 / product - 1) <= FLOPS_TOLERANCE and c1 % multiple == 0 and c2 % multiple == 0


@pytest.mark.parametrize("platform", ["gpu", "arm"])
@pytest.mark.parametrize("width", WIDTHS[:2])
def test_matched_channels_hold_flops_within_tolerance(platform, width) -> None:
    for group in setups(widths=(width,), platform=platform):
        madds = [archstat.count(s.build(), (1, *s.input_shape)).madds for s in group]
        assert all(abs(m / madds[0] - 1) <= FLOPS_TOLERANCE for m in madds), (group[0].experiment, madds)


def test_paper_channels_are_the_printed_ones_with_their_flops_gaps() -> None:
    [g1, g2, _, _] = setups(paper_channels=True)
    assert [s.channels for s in g1] == ["(128,128)", "(90,180)", "(52,312)", "(36,432)"]  # Table 1, GPU x1
    madds = [archstat.count(s.build(), (1, *s.input_shape)).madds for s in g1]
    # 2 convs x 10 blocks x 3136 x c1 c2: (36,432) has 15,552 vs 16,384 per pixel: -5.08%
    assert madds[0] == 20 * 3136 * 128 * 128 and madds[3] == 20 * 3136 * 36 * 432
    assert [s.channels for s in g2] == ["c=128", "c=180", "c=256", "c=360"]  # Table 2, GPU x1


def test_printed_arm_g2_width_not_divisible_by_groups_is_rounded_and_said() -> None:
    # Table 2 ARM column prints c=180 for g=8; 180/8 is not an integer. 184^2/8 = 4,232 is closer to
    # 64^2 = 4,096 than 176^2/8 = 3,872.
    g2 = setups(["G2"], platform="arm", paper_channels=True)[0]
    assert g2[3].channels.startswith("c=184 (printed 180 is not divisible by g=8)")


def test_every_row_cites_the_paper_for_gpu_and_arm() -> None:
    for group in setups(widths=WIDTHS):
        for s in group:
            assert set(s.paper) == {"GPU", "ARM"}
            for row in s.paper.values():
                assert "arXiv:1807.11164" in row.citation and f"({s.experiment})" in row.citation
    # spot check against the paper, Table 1 row 1:1 at x1: GPU 1480 batches/s, ARM 76.2 images/s;
    # Table 4, ReLU and shortcut removed, c=128 (x4): GPU 1782, ARM 5.4
    g1 = setups(["G1"])[0][0]
    assert (g1.paper["GPU"].number(), g1.paper["ARM"].number()) == (1480, 76.2)
    g4 = setups(["G4"], widths=(4,))[0][3]
    assert (g4.config, g4.paper["GPU"].number(), g4.paper["ARM"].number()) == ("none", 1782, 5.4)


def test_g3_widths_come_from_the_paper_columns() -> None:
    # Table 3: GPU c = 128 / 256 / 512, ARM ("CPU") c = 64 / 128 / 256 for x1 / x2 / x4
    assert [setups(["G3"], widths=(w,))[0][0].paper_channels for w in WIDTHS] == ["c=128", "c=256", "c=512"]
    assert [setups(["G3"], widths=(w,), platform="arm")[0][0].paper_channels for w in WIDTHS] == \
        ["c=64", "c=128", "c=256"]


def test_parallel_fragments_keep_the_one_fragment_flops_and_read_the_input_n_times() -> None:
    # 4 branches 128 -> 32 on 56x56, concatenated: madds = 3136 * 128 * 128 (as one 128 -> 128 conv);
    # MAC = 4 * (in 401,408 + out 100,352 + w 4,096) + cat (in 401,408 + out 401,408)
    stats = archstat.count(ParallelBranches(128, 4), (1, 128, 56, 56))
    assert stats.madds == 3136 * 128 * 128
    assert stats.mem_access == 4 * (401_408 + 100_352 + 4_096) + 2 * 401_408


@pytest.mark.parametrize("relu,shortcut,relus,adds", [(True, True, 3, 1), (True, False, 3, 0), (False, True, 0, 1),
                                                       (False, False, 0, 0)])
def test_bottleneck_variants(relu, shortcut, relus, adds) -> None:
    stats = archstat.count(Bottleneck(32, relu, shortcut), (1, 32, 56, 56))
    kinds = [r.kind for r in stats.records]
    assert kinds.count("relu") == relus and kinds.count("add") == adds
    # convs: 3136 * (32*8 + 9*8*8 + 8*32) = 3136 * 1,088 multiply-adds, whatever is removed
    assert stats.madds == 3136 * 1_088


def test_unknown_experiment_width_or_platform_is_one_line_error() -> None:
    with pytest.raises(ArchstatError, match="unknown experiment"):
        setups(["G5"])
    with pytest.raises(ArchstatError, match="x1, x2, x4"):
        setups(["G1"], widths=(3,))
    with pytest.raises(ArchstatError, match="gpu or arm"):
        setups(["G1"], platform="tpu")


def test_stack_builds_fresh_blocks() -> None:
    net = stack(lambda: Bottleneck(32))
    assert len(net) == 10 and net[0] is not net[1] and net[0].conv1.weight is not net[1].conv1.weight
