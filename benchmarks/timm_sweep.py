"""archstat on every timm architecture: counted or refused, params against the module's own, and
multiply-adds against torch's ``FlopCounterMode`` on a real CPU forward.

For every name in ``timm.list_models()``, at its pretrained cfg's input size, batch 1:

1. ``archstat.count("timm:<name>")`` as timm builds the model by default (fused attention
   on): ``counted``, ``refused`` (an ``ArchstatError``, its message as the reason) or
   ``failed`` (any other exception, or the worker dying or timing out: an archstat bug
   unless the reason says otherwise); params, madds, flops, memory access, the device it
   counted on, the uncounted ops and their types, the number of ``FormulaMismatchWarning``\\ s;
2. ``params_equal``: archstat's params against ``sum(p.numel() for p in m.parameters())``
   of the model built on the meta device (on the CPU where meta cannot build it);
3. where archstat's madds are under ``--max-madds`` (20e9): ``FlopCounterMode`` FLOPs / 2
   of a CPU forward (eval, no_grad, frozen random weights from seed 0, ``torch.rand`` input) with
   timm's fused attention off, so that attention runs as explicit matmuls (on the CPU,
   ``FlopCounterMode`` counts scaled-dot-product attention as 0), against
   ``archstat.count(..., convention="torch")`` of the same unfused model;
   ``within_0.5pct`` marks ``|rel_diff| <= 0.005``.

Each model runs in a worker process (one at a time) with a timeout and an address-space
limit, so a crash, hang or out-of-memory costs that model only; the worker is replaced
every ``--recycle`` models to return its memory. The per-model CSV is rewritten after
each model and a rerun skips the models already in it, so an interrupted sweep continues
where it stopped. The summary CSV holds the headline figures, computed from every row of
the per-model CSV.

    python benchmarks/timm_sweep.py [--models 'vit_*'] [--limit N] [--timeout 300]
        [--out benchmarks/results/timm_sweep.csv] [--summary benchmarks/results/timm_sweep_summary.csv]
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import gc
import multiprocessing as mp
import resource
import sys
import time
import warnings
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path

from archstat.reports.writers import write_csv

TOLERANCE = 0.005  # relative, FlopCounterMode against archstat's torch convention
CHECK_MODEL = "vit_base_patch16_224"  # attention-heavy: FlopCounterMode misses fused attention on it

FIELDS = ("model", "status", "reason", "input", "params", "madds", "flops", "mem_access", "device",
          "uncounted_ops", "uncounted_types", "formula_mismatches", "notes", "seconds", "module_params",
          "params_equal", "torch_status", "archstat_torch_madds", "torch_madds", "rel_diff", "within_0.5pct",
          "torch_seconds")


# --------------------------------------------------------------------------- worker side


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def count_archstat(name: str) -> dict:
    """Step 1: archstat's count of ``timm:<name>`` with timm's defaults (fused attention on)."""
    import archstat
    from archstat.api import resolve_inputs
    from archstat.counting.stats import format_shape
    from archstat.errors import FormulaMismatchWarning
    from timm.layers import set_fused_attn

    set_fused_attn(True)
    row: dict = {"model": name, "input": format_shape(resolve_inputs("timm:" + name, None, 1))}
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            stats = archstat.count("timm:" + name)
        except archstat.ArchstatError as exc:
            row.update(status="refused", reason=one_line(exc))
        except Exception as exc:  # an archstat bug
            row.update(status="failed", reason=f"{type(exc).__name__}: {one_line(exc)}")
        else:
            uncounted = stats.uncounted
            row.update(status="counted", input=format_shape(stats.input_shape), params=stats.params,
                       madds=stats.madds, flops=stats.flops, mem_access=stats.mem_access, device=stats.device,
                       uncounted_ops=len(uncounted), uncounted_types=";".join(sorted({r.type for r in uncounted})),
                       notes=" | ".join(stats.notes))
    row["formula_mismatches"] = sum(issubclass(w.category, FormulaMismatchWarning) for w in caught)
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row


def module_params(name: str) -> int:
    """Step 2: the model's own parameter count, built on meta (on the CPU if meta cannot build it)."""
    import timm
    import torch

    try:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
    except Exception:  # a constructor that computes on tensor values
        model = timm.create_model(name, pretrained=False)
    return sum(p.numel() for p in model.parameters())


def unfused_madds(name: str, shape: tuple[int, ...]) -> tuple[int, float]:
    """Step 3: (archstat's torch-convention madds, FlopCounterMode FLOPs / 2) of the model with
    fused attention off, the latter from a CPU forward with random weights (seed 0)."""
    import archstat
    import timm
    import torch
    from timm.layers import set_fused_attn
    from torch.utils.flop_counter import FlopCounterMode

    set_fused_attn(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = archstat.count("timm:" + name, convention="torch").madds
        torch.manual_seed(0)
        # frozen parameters: FlopCounterMode's module tracker asserts on a view of a parameter
        # taken under no_grad (cait's cls_token.expand) when the parameter requires grad
        model = timm.create_model(name, pretrained=False).eval().requires_grad_(False)
        x = torch.rand(*shape)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    return ours, counter.get_total_flops() / 2


def measure(name: str, conn: Connection, max_madds: float) -> None:
    """All three steps for one model; sends the row after each step, so that a crash or a
    timeout in the forward keeps the count."""
    row = count_archstat(name)
    if row["status"] == "counted":
        try:
            own = module_params(name)
            row.update(module_params=own, params_equal=own == row["params"])
        except Exception as exc:
            row.update(module_params="", params_equal=f"build failed: {type(exc).__name__}: {one_line(exc)}")
    conn.send(("partial", row))
    if row["status"] != "counted":
        row["torch_status"] = "skipped: not counted"
    elif row["madds"] >= max_madds:
        row["torch_status"] = f"skipped: madds >= {max_madds:.0e}"
    else:
        start = time.perf_counter()
        try:
            ours, theirs = unfused_madds(name, tuple(int(d) for d in row["input"].split("x")))
        except Exception as exc:
            row["torch_status"] = f"error: {type(exc).__name__}: {one_line(exc)}"
        else:
            rel = (ours - theirs) / theirs if theirs else (0.0 if ours == 0 else float("inf"))
            row.update(torch_status="compared", archstat_torch_madds=ours, torch_madds=round(theirs),
                       rel_diff=round(rel, 6), **{"within_0.5pct": abs(rel) <= TOLERANCE})
        row["torch_seconds"] = round(time.perf_counter() - start, 3)
    conn.send(("done", row))


def worker(conn: Connection, max_madds: float, memory_gib: float) -> None:
    """Serve model names from ``conn`` until it closes; address space capped at ``memory_gib``."""
    limit = int(memory_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import archstat.api  # noqa: F401  (import once, not per model)
    import timm  # noqa: F401

    while True:
        try:
            name = conn.recv()
        except EOFError:
            return
        measure(name, conn, max_madds)
        gc.collect()


# --------------------------------------------------------------------------- parent side


class Worker:
    """One worker process at a time, replaced after a timeout, a crash or ``recycle`` models."""

    def __init__(self, max_madds: float, memory_gib: float, recycle: int) -> None:
        self.args, self.recycle = (max_madds, memory_gib), recycle
        self.ctx = mp.get_context("spawn")
        self.proc: mp.process.BaseProcess | None = None
        self.served = 0

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=worker, args=(child, *self.args), daemon=True)
        self.proc.start()
        child.close()
        self.served = 0

    def stop(self) -> None:
        if self.proc is not None:
            self.conn.close()
            self.proc.join(10)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()
            self.proc = None

    def run(self, name: str, timeout: float) -> dict:
        """The row of ``name``; what the worker sent before dying or timing out, completed."""
        if self.proc is None or self.served >= self.recycle:
            self.stop()
            self._start()
        self.served += 1
        self.conn.send(name)
        deadline = time.monotonic() + timeout
        row: dict = {"model": name}
        while True:
            left = deadline - time.monotonic()
            try:
                ready = left > 0 and self.conn.poll(left)
                kind, row = self.conn.recv() if ready else ("timeout", row)
            except EOFError:
                kind = "died"
            if kind == "done":
                return row
            if kind in ("timeout", "died"):
                break
        if kind == "timeout":
            self.proc.kill()
        self.proc.join()
        why = f"timeout after {timeout:.0f} s" if kind == "timeout" else f"worker died (exit code {self.proc.exitcode})"
        self.proc = None
        if "status" not in row:
            return {**row, "status": "failed", "reason": why, "torch_status": "skipped: not counted"}
        return {**row, "torch_status": why}


def check_unfused() -> None:
    """Fused attention really is off: on ``CHECK_MODEL`` FlopCounterMode / 2 equals archstat's madds."""
    receiver, sender = mp.Pipe(duplex=False)
    measure(CHECK_MODEL, sender, float("inf"))
    while receiver.poll():
        _, row = receiver.recv()
    if row.get("torch_madds") != row.get("madds"):
        raise SystemExit(f"fused attention is not off: FlopCounterMode / 2 = {row.get('torch_madds')} on "
                         f"{CHECK_MODEL}, archstat {row.get('madds')}")
    print(f"check: {CHECK_MODEL} unfused, FlopCounterMode / 2 = archstat madds = {row['madds']:,}", flush=True)


def read_rows(path: Path) -> list[dict]:
    """The rows already in the per-model CSV (none if it does not exist)."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def as_text(row: dict) -> dict:
    """Every field as the CSV holds it: missing ones empty."""
    return {k: "" if row.get(k) is None else str(row.get(k, "")) for k in FIELDS}


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}" if whole else ""


def reason_group(row: dict) -> str:
    """A refusal or failure reason without the model's name and input, so that equal causes group."""
    text = row["reason"]
    for prefix in (f"timm:{row['model']} on input {row['input']}: ", f"timm:{row['model']}: ", f"{row['model']}: "):
        text = text.replace(prefix, "")
    return text


def summary(rows: list[dict]) -> list[dict]:
    """The headline figures of the sweep, from the per-model rows (as text)."""
    counted = [r for r in rows if r["status"] == "counted"]
    refused = [r for r in rows if r["status"] == "refused"]
    failed = [r for r in rows if r["status"] == "failed"]
    uncounted = [r for r in counted if int(r["uncounted_ops"] or 0)]
    op_models = Counter(t for r in uncounted for t in r["uncounted_types"].split(";"))
    compared = [r for r in counted if r["torch_status"] == "compared"]
    within = [r for r in compared if r["within_0.5pct"] == "True"]
    clean = [r for r in within if not int(r["uncounted_ops"])]
    equal = [r for r in counted if r["params_equal"] == "True"]
    skipped = Counter(r["torch_status"] for r in counted if r["torch_status"] != "compared")
    n = len(rows)

    def fig(figure: str, items: list | int, whole: int, detail: str = "") -> dict:
        k = items if isinstance(items, int) else len(items)
        return {"figure": figure, "count": k, "of": whole, "percent": percent(k, whole), "detail": detail}

    def grouped(items: list[dict]) -> str:
        return "; ".join(f"{reason} x{k}" for reason, k in Counter(map(reason_group, items)).most_common())

    return [
        fig("architectures", n, n),
        fig("counted", counted, n),
        fig("refused", refused, n, grouped(refused)),
        fig("failed", failed, n, grouped(failed)),
        fig("counted or refused with a reason", len(counted) + len(refused), n),
        fig("counted on the CPU (meta fallback)", [r for r in counted if r["device"] == "cpu"], len(counted)),
        fig("counted with an uncounted op", uncounted, len(counted),
            "; ".join(f"{t}: {k} models" for t, k in op_models.most_common())),
        fig("counted with a FormulaMismatchWarning", [r for r in counted if int(r["formula_mismatches"] or 0)],
            len(counted)),
        fig("params equal to the module's own", equal, len(counted)),
        fig("not compared with FlopCounterMode", sum(skipped.values()), len(counted),
            "; ".join(f"{s} x{k}" for s, k in skipped.most_common())),
        fig("compared with FlopCounterMode", compared, len(counted)),
        fig("within 0.5% of FlopCounterMode", within, len(compared),
            "outside: " + ", ".join(r["model"] for r in compared if r["within_0.5pct"] != "True")),
        fig("nothing uncounted and within 0.5% of FlopCounterMode", clean, len(compared)),
        {"figure": "seconds of per-model work (count + forward)", "of": "", "percent": "", "detail": "",
         "count": round(sum(float(r["seconds"] or 0) + float(r["torch_seconds"] or 0) for r in rows))},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/timm_sweep.csv", help="per-model CSV (resumed)")
    parser.add_argument("--summary", default="benchmarks/results/timm_sweep_summary.csv", help="headline CSV")
    parser.add_argument("--models", default="*", help="glob over timm model names")
    parser.add_argument("--limit", type=int, default=0, help="at most this many new models (0: all)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per model")
    parser.add_argument("--max-madds", type=float, default=20e9, help="FlopCounterMode forward below this")
    parser.add_argument("--memory-gib", type=float, default=20, help="address-space limit of the worker")
    parser.add_argument("--recycle", type=int, default=50, help="replace the worker after this many models")
    args = parser.parse_args(argv)
    import timm

    out = Path(args.out)
    rows = read_rows(out)
    done = {r["model"] for r in rows}
    todo = [n for n in timm.list_models() if fnmatch.fnmatch(n, args.models) and n not in done]
    todo = todo[:args.limit] if args.limit else todo
    print(f"{len(done)} models already in {out}, {len(todo)} to run", flush=True)
    if todo:
        check_unfused()
        gc.collect()
    pool = Worker(args.max_madds, args.memory_gib, args.recycle)
    start = time.perf_counter()
    try:
        for i, name in enumerate(todo, 1):
            row = as_text(pool.run(name, args.timeout))
            rows.append(row)
            write_csv(out, rows, FIELDS)
            madds = f"{int(row['madds']) / 1e9:9.3f} G" if row["madds"] else " " * 11
            print(f"[{i}/{len(todo)} {time.perf_counter() - start:7.0f}s] {name:48s} {row['status']:8s} {madds} "
                  f"uncounted {row['uncounted_ops'] or '-':>3s} params_equal {row['params_equal'] or '-':5s} "
                  f"torch {row['rel_diff'] or row['torch_status']:>10s} "
                  f"{row['seconds'] or '-'}s + {row['torch_seconds'] or '-'}s"
                  + (f"  {row['reason']}" if row["reason"] else ""), flush=True)
    finally:
        pool.stop()
    figures = summary(rows)
    write_csv(Path(args.summary), figures, list(figures[0]))
    for f in figures:
        share = f"/{f['of']} ({f['percent']}%)" if f["of"] != "" else ""
        print(f"{f['figure']}: {f['count']}{share} {f['detail'][:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
