"""Live safety checks of a plan: needle paths vs risk structures, skin/air, depth, IRE
array geometry, thermal heat sink. LPS mm throughout.

Each check returns :class:`Finding` objects (severity "error" | "warning" | "info", a
code, a plain message naming the structure and the distance in mm, the structure key,
the distance in mm and the 0-based indices of the needles concerned; messages name
needles 1-based or by their name).

Speed: a :class:`SafetyChecker` computes one signed distance map per structure (exact
Euclidean distance transforms with the voxel spacing, ITK SignedMaurerDistanceMap,
cropped to the structure's box + a pad) the first time it is needed; afterwards a check
only samples these maps along the paths (trilinear, 1 mm steps refined to 0.1 mm
around the closest point), so
re-checking a plan after a drag costs milliseconds (bench/bench_checks.py).

Thresholds (all in :class:`SafetySettings`, user-adjustable). Where no published figure
exists the value is an IRPlan default and says so:

- path clearance to vessels / bile ducts / other risk organs: 5 mm (IRPlan default; no
  published minimum distance exists). By vessel calibre: >= 5 mm vessels 5 mm, 3-5 mm
  vessels 3 mm, < 3 mm vessels 2 mm (IRPlan defaults; the 3 and 5 mm calibre classes
  are where heat sink starts and becomes constant in pig RFA, AJR 2002 — CLINICAL.md).
  Heart 10 mm, bone 2 mm (IRPlan defaults). A path *crossing* a risk structure is an
  error. For IRE, proximity to vessels and bile ducts is "info" only: IRE spares the
  extracellular matrix of vessels and ducts and is indicated < 1 cm from them
  (CLINICAL.md); crossing them is still an error.
- IRE: electrodes parallel within 10 deg, pair spacing 10-25 mm, no two electrodes
  closer than 5 mm anywhere, tips within 5 mm of one depth (issue 5 defaults; the
  protocol in CLINICAL.md asks parallel electrodes 1.5-2.0 cm apart), 2-6 electrodes and
  <= 3000 V (CLINICAL.md: 2-6 electrodes, 1500-3000 V), and voltage per spacing
  1500-1700 V/cm (Kos et al. 2015, CLINICAL.md) as info.
- path through air: HU < -500 inside the body over >= 2 mm (IRPlan default; -500 HU
  separates aerated lung / gas from soft tissue on CT).
- entry more than 10 mm outside the skin (IRPlan default).
- thermal heat sink: a vessel >= 3 mm within 10 mm of the predicted zone (pig RFA: 73 %
  of veins > 3 mm showed heat sink, none < 3 mm, AJR 2002; 10 mm = the 1 cm proximity
  that makes IRE the indicated technique, CLINICAL.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from irplan.planning.errors import InputError
from irplan.planning.needle_geometry import (
    angle_between_deg,
    exposure_segment,
    mean_axis,
    sample_segment,
    segment_segment_distance_mm,
)
from irplan.planning.plan import Needle, Plan
from irplan.planning.structures import classify_structure_name, structure_types
from irplan.planning.volume import Volume

SEVERITIES = ("error", "warning", "info")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}

VESSEL_KEYS = ("portal_vein", "hepatic_vein", "artery")
DUCT_KEYS = ("bile_duct",)
TARGET_TYPES = ("tumor", "liver", "ablation_zone")
BODY_KEYS = ("body", "skin")
# Known risk structures beyond the standard types (key -> display name).
EXTRA_RISK_NAMES = {"gallbladder": "Gallbladder", "bowel": "Bowel", "colon": "Colon",
                    "stomach": "Stomach", "duodenum": "Duodenum", "heart": "Heart",
                    "pleura": "Pleura", "ribs": "Ribs", "kidney": "Kidney",
                    "diaphragm": "Diaphragm", "pericardium": "Pericardium"}



SPACING_TOL_MM = 1e-3   # spacing limits are compared with this tolerance (mm)

@dataclass
class Finding:
    """One result of a check. ``distance_mm``: clearance from the needle surface (or the
    zone) to the structure; negative = inside it. ``needles``: 0-based indices."""

    severity: str
    code: str
    message: str
    structure: str | None = None
    distance_mm: float | None = None
    needles: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["distance_mm"] is not None:
            d["distance_mm"] = round(float(d["distance_mm"]), 2)
        return d


@dataclass
class SafetySettings:
    """Thresholds (mm, deg, V, HU); see the module doc for their sources."""

    clearance_mm: dict[str, float] = field(default_factory=lambda: {
        "portal_vein": 5.0, "hepatic_vein": 5.0, "artery": 5.0, "bile_duct": 5.0,
        "gallbladder": 5.0, "bowel": 5.0, "colon": 5.0, "stomach": 5.0, "duodenum": 5.0,
        "lung": 5.0, "pleura": 5.0, "heart": 10.0, "pericardium": 10.0, "bone": 2.0,
        "ribs": 2.0, "kidney": 5.0, "diaphragm": 3.0})
    default_clearance_mm: float = 5.0
    # (minimum vessel calibre mm, clearance mm), largest calibre first
    calibre_clearance_mm: tuple[tuple[float, float], ...] = ((5.0, 5.0), (3.0, 3.0),
                                                            (0.0, 2.0))
    entry_outside_skin_mm: float = 10.0
    air_hu: float = -500.0
    min_air_run_mm: float = 2.0
    ire_max_angle_deg: float = 10.0
    ire_min_spacing_mm: float = 10.0
    ire_max_spacing_mm: float = 25.0
    ire_min_distance_mm: float = 5.0
    ire_tip_depth_tol_mm: float = 5.0
    ire_max_electrodes: int = 6
    ire_max_voltage_v: float = 3000.0
    ire_v_per_cm_range: tuple[float, float] = (1500.0, 1700.0)
    heat_sink_calibre_mm: float = 3.0
    heat_sink_distance_mm: float = 10.0
    step_mm: float = 0.5        # CT/body sampling along the path (air, skin)
    map_step_mm: float = 1.0    # distance-map sampling; the minimum is refined to 0.1 mm
    pad_mm: float = 25.0  # distances beyond this are reported as ">= 25 mm" (not needed)


def structure_display_name(key: str) -> str:
    types = structure_types()
    if key in types:
        return types[key].name
    if key in EXTRA_RISK_NAMES:
        return EXTRA_RISK_NAMES[key]
    return key.replace("_", " ")


def structure_role(key: str) -> str:
    """"target" (tumour/liver/zone, not a risk), "body", "vessel", "duct", "risk"
    (known risk organ) or "unknown" (free name: treated as a risk structure)."""
    k = key.lower()
    if k in BODY_KEYS:
        return "body"
    if k in VESSEL_KEYS:
        return "vessel"
    if k in DUCT_KEYS:
        return "duct"
    if k in ("bone", "lung") or k in EXTRA_RISK_NAMES:
        return "risk"
    kind = classify_structure_name(k)
    if kind in TARGET_TYPES:
        return "target"
    if kind in VESSEL_KEYS:
        return "vessel"
    if kind in DUCT_KEYS:
        return "duct"
    if kind in ("bone", "lung"):
        return "risk"
    return "unknown"


def needle_label(plan: Plan, i: int) -> str:
    n = plan.needles[i]
    return f"needle {i + 1}" + (f" ({n.name})" if n.name else "")


# ----------------------------------------------------------------------------- fields
def _crop_box(mask: np.ndarray, pad_vox: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(lo, hi) k, j, i index box of the non-zero voxels grown by ``pad_vox`` (clipped)."""
    nz = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))
          for ax in range(3)]
    if any(len(v) == 0 for v in nz):
        return None
    lo = np.maximum(np.array([v[0] for v in nz]) - pad_vox, 0)
    hi = np.minimum(np.array([v[-1] for v in nz]) + pad_vox + 1, mask.shape)
    return lo, hi


def calibre_map_mm(mask: Volume) -> Volume:
    """Local vessel diameter (mm) on the mask's grid (0 outside): centreline calibre from
    :func:`irplan.planning.vessel_calibre.vessel_calibre` (within 0.6 mm on test tubes)."""
    from irplan.planning.vessel_calibre import vessel_calibre

    return vessel_calibre(mask).diameter_mm


def edt_outside_mm(inside: np.ndarray, spacing_kji: np.ndarray) -> np.ndarray:
    """Distance (mm) from every voxel centre outside ``inside`` to the nearest inside voxel
    centre (0 inside), like ``scipy.ndimage.distance_transform_edt(~inside, sampling)``
    but computed with ITK's multi-threaded SignedMaurerDistanceMap (3-5x faster)."""
    if not inside.any():
        return np.full(inside.shape, np.inf, np.float32)
    img = sitk.GetImageFromArray(inside.astype(np.uint8))
    img.SetSpacing(tuple(float(v) for v in spacing_kji[::-1]))
    sd = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
        img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True))
    return np.maximum(sd, 0.0).astype(np.float32)


class DistanceField:
    """Signed distance (mm) to a structure's surface, negative inside, on a crop of its
    grid (box + pad). Sampling inside the mask's grid but outside the crop returns
    ``pad_mm`` (a lower bound); outside the mask's grid NaN (unknown).

    The surface is the mask's voxel faces: voxel-centre distances (exact Euclidean
    distance transforms, both sides) minus half a voxel.
    ``calibre_mm`` (a diameter map on the mask's grid) enables :meth:`calibre_at`.
    """

    def __init__(self, mask: Volume, pad_mm: float = 40.0,
                 calibre_mm: Volume | None = None) -> None:
        inside_full = mask.array != 0
        self.pad_mm = float(pad_mm)
        self.calibre: np.ndarray | None = None
        self.grid = mask
        pad_vox = np.ceil(pad_mm / mask.spacing_mm[::-1]).astype(int) + 1
        box = _crop_box(inside_full, pad_vox)
        self.empty = box is None
        if box is None:
            self.volume = mask
            self.sd = np.zeros((1, 1, 1), np.float32)
            return
        lo, hi = box
        crop = mask.crop_index(lo[::-1], hi[::-1])
        inside = crop.array != 0
        sampling = crop.spacing_mm[::-1]
        h = float(np.min(crop.spacing_mm))
        d_in = edt_outside_mm(~inside, sampling)
        d_out = edt_outside_mm(inside, sampling)
        if calibre_mm is not None:
            self.calibre = np.asarray(calibre_mm.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]],
                                      np.float32)
        self.inside = inside
        # voxel-centre distances moved to the voxel faces (half a voxel) = surface distance
        self.sd = np.where(inside, -(d_in - h / 2), d_out - h / 2).astype(np.float32)
        self.volume = crop

    def _coords(self, pts: np.ndarray) -> np.ndarray:
        return self.volume.lps_to_index(pts)[:, ::-1].T

    def sample(self, pts_lps_mm: np.ndarray) -> np.ndarray:
        """Signed distance (mm) at points (N, 3); ``pad_mm`` outside the crop."""
        pts = np.atleast_2d(pts_lps_mm)
        if self.empty:
            return np.full(len(pts), np.inf)
        vals = ndimage.map_coordinates(self.sd, self._coords(pts), order=1, mode="constant",
                                       cval=np.nan)
        out = np.isnan(vals)
        if out.any():
            in_grid = np.asarray(self.grid.contains_lps(pts[out]))
            vals[out] = np.where(in_grid, self.pad_mm, np.nan)
        return vals

    def calibre_at(self, p_lps_mm: np.ndarray, distance_mm: float = 0.0) -> float | None:
        """Calibre (mm) of the structure voxel nearest to a point that lies about
        ``distance_mm`` from it (None without a calibre map)."""
        if self.calibre is None or self.empty:
            return None
        sp = self.volume.spacing_mm[::-1]
        c = self.volume.lps_to_index(np.asarray(p_lps_mm, float))[::-1]
        for r in (max(distance_mm, 0.0) + 2 * float(sp.max()), 3 * (max(distance_mm, 0) + 5)):
            half = np.ceil(r / sp).astype(int)
            lo = np.maximum(np.floor(c).astype(int) - half, 0)
            hi = np.minimum(np.ceil(c).astype(int) + half + 1, self.inside.shape)
            if np.any(hi <= lo):
                continue
            kji = np.argwhere(self.inside[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]) + lo
            if len(kji):
                d2 = (((kji - c) * sp) ** 2).sum(axis=1)
                k = kji[int(np.argmin(d2))]
                return float(self.calibre[tuple(k)])
        return None

    def min_along(self, a: np.ndarray, b: np.ndarray, step_mm: float = 0.5,
                  samples: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[float, np.ndarray, float]:
        """Smallest signed distance on segment a-b: (distance, point, position from a).
        ``samples``: the segment's points and positions (:func:`sample_segment`) when the
        caller shares them between structures."""
        pts, s = samples if samples is not None else sample_segment(a, b, step_mm)
        vals = self.sample(pts)
        if np.all(np.isnan(vals)):
            return np.nan, pts[0], 0.0
        vals = np.where(np.isnan(vals), np.inf, vals)
        k = int(np.argmin(vals))
        length = float(s[-1])
        step = float(s[1] - s[0]) if len(s) > 1 else step_mm
        lo = max(0.0, s[k] - step)
        hi = min(length, s[k] + step)
        if hi > lo and length > 0:
            u = (b - a) / length
            ss = np.linspace(lo, hi, 21)
            fine = self.sample(a + ss[:, None] * u)
            fine = np.where(np.isnan(fine), np.inf, fine)
            kk = int(np.argmin(fine))
            if fine[kk] < vals[k]:
                return float(fine[kk]), a + ss[kk] * u, float(ss[kk])
        return float(vals[k]), pts[k], float(s[k])


class BodyField:
    """The body (skin) mask, sampled nearest-voxel (the skin = the mask's voxel faces).
    No distance map: the checks need only inside/outside along the path."""

    def __init__(self, mask: Volume) -> None:
        self.grid = mask
        self.empty = not bool(mask.array.any())

    def inside(self, pts_lps_mm: np.ndarray) -> np.ndarray:
        """1.0 inside, 0.0 outside, NaN outside the mask's grid, per point (N, 3)."""
        idx = self.grid.lps_to_index(np.atleast_2d(pts_lps_mm))
        v = ndimage.map_coordinates(self.grid.array, idx[:, ::-1].T, output=np.float64,
                                    order=0, mode="constant", cval=np.nan)
        return np.where(np.isnan(v), np.nan, (v > 0).astype(np.float64))

    def crossing_mm(self, a: np.ndarray, b: np.ndarray, s_out: float, s_in: float) -> float:
        """Position (mm from ``a`` towards ``b``) where the path enters the body, between an
        outside (``s_out``) and an inside (``s_in``) position, to 1/64 of their distance."""
        u = (b - a) / np.linalg.norm(b - a)
        ss = np.linspace(s_out, s_in, 65)
        ins = self.inside(a + ss[:, None] * u) == 1
        k = int(np.argmax(ins)) if ins.any() else len(ss) - 1
        return float(0.5 * (ss[max(k - 1, 0)] + ss[k]))


# ----------------------------------------------------------------------------- checker
class SafetyChecker:
    """Runs every check of a plan against fixed structures (and optionally the CT).

    ``structures``: key -> uint8 mask Volume (any grid; LPS). ``ct``: HU Volume for the
    air check. ``calibre_mm``: key -> vessel diameter map (mm) on the mask's grid; for
    vessel structures without one, :func:`calibre_map_mm` (centreline calibre) is used.
    Distance maps are built lazily, once per structure; :meth:`prepare` builds all.
    """

    def __init__(self, structures: dict[str, Volume], ct: Volume | None = None,
                 calibre_mm: dict[str, Volume] | None = None,
                 settings: SafetySettings | None = None) -> None:
        self.structures = dict(structures)
        self.ct = ct
        self.calibre_mm = dict(calibre_mm or {})
        self.settings = settings or SafetySettings()
        self._fields: dict[str, DistanceField | BodyField] = {}
        self._tumour_pts: np.ndarray | None = None
        self._advice: Any = None
        self._class_fields: dict[str, list[tuple[float, float, float, DistanceField]]] = {}
        self._target_pts: dict[tuple[str, ...], np.ndarray] = {}

    # -- caches
    def field(self, key: str) -> Any:
        f = self._fields.get(key)
        if f is None:
            mask = self.structures[key]
            role = structure_role(key)
            if role == "body":
                f = BodyField(mask)
            else:
                cal = self.calibre_mm.get(key)
                if cal is None and role == "vessel" and mask.array.any():
                    cal = self.calibre_mm[key] = calibre_map_mm(mask)
                f = DistanceField(mask, self.settings.pad_mm, cal)
            self._fields[key] = f
        return f

    def class_fields(self, key: str) -> list[tuple[float, float, float, DistanceField]]:
        """Vessels: one distance map per calibre class of ``calibre_clearance_mm``, as
        (min calibre, max calibre, clearance mm, field), so every part of the tree is held
        to its own threshold (a thick branch a little further away is not hidden by a
        thin one closer by) and moving a needle away never makes a finding worse."""
        cached = self._class_fields.get(key)
        if cached is not None:
            return cached
        f = self.field(key)
        out: list[tuple[float, float, float, DistanceField]] = []
        cal = self.calibre_mm.get(key)
        if not f.empty and cal is not None:
            mask = self.structures[key]
            upper = np.inf
            for min_cal, clr in self.settings.calibre_clearance_mm:   # largest first
                sel = (mask.array != 0) & (cal.array >= min_cal) & (cal.array < upper)
                if sel.any():
                    sub = mask.with_array(sel.astype(np.uint8))
                    out.append((min_cal, upper, clr,
                                DistanceField(sub, self.settings.pad_mm,
                                              cal.with_array(np.where(sel, cal.array, 0)))))
                upper = min_cal
        self._class_fields[key] = out
        return out

    def prepare(self) -> None:
        for key in self.structures:
            role = structure_role(key)
            if role != "target":
                self.field(key)
            if role == "vessel":
                self.class_fields(key)
        self.tumour_points()

    def tumour_points(self, targets: list[str] | None = None) -> np.ndarray | None:
        """LPS mm of all tumour voxel centres: the ``targets`` keys, or every key
        classified as tumour when empty."""
        if targets:
            cached = self._target_pts.get(tuple(targets))
            if cached is not None:
                return cached if len(cached) else None
            pts = []
            for key in targets:
                m = self.structures.get(key)
                if m is not None and (m.array != 0).any():
                    kji = np.argwhere(m.array != 0)
                    pts.append(m.index_to_lps(kji[:, ::-1].astype(np.float64)))
            arr = np.concatenate(pts) if pts else np.zeros((0, 3))
            self._target_pts[tuple(targets)] = arr
            return arr if len(arr) else None
        if self._tumour_pts is None:
            pts = []
            for key, m in self.structures.items():
                if classify_structure_name(key) == "tumor":
                    kji = np.argwhere(m.array != 0)
                    if len(kji):
                        pts.append(m.index_to_lps(kji[:, ::-1].astype(np.float64)))
            self._tumour_pts = np.concatenate(pts) if pts else np.zeros((0, 3))
        return self._tumour_pts if len(self._tumour_pts) else None

    # -- main entry
    def check(self, plan: Plan, zone: Volume | None = None) -> list[Finding]:
        """Every finding for ``plan`` (errors first). ``zone``: predicted ablation zone
        mask for the thermal heat-sink check."""
        out: list[Finding] = []
        for key in self.structures:
            role = structure_role(key)
            if role == "unknown":
                out.append(Finding("warning", "unknown_structure",
                                   f"structure '{key}' is not a standard type; it is treated "
                                   f"as a risk structure ({self.settings.default_clearance_mm:g}"
                                   " mm clearance)", key))
            elif role not in ("target",) and self.field(key).empty:
                out.append(Finding("info", "empty_structure",
                                   f"{structure_display_name(key)} mask is empty: not checked",
                                   key))
        for i in range(len(plan.needles)):
            out.extend(self.check_needle(plan, i))
        if plan.is_ire:
            out.extend(self.check_ire(plan))
        elif zone is not None:
            for f in self.check_heat_sink(zone):
                f.needles = list(range(len(plan.needles)))   # the zone is theirs
                out.append(f)
        out.extend(self.advice_findings(plan))
        out.extend(device_notes(plan))
        out.sort(key=lambda f: (_RANK[f.severity], f.needles[:1] or [-1], f.code))
        return out

    # -- modality advice (planning.advice), computed once per set of structures
    def advice(self) -> Any:
        """:class:`irplan.planning.advice.ModalityAdvice` for the tumour(s), or None when
        no tumour or no vessel/duct is segmented."""
        if self._advice is None:
            from irplan.planning.advice import modality_advice

            tumours = [m for k, m in self.structures.items()
                       if classify_structure_name(k) == "tumor" and (m.array != 0).any()]
            others = {k: m for k, m in self.structures.items()
                      if structure_role(k) in ("vessel", "duct")}
            if not tumours or not others:
                self._advice = False
            else:
                t = tumours[0]
                for m in tumours[1:]:
                    if m.same_geometry(t):
                        t = t.with_array(((t.array != 0) | (m.array != 0)).astype(np.uint8))
                self._advice = modality_advice(t, others, self.calibre_mm)
        return self._advice or None

    def advice_findings(self, plan: Plan) -> list[Finding]:
        a = self.advice()
        if a is None:
            return []
        near = [s for s in (a.nearest_vessel, a.nearest_duct) if s is not None]
        closest = min(near, key=lambda s: s.distance_mm) if near else None
        sev = "warning" if a.recommended == "IRE" and not plan.is_ire else "info"
        return [Finding(sev, "modality_advice", a.message,
                        closest.key if closest else None,
                        closest.distance_mm if closest else None, [])]

    # -- per needle
    def check_needle(self, plan: Plan, i: int) -> list[Finding]:
        from irplan.planning.devices import catalogue

        n = plan.needles[i]
        label = needle_label(plan, i)
        out: list[Finding] = []
        dev = catalogue().get(n.device)
        if dev is None:
            out.append(Finding("error", "device_unknown",
                               f"{label}: unknown device '{n.device}': radius, length and "
                               "exposure cannot be checked", None, None, [i]))
            radius = 0.0
        else:
            radius = dev.radius_mm
            if dev.modality != plan.modality:
                out.append(Finding("error", "device_modality",
                                   f"{label}: {dev.name} is a {dev.modality} device in a "
                                   f"{plan.modality} plan", None, None, [i]))
            if n.length_mm > dev.max_length_mm:
                out.append(Finding("error", "depth_exceeds_device",
                                   f"{label}: insertion depth {n.length_mm:.1f} mm exceeds the "
                                   f"{dev.max_length_mm:.0f} mm usable length of {dev.name}",
                                   None, n.length_mm - dev.max_length_mm, [i]))
            if plan.is_ire and dev.exposure_range_mm and n.exposure_mm is not None:
                lo, hi = dev.exposure_range_mm
                if not lo <= n.exposure_mm <= hi:
                    out.append(Finding("error", "exposure_range",
                                       f"{label}: exposure {n.exposure_mm:g} mm is outside "
                                       f"the device's {lo:g}-{hi:g} mm range", None, None, [i]))
        if plan.is_ire and n.exposure_mm is not None and n.exposure_mm > n.length_mm:
            out.append(Finding("error", "exposure_beyond_depth",
                               f"{label}: exposure {n.exposure_mm:g} mm is longer than the "
                               f"insertion depth {n.length_mm:.1f} mm (active part outside "
                               "the body)", None, None, [i]))
        samples = sample_segment(n.entry_lps_mm, n.tip_lps_mm, self.settings.map_step_mm)
        for key in self.structures:
            role = structure_role(key)
            if role in ("target", "body"):
                continue
            f = self.field(key)
            if f.empty:
                continue
            out.extend(self._path_vs_structure(plan, i, key, role, f, radius, samples))
        out.extend(self._skin_and_air(plan, i))
        ref = self.ct if self.ct is not None else next(iter(self.structures.values()), None)
        if ref is not None:
            pts, depth = sample_segment(n.entry_lps_mm, n.tip_lps_mm, 0.5)
            outside = ~np.asarray(ref.contains_lps(pts), bool)
            length = float(outside.sum()) * float(depth[1] - depth[0])
            if length > 1.0:
                where = "at the tip" if outside[-1] else "on the entry side"
                out.append(Finding("info", "path_outside_image",
                                   f"{label}: {length:.0f} mm of the path ({where}) lie outside "
                                   "the image and are not checked", None, length, [i]))
        return out

    def clearance_threshold_mm(self, key: str, calibre: float | None) -> float:
        s = self.settings
        if structure_role(key) == "vessel" and calibre is not None:
            for min_cal, clr in s.calibre_clearance_mm:
                if calibre >= min_cal:
                    return clr
        base = classify_structure_name(key)
        return s.clearance_mm.get(key, s.clearance_mm.get(base, s.default_clearance_mm))

    def path_clearance_mm(self, needle: Needle, key: str, radius_mm: float = 0.0
                          ) -> tuple[float, np.ndarray, float]:
        """(clearance from the needle surface to structure ``key`` in mm, closest point on
        the axis, its depth from the entry in mm). Negative clearance = crossing."""
        f = self.field(key)
        d, p, s = f.min_along(needle.entry_lps_mm, needle.tip_lps_mm, self.settings.map_step_mm)
        return d - radius_mm, p, s

    def _path_vs_structure(self, plan: Plan, i: int, key: str, role: str, f: DistanceField,
                           radius: float, samples: tuple[np.ndarray, np.ndarray] | None = None
                           ) -> list[Finding]:
        n = plan.needles[i]
        label = needle_label(plan, i)
        name = structure_display_name(key)
        d, p, s = f.min_along(n.entry_lps_mm, n.tip_lps_mm, self.settings.map_step_mm, samples)
        clearance = d - radius
        if not np.isfinite(clearance) or clearance >= f.pad_mm - 1e-6:
            return []
        calibre = f.calibre_at(p, d) if role == "vessel" else None
        thr = self.clearance_threshold_mm(key, calibre)
        if role == "vessel" and clearance >= 0 and self.class_fields(key):
            # each calibre class against its own threshold; report the most exceeded one
            worst = None
            for _lo, _hi, clr_mm, fc in self.class_fields(key):
                dc, pc, _sc = fc.min_along(n.entry_lps_mm, n.tip_lps_mm,
                                           self.settings.map_step_mm, samples)
                cc = dc - radius
                if np.isfinite(cc) and cc < clr_mm and (worst is None
                                                        or clr_mm - cc > worst[0]):
                    worst = (clr_mm - cc, cc, clr_mm, fc.calibre_at(pc, dc))
            if worst is not None:
                _, clearance, thr, calibre = worst
            else:
                thr = -np.inf   # no class within its threshold
        cal_txt = f" (calibre {calibre:.1f} mm)" if calibre is not None else ""
        if clearance < 0:
            return [Finding("error", "path_crosses",
                            f"{label} path crosses {name}{cal_txt} at {s:.0f} mm depth "
                            f"({-clearance:.1f} mm into it)", key, clearance, [i])]
        if clearance < thr:
            sev = "info" if plan.is_ire and role in ("vessel", "duct") else "warning"
            extra = " (IRE spares vessel and duct walls)" if sev == "info" else ""
            return [Finding(sev, "path_near",
                            f"{label} path passes {clearance:.1f} mm from {name}{cal_txt}; "
                            f"clearance threshold {thr:g} mm{extra}", key, clearance, [i])]
        return []

    def _skin_and_air(self, plan: Plan, i: int) -> list[Finding]:
        n = plan.needles[i]
        label = needle_label(plan, i)
        s = self.settings
        out: list[Finding] = []
        body_key = next((k for k in BODY_KEYS if k in self.structures), None)
        inside_mask: np.ndarray | None = None
        pts, depth = sample_segment(n.entry_lps_mm, n.tip_lps_mm, s.step_mm)
        if body_key is not None and not self.field(body_key).empty:
            bf: BodyField = self.field(body_key)
            ins = bf.inside(pts)
            if np.isnan(ins[0]):
                out.append(Finding("info", "entry_outside_image",
                                   f"{label}: entry point lies outside the body mask's image; "
                                   "skin distance not checked", body_key, None, [i]))
            elif ins[0] == 0:
                hit = np.nonzero(ins == 1)[0]
                if len(hit):
                    d_entry = bf.crossing_mm(n.entry_lps_mm, n.tip_lps_mm,
                                             float(depth[hit[0] - 1]), float(depth[hit[0]]))
                    if d_entry > s.entry_outside_skin_mm:
                        out.append(Finding("warning", "entry_outside_skin",
                                           f"{label}: entry point lies {d_entry:.1f} mm outside "
                                           "the skin (along the path)", body_key, d_entry, [i]))
            if ins[-1] == 0:
                hit = np.nonzero(ins == 1)[0]
                d_tip = float(depth[-1] - depth[hit[-1]]) if len(hit) else None
                txt = f" ({d_tip:.1f} mm beyond the body along the path)" if d_tip else ""
                out.append(Finding("error", "tip_outside_body",
                                   f"{label}: tip lies outside the body{txt}", body_key, d_tip,
                                   [i]))
            inside_mask = ins == 1
        if self.ct is not None:
            hu = ndimage.map_coordinates(self.ct.array, self.ct.lps_to_index(pts)[:, ::-1].T,
                                         output=np.float64, order=1, mode="constant",
                                         cval=np.nan)
            if inside_mask is None:  # no body mask: count from the first soft-tissue sample
                tissue = np.nonzero(hu > s.air_hu)[0]
                inside_mask = np.zeros(len(pts), bool)
                if len(tissue):
                    inside_mask[tissue[0]:] = True
            air = inside_mask & (hu < s.air_hu)
            run = _longest_run(air)
            if run is not None:
                a, b = run
                length = float(depth[b] - depth[a]) + s.step_mm
                if length >= s.min_air_run_mm:
                    out.append(Finding("error", "path_through_air",
                                       f"{label} path crosses air (HU < {s.air_hu:g}, lung or "
                                       f"gas) over {length:.1f} mm at {depth[a]:.0f}-"
                                       f"{depth[b]:.0f} mm depth", "air", length, [i]))
        return out

    # -- IRE array
    def check_ire(self, plan: Plan) -> list[Finding]:
        from irplan.planning.ire_array import electrode_pairs

        s = self.settings
        ns = plan.needles
        out: list[Finding] = []
        if not ns:   # a new, empty plan is not an error: nothing is planned yet
            out.append(Finding("info", "ire_count", "no electrodes placed yet (IRE needs "
                               "2 or more)", None, None, []))
            return out
        if len(ns) < 2:
            out.append(Finding("error", "ire_count",
                               f"IRE needs at least 2 electrodes; the plan has {len(ns)}",
                               None, None, list(range(len(ns)))))
            return out
        if len(ns) > s.ire_max_electrodes:
            out.append(Finding("warning", "ire_count",
                               f"{len(ns)} electrodes: the protocol uses 2-"
                               f"{s.ire_max_electrodes}", None, None, list(range(len(ns)))))
        for i in range(len(ns)):
            for j in range(i + 1, len(ns)):
                ang = angle_between_deg(ns[i].direction, ns[j].direction)
                if ang > s.ire_max_angle_deg:
                    out.append(Finding("warning", "ire_not_parallel",
                                       f"{needle_label(plan, i)} and {needle_label(plan, j)} are "
                                       f"{ang:.1f} deg from parallel (limit "
                                       f"{s.ire_max_angle_deg:g} deg)", None, None, [i, j]))
                dmin = segment_segment_distance_mm(ns[i].entry_lps_mm, ns[i].tip_lps_mm,
                                                   ns[j].entry_lps_mm, ns[j].tip_lps_mm)
                if dmin < s.ire_min_distance_mm:
                    out.append(Finding("error", "ire_too_close",
                                       f"{needle_label(plan, i)} and {needle_label(plan, j)} come "
                                       f"{dmin:.1f} mm close (minimum {s.ire_min_distance_mm:g}"
                                       " mm)", None, dmin, [i, j]))
        for pair in electrode_pairs(ns):
            # 1 um tolerance: electrodes placed exactly 10 mm apart come out 9.999999999 mm
            if not (s.ire_min_spacing_mm - SPACING_TOL_MM <= pair.spacing_mm
                    <= s.ire_max_spacing_mm + SPACING_TOL_MM):
                out.append(Finding("warning", "ire_spacing",
                                   f"{needle_label(plan, pair.i)} - {needle_label(plan, pair.j)} "
                                   f"spacing {pair.spacing_mm:.1f} mm is outside "
                                   f"{s.ire_min_spacing_mm:g}-{s.ire_max_spacing_mm:g} mm",
                                   None, pair.spacing_mm, [pair.i, pair.j]))
            v = plan.ire.voltage_v
            if v is not None and pair.spacing_mm > 0:
                vpcm = v / (pair.spacing_mm / 10.0)
                lo, hi = s.ire_v_per_cm_range
                if not lo <= vpcm <= hi:
                    out.append(Finding("info", "ire_voltage_per_cm",
                                       f"{needle_label(plan, pair.i)} - "
                                       f"{needle_label(plan, pair.j)}: {v:g} V over "
                                       f"{pair.spacing_mm:.1f} mm = {vpcm:.0f} V/cm (liver rule "
                                       f"{lo:g}-{hi:g} V/cm, Kos et al. 2015)", None,
                                       pair.spacing_mm, [pair.i, pair.j]))
        if plan.ire.voltage_v is not None and plan.ire.voltage_v > s.ire_max_voltage_v:
            out.append(Finding("error", "ire_voltage",
                               f"voltage {plan.ire.voltage_v:g} V exceeds "
                               f"{s.ire_max_voltage_v:g} V", None, None, []))
        axis = mean_axis(ns)
        tips = np.array([n.tip_lps_mm @ axis for n in ns])
        spread = float(tips.max() - tips.min())
        if spread > s.ire_tip_depth_tol_mm:
            deep, shallow = int(np.argmax(tips)), int(np.argmin(tips))
            out.append(Finding("warning", "ire_tip_depth",
                               f"electrode tips differ by {spread:.1f} mm in depth "
                               f"({needle_label(plan, shallow)} shallowest, "
                               f"{needle_label(plan, deep)} deepest; limit "
                               f"{s.ire_tip_depth_tol_mm:g} mm)", None, spread, [shallow, deep]))
        out.extend(self._exposure_coverage(plan, axis))
        return out

    def _exposure_coverage(self, plan: Plan, axis: np.ndarray) -> list[Finding]:
        pts = self.tumour_points(plan.targets)
        if pts is None:
            return []
        voxel = min(float(np.min(m.spacing_mm)) for m in self.structures.values())
        t = pts @ axis
        lo, hi = float(t.min()) - voxel / 2, float(t.max()) + voxel / 2
        out = []
        for i, n in enumerate(plan.needles):
            if n.exposure_mm is None:
                continue
            a, b = exposure_segment(n)
            ea, eb = sorted((float(a @ axis), float(b @ axis)))
            deep_gap = hi - eb
            shallow_gap = ea - lo
            gap = max(deep_gap, shallow_gap)
            if gap > 0.5:
                where = []
                if deep_gap > 0.5:
                    where.append(f"{deep_gap:.1f} mm at the deep edge")
                if shallow_gap > 0.5:
                    where.append(f"{shallow_gap:.1f} mm at the shallow edge")
                out.append(Finding("warning", "ire_exposure_coverage",
                                   f"{needle_label(plan, i)}: exposure {n.exposure_mm:g} mm does "
                                   f"not cover the tumour's {hi - lo:.1f} mm extent along the "
                                   f"needle axis (short by {' and '.join(where)})", "tumor",
                                   gap, [i]))
        return out

    # -- thermal
    def check_heat_sink(self, zone: Volume) -> list[Finding]:
        """Vessels of calibre >= 3 mm within 10 mm of the predicted zone (warning)."""
        return heat_sink_findings(zone, {k: v for k, v in self.structures.items()
                                         if structure_role(k) == "vessel"},
                                  self.calibre_mm, self.settings)


def heat_sink_findings(zone: Volume, vessels: dict[str, Volume],
                       calibre_mm: dict[str, Volume] | None = None,
                       settings: SafetySettings | None = None) -> list[Finding]:
    """Heat-sink warnings: for each vessel structure, the closest distance (mm) between
    the predicted ablation ``zone`` mask and vessel voxels of calibre >= 3 mm, reported
    when <= 10 mm (see module doc for sources). Masks may lie on different grids."""
    s = settings or SafetySettings()
    calibre_mm = calibre_mm if calibre_mm is not None else {}
    if not (zone.array != 0).any():
        raise InputError("heat-sink check: the predicted zone mask is empty")
    pad_mm = s.heat_sink_distance_mm + 5.0
    zf = DistanceField(pad_volume(zone, pad_mm), pad_mm=pad_mm)  # outside its grid = no zone
    out = []
    for key, mask in vessels.items():
        kji = np.argwhere(mask.array != 0)
        if len(kji) == 0:
            continue
        cal = calibre_mm.get(key)
        if cal is None:
            cal = calibre_map_mm(mask)
            calibre_mm[key] = cal
        cals = cal.array[tuple(kji.T)]
        big = cals >= s.heat_sink_calibre_mm
        if not big.any():
            continue
        pts = mask.index_to_lps(kji[big][:, ::-1].astype(np.float64))
        d = zf.sample(pts) - float(np.min(mask.spacing_mm)) / 2  # to the vessel wall
        if np.all(np.isnan(d)):        # vessel entirely outside the padded zone grid: far
            continue
        k = int(np.nanargmin(d))
        if d[k] <= s.heat_sink_distance_mm:
            name = structure_display_name(key)
            where = ("reaches into the predicted zone" if d[k] <= 0 else
                     f"lies {d[k]:.1f} mm from the predicted zone")
            out.append(Finding("warning", "heat_sink",
                               f"{name} (calibre {cals[big][k]:.1f} mm) {where}: heat sink "
                               "may leave viable tumour next to it", key, float(d[k]), []))
    return out


def device_notes(plan: Plan) -> list[Finding]:
    """One info finding per catalogue device of the plan whose figures are partly
    user-supplied (no public source verified them): the user must check them."""
    from irplan.planning.devices import catalogue

    out = []
    cat = catalogue()
    for dev_id in dict.fromkeys(n.device for n in plan.needles):
        dev = cat.get(dev_id)
        if dev is not None and dev.unverified:
            idx = [i for i, n in enumerate(plan.needles) if n.device == dev_id]
            out.append(Finding("info", "device_unverified",
                               f"{dev.name}: some figures (lengths, exposure range) are "
                               "user-supplied, not verified against the manufacturer's IFU; "
                               "check them against your device", None, None, idx))
    return out


def pad_volume(vol: Volume, pad_mm: float, value: int = 0) -> Volume:
    """``vol`` grown by at least ``pad_mm`` on every side (filled with ``value``), same
    voxel geometry (origin moved along the grid axes)."""
    p = np.ceil(pad_mm / vol.spacing_mm).astype(int)          # i, j, k
    arr = np.pad(vol.array, [(p[2], p[2]), (p[1], p[1]), (p[0], p[0])], constant_values=value)
    return Volume(arr, vol.index_to_lps(-p.astype(np.float64)), vol.spacing_mm.copy(),
                  vol.direction.copy(), dict(vol.metadata))


def _longest_run(flags: np.ndarray) -> tuple[int, int] | None:
    """(first, last) index of the longest run of True, or None."""
    if not flags.any():
        return None
    idx = np.nonzero(flags)[0]
    breaks = np.nonzero(np.diff(idx) > 1)[0]
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k])


def check_plan(plan: Plan, structures: dict[str, Volume], ct: Volume | None = None,
               zone: Volume | None = None, calibre_mm: dict[str, Volume] | None = None,
               settings: SafetySettings | None = None) -> list[Finding]:
    """One-shot convenience: all findings for ``plan`` (see :class:`SafetyChecker`)."""
    return SafetyChecker(structures, ct, calibre_mm, settings).check(plan, zone)
