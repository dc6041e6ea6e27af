"""Needle placement in the main window on the phantom, by simulated clicks and drags,
judged by the plan model and by the pictures (paths drawn in the finding's colour)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

pytestmark = pytest.mark.gui

WINDOW_SIZE = (1500, 950)   # main_window fixture (conftest)


@pytest.fixture(scope="module")
def loaded(phantom_window):
    """Main window showing the phantom's CT and masks with an empty IRE plan, safety
    checks prepared (TaskRunner.wait_idle covers their deferred start)."""
    win = phantom_window.win
    tools = win.needle_tools
    assert tools.checker is not None, "safety checks were not prepared"
    win.workflow.set_step("plan")
    win.views.set_maximised("axial")
    yield win, tools, phantom_window.reference, phantom_window.masks


def _qt_point(view, p_lps):
    x, y = view.lps_to_qt(np.asarray(p_lps, float))
    return QPoint(int(round(x)), int(round(y)))


def _click(view, p_lps, qtbot) -> None:
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_qt_point(view, p_lps))
    qtbot.wait(20)


def _rgb_at(view, p_lps) -> np.ndarray:
    img = view.capture_rgb()
    x, y = view.world_to_display(np.asarray(p_lps, float))
    return img[img.shape[0] - 1 - int(round(y)), int(round(x))].astype(int)


def _coloured(rgb: np.ndarray) -> bool:
    """Not a grey CT pixel: the needle colours are saturated."""
    return int(rgb.max()) - int(rgb.min()) > 80


def _mm_per_px(view) -> float:
    a = view.display_to_lps(*view.qt_to_display(100, 100))
    b = view.display_to_lps(*view.qt_to_display(110, 100))
    return float(np.linalg.norm(b - a)) / 10.0


def test_place_ire_array_by_clicks_drag_undo_redo(loaded, qtbot) -> None:
    from irplan.planning.needle_geometry import angle_between_deg, tumour_centroid_near

    win, tools, ref, masks = loaded
    view = win.views.axial
    centre = tumour_centroid_near(masks["tumor"])
    win.views.set_crosshair(centre)
    win.views.render_now()
    tol = 1.5 * _mm_per_px(view)

    # one electrode by two clicks: target at the tumour centre, entry 70 mm anterior
    qtbot.mouseClick(tools.panel.place_btn, Qt.MouseButton.LeftButton)
    entry = centre + np.array([-20.0, -70.0, 0.0])
    _click(view, centre, qtbot)
    _click(view, entry, qtbot)
    plan = tools.plan
    assert len(plan.needles) == 1 and plan.needles[0].device == "ire-19g-monopolar"
    np.testing.assert_allclose(plan.needles[0].tip_lps_mm[:2], centre[:2], atol=tol)
    np.testing.assert_allclose(plan.needles[0].entry_lps_mm[:2], entry[:2], atol=tol)
    direction = plan.needles[0].direction

    # a square array around the tumour, parallel to that electrode
    tools.panel.template_combo.setCurrentText("square")
    qtbot.mouseClick(tools.panel.apply_btn, Qt.MouseButton.LeftButton)
    qtbot.wait(50)
    assert len(plan.needles) == 4
    assert all(angle_between_deg(n.direction, direction) < 1e-6 for n in plan.needles)
    tools.recheck()
    assert tools.panel.findings_list.count() == len(tools.findings) > 0
    assert tools.panel.table.rowCount() == 4
    assert "Pairs:" in tools.panel.pairs_label.text()
    # the table names the electrodes as the PDF report does (it said #1 and the report N1)
    from irplan.io.report_content import needle_rows

    assert [tools.panel.table.item(r, 0).text() for r in range(4)] == \
        [row.name for row in needle_rows(plan)]
    # the electrode path is drawn in its finding colour where it crosses the slice
    n0 = plan.needles[0]
    win.views.set_crosshair(n0.tip_lps_mm - 5.0 * n0.direction)
    win.views.render_now()
    mid = n0.tip_lps_mm - 10.0 * n0.direction
    assert _coloured(_rgb_at(view, mid)), _rgb_at(view, mid)

    # drag electrode 1's tip by 12 px: only it moves (tip and entry), array stays parallel
    before = plan.copy()
    start = _qt_point(view, n0.tip_lps_mm)
    end = QPoint(start.x() + 12, start.y())
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    for k in range(1, 5):
        qtbot.mouseMove(view, pos=QPoint(start.x() + 3 * k, start.y()))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=end)
    qtbot.wait(30)
    after = plan.copy()
    shift = after.needles[0].tip_lps_mm - before.needles[0].tip_lps_mm
    assert np.linalg.norm(shift) == pytest.approx(12 * _mm_per_px(view), abs=tol)
    np.testing.assert_allclose(after.needles[0].entry_lps_mm - before.needles[0].entry_lps_mm,
                               shift, atol=1e-9)
    assert all(after.needles[k] == before.needles[k] for k in (1, 2, 3))
    win.views.render_now()
    assert _coloured(_rgb_at(view, after.needles[0].tip_lps_mm))

    # one undo restores the plan before the drag exactly; redo re-applies it
    assert tools.stack.undo_text.startswith("move electrode 1")
    qtbot.mouseClick(tools.panel.undo_btn, Qt.MouseButton.LeftButton)
    assert plan == before
    qtbot.mouseClick(tools.panel.redo_btn, Qt.MouseButton.LeftButton)
    assert plan == after
    win.views.render_now()
    # typed coordinates: the selected electrode's tip S (others keep full precision)
    tools.select(0)
    tip0 = plan.needles[0].tip_lps_mm.copy()
    tools.panel.coord_spins[("tip", 2)].setValue(round(float(tip0[2]), 1) - 4.0)
    assert plan.needles[0].tip_lps_mm[2] == pytest.approx(round(float(tip0[2]), 1) - 4.0)
    assert plan.needles[0].tip_lps_mm[:2].tolist() == tip0[:2].tolist()
    # typed exposure in the table
    tools.panel.table.item(0, 4).setText("25")
    assert plan.needles[0].exposure_mm == 25.0

    # a slice tool is on (here the distance ruler; also the Segment step's strokes): a drag
    # starting on a tip is the tool's, the needle stays (stranger trial: it moved)
    measure = win.measure_panel
    kept = plan.copy()
    start = _qt_point(view, plan.needles[0].tip_lps_mm)
    measure.set_mode("distance")
    try:
        qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
        for k in range(1, 5):
            qtbot.mouseMove(view, pos=QPoint(start.x() + 10 * k, start.y()))
        qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(start.x() + 40,
                                                                       start.y()))
        assert plan.needles == kept.needles
        assert measure.tool.measurements[-1].value == pytest.approx(
            40 * _mm_per_px(view), abs=tol)
    finally:
        measure.set_mode(None)
        measure.actions["clear"].trigger()


def test_thermal_antenna_on_the_phantom(loaded, qtbot) -> None:
    from irplan.planning.plan import Plan, ThermalParams

    win, tools, ref, masks = loaded
    win.case.set_plan(Plan(modality="MWA", image=ref.image,
                           thermal=ThermalParams(100.0, 300.0)))
    qtbot.wait(20)
    assert tools.panel.thermal_box.isVisibleTo(tools.panel)
    assert not tools.panel.ire_box.isVisibleTo(tools.panel)
    qtbot.mouseClick(tools.panel.antenna_btn, Qt.MouseButton.LeftButton)
    qtbot.wait(30)
    tools.recheck()
    plan = tools.plan
    assert len(plan.needles) == 1 and plan.needles[0].device.startswith("mwa")
    codes = {f.code: f for f in tools.findings}
    # the tumour lies ~6 mm from the right hepatic vein: IRE advised for a thermal plan
    assert codes["modality_advice"].severity == "warning"
    assert "IRE is the indicated technique" in tools.panel.advice_label.text()
    # the predicted zone (debounced, background) brings the heat-sink check: orange path
    qtbot.waitUntil(lambda: "heat_sink" in {f.code for f in tools.findings}, timeout=60000)
    assert tools.needle_severities() == ["warning"]
    n = plan.needles[0]
    win.views.set_crosshair(n.tip_lps_mm - 8.0 * n.direction)
    win.views.render_now()
    view = win.views.axial
    r, g, b = _rgb_at(view, n.tip_lps_mm - 8.0 * n.direction)
    assert r > 200 and g > 90 and r - g > 40 and b < 90, (r, g, b)   # orange = warning
    qtbot.mouseClick(tools.panel.undo_btn, Qt.MouseButton.LeftButton)
    assert plan.needles == []
