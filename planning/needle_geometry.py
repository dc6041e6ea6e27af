"""Needle geometry in LPS mm: depth, angulation, distances between segments.

Angles follow CT-guided intervention practice (the axial plane is the scanner's gantry
plane, patient lying along S):

- ``cc_angle_deg``: cranio-caudal angulation, the angle between the needle and the axial
  plane; positive when the tip lies caudal (inferior, -S) to the entry.
- ``lr_angle_deg``: the angle of the needle's projection onto the axial plane, measured
  from the antero-posterior direction (entry anterior, tip posterior = 0 deg), positive
  when the tip lies towards the patient's left (+L). 90 = lateral, purely left-going.
- ``plane_kind``: "in-plane" (within 1 deg of the axial plane: visible in one axial
  slice), "single-oblique" (tilted out of the axial plane but within 1 deg of the
  sagittal or coronal plane) or "double-oblique".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from irplan.planning.plan import Needle
from irplan.planning.volume import Volume

IN_PLANE_TOL_DEG = 1.0


@dataclass(frozen=True)
class NeedleAngles:
    depth_mm: float
    cc_angle_deg: float
    lr_angle_deg: float
    plane_kind: str


def needle_angles(needle: Needle) -> NeedleAngles:
    """Insertion depth (entry to tip, mm) and angulation of a needle (see module doc)."""
    d = needle.tip_lps_mm - needle.entry_lps_mm
    depth = float(np.linalg.norm(d))
    if depth == 0:
        return NeedleAngles(0.0, 0.0, 0.0, "in-plane")
    u = d / depth
    cc = math.degrees(math.asin(float(np.clip(-u[2], -1.0, 1.0))))
    lr = math.degrees(math.atan2(float(u[0]), float(u[1]))) if math.hypot(u[0], u[1]) > 1e-12 \
        else 0.0
    if abs(cc) <= IN_PLANE_TOL_DEG:
        kind = "in-plane"
    else:
        off = min(abs(((lr + 45.0) % 90.0) - 45.0), 90.0)  # distance to 0/90/180/-90
        kind = "single-oblique" if off <= IN_PLANE_TOL_DEG or abs(cc) >= 89.0 \
            else "double-oblique"
    return NeedleAngles(depth, cc, lr, kind)


def angle_between_deg(u: np.ndarray, v: np.ndarray) -> float:
    """Angle (deg, 0-90) between two lines with directions ``u`` and ``v`` (sign-free)."""
    a = np.asarray(u, dtype=np.float64)
    b = np.asarray(v, dtype=np.float64)
    c = abs(float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))
    return math.degrees(math.acos(min(1.0, c)))


def point_segment_distance_mm(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Distance (mm) from point ``p`` to segment ``a``-``b``."""
    p, a, b = (np.asarray(x, dtype=np.float64) for x in (p, a, b))
    ab = b - a
    den = float(ab @ ab)
    t = 0.0 if den == 0 else float(np.clip((p - a) @ ab / den, 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def segment_segment_closest(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray,
                            q1: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Shortest distance between segments p0-p1 and q0-q1, with the closest points.

    Exact (clamped parameters, Ericson, Real-Time Collision Detection, 5.1.9).
    """
    p0, p1, q0, q1 = (np.asarray(x, dtype=np.float64) for x in (p0, p1, q0, q1))
    d1 = p1 - p0
    d2 = q1 - q0
    r = p0 - q0
    a = float(d1 @ d1)
    e = float(d2 @ d2)
    f = float(d2 @ r)
    eps = 1e-12
    if a <= eps and e <= eps:
        return float(np.linalg.norm(p0 - q0)), p0, q0
    if a <= eps:
        s, t = 0.0, float(np.clip(f / e, 0.0, 1.0))
    else:
        c = float(d1 @ r)
        if e <= eps:
            t, s = 0.0, float(np.clip(-c / a, 0.0, 1.0))
        else:
            b = float(d1 @ d2)
            den = a * e - b * b
            s = float(np.clip((b * f - c * e) / den, 0.0, 1.0)) if den > eps else 0.0
            t = (b * s + f) / e
            if t < 0.0:
                t, s = 0.0, float(np.clip(-c / a, 0.0, 1.0))
            elif t > 1.0:
                t, s = 1.0, float(np.clip((b - c) / a, 0.0, 1.0))
    cp = p0 + d1 * s
    cq = q0 + d2 * t
    return float(np.linalg.norm(cp - cq)), cp, cq


def segment_segment_distance_mm(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray,
                                q1: np.ndarray) -> float:
    return segment_segment_closest(p0, p1, q0, q1)[0]


def exposure_segment(needle: Needle) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of the active part: from ``exposure_mm`` behind the tip to the tip.
    A needle without exposure returns (tip, tip)."""
    exp = needle.exposure_mm or 0.0
    exp = min(exp, needle.length_mm)
    return needle.tip_lps_mm - needle.direction * exp, needle.tip_lps_mm.copy()


def sample_segment(a: np.ndarray, b: np.ndarray, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Points from ``a`` to ``b`` (inclusive) at most ``step_mm`` apart, shape (N, 3), and
    their distance from ``a`` (mm)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    length = float(np.linalg.norm(b - a))
    n = max(2, int(math.ceil(length / step_mm)) + 1)
    t = np.linspace(0.0, 1.0, n)
    return a + t[:, None] * (b - a), t * length


def mean_axis(needles: list[Needle]) -> np.ndarray:
    """Unit mean direction (entry -> tip) of several needles."""
    dirs = np.array([n.direction for n in needles])
    ref = dirs[0]
    dirs = np.where((dirs @ ref)[:, None] < 0, -dirs, dirs)
    m = dirs.sum(axis=0)
    return m / np.linalg.norm(m)


def perpendicular_spacing_mm(a: Needle, b: Needle) -> float:
    """Spacing of two (roughly parallel) electrodes: distance between the midpoints of
    their active parts, measured perpendicular to their mean axis (mm)."""
    axis = mean_axis([a, b])
    ma = np.mean(exposure_segment(a), axis=0) if a.exposure_mm else a.tip_lps_mm
    mb = np.mean(exposure_segment(b), axis=0) if b.exposure_mm else b.tip_lps_mm
    d = mb - ma
    return float(np.linalg.norm(d - (d @ axis) * axis))


def tumour_centroid_near(tumour: Volume, p_lps_mm: np.ndarray | None = None) -> np.ndarray:
    """Centroid (LPS mm) of the tumour lesion nearest to ``p_lps_mm`` (the connected
    component containing it, else the one with the nearest centroid); of the whole mask
    when ``p_lps_mm`` is None. Used to snap a target to the tumour. InputError if empty."""
    from scipy import ndimage

    from irplan.planning.errors import InputError

    inside = tumour.array != 0
    if not inside.any():
        raise InputError("tumour mask is empty: nothing to snap to")
    if p_lps_mm is None:
        kji = np.argwhere(inside)
        return tumour.index_to_lps(kji.mean(axis=0)[::-1])
    labels, n = ndimage.label(inside)
    centroids = np.array(ndimage.center_of_mass(inside, labels, range(1, n + 1)))  # k, j, i
    c_lps = tumour.index_to_lps(centroids[:, ::-1])
    v = tumour.lps_to_voxel(np.asarray(p_lps_mm, dtype=np.float64))
    size = np.asarray(tumour.size_xyz)
    if np.all((v >= 0) & (v < size)):
        lab = labels[v[2], v[1], v[0]]
        if lab > 0:
            return c_lps[lab - 1]
    return c_lps[int(np.argmin(np.linalg.norm(c_lps - np.asarray(p_lps_mm), axis=1)))]


def thermal_applicator_for_tumour(tumour: Volume, direction: np.ndarray, device_id: str,
                                  power_w: float | None, time_s: float | None,
                                  body: Volume | None = None,
                                  entry_distance_mm: float = 100.0) -> Needle:
    """One thermal applicator through the tumour centroid along ``direction`` (entry ->
    tip), its tip placed so that the predicted zone's centre (device zone table,
    :mod:`irplan.planning.thermal_zone`) falls on the centroid. Entry 5 mm outside the
    skin when a ``body`` mask is given, else ``entry_distance_mm`` behind the tip."""
    from irplan.planning.devices import get_device
    from irplan.planning.ire_array import skin_distance_mm
    from irplan.planning.thermal_zone import interpolate, load_tables, table_for_device

    dev = get_device(device_id)
    table = table_for_device(dev.id, dev.modality, load_tables(), dev.zone_table)
    _, _, offset_mm = interpolate(table, power_w, time_s)
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    centre = tumour_centroid_near(tumour)
    tip = centre + offset_mm * d
    depth = skin_distance_mm(body, tip, d) if body is not None else None
    entry = tip - ((depth + 5.0) if depth is not None else entry_distance_mm) * d
    return Needle(dev.id, tip, entry, None, "A1")
