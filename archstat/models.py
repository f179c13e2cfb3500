"""Model names: the zoo, every torchvision classification model, and ``timm:<name>``.

:func:`create_model` builds any of them with random weights (nothing is ever
downloaded); :func:`resolve_names` expands globs such as ``resnet*`` or
``timm:seresnet*`` for sweeps; :func:`default_input_size` is the input the model was
published at (zoo metadata, torchvision's weight transforms, timm's default config).
"""

from __future__ import annotations

import difflib
import fnmatch
from functools import lru_cache
from typing import Any, Callable, Iterable

from torch import nn

from archstat.errors import UnknownModelError

__all__ = ["create_model", "model_builder", "resolve_names", "available_models", "default_input_size",
           "torchvision_models", "TIMM_PREFIX"]

TIMM_PREFIX = "timm:"


@lru_cache(maxsize=1)
def torchvision_models() -> tuple[str, ...]:
    """Names of torchvision's classification models."""
    import torchvision
    from torchvision.models import list_models

    return tuple(sorted(list_models(module=torchvision.models)))


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
    if name in torchvision_models():
        from torchvision.models import get_model

        return lambda: get_model(name, weights=None, **kwargs)
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
    A glob that matches nothing raises :class:`UnknownModelError`; plain names are
    returned as given (and checked when built).
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
    return list(dict.fromkeys(names))


def default_input_size(name: str) -> tuple[int, int, int]:
    """``(C, H, W)`` the model is published at; ``(3, 224, 224)`` when nothing says otherwise."""
    from archstat.zoo import ZOO

    if name in ZOO:
        return ZOO[name].input_size
    if name.startswith(TIMM_PREFIX):
        try:
            import timm

            cfg = timm.get_pretrained_cfg(name[len(TIMM_PREFIX):])
            if cfg is not None and getattr(cfg, "input_size", None):
                return tuple(cfg.input_size)  # type: ignore[return-value]
        except (ImportError, RuntimeError, ValueError):
            pass
        return (3, 224, 224)
    if name in torchvision_models():
        from torchvision.models import get_model_weights

        try:
            weights = list(get_model_weights(name))
        except ValueError:
            return (3, 224, 224)
        # The smallest published crop: ViT's larger SWAG crops need a model built with image_size.
        crop = min(getattr(w.transforms(), "crop_size", [224])[0] for w in weights)
        return (3, crop, crop)
    return (3, 224, 224)
