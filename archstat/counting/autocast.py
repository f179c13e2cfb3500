"""``torch.autocast`` on the meta device, where torch does not run it: which ops cast their
floating-point inputs, and to what.

A training count with ``autocast=("cuda", torch.float16)`` (or ``("cpu", torch.bfloat16)``)
keeps parameters, their gradients and the optimizer state in the model's dtype and
casts, as autocast does, the inputs of the ops it runs in lower precision
(convolutions, matrix products, attention: :data:`LOWER_PRECISION`) to the autocast dtype,
and those of the ops it runs in float32 (:data:`FLOAT32`: losses, and on CUDA softmax,
norms, exp, log ...; torchvision's detection ops) to float32; every other op runs in its
inputs' dtype (mixed inputs promote). A parameter's cast is made once per forward pass
(autocast caches the casts of leaf tensors); an activation's each time. The casts are new tensors: what the
lower-precision ops save for backward. The lists are torch 2.14's
(``aten/src/ATen/autocast_mode.cpp``, the "autocast op reference" of torch's AMP docs),
by archstat's normalised op names.
"""

from __future__ import annotations

__all__ = ["LOWER_PRECISION", "FLOAT32", "RESTORES_DTYPE", "AUTOCAST_DEVICES", "cast_target", "restores_dtype"]

AUTOCAST_DEVICES = ("cpu", "cuda")

_MATRIX = frozenset({"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                     "conv_tbc", "linear", "matmul", "mm", "bmm", "baddbmm", "addmm", "addbmm",
                     "scaled_dot_product_attention", "prelu"})

#: Composite ops whose products torch runs as one of :data:`_MATRIX` (einsum's bmm): on the CPU, where
#: they are not listed, autocast's dispatch casts that inner call, so they run in the lower precision
#: all the same and take mixed inputs (torch 2.14: ``einsum`` of a bfloat16 and a float32 tensor under
#: CPU autocast gives bfloat16). ``tensordot``, ``inner`` and ``linalg.multi_dot`` refuse mixed inputs
#: before their inner product, and are left out: their float32 results, bfloat16 in torch, stay float32.
_COMPOSITE_PRODUCTS = frozenset({"einsum"})

#: Ops autocast runs in the lower-precision dtype, per device type.
LOWER_PRECISION = {
    "cpu": _MATRIX | _COMPOSITE_PRODUCTS,
    "cuda": _MATRIX | {"addmv", "addr", "einsum", "mv", "chain_matmul", "lstm_cell", "gru_cell", "rnn_tanh_cell",
                       "rnn_relu_cell"},
}

_LOSSES = frozenset({"binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss",
                     "kl_div", "l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss", "soft_margin_loss",
                     "multilabel_soft_margin_loss", "multilabel_margin_loss", "multi_margin_loss",
                     "hinge_embedding_loss", "poisson_nll_loss", "cosine_embedding_loss", "margin_ranking_loss",
                     "triplet_margin_loss", "ctc_loss"})

#: torchvision's ops with autocast kernels of their own (``torchvision/csrc/ops/autocast``), per
#: device type: they run in float32 (``cached_cast(at::kFloat, ...)``), and all but ``nms``, which
#: returns indices, cast their result back to their input's dtype. torchvision 0.29 registers
#: ``nms`` and ``roi_align`` for CPU autocast, all six for CUDA; on the CPU the other four get the
#: lower-precision tensors, which their kernels refuse, as under ``torch.autocast``.
_TORCHVISION = {"cpu": frozenset({"nms", "roi_align"}),
                "cuda": frozenset({"nms", "roi_align", "roi_pool", "ps_roi_align", "ps_roi_pool", "deform_conv2d"})}
#: The ops of :data:`_TORCHVISION` whose (first) result comes back in the input's dtype.
RESTORES_DTYPE = _TORCHVISION["cuda"] - {"nms"}

#: Ops autocast runs in float32, per device type.
FLOAT32 = {
    "cpu": _LOSSES | _TORCHVISION["cpu"] | {"grid_sample", "prod", "cdist", "stft", "max_pool3d", "avg_pool3d",
                                            "adaptive_avg_pool3d", "max_unpool2d", "max_unpool3d",
                                            "fractional_max_pool2d", "fractional_max_pool3d"},
    "cuda": _LOSSES | {"acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p",
                       "reciprocal", "rsqrt", "sinh", "tan", "pow", "softplus", "layer_norm", "group_norm",
                       "norm", "normalize", "cosine_similarity", "pdist", "cdist", "renorm", "logsumexp",
                       "softmax", "log_softmax", "softmin", "cumprod", "cumsum", "prod", "sum", "dist",
                       "interpolate", "upsample", "grid_sample"} | _TORCHVISION["cuda"],
}


def restores_dtype(device_type: str, op: str) -> bool:
    """Does ``op`` under autocast on ``device_type`` give its result back in its input's dtype?"""
    return op in RESTORES_DTYPE and op in FLOAT32[device_type]


def cast_target(device_type: str, op: str) -> str | None:
    """``"lower"``, ``"float32"`` or ``None`` (the op keeps its inputs' dtype) under autocast."""
    if op in LOWER_PRECISION[device_type]:
        return "lower"
    if op in FLOAT32[device_type]:
        return "float32"
    return None
