"""Each formula against a figure derived by hand (the derivation is in the comment)."""

from __future__ import annotations

import pytest

from archstat.formulas import (FORMULAS, ShapeError, adaptive_pool, batch_norm, channel_shuffle, concat, conv,
                               conv_category, einsum, elementwise, formula, group_norm, interpolate, layer_norm, linear,
                               matmul, multi_head_attention, pad, pool, reduction, scaled_dot_product_attention, split)
from archstat.formulas.memory import antialias_taps


def test_registry_refuses_a_second_formula_under_one_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        formula("conv")(lambda: None)


def test_every_registered_formula_documents_itself() -> None:
    for name, fn in FORMULAS.items():
        assert fn.__doc__ and len(fn.__doc__.strip()) > 40, name


def test_resnet_stem_conv() -> None:
    # 7x7/2, 3->64 at 224: out 112x112; madds = 64*112*112 * 3*49 = 118,013,952; params 64*3*49 = 9,408
    op = conv((1, 3, 224, 224), 64, 7, 2, 3, bias=False)
    assert op.output_shape == (1, 64, 112, 112)
    assert (op.cost.madds, op.cost.params, op.cost.flops) == (118_013_952, 9_408, 236_027_904)
    # mem: input 150,528 + output 802,816 + weights 9,408
    assert op.cost.mem_access == 150_528 + 802_816 + 9_408


def test_bias_is_a_switch_for_madds_but_always_a_parameter() -> None:
    # 1x1 conv 8->4 on 5x5: 100 outputs; bias adds 100 madds only with count_bias
    plain = conv((1, 8, 5, 5), 4, 1, bias=True)
    thop_like = conv((1, 8, 5, 5), 4, 1, bias=True, count_bias=True)
    assert plain.cost.madds == 100 * 8 and thop_like.cost.madds == 100 * 8 + 100
    assert plain.cost.params == thop_like.cost.params == 8 * 4 + 4


def test_shufflenet_v2_g1_example_from_notes() -> None:
    # NOTES.md convention 7: 56x56, c1=c2=128: B = 51,380,224 and MAC = 819,200 (the lower bound);
    # (36, 432): MAC = 56*56*(36+432) + 36*432 = 1,467,648 + 15,552 = 1,483,200.
    assert conv((1, 128, 56, 56), 128, 1, bias=False).cost.madds == 51_380_224
    assert conv((1, 128, 56, 56), 128, 1, bias=False).cost.mem_access == 819_200
    assert conv((1, 36, 56, 56), 432, 1, bias=False).cost.mem_access == 1_483_200


@pytest.mark.parametrize("c_in,c_out,k,groups,dilation,expected,depthwise,pointwise,grouped", [
    (32, 64, (1, 1), 1, (1, 1), "conv 1x1", False, True, False),
    (32, 32, (3, 3), 32, (1, 1), "conv dw 3x3", True, False, False),
    (32, 64, (3, 3), 32, (1, 1), "conv dw 3x3", True, False, False),  # depth multiplier 2 is still depthwise
    (64, 64, (3, 3), 32, (1, 1), "conv grouped 3x3", False, False, True),
    (240, 60, (1, 1), 3, (1, 1), "conv 1x1 grouped", False, True, True),
    (64, 64, (3, 3), 1, (2, 2), "conv 3x3 dilated", False, False, False),
    (3, 64, (7, 7), 1, (1, 1), "conv 7x7", False, False, False),
])
def test_conv_categories_and_labels(c_in, c_out, k, groups, dilation, expected, depthwise, pointwise,
                                    grouped) -> None:
    category = conv_category(c_in, c_out, k, groups, dilation)
    assert (category.depthwise, category.pointwise, category.grouped) == (depthwise, pointwise, grouped)
    assert category.label == expected and category.family == "conv"


def test_groups_must_divide_channels() -> None:
    with pytest.raises(ShapeError):
        conv((1, 6, 8, 8), 4, 3, groups=4)


def test_padding_same_and_valid() -> None:
    assert conv((1, 2, 9, 9), 2, 3, padding="same").output_shape == (1, 2, 9, 9)
    assert conv((1, 2, 9, 9), 2, 3, padding="valid").output_shape == (1, 2, 7, 7)
    with pytest.raises(ShapeError):
        conv((1, 2, 9, 9), 2, 3, stride=2, padding="same")


def test_linear_over_tokens() -> None:
    # ViT-B MLP fc1 over 197 tokens: 197*768*3072 = 464,781,312 madds; params 768*3072 + 3072
    op = linear((1, 197, 768), 768, 3072)
    assert op.cost.madds == 464_781_312 and op.cost.params == 2_362_368
    with pytest.raises(ShapeError):
        linear((1, 10), 12, 3)


@pytest.mark.parametrize("a,b,out,madds", [
    ((5,), (5,), (), 5),                      # dot product
    ((3, 4), (4,), (3,), 12),                 # matrix-vector
    ((4,), (4, 6), (6,), 24),                 # vector-matrix
    ((2, 1, 3, 4), (5, 4, 2), (2, 5, 3, 2), 2 * 5 * 3 * 4 * 2),  # broadcast batch 2x5
])
def test_matmul_shapes_and_madds(a, b, out, madds) -> None:
    op = matmul(a, b)
    assert op.output_shape == out and op.cost.madds == madds


def test_einsum_pairwise_contraction() -> None:
    # 'bhqd,bhkd->bhqk' with b=2,h=3,q=4,k=5,d=8: one product per (b,h,q,k,d) = 960
    op = einsum("bhqd,bhkd->bhqk", (2, 3, 4, 8), (2, 3, 5, 8))
    assert op.output_shape == (2, 3, 4, 5) and op.cost.madds == 960
    # implicit output, ellipsis: '...ij,...jk' = batched matmul over (7,): 7*2*3*4 = 168
    op = einsum("...ij,...jk", (7, 2, 3), (7, 3, 4))
    assert op.output_shape == (7, 2, 4) and op.cost.madds == 168
    # three operands left to right: (i,j)x(j,k) costs i*j*k = 24, then (i,k)x(k,l) costs i*k*l = 40
    op = einsum("ij,jk,kl->il", (2, 3), (3, 4), (4, 5))
    assert op.output_shape == (2, 5) and op.cost.madds == 24 + 40


def test_attention_formulas() -> None:
    # SDPA, batch*heads = 2*12, L = S = 197, E = 64: scores 24*197*197*64 and the same again for V
    op = scaled_dot_product_attention((2, 12, 197, 64), (2, 12, 197, 64), (2, 12, 197, 64))
    assert op.cost.madds == 2 * 24 * 197 * 197 * 64
    assert op.cost.flops == 2 * op.cost.madds + 24 * 197 * 197
    # ViT-B/16 self-attention over 197 tokens: 4 projections 4*197*768*768 plus 2*197*197*768
    mha = multi_head_attention((1, 197, 768), (1, 197, 768), (1, 197, 768), 768, 12, batch_first=True)
    assert mha.cost.madds == 4 * 197 * 768 * 768 + 2 * 197 * 197 * 768
    assert mha.cost.params == 4 * 768 * 768 + 4 * 768  # in_proj (3E x E + 3E) and out_proj (E x E + E)


def test_normalisations() -> None:
    bn = batch_norm((2, 16, 8, 8))
    assert (bn.cost.params, bn.cost.madds, bn.cost.flops) == (32, 0, 2048)
    assert bn.cost.mem_access == 2 * 2048 + 32 + 32  # in, out, gamma/beta, running mean/var
    assert layer_norm((1, 197, 768), (768,)).cost.params == 2 * 768
    assert layer_norm((1, 197, 768), (768,), bias=False).cost.params == 768
    assert group_norm((1, 32, 4, 4), 8).cost.params == 64
    with pytest.raises(ShapeError):
        group_norm((1, 30, 4, 4), 8)


def test_pooling_counts_elements_combined() -> None:
    # 3x3/2 max pool on 64x112x112 -> 56x56: 64*56*56 outputs x 9 comparisons
    op = pool((1, 64, 112, 112), 3, 2, 1)
    assert op.output_shape == (1, 64, 56, 56) and op.cost.flops == 64 * 56 * 56 * 9
    # global average pool over 2048x7x7 combines every element once
    assert adaptive_pool((1, 2048, 7, 7), 1).cost.flops == 2048 * 49
    # adaptive 5 -> 3 windows are 2,3,2 per dim: (2+3+2)^2 = 49 elements per channel
    assert adaptive_pool((1, 1, 5, 5), (3, 3)).cost.flops == 49
    assert adaptive_pool((1, 4, 6, 8), (None, 2)).output_shape == (1, 4, 6, 2)


def test_reduction() -> None:
    op = reduction((2, 8, 7, 7), (2, 3))
    assert op.output_shape == (2, 8) and op.cost.flops == 2 * 8 * 49
    assert reduction((2, 8, 7, 7), (-1, -2), keepdim=True).output_shape == (2, 8, 1, 1)
    assert reduction((3, 4)).output_shape == ()


def test_elementwise_broadcast_se_scale() -> None:
    # SE scale x * s: x (1,256,56,56), s (1,256,1,1): one multiply per output element;
    # memory: read x and s once, write the output.
    op = elementwise("mul", (1, 256, 56, 56), (1, 256, 1, 1))
    n = 256 * 56 * 56
    assert op.cost.flops == n and op.cost.mem_access == n + 256 + n and op.cost.madds == 0
    with pytest.raises(ShapeError):
        elementwise("add", (2, 3), (4,))


def test_data_movement_costs_memory_only() -> None:
    cat = concat([(1, 58, 28, 28), (1, 58, 28, 28)], dim=1)
    assert cat.output_shape == (1, 116, 28, 28)
    assert cat.cost.flops == 0 and cat.cost.mem_access == 2 * 116 * 784
    parts = split((1, 116, 28, 28), [58, 58], dim=1)
    assert parts.output_shape == ((1, 58, 28, 28), (1, 58, 28, 28)) and parts.cost.mem_access == 2 * 116 * 784
    assert channel_shuffle((1, 116, 28, 28), 2).cost.mem_access == 2 * 116 * 784
    with pytest.raises(ShapeError):
        channel_shuffle((1, 116, 28, 28), 3)
    assert pad((1, 3, 4, 4), (1, 1, 2, 0)).output_shape == (1, 3, 6, 6)


def test_interpolate() -> None:
    # bilinear x2 of 1x8x10x10 -> 20x20: 3200 outputs, 4 taps each
    op = interpolate((1, 8, 10, 10), scale_factor=2, mode="bilinear")
    assert op.output_shape == (1, 8, 20, 20) and op.cost.flops == 3200 * 4
    assert interpolate((1, 8, 10, 10), size=(5, 7)).output_shape == (1, 8, 5, 7)


def test_antialiased_interpolation_widens_its_filter_by_the_downscale() -> None:
    # bilinear, 8 -> 4 per dimension: scale 2, half-width 1 * 2 = 2; centers 2 (i + 0.5) = 1, 3, 5, 7;
    # windows [trunc(c - 1.5) clipped at 0, min(trunc(c + 2.5), 8)) = [0, 3), [1, 5), [3, 7), [5, 8): 3+4+4+3 = 14.
    # Width pass: 8 rows x 14, height pass: 4 columns x 14; 168 per channel (not 16 outputs x 4 taps = 64)
    assert antialias_taps(8, 4, 2.0, 1.0) == 14
    op = interpolate((1, 2, 8, 8), size=(4, 4), mode="bilinear", antialias=True)
    assert op.output_shape == (1, 2, 4, 4) and op.cost.flops == 2 * (8 * 14 + 4 * 14)
    # lanczos (half-width 3), 8x8 -> 5x3. Width 8 -> 3: scale 8/3, half-width 8: every window is all 8
    # inputs, 3 x 8 = 24 per row, 8 rows. Height 8 -> 5: scale 1.6, half-width 4.8, centers 0.8 2.4 4.0 5.6 7.2,
    # windows [0, 6) [0, 7) [0, 8) [1, 8) [2, 8): 6+7+8+7+6 = 34 per column, 3 columns. 8 * 24 + 3 * 34 = 294
    assert interpolate((1, 1, 8, 8), size=(5, 3), mode="lanczos", antialias=True).cost.flops == 294
    # a dimension that keeps its size has no pass; the same size in both is a copy
    assert interpolate((1, 1, 8, 8), size=(8, 4), mode="bilinear", antialias=True).cost.flops == 8 * 14
    assert interpolate((1, 1, 8, 8), size=(8, 8), mode="bicubic", antialias=True).cost.flops == 0
    # upsampling keeps the filter's width: bilinear 2 -> 4, scale 0.5, centers 0.25 0.75 1.25 1.75,
    # windows [0, 1) [0, 2) [0, 2) [1, 2): 1+2+2+1 = 6 (edge taps clipped)
    assert antialias_taps(2, 4, 0.5, 1.0) == 6


def test_area_interpolation_is_the_adaptive_average_pool_torch_runs() -> None:
    # F.interpolate(mode="area") calls adaptive_avg_pool2d: 8x8 -> 4x4 averages 2x2 windows, 16 x 4 = 64
    # per channel, not one tap per output
    assert interpolate((1, 3, 8, 8), scale_factor=0.5, mode="area").cost.flops == 3 * 64
    # memory access as torch's pool reads and writes it: the 3 x 64 inputs and the 3 x 16 outputs once
    assert interpolate((1, 3, 8, 8), scale_factor=0.5, mode="area").cost.mem_access == 3 * 64 + 3 * 16


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="lanczos"), "Lanczos mode requires antialias=True"),
    (dict(mode="lanczos", antialias=True, align_corners=True), "Lanczos mode does not support align_corners=True"),
    (dict(mode="nearest", antialias=True), "Anti-alias option is restricted to bilinear, bicubic, and lanczos"),
    (dict(mode="nearest", align_corners=True), "align_corners option can only be set with the interpolating"),
])
def test_interpolation_options_torch_refuses_are_refused(kwargs: dict, message: str) -> None:
    import torch
    import torch.nn.functional as F

    with pytest.raises(ValueError, match=message):  # the oracle: torch on the CPU
        F.interpolate(torch.zeros(1, 1, 8, 8), size=(4, 4), **kwargs)
    with pytest.raises(ShapeError, match=message):
        interpolate((1, 1, 8, 8), size=(4, 4), **kwargs)


def test_softmax_dim_out_of_range_is_refused_with_torchs_message() -> None:
    # torch (CPU): x.softmax(5) on a 4-D x raises "Dimension out of range (expected to be in range of [-4, 3],
    # but got 5)"; -4 .. 3 are the dims of a 4-D tensor, and a 0-d tensor takes -1 and 0 (maybe_wrap_dim)
    with pytest.raises(ShapeError, match=r"expected to be in range of \[-4, 3\], but got 5\)"):
        elementwise("softmax", (1, 3, 8, 8), dim=5)
    with pytest.raises(ShapeError, match=r"but got -5\)"):
        elementwise("log_softmax", (1, 3, 8, 8), dim=-5)
    # in range, the dim changes nothing: one flop per element, 192 of them
    assert elementwise("softmax", (1, 3, 8, 8), dim=-4) == elementwise("softmax", (1, 3, 8, 8))
    assert elementwise("softmax", (), dim=-1).cost.flops == 1
    with pytest.raises(ShapeError, match=r"range of \[-1, 0\], but got 1\)"):
        elementwise("softmax", (), dim=1)


def test_reduction_over_a_dim_out_of_range_is_refused_with_torchs_message() -> None:
    # torch: x.mean(5) on a 4-D x -> "Dimension out of range (expected to be in range of [-4, 3], but got 5)"
    with pytest.raises(ShapeError, match=r"range of \[-4, 3\], but got 5\)"):
        reduction((1, 3, 8, 8), 5)
    with pytest.raises(ShapeError, match=r"but got -5\)"):
        reduction((1, 3, 8, 8), (1, -5))
    assert reduction((), -1).output_shape == ()  # a 0-d tensor takes dim -1 (torch.tensor(1.).sum(-1))


@pytest.mark.parametrize("shape", [(1, 4), (1, 4, 1), (1, 4, 1, 1), (1, 4, 1, 1, 1)])
def test_batch_norm_refuses_batch_statistics_of_one_value_per_channel(shape: tuple) -> None:
    # F.batch_norm(training=True) raises "Expected more than 1 value per channel when training" when
    # N * prod(spatial) == 1 (torch.nn.functional._verify_batch_size); at inference the running statistics
    # are used and the input is fine: one flop per element, 4 of them
    with pytest.raises(ShapeError, match="Expected more than 1 value per channel when training"):
        batch_norm(shape, training=True)
    assert batch_norm(shape).cost.flops == 4


def test_batch_norm_with_two_values_per_channel_or_an_empty_batch_trains() -> None:
    # torch accepts N * prod(spatial) == 2 ((2, 4) or (1, 4, 2)) and an empty batch (0 values: the check is == 1)
    assert batch_norm((1, 4, 2), training=True).output_shape == (1, 4, 2)
    assert batch_norm((2, 4), training=True).output_shape == (2, 4)
    assert batch_norm((0, 4, 1, 1), training=True).cost.flops == 0
    # an instance norm's statistics are per sample: no such check here (op="instance_norm")
    assert batch_norm((1, 4, 2, 2), op="instance_norm").output_shape == (1, 4, 2, 2)


@pytest.mark.parametrize("shape", [(1, 4, 1), (2, 4, 1, 1), (3, 4, 1, 1, 1)])
def test_instance_norm_refuses_statistics_of_one_spatial_element(shape: tuple) -> None:
    # F.instance_norm(use_input_stats=True) raises "Expected more than 1 spatial element when training" when
    # prod(spatial) == 1, whatever the batch (torch.nn.functional._verify_spatial_size); with running
    # statistics used instead (input_stats=False) the input is fine: one flop per element
    with pytest.raises(ShapeError, match="Expected more than 1 spatial element when training"):
        batch_norm(shape, op="instance_norm", input_stats=True)
    assert batch_norm(shape, op="instance_norm").cost.flops == shape[0] * 4
    assert batch_norm((1, 4, 2, 1), op="instance_norm", input_stats=True).cost.flops == 8  # 2 elements: fine


def test_adaptive_pool_to_size_zero_is_an_empty_output() -> None:
    # torch: nn.AdaptiveAvgPool2d(0) / AdaptiveMaxPool2d(0) on (1, 3, 8, 8) return an empty (1, 3, 0, 0):
    # no window combines anything (0 flops), and torch's CPU kernels (cpu_adaptive_avg_pool, _max_pool) loop
    # over the output's rows and columns, none here: no input element is read, none written (mem_access 0)
    for mode in ("avg", "max"):
        op = adaptive_pool((1, 3, 8, 8), 0, mode=mode)
        assert op.output_shape == (1, 3, 0, 0) and op.cost.flops == 0 and op.cost.mem_access == 0
    assert adaptive_pool((1, 3, 8, 8), (0, 2)).output_shape == (1, 3, 0, 2)
    with pytest.raises(ShapeError, match="greater than or equal to 0"):
        adaptive_pool((1, 3, 8, 8), -1)
