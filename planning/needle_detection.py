"""Needle detection on an intra-procedural CT: tip and axis of every metal needle, IRE
electrode or thermal antenna, sub-voxel. LPS mm; no Qt/VTK.

Method (classical, no training data) and why:

1. **Metal mask**: voxels >= ``threshold_hu`` (default 1500 HU: above liver, contrast
   and most cortical bone, below the 2500-3071 HU of steel even with partial volume of a
   19 G shaft). Work happens on those voxels only (a 512x512x300 CT with six needles has
   ~10^4 of them), so the cost is one comparison over the image plus a few hundred
   thousand point operations.
2. **Thick metal is not a needle**: the local fill of the mask in a ~9 mm box (separable
   box filter) is ~0.1-0.3 for a needle whose bloom is 2-4 mm wide and ~1 for bone,
   contrast or a calcification; voxels whose fill exceeds ``max_fill`` (0.45) and their
   neighbourhood are dropped. Blooming is handled because the bloom is symmetric about
   the shaft: every step below fits the axis through the bloom's centre.
3. **Sequential RANSAC line fits** on all remaining points at once (not per connected
   component): a needle broken into dashes (thick slices with a needle nearly in the
   slice plane, streak drop-outs) is one line whose points are collinear, so fragments
   are merged with no extra rule; two needles whose blooms touch are two lines, and
   removing the first line's inliers leaves the second one intact (split). Each
   hypothesis is refined by weighted PCA on its inliers (``inlier_mm``), cut to its
   longest run with gaps <= ``max_gap_mm``, and kept only when it is long (>=
   ``min_length_mm``), thin (RMS distance to the axis <= ``max_rms_mm``) and isolated
   (few mask points just outside the inlier radius: a line through a blob is not).
   Nearly collinear lines left over (gap wider than ``max_gap_mm``) are merged.
4. **Tip at the half maximum** of the intensity profile along the fitted axis (trilinear
   samples every 0.1 mm, averaged over a 0.5 mm ring, between the metal plateau and the
   tissue beyond): for a symmetric scanner point-spread the half-maximum of a rod's end
   is its end whatever the blur and bloom width, so the tip is sub-voxel.
5. **Which end is the tip**: the end from which tissue continues (the other end leaves
   the body or the image). **Entry** (a point on the axis): where a 16-point ring of
   radius 4 mm around the shaft is half in air (the skin crossing: unbiased for a locally
   flat skin), else where the metal or the image ends.

A deep network (arXiv 2509.17931: 1.05 +- 0.36 mm on 100 patients) needs training data
and weights this project does not ship; the classical chain reaches the bench's goals
(bench/bench_needle_detection.py) with stated, inspectable rules.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import label, map_coordinates, maximum_filter, uniform_filter

from irplan.planning.errors import CancelledError, InputError
from irplan.planning.volume import Volume

AIR_HU = -400.0          # below: air (outside the body, lung)
FILL_BOX_MM = 9.0        # local fill box (step 2 of the module doc)


@dataclass
class DetectionOptions:
    """Detection parameters (module doc explains each)."""

    threshold_hu: float | None = None   # None: 1500 HU, 1000 HU for slices > 2 mm
    core_hu: float | None = None        # a needle's metal core reaches this somewhere;
    #                                     None: 2000 HU, 1500 HU for slices > 2 mm
    max_fill: float = 0.45
    inlier_mm: float = 3.0
    min_length_mm: float = 20.0
    max_gap_mm: float | None = None     # None: 15 mm, 30 mm for slices > 2 mm
    max_rms_mm: float = 2.0
    max_shell_ratio: float = 0.6
    max_needles: int = 12
    ransac_iterations: int = 400
    seed: int = 0


@dataclass
class DetectedNeedle:
    """One needle: ``tip_lps_mm`` (half-maximum end), ``entry_lps_mm`` (on the axis where
    the metal leaves the body or the image), ``direction`` unit entry -> tip."""

    tip_lps_mm: np.ndarray
    entry_lps_mm: np.ndarray
    direction: np.ndarray
    visible_length_mm: float
    rms_mm: float
    points: int
    entry_at: str                       # "skin" | "image edge" | "metal end"
    tip_method: str                     # "half-maximum" | "mask end"

    def to_dict(self) -> dict[str, Any]:
        return {"tip_lps_mm": [round(float(v), 3) for v in self.tip_lps_mm],
                "entry_lps_mm": [round(float(v), 3) for v in self.entry_lps_mm],
                "direction": [round(float(v), 5) for v in self.direction],
                "visible_length_mm": round(self.visible_length_mm, 2),
                "axis_rms_mm": round(self.rms_mm, 3), "metal_voxels": self.points,
                "entry_at": self.entry_at, "tip_method": self.tip_method}


@dataclass
class DetectionResult:
    needles: list[DetectedNeedle] = field(default_factory=list)
    threshold_hu: float = 0.0
    metal_voxels: int = 0
    rejected: list[str] = field(default_factory=list)   # candidate lines not kept, why
    timings_s: dict[str, float] = field(default_factory=dict)


def detect_needles(ct: Volume, options: DetectionOptions | None = None, *,
                   progress: Callable[[float, str], None] | None = None,
                   cancel: Callable[[], bool] | None = None) -> DetectionResult:
    """Every needle in ``ct`` (HU Volume, any grid orientation). No needle = empty list."""
    from dataclasses import replace

    opts = replace(options or DetectionOptions())
    t0 = time.perf_counter()
    thick_slices = float(ct.spacing_mm[2]) > 2.0
    if opts.threshold_hu is None:
        opts.threshold_hu = 1000.0 if thick_slices else 1500.0
    if opts.core_hu is None:
        opts.core_hu = 1500.0 if thick_slices else 2000.0
    if opts.max_gap_mm is None:
        opts.max_gap_mm = 30.0 if thick_slices else 15.0
    arr = ct.array
    if arr.dtype.kind not in "iuf":
        raise InputError(f"needle detection: the CT must hold numbers (HU), got {arr.dtype}")
    res = DetectionResult(threshold_hu=float(opts.threshold_hu))
    mask = arr >= opts.threshold_hu
    res.metal_voxels = int(np.count_nonzero(mask))
    if res.metal_voxels == 0:
        res.timings_s["total_s"] = time.perf_counter() - t0
        return res
    ks, js, is_ = (np.flatnonzero(mask.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1)))
    pad = 4
    lo = np.array([max(is_[0] - pad, 0), max(js[0] - pad, 0), max(ks[0] - pad, 0)])
    hi = np.array([is_[-1] + pad + 1, js[-1] + pad + 1, ks[-1] + pad + 1])
    sub = mask[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    box = np.maximum(1, np.rint(FILL_BOX_MM / ct.spacing_mm[::-1])).astype(int) | 1
    fill = uniform_filter(sub.astype(np.float32), size=box, mode="constant")
    thick = maximum_filter(fill > opts.max_fill, size=box, mode="constant")
    keep = sub & ~thick
    # metal: only connected pieces that reach the metal core level somewhere
    lab, _ = label(keep, structure=np.ones((3, 3, 3), bool))
    core = arr[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] >= opts.core_hu
    good = np.unique(lab[keep & core])
    keep &= np.isin(lab, good[good > 0])
    kji = np.argwhere(keep)
    res.timings_s["mask_s"] = time.perf_counter() - t0
    if progress:
        progress(0.3, "fitting needle axes")
    if len(kji) < 3:
        if np.any(thick & sub):
            res.rejected.append("metal-bright voxels are all thick (bone, contrast, "
                                "calcification), not needles")
        res.timings_s["total_s"] = time.perf_counter() - t0
        return res
    ijk = kji[:, ::-1] + lo
    hu = arr[kji[:, 0] + lo[2], kji[:, 1] + lo[1], kji[:, 2] + lo[0]].astype(np.float64)
    pts = ct.index_to_lps(ijk.astype(np.float64))
    w = np.clip(hu - opts.threshold_hu, 0.0, None) + 1.0
    lines = _sequential_ransac(pts, w, opts, res.rejected, cancel)
    lines = _merge_collinear(lines, pts, w, opts)
    res.timings_s["lines_s"] = time.perf_counter() - t0 - res.timings_s["mask_s"]
    if progress:
        progress(0.7, "tips and entries")
    sampler = _Sampler(ct)
    for c, d, t_lo, t_hi, rms, n in lines:
        if cancel is not None and cancel():
            raise CancelledError("needle detection cancelled")
        res.needles.append(_finish_needle(sampler, c, d, t_lo, t_hi, rms, n))
    res.needles.sort(key=lambda nd: tuple(nd.tip_lps_mm))
    res.timings_s["total_s"] = time.perf_counter() - t0
    return res


# ----------------------------------------------------------------------------- lines
def _pca(p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c = (p * w[:, None]).sum(axis=0) / w.sum()
    q = (p - c) * np.sqrt(w)[:, None]
    _, _, vt = np.linalg.svd(q, full_matrices=False)
    return c, vt[0] / np.linalg.norm(vt[0])


def _perp_dist(p: np.ndarray, c: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rel = p - c
    t = rel @ d
    r2 = np.einsum("ij,ij->i", rel, rel) - t * t
    return np.sqrt(np.maximum(r2, 0.0)), t


def _longest_run(t: np.ndarray, gap_mm: float) -> tuple[float, float]:
    """(lo, hi) of the run of sorted ``t`` with gaps <= gap_mm holding the most points."""
    s = np.sort(t)
    cuts = np.flatnonzero(np.diff(s) > gap_mm)
    starts = np.r_[0, cuts + 1]
    ends = np.r_[cuts, len(s) - 1]
    k = int(np.argmax(ends - starts))
    return float(s[starts[k]]), float(s[ends[k]])


def _sequential_ransac(pts: np.ndarray, w: np.ndarray, opts: DetectionOptions,
                       rejected: list[str], cancel: Callable[[], bool] | None) -> list[tuple]:
    rng = np.random.default_rng(opts.seed)
    alive = np.ones(len(pts), bool)
    lines: list[tuple] = []
    min_pts = 6
    misses = 0
    for _ in range(opts.max_needles * 6):
        if cancel is not None and cancel():
            raise CancelledError("needle detection cancelled")
        idx = np.flatnonzero(alive)
        # 15 rejected lines in a row: what is left is bone/fragments, not needles
        if len(idx) < min_pts or len(lines) >= opts.max_needles or misses >= 15:
            break
        p, pw = pts[idx], w[idx]
        sample = p if len(p) <= 4000 else p[rng.choice(len(p), 4000, replace=False)]
        a = rng.integers(0, len(p), opts.ransac_iterations)
        b = rng.integers(0, len(p), opts.ransac_iterations)
        dvec = p[b] - p[a]
        norm = np.linalg.norm(dvec, axis=1)
        ok = norm >= 5.0
        if not np.any(ok):
            best_c, best_d = _pca(p, pw)
        else:
            a, dvec = a[ok], dvec[ok] / norm[ok, None]
            # squared distances of every sample to every hypothesis line by matrix
            # products: |s - a|^2 - ((s - a) . d)^2 (points centred: small numbers)
            mid = sample.mean(axis=0)
            sc = sample - mid
            ca = p[a] - mid
            t = dvec @ sc.T - np.einsum("hk,hk->h", ca, dvec)[:, None]
            r2 = (np.einsum("nk,nk->n", sc, sc)[None, :] - 2.0 * (ca @ sc.T)
                  + np.einsum("hk,hk->h", ca, ca)[:, None] - t * t)
            score = (r2 <= opts.inlier_mm ** 2).sum(axis=1)
            h = int(np.argmax(score))
            best_c, best_d = p[a[h]], dvec[h]
        c, d = best_c, best_d
        for _ in range(3):                           # refine: PCA on inliers of the run
            r, t = _perp_dist(p, c, d)
            inl = r <= opts.inlier_mm
            if inl.sum() < 2:
                break
            lo_t, hi_t = _longest_run(t[inl], opts.max_gap_mm)
            inl &= (t >= lo_t) & (t <= hi_t)
            if inl.sum() < 2:
                break
            c, d = _pca(p[inl], pw[inl])
        r, t = _perp_dist(p, c, d)
        inl = r <= opts.inlier_mm
        if inl.sum() >= 2:
            lo_t, hi_t = _longest_run(t[inl], opts.max_gap_mm)
        else:
            lo_t = hi_t = 0.0
        inl &= (t >= lo_t) & (t <= hi_t)
        along = (t >= lo_t - 2.0) & (t <= hi_t + 2.0)
        remove = along & (r <= opts.inlier_mm + 2.0)
        remove[np.argmin(np.abs(t) + r)] = True       # always progress
        length = hi_t - lo_t
        n_in = int(inl.sum())
        rms = float(np.sqrt(np.average(r[inl] ** 2, weights=pw[inl]))) if n_in else 0.0
        # isolation against every candidate point (also those removed with earlier
        # lines: a bone chipped by earlier fits must not look thin)
        r_all, t_all = _perp_dist(pts, c, d)
        shell = int(((t_all >= lo_t - 2.0) & (t_all <= hi_t + 2.0) & (r_all > opts.inlier_mm)
                     & (r_all <= opts.inlier_mm + 4.0)).sum())
        alive[idx[remove]] = False
        misses += 1                 # reset when the line is kept
        if n_in < min_pts or length < opts.min_length_mm:
            if n_in >= min_pts and length >= 5.0:
                rejected.append(f"metal fragment {length:.0f} mm long (< "
                                f"{opts.min_length_mm:g} mm): not a needle")
            continue
        if float(np.max(pw[inl])) + opts.threshold_hu - 1.0 < opts.core_hu:
            rejected.append(f"line {length:.0f} mm never reaches {opts.core_hu:g} HU: not metal")
            continue
        if rms > opts.max_rms_mm or shell > opts.max_shell_ratio * n_in:
            rejected.append(f"metal line {length:.0f} mm not thin/isolated (RMS {rms:.1f} mm, "
                            f"{shell} points around {n_in}): not a needle")
            continue
        c_mid = c + d * (lo_t + hi_t) / 2
        lines.append((c_mid, d, -length / 2, length / 2, rms, n_in))
        misses = 0
    return lines


def _merge_collinear(lines: list[tuple], pts: np.ndarray, w: np.ndarray,
                     opts: DetectionOptions) -> list[tuple]:
    """Join lines within 3 deg and 2 mm of each other's axis (fragments of one needle
    separated by more than ``max_gap_mm``)."""
    lines = list(lines)
    merged = True
    while merged and len(lines) > 1:
        merged = False
        for i in range(len(lines)):
            for j in range(i + 1, len(lines)):
                ci, di = lines[i][0], lines[i][1]
                cj, dj = lines[j][0], lines[j][1]
                if abs(float(di @ dj)) < math.cos(math.radians(3.0)):
                    continue
                rel = cj - ci
                off = np.linalg.norm(rel - (rel @ di) * di)
                if off > 2.0:
                    continue
                ends = np.array([ci + di * lines[i][2], ci + di * lines[i][3],
                                 cj + dj * lines[j][2], cj + dj * lines[j][3]])
                r, t = _perp_dist(pts, ci, di)
                lo_t = float(np.min((ends - ci) @ di))
                hi_t = float(np.max((ends - ci) @ di))
                sel = (r <= opts.inlier_mm) & (t >= lo_t - 1) & (t <= hi_t + 1)
                c, d = _pca(pts[sel], w[sel]) if sel.sum() >= 2 else (ci, di)
                tt = (ends - c) @ d
                rms = float(np.sqrt(np.mean(_perp_dist(pts[sel], c, d)[0] ** 2)))
                mid = c + d * (tt.min() + tt.max()) / 2
                half = (tt.max() - tt.min()) / 2
                lines[i] = (mid, d, -half, half, rms, int(sel.sum()))
                del lines[j]
                merged = True
                break
            if merged:
                break
    return lines


# ----------------------------------------------------------------------------- ends
class _Sampler:
    """Trilinear HU at LPS points; NaN outside the image."""

    def __init__(self, ct: Volume) -> None:
        self.ct = ct
        self.a = ct.array

    def __call__(self, p: np.ndarray) -> np.ndarray:
        idx = np.atleast_2d(self.ct.lps_to_index(p))
        return map_coordinates(self.a, idx[:, ::-1].T, order=1, mode="constant",
                               cval=np.nan, output=np.float64)


def _ring(d: np.ndarray, radius: float, n: int) -> np.ndarray:
    u = np.cross(d, [0.0, 0.0, 1.0])
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(d, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    a = 2 * np.pi * np.arange(n) / n
    return radius * (np.cos(a)[:, None] * u + np.sin(a)[:, None] * v)


def _outside_from(sampler: _Sampler, end: np.ndarray, out_dir: np.ndarray,
                  max_mm: float = 80.0) -> tuple[float, str]:
    """Distance (mm) from ``end`` along ``out_dir`` to where the axis leaves the body
    (ring half in air) or the image; (max_mm, "") when it does not."""
    s = np.arange(0.0, max_mm, 0.5)
    ring = _ring(out_dir, 4.0, 16)
    p = end[None, None, :] + s[:, None, None] * out_dir + ring[None, :, :]
    v = sampler(p.reshape(-1, 3)).reshape(len(s), len(ring))
    off_image = np.isnan(v).mean(axis=1) >= 0.5
    air = (np.nan_to_num(v, nan=AIR_HU) < AIR_HU).mean(axis=1)
    for k in range(len(s)):
        if off_image[k]:
            return float(s[k]), "image edge"
        if air[k] >= 0.5:
            frac0 = air[k - 1] if k else 0.0
            sk = s[k] - (0.5 * (air[k] - 0.5) / max(air[k] - frac0, 1e-9) if k else 0.0)
            return float(sk), "skin"
    return float(max_mm), ""


def _finish_needle(sampler: _Sampler, c: np.ndarray, d: np.ndarray, t_lo: float,
                   t_hi: float, rms: float, n: int) -> DetectedNeedle:
    end_a, end_b = c + t_lo * d, c + t_hi * d
    sa, _ = _outside_from(sampler, end_a, -d)
    sb, _ = _outside_from(sampler, end_b, d)
    if sa <= sb:                     # end a leaves the body first: it is the entry side
        direction, tip0, hub = d, end_b, end_a
    else:
        direction, tip0, hub = -d, end_a, end_b
    tip, method = _half_max_tip(sampler, tip0, direction)
    length = float(np.linalg.norm(tip - hub))
    s_out, why = _outside_from(sampler, tip, -direction, max_mm=length + 1.0)
    if why:
        entry = tip - s_out * direction
    else:
        entry, why = hub, "metal end"
    return DetectedNeedle(tip, entry, direction, length, rms, n, why, method)


def _half_max_tip(sampler: _Sampler, tip0: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, str]:
    """Tip where the axial profile falls to half-way between the metal plateau and the
    tissue beyond (module doc step 4); the mask end when the profile is unusable."""
    s = np.arange(-15.0, 12.0, 0.1)
    ring = np.vstack([np.zeros((1, 3)), _ring(d, 0.5, 6)])
    p = tip0[None, None, :] + s[:, None, None] * d + ring[None, :, :]
    with np.errstate(invalid="ignore"):
        v = np.nanmean(sampler(p.reshape(-1, 3)).reshape(len(s), len(ring)), axis=1)
    inside = (s >= -12.0) & (s <= -3.0)
    beyond = (s >= 5.0) & (s <= 11.0)
    if not np.any(np.isfinite(v[inside])) or not np.any(np.isfinite(v[beyond])):
        return tip0, "mask end"
    plateau = float(np.nanpercentile(v[inside], 75))
    background = float(np.nanmedian(v[beyond]))
    half = 0.5 * (plateau + background)
    if plateau - background < 300.0:
        return tip0, "mask end"
    k0 = int(np.searchsorted(s, -3.0))
    below = np.flatnonzero(~(v[k0:] >= half))
    if len(below) == 0:
        return tip0, "mask end"
    k = k0 + int(below[0])
    if k == 0 or not np.isfinite(v[k]):
        return tip0 + s[k] * d, "half-maximum"
    v0, v1 = v[k - 1], v[k]
    frac = (v0 - half) / (v0 - v1) if v0 != v1 else 0.0
    return tip0 + (s[k - 1] + frac * (s[k] - s[k - 1])) * d, "half-maximum"
