"""Normalisation layers: batch, instance, layer, group, RMS and local response norm.

At inference a normalisation is an element-wise affine map ``y = x * a + b`` with
per-channel ``a, b``; it is not a multiply-add op in the papers' sense (conv + fc
only, see ``published.csv`` NOTES, convention 2), so ``madds = 0`` and ``flops`` is one
per output element. Folding BN into the preceding conv removes it entirely (the
"fused" cache model of :mod:`archstat.latency.memory_model`).
"""

from __future__ import annotations

from archstat.formulas.core import (Category, Cost, OpCost, Shape, ShapeError, formula, numel, with_batch,
                                    without_batch)

__all__ = ["batch_norm", "layer_norm", "group_norm", "local_response_norm", "BATCH_STATISTICS_FLOPS"]

#: Flops per element of computing batch statistics in training mode: a sum (1 add) and a
#: sum of squares (1 multiply, 1 add) per element, on top of the normalisation's 1.
BATCH_STATISTICS_FLOPS = 3


def _elementwise_affine(input_shape: Shape, params: int, stats: int, op: str, output_shape: Shape | None = None,
                        per_element: int = 1) -> OpCost:
    n = numel(input_shape)
    return OpCost(Cost(params=params, flops=per_element * n, mem_access=2 * n + params + stats),
                  tuple(input_shape) if output_shape is None else output_shape, Category("norm", op))


@formula("batch_norm")
def batch_norm(input_shape: Shape, affine: bool = True, track_running_stats: bool = True,
               op: str = "batch_norm", num_features: int | None = None, training: bool = False,
               spatial_dims: int | None = None, input_stats: bool = False) -> OpCost:
    """BatchNorm / InstanceNorm (``op="instance_norm"``) over ``(N, C, *spatial)``.

    params: ``2C`` (gamma, beta) when ``affine``. flops: one per element at inference;
    in ``training`` mode (batch statistics, as ``F.batch_norm(training=True)`` and
    weight-standardised convolutions compute them) :data:`BATCH_STATISTICS_FLOPS` more.
    mem_access: input + output + gamma, beta + running mean, var (``2C`` more when
    tracked; written back as well in training): every tensor the kernel touches.
    ``num_features`` (the layer's own C) refuses an input with another channel count;
    ``spatial_dims`` lets an instance norm's input be unbatched ``(C, *spatial)``. A batch
    norm computing batch statistics from one value per channel (``N * prod(spatial) == 1``)
    is refused as ``F.batch_norm(training=True)`` refuses it (``_verify_batch_size``: "Expected
    more than 1 value per channel when training"); ``training`` is exactly that argument of
    ``F.batch_norm`` (nn.BatchNorm passes True in eval mode too without running statistics).
    An instance norm computing its statistics from the input (``input_stats``:
    ``F.instance_norm``'s ``use_input_stats``, True unless running statistics are tracked and
    used in eval) is refused on one spatial element, as ``_verify_spatial_size`` refuses it.
    """
    shape, unbatched = with_batch(input_shape, spatial_dims, op.replace("_", " "))
    c = shape[1]
    if num_features is not None and c != num_features:
        raise ShapeError(f"expects {num_features} channels, got {c} (input {'x'.join(map(str, input_shape))})")
    if training and op == "batch_norm" and shape[0] * numel(shape[2:]) == 1:
        raise ShapeError(f"Expected more than 1 value per channel when training, got input size {tuple(input_shape)}")
    if input_stats and op == "instance_norm" and numel(shape[2:]) == 1:
        raise ShapeError(f"Expected more than 1 spatial element when training, got input size {tuple(input_shape)}")
    stats = (2 * c if track_running_stats else 0) * (2 if training and track_running_stats else 1)
    return _elementwise_affine(shape, 2 * c if affine else 0, stats, op, without_batch(shape, unbatched),
                               1 + (BATCH_STATISTICS_FLOPS if training else 0))


@formula("layer_norm")
def layer_norm(input_shape: Shape, normalized_shape: Shape, elementwise_affine: bool = True,
               bias: bool = True, op: str = "layer_norm") -> OpCost:
    """LayerNorm (or RMSNorm, ``op="rms_norm"``) over the trailing ``normalized_shape``.

    params: ``numel(normalized_shape)`` for the weight (+ the same for the bias) when
    ``elementwise_affine``. flops: one per element. mem_access: input + output + params.
    """
    normalized_shape = tuple(normalized_shape)
    if tuple(input_shape[len(input_shape) - len(normalized_shape):]) != normalized_shape:
        raise ShapeError(f"{op.replace('_', ' ')} over {normalized_shape} does not fit input {tuple(input_shape)}")
    per = numel(normalized_shape)
    params = (per + (per if bias else 0)) if elementwise_affine else 0
    return _elementwise_affine(input_shape, params, 0, op)


@formula("group_norm")
def group_norm(input_shape: Shape, num_groups: int, affine: bool = True, num_channels: int | None = None) -> OpCost:
    """GroupNorm over ``(N, C, *spatial)`` with ``num_groups`` dividing C.

    params: ``2C`` when ``affine``. flops: one per element. mem_access: input + output + params.
    ``num_channels`` (the layer's own C) refuses an input with another channel count.
    """
    if len(input_shape) < 2:
        raise ShapeError(f"group norm expects an (N, C, ...) input, got {tuple(input_shape)}")
    c = input_shape[1]
    if num_channels is not None and c != num_channels:
        raise ShapeError(f"expects {num_channels} channels, got {c} (input {'x'.join(map(str, input_shape))})")
    if c % num_groups:
        raise ShapeError(f"group norm: {num_groups} groups do not divide {c} channels")
    return _elementwise_affine(input_shape, 2 * c if affine else 0, 0, "group_norm")


@formula("local_response_norm")
def local_response_norm(input_shape: Shape, size: int) -> OpCost:
    """Local response normalisation across ``size`` neighbouring channels (AlexNet, Krizhevsky
    et al. 2012, Sec. 3.3): ``b = a / (k + alpha/n * sum(a^2))^beta``.

    Like a pooling window, each output combines ``size`` squared inputs: flops =
    ``numel * size``; no params, no multiply-adds (the papers count none).
    mem_access: input + output.
    """
    n = numel(input_shape)
    return OpCost(Cost(flops=n * size, mem_access=2 * n), tuple(input_shape), Category("norm", "local_response_norm"))
