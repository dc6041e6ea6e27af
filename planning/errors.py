"""Errors IRPlan reports to its user. Each message names the file or field and the problem."""

from __future__ import annotations


class IrplanError(Exception):
    """Base class: a problem the user can understand and act on (shown without traceback)."""


class GeometryError(IrplanError):
    """Image geometry that cannot be trusted or does not match."""


class InputError(IrplanError):
    """A file or value given by the user cannot be used; the message says which and why."""


class CancelledError(IrplanError):
    """A long operation was cancelled by the user."""
