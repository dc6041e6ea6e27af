"""DICOM import: exact LPS geometry and HU values for well-formed and awkward series.

Series are written by tests/dicom_factory.py (pydicom only); truth comes from the
factory's own ImagePositionPatient values, SimpleITK's reader and the IRCAD headers.
"""

from __future__ import annotations

import io as std_io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).parent))
from dicom_factory import write_dicomdir, write_enhanced_ct, write_series  # noqa: E402

from irplan.io.dicom_load import load_ct, load_series  # noqa: E402
from irplan.io.dicom_scan import detect_phase, scan_dicom  # noqa: E402
from irplan.planning.errors import CancelledError, InputError  # noqa: E402
from irplan.planning.volume import Volume  # noqa: E402

OBLIQUE_ROW = (np.cos(0.3), np.sin(0.3), 0.0)
_c = np.array([-np.sin(0.3) * np.cos(0.4), np.cos(0.3) * np.cos(0.4), -np.sin(0.4)])
OBLIQUE_COL = tuple(_c)

ORIENTATIONS = {
    "axial": ((1, 0, 0), (0, 1, 0)),
    "coronal": ((1, 0, 0), (0, 0, -1)),
    "sagittal": ((0, 1, 0), (0, 0, -1)),
    "oblique": (OBLIQUE_ROW, OBLIQUE_COL),
}


def _only(path: Path):
    scan = scan_dicom(path)
    assert len(scan.series) == 1, [s.label for s in scan.series]
    return scan.series[0]


def _assert_voxel_exact(vol: Volume, w) -> None:
    """Every voxel (i, j, k) sits where DICOM says the pixel is, with the stored HU."""
    rs, cs = w.pixel_spacing
    for k, ipp in enumerate(w.sorted_positions_lps_mm):
        assert np.allclose(vol.index_to_lps((0, 0, k)), ipp, atol=1e-4), k
        far = ipp + (vol.size_xyz[0] - 1) * cs * w.row_cos + (vol.size_xyz[1] - 1) * rs * w.col_cos
        corner = (vol.size_xyz[0] - 1, vol.size_xyz[1] - 1, k)
        assert np.allclose(vol.index_to_lps(corner), far, atol=1e-4), k
    np.testing.assert_array_equal(vol.array, w.hu_sorted)


def _assert_matches_pydicom(vol: Volume, files: list[Path]) -> None:
    """Each file's own ImagePositionPatient (read by pydicom) is voxel (0, 0, k) of the
    volume for a distinct k, to 1e-4 mm, and slice k holds that file's HU."""
    seen = set()
    for f in files:
        ds = pydicom.dcmread(f)
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        idx = vol.lps_to_index(ipp)
        k = int(round(idx[2]))
        assert np.allclose(idx, (0, 0, k), atol=1e-5), (f.name, idx)
        assert np.allclose(vol.index_to_lps((0, 0, k)), ipp, atol=1e-4)
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(vol.array[k], hu)
        seen.add(k)
    assert seen == set(range(vol.size_xyz[2]))


@pytest.mark.parametrize("orientation", list(ORIENTATIONS))
@pytest.mark.parametrize("file_order", ["normal", "reversed", "shuffled"])
def test_geometry_voxel_exact(tmp_path, orientation, file_order):
    r, c = ORIENTATIONS[orientation]
    w = write_series(tmp_path, row_cos=r, col_cos=c, file_order=file_order,
                     origin_lps_mm=(-12.25, 33.5, -71.125))
    info = _only(tmp_path)
    vol = load_series(info)
    _assert_voxel_exact(vol, w)
    _assert_matches_pydicom(vol, w.files)
    assert vol.array.dtype == np.int16
    assert np.allclose(vol.spacing_mm, (0.7, 0.8, 2.0), atol=1e-6)
    # third axis is the stacking direction = the slice normal (right-handed frame)
    assert np.allclose(vol.direction[:, 2], w.normal, atol=1e-6)
    assert info.orientation_name == orientation
    if orientation == "oblique":
        assert any("oblique" in m for m in vol.metadata["warnings"])
    # scan geometry == loaded geometry
    assert np.allclose(info.origin_lps_mm, vol.origin_lps_mm)
    assert tuple(info.size) == vol.size_xyz


def test_reversed_stack_never_sorted_by_instance_number(tmp_path):
    """InstanceNumber and file names run against the normal: positions decide."""
    w = write_series(tmp_path, file_order="reversed", n_slices=7)
    vol = load_series(_only(tmp_path))
    first_file = pydicom.dcmread(w.files[0])
    assert int(first_file.InstanceNumber) == 1
    # the first file is the last slice along the normal
    assert np.allclose(vol.index_to_lps((0, 0, 6)), [float(v) for v in first_file.ImagePositionPatient])
    assert vol.array[0, 0, 0] == w.hu_sorted[0, 0, 0]


def test_agrees_with_simpleitk_and_round_trips(tmp_path):
    w = write_series(tmp_path, row_cos=OBLIQUE_ROW, col_cos=OBLIQUE_COL, file_order="shuffled")
    vol = load_series(_only(tmp_path))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path), w.series_uid))
    ref = reader.Execute()
    assert np.allclose(vol.origin_lps_mm, ref.GetOrigin(), atol=1e-4)
    assert np.allclose(vol.spacing_mm, ref.GetSpacing(), atol=1e-4)
    assert np.allclose(vol.direction.reshape(-1), ref.GetDirection(), atol=1e-4)
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(ref))
    # DICOM -> Volume -> SimpleITK -> Volume keeps geometry to 1e-6 mm
    back = Volume.from_sitk(vol.to_sitk())
    corners = vol.corners_lps()
    assert np.abs(back.corners_lps() - corners).max() < 1e-6
    np.testing.assert_array_equal(back.array, vol.array)


def test_float_rescale_gives_float32_hu(tmp_path):
    w = write_series(tmp_path, slope=0.5, intercept=-1000.25)
    vol = load_series(_only(tmp_path))
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, w.hu_sorted, atol=1e-3)


def test_metadata(tmp_path):
    write_series(tmp_path, description="Abdomen PV 1.0", window=(60, 360), file_order="shuffled",
                 extra_tags={"PixelPaddingValue": -2000})
    info = _only(tmp_path)
    vol = load_series(info)
    md = vol.metadata
    assert md["series_uid"] == info.series_uid and md["modality"] == "CT"
    assert md["patient_name"] == "Test^Factory" and md["patient_id"] == "FACT001"
    assert md["study_date"] == "20260101" and md["frame_of_reference_uid"]
    assert md["window_center"] == 60 and md["window_width"] == 360
    assert md["description"] == "Abdomen PV 1.0" and md["phase"] == "portal venous"
    assert md["padding_value"] == -2000 - 1024  # stored padding after rescale, in HU
    assert len(md["source_files"]) == 6 and md["warnings"] == []
    # source files and SOP Instance UIDs follow the volume's k order (slice normal)
    for k, (f, uid) in enumerate(zip(md["source_files"], md["sop_instance_uids"])):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        assert ds.SOPInstanceUID == uid
        assert np.allclose(vol.index_to_lps((0, 0, k)), [float(v) for v in ds.ImagePositionPatient])


@pytest.mark.parametrize("desc,agent,phase", [
    ("Abdomen arterial 1mm", "", "arterial"),
    ("Leber portalvenös", "", "portal venous"),
    ("DELAYED 3min", "", "delayed"),
    ("Nativ", "", "non-contrast"),
    ("Abdomen 1.0 B30f", "Iomeron 400", "contrast (phase unknown)"),
    ("Abdomen 1.0 B30f", "", None),
    ("LATE ARTERIAL 0.625", "", "arterial"),
    ("Shaped template plate", "", None),   # no whole-word keyword inside other words
    ("Abd w/o", "", "non-contrast"),
    ("Abdomen 3.0 I30f", "Omnipaque portal venous", "portal venous"),
])
def test_phase_keywords(desc, agent, phase):
    assert detect_phase(desc, agent) == phase


# --------------------------------------------------------------------------- awkward stacks
def test_gap_refused_then_interpolated(tmp_path):
    w = write_series(tmp_path, n_slices=8, drop=[4])
    info = _only(tmp_path)
    assert any("gap" in m for m in info.warnings)
    with pytest.raises(InputError, match=r"1 slice\(s\) missing between slice 3 .*img") as e:
        load_series(info)
    assert "allow_gaps" in str(e.value)
    vol = load_series(info, allow_gaps=True)
    assert vol.size_xyz[2] == 8 == info.size[2]  # the grid spans the gap; scan said so
    assert np.allclose(vol.spacing_mm[2], 2.0)
    # measured slices unchanged, the missing one is the mean of its neighbours (linear)
    np.testing.assert_array_equal(vol.array[3], w.hu_sorted[3])
    np.testing.assert_array_equal(vol.array[5], w.hu_sorted[4])
    np.testing.assert_allclose(vol.array[4], (w.hu_sorted[3] + w.hu_sorted[4]) / 2, atol=0.5)
    assert any("gap" in m and "interpolation" in m for m in vol.metadata["warnings"])


def test_nonuniform_spacing_resampled_with_warning(tmp_path):
    w = write_series(tmp_path, n_slices=6, steps_mm=[2.0, 2.0, 2.3, 1.7, 2.0])
    info = _only(tmp_path)
    assert any("non-uniform" in m for m in info.warnings)
    vol = load_series(info)
    assert vol.size_xyz[2] == 6 and np.isclose(vol.spacing_mm[2], 2.0)
    assert any("non-uniform" in m for m in vol.metadata["warnings"])
    # slice 3 of the uniform grid sits at 6.0 mm, between measured 4.3 (k=2) and ... wait:
    # measured distances 0, 2, 4, 6.3, 8.0, 10.0 -> grid 6.0 = 0.3/2.3 of the way 4.0 -> 6.3
    d = np.array([0, 2, 4, 6.3, 8.0, 10.0])
    wgt = (6.0 - d[2]) / (d[3] - d[2])
    expect = (1 - wgt) * w.hu_sorted[2] + wgt * w.hu_sorted[3]
    np.testing.assert_allclose(vol.array[3], np.rint(expect), atol=0.5)
    np.testing.assert_array_equal(vol.array[5], w.hu_sorted[5])


def test_gantry_tilt_corrected(tmp_path):
    # 0.35 mm drift per slice along the column direction (j), 2 mm apart: ~10 deg tilt
    w = write_series(tmp_path, n_slices=6, rows=14, cols=12, tilt_mm_per_slice=(0.0, 0.35))
    info = _only(tmp_path)
    assert any("tilt" in m for m in info.warnings)
    vol = load_series(info)
    assert any("tilt" in m and "corrected" in m for m in vol.metadata["warnings"])
    assert np.allclose(vol.direction, np.eye(3), atol=1e-9)
    # every original pixel (away from the shifted-in border) is found at its own LPS point
    rs, cs = w.pixel_spacing
    for k, ipp in enumerate(w.sorted_positions_lps_mm):
        for j in range(4, 10):
            for i in (1, 5, 10):
                p = ipp + i * cs * w.row_cos + j * rs * w.col_cos
                assert abs(vol.value_at_lps(p) - w.hu_sorted[k, j, i]) < 0.51, (k, j, i)


def test_extreme_tilt_refused(tmp_path):
    write_series(tmp_path, n_slices=4, tilt_mm_per_slice=(3.0, 0.0))
    with pytest.raises(InputError, match="deg off the slice normal"):
        load_series(_only(tmp_path))


def test_identical_duplicates_dropped(tmp_path):
    w = write_series(tmp_path, n_slices=5, duplicate=[(2, True)])
    info = _only(tmp_path)
    assert any("share the position" in m for m in info.warnings)
    vol = load_series(info)
    assert vol.size_xyz[2] == 5
    np.testing.assert_array_equal(vol.array, w.hu_sorted)
    assert any("identical" in m for m in vol.metadata["warnings"])


def test_different_duplicates_refused_naming_files(tmp_path):
    write_series(tmp_path, n_slices=5, duplicate=[(2, False)])
    with pytest.raises(InputError, match=r"different pixel data: .*img0002\.dcm.*img0005\.dcm"):
        load_series(_only(tmp_path))


def test_mixed_series_in_one_folder(tmp_path):
    a = write_series(tmp_path, n_slices=5, prefix="a", description="venous")
    b = write_series(tmp_path, n_slices=7, prefix="b", description="arterial",
                     study_uid=a.study_uid, origin_lps_mm=(0, 0, 0))
    scan = scan_dicom(tmp_path)
    assert sorted(s.slices for s in scan.series) == [5, 7]
    by_uid = {s.series_uid: s for s in scan.series}
    np.testing.assert_array_equal(load_series(by_uid[a.series_uid]).array, a.hu_sorted)
    np.testing.assert_array_equal(load_series(by_uid[b.series_uid]).array, b.hu_sorted)
    # load_ct picks the one with most slices and says another was left
    vol = load_ct(tmp_path)
    assert vol.metadata["series_uid"] == b.series_uid
    assert any("other CT series" in m for m in vol.metadata["warnings"])


def test_localizer_listed_but_not_a_candidate(tmp_path):
    ct = write_series(tmp_path / "ct", n_slices=6)
    write_series(tmp_path / "scout", n_slices=1, rows=20, cols=30, prefix="s",
                 row_cos=(1, 0, 0), col_cos=(0, 0, -1), series_uid=ct.series_uid,
                 study_uid=ct.study_uid, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    scan = scan_dicom(tmp_path)
    assert len(scan.series) == 2
    loc = [s for s in scan.series if s.is_localizer]
    assert len(loc) == 1 and loc[0].slices == 1
    assert scan.ct_candidates()[0].slices == 6
    with pytest.raises(InputError, match="localizer"):
        load_series(loc[0])
    assert load_ct(tmp_path).size_xyz[2] == 6


def test_mixed_orientation_series_split(tmp_path):
    ct = write_series(tmp_path, n_slices=6, prefix="ax")
    write_series(tmp_path, n_slices=1, prefix="cor", row_cos=(1, 0, 0), col_cos=(0, 0, -1),
                 series_uid=ct.series_uid, study_uid=ct.study_uid)
    scan = scan_dicom(tmp_path)
    assert len(scan.series) == 2
    assert all(any("split" in m for m in s.warnings) for s in scan.series)
    single = next(s for s in scan.series if s.slices == 1)
    assert single.is_localizer  # single slice across the main stack's orientation
    np.testing.assert_array_equal(load_ct(tmp_path).array, ct.hu_sorted)


def test_enhanced_multiframe_ct(tmp_path):
    w = write_enhanced_ct(tmp_path / "mf.dcm", frame_order="reversed")
    info = _only(tmp_path)
    assert info.multiframe and info.slices == 5
    vol = load_series(info)
    _assert_voxel_exact(vol, w)
    assert np.allclose(vol.spacing_mm, (0.6, 0.9, 1.5))


@pytest.mark.parametrize("codec", ["rle", "jpeg2000", "jpegls", "jpeg_lossless"])
def test_compressed_transfer_syntaxes(tmp_path, codec):
    w = write_series(tmp_path, n_slices=3, rows=32, cols=36, compress=codec,
                     file_order="reversed")
    info = _only(tmp_path)
    assert info.decodable
    vol = load_series(info)
    _assert_voxel_exact(vol, w)
    _assert_matches_pydicom(vol, w.files)


def test_mr_refused_unless_secondary(tmp_path):
    w = write_series(tmp_path, modality="MR", intercept=0.0)
    info = _only(tmp_path)
    with pytest.raises(InputError, match=f"series {info.series_uid} is MR; IRPlan plans on CT"):
        load_series(info)
    vol = load_series(info, secondary=True)
    assert vol.metadata["secondary"] is True
    np.testing.assert_array_equal(vol.array, w.hu_sorted)
    with pytest.raises(InputError, match="no CT series"):
        load_ct(tmp_path)


def test_dicomdir(tmp_path):
    w = write_series(tmp_path / "src", n_slices=4, file_order="shuffled")
    dicomdir = write_dicomdir(tmp_path / "src")
    scan = scan_dicom(dicomdir)
    assert len(scan.series) == 1 and scan.series[0].slices == 4
    np.testing.assert_array_equal(load_series(scan.series[0]).array, w.hu_sorted)
    # the folder holding the DICOMDIR: the index file itself is skipped with its reason
    folder_scan = scan_dicom(dicomdir.parent)
    assert folder_scan.series[0].slices == 4
    assert any("DICOMDIR" in s.reason for s in folder_scan.skipped)


def test_progress_and_cancel(tmp_path):
    write_series(tmp_path, n_slices=6)
    calls: list[tuple[int, int]] = []
    info = scan_dicom(tmp_path, progress=lambda d, t: calls.append((d, t))).series[0]
    assert calls[-1] == (6, 6)
    calls.clear()
    load_series(info, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (6, 6) and len(calls) == 6
    with pytest.raises(CancelledError):
        scan_dicom(tmp_path, cancel=lambda: True)
    seen = []

    def cancel_after_two() -> bool:
        return len(seen) >= 2

    with pytest.raises(CancelledError):
        load_series(info, progress=lambda d, t: seen.append(d), cancel=cancel_after_two)
    assert len(seen) == 2


# --------------------------------------------------------------------------- real CT
def _liver_mask(ircadb17: Path) -> np.ndarray:
    """IRCAD liver mask [k, j, i] read from MASKS_DICOM.zip (slice files image_N)."""
    with zipfile.ZipFile(ircadb17 / "MASKS_DICOM.zip") as z:
        names = [n for n in z.namelist() if "/liver/image_" in n and not n.endswith("/")]
        slices = {}
        for n in names:
            ds = pydicom.dcmread(std_io.BytesIO(z.read(n)))
            slices[float(ds.ImagePositionPatient[2])] = ds.pixel_array > 0
    return np.stack([slices[z] for z in sorted(slices)])


@pytest.mark.shared_data
def test_ircadb17_real_ct(ircadb17):
    scan = scan_dicom(ircadb17 / "PATIENT_DICOM")
    assert not scan.skipped and len(scan.series) == 1
    info = scan.series[0]
    ds = pydicom.dcmread(ircadb17 / "PATIENT_DICOM" / "image_0", stop_before_pixels=True)
    assert info.size == (512, 512, 119)
    assert np.allclose(info.spacing_mm[:2], [float(v) for v in ds.PixelSpacing][::-1])
    assert np.isclose(info.spacing_mm[2], float(ds.SpacingBetweenSlices), atol=1e-4)
    assert np.allclose(info.direction, np.eye(3))
    vol = load_series(info)
    assert vol.array.dtype == np.int16
    assert vol.array.min() == -1024 and vol.array.max() == 1023  # SOURCE.md
    # positions: slice k at z = 1.6 k mm (0 .. 188.8 mm, SOURCE.md)
    assert np.allclose(vol.index_to_lps((0, 0, 118)), [0, 0, 188.8], atol=1e-3)
    liver = _liver_mask(ircadb17)
    assert liver.shape == vol.array.shape
    mean_hu = float(vol.array[liver].mean())
    assert abs(mean_hu - 99) < 1.0, mean_hu  # SOURCE.md: mean CT value inside the liver 99 HU
    liver_ml = liver.sum() * vol.voxel_volume_ml
    assert abs(liver_ml - 1860.6) < 1.0  # SOURCE.md: liver 1860.6 mL


# --------------------------------------------------------------------------- pixel formats
@pytest.mark.parametrize("fmt,base,noise", [
    ("u16", 1000, False),
    ("u12", 1000, True),     # bits above BitsStored are noise and must be masked
    ("s12", -1500, False),   # 12-bit two's complement: needs sign extension
    ("u8", 0, False),
])
@pytest.mark.parametrize("syntax", ["explicit", "implicit"])
def test_pixel_formats(tmp_path, fmt, base, noise, syntax):
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    ts = ExplicitVRLittleEndian if syntax == "explicit" else ImplicitVRLittleEndian
    w = write_series(tmp_path, n_slices=4, pixel_format=fmt, base_value=base,
                     high_bit_noise=noise, transfer_syntax=ts, file_order="reversed")
    vol = load_series(_only(tmp_path))
    assert vol.array.dtype == np.int16
    _assert_voxel_exact(vol, w)


def test_values_beyond_int16_become_float32(tmp_path):
    """Unsigned 16-bit data near 60000 with intercept 0 do not fit int16: float32, exact."""
    w = write_series(tmp_path, n_slices=3, pixel_format="u16", base_value=60000, intercept=0.0)
    vol = load_series(_only(tmp_path))
    assert vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array, w.hu_sorted)


def test_compressed_multiframe(tmp_path):
    w = write_enhanced_ct(tmp_path / "mf.dcm", rows=32, cols=32, frame_order="reversed")
    ds = pydicom.dcmread(tmp_path / "mf.dcm")
    ds.compress(pydicom.uid.RLELossless)
    ds.save_as(tmp_path / "mf.dcm")
    vol = load_series(_only(tmp_path))
    _assert_voxel_exact(vol, w)


def test_phases_in_one_series_split_by_acquisition(tmp_path):
    """Two acquisitions over the same positions under one SeriesInstanceUID."""
    a = write_series(tmp_path, n_slices=5, prefix="a", extra_tags={"AcquisitionNumber": 1})
    b = write_series(tmp_path, n_slices=5, prefix="b", series_uid=a.series_uid,
                     study_uid=a.study_uid, base_value=3000, extra_tags={"AcquisitionNumber": 2})
    scan = scan_dicom(tmp_path)
    assert len(scan.series) == 2
    assert all(any("AcquisitionNumber" in m for m in s.warnings) for s in scan.series)
    arrays = sorted((load_series(s).array for s in scan.series), key=lambda x: x.mean())
    np.testing.assert_array_equal(arrays[0], a.hu_sorted)
    np.testing.assert_array_equal(arrays[1], b.hu_sorted)


def test_dicomdir_with_missing_file(tmp_path):
    write_series(tmp_path / "src", n_slices=4)
    dicomdir = write_dicomdir(tmp_path / "src")
    victim = sorted(p for p in dicomdir.parent.rglob("*") if p.is_file() and p != dicomdir)[-1]
    victim.unlink()
    scan = scan_dicom(dicomdir)
    assert [s.reason for s in scan.skipped] == ["listed in the DICOMDIR but missing on disk"]
    assert scan.skipped[0].path == victim
    assert scan.series[0].slices == 3


def test_nonuniform_grid_stays_inside_measured_stack(tmp_path):
    """Uniform grid at the median step; every grid slice is the linear interpolation of the
    measured slices at its own position along the normal, and none lies past the last one."""
    steps = [2.0, 2.0, 2.3, 2.0, 1.9, 2.0]
    w = write_series(tmp_path, n_slices=7, steps_mm=steps, row_cos=OBLIQUE_ROW, col_cos=OBLIQUE_COL)
    info = _only(tmp_path)
    vol = load_series(info)
    d = np.concatenate([[0.0], np.cumsum(steps)])
    assert np.isclose(vol.spacing_mm[2], 2.0)
    assert vol.size_xyz[2] == info.size[2] == 7  # 0 .. 12 mm inside the 12.2 mm stack
    normal = w.normal
    for k in range(vol.size_xyz[2]):
        z = float((vol.index_to_lps((0, 0, k)) - w.sorted_positions_lps_mm[0]) @ normal)
        assert z <= d[-1] + 1e-6
        rank = np.interp(z, d, np.arange(len(d)))
        expect = w.hu_sorted[0] + 100 * rank
        np.testing.assert_allclose(vol.array[k], np.rint(expect), atol=0.51)


def test_rounded_positions_are_uniform(tmp_path):
    """IPP strings rounded to 0.01 mm (0.625 mm slices): uniform, spacing from first to last
    slice, every slice within 0.01 mm of its own IPP, no resampling."""
    w = write_series(tmp_path, n_slices=40, rows=4, cols=5, slice_spacing_mm=0.625,
                     origin_lps_mm=(0.0, 0.0, -100.003))
    for f in w.files:  # rewrite each IPP with 2 decimals, as some scanners do
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [f"{float(v):.2f}" for v in ds.ImagePositionPatient]
        ds.save_as(f)
    info = _only(tmp_path)
    assert info.warnings == []
    vol = load_series(info)
    assert vol.metadata["warnings"] == []
    assert abs(vol.spacing_mm[2] - 0.625) < 1e-3
    np.testing.assert_array_equal(vol.array, w.hu_sorted)
    for k, f in enumerate(w.files):
        ipp = [float(v) for v in pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient]
        assert np.abs(vol.index_to_lps((0, 0, k)) - ipp).max() < 0.01


def test_same_plane_different_inplane_position_refused(tmp_path):
    w = write_series(tmp_path, n_slices=4)
    ds = pydicom.dcmread(w.files[3])  # move the last slice onto slice 2's plane, shifted 5 mm
    ipp = [float(v) for v in pydicom.dcmread(w.files[2]).ImagePositionPatient]
    ds.ImagePositionPatient = [ipp[0] + 5.0, ipp[1], ipp[2]]
    ds.save_as(w.files[3])
    with pytest.raises(InputError, match=r"img0002\.dcm and img0003\.dcm lie in the same plane"):
        load_series(_only(tmp_path))


def test_enhanced_series_spread_over_files(tmp_path):
    """One enhanced CT series written as two multi-frame files (and as one-frame files, as
    some scanners export it) is one stack, in position order."""
    uids = {"series_uid": "1.2.3.4.5.6.1", "study_uid": "1.2.3.4.5.6.2",
            "frame_of_reference_uid": "1.2.3.4.5.6.3"}
    b = write_enhanced_ct(tmp_path / "b.dcm", n_frames=3, origin_lps_mm=(10, -20, -45.5), **uids)
    a = write_enhanced_ct(tmp_path / "a.dcm", n_frames=3, origin_lps_mm=(10, -20, -50), **uids)
    singles = [write_enhanced_ct(tmp_path / f"s{k}.dcm", n_frames=1,
                                 origin_lps_mm=(10, -20, -41.0 + 1.5 * k), **uids)
               for k in range(2)]
    info = _only(tmp_path)
    assert info.slices == 8 and info.warnings == []
    vol = load_series(info)
    np.testing.assert_array_equal(vol.array[:3], a.hu_sorted)
    np.testing.assert_array_equal(vol.array[3:6], b.hu_sorted)
    np.testing.assert_array_equal(vol.array[6], singles[0].hu_sorted[0])
    assert np.allclose(vol.index_to_lps((0, 0, 7)), [10, -20, -39.5])


def test_two_multiframe_acquisitions_split(tmp_path):
    uids = {"series_uid": "1.2.3.4.5.7.1", "study_uid": "1.2.3.4.5.7.2"}
    write_enhanced_ct(tmp_path / "p1.dcm", n_frames=4, **uids)
    write_enhanced_ct(tmp_path / "p2.dcm", n_frames=4, **uids)
    scan = scan_dicom(tmp_path)
    assert [s.slices for s in scan.series] == [4, 4]
    assert all("file p1.dcm, p2.dcm" in s.warnings[0] for s in scan.series)


def test_lossy_compression_warned(tmp_path):
    w = write_series(tmp_path, n_slices=3, rows=32, cols=32, compress="jpeg2000",
                     extra_tags={"LossyImageCompression": "01"})
    info = _only(tmp_path)
    assert any("lossy" in m for m in info.warnings)
    vol = load_series(info)
    assert any("lossy" in m for m in vol.metadata["warnings"])
    np.testing.assert_array_equal(vol.array, w.hu_sorted)  # (this one was lossless in fact)
