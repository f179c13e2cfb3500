"""``archstat memory --models MODEL``: a real forward pass or training step, its peak memory
measured beside archstat's estimate, part by part."""

from __future__ import annotations

import argparse

from archstat.cli.common import (ONE_MODEL_HELP, add_device_option, add_input_options, add_model_options,
                                 add_output_options, add_per_layer_option, add_training_options, emit, input_shape,
                                 one_model, quiet_warnings, tables, warn_lines)

_NUMERIC = ("estimated (MB)", "measured (MB)", "delta (MB)", "delta %", "estimated", "measured", "delta")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "memory", help="measure a real forward pass or training step's peak memory beside the estimate",
        description="Run one model for real (random weights; after a warm-up pass, so an optimizer's state "
                    "exists) and print, beside archstat's estimate of the same pass, the parameters and buffers, "
                    "the optimizer state, the activations autograd saved (training) and the peak, with the "
                    "difference and what it is made of. --per-layer adds the saved activations of every module. "
                    "On the CPU the peak comes from torch's profiler (allocations and frees), on CUDA from "
                    "torch.cuda.max_memory_allocated; both are tensor bytes (allocator rounding and reserve are not "
                    "counted).")
    add_model_options(p, help=ONE_MODEL_HELP)
    add_input_options(p)
    add_training_options(p)
    add_device_option(p)
    add_per_layer_option(p)
    add_output_options(p)
    p.set_defaults(handler=run)


def _row(part: str, estimated: int, measured: int, human: bool) -> dict:
    delta = estimated - measured
    if not human:
        return {"part": part, "estimated": estimated, "measured": measured, "delta": delta}
    share = f"{100 * delta / measured:+.1f}%" if measured else ""
    return {"part": part, "estimated (MB)": f"{estimated / 1e6:.1f}", "measured (MB)": f"{measured / 1e6:.1f}",
            "delta (MB)": f"{delta / 1e6:+.1f}", "delta %": share}


def run(args: argparse.Namespace) -> int:
    import archstat
    from archstat.latency.timing import parse_dtype
    from archstat.training.measure import measure_forward, measure_step

    name = one_model(args)
    shape = input_shape(args, name)
    dtype = parse_dtype(args.dtype)
    train = args.mode == "train"
    autocast = archstat.api.parse_autocast(args.autocast)
    stats, lines = quiet_warnings(lambda: archstat.count(name, shape, mode=args.mode, optimizer=args.optimizer,
                                                         dtype=dtype, autocast=autocast))
    warn_lines(lines)
    amp = autocast[1] if autocast else None
    if train:
        measured = measure_step(name, shape, optimizer=args.optimizer, device=args.device, dtype=dtype, autocast=amp)
    else:
        measured = measure_forward(name, shape, device=args.device, dtype=dtype)
    memory = stats.memory
    human = args.format not in ("csv", "json")
    estimated_peak = memory.peak_train_bytes if train else memory.peak_infer_bytes
    rows = [_row("parameters and buffers", memory.params_bytes, measured.params_bytes, human)]
    if train:
        rows += [_row("optimizer state", memory.state_bytes, measured.state_bytes, human),
                 _row("saved activations", memory.saved_bytes, measured.saved_bytes, human)]
    rows.append(_row(f"peak ({memory.peak_phase})" if train else "peak", estimated_peak, measured.peak_bytes, human))
    what = f"a training step ({args.optimizer})" if train else "an inference forward pass"
    title = (f"{stats.model} on {archstat.counting.stats.format_shape(stats.input_shape)}: {what}, "
             f"{measured.dtype}{' with autocast ' + args.autocast if args.autocast else ''}, measured on "
             f"{measured.device} ({measured.method})")
    parts = [(title, rows, _NUMERIC)]
    if args.per_layer and train:
        estimated_by_module: dict[str, int] = {}
        for record, saved in zip(stats.records, memory.saved_per_record):
            estimated_by_module[record.module] = estimated_by_module.get(record.module, 0) + saved
        modules = sorted(set(estimated_by_module) | set(measured.saved_by_module),
                         key=lambda m: -max(estimated_by_module.get(m, 0), measured.saved_by_module.get(m, 0)))
        parts.append(("saved activations by module", [
            _row(m or "(root)", estimated_by_module.get(m, 0), measured.saved_by_module.get(m, 0), human)
            for m in modules if estimated_by_module.get(m, 0) or measured.saved_by_module.get(m, 0)], _NUMERIC))
    text = tables(args, parts)
    if human:
        known = memory.params_bytes - measured.params_bytes
        if train:
            known += (memory.state_bytes - measured.state_bytes) + (memory.saved_bytes - measured.saved_bytes)
        rest = (estimated_peak - measured.peak_bytes) - known
        text += (f"\nThe peaks differ by {(estimated_peak - measured.peak_bytes) / 1e6:+.1f} MB: "
                 f"{known / 1e6:+.1f} MB in the parts above, {rest / 1e6:+.1f} MB in what lives only briefly "
                 "(gradient and workspace temporaries of kernels, autograd's and the optimizer's scratch "
                 "tensors), which the estimate models as the tensors the ops produce and free.\n")
    emit(args, text)
    return 0
