"""Several lesions in the GUI (issue 17): a mask file holding two lesions imports as
Tumour 1 and Tumour 2 (own structures, volumes in the case panel), the zone dock's
"Target lesion" moves the coverage figure, and the target is saved with the plan."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from lesion_factory import second_lesion  # noqa: E402

pytestmark = pytest.mark.gui


def _settle(win) -> None:
    assert win.tasks.wait_idle(300)


def _zone_panel(win):
    return win.ctx.docks["zone"].widget()


def _coverage_line(win) -> str:
    text = re.sub(r"<[^>]+>", "", _zone_panel(win).figures.text())
    m = re.search(r"(Tumour[ 0-9]*) coverage ([0-9.]+) %", text)
    assert m, text
    return m.group(0)


def _ml(m) -> float:
    return float(np.count_nonzero(m.array)) * m.voxel_volume_ml


@pytest.fixture(scope="module")
def two_lesions(phantom_window, tmp_path_factory):
    """The phantom's tumour and a 7 mm sphere in its liver, written as ONE binary mask
    (as a tool that knows no lesions would), and imported through the Segment step."""
    from irplan.io.masks import write_mask

    win, masks = phantom_window.win, phantom_window.masks
    t2 = second_lesion(masks["tumor"], masks["liver"],
                       [masks["portal_vein"], masks["hepatic_vein"]])
    both = masks["tumor"].with_array((masks["tumor"].array | t2.array).astype(np.uint8))
    path = write_mask(both, tmp_path_factory.mktemp("lesions") / "lesions.nii.gz")
    panel = win.segment_panel
    panel.import_path(path)
    _settle(win)
    return phantom_window, t2, panel.status.text()


def test_import_keeps_two_lesions_apart_with_volumes(two_lesions) -> None:
    pw, t2, status = two_lesions
    win = pw.win
    s = win.case.structures
    assert np.array_equal(s["tumor"].array != 0, pw.masks["tumor"].array != 0)
    assert np.array_equal(s["tumor_2"].array != 0, t2.array != 0)
    ml1, ml2 = _ml(pw.masks["tumor"]), _ml(t2)
    print(f"status: {status}")
    assert f"2 lesions: Tumour 1 {ml1:.1f} mL, Tumour 2 {ml2:.1f} mL" in status
    rows = win.case_panel._rows
    assert rows["tumor_2"].label.text() == "Tumour 2"
    assert rows["tumor"].volume.text() == f"{ml1:.1f} mL"
    assert rows["tumor_2"].volume.text() == f"{ml2:.1f} mL"
    # its own colour in the views
    assert win.views.styles["tumor_2"].color != win.views.styles["tumor"].color


def test_segment_step_makes_a_new_lesion(two_lesions) -> None:
    """Segment target "New lesion": the brush makes Tumour 3 (not more of Tumour 1), which
    the zone dock's target list then offers."""
    pw, t2, _ = two_lesions
    win = pw.win
    panel = win.segment_panel
    s = win.case.structures
    both = s["tumor"].with_array(((s["tumor"].array != 0) | (s["tumor_2"].array != 0))
                                 .astype(np.uint8))
    spot = second_lesion(both, pw.masks["liver"], [pw.masks["portal_vein"]], radius_mm=5.0)
    kji = np.argwhere(spot.array).mean(axis=0)
    p = spot.index_to_lps(kji[::-1])
    tumour_before = s["tumor"].array.copy()
    combo = panel.target_combo
    combo.setCurrentIndex(combo.findData("new_lesion"))     # the user picks "New lesion"
    assert panel.logic.target_key == "tumor_3"
    assert combo.currentText() == "Tumour 3"
    panel.logic.radius_mm = 4.0
    assert panel.logic.begin_stroke(p, np.array([0.0, 0.0, 1.0]), erase=False)
    panel.logic.end_stroke()
    _settle(win)
    assert "tumor_3" in win.case.structures
    assert np.array_equal(win.case.structures["tumor"].array, tumour_before)
    assert win.views.styles["tumor_3"].name == "Tumour 3"
    names = [_zone_panel(win).target.combo.itemText(i).split(" \u2014")[0]
             for i in range(_zone_panel(win).target.combo.count())]
    assert names == ["Tumour 1", "Tumour 2", "Tumour 3"]


def test_target_changes_coverage_and_is_saved_with_the_plan(two_lesions, tmp_path) -> None:
    """A microwave antenna placed at the tumour (thermal zone: computed in a thread, fast):
    Tumour 1 covered; choosing Tumour 2 moves the coverage figure to it."""
    from irplan.io.plan_file import load_plan, save_plan
    from irplan.planning.lesions import target_key
    from irplan.planning.plan import Plan

    pw, _t2, _ = two_lesions
    win = pw.win
    zp = _zone_panel(win)
    win.case.set_plan(Plan(modality="MWA", image=pw.reference.image))   # no target key
    _settle(win)
    session = win.ctx.services.session
    assert session.place_thermal_at_tumour()      # at the target: Tumour 1
    _settle(win)
    combo = zp.target.combo
    assert not zp.target.isHidden()               # several lesions: the choice is shown
    assert [combo.itemText(i).split(" \u2014")[0] for i in range(combo.count())] == \
        ["Tumour 1", "Tumour 2", "Tumour 3"]     # Tumour 3: drawn in the Segment step
    assert combo.currentData() == "tumor"         # a plan without the key: Tumour 1
    first = _coverage_line(win)
    cov1 = float(first.split()[-2])
    combo.setCurrentIndex(1)
    combo.activated.emit(1)                       # the user picks Tumour 2
    _settle(win)
    assert target_key(win.case.plan) == "tumor_2"
    second = _coverage_line(win)
    cov2 = float(second.split()[-2])
    print(f"{first} -> {second}")
    assert first.startswith("Tumour 1") and second.startswith("Tumour 2")
    assert cov1 > 90 and cov2 < cov1 - 50         # the antenna sits in Tumour 1
    session.undo()                                # the choice is one undoable plan edit
    _settle(win)
    assert combo.currentData() == "tumor" and _coverage_line(win) == first
    session.redo()
    _settle(win)
    assert combo.currentData() == "tumor_2"
    # saved and reopened: Tumour 2 again, same figure
    saved = save_plan(win.case.plan, tmp_path / "t2.irplan.json")
    win.case.set_plan(Plan(modality="MWA", image=pw.reference.image))
    _settle(win)
    win.case.set_plan(load_plan(saved))
    _settle(win)
    assert combo.currentData() == "tumor_2" and _coverage_line(win) == second


@pytest.mark.shared_data
def test_ircadb17_tumour_masks_import_as_two_lesions(phantom_window, ircadb17, tmp_path):
    """The real case: IRCADb 17's two expert tumour folders (MASKS_DICOM/livertumor1, 2)
    import as Tumour 1 and Tumour 2 with their own volumes (SOURCE.md: 85.6 and 78.6 mL;
    checked against the mask voxel counts), not one 164 mL tumour."""
    import zipfile

    import pydicom

    from irplan.io.dicom_load import load_ct

    win = phantom_window.win
    ct = load_ct(ircadb17 / "PATIENT_DICOM")
    with zipfile.ZipFile(ircadb17 / "MASKS_DICOM.zip") as z:
        z.extractall(tmp_path, [m for m in z.namelist() if "/livertumor" in f"/{m}"])
    folder = next(tmp_path.rglob("MASKS_DICOM"))
    counts = {}
    for d in sorted(folder.iterdir()):        # the expert's voxels, read independently
        counts[d.name] = sum(int(np.count_nonzero(pydicom.dcmread(f).pixel_array))
                             for f in d.iterdir() if f.is_file())
    win.show_case(ct, {}, title="IRCADb 17")
    _settle(win)
    win.segment_panel.import_path(folder)
    _settle(win)
    status = win.segment_panel.status.text()
    print(f"IRCADb 17: {status}")
    s = win.case.structures
    assert sorted(k for k in s if k.startswith("tumor")) == ["tumor", "tumor_2"]
    vox_ml = ct.voxel_volume_ml
    want = sorted((n * vox_ml for n in counts.values()), reverse=True)
    got = [_ml(s["tumor"]), _ml(s["tumor_2"])]
    assert got == pytest.approx(want, abs=1e-6)
    assert got == pytest.approx([85.6, 78.6], abs=0.1)
    assert f"2 lesions: Tumour 1 {got[0]:.1f} mL, Tumour 2 {got[1]:.1f} mL" in status
    rows = win.case_panel._rows
    assert [rows[k].volume.text() for k in ("tumor", "tumor_2")] == \
        [f"{v:.1f} mL" for v in got]


def test_plan_step_chooses_the_target_before_any_needle(two_lesions) -> None:
    """The Plan step's own "Target lesion" (no needle yet, the zone dock still hidden):
    choosing Tumour 2 there aims "Place at tumour" at Tumour 2 (whatever mask the case
    holds as Tumour 2 now: earlier tests of this module may have imported others)."""
    from irplan.planning.plan import Plan

    pw, _t2, _ = two_lesions
    win = pw.win
    win.case.set_plan(Plan(modality="MWA", image=pw.reference.image))
    _settle(win)
    target = win.needle_tools.panel.target
    assert not target.isHidden()
    target.combo.setCurrentIndex(target.combo.findData("tumor_2"))
    target.combo.activated.emit(target.combo.currentIndex())
    _settle(win)
    session = win.ctx.services.session
    assert session.place_thermal_at_tumour()
    _settle(win)
    t2 = win.case.structures["tumor_2"]
    centre = t2.index_to_lps(np.argwhere(t2.array).mean(axis=0)[::-1])   # (k,j,i) -> ijk
    n = win.case.plan.needles[0]
    along = float((centre - n.tip_lps_mm) @ n.direction)
    off_axis = np.linalg.norm(centre - n.tip_lps_mm - along * n.direction)
    # the lesion's centre on the antenna's axis, a zone-table offset behind the tip
    assert off_axis < 1.0 and -25.0 < along < 0.0, (off_axis, along)
    assert _zone_panel(win).target.combo.currentData() == "tumor_2"   # one choice, two places
