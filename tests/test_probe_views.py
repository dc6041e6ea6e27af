"""Needle-aligned ("probe's eye") views on the phantom, judged by their pictures: the
selected needle's path drawn straight from entry to tip in both in-plane views, the
tumour where it truly lies in every reformat (bull's-eye at the tumour's depth), and the
views following needle edits in mm."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

pytestmark = pytest.mark.gui

SIZE = (128, 128, 64)            # a coarse grid keeps the module quick; anatomy in LPS
SPACING_MM = (3.0, 3.0, 4.0)     # is the same as the standard phantom's
BAND_MM = 3.5     # voxelised sphere vs truth (half voxel diagonal 2.9 mm): ignore +-3.5 mm


@pytest.fixture(scope="module")
def probe(qapp, tmp_path_factory):
    """Main window with the phantom, its reference IRE plan, structures as fills, and
    the probe dock installed by :func:`install_probe_views`."""
    from PySide6.QtTest import QTest

    from irplan.app.gui_main import make_app
    from irplan.app.main_window import MainWindow
    from irplan.app.probe_panel import install_probe_views
    from irplan.io.phantom_writer import load_truth, write_phantom_case
    from irplan.io.plan_file import load_plan, load_plan_image, load_plan_structures

    case = write_phantom_case(tmp_path_factory.mktemp("probe") / "case", seed=0,
                              size=SIZE, spacing_mm=SPACING_MM)
    make_app()
    win = MainWindow(restore_state=False)
    win.headless = True
    win.resize(1500, 950)
    win.show()
    QTest.qWaitForWindowExposed(win)
    panel = install_probe_views(win.ctx)
    assert install_probe_views(win.ctx) is panel      # idempotent
    assert not panel.dock.isVisible()                 # on request only
    panel.dock.show()
    ref = load_plan(case / "plan.irplan.json")
    ct = load_plan_image(ref)
    masks, _ = load_plan_structures(ref, ct)
    win.show_case(ct, masks, plan=ref, title="phantom")
    assert win.wait_for_surfaces(120)
    win.case_panel.mode_combo.setCurrentIndex(0)      # structures as fills everywhere
    QTest.qWait(50)
    truth = load_truth(case)
    yield win, panel, truth
    win.tasks.shutdown(120)
    QTest.qWait(50)
    win.close()
    win.deleteLater()


# ----------------------------------------------------------------------------- helpers
def _pixel(img: np.ndarray, view, p_lps) -> np.ndarray:
    x, y = view.world_to_display(np.asarray(p_lps, float))
    return img[img.shape[0] - 1 - int(round(y)), int(round(x))].astype(int)


def _near(rgb: np.ndarray, ref: tuple[float, float, float], tol: int = 40) -> bool:
    return bool(np.all(np.abs(rgb - 255 * np.asarray(ref)) <= tol))


def _yellow(rgb: np.ndarray) -> bool:
    """The tumour fill (yellow, 40 %) over grey CT, not the orange depth line or text."""
    r, g, b = (int(c) for c in rgb)
    return r > 140 and g > 120 and abs(r - g) < 50 and min(r, g) - b > 45


def _mm_per_px(view) -> float:
    a = view.display_to_lps(*view.qt_to_display(100, 100))
    b = view.display_to_lps(*view.qt_to_display(110, 100))
    return float(np.linalg.norm(b - a)) / 10.0


def _show(win, panel, qtbot, index: int | None) -> None:
    win.ctx.services.session.select(index)
    qtbot.waitUntil(lambda: panel.needle_index == index, timeout=5000)
    panel.sync_styles()
    panel.render_now()


def _tumour_fractions(view, centre: np.ndarray, radius_mm: float,
                      avoid_points: list[np.ndarray] = (),
                      avoid_lines: list[tuple[np.ndarray, np.ndarray]] = (),
                      ) -> tuple[float, float, int, int]:
    """Yellow fraction of sample points of the view's plane inside the tumour sphere
    (deeper than BAND_MM) and outside it (beyond BAND_MM), sampled 1 mm apart away from
    drawn marks: 4 mm from ``avoid_points`` (rings), 3 mm from ``avoid_lines`` (point,
    unit direction: needle paths, the depth line)."""
    img = view.capture_rgb()
    fp, n = view.slice_plane()
    up = np.array(view.renderer.GetActiveCamera().GetViewUp())
    right = np.cross(n, up)
    c0 = centre - n * float((centre - fp) @ n)        # sphere centre in the plane
    inside, outside = [], []
    grid = np.arange(-30.0, 30.1, 1.0)
    for u in grid:
        for v in grid:
            p = c0 + u * up + v * right
            if any(np.linalg.norm(p - q) < 4.0 for q in avoid_points):
                continue
            if any(np.linalg.norm(np.cross(p - q, e)) < 3.0 for q, e in avoid_lines):
                continue
            r = float(np.linalg.norm(p - centre))
            if BAND_MM < abs(r - radius_mm):
                (inside if r < radius_mm else outside).append(_yellow(_pixel(img, view, p)))
    return float(np.mean(inside)), float(np.mean(outside)), len(inside), len(outside)


# ----------------------------------------------------------------------------- tests
def test_hint_without_selection_and_views_with_one(probe, qtbot) -> None:
    win, panel, _ = probe
    assert panel.dock.isVisible()
    _show(win, panel, qtbot, None)
    assert panel.showing_hint and "Select a needle" in panel.hint_label.text()
    assert all(v.frame is None for v in panel.probe_views)
    _show(win, panel, qtbot, 0)
    assert not panel.showing_hint
    n = win.case.plan.needles[0]
    for v in panel.probe_views:
        np.testing.assert_allclose(v.frame.tip_lps_mm, n.tip_lps_mm)
        np.testing.assert_allclose(v.frame.entry_lps_mm, n.entry_lps_mm)
    # in-plane view A contains the needle and the superior axis; B is turned 90 deg
    d = n.direction
    na, nb, ne = (v.normal for v in panel.probe_views)
    assert abs(na @ d) < 1e-9 and abs(na @ np.array([0.0, 0.0, 1.0])) < 1e-9
    assert abs(nb @ d) < 1e-9 and abs(nb @ na) < 1e-9
    np.testing.assert_allclose(ne, d, atol=1e-12)


def test_inplane_views_draw_the_path_entry_to_tip(probe, qtbot) -> None:
    from irplan.viewers.probe_view import ACTIVE_RGB

    win, panel, _ = probe
    _show(win, panel, qtbot, 0)
    n = win.case.plan.needles[0]
    path_rgb = panel.view_a.needle.rgb
    active_from_mm = n.length_mm - n.exposure_mm
    for view in (panel.view_a, panel.view_b):
        img = view.capture_rgb()
        (xe, ye), (xt, yt) = view.world_to_display(n.entry_lps_mm), \
            view.world_to_display(n.tip_lps_mm)
        # entry on the left, tip on the right, on one pixel row; the length is true in mm
        assert xt > xe and abs(yt - ye) < 0.5
        assert (xt - xe) * _mm_per_px(view) == pytest.approx(n.length_mm,
                                                             abs=1.5 * _mm_per_px(view))
        # every pixel of the segment has the needle's colour (active part: cyan)
        for t in np.linspace(0.02, 0.98, 40) * n.length_mm:
            p = n.entry_lps_mm + t * n.direction
            rgb = _pixel(img, view, p)
            want = ACTIVE_RGB if t > active_from_mm + 1.0 else path_rgb
            if abs(t - active_from_mm) > 1.0:
                assert _near(rgb, want), (view.kind, t, rgb)
        # tip and mid-point explicitly; 10 px above the line is no needle
        assert _near(_pixel(img, view, n.tip_lps_mm - 0.5 * n.direction), ACTIVE_RGB)
        mid = n.entry_lps_mm + 0.5 * active_from_mm * n.direction
        assert _near(_pixel(img, view, mid), path_rgb)
        x, y = view.world_to_display(mid)
        above = img[img.shape[0] - 1 - int(round(y + 10)), int(round(x))].astype(int)
        assert not _near(above, path_rgb), above


def test_tumour_where_it_lies_in_every_reformat(probe, qtbot) -> None:
    win, panel, truth = probe
    _show(win, panel, qtbot, 0)
    centre = np.array(truth.tumor.center_lps_mm)
    radius = truth.tumor.radius_mm
    frame = panel.view_eye.frame
    depth = frame.depth_of(centre)
    assert 0 < depth < frame.length_mm
    panel.set_depth(depth)
    panel.render_now()
    assert panel.depth_mm == pytest.approx(depth)
    assert panel.depth_spin.value() == pytest.approx(depth, abs=0.05)
    # the bull's-eye plane at the tumour's depth holds its centre: yellow there
    img = panel.view_eye.capture_rgb()
    assert _yellow(_pixel(img, panel.view_eye, centre)), _pixel(img, panel.view_eye, centre)
    plan = win.case.plan
    # needles crossing the plane are ringed: keep the samples off those rings
    avoid = []
    for nd in plan.needles:
        v = nd.tip_lps_mm - nd.entry_lps_mm
        s = float((frame.point_at_depth(depth) - nd.entry_lps_mm) @ frame.d) / float(v @ frame.d)
        avoid.append(nd.entry_lps_mm + s * v)
    f_in, f_out, n_in, n_out = _tumour_fractions(panel.view_eye, centre, radius, avoid)
    assert n_in >= 100 and n_out >= 1000
    assert f_in >= 0.9 and f_out <= 0.02, (f_in, f_out)
    # the in-plane reformats cut the sphere where it lies too (off the drawn needles;
    # the bull's-eye depth line moved off the tumour)
    panel.set_depth(depth - 2 * radius)
    for view in (panel.view_a, panel.view_b):
        lines = [(nd.entry_lps_mm, nd.direction) for nd in plan.needles]
        f_in, f_out, n_in, n_out = _tumour_fractions(view, centre, radius, avoid_lines=lines)
        assert n_in >= 20 and n_out >= 1000, (view.kind, n_in, n_out)
        assert f_in >= 0.9 and f_out <= 0.02, (view.kind, f_in, f_out)


def test_depth_by_click_and_wheel(probe, qtbot) -> None:
    from irplan.viewers.probe_view import PROBE_COLORS

    win, panel, _ = probe
    _show(win, panel, qtbot, 0)
    view = panel.view_a
    frame = view.frame
    # a click in an in-plane view puts the bull's-eye at that depth (and the crosshair)
    up = np.array(view.renderer.GetActiveCamera().GetViewUp())
    p = frame.point_at_depth(50.0) + 6.0 * up
    x, y = view.lps_to_qt(p)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(int(round(x)), int(round(y))))
    tol = 1.5 * _mm_per_px(view)
    assert panel.depth_mm == pytest.approx(50.0, abs=tol)
    np.testing.assert_allclose(win.views.crosshair_lps_mm, p, atol=tol)
    # ten wheel steps forward in the bull's-eye: 10 mm deeper, the depth line follows
    start = panel.depth_mm
    panel.view_eye.scroll(10)
    assert panel.depth_mm == pytest.approx(start + 10.0)
    panel.render_now()
    img = view.capture_rgb()
    line_at = frame.point_at_depth(panel.depth_mm) + 20 * _mm_per_px(view) * up
    assert _near(_pixel(img, view, line_at), PROBE_COLORS["bullseye"])


def test_moving_the_needle_moves_the_views(probe, qtbot) -> None:
    from irplan.viewers.probe_view import ACTIVE_RGB

    win, panel, _ = probe
    tools = win.ctx.services.session
    tools.lock_parallel = False                    # move this electrode only
    _show(win, panel, qtbot, 0)
    n = tools.plan.needles[0]
    entry, tip0 = n.entry_lps_mm.copy(), n.tip_lps_mm.copy()
    normal_a0 = panel.view_a.normal
    depth0 = panel.depth_mm

    # 20 mm deeper along the path: the drawn path is 20 mm longer, entry fixed
    tip1 = tip0 + 20.0 * n.direction
    assert tools.move_point(0, "tip", tip1)
    qtbot.waitUntil(lambda: np.allclose(panel.view_a.frame.tip_lps_mm, tip1), timeout=5000)
    panel.render_now()
    for view in (panel.view_a, panel.view_b):
        img = view.capture_rgb()
        (xe, _), (xt, _) = view.world_to_display(entry), view.world_to_display(tip1)
        assert (xt - xe) * _mm_per_px(view) == pytest.approx(
            float(np.linalg.norm(tip1 - entry)), abs=1.5 * _mm_per_px(view))
        assert _near(_pixel(img, view, tip1 - 0.5 * n.direction), ACTIVE_RGB)
    assert panel.depth_mm == pytest.approx(depth0)   # the bull's-eye stays at its depth

    # tip 12 mm sideways (out of plane A): both planes turn to hold the new path
    side = panel.view_a.normal
    tip2 = tip1 + 12.0 * side
    assert tools.move_point(0, "tip", tip2)
    qtbot.waitUntil(lambda: np.allclose(panel.view_a.frame.tip_lps_mm, tip2), timeout=5000)
    panel.render_now()
    new_dir = (tip2 - entry) / np.linalg.norm(tip2 - entry)
    assert abs(panel.view_a.normal @ new_dir) < 1e-9
    assert panel.view_a.normal @ normal_a0 < np.cos(np.radians(3.0))
    for view in (panel.view_a, panel.view_b):
        img = view.capture_rgb()
        (xe, ye), (xt, yt) = view.world_to_display(entry), view.world_to_display(tip2)
        assert abs(yt - ye) < 0.5
        assert (xt - xe) * _mm_per_px(view) == pytest.approx(
            float(np.linalg.norm(tip2 - entry)), abs=1.5 * _mm_per_px(view))
        assert _near(_pixel(img, view, tip2 - 0.5 * new_dir), ACTIVE_RGB)
        assert _near(_pixel(img, view, entry + 20.0 * new_dir), view.needle.rgb)
    # the bull's-eye ring sits on the new path at its depth
    eye = panel.view_eye
    img = eye.capture_rgb()
    ring = eye.frame.point_at_depth(panel.depth_mm) + 2.5 * np.array(
        eye.renderer.GetActiveCamera().GetViewUp())
    rgb = _pixel(img, eye, ring)
    assert _near(rgb, ACTIVE_RGB) or _near(rgb, eye.needle.rgb), rgb

    # undo both moves: the views are back on the original needle
    tools.undo()
    tools.undo()
    qtbot.waitUntil(lambda: np.allclose(panel.view_a.frame.tip_lps_mm, tip0), timeout=5000)
    np.testing.assert_allclose(panel.view_a.normal, normal_a0, atol=1e-12)
    tools.lock_parallel = True


def test_hidden_dock_catches_up_when_shown(probe, qtbot) -> None:
    """Hidden, the dock computes nothing; shown again, it shows the needle as it is now."""
    win, panel, _ = probe
    tools = win.ctx.services.session
    tools.lock_parallel = False
    _show(win, panel, qtbot, 0)
    tip0 = tools.plan.needles[0].tip_lps_mm.copy()
    panel.dock.hide()
    qtbot.waitUntil(lambda: not panel.isVisible(), timeout=2000)
    tip1 = tip0 + 8.0 * tools.plan.needles[0].direction
    assert tools.move_point(0, "tip", tip1)
    qtbot.wait(100)
    assert np.allclose(panel.view_a.frame.tip_lps_mm, tip0)      # not followed while hidden
    panel.dock.show()
    qtbot.waitUntil(lambda: np.allclose(panel.view_a.frame.tip_lps_mm, tip1), timeout=5000)
    panel.render_now()
    img = panel.view_a.capture_rgb()
    from irplan.viewers.probe_view import ACTIVE_RGB

    assert _near(_pixel(img, panel.view_a, tip1 - 0.5 * tools.plan.needles[0].direction),
                 ACTIVE_RGB)
    tools.undo()
    qtbot.waitUntil(lambda: np.allclose(panel.view_a.frame.tip_lps_mm, tip0), timeout=5000)
    tools.lock_parallel = True


def test_follows_selection_and_styles_without_polling(probe, qtbot) -> None:
    """A needle selected in the plan session (no table click) and a structure recoloured
    in the main views show in the probe views within one event-loop turn: the dock
    reacts to ``selection_changed`` / ``style_changed``; no timer polls."""
    from PySide6.QtCore import QTimer

    win, panel, truth = probe
    repeating = [t for t in panel.findChildren(QTimer) if t.isActive() and not t.isSingleShot()]
    assert repeating == []
    session = win.ctx.services.session
    for index in (1, 0):
        session.select(index)
        qtbot.wait(20)                     # one event-loop turn: the deferred refresh
        assert panel.needle_index == index
        n = win.case.plan.needles[index]
        np.testing.assert_allclose(panel.view_a.frame.tip_lps_mm, n.tip_lps_mm)
        np.testing.assert_allclose(panel.view_eye.frame.entry_lps_mm, n.entry_lps_mm)
    # the tumour turns blue in the main views: blue at its centre in the bull's-eye
    centre = np.array(truth.tumor.center_lps_mm)
    panel.set_depth(panel.view_eye.frame.depth_of(centre))
    old = win.views.styles["tumor"].color

    def tumour_rgb() -> np.ndarray:
        panel.render_now()
        return _pixel(panel.view_eye.capture_rgb(), panel.view_eye, centre)

    before = tumour_rgb()
    assert _yellow(before)
    win.views.set_structure_style("tumor", color=(0.1, 0.3, 1.0))
    try:
        # the style sync is one deferred call (no timer); the fill is blended with the
        # CT and the |E| map, so "blue" is: blue now above red, and far above before
        qtbot.waitUntil(lambda: (lambda c: c[2] > c[0] + 25 and c[2] > before[2] + 60)(
            tumour_rgb()), timeout=2000)
    finally:
        win.views.set_structure_style("tumor", color=old)
    qtbot.wait(20)
    assert _yellow(tumour_rgb())


# ----------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("direction", [(0.0, 1.0, 0.0), (0.6, 0.35, 0.72), (-1.0, 0.2, -0.3),
                                       (0.05, 0.02, -1.0)])
def test_needle_frame_is_right_handed_and_faces_superior(direction) -> None:
    from irplan.viewers.probe_view import NeedleFrame

    entry = np.array([-150.0, -40.0, -100.0])
    d = np.asarray(direction) / np.linalg.norm(direction)
    f = NeedleFrame.from_points(entry, entry + 120.0 * d)
    assert f.length_mm == pytest.approx(120.0)
    np.testing.assert_allclose(np.array([f.d, f.a, f.b]) @ np.array([f.d, f.a, f.b]).T,
                               np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.cross(f.d, f.a), f.b, atol=1e-12)
    if abs(d[2]) < np.cos(np.radians(10.0)):
        assert f.a[2] > 0                  # A holds the needle and the superior axis
        assert abs(np.cross(f.d, f.a) @ np.array([0.0, 0.0, 1.0])) < 1e-12
    else:
        assert f.a[1] < 0                  # near cranio-caudal: built on anterior
    assert f.depth_of(f.point_at_depth(37.5)) == pytest.approx(37.5)
    for kind in ("inplane_a", "inplane_b", "bullseye"):
        normal, up, right = f.axes(kind)
        np.testing.assert_allclose(np.cross(normal, up), right, atol=1e-12)  # not mirrored


def test_anterior_needle_gives_the_standard_views() -> None:
    """Entry anterior, tip straight posterior: A = sagittal, B = axial turned 90 deg,
    bull's-eye = coronal, with the MPR views' radiological orientation."""
    from irplan.viewers.mpr_view import ORIENTATIONS
    from irplan.viewers.probe_view import NeedleFrame, direction_label

    f = NeedleFrame.from_points([0.0, -100.0, 0.0], [0.0, 0.0, 0.0])
    n_a, up_a, right_a = f.axes("inplane_a")
    np.testing.assert_allclose(n_a, ORIENTATIONS["sagittal"].normal, atol=1e-12)
    np.testing.assert_allclose(up_a, ORIENTATIONS["sagittal"].view_up, atol=1e-12)
    n_b, _, _ = f.axes("inplane_b")
    np.testing.assert_allclose(n_b, ORIENTATIONS["axial"].normal, atol=1e-12)
    n_e, up_e, _ = f.axes("bullseye")
    np.testing.assert_allclose(n_e, ORIENTATIONS["coronal"].normal, atol=1e-12)
    np.testing.assert_allclose(up_e, ORIENTATIONS["coronal"].view_up, atol=1e-12)
    assert [direction_label(v) for v in (-right_a, right_a, up_a, -up_a)] == \
        ["A", "P", "S", "I"]
    assert direction_label([0.7, 0.0, 0.7]) in ("LS", "SL")
    assert direction_label([-0.2, -0.9, 0.1]) == "A"
