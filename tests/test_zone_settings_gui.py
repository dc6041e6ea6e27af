"""The zone panel's named model settings and uncertainty band (issue 14), on the synthetic
two-electrode case of tests/test_zone_gui.py: choosing a setting changes the zone and says
which setting it is; the band gives the inner zone's coverage and margin."""

from __future__ import annotations

import numpy as np
import pytest

from irplan.planning.plan import Needle, Plan
from irplan.planning.volume import Volume

pytestmark = pytest.mark.gui


def _case():
    shape = (50, 70, 70)
    ct = Volume(np.full(shape, -1000, np.int16), [-35.0, -35.0, -25.0], [1.0, 1.0, 1.0])
    c = ct.voxel_centres_lps()
    liver = (np.abs(c[..., 0]) < 30) & (np.abs(c[..., 1]) < 30) & (np.abs(c[..., 2]) < 22)
    tumor = np.linalg.norm(c, axis=-1) <= 8.0
    ct = ct.with_array(np.where(tumor, 30, np.where(liver, 60, -1000)).astype(np.int16))
    masks = {"liver": ct.with_array(liver.astype(np.uint8)),
             "tumor": ct.with_array(tumor.astype(np.uint8))}
    needles = [Needle("ire-19g-monopolar", [x, 0.0, -10.0], [x, 0.0, 140.0], exposure_mm=20.0,
                      name=f"E{i + 1}") for i, x in enumerate((-7.5, 7.5))]
    return ct, masks, Plan(modality="IRE", needles=needles)


def test_setting_choice_and_band_in_the_zone_panel(qtbot, screen_pixel):
    from irplan.app.main_window import MainWindow
    from irplan.app.zone_panel import install_zone_panel

    win = MainWindow(restore_state=False)
    win.headless = True           # the model choice is a plan edit: no Save? question at close
    qtbot.addWidget(win)
    panel = install_zone_panel(win.ctx)
    win.resize(1600, 1000)
    win.show()
    ct, masks, plan = _case()
    win.show_case(ct, masks, plan=plan, title="synthetic")
    qtbot.waitUntil(lambda: panel.result_is_fine and not win.tasks.busy, timeout=180_000)
    cons = panel.result
    assert cons.setting["id"] == "conservative"
    assert panel.setting_combo.currentData() == "conservative"
    assert "Model: conservative" in panel.figures.text()
    # choose the in vivo porcine fit: threshold 350 V/cm, a larger zone, named as such
    idx = panel.setting_combo.findData("porcine-fit")
    panel.setting_combo.setCurrentIndex(idx)
    assert panel.threshold_spin.value() == 350.0
    qtbot.waitUntil(lambda: panel.result_is_fine and panel.result.threshold_v_per_cm == 350.0
                    and not win.tasks.busy, timeout=180_000)
    pig = panel.result
    assert pig.setting["name"] == "in vivo porcine fit" and pig.volume_ml > 1.3 * cons.volume_ml
    assert "Model: in vivo porcine fit" in panel.figures.text()
    # typing a threshold of no setting shows "custom"
    panel.threshold_spin.setValue(480.0)
    assert panel.setting_combo.currentData() == "custom"
    # the band: inner (conservative) coverage and margin, outer volume, on the panel
    panel.setting_combo.setCurrentIndex(panel.setting_combo.findData("human-fit"))
    qtbot.waitUntil(lambda: panel.result_is_fine and panel.result.threshold_v_per_cm == 550.0
                    and not win.tasks.busy, timeout=180_000)
    axial = win.views.mpr("axial")
    win.views.set_crosshair(np.array([5.0, -20.0, 0.0]))    # its lines away from p_band
    p_band = [-14.0, 0.0, 0.0]      # along the pair, beyond the 550 zone and the tumour
    f = panel.result.field_v_per_cm.value_at_lps(p_band)
    assert 350.0 < f < 550.0, f
    panel.field_check.setChecked(False)        # the |E| map off: CT grey underneath
    before = screen_pixel(win, axial, p_band)
    assert "zone_band_outer" not in axial.structure_keys()
    panel.band_check.setChecked(True)
    qtbot.waitUntil(lambda: panel.result_is_fine and bool(panel.result.band)
                    and panel.result.threshold_v_per_cm == 550.0 and not win.tasks.busy,
                    timeout=180_000)
    band = panel.result.band
    assert band["inner"]["threshold_v_per_cm"] == 637.0
    assert band["inner"]["zone_volume_ml"] == pytest.approx(cons.volume_ml, rel=1e-6)
    assert band["inner"]["minimal_margin_mm"] == pytest.approx(
        cons.margin.minimal_margin_mm, abs=0.01)
    text = panel.figures.text()
    assert "Band inner (conservative" in text and "Band outer (in vivo porcine fit" in text
    assert f"{band['inner']['minimal_margin_mm']:+.1f} mm" in text
    # the band is drawn: the outer zone's fill tints the slice where only it reaches
    assert {"zone_band_inner", "zone_band_outer"} <= set(axial.structure_keys())
    after = screen_pixel(win, axial, p_band)
    print("band pixel before", before, "after", after)
    assert np.ptp(before) < 12 and after[2] > after[1] + 8     # grey -> lavender tint
    # a calibrated parameter file (irplan calibrate --out) as the model
    import json
    import tempfile
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp())
    good = tmp / "cohort_params.json"
    good.write_text(json.dumps({"parameters": {"threshold_v_per_cm": 420.0},
                                "cohort": "cohort.csv", "n_cases": 7}))
    assert panel.load_params_file(str(good))
    assert panel.setting_combo.currentData() == "file"
    qtbot.waitUntil(lambda: panel.result_is_fine and panel.result.threshold_v_per_cm == 420.0
                    and not win.tasks.busy, timeout=180_000)
    assert panel.result.setting["id"] == "calibrated"
    assert "Model: calibrated (cohort_params.json)" in panel.figures.text()
    bad = tmp / "bad.json"
    bad.write_text("{}")
    assert not panel.load_params_file(str(bad))
    assert "bad.json" in panel.figures.text() and "parameters" in panel.figures.text()
    # the model is part of the plan (saved with it, what the report uses): one undo step
    plan = win.ctx.case.plan
    assert plan.extra["zone_model"] == {"setting": "calibrated", "threshold_v_per_cm": 420.0,
                                        "params_path": str(good.resolve())}
    win.ctx.services.session.undo()
    assert plan.extra["zone_model"] == {"setting": "human-fit", "threshold_v_per_cm": 550.0}
    assert (panel.setting_combo.currentData(), panel.threshold_spin.value()) == ("human-fit",
                                                                                 550.0)
    qtbot.waitUntil(lambda: panel.result_is_fine and panel.result.threshold_v_per_cm == 550.0
                    and not win.tasks.busy, timeout=180_000)
    win.tasks.shutdown(60)
