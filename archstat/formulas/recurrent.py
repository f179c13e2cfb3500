"""Recurrent layers: ``nn.RNN``, ``nn.LSTM``, ``nn.GRU`` (all layers, both directions,
``proj_size``) and their one-step cells.

Each step of each layer and direction multiplies the layer input and the recurrent
state by the gate weights (Hochreiter & Schmidhuber 1997; Cho et al., arXiv:1406.1078;
the equations of torch's ``nn.LSTM`` / ``nn.GRU`` documentation):

    madds per step = gates * H * (I_l + H_r)        (+ P * H for the LSTM projection)

with ``gates`` = 4 (LSTM), 3 (GRU), 1 (RNN), ``H`` the hidden size, ``I_l`` the layer's
input width (the input size for layer 0, ``directions * H_out`` above it), ``H_r`` the
width of the recurrent state (``proj_size`` when set, else ``H``) and
``H_out = proj_size or H``. For LSTM(32, 64) over 10 steps of one sequence:
``10 * 4 * 64 * (32 + 64) = 245,760``.

The element-wise work is in ``flops`` (:data:`GATE_FLOPS` per hidden unit and step);
bias additions (``b_ih + b_hh``, two per gate unit and step) are multiply-adds only with
``count_bias``, as for conv and linear layers.
"""

from __future__ import annotations

from archstat.formulas.core import Category, Cost, OpCost, Shape, ShapeError, formula, numel

__all__ = ["rnn", "rnn_cell", "GATES", "GATE_FLOPS", "RNN_MODES"]

#: Gate count of each mode (torch's ``mode`` attribute of ``nn.RNNBase``).
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
RNN_MODES = tuple(GATES)

#: Element-wise flops per hidden unit and step, from torch's equations:
#: LSTM 13: 4 sums of the input and recurrent products, 4 gate activations (3 sigmoid,
#: 1 tanh), c' = f*c + i*g (3), tanh(c') (1), h' = o*tanh(c') (1);
#: GRU 10: 2 sums (r, z), 2 sigmoids, r * (W_hn h + b_hn) (1), + W_in x (1), tanh (1),
#: h' = n + z * (h - n) (3); RNN 2: the sum and the tanh / ReLU.
GATE_FLOPS = {"LSTM": 13, "GRU": 10, "RNN_TANH": 2, "RNN_RELU": 2}


def _layer(rows: int, mode: str, in_width: int, hidden: int, proj: int, bias: bool, count_bias: bool) -> Cost:
    """One direction of one layer over ``rows`` (step, sequence) pairs."""
    gates = GATES[mode]
    recurrent = proj or hidden
    weights = gates * hidden * (in_width + recurrent) + (proj * hidden if proj else 0)
    params = weights + (2 * gates * hidden if bias else 0)
    madds = rows * weights + (rows * 2 * gates * hidden if bias and count_bias else 0)
    return Cost(params=params, madds=madds, flops=2 * madds + rows * GATE_FLOPS[mode] * hidden, mem_access=params)


def _sequence(input_shape: Shape, batch_first: bool, packed_batch: int | None) -> tuple[int, int, int, bool]:
    """``(rows, batch, features, unbatched)`` of an RNN input."""
    if packed_batch is not None:  # PackedSequence data: (sum of lengths, features)
        if len(input_shape) != 2:
            raise ShapeError(f"packed sequence data must be 2D, got {tuple(input_shape)}")
        return input_shape[0], packed_batch, input_shape[1], False
    if len(input_shape) == 2:
        return input_shape[0], 1, input_shape[1], True
    if len(input_shape) != 3:
        raise ShapeError(f"recurrent layer expects a 2D (unbatched) or 3D (batched) input, got {tuple(input_shape)}")
    steps, batch = (input_shape[1], input_shape[0]) if batch_first else (input_shape[0], input_shape[1])
    return steps * batch, batch, input_shape[2], False


@formula("rnn", counts="madds")
def rnn(input_shape: Shape, input_size: int, hidden_size: int, mode: str = "LSTM", num_layers: int = 1,
        bidirectional: bool = False, proj_size: int = 0, bias: bool = True, batch_first: bool = False,
        count_bias: bool = False, packed_batch: int | None = None) -> OpCost:
    """``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` over a whole sequence (``mode`` as torch names it).

    ``input_shape``: ``(T, N, I)``, ``(N, T, I)`` with ``batch_first``, unbatched ``(T, I)``,
    or the ``(sum of lengths, I)`` data of a ``PackedSequence`` with ``packed_batch`` its
    largest batch. Every (step, sequence) pair costs, per layer and direction, the
    module docstring's multiply-adds; params are ``weight_ih``, ``weight_hh`` (+ both biases,
    + ``weight_hr`` with ``proj_size``) of every layer and direction.
    mem_access: input + output + parameters + initial and final states (``h``, and ``c``
    for LSTM) + every output between two layers, written and read once.
    Output shape: the output sequence, ``(..., directions * H_out)``.
    """
    if mode not in GATES:
        raise ShapeError(f"unknown recurrent mode {mode!r}; one of {', '.join(GATES)}")
    rows, batch, features, unbatched = _sequence(input_shape, batch_first, packed_batch)
    if features != input_size:
        raise ShapeError(f"expects {input_size} input features, got {features} (input {tuple(input_shape)})")
    directions = 2 if bidirectional else 1
    out_width = proj_size or hidden_size
    total = Cost()
    for layer in range(num_layers):
        width = input_size if layer == 0 else directions * out_width
        for _ in range(directions):
            total += _layer(rows, mode, width, hidden_size, proj_size, bias, count_bias)
    output = (*tuple(input_shape)[:-1], directions * out_width)
    states = num_layers * directions * batch * (out_width + (hidden_size if mode == "LSTM" else 0))
    between = 2 * (num_layers - 1) * rows * directions * out_width
    mem = numel(input_shape) + numel(output) + total.params + 2 * states + between
    return OpCost(Cost(total.params, total.madds, total.flops, mem), output, Category("recurrent", mode.lower()),
                  {"unbatched": unbatched})


@formula("rnn_cell", counts="madds")
def rnn_cell(input_shape: Shape, input_size: int, hidden_size: int, mode: str = "LSTM", bias: bool = True,
             count_bias: bool = False) -> OpCost:
    """``nn.RNNCell`` / ``nn.LSTMCell`` / ``nn.GRUCell``: one step of one layer for ``(N, I)``
    (or unbatched ``(I,)``) inputs; the cost of :func:`rnn` for a one-step sequence."""
    if len(input_shape) not in (1, 2):
        raise ShapeError(f"recurrent cell expects a 1D (unbatched) or 2D (batched) input, got {tuple(input_shape)}")
    if input_shape[-1] != input_size:
        raise ShapeError(f"expects {input_size} input features, got {input_shape[-1]} (input {tuple(input_shape)})")
    batch = input_shape[0] if len(input_shape) == 2 else 1
    step = rnn((1, batch, input_shape[-1]), input_size, hidden_size, mode, bias=bias, count_bias=count_bias)
    hidden = (*tuple(input_shape)[:-1], hidden_size)
    return OpCost(step.cost, hidden, Category("recurrent", f"{mode.lower()}_cell"))
