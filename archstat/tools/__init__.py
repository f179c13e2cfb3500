"""The external counters archstat cross-checks, one module each: fvcore, thop, torch's
``FlopCounterMode`` and ptflops.

Each module holds everything archstat knows about its tool: its runner (a
:class:`~archstat.tools.base.Tool`), its :class:`~archstat.tools.rules.Convention` (what it
means to count, with the known bugs it reproduces) and the miscounts the reconciliation
recognises, all with the release they were read from and checked against (``CHECKED``).
:mod:`archstat.conventions` registers the conventions (``archstat.count(...,
convention="fvcore")``), :mod:`archstat.crosscheck` runs the tools and reconciles them.
"""

from archstat.tools import fvcore, ptflops, thop, torch_counter
from archstat.tools.base import Tool, ToolResult

__all__ = ["TOOLS", "TOOL_MODULES", "Tool", "ToolResult"]

#: The tool modules, in ``archstat check``'s column order.
TOOL_MODULES = (fvcore, thop, torch_counter, ptflops)

#: The tools ``archstat check`` runs, by name, in column order.
TOOLS: dict[str, Tool] = {module.TOOL.name: module.TOOL for module in TOOL_MODULES}
