"""Cases in the window as a user opens and closes them (issue 12).

A folder holds the plan's series A and a series B with more slices on another Frame of
Reference, plus a DICOM SEG of the plan's structures (tests/test_case_loader.py writes
it): File ▸ Open plan shows series A and the SEG's tumour (mL); a moved folder is
re-located by UID; a missing series is refused in one line while the window keeps the
case it shows (``irplan PLAN --screenshot`` exits 2). Opening another case replaces
everything of the previous one (needles, plan file, training reference, follow-up, undo
history), after the unsaved-changes prompt (none when headless); File ▸ Close case empties
the views; Quit asks about unsaved changes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

sys.path.insert(0, str(Path(__file__).parent))
from test_case_loader import A_SLICES, write_several_series_case  # noqa: E402

pytestmark = pytest.mark.gui
WINDOW_SIZE = (1200, 800)


@pytest.fixture(scope="module")
def several(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_several_series_case(tmp_path_factory.mktemp("several") / "case")


@pytest.fixture()
def demo_cache(phantom_case: Path) -> Path:
    """The demo's cache folder holding the standard phantom (as ``irplan`` makes it)."""
    from irplan.app.demo import demo_dir

    out = demo_dir()
    if not (out / ".complete").exists():
        shutil.copytree(phantom_case, out, dirs_exist_ok=True)
        (out / ".complete").write_text("ok\n")
    return out


def _open(win, qtbot, path: Path | None = None, idle: bool = True) -> None:
    """Open ``path`` (None: the demo) and wait for the case (``idle``: and its jobs)."""
    with qtbot.waitSignal(win.case_loaded, timeout=240000):
        win.open_demo() if path is None else win.open_path(path)
    assert not idle or win.tasks.wait_idle(240)


def _tumour_ml(win) -> float:
    m = win.case.structures["tumor"]
    return float(np.count_nonzero(m.array)) * m.voxel_volume_ml


def _session(win):
    return win.ctx.services.session


class _Answer:
    """Answers the next modal box (QMessageBox/QFileDialog) with ``act(box)``; what it
    showed is kept in ``seen``."""

    def __init__(self, act) -> None:
        self.seen: dict = {}
        self.act = act
        self.timer = QTimer()
        self.timer.setInterval(30)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        box = QApplication.activeModalWidget()
        if box is None:
            return
        self.timer.stop()
        self.seen["title"] = box.windowTitle()
        self.seen["text"] = box.text() if isinstance(box, QMessageBox) else ""
        self.act(box)

    def stop(self) -> None:
        self.timer.stop()


def _button(which: QMessageBox.StandardButton):
    return lambda box: box.button(which).click()


# ------------------------------------------------------------------ the plan's own series
def test_open_plan_shows_its_own_series_and_seg_structures(main_window, several, qtbot):
    win = main_window
    _open(win, qtbot, several["plan"])
    a = several["a"]
    ct = win.case.ct
    assert ct.metadata["series_uid"] == a.series_uid != several["b"].series_uid
    assert ct.size_xyz == (40, 40, A_SLICES)                 # B has 48 slices
    np.testing.assert_allclose(ct.origin_lps_mm, a.sorted_positions_lps_mm[0], atol=1e-6)
    assert set(win.case.structures) == {"tumor", "liver"}    # from the DICOM SEG
    assert _tumour_ml(win) == pytest.approx(several["tumour_ml"], rel=1e-9)
    assert 2.8 < _tumour_ml(win) < 3.3                        # 4/3 pi (9 mm)^3 = 3.05 mL
    assert not any("most slices" in m for m in win.messages)
    assert _session(win).plan_path == several["plan"]
    assert "plan.irplan.json" in win.windowTitle()


def test_moved_folder_is_relocated_by_uid(main_window, several, qtbot, tmp_path):
    win = main_window
    case = shutil.copytree(several["plan"].parent, tmp_path / "moved")
    (case / "2026").mkdir()
    shutil.move(str(case / "study" / "A"), str(case / "2026" / "A"))   # "study": only B
    _open(win, qtbot, case / "plan.irplan.json")
    assert win.case.ct.metadata["series_uid"] == several["a"].series_uid
    assert any("re-located" in m and "2026" in m for m in win.messages)
    assert _tumour_ml(win) == pytest.approx(several["tumour_ml"], rel=1e-9)


def test_missing_series_is_refused_and_the_case_stays(main_window, several, qtbot, tmp_path):
    win = main_window
    shown = win.case.ct
    case = shutil.copytree(several["plan"].parent, tmp_path / "gone")
    shutil.rmtree(case / "study" / "A")
    with qtbot.waitSignal(win.load_failed, timeout=120000) as sig:
        win.open_path(case / "plan.irplan.json")
    msg = sig.args[0]
    assert several["a"].series_uid in msg and "\n" not in msg
    assert several["a"].series_uid in win.statusBar().currentMessage()
    assert win.isVisible() and win.case.ct is shown           # nothing replaced it


def test_screenshot_of_a_plan_with_a_missing_series_exits_2(several, tmp_path):
    case = shutil.copytree(several["plan"].parent, tmp_path / "gone")
    shutil.rmtree(case / "study" / "A")
    r = subprocess.run([sys.executable, "-m", "irplan.app.cli", str(case / "plan.irplan.json"),
                        "--screenshot", str(tmp_path / "x.png")],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and several["a"].series_uid in lines[0], r.stderr
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------ lifecycle
def test_demo_then_another_ct_keeps_nothing_of_the_demo(main_window, demo_cache, several,
                                                         qtbot):
    from irplan.planning.commands import move_needle

    win = main_window
    _open(win, qtbot, idle=False)      # its zones need not finish: they go with it
    session = _session(win)
    demo_plan = demo_cache / "plan.irplan.json"
    assert len(win.case.plan.needles) == 4 and session.plan_path == demo_plan
    # what belongs to the demo: a follow-up, a training reference, an edit to undo
    # the Evaluate step's logic (its panel while it is being moved onto AppContext)
    evaluation = win.ctx.services.evaluation or win.workflow.panel("evaluate")
    evaluation.load_followup(demo_cache / "followup")
    qtbot.waitUntil(lambda: evaluation.followup is not None, timeout=120000)
    training = win.ctx.services.training
    assert training.load_reference(demo_plan) is not None and training.reference is not None
    tip = win.case.plan.needles[0].tip_lps_mm + [2.0, 0.0, 0.0]
    assert session.push(move_needle(win.case.plan, 0, tip_lps_mm=tip))
    assert session.stack.can_undo
    # a measurement's figure in the status bar and the Evaluate step's last status line
    # (stranger trial: both stayed on screen with the next patient's CT)
    measure, ax = win.measure_panel, win.views.axial
    c = np.asarray(win.views.crosshair_lps_mm, float)
    measure.set_mode("distance")
    measure.tool.press(ax, c)
    measure.tool.move(ax, c + [30.0, 0.0, 0.0])
    measure.tool.release(ax, c + [30.0, 0.0, 0.0])
    measure.set_mode(None)
    assert win.statusBar().currentMessage() == "Distance (axial): 30.0 mm"
    evaluate_panel = win.workflow.panel("evaluate")
    assert "follow-up loaded" in evaluate_panel.lbl_status.text()
    # the mouse over the demo's CT: its position and HU in the status bar
    qtbot.mouseMove(ax, pos=ax.rect().center())
    qtbot.mouseMove(ax, pos=ax.rect().center() + QPoint(3, 2))
    sw = win.status_widgets
    assert sw.hu_label.text().endswith(" HU") and sw.cursor_label.text().startswith("Cursor")

    study = several["plan"].parent / "study"
    _open(win, qtbot, study)                                   # headless: no prompt
    assert win.case.ct.metadata["series_uid"] == several["b"].series_uid
    assert win.case.plan.needles == [] and win.case.structures == {}
    assert win.workflow.panel("plan").table.rowCount() == 0
    assert session.plan_path is None and not session.stack.can_undo
    assert training.reference is None
    assert evaluation.followup is None
    assert "30.0 mm" not in win.statusBar().currentMessage()
    assert measure.tool.measurements == [] and evaluate_panel.lbl_status.text() == ""
    assert sw.hu_label.text() == "" and not sw.cursor_label.text().startswith("Cursor")
    assert win.ctx.case_folder() == study
    # nothing of the demo's needles on screen either (stranger trial): no coordinates in
    # the Tip/Entry fields, and an empty plan is not a red error
    panel = win.workflow.panel("plan")
    assert all(sp.text() == "—" and not sp.isEnabled() for sp in panel.coord_spins.values())
    assert win.tasks.wait_idle(120)
    assert [f for f in session.findings if f.severity == "error"] == []
    # the Evaluate step judges against the plan's margin, not a default 5 mm
    from irplan.planning.commands import SetAttrs

    assert session.push(SetAttrs("plan", margin_mm=7.0))
    assert win.workflow.panel("evaluate").spin_margin.value() == 7.0
    session.undo()
    assert win.workflow.panel("evaluate").spin_margin.value() == 5.0
    # Save plan… offers the new case's folder, not the demo's plan file
    answer = _Answer(lambda box: (answer.seen.update(
        directory=Path(box.directory().absolutePath()), files=box.selectedFiles()),
        box.reject()))
    try:
        win.workflow.panel("plan").save_btn.click()
    finally:
        answer.stop()
    assert answer.seen["directory"] == study
    assert all(str(demo_cache) not in f for f in answer.seen["files"])


def _edited(win, qtbot, plan: Path) -> None:
    """``plan`` open with one needle added: an unsaved change."""
    _open(win, qtbot, plan)
    lo, hi = win.case.ct.bounds_lps()
    c = (lo + hi) / 2
    assert _session(win).add_needle(c, c + [0.0, -25.0, 0.0])
    assert _session(win).is_modified


def _prompted(win, button: QMessageBox.StandardButton, action) -> tuple[dict, object]:
    """Run ``action()`` with dialogs allowed, the prompt answered with ``button``; what
    the prompt showed and what ``action`` returned."""
    win.headless = False
    answer = _Answer(_button(button))
    try:
        result = action()
    finally:
        answer.stop()
        win.headless = True
    return answer.seen, result


def test_unsaved_changes_prompt_before_another_case(main_window, several, qtbot):
    win = main_window
    study = several["plan"].parent / "study"
    _edited(win, qtbot, several["plan"])
    seen, _ = _prompted(win, QMessageBox.StandardButton.Cancel, lambda: win.open_path(study))
    assert "unsaved" in seen["text"]
    assert not win._loading and len(win.case.plan.needles) == 1     # cancelled: kept
    with qtbot.waitSignal(win.case_loaded, timeout=240000):
        seen, _ = _prompted(win, QMessageBox.StandardButton.Discard,
                            lambda: win.open_path(study))
    assert "unsaved" in seen["text"]
    assert win.case.plan.needles == [] and win.case.ct.metadata["series_uid"] == \
        several["b"].series_uid
    assert win.tasks.wait_idle(240)


def test_no_prompt_when_headless(main_window, several, qtbot):
    win = main_window
    _edited(win, qtbot, several["plan"])
    answer = _Answer(lambda box: box.reject())
    try:
        _open(win, qtbot, several["plan"].parent / "study")
    finally:
        answer.stop()
    assert answer.seen == {} and win.case.plan.needles == []


def test_close_case_empties_the_views(main_window, several, qtbot):
    win = main_window
    _edited(win, qtbot, several["plan"])
    seen, _ = _prompted(win, QMessageBox.StandardButton.Discard,
                        win.ctx.actions["close_case"].trigger)
    assert "unsaved" in seen["text"]
    assert win.case.ct is None and win.views.volume is None
    assert win.case.structures == {} and win.case.plan.needles == []
    assert _session(win).plan_path is None and not _session(win).stack.can_undo
    assert win.windowTitle().startswith("IRPlan — Research")
    # the 3D view keeps no CT slice of the closed case (stranger trial)
    scene = win.views.scene3d
    assert scene._slices == {}
    assert not any(a.GetVisibility() for a in scene._plane_actors.values())


def test_quit_asks_about_unsaved_changes(main_window, several, qtbot):
    win = main_window
    _edited(win, qtbot, several["plan"])
    seen, closed = _prompted(win, QMessageBox.StandardButton.Cancel, win.close)
    assert "unsaved" in seen["text"]
    assert not closed and win.isVisible()


def test_open_dialogs_start_in_the_case_folder(main_window, several, qtbot):
    win = main_window
    _open(win, qtbot, several["plan"])
    answer = _Answer(lambda box: (answer.seen.update(
        directory=Path(box.directory().absolutePath())), box.reject()))
    try:
        win.ctx.actions["open"].trigger()
    finally:
        answer.stop()
    assert isinstance(answer.seen.get("directory"), Path)
    assert answer.seen["directory"] == several["plan"].parent

