"""What the counter promises: every op once, unknown ops reported, the user's model untouched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archstat
from archstat.counting.inputs import SEED
from archstat.errors import CountError, InputTooSmallError, UncountedOpWarning, UnknownModelError


class UnknownOp(nn.Module):
    """A conv followed by an op archstat has no formula for (a Bessel function)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return torch.special.bessel_j0(self.conv(x))


def test_unknown_op_is_an_uncounted_row_and_a_warning() -> None:
    with pytest.warns(UncountedOpWarning, match=r"special_bessel_j0.*1x8x30x30"):
        stats = archstat.count(UnknownOp(), (1, 3, 32, 32))
    [row] = stats.uncounted
    assert row.name == "special_bessel_j0" and "bessel" in row.type and row.input_shapes == ((1, 8, 30, 30),)
    table = stats.layers
    assert not table.loc[table.name == "special_bessel_j0", "counted"].item()
    # the known ops around it are still counted: conv 8*30*30 * 3*9 madds
    assert stats.madds == 8 * 30 * 30 * 27


class Twice(nn.Module):
    """One linear layer applied twice, and a second layer whose weight is tied to the first."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16, bias=False)
        self.tied = nn.Linear(16, 16, bias=False)
        self.tied.weight = self.fc.weight

    def forward(self, x):
        return self.tied(self.fc(self.fc(x)))


def test_reused_module_counts_each_call_and_shared_weights_once() -> None:
    stats = archstat.count(Twice(), (4, 16))
    assert stats.madds == 3 * 4 * 16 * 16  # three matrix products of 4x16 by 16x16
    assert stats.params == 256  # one weight matrix, however often it is used
    assert [r.cost.params for r in stats.records] == [256, 0, 0]


def test_no_op_counted_by_both_a_module_hook_and_the_function_interception() -> None:
    # resnet18: 20 convs + 1 fc carry all the madds; 1,814,073,344 is torchvision's 1.814 G exactly
    # (the derived conv+fc count in published.csv).
    stats = archstat.count("resnet18")
    assert stats.madds == 1_814_073_344
    assert len(stats.layers.query("kind.str.startswith('conv')")) == 20
    assert not stats.layers["name"].str.contains(":conv2d").any()


def test_residual_add_and_se_scale_written_as_operators_are_counted() -> None:
    stats = archstat.count("se_resnet50")
    kinds = stats.layers["kind"].value_counts()
    assert kinds["add"] == 16 and kinds["mul"] == 16  # one residual add and one SE scale per bottleneck
    # the first SE scale: x (1,256,56,56) * s (1,256,1,1): one flop per output element
    first_mul = stats.layers.query("kind == 'mul'").iloc[0]
    assert first_mul["flops"] == 256 * 56 * 56


class Attention(nn.Module):
    def __init__(self, dim: int = 32, heads: int = 4) -> None:
        super().__init__()
        self.qkv, self.heads = nn.Linear(dim, 3 * dim), heads

    def forward(self, x):
        n, length, dim = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_scaled_dot_product_attention_is_counted(device: str) -> None:
    stats = archstat.count(Attention(), (2, 10, 32), device=device)
    # qkv: 2*10*32*96 = 61,440; attention: batch*heads 8, L=S=10, E=8: 8*10*10*(8+8) = 12,800
    assert stats.madds == 61_440 + 12_800
    assert "attention" in set(stats.layers["kind"])


def test_multihead_attention_fast_path_is_counted() -> None:
    # torchvision's vit_b_16: 17.564 G in its weight metadata. torch's FlopCounterMode misses the
    # attention of nn.MultiheadAttention's inference fast path and reports about 11.3 G.
    stats = archstat.count("vit_b_16")
    assert round(stats.madds / 1e9, 3) == 17.564
    # every parameter is used, the class token through an expanded view of it
    assert stats.unused_params == {}


def test_transformer_encoder_layer_in_eval_is_counted() -> None:
    layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, batch_first=True)
    stats = archstat.count(layer, (2, 10, 64))
    # attention: 4 projections 20*64*64 + scores and weighted sum 2*2*10*10*64; MLP: 20*64*128*2
    assert stats.madds == 4 * 20 * 64 * 64 + 2 * 2 * 10 * 10 * 64 + 2 * 20 * 64 * 128


def _state(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_users_model_is_left_exactly_as_it_was() -> None:
    model = archstat.create_model("resnet18")
    model.train()
    model.layer2.eval()  # mixed flags must come back as they were
    before_state, before_flags = _state(model), {n: m.training for n, m in model.named_modules()}
    before_attrs = {n: set(vars(m)) for n, m in model.named_modules()}
    stats = archstat.count(model, (1, 3, 64, 64))
    assert stats.device == "meta"  # counted on meta stand-ins, not on the real weights
    after_state = model.state_dict()
    assert before_state.keys() == after_state.keys()
    assert all(torch.equal(before_state[k], after_state[k]) for k in before_state)
    assert {n: m.training for n, m in model.named_modules()} == before_flags
    assert {n: set(vars(m)) for n, m in model.named_modules()} == before_attrs
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


class ReadsValues(nn.Module):
    """Data-dependent control flow: cannot run on meta tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y * 2 if y.sum().item() > 1e9 else y


def test_falls_back_to_cpu_and_says_so() -> None:
    stats = archstat.count(ReadsValues(), (1, 3, 8, 8))
    assert stats.device == "cpu"
    assert any("meta cannot run it" in n and f"seed {SEED}" in n for n in stats.notes)
    assert stats.madds == 4 * 64 * 27


def test_cpu_fallback_runs_on_one_thread_and_restores_the_setting() -> None:
    """The CPU fallback counts with one intra-op thread, so the order of float reductions (and a
    branch on values, such as the boxes NMS keeps) does not follow ``torch.set_num_threads``:
    maskrcnn_resnet50_fpn's memory access differed by 14 elements between 1 and 2 threads."""
    seen: list[int] = []

    class RecordsThreads(ReadsValues):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return super().forward(x)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        stats = archstat.count(RecordsThreads(), (1, 3, 8, 8))
        assert stats.device == "cpu" and seen[-1] == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_constructor_computing_on_tensors_builds_with_small_tensors_on_cpu() -> None:
    # torchvision's RegNet derives its widths with torch.round(...).tolist() at construction.
    stats = archstat.count("regnet_y_400mf")
    assert stats.device == "meta" and any("small init tensors" in n for n in stats.notes)
    assert stats.params == 4_344_144  # torchvision RegNet_Y_400MF_Weights num_params


def test_unused_parameters_are_in_params_and_reported() -> None:
    # googlenet built with its auxiliary heads (which torchvision's weights do not carry): in eval they do not run.
    stats = archstat.count("googlenet", model_kwargs={"aux_logits": True})
    assert stats.params == sum(stats.unused_params.values()) + stats.layers["params"].sum()
    assert {n.split(".")[0] for n in stats.unused_params} == {"aux1", "aux2"}
    assert any("never used" in n for n in stats.notes)


def test_batch_scales_work_not_parameters() -> None:
    one, four = archstat.count("resnet18", (1, 3, 64, 64)), archstat.count("resnet18", (4, 3, 64, 64))
    assert four.madds == 4 * one.madds and four.flops == 4 * one.flops and four.params == one.params


def test_count_bias_adds_one_madd_per_biased_output() -> None:
    # alexnet: 5 convs + 3 fc, all biased. Bias outputs: conv 64*55*55 + 192*27*27 + 384*13*13 + 256*13*13*2,
    # fc 4096 + 4096 + 1000.
    biased_outputs = 64 * 55 * 55 + 192 * 27 * 27 + 384 * 169 + 2 * 256 * 169 + 4096 + 4096 + 1000
    plain, with_bias = archstat.count("alexnet"), archstat.count("alexnet", count_bias=True)
    assert with_bias.madds - plain.madds == biased_outputs


def test_input_too_small_names_the_layer() -> None:
    with pytest.raises(InputTooSmallError, match=r"layer 'features\.12' \(MaxPool2d\)"):
        archstat.count("alexnet", (1, 3, 32, 32))


def test_unknown_model_name_suggests_close_matches() -> None:
    with pytest.raises(UnknownModelError, match="did you mean resnet50"):
        archstat.count("resnet5O")


def test_a_model_that_cannot_run_gives_one_line_error() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return self.fc(x.view(-1, 7))

    with pytest.raises(CountError) as info:
        archstat.count(Broken(), (2, 8))
    assert "\n" not in str(info.value) and "Broken" in str(info.value)


def test_pure_views_are_free_and_not_rows() -> None:
    class Shuffle(nn.Module):
        def forward(self, x):
            n, c, h, w = x.shape
            return x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)

    stats = archstat.count(Shuffle(), (1, 8, 4, 4))
    # only the materialising copy remains: read and write 128 elements
    assert [r.kind for r in stats.records] == ["copy"] and stats.mem_access == 256
    assert stats.free_ops == 3


def test_timm_models_by_name_and_glob() -> None:
    pytest.importorskip("timm", reason="timm is optional; the test extra installs it")
    # timm's resnet18 is torchvision's network: 11,689,512 params, 1.814 G multiply-adds
    # (torchvision ResNet18_Weights metadata).
    stats = archstat.count("timm:resnet18")
    assert stats.params == 11_689_512 and stats.madds == 1_814_073_344
    names = archstat.resolve_names("timm:legacy_seresnet5*")
    assert "timm:legacy_seresnet50" in names and all(n.startswith("timm:legacy_seresnet5") for n in names)


class ParamSlices(nn.Module):
    """A parameter read through two slices (as timm's RotaryEmbeddingMixed reads its frequencies)."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(2, 4))

    def forward(self, x):
        return x * self.p[0] + self.p[1]


class ExpandedToken(nn.Module):
    """A class token expanded over the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Parameter(torch.zeros(1, 1, 8))

    def forward(self, x):
        return torch.cat([self.tok.expand(x.shape[0], -1, -1), x], 1)


class LearnedQuery(nn.Module):
    """A parameter fed to a module as its input (timm's AttentionPoolLatent)."""

    def __init__(self) -> None:
        super().__init__()
        self.latent, self.q = nn.Parameter(torch.zeros(1, 1, 8)), nn.Linear(8, 8)

    def forward(self, x):
        return self.q(self.latent.expand(x.shape[0], -1, -1)) @ x.transpose(1, 2)


@pytest.mark.parametrize("model,shape,rows", [
    (ParamSlices(), (1, 4), [8, 0]),  # the whole 2x4 parameter at its first use, not the 4 of a slice
    (ExpandedToken(), (3, 5, 8), [8]),  # the 8 of the token, not the 24 of its expansion over 3 samples
    (LearnedQuery(), (2, 5, 8), [8 + 64 + 8, 0]),  # the query's 8 in the linear row with its weight and bias
])
def test_parameters_used_through_views_or_as_inputs_count_once_where_first_used(model, shape, rows) -> None:
    stats = archstat.count(model, shape)
    assert [r.cost.params for r in stats.records] == rows and not stats.unused_params
    assert sum(rows) == stats.params == sum(p.numel() for p in model.parameters())
