"""Crash recovery as the user meets it: a process editing the phantom's plan autosaves and
is killed (SIGKILL); the next IRPlan window offers the autosaved plan at start-up in a
modal "Recover plan" box (QMessageBox: Yes / Discard / Cancel), answered here by a timer
that clicks its button. Judged by the needle coordinates (LPS mm) the window ends up with
and by the recovery file on disk (io/recovery.py, tested on its own in test_recovery.py).

Each case needs a window of its own (the offer is made once, when a window starts), not
the shared ``main_window`` fixture, whose windows are headless and never ask.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from irplan.io.plan_file import load_plan
from irplan.io.recovery import find_recoverable, read_recovery_file, recovery_dir

pytestmark = pytest.mark.gui

# edits made by the crashing session (LPS mm): needle 1's tip, needle 2's entry
TIP_SHIFT_MM = np.array([2.5, -1.75, 3.0])
ENTRY_SHIFT_MM = np.array([-6.0, 0.5, 4.25])

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from irplan.io.plan_file import load_plan
    from irplan.io.recovery import Autosaver
    from irplan.planning.commands import UndoStack, move_needle

    path, tip_shift, entry_shift = sys.argv[1], sys.argv[2], sys.argv[3]
    plan = load_plan(path)
    stack = UndoStack(plan)
    saver = Autosaver(lambda: plan, interval_s=0.2, plan_path=path)   # recovery_dir()
    plan.changed.connect(lambda topic: saver.mark_dirty())
    saver.start(tick_s=0.05)
    n0, n1 = plan.needles[0], plan.needles[1]
    stack.push(move_needle(plan, 0, tip_lps_mm=n0.tip_lps_mm
                           + [float(v) for v in tip_shift.split(",")]))
    stack.push(move_needle(plan, 1, entry_lps_mm=n1.entry_lps_mm
                           + [float(v) for v in entry_shift.split(",")]))
    while saver.saves == 0 or saver.dirty:
        time.sleep(0.02)
    print(saver.path, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)     # a crash: no clean close, the file stays
""")


@pytest.fixture()
def recovery_home(tmp_path: Path, monkeypatch) -> Path:
    """A recovery folder of this test's own (windows and the child process use it)."""
    monkeypatch.setenv("IRPLAN_CONFIG_DIR", str(tmp_path / "config"))
    return recovery_dir()


def _crash_after_autosave(plan_file: Path) -> Path:
    """Run a real process that edits the plan, autosaves and is SIGKILLed; the file."""
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(plan_file), ",".join(map(str, TIP_SHIFT_MM)),
         ",".join(map(str, ENTRY_SHIFT_MM))],
        capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert r.returncode == -signal.SIGKILL, r.stderr
    path = Path(r.stdout.strip())
    assert path.is_file()
    return path


def _edited(plan_file: Path):
    """The plan file's plan with the crashed session's edits."""
    plan = load_plan(plan_file)
    plan.needles[0].tip_lps_mm = plan.needles[0].tip_lps_mm + TIP_SHIFT_MM
    plan.needles[1].entry_lps_mm = plan.needles[1].entry_lps_mm + ENTRY_SHIFT_MM
    return plan


def _coords(plan) -> list[list[float]]:
    return [[*n.tip_lps_mm.tolist(), *n.entry_lps_mm.tolist()] for n in plan.needles]


def _start_window(qtbot, button: QMessageBox.StandardButton):
    """A new main window; the recovery box it shows at start is answered with ``button``.
    Returns the window and what the box showed (title, text, buttons)."""
    from irplan.app.gui_main import make_app
    from irplan.app.main_window import MainWindow

    make_app()
    seen: dict = {}

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            timer.stop()
            seen.update(title=box.windowTitle(), text=box.text(),
                        buttons=box.standardButtons())
            box.button(button).click()

    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(answer)
    timer.start()
    win = MainWindow(restore_state=False)
    win.resize(1200, 800)
    win.show()
    try:
        qtbot.waitUntil(lambda: bool(seen), timeout=60000)
    finally:
        timer.stop()
        win.headless = True     # from now on errors go to win.messages, no dialogs
    return win, seen


def _close(win, qtbot) -> None:
    win.tasks.shutdown(120)
    qtbot.wait(100)
    win.close()
    win.deleteLater()
    qtbot.wait(50)


def _open_and_wait(win, qtbot, path: Path) -> None:
    with qtbot.waitSignal(win.case_loaded, timeout=240000):
        win.open_path(path)
    assert win.tasks.wait_idle(240)


def test_accepting_restores_the_autosaved_needles(phantom_case, recovery_home, tmp_path,
                                                   qtbot) -> None:
    plan_file = phantom_case / "plan.irplan.json"
    autosave = _crash_after_autosave(plan_file)
    win, seen = _start_window(qtbot, QMessageBox.StandardButton.Yes)
    try:
        assert seen["title"] == "Recover plan"
        assert "did not close normally" in seen["text"]
        assert str(plan_file.resolve()) in seen["text"]
        assert seen["buttons"] == (QMessageBox.StandardButton.Yes
                                   | QMessageBox.StandardButton.Discard
                                   | QMessageBox.StandardButton.Cancel)
        # accepting opens the plan's case (CT, masks) and then puts the autosaved plan in
        qtbot.waitUntil(lambda: win.case.ct is not None and bool(win.case.plan.needles),
                        timeout=240000)
        assert win.tasks.wait_idle(240)
        plan = win.case.plan
        edited = _edited(plan_file)
        original = load_plan(plan_file)
        assert _coords(plan) == _coords(edited)            # exact mm, as autosaved
        assert _coords(plan) != _coords(original)
        np.testing.assert_array_equal(plan.needles[0].tip_lps_mm
                                      - original.needles[0].tip_lps_mm, TIP_SHIFT_MM)
        assert set(win.case.structures) >= {"tumor", "liver"}
        tools = win.needle_tools
        # recovered = modified, not saved to the plan file yet; the plan file is untouched
        assert not tools.stack.is_clean
        assert tools.plan_path is not None and tools.plan_path.resolve() == plan_file.resolve()
        assert _coords(load_plan(plan_file)) == _coords(original)
        # the autosave stays until the plan is saved (a second crash must not lose it)
        assert autosave.is_file()
        # saving it writes the recovered coordinates and removes the recovery file
        out = tools.save_plan_as(tmp_path / "recovered.irplan.json")
        assert out is not None and _coords(load_plan(out)) == _coords(edited)
        assert not autosave.exists()
        assert find_recoverable() == []
    finally:
        _close(win, qtbot)


def test_cancel_keeps_the_autosave_discard_removes_it(phantom_case, recovery_home,
                                                        qtbot) -> None:
    plan_file = phantom_case / "plan.irplan.json"
    autosave = _crash_after_autosave(plan_file)
    entry, _ = read_recovery_file(autosave)
    assert entry.plan_path == plan_file.resolve() and not entry.writer_alive

    # Cancel: nothing is opened or deleted; the next start offers it again
    win, seen = _start_window(qtbot, QMessageBox.StandardButton.Cancel)
    try:
        assert seen["title"] == "Recover plan"
        qtbot.wait(200)
        assert win.case.ct is None and win.case.plan.needles == []
        assert autosave.is_file()
    finally:
        _close(win, qtbot)
    assert autosave.is_file()
    assert [e.path for e in find_recoverable()] == [autosave]

    # Discard: the recovery file is deleted; opening the case shows the file's plan
    win, seen = _start_window(qtbot, QMessageBox.StandardButton.Discard)
    try:
        assert seen["title"] == "Recover plan"
        assert not autosave.exists()
        assert find_recoverable() == []
        assert win.case.ct is None
        _open_and_wait(win, qtbot, plan_file)
        assert _coords(win.case.plan) == _coords(load_plan(plan_file))
        assert win.needle_tools.stack.is_clean
    finally:
        _close(win, qtbot)
    assert not autosave.exists()


def test_cancel_then_opening_the_same_plan_keeps_the_autosave(phantom_case, recovery_home,
                                                              qtbot) -> None:
    plan_file = phantom_case / "plan.irplan.json"
    autosave = _crash_after_autosave(plan_file)
    win, _seen = _start_window(qtbot, QMessageBox.StandardButton.Cancel)
    try:
        _open_and_wait(win, qtbot, plan_file)
        assert autosave.is_file()
    finally:
        _close(win, qtbot)
    assert autosave.is_file(), "the deferred autosave was deleted by a clean close"
