"""Placed versus planned needles: matching, errors, measured IRE pairs, the placed plan
and the trial's technical-success verdict. LPS mm; no Qt/VTK/file IO.

Matching: the plan's needle order is arbitrary, so detected and planned needles are
paired by an optimal assignment (Hungarian, ``scipy.optimize.linear_sum_assignment``) on
``tip distance (mm) + ANGLE_WEIGHT_MM_PER_DEG x axis angle (deg)``; an assignment with
a tip farther than ``MATCH_GATE_MM`` is dropped (that detected needle is unmatched,
``planned_index`` None, and the planned one is missing).

Errors per needle (planned axis ``d`` = entry -> tip): tip error |tip_d - tip_p|; depth
error (tip_d - tip_p) . d (> 0: deeper than planned); lateral error: the rest,
perpendicular to ``d``; angle error between the two axes (0-90 deg).

Pairs (IRE): pulsed pairs by IRPlan's convention (:func:`irplan.planning.ire_array.
electrode_pairs`: every pair <= 25 mm apart); ``spacing_mm`` = tip-to-tip distance as
the physician measures it on the check CT; voltage = 1500 V/cm x spacing capped at the
3000 V generator maximum (:func:`irplan.planning.ire_field.default_voltage_v`).

Technical success (trial definition, CLINICAL.md: "needles placed according to the
treatment plan and 90 pulses delivered per electrode pair"), with IRPlan's stated
tolerances: every planned needle found and no needle that matches none, tip within ``TIP_TOLERANCE_MM`` (5 mm: the plan's
default ablative margin; a tip farther off can leave the margin untreated) and axis
within ``ANGLE_TOLERANCE_DEG`` (10 deg) of the plan; every pulsed pair >= ``MIN_PULSES``
(90) pulses. Without a pulse record the verdict is "not decided" (None), never a pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from irplan.planning.errors import InputError
from irplan.planning.plan import Needle, Plan

MATCH_GATE_MM = 20.0
ANGLE_WEIGHT_MM_PER_DEG = 0.5
TIP_TOLERANCE_MM = 5.0
ANGLE_TOLERANCE_DEG = 10.0
MIN_PULSES = 90


@dataclass
class PlacedNeedle:
    """A needle as found on the check CT (``direction``: unit entry -> tip)."""

    tip_lps_mm: np.ndarray
    entry_lps_mm: np.ndarray

    @property
    def direction(self) -> np.ndarray:
        d = np.asarray(self.tip_lps_mm, float) - np.asarray(self.entry_lps_mm, float)
        return d / np.linalg.norm(d)


def _angle_deg(u: np.ndarray, v: np.ndarray) -> float:
    c = abs(float(u @ v) / (np.linalg.norm(u) * np.linalg.norm(v)))
    return math.degrees(math.acos(min(1.0, c)))


def match_to_plan(placed: list[PlacedNeedle], planned: list[Needle]) -> list[int | None]:
    """For each placed needle the 0-based index of its planned needle, or None."""
    from scipy.optimize import linear_sum_assignment

    out: list[int | None] = [None] * len(placed)
    if not placed or not planned:
        return out
    cost = np.zeros((len(placed), len(planned)))
    tipd = np.zeros_like(cost)
    for i, p in enumerate(placed):
        for j, n in enumerate(planned):
            tipd[i, j] = np.linalg.norm(np.asarray(p.tip_lps_mm) - n.tip_lps_mm)
            cost[i, j] = tipd[i, j] + ANGLE_WEIGHT_MM_PER_DEG * _angle_deg(p.direction,
                                                                           n.direction)
    # beyond the gate every pairing costs the same: an outlier cannot pull the others
    cost[tipd > MATCH_GATE_MM] = 1e6
    rows, cols = linear_sum_assignment(cost)
    for i, j in zip(rows, cols):
        if tipd[i, j] <= MATCH_GATE_MM:
            out[int(i)] = int(j)
    return out


def needle_errors(p: PlacedNeedle, n: Needle) -> dict[str, float]:
    """Tip, depth, lateral (mm) and angle (deg) error of a placed needle vs its plan."""
    d = n.direction
    delta = np.asarray(p.tip_lps_mm, float) - n.tip_lps_mm
    depth = float(delta @ d)
    return {"tip_error_mm": float(np.linalg.norm(delta)), "depth_error_mm": depth,
            "lateral_error_mm": float(np.linalg.norm(delta - depth * d)),
            "angle_error_deg": _angle_deg(p.direction, d)}


def measured_pairs(placed: list[PlacedNeedle]) -> list[dict[str, Any]]:
    """Pulsed pairs of placed electrodes: ``needles`` [a, b] 0-based, tip-to-tip
    ``spacing_mm``, ``angle_deg`` between them, ``voltage_v`` (capped), ``capped``."""
    from irplan.planning.ire_array import electrode_pairs
    from irplan.planning.ire_field import default_voltage_v

    tmp = [Needle("ire-19g-monopolar", p.tip_lps_mm, p.entry_lps_mm, 20.0) for p in placed]
    out = []
    for pr in electrode_pairs(tmp):
        a, b = placed[pr.i], placed[pr.j]
        spacing = float(np.linalg.norm(np.asarray(a.tip_lps_mm) - np.asarray(b.tip_lps_mm)))
        v, capped = default_voltage_v(spacing)
        out.append({"needles": [pr.i, pr.j], "spacing_mm": spacing,
                    "angle_deg": _angle_deg(a.direction, b.direction),
                    "voltage_v": float(v), "capped": bool(capped)})
    return out


def placed_plan(plan: Plan, placed: list[PlacedNeedle], matches: list[int | None]) -> Plan:
    """A copy of ``plan`` whose needles are the placed ones: device, exposure and name
    from the matched planned needle (an unmatched one takes the first planned needle's
    device/exposure and the name ``X<k>``); IRE voltage per pair from the measured
    spacings (``ire.voltage_v`` None = derived per pair)."""
    out = plan.copy()
    ref = plan.needles[0] if plan.needles else None
    needles = []
    for k, (p, m) in enumerate(zip(placed, matches)):
        src = plan.needles[m] if m is not None else ref
        if src is None:
            raise InputError("the plan has no needles to take devices from")
        name = src.name if m is not None else f"X{k + 1}"
        needles.append(Needle(src.device, np.asarray(p.tip_lps_mm, float),
                              np.asarray(p.entry_lps_mm, float), src.exposure_mm, name,
                              {"planned_index": None if m is None else m + 1}))
    out.needles = needles
    if out.is_ire:
        out.ire.voltage_v = None
    return out


def parse_currents_csv(text: str, source: str, n_needles: int) -> dict[tuple[int, int],
                                                                        dict[str, float]]:
    """``pair,pulses,current_a`` rows (header optional; pair "1-2", 1-based into the
    detected needles) -> {(a, b) 0-based sorted: {"pulses", "current_a"}}. InputError
    naming the file and line."""
    import csv
    import io

    out: dict[tuple[int, int], dict[str, float]] = {}
    for ln, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not cells or all(not c for c in cells):
            continue
        if ln == 1 and cells[0].lower() == "pair":
            continue
        where = f"{source}: line {ln}"
        if len(cells) != 3:
            raise InputError(f"{where}: expected pair,pulses,current_a, got {len(cells)} "
                             "values")
        parts = cells[0].replace(" ", "").split("-")
        try:
            a, b = (int(x) for x in parts)
        except ValueError:
            raise InputError(f"{where}: pair {cells[0]!r} is not of the form 1-2") from None
        if not (1 <= a <= n_needles and 1 <= b <= n_needles) or a == b:
            raise InputError(f"{where}: pair {cells[0]!r} does not name two of the "
                             f"{n_needles} detected needles (1-based)")
        try:
            pulses = int(cells[1])
        except ValueError:
            raise InputError(f"{where}: pulses {cells[1]!r} is not an integer") from None
        try:
            current = float(cells[2])
        except ValueError:
            raise InputError(f"{where}: current_a {cells[2]!r} is not a number") from None
        if not 0 <= pulses <= 10000:
            raise InputError(f"{where}: pulses {pulses} out of range 0-10000")
        if not (math.isfinite(current) and 0 <= current <= 200):
            raise InputError(f"{where}: current_a {cells[2]} out of range 0-200 A")
        key = (min(a, b) - 1, max(a, b) - 1)
        if key in out:
            raise InputError(f"{where}: pair {cells[0]} given twice")
        out[key] = {"pulses": pulses, "current_a": current}
    return out


def technical_success(n_planned: int, matches: list[int | None],
                      errors: list[dict[str, float] | None],
                      pairs: list[dict[str, Any]],
                      record: dict[tuple[int, int], dict[str, float]] | None) -> dict[str, Any]:
    """The verdict (module doc): ``success`` True/False, or None when the placement is
    right but no pulse record was given; ``reasons`` say what failed."""
    reasons: list[str] = []
    found = {m for m in matches if m is not None}
    for j in range(n_planned):
        if j not in found:
            reasons.append(f"planned needle {j + 1} not found on the CT")
    for k, (m, e) in enumerate(zip(matches, errors)):
        if m is None:
            reasons.append(f"needle {k + 1} found on the CT matches no planned needle")
            continue
        if e is None:
            continue
        if e["tip_error_mm"] > TIP_TOLERANCE_MM:
            reasons.append(f"needle {k + 1} (planned {m + 1}): tip {e['tip_error_mm']:.1f} mm "
                           f"from plan (tolerance {TIP_TOLERANCE_MM:g} mm)")
        if e["angle_error_deg"] > ANGLE_TOLERANCE_DEG:
            reasons.append(f"needle {k + 1} (planned {m + 1}): axis {e['angle_error_deg']:.1f}"
                           f" deg from plan (tolerance {ANGLE_TOLERANCE_DEG:g} deg)")
    placed_ok = not reasons
    pulses_ok: bool | None = None if pairs else True   # thermal / single needle: no pairs
    if record is not None and pairs:
        pulses_ok = True
        for p in pairs:
            a, b = p["needles"]
            got = record.get((min(a, b), max(a, b)))
            if got is None or got["pulses"] < MIN_PULSES:
                pulses_ok = False
                reasons.append(f"pair {a + 1}-{b + 1}: "
                               + ("no pulses recorded" if got is None else
                                  f"{int(got['pulses'])} pulses (< {MIN_PULSES})"))
    success = (placed_ok and pulses_ok) if pulses_ok is not None else (
        False if not placed_ok else None)
    return {"success": success, "needles_as_planned": placed_ok, "pulses_complete": pulses_ok,
            "reasons": reasons,
            "definition": "every planned needle placed, no other needle (tip within "
                          f"{TIP_TOLERANCE_MM:g} mm, axis within {ANGLE_TOLERANCE_DEG:g} deg "
                          f"of the plan) and >= {MIN_PULSES} pulses per electrode pair"}


CURRENT_TARGET_A = (20.0, 50.0)   # IRE protocol: aim for 20-50 A per pair (CLINICAL.md)


def fit_current_scale(predicted_a: dict[tuple[int, int], float],
                      measured_a: dict[tuple[int, int], float]) -> dict[str, Any] | None:
    """Least-squares factor ``k`` on the tissue conductivity so that the predicted pair
    currents (A, same pair keys 0-based) match the measured ones: currents are
    proportional to a uniform conductivity scale, so ``k = sum(m p) / sum(p^2)``;
    returns k, the RMS residual (A) and per-pair figures, or None without common pairs.
    A uniform scale leaves the static field (hence the zone) unchanged: the fit says
    how far the model's currents are from this patient's, not a new zone."""
    keys = sorted(set(predicted_a) & set(measured_a))
    if not keys:
        return None
    p = np.array([predicted_a[k] for k in keys], float)
    m = np.array([measured_a[k] for k in keys], float)
    if not np.any(p > 0):
        return None
    k = float((m @ p) / (p @ p))
    res = m - k * p
    lo, hi = CURRENT_TARGET_A
    return {"conductivity_scale": k, "residual_rms_a": float(np.sqrt(np.mean(res ** 2))),
            "pairs": [{"needles": [a + 1, b + 1], "predicted_a": float(pa),
                       "measured_a": float(ma), "fitted_a": float(k * pa),
                       "in_target_range": bool(lo <= ma <= hi)}
                      for (a, b), pa, ma in zip(keys, p, m)],
            "target_range_a": [lo, hi]}
