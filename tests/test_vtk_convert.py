"""Volume <-> vtkImageData keeps the LPS geometry exactly (oblique, flipped grids)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from irplan.planning.volume import Volume
from irplan.viewers.surfaces import mask_to_polydata, polydata_volume_ml
from irplan.viewers.vtk_convert import volume_to_vtk, vtk_to_volume


def _rot(axis: np.ndarray, deg: float) -> np.ndarray:
    a = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    t = np.deg2rad(deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


DIRECTIONS = {
    "axial": np.eye(3),
    "oblique": _rot([0.3, 1.0, 0.2], 23.0),
    "flipped": np.diag([-1.0, -1.0, 1.0]),
    "left_handed": np.diag([1.0, 1.0, -1.0]),
}


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_round_trip_via_sitk_and_vtk_keeps_geometry(name: str) -> None:
    rng = np.random.default_rng(1)
    arr = rng.integers(-1000, 1500, size=(7, 9, 11), dtype=np.int16)
    vol = Volume(arr, np.array([-123.4567, 88.125, -301.75]), np.array([0.7, 0.8, 2.5]),
                 DIRECTIONS[name])
    img = sitk.Cast(vol.to_sitk(), sitk.sitkInt16)
    back_sitk = Volume.from_sitk(img)
    vimg = volume_to_vtk(back_sitk)
    back = vtk_to_volume(vimg)
    np.testing.assert_array_equal(back.array, arr)
    np.testing.assert_allclose(back.origin_lps_mm, vol.origin_lps_mm, atol=1e-6)
    np.testing.assert_allclose(back.spacing_mm, vol.spacing_mm, atol=1e-6)
    np.testing.assert_allclose(back.direction, vol.direction, atol=1e-9)
    # VTK's own index -> world mapping agrees with Volume's for every corner
    for ijk in ([0, 0, 0], [10, 0, 0], [0, 8, 0], [0, 0, 6], [10, 8, 6], [3.5, 2.25, 1.5]):
        out = [0.0, 0.0, 0.0]
        vimg.TransformContinuousIndexToPhysicalPoint(ijk, out)
        np.testing.assert_allclose(out, vol.index_to_lps(ijk), atol=1e-6)


def test_round_trip_from_dicom_series_keeps_geometry(tmp_path) -> None:
    """DICOM -> Volume (irplan loader) -> SimpleITK -> vtkImageData -> back, 1e-6 mm."""
    from irplan.io.dicom_load import load_ct

    d = DIRECTIONS["oblique"]
    src = Volume(np.arange(6 * 8 * 10, dtype=np.int16).reshape(6, 8, 10) * 3 - 500,
                 np.array([-50.25, 20.5, 101.0]), np.array([0.75, 0.75, 2.0]), d)
    img = src.to_sitk()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.8.498.4242"
    for k in range(img.GetDepth()):
        sl = img[:, :, k]
        pos = src.index_to_lps([0, 0, k])
        tags = {
            "0008|0060": "CT", "0020|000e": series_uid, "0020|000d": "1.2.3.4.5",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2", "0008|0018": f"{series_uid}.{k + 1}",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in pos),
            "0020|0037": "\\".join(f"{v:.9f}" for v in (*d[:, 0], *d[:, 1])),
            "0028|1053": "1", "0028|1052": "0", "0010|0020": "T1",
        }
        for t, v in tags.items():
            sl.SetMetaData(t, v)
        writer.SetFileName(str(tmp_path / f"s{k:03d}.dcm"))
        writer.Execute(sl)
    vol = load_ct(tmp_path)
    np.testing.assert_allclose(vol.origin_lps_mm, src.origin_lps_mm, atol=1e-4)
    np.testing.assert_allclose(vol.direction, d, atol=1e-6)
    back = vtk_to_volume(volume_to_vtk(Volume.from_sitk(vol.to_sitk())))
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.origin_lps_mm, vol.origin_lps_mm, atol=1e-6)
    np.testing.assert_allclose(back.spacing_mm, vol.spacing_mm, atol=1e-6)
    np.testing.assert_allclose(back.direction, vol.direction, atol=1e-9)
    np.testing.assert_array_equal(vol.array, src.array)


@pytest.mark.parametrize("name", ["axial", "oblique", "left_handed"])
def test_surface_sits_on_the_mask_in_lps(name: str) -> None:
    """A ball mask becomes a closed surface around the same LPS centre, same volume."""
    vol = Volume(np.zeros((40, 60, 60), np.uint8), np.array([30.0, -80.0, 12.0]),
                 np.array([1.0, 1.0, 1.5]), DIRECTIONS[name])
    centre = vol.index_to_lps([30, 28, 20])
    vol.array[np.linalg.norm(vol.voxel_centres_lps() - centre, axis=-1) < 12.0] = 1
    poly = mask_to_polydata(vol)
    b = np.array(poly.GetBounds())
    np.testing.assert_allclose((b[0::2] + b[1::2]) / 2, centre, atol=0.8)
    np.testing.assert_allclose(b[1::2] - b[0::2], 24.0, atol=2.0)
    true_ml = 4 / 3 * np.pi * 12.0 ** 3 / 1000
    assert polydata_volume_ml(poly) == pytest.approx(true_ml, rel=0.06)
