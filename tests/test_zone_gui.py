"""The zone panel and zone display in the main window: live preview then refine, the |E|
colour map on the slices (pixel colours), figures, and updates when a needle moves."""

from __future__ import annotations

import numpy as np
import pytest

from irplan.planning.plan import Needle, Plan
from irplan.planning.volume import Volume

pytestmark = pytest.mark.gui


def _synthetic_case():
    """Small CT (1 mm, 70 x 70 x 50 voxels) with a liver block and an 8 mm tumour."""
    shape = (50, 70, 70)
    ct = Volume(np.full(shape, -1000, np.int16), [-35.0, -35.0, -25.0], [1.0, 1.0, 1.0])
    c = ct.voxel_centres_lps()
    liver = (np.abs(c[..., 0]) < 30) & (np.abs(c[..., 1]) < 30) & (np.abs(c[..., 2]) < 22)
    tumor = np.linalg.norm(c, axis=-1) <= 8.0
    hu = np.where(liver, 60, -1000)
    hu = np.where(tumor, 30, hu).astype(np.int16)
    ct = ct.with_array(hu)
    masks = {"liver": ct.with_array(liver.astype(np.uint8)),
             "tumor": ct.with_array(tumor.astype(np.uint8))}
    return ct, masks


def _ire_plan(half_spacing_mm: float) -> Plan:
    needles = [Needle("ire-19g-monopolar", [x, 0.0, -10.0], [x, 0.0, 140.0], exposure_mm=20.0,
                      name=f"E{i + 1}") for i, x in enumerate((-half_spacing_mm, half_spacing_mm))]
    return Plan(modality="IRE", needles=needles)


def _pixel(win, view, p_lps):
    """RGB of the screen pixel showing LPS point ``p_lps`` in ``view``."""
    from PySide6.QtCore import QPoint

    x, y = view.lps_to_qt(np.asarray(p_lps, float))
    pt = view.mapTo(win, QPoint(int(round(x)), int(round(y))))
    win.views.render_now()
    img = win.screen().grabWindow(win.winId()).toImage()
    dpr = img.devicePixelRatio()
    col = img.pixelColor(int(pt.x() * dpr), int(pt.y() * dpr))
    return np.array([col.red(), col.green(), col.blue()], float)


def test_zone_panel_live_preview_refine_and_field_colours(qtbot):
    from irplan.app.main_window import MainWindow
    from irplan.app.zone_panel import install_zone_panel

    win = MainWindow(restore_state=False)
    qtbot.addWidget(win)
    panel = install_zone_panel(win.ctx)
    win.resize(1600, 1000)
    win.show()
    shown: list[tuple[bool, float, str]] = []
    panel.zone_shown.connect(lambda r: shown.append(
        (panel.result_is_fine, r.volume_ml, r.margin.method if r.margin else "")))
    ct, masks = _synthetic_case()
    win.show_case(ct, masks, plan=_ire_plan(7.5), title="synthetic")
    qtbot.waitUntil(lambda: panel.result_is_fine and not win.tasks.busy, timeout=180_000)
    assert [f for f, _v, _m in shown][:1] == [False] and shown[-1][0]   # preview, then fine
    # the coarse preview uses the fast margin, the refined step the exact sub-voxel one
    assert shown[0][2].startswith("preview") and not shown[-1][2].startswith("preview")
    res = panel.result
    assert res.grid_mm == 1.0 and res.margin is not None
    text = panel.figures.text()
    assert f"{res.margin.tumor_coverage_percent:.1f} %" in text
    assert f"{res.margin.minimal_margin_mm:+.1f} mm" in text
    assert panel.pairs.rowCount() == 1
    assert panel.pairs.item(0, 1).text() == f"{res.pairs[0].voltage_v:.0f}"
    # |E| colour map on the axial slice through the electrodes' mid-length
    axial = win.views.mpr("axial")
    win.views.set_crosshair(np.array([0.0, 0.0, 0.0]))
    p_hot = [-2.0, 2.0, 0.0]                           # between the electrodes: ~900 V/cm
    assert res.field_v_per_cm.value_at_lps(p_hot) > res.threshold_v_per_cm
    hot = _pixel(win, axial, p_hot)
    far = _pixel(win, axial, [-28.0, -25.0, 0.0])     # liver far away: plain grey CT
    print("hot pixel", hot, "far pixel", far)
    if not hot[0] > hot[2] + 60:
        win.save_screenshot("/tmp/irplan_zone_gui_failure.png")
    assert hot[0] > hot[2] + 60                        # warm colour (orange/red)
    assert np.ptp(far) < 12                            # grey
    panel.field_check.setChecked(False)
    off = _pixel(win, axial, p_hot)
    assert np.ptp(off) < 12                            # map hidden: grey CT only
    panel.field_check.setChecked(True)

    # moving a needle (a command would do this) recomputes live: the spacing follows
    n_before = len(shown)
    plan = win.case.plan
    for n, x in zip(plan.needles, (-9.0, 9.0)):
        n.tip_lps_mm[0] = x
        n.entry_lps_mm[0] = x
    plan.notify("needle:0")
    qtbot.waitUntil(lambda: len(shown) > n_before + 1 and panel.result_is_fine
                    and not win.tasks.busy, timeout=180_000)
    assert panel.result.pairs[0].spacing_mm == pytest.approx(18.0, abs=0.01)
    assert panel.pairs.item(0, 2).text() == "18.0"

    # fewer than 2 electrodes: the zone disappears and the panel says why
    plan.needles.pop()
    plan.notify("needles")
    qtbot.waitUntil(lambda: panel.result is None, timeout=10_000)
    assert "Place at least 2" in panel.figures.text()
    assert not axial.structure_keys() or "predicted_zone" not in axial.structure_keys()
    win.close()


def test_zone_panel_thermal_plan(qtbot):
    from irplan.app.main_window import MainWindow
    from irplan.app.zone_panel import install_zone_panel
    from irplan.planning.plan import ThermalParams

    win = MainWindow(restore_state=False)
    qtbot.addWidget(win)
    panel = install_zone_panel(win.ctx)
    win.resize(1600, 1000)
    win.show()
    ct, masks = _synthetic_case()
    plan = Plan(modality="MWA", needles=[Needle("mwa-14g", [0.0, 0.0, -15.0], [0, 0, 120.0])],
                thermal=ThermalParams(power_w=100.0, time_s=300.0))
    win.show_case(ct, masks, plan=plan, title="synthetic MWA")
    qtbot.waitUntil(lambda: panel.result_is_fine and not win.tasks.busy, timeout=120_000)
    res = panel.result
    assert res.modality == "MWA" and res.field_v_per_cm is None
    assert panel.display.field_view_names == []              # no |E| map for heat
    assert panel.heat_sink_check.isVisibleTo(panel) and not panel.threshold_spin.isVisibleTo(panel)
    assert res.margin.tumor_coverage_percent > 99.0           # 25 mm wide zone, 16 mm tumour
    assert "illustrative" in panel.notes.text()
    assert "predicted_zone" in win.views.structure_keys()       # outline on the slices
    assert win.views.surface("predicted_zone").GetNumberOfPoints() > 100   # 3-D surface
    win.close()
