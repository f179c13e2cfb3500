"""The one grammar of inputs, for every command and the sweep: sizes, shapes and batches.

* A **size** is one sample's size without the batch, its numbers joined by ``x``:
  ``224`` (a square image side), ``HxW`` (``480x640``), ``CxHxW`` (``1x28x28``) or
  ``CxTxHxW`` (video). A side or ``HxW`` sets the image's height and width and keeps the
  model's own channels (and frames: ``224`` for a video model is ``3x16x224x224``); a size
  with channels replaces the whole sample (:func:`sample_size`).
* ``--input-size SIZE`` gives one size; ``--sizes SIZE,...`` (latency, sweep) several,
  comma-separated, where ``default`` is the size each model was published at
  (:func:`parse_sizes`).
* ``--batch N`` gives one batch; ``--batch N,...`` (latency, sweep) several (:func:`parse_batches`).
* Numbers are ASCII digits; an empty item of a list (``224,,320``) is refused.
* ``--input-shape`` gives full shapes instead, batch included (:func:`parse_input_shape`).

Malformed text (an empty size or part, a word, zero) is refused with a one-line
:class:`~archstat.errors.ArchstatError`, never skipped. Pure functions; no torch.
"""

from __future__ import annotations

from typing import Any

from archstat.errors import ArchstatError

__all__ = ["DEFAULT_SIZE", "MAX_COUNT", "parse_input_size", "parse_input_shape", "parse_sizes", "parse_batches",
           "sample_size", "size_dims", "size_text", "square_side"]

#: In ``--sizes``: the size each model was published at.
DEFAULT_SIZE = "default"

_FORMS = "224, HxW (480x640), CxHxW (3x224x224) or CxTxHxW"

#: The largest batch (or size) a count can be given: torch's and SQLite's int64.
MAX_COUNT = 2 ** 63 - 1


def _number(text: str) -> int | None:
    """A count written in ASCII digits (``" 224 "``), else None: not ``2_24``, ``+3``, ``-3`` or
    other scripts' digits, which ``int()`` would take."""
    text = text.strip()
    return int(text) if text and text.isascii() and text.isdigit() else None


def size_dims(text: str) -> tuple[int, ...]:
    """The numbers of a size as given: ``"224"`` -> ``(224,)``, ``"480x640"`` -> ``(480, 640)``,
    ``"3x16x112x112"`` -> ``(3, 16, 112, 112)``. An empty size or part is refused, not skipped."""
    parts = text.lower().split("x")
    if not text.strip():
        raise ArchstatError(f"input size is empty: give one such as {_FORMS}, or none for the size each model was "
                            "published at")
    if any(not part.strip() for part in parts):
        raise ArchstatError(f"input size {text!r} has an empty part: give numbers joined by x, e.g. 3x224x224, or "
                            "no size for the one each model was published at")
    numbers = [_number(d) for d in parts]
    if None in numbers:
        raise ArchstatError(f"input size {text!r} is not of the form {_FORMS}")
    dims = tuple(n for n in numbers if n is not None)
    if len(dims) > 4:
        raise ArchstatError(f"input size {text!r} has {len(dims)} numbers: give {_FORMS}")
    if any(d <= 0 for d in dims):
        raise ArchstatError(f"input size {text!r} must be positive integers like 3x224x224")
    return dims


def parse_input_size(text: str, batch: int = 1) -> tuple[int, ...]:
    """``"3x224x224"`` -> ``(batch, 3, 224, 224)``; ``"224x224"`` (or ``"224"``) with no model to
    take channels from assumes 3 (for a model's input, see :func:`sample_size`)."""
    return (batch, *sample_size(text, (3, 0, 0)))


def sample_size(text: str, published: tuple[int, ...]) -> tuple[int, ...]:
    """One sample's shape for size ``text``, for a model whose published sample is ``published``
    (``(C, H, W)`` or ``(C, T, H, W)``): a side or ``HxW`` replaces its last two dimensions, a size
    with channels replaces it all. ``sample_size("320", (3, 16, 112, 112))`` is ``(3, 16, 320, 320)``."""
    dims = size_dims(text)
    if len(dims) > 2:
        return dims
    return (*published[:-2], dims[0], dims[-1])


def size_text(text: str) -> str:
    """The canonical spelling of a size (a sweep's cells are keyed by it): a square ``HxW`` is its
    side (``"224x224"`` -> ``"224"``), every other size its numbers joined by ``x``."""
    dims = size_dims(text)
    if len(dims) == 2 and dims[0] == dims[1]:
        dims = dims[:1]
    return "x".join(map(str, dims))


def square_side(text: str) -> int | None:
    """The side of a size whose height and width are equal (``"224"``, ``"224x224"``,
    ``"3x224x224"``, ``"3x16x112x112"``), None for any other."""
    dims = size_dims(text)
    return dims[-1] if len(dims) == 1 or dims[-1] == dims[-2] else None


def parse_sizes(text: str | None) -> list[str | None]:
    """``--sizes``: ``"224,480x640,default"`` -> ``["224", "480x640", None]``, each size in its
    canonical spelling (:func:`size_text`), once; ``default`` (or no text) is None, the size each
    model was published at."""
    if text is None:
        return [None]
    parts = [p.strip() for p in text.split(",")]
    if not all(parts):  # "224,,320" or "224,": an empty item is refused, never skipped
        raise ArchstatError(f"--sizes takes comma-separated sizes ({_FORMS}) or {DEFAULT_SIZE!r}, not {text!r}")
    sizes = [None if p.lower() == DEFAULT_SIZE else size_text(p) for p in parts]
    return list(dict.fromkeys(sizes))


def parse_batches(text: str | int | None) -> list[int]:
    """``--batch``: ``"1,8,32"`` -> ``[1, 8, 32]``, each once."""
    if isinstance(text, int):
        batches: list[int | None] = [text]
    else:
        batches = [_number(p) for p in ("1" if text is None else text).split(",")]  # an empty item is refused
    if None in batches:
        raise ArchstatError(f"--batch takes comma-separated positive integers (1,8,32), not {text!r}")
    if any(b is not None and b < 1 for b in batches):
        raise ArchstatError(f"--batch must be at least 1, got {text!r}")
    if any(b is not None and b > MAX_COUNT for b in batches):  # SQLite's and torch's int64
        raise ArchstatError(f"--batch {text!r} is too large: at most {MAX_COUNT}")
    return list(dict.fromkeys(b for b in batches if b is not None))


def parse_input_shape(text: str) -> Any:
    """Full input shapes, batch included: ``"1x3x224x224"`` (one input), ``"1x3x512x512,1x3x512x512"``
    (two positional inputs), ``"[3x800x800,3x600x800]"`` (one input that is a list)."""
    def one(part: str) -> tuple[int, ...]:
        numbers = [_number(d) for d in part.strip().lower().split("x")]
        if None in numbers:
            raise ArchstatError(f"input shape {part.strip()!r} is not of the form NxCxHxW (e.g. 1x3x224x224)")
        dims = tuple(n for n in numbers if n is not None)
        if not dims or any(d <= 0 for d in dims):
            raise ArchstatError(f"input shape {part.strip()!r} must be positive integers like 1x3x224x224")
        return dims

    text = text.strip()
    listed = text.startswith("[") and text.endswith("]")
    pieces = (text[1:-1] if listed else text).split(",")
    if not text or any(not p.strip() for p in pieces):
        raise ArchstatError(f"--input-shape {text!r} has an empty shape: give shapes joined by commas, e.g. "
                            "1x3x224x224 or 1x3x512x512,1x3x512x512")
    parts = [one(p) for p in pieces]
    if listed:
        return parts
    return parts[0] if len(parts) == 1 else tuple(parts)
