"""Synthetic intra-op CT with needles of known position, for tests and the detection bench
(bench/bench_needle_detection.py). Pure numpy/scipy; LPS mm.

A water-density body (elliptic cylinder along S, fat rim, air outside) holds 0-6 parallel
needles (flat-ended rods, ``bloom_radius_mm`` wide as metal looks on CT, partial volume
by a linear ramp one pixel wide), rendered on 0.5 mm sub-slices and averaged over the
slice thickness (thick slices smear a needle running nearly in the slice plane into
dashes), blurred by the scanner point-spread, with dark bands between needles and radial
streaks in the slices that hold metal (``streak_hu``), Gaussian noise, metal of
``metal_hu`` before the 3071 HU clip of 12-bit CT (> 3071: saturated plateau), and optional distractors: a rib
(tube with a 1.8 mm cortex at 1700 HU and marrow), a dense calcification (2000 HU
sphere), a contrast-filled vessel (300 HU). Truth: the tip = the metal's end, entry =
where the axis crosses the skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from irplan.planning.volume import Volume

BODY_SEMI_MM = (110.0, 80.0)     # x, y semi-axes of the body ellipse


@dataclass
class SyntheticNeedle:
    tip_lps_mm: np.ndarray
    entry_lps_mm: np.ndarray


def _skin_entry(tip: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Where the line tip - s d (s > 0) leaves the body ellipse (the skin)."""
    a, b = BODY_SEMI_MM
    px, py, dx, dy = tip[0], tip[1], -d[0], -d[1]
    qa = (dx / a) ** 2 + (dy / b) ** 2
    qb = 2 * (px * dx / a ** 2 + py * dy / b ** 2)
    qc = (px / a) ** 2 + (py / b) ** 2 - 1.0
    s = (-qb + np.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)
    return tip - s * d


def _rod(x: np.ndarray, y: np.ndarray, z: np.ndarray, a: np.ndarray, b: np.ndarray,
         r: float, h: float) -> np.ndarray:
    ab = b - a
    length = float(np.linalg.norm(ab))
    u = ab / length
    dx, dy, dz = x - a[0], y - a[1], z - a[2]
    t = dx * u[0] + dy * u[1] + dz * u[2]
    rr = np.sqrt(np.maximum(dx * dx + dy * dy + dz * dz - t * t, 0.0))
    f = np.clip((r - rr) / h + 0.5, 0, 1) * np.clip((length - t) / h + 0.5, 0, 1)
    return f * np.clip(t / h + 0.5, 0, 1)


def synthetic_case(n_needles: int = 4, spacing_mm: float = 15.0, slice_mm: float = 1.0,
                   elevation_deg: float = 30.0, azimuth_deg: float = 0.0,
                   pixel_mm: float = 0.8, size_xy: int = 300, extent_z_mm: float = 110.0,
                   bloom_radius_mm: float = 1.2, streaks: bool = True,
                   noise_sd_hu: float = 15.0, bone: bool = False, calcification: bool = False,
                   metal_hu: float = 3000.0, streak_hu: float = 60.0,
                   seed: int = 0) -> tuple[Volume, list[SyntheticNeedle]]:
    """A CT Volume (int16 HU, axial) and its needles' truth.

    ``elevation_deg``: needle angle out of the axial plane (0 = in the slice plane, 90 =
    along S); ``azimuth_deg`` turns the in-plane part (double-oblique course). Needles
    point from the patient's right-anterior skin towards the body centre; tips sit on a
    regular polygon (or a pair) of side ``spacing_mm`` around the centre, at varied depth.
    """
    rng = np.random.default_rng(seed)
    nz = int(round(extent_z_mm / slice_mm))
    origin = np.array([-(size_xy - 1) * pixel_mm / 2, -(size_xy - 1) * pixel_mm / 2,
                       -(nz - 1) * slice_mm / 2])
    vol = Volume(np.zeros((nz, size_xy, size_xy), np.int16), origin,
                 [pixel_mm, pixel_mm, slice_mm])
    sub = 0.5
    nsub = max(1, int(round(slice_mm / sub)))
    zf = origin[2] - slice_mm / 2 + (np.arange(nz * nsub) + 0.5) * (slice_mm / nsub)
    xs = origin[0] + np.arange(size_xy) * pixel_mm
    ys = origin[1] + np.arange(size_xy) * pixel_mm
    Y, X = np.meshgrid(ys, xs, indexing="ij")
    a, b = BODY_SEMI_MM
    q = (X / a) ** 2 + (Y / b) ** 2
    body2d = np.where(q <= 1, 45.0, -1000.0).astype(np.float32)
    body2d[(q > (1 - 12 / a) ** 2) & (q <= 1)] = -100.0   # fat rim
    hu = np.broadcast_to(body2d, (len(zf), size_xy, size_xy)).copy()
    needles: list[SyntheticNeedle] = []
    if n_needles:
        el, az = np.radians(elevation_deg), np.radians(200.0 + azimuth_deg)
        d = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), -np.sin(el)])
        d = -d / np.linalg.norm(d)      # entry -> tip: towards the body centre
        u = np.cross(d, [0, 0, 1.0])
        u = u / np.linalg.norm(u) if np.linalg.norm(u) > 1e-6 else np.array([1.0, 0, 0])
        v = np.cross(d, u)
        if n_needles == 2:
            offs = [(-spacing_mm / 2, 0), (spacing_mm / 2, 0)]
        else:
            rad = spacing_mm / (2 * np.sin(np.pi / n_needles))
            ang = 2 * np.pi * np.arange(n_needles) / n_needles + rng.uniform(0, np.pi)
            offs = list(zip(rad * np.cos(ang), rad * np.sin(ang)))
        centre = np.array([rng.uniform(-10, 10), rng.uniform(-5, 5), rng.uniform(-8, 8)])
        for ou, ov in offs:
            tip = centre + ou * u + ov * v + rng.uniform(-3, 3) * d
            tip = tip + rng.normal(0, 0.3, 3)
            entry = _skin_entry(tip, d)
            needles.append(SyntheticNeedle(tip, entry))
        for n in needles:
            hub = n.entry_lps_mm - 30.0 * d
            lo = np.minimum(hub, n.tip_lps_mm) - 4
            hi = np.maximum(hub, n.tip_lps_mm) + 4
            ks = np.flatnonzero((zf >= lo[2]) & (zf <= hi[2]))
            js = np.flatnonzero((ys >= lo[1]) & (ys <= hi[1]))
            is_ = np.flatnonzero((xs >= lo[0]) & (xs <= hi[0]))
            if not (len(ks) and len(js) and len(is_)):
                continue
            sl = (slice(ks[0], ks[-1] + 1), slice(js[0], js[-1] + 1), slice(is_[0], is_[-1] + 1))
            z3 = zf[sl[0]][:, None, None]
            y3 = ys[sl[1]][None, :, None]
            x3 = xs[sl[2]][None, None, :]
            f = _rod(x3, y3, z3, hub, n.tip_lps_mm, bloom_radius_mm, pixel_mm).astype(np.float32)
            blk = hu[sl]
            blk += f * (np.float32(metal_hu) - blk)
    if bone:   # a rib: curved tube with cortex, crossing the field near the needles
        rr = np.sqrt((X / (a - 20)) ** 2 + (Y / (b - 20)) ** 2)
        ang = np.arctan2(Y, X)
        for k, z in enumerate(zf):
            zc = 25.0 + 10 * np.sin(ang)
            dist = np.sqrt(((rr - 1.0) * (a - 20)) ** 2 + (z - zc) ** 2)
            tube = dist <= 6.0
            hu[k][tube] = np.where(dist[tube] >= 4.2, 1700.0, 250.0)
    if calcification:
        c = np.array([25.0, 20.0, -15.0])
        for k, z in enumerate(zf):
            r2 = (X - c[0]) ** 2 + (Y - c[1]) ** 2 + (z - c[2]) ** 2
            hu[k][r2 <= 9.0] = 2000.0
    # vessel with contrast (never metal)
    r2v = (X + 30.0) ** 2 + (Y - 25.0) ** 2
    hu[:, r2v <= 36.0] = 300.0
    # thick slices: average the 0.5 mm sub-slices
    hu = hu.reshape(nz, nsub, size_xy, size_xy).mean(axis=1)
    hu = gaussian_filter(hu, sigma=(0.0, 0.6 / pixel_mm, 0.6 / pixel_mm))
    if streaks and needles:
        metal_slices = np.flatnonzero((hu >= 2000).any(axis=(1, 2)))
        for k in metal_slices:
            pts = np.argwhere(hu[k] >= 2000)
            cy, cx = pts.mean(axis=0)
            th = np.arctan2(Y - ys[int(cy)], X - xs[int(cx)])
            hu[k] += (streak_hu * np.cos(12 * th) * np.exp(-np.hypot(Y - ys[int(cy)],
                                                                X - xs[int(cx)]) / 60.0))
            dark = np.exp(-np.hypot(Y - ys[int(cy)], X - xs[int(cx)]) ** 2 / (2 * 12.0 ** 2))
            hu[k] -= 2.0 * streak_hu * dark * (hu[k] < 1000)
    hu += rng.normal(0, noise_sd_hu, hu.shape).astype(np.float32)
    np.clip(hu, -1024, 3071, out=hu)      # 12-bit CT: bright metal saturates
    return vol.with_array(np.rint(hu).astype(np.int16)), needles


def insert_needles(ct: Volume, tips_lps_mm: list[np.ndarray], direction: np.ndarray,
                   bloom_radius_mm: float = 1.0, metal_hu: float = 8000.0,
                   outside_mm: float = 30.0) -> tuple[Volume, list[SyntheticNeedle]]:
    """Needles drawn into a real CT (``ct``: HU Volume, any grid): flat-ended rods from
    ``tips_lps_mm`` back along ``-direction`` through the skin (first point with HU <
    -400 for 5 mm) and ``outside_mm`` beyond, partial volume over one voxel, blurred by
    the scanner point-spread (0.6 mm) inside their box, clipped at 3071 HU. Truth entry
    = the skin crossing on the axis (0.5 mm steps)."""
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    hu = ct.array.astype(np.float32)
    out: list[SyntheticNeedle] = []
    h = float(np.mean(ct.spacing_mm))
    s = np.arange(0.0, 400.0, 0.5)
    tips = [np.asarray(t, float) for t in tips_lps_mm]
    samples = np.concatenate([t - s[:, None] * d for t in tips])
    every = np.asarray(ct.value_at_lps(samples, order=0, outside=-1000.0)).reshape(len(tips), -1)
    for tip, vals in zip(tips, every):
        air = vals < -400
        run = np.convolve(air, np.ones(10), mode="full")[:len(air)] >= 10
        k = int(np.argmax(run)) - 9 if run.any() else len(s) - 1
        entry = tip - s[max(k, 0)] * d
        hub = entry - outside_mm * d
        corners = np.array([tip, hub])
        idx = ct.lps_to_index(corners)
        lo = np.maximum(np.floor(idx.min(axis=0)).astype(int) - 4, 0)
        hi = np.minimum(np.ceil(idx.max(axis=0)).astype(int) + 5, np.array(ct.size_xyz))
        x, y, z = ct.index_box_lps(lo, hi)
        f = _rod(x, y, z, hub, tip, bloom_radius_mm, h).astype(np.float32)
        f = gaussian_filter(f, sigma=0.6 / ct.spacing_mm[::-1])
        blk = hu[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
        blk += f * (np.float32(metal_hu) - blk)
        out.append(SyntheticNeedle(tip, entry))
    np.clip(hu, -1024, 3071, out=hu)
    return ct.with_array(np.rint(hu).astype(np.int16)), out
