"""The one case loader (io/case_loader.py) on a folder holding several series: the plan's
own series A by SeriesInstanceUID (never B, which has more slices and another Frame of
Reference), its structures from a DICOM SEG and an RTSTRUCT (tumour volume in mL), a moved
folder re-located by UID, a missing series refused in one line (also by the CLI, exit 2).

Series are written by tests/dicom_factory.py (pydicom), the SEG by IRPlan's SEG writer on
series A, the RTSTRUCT by the independent writer of test_mask_import.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from dicom_factory import write_series  # noqa: E402

from irplan.io.case_loader import load_case  # noqa: E402
from irplan.planning.errors import InputError  # noqa: E402
from irplan.planning.volume import Volume  # noqa: E402

TUMOUR_RADIUS_MM = 9.0
# patient/study tags a DICOM SEG copies from its source images
SEG_SOURCE_TAGS = {"PatientBirthDate": "19600101", "PatientSex": "O",
                   "ReferringPhysicianName": "Ref^Doctor"}
A_SLICES, B_SLICES = 24, 48


def _sphere(grid: Volume, centre_lps: np.ndarray, radius_mm: float) -> Volume:
    k, j, i = np.meshgrid(*(np.arange(s) for s in grid.array.shape), indexing="ij")
    pts = grid.index_to_lps(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1).astype(float))
    inside = np.linalg.norm(pts - centre_lps, axis=1) <= radius_mm
    return grid.with_array(inside.reshape(grid.array.shape).astype(np.uint8))


def write_several_series_case(root: Path) -> dict:
    """``root/study/A`` (the plan's series, 24 slices), ``root/study/B`` (48 slices,
    another Frame of Reference), ``root/seg/structures.dcm`` (tumour + liver on A),
    ``root/plan.irplan.json`` (image.path "study", series A by UID, structures from the
    SEG). Returns the truth: uids, A's geometry, the tumour volume (mL) as written."""
    from irplan.io.dicom_export import export_seg, load_source_series

    a = write_series(root / "study" / "A", n_slices=A_SLICES, rows=40, cols=40,
                     pixel_spacing=(1.5, 1.5), slice_spacing_mm=2.0,
                     origin_lps_mm=(-30.0, -30.0, 50.0), description="A planning",
                     extra_tags=SEG_SOURCE_TAGS)
    b = write_series(root / "study" / "B", n_slices=B_SLICES, rows=40, cols=40,
                     pixel_spacing=(1.5, 1.5), slice_spacing_mm=2.0,
                     origin_lps_mm=(-30.0, -30.0, -60.0), description="B other frame")
    src = load_source_series(a.folder)
    lo, hi = src.volume.bounds_lps()
    centre = (lo + hi) / 2
    tumour = _sphere(src.volume, centre, TUMOUR_RADIUS_MM)
    liver = _sphere(src.volume, centre + [4.0, 0.0, 0.0], 2 * TUMOUR_RADIUS_MM)
    export_seg(src, {"tumor": tumour, "liver": liver}, root / "seg" / "structures.dcm")
    plan = {"schema": 1, "modality": "IRE",
            "image": {"path": "study", "series_uid": a.series_uid,
                      "frame_of_reference_uid": a.extra["frame_of_reference_uid"]},
            "needles": [],
            "structures": {"tumor": "seg/structures.dcm", "liver": "seg/structures.dcm"}}
    (root / "plan.irplan.json").write_text(json.dumps(plan, indent=1))
    return {"a": a, "b": b, "plan": root / "plan.irplan.json", "ct": src.volume,
            "tumour": tumour,
            "tumour_ml": float(np.count_nonzero(tumour.array)) * tumour.voxel_volume_ml}


@pytest.fixture(scope="module")
def several(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_several_series_case(tmp_path_factory.mktemp("several") / "case")


def _variant(several: dict, path: Path, structures: dict[str, str] | None = None,
             **image: str) -> Path:
    """The case's plan written to ``path`` with absolute paths, other ``structures`` and
    ``image`` fields."""
    root = several["plan"].parent
    plan = json.loads(several["plan"].read_text())
    plan["image"]["path"] = str(root / "study")
    plan["image"].update(image)
    plan["structures"] = structures or {k: str(root / v) for k, v in plan["structures"].items()}
    path.write_text(json.dumps(plan))
    return path


def _tumour_ml(structures: dict[str, Volume]) -> float:
    m = structures["tumor"]
    return float(np.count_nonzero(m.array)) * m.voxel_volume_ml


def test_plan_opens_its_own_series_and_seg_structures(several: dict) -> None:
    loaded = load_case(several["plan"])
    a = several["a"]
    assert a.series_uid != several["b"].series_uid
    assert loaded.ct.metadata["series_uid"] == a.series_uid          # not B (more slices)
    assert loaded.ct.size_xyz == (40, 40, A_SLICES)
    np.testing.assert_allclose(loaded.ct.origin_lps_mm, a.sorted_positions_lps_mm[0],
                               atol=1e-6)
    assert set(loaded.structures) == {"tumor", "liver"}
    for m in loaded.structures.values():
        assert m.same_geometry(loaded.ct, tol_mm=1e-3)
    # the SEG's tumour, voxel for voxel: 4/3 pi r^3 = 3.05 mL for r = 9 mm
    assert _tumour_ml(loaded.structures) == pytest.approx(several["tumour_ml"], rel=1e-9)
    assert several["tumour_ml"] == pytest.approx(4 / 3 * np.pi * TUMOUR_RADIUS_MM ** 3 / 1000,
                                                 rel=0.08)
    assert loaded.plan is not None and loaded.plan_path == several["plan"]
    assert not any("most slices" in n for n in loaded.notes)


def test_plain_folder_keeps_most_slices_with_a_note(several: dict) -> None:
    loaded = load_case(several["plan"].parent / "study")
    assert loaded.ct.metadata["series_uid"] == several["b"].series_uid
    assert loaded.plan is None and loaded.structures == {}
    assert any("1 other CT series" in n and "most slices" in n for n in loaded.notes)


def test_rtstruct_structures_of_a_plan(several: dict, tmp_path: Path) -> None:
    from test_mask_import import _contours_from_mask, _write_rtstruct

    from irplan.io.dicom_write import read_series_headers

    headers = read_series_headers(several["a"].files)
    contours = _contours_from_mask(several["tumour"], headers)
    rt = tmp_path / "rtstruct.dcm"
    _write_rtstruct(rt, headers, {"Tumor": contours},
                    several["a"].extra["frame_of_reference_uid"])
    loaded = load_case(_variant(several, tmp_path / "rt.irplan.json", {"tumor": str(rt)}))
    assert loaded.ct.metadata["series_uid"] == several["a"].series_uid
    # polygon fill of the traced contours: the same voxels within 3 %
    assert _tumour_ml(loaded.structures) == pytest.approx(several["tumour_ml"], rel=0.03)


def test_nifti_mask_on_another_grid_is_resampled_with_a_note(several: dict,
                                                             tmp_path: Path) -> None:
    from irplan.io.masks import write_mask

    coarse = several["tumour"].resample_spacing(3.0, "nearest")
    write_mask(coarse, tmp_path / "tumor_coarse.nii.gz")
    loaded = load_case(_variant(several, tmp_path / "c.irplan.json",
                                {"tumor": str(tmp_path / "tumor_coarse.nii.gz")}))
    assert loaded.structures["tumor"].same_geometry(loaded.ct, tol_mm=1e-3)
    assert any(n.startswith("structures.tumor: resampled onto the planning grid")
               for n in loaded.notes), loaded.notes
    assert _tumour_ml(loaded.structures) == pytest.approx(several["tumour_ml"], rel=0.25)


def _copy(several: dict, dest: Path) -> Path:
    shutil.copytree(several["plan"].parent, dest)
    return dest / "plan.irplan.json"


def test_moved_series_is_relocated_by_uid(several: dict, tmp_path: Path) -> None:
    plan = _copy(several, tmp_path / "case")
    # A moves away from image.path ("study" now holds only B)
    (plan.parent / "archive" / "2026").mkdir(parents=True)
    shutil.move(str(plan.parent / "study" / "A"), str(plan.parent / "archive" / "2026" / "A"))
    loaded = load_case(plan)
    assert loaded.ct.metadata["series_uid"] == several["a"].series_uid
    assert any("re-located" in n and "archive" in n for n in loaded.notes), loaded.notes
    assert Path(loaded.plan.image.path) == Path("archive/2026/A")
    assert _tumour_ml(loaded.structures) == pytest.approx(several["tumour_ml"], rel=1e-9)


def test_missing_series_is_refused_in_one_line(several: dict, tmp_path: Path) -> None:
    plan = _copy(several, tmp_path / "case")
    shutil.rmtree(plan.parent / "study" / "A")          # only B is left anywhere
    with pytest.raises(InputError) as exc:
        load_case(plan)
    msg = str(exc.value)
    assert several["a"].series_uid in msg and "\n" not in msg and "not opened" in msg


def test_other_frame_of_reference_is_refused(several: dict, tmp_path: Path) -> None:
    plan = _variant(several, tmp_path / "f.irplan.json",
                    frame_of_reference_uid=several["b"].extra["frame_of_reference_uid"])
    with pytest.raises(InputError, match="Frame of Reference"):
        load_case(plan)


def test_cli_refuses_a_missing_series_with_exit_2(several: dict, tmp_path: Path) -> None:
    plan = _copy(several, tmp_path / "case")
    shutil.rmtree(plan.parent / "study" / "A")
    r = subprocess.run([sys.executable, "-m", "irplan.app.cli", "check", str(plan)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and several["a"].series_uid in lines[0], r.stderr
