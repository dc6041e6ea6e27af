"""Training mode in the main window on the phantom: compare the open plan with the case's
reference plan; the table shows the tip error, it follows a needle move, and the
reference needles are drawn as ghosts (pixel colour at the projected reference tip)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

WINDOW_SIZE = (1500, 950)   # main_window fixture (conftest)


def _ghost_like(rgb: np.ndarray, ghost: tuple[float, float, float]) -> bool:
    return bool(np.all(np.abs(rgb - 255.0 * np.asarray(ghost)) <= 30.0))


def test_compare_with_reference_table_live_and_ghost(phantom_window, phantom_case, tmp_path, qtbot,
                                                     screen_pixel) -> None:
    from irplan.app.training_panel import GHOST_RGB, TIP_COLUMN, install_training
    from irplan.io.plan_file import load_plan

    win = phantom_window.win
    ref_path = phantom_case / "plan.irplan.json"
    ref = load_plan(ref_path)
    panel = install_training(win.ctx)
    assert install_training(win.ctx) is panel
    assert panel.action in win.ctx.menu("file").actions()
    assert not panel.dock.isVisible()

    # the trainee's plan: the reference with needle 2's tip 6 mm short along its axis
    trainee = ref.copy()
    n = trainee.needles[1]
    n.tip_lps_mm = n.tip_lps_mm - 6.0 * n.direction
    win.case.set_plan(trainee)
    assert win.tasks.wait_idle(240)

    comp = panel.compare_with(ref_path)
    assert comp is not None and panel.dock.isVisible()
    assert win.tasks.wait_idle(240)
    comp = panel.comparison
    row = panel.row_of_reference(1)
    assert panel.table.item(row, TIP_COLUMN).text() == f"{6.0:.1f}"
    assert panel.table.item(row, TIP_COLUMN + 1).text() == f"{-6.0:+.1f}"
    assert comp.zone_trainee is not None and comp.zone_reference is not None
    assert comp.zone_trainee.coverage_percent < comp.zone_reference.coverage_percent
    assert not comp.passed and "FAIL" in panel.score_label.text()

    # live: move needle 3's tip 3 mm along L (a translation of that electrode)
    tools = win.needle_tools
    moved = win.case.plan.needles[2].tip_lps_mm + np.array([3.0, 0.0, 0.0])
    assert tools.move_point(2, "tip", moved)
    assert win.tasks.wait_idle(240)
    m = panel.comparison.match_for_reference(2)
    assert m.tip_error_mm == pytest.approx(3.0, abs=1e-6)
    assert panel.table.item(panel.row_of_reference(2), TIP_COLUMN).text() == "3.0"

    # ghost: the reference tip of needle 2 (6 mm beyond the trainee's) is drawn in the
    # ghost colour in the axial view, and not once the reference is hidden
    view = win.views.axial
    tip = ref.needles[1].tip_lps_mm
    win.views.set_crosshair(tip + np.array([30.0, 30.0, 0.0]))   # crosshair lines away
    qtbot.wait(50)
    rgb = screen_pixel(win, view, tip)
    assert _ghost_like(rgb, GHOST_RGB), rgb
    panel.hide_check.setChecked(True)
    qtbot.wait(50)
    rgb_hidden = screen_pixel(win, view, tip)
    assert not _ghost_like(rgb_hidden, GHOST_RGB), rgb_hidden
    panel.hide_check.setChecked(False)

    # a reference on another image is refused with one message naming the file
    other = ref.copy()
    other.image.series_uid = "1.2.3.4.5"
    from irplan.io.plan_file import save_plan

    bad = tmp_path / "other-image.irplan.json"
    save_plan(other, bad)
    assert panel.compare_with(bad) is None
    assert str(bad) in win.statusBar().currentMessage()
    assert "another image" in panel.path_label.text()
    assert panel.reference_path == ref_path                 # the old reference stays
