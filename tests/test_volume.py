"""Volume geometry: index <-> LPS, SimpleITK round trip, crop and resample."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from irplan.planning.errors import GeometryError
from irplan.planning.volume import Volume


def _rot(ax: np.ndarray, deg: float) -> np.ndarray:
    ax = ax / np.linalg.norm(ax)
    t = np.deg2rad(deg)
    k = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


@pytest.fixture
def oblique() -> Volume:
    rng = np.random.default_rng(1)
    arr = rng.integers(-1000, 1000, size=(7, 9, 11)).astype(np.int16)
    return Volume(arr, [-120.5, 33.25, 71.0], [0.7, 0.8, 2.5], _rot(np.array([1, 2, 3.0]), 23))


def test_index_world_round_trip(oblique: Volume) -> None:
    ijk = np.array([[0, 0, 0], [10, 8, 6], [3.25, 4.5, 1.75]])
    p = oblique.index_to_lps(ijk)
    assert np.allclose(oblique.lps_to_index(p), ijk, atol=1e-9)
    # Voxel (0,0,0) sits at the origin; one step in k moves spacing_k along column 2.
    assert np.allclose(p[0], oblique.origin_lps_mm)
    step = oblique.index_to_lps([0, 0, 1]) - oblique.origin_lps_mm
    assert np.allclose(step, 2.5 * oblique.direction[:, 2])


def test_matches_simpleitk_physical_points(oblique: Volume) -> None:
    img = oblique.to_sitk()
    for ijk in [(0, 0, 0), (10, 8, 6), (4, 1, 5)]:
        assert np.allclose(img.TransformIndexToPhysicalPoint(ijk), oblique.index_to_lps(ijk),
                           atol=1e-9)


def test_sitk_round_trip_is_lossless(oblique: Volume) -> None:
    back = Volume.from_sitk(oblique.to_sitk())
    assert back.same_geometry(oblique, tol_mm=1e-9)
    assert np.array_equal(back.array, oblique.array)
    assert back.array.dtype == np.int16


def test_crop_keeps_world_positions(oblique: Volume) -> None:
    sub = oblique.crop_index([2, 3, 1], [8, 7, 5])
    assert sub.size_xyz == (6, 4, 4)
    assert np.allclose(sub.index_to_lps([0, 0, 0]), oblique.index_to_lps([2, 3, 1]))
    assert sub.array[0, 0, 0] == oblique.array[1, 3, 2]


def test_resample_identity_grid_is_exact(oblique: Volume) -> None:
    same = oblique.resample_like(oblique, "nearest")
    assert np.array_equal(same.array, oblique.array)


def test_value_at_lps_trilinear() -> None:
    arr = np.zeros((4, 4, 4), dtype=np.float32)
    arr[:, :, 2] = 100.0  # i == 2 plane
    v = Volume(arr, [0, 0, 0], [1, 1, 1])
    assert v.value_at_lps([1.5, 1, 1]) == pytest.approx(50.0)
    assert v.value_at_lps([2.0, 1, 1]) == pytest.approx(100.0)


def test_bad_geometry_is_refused() -> None:
    with pytest.raises(GeometryError):
        Volume(np.zeros((2, 2, 2)), [0, 0, 0], [1, 0, 1])
    with pytest.raises(GeometryError):
        Volume(np.zeros((2, 2, 2)), [0, 0, 0], [1, 1, 1], np.ones((3, 3)))


def test_sitk_direction_convention_columns() -> None:
    """SimpleITK stores direction row-major with columns = axis directions; we agree."""
    img = sitk.Image(3, 3, 3, sitk.sitkUInt8)
    d = _rot(np.array([0, 0, 1.0]), 90)
    img.SetDirection(tuple(d.reshape(-1)))
    v = Volume.from_sitk(img)
    assert np.allclose(v.index_to_lps([1, 0, 0]), img.TransformIndexToPhysicalPoint((1, 0, 0)))


def test_index_map_to_another_grid(oblique: Volume) -> None:
    """ijk_other = a @ ijk_self + b lands on the same LPS point, for an oblique,
    anisotropic grid mapped to an axial one and back (exact round trip)."""
    axial = Volume(np.zeros((5, 6, 7), np.uint8), [-130.0, 20.0, 60.0], [1.5, 0.6, 3.0])
    ijk = np.array([[0, 0, 0], [10, 8, 6], [3.25, 4.5, 1.75], [-2.0, 11.5, 9.0]])
    a, b = oblique.index_map_to(axial)
    mapped = ijk @ a.T + b
    assert np.allclose(axial.index_to_lps(mapped), oblique.index_to_lps(ijk), atol=1e-9)
    a2, b2 = axial.index_map_to(oblique)
    assert np.allclose(mapped @ a2.T + b2, ijk, atol=1e-9)
    assert np.allclose(a2 @ a, np.eye(3), atol=1e-12)
    # one step along i of the oblique grid moves 0.7 mm: |column 0| scaled by axial spacing
    assert np.linalg.norm(a[:, 0] * axial.spacing_mm) == pytest.approx(0.7)
    same_a, same_b = oblique.index_map_to(oblique)
    assert np.allclose(same_a, np.eye(3), atol=1e-12) and np.allclose(same_b, 0, atol=1e-9)


def test_index_box_lps_matches_index_to_lps(oblique: Volume) -> None:
    lo, hi = np.array([2, 1, 3]), np.array([7, 4, 5])   # (i, j, k), k the slowest axis
    x, y, z = oblique.index_box_lps(lo, hi)
    assert x.shape == y.shape == z.shape == (2, 3, 5)   # [k, j, i] like the array block
    k, j, i = np.meshgrid(*(np.arange(lo[n], hi[n]) for n in (2, 1, 0)), indexing="ij")
    want = oblique.index_to_lps(np.stack([i, j, k], -1).reshape(-1, 3)).reshape(2, 3, 5, 3)
    assert np.allclose(np.stack([x, y, z], -1), want, atol=1e-9)
    c = np.array([10.0, -4.0, 7.5])
    rel = np.stack(oblique.index_box_lps(lo, hi, relative_to_lps_mm=c), -1)
    assert np.allclose(rel, want - c, atol=1e-9)


def test_index_gradient_to_lps(oblique: Volume) -> None:
    """A linear field f(p) = g . p sampled on the grid: its index gradient, converted,
    gives back g (oblique direction, anisotropic spacing)."""
    g = np.array([0.3, -1.2, 2.0])
    grad_ijk = g @ oblique.index_matrix                      # df/d(i, j, k)
    assert np.allclose(oblique.index_gradient_to_lps(grad_ijk), g, atol=1e-12)
    many = np.tile(grad_ijk, (4, 1))
    assert np.allclose(oblique.index_gradient_to_lps(many), np.tile(g, (4, 1)), atol=1e-12)
