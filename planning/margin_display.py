"""How a minimal ablative margin is written for people: capped values say so.

The margin analyses measure only inside a box around the tumour (:mod:`irplan.planning.
margin`: tumour + required + 10 mm, cap = that pad - one analysis voxel, 14.5 mm for a 5 mm
goal at 0.5 mm; :mod:`irplan.planning.margin_preview`: required + 3 mm - one zone voxel,
6.0 mm on the 2 mm preview grid). A margin at the cap is "at most" (negative) or "at least"
(positive) that value: "≤ −14.5 mm", never a bare "−14.5 mm" (issue 12: the same −14.5 mm
was shown for 0 % and 7 % coverage).
"""

from __future__ import annotations

from typing import Any

LE, GE = "\u2264", "\u2265"
_TOL_MM = 1e-3


def cap_side(value_mm: float, cap_mm: float | None) -> int:
    """-1 when ``value_mm`` sits at the negative cap, +1 at the positive cap, else 0."""
    if cap_mm is None or not cap_mm > 0:
        return 0
    if value_mm <= -cap_mm + _TOL_MM:
        return -1
    if value_mm >= cap_mm - _TOL_MM:
        return 1
    return 0


def format_margin_mm(value_mm: float, cap_mm: float | None = None, digits: int = 1,
                     unit: bool = True) -> str:
    """``+3.2 mm``; at the cap ``≤ -14.5 mm`` / ``≥ +14.5 mm``."""
    text = f"{value_mm:+.{digits}f}" + (" mm" if unit else "")
    side = cap_side(value_mm, cap_mm)
    return f"{LE} {text}" if side < 0 else f"{GE} {text}" if side > 0 else text


def format_mam(margin: Any, digits: int = 1, unit: bool = True) -> str:
    """:func:`format_margin_mm` of a MarginResult (or anything with ``minimal_margin_mm``
    and ``margin_cap_mm``)."""
    return format_margin_mm(float(margin.minimal_margin_mm),
                            getattr(margin, "margin_cap_mm", None), digits, unit)
