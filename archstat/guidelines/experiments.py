"""The four ShuffleNet V2 guideline experiments (arXiv:1807.11164, Sec. 2, Tables 1-4) as data.

Each experiment is a list of :class:`Setup` rows: a benchmark network (see
:mod:`archstat.guidelines.networks`), the channels it uses, the channels the paper
printed, and the paper's measured speeds for the same row (GPU batches/s on a GTX
1080Ti, ARM images/s on a Snapdragon 810), looked up in the published-figures table
so that each number carries its citation.

Channels. The paper holds FLOPs fixed across the rows of each table, but its printed
channels only do so approximately: in Table 1, (36,432) has 5.1% fewer FLOPs than
(128,128) and (22,44) 5.5% fewer than (32,32); in Table 2, 180 channels at g=2 give
1.1% fewer than 128 at g=1. By default archstat therefore *solves* for channels:
starting from the paper's reference row (1:1, g=1, 1-fragment) it picks the integer
widths, divisible by the group count, whose FLOPs lie within
:data:`FLOPS_TOLERANCE` of the reference and whose ratio is closest to the row's
nominal one (:func:`balanced_pair`). ``paper_channels=True`` uses the printed
channels verbatim instead, FLOPs differences and all. Either way both are shown.

Widths. The paper runs each table at three widths (x1, x2, x4; for G3/G4 the three
``c`` columns) and gives separate channels for its GPU and ARM runs. ``platform``
picks whose channels to use (``"gpu"``: 128-wide reference, ``"arm"``: 32/64-wide)
and ``width`` the column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from math import ceil, floor, log, sqrt
from typing import Callable

from torch import nn

from archstat.errors import ArchstatError
from archstat.guidelines.networks import SPATIAL, Bottleneck, ConvChain, ParallelBranches, stack
from archstat.published import Published, published, published_rows

__all__ = ["Setup", "EXPERIMENTS", "PLATFORMS", "WIDTHS", "FLOPS_TOLERANCE", "SOURCE", "balanced_pair", "setups"]

#: Source of every paper figure used here (matched as a substring of published.csv's ``source``).
SOURCE = "arXiv:1807.11164"
#: Relative FLOPs deviation from the reference row the channel solver accepts.
FLOPS_TOLERANCE = 0.005
#: Paper platforms: ours -> the label in published.csv.
PLATFORMS = {"gpu": "GPU", "arm": "ARM"}
#: Width multipliers: the paper's x1, x2, x4 columns.
WIDTHS = (1, 2, 4)


@dataclass(frozen=True)
class Setup:
    """One row of a guideline experiment: what to build, and what the paper measured for it."""

    experiment: str
    config: str
    width: int
    platform: str
    channels: str
    paper_channels: str
    in_channels: int
    build: Callable[[], nn.Module] = field(repr=False)
    paper: dict[str, Published] = field(default_factory=dict, repr=False)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, *SPATIAL)


def balanced_pair(product: float, ratio: float = 1.0, multiple_of: int = 1,
                  tolerance: float = FLOPS_TOLERANCE) -> tuple[int, int]:
    """Integer widths ``(c1, c2)``, multiples of ``multiple_of``, with ``c1 * c2`` within
    ``tolerance`` of ``product`` and ``c2 / c1`` as close to ``ratio`` as possible.

    When no pair is within tolerance, the pair closest to ``product`` is returned.
    Example: ``balanced_pair(128 * 128, 2)`` is ``(90, 182)`` (16,380 = 0.02% off; the
    paper printed (90, 180), 1.1% off).
    """
    m = multiple_of
    ideal = sqrt(product / ratio)
    lo, hi = max(m, floor(ideal * 0.6 / m) * m), ceil(ideal * 1.6 / m) * m
    best: tuple | None = None
    for c1 in range(lo, hi + 1, m):
        q = product / c1
        for c2 in {max(m, floor(q / m) * m), ceil(q / m) * m}:
            err = abs(c1 * c2 / product - 1.0)
            skew = abs(log(c2 / (c1 * ratio)))
            key = (err > tolerance, skew if err <= tolerance else err, err, c1, c2)
            best = key if best is None or key < best else best
    assert best is not None
    return best[3], best[4]


def _paper(table: str, model: str, variant: str) -> Published:
    return published(model=model, metric="speed", source=SOURCE, table=table, variant=variant)


def _printed(table: str, model: str, metric: str, variant: str) -> tuple[int, ...]:
    value = published(model=model, metric=metric, source=SOURCE, table=table, variant=variant).value
    return tuple(int(v) for v in re.findall(r"\d+", value))


def _column_widths(table: str, model: str, platform: str) -> list[int]:
    """The ``c`` columns of Table 3/4 for a platform, ascending (x1, x2, x4)."""
    label = PLATFORMS[platform]
    widths = {int(m.group(1)) for r in published_rows()
              if SOURCE in r.source and r.table == table and r.model == model
              and (m := re.fullmatch(rf"{label} c=(\d+)", r.variant))}
    return sorted(widths)


def _both(table: str, model: str, variant: Callable[[str], str]) -> dict[str, Published]:
    return {label: _paper(table, model, variant(label)) for label in PLATFORMS.values()}


def _pair_text(c1: int, c2: int) -> str:
    return f"({c1},{c2})"


# --------------------------------------------------------------------------- G1


G1_TABLE = "Table 1 (G1)"
G1_RATIOS = ("1:1", "1:2", "1:6", "1:12")


def g1_setups(width: int, platform: str, paper_channels: bool) -> list[Setup]:
    """Table 1: 10 blocks of two 1x1 convs (c1 -> c2 -> c1) at equal FLOPs, c1:c2 = 1:1 ... 1:12."""
    label = PLATFORMS[platform]
    ref = width * _printed(G1_TABLE, "stack of 10 blocks (c1->c2 1x1, c2->c1 1x1)", "(c1,c2) for x1",
                           f"c1:c2=1:1 {label}")[0]
    rows = []
    for ratio in G1_RATIOS:
        printed = tuple(width * c for c in _printed(G1_TABLE, "stack of 10 blocks (c1->c2 1x1, c2->c1 1x1)",
                                                    "(c1,c2) for x1", f"c1:c2={ratio} {label}"))
        c1, c2 = printed if paper_channels else balanced_pair(ref * ref, int(ratio.split(":")[1]))
        rows.append(Setup("G1", ratio, width, platform, _pair_text(c1, c2), _pair_text(*printed), c1,
                          partial(stack, partial(ConvChain, (c1, c2, c1))),
                          _both(G1_TABLE, "stack of 10 blocks", lambda p: f"c1:c2={ratio} {p} x{width}")))
    return rows


# --------------------------------------------------------------------------- G2


G2_TABLE = "Table 2 (G2)"
G2_GROUPS = (1, 2, 4, 8)


def _divisible(c: int, g: int, ref: int) -> int:
    """``c`` if ``g`` divides it, else the neighbouring multiple of ``g`` whose FLOPs (``c^2/g``)
    are closer to the reference ``ref^2``: the paper's ARM column prints c=180 for g=8."""
    if c % g == 0:
        return c
    low, high = c - c % g, c - c % g + g
    return min((low, high), key=lambda w: abs(w * w / g - ref * ref))


def g2_setups(width: int, platform: str, paper_channels: bool) -> list[Setup]:
    """Table 2: 10 pointwise group convs at equal FLOPs, g = 1, 2, 4, 8."""
    label = PLATFORMS[platform]

    def printed(g: int) -> int:
        return width * _printed(G2_TABLE, "stack of 10 1x1 group convs", "c for x1", f"g={g} {label}")[0]

    ref = printed(1)
    rows = []
    for g in G2_GROUPS:
        ca, cb = (_divisible(printed(g), g, ref),) * 2 if paper_channels else \
            balanced_pair(g * ref * ref, 1, multiple_of=g)
        channels = f"c={ca}" if ca == cb else f"c={ca}/{cb} alternating"
        if paper_channels and ca != printed(g):
            channels += f" (printed {printed(g)} is not divisible by g={g})"
        rows.append(Setup("G2", f"g={g}", width, platform, channels, f"c={printed(g)}", ca,
                          partial(stack, partial(ConvChain, (ca, cb, ca), g), repeats=5),
                          _both(G2_TABLE, "stack of 10 1x1 group convs", lambda p: f"g={g} {p} x{width}")))
    return rows


# --------------------------------------------------------------------------- G3


G3_TABLE = "Table 3 (G3)"
G3_CONFIGS = (("1-fragment", "series", 1), ("2-fragment-series", "series", 2), ("4-fragment-series", "series", 4),
              ("2-fragment-parallel", "parallel", 2), ("4-fragment-parallel", "parallel", 4))


def _series_widths(c: int, n: int, paper_channels: bool) -> tuple[int, ...]:
    if n == 1:
        return (c, c)
    if paper_channels:  # uniform width, rounded as the paper's tables do
        w = round(c / sqrt(n))
        return (w,) * (n + 1)
    a, b = balanced_pair(c * c / n)
    return tuple(a if i % 2 == 0 else b for i in range(n + 1))


def g3_setups(width: int, platform: str, paper_channels: bool) -> list[Setup]:
    """Table 3: blocks of 1, 2 or 4 1x1 convs in series or in parallel, FLOPs of the 1-fragment block."""
    columns = _column_widths(G3_TABLE, "1-fragment", platform)
    col = WIDTHS.index(width)
    c = columns[col]
    rows = []
    for name, arrangement, n in G3_CONFIGS:
        if arrangement == "series":
            widths = _series_widths(c, n, paper_channels)
            channels = "c=" + "->".join(map(str, widths))
            build = partial(stack, partial(ConvChain, widths))
        else:
            channels = f"c={c}, {n} branches of {c // n}"
            build = partial(stack, partial(ParallelBranches, c, n))
        in_channels = widths[0] if arrangement == "series" else c
        rows.append(Setup("G3", name, width, platform, channels, f"c={c}", in_channels, build,
                          _both(G3_TABLE, name, lambda p:
                                f"{p} c={_column_widths(G3_TABLE, name, 'gpu' if p == 'GPU' else 'arm')[col]}")))
    return rows


# --------------------------------------------------------------------------- G4


G4_TABLE = "Table 4 (G4)"
G4_CONFIGS = ((True, True, "ReLU+shortcut"), (True, False, "ReLU"), (False, True, "shortcut"), (False, False, "none"))


def _g4_model(relu: bool, shortcut: bool) -> str:
    return f"ResNet bottleneck x10 (ReLU={'yes' if relu else 'no'}, shortcut={'yes' if shortcut else 'no'})"


def g4_setups(width: int, platform: str, paper_channels: bool) -> list[Setup]:
    """Table 4: the ResNet bottleneck stacked 10 times, with ReLU and/or the shortcut removed."""
    col = WIDTHS.index(width)
    c = _column_widths(G4_TABLE, _g4_model(True, True), platform)[col]
    rows = []
    for relu, shortcut, name in G4_CONFIGS:
        model = _g4_model(relu, shortcut)
        rows.append(Setup("G4", name, width, platform, f"c={c} ({c}->{c // 4}->{c // 4}->{c})", f"c={c}", c,
                          partial(stack, partial(Bottleneck, c, relu, shortcut)),
                          _both(G4_TABLE, model, lambda p:
                                f"{p} c={_column_widths(G4_TABLE, model, 'gpu' if p == 'GPU' else 'arm')[col]}")))
    return rows


#: Experiment name -> setups for ``(width, platform, paper_channels)``.
EXPERIMENTS: dict[str, Callable[[int, str, bool], list[Setup]]] = {
    "G1": g1_setups, "G2": g2_setups, "G3": g3_setups, "G4": g4_setups,
}


def setups(experiments: tuple[str, ...] = tuple(EXPERIMENTS), widths: tuple[int, ...] = (1,),
           platform: str = "gpu", paper_channels: bool = False) -> list[list[Setup]]:
    """The rows to run, grouped by (experiment, width): the rows of a group are compared with each other."""
    unknown = [e for e in experiments if e not in EXPERIMENTS]
    if unknown:
        raise ArchstatError(f"unknown experiment(s) {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    bad = [w for w in widths if w not in WIDTHS]
    if bad:
        raise ArchstatError(f"width(s) {bad} not in the paper's x1, x2, x4; choose from {WIDTHS}")
    if platform not in PLATFORMS:
        raise ArchstatError(f"platform {platform!r}: choose gpu or arm (whose channel configurations to use)")
    return [EXPERIMENTS[e](w, platform, paper_channels) for e in experiments for w in widths]
