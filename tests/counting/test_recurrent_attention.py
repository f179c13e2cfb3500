"""Recurrent layers and multi-head attention, counted against hand derivations and torch.

Recurrent (``archstat/formulas/recurrent.py``): per (step, sequence) pair, per layer and direction,

    madds = gates * H * (I_l + H_r)   (+ P * H for the LSTM projection)

gates 4 (LSTM), 3 (GRU), 1 (RNN); ``I_l`` = input_size for layer 0, ``directions * H_out`` above;
``H_r`` = ``H_out`` = proj_size or H. Parameters: ``gates*H*(I_l + H_r)`` weights (+ ``P*H``
``weight_hr``) and ``2*gates*H`` biases per layer and direction.

Attention (``nn.MultiheadAttention``, E embed, h heads of width E/h, L query and S key
positions, N batch): q projection ``N L E E``, k ``N S kdim E``, v ``N S vdim E``, out
``N L E E``, scores ``N h L S' (E/h)`` and weighted sum the same, with ``S' = S + add_bias_kv
+ add_zero_attn``.

Independent oracles: ``sum(p.numel() for p in module.parameters())`` for params, the real
output shape of a CPU forward, and ``torch.utils.flop_counter.FlopCounterMode`` on a real CPU
forward (2 flops per multiply-add of every ``mm`` / ``addmm`` / ``bmm``; bias additions are not
counted by it, as archstat does not count them by default). FlopCounterMode sees the matmuls
of the recurrent kernels only when they run through ATen's generic implementation: the oneDNN
LSTM kernel (``mkldnn_rnn_layer``, the CPU default for nn.LSTM) has no flop formula, so the
forward runs with ``torch.backends.mkldnn.flags(enabled=False)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence
from torch.utils.flop_counter import FlopCounterMode

import archstat
from archstat.errors import InputShapeError


def torch_flops(module: nn.Module, *inputs: Any, **kwargs: Any) -> int:
    """FlopCounterMode's total on a real CPU forward, in training mode with grad enabled (the
    explicit paths, not the fused inference kernels), oneDNN off (see the module docstring)."""
    was_training = module.training
    module.train()
    counter = FlopCounterMode(display=False)
    with warnings.catch_warnings():
        # "TF32 acceleration on top of oneDNN ...", "LSTM with projections is not supported with oneDNN"
        warnings.simplefilter("ignore", UserWarning)
        with torch.enable_grad(), torch.backends.mkldnn.flags(enabled=False), counter:
            module(*inputs, **kwargs)
    module.train(was_training)
    return counter.get_total_flops()


# --------------------------------------------------------------------------- recurrent layers

#: (id, constructor, input shape, hand-derived madds, hand-derived params)
RECURRENT = [
    # the docstring's example: 10 steps * 4 gates * 64 * (32 + 64); params 4*64*96 + 2*4*64 = 24,576 + 512
    ("lstm_32_64_fixed", lambda: nn.LSTM(32, 64), (10, 1, 32), 245_760, 25_088),
    # rows 5*2 = 10; layer 0: 4*16*(8+16) = 1536, layer 1: 4*16*(16+16) = 2048 -> 10 * 3584;
    # params (1536 + 128) + (2048 + 128)
    ("lstm_2_layers", lambda: nn.LSTM(8, 16, num_layers=2), (5, 2, 8), 35_840, 3_840),
    # 2 directions * 10 rows * 1536; params 2 * (1536 + 128)
    ("lstm_bidirectional", lambda: nn.LSTM(8, 16, bidirectional=True), (5, 2, 8), 30_720, 3_328),
    # H_r = P = 4: 4*16*(8+4) = 768, + projection 4*16 = 64 -> 10 * 832; params 768 + 2*64 bias + 64 weight_hr
    ("lstm_proj", lambda: nn.LSTM(8, 16, proj_size=4), (5, 2, 8), 8_320, 960),
    # batch_first (2, 5, 8): still 10 rows of 1536; params 1536 + 128
    ("lstm_batch_first", lambda: nn.LSTM(8, 16, batch_first=True), (2, 5, 8), 15_360, 1_664),
    # unbatched (T=5, I=8): 5 rows * 1536
    ("lstm_unbatched", lambda: nn.LSTM(8, 16), (5, 8), 7_680, 1_664),
    # everything: 2 layers, 2 directions, P=4, no bias, batch_first; layer 1 input 2*4 = 8 = input_size, so every
    # layer and direction costs 4*16*(8+4) + 4*16 = 832 -> 10 rows * 4 * 832; params 4 * 832 (no biases)
    ("lstm_2_layers_bidir_proj_no_bias_batch_first",
     lambda: nn.LSTM(8, 16, num_layers=2, bidirectional=True, proj_size=4, bias=False, batch_first=True),
     (2, 5, 8), 33_280, 3_328),
    # GRU, 3 gates: layer 0 3*16*(8+16) = 1152, layer 1 3*16*(2*16+16) = 2304 -> 10 rows * 2 dirs * 3456;
    # params 2*(1152 + 96) + 2*(2304 + 96) = 2496 + 4800
    ("gru_2_layers_bidir", lambda: nn.GRU(8, 16, num_layers=2, bidirectional=True), (5, 2, 8), 69_120, 7_296),
    # unbatched (5, 8), batch_first does not apply to a 2-D input: 5 * 1152; params 1152 + 96
    ("gru_unbatched_batch_first", lambda: nn.GRU(8, 16, batch_first=True), (5, 8), 5_760, 1_248),
    # Elman RNN, 1 gate: 10 rows * 16*(8+16) = 10 * 384; params 384 + 32
    ("rnn_tanh", lambda: nn.RNN(8, 16), (5, 2, 8), 3_840, 416),
    # layer 0 384, layer 1 16*(16+16) = 512 -> 10 * 896; params 416 + 544
    ("rnn_relu_2_layers", lambda: nn.RNN(8, 16, nonlinearity="relu", num_layers=2), (5, 2, 8), 8_960, 960),
    # batch_first (3, 4, 8): 12 rows * 2 dirs * 384; params 2 * 416
    ("rnn_tanh_bidir_batch_first", lambda: nn.RNN(8, 16, bidirectional=True, batch_first=True), (3, 4, 8),
     9_216, 832),
    ("rnn_relu_unbatched", lambda: nn.RNN(8, 16, nonlinearity="relu"), (5, 8), 1_920, 416),  # 5 * 384
    # cells: one step. LSTMCell batch 2: 2 * 4*16*(8+16); params 1536 + 128
    ("lstm_cell", lambda: nn.LSTMCell(8, 16), (2, 8), 3_072, 1_664),
    ("lstm_cell_unbatched", lambda: nn.LSTMCell(8, 16), (8,), 1_536, 1_664),  # 1 * 1536
    ("gru_cell", lambda: nn.GRUCell(8, 16), (2, 8), 2_304, 1_248),  # 2 * 3*16*24; params 1152 + 96
    ("gru_cell_unbatched_no_bias", lambda: nn.GRUCell(8, 16, bias=False), (8,), 1_152, 1_152),
    ("rnn_cell_tanh", lambda: nn.RNNCell(8, 16), (2, 8), 768, 416),  # 2 * 16*24; params 384 + 32
    ("rnn_cell_relu", lambda: nn.RNNCell(8, 16, nonlinearity="relu"), (3, 8), 1_152, 416),  # 3 * 384
]

_RECURRENT = [pytest.param(make, shape, madds, params, id=name) for name, make, shape, madds, params in RECURRENT]


@pytest.mark.parametrize("make, shape, madds, params", _RECURRENT)
def test_recurrent_layer_matches_hand_derivation_and_torch(make: Callable[[], nn.Module], shape: tuple, madds: int,
                                                           params: int) -> None:
    torch.manual_seed(0)
    module = make()
    stats = archstat.count(module, shape)
    assert stats.madds == madds
    assert stats.params == params == sum(p.numel() for p in module.parameters())
    [row] = stats.records
    assert row.cost.params == params and row.category.family == "recurrent"
    x = torch.rand(shape)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "LSTM with projections is not supported with oneDNN"
        out = module(x)
    output = out[0] if isinstance(module, (nn.RNNBase, nn.LSTMCell)) else out  # (output, h) / (h, c) / h
    assert row.output_shape == tuple(output.shape)
    assert torch_flops(module, x) == 2 * madds


def test_lstm_bias_additions_with_count_bias() -> None:
    # b_ih + b_hh: 2 additions per gate unit per step: 10 steps * 2 * 4 * 64 = 5,120 on top of 245,760
    stats = archstat.count(nn.LSTM(32, 64), (10, 1, 32), count_bias=True)
    assert stats.madds == 245_760 + 5_120


def test_recurrent_cost_scales_with_steps_and_batch_not_params() -> None:
    # LSTM(8, 16): 1536 madds per (step, sequence); 7 steps of 3 sequences = 21 rows
    one, many = archstat.count(nn.LSTM(8, 16), (1, 1, 8)), archstat.count(nn.LSTM(8, 16), (7, 3, 8))
    assert (one.madds, many.madds) == (1_536, 21 * 1_536) and one.params == many.params == 1_664


# --------------------------------------------------------------------------- packed sequences

LENGTHS = [5, 3, 2]  # 10 (step, sequence) pairs in all; batch_sizes (3, 3, 2, 1, 1)

#: (id, constructor, hand-derived madds over the 10 packed rows, hand-derived params)
PACKED = [
    ("gru", lambda: nn.GRU(8, 16), 10 * 1_152, 1_248),  # 3*16*(8+16) = 1152 per row
    ("rnn_tanh", lambda: nn.RNN(8, 16), 10 * 384, 416),  # 16*(8+16)
    # layer 0 4*16*(8+16) = 1536, layer 1 4*16*(32+16) = 3072, 2 directions: 10 * 2 * 4608;
    # params 2*(1536+128) + 2*(3072+128)
    ("lstm_2_layers_bidir", lambda: nn.LSTM(8, 16, num_layers=2, bidirectional=True), 92_160, 9_728),
]
_PACKED = [pytest.param(make, madds, params, id=name) for name, make, madds, params in PACKED]


def _packed() -> PackedSequence:
    return pack_padded_sequence(torch.rand(max(LENGTHS), len(LENGTHS), 8, generator=torch.Generator().manual_seed(0)),
                                LENGTHS)


class PacksItsInput(nn.Module):
    """Packs a padded batch itself, so the counted forward sees the PackedSequence."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, padded: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(pack_padded_sequence(padded, LENGTHS))
        return output.data


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("make, madds, params", _PACKED)
def test_packed_sequence_counts_only_the_real_steps(make: Callable[[], nn.Module], madds: int, params: int,
                                                    device: str) -> None:
    torch.manual_seed(0)
    rnn = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", archstat.UncountedOpWarning)  # the packing copy itself has no formula
        stats = archstat.count(PacksItsInput(rnn), (max(LENGTHS), len(LENGTHS), 8), device=device)
    assert stats.madds == madds  # 10 rows, not the 15 of the padded 5 x 3 batch
    assert stats.params == params == sum(p.numel() for p in rnn.parameters())
    [row] = [r for r in stats.records if r.category is not None and r.category.family == "recurrent"]
    with torch.no_grad():
        output, _ = rnn(_packed())
    assert row.output_shape == tuple(output.data.shape)  # (10, directions * H)
    assert torch_flops(rnn, _packed()) == 2 * madds


@pytest.mark.parametrize("wrap", [False, True], ids=["bare", "in_a_tuple"])
@pytest.mark.parametrize("make, madds, params", _PACKED)
def test_packed_sequence_as_example_inputs(make: Callable[[], nn.Module], madds: int, params: int,
                                           wrap: bool) -> None:
    rnn = make()
    packed = _packed()
    stats = archstat.count(rnn, example_inputs=(packed,) if wrap else packed)
    assert stats.madds == madds and stats.params == params


# --------------------------------------------------------------------------- multi-head attention

#: (id, constructor kwargs, (query, key, value) shapes, hand-derived madds, of which projections, params)
ATTENTION = [
    # E=8, h=2 (width 4), L=5, S=6, N=2. q 2*5*8*8 = 640, k 2*6*8*8 = 768, v 768, out 640: 2816;
    # scores 2*2*5*6*4 = 480, weighted sum 480 -> 3776. params in_proj 3*64 + 24, out_proj 64 + 8
    ("seq_first", dict(embed_dim=8, num_heads=2), ((5, 2, 8), (6, 2, 8), (6, 2, 8)), 3_776, 2_816, 288),
    ("batch_first", dict(embed_dim=8, num_heads=2, batch_first=True), ((2, 5, 8), (2, 6, 8), (2, 6, 8)),
     3_776, 2_816, 288),
    # kdim 4, vdim 6: k 2*6*4*8 = 384, v 2*6*6*8 = 576; q, out 640 each: 2240, + 960 attention.
    # params q 64 + k 32 + v 48 + in bias 24 + out 72
    ("kdim_vdim", dict(embed_dim=8, num_heads=2, kdim=4, vdim=6), ((5, 2, 8), (6, 2, 4), (6, 2, 6)),
     3_200, 2_240, 240),
    ("kdim_vdim_batch_first", dict(embed_dim=8, num_heads=2, kdim=4, vdim=6, batch_first=True),
     ((2, 5, 8), (2, 6, 4), (2, 6, 6)), 3_200, 2_240, 240),
    # unbatched (L, E): N = 1. q 5*64 = 320, k 384, v 384, out 320: 1408; attention 2 * 2*5*6*4 = 480
    ("unbatched", dict(embed_dim=8, num_heads=2), ((5, 8), (6, 8), (6, 8)), 1_888, 1_408, 288),
    ("unbatched_batch_first", dict(embed_dim=8, num_heads=2, batch_first=True), ((5, 8), (6, 8), (6, 8)),
     1_888, 1_408, 288),
    # add_bias_kv: S' = 7, attention 2 * 2*2*5*7*4 = 1120; params + bias_k, bias_v 2*8
    ("add_bias_kv", dict(embed_dim=8, num_heads=2, add_bias_kv=True), ((5, 2, 8), (6, 2, 8), (6, 2, 8)),
     3_936, 2_816, 304),
    # and add_zero_attn: S' = 8, attention 2 * 2*2*5*8*4 = 1280
    ("add_bias_kv_zero_attn", dict(embed_dim=8, num_heads=2, add_bias_kv=True, add_zero_attn=True),
     ((5, 2, 8), (6, 2, 8), (6, 2, 8)), 4_096, 2_816, 304),
    ("no_bias", dict(embed_dim=8, num_heads=2, bias=False), ((5, 2, 8), (6, 2, 8), (6, 2, 8)), 3_776, 2_816, 256),
    # self-attention, 4 heads of width 2, L = S = 4, N = 3: 4 projections 12*64 = 768 each;
    # attention 2 * 3*4*4*4*2 = 768
    ("self_4_heads", dict(embed_dim=8, num_heads=4), ((4, 3, 8),) * 3, 3_840, 3_072, 288),
]
_ATTENTION = [pytest.param(kw, shapes, madds, proj, params, id=name)
              for name, kw, shapes, madds, proj, params in ATTENTION]


@pytest.mark.parametrize("kwargs, shapes, madds, projections, params", _ATTENTION)
def test_multihead_attention_matches_hand_derivation_and_torch(kwargs: dict, shapes: tuple, madds: int,
                                                               projections: int, params: int) -> None:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(**kwargs)
    stats = archstat.count(mha, shapes)
    assert stats.madds == madds
    assert stats.params == params == sum(p.numel() for p in mha.parameters())
    [row] = stats.records
    assert (row.category.family, row.category.op) == ("attention", "mha") and row.cost.params == params
    q, k, v = (torch.rand(s) for s in shapes)
    with torch.no_grad():
        out, _ = mha(q, k, v, need_weights=False)
    assert row.output_shape == tuple(out.shape)
    # need_weights=True takes the explicit path: projections (addmm / mm) and the score and weighted-sum bmm's
    assert torch_flops(mha, q, k, v, need_weights=True) == 2 * madds
    # need_weights=False calls scaled_dot_product_attention; its fused CPU kernel
    # (_scaled_dot_product_flash_attention_for_cpu) has no FlopCounterMode formula in this torch, so only the
    # four projections show (should a later torch count it, it has to show all of the work)
    assert torch_flops(mha, q, k, v, need_weights=False) in (2 * projections, 2 * madds)


def test_multihead_attention_in_eval_counts_what_training_counts() -> None:
    # eval + no_grad is where torch takes its fused fast path; the count does not depend on the mode
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.rand(2, 5, 8)
    trained, evaluated = archstat.count(mha.train(), example_inputs=(x, x, x)), \
        archstat.count(mha.eval(), example_inputs=(x, x, x))
    # self-attention L = S = 5, N = 2: projections 4 * 2*5*8*8 = 2560, attention 2 * 2*2*5*5*4 = 800
    assert trained.madds == evaluated.madds == 2_560 + 800


# --------------------------------------------------------------------------- refused input


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.LSTM(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[0]


@pytest.mark.parametrize("device", ["meta", "cpu"])
@pytest.mark.parametrize("model, shape, layer, message", [
    pytest.param(lambda: nn.LSTM(8, 16), (5, 2, 7), r"'LSTM' \(LSTM\)", "expects 8 input features, got 7",
                 id="lstm_features"),
    pytest.param(Encoder, (5, 2, 7), r"'encoder' \(LSTM\)", "expects 8 input features, got 7", id="nested_lstm"),
    pytest.param(lambda: nn.GRU(8, 16, batch_first=True), (2, 5, 7), r"'GRU' \(GRU\)", "expects 8 input features",
                 id="gru_batch_first_features"),
    pytest.param(lambda: nn.LSTMCell(8, 16), (2, 7), r"'LSTMCell' \(LSTMCell\)", "expects 8 input features",
                 id="lstm_cell_features"),
    pytest.param(lambda: nn.LSTM(8, 16), (5, 2, 3, 8), r"'LSTM' \(LSTM\)", "2D \\(unbatched\\) or 3D",
                 id="lstm_rank"),
    pytest.param(lambda: nn.MultiheadAttention(8, 2), ((5, 2, 7),) * 3, r"'MultiheadAttention' \(MultiheadAttention\)",
                 "expects query features 8", id="mha_features"),
])
def test_input_the_layer_rejects_raises_naming_the_layer(model: Callable[[], nn.Module], shape: tuple, layer: str,
                                                         message: str, device: str) -> None:
    module = model()
    inputs = [torch.rand(s) for s in shape] if isinstance(shape[0], tuple) else [torch.rand(shape)]
    with pytest.raises((RuntimeError, AssertionError, ValueError)):  # torch itself rejects it (the oracle)
        module(*inputs)
    with pytest.raises(InputShapeError, match=rf"layer {layer} cannot take input .*{message}"):
        archstat.count(module, shape, device=device)
