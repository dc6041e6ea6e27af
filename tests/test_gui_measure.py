"""Measurement tools on the slice views (issue 16), driven with real Qt mouse and key
events on the main window's views; each test checks the figure the view shows against
the synthetic abdomen's known geometry and HU (tests/test_gui_views.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).parent))
from test_gui_views import BODY_HU, LIVER_HU, TUMOUR_CENTRE, TUMOUR_HU, synthetic_case  # noqa: E402

pytestmark = pytest.mark.gui
WINDOW_SIZE = (1100, 760)
L, N = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton


def _mouse(view, kind: str, xy: tuple[float, float], button=N, buttons=N,
           mods=Qt.KeyboardModifier.NoModifier) -> None:
    types = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease}
    pos = QPointF(*xy)
    QApplication.sendEvent(view, QMouseEvent(types[kind], pos, view.mapToGlobal(pos),
                                             button, buttons, mods))


def _drag(view, a_lps, b_lps) -> None:
    a, b = view.lps_to_qt(np.asarray(a_lps, float)), view.lps_to_qt(np.asarray(b_lps, float))
    _mouse(view, "press", a, L, L)
    for t in (0.25, 0.5, 0.75):
        _mouse(view, "move", (a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])), N, L)
    _mouse(view, "release", b, L, N)


def _click(view, p_lps) -> None:
    xy = view.lps_to_qt(np.asarray(p_lps, float))
    _mouse(view, "press", xy, L, L)
    _mouse(view, "release", xy, L, N)


@pytest.fixture(scope="module")
def shown(main_window):
    from irplan.viewers.measure_tools import MeasureTool

    ct, masks = synthetic_case()
    main_window.show_case(ct, masks, title="synthetic")
    assert main_window.tasks.wait_idle(120)
    tool = MeasureTool(main_window.views)
    yield main_window, tool
    tool.set_mode(None)
    tool.clear()


def _shown_text(tool) -> str:
    """The figure drawn in the view for the last measurement."""
    return tool._drawn[-1].label.GetInput()


def test_distance_ruler_shows_mm(shown, qtbot) -> None:
    win, tool = shown
    v = win.views
    v.set_crosshair(np.zeros(3))
    v.axial.render_now()
    z = v.axial.slice_position_mm
    a, b = np.array([-50.0, -20.0, z]), np.array([30.0, 40.0, z])   # 100 mm apart
    tool.set_mode("distance")
    crosshair = v.crosshair_lps_mm
    _drag(v.axial, a, b)
    m = tool.measurements[-1]
    assert m.kind == "distance" and m.view == "axial"
    assert m.value == pytest.approx(100.0, abs=2.0)          # within a screen pixel or two
    assert _shown_text(tool) == f"{m.value:.1f} mm"
    assert np.allclose(v.crosshair_lps_mm, crosshair)         # the crosshair stayed
    assert tool._drawn[-1].line.GetVisibility()
    # another slice: the ruler is not drawn there; back on its slice it is
    v.axial.scroll(5)
    assert not tool._drawn[-1].line.GetVisibility()
    v.axial.scroll(-5)
    assert tool._drawn[-1].line.GetVisibility()


def test_angle_tool_shows_degrees(shown, qtbot) -> None:
    win, tool = shown
    ax = win.views.axial
    z = ax.slice_position_mm
    tool.set_mode("angle")
    vertex = np.array([0.0, 0.0, z])
    _click(ax, vertex + [-40.0, 0.0, 0.0])
    _click(ax, vertex)
    _click(ax, vertex + [0.0, 40.0, 0.0])
    m = tool.measurements[-1]
    assert m.kind == "angle"
    assert m.value == pytest.approx(90.0, abs=1.5)
    assert _shown_text(tool) == f"{m.value:.1f}°"


def test_roi_statistics_show_known_hu(shown, qtbot) -> None:
    win, tool = shown
    v = win.views
    ax = v.axial
    # uniform soft tissue of the body (40 HU), patient left: an ellipse of radius 20 mm
    c = np.array([80.0, -20.0, ax.slice_position_mm])
    tool.set_mode("roi_ellipse")
    _drag(ax, c - [20.0, 20.0, 0.0], c + [20.0, 20.0, 0.0])
    m = tool.measurements[-1]
    s = m.stats
    assert s["mean_hu"] == pytest.approx(BODY_HU) and s["sd_hu"] == pytest.approx(0.0)
    assert s["min_hu"] == BODY_HU and s["max_hu"] == BODY_HU
    assert s["area_mm2"] == pytest.approx(np.pi * 20 ** 2, rel=0.08)
    assert _shown_text(tool) == (f"mean {BODY_HU:.1f} HU  SD 0.0\nmin {BODY_HU}  "
                                 f"max {BODY_HU}  {s['area_mm2'] / 100:.2f} cm²")
    # a rectangle over the tumour inside the liver: both tissues, in between on average
    v.set_crosshair(TUMOUR_CENTRE)
    ax.render_now()
    tool.set_mode("roi_rect")
    _drag(ax, TUMOUR_CENTRE - [30.0, 30.0, 0.0], TUMOUR_CENTRE + [30.0, 30.0, 0.0])
    s = tool.measurements[-1].stats
    assert s["min_hu"] == TUMOUR_HU and s["max_hu"] == LIVER_HU
    assert TUMOUR_HU < s["mean_hu"] < LIVER_HU and s["sd_hu"] > 10
    assert f"min {TUMOUR_HU}  max {LIVER_HU}" in _shown_text(tool)
    assert s["area_mm2"] == pytest.approx(60 * 60, rel=0.08)
    rows = tool.to_json()
    assert rows[-1]["kind"] == "roi_rect" and rows[-1]["min_hu"] == TUMOUR_HU
    tool.set_mode(None)


def test_keys_scroll_the_view_under_the_pointer_without_a_click(shown, qtbot) -> None:
    win, _tool = shown
    v = win.views
    v.axial.setFocus()
    cor = v.coronal
    y0 = cor.slice_position_mm
    _mouse(cor, "move", (cor.width() / 2, cor.height() / 2))     # the pointer over it
    focus = win.focusWidget()          # where the window sends key presses
    assert focus is cor
    QTest.keyClick(focus, Qt.Key.Key_PageUp)
    QTest.keyClick(focus, Qt.Key.Key_Up)
    assert cor.slice_position_mm == pytest.approx(y0 + 2 * cor.step_mm)
    cor.render_now()
    assert f"P {y0 + 2 * cor.step_mm:+.1f} mm" in cor._info.GetInput()   # shown in the view


def test_synchronised_zoom_and_pan(shown, qtbot) -> None:
    win, _tool = shown
    v = win.views
    ax, cor, sag = v.axial, v.coronal, v.sagittal
    v.reset_views()
    v.set_sync_zoom_pan(True)
    try:
        pos = QPointF(ax.width() / 2, ax.height() / 2)
        QApplication.sendEvent(ax, QWheelEvent(
            pos, ax.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 240), N,
            Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase, False))
        assert ax.parallel_scale_mm == pytest.approx(cor.parallel_scale_mm)
        assert sag.parallel_scale_mm == pytest.approx(ax.parallel_scale_mm)
        # the same mm per pixel: the same scale bar in views of the same size
        v.render_now()
        if ax.size() == cor.size():
            assert ax._bar_text.GetInput() == cor._bar_text.GetInput()
        # Shift+drag pans the axial view 40 px right: coronal follows along L (x)
        x0 = float(cor.renderer.GetActiveCamera().GetFocalPoint()[0])
        c = (ax.width() / 2, ax.height() / 2)
        _mouse(ax, "press", c, L, L, Qt.KeyboardModifier.ShiftModifier)
        _mouse(ax, "move", (c[0] + 40, c[1]), N, L, Qt.KeyboardModifier.ShiftModifier)
        _mouse(ax, "release", (c[0] + 40, c[1]), L, N)
        ax_x = float(ax.renderer.GetActiveCamera().GetFocalPoint()[0])
        assert abs(ax_x - x0) > 5
        assert float(cor.renderer.GetActiveCamera().GetFocalPoint()[0]) == pytest.approx(ax_x)
    finally:
        v.set_sync_zoom_pan(False)
        v.reset_views()


def test_view_menu_measure_distance_shows_figure_in_status_line(shown, qtbot) -> None:
    win, _tool = shown
    panel = win.measure_panel
    v = win.views
    v.set_crosshair(np.zeros(3))
    v.coronal.render_now()
    y = v.coronal.slice_position_mm
    panel.actions["distance"].trigger()
    assert v.axial.tool is panel.tool
    _drag(v.coronal, [-40.0, y, -30.0], [20.0, y, 50.0])        # 100 mm in the coronal plane
    m = panel.tool.measurements[-1]
    assert m.view == "coronal" and m.value == pytest.approx(100.0, abs=2.0)
    assert win.statusBar().currentMessage() == f"Distance (coronal): {m.value:.1f} mm"
    panel.actions["off"].trigger()
    assert v.axial.tool is None
    panel.actions["clear"].trigger()
    assert panel.tool.measurements == []
    panel.actions["sync"].setChecked(True)
    assert v.sync_zoom_pan
    panel.actions["sync"].setChecked(False)


def test_measurements_are_kept_with_the_plan(shown, qtbot, tmp_path: Path) -> None:
    from irplan.io.plan_file import load_plan, save_plan

    win, _tool = shown
    panel = win.measure_panel
    v = win.views
    v.set_crosshair(np.zeros(3))
    v.axial.render_now()
    z = v.axial.slice_position_mm
    panel.actions["clear"].trigger()
    panel.set_mode("distance")
    _drag(v.axial, [-50.0, -20.0, z], [30.0, 40.0, z])
    panel.set_mode("roi_ellipse")
    c = np.array([80.0, -20.0, z])
    _drag(v.axial, c - [20.0, 20.0, 0.0], c + [20.0, 20.0, 0.0])
    panel.set_mode(None)
    dist = panel.tool.measurements[0].value
    rows = win.case.plan.extra["measurements"]
    assert [r["kind"] for r in rows] == ["distance", "roi_ellipse"]
    assert rows[0]["distance_mm"] == pytest.approx(dist, abs=0.01)
    assert rows[1]["mean_hu"] == BODY_HU and rows[1]["sd_hu"] == 0.0
    assert win.needle_tools.is_modified          # the plan file no longer matches
    # saved in the plan file (schema 1, extra key) and read back
    (tmp_path / "ct.nii.gz").write_bytes(b"")     # the synthetic CT has no file
    win.case.plan.image.path = str(tmp_path / "ct.nii.gz")
    path = save_plan(win.case.plan, tmp_path / "m.irplan.json")
    again = load_plan(path)
    assert again.extra["measurements"][0]["distance_mm"] == pytest.approx(dist, abs=0.01)
    # drawn again from the plan, with the same figures
    panel.sync_with_case()
    assert [m.text for m in panel.tool.measurements] == [r["text"] for r in rows]
    assert panel.tool._drawn[0].label.GetInput() == f"{dist:.1f} mm"


def _click3d(view, p_lps) -> None:
    """A left click (press, release, no move) where LPS point ``p_lps`` projects."""
    xy = view.lps_to_qt(np.asarray(p_lps, float))
    _mouse(view, "press", xy, L, L)
    _mouse(view, "release", xy, L, N)


def _ray_sphere(eye: np.ndarray, through: np.ndarray, centre: np.ndarray,
                r_mm: float) -> np.ndarray:
    """First point (LPS mm) where the ray from ``eye`` through ``through`` meets a sphere."""
    d = (through - eye) / np.linalg.norm(through - eye)
    oc = eye - centre
    b = float(np.dot(oc, d))
    return eye + d * (-b - np.sqrt(b * b - (float(np.dot(oc, oc)) - r_mm ** 2)))


def test_distance_and_angle_in_3d_on_surfaces(shown, qtbot, tmp_path: Path) -> None:
    from test_gui_views import TUMOUR_R_MM

    from irplan.viewers.measure_tools import LINE_3D_RGB

    win, _tool = shown
    panel = win.measure_panel
    v = win.views
    s3 = v.scene3d
    assert win.wait_for_surfaces(120)
    for key in ("liver", "bone"):            # the tumour alone: its sphere is picked
        v.set_structure_style(key, visible=False)
    s3.set_camera_preset("anterior")         # looking along +y (posterior)
    s3.render_now()
    panel.actions["clear"].trigger()
    panel.actions["distance_3d"].trigger()
    assert v.axial.tool is None              # the slice views keep the crosshair
    c = TUMOUR_CENTRE
    _click3d(s3, c + [-10.0, 0.0, 0.0])
    assert panel.tool.measurements == []     # one point: under way
    _click3d(s3, c + [10.0, 0.0, 0.0])
    m = panel.tool.measurements[-1]
    assert m.kind == "distance_3d" and m.view == "3d"
    a, b = m.points_lps_mm
    # where the mouse rays meet the tumour's sphere (the mesh is within ~1 mm of it)
    eye = np.array(s3.renderer.GetActiveCamera().GetPosition())
    ea, eb = (_ray_sphere(eye, c + [dx, 0.0, 0.0], c, TUMOUR_R_MM) for dx in (-10.0, 10.0))
    assert np.linalg.norm(a - ea) < 1.5 and np.linalg.norm(b - eb) < 1.5, (a, ea, b, eb)
    assert m.value == pytest.approx(np.linalg.norm(eb - ea), abs=1.5)
    assert _shown_text(panel.tool) == f"{m.value:.1f} mm"
    assert win.statusBar().currentMessage() == f"Distance (3d): {m.value:.1f} mm"
    rgb = s3.capture_rgb()                   # the ruler drawn on top, magenta
    x, y = s3.world_to_display((a + b) / 2 + [3.0, 0.0, 0.0])
    px = rgb[rgb.shape[0] - 1 - int(round(y)), int(round(x))].astype(float)
    assert np.allclose(px / 255, LINE_3D_RGB, atol=0.25), px
    # a drag rotates the camera and picks nothing
    n_before = len(panel.tool.measurements)
    xy = s3.lps_to_qt(c)
    _mouse(s3, "press", xy, L, L)
    _mouse(s3, "move", (xy[0] + 30, xy[1]), N, L)
    _mouse(s3, "release", (xy[0] + 30, xy[1]), L, N)
    assert len(panel.tool.measurements) == n_before
    s3.set_camera_preset("anterior")
    s3.render_now()
    # angle: the vertex below the arms' ends on the sphere's front (about 90 degrees)
    panel.actions["angle_3d"].trigger()
    clicks = (c + [-10.0, 0.0, 0.0], c + [0.0, 0.0, -10.0], c + [10.0, 0.0, 0.0])
    for p in clicks:
        _click3d(s3, p)
    m = panel.tool.measurements[-1]
    assert m.kind == "angle_3d" and len(m.points_lps_mm) == 3
    eye = np.array(s3.renderer.GetActiveCamera().GetPosition())
    ends = [_ray_sphere(eye, q, c, TUMOUR_R_MM) for q in clicks]
    assert max(np.linalg.norm(p - q) for p, q in zip(m.points_lps_mm, ends)) < 1.5
    u, w = ends[0] - ends[1], ends[2] - ends[1]
    expect = np.degrees(np.arccos(np.dot(u, w) / np.linalg.norm(u) / np.linalg.norm(w)))
    assert m.value == pytest.approx(expect, abs=4.0)
    assert _shown_text(panel.tool) == f"{m.value:.1f}°"
    panel.set_mode(None)
    # kept with the plan and drawn again in 3D from it
    rows = win.case.plan.extra["measurements"]
    assert [r["kind"] for r in rows] == ["distance_3d", "angle_3d"]
    assert rows[0]["view"] == "3d" and rows[0]["distance_mm"] == pytest.approx(
        panel.tool.measurements[0].value, abs=0.01)
    panel.sync_with_case()
    assert [m.text for m in panel.tool.measurements] == [r["text"] for r in rows]
    for key in ("liver", "bone"):
        v.set_structure_style(key, visible=True)
    panel.actions["clear"].trigger()
