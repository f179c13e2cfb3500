"""``archstat sweep``: models x sizes x batches x metrics into a results database, resumable,
on local workers or a Ray cluster."""

from __future__ import annotations

import argparse
import sys

from archstat.cli.common import (MODELS_HELP, add_model_options, add_optimizer_option, add_sizes_options,
                                 add_timing_options, group, restate_help, run_counts)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from archstat.sweep import METRICS
    from archstat.sweep.ray_cluster import DEFAULT_TIMING_RESOURCE

    p = sub.add_parser(
        "sweep", help="count and time whole zoos (models x sizes x batches x metrics) into a SQLite database",
        description="Run every cell of models x sizes x batches x metrics and store each row in a SQLite database "
                    "(--out) the moment it finishes, keyed by cell and machine: counts once, latencies per machine. "
                    "Rerunning the same command skips the finished cells, so an interrupted sweep (Ctrl-C) resumes "
                    "where it stopped. Each cell is isolated in a worker process: a model that fails, crashes, runs "
                    "out of memory or outlives --timeout is a failed row with its reason, and the sweep goes on. "
                    "A timing cell has its cores to itself: no other cell runs on them meanwhile (on Ray, its node). "
                    "--ray runs the cells as tasks on a Ray cluster (pip install 'archstat[ray]'). Metrics: count "
                    "(params, madds, FLOPs, memory access), "
                    "train (a training step: backward, optimizer step, saved activations, peak), latency (median "
                    "forward time on --device). Failed cells do not change the exit status: they are rows.")
    add_model_options(p, help=MODELS_HELP + " (optional with --export: export only)", required=False)
    add_sizes_options(p)
    cells = p.add_argument_group("cells")
    cells.add_argument("--metrics", default="count", metavar="M,...",
                       help=f"what each cell measures, comma-separated: {', '.join(METRICS)} (default count)")
    add_optimizer_option(cells)
    cells.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                       help="seconds one cell may run before it is stopped and stored as failed (default 1800)")
    cells.add_argument("--retry-failed", action="store_true", help="run again the cells whose stored row failed")
    run_on = p.add_argument_group("where")
    run_on.add_argument("--workers", type=int, default=1, metavar="N",
                        help="local worker processes (default 1), each pinned to its own cores")
    run_on.add_argument("--ray", metavar="ADDRESS",
                        help="run the cells as tasks on the Ray cluster at ADDRESS (host:port, or auto) instead")
    run_on.add_argument("--timing-resource", default=DEFAULT_TIMING_RESOURCE, metavar="NAME",
                        help=f"with --ray: the custom resource of the nodes latency cells run on (default "
                             f"{DEFAULT_TIMING_RESOURCE}; start them with --resources '{{\"NAME\": 1}}')")
    add_timing_options(p)
    restate_help(p, "--threads", "intra-op threads of a latency cell (default: the cores its worker is pinned to)")
    output = group(p, "output")
    output.add_argument("--out", dest="db", default="sweep.sqlite", metavar="FILE",
                        help="the SQLite results database, created if missing, resumed if present (default "
                             "sweep.sqlite); with --export and no --models, only read")
    output.add_argument("--export", metavar="FILE",
                        help="then write every row to FILE: .csv, or .parquet (needs pyarrow)")
    output.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from archstat.errors import ArchstatError
    from archstat.sweep import CellOptions, check_export, export, sweep
    from archstat.sweep.progress import duration

    if args.export:  # before any cell runs
        check_export(args.db, args.export)
    if not args.models and not args.export:
        raise ArchstatError("give --models to sweep (or --export to write an existing database)")
    for name, value in (("--warmup", args.warmup), ("--repeats", args.repeats), ("--threads", args.threads)):
        if value is not None and value < (0 if name == "--warmup" else 1):
            raise ArchstatError(f"{name} must be {'non-negative' if name == '--warmup' else 'positive'}, got {value}")
    if "latency" in (args.metrics or "") and not args.ray:  # on Ray, the timing nodes' devices count
        from archstat.latency.machine import check_device

        check_device(args.device)
    warmup, repeats = run_counts(args)
    options = CellOptions(optimizer=args.optimizer, device=args.device, threads=args.threads, warmup=warmup,
                          repeats=repeats)
    if args.models:
        try:
            summary = sweep(args.models, db=args.db, sizes=args.sizes, batches=args.batch, metrics=args.metrics,
                            workers=args.workers, ray=args.ray, timing_resource=args.timing_resource,
                            timeout=args.timeout, retry_failed=args.retry_failed, options=options,
                            progress=not args.no_progress)
        except KeyboardInterrupt:
            print(f"archstat: sweep interrupted; every finished cell is in {args.db}: rerun the same command to "
                  "resume", file=sys.stderr)
            raise
        print(f"archstat: {summary.cells} cells: {summary.skipped} already in {args.db}, {summary.ok} ok, "
              f"{summary.failed} failed, in {duration(summary.seconds)} ({summary.cells_per_second:.2f} cells/s, "
              f"{summary.backend})", file=sys.stderr)
    if args.export:
        n = export(args.db, args.export)
        print(f"archstat: wrote {n} rows to {args.export}", file=sys.stderr)
    return 0
