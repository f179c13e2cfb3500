"""The device's peak compute and memory bandwidth, measured in about a second or given.

The roofline model (Williams, Waterman and Patterson, CACM 2009) needs two numbers:
the attainable FLOP/s and the attainable bytes/s. :func:`calibrate` measures both
with the operations that reach them in practice:

* compute: a square ``n x n`` matmul (``2 n^3`` FLOPs) in the chosen dtype, the
  best BLAS/oneDNN/cuBLAS kernel torch has;
* bandwidth: a copy of a buffer far larger than the last-level cache
  (``2 x size`` bytes moved: every element read once and written once).

The *best* of the repeated runs is kept (a peak is what the device can reach, not
what it usually does). :meth:`Peaks.given` takes the user's own numbers (e.g. a
datasheet's) instead.
"""

from __future__ import annotations

from functools import partial

import time
from dataclasses import dataclass

import torch

from archstat.counting.inputs import seeded
from archstat.errors import ArchstatError
from archstat.latency.machine import check_device, cuda_indices
from archstat.latency.timing import parse_dtype, torch_threads

__all__ = ["Peaks", "calibrate"]


@dataclass(frozen=True)
class Peaks:
    """Peak compute (FLOP/s) and memory bandwidth (bytes/s) of a device, and where they came from."""

    flops_per_s: float
    bytes_per_s: float
    source: str

    def __post_init__(self) -> None:
        if not (self.flops_per_s > 0 and self.bytes_per_s > 0):
            raise ArchstatError(f"peaks must be positive, got {self.flops_per_s} FLOP/s and {self.bytes_per_s} B/s")

    @classmethod
    def given(cls, gflops: float, gbytes: float) -> "Peaks":
        """Peaks stated by the user, in GFLOP/s and GB/s (10^9)."""
        return cls(gflops * 1e9, gbytes * 1e9, f"given: {gflops:g} GFLOP/s, {gbytes:g} GB/s")

    @property
    def ridge(self) -> float:
        """Arithmetic intensity (FLOP/byte) above which an op is compute-bound."""
        return self.flops_per_s / self.bytes_per_s

    def describe(self) -> str:
        return (f"{self.flops_per_s / 1e9:.1f} GFLOP/s, {self.bytes_per_s / 1e9:.1f} GB/s, ridge {self.ridge:.1f} "
                f"FLOP/B ({self.source})")


def _best_seconds(fn, device: str, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def calibrate(device: str = "cpu", *, threads: int | None = None, dtype: torch.dtype | str = torch.float32,
              matmul_size: int | None = None, copy_mib: int | None = None, repeats: int = 8) -> Peaks:
    """Measure peak FLOP/s (square matmul) and bytes/s (large copy) on ``device``.

    Defaults: ``n = 1024`` and a 256 MiB buffer on the CPU; ``n = 8192`` and 1 GiB on
    a GPU. Takes about a second on a 2-core CPU.
    """
    device = check_device(device)
    dtype = parse_dtype(dtype)
    on_gpu = device.startswith("cuda")
    n = matmul_size or (8192 if on_gpu else 1024)
    mib = copy_mib or (1024 if on_gpu else 256)
    with seeded(cuda_devices=cuda_indices(device)):  # the matrices' values: not from the caller's generators
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    with torch_threads(threads) as used, torch.inference_mode():
        mm_s = _best_seconds(partial(torch.mm, a, b), device, warmup=2, repeats=repeats)
        itemsize = torch.empty((), dtype=dtype).element_size()
        src = torch.empty(mib * 2 ** 20 // itemsize, device=device, dtype=dtype).fill_(1)
        copy_s = _best_seconds(partial(torch.Tensor.copy_, torch.empty_like(src), src), device, warmup=1,
                               repeats=repeats)
        moved = 2 * src.numel() * itemsize
        del src, a, b
    dtype_name = str(dtype).removeprefix("torch.")
    return Peaks(2.0 * n ** 3 / mm_s, moved / copy_s,
                 f"measured on {device}, {used} thread(s), {dtype_name}: {n}x{n} matmul, {mib} MiB copy, "
                 f"best of {repeats}")
