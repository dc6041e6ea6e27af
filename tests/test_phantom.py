"""Phantom cases: ground truth agrees with masks and images; DICOM geometry is exact."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from irplan.io.dicom_write import write_ct_series
from irplan.io.masks import read_mask
from irplan.io.phantom_writer import load_truth
from irplan.planning import phantom as ph
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume

SMALL = (96, 96, 40)
SMALL_SPACING = (4.0, 4.0, 6.0)


def _read_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _hu_at(img: sitk.Image, p_lps_mm: list[float]) -> float:
    return float(img[img.TransformPhysicalPointToIndex([float(v) for v in p_lps_mm])])


# ------------------------------------------------------------------ written case
def test_case_layout_and_plan(phantom_case: Path) -> None:
    for sub in ("planning", "intraop", "followup"):
        assert len(list((phantom_case / sub).glob("*.dcm"))) >= 100
    for key in ph.MASK_KEYS + ("ablation_zone",):
        assert (phantom_case / "masks" / "planning" / f"{key}.nii.gz").is_file()
    for key in ("ablation_zone", "tumor"):
        assert (phantom_case / "masks" / "followup" / f"{key}.nii.gz").is_file()
    plan = json.loads((phantom_case / "plan.irplan.json").read_text())
    assert plan["schema"] == 1 and plan["modality"] == "IRE"
    assert len(plan["needles"]) == 4
    for key, rel in plan["structures"].items():
        assert (phantom_case / rel).is_file(), key
    first = pydicom.dcmread(next((phantom_case / "planning").glob("*.dcm")),
                            stop_before_pixels=True)
    assert plan["image"]["series_uid"] == first.SeriesInstanceUID
    # IRE electrodes: parallel, 15-20 mm apart (CLINICAL.md)
    tips = np.array([n["tip_lps_mm"] for n in plan["needles"]])
    dirs = np.array([np.subtract(n["tip_lps_mm"], n["entry_lps_mm"]) for n in plan["needles"]])
    dirs /= np.linalg.norm(dirs, axis=1)[:, None]
    assert np.allclose(dirs, dirs[0], atol=1e-9)
    for a in range(4):
        near = sorted(np.linalg.norm(tips - tips[a], axis=1))[1]
        assert 15.0 <= near <= 20.0


def test_uids_study_and_frame(phantom_case: Path) -> None:
    hdr = {s: pydicom.dcmread(next((phantom_case / s).glob("*.dcm")), stop_before_pixels=True)
           for s in ("planning", "intraop", "followup")}
    assert hdr["planning"].StudyInstanceUID == hdr["intraop"].StudyInstanceUID
    assert hdr["planning"].FrameOfReferenceUID == hdr["intraop"].FrameOfReferenceUID
    assert hdr["planning"].SeriesInstanceUID != hdr["intraop"].SeriesInstanceUID
    assert hdr["followup"].StudyInstanceUID != hdr["planning"].StudyInstanceUID
    assert hdr["followup"].FrameOfReferenceUID != hdr["planning"].FrameOfReferenceUID
    assert hdr["followup"].StudyDate > hdr["planning"].StudyDate


def test_hu_read_back_through_simpleitk(phantom_case: Path) -> None:
    truth = load_truth(phantom_case)
    img = _read_series(phantom_case / "planning")
    c = truth.tumor.center_lps_mm
    # mean over a small cube averages the 10 HU noise
    idx = np.array(img.TransformPhysicalPointToIndex(c))
    arr = sitk.GetArrayFromImage(img)
    cube = arr[idx[2] - 1:idx[2] + 2, idx[1] - 2:idx[1] + 3, idx[0] - 2:idx[0] + 3]
    assert abs(cube.mean() - ph.HU["tumor"]) < 6
    # a voxel in the middle of the IVC / main portal vein
    ivc = truth.vessel("inferior vena cava")
    p = (np.array(ivc.start_lps_mm) + np.array(ivc.end_lps_mm)) / 2
    assert abs(_hu_at(img, p) - ph.HU["ivc"]) < 45
    mpv = truth.vessel("main portal vein")
    p = (np.array(mpv.start_lps_mm) + np.array(mpv.end_lps_mm)) / 2
    assert abs(_hu_at(img, p) - ph.HU["vessel"]) < 45
    # liver parenchyma, lung base, outside air
    assert abs(_hu_at(img, [-100.0, -20.0, 20.0]) - ph.HU["liver"]) < 45
    assert _hu_at(img, [-80.0, 10.0, 100.0]) < -700
    assert _hu_at(img, [0.0, -150.0, 0.0]) < -950


def test_liver_on_patient_right(phantom_case: Path) -> None:
    liver = read_mask(phantom_case / "masks" / "planning" / "liver.nii.gz")
    k, j, i = np.nonzero(liver.array)
    centroid = liver.index_to_lps(np.array([i.mean(), j.mean(), k.mean()]))
    assert centroid[0] < -20.0  # LPS: x < 0 is the patient's right
    assert 1200 < liver.array.sum() * liver.voxel_volume_ml < 2500  # adult liver, ml


def test_tumour_mask_matches_truth(phantom_case: Path) -> None:
    truth = load_truth(phantom_case)
    tumor = read_mask(phantom_case / "masks" / "planning" / "tumor.nii.gz")
    vol_ml = tumor.array.sum() * tumor.voxel_volume_ml
    r = truth.tumor.radii_mm[0]
    # voxel error: surface area x half a voxel diagonal-ish
    tol_ml = 4 * np.pi * r * r * 0.5 * np.max(tumor.spacing_mm) / 1000 / 2
    assert abs(vol_ml - truth.tumor.volume_ml) < tol_ml
    k, j, i = np.nonzero(tumor.array)
    centroid = tumor.index_to_lps(np.array([i.mean(), j.mean(), k.mean()]))
    assert np.linalg.norm(centroid - truth.tumor.center_lps_mm) < 0.3


def test_vessel_near_tumour(phantom_case: Path) -> None:
    truth = load_truth(phantom_case)
    assert 5.0 <= truth.nearest_vessel_distance_mm <= 8.0
    masks = {k: read_mask(phantom_case / "masks" / "planning" / f"{k}.nii.gz")
             for k in {v.kind for v in truth.vessels}}
    for v in truth.vessels:
        # the mask has the truth's calibre: inside one voxel within the wall at the segment
        # midpoint, outside one voxel beyond it
        m = masks[v.kind]
        a, b = np.array(v.start_lps_mm), np.array(v.end_lps_mm)
        mid, axis = (a + b) / 2, (b - a) / np.linalg.norm(b - a)
        u = np.cross(axis, [0.0, 0.0, 1.0])
        u = u if np.linalg.norm(u) > 1e-3 else np.cross(axis, [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        r, vox = v.radius_mm, float(m.spacing_mm.max())
        assert m.value_at_lps(mid + u * max(r - vox, 0.0), order=0) == 1, v.name
        assert m.value_at_lps(mid + u * (r + vox), order=0) == 0, v.name
    diam = sorted({2 * v.radius_mm for v in truth.vessels if v.kind == "portal_vein"})
    assert diam[0] <= 3.5 and diam[-1] >= 14.0


def test_followup_mapping_matches_followup_mask(phantom_case: Path) -> None:
    truth = load_truth(phantom_case)
    tumor_fu = read_mask(phantom_case / "masks" / "followup" / "tumor.nii.gz")
    k, j, i = np.nonzero(tumor_fu.array)
    centroid = tumor_fu.index_to_lps(np.array([i.mean(), j.mean(), k.mean()]))
    mapped = ph.followup_from_planning(np.array(truth.tumor.center_lps_mm), truth)
    assert np.linalg.norm(centroid - mapped) < 0.5 * np.min(tumor_fu.spacing_mm)
    moved = np.linalg.norm(mapped - truth.tumor.center_lps_mm)
    assert moved > 5.0  # the motion is real, several mm
    # follow-up image: zone is non-enhancing (~30 HU) where the tumour was
    img = _read_series(phantom_case / "followup")
    idx = np.array(img.TransformPhysicalPointToIndex(mapped))
    arr = sitk.GetArrayFromImage(img)
    cube = arr[idx[2] - 1:idx[2] + 2, idx[1] - 2:idx[1] + 3, idx[0] - 2:idx[0] + 3]
    assert abs(cube.mean() - ph.HU["ablation_zone"]) < 6


def test_followup_inverse_is_exact() -> None:
    truth = ph.make_truth(3, "margin_at_risk")
    rng = np.random.default_rng(1)
    pts = rng.uniform(-150, 150, (2000, 3))
    pts[:10] = truth.followup_transform.bump.center_lps_mm  # where the bump is max
    back = ph.planning_from_followup(ph.followup_from_planning(pts, truth), truth)
    assert np.max(np.abs(back - pts)) < 1e-8
    # the bump really deforms: displacement at its centre is ~3 mm beyond the rigid part
    tf = truth.followup_transform
    rigid = pts[0] @ np.array(tf.rotation_matrix).T + tf.translation_mm
    assert 2.5 < np.linalg.norm(ph.followup_from_planning(pts[0], truth) - rigid) <= 3.0 + 1e-9


def test_intraop_shows_needles(phantom_case: Path) -> None:
    truth = load_truth(phantom_case)
    img = _read_series(phantom_case / "intraop")
    plan_img = _read_series(phantom_case / "planning")
    for n in truth.needles:
        tip, entry = np.array(n.tip_lps_mm), np.array(n.entry_lps_mm)
        mid = entry + 0.5 * (tip - entry)
        for p in (mid, tip - 3.0 * (tip - entry) / np.linalg.norm(tip - entry)):
            idx = np.array(img.TransformPhysicalPointToIndex(p))
            near = sitk.GetArrayFromImage(img)[idx[2] - 1:idx[2] + 2, idx[1] - 1:idx[1] + 2,
                                               idx[0] - 1:idx[0] + 2]
            assert near.max() > 1500  # metal
            assert _hu_at(plan_img, p) < 300  # not in the planning CT


# ------------------------------------------------------------------ truth maths
@pytest.mark.parametrize("scenario,lo,hi", [("margin_ok", 5.0, 12.0),
                                            ("margin_at_risk", 0.0, 5.0),
                                            ("incomplete", -8.0, 0.0)])
def test_scenarios_margin_ranges(scenario: str, lo: float, hi: float) -> None:
    for seed in (0, 1):
        truth = ph.make_truth(seed, scenario)
        assert lo <= truth.minimal_margin_mm < hi
        if scenario == "incomplete":
            assert truth.tumor_coverage_percent < 100.0
        else:
            assert truth.tumor_coverage_percent == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("scenario", ph.SCENARIOS)
def test_mam_and_coverage_vs_brute_force(scenario: str) -> None:
    """Dense sampling of the tumour sphere vs the analytic MAM and coverage."""
    truth = ph.make_truth(2, scenario)
    c = np.array(truth.tumor.center_lps_mm)
    r = truth.tumor.radii_mm[0]
    z = truth.ablation_zone
    zc, zr, ax = np.array(z.center_lps_mm), np.array(z.radii_mm), np.array(z.axes)
    # zone surface densely sampled (Fibonacci points on the unit sphere, stretched; no
    # duplicate points), tumour surface likewise
    def fibonacci(n: int) -> np.ndarray:
        f = np.arange(n) + 0.5
        polar = np.arccos(1 - 2 * f / n)
        azim = np.pi * (1 + 5 ** 0.5) * f
        return np.stack([np.cos(azim) * np.sin(polar), np.sin(azim) * np.sin(polar),
                         np.cos(polar)], -1)

    surf = zc + (fibonacci(60_000) * zr) @ ax  # ~0.3 mm apart
    from scipy.spatial import cKDTree

    tree = cKDTree(surf)
    sph = fibonacci(5_000)
    tpts = c + r * sph
    d, _ = tree.query(tpts)
    inside = np.sum(((tpts - zc) @ ax.T / zr) ** 2, axis=1) <= 1.0
    signed = np.where(inside, d, -d)
    assert signed.min() == pytest.approx(truth.minimal_margin_mm, abs=0.05)
    # coverage: fraction of a fine voxel grid over the tumour inside the zone
    g = np.arange(-r, r, 0.25) + 0.125
    gx, gy, gz = np.meshgrid(g, g, g, indexing="ij")
    pts = np.stack([gx, gy, gz], -1).reshape(-1, 3)
    pts = pts[np.sum(pts ** 2, axis=1) <= r * r] + c
    cov = 100 * np.mean(np.sum(((pts - zc) @ ax.T / zr) ** 2, axis=1) <= 1.0)
    assert cov == pytest.approx(truth.tumor_coverage_percent, abs=0.3)


def test_truth_deterministic() -> None:
    a = ph.make_truth(5, "incomplete")
    b = ph.make_truth(5, "incomplete")
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert ph.make_truth(6).tumor.to_dict() != a.tumor.to_dict()


# truth.json keys are a contract (tests and research scripts read the file)
TRUTH_KEYS = ["seed", "scenario", "frame", "tumor", "vessels", "nearest_vessel",
              "nearest_vessel_distance_mm", "ablation_zone", "minimal_margin_mm",
              "minimal_margin_definition", "tumor_coverage_percent", "followup_transform",
              "followup_bump_at_tumor_mm", "needles", "needle_spacing_mm", "ire", "hu",
              "hu_source", "noise_sd_hu", "blur_sigma_mm", "needle_radius_mm",
              "mask_conventions", "placed_needles", "variant", "grids", "dicom", "files"]


def test_truth_json_round_trips_through_the_dataclass(phantom_case: Path) -> None:
    text = (phantom_case / "truth.json").read_text()
    d = json.loads(text)
    assert list(d) == TRUTH_KEYS
    assert list(d["tumor"]) == ["shape", "center_lps_mm", "radii_mm", "diameter_mm",
                                "volume_ml"]
    assert list(d["followup_transform"]["bump"]) == ["center_lps_mm", "amplitude_mm",
                                                     "sigma_mm"]
    truth = load_truth(phantom_case)
    assert isinstance(truth, ph.PhantomTruth)
    # the same bytes back: every key, value and order of the file
    assert json.dumps(truth.to_dict(), indent=1) + "\n" == text
    assert ph.PhantomTruth.from_dict(truth.to_dict()).to_dict() == d
    # typed fields carry the file's numbers
    assert truth.tumor.radius_mm == d["tumor"]["radii_mm"][0]
    assert truth.grids["planning"].size == tuple(d["grids"]["planning"]["size"])
    assert truth.dicom["followup"].series_uid == d["dicom"]["followup"]["series_uid"]
    assert truth.files.masks_planning["tumor"] == "masks/planning/tumor.nii.gz"
    assert truth.vessel("right hepatic vein").kind == "hepatic_vein"
    # the exact motion accepts the dataclass or the file's dict alike
    c = truth.tumor.center_lps_mm
    assert np.array_equal(ph.followup_from_planning(c, truth), ph.followup_from_planning(c, d))


def test_truth_file_with_a_missing_field_is_refused(phantom_case: Path, tmp_path: Path) -> None:
    d = json.loads((phantom_case / "truth.json").read_text())
    del d["ablation_zone"]["radii_mm"]
    (tmp_path / "truth.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"truth.json: .*'ablation_zone.radii_mm'"):
        load_truth(tmp_path)
    d = json.loads((phantom_case / "truth.json").read_text())
    d["needles"][2]["tip_lps_mm"] = [1.0, 2.0]
    (tmp_path / "truth.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"needles\[2\].tip_lps_mm"):
        load_truth(tmp_path)


def test_bad_options_are_clear() -> None:
    with pytest.raises(InputError, match="scenario"):
        ph.make_truth(0, "perfect")
    with pytest.raises(InputError, match="variant"):
        ph.phantom_grid("sagittal")


# ------------------------------------------------------------------ DICOM geometry
@pytest.mark.parametrize("variant", ph.VARIANTS)
def test_dicom_geometry_exact_for_variants(variant: str, tmp_path: Path) -> None:
    grid = ph.phantom_grid(variant, SMALL, SMALL_SPACING)
    ct, masks, truth = ph.make_planning(grid, seed=0)
    write_ct_series(ct, tmp_path / variant, series_description=variant)
    img = _read_series(tmp_path / variant)
    assert img.GetSize() == ct.size_xyz
    assert np.allclose(img.GetOrigin(), ct.origin_lps_mm, atol=1e-4)
    assert np.allclose(img.GetSpacing(), ct.spacing_mm, atol=1e-4)
    assert np.allclose(np.array(img.GetDirection()).reshape(3, 3), ct.direction, atol=1e-6)
    # voxel-exact pixels (HU) and the same anatomy in LPS on every variant
    assert np.array_equal(sitk.GetArrayFromImage(img), ct.array)
    back = Volume.from_sitk(img)
    c = np.array(truth.tumor.center_lps_mm)
    assert back.value_at_lps(c, order=0) < 80
    assert masks["tumor"].value_at_lps(c, order=0) == 1
    assert masks["liver"].value_at_lps(np.array([-100.0, -20.0, 20.0]), order=0) == 1


def test_pydicom_positions_match_volume(tmp_path: Path) -> None:
    grid = ph.phantom_grid("flipped", (32, 24, 12), (5.0, 6.0, 7.0))
    vol = grid.with_array(np.arange(32 * 24 * 12, dtype=np.int16).reshape(12, 24, 32) % 2000)
    paths = write_ct_series(vol, tmp_path)
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        assert np.allclose([float(v) for v in ds.ImagePositionPatient],
                           vol.index_to_lps([0, 0, k]), atol=1e-4)
        assert [float(v) for v in ds.PixelSpacing] == [6.0, 5.0]  # [row, column] spacing
        hu = ds.pixel_array.astype(np.int32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.array_equal(hu, vol.array[k])


@pytest.mark.parametrize("ts", ["rle", "jpegls", "j2k"])
def test_compressed_series_read_back(ts: str, tmp_path: Path) -> None:
    grid = ph.phantom_grid("axial", (48, 40, 6), (6.0, 6.0, 6.0))
    rng = np.random.default_rng(0)
    vol = grid.with_array(rng.integers(-1024, 3000, (6, 40, 48)).astype(np.int16))
    paths = write_ct_series(vol, tmp_path, transfer_syntax=ts)
    ds = pydicom.dcmread(paths[2])
    assert ds.file_meta.TransferSyntaxUID.is_compressed
    hu = ds.pixel_array.astype(np.int32) + int(float(ds.RescaleIntercept))
    assert np.array_equal(hu, vol.array[2])
    img = _read_series(tmp_path)
    assert np.array_equal(sitk.GetArrayFromImage(img), vol.array)


# ------------------------------------------------------------------ SEG
def test_seg_reads_back(phantom_case: Path) -> None:
    seg = hd.seg.segread(phantom_case / "seg" / "planning_structures.dcm")
    labels = {seg.get_segment_description(n).segment_label: n for n in seg.segment_numbers}
    assert "Tumour" in labels and "Liver" in labels
    ct_first = pydicom.dcmread(next((phantom_case / "planning").glob("*.dcm")),
                               stop_before_pixels=True)
    assert seg.FrameOfReferenceUID == ct_first.FrameOfReferenceUID
    tumor = read_mask(phantom_case / "masks" / "planning" / "tumor.nii.gz")
    # rebuild the tumour segment on the CT grid from per-frame positions
    n = labels["Tumour"]
    arr = np.zeros(tumor.array.shape, np.uint8)
    pix = seg.pixel_array
    for f, fg in enumerate(seg.PerFrameFunctionalGroupsSequence):
        seg_no = fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        if seg_no != n:
            continue
        pos = [float(v) for v in fg.PlanePositionSequence[0].ImagePositionPatient]
        k = int(round(tumor.lps_to_index(pos)[2]))
        arr[k] = pix[f] if pix.ndim == 3 else pix
    assert np.array_equal(arr, tumor.array)


def test_zone_masks_match_truth(phantom_case: Path) -> None:
    truth = load_truth(phantom_case)
    vol_true = truth.ablation_zone.volume_ml
    r = np.array(truth.ablation_zone.radii_mm)
    area_mm2 = 4 * np.pi * (np.prod(r) ** (2 / 3))  # ~ellipsoid surface
    for sub in ("planning", "followup"):
        zone = read_mask(phantom_case / "masks" / sub / "ablation_zone.nii.gz")
        tol_ml = area_mm2 * 0.25 * np.max(zone.spacing_mm) / 1000
        assert abs(zone.array.sum() * zone.voxel_volume_ml - vol_true) < tol_ml, sub
    # every tumour voxel lies in the zone when the margin is positive
    tumor = read_mask(phantom_case / "masks" / "planning" / "tumor.nii.gz")
    zone = read_mask(phantom_case / "masks" / "planning" / "ablation_zone.nii.gz")
    assert truth.minimal_margin_mm > 0
    assert np.all(zone.array[tumor.array == 1] == 1)


def test_cli_small_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from irplan.app.cli import main

    out = tmp_path / "cli"
    rc = main(["phantom", str(out), "--seed", "4", "--scenario", "margin_at_risk",
               "--size", "64,64,40", "--spacing-mm", "6,6,7"])
    assert rc == 0
    text = capsys.readouterr().out
    truth = load_truth(out)
    assert f"{truth.minimal_margin_mm:.2f} mm" in text
    assert 0 <= truth.minimal_margin_mm < 5
    assert len(list((out / "planning").glob("*.dcm"))) == 40
    # deterministic: the same seed writes byte-identical files (pixels, UIDs, truth)
    from irplan.io.phantom_writer import write_phantom_case

    again = write_phantom_case(tmp_path / "again", seed=4, scenario="margin_at_risk",
                               size=(64, 64, 40), spacing_mm=(6.0, 6.0, 7.0))
    for rel in ("planning/IM0012.dcm", "intraop/IM0020.dcm", "followup/IM0007.dcm",
                "truth.json", "plan.irplan.json", "masks/followup/ablation_zone.nii.gz"):
        assert (out / rel).read_bytes() == (again / rel).read_bytes(), rel
    seg_a = pydicom.dcmread(out / "seg" / "planning_structures.dcm")
    seg_b = pydicom.dcmread(again / "seg" / "planning_structures.dcm")
    assert seg_a.SOPInstanceUID == seg_b.SOPInstanceUID
    assert seg_a.PixelData == seg_b.PixelData
    assert main(["phantom", str(tmp_path / "x"), "--size", "1,2"]) == 2
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["phantom", str(tmp_path / "busy")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_write_seg_refuses_mask_off_grid(tmp_path: Path) -> None:
    from irplan.io.dicom_write import read_series_headers
    from irplan.io.seg_write import write_seg

    grid = ph.phantom_grid("axial", (32, 32, 8), (8.0, 8.0, 8.0))
    ct = grid.with_array(np.zeros((8, 32, 32), np.int16))
    headers = read_series_headers(write_ct_series(ct, tmp_path / "ct"))
    shifted = Volume(np.ones((8, 32, 32), np.uint8), grid.origin_lps_mm + [0, 0, 4.0],
                     grid.spacing_mm, grid.direction)
    with pytest.raises(InputError, match="source CT image"):
        write_seg({"liver": shifted}, headers, tmp_path / "seg.dcm")
    ok = write_seg({"liver": grid.with_array(np.ones((8, 32, 32), np.uint8))}, headers,
                   tmp_path / "seg.dcm", algorithm_name="threshold")
    seg = hd.seg.segread(ok)
    assert seg.get_segment_description(1).segmented_property_type.meaning == "Liver"


def test_write_ct_series_rejects_nan(tmp_path: Path) -> None:
    grid = ph.phantom_grid("axial", (8, 8, 2), (1.0, 1.0, 1.0))
    arr = np.zeros((2, 8, 8), np.float32)
    arr[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        write_ct_series(grid.with_array(arr), tmp_path)
    with pytest.raises(InputError, match="exceed"):
        write_ct_series(grid.with_array(np.full((2, 8, 8), 70000, np.int32)), tmp_path)
    # padding below -1024 HU is stored as air
    paths = write_ct_series(grid.with_array(np.full((2, 8, 8), -3024, np.int16)), tmp_path)
    ds = pydicom.dcmread(paths[0])
    assert int(ds.pixel_array.min()) + float(ds.RescaleIntercept) == -1024


@pytest.mark.parametrize("variant", ph.VARIANTS)
def test_seg_geometry_matches_masks(variant: str, tmp_path: Path) -> None:
    """highdicom's own reconstruction of the SEG puts every voxel where our mask has it."""
    from irplan.io.dicom_write import read_series_headers
    from irplan.io.seg_write import write_seg

    grid = ph.phantom_grid(variant, (64, 64, 30), (6.0, 6.0, 8.0))
    ct, masks, _ = ph.make_planning(grid, seed=0)
    headers = read_series_headers(write_ct_series(ct, tmp_path / "ct"))
    keys = ("tumor", "liver")
    seg = hd.seg.segread(write_seg({k: masks[k] for k in keys}, headers, tmp_path / "s.dcm"))
    vol = seg.get_volume(combine_segments=False)
    for n, key in enumerate(keys):
        idx = np.argwhere(vol.array[..., n] > 0)  # highdicom (slice, row, column) order
        lps = idx @ vol.affine[:3, :3].T + vol.affine[:3, 3]
        ours = masks[key].lps_to_index(lps)
        assert np.allclose(ours, np.rint(ours), atol=1e-3)  # lands on our voxel centres
        ijk = np.rint(ours).astype(int)
        assert np.all(masks[key].array[ijk[:, 2], ijk[:, 1], ijk[:, 0]] == 1)
        assert len(idx) == int(masks[key].array.sum())


def test_needle_paths_avoid_bone_vessels_and_lung(phantom_case: Path) -> None:
    plan = json.loads((phantom_case / "plan.irplan.json").read_text())
    masks = {k: read_mask(phantom_case / "masks" / "planning" / f"{k}.nii.gz")
             for k in ("bone", "portal_vein", "hepatic_vein", "lung", "liver", "body")}
    for n in plan["needles"]:
        tip, entry = np.array(n["tip_lps_mm"]), np.array(n["entry_lps_mm"])
        pts = entry + np.linspace(0, 1, 300)[:, None] * (tip - entry)
        for key in ("bone", "portal_vein", "hepatic_vein", "lung"):
            assert np.all(masks[key].value_at_lps(pts, order=0) == 0), key
        assert masks["liver"].value_at_lps(tip, order=0) == 1
        # the entry point is on the skin: just inside vs. just outside the body
        d = (tip - entry) / np.linalg.norm(tip - entry)
        assert masks["body"].value_at_lps(entry + 3 * d, order=0) == 1
        assert masks["body"].value_at_lps(entry - 3 * d, order=0) == 0
        # patient's right (x < 0) and anterior half (y < 5) entry
        assert entry[0] < 0 and entry[1] < 5


@pytest.mark.parametrize("variant", ["oblique", "flipped"])
def test_small_case_variants_masks_on_dicom_grid(variant: str, tmp_path: Path) -> None:
    from irplan.io.phantom_writer import write_phantom_case

    out = write_phantom_case(tmp_path / variant, seed=1, variant=variant, size=(64, 64, 36),
                             spacing_mm=(6.0, 6.0, 7.0))
    img = Volume.from_sitk(_read_series(out / "planning"))
    intra = Volume.from_sitk(_read_series(out / "intraop"))
    assert intra.same_geometry(img)
    for key in ph.MASK_KEYS:
        assert read_mask(out / "masks" / "planning" / f"{key}.nii.gz").same_geometry(img), key
    truth = load_truth(out)
    assert truth.variant == variant
    assert np.allclose(np.array(truth.grids["planning"].direction).reshape(3, 3),
                       img.direction, atol=1e-6)
    seg = hd.seg.segread(out / "seg" / "planning_structures.dcm")
    assert len(seg.segment_numbers) == len(ph.MASK_KEYS)
