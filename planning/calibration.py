"""Calibrate the zone model from a cohort's achieved ablation zones (issue 14).

Each case: a plan (its CT frame, LPS mm) and the achieved ablation mask in that frame.
IRE: the static field of the plan is solved once per case; the lethal threshold (V/cm)
that maximises the mean Dice of {|E| >= T} against the achieved zones is fitted on a grid
of thresholds. Thermal (MWA/RFA/cryo): one scale factor on the table's zone length and
width. Per case: Dice, HD95 (mm) and volume ratio (predicted / achieved) before (the
default setting) and after the fit, and leave-one-out (the fit on the other cases, judged
on this one), so the fit is not judged on its own cases.

Dice and HD95 are computed on the prediction's grid (the achieved mask is sampled there by
LPS position, nearest neighbour).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from irplan.planning.conductivity import mask_on_grid
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume

THRESHOLDS_V_PER_CM = np.arange(200.0, 1200.0 + 1e-9, 5.0)
SCALES = np.arange(0.5, 1.8 + 1e-9, 0.01)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean arrays (1.0 when both are empty)."""
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * float(np.logical_and(a, b).sum()) / s


def hd95_mm(a: np.ndarray, b: np.ndarray, spacing_mm: np.ndarray) -> float:
    """95th percentile of the symmetric surface distance (mm); inf when one is empty."""
    if not a.any() or not b.any():
        return float("inf")
    sp = np.asarray(spacing_mm, float)[::-1]             # array order [k, j, i]
    sa = a & ~ndimage.binary_erosion(a)
    sb = b & ~ndimage.binary_erosion(b)
    da = ndimage.distance_transform_edt(~sa, sampling=sp)
    db = ndimage.distance_transform_edt(~sb, sampling=sp)
    return float(np.percentile(np.concatenate([db[sa], da[sb]]), 95))


@dataclass
class CaseData:
    """One case ready for fitting: a predictor of the zone for a parameter value, and the
    achieved zone on the prediction's grid."""

    case_id: str
    modality: str
    grid: Volume
    achieved: np.ndarray                         # bool [k, j, i] on ``grid``
    field_v_per_cm: np.ndarray | None = None     # IRE
    ellipsoids: list[Any] = field(default_factory=list)   # thermal

    def zone(self, value: float) -> np.ndarray:
        """Predicted zone (bool on ``grid``) at threshold (IRE) or scale (thermal)."""
        if self.field_v_per_cm is not None:
            return self.field_v_per_cm >= value
        from irplan.planning.thermal_zone import Ellipsoid, rasterise

        scaled = [Ellipsoid(e.centre_lps_mm, e.axis, e.length_mm * value, e.width_mm * value,
                            e.label) for e in self.ellipsoids]
        return rasterise(self.grid, scaled).astype(bool)

    def figures(self, value: float) -> dict[str, float]:
        z = self.zone(value)
        vol_a = float(self.achieved.sum())
        return {"dice": round(dice(z, self.achieved), 4),
                "hd95_mm": round(hd95_mm(z, self.achieved, self.grid.spacing_mm), 2),
                "volume_ratio": round(float(z.sum()) / vol_a, 3) if vol_a else float("nan")}


def prepare_case(case_id: str, plan: Any, structures: dict[str, Volume], achieved: Volume,
                 grid_mm: float = 2.0) -> CaseData:
    """Solve the plan's zone model once (static IRE field, or the thermal ellipsoids) on a
    grid that also holds the achieved zone."""
    from irplan.planning.zone import ZoneOptions, predict_zone

    if not np.any(achieved.array):
        raise InputError(f"case {case_id}: the ablation mask is empty")
    opts = ZoneOptions(compute_margin=False, current_model=False)
    res = predict_zone(plan, None, structures, grid_mm=grid_mm, options=opts)
    if plan.modality == "IRE":
        fld = _cover(res.field_v_per_cm, achieved)
        ach = mask_on_grid(achieved, fld)
        return CaseData(case_id, "IRE", fld, ach, field_v_per_cm=fld.array)
    grid = _cover(res.zone, achieved, pad_mm=0.3 * max(
        max(e.length_mm for e in res.ellipsoids), 10.0))
    return CaseData(case_id, plan.modality, grid, mask_on_grid(achieved, grid),
                    ellipsoids=list(res.ellipsoids))


def _cover(vol: Volume, mask: Volume, pad_mm: float = 0.0) -> Volume:
    """``vol`` grown with zeros (same lattice) to hold ``mask``'s non-zero box + pad."""
    from irplan.planning.zone import _extend_to_cover

    kji = np.argwhere(mask.array)
    lo, hi = kji.min(axis=0)[::-1], kji.max(axis=0)[::-1]
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for z in (lo[2], hi[2])], float)
    pts = mask.index_to_lps(corners)
    pts = np.vstack([pts.min(axis=0) - pad_mm - 2 * vol.spacing_mm,
                     pts.max(axis=0) + pad_mm + 2 * vol.spacing_mm])
    return _extend_to_cover(vol, pts)


def _best(cases: list[CaseData], values: np.ndarray) -> tuple[float, float]:
    """(value, mean Dice) maximising the mean Dice over ``cases``."""
    scores = np.array([np.mean([dice(c.zone(v), c.achieved) for c in cases]) for v in values])
    i = int(np.argmax(scores))
    return float(values[i]), float(scores[i])


@dataclass
class CalibrationResult:
    modality: str
    parameters: dict[str, float]
    default: dict[str, Any]
    cases: list[dict[str, Any]]
    dice_before: float
    dice_after: float
    dice_loo: float | None
    bad_rows: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, "parameters": self.parameters,
                "default": self.default, "cases": self.cases,
                "dice_before": round(self.dice_before, 4),
                "dice_after": round(self.dice_after, 4),
                "dice_loo": None if self.dice_loo is None else round(self.dice_loo, 4),
                "n_cases": len(self.cases), "bad_rows": self.bad_rows}


def calibrate(cases: list[CaseData], bad_rows: list[dict[str, Any]] | None = None
              ) -> CalibrationResult:
    """Fit the cohort's parameter; before = the default setting (IRE: conservative
    637 V/cm; thermal: scale 1, the tables as they are)."""
    if not cases:
        raise InputError("no usable case in the cohort (see the bad rows)")
    mods = {c.modality for c in cases}
    if len(mods) > 1:
        raise InputError(f"the cohort mixes modalities ({', '.join(sorted(mods))}); "
                         "calibrate one modality at a time")
    modality = cases[0].modality
    if modality == "IRE":
        from irplan.planning.zone_settings import default_setting

        st = default_setting()
        before, values, name = st.threshold_v_per_cm, THRESHOLDS_V_PER_CM, "threshold_v_per_cm"
        default = {"setting": st.name, name: before}
    else:
        before, values, name = 1.0, SCALES, "zone_scale"
        default = {"setting": "zone tables as shipped", name: 1.0}
    best, _ = _best(cases, values)
    out = []
    loo = []
    for i, c in enumerate(cases):
        row: dict[str, Any] = {"case_id": c.case_id}
        fb, fa = c.figures(before), c.figures(best)
        row.update({"dice_before": fb["dice"], "dice_after": fa["dice"],
                    "hd95_before_mm": fb["hd95_mm"], "hd95_after_mm": fa["hd95_mm"],
                    "volume_ratio_before": fb["volume_ratio"],
                    "volume_ratio_after": fa["volume_ratio"]})
        if len(cases) > 1:
            v_loo, _ = _best(cases[:i] + cases[i + 1:], values)
            fl = c.figures(v_loo)
            row.update({f"{name}_loo": v_loo, "dice_loo": fl["dice"],
                        "hd95_loo_mm": fl["hd95_mm"]})
            loo.append(fl["dice"])
        out.append(row)
    return CalibrationResult(
        modality, {name: best}, default, out,
        float(np.mean([r["dice_before"] for r in out])),
        float(np.mean([r["dice_after"] for r in out])),
        float(np.mean(loo)) if loo else None, list(bad_rows or []))
