"""Volume <-> vtkImageData, keeping the full LPS geometry (origin, spacing, direction).

VTK (>= 9) stores a direction matrix on vtkImageData; its meaning is the same as ITK's:
``world = origin + direction @ (spacing * ijk)``. IRPlan draws every VTK scene in LPS
millimetres, so the VTK world frame *is* the DICOM patient frame.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4

from irplan.planning.errors import GeometryError
from irplan.planning.volume import Volume


def volume_to_vtk(volume: Volume, name: str = "scalars", copy: bool = False) -> vtkImageData:
    """A vtkImageData on the Volume's LPS grid (direction matrix included).

    With ``copy=False`` the VTK array shares memory with ``volume.array`` when it is
    C-contiguous (the image keeps a reference so the buffer stays alive).
    """
    arr = volume.array
    if not arr.flags.c_contiguous or copy:
        arr = np.ascontiguousarray(arr).copy() if copy else np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    img = vtkImageData()
    i, j, k = volume.size_xyz
    img.SetDimensions(int(i), int(j), int(k))
    img.SetSpacing(*(float(v) for v in volume.spacing_mm))
    img.SetOrigin(*(float(v) for v in volume.origin_lps_mm))
    img.SetDirectionMatrix(*(float(v) for v in volume.direction.reshape(-1)))
    flat = arr.reshape(-1)  # [k, j, i] C order == VTK's x-fastest order
    vtk_arr = numpy_support.numpy_to_vtk(flat, deep=False)
    vtk_arr.SetName(name)
    img.GetPointData().SetScalars(vtk_arr)
    # keep the numpy buffer alive as long as the VTK array
    img._irplan_buffer = flat  # type: ignore[attr-defined]
    return img


def vtk_to_volume(image: vtkImageData, metadata: dict[str, Any] | None = None) -> Volume:
    """A Volume (copy of the voxels) from a scalar vtkImageData, geometry included."""
    scalars = image.GetPointData().GetScalars()
    if scalars is None:
        raise GeometryError("vtkImageData has no scalars")
    if scalars.GetNumberOfComponents() != 1:
        raise GeometryError("expected a scalar vtkImageData (1 component)")
    nx, ny, nz = image.GetDimensions()
    arr = numpy_support.vtk_to_numpy(scalars).reshape(nz, ny, nx).copy()
    m = image.GetDirectionMatrix()
    direction = np.array([[m.GetElement(r, c) for c in range(3)] for r in range(3)])
    # image extent may not start at 0: shift the origin to the first voxel
    ext = image.GetExtent()
    origin = np.array(image.GetOrigin()) + direction @ (np.array(image.GetSpacing())
                                                        * np.array(ext[0::2], dtype=float))
    return Volume(arr, origin, np.array(image.GetSpacing()), direction, dict(metadata or {}))


def affine_matrix(volume: Volume) -> vtkMatrix4x4:
    """4x4 VTK matrix mapping (i, j, k, 1) voxel index to LPS mm."""
    return numpy_to_matrix(volume.affine_lps)


def numpy_to_matrix(a: np.ndarray) -> vtkMatrix4x4:
    """A vtkMatrix4x4 from a 4x4 numpy array."""
    m = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(a[r, c]))
    return m


def local_to_lps_matrix(volume: Volume) -> vtkMatrix4x4:
    """4x4 VTK matrix from the Volume's *unrotated* frame (origin 0, axes along x/y/z,
    units mm, i.e. ``spacing * ijk``) to LPS mm: ``p = origin + direction @ q``."""
    a = np.eye(4)
    a[:3, :3] = volume.direction
    a[:3, 3] = volume.origin_lps_mm
    return numpy_to_matrix(a)
