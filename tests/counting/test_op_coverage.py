"""Every op a vision model commonly calls is counted by a formula, declared free, or refused
with a reason; run for real, the composite ops of torchvision leave nothing uncounted."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import archstat
from archstat.counting.catalog import catalog
from archstat.counting.handlers import (FREE_FUNCTIONS, FUNCTION_HANDLERS, MODULE_HANDLERS, REFUSED, UNCOUNTED,
                                        normalise_name)

KNOWN = set(FUNCTION_HANDLERS) | FREE_FUNCTIONS | set(REFUSED)

#: Public names of torch.nn.functional that are not tensor ops (typing helpers, dispatch plumbing).
_NOT_OPS = {"Callable", "Optional", "ScalingType", "SwizzleType", "Tensor", "assert_int_or_pair", "boolean_dispatch",
            "handle_torch_function", "has_torch_function", "has_torch_function_unary", "has_torch_function_variadic"}

#: torch functions and tensor methods met in vision models (torchvision, timm, detectors, video, optical flow).
TORCH_OPS = [
    torch.add, torch.sub, torch.mul, torch.div, torch.matmul, torch.mm, torch.bmm, torch.baddbmm, torch.addmm,
    torch.einsum, torch.cat, torch.stack, torch.split, torch.chunk, torch.flatten, torch.reshape, torch.transpose,
    torch.permute, torch.squeeze, torch.unsqueeze, torch.roll, torch.flip, torch.sigmoid, torch.tanh, torch.relu,
    torch.exp, torch.log, torch.sqrt, torch.rsqrt, torch.pow, torch.abs, torch.clamp, torch.where, torch.mean,
    torch.sum, torch.amax, torch.max, torch.min, torch.argmax, torch.topk, torch.sort, torch.argsort, torch.unique,
    torch.nonzero, torch.gather, torch.index_select, torch.masked_select, torch.cumsum, torch.cumprod, torch.zeros,
    torch.ones, torch.full, torch.arange, torch.linspace, torch.meshgrid, torch.zeros_like, torch.ones_like,
    torch.full_like, torch.empty_like, torch.rand, torch.randn, torch.rand_like, torch.tril, torch.triu,
    torch.outer, torch.tensordot, torch.cdist, torch.erf, torch.floor, torch.ceil, torch.round, torch.sin,
    torch.cos, torch.atan2, torch.log2, torch.log1p, torch.expm1, torch.minimum, torch.maximum, torch.eq, torch.ne,
    torch.lt, torch.gt, torch.le, torch.ge, torch.logical_and, torch.logical_not, torch.isnan, torch.isinf,
    torch.nan_to_num, torch.norm, torch.std, torch.var, torch.logsumexp, torch.softmax, torch.log_softmax,
    torch.repeat_interleave, torch.tile, torch.broadcast_to, torch.take_along_dim, torch.scatter,
    torch.scatter_add, torch.index_add, torch.clone, torch.t, torch.diagonal, torch.narrow, torch.select,
    torch.unbind, torch.movedim, torch.as_tensor, torch.tensor, torch.eye, torch.fft.fft, torch.fft.rfft,
    torch.fft.rfft2, torch.fft.irfft2, torch.fft.fftn, torch.fft.fftshift, torch.kthvalue, torch.median,
    torch.count_nonzero, torch.bucketize if False else torch.floor_divide, torch.remainder, torch.sign,
    torch.Tensor.contiguous, torch.Tensor.view, torch.Tensor.view_as, torch.Tensor.expand, torch.Tensor.expand_as,
    torch.Tensor.repeat, torch.Tensor.long, torch.Tensor.int, torch.Tensor.float, torch.Tensor.half,
    torch.Tensor.bool, torch.Tensor.double, torch.Tensor.bfloat16, torch.Tensor.to, torch.Tensor.type_as,
    torch.Tensor.__getitem__, torch.Tensor.__setitem__, torch.Tensor.__add__, torch.Tensor.__iadd__,
    torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.Tensor.__truediv__, torch.Tensor.__matmul__,
    torch.Tensor.__rsub__, torch.Tensor.__neg__, torch.Tensor.__and__, torch.Tensor.__or__, torch.Tensor.__invert__,
    torch.Tensor.masked_fill, torch.Tensor.masked_fill_, torch.Tensor.fill_, torch.Tensor.zero_,
    torch.Tensor.copy_, torch.Tensor.new_zeros, torch.Tensor.new_full, torch.Tensor.new_ones, torch.Tensor.unfold,
    torch.Tensor.permute, torch.Tensor.size, torch.Tensor.numel, torch.Tensor.dim, torch.Tensor.item,
    torch.Tensor.tolist, torch.Tensor.detach, torch.Tensor.cpu, torch.Tensor.softmax, torch.Tensor.split,
    torch.Tensor.flatten, torch.Tensor.unflatten, torch.Tensor.clamp_, torch.Tensor.sigmoid_, torch.Tensor.relu_,
    torch.Tensor.mul_, torch.Tensor.add_, torch.Tensor.div_, torch.Tensor.sub_, torch.Tensor.exp_,
    torch.Tensor.scatter_, torch.Tensor.index_put_, torch.Tensor.uniform_, torch.Tensor.normal_,
    torch.Tensor.bernoulli_,
]

#: torchvision's C++ operators (torch.ops.torchvision), as its Python wrappers call them.
TORCHVISION_KERNELS = ["nms", "roi_align", "roi_pool", "ps_roi_align", "ps_roi_pool", "deform_conv2d"]


@pytest.mark.parametrize("name", sorted(n for n in dir(F) if not n.startswith("_") and n not in _NOT_OPS
                                        and callable(getattr(F, n))))
def test_every_functional_op_is_counted_free_or_refused(name: str) -> None:
    assert normalise_name(getattr(F, name)) in KNOWN, f"F.{name} ({normalise_name(getattr(F, name))}) is unknown"


@pytest.mark.parametrize("op", TORCH_OPS, ids=lambda op: getattr(op, "__qualname__", str(op)))
def test_every_common_torch_op_is_counted_free_or_refused(op) -> None:
    assert normalise_name(op) in KNOWN


@pytest.mark.parametrize("name", TORCHVISION_KERNELS)
def test_torchvision_kernels_are_counted(name: str) -> None:
    assert normalise_name(getattr(torch.ops.torchvision, name)) in FUNCTION_HANDLERS


class Fn(nn.Module):
    """Wraps one function as a module, so archstat.count can run it on example inputs."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def _boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 50
    return torch.cat([xy, xy + 1 + torch.rand(n, 2, generator=g) * 20], 1)


_IMAGE = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
_ROIS = torch.tensor([[0, 1.0, 1.0, 9.0, 12.0], [0, 0.0, 2.0, 15.0, 6.0]])

#: Composite ops (Python functions of torch ops) and the example inputs they run on.
COMPOSITES = {
    "batched_nms": (torchvision.ops.batched_nms, (_boxes(20, 0), torch.rand(20), torch.randint(0, 3, (20,)), 0.5)),
    "box_iou": (torchvision.ops.box_iou, (_boxes(5, 1), _boxes(7, 2))),
    "generalized_box_iou": (torchvision.ops.generalized_box_iou, (_boxes(5, 1), _boxes(7, 2))),
    "complete_box_iou": (torchvision.ops.complete_box_iou, (_boxes(5, 1), _boxes(7, 2))),
    "distance_box_iou": (torchvision.ops.distance_box_iou, (_boxes(5, 1), _boxes(7, 2))),
    "box_convert": (lambda b: torchvision.ops.box_convert(b, "xyxy", "cxcywh"), (_boxes(5, 1),)),
    "clip_boxes_to_image": (lambda b: torchvision.ops.clip_boxes_to_image(b, (30, 30)), (_boxes(5, 1),)),
    "remove_small_boxes": (lambda b: torchvision.ops.remove_small_boxes(b, 5.0), (_boxes(9, 3),)),
    "masks_to_boxes": (torchvision.ops.masks_to_boxes, (torch.rand(3, 8, 8) > 0.5,)),
    "sigmoid_focal_loss": (torchvision.ops.sigmoid_focal_loss, (torch.randn(4, 3), torch.rand(4, 3))),
    "roi_align": (lambda x, r: torchvision.ops.roi_align(x, r, (2, 2), 1.0, -1, True), (_IMAGE, _ROIS)),
    "roi_pool": (lambda x, r: torchvision.ops.roi_pool(x, r, (2, 2)), (_IMAGE, _ROIS)),
    "ps_roi_align": (lambda x, r: torchvision.ops.ps_roi_align(x, r, (2, 2), 1.0, 2), (_IMAGE, _ROIS)),
    "ps_roi_pool": (lambda x, r: torchvision.ops.ps_roi_pool(x, r, (2, 2)), (_IMAGE, _ROIS)),
    "deform_conv2d": (torchvision.ops.deform_conv2d, (_IMAGE, torch.zeros(1, 18, 14, 14), torch.rand(6, 4, 3, 3))),
    "drop_block2d": (lambda x: torchvision.ops.drop_block2d(x, 0.1, 3, training=True), (_IMAGE,)),
    "fold": (lambda x: F.fold(x, (8, 8), 3), (torch.rand(1, 4 * 9, 36),)),
    "unfold": (lambda x: F.unfold(x, 3), (_IMAGE,)),
    "grid_sample": (lambda x, g: F.grid_sample(x, g, align_corners=False), (_IMAGE, torch.rand(1, 5, 5, 2) * 2 - 1)),
    "embedding": (lambda i, w: F.embedding(i, w), (torch.tensor([[1, 2], [0, 4]]), torch.rand(5, 3))),
    "one_hot": (lambda i: F.one_hot(i, 5), (torch.tensor([1, 2, 0]),)),
    "cross_entropy": (F.cross_entropy, (torch.randn(4, 5), torch.tensor([0, 1, 2, 3]))),
    "casts": (lambda x: x.long().float() + x.int().double().float(), (_IMAGE,)),
    "gather": (lambda x: x.flatten(1).gather(1, torch.zeros(1, 3, dtype=torch.long)), (_IMAGE,)),
    "scatter_add": (lambda x: torch.zeros(10).scatter_add(0, torch.tensor([1, 1, 3]), x.flatten()[:3]), (_IMAGE,)),
    "fft": (lambda x: torch.fft.irfft2(torch.fft.rfft2(x), s=x.shape[-2:]), (_IMAGE,)),
    "sort_topk_unique": (lambda x: (x.flatten().sort()[0], x.flatten().topk(3)[0], x.round().unique()), (_IMAGE,)),
    "cumsum": (lambda x: x.cumsum(-1), (_IMAGE,)),
    "pixel_shuffle": (lambda x: F.pixel_shuffle(x, 2), (_IMAGE,)),
    "interpolate": (lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), (_IMAGE,)),
}


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_ops_leave_nothing_uncounted(name: str) -> None:
    fn, examples = COMPOSITES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", archstat.UncountedOpWarning)
        stats = archstat.count(Fn(fn), example_inputs=examples)
    assert not stats.uncounted
    assert stats.records, "a composite op records at least one op"


def test_catalog_lists_every_registration_once() -> None:
    # one row per module class, function handler, free function, refused and uncounted op: nothing kept by hand
    entries = catalog()
    assert len(entries) == len(MODULE_HANDLERS) + len(FUNCTION_HANDLERS) + len(FREE_FUNCTIONS) + len(REFUSED) \
        + len(UNCOUNTED)
    assert len({(e.via, e.name) for e in entries}) == len(entries)
    assert {e.counts for e in entries} <= {"madds", "flops", "memory", "free", "refused", "uncounted"}
    assert {e.name for e in entries if e.counts == "uncounted"} >= {"numpy"}  # leaving torch for NumPy
