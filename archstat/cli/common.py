"""The one grammar of the subcommands: shared option groups, and output handling.

Each group is added by one function and read back in one place, so every command that
takes an option spells and means it the same way; a new option joins its group here:

=========  =====================================================  ==========================
group      options                                                read by
=========  =====================================================  ==========================
models     ``--models NAMES``                                      ``model_names``, ``one_model``
input      ``--input-size``, ``--batch``, ``--input-shape``        ``input_shape``
counting   ``--count-device meta|cpu``, ``--bias``, ``--convention``,  ``count_options``
           ``--mode``, ``--optimizer``, ``--dtype``, ``--autocast``
timing     ``--device cpu|cuda``, ``--threads``, ``--warmup``,      the commands
           ``--repeats``, ``--quick``
output     ``--format``, ``--out FILE``, ``--out-dir DIR``          ``prepare_outputs``, ``emit``
=========  =====================================================  ==========================

``--count-device`` is where counting runs, ``--device`` where timing runs. ``--out`` is
always one file, ``--out-dir`` always a folder; both are checked by :func:`prepare_outputs`
before a command starts its work, and ``--format`` defaults to what ``--out``'s suffix says.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from archstat.reports.writers import (FORMATS, SUFFIX_FORMATS, OutputPathError, check_output_dir, check_output_file,
                                      format_for, render, write_atomic)

__all__ = ["group", "add_model_options", "add_batch_option", "add_sizes_options", "add_input_options",
           "add_count_device_option", "add_count_options", "add_training_options", "add_dtype_option",
           "add_device_option", "add_per_layer_option", "add_run_options", "add_timing_options", "add_output_options",
           "add_out_dir_option", "MODELS_HELP", "ONE_MODEL_HELP", "Part", "model_names", "one_model", "input_shape",
           "count_options", "prepare_outputs", "require_extra", "emit", "to_stdout", "StdoutClosed", "tables",
           "progress", "quiet_warnings", "warn_lines", "sweep", "report_failures"]

T = TypeVar("T")
R = TypeVar("R")

#: One titled table for :func:`tables`: ``(title, rows, right-aligned columns)``.
Part = tuple[str, list[dict], Sequence[str]]

MODELS_HELP = "comma-separated names or globs (zoo, torchvision, timm:<name>): resnet50,se_resnet50 | 'resnet*'"
ONE_MODEL_HELP = "one model: a name (zoo, torchvision, timm:<name>) or a glob matching one"


def group(parser: argparse.ArgumentParser, title: str) -> argparse._ArgumentGroup:
    """``parser``'s option group ``title`` ("models", "input", "counting", "timing", "output"), made on first use."""
    for existing in parser._action_groups:
        if existing.title == title:
            return existing
    return parser.add_argument_group(title)


def add_model_options(parser: argparse.ArgumentParser, help: str = MODELS_HELP, required: bool = True) -> None:
    """``--models NAMES``: the one way every command is given models."""
    group(parser, "models").add_argument("--models", required=required, metavar="NAMES", help=help)


def add_batch_option(parser: argparse.ArgumentParser) -> None:
    """``--batch N``, in the "input" group."""
    group(parser, "input").add_argument("--batch", type=int, default=1, metavar="N",
                                        help="batch size (default 1), also for a model's published input size")


#: What a size is (:mod:`archstat.grammar`), in every command's help.
SIZE_HELP = ("a side (224), HxW (480x640), CxHxW (1x224x224) or CxTxHxW; a side or HxW keeps each model's "
             "channels and frames")


def add_sizes_options(parser: argparse.ArgumentParser) -> None:
    """``--sizes SIZE,...`` and ``--batch N,...``: the commands that run every combination of
    several (latency, sweep), read with :func:`~archstat.grammar.parse_sizes` and
    :func:`~archstat.grammar.parse_batches`."""
    inputs = group(parser, "input")
    inputs.add_argument("--sizes", metavar="SIZE,...",
                        help=f"input sizes, comma-separated, each {SIZE_HELP}; 'default' is the size each model was "
                             "published at (the default)")
    inputs.add_argument("--batch", default="1", metavar="N,...", help="batch sizes, comma-separated (default 1)")


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """``--input-size`` / ``--batch`` (one sample's size, applied to every input of the model)
    and ``--input-shape`` (full shapes, for any model)."""
    inputs = group(parser, "input")
    inputs.add_argument("--input-size", metavar="SIZE",
                        help=f"one sample's size: {SIZE_HELP}; a detector gets a list of --batch images of it, RAFT "
                             "two frames (default: the size each model was published at)")
    add_batch_option(parser)
    inputs.add_argument("--input-shape", metavar="SHAPES",
                        help="full input shapes instead: 1x3x224x224; several positional inputs comma-separated "
                             "(1x3x512x512,1x3x512x512); a list input in brackets ([3x800x800,3x600x800])")


def add_count_device_option(parser: argparse.ArgumentParser) -> None:
    """``--count-device meta|cpu``: where the counting pass runs."""
    group(parser, "counting").add_argument(
        "--count-device", choices=("meta", "cpu"), default="meta",
        help="where to count: meta (default: no memory, falls back to cpu when a model needs values) or cpu")


def add_count_options(parser: argparse.ArgumentParser) -> None:
    """The "counting" group of the commands that call :func:`archstat.count` (read by :func:`count_options`)."""
    from archstat.conventions import CONVENTIONS

    add_count_device_option(parser)
    counting = group(parser, "counting")
    counting.add_argument("--bias", action="store_true",
                          help="count bias additions as multiply-adds (as ptflops does; torchvision's figures do not)")
    counting.add_argument("--convention", choices=CONVENTIONS, default="archstat",
                          help="count madds as another tool does: paper, torch (FlopCounterMode / 2), fvcore, thop, "
                               "ptflops")


def add_optimizer_option(where: argparse._ActionsContainer) -> None:
    """``--optimizer``: the optimizer whose step a training count includes."""
    from archstat.formulas.training import OPTIMIZERS

    where.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd_momentum",
                       help="the optimizer of a training step (default sgd_momentum)")


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """``--mode``, ``--optimizer``, ``--dtype``, ``--autocast``: what step is counted, in the "counting" group."""

    counting = group(parser, "counting")
    counting.add_argument("--mode", choices=("eval", "train"), default="eval",
                          help="count an inference forward pass (eval, default) or a training step: forward in "
                               "training mode, backward and optimizer step, with their memory")
    add_optimizer_option(counting)
    add_dtype_option(parser, "counting")
    counting.add_argument("--autocast", metavar="DEVICE:DTYPE",
                          help="mixed precision as torch.autocast runs it: cuda:float16, cpu:bfloat16 ...")


def add_dtype_option(parser: argparse.ArgumentParser, group_title: str) -> None:
    """``--dtype``: the dtype parameters, inputs and activations are in (a count's, a timing's)."""
    group(parser, group_title).add_argument(
        "--dtype", default="float32", metavar="DTYPE",
        help="the dtype parameters, inputs and activations are in: float32 (default), bfloat16, float16")


def restate_help(parser: argparse.ArgumentParser, option: str, help: str) -> None:
    """Say what a shared option means in this command, where its default is the command's own."""
    for action in parser._actions:
        if option in action.option_strings:
            action.help = help


def run_counts(args: argparse.Namespace) -> tuple[int, int]:
    """``--warmup`` and ``--repeats`` as given, else the defaults their help states: 5 and 20
    (1 and 3 with ``--quick``)."""
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 20)
    return warmup, repeats


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``: where a model runs for real (timing, measured memory)."""
    group(parser, "timing").add_argument("--device", default="cpu", metavar="cpu|cuda[:N]",
                                         help="where the model runs for real: cpu (default) or cuda[:N]")


def add_per_layer_option(parser: argparse.ArgumentParser, group_title: str = "output") -> None:
    """``--per-layer``: add one row per layer to a model-level result."""
    group(parser, group_title).add_argument(
        "--per-layer", action="store_true",
        help="also one row per layer (latency: every op on the roofline; memory: every module's saved activations)")


def count_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`archstat.count` that the "counting" group sets."""
    from archstat.latency.timing import parse_dtype

    options = {"count_bias": args.bias, "device": args.count_device, "convention": args.convention}
    if "mode" in args:
        options.update(mode=args.mode, optimizer=args.optimizer, dtype=parse_dtype(args.dtype),
                       autocast=args.autocast)
    return options


def add_run_options(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """``--threads`` and ``--quick``: the "timing" options of every command that times anything."""
    timing = group(parser, "timing")
    timing.add_argument("--threads", type=int, metavar="N", help="intra-op threads (default: torch's current setting)")
    timing.add_argument("--quick", action="store_true",
                        help="fewest timed runs: every output, fast, noisy (latency, guidelines: 1 warm-up and 3 "
                             "timed runs unless --warmup/--repeats say otherwise)")
    return timing


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    """The "timing" group of the commands that time models: ``--device`` and the run counts too."""
    timing = add_run_options(parser)
    add_device_option(parser)
    timing.add_argument("--warmup", type=int, metavar="K", help="untimed runs first (default 5; 1 with --quick)")
    timing.add_argument("--repeats", type=int, metavar="R", help="timed runs (default 20; 3 with --quick)")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--format`` and ``--out FILE`` (the format defaults to the file's suffix)."""
    output = group(parser, "output")
    suffixes = ", ".join(f"{s} {f}" for s, f in SUFFIX_FORMATS.items())
    output.add_argument("--format", choices=FORMATS,
                        help=f"output format (default: from --out's suffix: {suffixes}; else table)")
    output.add_argument("--out", metavar="FILE",
                        help="write the output to FILE instead of stdout: a regular file atomically (a symbolic "
                             "link's target), a FIFO or device in place")


def add_out_dir_option(parser: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    """``--out-dir DIR``, for a command that writes several files; ``files`` it writes there
    are named by ``parser.set_defaults(out_dir_files=...)`` so they are checked up front."""
    group(parser, "output").add_argument("--out-dir", metavar="DIR", default=default, help=help)


def prepare_outputs(args: argparse.Namespace) -> None:
    """Before any work: settle ``--format`` (given, or ``--out``'s suffix, or table) and refuse
    an ``--out`` or ``--out-dir`` that is empty or could not be written (an ``OutputPathError``)."""
    from archstat.errors import ArchstatError

    out = getattr(args, "out", None)
    for option, value, what in (("--out", out, "file"), ("--out-dir", getattr(args, "out_dir", None), "folder")):
        if value == "":  # not a path; without this check it would silently mean "not given"
            raise OutputPathError(f"{option} is empty: give a {what} name, or leave {option} out")
    if "format" in args:
        implied = format_for(out) if out else None
        if args.format and implied and args.format != implied:
            raise ArchstatError(f"--format {args.format} contradicts --out {out} (a {implied} file); "
                                "give one of them, or a matching suffix")
        args.format = args.format or implied or "table"
    if out:
        check_output_file(out)
    if getattr(args, "out_dir", None):
        check_output_dir(args.out_dir, getattr(args, "out_dir_files", ()))


def require_extra(module: str, extra: str, what: str) -> None:
    """Refuse ``what`` in one line when the optional ``module`` (of ``archstat[extra]``) is missing."""
    from archstat.errors import ArchstatError

    try:
        importlib.import_module(module)
    except ImportError:
        raise ArchstatError(f"{what} needs {module}, which is not installed: pip install 'archstat[{extra}]'") from None


def model_names(args: argparse.Namespace) -> list[str]:
    """The names ``--models`` selects (globs expanded)."""
    import archstat

    return archstat.resolve_names(args.models)


def one_model(args: argparse.Namespace) -> str:
    """The one model ``--models`` names, for a command that works on one."""
    from archstat.errors import ArchstatError

    names = model_names(args)
    if len(names) > 1:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise ArchstatError(f"archstat {args.command} works on one model; --models {args.models} names "
                            f"{len(names)} ({shown})")
    return names[0]


def input_shape(args: argparse.Namespace, name: str) -> Any:
    """Model ``name``'s ``input_shape`` from ``--input-shape``, or ``--input-size`` and
    ``--batch`` (default: its published input, batched)."""
    from archstat.api import resolve_inputs
    from archstat.grammar import parse_input_shape
    from archstat.errors import ArchstatError

    if args.input_shape is not None:  # an empty one is refused by parse_input_shape, not ignored
        if args.input_size is not None or args.batch != 1:
            raise ArchstatError("--input-shape gives full shapes: use it without --input-size and --batch")
        return parse_input_shape(args.input_shape)
    return resolve_inputs(name, args.input_size, args.batch)  # an empty --input-size is refused there


def emit(args: argparse.Namespace, text: str) -> None:
    """Print ``text`` or write it to ``--out`` (see :func:`~archstat.reports.writers.write_atomic`)."""
    if args.out:
        with write_atomic(args.out) as fh:
            fh.write(text)
        print(f"archstat: wrote {args.out}", file=sys.stderr)
    else:
        to_stdout(text)


class StdoutClosed(Exception):
    """stdout's reader has gone (a closed pipe: ``| head``); :func:`archstat.cli.main` ends quietly.
    Not a ``BrokenPipeError``, so that one from anywhere else (a socket) is still reported."""


def to_stdout(text: str = "") -> None:
    """Write ``text`` to stdout and flush it (no text: flush what is buffered), so that a write
    that fails fails here: a closed pipe raises :class:`StdoutClosed`; a full disk or an I/O
    error is a one-line ``OutputPathError``, as for ``--out``."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise StdoutClosed() from None
    except OSError as exc:
        raise OutputPathError(f"cannot write to stdout: {exc.strerror or exc}") from None


def tables(args: argparse.Namespace, parts: Sequence[Part]) -> str:
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
    """Print each line as a warning on stderr."""
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
