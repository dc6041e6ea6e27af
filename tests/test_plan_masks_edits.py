"""Saving a plan never loses a structure edited after it was read (issue 12 trial: an
edited tumour kept the path of its old file and was not written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from irplan.io.case_loader import read_structures
from irplan.io.masks import read_mask, write_mask
from irplan.io.plan_masks import attach_masks, modified_since_read
from irplan.planning.plan import Plan
from irplan.planning.volume import Volume


def _ball(shape=(20, 24, 28), centre=(10, 12, 14), radius=5) -> Volume:
    k, j, i = np.indices(shape)
    arr = ((k - centre[0]) ** 2 + (j - centre[1]) ** 2 + (i - centre[2]) ** 2
           <= radius ** 2).astype(np.uint8)
    return Volume(arr, origin_lps_mm=(-10.0, 5.0, 2.0), spacing_mm=(1.0, 1.0, 2.0))


def _read(path: Path, ref: Volume) -> Volume:
    masks, _notes = read_structures({"tumor": (path, "tumor")}, ref)
    return masks["tumor"]


def test_unedited_structure_keeps_its_file(tmp_path: Path) -> None:
    src = write_mask(_ball(), tmp_path / "source" / "tumor.nii.gz")
    mask = _read(src, _ball())
    plan = Plan()
    plan.structures["tumor"] = str(src)
    written = attach_masks(plan, {"tumor": mask}, tmp_path / "a.irplan.json")
    assert written == []
    assert plan.structures["tumor"] == str(src)
    assert not modified_since_read(mask)


def test_edited_structure_is_written_to_the_plans_folder_not_over_its_source(
        tmp_path: Path) -> None:
    src = write_mask(_ball(), tmp_path / "source" / "tumor.nii.gz")
    before = src.read_bytes()
    mask = _read(src, _ball())
    plan = Plan()
    plan.structures["tumor"] = str(src)
    n_before = int(mask.array.sum())
    mask.array[10, 12, 20:25] = 1                      # a brush stroke, in place
    added_ml = (int(mask.array.sum()) - n_before) * mask.voxel_volume_ml
    assert added_ml > 0
    assert modified_since_read(mask)
    plan_path = tmp_path / "a.irplan.json"
    written = attach_masks(plan, {"tumor": mask}, plan_path)
    assert written == [tmp_path / "a.masks" / "tumor.nii.gz"]
    assert Path(plan.structures["tumor"]) == (tmp_path / "a.masks" / "tumor.nii.gz").resolve()
    assert src.read_bytes() == before                  # the source file is untouched
    saved = read_mask(plan.structures["tumor"])
    orig = read_mask(src)
    diff_ml = (saved.array.sum() - orig.array.sum()) * saved.voxel_volume_ml
    assert abs(diff_ml - added_ml) < 1e-9
    # saved again without an edit: nothing written; edited again: its own file rewritten
    assert attach_masks(plan, {"tumor": mask}, plan_path) == []
    mask.array[10, 12, 5:8] = 1
    assert attach_masks(plan, {"tumor": mask}, plan_path) == [
        tmp_path / "a.masks" / "tumor.nii.gz"]
    assert read_mask(plan.structures["tumor"]).array[10, 12, 6] == 1


def test_a_report_copy_does_not_hide_the_edit_from_the_real_save(tmp_path: Path) -> None:
    src = write_mask(_ball(), tmp_path / "source" / "tumor.nii.gz")
    mask = _read(src, _ball())
    real, copy = Plan(), Plan()
    real.structures["tumor"] = str(src)
    mask.array[:] = 0
    mask.array[2:6, 2:6, 2:6] = 1
    attach_masks(copy, {"tumor": mask}, tmp_path / "tmp" / "plan.irplan.json", record=False)
    assert modified_since_read(mask)
    attach_masks(real, {"tumor": mask}, tmp_path / "real.irplan.json")
    assert read_mask(real.structures["tumor"]).array.sum() == 64


def test_new_structure_without_a_file_is_written(tmp_path: Path) -> None:
    plan = Plan()
    mask = _ball()                                    # made in this session: no record
    assert modified_since_read(mask)
    written = attach_masks(plan, {"liver": mask}, tmp_path / "b.irplan.json")
    assert written == [tmp_path / "b.masks" / "liver.nii.gz"]
    assert not modified_since_read(mask)


def test_save_as_copies_the_masks_of_the_first_plan(tmp_path: Path) -> None:
    """Save, then Save as: the second plan gets its own copy (saving the first plan again
    after an edit must not change the second)."""
    plan = Plan()
    mask = _ball()
    attach_masks(plan, {"tumor": mask}, tmp_path / "first.irplan.json")
    assert Path(plan.structures["tumor"]).parent.name == "first.masks"
    written = attach_masks(plan, {"tumor": mask}, tmp_path / "second.irplan.json")
    assert written == [tmp_path / "second.masks" / "tumor.nii.gz"]
    assert Path(plan.structures["tumor"]).parent.name == "second.masks"
    # saving the second plan again shares nothing and writes nothing
    assert attach_masks(plan, {"tumor": mask}, tmp_path / "second.irplan.json") == []
