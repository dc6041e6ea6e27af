"""The one image-geometry type of IRPlan: a voxel array placed in DICOM patient space.

Frame: DICOM patient coordinates, LPS, millimetres. Index order: the numpy ``array`` is
indexed ``[k, j, i]`` (slice, row, column), exactly like ``SimpleITK.GetArrayFromImage``;
all geometry vectors (``spacing_mm``, sizes, continuous indices) are ``(i, j, k)``.

World position of voxel index ``(i, j, k)``::

    p_lps_mm = origin_lps_mm + direction @ (spacing_mm * (i, j, k))

where the *columns* of ``direction`` are the unit vectors of the i, j and k axes in LPS
(the SimpleITK/ITK convention). Every index <-> world conversion in IRPlan goes through
this type and nowhere else: points (:meth:`Volume.index_to_lps`,
:meth:`Volume.lps_to_index`), blocks of voxel centres (:meth:`Volume.index_box_lps`), one
grid's index to another's (:meth:`Volume.index_map_to`) and gradients
(:meth:`Volume.index_gradient_to_lps`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from irplan.planning.errors import GeometryError

_TOL = 1e-6


@dataclass(eq=False)
class Volume:
    """A 3-D voxel array with its LPS geometry.

    Attributes:
        array: voxel values indexed ``[k, j, i]``; HU for CT, label values for masks.
        origin_lps_mm: LPS position (mm) of the centre of voxel (0, 0, 0).
        spacing_mm: voxel size along i, j, k (mm).
        direction: 3x3 matrix whose columns are the i, j, k axis directions in LPS.
        metadata: free-form facts about the source (series UID, window, warnings, ...).
    """

    array: np.ndarray
    origin_lps_mm: np.ndarray
    spacing_mm: np.ndarray
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise GeometryError(f"a Volume needs a 3-D array, got shape {self.array.shape}")
        self.origin_lps_mm = np.asarray(self.origin_lps_mm, dtype=np.float64).reshape(3)
        self.spacing_mm = np.asarray(self.spacing_mm, dtype=np.float64).reshape(3)
        self.direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        if np.any(self.spacing_mm <= 0) or not np.all(np.isfinite(self.spacing_mm)):
            raise GeometryError(f"spacing must be positive and finite, got {self.spacing_mm}")
        gram = self.direction.T @ self.direction
        if not np.allclose(gram, np.eye(3), atol=1e-4):
            raise GeometryError("direction matrix is not orthonormal")

    # ------------------------------------------------------------------ shape
    @property
    def size_xyz(self) -> tuple[int, int, int]:
        """Number of voxels along i, j, k."""
        k, j, i = self.array.shape
        return (i, j, k)

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (cm^3)."""
        return float(np.prod(self.spacing_mm)) / 1000.0

    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous (i, j, k, 1) to (L, P, S, 1) in mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction * self.spacing_mm[np.newaxis, :]
        a[:3, 3] = self.origin_lps_mm
        return a

    @property
    def index_matrix(self) -> np.ndarray:
        """3x3 matrix whose columns are the LPS mm steps of one voxel along i, j, k
        (``direction @ diag(spacing_mm)``): ``p_lps_mm = origin_lps_mm + index_matrix @ ijk``."""
        return self.direction * self.spacing_mm[np.newaxis, :]

    # -------------------------------------------------------------- transforms
    def index_to_lps(self, ijk: np.ndarray | list[float] | tuple[float, ...]) -> np.ndarray:
        """Continuous voxel index (i, j, k), shape (3,) or (N, 3), to LPS mm."""
        idx = np.asarray(ijk, dtype=np.float64)
        return idx @ self.index_matrix.T + self.origin_lps_mm

    def lps_to_index(self, p_lps_mm: np.ndarray | list[float] | tuple[float, ...]) -> np.ndarray:
        """LPS mm, shape (3,) or (N, 3), to continuous voxel index (i, j, k)."""
        p = np.asarray(p_lps_mm, dtype=np.float64)
        local = (p - self.origin_lps_mm) @ self.direction  # == direction.T @ (p - o)
        return local / self.spacing_mm

    def index_map_to(self, other: Volume) -> tuple[np.ndarray, np.ndarray]:
        """Affine map from this grid's continuous index to ``other``'s: ``(a, b)`` with
        ``ijk_other = a @ ijk_self + b`` (a 3x3, b (3,); both grids' i, j, k order).

        The map is exact for any directions and spacings (both frames are LPS mm)."""
        a = (other.direction.T @ self.index_matrix) / other.spacing_mm[:, np.newaxis]
        b = other.direction.T @ (self.origin_lps_mm - other.origin_lps_mm) / other.spacing_mm
        return a, b

    def index_box_lps(self, lo_ijk: np.ndarray | list[int] | tuple[int, ...],
                      hi_ijk: np.ndarray | list[int] | tuple[int, ...],
                      relative_to_lps_mm: np.ndarray | list[float] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LPS mm (x, y, z) of the voxel centres ``lo <= (i, j, k) < hi``, one float64
        array per coordinate, each shaped ``[k, j, i]`` like the block of ``array``
        (read-only broadcast views; the box may extend beyond the grid).

        With ``relative_to_lps_mm`` the coordinates are relative to that point (``p - c``,
        computed as ``(origin - c) + ...`` so no large offset is subtracted per voxel)."""
        lo = np.asarray(lo_ijk, dtype=np.int64).reshape(3)
        hi = np.asarray(hi_ijk, dtype=np.int64).reshape(3)
        i = np.arange(lo[0], hi[0], dtype=np.float64)[np.newaxis, np.newaxis, :]
        j = np.arange(lo[1], hi[1], dtype=np.float64)[np.newaxis, :, np.newaxis]
        k = np.arange(lo[2], hi[2], dtype=np.float64)[:, np.newaxis, np.newaxis]
        base = self.origin_lps_mm
        if relative_to_lps_mm is not None:
            base = base - np.asarray(relative_to_lps_mm, dtype=np.float64).reshape(3)
        m = self.index_matrix
        shape = (k.shape[0], j.shape[1], i.shape[2])
        xyz = (np.broadcast_to(base[r] + m[r, 0] * i + m[r, 1] * j + m[r, 2] * k, shape)
               for r in range(3))
        return tuple(xyz)  # type: ignore[return-value]

    def index_gradient_to_lps(self, grad_ijk: np.ndarray) -> np.ndarray:
        """Gradient of a scalar field per unit index (d/di, d/dj, d/dk), shape (3,) or
        (N, 3), to its gradient per LPS mm (d/dL, d/dP, d/dS)."""
        g = np.asarray(grad_ijk, dtype=np.float64) / self.spacing_mm
        return g @ self.direction.T

    def lps_to_voxel(self, p_lps_mm: np.ndarray | list[float] | tuple[float, ...]) -> np.ndarray:
        """Nearest integer voxel index (i, j, k) of LPS point(s); may lie outside."""
        return np.rint(self.lps_to_index(p_lps_mm)).astype(np.int64)

    def contains_lps(self, p_lps_mm: np.ndarray | list[float]) -> np.ndarray | bool:
        """True where a point falls inside the voxel grid (within half a voxel)."""
        idx = self.lps_to_index(p_lps_mm)
        size = np.asarray(self.size_xyz)
        inside = np.all((idx >= -0.5) & (idx <= size - 0.5), axis=-1)
        return inside

    def value_at_lps(self, p_lps_mm: np.ndarray | list[float], order: int = 1,
                     outside: float = np.nan) -> np.ndarray | float:
        """Sample the array at LPS point(s) (order 0 nearest, 1 trilinear)."""
        from scipy.ndimage import map_coordinates

        p = np.asarray(p_lps_mm, dtype=np.float64)
        single = p.ndim == 1
        idx = np.atleast_2d(self.lps_to_index(p))
        coords = idx[:, ::-1].T  # (k, j, i) rows for numpy order
        vals = map_coordinates(self.array.astype(np.float64, copy=False), coords, order=order,
                               mode="constant", cval=outside)
        return float(vals[0]) if single else vals

    def voxel_centres_lps(self) -> np.ndarray:
        """LPS mm of every voxel centre, shape (k, j, i, 3). Memory heavy; for small grids."""
        k, j, i = np.meshgrid(*(np.arange(n) for n in self.array.shape), indexing="ij")
        ijk = np.stack([i, j, k], axis=-1).astype(np.float64)
        return self.index_to_lps(ijk)

    def corners_lps(self) -> np.ndarray:
        """LPS mm of the 8 corner voxel centres, shape (8, 3)."""
        n = np.asarray(self.size_xyz) - 1
        c = np.array([[a, b, d] for a in (0, n[0]) for b in (0, n[1]) for d in (0, n[2])])
        return self.index_to_lps(c)

    def bounds_lps(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS box (min, max) around all voxel centres."""
        c = self.corners_lps()
        return c.min(axis=0), c.max(axis=0)

    # -------------------------------------------------------------- comparison
    def same_geometry(self, other: Volume, tol_mm: float = 1e-4) -> bool:
        """True when both volumes share size, spacing, origin and direction."""
        return (
            self.array.shape == other.array.shape
            and np.allclose(self.spacing_mm, other.spacing_mm, atol=tol_mm)
            and np.allclose(self.origin_lps_mm, other.origin_lps_mm, atol=tol_mm)
            and np.allclose(self.direction, other.direction, atol=1e-6)
        )

    def with_array(self, array: np.ndarray, **metadata: Any) -> Volume:
        """A new Volume on the same grid holding ``array`` (same shape)."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise GeometryError(f"array shape {array.shape} != grid shape {self.array.shape}")
        meta = dict(self.metadata)
        meta.update(metadata)
        return Volume(array, self.origin_lps_mm.copy(), self.spacing_mm.copy(),
                      self.direction.copy(), meta)

    def copy(self) -> Volume:
        return self.with_array(self.array.copy())

    # -------------------------------------------------------------- SimpleITK
    def to_sitk(self) -> sitk.Image:
        """Lossless conversion to a SimpleITK image (same frame: ITK is LPS too)."""
        img = sitk.GetImageFromArray(self.array)
        img.SetOrigin(tuple(float(v) for v in self.origin_lps_mm))
        img.SetSpacing(tuple(float(v) for v in self.spacing_mm))
        img.SetDirection(tuple(float(v) for v in self.direction.reshape(-1)))
        return img

    @classmethod
    def from_sitk(cls, image: sitk.Image, metadata: dict[str, Any] | None = None) -> Volume:
        """Lossless conversion from a 3-D SimpleITK image."""
        if image.GetDimension() != 3:
            raise GeometryError(f"expected a 3-D image, got {image.GetDimension()}-D")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise GeometryError("expected a scalar image")
        return cls(
            sitk.GetArrayFromImage(image),
            np.array(image.GetOrigin()),
            np.array(image.GetSpacing()),
            np.array(image.GetDirection()).reshape(3, 3),
            dict(metadata or {}),
        )

    # -------------------------------------------------------------- crop/resample
    def crop_index(self, lo_ijk: np.ndarray | list[int], hi_ijk: np.ndarray | list[int]) -> Volume:
        """Sub-volume of voxels lo <= (i, j, k) < hi (clipped to the grid); geometry exact."""
        size = np.asarray(self.size_xyz)
        lo = np.clip(np.asarray(lo_ijk, dtype=np.int64), 0, size)
        hi = np.clip(np.asarray(hi_ijk, dtype=np.int64), 0, size)
        if np.any(hi <= lo):
            raise GeometryError(f"empty crop {lo.tolist()}..{hi.tolist()} of grid {size.tolist()}")
        arr = self.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]].copy()
        return Volume(arr, self.index_to_lps(lo.astype(np.float64)), self.spacing_mm.copy(),
                      self.direction.copy(), dict(self.metadata))

    def crop_lps_box(self, lo_lps_mm: np.ndarray | list[float], hi_lps_mm: np.ndarray | list[float],
                     pad_mm: float = 0.0) -> Volume:
        """Smallest sub-volume holding the LPS box [lo, hi] grown by ``pad_mm``."""
        lo = np.asarray(lo_lps_mm, dtype=np.float64) - pad_mm
        hi = np.asarray(hi_lps_mm, dtype=np.float64) + pad_mm
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])])
        idx = self.lps_to_index(corners)
        return self.crop_index(np.floor(idx.min(axis=0)).astype(int),
                               np.ceil(idx.max(axis=0)).astype(int) + 1)

    def resample_like(self, reference: Volume, interpolation: str = "linear",
                      default_value: float = 0.0) -> Volume:
        """This volume resampled onto ``reference``'s grid by physical (LPS) position.

        ``interpolation``: "nearest" (labels), "linear" or "bspline".
        """
        interp = {
            "nearest": sitk.sitkNearestNeighbor,
            "linear": sitk.sitkLinear,
            "bspline": sitk.sitkBSpline,
            "label": sitk.sitkLabelGaussian,
        }[interpolation]
        out = sitk.Resample(self.to_sitk(), reference.to_sitk(), sitk.Transform(), interp,
                            float(default_value), sitk.sitkUnknown)
        if interpolation == "nearest":
            out = sitk.Cast(out, self.to_sitk().GetPixelID())
        return Volume.from_sitk(out, dict(self.metadata))

    def resample_spacing(self, spacing_mm: float | tuple[float, float, float],
                         interpolation: str = "linear", default_value: float = 0.0) -> Volume:
        """This volume on a new grid with the same origin and direction and new spacing,
        covering the same physical extent."""
        new_sp = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
        extent = (np.asarray(self.size_xyz) - 1) * self.spacing_mm
        new_size = np.floor(extent / new_sp + 1e-6).astype(int) + 1
        ref = Volume(np.zeros(new_size[::-1], dtype=np.uint8), self.origin_lps_mm,
                     new_sp, self.direction)
        return self.resample_like(ref, interpolation, default_value)


def empty_like(reference: Volume, dtype: Any = np.uint8) -> Volume:
    """A zero-filled Volume on ``reference``'s grid."""
    return reference.with_array(np.zeros(reference.array.shape, dtype=dtype))
