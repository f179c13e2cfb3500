"""Cross-checking archstat against fvcore, thop, torch's FlopCounterMode and ptflops.

``archstat.check(model)`` runs every installed counter on the same model and input and
explains each difference op type by op type, from the tools' own per-module counts;
``archstat.count(..., verify=True)`` checks archstat against itself (every layer
recomputed from its module's attributes). See :mod:`archstat.conventions` for how each
tool counts.
"""

from archstat.crosscheck.reconcile import Flag, Unverified
from archstat.crosscheck.report import CheckReport, PaperFigure, TypeRow, check
from archstat.crosscheck.tools import TOOLS, Tool, ToolResult

__all__ = ["check", "CheckReport", "Flag", "Unverified", "TypeRow", "PaperFigure", "TOOLS", "Tool", "ToolResult"]
