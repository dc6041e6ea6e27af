"""Register the follow-up CT to the planning CT (SimpleITK). LPS mm throughout.

Convention: fixed = planning, moving = follow-up, so the result transform maps a
*planning* LPS point to the corresponding *follow-up* LPS point (SimpleITK registration
transforms map fixed points to moving points). Resampling a follow-up image or mask onto
a planning grid uses this transform directly (``sitk.Resample(followup, planning_grid,
transform)``); mapping a planning point into the follow-up is ``transform.TransformPoint``.

Stages:

1. *Global* translation on both whole scans, bin-shrunk (scanner coordinates of two
   studies often differ by centimetres; a local search alone would not find the liver).
   Skipped when landmark pairs are given: they initialise the rigid stage instead
   (``LandmarkBasedTransformInitializer``, least squares).
2. *Rigid* (Euler3DTransform about the region centre) in a box around the target
   (tumour + ``roi_margin_mm``), optionally restricted by a liver mask; Mattes mutual
   information, multi-resolution (shrink 4, 2, 1 with Gaussian smoothing 2, 1, 0 mm).
3. Optional *deformable*: B-spline (control points every ``bspline_spacing_mm``, which
   is the regulariser: a coarse grid cannot fold), LBFGS-B, started from the rigid result.
   The tumour neighbourhood is left out of the metric (its appearance changes after
   ablation), so the deformation there is interpolated from the surrounding liver and
   cannot warp the tumour into the zone (CLINICAL.md, "Error sources"). Callers should
   still report rigid and deformable results side by side.

Quality figures: Mattes MI before (``initial_metric_value``) and after
(``metric_value``) registration, both evaluated the same way (2x shrunk region, fixed
random samples) so they compare (negative, lower = better aligned); landmark residuals
when landmark pairs are given; iterations and the optimiser's stop condition.
The systematic review in CLINICAL.md reports a mean target registration error of
1.62 mm (1.20-2.23) for clinical software (Diagn Interv Imaging 2022;103:240).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from irplan.planning.errors import GeometryError, InputError
from irplan.planning.volume import Volume

METHODS = ("none", "rigid", "deformable")
# Soft-tissue CT window used for mutual information (HU): keeps bone/air extremes from
# dominating the joint histogram (design choice, liver ~100 HU, fat ~-100 HU).
HU_WINDOW = (-200.0, 400.0)


@dataclass
class RegistrationResult:
    """A registration planning -> follow-up and its quality figures.

    ``transform`` maps planning LPS mm to follow-up LPS mm. For a deformable result
    ``rigid_transform`` holds the rigid stage alone (for side-by-side reporting).
    """

    transform: sitk.Transform
    method: str
    metric_name: str = ""
    metric_value: float | None = None          # Mattes MI after (lower is better)
    initial_metric_value: float | None = None  # the same measure before optimisation
    iterations: int = 0
    stop_condition: str = ""
    elapsed_s: float = 0.0
    rigid_transform: sitk.Transform | None = None
    landmark_residuals_mm: list[float] | None = None
    roi_lps_mm: tuple[list[float], list[float]] | None = None
    notes: list[str] = field(default_factory=list)

    def map_points(self, points_lps_mm: np.ndarray) -> np.ndarray:
        """Planning LPS points (3,) or (N, 3) -> follow-up LPS points."""
        return map_points(self.transform, points_lps_mm)

    @property
    def rigid_parameters(self) -> dict[str, Any] | None:
        """Rotation (deg about x, y, z) and translation (mm) of the rigid stage."""
        tf = self.rigid_transform if self.rigid_transform is not None else self.transform
        try:
            e = sitk.Euler3DTransform(tf)
        except (RuntimeError, TypeError):
            return None
        return {"rotation_deg_xyz": [float(np.degrees(a)) for a in
                                     (e.GetAngleX(), e.GetAngleY(), e.GetAngleZ())],
                "translation_mm": [float(v) for v in e.GetTranslation()],
                "center_lps_mm": [float(v) for v in e.GetCenter()]}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        d: dict[str, Any] = {
            "method": self.method,
            "metric": self.metric_name or None,
            "metric_value": None if self.metric_value is None else round(self.metric_value, 5),
            "initial_metric_value": (None if self.initial_metric_value is None
                                     else round(self.initial_metric_value, 5)),
            "iterations": self.iterations,
            "stop_condition": self.stop_condition,
            "elapsed_s": round(self.elapsed_s, 2),
            "notes": list(self.notes),
        }
        if self.method != "none":
            d["rigid"] = self.rigid_parameters
        if self.landmark_residuals_mm is not None:
            r = np.asarray(self.landmark_residuals_mm)
            d["landmark_residuals_mm"] = [round(float(v), 3) for v in r]
            d["landmark_residual_mean_mm"] = round(float(r.mean()), 3) if r.size else None
        if self.roi_lps_mm is not None:
            d["roi_lps_mm"] = {"min": [round(v, 2) for v in self.roi_lps_mm[0]],
                               "max": [round(v, 2) for v in self.roi_lps_mm[1]]}
        return d


def map_points(transform: sitk.Transform, points_lps_mm: np.ndarray) -> np.ndarray:
    """Apply a SimpleITK transform to LPS points (3,) or (N, 3)."""
    p = np.asarray(points_lps_mm, dtype=np.float64)
    single = p.ndim == 1
    pts = np.atleast_2d(p)
    out = np.array([transform.TransformPoint(tuple(float(c) for c in q)) for q in pts])
    return out[0] if single else out


def identity_result() -> RegistrationResult:
    """The "--register none" result: both scans already share one LPS space."""
    return RegistrationResult(sitk.Euler3DTransform(), "none",
                              notes=["no registration: masks taken as already aligned"])


# ----------------------------------------------------------------------------- helpers
def _windowed(vol: Volume | sitk.Image) -> sitk.Image:
    img = vol.to_sitk() if isinstance(vol, Volume) else vol
    return sitk.Clamp(sitk.Cast(img, sitk.sitkFloat32), sitk.sitkFloat32, *HU_WINDOW)


def _bbox_lps(mask: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPS box (lo, hi) of a mask's voxels and the centroid (LPS mm), computed on the
    mask's bounding box only (fast on large grids)."""
    from irplan.planning.margin import bbox_ijk

    arr = mask.array != 0
    lo_i, hi_i = bbox_ijk(arr)
    corners = np.array([[a, b, c] for a in (lo_i[0], hi_i[0]) for b in (lo_i[1], hi_i[1])
                        for c in (lo_i[2], hi_i[2])], dtype=np.float64)
    pts = mask.index_to_lps(corners)
    sub = arr[lo_i[2]:hi_i[2] + 1, lo_i[1]:hi_i[1] + 1, lo_i[0]:hi_i[0] + 1]
    centroid = mask.index_to_lps(np.argwhere(sub).mean(axis=0)[::-1] + lo_i)
    return pts.min(axis=0), pts.max(axis=0), centroid


def _samples_fraction(image: sitk.Image, wanted: int, cap: float) -> float:
    """Metric sampling fraction giving about ``wanted`` samples at full resolution."""
    n = float(np.prod(image.GetSize()))
    return float(min(cap, max(wanted / n, 0.002)))


def _mi_method(sampling_fraction: float, seed: int = 20260601, mask: sitk.Image | None = None,
               bins: int = 50) -> sitk.ImageRegistrationMethod:
    """A registration method with the Mattes mutual information metric (``bins`` histogram
    bins) on a random ``sampling_fraction`` of the voxels (fixed ``seed``: repeatable),
    restricted to ``mask`` (fixed image) when given, linear interpolation."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling_fraction, seed)
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    reg.SetInterpolator(sitk.sitkLinear)
    # gradients at the sample points only (a whole-image gradient filter per level costs
    # more than the optimisation itself on large scans)
    reg.MetricUseFixedImageGradientFilterOff()
    reg.MetricUseMovingImageGradientFilterOff()
    return reg


def _comparable_metric(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform,
                       mask: sitk.Image | None) -> float:
    """Mattes MI of ``transform`` on 2x bin-shrunk images with fixed random samples, so
    values before and after registration compare (lower = better aligned)."""
    f = sitk.BinShrink(fixed, [2, 2, 2])
    m = sitk.BinShrink(moving, [2, 2, 2])
    if mask is not None:
        mask = sitk.Resample(mask, f, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                             mask.GetPixelID())
    reg = _mi_method(_samples_fraction(f, 30000, 0.5), seed=7, mask=mask)
    reg.SetInitialTransform(transform, inPlace=False)
    return float(reg.MetricEvaluate(f, m))


def _check_landmarks(landmarks: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        fixed = np.asarray(landmarks[0], dtype=np.float64).reshape(-1, 3)
        moving = np.asarray(landmarks[1], dtype=np.float64).reshape(-1, 3)
    except (TypeError, ValueError, IndexError):
        raise InputError("landmarks: expected two lists of LPS points (planning, follow-up)"
                         ) from None
    if len(fixed) != len(moving):
        raise InputError(f"landmarks: {len(fixed)} planning points but {len(moving)} "
                         "follow-up points; give them in pairs")
    if len(fixed) < 3:
        raise InputError(f"landmarks: need at least 3 point pairs, got {len(fixed)}")
    centred = fixed - fixed.mean(axis=0)
    if np.linalg.matrix_rank(centred, tol=1.0) < 2:
        raise InputError("landmarks: the planning points lie on one line; spread them out")
    return fixed, moving


def _roi_box(planning: Volume, target: Volume | None, liver: Volume | None,
             roi_margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """LPS box (lo, hi) of the registration region: target (else liver, else whole scan)
    grown by ``roi_margin_mm``, clipped to the planning scan."""
    src = target if target is not None and np.any(target.array) else liver
    g_lo, g_hi = planning.bounds_lps()
    if src is None or not np.any(src.array):
        return g_lo, g_hi
    b_lo, b_hi, _c = _bbox_lps(src)
    margin = roi_margin_mm if src is target else 10.0
    lo = np.maximum(b_lo - margin, g_lo)
    hi = np.minimum(b_hi + margin, g_hi)
    return lo, hi


def _crop_moving(followup: Volume, fixed_box: tuple[np.ndarray, np.ndarray],
                 transform: sitk.Transform, extra_mm: float) -> Volume:
    """Follow-up crop holding the fixed box mapped through ``transform`` plus extra_mm."""
    lo, hi = fixed_box
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                        for z in (lo[2], hi[2])])
    mapped = map_points(transform, corners)
    try:
        return followup.crop_lps_box(mapped.min(axis=0), mapped.max(axis=0), pad_mm=extra_mm)
    except GeometryError:
        raise InputError("follow-up CT does not overlap the planning region of interest "
                         "(different body region?)") from None


def _global_translation(fixed: Volume, moving: Volume, voxel_mm: float = 5.0
                        ) -> sitk.TranslationTransform:
    """Translation aligning two whole scans, on bin-shrunk copies of about ``voxel_mm``
    voxels (MI, 2 levels, ~20000 samples)."""
    shrink = max(1, int(round(voxel_mm / float(np.min(fixed.spacing_mm)))))
    # shrink first (averaging), then window: 64x less work on a 512 x 512 x 200 scan
    f = _windowed(sitk.BinShrink(fixed.to_sitk(), [shrink] * 3))
    m = _windowed(sitk.BinShrink(moving.to_sitk(), [shrink] * 3))
    reg = _mi_method(_samples_fraction(f, 20000, 0.3), bins=32)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=8.0, minStep=0.2,
                                                 numberOfIterations=60,
                                                 relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([4.0, 2.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    tf = sitk.TranslationTransform(3)
    reg.SetInitialTransform(tf, inPlace=True)
    reg.Execute(f, m)
    return tf


def _landmark_rigid(fixed_pts: np.ndarray, moving_pts: np.ndarray,
                    center: np.ndarray) -> sitk.Euler3DTransform:
    v = sitk.LandmarkBasedTransformInitializer(
        sitk.VersorRigid3DTransform(), [float(c) for c in fixed_pts.ravel()],
        [float(c) for c in moving_pts.ravel()])
    v = sitk.VersorRigid3DTransform(v)
    e = sitk.Euler3DTransform()
    e.SetCenter(tuple(float(c) for c in center))
    # same map about a new centre: y = R (x - c) + c + t'
    m = np.asarray(v.GetMatrix()).reshape(3, 3)
    off = np.asarray(v.TransformPoint(tuple(float(c) for c in center))) - center
    e.SetMatrix(tuple(float(c) for c in m.ravel()))
    e.SetTranslation(tuple(float(c) for c in off))
    return e


# ----------------------------------------------------------------------------- main API
def register(planning_ct: Volume, followup_ct: Volume, method: str = "rigid",
             target: Volume | None = None, liver: Volume | None = None,
             landmarks: tuple[Any, Any] | None = None,
             followup_exclude: Volume | None = None, roi_margin_mm: float = 40.0,
             bspline_spacing_mm: float = 50.0, rigid_iterations: int = 120,
             bspline_iterations: int = 30, sampling_percentage: float = 0.15,
             rigid_samples: int = 40000, bspline_samples: int = 60000
             ) -> RegistrationResult:
    """Register the follow-up CT (moving) to the planning CT (fixed).

    Args:
        planning_ct, followup_ct: HU Volumes (any grids, LPS).
        method: "none", "rigid" or "deformable".
        target: planning-space mask of the target (tumour); the region of interest is
            its box grown by ``roi_margin_mm``. Without it the liver box, else the scan.
        liver: planning-space liver mask; restricts the metric to the liver (+10 mm).
        landmarks: (planning_points, followup_points), each (N >= 3, 3) LPS mm, pairs
            of the same anatomical points; initialise the rigid stage and give residuals.
        followup_exclude: follow-up-space mask (the ablation zone) left out of the
            deformable metric together with the tumour + 10 mm: tissue that changed.
        bspline_spacing_mm: B-spline control-point spacing (regularisation).

    Returns a :class:`RegistrationResult` (transform planning -> follow-up).
    Raises InputError for an unknown method, bad landmarks or non-overlapping scans.
    """
    if method not in METHODS:
        raise InputError(f"register: unknown method '{method}' (use {', '.join(METHODS)})")
    if method == "none":
        res = identity_result()
        if landmarks is not None:
            f, m = _check_landmarks(landmarks)
            res.landmark_residuals_mm = np.linalg.norm(f - m, axis=1).tolist()
        return res
    t0 = time.perf_counter()
    lm = _check_landmarks(landmarks) if landmarks is not None else None
    for vol, what in ((target, "target"), (liver, "liver")):
        if vol is not None and not vol.same_geometry(planning_ct, tol_mm=1e-3):
            vol_r = vol.resample_like(planning_ct, "nearest")
            if what == "target":
                target = vol_r
            else:
                liver = vol_r
    notes: list[str] = []

    box = _roi_box(planning_ct, target, liver, roi_margin_mm)
    centre = 0.5 * (box[0] + box[1])
    if target is not None and np.any(target.array):
        centre = _bbox_lps(target)[2]

    # 1. initialisation
    if lm is not None:
        init = _landmark_rigid(lm[0], lm[1], centre)
        notes.append(f"initialised from {len(lm[0])} landmark pairs")
    else:
        shift = _global_translation(planning_ct, followup_ct)
        init = sitk.Euler3DTransform()
        init.SetCenter(tuple(float(c) for c in centre))
        init.SetTranslation(shift.GetOffset())
        notes.append("initialised by global translation "
                     f"{np.round(np.asarray(shift.GetOffset()), 1).tolist()} mm")

    # 2. rigid in the region of interest
    fixed_vol = planning_ct.crop_lps_box(*box)
    moving_vol = _crop_moving(followup_ct, box, init, extra_mm=30.0)
    fixed = _windowed(fixed_vol)
    moving = _windowed(moving_vol)
    fixed_mask = None
    if liver is not None and np.any(liver.array):
        lv = liver.resample_like(fixed_vol, "nearest").to_sitk()
        lv = sitk.BinaryDilate(sitk.Cast(lv, sitk.sitkUInt8),
                               [max(1, int(round(10.0 / s))) for s in fixed_vol.spacing_mm])
        if sitk.GetArrayViewFromImage(lv).any():
            fixed_mask = lv
            notes.append("metric restricted to the liver mask (+10 mm)")

    rigid = sitk.Euler3DTransform(init)
    # about `rigid_samples` metric samples at full resolution (the ROI size varies a lot)
    reg = _mi_method(_samples_fraction(fixed, rigid_samples, sampling_percentage),
                     mask=fixed_mask)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=0.01,
                                                 numberOfIterations=rigid_iterations,
                                                 relaxationFactor=0.5,
                                                 gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(rigid, inPlace=True)
    initial_metric = _comparable_metric(fixed, moving, init, fixed_mask)
    iters = [0]
    reg.AddCommand(sitk.sitkIterationEvent, lambda: iters.__setitem__(0, iters[0] + 1))
    try:
        reg.Execute(fixed, moving)
    except RuntimeError as exc:
        raise InputError(f"rigid registration failed ({str(exc).strip().splitlines()[-1]}); "
                         "check that both scans show the liver, or give landmarks") from None
    stop = reg.GetOptimizerStopConditionDescription()
    rigid_final = sitk.Euler3DTransform(rigid)
    metric = _comparable_metric(fixed, moving, rigid_final, fixed_mask)
    result = RegistrationResult(
        transform=rigid_final, method="rigid", metric_name="Mattes mutual information",
        metric_value=metric, initial_metric_value=initial_metric, iterations=iters[0],
        stop_condition=stop, rigid_transform=rigid_final,
        roi_lps_mm=(box[0].tolist(), box[1].tolist()), notes=notes)

    # 3. deformable (B-spline) on top of the rigid result
    if method == "deformable":
        result = _deformable(result, fixed, moving, fixed_vol, target, followup_exclude,
                             bspline_spacing_mm, bspline_iterations,
                             _samples_fraction(fixed, bspline_samples, sampling_percentage),
                             fixed_mask)
    if lm is not None:
        mapped = result.map_points(lm[0])
        result.landmark_residuals_mm = np.linalg.norm(mapped - lm[1], axis=1).tolist()
    result.elapsed_s = time.perf_counter() - t0
    return result


def _deformable(rigid_res: RegistrationResult, fixed: sitk.Image, moving: sitk.Image,
                fixed_vol: Volume, target: Volume | None, followup_exclude: Volume | None,
                spacing_mm: float, iterations: int, sampling_percentage: float,
                fixed_mask: sitk.Image | None) -> RegistrationResult:
    """B-spline refinement; the tumour + 10 mm and the ablation zone (rigidly mapped)
    + 5 mm are left out of the metric: their appearance changed between the scans."""
    notes = list(rigid_res.notes)
    mask = fixed_mask
    ref = fixed_vol.to_sitk()
    excl = []
    if target is not None and np.any(target.array):
        excl.append((sitk.Cast(target.resample_like(fixed_vol, "nearest").to_sitk(),
                               sitk.sitkUInt8), 10.0, "tumour + 10 mm"))
    if followup_exclude is not None and np.any(followup_exclude.array):
        zm = sitk.Resample(sitk.Cast(followup_exclude.to_sitk(), sitk.sitkUInt8), ref,
                           rigid_res.rigid_transform, sitk.sitkNearestNeighbor, 0,
                           sitk.sitkUInt8)
        excl.append((zm, 5.0, "ablation zone + 5 mm"))
    for img, grow_mm, what in excl:
        if not sitk.GetArrayViewFromImage(img).any():
            continue
        dist = sitk.SignedMaurerDistanceMap(img, insideIsPositive=False, squaredDistance=False,
                                            useImageSpacing=True)
        keep = sitk.Cast(dist > grow_mm, sitk.sitkUInt8)
        if mask is not None:
            keep = sitk.And(keep, sitk.Cast(mask, sitk.sitkUInt8))
        mask = keep
        notes.append(f"deformable metric excludes the {what}")
    extent = np.asarray(fixed.GetSize()) * np.asarray(fixed.GetSpacing())
    mesh = [max(1, int(round(e / spacing_mm))) for e in extent]
    bsp = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
    reg = _mi_method(sampling_percentage, mask=mask)
    reg.SetMovingInitialTransform(rigid_res.rigid_transform)
    reg.SetInitialTransform(bsp, inPlace=True)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=iterations,
                             maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=
                             2 * iterations, costFunctionConvergenceFactor=1e7)
    # the last level must be full resolution: stopping at shrink 4-2 left 0.8 mm of
    # spurious displacement at the tumour on the phantom (0.1 mm with a full-res level)
    reg.SetShrinkFactorsPerLevel([2, 1])
    reg.SetSmoothingSigmasPerLevel([1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    iters = [0]
    reg.AddCommand(sitk.sitkIterationEvent, lambda: iters.__setitem__(0, iters[0] + 1))
    try:
        reg.Execute(fixed, moving)
    except RuntimeError as exc:
        raise InputError("deformable registration failed "
                         f"({str(exc).strip().splitlines()[-1]}); use rigid") from None
    composite = sitk.CompositeTransform([rigid_res.rigid_transform, bsp])
    # displacement the B-spline adds, sampled over the region (quality/plausibility figure)
    grid_pts = fixed_vol.index_to_lps(np.array(
        [[a, b, c] for a in np.linspace(0, fixed_vol.size_xyz[0] - 1, 6)
         for b in np.linspace(0, fixed_vol.size_xyz[1] - 1, 6)
         for c in np.linspace(0, fixed_vol.size_xyz[2] - 1, 6)]))
    extra = np.linalg.norm(map_points(composite, grid_pts)
                           - map_points(rigid_res.rigid_transform, grid_pts), axis=1)
    notes.append(f"B-spline {mesh} mesh ({spacing_mm:g} mm): adds {extra.mean():.2f} mm "
                 f"mean, {extra.max():.2f} mm max displacement over the region")
    return RegistrationResult(
        transform=composite, method="deformable", metric_name=rigid_res.metric_name,
        metric_value=_comparable_metric(fixed, moving, composite, fixed_mask),
        initial_metric_value=rigid_res.metric_value,
        iterations=rigid_res.iterations + iters[0],
        stop_condition=reg.GetOptimizerStopConditionDescription(),
        rigid_transform=rigid_res.rigid_transform, roi_lps_mm=rigid_res.roi_lps_mm,
        notes=notes)


def resample_to_planning(followup_image: Volume, planning_grid: Volume,
                         transform: sitk.Transform, interpolation: str = "linear",
                         default_value: float = -1024.0) -> Volume:
    """A follow-up image (or mask, interpolation "nearest") on a planning grid."""
    interp = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear}[interpolation]
    out = sitk.Resample(followup_image.to_sitk(), planning_grid.to_sitk(), transform, interp,
                        float(default_value), followup_image.to_sitk().GetPixelID())
    return Volume.from_sitk(out, dict(followup_image.metadata))
