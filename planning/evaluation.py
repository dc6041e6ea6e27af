"""Technical-efficacy evaluation at follow-up: registration, margin, verdict, predicted vs
achieved zone. LPS mm; the analysis happens in planning space.

Verdict terms (Ahmed et al. 2014, "Image-guided tumor ablation: standardization of
terminology and reporting criteria - a 10-year update", Radiology 273:241; margin goal
5 mm: ACCLAIM, Laimer 2020/2024, Wang 2013 PMC4122121 - see CLINICAL.md):

* ``complete_margin_ok``      complete ablation, minimal ablative margin >= 5 mm
* ``complete_margin_at_risk`` complete ablation, MAM 0-5 mm (margin at risk)
* ``incomplete``              residual tumour (MAM < 0): where and how much

The verdict follows the sign of the MAM (the tumour surface lies outside the zone where
the margin is negative) and the required margin. A MAM within 1.6 mm of a threshold is
flagged: that is the mean target registration error of clinical margin software
(systematic review, Diagn Interv Imaging 2022;103:240, PubMed 35246412).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from irplan.planning.errors import InputError
from irplan.planning.margin import MarginResult, compute_margin
from irplan.planning.registration import RegistrationResult, identity_result, map_points
from irplan.planning.registration import register as _register
from irplan.planning.volume import Volume

VERDICTS = {
    "complete_margin_ok": "Complete ablation, minimal ablative margin >= {m:g} mm",
    "complete_margin_at_risk": "Complete ablation, minimal ablative margin 0-{m:g} mm "
                               "(margin at risk)",
    "incomplete": "Incomplete ablation: residual tumour",
}
# Mean target registration error of clinical margin software (CLINICAL.md, PubMed 35246412).
REGISTRATION_UNCERTAINTY_MM = 1.62
DEFAULT_REQUIRED_MARGIN_MM = 5.0  # ACCLAIM; Laimer 2020 (HCC); Laimer 2024 (CLINICAL.md)


@dataclass
class EvaluationResult:
    """The outcome of one lesion's follow-up evaluation (planning space)."""

    verdict: str
    verdict_text: str
    margin: MarginResult
    registration: RegistrationResult
    zone_planning: Volume                       # ablation zone on the planning grid (0/1)
    rigid_margin: MarginResult | None = None    # side by side when deformable
    residual: dict[str, Any] | None = None
    predicted_vs_achieved: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def minimal_margin_mm(self) -> float:
        return self.margin.minimal_margin_mm

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (the CLI's --json output)."""
        m = self.margin.to_dict()
        d: dict[str, Any] = {
            "verdict": self.verdict,
            "verdict_text": self.verdict_text,
            "minimal_margin_mm": m["minimal_margin_mm"],
            "mam_point_lps_mm": m["mam_point_lps_mm"],
            "tumor_coverage_percent": m["tumor_coverage_percent"],
            "residual_tumor_ml": m["residual_tumor_ml"],
            "tumor_volume_ml": m["tumor_volume_ml"],
            "ablation_zone_volume_ml": m["zone_volume_ml"],
            "shell_coverage_percent": m["shell_coverage_percent"],
            "required_margin_mm": m["required_margin_mm"],
            "margin": m,
            "registration": self.registration.to_dict(),
            "residual": self.residual,
            "predicted_vs_achieved": self.predicted_vs_achieved,
            "warnings": list(self.warnings),
            "terminology": "Ahmed et al. 2014, Radiology 273:241 (technical efficacy)",
        }
        if self.rigid_margin is not None:
            d["rigid_comparison"] = {
                "minimal_margin_mm": round(self.rigid_margin.minimal_margin_mm, 3),
                "tumor_coverage_percent": round(self.rigid_margin.tumor_coverage_percent, 3),
                "verdict": classify(self.rigid_margin.minimal_margin_mm,
                                    self.rigid_margin.required_margin_mm),
            }
        return d


def classify(minimal_margin_mm: float, required_margin_mm: float = DEFAULT_REQUIRED_MARGIN_MM
             ) -> str:
    """Verdict key from the MAM (mm)."""
    if minimal_margin_mm < 0.0:
        return "incomplete"
    if minimal_margin_mm < required_margin_mm:
        return "complete_margin_at_risk"
    return "complete_margin_ok"


_DIR_WORDS = (("left", "right"), ("posterior", "anterior"), ("superior", "inferior"))


def describe_direction(v_lps: np.ndarray) -> str:
    """Patient-direction words for an LPS vector, e.g. 'posterior-superior'."""
    v = np.asarray(v_lps, float)
    n = np.linalg.norm(v)
    if n < 1e-6:
        return "central"
    u = v / n
    words = [(_DIR_WORDS[a][0] if u[a] > 0 else _DIR_WORDS[a][1], abs(u[a])) for a in range(3)]
    words = [w for w in sorted(words, key=lambda t: -t[1]) if w[1] >= 0.35]
    return "-".join(w for w, _ in words)


def zone_on_grid(zone: Volume, grid: Volume, transform: sitk.Transform) -> Volume:
    """A follow-up-space mask on a planning grid through ``transform`` (planning ->
    follow-up): trilinear on the 0/1 mask, threshold 0.5 (smoother than nearest)."""
    img = sitk.Cast(zone.to_sitk() != 0, sitk.sitkFloat32)
    out = sitk.Resample(img, grid.to_sitk(), transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return grid.with_array((sitk.GetArrayFromImage(out) >= 0.5).astype(np.uint8))


def compare_zones(predicted: Volume, achieved: Volume) -> dict[str, Any]:
    """Predicted (planned) vs achieved zone, both planning-space masks (any grids; the
    achieved one is resampled onto the predicted one's grid): Dice, volumes (mL),
    95th-percentile Hausdorff distance and mean surface distance (mm, border voxels of each
    mask to the other's border voxels; HD95 = the larger of the two directions' 95th
    percentiles, as MedPy's ``hd95``), centroid offset (mm)."""
    from scipy.ndimage import binary_erosion, distance_transform_edt

    if not predicted.same_geometry(achieved, tol_mm=1e-3):
        achieved = achieved.resample_like(predicted, "nearest")
    a_full = predicted.array != 0
    b_full = achieved.array != 0
    if not a_full.any() or not b_full.any():
        raise InputError("predicted vs achieved: "
                         + ("the planned zone" if not a_full.any() else "the ablation zone")
                         + " is empty")
    vml = predicted.voxel_volume_ml
    n_a, n_b = int(a_full.sum()), int(b_full.sum())
    dice = 2.0 * int((a_full & b_full).sum()) / (n_a + n_b)
    # crop to both objects (+2 voxels) for the distance transforms
    idx = np.argwhere(a_full | b_full)
    lo = np.maximum(idx.min(axis=0) - 2, 0)
    hi = idx.max(axis=0) + 3
    box = tuple(slice(int(lo[d]), int(hi[d])) for d in range(3))
    a = np.pad(a_full[box], 1)
    b = np.pad(b_full[box], 1)
    sampling = predicted.spacing_mm[::-1]
    border_a = a & ~binary_erosion(a)
    border_b = b & ~binary_erosion(b)
    d_ab = distance_transform_edt(~border_b, sampling=sampling)[border_a]
    d_ba = distance_transform_edt(~border_a, sampling=sampling)[border_b]
    ca = predicted.index_to_lps(np.argwhere(a_full).mean(axis=0)[::-1])
    cb = predicted.index_to_lps(np.argwhere(b_full).mean(axis=0)[::-1])
    return {
        "dice": round(dice, 4),
        "predicted_volume_ml": round(n_a * vml, 3),
        "achieved_volume_ml": round(n_b * vml, 3),
        "volume_difference_ml": round((n_b - n_a) * vml, 3),
        "hd95_mm": round(float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))), 3),
        "mean_surface_distance_mm": round(float(np.concatenate([d_ab, d_ba]).mean()), 3),
        "centroid_offset_mm": round(float(np.linalg.norm(cb - ca)), 3),
        "centroid_offset_lps_mm": [round(float(v), 3) for v in (cb - ca)],
        "grid_spacing_mm": [float(v) for v in predicted.spacing_mm],
    }


def evaluate(planning_ct: Volume | None, followup_ct: Volume | None, tumor_mask: Volume,
             ablation_mask: Volume, register: str = "rigid",
             liver_mask: Volume | None = None, landmarks: tuple[Any, Any] | None = None,
             plan_zone: Volume | None = None,
             required_margin_mm: float = DEFAULT_REQUIRED_MARGIN_MM,
             fine_spacing_mm: float | None = 0.5,
             registration: RegistrationResult | None = None) -> EvaluationResult:
    """Evaluate one lesion at follow-up.

    Args:
        planning_ct, followup_ct: HU Volumes (may be None with ``register="none"``
            or when ``registration`` is given).
        tumor_mask: planning-space tumour mask; ablation_mask: follow-up-space zone mask
            (with "none": already in planning space).
        register: "none", "rigid" or "deformable" (deformable also reports the
            rigid result side by side, see CLINICAL.md).
        liver_mask, landmarks: passed to :func:`irplan.planning.registration.register`.
        plan_zone: planning-space predicted zone for predicted-vs-achieved figures.
        registration: an already accepted registration (GUI); skips registering.
    """
    warnings: list[str] = []
    if registration is None:
        if register == "none":
            registration = identity_result()
        else:
            if planning_ct is None or followup_ct is None:
                raise InputError(f"--register {register} needs both the planning "
                                 "and the follow-up CT")
            registration = _register(planning_ct, followup_ct, register,
                                    target=tumor_mask, liver=liver_mask, landmarks=landmarks,
                                    followup_exclude=ablation_mask)
    tf = registration.transform
    margin = compute_margin(tumor_mask, ablation_mask, required_margin_mm, fine_spacing_mm,
                            zone_transform=tf)
    rigid_margin = None
    if registration.method == "deformable" and registration.rigid_transform is not None:
        rigid_margin = compute_margin(tumor_mask, ablation_mask, required_margin_mm,
                                      fine_spacing_mm, zone_transform=registration.rigid_transform)
        diff = margin.minimal_margin_mm - rigid_margin.minimal_margin_mm
        if abs(diff) > 1.0:
            warnings.append(f"deformable and rigid registration disagree on the MAM by "
                            f"{diff:+.1f} mm (rigid {rigid_margin.minimal_margin_mm:.1f} mm); "
                            "check the registration around the tumour")
    verdict = classify(margin.minimal_margin_mm, required_margin_mm)
    mam = margin.minimal_margin_mm
    for thr in sorted({0.0, float(required_margin_mm)}):
        if abs(mam - thr) < REGISTRATION_UNCERTAINTY_MM and registration.method != "none":
            warnings.append(f"MAM {mam:.1f} mm is within {REGISTRATION_UNCERTAINTY_MM} mm "
                            f"(mean registration error of margin software, PubMed 35246412) "
                            f"of the {thr:g} mm threshold: the verdict is uncertain")
    residual = None
    if verdict == "incomplete" and margin.residual_centroid_lps_mm is not None:
        t_centre = tumor_mask.index_to_lps(
            np.argwhere(tumor_mask.array != 0).mean(axis=0)[::-1])
        off = margin.residual_centroid_lps_mm - t_centre
        residual = {
            "volume_ml": round(margin.residual_tumor_ml, 4),
            "centroid_lps_mm": [round(float(v), 2) for v in margin.residual_centroid_lps_mm],
            "centroid_followup_lps_mm": [round(float(v), 2) for v in
                                         map_points(tf, margin.residual_centroid_lps_mm)],
            "components": margin.residual_components,
            "direction_from_tumor_center": describe_direction(off),
            "offset_from_tumor_center_mm": [round(float(v), 2) for v in off],
            "deepest_point_lps_mm": [round(float(v), 2) for v in margin.mam_point_lps_mm],
            "max_depth_outside_zone_mm": round(-min(mam, 0.0), 2),
        }
    grid_ref = planning_ct if planning_ct is not None else tumor_mask
    zone_planning = zone_on_grid(ablation_mask, grid_ref, tf)
    pva = None
    if plan_zone is not None:
        achieved = zone_on_grid(ablation_mask, plan_zone, tf)
        pva = compare_zones(plan_zone, achieved)
    text = VERDICTS[verdict].format(m=required_margin_mm)
    if verdict == "incomplete" and residual is not None:
        text += (f" ({residual['volume_ml']:.2f} mL, {residual['direction_from_tumor_center']}"
                 " of the tumour centre)")
    return EvaluationResult(verdict=verdict, verdict_text=text, margin=margin,
                            registration=registration, zone_planning=zone_planning,
                            rigid_margin=rigid_margin, residual=residual,
                            predicted_vs_achieved=pva, warnings=warnings)
