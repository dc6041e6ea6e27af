"""Mask import: NIfTI/NRRD by physical geometry, DICOM SEG and RTSTRUCT round trips with
independent writers (highdicom / pydicom + skimage contours), IRCADb mask folders,
name mapping and the refusals a user must see."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from irplan.io.mask_import import (
    RTSTRUCT_SOP_CLASS,
    import_mask_file,
    import_masks,
    import_rtstruct,
    import_seg,
    merge_by_key,
    rasterise_contours,
    save_user_aliases,
)
from irplan.io.masks import read_mask, write_mask, write_volume_file
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a != 0, b != 0
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _grid(size_ijk, spacing_mm, origin, direction=None) -> Volume:
    return Volume(np.zeros(tuple(size_ijk)[::-1], np.int16), origin, spacing_mm,
                  np.eye(3) if direction is None else direction)


def _sphere_on(grid: Volume, centre, radius_mm) -> Volume:
    p = grid.voxel_centres_lps()
    return grid.with_array((np.linalg.norm(p - np.asarray(centre), axis=-1)
                            <= radius_mm).astype(np.uint8))


def _rot_z(deg: float) -> np.ndarray:
    t = np.radians(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])


# ------------------------------------------------------------------ NIfTI / NRRD
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_nifti_on_other_grid_lands_on_the_same_anatomy(tmp_path, suffix):
    ct = _grid((60, 60, 30), (1.0, 1.0, 2.0), (-30.0, -30.0, -30.0))
    centre, r = (3.0, -4.0, 2.0), 12.0
    # the mask file: finer, rotated 30 deg and shifted grid (as from another tool)
    other = _grid((70, 70, 70), (0.8, 0.8, 0.8), (-20.0, -45.0, -28.0), _rot_z(30.0))
    write_volume_file(_sphere_on(other, centre, r), tmp_path / f"lesion{suffix}")
    [imp] = import_mask_file(tmp_path / f"lesion{suffix}", ct)
    assert imp.mask.same_geometry(ct)
    truth = _sphere_on(ct, centre, r)
    assert dice(imp.mask.array, truth.array) >= 0.95
    assert imp.key == "tumor"  # "lesion" is a tumour alias
    assert abs(imp.volume_ml - 4 / 3 * np.pi * r ** 3 / 1000) < 0.08 * 7.2


def test_nifti_same_grid_is_voxel_exact_and_labelmap_splits(tmp_path):
    ct = _grid((40, 40, 20), (1.0, 1.0, 1.5), (0, 0, 0))
    lab = np.zeros(ct.array.shape, np.uint8)
    lab[5:10, 5:20, 5:20] = 1
    lab[12:18, 20:30, 10:30] = 2
    write_volume_file(ct.with_array(lab), tmp_path / "labels.nii.gz")
    res = import_mask_file(tmp_path / "labels.nii.gz", ct, labels={1: "Liver", 2: "Portal vein"})
    by = {r.key: r for r in res}
    assert set(by) == {"liver", "portal_vein"}
    assert np.array_equal(by["liver"].mask.array, (lab == 1).astype(np.uint8))
    assert by["portal_vein"].volume_ml == pytest.approx((lab == 2).sum() * 1.5e-3)


def test_mask_outside_ct_is_refused_with_the_file_name(tmp_path):
    ct = _grid((30, 30, 10), (1.0, 1.0, 2.0), (0, 0, 0))
    far = _grid((20, 20, 10), (1.0, 1.0, 2.0), (500.0, 0, 0))
    m = far.with_array(np.ones(far.array.shape, np.uint8))
    write_mask(m, tmp_path / "far_away.nii.gz")
    with pytest.raises(InputError, match="far_away.nii.gz.*does not overlap the CT"):
        import_masks(tmp_path / "far_away.nii.gz", ct)


def test_partly_outside_is_clipped_and_said(tmp_path):
    ct = _grid((30, 30, 10), (1.0, 1.0, 2.0), (0, 0, 0))
    shifted = _grid((30, 30, 10), (1.0, 1.0, 2.0), (15.0, 0, 0))
    write_mask(shifted.with_array(np.ones(shifted.array.shape, np.uint8)), tmp_path / "m.nii.gz")
    [imp] = import_masks(tmp_path / "m.nii.gz", ct)
    assert imp.warnings and "outside the CT" in imp.warnings[0]
    assert imp.mask.array[:, :, 15:].all() and not imp.mask.array[:, :, :15].any()


def test_user_alias_table_changes_the_mapping(tmp_path):
    ct = _grid((20, 20, 10), (1.0, 1.0, 1.0), (0, 0, 0))
    m = np.zeros(ct.array.shape, np.uint8)
    m[2:5, 2:5, 2:5] = 1
    write_mask(ct.with_array(m), tmp_path / "Segment_7.nii.gz")
    assert import_masks(tmp_path / "Segment_7.nii.gz", ct)[0].key == "other"
    save_user_aliases({"Segment_7": "bile_duct"})  # the config dir is a test tmp dir
    assert import_masks(tmp_path / "Segment_7.nii.gz", ct)[0].key == "bile_duct"
    assert import_masks(tmp_path / "Segment_7.nii.gz", ct,
                        aliases={"segment": "artery"})[0].key == "artery"


# ------------------------------------------------------------------ phantom helpers
@pytest.fixture(scope="module")
def planning(phantom_case: Path):
    from irplan.io.dicom_load import load_ct

    ct = load_ct(phantom_case / "planning")
    files = sorted((phantom_case / "planning").iterdir())
    datasets = [pydicom.dcmread(str(f)) for f in files if f.is_file()]
    truth = {k: read_mask(phantom_case / "masks" / "planning" / f"{k}.nii.gz")
             for k in ("tumor", "liver", "portal_vein")}
    return ct, datasets, truth


def _slice_of(ds: pydicom.Dataset, grid: Volume) -> int:
    idx = grid.lps_to_index([float(v) for v in ds.ImagePositionPatient])
    return int(round(idx[2]))


# ------------------------------------------------------------------ DICOM SEG round trip
def _write_seg_highdicom(path: Path, datasets, masks: dict[str, Volume],
                         fractional: bool = False) -> None:
    """Independent SEG writer: highdicom straight from the CT headers."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    grid = next(iter(masks.values()))
    order = sorted(datasets, key=lambda d: _slice_of(d, grid))
    pixels = np.stack([np.stack([m.array[_slice_of(d, grid)] for d in order])
                       for m in masks.values()], axis=-1)
    pixels = pixels.astype(np.float32) if fractional else pixels.astype(np.uint8)
    descs = [hd.seg.SegmentDescription(
        segment_number=n + 1, segment_label=name,
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, name in enumerate(masks)]
    seg = hd.seg.Segmentation(
        source_images=order, pixel_array=pixels,
        segmentation_type=(hd.seg.SegmentationTypeValues.FRACTIONAL if fractional
                           else hd.seg.SegmentationTypeValues.BINARY),
        segment_descriptions=descs,
        series_instance_uid=generate_uid(), series_number=77, sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer="test", manufacturer_model_name="test",
        software_versions="1", device_serial_number="1")
    seg.save_as(str(path))


def test_seg_round_trip_highdicom(planning, tmp_path):
    ct, datasets, truth = planning
    path = tmp_path / "structures.dcm"
    _write_seg_highdicom(path, datasets, {"Liver tumour 1": truth["tumor"],
                                          "Portal Vein": truth["portal_vein"]})
    res = {r.key: r for r in import_seg(path, ct)}
    assert set(res) == {"tumor", "portal_vein"}
    for key in res:
        d = dice(res[key].mask.array, truth[key].array)
        print(f"SEG round trip {key}: Dice {d:.4f}")
        assert d >= 0.98
        assert res[key].mask.same_geometry(ct)
    # dispatcher finds the SOP class by itself
    assert {r.name for r in import_masks(path, ct)} == {"Liver tumour 1", "Portal Vein"}


def test_fractional_seg_is_thresholded_at_half(planning, tmp_path):
    from scipy.ndimage import gaussian_filter

    ct, datasets, truth = planning
    prob = gaussian_filter(truth["tumor"].array.astype(np.float32), 1.5)
    path = tmp_path / "prob.dcm"
    _write_seg_highdicom(path, datasets, {"tumour probability": truth["tumor"].with_array(prob)},
                         fractional=True)
    [imp] = import_seg(path, ct)
    expected = prob >= 0.5
    assert dice(imp.mask.array, expected) >= 0.98
    assert dice(imp.mask.array, truth["tumor"].array) >= 0.9


def test_seg_from_other_frame_of_reference_is_refused(planning, tmp_path):
    ct, datasets, truth = planning
    path = tmp_path / "seg.dcm"
    _write_seg_highdicom(path, datasets, {"tumour": truth["tumor"]})
    other = ct.with_array(ct.array, frame_of_reference_uid="1.2.3.4.5")
    with pytest.raises(InputError, match="frame of reference"):
        import_seg(path, other)


# ------------------------------------------------------------------ RTSTRUCT round trip
def _contours_from_mask(mask: Volume, datasets) -> list[list[float]]:
    """Independent contour tracer: skimage marching squares on each slice, mapped to LPS
    with the DICOM slice's own ImagePositionPatient / ImageOrientationPatient /
    PixelSpacing (not through irplan geometry)."""
    from skimage.measure import find_contours

    out = []
    for ds in datasets:
        k = _slice_of(ds, mask)
        sl = mask.array[k]
        if not sl.any():
            continue
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        dr, dc = (float(v) for v in ds.PixelSpacing)  # row spacing, column spacing
        padded = np.pad(sl.astype(float), 1)
        for c in find_contours(padded, 0.5):
            rows, cols = c[:, 0] - 1.0, c[:, 1] - 1.0
            pts = ipp + np.outer(cols * dc, iop[:3]) + np.outer(rows * dr, iop[3:])
            out.append([round(float(v), 4) for v in pts[:-1].reshape(-1)])
    return out


def _write_rtstruct(path: Path, datasets, rois: dict[str, list[list[float]]],
                    frame_uid: str) -> None:
    ref = datasets[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.PatientName, ds.PatientID = ref.PatientName, ref.PatientID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = ref.StudyInstanceUID, generate_uid()
    ds.StructureSetLabel = "test"
    ds.StructureSetDate = datetime.date.today().strftime("%Y%m%d")
    fr = pydicom.Dataset()
    fr.FrameOfReferenceUID = frame_uid
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([fr])
    rois_seq, contours_seq = [], []
    for n, (name, contours) in enumerate(rois.items(), start=1):
        r = pydicom.Dataset()
        r.ROINumber, r.ROIName, r.ReferencedFrameOfReferenceUID = n, name, frame_uid
        r.ROIGenerationAlgorithm = "MANUAL"
        rois_seq.append(r)
        rc = pydicom.Dataset()
        rc.ReferencedROINumber = n
        items = []
        for data in contours:
            c = pydicom.Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(data) // 3
            c.ContourData = data
            items.append(c)
        rc.ContourSequence = DicomSequence(items)
        contours_seq.append(rc)
    ds.StructureSetROISequence = DicomSequence(rois_seq)
    ds.ROIContourSequence = DicomSequence(contours_seq)
    ds.save_as(str(path), enforce_file_format=True)


def test_rtstruct_round_trip_with_holes(planning, tmp_path):
    ct, datasets, truth = planning
    tumor = truth["tumor"]
    # a hollow shell around the tumour: every slice is a ring (outer + inner contour)
    from scipy.ndimage import binary_dilation

    shell = tumor.with_array((binary_dilation(tumor.array, iterations=3)
                              & ~tumor.array.astype(bool)).astype(np.uint8))
    path = tmp_path / "rs.dcm"
    frame = ct.metadata["frame_of_reference_uid"]
    _write_rtstruct(path, datasets, {"GTV": _contours_from_mask(tumor, datasets),
                                     "Ring": _contours_from_mask(shell, datasets),
                                     "Portal vein": _contours_from_mask(truth["portal_vein"],
                                                                        datasets)}, frame)
    res = {r.name: r for r in import_masks(path, ct)}
    assert res["GTV"].key == "tumor" and res["Portal vein"].key == "portal_vein"
    for name, t in (("GTV", tumor), ("Ring", shell), ("Portal vein", truth["portal_vein"])):
        d = dice(res[name].mask.array, t.array)
        print(f"RTSTRUCT round trip {name}: Dice {d:.4f}")
        assert d >= 0.98
    # the ring's hole really is empty: the tumour is not in it
    assert not (res["Ring"].mask.array.astype(bool) & tumor.array.astype(bool)).any()


def test_rtstruct_refusals(planning, tmp_path):
    ct, datasets, truth = planning
    path = tmp_path / "rs.dcm"
    contours = _contours_from_mask(truth["tumor"], datasets)
    _write_rtstruct(path, datasets, {"GTV": contours}, "1.2.826.0.1.999")
    with pytest.raises(InputError, match="rs.dcm.*frame of reference"):
        import_rtstruct(path, ct)
    # contours half-way between two slices: drawn on another geometry
    shifted = [list(np.asarray(c).reshape(-1, 3) + [0, 0, 0.5 * ct.spacing_mm[2]])
               for c in contours]
    with pytest.raises(InputError, match="not in a CT slice plane"):
        rasterise_contours(ct, [np.asarray(c) for c in shifted], where="rs.dcm ROI 'GTV'")


def test_rasterise_nested_contours_xor():
    ct = _grid((40, 40, 3), (1.0, 1.0, 2.0), (0, 0, 0))

    def square(c, h, k):
        return np.array([[c - h, c - h, 2.0 * k], [c + h, c - h, 2.0 * k],
                         [c + h, c + h, 2.0 * k], [c - h, c + h, 2.0 * k]])

    arr = rasterise_contours(ct, [square(20, 15.5, 1), square(20, 8.5, 1), square(20, 3.5, 1)])
    sl = arr[1]
    assert sl[20, 20]           # island inside the hole
    assert not sl[20, 14]       # the hole
    assert sl[20, 8]            # the outer ring
    assert not arr[0].any() and not arr[2].any()
    assert sl.sum() == 31 * 31 - 17 * 17 + 7 * 7


# ------------------------------------------------------------------ phantom SEG + IRCADb
def test_phantom_seg_file_imports_all_structures(planning, phantom_case):
    ct, _, truth = planning
    merged = merge_by_key(import_masks(phantom_case / "seg" / "planning_structures.dcm", ct))
    for key in ("tumor", "liver", "portal_vein"):
        assert dice(merged[key].array, truth[key].array) >= 0.99


@pytest.mark.shared_data
def test_ircadb_masks_from_zip(ircadb17):
    from irplan.io.dicom_load import load_ct

    ct = load_ct(ircadb17 / "PATIENT_DICOM")
    from irplan.io.mask_import import import_ircadb_masks

    res = import_ircadb_masks(ircadb17 / "MASKS_DICOM.zip", ct,
                              only=["liver", "livertumor1", "livertumor2", "portalvein"])
    by = {r.name: r for r in res}
    assert {r.key for r in res} == {"liver", "tumor", "portal_vein"}
    # volumes stated in ../shared/data/ircadb1-17/SOURCE.md
    for name, ml in (("liver", 1860.6), ("livertumor1", 85.6), ("livertumor2", 78.6),
                     ("portalvein", 47.5)):
        print(f"IRCADb 17 {name}: {by[name].volume_ml:.1f} mL")
        assert by[name].volume_ml == pytest.approx(ml, abs=0.1)
    merged = merge_by_key(res)
    assert merged["tumor"].array.sum() == (by["livertumor1"].mask.array
                                           | by["livertumor2"].mask.array).sum()
    # the mean CT value in the liver (SOURCE.md: 99 HU) proves the masks sit on the CT
    assert float(ct.array[merged["liver"].array > 0].mean()) == pytest.approx(99, abs=2)


def test_not_a_mask_file_is_refused(tmp_path):
    ct = _grid((10, 10, 5), (1.0, 1.0, 1.0), (0, 0, 0))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="notes.txt.*not a mask file"):
        import_masks(tmp_path / "notes.txt", ct)
    with pytest.raises(InputError, match="not found"):
        import_masks(tmp_path / "missing.nii.gz", ct)


# ------------------------------------------------------------------ several lesions (issue 17)
def _second_lesion(planning_fixture):
    """The phantom's tumour and a 7 mm sphere elsewhere in its liver (on the CT grid)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from lesion_factory import second_lesion

    ct, _, truth = planning_fixture
    return second_lesion(truth["tumor"], truth["liver"], [truth["portal_vein"]])


def _ml(mask: Volume) -> float:
    return float(np.count_nonzero(mask.array)) * mask.voxel_volume_ml


def test_binary_mask_with_two_lesions_imports_as_two_structures(tmp_path):
    """One binary file holding two separate lesions: Tumour 1 (larger) and Tumour 2, each
    with its own voxels and volume (mL from the voxel counts)."""
    from irplan.io.mask_import import import_structures, import_summary

    ct = _grid((60, 60, 30), (1.0, 1.0, 2.0), (-30.0, -30.0, -30.0))
    small, big = _sphere_on(ct, (-15, -10, 0), 6.0), _sphere_on(ct, (12, 8, 4), 10.0)
    write_mask(ct.with_array(small.array | big.array), tmp_path / "tumour.nii.gz")
    masks, warnings = import_structures(tmp_path / "tumour.nii.gz", ct)
    assert list(masks) == ["tumor", "tumor_2"] and not warnings
    assert np.array_equal(masks["tumor"].array, big.array)
    assert np.array_equal(masks["tumor_2"].array, small.array)
    assert masks["tumor_2"].metadata["name"] == "Tumour 2"
    line = import_summary(masks)
    print(line)
    assert line == (f"2 lesions: Tumour 1 {_ml(big):.1f} mL, Tumour 2 {_ml(small):.1f} mL")


def test_labelmap_with_two_tumour_labels_keeps_them_apart(tmp_path):
    """A labelmap 'livertumor' with labels 1 and 2 (touching lesions: one connected blob)
    gives one structure per label, largest first; other structures are merged as before."""
    from irplan.io.mask_import import import_structures

    ct = _grid((40, 40, 20), (1.0, 1.0, 1.5), (0, 0, 0))
    lab = np.zeros(ct.array.shape, np.uint8)
    lab[5:10, 5:15, 5:15] = 1          # 500 voxels
    lab[5:10, 15:30, 5:25] = 2         # 1500 voxels, touching label 1
    write_volume_file(ct.with_array(lab), tmp_path / "livertumor.nii.gz")
    masks, _ = import_structures(tmp_path / "livertumor.nii.gz", ct)
    assert list(masks) == ["tumor", "tumor_2"]
    assert np.array_equal(masks["tumor"].array, lab == 2)
    assert np.array_equal(masks["tumor_2"].array, lab == 1)
    assert masks["tumor"].metadata["source_name"] == "livertumor_2"
    assert masks["tumor_2"].metadata["volume_ml"] == pytest.approx(500 * 1.5e-3)


def test_seg_and_rtstruct_with_two_tumours_import_two_lesions(planning, tmp_path):
    """A SEG with two tumour segments and an RTSTRUCT with two tumour ROIs: two lesions
    on the CT (Dice >= 0.98 each against the masks they were written from)."""
    from irplan.io.mask_import import import_structures

    ct, datasets, truth = planning
    t1, t2 = truth["tumor"], _second_lesion(planning)
    seg = tmp_path / "seg.dcm"
    _write_seg_highdicom(seg, datasets, {"Tumour 2": t2, "Tumour 1": t1,
                                         "Portal Vein": truth["portal_vein"]})
    rs = tmp_path / "rs.dcm"
    _write_rtstruct(rs, datasets, {"GTV 1": _contours_from_mask(t1, datasets),
                                   "GTV 2": _contours_from_mask(t2, datasets)},
                    ct.metadata["frame_of_reference_uid"])
    for path in (seg, rs):
        masks, _ = import_structures(path, ct)
        assert [k for k in masks if k.startswith("tumor")] == ["tumor", "tumor_2"]
        d1, d2 = dice(masks["tumor"].array, t1.array), dice(masks["tumor_2"].array, t2.array)
        print(f"{path.name}: Tumour 1 Dice {d1:.3f} {_ml(masks['tumor']):.2f} mL, "
              f"Tumour 2 Dice {d2:.3f} {_ml(masks['tumor_2']):.2f} mL")
        assert d1 >= 0.98 and d2 >= 0.98
    assert "portal_vein" in import_structures(seg, ct)[0]


def test_plan_reads_lesions_apart_from_one_seg(planning, tmp_path):
    """A plan naming tumor and tumor_2 in one SEG file reads one lesion each; a plan with
    only "tumor" from that file keeps reading the union of its tumour segments."""
    from irplan.io.case_loader import read_structures

    ct, datasets, truth = planning
    t1, t2 = truth["tumor"], _second_lesion(planning)
    seg = tmp_path / "seg.dcm"
    _write_seg_highdicom(seg, datasets, {"Tumour 2": t2, "Tumour 1": t1})
    apart, _ = read_structures({"tumor": (seg, "structures.tumor"),
                                "tumor_2": (seg, "structures.tumor_2")}, ct)
    assert dice(apart["tumor"].array, t1.array) >= 0.98
    assert dice(apart["tumor_2"].array, t2.array) >= 0.98
    one, _ = read_structures({"tumor": (seg, "structures.tumor")}, ct)
    assert dice(one["tumor"].array, t1.array | t2.array) >= 0.98
    with pytest.raises(InputError, match="no lesion for 'tumor_3'"):
        read_structures({"tumor": (seg, "a"), "tumor_3": (seg, "structures.tumor_3")}, ct)
