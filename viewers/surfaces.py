"""Binary mask -> smooth, decimated surface mesh in LPS mm (VTK filters, thread-safe).

Pipeline: crop to the mask's bounding box (+2 voxels) -> vtkSurfaceNets3D (Frisken's
surface nets, made for label maps) -> vtkWindowedSincPolyData
Filter (non-shrinking smoothing) -> vtkQuadricDecimation -> transform from the volume's
unrotated frame to LPS (direction matrix + origin) -> vtkPolyDataNormals (consistent,
outward normals even for flipped/left-handed grids).

Large structures (context anatomy: bone, lung) whose full-resolution mesh would be many
times their triangle budget are meshed from a coarser grid instead (:func:`coarse_factors`:
block means on ~3 mm voxels, vtkFlyingEdges3D at 0.5): quadric decimation costs ~10 us
per input triangle, and the demo skeleton went from 2.4 s to 0.7 s CPU (lung 1.6 -> 0.3 s)
with its volume within 3 % and 95 % of its surface within 1 mm of the full-resolution
mesh (tests/test_surface_meshing.py). A coarse mesh whose volume is off by more than
:data:`COARSE_MAX_VOLUME_ERROR` (thin structures lost) is replaced by the full one.

The functions here build and run VTK pipelines but never render: call them from a worker
thread and hand the resulting vtkPolyData to the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonDataModel import vtkImageData, vtkPolyData
from vtkmodules.vtkCommonTransforms import vtkTransform
from vtkmodules.vtkFiltersCore import (
    vtkFlyingEdges3D,
    vtkPolyDataNormals,
    vtkQuadricClustering,
    vtkQuadricDecimation,
    vtkSurfaceNets3D,
    vtkWindowedSincPolyDataFilter,
)
from vtkmodules.vtkFiltersGeneral import vtkTransformFilter

from irplan.planning.errors import CancelledError
from irplan.planning.volume import Volume
from irplan.viewers.vtk_convert import local_to_lps_matrix

# Grid clustering before decimation is 4x faster but leaves dark faceting artefacts on
# thin structures (ribs, checked by eye), so it is kept for very large meshes only
# (a whole-CT skeleton), where quadric decimation alone would take tens of seconds.
CLUSTER_ABOVE_TRIANGLES = 400_000


# Triangle budgets per structure for the 3D view: context anatomy (bone, lung) is drawn
# coarser than the planning targets; with Mesa llvmpipe the skeleton alone halved the
# frame rate at 40k triangles (bench_render).
TRIANGLE_BUDGET: dict[str, int] = {"bone": 16000, "lung": 10000, "liver": 25000,
                                   "body": 10000}
DEFAULT_TRIANGLE_BUDGET = 40000

# coarse meshing of large structures: when the full-resolution mesh would exceed
# COARSE_ABOVE_BUDGET x the budget, mesh block means on voxels of about COARSE_VOXEL_MM
COARSE_ABOVE_BUDGET = 4.0
COARSE_VOXEL_MM = 3.0
COARSE_MAX_VOLUME_ERROR = 0.04     # relative to the mask's voxel volume


def triangle_budget(key: str) -> int:
    """Maximum triangles of a structure's display mesh."""
    return TRIANGLE_BUDGET.get(key, DEFAULT_TRIANGLE_BUDGET)


def estimated_triangles(arr: np.ndarray) -> int:
    """Triangles of the full-resolution surface-nets mesh of a boolean array (about two
    per exposed voxel face; within 20 % on the demo structures)."""
    return 2 * sum(int(np.count_nonzero(np.diff(arr, axis=ax))) for ax in range(3))


def coarse_factors(arr: np.ndarray, spacing_mm: np.ndarray, max_triangles: int
                   ) -> tuple[int, int, int] | None:
    """Block sizes (i, j, k voxels) for meshing ``arr`` on a ~COARSE_VOXEL_MM grid, or None
    when the full-resolution mesh is within COARSE_ABOVE_BUDGET x ``max_triangles`` (or
    the grid is already coarse)."""
    f = tuple(max(1, int(COARSE_VOXEL_MM // float(s))) for s in spacing_mm)
    if max(f) == 1 or estimated_triangles(arr) <= COARSE_ABOVE_BUDGET * max_triangles:
        return None
    return f  # type: ignore[return-value]


def mask_to_polydata(mask: Volume, smoothing_iterations: int = 20, pass_band: float = 0.05,
                     target_reduction: float = 0.6, max_triangles: int = 40000,
                     cancel: Callable[[], bool] | None = None,
                     coarse: bool | None = None) -> vtkPolyData:
    """Closed surface of ``mask != 0`` in LPS mm (empty vtkPolyData for an empty mask).

    ``target_reduction``: fraction of triangles removed by decimation (more when the
    mesh still exceeds ``max_triangles``). ``coarse``: mesh on a ~3 mm grid (None: when
    :func:`coarse_factors` says so; False: never). ``cancel()`` returning True between
    stages raises CancelledError.
    """
    def check() -> None:
        if cancel is not None and cancel():
            raise CancelledError("surface extraction cancelled")

    arr = np.asarray(mask.array) != 0
    if not arr.any():
        return vtkPolyData()
    kk, jj, ii = (np.flatnonzero(arr.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1)))
    lo = np.array([ii[0], jj[0], kk[0]]) - 2
    hi = np.array([ii[-1], jj[-1], kk[-1]]) + 3
    size = np.array(mask.size_xyz)
    lo_c, hi_c = np.clip(lo, 0, size), np.clip(hi, 0, size)
    sub = np.zeros(tuple((hi - lo)[::-1]), dtype=np.uint8)  # padded: closed surfaces
    off = lo_c - lo
    sub[off[2]:off[2] + hi_c[2] - lo_c[2], off[1]:off[1] + hi_c[1] - lo_c[1],
        off[0]:off[0] + hi_c[0] - lo_c[0]] = arr[lo_c[2]:hi_c[2], lo_c[1]:hi_c[1],
                                                 lo_c[0]:hi_c[0]]
    if coarse is not False:
        factors = coarse_factors(sub, mask.spacing_mm, 0 if coarse else max_triangles)
        if factors is not None:
            poly = _coarse_surface(sub, mask.spacing_mm, lo * mask.spacing_mm, factors,
                                   smoothing_iterations, pass_band, max_triangles, check)
            mask_ml = float(np.count_nonzero(sub)) * mask.voxel_volume_ml
            if abs(polydata_volume_ml(poly) / mask_ml - 1.0) <= COARSE_MAX_VOLUME_ERROR:
                return _to_lps(poly, mask)
    img = vtkImageData()
    img.SetDimensions(*(int(v) for v in (hi - lo)))
    img.SetSpacing(*(float(v) for v in mask.spacing_mm))
    img.SetOrigin(*(float(v) for v in lo * mask.spacing_mm))  # unrotated frame, mm
    scal = numpy_support.numpy_to_vtk(sub.reshape(-1), deep=True)
    img.GetPointData().SetScalars(scal)
    check()

    nets = vtkSurfaceNets3D()
    nets.SetInputData(img)
    nets.SetValue(0, 1)
    nets.SetOutputMeshTypeToTriangles()
    # surface nets' own constrained smoothing shrinks small objects (-5 % volume for a
    # 24 mm ball at 8 iterations, measured); windowed-sinc smoothing keeps the volume
    nets.SmoothingOff()
    nets.Update()
    check()
    poly = nets.GetOutput()
    if poly.GetNumberOfPoints() == 0:
        return vtkPolyData()

    poly = _smooth(poly, smoothing_iterations, pass_band)
    check()

    n_tri = poly.GetNumberOfCells()
    if n_tri > CLUSTER_ABOVE_TRIANGLES:
        # quadric decimation costs ~20-40 us per input triangle here (4-8 s for a
        # 215k-triangle skeleton); grid clustering first cuts it in a fraction of that
        poly = _cluster(poly, 1.5 * float(mask.spacing_mm.max()))
        check()
    poly = _decimate(poly, target_reduction, max_triangles)
    check()
    return _to_lps(poly, mask)


def _smooth(poly: vtkPolyData, iterations: int, pass_band: float) -> vtkPolyData:
    """Windowed-sinc smoothing (keeps the volume)."""
    smooth = vtkWindowedSincPolyDataFilter()
    smooth.SetInputData(poly)
    smooth.SetNumberOfIterations(iterations)
    smooth.SetPassBand(pass_band)
    smooth.BoundarySmoothingOff()
    smooth.FeatureEdgeSmoothingOff()
    smooth.NonManifoldSmoothingOn()
    smooth.NormalizeCoordinatesOn()
    smooth.Update()
    return smooth.GetOutput()


def _decimate(poly: vtkPolyData, target_reduction: float, max_triangles: int) -> vtkPolyData:
    """Quadric decimation by ``target_reduction``, more when still above ``max_triangles``."""
    n_tri = poly.GetNumberOfCells()
    reduction = target_reduction
    if n_tri * (1 - reduction) > max_triangles:
        reduction = 1.0 - max_triangles / n_tri
    if reduction <= 0.01 or n_tri <= 500:
        return poly
    dec = vtkQuadricDecimation()
    dec.SetInputData(poly)
    dec.SetTargetReduction(float(min(reduction, 0.98)))
    dec.VolumePreservationOn()
    dec.Update()
    return dec.GetOutput()


def _coarse_surface(arr: np.ndarray, spacing_mm: np.ndarray, origin_mm: np.ndarray,
                    factors: tuple[int, int, int], smoothing_iterations: int,
                    pass_band: float, max_triangles: int,
                    check: Callable[[], None]) -> vtkPolyData:
    """Surface of a 0/1 (k, j, i) array from its block means (``factors`` i, j, k voxels
    per block) at 0.5 (vtkFlyingEdges3D), smoothed and decimated, in the volume's
    unrotated frame (``origin_mm``: where the array's voxel 0 is)."""
    fi, fj, fk = factors
    nk, nj, ni = (-(-n // f) for n, f in zip(arr.shape, (fk, fj, fi)))
    # one empty block all round (closed surfaces), the array's blocks in between
    pad = np.zeros(((nk + 2) * fk, (nj + 2) * fj, (ni + 2) * fi), dtype=np.float32)
    pad[fk:fk + arr.shape[0], fj:fj + arr.shape[1], fi:fi + arr.shape[2]] = arr
    means = pad.reshape(nk + 2, fk, nj + 2, fj, ni + 2, fi).mean(axis=(1, 3, 5))
    f = np.array([fi, fj, fk], dtype=float)
    img = vtkImageData()
    img.SetDimensions(ni + 2, nj + 2, nk + 2)
    img.SetSpacing(*(float(v) for v in f * spacing_mm))
    # block b (padded) covers voxels (b - 1) * f ... b * f - 1: its centre is below
    img.SetOrigin(*(float(v) for v in origin_mm + ((f - 1) / 2 - f) * spacing_mm))
    img.GetPointData().SetScalars(numpy_support.numpy_to_vtk(
        np.ascontiguousarray(means, dtype=np.float32).reshape(-1), deep=True))
    check()
    fe = vtkFlyingEdges3D()
    fe.SetInputData(img)
    fe.SetValue(0, 0.5)
    fe.ComputeNormalsOff()
    fe.ComputeGradientsOff()
    fe.ComputeScalarsOff()
    fe.Update()
    check()
    poly = fe.GetOutput()
    if poly.GetNumberOfPoints() == 0:
        return vtkPolyData()
    poly = _smooth(poly, smoothing_iterations, pass_band)
    check()
    poly = _decimate(poly, 0.6, max_triangles)
    check()
    return poly


def _to_lps(poly: vtkPolyData, mask: Volume) -> vtkPolyData:
    """A mesh in the mask's unrotated frame -> LPS mm with consistent outward normals."""
    tf = vtkTransform()
    tf.SetMatrix(local_to_lps_matrix(mask))
    tpf = vtkTransformFilter()
    tpf.SetInputData(poly)
    tpf.SetTransform(tf)
    tpf.Update()

    normals = vtkPolyDataNormals()
    normals.SetInputData(tpf.GetOutput())
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOn()
    normals.SplittingOff()
    normals.ComputeCellNormalsOff()
    normals.Update()
    out = vtkPolyData()
    out.ShallowCopy(normals.GetOutput())
    out.GetCellData().Initialize()  # drop surface-nets boundary labels
    return out


def _cluster(poly: vtkPolyData, bin_mm: float) -> vtkPolyData:
    """vtkQuadricClustering with cubic bins of ``bin_mm`` (keeps input points)."""
    qc = vtkQuadricClustering()
    qc.SetInputData(poly)
    qc.SetAutoAdjustNumberOfDivisions(False)
    b = poly.GetBounds()
    qc.SetNumberOfDivisions(*[max(2, int((b[2 * a + 1] - b[2 * a]) / bin_mm) + 1)
                              for a in range(3)])
    qc.UseInputPointsOn()
    qc.Update()
    return qc.GetOutput()


def polydata_volume_ml(poly: vtkPolyData) -> float:
    """Enclosed volume of a closed triangle mesh (mL)."""
    from vtkmodules.vtkFiltersCore import vtkMassProperties

    if poly.GetNumberOfPoints() == 0:
        return 0.0
    mp = vtkMassProperties()
    mp.SetInputData(poly)
    mp.Update()
    return float(mp.GetVolume()) / 1000.0


def polydata_to_arrays(poly: vtkPolyData) -> dict[str, np.ndarray]:
    """A triangle mesh as plain (picklable) arrays: ``points`` (N, 3) LPS mm, ``triangles``
    (M, 3) point indices, ``normals`` (N, 3) when the mesh has point normals."""
    from vtkmodules.vtkFiltersCore import vtkTriangleFilter

    if poly.GetNumberOfPoints() == 0 or poly.GetNumberOfPolys() == 0:
        return {"points": np.zeros((0, 3)), "triangles": np.zeros((0, 3), np.int64)}
    offsets = numpy_support.vtk_to_numpy(poly.GetPolys().GetOffsetsArray())
    if poly.GetNumberOfCells() != poly.GetNumberOfPolys() or np.any(np.diff(offsets) != 3):
        tf = vtkTriangleFilter()
        tf.SetInputData(poly)
        tf.PassVertsOff()
        tf.PassLinesOff()
        tf.Update()
        poly = tf.GetOutput()
    out = {"points": numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).copy(),
           "triangles": numpy_support.vtk_to_numpy(
               poly.GetPolys().GetConnectivityArray()).astype(np.int64).reshape(-1, 3)}
    normals = poly.GetPointData().GetNormals()
    if normals is not None:
        out["normals"] = numpy_support.vtk_to_numpy(normals).copy()
    return out


def polydata_from_arrays(mesh: dict[str, np.ndarray]) -> vtkPolyData:
    """The vtkPolyData of :func:`polydata_to_arrays`' output (built on the calling thread)."""
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray

    poly = vtkPolyData()
    tris = np.ascontiguousarray(mesh["triangles"], dtype=np.int64)
    if len(mesh["points"]) == 0 or len(tris) == 0:
        return poly
    pts = vtkPoints()
    pts.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(mesh["points"]), deep=True))
    cells = vtkCellArray()
    offsets = np.arange(0, 3 * len(tris) + 1, 3, dtype=np.int64)
    cells.SetData(numpy_support.numpy_to_vtkIdTypeArray(offsets, deep=True),
                  numpy_support.numpy_to_vtkIdTypeArray(tris.ravel(), deep=True))
    poly.SetPoints(pts)
    poly.SetPolys(cells)
    if "normals" in mesh:
        arr = numpy_support.numpy_to_vtk(np.ascontiguousarray(mesh["normals"]), deep=True)
        arr.SetName("Normals")
        poly.GetPointData().SetNormals(arr)
    return poly
