"""``archstat.check``: run the other counters on one model and explain every difference.

archstat counts on the meta device; fvcore, thop, ``FlopCounterMode`` and ptflops need a
real model, so :func:`check` builds one on the CPU with random weights (or deep-copies
the model it is given, in eval mode: the caller's model is never run, modified or
switched to eval) and feeds every tool the same random input under ``torch.no_grad()``.
The :class:`CheckReport` holds each tool's total, the per-op-type reconciliation
computed from the tools' own per-module counts (:mod:`archstat.crosscheck.reconcile`),
the layers where a tool is wrong by its own rules (:class:`~archstat.crosscheck.reconcile.Flag`),
and the papers' figures for the network with the network they were printed for.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn

from archstat.conventions import BIAS, MULTIPLY_ADD_TYPES, components, convention, op_type
from archstat.counting.inputs import initialise_lazy, seeded
from archstat.counting.shadow import shadow_copy
from archstat.counting.stats import ModelStats, format_shape
from archstat.crosscheck.reconcile import Flag, ToolReconciliation, Unverified, close, reconcile_tool
from archstat.errors import ArchstatError
from archstat.tools import TOOLS, Tool, ToolResult

__all__ = ["check", "CheckReport", "TypeRow", "PaperFigure"]


@dataclass(frozen=True)
class PaperFigure:
    """A published multiply-add figure for the checked network (or the paper's version of it).

    ``network`` is the zoo model it was printed for and ``archstat`` archstat's count of
    that network at its published input size, counted as the figure counts (without the
    FC layer for ShuffleNet's Table 1 ...); ``verdict`` the zoo entry's judgement of it
    (``archstat zoo --check``); ``differs`` says how the network differs from the checked
    one (empty when it is the same network).
    """

    network: str
    citation: str
    printed: str
    value: float
    archstat: int
    input_shape: tuple[int, ...]
    differs: str
    verdict: str = ""


@dataclass(frozen=True)
class TypeRow:
    """One op type of the reconciliation: archstat's multiply-adds and each tool's count
    (multiply-add equivalents), of which ``flagged`` is counted wrong by the tool's own rules.

    ``elements`` is the base of per-element rates: input elements of the ops (output
    elements for bias additions); multiply-add types are compared as ratios instead.
    """

    op_type: str
    ops: int
    elements: int
    multiply_add: bool
    archstat: int
    tools: dict[str, float]
    flagged: dict[str, float]

    def rate(self, value: float) -> str:
        """``"x1"`` for multiply-add types, ``"2/el"`` (per element) for the rest."""
        if self.multiply_add:
            return f"x{value / self.archstat:.4g}" if self.archstat else ""
        return f"{value / self.elements:.3g}/el" if self.elements else ""


@dataclass
class CheckReport:
    """What every counter says about one model on one input, and why they differ."""

    model: str
    input_shape: tuple[int, ...]
    stats: ModelStats
    results: dict[str, ToolResult]
    reconciliations: dict[str, ToolReconciliation]
    missing: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    published: list[PaperFigure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, float]:
        """Tool name -> its total in multiply-add equivalents (``archstat`` first)."""
        return {"archstat": self.stats.madds, **{t: r.total for t, r in self.results.items()}}

    @property
    def flags(self) -> list[Flag]:
        """One entry per layer where a tool is wrong by its own rules."""
        return [f for rec in self.reconciliations.values() for f in rec.flags]

    @property
    def unverified(self) -> list[Unverified]:
        """Tool counts in layers archstat does not count (uncounted ops): not checked."""
        return [u for rec in self.reconciliations.values() for u in rec.unverified]

    def by_type(self) -> list[TypeRow]:
        """The reconciliation: every op type any tool or archstat counts, largest first."""
        archstat: Counter = Counter()
        ops: Counter = Counter()
        elements: Counter = Counter()
        for r in self.stats.records:
            kind = op_type(r)
            archstat.update(components(r, "archstat"))
            ops[kind] += 1
            elements[kind] += _numel(r.input_shapes[0]) if r.input_shapes else 0
            if r.call is not None and r.call.formula in MULTIPLY_ADD_TYPES and r.call.kwargs.get("bias"):
                ops[BIAS] += 1
                elements[BIAS] += _numel(_first(r.output_shape))
        kinds = set(archstat) | {k for rec in self.reconciliations.values() for k, v in rec.by_type.items() if v}
        rows = [TypeRow(k, ops[k], elements[k], k in MULTIPLY_ADD_TYPES.values(), archstat[k],
                        {t: rec.by_type[k] for t, rec in self.reconciliations.items()},
                        {t: rec.flagged[k] for t, rec in self.reconciliations.items() if rec.flagged[k]})
                for k in kinds]
        return sorted(rows, key=lambda row: -max([abs(row.archstat), *map(abs, row.tools.values())]))

    def explain(self) -> list[str]:
        """One sentence per tool: its total as archstat's plus each op type it counts differently."""
        rows = self.by_type()
        lines = []
        for tool, result in self.results.items():
            rec = self.reconciliations[tool]
            head = f"{tool} {_giga(result.total)}"
            if convention(TOOLS[tool].convention).per_madd != 1:
                head += f" ({result.raw_total / 1e9:.4f} G{TOOLS[tool].reports.split(' ')[0]} / 2)"
            parts = []
            for row in rows:
                delta = row.tools.get(tool, 0) - row.archstat
                if close(delta, 0):
                    continue
                text = f"{'+' if delta > 0 else '-'} {_mega(abs(delta))} {row.op_type} ({row.rate(row.tools[tool])}"
                flagged = row.flagged.get(tool, 0)
                if flagged:
                    layers = rec.flagged_layers[row.op_type]
                    text += f"; {_mega(flagged)} of it on {layers} flagged layer{'s' * (layers != 1)}"
                parts.append(text + ")")
            lines.append(f"{head} = archstat {_giga(self.stats.madds)} " + " ".join(parts) if parts
                         else f"{head} = archstat {_giga(self.stats.madds)}: the same ops, counted the same")
        for fig in self.published:
            network = "the same network" if not fig.differs else f"{fig.network}: {fig.differs}"
            lines.append(f"paper {fig.printed} ({fig.citation}) counts {network}; archstat gives "
                         f"{_giga(fig.archstat)} on {fig.network} at {format_shape(fig.input_shape)} "
                         f"({fig.verdict})")
        return lines

    # ----------------------------------------------------------------- table rows

    def totals_rows(self, human: bool) -> list[dict]:
        """One row per tool (and per published figure): its total and archstat's under its convention."""
        from archstat import __version__

        rows = [_total_row("archstat", __version__, "multiply-adds", self.stats.madds, self.stats.madds,
                           self.stats.madds, 0, "ok", human)]
        for name, tool in TOOLS.items():
            if name in self.results:
                r, rec = self.results[name], self.reconciliations[name]
                status = "; ".join([*r.notes] or ["ok"])
                rows.append(_total_row(name, r.version, r.reports, r.raw_total, r.total, rec.convention_total,
                                       len(rec.flags), status, human))
            elif name in self.missing or name in self.failed:
                status = self.missing.get(name) or f"failed: {self.failed[name]}"
                rows.append(_total_row(name, tool.version if name in self.failed else "", tool.reports, None, None,
                                       None, None, status, human))
        for fig in self.published:
            rows.append(_total_row("paper", fig.citation, "multiply-adds (printed)", fig.value, fig.value, fig.archstat,
                                   None, f"printed {fig.printed} for {fig.network} at {format_shape(fig.input_shape)}: "
                                   f"{fig.verdict}", human))
        return rows

    def type_rows(self, human: bool) -> list[dict]:
        """The reconciliation by op type (M multiply-add equivalents and rates when ``human``)."""
        tools = list(self.reconciliations)
        out = []
        for row in self.by_type():
            if human:
                cells = {"op type": row.op_type, "ops": row.ops, "archstat": _cell(row.archstat, row)}
                cells.update({t: _cell(row.tools[t], row) + (" *" if row.flagged.get(t) else "") for t in tools})
            else:
                cells = {"op_type": row.op_type, "ops": row.ops, "elements": row.elements, "archstat": row.archstat}
                cells.update({t: row.tools[t] for t in tools})
                cells.update({f"{t}_flagged": row.flagged.get(t, 0) for t in tools})
            out.append(cells)
        total: dict[str, str | float] = {"op type" if human else "op_type": "total", "ops": len(self.stats.records),
                                         "archstat": f"{self.stats.madds / 1e6:,.3f}" if human else self.stats.madds}
        total.update({t: f"{self.results[t].total / 1e6:,.3f}" if human else self.results[t].total for t in tools})
        return out + [total]

    def flag_rows(self, human: bool, grouped: bool = True) -> list[dict]:
        """Flags, one row per layer, or grouped by (tool, layer type, op type) with example layers."""
        if not grouped:
            return [{"tool": f.tool, "layer": f.layer, "module": f.module_type, "op type": f.kind,
                     "its count": f"{f.count:,.0f}" if human else f.count,
                     "right count": f"{f.right:,}" if human else f.right, "why": f.why} for f in self.flags]
        groups: dict[tuple, list[Flag]] = {}
        for f in self.flags:
            groups.setdefault((f.tool, f.module_type, f.kind), []).append(f)
        rows = []
        for (tool, module, kind), flags in groups.items():
            count, right = sum(f.count for f in flags), sum(f.right for f in flags)
            rows.append({"tool": tool, "module": module, "op type": kind, "layers": len(flags),
                         "e.g.": ", ".join(f.layer for f in flags[:2]) + (", ..." if len(flags) > 2 else ""),
                         "its count": f"{count:,.0f}" if human else count,
                         "right count": f"{right:,}" if human else right, "why (first layer)": flags[0].why})
        return rows


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _first(shape: tuple) -> tuple:
    return shape[0] if shape and isinstance(shape[0], tuple) else shape


def _giga(value: float) -> str:
    return f"{value / 1e9:.4f} G"


def _mega(value: float) -> str:
    """``22.23 M``, or the plain number below ten thousand (a bias of 1,000 is not "0.00 M")."""
    return f"{value / 1e6:,.2f} M" if abs(value) >= 1e4 else f"{value:,.0f}"


def _cell(value: float, row: TypeRow) -> str:
    if close(value, 0):
        return "0"
    rate = row.rate(value)
    return f"{value / 1e6:,.3f}" + (f" ({rate})" if rate else "")


def _whole(value: float | None) -> float | int | None:
    """Tools return whole counts as floats (thop, fvcore's einsum): keep integers integers."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _total_row(tool: str, version: str, reports: str, raw: float | None, total: float | None,
               archstat: float | None, flags: int | None, status: str, human: bool) -> dict:
    if not human:
        return {"tool": tool, "version": version, "reports": reports, "raw_total": _whole(raw),
                "madds_equivalent": _whole(total), "archstat_same_convention": archstat, "flagged_layers": flags,
                "status": status}

    def g(v: float | None) -> str:
        return "" if v is None else f"{v / 1e9:.4f}"

    return {"tool": tool, "reports": reports, "its total (G)": g(raw), "MAdds-equiv. (G)": g(total),
            "archstat, its convention (G)": g(archstat), "flagged layers": "" if flags is None else flags,
            "version / status": version if status == "ok" else f"{version} {status}".strip()}


# --------------------------------------------------------------------------- running


def _real_model(model_or_name: nn.Module | str, model_kwargs: dict[str, Any] | None) -> nn.Module:
    """An eval-mode model with real (random) weights that the tools may run: built for a
    name, a deep copy of a module (never the caller's object)."""
    if isinstance(model_or_name, str):
        from archstat.models import create_model

        return create_model(model_or_name, **(model_kwargs or {})).eval()
    if any(t.is_meta for t in list(model_or_name.parameters()) + list(model_or_name.buffers())):
        raise ArchstatError("check runs the other counters on real tensors: this model has meta parameters; "
                            "pass a model with real weights or a model name")
    return shadow_copy(model_or_name, "cpu")[0].eval()


def _run_tools(report: CheckReport, tools: dict[str, Tool], model: nn.Module, shape: tuple[int, ...]) -> None:
    """Run each of ``tools`` on ``model`` (its lazy modules initialised first, so that every tool
    counts the same model) with one input of ``shape``, into ``report``."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    initialise_lazy(model, (x,), {})
    module_types = {n: type(m).__name__ for n, m in model.named_modules()}
    for tool_name, tool in tools.items():
        try:
            result = tool.run(model, x)
        except Exception as exc:  # a tool that cannot count this model: reported, the others still run
            first = str(exc).strip().splitlines()
            report.failed[tool_name] = f"{type(exc).__name__}: {first[0] if first else ''}".strip()
            continue
        report.results[tool_name] = result
        report.reconciliations[tool_name] = reconcile_tool(report.stats, result, tool, module_types)


def _paper_figures(name: str) -> list[PaperFigure]:
    """Published multiply-add figures the zoo links to ``name``: its own, or (for a
    torchvision name) those of zoo networks that are, or say how they differ from, it."""
    from archstat.zoo import ZOO
    from archstat.zoo.check import compare, count_entry

    links = []
    if name in ZOO:
        links.append((ZOO[name], ""))
    else:
        for entry in ZOO.values():
            if f"torchvision:{name}" in entry.same_as:
                links.append((entry, ""))
            elif f"torchvision's {name} " in entry.differs:
                links.append((entry, entry.differs))
    figures = []
    for entry, differs in links:
        if entry.madds is None:
            continue
        ref = entry.madds.ref.resolve()
        [judged] = [c for c in compare(entry, count_entry(entry)) if c.metric == "madds"]
        figures.append(PaperFigure(entry.name, ref.citation, f"{ref.value} {ref.unit}", ref.number(),
                                   int(judged.counted), (1, *entry.input_size), differs, judged.verdict))
    return figures


def check(model_or_name: nn.Module | str, input_shape: Sequence[int] | None = None, *,
          tools: Sequence[str] | None = None, model_kwargs: dict[str, Any] | None = None) -> CheckReport:
    """Run archstat and the other counters on one model and input, and reconcile them.

    ``model_or_name``: a model name (zoo, torchvision, ``timm:<name>``) or an ``nn.Module``
    with real weights (deep-copied; the caller's module is never run). ``input_shape``:
    ``(N, C, H, W)``, by default the model's published size (names) or ``1x3x224x224``.
    ``tools``: a subset of ``fvcore, thop, torch, ptflops`` (default: all). A tool that
    is not installed is listed in ``report.missing`` and the others still run; one that
    raises is listed in ``report.failed`` with its error. The tools run under
    :func:`~archstat.counting.inputs.seeded`: the caller's random number generators are left
    as they were.
    """
    import archstat
    from archstat.counting.inputs import is_shape
    from archstat.models import input_spec

    chosen = list(tools) if tools is not None else list(TOOLS)
    unknown = [t for t in chosen if t not in TOOLS]
    if unknown:
        raise ArchstatError(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOLS)}")
    name = model_or_name if isinstance(model_or_name, str) else type(model_or_name).__name__
    if input_shape is None:
        input_shape = input_spec(name).shapes() if isinstance(model_or_name, str) else (1, 3, 224, 224)
    if not is_shape(input_shape):
        raise ArchstatError(f"check runs the other counters on one input tensor; {name} takes "
                            f"{format_shape(input_shape)}: count it with archstat table / archstat.count")
    shape = tuple(input_shape)
    stats = archstat.count(model_or_name, shape, model_kwargs=model_kwargs)
    report = CheckReport(name, shape, stats, {}, {}, notes=list(stats.notes))
    available = {}
    for tool in chosen:
        reason = TOOLS[tool].unavailable()
        if reason:
            report.missing[tool] = reason
        else:
            available[tool] = TOOLS[tool]
    if available:
        with seeded():  # random weights, a lazy module's first pass, the tools' runs: not the caller's generator
            _run_tools(report, available, _real_model(model_or_name, model_kwargs), shape)
    if isinstance(model_or_name, str):
        report.published = _paper_figures(model_or_name)
    return report
