"""Semi-automatic ablation-zone segmentation on the follow-up ceCT (HU, LPS mm).

At one month the ablation zone is a non-enhancing, hypodense region inside enhancing
liver (portal venous phase: zone ~20-40 HU against liver ~100-110 HU; Bae, Radiology
2010;256:32-61 for liver enhancement; Ahmed et al. 2014, Radiology 273:241, for the
definition of the ablation zone on follow-up imaging). From one click inside it:

1. Gaussian smoothing (sigma 1 mm) in a box around the click;
2. zone level = median near the click, liver level = the most frequent brighter value
   around it; the HU window is [zone - max(3 SD, 40), zone + ``edge_fraction`` x
   (liver - zone)] (half-contrast edge), unless the user gives ``hu_window``;
3. region growing (SimpleITK ConnectedThreshold) from the click inside that window,
   bounded by a ball of ``max_radius_mm`` (and by the liver mask when given);
4. morphology: opening ``open_mm`` (cuts thin bridges into vessels/bowel), the component
   holding the click, closing ``close_mm`` and hole filling (needle tracts, gas, debris).

The result is a uint8 mask on the follow-up grid; its metadata records the method, the
window and the levels, so the user sees what was done. Editing goes through the anatomy
tools (grow/shrink/paint) of :mod:`irplan.planning.segmentation`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from irplan.planning.errors import InputError
from irplan.planning.volume import Volume


def _ball(vol: Volume, centre: np.ndarray, radius_mm: float) -> np.ndarray:
    k, j, i = np.meshgrid(*(np.arange(n) for n in vol.array.shape), indexing="ij")
    p = vol.index_to_lps(np.stack([i, j, k], axis=-1).astype(np.float64))
    return np.linalg.norm(p - centre, axis=-1) <= radius_mm


def segment_ablation_zone(ct: Volume, seed_lps_mm: Sequence[float],
                          hu_window: tuple[float, float] | None = None,
                          max_radius_mm: float = 50.0, edge_fraction: float = 0.5,
                          liver: Volume | None = None, open_mm: float = 1.5,
                          close_mm: float = 3.0) -> Volume:
    """Ablation zone grown from a click inside the non-enhancing zone (see module doc).

    Raises InputError when the click lies outside the scan, or no zone is found there.
    """
    seed = np.asarray(seed_lps_mm, dtype=np.float64).reshape(3)
    if not bool(ct.contains_lps(seed)):
        raise InputError(f"ablation seed ({seed[0]:.1f}, {seed[1]:.1f}, {seed[2]:.1f}) mm "
                         "lies outside the follow-up scan")
    if max_radius_mm <= 0:
        raise InputError(f"max_radius_mm must be > 0, got {max_radius_mm}")
    sub = ct.crop_lps_box(seed, seed, pad_mm=max_radius_mm + 3.0)
    img = sitk.Cast(sub.to_sitk(), sitk.sitkFloat32)
    smooth = sitk.SmoothingRecursiveGaussian(img, 1.0)
    sm = sitk.GetArrayFromImage(smooth)
    ball = _ball(sub, seed, max_radius_mm)
    core = sm[_ball(sub, seed, 4.0)]
    mu = float(np.median(core))
    sd = float(1.4826 * np.median(np.abs(core - mu)))
    liver_level = None
    if hu_window is None:
        lo_gap = max(3.0 * sd, 40.0)
        vals = sm[ball]
        vals = vals[(vals > mu + max(3.0 * sd, 15.0)) & (vals < mu + 300.0)]
        up = max(3.0 * sd, 15.0)
        if len(vals) > 100:
            hist, edges = np.histogram(vals, bins=np.arange(vals.min(), vals.max() + 4.0, 4.0))
            if len(hist) >= 3:
                hist = np.convolve(hist, np.ones(3) / 3.0, mode="same")
            liver_level = float(edges[int(np.argmax(hist))] + 2.0)
            up = max(up, edge_fraction * (liver_level - mu))
        lower, upper = mu - lo_gap, mu + up
    else:
        lower, upper = (float(v) for v in hu_window)
        if not lower < upper:
            raise InputError(f"hu_window: lower {lower} must be below upper {upper}")
    if not (lower <= sm[tuple(np.clip(np.rint(sub.lps_to_index(seed)[::-1]).astype(int), 0,
                                      np.asarray(sm.shape) - 1))] <= upper):
        raise InputError(f"ablation seed ({seed[0]:.1f}, {seed[1]:.1f}, {seed[2]:.1f}) mm: "
                         f"the image there is outside the window {lower:.0f}..{upper:.0f} HU; "
                         "click inside the non-enhancing zone")
    allowed = ball
    if liver is not None:
        lv = liver.resample_like(sub, "nearest").array != 0
        if lv.any():
            allowed = allowed & lv
    region = ((sm >= lower) & (sm <= upper) & allowed).astype(np.uint8)
    reg_img = sitk.GetImageFromArray(region)
    reg_img.CopyInformation(smooth)
    seed_idx = tuple(int(v) for v in np.clip(np.rint(sub.lps_to_index(seed)),
                                             0, np.asarray(sub.size_xyz) - 1))
    spacing = np.asarray(sub.spacing_mm)

    def radius(mm: float) -> list[int]:
        return [max(0, int(round(mm / s))) for s in spacing]

    grown = sitk.ConnectedThreshold(reg_img, seedList=[seed_idx], lower=1, upper=1)
    if open_mm > 0:
        opened = sitk.BinaryMorphologicalOpening(grown, radius(open_mm), sitk.sitkBall)
        if sitk.GetArrayViewFromImage(opened)[seed_idx[::-1]]:
            grown = sitk.ConnectedThreshold(opened, seedList=[seed_idx], lower=1, upper=1)
    if close_mm > 0:
        grown = sitk.BinaryMorphologicalClosing(grown, radius(close_mm), sitk.sitkBall)
    grown = sitk.BinaryFillhole(grown)
    arr = sitk.GetArrayFromImage(grown).astype(bool) & ball
    if arr.sum() < 8:
        raise InputError(f"ablation seed ({seed[0]:.1f}, {seed[1]:.1f}, {seed[2]:.1f}) mm: "
                         "no zone found around the click")
    if arr[0].any() or arr[-1].any() or arr[:, 0].any() or arr[:, -1].any() \
            or arr[:, :, 0].any() or arr[:, :, -1].any():
        bound_note = "reached the search bound: check for a leak"
    else:
        bound_note = ""
    full = np.zeros(ct.array.shape, np.uint8)
    lo = np.rint(ct.lps_to_index(sub.origin_lps_mm)).astype(int)
    k0, j0, i0 = lo[2], lo[1], lo[0]
    kk, jj, ii = arr.shape
    full[k0:k0 + kk, j0:j0 + jj, i0:i0 + ii] = arr
    meta = {"structure": "ablation_zone", "method": "ablation-zone click region growing",
            "seed_lps_mm": seed.tolist(), "hu_window": (round(lower, 1), round(upper, 1)),
            "zone_hu": round(mu, 1), "liver_hu": liver_level,
            "volume_ml": float(arr.sum()) * ct.voxel_volume_ml}
    if bound_note:
        meta["warning"] = bound_note
    return ct.with_array(full, **meta)
