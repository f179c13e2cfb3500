"""Cache models: the lower bound (archstat's mem_access) and the fused model, on a network worked by hand."""

from __future__ import annotations

import pytest
from torch import nn

import archstat
from archstat.errors import ArchstatError
from archstat.latency.memory_model import mem_access_per_op, mem_access_total


@pytest.fixture(scope="module")
def stats():
    # 1x3x8x8 input (192). conv1 3->8 3x3 no bias -> 1x8x6x6 (288), bn1, relu1, conv2 1x1 8->8 with bias,
    # bn2, relu2, bn3 (after a ReLU: nothing to fold into).
    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                        nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.BatchNorm2d(8))
    return archstat.count(net, (1, 3, 8, 8))


def test_lower_bound_is_the_default_mem_access(stats) -> None:
    # conv1 192 + 288 + 216 weights = 696; a BN reads and writes 288 and reads 4 x 8 = 608;
    # a ReLU 2 x 288 = 576; conv2 288 + 288 + 64 + 8 = 648
    assert mem_access_per_op(stats) == [696, 608, 576, 648, 608, 576, 608]
    assert mem_access_total(stats, "lower-bound") == stats.mem_access == 4320


def test_fused_folds_bn_into_the_conv_and_frees_activations(stats) -> None:
    # bn1 folds into bias-free conv1: only its new bias (8) is read; bn2 folds into conv2 which has a
    # bias already: 0; ReLUs: 0; bn3 follows a ReLU: unchanged (608)
    assert mem_access_per_op(stats, "fused") == [696, 8, 0, 648, 0, 0, 608]
    assert mem_access_total(stats, "fused") == 1960


def test_unknown_cache_model(stats) -> None:
    with pytest.raises(ArchstatError, match="unknown cache model 'l2'"):
        mem_access_per_op(stats, "l2")


def test_fused_leaves_adds_and_the_records_alone() -> None:
    stats = archstat.count("resnet18", (1, 3, 64, 64))
    before = [r.cost.mem_access for r in stats.records]
    fused = mem_access_per_op(stats, "fused")
    adds = [(r, m) for r, m in zip(stats.records, fused) if r.kind == "add"]
    assert len(adds) == 8 and all(m == r.cost.mem_access for r, m in adds)
    assert [r.cost.mem_access for r in stats.records] == before
    assert sum(m for r, m in zip(stats.records, fused) if r.kind in ("batch norm", "relu")) == \
        sum(r.output_shape[1] for r in stats.records if r.kind == "batch norm")  # every BN folds: C each
