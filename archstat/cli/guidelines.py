"""``archstat guidelines``: the four ShuffleNet V2 guideline experiments, run on this machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from archstat.cli.common import (add_batch_option, add_out_dir_option, add_output_options, add_timing_options, emit,
                                 progress, require_extra, tables)
from archstat.reports.writers import write_csv

#: What ``--out-dir`` receives.
FILES = ("guidelines.csv", "guidelines.png", "guidelines.pdf")

_NUMERIC = ("MAdds (M)", "mem access (M el.)", "median ms", "IQR ms", "rel speed", "MAC predicts", "paper GPU b/s",
            "paper GPU rel", "paper ARM img/s", "paper ARM rel")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "guidelines", help="reproduce the ShuffleNet V2 guideline experiments G1-G4 on this machine",
        description="Rebuild the benchmark networks of ShuffleNet V2 (Ma et al., arXiv:1807.11164, Sec. 2, "
                    "Tables 1-4): G1 c1:c2 = 1:1..1:12, G2 groups 1..8, G3 1-4 fragments in series/parallel, G4 "
                    "ReLU/shortcut removed, each a block stacked 10 times on 56x56 at equal FLOPs. Each row is "
                    "counted by archstat (madds, FLOPs, memory access), timed here (median of repeated runs, rows "
                    "interleaved) and shown beside the paper's GPU and ARM speeds. --out-dir DIR writes "
                    "guidelines.csv (columns experiment,config,madds,flops,mem_access,median_ms,...) and "
                    "guidelines.png/.pdf (needs pip install 'archstat[reports]').")
    setup = p.add_argument_group("experiments")
    setup.add_argument("--experiments", default="G1,G2,G3,G4", metavar="G1,...", help="which experiments (default all)")
    setup.add_argument("--platform", choices=("gpu", "arm"), default="gpu",
                       help="use the channels of the paper's GPU (default, 128-wide) or ARM (32/64-wide) column")
    setup.add_argument("--widths", default="1", metavar="1,2,4",
                       help="the paper's width columns x1, x2, x4 (default 1)")
    setup.add_argument("--paper-channels", action="store_true",
                       help="use the channels printed in the paper instead of FLOPs-matched ones (FLOPs then differ "
                            "by up to 5.5%%, as in the paper)")
    add_batch_option(p)
    add_timing_options(p)
    add_output_options(p)
    add_out_dir_option(p, help=f"also write {', '.join(FILES)} into DIR (created if missing)")
    p.set_defaults(out_dir_files=FILES)
    p.set_defaults(handler=run)


def _human(row: dict) -> dict:
    def num(value, spec: str) -> str:
        return "" if value is None else format(value, spec)

    return {"exp": row["experiment"], "config": row["config"], "width": row["width"], "channels": row["channels"],
            "paper channels": row["paper_channels"], "MAdds (M)": f"{row['madds'] / 1e6:.1f}",
            "mem access (M el.)": f"{row['mem_access'] / 1e6:.2f}", "median ms": f"{row['median_ms']:.2f}",
            "IQR ms": f"{row['iqr_ms']:.2f}", "rel speed": num(row["rel_speed"], ".2f"),
            "MAC predicts": num(row["mac_rel_speed"], ".2f"),
            "paper GPU b/s": num(row["paper_gpu_batches_per_s"], "g"),
            "paper GPU rel": num(row["paper_gpu_rel"], ".2f"),
            "paper ARM img/s": num(row["paper_arm_images_per_s"], "g"),
            "paper ARM rel": num(row["paper_arm_rel"], ".2f")}


def _caption(rows: list[dict]) -> str:
    r = rows[0]
    return (f"ShuffleNet V2 guidelines on {r['device']} ({r['device_name']}), {r['threads']} thread(s), batch "
            f"{r['batch']}, 56x56 feature maps; median of {r['repeats']} interleaved runs after {r['warmup']} warm-up; "
            f"torch {r['torch']}. rel = speed relative to the experiment's first row; MAC predicts = "
            f"MAC(first)/MAC. Paper: {r['paper_source'].split(', Table')[0]}, Tables 1-4 (GPU: GTX 1080Ti "
            "batches/s; ARM: Snapdragon 810 images/s).")


def _ints(text: str, what: str) -> tuple[int, ...]:
    from archstat.errors import ArchstatError

    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ArchstatError(f"{what} must be comma-separated integers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from archstat.errors import ArchstatError
    from archstat.guidelines.run import GUIDELINE_COLUMNS, flops_spread_notes, run_experiments
    from archstat.latency.machine import check_device, contention_note

    check_device(args.device)
    if args.batch < 1:
        raise ArchstatError(f"--batch must be at least 1, got {args.batch}")
    if args.out_dir:
        require_extra("matplotlib", "reports", "the guidelines figure (--out-dir)")
    experiments = tuple(e.strip().upper() for e in args.experiments.split(",") if e.strip())
    rows = run_experiments(experiments, quick=args.quick, widths=_ints(args.widths, "--widths"),
                           platform=args.platform, paper_channels=args.paper_channels, device=args.device,
                           threads=args.threads, batch=args.batch, warmup=args.warmup, repeats=args.repeats,
                           progress=progress)
    human = args.format not in ("csv", "json")
    shown = [_human(r) for r in rows] if human else rows
    text = tables(args, [(_caption(rows) if human else "", shown, _NUMERIC)])
    notes = flops_spread_notes(rows)
    for busy in dict.fromkeys(n for n in map(contention_note, rows) if n):
        print(f"warning: {busy}", file=sys.stderr)
    if human and notes:
        text += "\n" + "\n".join(f"note: {n}" for n in notes) + "\n"
    emit(args, text)
    if args.out_dir:
        from archstat.guidelines.figure import plot_guidelines

        out = Path(args.out_dir)
        write_csv(out / FILES[0], rows, GUIDELINE_COLUMNS)
        written = [out / FILES[0], *plot_guidelines(rows, out / "guidelines", _caption(rows))]
        print(f"archstat: wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0
