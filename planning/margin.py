"""Minimal ablative margin (MAM), tumour coverage and margin map. LPS mm throughout.

Definition (CLINICAL.md "Margins and efficacy"; Ahmed et al. 2014, Radiology 273:241):
the margin at a point of the tumour surface is its signed Euclidean distance to the
ablation-zone surface, positive when the point lies inside the zone, negative when it lies
outside (tumour not covered). The minimal ablative margin is the minimum over the tumour
surface. 5 mm is the usual goal (ACCLAIM; Laimer 2020/2024; Wang 2013, PMC4122121).

Method (sub-voxel):

1. Both masks get a *symmetric* signed distance map on their own grid (SimpleITK Maurer
   distance to the nearest voxel centre of the other class, so the zero level lies halfway
   between the last inside and the first outside voxel centre, in mm, anisotropy honoured).
   Each crop holds the whole object plus a border, so the distances are exact, not capped.
2. Both maps are resampled (trilinear) onto one isotropic fine grid (default 0.5 mm) in a
   box around the tumour plus the required margin; the zone map may come through a
   transform (tumour space -> zone space), so a registered follow-up mask is never
   resampled as a binary image.
3. The tumour surface is the zero level of its distance map (marching cubes, scikit-image):
   vertices at sub-voxel positions with area weights. The margin at each vertex is the zone
   map interpolated there. Volumes (coverage, residual, shell) are counted on the fine grid.

Measured accuracy (tests/test_margin.py, bench/bench_evaluate.py): on analytic spheres
rasterised at 0.5 mm the MAM error is below 0.1 mm; see the bench for the bias at CT voxels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from irplan.planning.errors import GeometryError, InputError
from irplan.planning.volume import Volume

_FAR_MM = 1.0e4  # "very far" distance used outside any crop (mm)


@dataclass
class MarginResult:
    """Margin analysis of one tumour against one ablation zone (both in tumour space).

    Points are LPS mm in the tumour's (planning) frame. ``surface_*`` arrays describe the
    tumour surface mesh: vertices, triangles (vertex indices), margin and area per vertex.
    Histogram: ``histogram_edges_mm`` (n+1) with ``histogram_counts`` (vertices per bin)
    and ``histogram_area_percent`` (share of tumour surface area per bin).
    """

    minimal_margin_mm: float
    mam_point_lps_mm: np.ndarray
    tumor_volume_ml: float
    zone_volume_ml: float
    tumor_coverage_percent: float
    residual_tumor_ml: float
    shell_coverage_percent: float
    required_margin_mm: float
    surface_points_lps_mm: np.ndarray
    surface_margins_mm: np.ndarray
    surface_faces: np.ndarray
    surface_area_weights_mm2: np.ndarray
    histogram_edges_mm: np.ndarray
    histogram_counts: np.ndarray
    histogram_area_percent: np.ndarray
    surface_area_mm2: float
    surface_percent_uncovered: float        # area share with margin < 0
    surface_percent_at_risk: float          # area share with 0 <= margin < required
    surface_percent_ok: float               # area share with margin >= required
    residual_centroid_lps_mm: np.ndarray | None
    residual_components: int
    spacing_mm: float
    method: str
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when no tumour lies outside the zone (MAM >= 0)."""
        return self.minimal_margin_mm >= 0.0

    def to_dict(self, include_surface: bool = False) -> dict[str, Any]:
        """JSON-friendly summary (lists and floats); surface arrays only on request."""
        d: dict[str, Any] = {
            "minimal_margin_mm": round(float(self.minimal_margin_mm), 3),
            "mam_point_lps_mm": [round(float(v), 3) for v in self.mam_point_lps_mm],
            "tumor_volume_ml": round(self.tumor_volume_ml, 4),
            "zone_volume_ml": round(self.zone_volume_ml, 4),
            "tumor_coverage_percent": round(self.tumor_coverage_percent, 3),
            "residual_tumor_ml": round(self.residual_tumor_ml, 4),
            "shell_coverage_percent": round(self.shell_coverage_percent, 3),
            "required_margin_mm": self.required_margin_mm,
            "surface_area_mm2": round(self.surface_area_mm2, 2),
            "surface_percent_uncovered": round(self.surface_percent_uncovered, 3),
            "surface_percent_at_risk": round(self.surface_percent_at_risk, 3),
            "surface_percent_ok": round(self.surface_percent_ok, 3),
            "residual_centroid_lps_mm": (None if self.residual_centroid_lps_mm is None else
                                         [round(float(v), 3)
                                          for v in self.residual_centroid_lps_mm]),
            "residual_components": self.residual_components,
            "histogram": {
                "edges_mm": [round(float(v), 3) for v in self.histogram_edges_mm],
                "counts": [int(v) for v in self.histogram_counts],
                "area_percent": [round(float(v), 3) for v in self.histogram_area_percent],
            },
            "analysis_spacing_mm": self.spacing_mm,
            "method": self.method,
            "notes": list(self.notes),
        }
        if include_surface:
            d["surface_points_lps_mm"] = np.round(self.surface_points_lps_mm, 3).tolist()
            d["surface_margins_mm"] = np.round(self.surface_margins_mm, 3).tolist()
            d["surface_faces"] = self.surface_faces.tolist()
        return d


# ----------------------------------------------------------------------------- helpers
def _check_mask(mask: Volume, what: str) -> np.ndarray:
    """Boolean array of a mask Volume; InputError when empty."""
    arr = np.asarray(mask.array) != 0
    if not arr.any():
        src = mask.metadata.get("source_path", what)
        raise InputError(f"{src}: the {what} mask is empty (no voxel set)")
    return arr


def _bbox_ijk(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive index box (i, j, k) lo, hi of the non-zero voxels of a [k, j, i] array."""
    nz = [np.flatnonzero(arr.any(axis=tuple(a for a in range(3) if a != ax)))
          for ax in range(3)]
    lo_kji = np.array([n[0] for n in nz])
    hi_kji = np.array([n[-1] for n in nz])
    return lo_kji[::-1], hi_kji[::-1]


def symmetric_sdf(mask: sitk.Image) -> sitk.Image:
    """Signed distance (mm, float32), negative inside, zero halfway between the last inside
    and the first outside voxel centre (Maurer distances to the other class)."""
    m = sitk.Cast(mask != 0, sitk.sitkUInt8)
    d_out = sitk.SignedMaurerDistanceMap(m, insideIsPositive=False, squaredDistance=False,
                                         useImageSpacing=True)
    d_in = sitk.SignedMaurerDistanceMap(1 - m, insideIsPositive=False, squaredDistance=False,
                                        useImageSpacing=True)
    sdf = sitk.Clamp(d_out, lowerBound=0.0) - sitk.Clamp(d_in, lowerBound=0.0)
    return sitk.Cast(sdf, sitk.sitkFloat32)


def _crop_sdf(mask: Volume, arr: np.ndarray, lo_ijk: np.ndarray, hi_ijk: np.ndarray,
              border_vox: int = 2) -> sitk.Image:
    """Symmetric SDF of ``mask`` on the index box [lo, hi] (inclusive) united with the
    object's own box, zero-padded by ``border_vox`` voxels so the object is closed."""
    olo, ohi = _bbox_ijk(arr)
    lo = np.minimum(lo_ijk, olo)
    hi = np.maximum(hi_ijk, ohi)
    size = np.asarray(mask.size_xyz)
    lo = np.clip(lo, 0, size - 1)
    hi = np.clip(hi, 0, size - 1)
    sub = mask.with_array(arr.astype(np.uint8)).crop_index(lo, hi + 1).to_sitk()
    sub = sitk.ConstantPad(sub, [border_vox] * 3, [border_vox] * 3, 0)
    return symmetric_sdf(sub)


def _fine_grid(tumor: Volume, lo_ijk: np.ndarray, hi_ijk: np.ndarray, pad_mm: float,
               spacing_mm: float | None) -> Volume:
    """Empty grid (tumour's direction) covering the tumour index box plus ``pad_mm``."""
    if spacing_mm is None:
        pad_vox = np.ceil(pad_mm / tumor.spacing_mm).astype(int)
        lo = lo_ijk - pad_vox
        hi = hi_ijk + pad_vox
        size = hi - lo + 1
        origin = tumor.index_to_lps(lo.astype(np.float64))
        return Volume(np.zeros(size[::-1], np.uint8), origin, tumor.spacing_mm.copy(),
                      tumor.direction.copy())
    # box in the tumour's own axes (mm from its origin), grown by pad
    lo_mm = lo_ijk * tumor.spacing_mm - pad_mm
    hi_mm = hi_ijk * tumor.spacing_mm + pad_mm
    size = np.ceil((hi_mm - lo_mm) / spacing_mm).astype(int) + 1
    origin = tumor.origin_lps_mm + tumor.direction @ lo_mm
    return Volume(np.zeros(size[::-1], np.uint8), origin, np.full(3, float(spacing_mm)),
                  tumor.direction.copy())


def _box_points(grid: Volume, n: int = 5) -> np.ndarray:
    """n^3 LPS points spread over a grid's box (corners included)."""
    size = np.asarray(grid.size_xyz) - 1
    axes = [np.linspace(0, s, n) for s in size]
    ii, jj, kk = np.meshgrid(*axes, indexing="ij")
    return grid.index_to_lps(np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1))


def _vertex_areas(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area (same units^2 as verts) attributed to each vertex: 1/3 of adjacent triangles."""
    a = verts[faces[:, 1]] - verts[faces[:, 0]]
    b = verts[faces[:, 2]] - verts[faces[:, 0]]
    tri = 0.5 * np.linalg.norm(np.cross(a, b), axis=1)
    out = np.zeros(len(verts))
    for c in range(3):
        np.add.at(out, faces[:, c], tri / 3.0)
    return out


# ----------------------------------------------------------------------------- main API
def compute_margin(tumor: Volume, zone: Volume, required_margin_mm: float = 5.0,
                   fine_spacing_mm: float | None = 0.5,
                   zone_transform: sitk.Transform | None = None,
                   histogram_bin_mm: float = 1.0) -> MarginResult:
    """Margin analysis of a tumour mask against an ablation-zone mask.

    Args:
        tumor: uint8 mask (planning space, any grid).
        zone: uint8 mask. Without ``zone_transform`` it is in the same LPS space as the
            tumour (its grid may differ: it is sampled by physical position).
        required_margin_mm: the margin goal (5 mm, see module docstring).
        fine_spacing_mm: isotropic analysis spacing (mm) of a box around the tumour;
            None works on the tumour's own grid (fast preview, coarser).
        zone_transform: optional SimpleITK transform mapping tumour-space LPS points to
            zone-space LPS points (a registration result, fixed = planning).
        histogram_bin_mm: histogram bin width (mm).

    Raises InputError for empty masks or a zone image that does not cover the tumour.
    """
    from skimage.measure import label, marching_cubes

    if fine_spacing_mm is not None and not (0.05 <= fine_spacing_mm <= 5.0):
        raise InputError(f"fine_spacing_mm: {fine_spacing_mm} mm is outside 0.05-5 mm")
    if required_margin_mm < 0:
        raise InputError(f"required_margin_mm: must be >= 0, got {required_margin_mm}")
    t_arr = _check_mask(tumor, "tumour")
    z_arr = _check_mask(zone, "ablation zone")
    tf = zone_transform if zone_transform is not None else sitk.Transform()

    t_lo, t_hi = _bbox_ijk(t_arr)
    base_sp = float(fine_spacing_mm) if fine_spacing_mm is not None else float(
        tumor.spacing_mm.max())
    pad_mm = required_margin_mm + 2.0 * base_sp + 1.0
    grid = _fine_grid(tumor, t_lo, t_hi, pad_mm, fine_spacing_mm)
    ref = grid.to_sitk()

    # tumour SDF on its own grid (box = fine grid + 1 voxel), then onto the fine grid
    pts = _box_points(grid)
    t_idx = tumor.lps_to_index(pts)
    t_sdf = _crop_sdf(tumor, t_arr, np.floor(t_idx.min(0)).astype(int) - 1,
                      np.ceil(t_idx.max(0)).astype(int) + 1)
    t_fine = sitk.GetArrayFromImage(
        sitk.Resample(t_sdf, ref, sitk.Transform(), sitk.sitkLinear, _FAR_MM, sitk.sitkFloat32))

    # zone SDF on its own grid over the region the fine grid maps to, then onto the fine grid
    try:
        zpts = np.array([tf.TransformPoint(tuple(float(c) for c in p)) for p in pts])
    except RuntimeError as exc:
        raise GeometryError(f"zone transform cannot map the tumour region: {exc}") from None
    z_idx = zone.lps_to_index(zpts)
    # the tumour itself (not its pad) must lie inside the zone image
    tum_pts = tumor.index_to_lps(np.array([[a, b, c] for a in (t_lo[0], t_hi[0])
                                           for b in (t_lo[1], t_hi[1])
                                           for c in (t_lo[2], t_hi[2])], dtype=np.float64))
    tz = np.array([tf.TransformPoint(tuple(float(c) for c in p)) for p in tum_pts])
    if not np.all(zone.contains_lps(tz)):
        src = zone.metadata.get("source_path", "ablation zone")
        raise InputError(f"{src}: the ablation-zone image does not cover the whole tumour "
                         "(tumour box lies partly outside its field of view)")
    z_sdf = _crop_sdf(zone, z_arr, np.floor(z_idx.min(0)).astype(int) - 1,
                      np.ceil(z_idx.max(0)).astype(int) + 1)
    z_fine = -sitk.GetArrayFromImage(
        sitk.Resample(z_sdf, ref, tf, sitk.sitkLinear, _FAR_MM, sitk.sitkFloat32))
    # z_fine: positive inside the zone (mm)

    # tumour surface: zero level of its SDF (vertices in [k, j, i] index units)
    padded = np.pad(t_fine, 1, mode="constant", constant_values=_FAR_MM)
    verts_kji, faces, _normals, _vals = marching_cubes(padded, level=0.0,
                                                       allow_degenerate=False)
    verts_kji -= 1.0
    verts_ijk = verts_kji[:, ::-1]
    points = grid.index_to_lps(verts_ijk)
    from scipy.ndimage import map_coordinates

    margins = map_coordinates(z_fine, verts_kji.T, order=1, mode="nearest")
    areas = _vertex_areas(points, faces)
    total_area = float(areas.sum())

    i_min = int(np.argmin(margins))
    mam = float(margins[i_min])

    # volumes on the fine grid
    vox_ml = float(np.prod(grid.spacing_mm)) / 1000.0
    in_t = t_fine < 0
    in_z = z_fine > 0
    n_t = int(in_t.sum())
    covered = int((in_t & in_z).sum())
    residual = in_t & ~in_z
    shell = t_fine <= required_margin_mm
    n_shell = int(shell.sum())
    tumor_ml = n_t * vox_ml
    coverage = 100.0 * covered / n_t if n_t else 0.0
    shell_cov = 100.0 * int((shell & in_z).sum()) / n_shell if n_shell else 0.0
    residual_ml = int(residual.sum()) * vox_ml
    centroid = None
    n_comp = 0
    if residual.any():
        _lab, n_comp = label(residual, return_num=True, connectivity=3)
        kji = np.argwhere(residual).mean(axis=0)
        centroid = grid.index_to_lps(kji[::-1])

    # histogram of margins (area-weighted and by vertex)
    lo_e = np.floor(min(margins.min(), 0.0) / histogram_bin_mm) * histogram_bin_mm
    hi_e = np.ceil(max(margins.max(), required_margin_mm) / histogram_bin_mm) * histogram_bin_mm
    if hi_e <= lo_e:
        hi_e = lo_e + histogram_bin_mm
    edges = np.arange(lo_e, hi_e + 0.5 * histogram_bin_mm, histogram_bin_mm)
    counts, _ = np.histogram(margins, bins=edges)
    area_hist, _ = np.histogram(margins, bins=edges, weights=areas)
    area_pct = 100.0 * area_hist / total_area if total_area > 0 else area_hist

    def pct(sel: np.ndarray) -> float:
        return 100.0 * float(areas[sel].sum()) / total_area if total_area > 0 else 0.0

    zone_ml = float(z_arr.sum()) * zone.voxel_volume_ml
    notes: list[str] = []
    if fine_spacing_mm is None:
        notes.append("preview on the tumour grid: margins biased low by up to ~half a voxel")
    return MarginResult(
        minimal_margin_mm=mam,
        mam_point_lps_mm=points[i_min].copy(),
        tumor_volume_ml=tumor_ml,
        zone_volume_ml=zone_ml,
        tumor_coverage_percent=coverage,
        residual_tumor_ml=residual_ml,
        shell_coverage_percent=shell_cov,
        required_margin_mm=float(required_margin_mm),
        surface_points_lps_mm=points,
        surface_margins_mm=margins.astype(np.float64),
        surface_faces=faces.astype(np.int64),
        surface_area_weights_mm2=areas,
        histogram_edges_mm=edges,
        histogram_counts=counts,
        histogram_area_percent=np.asarray(area_pct, dtype=np.float64),
        surface_area_mm2=total_area,
        surface_percent_uncovered=pct(margins < 0),
        surface_percent_at_risk=pct((margins >= 0) & (margins < required_margin_mm)),
        surface_percent_ok=pct(margins >= required_margin_mm),
        residual_centroid_lps_mm=centroid,
        residual_components=int(n_comp),
        spacing_mm=float(grid.spacing_mm.max()),
        method="symmetric signed distance maps, trilinear, marching cubes",
        notes=notes,
    )
