"""The Evaluate panel in the main window on a phantom pair with exact truth: register,
look at the fused display (pixel values), accept, evaluate, verdict, MAM, 3D picking."""

from __future__ import annotations

import numpy as np
import pytest

from irplan.planning import phantom as ph

pytestmark = pytest.mark.gui

SIZE = (96, 96, 64)
SPACING = (1.5, 1.5, 2.0)
WINDOW_SIZE = (1600, 1000)   # main_window fixture (conftest)


def _pair(scenario: str = "margin_ok"):
    truth = ph.make_truth(0, scenario)
    c = np.asarray(truth.tumor.center_lps_mm)
    grid = ph.phantom_grid("axial", SIZE, SPACING, centre_lps_mm=tuple(c))
    ct, masks, _ = ph.make_planning(grid, 0, scenario, truth)
    cf = ph.followup_from_planning(c, truth)
    fgrid = ph.phantom_grid("axial", SIZE, SPACING,
                            centre_lps_mm=tuple(cf + np.array([2.0, -3.0, 8.0])))
    fct, fmasks = ph.make_followup(fgrid, truth, 0)
    return truth, ct, masks, fct, fmasks


def test_evaluate_panel_register_fuse_accept_evaluate(main_window, screen_pixel, qtbot):
    truth, ct, masks, fct, fmasks = _pair("margin_ok")
    win = main_window
    panel = win.evaluate_panel
    win.show_case(ct, {"tumor": masks["tumor"], "liver": masks["liver"]}, title="phantom")
    win.workflow.set_step("evaluate")
    qtbot.waitUntil(lambda: not win.tasks.busy, timeout=120_000)
    assert not panel.btn_evaluate.isEnabled()      # nothing to evaluate yet

    panel.set_followup(fct)
    panel.set_zone(fmasks["ablation_zone"])
    panel.register("rigid")
    qtbot.waitUntil(lambda: panel.registration is not None and not win.tasks.busy,
                    timeout=180_000)
    assert panel.display_mode == "checkerboard" and not panel.accepted
    qtbot.waitUntil(lambda: not win.tasks.busy, timeout=60_000)
    from irplan.app.evaluate_panel import ZONE_KEY

    assert ZONE_KEY in win.views.structure_keys()   # registered zone drawn on the slices
    assert "proposed" in panel.lbl_registration.text()
    # a point in the ablated liver next to the tumour: liver (~100 HU) on the planning CT,
    # non-enhancing zone (~30 HU) on the registered follow-up -> darker pixel
    ndir = np.asarray(truth.ablation_zone.axes[0])
    c = np.asarray(truth.tumor.center_lps_mm)
    p = c + ndir * (truth.tumor.radii_mm[0] + 4.0)
    win.views.set_crosshair(p + np.array([0.0, 0.0, 0.0]))
    axial = win.views.mpr("axial")
    probe = p + np.array([0.0, 0.0, 0.0])
    qtbot.waitUntil(lambda: not win.tasks.busy, timeout=60_000)   # fused arrays ready
    panel.set_display("planning")
    before = screen_pixel(win, axial, probe)
    panel.set_display("follow-up")
    after = screen_pixel(win, axial, probe)
    assert before.mean() - after.mean() > 15, (before, after)
    panel.set_display("planning")
    assert np.array_equal(screen_pixel(win, axial, probe), before)   # planning CT restored

    panel.accept_registration()
    assert panel.btn_evaluate.isEnabled()
    panel.evaluate()
    qtbot.waitUntil(lambda: panel.result is not None and not win.tasks.busy,
                    timeout=180_000)
    res = panel.result
    assert res.verdict == "complete_margin_ok"
    assert res.minimal_margin_mm == pytest.approx(truth.minimal_margin_mm, abs=1.0)
    assert "Complete ablation" in panel.lbl_verdict.text()
    assert f"{res.minimal_margin_mm:+.1f} mm" in panel.lbl_figures.text()
    # Go to MAM moves the crosshair onto the MAM point
    mam = np.asarray(res.margin.mam_point_lps_mm)
    win.views.set_crosshair(c)
    panel.go_to_mam()
    assert np.allclose(win.views.crosshair_lps_mm, mam)
    # picking the coloured surface in 3D at the projected centre of the surface
    ren = win.views.scene3d.renderer
    win.views.scene3d.reset_camera()
    win.views.render_now()
    centre = np.asarray(res.margin.surface_points_lps_mm).mean(axis=0)
    ren.SetWorldPoint(*centre, 1.0)
    ren.WorldToDisplay()
    x, y, _ = ren.GetDisplayPoint()
    hit = panel.pick_3d(x, y)
    assert hit is not None
    assert np.linalg.norm(hit - c) == pytest.approx(truth.tumor.radii_mm[0], abs=1.5)
    assert np.allclose(win.views.crosshair_lps_mm, hit)
