"""Rows for the tables ``archstat table`` and ``archstat layers`` print.

Two views of the same :class:`~archstat.counting.stats.ModelStats`: *raw* rows keep exact
integers (CSV, JSON: ``model,input,params,madds,flops,mem_access,...``) and *human* rows
scale them (params in M, multiply-adds and FLOPs in G, memory access in M elements
and MB for the model's dtype).
"""

from __future__ import annotations

from typing import Any, Sequence

from archstat.counting.stats import ModelStats, format_shape

__all__ = ["summary_rows", "layer_rows", "depth_rows", "kind_rows", "SUMMARY_NUMERIC"]

SUMMARY_NUMERIC = ("params (M)", "MAdds (G)", "FLOPs (G)", "mem access (M el.)", "mem access (MB)", "uncounted",
                   "params", "madds", "flops", "mem_access", "mem_access_bytes", "peak infer (MB)",
                   "backward MAdds (G)", "step GFLOPs", "saved (MB)", "peak train (MB)")


def _mb(stats: ModelStats) -> str:
    return f"{stats.mem_access_bytes / 1e6:.1f}"


def summary_rows(all_stats: Sequence[ModelStats], human: bool) -> list[dict]:
    """One row per model."""
    if not human:
        return [s.summary() for s in all_stats]
    rows = []
    for s in all_stats:
        row = {"model": s.model, "input": format_shape(s.input_shape), "params (M)": f"{s.params / 1e6:.3f}",
               "MAdds (G)": f"{s.madds / 1e9:.3f}", "FLOPs (G)": f"{s.flops / 1e9:.3f}",
               "mem access (M el.)": f"{s.mem_access / 1e6:.2f}", "mem access (MB)": _mb(s),
               "uncounted": len(s.uncounted)}
        if s.mode == "train":
            memory = s.memory
            row.update({"backward MAdds (G)": f"{s.backward_madds / 1e9:.3f}",
                        "step GFLOPs": f"{memory.step_flops / 1e9:.3f}",
                        "saved (MB)": f"{memory.saved_bytes / 1e6:.1f}",
                        "peak train (MB)": f"{memory.peak_train_bytes / 1e6:.1f}"})
        else:
            row["peak infer (MB)"] = f"{s.peak_infer_bytes / 1e6:.1f}"
        rows.append(row)
    return rows


def layer_rows(stats: ModelStats, human: bool) -> list[dict]:
    """One row per op, in execution order; uncounted ops say so in ``note``. A training count
    adds each op's backward multiply-adds and the bytes it saves that no earlier op saved."""
    rows = []
    train = stats.mode == "train"
    saved = stats.memory.saved_per_record if train else ()
    for i, r in enumerate(stats.records):
        note = r.note if r.counted else f"UNCOUNTED: {r.note}"
        row: dict[str, Any]
        if human:
            row = {"name": r.name, "type": r.type, "kind": r.kind, "input": format_shape(r.input_shapes),
                   "output": format_shape(r.output_shape), "params": f"{r.cost.params:,}",
                   "MAdds (M)": f"{r.cost.madds / 1e6:.3f}", "FLOPs (M)": f"{r.cost.flops / 1e6:.3f}",
                   "mem access (K el.)": f"{r.cost.mem_access / 1e3:.1f}"}
            if train:
                row.update({"bwd MAdds (M)": f"{r.backward_madds / 1e6:.3f}", "saved (KB)": f"{saved[i] / 1e3:.1f}"})
            rows.append({**row, "note": note})
        else:
            row = r.row()
            if train:
                row.update(backward_madds=r.backward_madds, saved_bytes=saved[i])
            row["input_shapes"] = format_shape(r.input_shapes)
            row["output_shape"] = format_shape(r.output_shape)
            row["note"] = note
            rows.append(row)
    return rows


def depth_rows(stats: ModelStats, depth: int, human: bool) -> list[dict]:
    """Totals per module truncated to ``depth`` name components."""
    df = stats.by_depth(depth)
    if not human:
        return df.to_dict("records")
    return [{"module": r["module"], "ops": r["ops"], "params": f"{r['params']:,}",
             "MAdds (M)": f"{r['madds'] / 1e6:.3f}", "FLOPs (M)": f"{r['flops'] / 1e6:.3f}",
             "mem access (K el.)": f"{r['mem_access'] / 1e3:.1f}", "uncounted": r["uncounted"]}
            for r in df.to_dict("records")]


def kind_rows(stats: ModelStats, human: bool) -> list[dict]:
    """Share of multiply-adds and parameters per layer type (MobileNet paper, Table 2)."""
    df = stats.by_kind()
    if not human:
        return df.to_dict("records")
    return [{"layer type": r["kind"], "ops": r["ops"], "MAdds (M)": f"{r['madds'] / 1e6:.3f}",
             "MAdds share": f"{r['madds_share']:.2f}%", "params": f"{r['params']:,}",
             "params share": f"{r['params_share']:.2f}%"} for r in df.to_dict("records")]
