"""Model names: the zoo, every torchvision model of every task, and ``timm:<name>``.

:func:`create_model` builds any of them with random weights (nothing is ever
downloaded); :func:`resolve_names` expands globs such as ``resnet*`` or
``timm:seresnet*`` for sweeps; :func:`input_spec` says what a model takes and at which
size it was published (zoo metadata, torchvision's weight transforms, timm's default
config).

A torchvision name builds the network its published weights describe, without them:
the number of classes of the weights' categories, the configuration their builder
fixes (GoogLeNet without its auxiliary heads, FCN and DeepLabV3 with theirs, detectors
whose trained backbone uses frozen batch norm), and no backbone weights. Its
parameters equal the weights' ``num_params`` (checked by a test for every model).
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable

from torch import nn

from archstat.errors import ArchstatError, UnknownModelError

__all__ = ["create_model", "model_builder", "resolve_names", "available_models", "default_input_size",
           "input_spec", "InputSpec", "torchvision_models", "torchvision_task", "TORCHVISION_TASKS", "TIMM_PREFIX"]

TIMM_PREFIX = "timm:"

#: torchvision's model modules, by task.
TORCHVISION_TASKS = ("classification", "quantization", "segmentation", "detection", "video", "optical_flow")


@dataclass(frozen=True)
class InputSpec:
    """What a model takes, and the size it was published at.

    ``layout``: ``"image"`` (one ``(N, C, H, W)`` tensor), ``"video"`` (``(N, C, T, H, W)``),
    ``"images"`` (a list of ``N`` images ``(C, H, W)``, as torchvision's detectors take),
    ``"image_pair"`` (two ``(N, C, H, W)`` tensors, as RAFT takes). ``size`` is one
    sample's shape without the batch: ``(C, H, W)`` or ``(C, T, H, W)``.
    """

    layout: str
    size: tuple[int, ...]

    def shapes(self, batch: int = 1, size: tuple[int, ...] | None = None) -> Any:
        """The input shapes for ``batch`` samples of ``size`` (default: the published one),
        in :func:`archstat.count`'s ``input_shape`` form."""
        sample = tuple(size) if size is not None else self.size
        if self.layout == "images":
            return [sample] * batch
        if self.layout == "image_pair":
            return ((batch, *sample), (batch, *sample))
        return (batch, *sample)


#: Builder options a torchvision model's published weights fix, beyond the number of
#: classes (read from the weights' categories): what ``_ovewrite_named_param`` sets in
#: torchvision's builders when weights are given.
_PUBLISHED_OPTIONS: dict[str, dict[str, Any]] = {
    **{name: {"aux_logits": False, "transform_input": True, "init_weights": False}
       for name in ("googlenet", "quantized_googlenet")},
    **{name: {"aux_logits": True, "transform_input": True, "init_weights": False}
       for name in ("inception_v3", "quantized_inception_v3")},
    **{name: {"aux_loss": True} for name in ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50",
                                              "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large")},
}

#: Detectors whose builder puts frozen batch norm (``FrozenBatchNorm2d``: statistics and
#: affine as buffers, no parameters) in the backbone when weights are given.
_FROZEN_BACKBONE_BN = frozenset({
    "fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn", "fasterrcnn_mobilenet_v3_large_320_fpn",
    "maskrcnn_resnet50_fpn", "keypointrcnn_resnet50_fpn", "retinanet_resnet50_fpn", "fcos_resnet50_fpn",
})

#: The input the published figures of each task are for: video clips of 16 frames,
#: segmentation at 520 x 520 (the weights' resize), RAFT two 512 x 512 frames (the size at
#: which both RAFT figures, 211.007 and 47.655 GFLOPS, are reproduced exactly; the weights'
#: metadata does not state it).
_CLIP_FRAMES = 16
_SEGMENTATION_SIZE = 520
_OPTICAL_FLOW_SIZE = 512


@lru_cache(maxsize=1)
def _torchvision_index() -> dict[str, str]:
    """torchvision model name -> task."""
    import torchvision  # type: ignore[import-untyped]
    from torchvision.models import list_models  # type: ignore[import-untyped]

    modules = {"classification": torchvision.models, "quantization": torchvision.models.quantization,
               "segmentation": torchvision.models.segmentation, "detection": torchvision.models.detection,
               "video": torchvision.models.video, "optical_flow": torchvision.models.optical_flow}
    return {name: task for task, module in modules.items() for name in sorted(list_models(module=module))}


def torchvision_models(task: str | None = None) -> tuple[str, ...]:
    """Names of torchvision's models (of one task of :data:`TORCHVISION_TASKS`, or all)."""
    if task is not None and task not in TORCHVISION_TASKS:
        raise ArchstatError(f"unknown torchvision task {task!r}; one of {', '.join(TORCHVISION_TASKS)}")
    return tuple(n for n, t in _torchvision_index().items() if task is None or t == task)


def torchvision_task(name: str) -> str | None:
    """The task of a torchvision model name, ``None`` for other names."""
    return _torchvision_index().get(name)


@lru_cache(maxsize=1)
def _timm_models() -> tuple[str, ...]:
    try:
        import timm
    except ImportError:
        return ()
    return tuple(timm.list_models())


def available_models(include_timm: bool = False) -> list[str]:
    """Zoo names first, then torchvision's (and ``timm:`` names when asked)."""
    from archstat.zoo import ZOO

    names = list(ZOO) + [n for n in torchvision_models() if n not in ZOO]
    if include_timm:
        names += [TIMM_PREFIX + n for n in _timm_models()]
    return names


def _weights(name: str) -> list:
    from torchvision.models import get_model_weights

    try:
        return list(get_model_weights(name))
    except (ValueError, KeyError):
        return []


def published_options(name: str) -> dict[str, Any]:
    """The builder options torchvision model ``name``'s published weights fix (no download)."""
    options: dict[str, Any] = {}
    weights = _weights(name)
    categories = weights[0].meta.get("categories") if weights else None
    if categories:
        options["num_classes"] = len(categories)
    if torchvision_task(name) in ("segmentation", "detection"):
        options["weights_backbone"] = None
    options.update(_PUBLISHED_OPTIONS.get(name, {}))
    return options


def _freeze_backbone_bn(model: nn.Module) -> nn.Module:
    """Replace the backbone's batch norms by ``FrozenBatchNorm2d``, as the builder does for trained weights."""
    from torchvision.ops.misc import FrozenBatchNorm2d  # type: ignore[import-untyped]

    for parent in list(model.get_submodule("backbone").modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
                frozen.to(child.weight.device)
                setattr(parent, child_name, frozen)
    return model


def _torchvision_builder(name: str, kwargs: dict[str, Any]) -> Callable[[], nn.Module]:
    from torchvision.models import get_model

    options = {**published_options(name), **kwargs}

    def build() -> nn.Module:
        model = get_model(name, weights=None, **options)
        return _freeze_backbone_bn(model) if name in _FROZEN_BACKBONE_BN else model

    return build


def model_builder(name: str, **kwargs: Any) -> Callable[[], nn.Module]:
    """A zero-argument function that builds ``name`` (random weights; ``kwargs`` go to the builder).

    Raises :class:`UnknownModelError` with close matches for a name nobody knows.
    """
    from archstat.zoo import ZOO

    if name.startswith(TIMM_PREFIX):
        timm_name = name[len(TIMM_PREFIX):]
        if not _timm_models():
            raise UnknownModelError(f"model {name!r} needs timm, which is not installed (pip install timm)")
        if timm_name not in _timm_models():
            raise UnknownModelError(_unknown_message(name, [TIMM_PREFIX + n for n in _timm_models()]))
        import timm

        return lambda: timm.create_model(timm_name, pretrained=False, **kwargs)
    if name in ZOO:
        entry = ZOO[name]
        return (lambda: entry.builder(**kwargs)) if kwargs else entry.builder
    if torchvision_task(name) is not None:
        return _torchvision_builder(name, kwargs)
    raise UnknownModelError(_unknown_message(name, available_models()))


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build model ``name`` with random weights on the current default device."""
    return model_builder(name, **kwargs)()


def _unknown_message(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `archstat zoo` lists the zoo"
    return f"unknown model {name!r}{hint}"


def resolve_names(patterns: str | Iterable[str]) -> list[str]:
    """Expand comma-separated names and globs, keeping order and dropping repeats.

    ``"resnet*"`` matches zoo and torchvision names; ``"timm:seresnet*"`` matches timm's.
    A glob that matches nothing, or no name at all, raises :class:`ArchstatError`;
    plain names are returned as given (and checked when built).
    """
    if isinstance(patterns, str):
        patterns = patterns.split(",")
    names: list[str] = []
    for pattern in (p.strip() for p in patterns):
        if not pattern:
            continue
        if not any(ch in pattern for ch in "*?["):
            names.append(pattern)
            continue
        pool = ([TIMM_PREFIX + n for n in _timm_models()] if pattern.startswith(TIMM_PREFIX)
                else available_models())
        hits = fnmatch.filter(pool, pattern)
        if not hits:
            raise UnknownModelError(f"no model matches {pattern!r}")
        names.extend(hits)
    if not names:
        raise ArchstatError("no model names given (e.g. --models resnet50,mobilenet_v2 or --models 'resnet*')")
    return list(dict.fromkeys(names))


def _detection_size(name: str) -> tuple[int, int, int]:
    """The image size a detector's transform resizes to: ``min_size`` square for the R-CNN
    family, RetinaNet and FCOS; SSD's fixed size."""
    from torchvision.models import get_model

    import torch

    with torch.device("meta"):
        model = get_model(name, weights=None, **published_options(name))
    transform = model.transform
    side = transform.fixed_size[0] if getattr(transform, "fixed_size", None) else transform.min_size[0]
    return (3, side, side)


@lru_cache(maxsize=None)
def input_spec(name: str) -> InputSpec:
    """What model ``name`` takes and its published input size (``(3, 224, 224)`` images when
    nothing says otherwise)."""
    from archstat.zoo import ZOO

    if name in ZOO:
        return InputSpec("image", ZOO[name].input_size)
    if name.startswith(TIMM_PREFIX):
        try:
            import timm

            cfg = timm.get_pretrained_cfg(name[len(TIMM_PREFIX):])
            if cfg is not None and getattr(cfg, "input_size", None):
                return InputSpec("image", tuple(cfg.input_size))
        except (ImportError, RuntimeError, ValueError):
            pass
        return InputSpec("image", (3, 224, 224))
    task = torchvision_task(name)
    if task in ("classification", "quantization", "video"):
        crops = [getattr(w.transforms(), "crop_size", [224]) for w in _weights(name)] or [[224]]
        crop = min(crops, key=lambda c: c[0])  # the smallest published crop (ViT's SWAG crops need image_size)
        h, w = (crop[0], crop[-1])
        return InputSpec("video", (3, _CLIP_FRAMES, h, w)) if task == "video" else InputSpec("image", (3, h, w))
    if task == "segmentation":
        return InputSpec("image", (3, _SEGMENTATION_SIZE, _SEGMENTATION_SIZE))
    if task == "detection":
        return InputSpec("images", _detection_size(name))
    if task == "optical_flow":
        return InputSpec("image_pair", (3, _OPTICAL_FLOW_SIZE, _OPTICAL_FLOW_SIZE))
    return InputSpec("image", (3, 224, 224))


def default_input_size(name: str) -> tuple[int, ...]:
    """One sample's published input shape, ``(C, H, W)`` (``(C, T, H, W)`` for video)."""
    return input_spec(name).size
