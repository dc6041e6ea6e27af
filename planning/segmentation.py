"""Semi-automatic segmentation on a contrast-enhanced CT (HU), with SimpleITK filters.

All seeds are LPS mm; every result is a uint8 0/1 :class:`Volume` on the CT grid whose
``metadata`` records the method and the HU window used (shown to the user).

Tools:
* :func:`segment_tumor` - hypodense lesion from one click (optional drag radius in mm):
  region growing in an HU window at half the lesion/parenchyma contrast, bounded by a
  sphere and a star-shaped hull measured by rays from the click (no leaks into touching
  organs of the same density), then opening / closing / hole filling. Lesions with an
  isodense rim (the edge moves >= 2 mm between the 50 % and 90 % contrast levels) take a
  rim-aware ray hull grown in threshold steps with leak checks (issue 17).
* :func:`segment_tumor_scribbles` - inside/outside scribbles (grow from seeds): random
  walker on a lesion box around the one-click prior (native spacing on small boxes, at
  most 2 mm); a painted stroke is its points (:func:`stroke_points`). Cannot: take an
  isodense rim the strokes do not cover (the walker follows the strongest edge, the
  core/rim one; see SCRIBBLE_INTENSITY_MODEL).
* :func:`segment_liver` - liver from one or more seeds: HU window from seed statistics,
  opening to cut bridges to neighbours, connectivity, closing and hole filling (fills
  enhanced vessels and enclosed lesions); segmented tumours can be counted in.
* :func:`segment_vessels` - enhanced vessel tree from a seed: half-maximum threshold
  between vessel and parenchyma + connectivity, optionally helped by a Hessian
  vesselness (ObjectnessMeasure) inside the liver.
* :func:`segment_bone`, :func:`segment_lung` - automatic, threshold + connectivity.
* Refinement: :func:`grow_mm`, :func:`shrink_mm`, :func:`smooth_mm`, :func:`fill_holes`,
  :func:`keep_largest_component`.

HU references (cited where used): Hounsfield scale values for tissues from Radiopaedia,
"Hounsfield unit" (https://radiopaedia.org/articles/hounsfield-unit): fat -100 to -50,
soft tissue +20 to +80 (unenhanced), cancellous bone +300 to +400, cortical bone
+500 to +1900, lung about -700 (range -600 to -950 incl. -1000 for air).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from irplan.planning.errors import InputError
from irplan.planning.volume import Volume

# Lung: air-containing parenchyma below -400 HU; Hu, Hoffman & Reinhardt 2001, "Automatic
# lung segmentation for accurate quantitation of volumetric X-ray CT images", IEEE TMI
# 20(6):490-498 (optimal threshold found iteratively, typically about -500 HU).
LUNG_MAX_HU = -400.0
# Bone: cortical bone > +500 HU, cancellous +300..+400 (Radiopaedia, see module doc).
# 250 HU stays above portal-venous blood/kidney enhancement (~150-200 HU) and keeps the
# cancellous rim; the marrow inside is filled per slice.
BONE_MIN_HU = 250.0
# Plausibility limit for one hepatic vessel tree (mL): IRCADb 17 venous system incl. IVC
# 110 mL, portal vein 48 mL (../shared/data SOURCE.md); more means a leak.
VESSEL_LEAK_ML = 250.0
# The tumour tool needs a lesion at least this much darker than its surroundings (HU):
# 3x the noise SD of a smoothed portal-venous CT (~5-7 HU at sigma 1 mm, from 10-15 HU
# image noise); hypodense metastases/HCC washout are typically 20-60 HU below the liver.
MIN_LESION_CONTRAST_HU = 20.0


# ------------------------------------------------------------------ helpers
def _as_points(seeds: Sequence[float] | Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    pts = np.atleast_2d(np.asarray(seeds, dtype=np.float64))
    if pts.shape[1] != 3 or len(pts) == 0:
        raise InputError(f"seed must be LPS mm X,Y,Z points, got shape {pts.shape}")
    return pts


def _check_inside(ct: Volume, pts: np.ndarray, what: str) -> None:
    for p in pts:
        if not ct.contains_lps(p):
            lo, hi = ct.bounds_lps()
            raise InputError(
                f"{what} ({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f}) LPS mm lies outside the CT "
                f"(extent {np.round(lo, 1).tolist()} .. {np.round(hi, 1).tolist()} mm)")


def _to_float_sitk(vol: Volume) -> sitk.Image:
    return sitk.Cast(vol.to_sitk(), sitk.sitkFloat32)


def _mask_volume(reference: Volume, arr: np.ndarray, **meta: object) -> Volume:
    out = reference.with_array(np.ascontiguousarray(arr, dtype=np.uint8))
    out.metadata = {k: v for k, v in reference.metadata.items()
                    if k in ("series_uid", "frame_of_reference_uid", "source_path")}
    out.metadata.update(meta)
    return out


def _paste(reference: Volume, sub: Volume) -> np.ndarray:
    """Place a sub-volume cut from ``reference`` (by crop_index) back onto its grid."""
    out = np.zeros(reference.array.shape, dtype=np.uint8)
    lo = np.rint(reference.lps_to_index(sub.origin_lps_mm)).astype(int)
    k, j, i = sub.array.shape
    out[lo[2]:lo[2] + k, lo[1]:lo[1] + j, lo[0]:lo[0] + i] = sub.array != 0
    return out


def _ball(vol: Volume, centre_lps_mm: np.ndarray, radius_mm: float) -> np.ndarray:
    """Bool array: voxels of ``vol`` whose centre lies within ``radius_mm`` of the point.
    At least the nearest voxel is included."""
    idx = vol.lps_to_index(centre_lps_mm)
    reach = radius_mm / vol.spacing_mm
    size = np.asarray(vol.size_xyz)
    lo = np.clip(np.floor(idx - reach).astype(int), 0, size - 1)
    hi = np.clip(np.ceil(idx + reach).astype(int) + 1, 1, size)
    out = np.zeros(vol.array.shape, dtype=bool)
    kk, jj, ii = np.meshgrid(*(np.arange(lo[a], hi[a]) for a in (2, 1, 0)), indexing="ij")
    p = vol.index_to_lps(np.stack([ii, jj, kk], -1).reshape(-1, 3).astype(float))
    inside = (np.linalg.norm(p - centre_lps_mm, axis=1) <= radius_mm).reshape(kk.shape)
    out[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] = inside
    v = np.clip(np.rint(idx).astype(int), 0, size - 1)
    out[v[2], v[1], v[0]] = True
    return out


def _robust_stats(values: np.ndarray) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 x MAD) of HU values."""
    med = float(np.median(values))
    sd = 1.4826 * float(np.median(np.abs(values - med)))
    return med, sd


def _radius_vox(vol: Volume | sitk.Image, radius_mm: float) -> list[int]:
    sp = vol.spacing_mm if isinstance(vol, Volume) else np.array(vol.GetSpacing())
    return [max(0, int(round(radius_mm / s))) for s in sp]


def _maurer(img: sitk.Image) -> sitk.Image:
    """Distance (mm) of every voxel to the nearest object voxel centre (0 inside)."""
    return sitk.SignedMaurerDistanceMap(sitk.Cast(img > 0, sitk.sitkUInt8),
                                        insideIsPositive=False, squaredDistance=False,
                                        useImageSpacing=True)


def _dilate(img: sitk.Image, radius_mm: float) -> sitk.Image:
    """Dilation by a Euclidean ball of ``radius_mm`` (exact, any spacing, cost independent
    of the radius: a distance map instead of a structuring element)."""
    return sitk.Cast(_maurer(img) <= radius_mm, sitk.sitkUInt8)


def _erode(img: sitk.Image, radius_mm: float) -> sitk.Image:
    return sitk.Cast(_maurer(img == 0) > radius_mm, sitk.sitkUInt8)


def _open(img: sitk.Image, radius_mm: float) -> sitk.Image:
    if radius_mm <= 0:
        return img
    return _dilate(_erode(img, radius_mm), radius_mm)


def _close(img: sitk.Image, radius_mm: float) -> sitk.Image:
    if radius_mm <= 0:
        return img
    # pad so that closing does not glue the object to the grid border
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in img.GetSpacing()]
    padded = sitk.ConstantPad(sitk.Cast(img > 0, sitk.sitkUInt8), pad, pad, 0)
    closed = _erode(_dilate(padded, radius_mm), radius_mm)
    return sitk.Crop(closed, pad, pad)


def _fill_holes_slices(arr: np.ndarray) -> np.ndarray:
    """3-D hole filling, then 2-D per axial slice (vessels entering at the hilum)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr, dtype=np.uint8))
    out = sitk.GetArrayFromImage(sitk.BinaryFillhole(img, fullyConnected=False)).astype(bool)
    for k in np.nonzero(out.any(axis=(1, 2)))[0]:
        sl = sitk.GetImageFromArray(out[k].astype(np.uint8))
        out[k] = sitk.GetArrayFromImage(sitk.BinaryFillhole(sl, fullyConnected=False)) != 0
    return out


def _components_touching(arr: np.ndarray, seeds_kji: list[tuple[int, int, int]],
                         connectivity: int = 1) -> np.ndarray:
    """The connected components of ``arr`` that contain one of the seeds."""
    from scipy.ndimage import generate_binary_structure, label

    lab, _ = label(arr, structure=generate_binary_structure(3, connectivity))
    ids = {int(lab[s]) for s in seeds_kji} - {0}
    if not ids:
        return np.zeros_like(arr, dtype=bool)
    return np.isin(lab, sorted(ids))


def _nearest_in(arr: np.ndarray, kji: tuple[int, int, int], max_vox: int = 3) -> tuple | None:
    """The seed itself if inside ``arr``, else the nearest True voxel within max_vox."""
    if arr[kji]:
        return kji
    lo = [max(0, c - max_vox) for c in kji]
    sub = arr[lo[0]:kji[0] + max_vox + 1, lo[1]:kji[1] + max_vox + 1,
              lo[2]:kji[2] + max_vox + 1]
    hits = np.argwhere(sub)
    if len(hits) == 0:
        return None
    rel = np.asarray(kji) - np.asarray(lo)
    best = hits[np.argmin(np.sum((hits - rel) ** 2, axis=1))]
    return tuple(int(v) for v in best + np.asarray(lo))


def _seed_kji(vol: Volume, p_lps_mm: np.ndarray) -> tuple[int, int, int]:
    i, j, k = (int(v) for v in np.clip(vol.lps_to_voxel(p_lps_mm), 0,
                                        np.asarray(vol.size_xyz) - 1))
    return (k, j, i)


# ------------------------------------------------------------------ tumour
def _sphere_directions(n: int = 98) -> np.ndarray:
    """``n`` nearly uniform unit vectors (Fibonacci sphere)."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = np.pi * (1.0 + 5.0 ** 0.5) * k
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _star_bound(vol: Volume, seed_lps_mm: np.ndarray, rays_mm: np.ndarray,
                max_mm: float, n_neighbours: int = 8) -> np.ndarray:
    """Star-shaped bound around the seed from the ray lengths (bool array on ``vol``).

    Rays much longer than the median (> 1.6x: they ran into an adjacent organ of the
    same density through a broad contact) or shorter than half of it (a calcification)
    take the median length of their nearest regular neighbours. A voxel is allowed up to
    1.3 x the length of its direction + 3 mm from the seed (heterogeneous lesions are not
    cut), in leaking directions only up to 1.15 x + 1.5 mm: a leak through a wide contact
    is cut close to where the lesion's own surface would be.
    """
    dirs = _sphere_directions(len(rays_mm))
    med = float(np.median(rays_mm))
    long_ = rays_mm > 1.6 * med
    ok = ~long_ & (rays_mm >= 0.5 * med)
    if ok.sum() < 3:
        return np.ones(vol.array.shape, dtype=bool)
    # regular rays: generous (1.3 x + 3 mm: heterogeneous lesions are not cut); long
    # (leaking) and short (calcification) rays take the median of their regular
    # neighbours, and long ones the tight limit 1.15 x + 1.5 mm
    r = rays_mm.astype(float).copy()
    good = np.nonzero(ok)[0]
    for n in np.nonzero(~ok)[0]:
        near = good[np.argsort(-(dirs[good] @ dirs[n]))[:n_neighbours]]
        r[n] = float(np.median(rays_mm[near]))
    cap = np.where(long_, 1.15 * r + 1.5, 1.3 * r + 3.0)
    from scipy.spatial import cKDTree

    inside = _ball(vol, seed_lps_mm, max_mm)
    kji = np.argwhere(inside)
    v = vol.index_to_lps(kji[:, ::-1].astype(float)) - seed_lps_mm
    rho = np.linalg.norm(v, axis=1)
    _, nearest = cKDTree(dirs).query(v / np.maximum(rho, 1e-9)[:, None])
    allowed = np.zeros(vol.array.shape, dtype=bool)
    ok_pts = rho <= cap[nearest]
    allowed[tuple(kji[ok_pts].T)] = True
    return allowed


def _ray_lengths_mm(vol: Volume, arr: np.ndarray, seed_lps_mm: np.ndarray, lower: float,
                    upper: float, max_mm: float, step_mm: float = 0.5,
                    persist_mm: float = 1.5) -> np.ndarray:
    """Distance (mm) from the seed along each ray to where ``arr`` leaves [lower, upper]
    for at least ``persist_mm`` (small calcifications/vessels do not stop a ray)."""
    from scipy.ndimage import map_coordinates

    dirs = _sphere_directions()
    t = np.arange(0.0, max_mm + step_mm, step_mm)
    pts = seed_lps_mm[None, None, :] + dirs[:, None, :] * t[None, :, None]
    idx = vol.lps_to_index(pts.reshape(-1, 3))
    vals = map_coordinates(arr, idx[:, ::-1].T, order=1, mode="nearest").reshape(len(dirs), -1)
    out_ = (vals < lower) | (vals > upper)
    n_persist = max(1, int(round(persist_mm / step_mm)))
    # a run of n_persist outside samples starting at position s
    run = np.ones((len(dirs), len(t) - n_persist + 1), dtype=bool)
    for d in range(n_persist):
        run &= out_[:, d:len(t) - n_persist + 1 + d]
    first = np.where(run.any(axis=1), run.argmax(axis=1), len(t) - 1)
    return t[first]


# Rim mode (issue 17): lesions whose edge is an isodense/hypodense rim or a slow ramp
# (IRCADb 17: dark core ~30 HU, rim 60-95 HU, liver ~104 HU; the expert outline follows the
# rim's outer edge). Steps of the threshold between lesion and parenchyma levels:
RIM_STEPS = (0.5, 0.6, 0.7, 0.8, 0.9)
# A rim is assumed when the median ray moves this far (mm) from the half-contrast edge to the
# 90 % edge (a blurred sharp edge moves ~1-2 mm at 1-1.5 mm resolution).
RIM_MIN_MM = 2.0
# ... for cores of at least this radius (mm); a smaller core needs RIM_MIN_SMALL_MM (the
# phantom's sharp 12 mm lesion moves ~2 mm between the two edges with noise).
RIM_LARGE_CORE_MM = 15.0
RIM_MIN_SMALL_MM = 3.0
# Leak checks between growth steps: more than this fraction of rays unterminated or longer
# than LONG_RAY x the median, or a volume jump beyond VOLUME_JUMP x the previous step, stop
# the growth at the previous step (and say so).
LEAK_RAY_FRACTION = 0.3
LONG_RAY = 1.35
VOLUME_JUMP = 1.75


def _ray_samples(vol: Volume, arr: np.ndarray, seed_lps_mm: np.ndarray, dirs: np.ndarray,
                 max_mm: float, step_mm: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) and linearly interpolated values of ``arr`` along rays from the seed."""
    from scipy.ndimage import map_coordinates

    t = np.arange(0.0, max_mm + step_mm, step_mm)
    pts = seed_lps_mm[None, None, :] + dirs[:, None, :] * t[None, :, None]
    idx = vol.lps_to_index(pts.reshape(-1, 3))
    vals = map_coordinates(arr, idx[:, ::-1].T, order=1, mode="nearest").reshape(len(dirs), -1)
    return t, vals


def _first_run(stop: np.ndarray, t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per ray: distance of the first run of ``n`` stop samples, and whether there is one."""
    m = stop.shape[1] - n + 1
    run = np.ones((stop.shape[0], m), dtype=bool)
    for d in range(n):
        run &= stop[:, d:d + m]
    hit = run.any(axis=1)
    return np.where(hit, t[run.argmax(axis=1)], t[-1]), hit


# Edge at the steepest rise just before the threshold crossing: exact on blurred synthetic
# steps (rim phantom Dice 0.99 instead of 0.87, +30 % volume), but on IRCADb 17 it gives
# Dice 0.78/0.86 instead of 0.82/0.86 (the expert outline lies at the liver level), so off.
EDGE_AT_GRADIENT = False


def _steepest_before(t: np.ndarray, vals: np.ndarray, r: np.ndarray, hit: np.ndarray,
                     back_mm: float = 1.5, ahead_mm: float = 0.5) -> np.ndarray:
    """Per ray: where the profile rises fastest within [r - back_mm, r + ahead_mm] (the
    blurred step itself, not where it crosses a high threshold)."""
    g = np.gradient(vals, t, axis=1)
    win = (t[None, :] >= (r - back_mm)[:, None]) & (t[None, :] <= (r + ahead_mm)[:, None])
    best = np.argmax(np.where(win, g, -np.inf), axis=1)
    return np.where(hit, t[best], r)


def _regular_radii(dirs: np.ndarray, r: np.ndarray, hit: np.ndarray, k: int = 10
                   ) -> tuple[np.ndarray, float]:
    """Ray radii with leaking rays (unterminated or > LONG_RAY x median) replaced by the
    median of their regular neighbours (capped at LONG_RAY x median), then a median over
    the ``k`` nearest directions (a smooth, compact surface). Returns (radii, leak share)."""
    med = float(np.median(r[hit])) if hit.any() else float(r.max())
    long_ = ~hit | (r > LONG_RAY * med)
    cos = dirs @ dirs.T
    r2 = r.astype(float).copy()
    good = ~long_
    if good.sum() >= 3:
        for q in np.nonzero(long_)[0]:
            order = np.argsort(-cos[q])
            near = order[good[order]][:k]
            r2[q] = min(float(np.median(r[near])), LONG_RAY * med)
    nb = np.argsort(-cos, axis=1)[:, :k]
    return np.median(r2[nb], axis=1), float(long_.mean())


def _star_fill(vol: Volume, seed_lps_mm: np.ndarray, dirs: np.ndarray, radii: np.ndarray,
               max_mm: float) -> np.ndarray:
    """Bool array: voxels within the star-shaped surface given by ``radii`` along ``dirs``
    (radius interpolated from the 3 nearest directions)."""
    from scipy.spatial import cKDTree

    inside = _ball(vol, seed_lps_mm, min(max_mm, float(radii.max()) + 1.0))
    kji = np.argwhere(inside)
    v = vol.index_to_lps(kji[:, ::-1].astype(float)) - seed_lps_mm
    rho = np.linalg.norm(v, axis=1)
    dist, near = cKDTree(dirs).query(v / np.maximum(rho, 1e-9)[:, None], k=3)
    w = 1.0 / np.maximum(dist, 1e-6)
    lim = (radii[near] * w).sum(axis=1) / w.sum(axis=1)
    out = np.zeros(vol.array.shape, dtype=bool)
    out[tuple(kji[rho <= lim].T)] = True
    return out


def _parenchyma_hu(ct: Volume, seed: np.ndarray, mu: float, half: float,
                   radius_mm: float = 55.0) -> float | None:
    """Most frequent smoothed value brighter than the lesion within ``radius_mm`` of the
    seed (the liver dominates a 55 mm ball around a liver lesion of up to ~30 mm radius)."""
    sub = ct.crop_lps_box(seed, seed, pad_mm=radius_mm + 2.0)
    sm = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(_to_float_sitk(sub), 1.0))
    vals = sm[_ball(sub, seed, radius_mm)]
    vals = vals[(vals > mu + half) & (vals < mu + 300.0)]
    if len(vals) <= 50:
        return None
    hist, edges = np.histogram(vals, bins=np.arange(mu + half, mu + 302.0, 4.0))
    hist = np.convolve(hist, np.ones(3) / 3.0, mode="same")
    return float(edges[int(np.argmax(hist))] + 2.0)


def _rim_hull(ct: Volume, sub: Volume, sm: np.ndarray, seed: np.ndarray, mu: float,
              mu_p: float, bound_mm: float) -> tuple[np.ndarray, dict] | None:
    """Star-shaped lesion hull grown in threshold steps from the half-contrast edge towards
    the parenchyma level, for lesions with a rim (None: a sharp edge, use region growing).

    Rays (300 directions, smoothed image) stop where the value stays at parenchyma level
    (>= threshold and below vessel level, parenchyma + 40 HU) or drops to fat/air (60 HU
    below the lesion: the liver border) for 3 mm; enhanced vessels inside or across the
    lesion do not stop a ray. Each step must pass the leak checks (share of leaking rays,
    volume jump); the first failing step ends the growth and the result says why.
    """
    mu_p = _parenchyma_hu(ct, seed, mu, 8.0) or mu_p
    if mu_p - mu < MIN_LESION_CONTRAST_HU:
        return None
    dirs = _sphere_directions(300)
    t, vals = _ray_samples(sub, sm, seed, dirs, bound_mm)
    vessel_hu, fat_hu = mu_p + 40.0, mu - 60.0
    n = max(1, int(round(3.0 / 0.5)))

    def radii(frac: float) -> tuple[np.ndarray, np.ndarray]:
        thr = mu + frac * (mu_p - mu)
        stop = ((vals >= thr) & (vals <= vessel_hu)) | (vals < fat_hu)
        return _first_run(stop, t, n)

    r50, h50 = radii(RIM_STEPS[0])
    r90, h90 = radii(RIM_STEPS[-1])
    both = h50 & h90
    if both.sum() < 0.5 * len(dirs):
        return None
    rim_mm, core_mm = float(np.median(r90[both] - r50[both])), float(np.median(r50[both]))
    if rim_mm < (RIM_MIN_MM if core_mm >= RIM_LARGE_CORE_MM else RIM_MIN_SMALL_MM):
        return None
    chosen, warning, steps = None, "", []
    for frac in RIM_STEPS:
        r, hit = radii(frac)
        rr, leak = _regular_radii(dirs, r, hit)
        vol_ml = float(np.mean(rr ** 3)) * 4.0 / 3.0 * np.pi / 1000.0
        steps.append((frac, round(vol_ml, 1), round(leak, 2)))
        if chosen is not None:
            if leak > LEAK_RAY_FRACTION:
                warning = (f"growth stopped at {100 * chosen[0]:.0f} % of the lesion/liver "
                           f"contrast: {100 * leak:.0f} % of the rays ran on at "
                           f"{100 * frac:.0f} % (leak into a neighbour)")
                break
            if vol_ml > VOLUME_JUMP * chosen[2]:
                warning = (f"growth stopped at {100 * chosen[0]:.0f} % of the lesion/liver "
                           f"contrast: volume jumped x{vol_ml / chosen[2]:.1f} at "
                           f"{100 * frac:.0f} % (leak)")
                break
        elif leak > LEAK_RAY_FRACTION:
            raise InputError(
                f"tumour seed ({seed[0]:.1f}, {seed[1]:.1f}, {seed[2]:.1f}) mm: the lesion "
                f"edge is not closed ({100 * leak:.0f} % of the rays from the click run "
                "into tissue of the same density); draw it with the brush or add scribbles")
        chosen = (frac, rr, vol_ml)
    frac, rr, _ = chosen
    if EDGE_AT_GRADIENT:
        r, hit = radii(frac)
        rr, _ = _regular_radii(dirs, _steepest_before(t, vals, r, hit), hit)
    hull = _star_fill(sub, seed, dirs, rr, bound_mm) & (sm >= fat_hu)
    hull = _components_touching(hull, [_seed_kji(sub, seed)])
    hull = _fill_holes_slices(hull)
    thr = mu + frac * (mu_p - mu)
    info = {"method": "tumour click, rim-aware ray hull",
            "hu_window": (round(fat_hu, 1), round(thr, 1)),
            "contrast_fraction": frac, "parenchyma_hu": round(mu_p, 1), "growth_steps": steps,
            "rim_mm": round(rim_mm, 1),
            "bound_radius_mm": round(float(rr.max()), 1)}
    if warning:
        info["warning"] = warning
    return hull, info


def segment_tumor(ct: Volume, seed_lps_mm: Sequence[float], radius_mm: float | None = None,
                  max_radius_mm: float = 40.0, edge_fraction: float = 0.5) -> Volume:
    """Segment a hypodense lesion in enhanced liver from a click (LPS mm).

    Lesion level: median of a Gaussian-smoothed (sigma 1 mm) image within 3 mm of the
    click (40 % of ``radius_mm`` when given). Parenchyma level: the most frequent brighter
    value around it (liver dominates around a liver lesion; vessels are far fewer voxels).
    The upper threshold lies ``edge_fraction`` of the way from lesion to parenchyma (0.5 =
    the half-contrast edge; at least 3 robust SDs), so enhanced vessels and the parenchyma
    stay out; the lower one is as far below the lesion (necrosis is darker).
    Bound: rays cast from the click measure the lesion; the result stays in a sphere of
    1.3 x their 75th percentile + 2 mm (at most 1.5 x ``radius_mm`` + 2 mm from a drag, or
    ``max_radius_mm``) and inside the star-shaped hull of the rays (outlier rays that ran
    into an adjacent organ of the same density replaced by their neighbours), which stops
    leaks into stomach, gallbladder or bowel touching the lesion.
    Clean-up: opening 1 mm (cuts thin bridges), the part holding the click, closing 2 mm,
    hole filling (3-D and per slice: calcifications, necrosis).
    """
    seed = _as_points(seed_lps_mm)[0]
    _check_inside(ct, seed[None], "tumour seed")
    if radius_mm is not None and radius_mm <= 0:
        raise InputError(f"tumour radius must be > 0 mm, got {radius_mm}")
    bound_mm = (1.5 * radius_mm + 2.0) if radius_mm else float(max_radius_mm)
    sub = ct.crop_lps_box(seed, seed, pad_mm=bound_mm + 2.0)
    # Gaussian smoothing, sigma 1 mm: noise down without moving edges of >= 5 mm lesions.
    smooth = sitk.SmoothingRecursiveGaussian(_to_float_sitk(sub), 1.0)
    sm = sitk.GetArrayFromImage(smooth)
    ball = _ball(sub, seed, bound_mm)
    core_r = max(1.5, 0.4 * radius_mm) if radius_mm else 3.0
    mu, sd = _robust_stats(sm[_ball(sub, seed, core_r)])
    # Surrounding parenchyma: the most frequent value brighter than the lesion in the
    # bounding ball (liver dominates around a liver lesion; vessels are far fewer voxels).
    # The lesion edge is the half-contrast level between lesion and parenchyma.
    half = max(3.0 * sd, 8.0)
    vals = sm[ball]
    vals = vals[(vals > mu + half) & (vals < mu + 300.0)]
    mu_p = None
    if len(vals) > 50:
        hist, edges = np.histogram(vals, bins=np.arange(mu + half, mu + 302.0, 4.0))
        hist = np.convolve(hist, np.ones(3) / 3.0, mode="same")
        mu_p = float(edges[int(np.argmax(hist))] + 2.0)
    if mu_p is None or mu_p - mu < MIN_LESION_CONTRAST_HU:
        around = f"{mu_p:.0f} HU" if mu_p is not None else "no brighter tissue"
        raise InputError(
            f"tumour seed ({seed[0]:.1f}, {seed[1]:.1f}, {seed[2]:.1f}) mm: no hypodense "
            f"lesion there (click {mu:.0f} HU, surroundings {around}); click inside a "
            "lesion darker than the liver, or draw it with the brush")
    up = max(half, edge_fraction * (mu_p - mu))
    lower, upper = mu - max(half, up), mu + up
    # Lesion extent from rays cast from the click: the bound becomes 1.3 x the 75th
    # percentile ray length + 2 mm (at most the drag bound), so a leak into an adjacent
    # hypodense structure (stomach, gallbladder, bowel) is cut at the lesion's own size.
    rays = _ray_lengths_mm(sub, sm, seed, lower, upper, bound_mm)
    if np.mean(rays >= bound_mm - 0.5) > 0.5:
        raise InputError(
            f"tumour seed ({seed[0]:.1f}, {seed[1]:.1f}, {seed[2]:.1f}) mm: no lesion edge "
            f"within {bound_mm:.0f} mm of the click (HU window {lower:.0f}..{upper:.0f} runs "
            "on in most directions); click inside a lesion darker than the liver, give its "
            "radius by dragging, or draw it with the brush")
    rim = _rim_hull(ct, sub, sm, seed, mu, mu_p, bound_mm)
    if rim is not None:
        hull, info = rim
        full = _paste(ct, sub.with_array(hull.astype(np.uint8)))
        return _mask_volume(ct, full, structure="tumor", method=info.pop("method"),
                            seed_lps_mm=seed.tolist(), lesion_hu=round(mu, 1),
                            surrounding_hu=mu_p, **info)
    bound_mm = min(bound_mm, 1.3 * float(np.percentile(rays, 75)) + 2.0)
    ball = _ball(sub, seed, bound_mm) & _star_bound(sub, seed, rays, bound_mm)
    region = (sm >= lower) & (sm <= upper) & ball
    k0 = _seed_kji(sub, seed)
    # thin bridges (to a neighbouring hypodense structure) are cut by an opening
    open_mm = 1.0 if (radius_mm is None or radius_mm > 4.0) else 0.0
    img = sitk.GetImageFromArray(region.astype(np.uint8))
    img.CopyInformation(smooth)
    opened = sitk.GetArrayFromImage(_open(img, open_mm)).astype(bool)
    start = _nearest_in(opened, k0) or _nearest_in(region, k0)
    if start is None:
        raise InputError(f"tumour seed ({seed[0]:.1f}, {seed[1]:.1f}, {seed[2]:.1f}) mm: "
                         "no lesion found around the click (seed not in a homogeneous region)")
    comp = _components_touching(opened if opened[start] else region, [start])
    img = sitk.GetImageFromArray(comp.astype(np.uint8))
    img.CopyInformation(smooth)
    closed = sitk.GetArrayFromImage(_close(img, 2.0)).astype(bool) & ball
    out = _fill_holes_slices(closed)
    full = _paste(ct, sub.with_array(out.astype(np.uint8)))
    return _mask_volume(ct, full, structure="tumor", method="tumour click region growing",
                        seed_lps_mm=seed.tolist(), hu_window=(round(lower, 1), round(upper, 1)),
                        lesion_hu=round(mu, 1), surrounding_hu=mu_p, bound_radius_mm=bound_mm)


# ------------------------------------------------------------------ liver
def _work_grid(vol: Volume, spacing_mm: float) -> Volume:
    sp = np.maximum(vol.spacing_mm, spacing_mm)
    if np.allclose(sp, vol.spacing_mm):
        return vol
    extent = (np.asarray(vol.size_xyz) - 1) * vol.spacing_mm
    size = np.floor(extent / sp + 1e-6).astype(int) + 1
    return Volume(np.zeros(size[::-1], np.uint8), vol.origin_lps_mm, sp, vol.direction)


def segment_liver(ct: Volume, seeds_lps_mm: Sequence[Sequence[float]] | np.ndarray,
                  work_spacing_mm: float = 2.0, open_mm: float = 6.0,
                  close_mm: float = 6.0, window_hu: float = 30.0,
                  include: Volume | None = None) -> Volume:
    """Segment the liver from one or more seeds in the parenchyma (LPS mm).

    The HU window is the pooled seed median -/+ max(3 robust SD, ``window_hu``) on a
    Gaussian-smoothed image (sigma 1.5 mm) resampled to ``work_spacing_mm``. An opening of
    ``open_mm`` cuts bridges to organs of similar density (pancreas, heart, kidney, spleen);
    the components holding the seeds are kept, regrown by ``open_mm`` inside the window,
    closed by ``close_mm`` and hole-filled (3-D and per axial slice), which fills the
    enhanced vessels and enclosed lesions. Defaults tuned on the phantom and IRCADb 17
    (one seed: Dice 0.97 / 0.91; window 40 HU and opening 4 mm leaked into pancreas,
    kidney and heart there: 0.86). Where the liver touches such organs broadly, add
    seeds or edit with the brush. ``include`` (e.g. the tumour mask, any grid) is part
    of the liver whatever its density: lesions at the liver surface are not cut out.
    """
    seeds = _as_points(seeds_lps_mm)
    _check_inside(ct, seeds, "liver seed")
    grid = _work_grid(ct, work_spacing_mm)
    img = _to_float_sitk(ct)
    if grid is not ct:
        # block-average by whole factors first (anti-aliasing, and fast on 512^2 slices),
        # then linear resampling onto the work grid
        shrink = [max(1, int(np.floor(g / s + 1e-6)))
                  for g, s in zip(grid.spacing_mm, ct.spacing_mm)]
        if max(shrink) > 1:
            img = sitk.BinShrink(img, shrink)
        img = sitk.Resample(img, grid.to_sitk(), sitk.Transform(), sitk.sitkLinear, -1000.0,
                            sitk.sitkFloat32)
    img = sitk.SmoothingRecursiveGaussian(img, 1.5)
    sm = sitk.GetArrayFromImage(img)
    work = grid.with_array(np.zeros(sm.shape, np.uint8))
    samples = np.concatenate([sm[_ball(work, s, 5.0)] for s in seeds])
    mu, sd = _robust_stats(samples)
    half = max(3.0 * sd, window_hu)
    lower, upper = mu - half, mu + half
    region = (sm >= lower) & (sm <= upper)
    rimg = sitk.GetImageFromArray(region.astype(np.uint8))
    rimg.CopyInformation(img)
    opened = sitk.GetArrayFromImage(_open(rimg, open_mm)).astype(bool)
    starts = []
    for s in seeds:
        kji = _seed_kji(work, s)
        st = _nearest_in(opened, kji, max_vox=4)
        if st is None:
            raise InputError(f"liver seed ({s[0]:.1f}, {s[1]:.1f}, {s[2]:.1f}) mm is not in "
                             f"liver-like tissue (HU window {lower:.0f}..{upper:.0f})")
        starts.append(st)
    comp = _components_touching(opened, starts)
    # regrow what the opening removed at the border (bounded by the opening radius)
    cimg = sitk.GetImageFromArray(comp.astype(np.uint8))
    cimg.CopyInformation(img)
    grown = sitk.GetArrayFromImage(_dilate(cimg, open_mm)).astype(bool)
    comp = grown & region
    comp = _components_touching(comp, starts)
    if include is not None and include.array.any():
        # lesions belong to the liver (volumetry, remnant): add them before closing
        inc = sitk.Resample(sitk.Cast(include.to_sitk() > 0, sitk.sitkFloat32), img,
                            sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        comp |= sitk.GetArrayFromImage(inc) >= 0.5
    cimg = sitk.GetImageFromArray(comp.astype(np.uint8))
    cimg.CopyInformation(img)
    closed = sitk.GetArrayFromImage(_close(cimg, close_mm)).astype(bool)
    filled = _fill_holes_slices(closed)
    out = work.with_array(filled.astype(np.uint8))
    if grid is not ct:
        f = sitk.Resample(sitk.Cast(out.to_sitk(), sitk.sitkFloat32), ct.to_sitk(),
                          sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        arr = sitk.GetArrayFromImage(f) >= 0.5
    else:
        arr = filled
    return _mask_volume(ct, arr, structure="liver", method="liver seeded threshold + morphology",
                        seeds_lps_mm=seeds.tolist(), hu_window=(round(lower, 1), round(upper, 1)))


# ------------------------------------------------------------------ vessels
def vesselness(image: sitk.Image, sigmas_mm: Sequence[float] = (1.0, 2.0, 3.0)) -> sitk.Image:
    """Multi-scale Frangi-type vesselness of bright tubes (SimpleITK ObjectnessMeasure on
    the Hessian of Gaussian-smoothed images, scale-normalised), max over ``sigmas_mm``."""
    out = None
    for s in sigmas_mm:
        sm = sitk.SmoothingRecursiveGaussian(image, float(s))
        # ObjectnessMeasure computes the Hessian itself; scale-normalise by sigma^2
        obj = sitk.ObjectnessMeasure(sitk.Cast(sm, sitk.sitkFloat32) * float(s) ** 2,
                                     objectDimension=1, brightObject=True,
                                     scaleObjectnessMeasure=False)
        out = obj if out is None else sitk.Maximum(out, obj)
    assert out is not None
    return out


def _half_max_rim(sm: np.ndarray, core: np.ndarray, upper: float, darker_than: float,
                  allowed: np.ndarray | None, passes: int = 2) -> np.ndarray:
    """Grow a bright object by its local half-maximum edge.

    A global threshold set against the liver cuts too deep where a vessel borders fat or
    a darker lesion (its blurred edge falls below the threshold there). Where the local
    background (minimum over 5x5x5) is below ``darker_than``, each pass adds the voxels
    next to the object that reach half way between the local maximum (3x3x3, the lumen)
    and that background: the FWHM edge. Against parenchyma nothing changes."""
    from scipy.ndimage import binary_dilation, maximum_filter, minimum_filter

    out = core.copy()
    hi = maximum_filter(sm, size=3)
    lo = minimum_filter(sm, size=5)
    level = 0.5 * (hi + lo)
    for _ in range(passes):
        shell = binary_dilation(out) & ~out
        add = shell & (lo < darker_than) & (sm >= level) & (sm <= upper)
        if allowed is not None:
            add &= allowed
        if not add.any():
            break
        out |= add
    return out


def _surroundings_hu(vol: Volume, sm: np.ndarray, seeds: np.ndarray, vessel_hu: float) -> float:
    """Median HU of the tissue around vessel seeds: the soft tissue (> -200 HU: no fat or
    air) of a shell 8-15 mm from the seeds, or 15-30 mm when the first shell is mostly
    vessel (a wide vessel such as the IVC fills it: median within 30 HU of the seed)."""
    med = vessel_hu
    for r0, r1 in ((8.0, 15.0), (15.0, 30.0)):
        shell = np.concatenate([sm[_ball(vol, s, r1) & ~_ball(vol, s, r0)] for s in seeds])
        shell = shell[shell > -200.0]
        if len(shell) == 0:
            continue
        med = float(np.median(shell))
        if med < vessel_hu - 30.0:
            break
    return med


def segment_vessels(ct: Volume, seeds_lps_mm: Sequence[float] | Sequence[Sequence[float]],
                    liver: Volume | None = None, use_vesselness: bool = False,
                    lower_hu: float | None = None, liver_margin_mm: float = 10.0,
                    key: str = "vessels") -> Volume:
    """Segment the enhanced vessel tree connected to seed(s) in a vessel lumen (LPS mm).

    Threshold: half way between the vessel (median in 1.5 mm around each seed) and the
    parenchyma (median inside ``liver`` when given, else of the soft tissue darker than
    the vessel 8-15 mm (or 15-30 mm) around the seed) - the half-maximum edge of the
    vessel - unless ``lower_hu`` is given; upper
    bound vessel + 3 x (vessel - threshold) keeps bone out. Connectivity from the seeds;
    with ``liver`` the search is limited to the liver grown by ``liver_margin_mm``.
    ``use_vesselness`` adds voxels of high Hessian vesselness (above a quarter of the
    contrast) inside the liver, which recovers thin branches lost to partial volume.
    """
    seeds = _as_points(seeds_lps_mm)
    _check_inside(ct, seeds, "vessel seed")
    if liver is not None and not liver.same_geometry(ct, tol_mm=1e-3):
        raise InputError("liver mask for vessel segmentation is not on the CT grid")
    # work on the box around the liver (or the whole CT)
    if liver is not None and liver.array.any():
        nz = np.argwhere(liver.array)
        lo_kji, hi_kji = nz.min(0), nz.max(0) + 1
        pad = np.ceil(liver_margin_mm / ct.spacing_mm[::-1]).astype(int) + 2
        lo, hi = (lo_kji - pad)[::-1], (hi_kji + pad)[::-1]
        seed_idx = np.array([ct.lps_to_voxel(s) for s in seeds])
        lo = np.minimum(lo, seed_idx.min(0) - 5)
        hi = np.maximum(hi, seed_idx.max(0) + 6)
        sub = ct.crop_index(lo, hi)
        lsub = liver.crop_index(lo, hi)
    else:
        sub, lsub = ct, None
    img = _to_float_sitk(sub)
    # light smoothing (sigma 0.75 mm) keeps 2-3 mm vessels and halves the noise
    smooth = sitk.SmoothingRecursiveGaussian(img, 0.75)
    sm = sitk.GetArrayFromImage(smooth)
    vessel_vals = np.concatenate([sm[_ball(sub, s, 1.5)] for s in seeds])
    mu_v = float(np.median(vessel_vals))
    if lsub is not None:
        from scipy.ndimage import binary_erosion

        core = binary_erosion(lsub.array != 0, iterations=2)
        par = sm[core] if core.any() else sm[lsub.array != 0]
        mu_p = float(np.median(par))
    else:
        mu_p = _surroundings_hu(sub, sm, seeds, mu_v)
    if lower_hu is None:
        if mu_v - mu_p < 20.0:
            raise InputError(
                f"vessel seed: the seed ({mu_v:.0f} HU) is not brighter than the surrounding "
                f"tissue ({mu_p:.0f} HU); click inside an enhanced vessel")
        lower = 0.5 * (mu_v + mu_p)
    else:
        lower = float(lower_hu)
    upper = mu_v + 3.0 * max(mu_v - lower, 20.0)
    region = (sm >= lower) & (sm <= upper)
    allowed = None
    if lsub is not None:
        limg = sitk.Cast(lsub.to_sitk() > 0, sitk.sitkUInt8)
        dist = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
            limg, insideIsPositive=False, squaredDistance=False, useImageSpacing=True))
        allowed = dist <= liver_margin_mm
        region &= allowed
    if use_vesselness and lsub is not None:
        vn = sitk.GetArrayFromImage(vesselness(img, (1.0, 1.5, 2.5)))
        inside = lsub.array != 0
        vmax = float(np.percentile(vn[inside], 99.5)) if inside.any() else 0.0
        if vmax > 0:
            extra = inside & (vn > 0.15 * vmax) & (sm >= mu_p + 0.25 * (mu_v - mu_p))
            region |= extra
    starts = []
    for s in seeds:
        kji = _seed_kji(sub, s)
        if allowed is not None and not allowed[kji]:
            raise InputError(f"vessel seed ({s[0]:.1f}, {s[1]:.1f}, {s[2]:.1f}) mm lies more "
                             f"than {liver_margin_mm:g} mm outside the liver; click a vessel "
                             "in or near the liver (or remove the liver to search everywhere)")
        st = _nearest_in(region, kji, max_vox=2)
        if st is None:
            raise InputError(f"vessel seed ({s[0]:.1f}, {s[1]:.1f}, {s[2]:.1f}) mm is not in "
                             f"an enhanced vessel (threshold {lower:.0f} HU)")
        starts.append(st)
    comp = _components_touching(region, starts)
    # inside a known liver the parenchyma threshold is right; the rim is for the rest
    rim_ok = allowed & (lsub.array == 0) if lsub is not None and allowed is not None else None
    comp = _half_max_rim(sm, comp, upper, mu_p - 60.0, rim_ok)
    from scipy.ndimage import binary_fill_holes

    comp = binary_fill_holes(comp)
    full = _paste(ct, sub.with_array(comp.astype(np.uint8))) if sub is not ct else comp
    out = _mask_volume(ct, full, structure=key, method="vessel threshold + connectivity"
                       + (" + vesselness" if use_vesselness else ""),
                       seeds_lps_mm=seeds.tolist(), hu_window=(round(lower, 1), round(upper, 1)),
                       vessel_hu=round(mu_v, 1), parenchyma_hu=round(mu_p, 1))
    ml = float(np.count_nonzero(full)) * ct.voxel_volume_ml
    if ml > VESSEL_LEAK_ML:
        out.metadata["warning"] = (
            f"the vessel tree is {ml:.0f} mL: it probably runs into the aorta, heart or "
            "kidneys" + ("; segment the liver first to limit it" if liver is None else ""))
    return out


# ------------------------------------------------------------------ bone / lung
def _label_sizes(arr: np.ndarray, connectivity: int = 1) -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import generate_binary_structure, label

    lab, n = label(arr, structure=generate_binary_structure(3, connectivity))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    return lab, sizes


def segment_bone(ct: Volume, min_hu: float = BONE_MIN_HU, min_component_ml: float = 0.5) -> Volume:
    """Bone by threshold (``min_hu``, see BONE_MIN_HU), marrow filled per axial slice,
    components smaller than ``min_component_ml`` (calcifications, contrast specks) dropped."""
    arr = ct.array >= min_hu
    from scipy.ndimage import binary_fill_holes

    for k in range(arr.shape[0]):
        if arr[k].any():
            arr[k] = binary_fill_holes(arr[k])
    lab, sizes = _label_sizes(arr, 2)
    keep = sizes * ct.voxel_volume_ml >= min_component_ml
    keep[0] = False
    out = keep[lab]
    return _mask_volume(ct, out, structure="bone", method="bone threshold",
                        hu_window=(float(min_hu), None))


def segment_lung(ct: Volume, max_hu: float = LUNG_MAX_HU, min_component_ml: float = 20.0) -> Volume:
    """Lungs: air-like voxels (< ``max_hu``) inside the body. Air connected to the in-plane
    border of any slice (outside the patient) is removed; of the rest, components of at
    least ``min_component_ml`` and at least 10 % of the largest are kept (drops bowel
    gas in most cases), then closed (3 mm) and hole-filled per slice (lung vessels)."""
    from scipy.ndimage import binary_fill_holes

    air = ct.array < max_hu
    lab, sizes = _label_sizes(air, 1)
    border = np.zeros_like(air)
    border[:, 0, :] = border[:, -1, :] = border[:, :, 0] = border[:, :, -1] = True
    outside_ids = np.unique(lab[border & air])
    sizes[outside_ids] = 0
    if sizes.max() == 0:
        return _mask_volume(ct, np.zeros_like(air), structure="lung", method="lung threshold",
                            warning="no lung found in this CT")
    min_vox = max(min_component_ml / ct.voxel_volume_ml, 0.1 * sizes.max())
    keep = sizes >= min_vox
    keep[0] = False
    arr = keep[lab]
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.SetSpacing(tuple(float(s) for s in ct.spacing_mm))
    arr = sitk.GetArrayFromImage(_close(img, 3.0)).astype(bool)
    for k in range(arr.shape[0]):
        if arr[k].any():
            arr[k] = binary_fill_holes(arr[k])
    return _mask_volume(ct, arr, structure="lung", method="lung threshold",
                        hu_window=(None, float(max_hu)))


# ------------------------------------------------------------------ refinement
def _distance_mm(mask: Volume) -> np.ndarray:
    """Signed distance (mm) to the mask surface, negative inside (exact, anisotropic)."""
    img = sitk.Cast(mask.to_sitk() != 0, sitk.sitkUInt8)
    d = sitk.SignedMaurerDistanceMap(img, insideIsPositive=False, squaredDistance=False,
                                     useImageSpacing=True)
    return sitk.GetArrayFromImage(d)


def _refined(mask: Volume, arr: np.ndarray, op: str) -> Volume:
    out = mask.with_array(arr.astype(np.uint8))
    out.metadata["refined"] = list(mask.metadata.get("refined", [])) + [op]
    return out


def _surface_offset_mm(mask: Volume) -> float:
    """Mean depth of the outermost voxel centres below the sampled surface: about a
    quarter voxel (they lie 0..h/2 inside it). Added to centre distances so that grow /
    shrink move the *surface* by the asked mm (checked on spheres: volume within 2 %)."""
    return 0.25 * float(np.mean(mask.spacing_mm))


def grow_mm(mask: Volume, distance_mm: float) -> Volume:
    """Mask grown by ``distance_mm``: every voxel within that distance of its surface."""
    if distance_mm < 0:
        return shrink_mm(mask, -distance_mm)
    if not mask.array.any() or distance_mm == 0:
        return mask.copy()
    d_in = _distance_mm(mask)  # outside voxels: distance to the nearest inside centre
    return _refined(mask, d_in <= distance_mm + _surface_offset_mm(mask),
                    f"grow {distance_mm:g} mm")


def shrink_mm(mask: Volume, distance_mm: float) -> Volume:
    """Mask shrunk by ``distance_mm``: voxels at least that deep below its surface."""
    if distance_mm < 0:
        return grow_mm(mask, -distance_mm)
    if not mask.array.any() or distance_mm == 0:
        return mask.copy()
    img = sitk.Cast(mask.to_sitk() == 0, sitk.sitkUInt8)
    d_out = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
        img, insideIsPositive=False, squaredDistance=False, useImageSpacing=True))
    return _refined(mask, d_out > distance_mm + _surface_offset_mm(mask),
                    f"shrink {distance_mm:g} mm")


def smooth_mm(mask: Volume, sigma_mm: float = 1.0) -> Volume:
    """Smoothed surface: Gaussian (``sigma_mm``) of the mask re-thresholded at 0.5."""
    if sigma_mm <= 0 or not mask.array.any():
        return mask.copy()
    img = sitk.Cast(mask.to_sitk() != 0, sitk.sitkFloat32)
    sm = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(img, float(sigma_mm)))
    return _refined(mask, sm >= 0.5, f"smooth {sigma_mm:g} mm")


def fill_holes(mask: Volume) -> Volume:
    """Fill enclosed holes in 3-D and in every axial slice."""
    return _refined(mask, _fill_holes_slices(mask.array != 0), "fill holes")


def keep_largest_component(mask: Volume) -> Volume:
    """Keep only the largest 6-connected part."""
    arr = mask.array != 0
    if not arr.any():
        return mask.copy()
    lab, sizes = _label_sizes(arr, 1)
    return _refined(mask, lab == int(np.argmax(sizes)), "keep largest part")


# ------------------------------------------------------------------ scribbles
# Scribble refinement (grow from seeds): random walker (Grady 2006, IEEE PAMI 28(11):
# 1768-1783; scikit-image) on the smoothed HU in a lesion box resampled to at most this
# spacing (mm; speed: <= 0.5 s per update).
SCRIBBLE_SPACING_MM = 2.0
SCRIBBLE_BETA = 2000.0  # edge weight exp(-beta * dI^2) on HU scaled to 0..1 over 300 HU
SCRIBBLE_MAX_VOXELS = 50_000   # walker grid budget (CPU ~0.1-0.4 s per update)
SCRIBBLE_WALKER_MODE = "cg_j"   # "cg_mg" (pyamg): steadier on large boxes, slower setup
# an inside point frees the background label this far (mm) around it (a missed part can be
# added); points within the prior's 4 mm band free less: fewer unknowns (IRCADb 17 tumour
# 1, 3 strokes: walker 0.07-0.13 s instead of 0.3-2.2 s, Dice 0.886 instead of 0.892)
SCRIBBLE_FREE_MM = 15.0
SCRIBBLE_FREE_NEAR_MM = 8.0
# Intensity model (walker on the HU distance to the inside labels' range, widened by the
# voxels the inside strokes cross): measured with bench_segment_lesions strokes, it helps
# rims (phantom isodense rim 0.83 -> 0.98 Dice, IRCADb 17 tumour 1 after 3 strokes 0.895
# -> 0.904) but leaks on heterogeneous lesions (phantom +-25 HU 0.99 -> 0.90, x1.21) and
# costs IRCADb tumour 2 0.01; off until it holds on both.
SCRIBBLE_INTENSITY_MODEL = False


def segment_tumor_scribbles(ct: Volume, inside_lps_mm: Sequence[Sequence[float]],
                            outside_lps_mm: Sequence[Sequence[float]] = (),
                            initial: Volume | None = None, scribble_radius_mm: float = 2.5,
                            margin_mm: float = 12.0) -> Volume:
    """Lesion from inside/outside scribbles (LPS mm points; a stroke is a list of points).

    Prior: ``initial`` (e.g. the one-click result), else :func:`segment_tumor` from the
    first inside point (none when it refuses). Labels for the random walker, on a box
    around the prior and every scribble (+ ``margin_mm``) at 2 mm: inside = the prior
    eroded 3 mm + balls of ``scribble_radius_mm`` at the inside points; outside = the box
    border, the outside points' balls and everything farther than 4 mm from the prior -
    except within 15 mm of an inside point (a missed part can be added). The walker decides
    the rest from the HU edges. Result: the component(s) holding an inside point (without
    one: the prior's core), holes filled, on the CT grid. Refuses (InputError) without an
    inside point or a prior. A stroke is its points (:func:`stroke_points`).
    """
    import time as _time
    import warnings

    from skimage.segmentation import random_walker

    ins = _as_points(inside_lps_mm) if len(inside_lps_mm) else np.zeros((0, 3))
    if len(ins) == 0 and (initial is None or not initial.array.any()):
        raise InputError("scribbles: give at least one inside (tumour) point")
    outs = _as_points(outside_lps_mm) if len(outside_lps_mm) else np.zeros((0, 3))
    _check_inside(ct, ins, "tumour scribble")
    _check_inside(ct, outs, "background scribble")
    warning = ""
    if initial is None:  # (then there is an inside point)
        try:
            initial = segment_tumor(ct, ins[0])
            warning = initial.metadata.get("warning", "")
        except InputError as exc:
            initial, warning = None, f"no one-click prior ({exc})"
    pts = np.vstack([ins, outs])
    box = _bbox_kji(initial.array) if initial is not None else None
    if box is not None:
        b = initial.index_to_lps(np.stack(box)[:, ::-1].astype(float))
        pts = np.vstack([pts, b])
        lo, hi = pts.min(0), pts.max(0)
    else:
        lo, hi = pts.min(0) - 15.0, pts.max(0) + 15.0
    sub = ct.crop_lps_box(lo, hi, pad_mm=margin_mm)
    img = _to_float_sitk(sub)
    # finer than SCRIBBLE_SPACING_MM on a small box (a 2 mm grid costs a 12 mm lesion
    # ~5 % Dice), coarse enough to stay within SCRIBBLE_MAX_VOXELS
    box_mm3 = float(np.prod(np.asarray(sub.size_xyz) * sub.spacing_mm))
    sp_out = np.maximum(sub.spacing_mm, min(SCRIBBLE_SPACING_MM,
                                            (box_mm3 / SCRIBBLE_MAX_VOXELS) ** (1 / 3)))
    size = [max(2, int(round(n * s / o))) for n, s, o in
            zip(sub.size_xyz, sub.spacing_mm, sp_out)]
    grid = sitk.Image(size, sitk.sitkFloat32)
    grid.SetOrigin(img.GetOrigin())
    grid.SetDirection(img.GetDirection())
    grid.SetSpacing([float(s) for s in sp_out])
    small = sitk.Resample(sitk.SmoothingRecursiveGaussian(img, 1.0), grid, sitk.Transform(),
                          sitk.sitkLinear, -1000.0)
    work = Volume.from_sitk(small)
    data = np.clip((work.array.astype(np.float64) + 100.0) / 300.0, 0.0, 1.0)
    labels = np.zeros(data.shape, dtype=np.int32)
    if initial is not None and initial.array.any():
        prior = initial.resample_like(work, "nearest", 0).array != 0
        pimg = work.with_array(prior.astype(np.uint8)).to_sitk()
        core = sitk.GetArrayFromImage(_erode(pimg, 3.0)) != 0
        far = sitk.GetArrayFromImage(_dilate(pimg, 4.0)) == 0
        labels[far] = 2
        labels[core] = 1
    labels[0, :, :] = labels[-1, :, :] = 2
    labels[:, 0, :] = labels[:, -1, :] = 2
    labels[:, :, 0] = labels[:, :, -1] = 2
    # free the region around the inside points (a missed part can be added), then mark
    # the scribbles' balls
    if len(ins):
        kji = np.clip(np.rint(work.lps_to_index(ins)).astype(int)[:, ::-1], 0,
                      np.asarray(labels.shape) - 1)
        beyond = labels[tuple(kji.T)] == 2     # points farther than 4 mm from the prior
        free = _balls(work, ins[beyond], SCRIBBLE_FREE_MM) | _balls(
            work, ins[~beyond], SCRIBBLE_FREE_NEAR_MM)
        labels[(labels == 2) & free & ~_border(labels.shape)] = 0
    labels[_balls(work, outs, scribble_radius_mm)] = 2
    ins_balls = _balls(work, ins, scribble_radius_mm)
    labels[ins_balls] = 1
    if SCRIBBLE_INTENSITY_MODEL and (labels == 1).sum() >= 8:
        on_line = _balls(work, ins, 0.0)   # the voxels the inside strokes pass through
        data = _inside_range_distance(work.array, labels == 1, on_line) / 300.0
    t0, c0 = _time.perf_counter(), _time.process_time()
    with warnings.catch_warnings():   # "probability range outside [0, 1]" at tol 1e-2
        warnings.simplefilter("ignore", UserWarning)
        seg_ = random_walker(data, labels, beta=SCRIBBLE_BETA, mode=SCRIBBLE_WALKER_MODE,
                             tol=1e-2, spacing=tuple(work.spacing_mm[::-1]))
    walker_s = _time.perf_counter() - t0
    walker_cpu_s = _time.process_time() - c0
    res = seg_ == 1
    if len(ins):
        res = _components_touching(res, [_seed_kji(work, p) for p in ins])
    else:  # outside strokes only: the parts holding the prior's core
        from scipy.ndimage import label

        lab, _ = label(res)
        res = np.isin(lab, np.setdiff1d(np.unique(lab[labels == 1]), [0]))
    res = _fill_holes_slices(res)
    up = _paste(ct, work.with_array(res.astype(np.uint8)).resample_like(sub, "nearest", 0))
    meta = {"structure": "tumor", "method": "tumour scribbles (random walker)",
            "inside_points": len(ins), "outside_points": len(outs),
            "walker_seconds": round(walker_s, 2),
            "walker_cpu_seconds": round(walker_cpu_s, 2)}
    if warning:
        meta["warning"] = warning
    return _mask_volume(ct, up != 0, **meta)


def _balls(vol: Volume, pts: np.ndarray, radius_mm: float) -> np.ndarray:
    """Bool array: voxels of ``vol`` within ``radius_mm`` of the voxel nearest to any of
    the points (one distance map for a whole stroke; each point's voxel included)."""
    out = np.zeros(vol.array.shape, dtype=bool)
    if len(pts) == 0:
        return out
    ijk = np.rint(vol.lps_to_index(np.atleast_2d(pts))).astype(int)
    ijk = np.clip(ijk, 0, np.asarray(vol.size_xyz) - 1)
    out[ijk[:, 2], ijk[:, 1], ijk[:, 0]] = True
    img = vol.with_array(out.astype(np.uint8)).to_sitk()
    return sitk.GetArrayFromImage(_maurer(img)) <= radius_mm


def _inside_range_distance(hu: np.ndarray, inside: np.ndarray, strokes: np.ndarray
                           ) -> np.ndarray:
    """Intensity model from the inside labels: HU distance of every voxel to the lesion's
    range [low, high] (0 inside it). The range spans the 5th-95th percentile of all inside
    labels, widened to the 10th-90th percentile of the voxels the inside strokes pass
    through (a stroke on an isodense rim: the rim is then no edge, the rim/liver step
    is). Distance both ways: brighter liver and vessels and darker fat/air stay edges."""
    lo, hi = np.percentile(hu[inside], [5, 95])
    if strokes.any():
        a, b = np.percentile(hu[strokes], [10, 90])
        lo, hi = min(lo, a), max(hi, b)
    return np.maximum(0.0, np.maximum(lo - hu, hu - hi)).astype(np.float64)


def stroke_points(points_lps_mm: Sequence[Sequence[float]] | np.ndarray,
                  step_mm: float = 1.5) -> np.ndarray:
    """A painted stroke (polyline, LPS mm) as points at most ``step_mm`` apart along it
    (the mouse reports uneven, sometimes repeated positions); (N, 3)."""
    pts = _as_points(points_lps_mm)
    out = [pts[0]]
    for a, b in zip(pts[:-1], pts[1:]):
        n = int(np.ceil(float(np.linalg.norm(b - a)) / step_mm))
        out.extend(a + (b - a) * t for t in np.arange(1, n + 1) / max(n, 1))
    return np.asarray(out)


def _bbox_kji(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """First and last (k, j, i) index of the nonzero voxels, None when there is none
    (three projections: ~10x faster than argwhere on a 512x512x119 CT)."""
    lo, hi = [], []
    for ax in range(3):
        nz = np.flatnonzero(arr.any(axis=tuple(a for a in range(3) if a != ax)))
        if len(nz) == 0:
            return None
        lo.append(nz[0])
        hi.append(nz[-1])
    return np.array(lo), np.array(hi)


def _border(shape: tuple[int, ...]) -> np.ndarray:
    b = np.zeros(shape, dtype=bool)
    b[0], b[-1] = True, True
    b[:, 0], b[:, -1] = True, True
    b[:, :, 0], b[:, :, -1] = True, True
    return b
