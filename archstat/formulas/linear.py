"""Fully connected layers, matrix products, einsum and attention.

All of these are multiply-add ops: ``flops = 2 * madds`` (plus the softmax of
attention, one per attention score).
"""

from __future__ import annotations

import re
from math import prod

from archstat.formulas.core import Category, Cost, OpCost, Shape, ShapeError, formula, numel

__all__ = ["linear", "matmul", "pdist", "einsum", "scaled_dot_product_attention", "multi_head_attention",
           "broadcast_shapes"]


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy / torch broadcasting of ``shapes``; raises :class:`ShapeError` if impossible."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        sizes = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0} - {1}
        if len(sizes) > 1:
            raise ShapeError(f"shapes {shapes} cannot be broadcast together")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


@formula("linear", counts="madds")
def linear(input_shape: Shape, in_features: int, out_features: int, bias: bool = True,
           count_bias: bool = False) -> OpCost:
    """Fully connected layer ``y = x W^T + b`` over ``input_shape = (..., in_features)``.

    - params: ``in * out`` (+ ``out`` bias).
    - madds: ``prod(leading dims) * in * out``; bias adds only with ``count_bias``.
    - flops: ``2 * madds``. mem_access: input + output + params.
    Source: seed ``003_44db5bec362a28e2.txt`` ("fc: FLOPs = cin x cout").
    """
    if not input_shape or input_shape[-1] != in_features:
        raise ShapeError(f"linear layer expects {in_features} input features, got shape {tuple(input_shape)}")
    rows = numel(input_shape[:-1])
    params = in_features * out_features + (out_features if bias else 0)
    madds = rows * in_features * out_features + (rows * out_features if bias and count_bias else 0)
    out_shape = (*input_shape[:-1], out_features)
    return OpCost(
        Cost(params=params, madds=madds, flops=2 * madds, mem_access=numel(input_shape) + numel(out_shape) + params),
        out_shape,
        Category("linear", "linear"),
        {"bias": bias},
    )


@formula("matmul", counts="madds")
def matmul(a_shape: Shape, b_shape: Shape) -> OpCost:
    """``torch.matmul`` / ``@`` / ``bmm`` / ``mm`` with torch's 1-D and broadcasting rules.

    ``(..., n, k) @ (..., k, m)``: madds = ``prod(broadcast batch) * n * k * m``.
    mem_access: both operands once + output (a broadcast operand is read once).
    """
    if not a_shape or not b_shape:
        raise ShapeError("matmul needs at least 1-D operands")
    a = (1, *a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b = (*b_shape, 1) if len(b_shape) == 1 else tuple(b_shape)
    if a[-1] != b[-2]:
        raise ShapeError(f"matmul shapes {tuple(a_shape)} and {tuple(b_shape)} do not match")
    batch = broadcast_shapes(a[:-2], b[:-2])
    n, k, m = a[-2], a[-1], b[-1]
    out = (*batch, *((n,) if len(a_shape) > 1 else ()), *((m,) if len(b_shape) > 1 else ()))
    madds = numel(batch) * n * k * m
    return OpCost(
        Cost(madds=madds, flops=2 * madds, mem_access=numel(a_shape) + numel(b_shape) + numel(out)),
        out,
        Category("matmul", "matmul"),
    )


@formula("pdist")
def pdist(input_shape: Shape) -> OpCost:
    """``torch.pdist`` / ``F.pdist`` of ``N`` rows of ``M`` features: the distance of each of the
    ``P = N (N - 1) / 2`` pairs of rows.

    madds: one per feature and pair, ``P M`` (a difference, then its accumulated power), flops
    ``2 P M``, as a matrix-vector product of that size counts them. mem_access: the ``N M``
    inputs once and the ``P`` distances (torch's 1-D output); the rows are not copied per pair.
    Fewer than two rows have no pair: torch returns the empty result without reading them.
    Refused as torch refuses it: an input that is not 2-D.
    """
    if len(input_shape) != 2:
        raise ShapeError(f"pdist only supports 2D tensors, got: {len(input_shape)}D")
    n, m = input_shape
    pairs = n * (n - 1) // 2
    return OpCost(Cost(madds=pairs * m, flops=2 * pairs * m, mem_access=n * m + pairs if pairs else 0), (pairs,),
                  Category("matmul", "pdist"))


def _parse_einsum(equation: str, shapes: tuple[Shape, ...]) -> tuple[list[str], str, dict[str, int]]:
    """Split an einsum equation into per-operand index strings, output string and index sizes.

    ``...`` is replaced by fresh Greek letters (never valid einsum subscripts) for the
    broadcast dimensions.
    """
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ShapeError(f"einsum equation {equation!r} names {len(terms)} operands, got {len(shapes)}")
    ell_ndim = max((len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes) if "..." in t), default=0)
    ell = "".join(chr(0x3B1 + i) for i in range(ell_ndim))
    sizes: dict[str, int] = {}
    expanded = []
    for term, shape in zip(terms, shapes):
        if "..." in term:
            own = len(shape) - len(term.replace("...", ""))
            term = term.replace("...", ell[ell_ndim - own:])
        if len(term) != len(shape):
            raise ShapeError(f"einsum term {term!r} does not fit shape {tuple(shape)}")
        for letter, size in zip(term, shape):
            if sizes.get(letter, 1) != 1 and size not in (1, sizes[letter]):
                raise ShapeError(f"einsum index {letter!r} has sizes {sizes[letter]} and {size}")
            sizes[letter] = max(size, sizes.get(letter, 1))
        expanded.append(term)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = re.findall(r"[A-Za-z]", "".join(expanded))
        out = ell + "".join(sorted(c for c in set(counts) if counts.count(c) == 1))
    return expanded, out, sizes


@formula("einsum", counts="madds")
def einsum(equation: str, *shapes: Shape) -> OpCost:
    """``torch.einsum`` contracted pairwise from left to right.

    Each pairwise step costs ``prod(size of every index in either operand)`` madds
    (the naive loop nest); indices no later operand nor the output needs are summed
    away. A single operand (transpose, trace, sum) costs no madds; its reduction is
    ``numel(input)`` flops. torch may choose another order through opt_einsum for
    three or more operands; this formula does not model that choice.
    """
    terms, out, sizes = _parse_einsum(equation, shapes)
    out_shape = tuple(sizes[c] for c in out)
    io = sum(numel(s) for s in shapes) + numel(out_shape)
    if len(terms) == 1:
        reduces = numel(shapes[0]) if numel(out_shape) != numel(shapes[0]) else 0
        return OpCost(Cost(flops=reduces, mem_access=io), out_shape, Category("matmul", "einsum"))
    madds = 0
    current = terms[0]
    for i, term in enumerate(terms[1:], start=1):
        union = "".join(dict.fromkeys(current + term))
        madds += prod(sizes[c] for c in union)
        later = "".join(terms[i + 1:]) + out
        current = "".join(c for c in union if c in later)
    return OpCost(Cost(madds=madds, flops=2 * madds, mem_access=io), out_shape, Category("matmul", "einsum"))


@formula("sdpa", counts="madds")
def scaled_dot_product_attention(q_shape: Shape, k_shape: Shape, v_shape: Shape) -> OpCost:
    """``softmax(Q K^T / sqrt(E)) V`` for ``Q (..., L, E)``, ``K (..., S, E)``, ``V (..., S, Ev)``.

    - madds: ``B L S E`` (scores) + ``B L S Ev`` (weighted sum), B = broadcast batch.
    - flops: ``2 * madds + B L S`` (one per softmax output; scaling is folded in).
    - mem_access: Q + K + V + output: the fused kernel's lower bound (scores are not
      written to memory). Masks and dropout are not counted.
    """
    *qb, L, E = q_shape
    *kb, S, Ek = k_shape
    *vb, Sv, Ev = v_shape
    if E != Ek or S != Sv:
        raise ShapeError(f"attention shapes q{tuple(q_shape)} k{tuple(k_shape)} v{tuple(v_shape)} do not match")
    batch = broadcast_shapes(tuple(qb), tuple(kb), tuple(vb))
    b = numel(batch)
    madds = b * L * S * (E + Ev)
    out = (*batch, L, Ev)
    return OpCost(
        Cost(madds=madds, flops=2 * madds + b * L * S,
             mem_access=numel(q_shape) + numel(k_shape) + numel(v_shape) + numel(out)),
        out,
        Category("attention", "sdpa"),
    )


@formula("mha", counts="madds")
def multi_head_attention(
    query_shape: Shape,
    key_shape: Shape,
    value_shape: Shape,
    embed_dim: int,
    num_heads: int,
    kdim: int | None = None,
    vdim: int | None = None,
    bias: bool = True,
    add_bias_kv: bool = False,
    add_zero_attn: bool = False,
    batch_first: bool = False,
    count_bias: bool = False,
    packed: bool = False,
) -> OpCost:
    """``nn.MultiheadAttention``: input projections, attention, output projection.

    The sum of its parts, each from its own formula: :func:`linear` for the q, k, v
    projections (``kdim``/``vdim`` for k and v) and the output projection, and
    :func:`scaled_dot_product_attention` over ``num_heads`` heads of width
    ``embed_dim / num_heads`` (``add_bias_kv`` and ``add_zero_attn`` each lengthen the
    key sequence by one). params also include ``bias_k``/``bias_v`` (``2 E``) when
    ``add_bias_kv``. Shapes are ``(L, N, E)``, ``(N, L, E)`` with ``batch_first``, or
    unbatched ``(L, E)``. ``packed``: self-attention (query, key and value one tensor),
    which torch projects with one packed matrix product: the same cost; it changes what the
    backward pass saves (:mod:`archstat.formulas.training`).
    """
    kdim, vdim = kdim or embed_dim, vdim or embed_dim
    if embed_dim % num_heads:
        raise ShapeError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")

    def seq_batch(shape: Shape) -> tuple[int, int]:
        if len(shape) == 2:
            return shape[0], 1
        return (shape[1], shape[0]) if batch_first else (shape[0], shape[1])

    (L, n), (S, _) = seq_batch(query_shape), seq_batch(key_shape)
    parts = [
        linear((n, L, embed_dim), embed_dim, embed_dim, bias, count_bias),
        linear((n, S, kdim), kdim, embed_dim, bias, count_bias),
        linear((n, S, vdim), vdim, embed_dim, bias, count_bias),
    ]
    s_att = S + int(add_bias_kv) + int(add_zero_attn)
    head = embed_dim // num_heads
    parts.append(scaled_dot_product_attention((n, num_heads, L, head), (n, num_heads, s_att, head),
                                              (n, num_heads, s_att, head)))
    parts.append(linear((n, L, embed_dim), embed_dim, embed_dim, bias, count_bias))
    total = sum((p.cost for p in parts), Cost())
    total = Cost(total.params + (2 * embed_dim if add_bias_kv else 0), total.madds, total.flops, total.mem_access)
    out_shape = tuple(query_shape)
    return OpCost(total, out_shape, Category("attention", "mha"), {"num_heads": num_heads})
