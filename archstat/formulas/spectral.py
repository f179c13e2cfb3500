"""Fast Fourier transforms (``torch.fft.*``).

A complex FFT of ``N`` points costs ``5 N log2 N`` flops, the count FFTW's benchmarks
use to report speed (Frigo & Johnson, "The Design and Implementation of FFTW3", Proc.
IEEE 93(2), 2005, Sec. "benchmarks": radix-2 Cooley-Tukey); a transform with real input
(``rfft``) or real output (``irfft``) does half of that, ``2.5 N log2 N``. A
multi-dimensional transform over dimensions of sizes ``n_i`` is one of
``N = prod(n_i)`` points. These are flops, not multiply-adds (the papers' multiply-adds
are conv, linear and attention). mem_access: input + output.
"""

from __future__ import annotations

from math import log2, prod
from typing import Sequence

from archstat.formulas.core import Category, Cost, OpCost, Shape, formula, numel

__all__ = ["fft"]


@formula("fft")
def fft(input_shape: Shape, output_shape: Shape, points: Sequence[int], batch: int, real: bool = False,
        op: str = "fft") -> OpCost:
    """FFT over the transformed dimensions of sizes ``points`` (the signal lengths, after
    any padding or trimming to ``n``); ``real`` for ``rfft*`` / ``irfft*`` / ``hfft*``;
    ``batch`` independent transforms (the product of the other dimensions).

    flops: ``batch * c * N log2 N`` with ``N = prod(points)`` and ``c = 5`` (2.5 when
    ``real``), rounded to an integer.
    """
    n = prod(points)
    flops = round(batch * (2.5 if real else 5.0) * n * log2(n)) if n > 1 else 0
    return OpCost(Cost(flops=flops, mem_access=numel(input_shape) + numel(output_shape)), tuple(output_shape),
                  Category("spectral", op))
