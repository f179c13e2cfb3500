"""Output-size formulas for convolution, transposed convolution and pooling (1d, 2d, 3d).

Source: the PyTorch documentation of ``nn.Conv2d`` / ``nn.ConvTranspose2d`` /
``nn.MaxPool2d``, the same equation quoted in seed ``000_b8c8054a78da7fea.txt``::

    H_out = floor((H_in + 2*padding - dilation*(kernel - 1) - 1) / stride + 1)

(The seed's earlier shorthand ``Ho = (H + 2*padding + 1 - K) / stride`` agrees only when
the division rounds *up*; rounded down it loses an output whenever ``H + 2p - K`` is a
multiple of the stride (``H=5, K=1, stride=2``: 2 instead of 3), and it has no dilation.
The torch formula above is the one used here.)
"""

from __future__ import annotations

from archstat.formulas.core import EmptyOutputError, IntOrSeq, ShapeError, expand

__all__ = [
    "conv_output_size",
    "conv_transpose_output_size",
    "pool_output_size",
    "adaptive_windows",
]


def _too_small(sizes: tuple[int, ...], in_sizes: tuple[int, ...], what: str) -> EmptyOutputError:
    return EmptyOutputError(f"{what} output would be {'x'.join(map(str, sizes))} for input "
                            f"{'x'.join(map(str, in_sizes))}: the input is too small")


def conv_output_size(
    in_sizes: tuple[int, ...],
    kernel_size: IntOrSeq,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
) -> tuple[int, ...]:
    """Spatial output size of a convolution.

    ``out = floor((in + 2p - d(k-1) - 1) / s) + 1`` per spatial dimension.
    Raises :class:`EmptyOutputError` when any output size would be < 1.
    """
    nd = len(in_sizes)
    k, s = expand(kernel_size, nd, "kernel_size"), expand(stride, nd, "stride")
    p, d = expand(padding, nd, "padding"), expand(dilation, nd, "dilation")
    out = tuple([(i + 2 * pi - di * (ki - 1) - 1) // si + 1 for i, ki, si, pi, di in zip(in_sizes, k, s, p, d)])
    if min(out, default=1) <= 0:
        raise _too_small(out, in_sizes, f"conv (kernel {k}, stride {s}, padding {p}, dilation {d})")
    return out


def conv_transpose_output_size(
    in_sizes: tuple[int, ...],
    kernel_size: IntOrSeq,
    stride: IntOrSeq = 1,
    padding: IntOrSeq = 0,
    output_padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
) -> tuple[int, ...]:
    """Spatial output size of a transposed convolution.

    ``out = (in - 1) s - 2p + d(k - 1) + output_padding + 1`` (``nn.ConvTranspose2d`` docs).
    torch requires ``output_padding < max(stride, dilation)``; that is checked here too.
    """
    nd = len(in_sizes)
    k, s, p, op, d = (
        expand(v, nd, n)
        for v, n in ((kernel_size, "kernel_size"), (stride, "stride"), (padding, "padding"),
                     (output_padding, "output_padding"), (dilation, "dilation"))
    )
    for opi, si, di in zip(op, s, d):
        if opi >= max(si, di):
            raise ShapeError(f"output_padding {op} must be smaller than stride {s} or dilation {d}")
    out = tuple((i - 1) * si - 2 * pi + di * (ki - 1) + opi + 1
                for i, ki, si, pi, opi, di in zip(in_sizes, k, s, p, op, d))
    if min(out, default=1) <= 0:
        raise _too_small(out, in_sizes, f"transposed conv (kernel {k}, stride {s}, padding {p})")
    return out


def pool_output_size(
    in_sizes: tuple[int, ...],
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None = None,
    padding: IntOrSeq = 0,
    dilation: IntOrSeq = 1,
    ceil_mode: bool = False,
) -> tuple[int, ...]:
    """Spatial output size of max / average pooling.

    As convolution, with ``stride`` defaulting to ``kernel_size``; with ``ceil_mode``
    the division rounds up, but a window that would start in the right padding is
    dropped (``(out - 1) * s >= in + p`` -> ``out - 1``), exactly as ATen's
    ``pooling_output_shape``. Padding more than half the kernel, ``p > k // 2`` in any
    dimension, is refused as torch refuses it, whatever the dilation: ATen's
    ``pool2d_shape_check`` / ``pool3d_shape_check`` ("pad should be smaller than or equal
    to half of kernel size") and ``max_pool1d``'s check compare the padding with the
    undilated kernel, stricter than ``pooling_output_shape``'s "at most half of effective
    kernel size".
    """
    nd = len(in_sizes)
    k = expand(kernel_size, nd, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else expand(stride, nd, "stride")
    p, d = expand(padding, nd, "padding"), expand(dilation, nd, "dilation")
    for ki, pi in zip(k, p):
        if pi > ki // 2:
            raise ShapeError(f"pad should be at most half of kernel size, but got pad={pi} and kernel_size={ki}")
    out = []
    for i, ki, si, pi, di in zip(in_sizes, k, s, p, d):
        span = i + 2 * pi - di * (ki - 1) - 1
        o = (-(-span // si) if ceil_mode else span // si) + 1
        if ceil_mode and (o - 1) * si >= i + pi:
            o -= 1
        out.append(o)
    if min(out, default=1) <= 0:
        raise _too_small(tuple(out), in_sizes, f"pool (kernel {k}, stride {s}, padding {p})")
    return tuple(out)


def adaptive_windows(in_size: int, out_size: int) -> list[int]:
    """Window lengths of adaptive pooling along one dimension.

    Window ``i`` spans ``[floor(i*in/out), ceil((i+1)*in/out))`` (ATen's
    ``start_index`` / ``end_index``), so windows may overlap when ``in`` is not a
    multiple of ``out``. An output size of 0 has no windows: torch's adaptive average and
    max pools return an empty output then; they refuse a negative output size and an empty
    input ("Expected input to have non-zero size for non-batch dimensions").
    """
    if out_size < 0:
        raise ShapeError(f"adaptive pooling: output size must be greater than or equal to 0, got {out_size}")
    if in_size <= 0:
        raise ShapeError(f"adaptive pooling: expected input to have non-zero size for non-batch dimensions, "
                         f"got size {in_size}")
    return [-(-(i + 1) * in_size // out_size) - (i * in_size // out_size) for i in range(out_size)]
