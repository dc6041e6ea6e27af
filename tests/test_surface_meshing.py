"""Structure surfaces for the 3D view (viewers/surfaces.py): large context structures are
meshed on a ~3 mm grid (issue 16: start-up meshing cost) and stay faithful to the mask;
planning targets keep the full-resolution path; thin structures fall back to it."""

from __future__ import annotations

import time

import numpy as np
import pytest

from irplan.planning.volume import Volume
from irplan.viewers.surfaces import (
    coarse_factors,
    mask_to_polydata,
    polydata_to_arrays,
    polydata_volume_ml,
    triangle_budget,
)


@pytest.fixture(scope="module")
def phantom_masks() -> dict[str, Volume]:
    from irplan.planning.phantom import make_planning

    _ct, masks, _truth = make_planning(seed=0)
    return masks


def _box(mask: Volume) -> Volume:
    from irplan.planning.margin import bbox_ijk

    lo, hi = bbox_ijk(mask.array != 0)
    return mask.crop_index(lo - 3, hi + 4)


def _distances_mm(points: np.ndarray, poly, n: int = 3000) -> np.ndarray:
    """Distance (mm) of ``n`` of ``points`` (evenly picked) to the surface ``poly``."""
    from vtkmodules.vtkCommonCore import reference
    from vtkmodules.vtkCommonDataModel import vtkStaticCellLocator

    loc = vtkStaticCellLocator()
    loc.SetDataSet(poly)
    loc.BuildLocator()
    closest = [0.0, 0.0, 0.0]
    cell, sub, d2 = reference(0), reference(0), reference(0.0)
    out = []
    for p in points[:: max(1, len(points) // n)]:
        loc.FindClosestPoint(p.tolist(), closest, cell, sub, d2)
        out.append(float(d2) ** 0.5)
    return np.array(out)


@pytest.mark.parametrize("key", ["bone", "lung"])
def test_large_structure_is_meshed_coarse_faster_and_faithful(phantom_masks, key):
    box = _box(phantom_masks[key])
    budget = triangle_budget(key)
    assert coarse_factors(box.array != 0, box.spacing_mm, budget) is not None
    t0 = time.process_time()
    full = mask_to_polydata(box, max_triangles=budget, coarse=False)
    t_full = time.process_time() - t0
    t0 = time.process_time()
    mesh = mask_to_polydata(box, max_triangles=budget)
    t_coarse = time.process_time() - t0
    # the skeleton: 2.4 -> 0.7 s CPU, the lungs 1.6 -> 0.3 s (measured, quiet machine)
    assert t_coarse < 0.6 * t_full, (t_coarse, t_full)
    assert mesh.GetNumberOfCells() <= budget
    mask_ml = float(np.count_nonzero(box.array)) * box.voxel_volume_ml
    assert polydata_volume_ml(mesh) == pytest.approx(mask_ml, rel=0.04)
    # both ways: 95 % of each surface within 1.5 mm (one in-plane voxel) of the other
    # (the full-resolution mesh, decimated to the same budget)
    pts = polydata_to_arrays(mesh)["points"]
    pts_full = polydata_to_arrays(full)["points"]
    assert np.percentile(_distances_mm(pts, full), 95) <= 1.5
    assert np.percentile(_distances_mm(pts_full, mesh), 95) <= 1.5


def test_planning_targets_keep_the_full_resolution_path(phantom_masks):
    for key in ("tumor", "liver", "portal_vein", "hepatic_vein"):
        box = _box(phantom_masks[key])
        assert coarse_factors(box.array != 0, box.spacing_mm, triangle_budget(key)) is None


def test_thin_structure_falls_back_to_full_resolution():
    """A 1.5 mm plate disappears on a 3 mm grid: its mesh is the full-resolution one."""
    arr = np.zeros((60, 160, 160), np.uint8)          # k, j, i; 1.5 x 1.5 x 2 mm voxels
    arr[5:55, 10:150, 80] = 1                          # one voxel thick in i
    mask = Volume(arr, np.zeros(3), np.array([1.5, 1.5, 2.0]), np.eye(3), {})
    assert coarse_factors(arr != 0, mask.spacing_mm, 2000) is not None
    mesh = mask_to_polydata(mask, max_triangles=2000)
    mask_ml = float(arr.sum()) * mask.voxel_volume_ml
    assert mesh.GetNumberOfCells() > 0
    assert polydata_volume_ml(mesh) == pytest.approx(mask_ml, rel=0.15)
    x_mm = polydata_to_arrays(mesh)["points"][:, 0]
    assert abs(float(np.median(x_mm)) - 80 * 1.5) < 1.0     # where the plate is (L, mm)
