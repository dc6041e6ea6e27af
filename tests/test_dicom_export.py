"""DICOM exports re-read with independent readers (pydicom dcmread, highdicom segread).

Geometry is checked against the source CT: the SEG frames' positions, spacing and
orientation equal the CT slices', and each segment's voxels map back to the same LPS
positions as the source mask (centroid within one voxel). Identifiers: same study,
patient and frame of reference, new series UIDs, references to the CT series.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from irplan.io.dicom_export import (
    export_encapsulated_pdf,
    export_secondary_capture,
    export_seg,
    load_source_series,
)
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume


def write_oblique_ct(folder: Path, n: int = 12, rows: int = 40, cols: int = 48,
                     angle_deg: float = 20.0) -> dict:
    """A small CT series rotated about the patient's S axis, anisotropic voxels, files in
    shuffled order; returns its geometry for the tests."""
    folder.mkdir(parents=True, exist_ok=True)
    a = np.radians(angle_deg)
    row = np.array([np.cos(a), np.sin(a), 0.0])
    col = np.array([-np.sin(a), np.cos(a), 0.0])
    normal = np.cross(row, col)
    origin = np.array([-30.0, -20.0, 100.0])
    ps_row_mm, ps_col_mm, dz_mm = 0.9, 0.7, 2.5   # PixelSpacing = [row spacing, col spacing]
    ids = {"study": generate_uid(), "series": generate_uid(), "frame": generate_uid()}
    rng = np.random.default_rng(1)
    for k in rng.permutation(n):
        meta = FileMetaDataset()
        sop = generate_uid()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID = ids["study"], ids["series"]
        ds.FrameOfReferenceUID = ids["frame"]
        ds.PatientID, ds.PatientName = "EXP001", "Export^Test"
        ds.PatientBirthDate, ds.PatientSex = "19600101", "O"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20260102", "101500", "ACCEXP"
        ds.StudyID, ds.ReferringPhysicianName = "1", ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 3, int(k) + 1
        ds.Manufacturer = "test"
        ds.ImagePositionPatient = [float(v) for v in origin + k * dz_mm * normal]
        ds.ImageOrientationPatient = [float(v) for v in (*row, *col)]
        ds.PixelSpacing = [ps_row_mm, ps_col_mm]
        ds.SliceThickness = dz_mm
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        img = (np.add.outer(np.arange(rows), np.arange(cols)) + 10 * k).astype(np.int16)
        ds.PixelData = img.tobytes()
        ds.save_as(folder / f"img{k:03d}.dcm", enforce_file_format=True)
    return {"row": row, "col": col, "normal": normal, "origin": origin,
            "spacing": np.array([ps_col_mm, ps_row_mm, dz_mm]), "n": n, **ids}


@pytest.fixture(scope="module")
def oblique(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("oblique") / "ct"
    geo = write_oblique_ct(folder)
    geo["src"] = load_source_series(folder)
    return geo


def _blob(vol: Volume, centre_ijk, radius_vox) -> Volume:
    k, j, i = np.meshgrid(*(np.arange(s) for s in vol.array.shape), indexing="ij")
    d2 = sum(((a - c) / r) ** 2 for a, c, r in zip((i, j, k), centre_ijk, radius_vox))
    return vol.with_array((d2 <= 1.0).astype(np.uint8))


def _centroid_lps(mask: Volume) -> np.ndarray:
    k, j, i = np.nonzero(mask.array)
    return mask.index_to_lps(np.stack([i, j, k], axis=1).astype(float)).mean(axis=0)


def test_source_series_geometry(oblique: dict) -> None:
    vol = oblique["src"].volume
    assert vol.size_xyz == (48, 40, oblique["n"])
    np.testing.assert_allclose(vol.spacing_mm, oblique["spacing"], atol=1e-6)
    np.testing.assert_allclose(vol.origin_lps_mm, oblique["origin"], atol=1e-6)
    np.testing.assert_allclose(vol.direction[:, 0], oblique["row"], atol=1e-6)
    assert vol.array[0, 0, 0] == -1024  # HU after rescale


def test_seg_geometry_and_identifiers(oblique: dict, tmp_path: Path) -> None:
    src = oblique["src"]
    tumor = _blob(src.volume, (30, 15, 6), (6, 5, 2.2))
    zone = _blob(src.volume, (28, 16, 5), (12, 10, 4))
    out = export_seg(src, {"tumor": tumor, "predicted_zone": zone}, tmp_path / "seg.dcm")
    seg = hd.seg.segread(out)
    # identifiers
    assert seg.StudyInstanceUID == oblique["study"]
    assert seg.FrameOfReferenceUID == oblique["frame"]
    assert seg.PatientID == "EXP001" and str(seg.PatientName) == "Export^Test"
    assert seg.AccessionNumber == "ACCEXP"
    assert seg.SeriesInstanceUID != oblique["series"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == oblique["series"]
    labels = [seg.get_segment_description(n).SegmentLabel for n in seg.segment_numbers]
    assert labels == ["Tumour", "Predicted ablation zone"]
    # per-frame geometry equals the CT slice geometry
    ct_by_pos = {tuple(np.round(np.asarray(d.ImagePositionPatient, float), 3))
                 for d in src.datasets}
    shared = seg.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(
        [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing],
        [float(v) for v in src.first.PixelSpacing], atol=1e-6)
    np.testing.assert_allclose(
        [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
        [float(v) for v in src.first.ImageOrientationPatient], atol=1e-6)
    for fr in seg.PerFrameFunctionalGroupsSequence:
        pos = tuple(np.round([float(v) for v in
                              fr.PlanePositionSequence[0].ImagePositionPatient], 3))
        assert pos in ct_by_pos
    # the voxels map back to the same LPS places (centroid within one voxel)
    for n, mask in zip(seg.segment_numbers, (tumor, zone)):
        back = _seg_to_ct_grid(seg, src, n)
        assert back.array.sum() == mask.array.sum()
        d = np.linalg.norm(_centroid_lps(back) - _centroid_lps(mask))
        assert d < float(src.volume.spacing_mm.min()), d


def _seg_to_ct_grid(seg: hd.seg.Segmentation, src, segment_number: int) -> Volume:
    """Independent reconstruction: each SEG frame placed by its own ImagePositionPatient."""
    out = np.zeros(src.volume.array.shape, np.uint8)
    normal = src.volume.direction[:, 2]
    z0 = float(src.volume.origin_lps_mm @ normal)
    dz = float(src.volume.spacing_mm[2])
    frames = seg.pixel_array if seg.NumberOfFrames > 1 else seg.pixel_array[None]
    shared = seg.SharedFunctionalGroupsSequence[0]
    for f, fr in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ident = fr if "SegmentIdentificationSequence" in fr else shared
        if int(ident.SegmentIdentificationSequence[0].ReferencedSegmentNumber) != segment_number:
            continue
        ipp = np.array([float(v) for v in fr.PlanePositionSequence[0].ImagePositionPatient])
        k = int(round((ipp @ normal - z0) / dz))
        out[k] |= frames[f].astype(np.uint8)
    return src.volume.with_array(out)


def test_seg_mask_on_other_grid_is_resampled(oblique: dict, tmp_path: Path) -> None:
    src = oblique["src"]
    tumor = _blob(src.volume, (24, 20, 6), (7, 7, 3))
    coarse = tumor.resample_spacing(2.0, "nearest")
    out = export_seg(src, {"ablation_zone": coarse}, tmp_path / "z.dcm")
    back = _seg_to_ct_grid(hd.seg.segread(out), src, 1)
    d = np.linalg.norm(_centroid_lps(back) - _centroid_lps(tumor))
    assert d < 1.5, d


def test_seg_refuses_empty_structure(oblique: dict, tmp_path: Path) -> None:
    empty = oblique["src"].volume.with_array(np.zeros(oblique["src"].volume.array.shape,
                                                      np.uint8))
    with pytest.raises(InputError, match="'liver' is empty"):
        export_seg(oblique["src"], {"liver": empty}, tmp_path / "e.dcm")


def test_encapsulated_pdf_keeps_bytes_and_study(oblique: dict, tmp_path: Path) -> None:
    pdf = tmp_path / "r.pdf"
    payload = b"%PDF-1.4\n% odd length payload\n%%EOF"
    assert len(payload) % 2 == 1
    pdf.write_bytes(payload)
    out = export_encapsulated_pdf(oblique["src"], pdf, tmp_path / "pdf.dcm")
    ds = dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert ds.Modality == "DOC" and ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.EncapsulatedDocument[:ds.EncapsulatedDocumentLength] == payload
    assert ds.StudyInstanceUID == oblique["study"] and ds.PatientID == "EXP001"
    assert ds.SeriesInstanceUID not in (oblique["series"],)
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == oblique["series"]
    with pytest.raises(InputError, match="not a PDF"):
        bad = tmp_path / "x.pdf"
        bad.write_text("hello")
        export_encapsulated_pdf(oblique["src"], bad, tmp_path / "bad.dcm")


def test_secondary_capture_from_png(oblique: dict, tmp_path: Path) -> None:
    from PIL import Image

    rgb = np.zeros((30, 50, 3), np.uint8)
    rgb[:, :25] = (255, 0, 0)
    rgb[:, 25:] = (0, 0, 255)
    png = tmp_path / "shot.png"
    Image.fromarray(rgb).save(png)
    out = export_secondary_capture(oblique["src"], png, tmp_path / "sc.dcm")
    ds = dcmread(out)
    assert ds.StudyInstanceUID == oblique["study"] and ds.PatientID == "EXP001"
    assert ds.SeriesInstanceUID != oblique["series"]
    assert ds.PhotometricInterpretation == "RGB"
    assert np.array_equal(ds.pixel_array, rgb)


@pytest.fixture(scope="module")
def small_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom case on a coarse grid (3 x 3 x 4 mm): same anatomy, fast to write."""
    from irplan.io.phantom_writer import write_phantom_case

    out = tmp_path_factory.mktemp("export_phantom") / "case"
    return write_phantom_case(out, seed=0, size=(128, 128, 64), spacing_mm=(3.0, 3.0, 4.0))


def test_phantom_tumour_and_zone_seg_centroids(small_phantom: Path, tmp_path: Path) -> None:
    from irplan.io.masks import read_mask

    src = load_source_series(small_phantom / "planning")
    tumor = read_mask(small_phantom / "masks" / "planning" / "tumor.nii.gz")
    zone = read_mask(small_phantom / "masks" / "planning" / "ablation_zone.nii.gz")
    out = export_seg(src, {"tumor": tumor, "ablation_zone": zone}, tmp_path / "p.dcm")
    seg = hd.seg.segread(out)
    assert seg.FrameOfReferenceUID == src.first.FrameOfReferenceUID
    assert seg.StudyInstanceUID == src.first.StudyInstanceUID
    for n, mask in zip(seg.segment_numbers, (tumor, zone)):
        back = _seg_to_ct_grid(seg, src, n)
        d = np.linalg.norm(_centroid_lps(back) - _centroid_lps(mask))
        assert d < float(src.volume.spacing_mm.min()), d


def test_cli_export_seg_pdf_and_screenshot(small_phantom: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from PIL import Image

    from irplan.io.masks import read_mask

    pdf = tmp_path / "given.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% a report\n%%EOF\n")
    png = tmp_path / "shot.png"
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(png)
    out = tmp_path / "export"
    res = subprocess.run([sys.executable, "-m", "irplan.app.cli", "export",
                          str(small_phantom / "plan.irplan.json"), "--out", str(out), "--seg",
                          "--no-zone", "--pdf", str(pdf), "--screenshot", str(png)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    ct = dcmread(next((small_phantom / "planning").iterdir()), stop_before_pixels=True)
    objs = {p.name: dcmread(p) for p in out.glob("*.dcm")}
    assert set(objs) == {"structures_seg.dcm", "report_pdf.dcm", "screenshot_sc.dcm"}
    uids = {d.SeriesInstanceUID for d in objs.values()}
    assert len(uids) == 3 and ct.SeriesInstanceUID not in uids
    for d in objs.values():
        assert d.StudyInstanceUID == ct.StudyInstanceUID
        assert d.PatientID == ct.PatientID and d.PatientName == ct.PatientName
    enc = objs["report_pdf.dcm"]
    assert enc.EncapsulatedDocument[:enc.EncapsulatedDocumentLength] == pdf.read_bytes()
    seg = hd.seg.segread(out / "structures_seg.dcm")
    labels = {seg.get_segment_description(n).SegmentLabel: n for n in seg.segment_numbers}
    assert "Tumour" in labels and "Liver" in labels
    src = load_source_series(small_phantom / "planning")
    tumor = read_mask(small_phantom / "masks" / "planning" / "tumor.nii.gz")
    back = _seg_to_ct_grid(seg, src, labels["Tumour"])
    assert np.linalg.norm(_centroid_lps(back) - _centroid_lps(tumor)) < 1.0
    bad = subprocess.run([sys.executable, "-m", "irplan.app.cli", "export",
                          str(small_phantom / "plan.irplan.json"), "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "nothing to export" in bad.stderr


def test_cli_export_achieved_zone_in_planning_frame(small_phantom: Path, tmp_path: Path) -> None:
    """The follow-up ablation zone, registered (rigid) onto the planning CT, exported as a
    SEG segment: its centroid lies at the true planning-space zone centroid."""
    import subprocess
    import sys

    from irplan.io.masks import read_mask

    out = tmp_path / "export"
    res = subprocess.run([sys.executable, "-m", "irplan.app.cli", "export",
                          str(small_phantom / "plan.irplan.json"), "--out", str(out), "--seg",
                          "--no-zone", "--followup", str(small_phantom / "followup"),
                          "--ablation", str(small_phantom / "masks" / "followup" /
                                            "ablation_zone.nii.gz")],
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    seg = hd.seg.segread(out / "structures_seg.dcm")
    labels = {seg.get_segment_description(n).SegmentLabel: n for n in seg.segment_numbers}
    assert "Predicted ablation zone" not in labels
    src = load_source_series(small_phantom / "planning")
    back = _seg_to_ct_grid(seg, src, labels["Ablation zone"])
    truth = read_mask(small_phantom / "masks" / "planning" / "ablation_zone.nii.gz")
    d = np.linalg.norm(_centroid_lps(back) - _centroid_lps(truth))
    assert d < 2.0, d                      # rigid registration on 3-4 mm voxels
    ratio = back.array.sum() / truth.array.sum()
    assert 0.85 < ratio < 1.15, ratio


def test_seg_second_lesion_is_a_coded_tumour(oblique: dict, tmp_path: Path) -> None:
    """Tumour 2 (key tumor_2) is exported as a neoplasm, labelled like the GUI, with its
    own voxels (before: "tumor 2" coded as tissue)."""
    from pydicom.sr.codedict import codes

    src = oblique["src"]
    t1 = _blob(src.volume, (30, 15, 6), (6, 5, 2.2))
    t2 = _blob(src.volume, (12, 30, 6), (4, 4, 2.0))
    out = export_seg(src, {"tumor": t1, "tumor_2": t2}, tmp_path / "two.dcm")
    seg = hd.seg.segread(out)
    descs = [seg.get_segment_description(n) for n in seg.segment_numbers]
    assert [d.SegmentLabel for d in descs] == ["Tumour", "Tumour 2"]
    assert {d.SegmentedPropertyTypeCodeSequence[0].CodeValue for d in descs} == {
        codes.SCT.Neoplasm.value}
    assert _seg_to_ct_grid(seg, src, 2).array.sum() == t2.array.sum()
