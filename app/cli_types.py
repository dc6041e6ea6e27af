"""Shared argparse types: every numeric command-line option is checked here (finite, in
range), so a bad value is one line and exit 2 (argparse's usage error), never a NaN
flowing into a model or a MemoryError.

    parser.add_argument("--margin-mm", type=finite_float(0, 30, unit="mm"))
    parser.add_argument("--seed", type=non_negative_int(hi=2**32 - 1))
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _fmt(v: float) -> str:
    return f"{v:g}"


def finite_float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                 hi_open: bool = False, unit: str = "") -> Callable[[str], float]:
    """An argparse ``type``: a finite float within [lo, hi] (open ends when ``lo_open`` /
    ``hi_open``). Refuses NaN, infinities and text."""
    u = f" {unit}" if unit else ""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if lo is not None and (v <= lo if lo_open else v < lo):
            raise argparse.ArgumentTypeError(
                f"{text} is out of range (must be {'>' if lo_open else '>='} {_fmt(lo)}{u})")
        if hi is not None and (v >= hi if hi_open else v > hi):
            raise argparse.ArgumentTypeError(
                f"{text} is out of range (must be {'<' if hi_open else '<='} {_fmt(hi)}{u})")
        return v

    parse.__name__ = "number"  # argparse names the type in its messages
    return parse


def positive_float(hi: float | None = None, *, unit: str = "") -> Callable[[str], float]:
    """A finite float > 0 (and <= ``hi``)."""
    return finite_float(0.0, hi, lo_open=True, unit=unit)


def bounded_int(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer within [lo, hi] (decimal digits only, at most 20)."""

    def parse(text: str) -> int:
        t = text.strip()
        if len(t) > 20:
            raise argparse.ArgumentTypeError(f"{t[:20]}...: integer too long")
        try:
            v = int(t, 10)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if lo is not None and v < lo:
            raise argparse.ArgumentTypeError(f"{text} is out of range (must be >= {lo})")
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range (must be <= {hi})")
        return v

    parse.__name__ = "integer"
    return parse


def positive_int(hi: int | None = None) -> Callable[[str], int]:
    """An integer >= 1 (and <= ``hi``)."""
    return bounded_int(1, hi)


def non_negative_int(hi: int | None = None) -> Callable[[str], int]:
    """An integer >= 0 (and <= ``hi``)."""
    return bounded_int(0, hi)


def finite_point(text: str) -> tuple[float, float, float]:
    """``X,Y,Z`` in mm: three finite numbers within +-10 m (LPS)."""
    parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        vals = ()
    if len(vals) != 3 or not all(math.isfinite(v) and abs(v) <= 10_000 for v in vals):
        raise argparse.ArgumentTypeError(f"{text!r} is not an LPS point X,Y,Z in mm "
                                         "(three finite numbers)")
    return vals  # type: ignore[return-value]
