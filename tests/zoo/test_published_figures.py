"""Every zoo model counted at its paper's input size against the figures its paper published.

The expected figures are rows of ``archstat/data/published.csv`` (never retyped here);
the tolerance and its reason are each entry's metadata. A gap the metadata records as a
finding must stay that gap: the count must print as the finding's observed value (a count
elsewhere is a mismatch, one back within the tolerance a stale finding), and a gap
without a finding fails.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache

import pytest
from torch import nn

from archstat.cli import main
from archstat.conventions import PaperScope
from archstat.counting.stats import ModelStats
from archstat.zoo import ZOO, Expected, Ref
from archstat.zoo.check import Comparison, compare, count_entry
from archstat.zoo.resnet import Bottleneck, ResNet


@lru_cache(maxsize=None)
def counted(name: str) -> ModelStats:
    return count_entry(ZOO[name])


CASES = [(name, metric) for name in ZOO for metric in ("params", "madds")]


@pytest.mark.parametrize(("name", "metric"), CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_count_against_published_figure(name: str, metric: str) -> None:
    [comparison] = [c for c in compare(ZOO[name], counted(name)) if c.metric == metric]
    assert comparison.verdict in ("ok", "finding", "unpublished"), (
        f"{name} {metric}: counted {comparison.counted:,}, published {comparison.published_value:,.0f} "
        f"({comparison.delta:+.3%}, tolerance {comparison.expected.tolerance:.3%}): {comparison.verdict}")
    if comparison.verdict == "unpublished":
        assert ZOO[name].note  # says why no figure exists


@pytest.mark.parametrize("name", sorted(ZOO))
def test_counts_on_meta_with_every_op_known(name: str) -> None:
    """No CPU fallback (slow, allocates) and no uncounted op: the totals are complete."""
    stats = counted(name)
    assert stats.device == "meta"
    assert not stats.uncounted


def test_verdicts() -> None:
    """The verdict logic on a figure with a known delta: SE-ResNet-50's 3.87 G against made-up counts.
    3.87 G with a tolerance of 0.1% admits 3.86613-3.87387 G; a finding observed at "3.860 G" explains
    the counts that print so, 3.8595-3.8605 G."""
    ref = Ref("SE-ResNet-50", "GFLOPs", table="Table 2")
    tight, loose = Expected(ref, 0.001, "test"), Expected(ref, 0.01, "test")
    finding = Expected(ref, 0.001, "test", finding="counted 3.860 G", observed="3.860 G")
    count = 3_860_000_000  # 3.86 G: 0.26% under 3.87 G
    assert Comparison("m", "madds", count, loose).verdict == "ok"
    assert Comparison("m", "madds", count, tight).verdict == "mismatch"
    assert Comparison("m", "madds", count, finding).verdict == "finding"
    assert Comparison("m", "madds", 3_860_499_000, finding).verdict == "finding"  # still prints as 3.860
    assert Comparison("m", "madds", 3_860_501_000, finding).verdict == "mismatch"  # prints as 3.861
    assert Comparison("m", "madds", 2 * count, finding).verdict == "mismatch"  # a doubled count explains nothing
    assert Comparison("m", "madds", 3_870_000_000, finding).verdict == "stale finding"
    assert Comparison("m", "madds", count, None).verdict == "unpublished"
    assert Comparison("m", "madds", count, loose).delta == pytest.approx(-0.01 / 3.87)


class Twice(nn.Module):
    """Runs a network twice: the same parameters, twice the multiply-adds."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        self.net(x)
        return self.net(x)


@pytest.mark.parametrize(("name", "perturbed"), [
    # SE-ResNet-50's multiply-adds doubled (the regression the finding must not absorb).
    ("se_resnet50", lambda entry: Twice(entry.build())),
    # SE blocks at r = 8 instead of 16: the SE FCs cost twice their 2.5 M, 3.8630 G, 0.07% above the 3.8605 G
    # the finding explains, and still outside the tolerance of the printed 3.87 G.
    ("se_resnet50", lambda entry: ResNet(Bottleneck, (3, 4, 6, 3), stride_in_1x1=True, se_reduction=8)),
    # ShuffleNet v2 1x with a 10-class head: 1024 x 990 = 1,013,760 fewer multiply-adds than the 144.91 M
    # the finding explains.
    ("shufflenet_v2_x1_0", lambda entry: entry.build(num_classes=10)),
])
def test_zoo_check_reports_a_mismatch_for_a_perturbed_model_with_a_finding(name: str, perturbed, monkeypatch,
                                                                            capsys) -> None:
    """A model that carries a finding, changed: its count leaves the finding's band, and ``zoo --check``
    says mismatch and exits 1; unchanged, the same command reports the finding and exits 0."""
    entry = ZOO[name]
    assert main(["zoo", "--check", "--models", name, "--format", "json"]) == 0
    assert {r["metric"]: r["verdict"] for r in json.loads(capsys.readouterr().out)}["madds"] == "finding"
    monkeypatch.setitem(ZOO, name, replace(entry, builder=lambda **kwargs: perturbed(entry)))
    assert main(["zoo", "--check", "--models", name, "--format", "json"]) == 1
    assert {r["metric"]: r["verdict"] for r in json.loads(capsys.readouterr().out)}["madds"] == "mismatch"


def test_params_exclude_an_auxiliary_head_the_forward_pass_never_runs() -> None:
    """torchvision's inception_v3 builds its training-only auxiliary classifier: 3,326,696 parameters
    (conv0 768->128 1x1 without bias + BN: 98,304 + 256; conv1 128->768 5x5 + BN: 2,457,600 + 1,536;
    fc 768->1000: 769,000), counted in params but not in the inference network's."""
    stats = counted("inception_v3")
    aux = 768 * 128 + 2 * 128 + 128 * 768 * 25 + 2 * 768 + 768 * 1000 + 1000
    assert sum(stats.unused_params.values()) == aux == 3_326_696
    assert PaperScope().count(stats, "params") == stats.params - aux


def test_params_without_batch_norm_for_resnext() -> None:
    """ResNeXt's Table 1 counts without BN gamma/beta: 2 per BN channel. ResNeXt-50 32x4d has BN
    channels 64 (stem) + per block 2*width + 4*planes (+ 4*planes on the projection):
    stage widths 128/256/512/1024, planes 64/128/256/512, blocks 3/4/6/3."""
    channels = 64 + sum(n * (2 * w + 4 * p) + 4 * p for n, w, p in
                        ((3, 128, 64), (4, 256, 128), (6, 512, 256), (3, 1024, 512)))
    stats = counted("resnext50_32x4d")
    assert ZOO["resnext50_32x4d"].params.scope == PaperScope(bn_affine=False)
    assert PaperScope(bn_affine=False).count(stats, "params") == stats.params - 2 * channels == 24_960_680


def test_madds_without_the_fc_layer_for_shufflenet_table1() -> None:
    """ShuffleNet's Table 1 counts without the final FC layer: 1000 x 960 (the g = 3 stage-4 width)."""
    stats = counted("shufflenet_v1_g3_x1_0")
    [fc] = [r for r in stats.records if r.name == "fc"]
    assert fc.cost.madds == 960 * 1000
    assert PaperScope(with_fc=False).count(stats, "madds") == stats.madds - 960_000


@pytest.mark.parametrize("name", ["lenet5", "nin", "mobilenet_v1_x0_25", "shufflenet_v1_g2_x0_5",
                                  "squeezenet1_0_complex_bypass", "se_preact_resnet18"])
def test_meta_count_equals_a_real_cpu_run(name: str) -> None:
    """The zoo's own implementations run on real tensors too (batch 1 at the paper's input), with the
    class count the paper's head gives, and the meta count is the CPU count."""
    cpu = count_entry(ZOO[name], device="cpu")
    assert (cpu.params, cpu.madds, cpu.flops) == (counted(name).params, counted(name).madds, counted(name).flops)
    model = ZOO[name].build().eval()
    import torch

    with torch.inference_mode():
        out = model(torch.randn(1, *ZOO[name].input_size))
    assert out.shape == (1, 10 if ZOO[name].input_size[1] == 32 else 1000)
