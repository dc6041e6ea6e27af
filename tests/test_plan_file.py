"""Plan files: round trip, relative paths, re-location of a moved image, migration, atomic save."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from irplan.io.plan_file import (
    load_plan,
    load_plan_with_notes,
    plan_from_dict,
    save_plan,
    structure_paths,
)
from irplan.planning.errors import InputError
from irplan.planning.plan import ImageRef, IreParams, Needle, Plan, ThermalParams


def _write_series(folder: Path, series_uid: str, n: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID = series_uid
        ds.Modality = "CT"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.2"
        ds.PatientID = "P"
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = 1.0
        ds.Rows = ds.Columns = 4
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0
        ds.RescaleSlope = 1
        ds.PixelData = np.zeros((4, 4), np.int16).tobytes()
        ds.save_as(folder / f"IM{i:04d}", enforce_file_format=True)


@pytest.fixture()
def case_dir(tmp_path: Path) -> tuple[Path, str]:
    uid = generate_uid()
    _write_series(tmp_path / "planning", uid)
    _write_series(tmp_path / "other", generate_uid())
    (tmp_path / "masks").mkdir()
    for key in ("tumor", "portal_vein"):
        (tmp_path / "masks" / f"{key}.nii.gz").write_bytes(b"not read by load_plan")
    return tmp_path, uid


def _plan(uid: str) -> Plan:
    return Plan(
        modality="IRE",
        image=ImageRef("planning", uid, "1.2.3.4"),
        margin_mm=5.0,
        needles=[Needle("ire-19g-monopolar", [10.25, -3.5, 100.125], [60.0, -3.5, 180.0], 20.0, "E1"),
                 Needle("ire-19g-monopolar", [28.1, -3.5, 100.0], [78.1, -3.5, 180.0], 15.5)],
        ire=IreParams(2250.0, 90, 90.0),
        thermal=ThermalParams(None, None),
        structures={"tumor": "masks/tumor.nii.gz", "portal_vein": "masks/portal_vein.nii.gz"},
        extra={"evaluations": [{"mam_mm": 4.2, "verdict": "complete"}], "notes": "é [1 , 2]"},
        targets=["tumor"],
    )


def test_round_trip_is_exact_and_keeps_extra_keys(case_dir: tuple[Path, str]) -> None:
    root, uid = case_dir
    plan = _plan(uid)
    plan.file_dir = str(root)
    path = save_plan(plan, root / "plan.irplan.json")
    loaded = load_plan(path)
    assert loaded == plan
    np.testing.assert_array_equal(loaded.needles[0].tip_lps_mm, [10.25, -3.5, 100.125])
    assert loaded.extra["evaluations"][0]["mam_mm"] == 4.2
    assert loaded.extra["notes"] == "é [1 , 2]"
    # second save writes identical bytes
    first = path.read_bytes()
    save_plan(loaded, path)
    assert path.read_bytes() == first
    data = json.loads(first)
    assert data["schema"] == 1 and data["structures"]["tumor"] == "masks/tumor.nii.gz"
    assert data["targets"] == ["tumor"] and loaded.targets == ["tumor"]
    assert structure_paths(loaded)["tumor"] == root / "masks" / "tumor.nii.gz"


def test_unknown_keys_inside_objects_survive(case_dir: tuple[Path, str]) -> None:
    root, uid = case_dir
    d = json.loads(json.dumps({
        "schema": 1, "modality": "MWA", "image": {"path": "planning", "series_uid": uid,
                                                  "station": "CT1"},
        "needles": [{"device": "mwa-14g", "tip_lps_mm": [0, 0, 0], "entry_lps_mm": [0, 0, 90],
                     "exposure_mm": None, "colour": "red"}],
        "thermal": {"power_w": 100, "time_s": 300, "generator": "x"}, "zone": {"a": 1}}))
    (root / "p.irplan.json").write_text(json.dumps(d))
    plan = load_plan(root / "p.irplan.json")
    assert plan.margin_mm == 5.0  # documented default
    save_plan(plan, root / "q.irplan.json")
    again = json.loads((root / "q.irplan.json").read_text())
    assert again["image"]["station"] == "CT1"
    assert again["needles"][0]["colour"] == "red"
    assert again["thermal"] == {"power_w": 100, "time_s": 300, "generator": "x"}
    assert again["zone"] == {"a": 1}


def test_save_elsewhere_rebases_relative_paths(case_dir: tuple[Path, str]) -> None:
    root, uid = case_dir
    plan = _plan(uid)
    plan.file_dir = str(root)
    save_plan(plan, root / "plan.irplan.json")
    loaded = load_plan(root / "plan.irplan.json")
    save_plan(loaded, root / "sub" / "copy.irplan.json")
    data = json.loads((root / "sub" / "copy.irplan.json").read_text())
    assert data["structures"]["tumor"] == "../masks/tumor.nii.gz"
    assert data["image"]["path"] == "../planning"
    again = load_plan(root / "sub" / "copy.irplan.json")
    assert structure_paths(again)["tumor"].resolve() == (root / "masks/tumor.nii.gz").resolve()


def test_moved_image_is_relocated_by_series_uid(case_dir: tuple[Path, str]) -> None:
    root, uid = case_dir
    plan = _plan(uid)
    plan.file_dir = str(root)
    save_plan(plan, root / "plan.irplan.json")
    (root / "planning").rename(root / "renamed_ct")
    loaded, notes = load_plan_with_notes(root / "plan.irplan.json")
    assert loaded.image.path == "renamed_ct"
    assert len(notes) == 1 and "re-located" in notes[0] and "renamed_ct" in notes[0]


def test_missing_image_without_match_names_the_field(case_dir: tuple[Path, str]) -> None:
    root, uid = case_dir
    plan = _plan(uid)
    plan.file_dir = str(root)
    save_plan(plan, root / "plan.irplan.json")
    for f in (root / "planning").iterdir():
        f.unlink()
    (root / "planning").rmdir()
    with pytest.raises(InputError, match=r"image\.path: .* not found and no folder"):
        load_plan(root / "plan.irplan.json")
    # the plan itself is still readable without its files
    assert len(load_plan(root / "plan.irplan.json", check_files=False).needles) == 2


def test_schema0_prototype_is_migrated(case_dir: tuple[Path, str]) -> None:
    root, uid = case_dir
    old = {"version": 0, "modality": "IRE", "ct": "planning", "series_uid": uid, "margin": 6,
           "needles": [{"device": "ire-19g-monopolar", "tip": [1, 2, 3], "entry": [1, 2, 93],
                        "exposure": 25}],
           "voltage": 1800, "pulses": 70, "pulse_width": 100,
           "masks": {"tumor": "masks/tumor.nii.gz"}, "notes": "old"}
    (root / "old.irplan.json").write_text(json.dumps(old))
    plan = load_plan(root / "old.irplan.json")
    assert plan.margin_mm == 6.0 and plan.ire.voltage_v == 1800 and plan.ire.pulses == 70
    assert plan.needles[0].exposure_mm == 25.0 and plan.needles[0].length_mm == 90.0
    assert plan.structures == {"tumor": "masks/tumor.nii.gz"} and plan.extra == {"notes": "old"}
    save_plan(plan, root / "old.irplan.json")
    assert json.loads((root / "old.irplan.json").read_text())["schema"] == 1


def test_atomic_save_leaves_no_temp_and_keeps_old_file_on_failure(
        case_dir: tuple[Path, str]) -> None:
    root, uid = case_dir
    plan = _plan(uid)
    plan.file_dir = str(root)
    path = save_plan(plan, root / "plan.irplan.json")
    before = path.read_bytes()
    plan.needles[0].tip_lps_mm[0] = float("nan")
    with pytest.raises(InputError, match=r"needles\[0\]\.tip_lps_mm"):
        save_plan(plan, path)
    assert path.read_bytes() == before
    assert [p.name for p in root.iterdir() if p.name.endswith(".tmp")] == []


def test_in_memory_dict_round_trip() -> None:
    plan = _plan("1.2.3")
    from irplan.io.plan_file import plan_to_dict

    assert plan_from_dict(plan_to_dict(plan)) == plan


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder_gives_clear_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(InputError, match="cannot write"):
            save_plan(_plan("1.2"), ro / "p.irplan.json")
    finally:
        ro.chmod(0o700)


def test_device_catalogue_and_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from irplan.app.cli import main as cli_main
    from irplan.planning.devices import catalogue

    cat = catalogue()
    assert {d.modality for d in cat.values()} == {"IRE", "MWA", "RFA", "cryo"}
    assert all(d.source.strip() and d.shaft_diameter_mm > 0 for d in cat.values())
    ire = cat["ire-19g-monopolar"]
    assert ire.gauge == 19 and ire.shaft_diameter_mm == pytest.approx(1.07)
    assert ire.exposure_range_mm is not None
    assert cli_main(["devices", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in listed] == list(cat)
    assert all(set(d) == {"id", "modality", "name", "source"} for d in listed)
    assert cli_main(["devices", "--modality", "MWA"]) == 0
    text = capsys.readouterr().out
    assert "mwa-14g" in text and "ire-19g" not in text and "user-supplied" in text


@pytest.mark.slow
def test_phantom_plan_with_seg_structures(phantom_case: Path, tmp_path: Path) -> None:
    """Structures from the case's DICOM SEG equal the NIfTI masks voxel for voxel."""
    from irplan.io.plan_file import load_plan_image, load_plan_structures

    plan = load_plan(phantom_case / "plan.irplan.json")
    ct = load_plan_image(plan)
    assert ct.metadata.get("series_uid", plan.image.series_uid) == plan.image.series_uid
    nifti, _ = load_plan_structures(plan, ct)
    plan.structures = {k: "seg/planning_structures.dcm" for k in plan.structures}
    save_plan(plan, tmp_path / "seg.irplan.json")     # paths rebased onto tmp_path
    again = load_plan(tmp_path / "seg.irplan.json")
    seg, notes = load_plan_structures(again, load_plan_image(again))
    assert notes == [] and set(seg) == set(nifti)
    for key in nifti:
        np.testing.assert_array_equal(seg[key].array, nifti[key].array, err_msg=key)
