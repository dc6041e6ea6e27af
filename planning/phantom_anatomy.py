"""Anatomy of the synthetic abdominal CT phantom: CT numbers and analytic structures.

Every structure is a function of patient-space coordinates (DICOM LPS, mm: +x = patient
left, +y = posterior, +z = superior) taking arrays ``x, y, z`` of any shape and returning
a boolean mask (or a distance in mm) of that shape, so the same anatomy can be sampled on
any grid (:mod:`irplan.planning.phantom_render`). Pure numpy, the same for every seed;
what varies per seed (tumour, zone, electrodes, motion) is in
:mod:`irplan.planning.phantom_truth`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MASK_KEYS = ("tumor", "liver", "portal_vein", "hepatic_vein", "bone", "lung", "body")

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
BODY = (0.0, 5.0, 160.0, 115.0)
FAT_MM = 15.0
MUSCLE_MM = 10.0
CAVITY = (0.0, 5.0, 160.0 - 25.0, 115.0 - 25.0)
RIB_ELLIPSE = (0.0, 5.0, 140.0, 95.0)
RIB_RADIUS_MM = 5.0
# posterior height of each rib (mm) and how far round (deg from the posterior midline) it runs
RIBS = ((-30.0, 100.0), (-2.0, 112.0), (26.0, 125.0), (54.0, 140.0), (82.0, 152.0),
        (110.0, 160.0), (138.0, 165.0), (166.0, 165.0))
RIB_DROP_MM = 80.0  # ribs descend this much from the spine to the front (at 180 deg)


def rotation_matrix_deg(rx_deg: float, ry_deg: float, rz_deg: float) -> np.ndarray:
    """R = Rz @ Ry @ Rx for rotations (degrees) about the LPS x, y, z axes."""
    ax, ay, az = np.radians([rx_deg, ry_deg, rz_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def axis_angle(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotation matrix of ``angle_deg`` about ``axis`` (Rodrigues' formula)."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * (k @ k)


def unit(v: Any) -> np.ndarray:
    """``v`` scaled to length 1 (float64)."""
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def vessel_tree() -> list[tuple[str, str, tuple[float, float, float],
                                tuple[float, float, float], float]]:
    """Portal and hepatic venous trees plus IVC as capsules: rows (type, name, start LPS
    mm, end LPS mm, radius mm); type is the mask key ("portal_vein" or "hepatic_vein")."""
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
            out.append((typ, name, tuple(float(x) for x in a), tuple(float(x) for x in b),
                        float(r)))
    return out


def ell2(x: np.ndarray, y: np.ndarray, e: tuple[float, float, float, float]) -> np.ndarray:
    return ((x - e[0]) / e[2]) ** 2 + ((y - e[1]) / e[3]) ** 2


def ellipsoid(x: np.ndarray, y: np.ndarray, z: np.ndarray, c: tuple[float, ...],
              r: tuple[float, ...]) -> np.ndarray:
    return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0


def dome_z(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Height (mm) of the diaphragm: two domes, right higher (liver)."""
    right = 62.0 - ((x + 60.0) ** 2 + 0.8 * (y - 5.0) ** 2) / 220.0
    left = 52.0 - ((x - 60.0) ** 2 + 0.8 * (y - 5.0) ** 2) / 220.0
    return np.maximum(right, left)


def inside_body(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return ell2(x, y, BODY) <= 1.0


def inset(e: tuple[float, float, float, float], mm: float) -> tuple[float, float, float, float]:
    return (e[0], e[1], e[2] - mm, e[3] - mm)


def inside_cavity(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return ell2(x, y, CAVITY) <= 1.0


def rib_sdf(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Approximate signed distance (mm) to the nearest rib surface (negative inside)."""
    cx, cy, a, b = RIB_ELLIPSE
    xr, yr = (x - cx) / a, (y - cy) / b
    rn = np.sqrt(xr * xr + yr * yr) + 1e-9
    theta = np.arctan2(yr, xr)  # rib ellipse parameter angle
    ex, ey = a * np.cos(theta), b * np.sin(theta)
    radial = (rn - 1.0) * np.sqrt(ex * ex + ey * ey)
    alpha = np.degrees(np.abs(np.arctan2(xr, yr)))  # 0 at the spine, 180 at the front
    best = np.full(np.shape(x), np.inf)
    for z_post, alpha_max in RIBS:
        zc = z_post - RIB_DROP_MM * alpha / 180.0
        dz = z - zc
        # beyond the rib's ends, distance to its end cap
        da = np.clip(alpha - alpha_max, 0, None) + np.clip(12.0 - alpha, 0, None)
        along = np.radians(da) * np.sqrt(ex * ex + ey * ey)
        d = np.sqrt(radial * radial + dz * dz + along * along) - RIB_RADIUS_MM
        best = np.minimum(best, d)
    return best


def spine(x: np.ndarray, y: np.ndarray, z: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def heart(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return ellipsoid(x, y, z, (12.0, -15.0, 122.0), (60.0, 48.0, 50.0))


def lung(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    inner = ell2(x, y, (0.0, 5.0, 131.0, 86.0)) <= 1.0
    mediastinum = (np.abs(x - 5.0) <= 28.0) & (y <= 80.0)
    return inner & (z >= dome_z(x, y) + 3.0) & ~mediastinum & ~heart(x, y, z) & \
        ~((x ** 2 + (y - 65.0) ** 2) <= 38.0 ** 2)


def kidneys(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return ellipsoid(x, y, z, (-72.0, 58.0, -95.0), (27.0, 21.0, 48.0)) | \
        ellipsoid(x, y, z, (72.0, 58.0, -75.0), (27.0, 21.0, 48.0))


def gallbladder(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return ellipsoid(x, y, z, (-40.0, -52.0, -62.0), (14.0, 15.0, 30.0))


def liver_envelope(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Liver (parenchyma with its tumour and intrahepatic vessels), LPS mm."""
    right = ((x + 62.0) / 78.0) ** 2 + ((y - 2.0) / 86.0) ** 2 + ((z + 5.0) / 78.0) ** 2 <= 1.0
    left = ((x - 12.0) / 58.0) ** 2 + ((y + 38.0) / 38.0) ** 2 + ((z - 12.0) / 40.0) ** 2 <= 1.0
    env = (right | left) & (ell2(x, y, (0.0, 5.0, 133.0, 88.0)) <= 1.0)
    env &= z <= dome_z(x, y) - 4.0
    env &= ~kidneys(x, y, z) & ~gallbladder(x, y, z)
    env &= ~((x ** 2 + (y - 58.0) ** 2) <= 30.0 ** 2)  # spine and crus
    env &= ~(((x + 22.0) ** 2 + (y - 40.0) ** 2) <= 11.0 ** 2)  # IVC
    env &= ~(((x - 14.0) ** 2 + (y - 28.0) ** 2) <= 14.0 ** 2)  # aorta and crus
    return env


def stomach(x: np.ndarray, y: np.ndarray, z: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(wall, fluid, air) of the stomach, left upper quadrant."""
    outer = ellipsoid(x, y, z, (62.0, -28.0, 5.0), (38.0, 30.0, 42.0))
    inner = ellipsoid(x, y, z, (62.0, -28.0, 5.0), (33.0, 25.0, 37.0))
    air = inner & (y <= -38.0)
    return outer & ~inner, inner & ~air, air


def spleen(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    return ellipsoid(x, y, z, (95.0, 45.0, 10.0), (24.0, 42.0, 48.0))


def colon_segments() -> list[tuple[np.ndarray, np.ndarray, float]]:
    return [(np.array([-105.0, -20.0, -160.0]), np.array([-100.0, -25.0, -95.0]), 22.0),
            (np.array([-100.0, -25.0, -95.0]), np.array([-20.0, -60.0, -100.0]), 20.0),
            (np.array([-20.0, -60.0, -100.0]), np.array([80.0, -50.0, -80.0]), 20.0),
            (np.array([80.0, -50.0, -80.0]), np.array([105.0, 0.0, -60.0]), 20.0),
            (np.array([105.0, 0.0, -60.0]), np.array([108.0, 10.0, -160.0]), 20.0)]


def small_bowel_segments() -> list[tuple[np.ndarray, np.ndarray, float, bool]]:
    """Fluid- or gas-filled small bowel loops (start, end, radius, gas) in the lower belly.

    Short tubes at fixed pseudo-random places (the same anatomy for every seed)."""
    rng = np.random.default_rng(4242)
    out = []
    for n in range(34):
        c = rng.uniform([-75.0, -75.0, -135.0], [85.0, 15.0, -62.0])
        d = unit(rng.normal(size=3) * np.array([1.0, 0.6, 0.8]))
        half = float(rng.uniform(12.0, 25.0))
        out.append((c - half * d, c + half * d, float(rng.uniform(9.0, 12.0)), n % 6 == 2))
    return out


def skin_entry(tip: np.ndarray, d: np.ndarray) -> np.ndarray | None:
    """Where the line through ``tip`` along -d leaves the body ellipse (skin)."""
    cx, cy, ax, ay = BODY
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
