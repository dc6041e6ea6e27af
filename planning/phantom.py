"""Synthetic abdominal CT phantoms with exact ground truth (pure numpy/scipy, no file IO).

Every structure is defined analytically in patient space (DICOM LPS, mm: +x = patient
left, +y = posterior, +z = superior) and sampled on any grid (a :class:`Volume` template),
so the same anatomy appears on axial, oblique and flipped grids. Three scans of one
patient are made:

* planning portal-venous ceCT (:func:`make_planning`),
* intra-procedural CT with four parallel IRE electrodes in place (:func:`make_intraop`;
  :func:`make_planning_and_intraop` makes both from one anatomy pass),
* 1-month follow-up ceCT (:func:`make_followup`): the same anatomy moved by a known rigid
  transform plus a smooth Gaussian displacement bump, with a non-enhancing ablation zone.

The ground truth is a JSON-ready dict (:func:`make_truth`); the exact mapping between the
planning and follow-up frames is :func:`followup_from_planning` and its inverse
:func:`planning_from_followup`. True minimal ablative margin (MAM) and tumour coverage are
computed analytically (sphere tumour, ellipsoid zone; see :func:`minimal_margin_mm`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from irplan.planning.errors import InputError
from irplan.planning.phantom_version import PHANTOM_VERSION  # noqa: F401 - re-exported
from irplan.planning.volume import Volume

SCENARIOS = ("margin_ok", "margin_at_risk", "incomplete")
VARIANTS = ("axial", "oblique", "flipped")
MASK_KEYS = ("tumor", "liver", "portal_vein", "hepatic_vein", "bone", "lung", "body")
DEFAULT_SIZE = (256, 256, 128)
DEFAULT_SPACING_MM = (1.5, 1.5, 2.0)

# CT numbers (HU) of the phantom. Design values inside the typical ranges of the Hounsfield
# scale (Kalender WA, "Computed Tomography", 3rd ed., 2011, table of typical CT values) and
# of portal-venous-phase enhancement (Bae KT, Radiology 2010;256:32-61: liver ~100-110 HU,
# portal/hepatic veins ~150-200 HU). Tumour, zone and metal values follow the IRPlan brief
# (issue 2): hypodense tumour ~40 HU, non-enhancing ablation zone ~30 HU, metal ~3000 HU.
HU: dict[str, float] = {
    "air": -1000.0,
    "lung": -850.0,
    "fat": -100.0,
    "visceral_fat": -80.0,
    "muscle": 50.0,
    "soft_tissue": 35.0,
    "liver": 100.0,
    "vessel": 180.0,
    "ivc": 160.0,
    "aorta": 170.0,
    "heart": 150.0,
    "spleen": 115.0,
    "kidney": 160.0,
    "bowel_wall": 45.0,
    "fluid": 10.0,
    "gallbladder": 8.0,
    "tumor": 40.0,
    "ablation_zone": 30.0,
    "bone": 700.0,
    "marrow": 250.0,
    "disc": 90.0,
    "csf": 15.0,
    "metal": 3000.0,
}
NOISE_SD_HU = 10.0        # typical abdominal CT image noise at standard dose (design value)
BLUR_SIGMA_MM = 0.6       # scanner point-spread (partial volume) applied before noise
NEEDLE_RADIUS_MM = 0.535  # 19 G electrode outer diameter 1.07 mm (Stubs' gauge table)
NEEDLE_DRAW_RADIUS_MM = 1.25  # drawn thicker: metal blooms on CT and a sub-voxel needle stays visible

# Body wall, thorax and organs (LPS mm). Ellipses are (centre x, centre y, semi-x, semi-y).
_BODY = (0.0, 5.0, 160.0, 115.0)
_FAT_MM = 15.0
_MUSCLE_MM = 10.0
_CAVITY = (0.0, 5.0, 160.0 - 25.0, 115.0 - 25.0)
_RIB_ELLIPSE = (0.0, 5.0, 140.0, 95.0)
_RIB_RADIUS_MM = 5.0
# posterior height of each rib (mm) and how far round (deg from the posterior midline) it runs
_RIBS = ((-30.0, 100.0), (-2.0, 112.0), (26.0, 125.0), (54.0, 140.0), (82.0, 152.0),
         (110.0, 160.0), (138.0, 165.0), (166.0, 165.0))
_RIB_DROP_MM = 80.0  # ribs descend this much from the spine to the front (at 180 deg)


@dataclass
class PhantomScan:
    """One synthetic scan: HU volume (int16), masks (uint8 0/1 Volumes) on its grid."""

    ct: Volume
    masks: dict[str, Volume] = field(default_factory=dict)


# ----------------------------------------------------------------------------- geometry
def rotation_matrix_deg(rx_deg: float, ry_deg: float, rz_deg: float) -> np.ndarray:
    """R = Rz @ Ry @ Rx for rotations (degrees) about the LPS x, y, z axes."""
    ax, ay, az = np.radians([rx_deg, ry_deg, rz_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _axis_angle(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def phantom_grid(variant: str = "axial", size: tuple[int, int, int] | None = None,
                 spacing_mm: tuple[float, float, float] | float | None = None,
                 centre_lps_mm: tuple[float, float, float] = (0.0, 5.0, -1.0)) -> Volume:
    """An empty grid (uint8 zero Volume, no memory) centred on the phantom abdomen.

    ``variant``: "axial" (identity direction), "oblique" (rotated 20 deg about an oblique
    axis) or "flipped" (rows run posterior->anterior and slices superior->inferior:
    direction diag(1, -1, -1)). ``size`` (i, j, k) voxels, ``spacing_mm`` (i, j, k).
    """
    if variant not in VARIANTS:
        raise InputError(f"phantom variant '{variant}': use one of {', '.join(VARIANTS)}")
    size_ijk = np.asarray(size if size is not None else DEFAULT_SIZE, dtype=int).reshape(3)
    sp = np.broadcast_to(np.asarray(spacing_mm if spacing_mm is not None
                                    else DEFAULT_SPACING_MM, float), (3,)).copy()
    if np.any(size_ijk < 2) or np.any(sp <= 0):
        raise InputError(f"phantom grid: size {size_ijk.tolist()} / spacing {sp.tolist()} "
                         "must be >= 2 voxels and > 0 mm")
    if variant == "axial":
        d = np.eye(3)
    elif variant == "oblique":
        d = _axis_angle(np.array([1.0, 2.0, 1.5]), 20.0)
    else:
        d = np.diag([1.0, -1.0, -1.0])
    half = d @ (sp * (size_ijk - 1) / 2.0)
    origin = np.asarray(centre_lps_mm, float) - half
    arr = np.broadcast_to(np.uint8(0), tuple(size_ijk[::-1]))
    return Volume(arr, origin, sp, d, {"phantom_variant": variant})


def point_ellipsoid_distance_mm(point: np.ndarray, centre: np.ndarray, radii: np.ndarray,
                                axes: np.ndarray) -> float:
    """Unsigned distance (mm) from a point *inside* an ellipsoid to its surface.

    ``axes`` rows are the unit semi-axis directions. Exact up to 1e-10 mm (bisection on
    the Lagrange condition, D. Eberly, "Distance from a point to an ellipse, an ellipsoid,
    or a hyperellipsoid", Geometric Tools 2013).
    """
    y = np.abs(np.asarray(axes, float) @ (np.asarray(point, float) - np.asarray(centre, float)))
    e = np.asarray(radii, float)
    order = np.argsort(-e)
    e, y = e[order], y[order]
    if np.sum((y / e) ** 2) > 1.0 + 1e-12:
        raise ValueError("point_ellipsoid_distance_mm: point lies outside the ellipsoid")
    # inside: the closest point x satisfies x_i = e_i^2 y_i / (t + e_i^2), t in (-e_min^2, 0]

    def f(t: float) -> float:
        return float(np.sum((e * y / (t + e * e)) ** 2) - 1.0)

    if y[-1] == 0.0:  # on the minor-axis plane: a 1e-9 mm nudge keeps f(lo+) = +inf
        y = y.copy()
        y[-1] = 1e-9
    return _bisect_distance(f, -e[-1] ** 2, 0.0, e, y)


def _bisect_distance(f: Callable[[float], float], lo: float, hi: float, e: np.ndarray,
                     y: np.ndarray) -> float:
    # f is decreasing on (lo, hi]; f(lo+) = +inf (when y_min > 0), f(0) <= 0 inside.
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
    t = 0.5 * (lo + hi)
    x = e * e * y / (t + e * e)
    return float(np.linalg.norm(x - y))


def minimal_margin_mm(tumor_center: np.ndarray, tumor_radius_mm: float, zone_center: np.ndarray,
                      zone_radii_mm: np.ndarray, zone_axes: np.ndarray) -> float:
    """Exact MAM (mm) of a spherical tumour in an ellipsoidal zone (planning space).

    MAM = min over the tumour surface of the signed distance to the zone surface (positive
    inside the zone). For a convex zone containing the tumour centre this equals
    dist(centre, zone surface) - radius (the signed distance is 1-Lipschitz and the
    bound is reached along the normal through the nearest surface point), negative when
    the tumour pokes out.
    """
    d = point_ellipsoid_distance_mm(tumor_center, zone_center, zone_radii_mm, zone_axes)
    return d - float(tumor_radius_mm)


def tumor_coverage_percent(tumor_center: np.ndarray, tumor_radius_mm: float,
                           zone_center: np.ndarray, zone_radii_mm: np.ndarray,
                           zone_axes: np.ndarray, n_polar: int = 256) -> float:
    """Percentage (0-100) of a spherical tumour's volume inside an ellipsoidal zone.

    Integrates min(t_exit, R)^3 / 3 over directions from the tumour centre (which must lie
    inside the convex zone): Gauss-Legendre in cos(theta) x uniform phi; n_polar=256 agrees
    with n_polar=1500 to 3e-5 percentage points.
    """
    c = np.asarray(zone_axes, float) @ (np.asarray(tumor_center, float) - np.asarray(zone_center))
    r = np.asarray(zone_radii_mm, float)
    if np.sum((c / r) ** 2) >= 1.0:
        raise ValueError("tumor_coverage_percent: tumour centre outside the zone")
    mu, w_mu = np.polynomial.legendre.leggauss(n_polar)
    n_phi = 2 * n_polar
    phi = (np.arange(n_phi) + 0.5) * 2 * np.pi / n_phi
    s = np.sqrt(1 - mu ** 2)
    dirs = np.stack([np.outer(s, np.cos(phi)), np.outer(s, np.sin(phi)),
                     np.outer(mu, np.ones(n_phi))], axis=-1)  # in zone-axis frame
    a = np.sum((dirs / r) ** 2, axis=-1)
    b = 2 * np.sum(dirs * c / r ** 2, axis=-1)
    cc = np.sum((c / r) ** 2) - 1.0
    t_exit = (-b + np.sqrt(b * b - 4 * a * cc)) / (2 * a)
    rr = np.minimum(t_exit, tumor_radius_mm)
    integral = np.sum(w_mu[:, None] * (rr ** 3 / 3.0)) * (2 * np.pi / n_phi)
    return float(min(100.0, 100.0 * integral / (4.0 / 3.0 * np.pi * tumor_radius_mm ** 3)))


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (mm) of point(s) p (..., 3) to segment a-b."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / float(ab @ ab), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


# ----------------------------------------------------------------------------- truth
def _unit(v: Any) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _vessel_tree() -> list[dict[str, Any]]:
    """Portal and hepatic venous trees plus IVC as capsules (start, end, radius), LPS mm."""
    pv = [  # (name, start, end, radius): main trunk 14 mm, branches down to 3 mm diameter
        ("main portal vein", (15, 22, -85), (-22, 12, -38), 7.0),
        ("right portal vein", (-22, 12, -38), (-58, 10, -36), 5.5),
        ("right anterior portal branch", (-58, 10, -36), (-88, -38, -28), 3.5),
        ("right posterior portal branch", (-58, 10, -36), (-108, 32, -50), 3.5),
        ("segment 6 branch", (-108, 32, -50), (-118, 10, -68), 1.5),
        ("segment 5 branch", (-88, -38, -28), (-90, -55, -52), 1.75),
        ("left portal vein", (-22, 12, -38), (8, -22, -22), 4.5),
        ("umbilical portion", (8, -22, -22), (30, -52, -10), 3.0),
        ("segment 3 branch", (30, -52, -10), (50, -55, -28), 1.5),
        ("segment 2 branch", (8, -22, -22), (42, -20, 0), 1.75),
    ]
    hv = [
        ("inferior vena cava", (-22, 40, -150), (-22, 40, 75), 11.0),
        ("right hepatic vein", (-26, 34, 40), (-118, 22, -42), 5.0),
        ("right hepatic vein tributary", (-118, 22, -42), (-122, -5, -70), 1.75),
        ("middle hepatic vein", (-18, 28, 42), (-38, -45, -22), 4.0),
        ("middle hepatic tributary", (-38, -45, -22), (-62, -62, -40), 1.5),
        ("left hepatic vein", (-12, 30, 44), (35, -28, 22), 3.5),
        ("left hepatic tributary", (35, -28, 22), (60, -40, 5), 1.5),
    ]
    out = []
    for typ, rows in (("portal_vein", pv), ("hepatic_vein", hv)):
        for name, a, b, r in rows:
            out.append({"type": typ, "name": name, "start_lps_mm": [float(x) for x in a],
                        "end_lps_mm": [float(x) for x in b], "radius_mm": float(r)})
    return out


def _vessel_surface_distance(p: np.ndarray, vessels: list[dict[str, Any]]) -> tuple[float, str]:
    best, name = np.inf, ""
    for v in vessels:
        d = float(_segment_distance(p, np.asarray(v["start_lps_mm"]), np.asarray(v["end_lps_mm"])))
        d -= v["radius_mm"]
        if d < best:
            best, name = d, v["name"]
    return best, name


def followup_from_planning(points_lps_mm: np.ndarray, truth: dict[str, Any]) -> np.ndarray:
    """Exact map planning LPS mm -> follow-up LPS mm: y = R (x + u(x)) + t.

    u(x) = A exp(-|x - b|^2 / (2 sigma^2)) is the smooth displacement bump, R the rotation,
    t the translation, all in ``truth["followup_transform"]``. Points (3,) or (N, 3).
    """
    tf = truth["followup_transform"]
    p = np.asarray(points_lps_mm, dtype=np.float64)
    rot = np.asarray(tf["rotation_matrix"], float)
    return _affine3(p + _bump(p, tf), rot) + np.asarray(tf["translation_mm"], float)


def _affine3(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """m @ p for points p (..., 3), column by column (no BLAS threads: fast and exact)."""
    out = np.empty(np.shape(p), dtype=np.float64)
    for r in range(3):
        out[..., r] = m[r, 0] * p[..., 0] + m[r, 1] * p[..., 1] + m[r, 2] * p[..., 2]
    return out


def planning_from_followup(points_lps_mm: np.ndarray, truth: dict[str, Any],
                           tol_mm: float = 1e-9) -> np.ndarray:
    """Inverse of :func:`followup_from_planning` (fixed-point iteration, to ``tol_mm``).

    x = R^T (y - t) - u(x) converges because the bump's Jacobian norm is at most
    |A| / (sigma sqrt(e)) << 1. Points (3,) or (N, 3), LPS mm.
    """
    y = np.asarray(points_lps_mm, dtype=np.float64)
    cols = _inverse_cols(y[..., 0], y[..., 1], y[..., 2], truth, tol_mm)
    return np.stack(cols, axis=-1)


def _inverse_cols(y0: np.ndarray, y1: np.ndarray, y2: np.ndarray, truth: dict[str, Any],
                  tol_mm: float, dtype: Any = np.float64
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column form of :func:`planning_from_followup` (x, y, z arrays of any shape).

    ``dtype`` float32 (rendering: ~1e-5 mm at 200 mm) halves memory traffic."""
    tf = truth["followup_transform"]
    rot = np.asarray(tf["rotation_matrix"], float)
    t = np.asarray(tf["translation_mm"], float)
    d = tuple(np.asarray(v, dtype) - dtype(t[r]) for r, v in enumerate((y0, y1, y2)))
    rot_t = rot.astype(dtype)
    q = [rot_t[0, r] * d[0] + rot_t[1, r] * d[1] + rot_t[2, r] * d[2] for r in range(3)]  # R^T d
    bp = tf["bump"]
    c = np.asarray(bp["center_lps_mm"], dtype)
    amp = np.asarray(bp["amplitude_mm"], dtype)
    k = dtype(-1.0 / (2.0 * float(bp["sigma_mm"]) ** 2))
    x = [qq.copy() for qq in q]
    for _ in range(100):
        g = np.exp(k * ((x[0] - c[0]) ** 2 + (x[1] - c[1]) ** 2 + (x[2] - c[2]) ** 2))
        step = 0.0
        for r in range(3):
            x_new = q[r] - g * amp[r]
            step = max(step, float(np.max(np.abs(x_new - x[r]), initial=0.0)))
            x[r] = x_new
        if step < tol_mm:
            break
    return x[0], x[1], x[2]


def _bump(p: np.ndarray, tf: dict[str, Any]) -> np.ndarray:
    """Displacement u(p) (mm) of the Gaussian bump, p (3,) or (N, 3) planning LPS mm."""
    b = tf["bump"]
    c = np.asarray(b["center_lps_mm"], float)
    amp = np.asarray(b["amplitude_mm"], float)
    s = float(b["sigma_mm"])
    r2 = np.sum((p - c) ** 2, axis=-1)
    return np.exp(-r2 / (2 * s * s))[..., None] * amp


def make_truth(seed: int = 0, scenario: str = "margin_ok") -> dict[str, Any]:
    """The exact ground truth of phantom ``seed`` / ``scenario`` (JSON-ready dict, LPS mm)."""
    if scenario not in SCENARIOS:
        raise InputError(f"phantom scenario '{scenario}': use one of {', '.join(SCENARIOS)}")
    rng = np.random.default_rng([int(seed), 20260601])
    vessels = _vessel_tree()
    rhv = next(v for v in vessels if v["name"] == "right hepatic vein")
    a, b = np.asarray(rhv["start_lps_mm"]), np.asarray(rhv["end_lps_mm"])
    vdir = _unit(b - a)
    radius_t = float(rng.uniform(12.0, 13.0))
    gap_mm = float(rng.uniform(5.5, 7.5))  # tumour surface to vein wall (IRE indication)
    t_on = float(rng.uniform(0.50, 0.58))
    anterior = np.array([0.0, -1.0, -0.25])
    n = _unit(anterior - (anterior @ vdir) * vdir)
    centre_t = a + t_on * (b - a) + n * (radius_t + gap_mm + rhv["radius_mm"])
    near_mm, near_name = _vessel_surface_distance(centre_t, vessels)
    near_mm -= radius_t

    needles, ndir, u_perp, w_perp, spacing = _plan_needles(centre_t, radius_t, vessels, rng)

    # ablation zone (planning space): ellipsoid, long axis along the electrodes
    target = {"margin_ok": (6.0, 8.0), "margin_at_risk": (1.5, 3.5),
              "incomplete": (-4.0, -2.0)}[scenario]
    m_star = float(rng.uniform(*target))
    off = float(rng.uniform(0.8, 2.0))
    radii = np.array([radius_t + m_star + off + 9.0, radius_t + m_star + off + 3.5,
                      radius_t + m_star + off])
    axes = np.stack([ndir, u_perp, w_perp])
    zone_centre = centre_t - off * w_perp + float(rng.uniform(-1.5, 1.5)) * ndir
    mam = minimal_margin_mm(centre_t, radius_t, zone_centre, radii, axes)
    cov = tumor_coverage_percent(centre_t, radius_t, zone_centre, radii, axes)

    # follow-up motion: rotation about the LPS origin, translation, Gaussian bump far from
    # the tumour (left lobe)
    rot_deg = [float(rng.uniform(1.5, 3.0)) * s for s in (1, -1, 1)]
    trans = [float(rng.uniform(3, 5)), float(rng.uniform(-7, -5)), float(rng.uniform(8, 11))]
    bump_c = np.array([30.0, -35.0, 5.0]) + rng.uniform(-3, 3, 3)
    amp = _unit(rng.normal(size=3)) * 3.0
    tf = {
        "direction": "maps planning LPS mm -> follow-up LPS mm",
        "formula": "y = R @ (x + u(x)) + t,  u(x) = A * exp(-|x - b|^2 / (2 sigma^2))",
        "rotation_deg_xyz": rot_deg,
        "rotation_order": "R = Rz @ Ry @ Rx, about the LPS origin",
        "rotation_matrix": rotation_matrix_deg(*rot_deg).tolist(),
        "translation_mm": trans,
        "bump": {"center_lps_mm": bump_c.tolist(), "amplitude_mm": amp.tolist(),
                 "sigma_mm": 25.0},
        "inverse": "irplan.planning.phantom.planning_from_followup (fixed-point iteration)",
    }
    rigid = np.eye(4)
    rigid[:3, :3] = np.asarray(tf["rotation_matrix"])
    rigid[:3, 3] = trans
    tf["rigid_matrix_4x4"] = rigid.tolist()
    tf["rigid_note"] = ("the rigid part alone (bump left out): y = M @ (x, 1); the bump moves "
                        "the tumour by followup_bump_at_tumor_mm")
    bump_at_tumour = float(np.linalg.norm(_bump(centre_t, tf)))

    vol_t = 4.0 / 3.0 * np.pi * radius_t ** 3 / 1000.0
    truth: dict[str, Any] = {
        "seed": int(seed),
        "scenario": scenario,
        "frame": "DICOM patient LPS, mm (+x patient left, +y posterior, +z superior)",
        "tumor": {"shape": "sphere", "center_lps_mm": centre_t.tolist(),
                  "radii_mm": [radius_t] * 3, "diameter_mm": 2 * radius_t,
                  "volume_ml": vol_t},
        "vessels": vessels,
        "nearest_vessel": {"name": near_name, "distance_to_tumor_surface_mm": near_mm},
        "nearest_vessel_distance_mm": near_mm,
        "ablation_zone": {"shape": "ellipsoid", "space": "planning",
                          "center_lps_mm": zone_centre.tolist(), "radii_mm": radii.tolist(),
                          "axes": axes.tolist(),
                          "axes_note": "rows are the unit directions of radii_mm (LPS)",
                          "volume_ml": 4.0 / 3.0 * np.pi * float(np.prod(radii)) / 1000.0},
        "minimal_margin_mm": mam,
        "minimal_margin_definition": "min over tumour surface of signed distance to zone "
                                     "surface, planning space, negative = tumour outside",
        "tumor_coverage_percent": cov,
        "followup_transform": tf,
        "followup_bump_at_tumor_mm": bump_at_tumour,
        "needles": needles,
        "needle_spacing_mm": spacing,
        "ire": {"voltage_v": None,
                "pulses": 90, "pulse_width_us": 90.0,
                "source": "voltage per pair = 1500 V/cm x that pair's spacing, capped at "
                          "3000 V (Kos et al. 2015, CLINICAL.md); 90 pulses of 90 us "
                          "(CLINICAL.md, trial protocol)"},
        "hu": dict(HU),
        "hu_source": "Kalender, Computed Tomography 3rd ed. 2011 (typical CT numbers); "
                     "Bae, Radiology 2010;256:32-61 (portal venous enhancement); brief.",
        "noise_sd_hu": NOISE_SD_HU,
        "blur_sigma_mm": BLUR_SIGMA_MM,
        "needle_radius_mm": NEEDLE_RADIUS_MM,
        "mask_conventions": {
            "liver": "parenchyma envelope incl. tumour and intrahepatic vessels, excl. IVC",
            "hepatic_vein": "hepatic veins and the inferior vena cava",
            "portal_vein": "portal venous tree incl. the extrahepatic trunk",
            "bone": "ribs and spine", "lung": "aerated lung bases", "body": "inside the skin",
            "ablation_zone": "true zone (ellipsoid) incl. vessels it spares (IRE)",
        },
    }
    return truth


def _plan_needles(centre: np.ndarray, radius_t: float, vessels: list[dict[str, Any]],
                  rng: np.random.Generator) -> tuple[list[dict[str, Any]], np.ndarray,
                                                     np.ndarray, np.ndarray, float]:
    """Four parallel IRE electrodes around the tumour from the right antero-lateral skin.

    Searches a small fan of directions (deterministic order, preferred first) for one
    where every electrode path keeps >= 4 mm from rib surfaces, >= 3 mm from vessel walls
    and stays out of the lung.
    """
    # 15-16 mm: the tight end of the protocol's 1.5-2.0 cm (CLINICAL.md); with the static
    # field model (637 V/cm) a 4-electrode square wider than this leaves the tumour centre
    # below threshold (measured with planning/zone.py).
    spacing = float(rng.uniform(15.0, 16.0))
    # Active part spans the tumour + 5 mm margin along the axis (19 G electrode: 5-40 mm).
    va = np.array([v["start_lps_mm"] for v in vessels], float)
    vab = np.array([v["end_lps_mm"] for v in vessels], float) - va
    vr = np.array([v["radius_mm"] for v in vessels], float)

    def vessel_clearance(pts: np.ndarray) -> float:
        """Smallest distance (mm) of path points (N, 3) to any vessel wall."""
        rel = pts[:, None, :] - va[None, :, :]
        t = np.clip(np.sum(rel * vab, axis=-1) / np.sum(vab * vab, axis=-1), 0.0, 1.0)
        dist = np.linalg.norm(rel - t[..., None] * vab, axis=-1) - vr
        return float(dist.min())

    best = None
    # Preferred: tips 5 mm beyond the tumour; a shallower tip only when no safe window.
    for reach in (radius_t + 5.0, radius_t + 2.5, radius_t * 0.6):
        exposure = float(min(40.0, round(2.0 * reach, 1)))
        for az in (65, 60, 55, 70, 50, 30, 35, 40, 25, 45):
            for el in (10, 5, 15, 20, 0, 25, 30, 35, 40, 45, 50):
                a, e = np.radians(az), np.radians(el)
                # from entry towards tip: medial (+x), posterior (+y) for anterior entries
                d = _unit([np.cos(a) * np.cos(e), np.sin(a) * np.cos(e), np.sin(e)])
                for roll in (0.0, 22.5, 45.0, 67.5):
                    zref = np.array([0.0, 0.0, 1.0])
                    u = _unit(zref - (zref @ d) * d)
                    w = np.cross(d, u)
                    ru = _axis_angle(d, roll)
                    u, w = ru @ u, ru @ w
                    h = spacing / 2.0
                    offs = [(-h, -h), (-h, h), (h, h), (h, -h)]
                    tips = [centre + ou * u + ow * w + d * reach for ou, ow in offs]
                    ok = True
                    needles = []
                    for i, tip in enumerate(tips):
                        entry = _skin_entry(tip, d)
                        if entry is None:
                            ok = False
                            break
                        pts = entry + np.outer(np.linspace(0, 1, 400), tip - entry)
                        rib_clear = float(np.min(_rib_sdf(pts[:, 0], pts[:, 1], pts[:, 2])))
                        ves_clear = vessel_clearance(pts) if rib_clear >= 4.0 else -1.0
                        if rib_clear < 4.0 or ves_clear < 3.0 or \
                                bool(np.any(_lung(pts[:, 0], pts[:, 1], pts[:, 2]))):
                            ok = False
                            break
                        needles.append({"name": f"E{i + 1}", "device": "ire-19g-monopolar",
                                        "tip_lps_mm": tip.tolist(), "entry_lps_mm": entry.tolist(),
                                        "exposure_mm": exposure,
                                        "clearance_rib_mm": rib_clear,
                                        "clearance_vessel_mm": ves_clear})
                    if ok:
                        best = (needles, d, u, w)
                        break
                if best:
                    break
            if best:
                break
        if best:
            break
    if best is None:  # pragma: no cover - the fixed anatomy always has a window
        raise InputError("phantom: no safe electrode path found for this seed")
    needles, d, u, w = best
    return needles, d, u, w, spacing


def _skin_entry(tip: np.ndarray, d: np.ndarray) -> np.ndarray | None:
    """Where the line through ``tip`` along -d leaves the body ellipse (skin)."""
    cx, cy, ax, ay = _BODY
    px, py = tip[0] - cx, tip[1] - cy
    dx, dy = -d[0], -d[1]
    qa = (dx / ax) ** 2 + (dy / ay) ** 2
    qb = 2 * (px * dx / ax ** 2 + py * dy / ay ** 2)
    qc = (px / ax) ** 2 + (py / ay) ** 2 - 1
    disc = qb * qb - 4 * qa * qc
    if qa <= 0 or disc < 0:
        return None
    s = (-qb + np.sqrt(disc)) / (2 * qa)
    return tip - s * d


# ----------------------------------------------------------------------------- anatomy
def _ell2(x: np.ndarray, y: np.ndarray, e: tuple[float, float, float, float]) -> np.ndarray:
    return ((x - e[0]) / e[2]) ** 2 + ((y - e[1]) / e[3]) ** 2


def _ellipsoid(x: np.ndarray, y: np.ndarray, z: np.ndarray, c: tuple[float, ...],
               r: tuple[float, ...]) -> np.ndarray:
    return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0


def _dome_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Height (mm) of the diaphragm: two domes, right higher (liver)."""
    right = 62.0 - ((x + 60.0) ** 2 + 0.8 * (y - 5.0) ** 2) / 220.0
    left = 52.0 - ((x - 60.0) ** 2 + 0.8 * (y - 5.0) ** 2) / 220.0
    return np.maximum(right, left)


def _body(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return _ell2(x, y, _BODY) <= 1.0


def _inset(e: tuple[float, float, float, float], mm: float) -> tuple[float, float, float, float]:
    return (e[0], e[1], e[2] - mm, e[3] - mm)


def _cavity(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return _ell2(x, y, _CAVITY) <= 1.0


def _rib_sdf(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Approximate signed distance (mm) to the nearest rib surface (negative inside)."""
    cx, cy, a, b = _RIB_ELLIPSE
    xr, yr = (x - cx) / a, (y - cy) / b
    rn = np.sqrt(xr * xr + yr * yr) + 1e-9
    theta = np.arctan2(yr, xr)  # rib ellipse parameter angle
    ex, ey = a * np.cos(theta), b * np.sin(theta)
    radial = (rn - 1.0) * np.sqrt(ex * ex + ey * ey)
    alpha = np.degrees(np.abs(np.arctan2(xr, yr)))  # 0 at the spine, 180 at the front
    best = np.full(np.shape(x), np.inf)
    for z_post, alpha_max in _RIBS:
        zc = z_post - _RIB_DROP_MM * alpha / 180.0
        dz = z - zc
        # beyond the rib's ends, distance to its end cap
        da = np.clip(alpha - alpha_max, 0, None) + np.clip(12.0 - alpha, 0, None)
        along = np.radians(da) * np.sqrt(ex * ex + ey * ey)
        d = np.sqrt(radial * radial + dz * dz + along * along) - _RIB_RADIUS_MM
        best = np.minimum(best, d)
    return best


def _spine(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """(bone, disc, canal) masks of a simplified lumbar/thoracic spine."""
    body = (x ** 2 + (y - 58.0) ** 2) <= 21.0 ** 2
    level = np.mod(z + 200.0, 30.0)
    disc = body & (level >= 24.0)
    rr = x ** 2 + (y - 90.0) ** 2
    canal = rr <= 8.0 ** 2
    arch = (rr <= 15.0 ** 2) & ~canal & (y >= 80.0)
    pedicle = (np.abs(x) <= 14.0) & (np.abs(x) >= 8.0) & (y >= 72.0) & (y <= 90.0)
    spinous = (np.abs(x) <= 4.0) & (y >= 95.0) & (y <= 108.0)
    transverse = (np.abs(x) >= 10.0) & (np.abs(x) <= 42.0) & (np.abs(y - 80.0) <= 4.5) & \
        (level < 18.0)
    bone = (body & ~disc) | arch | pedicle | spinous | transverse
    return bone, disc, canal


def _heart(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return _ellipsoid(x, y, z, (12.0, -15.0, 122.0), (60.0, 48.0, 50.0))


def _lung(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    inner = _ell2(x, y, (0.0, 5.0, 131.0, 86.0)) <= 1.0
    mediastinum = (np.abs(x - 5.0) <= 28.0) & (y <= 80.0)
    return inner & (z >= _dome_z(x, y) + 3.0) & ~mediastinum & ~_heart(x, y, z) & \
        ~((x ** 2 + (y - 65.0) ** 2) <= 38.0 ** 2)


def _kidneys(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return _ellipsoid(x, y, z, (-72.0, 58.0, -95.0), (27.0, 21.0, 48.0)) | \
        _ellipsoid(x, y, z, (72.0, 58.0, -75.0), (27.0, 21.0, 48.0))


def _gallbladder(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return _ellipsoid(x, y, z, (-40.0, -52.0, -62.0), (14.0, 15.0, 30.0))


def _liver_envelope(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Liver (parenchyma with its tumour and intrahepatic vessels), LPS mm."""
    right = ((x + 62.0) / 78.0) ** 2 + ((y - 2.0) / 86.0) ** 2 + ((z + 5.0) / 78.0) ** 2 <= 1.0
    left = ((x - 12.0) / 58.0) ** 2 + ((y + 38.0) / 38.0) ** 2 + ((z - 12.0) / 40.0) ** 2 <= 1.0
    env = (right | left) & (_ell2(x, y, (0.0, 5.0, 133.0, 88.0)) <= 1.0)
    env &= z <= _dome_z(x, y) - 4.0
    env &= ~_kidneys(x, y, z) & ~_gallbladder(x, y, z)
    env &= ~((x ** 2 + (y - 58.0) ** 2) <= 30.0 ** 2)  # spine and crus
    env &= ~(((x + 22.0) ** 2 + (y - 40.0) ** 2) <= 11.0 ** 2)  # IVC
    env &= ~(((x - 14.0) ** 2 + (y - 28.0) ** 2) <= 14.0 ** 2)  # aorta and crus
    return env


def _stomach(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                     np.ndarray]:
    """(wall, fluid, air) of the stomach, left upper quadrant."""
    outer = _ellipsoid(x, y, z, (62.0, -28.0, 5.0), (38.0, 30.0, 42.0))
    inner = _ellipsoid(x, y, z, (62.0, -28.0, 5.0), (33.0, 25.0, 37.0))
    air = inner & (y <= -38.0)
    return outer & ~inner, inner & ~air, air


def _spleen(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return _ellipsoid(x, y, z, (95.0, 45.0, 10.0), (24.0, 42.0, 48.0))


def _colon_segments() -> list[tuple[np.ndarray, np.ndarray, float]]:
    return [(np.array([-105.0, -20.0, -160.0]), np.array([-100.0, -25.0, -95.0]), 22.0),
            (np.array([-100.0, -25.0, -95.0]), np.array([-20.0, -60.0, -100.0]), 20.0),
            (np.array([-20.0, -60.0, -100.0]), np.array([80.0, -50.0, -80.0]), 20.0),
            (np.array([80.0, -50.0, -80.0]), np.array([105.0, 0.0, -60.0]), 20.0),
            (np.array([105.0, 0.0, -60.0]), np.array([108.0, 10.0, -160.0]), 20.0)]


def _small_bowel_segments() -> list[tuple[np.ndarray, np.ndarray, float, bool]]:
    """Fluid- or gas-filled small bowel loops (start, end, radius, gas) in the lower belly.

    Short tubes at fixed pseudo-random places (the same anatomy for every seed)."""
    rng = np.random.default_rng(4242)
    out = []
    for n in range(34):
        c = rng.uniform([-75.0, -75.0, -135.0], [85.0, 15.0, -62.0])
        d = _unit(rng.normal(size=3) * np.array([1.0, 0.6, 0.8]))
        half = float(rng.uniform(12.0, 25.0))
        out.append((c - half * d, c + half * d, float(rng.uniform(9.0, 12.0)), n % 6 == 2))
    return out


# ----------------------------------------------------------------------------- renderer
def _seg_dist2(x: np.ndarray, y: np.ndarray, z: np.ndarray, a: np.ndarray,
               b: np.ndarray) -> np.ndarray:
    """Squared distance (mm^2) of points (x, y, z arrays) to segment a-b (float32 math)."""
    a = np.asarray(a, np.float32)
    ab = np.asarray(b, np.float32) - a
    dx, dy, dz = x - a[0], y - a[1], z - a[2]
    t = (dx * ab[0] + dy * ab[1] + dz * ab[2]) / np.float32(ab @ ab)
    np.clip(t, 0.0, 1.0, out=t)
    dx -= t * ab[0]
    dy -= t * ab[1]
    dz -= t * ab[2]
    return dx * dx + dy * dy + dz * dz


class _Renderer:
    """Paints analytic structures onto a grid, slab by slab.

    For every slab of slices the planning-space coordinates of all voxels are
    computed once (through ``inverse`` for the follow-up frame); each painting step then
    works on the part of the slab inside its own box.
    """

    def __init__(self, grid: Volume, inverse: Callable[..., tuple[np.ndarray, ...]] | None = None,
                 forward: Callable[[np.ndarray], np.ndarray] | None = None,
                 pad_mm: float = 0.0) -> None:
        self.grid = grid
        self.inverse = inverse
        self.forward = forward
        self.pad_mm = pad_mm
        self.shape = grid.array.shape
        self.m = (grid.direction * grid.spacing_mm[None, :]).astype(np.float64)

    def index_box(self, lo_lps: np.ndarray, hi_lps: np.ndarray) -> tuple[slice, slice, slice]:
        """Index slices [k, j, i] of the voxels whose planning points may fall in the box."""
        lo = np.maximum(np.asarray(lo_lps, float), -_BIG)
        hi = np.minimum(np.asarray(hi_lps, float), _BIG)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])])
        if self.forward is not None:
            corners = self.forward(corners)
        idx = self.grid.lps_to_index(corners)
        pad = self.pad_mm / self.grid.spacing_mm + 1.0
        size = np.asarray(self.grid.size_xyz)
        lo_i = np.clip(np.floor(idx.min(axis=0) - pad), 0, size).astype(int)
        hi_i = np.clip(np.ceil(idx.max(axis=0) + pad) + 1, 0, size).astype(int)
        return (slice(lo_i[2], hi_i[2]), slice(lo_i[1], hi_i[1]), slice(lo_i[0], hi_i[0]))

    def coords(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Planning-space x, y, z (float32 arrays, block shape) of a block's voxels."""
        ks, js, is_ = (np.arange(s.start, s.stop, dtype=np.float64) for s in box)
        kk, jj, ii = ks[:, None, None], js[None, :, None], is_[None, None, :]
        o, m = self.grid.origin_lps_mm, self.m
        shp = (len(ks), len(js), len(is_))
        xyz = [np.broadcast_to(o[r] + m[r, 0] * ii + m[r, 1] * jj + m[r, 2] * kk, shp)
               for r in range(3)]
        if self.inverse is None:
            return tuple(c.astype(np.float32) for c in xyz)  # type: ignore[return-value]
        q = self.inverse(*xyz)
        return (q[0].astype(np.float32), q[1].astype(np.float32), q[2].astype(np.float32))

    def run(self, steps: list[tuple[tuple[np.ndarray, np.ndarray], Callable[..., None]]],
            slab_voxels: int = 1 << 20) -> None:
        """Call every step fn(slices, x, y, z) on each slab, in order (painter's algorithm).

        Slabs hold about ``slab_voxels`` voxels (cache friendly, bounded memory)."""
        boxes = [self.index_box(*b) for b, _ in steps]
        nk, nj, ni = self.shape
        slab = max(1, slab_voxels // (nj * ni))
        for k0 in range(0, nk, slab):
            k1 = min(k0 + slab, nk)
            slab_box = (slice(k0, k1), slice(0, nj), slice(0, ni))
            x, y, z = self.coords(slab_box)
            for box, (_, fn) in zip(boxes, steps):
                ka, kb = max(box[0].start, k0), min(box[0].stop, k1)
                if kb <= ka or box[1].stop <= box[1].start or box[2].stop <= box[2].start:
                    continue
                local = (slice(ka - k0, kb - k0), box[1], box[2])
                glob = (slice(ka, kb), box[1], box[2])
                fn(glob, x[local], y[local], z[local])


_BIG = 1e4


def _render(grid: Volume, truth: dict[str, Any], *, kind: str, seed: int
            ) -> dict[str, PhantomScan]:
    """Render scans. kind "planning" gives {"planning", "intraop"} (same anatomy, needles
    added to a copy); kind "followup" gives {"followup"}."""
    if kind == "followup":
        def inverse(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
            return _inverse_cols(x, y, z, truth, 1e-4, np.float32)

        def forward(p: np.ndarray) -> np.ndarray:
            return followup_from_planning(p, truth)

        amp = float(np.linalg.norm(truth["followup_transform"]["bump"]["amplitude_mm"]))
        rend = _Renderer(grid, inverse, forward, pad_mm=amp + 1.0)
    else:
        rend = _Renderer(grid)

    tum = truth["tumor"]
    c_t = np.asarray(tum["center_lps_mm"])
    r_t = float(tum["radii_mm"][0])
    zone = truth["ablation_zone"]
    z_c, z_r, z_ax = (np.asarray(zone["center_lps_mm"]), np.asarray(zone["radii_mm"]),
                      np.asarray(zone["axes"]))

    def tumor_f(x, y, z):  # noqa: ANN001, ANN202
        return ((x - c_t[0]) ** 2 + (y - c_t[1]) ** 2 + (z - c_t[2]) ** 2) <= r_t * r_t

    def zone_f(x, y, z):  # noqa: ANN001, ANN202
        q = np.zeros(x.shape, np.float64)
        for r in range(3):
            proj = (z_ax[r, 0] * (x - z_c[0]) + z_ax[r, 1] * (y - z_c[1])
                    + z_ax[r, 2] * (z - z_c[2]))
            q += (proj / z_r[r]) ** 2
        return q <= 1.0

    big = (np.array([-_BIG] * 3), np.array([_BIG] * 3))
    hu = np.empty(rend.shape, dtype=np.float32)
    masks = {k: np.zeros(rend.shape, dtype=np.uint8) for k in
             (MASK_KEYS if kind == "planning" else ("tumor", "ablation_zone"))}
    if kind not in ("planning", "followup"):
        raise ValueError(f"_render: unknown kind {kind!r}")
    steps: list[tuple[tuple[np.ndarray, np.ndarray], Callable[..., None]]] = []

    def step_background(sl, x, y, z):  # noqa: ANN001, ANN202
        blk = np.full(x.shape, HU["air"], np.float32)
        body = _body(x, y, z)
        blk[body] = HU["fat"]
        blk[_ell2(x, y, _inset(_BODY, _FAT_MM)) <= 1.0] = HU["muscle"]
        cav = _cavity(x, y, z)
        blk[cav] = HU["visceral_fat"]
        blk[(_ell2(np.abs(x), y, (36.0, 88.0, 26.0, 17.0)) <= 1.0) & body] = HU["muscle"]
        # thorax: the cavity above the diaphragm is soft tissue, then lung and heart
        blk[cav & (z >= _dome_z(x, y) - 4.0)] = HU["soft_tissue"]
        lung = _lung(x, y, z)
        blk[lung] = HU["lung"]
        blk[_heart(x, y, z) & cav] = HU["heart"]
        hu[sl] = blk
        if "body" in masks:
            masks["body"][sl] = body
            masks["lung"][sl] = lung

    steps.append((big, step_background))

    def step_organs(sl, x, y, z):  # noqa: ANN001, ANN202
        blk = hu[sl]
        below = z <= _dome_z(x, y) - 4.0
        wall, fluid, air = _stomach(x, y, z)
        blk[wall & below] = HU["bowel_wall"]
        blk[fluid & below] = HU["fluid"]
        blk[air & below] = HU["air"]
        blk[_spleen(x, y, z) & below & _cavity(x, y, z)] = HU["spleen"]
        blk[_kidneys(x, y, z)] = HU["kidney"]
        blk[_gallbladder(x, y, z)] = HU["gallbladder"]

    steps.append(((np.array([-135.0, -95.0, -200.0]), np.array([135.0, 95.0, 60.0])),
                  step_organs))

    for a, b, r, gas in _small_bowel_segments():
        def step_bowel(sl, x, y, z, a=a, b=b, r=r, gas=gas):  # noqa: ANN001, ANN202
            blk = hu[sl]
            d2 = _seg_dist2(x, y, z, a, b)
            free = blk < HU["muscle"]  # only in fat: never over organs or muscle
            blk[(d2 <= r * r) & free] = HU["bowel_wall"]
            blk[(d2 <= (r - 2.5) ** 2) & free] = HU["air"] if gas else HU["fluid"] + 15.0

        steps.append(((np.minimum(a, b) - r, np.maximum(a, b) + r), step_bowel))

    def step_psoas(sl, x, y, z):  # noqa: ANN001, ANN202
        blk = hu[sl]
        width = np.clip((-40.0 - z) / 60.0, 0.0, 1.0) * 14.0 + 6.0  # widens caudally
        psoas = ((np.abs(x) - 40.0) ** 2 / width ** 2 + (y - 62.0) ** 2 / 16.0 ** 2 <= 1.0) & \
            (z < -30.0)
        blk[psoas] = HU["muscle"]

    steps.append(((np.array([-80.0, 40.0, -_BIG]), np.array([80.0, 80.0, -30.0])), step_psoas))

    for a, b, r in _colon_segments():
        def step_colon(sl, x, y, z, a=a, b=b, r=r):  # noqa: ANN001, ANN202
            blk = hu[sl]
            d2 = _seg_dist2(x, y, z, a, b)
            blk[(d2 <= r * r) & (blk < HU["liver"])] = HU["bowel_wall"]
            blk[d2 <= (r - 4.0) ** 2] = HU["air"]

        steps.append(((np.minimum(a, b) - r, np.maximum(a, b) + r), step_colon))

    def step_liver(sl, x, y, z):  # noqa: ANN001, ANN202
        env = _liver_envelope(x, y, z)
        blk = hu[sl]
        blk[env] = HU["liver"]
        tm = tumor_f(x, y, z)
        if kind == "followup":
            zn = zone_f(x, y, z)
            blk[zn & env] = HU["ablation_zone"]
            blk[tm & ~zn] = HU["tumor"]  # viable (residual) tumour stays hypodense
            masks["ablation_zone"][sl] = zn
            masks["tumor"][sl] = tm
        else:
            blk[tm] = HU["tumor"]
            if "liver" in masks:
                masks["liver"][sl] = env
                masks["tumor"][sl] = tm

    steps.append(((np.array([-140.0, -90.0, -85.0]), np.array([72.0, 90.0, 75.0])), step_liver))

    def step_aorta(sl, x, y, z):  # noqa: ANN001, ANN202
        hu[sl][(((x - 14.0) ** 2 + (y - 28.0) ** 2) <= 11.0 ** 2) & (z < 100)] = HU["aorta"]

    steps.append(((np.array([3.0, 17.0, -_BIG]), np.array([25.0, 39.0, _BIG])), step_aorta))

    for v in truth["vessels"]:
        a, b = np.asarray(v["start_lps_mm"]), np.asarray(v["end_lps_mm"])
        r = float(v["radius_mm"])
        value = HU["ivc"] if v["name"] == "inferior vena cava" else HU["vessel"]

        def step_vessel(sl, x, y, z, a=a, b=b, r=r, value=value, key=v["type"]):  # noqa: ANN001, ANN202
            inside = (_seg_dist2(x, y, z, a, b) <= r * r) & _body(x, y, z)
            hu[sl][inside] = value
            if key in masks:
                masks[key][sl] |= inside.astype(np.uint8)

        steps.append(((np.minimum(a, b) - r, np.maximum(a, b) + r), step_vessel))

    def step_ribs(sl, x, y, z):  # noqa: ANN001, ANN202
        blk = hu[sl]
        cx, cy, ra, rb = _RIB_ELLIPSE
        rn = np.sqrt(((x - cx) / ra) ** 2 + ((y - cy) / rb) ** 2)
        band = np.abs(rn - 1.0) <= (_RIB_RADIUS_MM + 1.0) / rb
        sdf = np.full(x.shape, np.inf, np.float32)
        sdf[band] = _rib_sdf(x[band], y[band], z[band])
        rib = sdf <= 0.0
        blk[rib] = HU["bone"]
        blk[sdf <= -2.5] = HU["marrow"]
        if "bone" in masks:
            masks["bone"][sl] |= rib.astype(np.uint8)

    z_lo = min(zp for zp, _ in _RIBS) - _RIB_DROP_MM - _RIB_RADIUS_MM - 2
    z_hi = max(zp for zp, _ in _RIBS) + _RIB_RADIUS_MM + 2
    steps.append(((np.array([-150.0, -100.0, z_lo]), np.array([150.0, 110.0, z_hi])), step_ribs))

    def step_spine(sl, x, y, z):  # noqa: ANN001, ANN202
        blk = hu[sl]
        sb, disc, canal = _spine(x, y, z)
        blk[disc] = HU["disc"]
        blk[sb] = HU["bone"]
        blk[canal] = HU["csf"]
        if "bone" in masks:
            masks["bone"][sl] |= sb.astype(np.uint8)

    steps.append(((np.array([-45.0, 35.0, -_BIG]), np.array([45.0, 110.0, _BIG])), step_spine))

    rend.run(steps)
    scans: dict[str, PhantomScan] = {}
    mask_vols = {k: grid.with_array(m) for k, m in masks.items()}
    if kind == "planning":
        intra = hu.copy()
        needle_steps = []
        for nd in truth["needles"]:
            tip, entry = np.asarray(nd["tip_lps_mm"]), np.asarray(nd["entry_lps_mm"])
            hub = entry - 40.0 * _unit(tip - entry)  # shaft continues outside to the handle

            def step_needle(sl, x, y, z, a=hub, b=tip):  # noqa: ANN001, ANN202
                intra[sl][_seg_dist2(x, y, z, a, b) <= NEEDLE_DRAW_RADIUS_MM ** 2] = HU["metal"]

            needle_steps.append(((np.minimum(hub, tip) - 3, np.maximum(hub, tip) + 3),
                                 step_needle))
        rend.run(needle_steps)
        scans["planning"] = PhantomScan(_finish(hu, grid, seed, 1, "planning"), mask_vols)
        scans["intraop"] = PhantomScan(_finish(intra, grid, seed, 2, "intraop"), {})
    else:
        scans["followup"] = PhantomScan(_finish(hu, grid, seed, 3, "followup"), mask_vols)
    return scans


def _finish(hu: np.ndarray, grid: Volume, seed: int, scan_no: int, kind: str) -> Volume:
    """Scanner blur (partial volume), seeded noise (own field per scan), int16 HU Volume."""
    gaussian_filter(hu, sigma=BLUR_SIGMA_MM / grid.spacing_mm[::-1], output=hu,
                    mode="nearest", truncate=3.0)
    rng = np.random.default_rng([int(seed), scan_no, 7919])
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise *= NOISE_SD_HU
    noise[hu <= HU["air"] + 50.0] *= 0.3
    hu += noise
    del noise
    np.clip(hu, -1024.0, 3071.0, out=hu)
    return grid.with_array(np.rint(hu).astype(np.int16), phantom_scan=kind)


# ----------------------------------------------------------------------------- public
def make_planning(template: Volume | None = None, seed: int = 0, scenario: str = "margin_ok",
                  truth: dict[str, Any] | None = None) -> tuple[Volume, dict[str, Volume],
                                                                  dict[str, Any]]:
    """Planning portal-venous ceCT on ``template``'s grid (default :func:`phantom_grid`).

    Returns (HU int16 Volume, masks {tumor, liver, portal_vein, hepatic_vein, bone, lung,
    body} as uint8 0/1 Volumes on the same grid, truth dict).
    """
    truth = truth if truth is not None else make_truth(seed, scenario)
    grid = template if template is not None else phantom_grid()
    scan = _render(grid, truth, kind="planning", seed=seed)["planning"]
    return scan.ct, scan.masks, truth


def make_planning_and_intraop(template: Volume, truth: dict[str, Any], seed: int = 0
                              ) -> tuple[Volume, dict[str, Volume], Volume]:
    """Planning CT, its masks and the intra-op CT (electrodes in) from one anatomy pass."""
    scans = _render(template, truth, kind="planning", seed=seed)
    return scans["planning"].ct, scans["planning"].masks, scans["intraop"].ct


def make_intraop(template: Volume, truth: dict[str, Any], seed: int = 0) -> Volume:
    """Intra-procedural CT (same anatomy and frame as planning) with the electrodes in."""
    return _render(template, truth, kind="planning", seed=seed)["intraop"].ct


def followup_grid(planning_template: Volume) -> Volume:
    """Axial follow-up grid: same size/spacing as planning, table shifted by (2, -3, 8) mm."""
    g = phantom_grid("axial", planning_template.size_xyz, tuple(planning_template.spacing_mm))
    return Volume(g.array, g.origin_lps_mm + np.array([2.0, -3.0, 8.0]), g.spacing_mm,
                  g.direction, {"phantom_variant": "followup"})


def make_followup(template: Volume, truth: dict[str, Any], seed: int = 0
                  ) -> tuple[Volume, dict[str, Volume]]:
    """1-month follow-up ceCT on ``template`` (follow-up frame) and its masks.

    Masks: "ablation_zone" and "tumor", mapped into the follow-up frame with the exact
    transform of ``truth``.
    """
    scan = _render(template, truth, kind="followup", seed=seed)["followup"]
    return scan.ct, scan.masks


def planning_zone_mask(template: Volume, truth: dict[str, Any]) -> Volume:
    """The true ablation zone as a uint8 mask on a planning-space grid."""
    zone = truth["ablation_zone"]
    c, r, ax = (np.asarray(zone["center_lps_mm"]), np.asarray(zone["radii_mm"]),
                np.asarray(zone["axes"]))
    rend = _Renderer(template)
    box = rend.index_box(c - r.max(), c + r.max())
    out = np.zeros(template.array.shape, np.uint8)
    if all(s.stop > s.start for s in box):
        x, y, z = rend.coords(box)
        q = np.zeros(x.shape, np.float64)
        for i in range(3):
            proj = ax[i, 0] * (x - c[0]) + ax[i, 1] * (y - c[1]) + ax[i, 2] * (z - c[2])
            q += (proj / r[i]) ** 2
        out[box] = q <= 1.0
    return template.with_array(out)
