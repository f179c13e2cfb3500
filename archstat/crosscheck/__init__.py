"""Cross-checking archstat against fvcore, thop, torch's FlopCounterMode and ptflops.

``archstat.check(model)`` runs every installed counter on the same model and input and
explains each difference op type by op type, from the tools' own per-module counts;
``archstat.count(..., verify=True)`` checks archstat against itself (every layer
recomputed from its module's attributes). Each tool's runner, rules and known bugs are its
module of :mod:`archstat.tools`; :mod:`archstat.conventions` registers how each counts.
"""

from archstat.crosscheck.reconcile import Flag, Unverified
from archstat.crosscheck.report import CheckReport, PaperFigure, TypeRow, check
from archstat.tools import TOOLS, Tool, ToolResult

__all__ = ["check", "CheckReport", "Flag", "Unverified", "TypeRow", "PaperFigure", "TOOLS", "Tool", "ToolResult"]
