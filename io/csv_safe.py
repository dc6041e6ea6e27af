"""CSV cells that a spreadsheet cannot run (CSV/formula injection, OWASP).

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
read by Excel/LibreOffice as a formula (``=HYPERLINK(...)``, ``=cmd|...``); OWASP's rule
is to prefix such a cell with a single quote, which spreadsheets show as text. Numbers
(ints, floats, and strings that parse as a finite number such as ``-3.5``)
stay as they are, so numeric columns remain numeric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _is_number_text(s: str) -> bool:
    try:
        v = float(s)
    except ValueError:
        return False
    return math.isfinite(v)


def safe_cell(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would run as a formula; then
    the text with a leading ``'``."""
    if value is None or isinstance(value, bool | int | float):
        return value
    s = str(value)
    if s.startswith(FORMULA_START) and not _is_number_text(s):
        return "'" + s
    return s


def safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Every cell of a ``csv.DictWriter`` row through :func:`safe_cell`."""
    return {k: safe_cell(v) for k, v in row.items()}
