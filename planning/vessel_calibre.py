"""Local vessel calibre (diameter in mm) from a binary vessel mask, LPS mm.

Method: the centreline is the skeleton of the mask (SimpleITK BinaryThinning, a 3-D
topology-preserving thinning); the exact Euclidean distance map (SimpleITK
SignedMaurerDistanceMap, in mm) gives the distance from each vessel voxel to the nearest
background voxel centre. On a voxelised tube of radius r that distance peaks at about r
on the axis, so the local diameter is twice the largest distance within one voxel of the
centreline (the thinned line can sit a voxel off the axis). Checked on oblique cylinders
of radius 1.5-7 mm at 0.75-1.5 mm spacing: within 0.6 mm of the true diameter
(tests/test_segmentation.py).
Every vessel voxel then takes the diameter of its nearest centreline voxel.
Used by safety checks (vessels > 3 mm near a thermal zone: heat sink, CLINICAL.md) and
reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from irplan.planning.volume import Volume


@dataclass
class VesselCalibre:
    """Result of :func:`vessel_calibre`.

    ``diameter_mm``: float32 Volume on the mask grid, local diameter (mm) on vessel voxels,
    0 elsewhere. ``centreline_lps_mm`` (N, 3) and ``centreline_diameter_mm`` (N,) list the
    skeleton points with their diameter.
    """

    diameter_mm: Volume
    centreline_lps_mm: np.ndarray
    centreline_diameter_mm: np.ndarray

    def diameter_at_lps(self, p_lps_mm: np.ndarray | list[float]) -> float:
        """Local diameter (mm) at an LPS point (nearest voxel; 0 outside the vessels)."""
        v = self.diameter_mm.value_at_lps(p_lps_mm, order=0, outside=0.0)
        return float(v)

    def max_diameter_within_mm(self, p_lps_mm: np.ndarray | list[float],
                               radius_mm: float) -> float:
        """Largest centreline diameter (mm) within ``radius_mm`` of a point (0 if none)."""
        if len(self.centreline_lps_mm) == 0:
            return 0.0
        d = np.linalg.norm(self.centreline_lps_mm - np.asarray(p_lps_mm, float), axis=1)
        near = d <= radius_mm
        return float(self.centreline_diameter_mm[near].max()) if near.any() else 0.0


def vessel_calibre(vessels: Volume) -> VesselCalibre:
    """Local diameter map (mm) of a binary vessel mask; see the module docstring."""
    arr = vessels.array != 0
    empty = vessels.with_array(np.zeros(arr.shape, np.float32))
    if not arr.any():
        return VesselCalibre(empty, np.zeros((0, 3)), np.zeros(0))
    # work in the bounding box (+1 voxel so the background surrounds the tree)
    nz = np.argwhere(arr)
    lo = np.maximum(nz.min(0) - 1, 0)
    hi = np.minimum(nz.max(0) + 2, arr.shape)
    sub = vessels.crop_index(lo[::-1], hi[::-1])
    sub_arr = np.ascontiguousarray(arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], dtype=np.uint8)
    img = sitk.GetImageFromArray(sub_arr)
    img.CopyInformation(sub.to_sitk())
    pad = [1, 1, 1]
    img = sitk.ConstantPad(img, pad, pad, 0)
    dist = sitk.SignedMaurerDistanceMap(sitk.Cast(img == 0, sitk.sitkUInt8),
                                        insideIsPositive=False, squaredDistance=False,
                                        useImageSpacing=True)
    dist = sitk.GetArrayFromImage(sitk.Crop(dist, pad, pad))
    skel = sitk.GetArrayFromImage(sitk.Crop(sitk.BinaryThinning(img), pad, pad)).astype(bool)
    skel &= sub_arr.astype(bool)
    if not skel.any():  # a blob too small to thin: its deepest voxel is the centre
        skel[np.unravel_index(np.argmax(dist), dist.shape)] = True
    # the thinned line may sit up to a voxel off the true axis: take the deepest point
    # in its 3x3x3 neighbourhood
    from scipy.ndimage import maximum_filter

    depth = maximum_filter(np.where(sub_arr.astype(bool), dist, 0.0), size=3)
    diam_skel = np.maximum(2.0 * depth, float(np.min(vessels.spacing_mm)))
    from scipy.ndimage import distance_transform_edt

    idx = np.zeros((3,) + skel.shape, dtype=np.int32)  # int32: half the memory
    distance_transform_edt(~skel, sampling=vessels.spacing_mm[::-1], return_distances=False,
                           return_indices=True, indices=idx)
    ik, ij, ii = idx
    diam_sub = np.where(sub_arr.astype(bool), diam_skel[ik, ij, ii], 0.0).astype(np.float32)
    full = np.zeros(arr.shape, np.float32)
    full[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = diam_sub
    kji = np.argwhere(skel)
    pts = sub.index_to_lps(kji[:, ::-1].astype(float))
    return VesselCalibre(vessels.with_array(full, unit="mm", quantity="vessel diameter"),
                         pts, diam_skel[skel].astype(float))
