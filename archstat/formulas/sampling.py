"""Sampling at computed positions: ``F.grid_sample`` and ``torchvision.ops.roi_align``.

Both read each output value from fractional input positions by interpolation. As for
``F.interpolate`` (:data:`~archstat.formulas.memory.INTERPOLATION_TAPS`), one flop per
tap: bilinear 4, nearest 1, bicubic 16, trilinear 8. No multiply-adds.
"""

from __future__ import annotations

from archstat.formulas.core import Category, Cost, OpCost, Shape, ShapeError, formula, numel
from archstat.formulas.memory import INTERPOLATION_TAPS

__all__ = ["grid_sample", "roi_align"]

#: ``F.grid_sample`` modes -> taps, for 2-D (4-D input) and 3-D (5-D input) sampling.
GRID_SAMPLE_TAPS = {("bilinear", 2): 4, ("bilinear", 3): 8, ("nearest", 2): 1, ("nearest", 3): 1,
                    ("bicubic", 2): 16}


@formula("grid_sample")
def grid_sample(input_shape: Shape, grid_shape: Shape, mode: str = "bilinear") -> OpCost:
    """``F.grid_sample(input (N, C, *in), grid (N, *out, d))`` -> ``(N, C, *out)``.

    flops: output elements x taps of ``mode`` (bilinear 4 in 2-D, 8 in 3-D; nearest 1;
    bicubic 16). mem_access: input + grid + output.
    """
    nd = len(input_shape) - 2
    if nd not in (2, 3) or len(grid_shape) != nd + 2 or grid_shape[-1] != nd or grid_shape[0] != input_shape[0]:
        raise ShapeError(f"grid_sample: grid {tuple(grid_shape)} does not fit input {tuple(input_shape)}")
    taps = GRID_SAMPLE_TAPS.get((mode, nd))
    if taps is None:
        raise ShapeError(f"grid_sample: mode {mode!r} is not defined for {nd}-D sampling")
    out = (input_shape[0], input_shape[1], *grid_shape[1:-1])
    return OpCost(Cost(flops=numel(out) * taps, mem_access=numel(input_shape) + numel(grid_shape) + numel(out)),
                  out, Category("resample", "grid_sample"))


@formula("roi_align")
def roi_align(input_shape: Shape, rois: int, output_size: tuple[int, int], samples: int,
              op: str = "roi_align", channels_out: int | None = None,
              taps: int = INTERPOLATION_TAPS["bilinear"]) -> OpCost:
    """``torchvision.ops.roi_align`` (Mask R-CNN, He et al., arXiv:1703.06870, Sec. 3) of
    ``rois`` boxes over ``input (N, C, H, W)`` into ``(rois, C, *output_size)``.

    Each output bin averages ``samples`` bilinear samples (``sampling_ratio**2``; when the
    ratio is adaptive, the average over the boxes of ``ceil(h / ph) * ceil(w / pw)``, which
    depends on the boxes and is passed in): flops = bins x samples x (4 taps + 1 add).
    ``ps_roi_align`` (``op``) gives ``channels_out = C / (ph * pw)`` channels. ``roi_pool``
    / ``ps_roi_pool`` take the maximum of the ``samples`` input elements of a bin
    (``taps=0``: one comparison each). mem_access: input + boxes (5 per box) + output.
    """
    ph, pw = output_size
    c = input_shape[1] if channels_out is None else channels_out
    out = (rois, c, ph, pw)
    return OpCost(Cost(flops=numel(out) * samples * (taps + 1), mem_access=numel(input_shape) + 5 * rois + numel(out)),
                  out, Category("resample", op))
