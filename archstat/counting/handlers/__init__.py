"""Which formula applies to an op the counter observes, and with which arguments.

:mod:`~archstat.counting.handlers.registry` holds the one registry of each kind (module
classes, functions, free, uncounted and refused ops); :mod:`~archstat.counting.handlers.modules` and
:mod:`~archstat.counting.handlers.functions` fill it. Importing this package registers
everything.
"""

from archstat.counting.handlers import functions, modules  # noqa: F401  (registration)
from archstat.counting.handlers.registry import (BOOL_RESULT, FREE, FREE_FUNCTIONS, FUNCTION_HANDLERS,
                                                 METADATA_FUNCTIONS, MODULE_HANDLERS, REFUSED, SHAPE_ONLY_FUNCTIONS,
                                                 UNCOUNTED, FormulaCall, FunctionRule, ModuleRule, NeedsValuesError,
                                                 RefusedOpError, call_handler, function_handler, handler_for_module,
                                                 module_handler, normalise_name)

__all__ = ["BOOL_RESULT", "FREE", "FREE_FUNCTIONS", "FUNCTION_HANDLERS", "METADATA_FUNCTIONS", "MODULE_HANDLERS",
           "REFUSED", "SHAPE_ONLY_FUNCTIONS", "UNCOUNTED", "FormulaCall", "FunctionRule", "ModuleRule",
           "NeedsValuesError", "RefusedOpError", "call_handler", "function_handler", "handler_for_module",
           "module_handler", "normalise_name"]
