"""Errors archstat raises for bad input. Each message is one line meant for the user;
the CLI prints it and exits with status 2, without a traceback."""

from __future__ import annotations

__all__ = ["ArchstatError", "UnknownModelError", "InputShapeError", "InputTooSmallError", "RefusedError",
           "CountError", "UncountedOpWarning", "FormulaMismatchWarning"]


class ArchstatError(Exception):
    """Base class: something the user asked for cannot be done; the message says why."""


class UnknownModelError(ArchstatError, KeyError):
    """A model name that no registry knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InputShapeError(ArchstatError, ValueError):
    """A layer would reject the input it is given (wrong rank or channel count): refused,
    not counted; the message names the layer."""


class InputTooSmallError(InputShapeError):
    """The input shape is too small for a layer of the network (named in the message)."""


class RefusedError(ArchstatError, ValueError):
    """The model holds an op or module archstat knows and does not count (the message says why)."""


class CountError(ArchstatError, RuntimeError):
    """The model could not be run to count it (on meta nor on CPU)."""


class UncountedOpWarning(UserWarning):
    """The counter met ops it does not know; they are listed and not counted."""


class FormulaMismatchWarning(UserWarning):
    """A formula's predicted output shape or parameter count differs from what torch did."""
