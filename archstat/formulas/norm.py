"""Normalisation layers (inference): batch, layer, group, instance and local response norm.

At inference a normalisation is an element-wise affine map ``y = x * a + b`` with
per-channel ``a, b``; it is not a multiply-add op in the papers' sense (conv + fc
only, see ``published.csv`` NOTES, convention 2), so ``madds = 0`` and ``flops`` is one
per output element. Folding BN into the preceding conv removes it entirely (the
"fused" cache model of :mod:`archstat.latency.memory_model`).
"""

from __future__ import annotations

from archstat.formulas.core import Cost, OpCost, Shape, ShapeError, formula, numel

__all__ = ["batch_norm", "layer_norm", "group_norm", "local_response_norm"]


def _elementwise_affine(input_shape: Shape, params: int, stats: int, kind: str) -> OpCost:
    n = numel(input_shape)
    return OpCost(Cost(params=params, flops=n, mem_access=2 * n + params + stats), tuple(input_shape), kind)


@formula("batch_norm")
def batch_norm(input_shape: Shape, affine: bool = True, track_running_stats: bool = True,
               kind: str = "batch norm") -> OpCost:
    """BatchNorm / InstanceNorm over ``(N, C, *spatial)``.

    params: ``2C`` (gamma, beta) when ``affine``. flops: one per element.
    mem_access: input + output + gamma, beta + running mean, var (``2C`` more when
    tracked): every tensor the inference kernel reads.
    """
    if len(input_shape) < 2:
        raise ShapeError(f"batch norm needs (N, C, ...) input, got {tuple(input_shape)}")
    c = input_shape[1]
    return _elementwise_affine(input_shape, 2 * c if affine else 0, 2 * c if track_running_stats else 0, kind)


@formula("layer_norm")
def layer_norm(input_shape: Shape, normalized_shape: Shape, elementwise_affine: bool = True,
               bias: bool = True) -> OpCost:
    """LayerNorm over the trailing ``normalized_shape``.

    params: ``numel(normalized_shape)`` for the weight (+ the same for the bias) when
    ``elementwise_affine``. flops: one per element. mem_access: input + output + params.
    """
    normalized_shape = tuple(normalized_shape)
    if tuple(input_shape[len(input_shape) - len(normalized_shape):]) != normalized_shape:
        raise ShapeError(f"layer norm over {normalized_shape} does not fit input {tuple(input_shape)}")
    per = numel(normalized_shape)
    params = (per + (per if bias else 0)) if elementwise_affine else 0
    return _elementwise_affine(input_shape, params, 0, "layer norm")


@formula("group_norm")
def group_norm(input_shape: Shape, num_groups: int, affine: bool = True) -> OpCost:
    """GroupNorm over ``(N, C, *spatial)`` with ``num_groups`` dividing C.

    params: ``2C`` when ``affine``. flops: one per element. mem_access: input + output + params.
    """
    c = input_shape[1]
    if c % num_groups:
        raise ShapeError(f"group norm: {num_groups} groups do not divide {c} channels")
    return _elementwise_affine(input_shape, 2 * c if affine else 0, 0, "group norm")


@formula("local_response_norm")
def local_response_norm(input_shape: Shape, size: int) -> OpCost:
    """Local response normalisation across ``size`` neighbouring channels (AlexNet, Krizhevsky
    et al. 2012, Sec. 3.3): ``b = a / (k + alpha/n * sum(a^2))^beta``.

    Like a pooling window, each output combines ``size`` squared inputs: flops =
    ``numel * size``; no params, no multiply-adds (the papers count none).
    mem_access: input + output.
    """
    n = numel(input_shape)
    return OpCost(Cost(flops=n * size, mem_access=2 * n), tuple(input_shape), "lrn")
