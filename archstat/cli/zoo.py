"""``archstat zoo``: the paper-faithful models, their sources and published figures;
``archstat zoo --check`` counts each at its paper's input size beside the published figures."""

from __future__ import annotations

import argparse
import fnmatch
import sys
from typing import TYPE_CHECKING

from archstat.cli.common import (Part, add_count_device_option, add_model_options, add_output_options, emit, progress,
                                 quiet_warnings, tables, warn_lines)

if TYPE_CHECKING:
    from archstat.published import Published
    from archstat.zoo.check import Comparison
    from archstat.zoo.registry import Ref, ZooEntry

_LIST_NUMERIC = ("params", "madds", "top-1 err (%)", "top-5 err (%)")
_CHECK_NUMERIC = ("published", "counted", "delta", "tolerance", "published_value", "counted_value")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "zoo", help="list the paper-faithful models with their sources and published figures (--check: count them)",
        description="List every model of archstat's zoo: its paper (arXiv id), the input size the paper used, the "
                    "published params, multiply-adds and top-1/top-5 errors with the table they come from, and how it "
                    "differs from torchvision's or timm's model of the same name. With --check, count each model at "
                    "its paper's input size and print published vs counted, the relative delta, the tolerance with "
                    "its reason and a verdict: ok, finding (a gap archstat cannot explain, recorded in the model's "
                    "metadata), mismatch, stale finding, or unpublished. Exit status 1 on a mismatch or stale finding.")
    add_model_options(p, help="comma-separated zoo names or globs (default: the whole zoo)", required=False)
    p.add_argument("--family", metavar="FAMILY", help="only this family (resnet, shufflenet, mobilenet, ...)")
    p.add_argument("--check", action="store_true", help="count each model and compare with the published figures")
    add_count_device_option(p)
    add_output_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from archstat.zoo import ZOO

    entries = [ZOO[n] for n in _select(args.models, args.family)]
    human = args.format not in ("csv", "json")
    if not args.check:
        rows = [_list_row(e, human) for e in entries]
        emit(args, tables(args, [(f"archstat zoo: {len(rows)} models", rows, _LIST_NUMERIC)]))
        return 0
    return _check(args, entries, human)


def _select(patterns: str | None, family: str | None) -> list[str]:
    """Zoo names matching ``patterns`` (names or globs) and ``family``, in registry order."""
    from archstat.errors import ArchstatError, UnknownModelError
    from archstat.zoo import ZOO

    names = list(ZOO)
    if patterns:
        wanted: list[str] = []
        for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
            hits = fnmatch.filter(names, pattern)
            if not hits:
                raise UnknownModelError(f"no zoo model matches {pattern!r}; `archstat zoo` lists them")
            wanted += hits
        chosen = set(wanted)
        names = [n for n in names if n in chosen]
    if family:
        families = sorted({ZOO[n].family for n in ZOO})
        if family not in families:
            raise ArchstatError(f"unknown family {family!r}; choose one of {', '.join(families)}")
        names = [n for n in names if ZOO[n].family == family]
    return names


def _printed(ref: Ref | None) -> str:
    """A published figure as printed, with its unit: ``3.8 x10^9``, ``28.1M``, ``569 million``."""
    if ref is None:
        return "-"
    row = ref.resolve()
    unit = "" if row.unit in ("params", "%", "count") or row.value[-1:].isalpha() else f" {row.unit}"
    return f"{row.value}{unit}"


def _short_source(published: Published) -> str:
    """``arXiv:1512.03385, Table 1`` / ``github:huggingface/pytorch-image-models`` / ``torchvision 0.29.1``."""
    source = published.source
    if source.startswith(("arXiv:", "github:")):
        source = source.split()[0]
    elif source.startswith("torchvision"):
        source = " ".join(source.split()[:2]) + " metadata"
    else:
        source = source.split(" (")[0]
    table = published.table if published.table not in ("", "-") and not source.endswith("metadata") else ""
    return f"{source}, {table}" if table else source


def _has_finding(entry: ZooEntry) -> bool:
    return bool(entry.finding or any(e.finding for e in entry.expected().values()))


def _list_row(entry: ZooEntry, human: bool) -> dict:
    params, madds = entry.params, entry.madds
    if human:
        return {
            "model": entry.name, "family": entry.family, "arXiv": entry.arxiv or "-",
            "input": "x".join(map(str, entry.input_size)),
            "params": _printed(params.ref if params else None), "madds": _printed(madds.ref if madds else None),
            "top-1 err (%)": _printed(entry.top1_err), "top-5 err (%)": _printed(entry.top5_err),
            "figures from": entry.table or "-", "finding": "yes" if _has_finding(entry) else "",
        }
    row: dict = {"model": entry.name, "family": entry.family, "paper": entry.paper, "arxiv": entry.arxiv,
                 "input_size": "x".join(map(str, entry.input_size))}
    for metric, expected in (("params", params), ("madds", madds)):
        published = expected.ref.resolve() if expected else None
        row[f"{metric}_published"] = published.number() if published else None
        row[f"{metric}_as_printed"] = published.value if published else None
        row[f"{metric}_source"] = published.citation if published else None
        row[f"{metric}_tolerance"] = expected.tolerance if expected else None
    for metric, ref in (("top1_err", entry.top1_err), ("top5_err", entry.top5_err)):
        published = ref.resolve() if ref else None
        row[metric] = published.value if published else None
        row[f"{metric}_source"] = published.citation if published else None
    row.update(differs=entry.differs, finding=entry.finding, note=entry.note, same_as=",".join(entry.same_as))
    return row


def _scaled(value: float) -> str:
    if value >= 1e9:
        return f"{value / 1e9:.3f} G"
    if value >= 1e6:
        return f"{value / 1e6:.3f} M"
    return f"{value:,.0f}"


def _check(args: argparse.Namespace, entries: list[ZooEntry], human: bool) -> int:
    from archstat.errors import ArchstatError
    from archstat.zoo.check import compare, count_entry

    comparisons: list[tuple[ZooEntry, Comparison]] = []
    notes, failures = [], []
    for entry in progress(entries, "counting"):
        try:
            stats, lines = quiet_warnings(lambda: count_entry(entry, device=args.count_device))
        except ArchstatError as exc:
            failures.append(f"{entry.name}: {exc}")
            continue
        notes += lines
        comparisons += [(entry, c) for c in compare(entry, stats)]
    warn_lines(notes)
    if comparisons:
        title = f"archstat zoo --check: {len(entries)} models, published vs counted at each paper's input size"
        parts: list[Part] = [(title, [_check_row(entry, c, human) for entry, c in comparisons], _CHECK_NUMERIC)]
        explained = [{"model": c.model, "metric": c.metric, "verdict": c.verdict, "why": _explanation(entry, c)}
                     for entry, c in comparisons if c.verdict != "ok" and c.verdict != "unpublished"]
        if human and explained:
            parts.append(("findings and mismatches", explained, ()))
        emit(args, tables(args, parts))
    for failure in failures:
        print(f"archstat: error: {failure}", file=sys.stderr)
    if failures:
        return 2
    return 1 if any(c.verdict in ("mismatch", "stale finding") for _, c in comparisons) else 0


def _explanation(entry: ZooEntry, c: Comparison) -> str:
    if c.expected is None:
        return entry.note
    return c.expected.finding or c.expected.reason


def _check_row(entry: ZooEntry, c: Comparison, human: bool) -> dict:
    published, expected = c.published, c.expected
    if human:
        return {
            "model": c.model, "metric": c.metric, "published": _printed(expected.ref if expected else None),
            "counted": _scaled(c.counted), "delta": f"{c.delta * 100:+.2f}%" if c.delta is not None else "-",
            "tolerance": f"{expected.tolerance * 100:.2f}%" if expected else "-", "verdict": c.verdict,
            "source": _short_source(published) if published else "-",
        }
    return {
        "model": c.model, "metric": c.metric, "input_size": "x".join(map(str, entry.input_size)),
        "published_value": c.published_value, "as_printed": published.value if published else None,
        "counted_value": c.counted, "delta": c.delta, "tolerance": expected.tolerance if expected else None,
        "verdict": c.verdict, "convention": c.convention, "source": published.citation if published else None,
        "explanation": _explanation(entry, c),
    }
