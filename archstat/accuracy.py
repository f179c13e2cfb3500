"""Published ImageNet-1k top-1 accuracies, each with its source, for accuracy-against-cost plots.

archstat never measures accuracy: it reads what was published, and only at the resolution
it is asked about (an accuracy evaluated at 384 pixels says nothing of a network counted at
224). Sources, by model name:

* zoo models (:data:`archstat.zoo.ZOO`): the paper's single-crop top-1 error, from the
  published-figures table (``top1_err`` of the entry; paper, arXiv id, table); a zoo
  entry without one that has a torchvision name is torchvision's network, and cites its
  weights' metadata;
* ``timm:<arch>``: timm's own table, ``archstat/data/timm-results-imagenet.csv`` (commit
  aa4b585; see ``archstat/data/NOTES.md``): timm's default pretrained tag where it was
  evaluated at that size, else the best tag at that size;
* torchvision models: the ``acc@1`` of the weights' metadata that torchvision ships (no
  download), the ``DEFAULT`` weights where they were evaluated at that crop, else the best
  weights evaluated at it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["Accuracy", "published_accuracy", "TIMM_RESULTS", "TIMM_SOURCE"]

#: timm's published table, as shipped in archstat's package data.
TIMM_RESULTS = "timm-results-imagenet.csv"
#: Where that table comes from (see ``archstat/data/NOTES.md``).
TIMM_SOURCE = "timm results-imagenet.csv (commit aa4b585)"


@dataclass(frozen=True)
class Accuracy:
    """A published top-1 accuracy (%), the square image side it was evaluated at, and where it
    was published (enough to find the number again)."""

    top1: float
    size: int
    source: str


def published_accuracy(model: str, size: int | None = None) -> Accuracy | None:
    """The published ImageNet top-1 accuracy of ``model`` evaluated at ``size`` (the model's own
    published size when None), or None where no source has one at that size."""
    from archstat.models import TIMM_PREFIX, default_input_size
    from archstat.zoo import ZOO

    side = size if size is not None else default_input_size(model)[-1]
    if model in ZOO:  # a zoo entry that is torchvision's network (squeezenet1_0) may cite torchvision's weights
        return _zoo(model, side) or (_torchvision(model, side) if ZOO[model].top1_err is None else None)
    if model.startswith(TIMM_PREFIX):
        return _timm(model.removeprefix(TIMM_PREFIX), side)
    return _torchvision(model, side)


def _zoo(name: str, side: int) -> Accuracy | None:
    from archstat.zoo import ZOO

    entry = ZOO[name]
    if entry.top1_err is None or entry.input_size[-1] != side:
        return None
    row = entry.top1_err.resolve()
    error = float(str(row.value).split("/")[0].strip())  # "23.9 / 7.1" or a single-crop "22.85"
    return Accuracy(round(100 - error, 3), side, f"{row.source}, {row.table}: top-1 error {error}% ({row.model})")


@lru_cache(maxsize=1)
def _timm_rows() -> dict[str, list[dict]]:
    text = resources.files("archstat.data").joinpath(TIMM_RESULTS).read_text(encoding="utf-8")
    by_arch: dict[str, list[dict]] = {}
    for row in csv.DictReader(text.splitlines()):
        by_arch.setdefault(row["model"].partition(".")[0], []).append(row)
    return by_arch


def _timm_default_tag(arch: str) -> str | None:
    """timm's default pretrained tag of ``arch``; raises ImportError without timm."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(arch)
    return getattr(cfg, "tag", None) if cfg is not None else None


def _timm(arch: str, side: int) -> Accuracy | None:
    rows = [r for r in _timm_rows().get(arch, []) if int(r["img_size"]) == side]
    if not rows:
        return None
    try:
        tag, why = _timm_default_tag(arch), ""
    except ImportError:
        tag, why = None, "; the best tag at that size: timm is not installed to name its default"
    chosen = next((r for r in rows if r["model"] == f"{arch}.{tag}"), None) or \
        max(rows, key=lambda r: float(r["top1"]))
    return Accuracy(float(chosen["top1"]), side, f"{TIMM_SOURCE}: {chosen['model']} at {side}{why}")


def _torchvision(name: str, side: int) -> Accuracy | None:
    from torchvision.models import get_model_weights  # type: ignore[import-untyped]

    try:
        weights = get_model_weights(name)
    except (ValueError, KeyError):
        return None
    scored = []
    for w in weights:
        metric = w.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
        crop = getattr(w.transforms(), "crop_size", None)
        if metric is not None and crop and int(crop[0]) == side:
            scored.append((w is weights.DEFAULT, float(metric), w))
    if not scored:
        return None
    _, top1, chosen = max(scored, key=lambda s: (s[0], s[1]))
    recipe = chosen.meta.get("recipe", "")
    return Accuracy(top1, side, f"torchvision weights metadata: {type(chosen).__name__}.{chosen.name} (acc@1 at "
                                f"{side}{'; recipe ' + recipe if recipe else ''})")
