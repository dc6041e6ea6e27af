"""Side by side in the Evaluate step (issue 16) on a phantom pair with exact truth: after
a rigid registration and an evaluation, the planning CT (left) and the registered
follow-up (right) show the same LPS point; the ablated liver is darker on the right; the
crosshair, slice and zoom of one pane move the other; back to the four views."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).parent))
from test_evaluate_panel import _pair  # noqa: E402

pytestmark = pytest.mark.gui
WINDOW_SIZE = (1400, 900)
L, N = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton


def _pixel(view, p_lps: np.ndarray) -> np.ndarray:
    """RGB of the pixel where an LPS point is drawn in a view (its own rendering)."""
    img = view.capture_rgb()
    x, y = view.world_to_display(np.asarray(p_lps, float))
    return img[img.shape[0] - 1 - int(round(y)), int(round(x))].astype(float)


def _grey(hu: float, window: tuple[float, float]) -> float:
    w, lvl = window
    return float(np.clip((hu - (lvl - w / 2)) / w, 0, 1) * 255)


def _wheel(view, steps: int, mods=Qt.KeyboardModifier.NoModifier) -> None:
    pos = QPointF(view.width() / 2, view.height() / 2)
    QApplication.sendEvent(view, QWheelEvent(pos, view.mapToGlobal(pos), QPoint(0, 0),
                                             QPoint(0, 120 * steps), N, mods,
                                             Qt.ScrollPhase.NoScrollPhase, False))


def _click(view, p_lps) -> None:
    pos = QPointF(*view.lps_to_qt(np.asarray(p_lps, float)))
    for kind, button, buttons in ((QEvent.Type.MouseButtonPress, L, L),
                                  (QEvent.Type.MouseButtonRelease, L, N)):
        QApplication.sendEvent(view, QMouseEvent(kind, pos, view.mapToGlobal(pos), button,
                                                 buttons, Qt.KeyboardModifier.NoModifier))


def test_side_by_side_planning_and_registered_followup(main_window, qtbot) -> None:
    truth, ct, masks, fct, fmasks = _pair("margin_ok")
    win = main_window
    panel = win.evaluate_panel
    sbs = panel.side_by_side
    win.show_case(ct, {"tumor": masks["tumor"], "liver": masks["liver"]}, title="phantom")
    win.workflow.set_step("evaluate")
    qtbot.waitUntil(lambda: not win.tasks.busy, timeout=120_000)
    assert not panel.btn_side.isEnabled()             # nothing evaluated yet
    panel.set_followup(fct)
    panel.set_zone(fmasks["ablation_zone"])
    panel.register("rigid")
    qtbot.waitUntil(lambda: panel.registration is not None and not win.tasks.busy,
                    timeout=180_000)
    panel.accept_registration()
    panel.evaluate()
    qtbot.waitUntil(lambda: panel.result is not None and not win.tasks.busy,
                    timeout=180_000)
    assert panel.btn_side.isEnabled()

    # a point of ablated liver beside the tumour, off the crosshair lines in the slice
    c = np.asarray(truth.tumor.center_lps_mm)
    ndir = np.asarray(truth.ablation_zone.axes[0])
    p = c + ndir * (truth.tumor.radii_mm[0] + 3.0)
    cross = p + np.array([-4.0, -4.0, 0.0])
    win.views.set_crosshair(cross)
    panel.btn_side.click()
    qtbot.waitUntil(lambda: sbs.active, timeout=120_000)
    left, right = sbs.planning_view, sbs.followup_view
    assert panel.btn_side.isChecked()
    assert left.isVisible() and right.isVisible() and not win.views.axial.isVisible()
    # both panes at the crosshair's LPS point: same slice (mm) and zoom
    for v in (left, right):
        assert np.allclose(v.crosshair_lps_mm, cross)
        assert v.slice_position_mm == pytest.approx(cross[2])
    assert left.parallel_scale_mm == pytest.approx(right.parallel_scale_mm)
    left.render_now()
    right.render_now()
    assert left._info.GetInput() == right._info.GetInput()   # "S +x.x mm (k/n)" shown
    assert f"S {cross[2]:+.1f} mm" in right._info.GetInput()
    # the registered follow-up there: the non-enhancing zone, darker than the liver
    hu_plan, hu_fu = left.hu_at(p), right.hu_at(p)
    assert hu_plan > 80 and hu_fu < 60, (hu_plan, hu_fu)
    w = win.views.window
    px_l, px_r = _pixel(left, p), _pixel(right, p)
    assert px_l.mean() - px_r.mean() > 15, (px_l, px_r)
    assert px_l.mean() == pytest.approx(_grey(hu_plan, w), abs=25)
    assert px_r.mean() == pytest.approx(_grey(hu_fu, w), abs=25)

    # linked cursors: a click in the follow-up moves the planning pane (and the 4 views)
    q = c + np.array([6.0, -5.0, 0.0])
    q[2] = cross[2]
    _click(right, q)
    assert np.allclose(left.crosshair_lps_mm, right.crosshair_lps_mm, atol=1e-6)
    assert np.allclose(left.crosshair_lps_mm[:2], q[:2], atol=1.0)
    assert np.allclose(win.views.crosshair_lps_mm, left.crosshair_lps_mm)
    # scrolling the planning pane moves the follow-up to the same slice (mm)
    z0 = left.slice_position_mm
    _wheel(left, 3)
    assert left.slice_position_mm == pytest.approx(z0 + 3 * left.step_mm)
    assert right.slice_position_mm == pytest.approx(left.slice_position_mm)
    assert win.views.crosshair_lps_mm[2] == pytest.approx(left.slice_position_mm)
    # zoom in the follow-up pane (Ctrl+wheel): the planning pane follows
    s0 = right.parallel_scale_mm
    _wheel(right, 2, Qt.KeyboardModifier.ControlModifier)
    assert right.parallel_scale_mm == pytest.approx(s0 / 1.1 ** 2)
    assert left.parallel_scale_mm == pytest.approx(right.parallel_scale_mm)

    # back to the four views, at the point last looked at
    last = left.crosshair_lps_mm
    panel.btn_side.click()
    assert not sbs.active and not panel.btn_side.isChecked()
    qtbot.waitUntil(lambda: win.views.axial.isVisible(), timeout=5_000)
    assert np.allclose(win.views.crosshair_lps_mm, last)
    assert win.views.axial.slice_position_mm == pytest.approx(last[2])
    # another workflow step also goes back to the four views
    panel.btn_side.click()
    qtbot.waitUntil(lambda: sbs.active, timeout=120_000)
    win.workflow.set_step("plan")
    assert not sbs.active and not win.views.instead
    qtbot.waitUntil(lambda: win.views.axial.isVisible(), timeout=5_000)
