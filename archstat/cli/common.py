"""Options and output handling shared by the subcommands."""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from archstat.reports.writers import FORMATS, render, write_atomic

__all__ = ["add_input_options", "add_shape_options", "add_output_options", "emit", "progress", "input_shape",
           "quiet_warnings", "sweep", "report_failures"]

T = TypeVar("T")
R = TypeVar("R")


def add_shape_options(parser: argparse.ArgumentParser) -> None:
    """``--input-size`` / ``--batch`` (one sample's size, applied to every input of the model)
    and ``--input-shape`` (full shapes, for any model)."""
    parser.add_argument("--input-size", metavar="CxHxW",
                        help="one sample's size, e.g. 3x224x224 or 224x224 (CxTxHxW for video); a detector gets a "
                             "list of --batch images of it, RAFT two frames (default: the size each model was "
                             "published at)")
    parser.add_argument("--batch", type=int, default=1, metavar="N",
                        help="batch size, for the published size as for --input-size (default 1)")
    parser.add_argument("--input-shape", metavar="SHAPES",
                        help="full input shapes instead: 1x3x224x224; several positional inputs comma-separated "
                             "(1x3x512x512,1x3x512x512); a list input in brackets ([3x800x800,3x600x800])")


def add_input_options(parser: argparse.ArgumentParser) -> None:
    add_shape_options(parser)
    parser.add_argument("--bias", action="store_true",
                        help="count bias additions as multiply-adds (as ptflops does; torchvision's figures do not)")
    parser.add_argument("--device", choices=("meta", "cpu"), default="meta",
                        help="run the model on meta (default: no memory, falls back to cpu when needed) or cpu")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--out", metavar="FILE", help="write to FILE (atomically) instead of stdout")


def input_shape(args: argparse.Namespace, name: str) -> Any:
    """Model ``name``'s ``input_shape`` from ``--input-shape``, or ``--input-size`` and
    ``--batch`` (default: its published input, batched)."""
    from archstat.api import parse_input_shape, resolve_inputs
    from archstat.errors import ArchstatError

    if args.input_shape:
        if args.input_size or args.batch != 1:
            raise ArchstatError("--input-shape gives full shapes: use it without --input-size and --batch")
        return parse_input_shape(args.input_shape)
    return resolve_inputs(name, args.input_size, args.batch)


def emit(args: argparse.Namespace, text: str) -> None:
    """Print ``text`` or write it to ``--out`` atomically."""
    if args.out:
        with write_atomic(args.out) as fh:
            fh.write(text)
        print(f"archstat: wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def tables(args: argparse.Namespace, parts: Sequence[tuple[str, list[dict], Sequence[str]]]) -> str:
    """Render titled tables; machine formats (csv, json) take the first table only."""
    if args.format in ("csv", "json"):
        _, rows, numeric = parts[0]
        return render(rows, args.format, numeric=numeric)
    blocks = [render(rows, args.format, caption=title, numeric=numeric) for title, rows, numeric in parts]
    return "\n".join(blocks)


def progress(items: Sequence[T], desc: str) -> Iterator[T]:
    """A progress bar on stderr for more than one item (silent when stderr is not a terminal)."""
    if len(items) < 2:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, unit="model", file=sys.stderr, disable=None, leave=False)


def quiet_warnings(fn: Callable[[], T]) -> tuple[T, list[str]]:
    """Run ``fn`` collecting archstat's warnings (shown once, as lines, by the caller)."""
    from archstat.errors import FormulaMismatchWarning, UncountedOpWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    lines = [str(w.message) for w in caught if issubclass(w.category, (UncountedOpWarning, FormulaMismatchWarning))]
    return result, list(dict.fromkeys(lines))


def warn_lines(lines: Iterable[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


def sweep(items: Sequence[T], desc: str, work: Callable[[T], R],
          label: Callable[[T], str] = str) -> tuple[list[R], list[str], list[str]]:
    """Run ``work`` on every item with a progress bar: ``(results, failures, warning lines)``.

    A bad item (an :class:`~archstat.errors.ArchstatError`) is reported and skipped so a
    sweep still writes the rest, unless it is the only item: then its error is the answer.
    """
    from archstat.errors import ArchstatError

    results: list[R] = []
    failures: list[str] = []
    notes: list[str] = []
    for item in progress(items, desc):
        try:
            result, lines = quiet_warnings(lambda: work(item))
        except ArchstatError as exc:
            if len(items) == 1:
                raise
            failures.append(f"{label(item)}: {exc}")
            continue
        results.append(result)
        notes += lines
    return results, failures, notes


def report_failures(failures: Sequence[str]) -> int:
    """Print a sweep's failures, one line each; the exit status (2 if any failed)."""
    for failure in failures:
        print(f"archstat: error: {failure}", file=sys.stderr)
    return 2 if failures else 0
