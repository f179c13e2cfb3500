"""What the counter promises: every op once, unknown ops reported, the user's model untouched."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import archstat
from archstat.counting.handlers import FREE_FUNCTIONS, UNCOUNTED, call_handler, normalise_name
from archstat.counting.inputs import SEED
from archstat.errors import (CountError, FormulaMismatchWarning, InputShapeError, InputTooSmallError,
                             UncountedOpWarning, UnknownModelError)


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


class RegistersInForward(nn.Module):
    """A forward that registers a parameter it never uses (a lazily made table, say)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        if not hasattr(self, "table"):
            self.table = nn.Parameter(torch.zeros(5, device=x.device))
        return self.fc(x)


def test_a_parameter_registered_by_the_forward_is_in_params_under_its_name() -> None:
    model = RegistersInForward()
    stats = archstat.count(model, (1, 3))
    # fc: 3*4 weights + 4 biases = 16, used by its row; table: 5, registered on the copy the count runs and unused
    assert stats.params == 16 + 5
    assert stats.unused_params == {"table": 5}
    assert not hasattr(model, "table")  # the user's model is not the one that ran


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


@pytest.mark.parametrize("layer, shape, match", [
    # torch: "pad should be at most half of effective kernel size, but got pad=2, kernel_size=2"
    (nn.MaxPool2d(2, padding=2), (1, 3, 8, 8), "pad should be at most half of kernel size"),
    (nn.AvgPool2d(2, padding=2), (1, 3, 8, 8), "pad should be at most half of kernel size"),
    # torch: "Got 3D input, but bilinear mode needs 4D input"
    (nn.Upsample(scale_factor=2, mode="bilinear"), (1, 3, 8), "bilinear mode needs 4D input"),
    # torch: "Dimension out of range (expected to be in range of [-4, 3], but got 5)"
    (nn.Softmax(5), (1, 3, 8, 8), r"range of \[-4, 3\], but got 5"),
    (nn.LogSoftmax(-5), (1, 3, 8, 8), r"range of \[-4, 3\], but got -5"),
    # torch: "Softmax2d: expected input to be 3D or 4D, got 2D instead"
    (nn.Softmax2d(), (4, 5), "expected input to be 3D or 4D, got 2D instead"),
    # torch (F.instance_norm's _verify_spatial_size): "Expected more than 1 spatial element when training", also
    # in eval mode without tracked running statistics, where the statistics still come from the input
    (nn.InstanceNorm2d(4), (2, 4, 1, 1), "Expected more than 1 spatial element"),
    (nn.InstanceNorm1d(4, affine=True), (3, 4, 1), "Expected more than 1 spatial element"),
], ids=["max_pool_padding", "avg_pool_padding", "upsample_rank", "softmax_dim", "log_softmax_dim", "softmax2d_rank",
        "instance_norm_one_element", "instance_norm_1d_one_element"])
def test_layer_input_torch_rejects_is_refused_with_the_layer_name(layer: nn.Module, shape: tuple, match: str) -> None:
    with pytest.raises(Exception):  # torch itself (on the CPU) refuses it
        layer(torch.rand(shape))
    with pytest.raises(InputShapeError, match=rf"layer '{type(layer).__name__}' .*{match}"):
        archstat.count(layer, shape)


def test_instance_norm_with_running_statistics_in_eval_takes_one_spatial_element() -> None:
    # tracked running statistics used in eval: F.instance_norm(use_input_stats=False) skips the check, and the
    # normalisation is one flop per element: 2 * 4 * 1 * 1 = 8
    layer = nn.InstanceNorm2d(4, track_running_stats=True).eval()
    layer(torch.rand(2, 4, 1, 1))  # torch runs it
    assert archstat.count(layer, (2, 4, 1, 1)).flops == 8


def test_batch_norm_training_on_one_value_per_channel_is_refused() -> None:
    # torch, training: "Expected more than 1 value per channel when training" for BatchNorm1d(4) on (1, 4), and
    # in resnet18 at 32x32 for layer4's 1x1 maps of a batch of one (32 / 32 = 1); at inference both are fine
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(4).train()(torch.rand(1, 4))
    with pytest.raises(InputShapeError, match=r"layer 'BatchNorm1d' .*more than 1 value per channel"):
        archstat.count(nn.BatchNorm1d(4), (1, 4), mode="train")
    assert archstat.count(nn.BatchNorm1d(4), (1, 4)).flops == 4  # eval: one flop per element
    with pytest.raises(InputShapeError, match=r"layer 'layer4\.0\.bn1' \(BatchNorm2d\) cannot take input 1x512x1x1"):
        archstat.count("resnet18", (1, 3, 32, 32), mode="train")
    assert archstat.count("resnet18", (2, 3, 32, 32), mode="train").madds > 0  # 2 values per channel: fine


@pytest.mark.parametrize("layer", [nn.AdaptiveAvgPool2d(0), nn.AdaptiveMaxPool2d(0)], ids=["avg", "max"])
def test_adaptive_pool_to_size_zero_gives_the_empty_output_torch_gives(layer: nn.Module) -> None:
    out = layer(torch.rand(1, 3, 8, 8))
    out = out[0] if isinstance(out, tuple) else out
    assert tuple(out.shape) == (1, 3, 0, 0)  # torch accepts it
    [row] = archstat.count(layer, (1, 3, 8, 8)).records
    assert row.output_shape == (1, 3, 0, 0) and row.cost.flops == 0 and not row.note
    assert row.cost.mem_access == 0  # torch's kernel loops over the outputs: with none it reads nothing


class _Pdist(nn.Module):
    def forward(self, x):
        return F.pdist(x)


class _SoftmaxOverDim5(nn.Module):
    def forward(self, x):
        return x.softmax(5)


def test_pdist_output_is_torchs_vector_of_pair_distances() -> None:
    # F.pdist of 4 rows of 16: a 1-D tensor of 4*3/2 = 6 distances, 16 multiply-adds each: 96
    assert tuple(F.pdist(torch.rand(4, 16)).shape) == (6,)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FormulaMismatchWarning)
        stats = archstat.count(_Pdist(), (4, 16), check_shapes=True)
    [row] = stats.records
    assert row.output_shape == (6,) and row.cost.madds == 96 and not row.note
    assert row.cost.mem_access == 4 * 16 + 6  # the 4 rows once and the 6 distances: not 16 features per pair
    # one row has no pair: torch's _pdist_forward returns the empty result before it reads the input
    [one] = archstat.count(_Pdist(), (1, 16)).records
    assert one.output_shape == (0,) and one.cost.mem_access == 0 and tuple(F.pdist(torch.rand(1, 16)).shape) == (0,)
    with pytest.raises(CountError, match="pdist only supports 2D tensors, got: 3D"):  # torch refuses it
        archstat.count(_Pdist(), (2, 4, 16))


def test_softmax_over_a_dim_out_of_range_is_never_counted() -> None:
    # torch (CPU) refuses x.softmax(5) on a 4-D x; its meta kernel does not, so the call runs and the
    # formula refuses it: an uncounted row saying why, with the warning, not 192 flops
    with pytest.raises(IndexError):
        torch.rand(1, 3, 8, 8).softmax(5)
    with pytest.warns(UncountedOpWarning, match="softmax"):
        stats = archstat.count(_SoftmaxOverDim5(), (1, 3, 8, 8))
    [row] = stats.uncounted
    assert "Dimension out of range" in row.note and stats.flops == 0


class RawAten(nn.Module):
    """Calls torch.ops.aten overloads directly: a known op (mm) and one archstat has no formula for (kron)."""

    def forward(self, x):
        return torch.ops.aten.kron.default(torch.ops.aten.mm.default(x, x.t()), x)


def test_raw_aten_ops_are_named_by_their_op_not_their_overload() -> None:
    # mm of (4, 3) and (3, 4): 4*3*4 = 48 multiply-adds; kron is not known: an uncounted row named "kron"
    assert normalise_name(torch.ops.aten.mm.default) == "mm" and normalise_name(torch.ops.aten.add.Tensor) == "add"
    with pytest.warns(UncountedOpWarning, match=r"kron \(torch\._ops\.aten\.kron\.default"):
        stats = archstat.count(RawAten(), (4, 3))
    assert [(r.name, r.counted) for r in stats.records] == [("mm", True), ("kron", False)]
    assert stats.madds == 48


def test_leaving_torch_for_numpy_is_declared_uncounted_not_free() -> None:
    # x.numpy() and np.asarray(x) (Tensor.__array__) hand the values to NumPy, where archstat sees nothing
    assert normalise_name(torch.Tensor.numpy) == "numpy" and normalise_name(torch.Tensor.__array__) == "array"
    for name, func in (("numpy", torch.Tensor.numpy), ("array", torch.Tensor.__array__)):
        assert name not in FREE_FUNCTIONS and "outside torch is not counted" in UNCOUNTED[name]
        assert call_handler(name, func, (), {}, None) is None  # no formula: uncounted


class ThroughNumpy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        y = self.lin(x).detach().numpy()
        return torch.from_numpy(y @ y.T)


def test_computation_in_numpy_is_an_uncounted_row_and_a_warning() -> None:
    with pytest.warns(UncountedOpWarning, match="numpy"):
        stats = archstat.count(ThroughNumpy(), (2, 4))
    # two rows: the values leaving for NumPy, and the 2x2 result y @ y.T coming back through
    # torch.from_numpy, which no torch function call made
    leaving, returned = stats.uncounted
    assert leaving.name == "numpy" and "outside torch is not counted" in leaving.note
    assert returned.name == "unseen" and returned.output_shape == (2, 2) and "the model returns" in returned.note
    assert stats.madds == 2 * 4 * 4  # the linear layer, counted; y @ y.T ran in NumPy
