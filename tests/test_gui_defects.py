"""GUI tests of the defects a first-time user hit (issue 12), each as the user saw it:
the volume-rendering action, the mouse wheel over the side panel, disabled buttons, the
one-click report (plan file untouched, evaluation included), masks per plan.

One window for the module (``main_window``), showing the phantom case's plan as opened
with File ▸ Open plan. Order matters: later tests use the follow-up evaluated earlier.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

WINDOW_SIZE = (1400, 900)


# --------------------------------------------------------------------------- helpers
def _session(win):
    """The plan session / needle tools object (undo stack, save_plan...)."""
    for name in ("plan_session", "session", "needle_tools"):
        obj = getattr(win, name, None)
        if obj is not None and hasattr(obj, "stack"):
            return obj
    ctx = getattr(win, "ctx", None)
    return getattr(getattr(ctx, "services", None), "session", None)


def _push(win, cmd) -> None:
    assert _session(win).push(cmd)


def _save(win, path: Path) -> Path:
    s = _session(win)
    fn = getattr(s, "save_plan_as", None) or s.save_plan
    out = fn(path)
    assert out is not None
    return Path(out)


def _vr_action(win):
    a = getattr(win, "act_vr", None)
    return a if a is not None else win.main_actions.actions["volume_rendering"]


def _plan_panel(win):
    return win.workflow.panel("plan")


def _margin_spin(win):
    from PySide6.QtWidgets import QDoubleSpinBox

    boxes = [b for b in _plan_panel(win).findChildren(QDoubleSpinBox)
             if b.maximum() == 30 and b.suffix() == " mm"]
    assert len(boxes) == 1
    return boxes[0]


def _evaluate_panel(win):
    return win.workflow.panel("evaluate")


def _max_luma(widget) -> float:
    """Brightest pixel (0-255 luma) of a plain Qt widget's picture (its text)."""
    img = widget.grab().toImage()
    best = 0.0
    for y in range(0, img.height(), 1):
        for x in range(0, img.width(), 1):
            c = img.pixelColor(x, y)
            best = max(best, 0.299 * c.red() + 0.587 * c.green() + 0.114 * c.blue())
    return best


@pytest.fixture(scope="module")
def plan_window(main_window, phantom_case: Path):
    """The phantom's reference plan opened as a plan file (not as the case folder)."""
    win = main_window
    win.open_path(phantom_case / "plan.irplan.json")
    assert win.tasks.wait_idle(240)
    assert win.wait_for_surfaces(240)
    assert len(win.case.plan.needles) == 4
    return win


# --------------------------------------------------------------------------- tests
def test_volume_rendering_action_toggles_the_3d_volume(plan_window, qtbot) -> None:
    win = plan_window
    check = win.case_panel.vr_check
    assert not check.isChecked()
    act = _vr_action(win)
    act.trigger()                             # toolbar button, V key and View menu
    assert check.isChecked() and act.isChecked()
    actor = win.views.scene3d._volume_actor
    assert actor is not None and actor.GetVisibility()
    act.trigger()
    assert not check.isChecked() and not actor.GetVisibility()


def test_wheel_over_margin_box_scrolls_the_panel_not_the_value(plan_window, qtbot) -> None:
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    win = plan_window
    win.workflow.set_step("plan")
    spin = _margin_spin(win)
    area = win.workflow._pages["plan"]
    qtbot.waitUntil(lambda: spin.isVisible(), timeout=5000)
    assert spin.value() == pytest.approx(5.0)
    bar = area.verticalScrollBar()
    bar.setValue(0)
    win.setFocus()
    assert not spin.hasFocus()
    centre = QPointF(spin.width() / 2, spin.height() / 2)
    for _ in range(14):                      # 14 notches up over the box: was 5 -> 19 mm
        ev = QWheelEvent(centre, QPointF(spin.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                         QPoint(0, 120), Qt.MouseButton.NoButton,
                         Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(spin, ev)
    assert spin.value() == pytest.approx(5.0)
    assert win.case.plan.margin_mm == pytest.approx(5.0)
    # the panel scrolls instead (down notches on the box move the panel down)
    if bar.maximum() > 0:
        for _ in range(3):
            ev = QWheelEvent(centre, QPointF(spin.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                             QPoint(0, -120), Qt.MouseButton.NoButton,
                             Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                             False)
            QApplication.sendEvent(spin, ev)
        assert bar.value() > 0
    assert spin.value() == pytest.approx(5.0)
    # a focused box still takes the wheel (the user clicked into it)
    assert spin.focusPolicy() == Qt.FocusPolicy.StrongFocus
    win.activateWindow()
    spin.setFocus(Qt.FocusReason.MouseFocusReason)
    qtbot.waitUntil(spin.hasFocus, timeout=5000)
    ev = QWheelEvent(centre, QPointF(spin.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                     QPoint(0, 120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                     Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(spin, ev)
    assert spin.value() == pytest.approx(6.0)
    spin.setValue(5.0)
    win.setFocus()


def test_evaluate_buttons_disabled_until_possible_and_say_why(plan_window, qtbot,
                                                              phantom_case: Path) -> None:
    win = plan_window
    win.workflow.set_step("evaluate")
    ep = _evaluate_panel(win)
    qtbot.waitUntil(lambda: ep.btn_register.isVisible(), timeout=5000)
    # opened as a plan (not the case folder): its folder holds the follow-up -> usable
    assert ep.btn_case_fu.isEnabled()
    for b in (ep.btn_register, ep.btn_accept, ep.btn_evaluate):
        assert not b.isEnabled()
        assert "follow-up" in b.toolTip()                  # says why
    # visibly disabled: its text is much darker than an enabled button's
    assert _max_luma(ep.btn_register) < _max_luma(ep.btn_load) - 60
    ep.load_case_followup()
    assert win.tasks.wait_idle(240)
    assert ep.followup is not None and ep.zone_followup is not None
    assert ep.btn_register.isEnabled()
    assert not ep.btn_accept.isEnabled() and "register" in ep.btn_accept.toolTip()
    assert _max_luma(ep.btn_register) > _max_luma(ep.btn_accept) + 60
    ep.cmb_method.setCurrentText("none")       # the phantom's follow-up shares the frame
    assert ep.btn_evaluate.isEnabled()
    ep.evaluate()
    assert win.tasks.wait_idle(240)
    assert ep.result is not None


def test_report_never_writes_the_plan_and_includes_the_evaluation(plan_window, qtbot,
                                                                  phantom_case: Path,
                                                                  tmp_path: Path,
                                                                  monkeypatch) -> None:
    from PySide6.QtWidgets import QFileDialog

    from irplan.planning.commands import translate_needles

    win = plan_window
    report = win.report_action
    plan_file = phantom_case / "plan.irplan.json"
    before = plan_file.read_bytes()
    _push(win, translate_needles(win.case.plan, [0, 1, 2, 3], np.array([0.0, 0.0, 1.0])))
    ev = _evaluate_panel(win).result
    assert ev is not None

    # Ctrl+P: the PDF name is asked first, in the case's folder; cancelling writes nothing
    asked: list[str] = []

    def cancel(_parent, _title, start, _filter):
        asked.append(start)
        return "", ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(cancel))
    assert not report.write_report()
    assert Path(asked[0]).parent == phantom_case
    assert plan_file.read_bytes() == before and report.process is None

    pdf = tmp_path / "report.pdf"
    with qtbot.waitSignal(report.finished, timeout=400_000) as sig:
        assert report.write_report(pdf, extra_args=["--no-pictures"])
    out, err = sig.args
    assert err == "" and Path(out) == pdf and pdf.stat().st_size > 5_000
    assert plan_file.read_bytes() == before              # the case's plan file untouched
    assert not list(phantom_case.glob("*.masks"))          # nor masks written beside it
    assert str(pdf) in win.statusBar().currentMessage()  # says which file it wrote
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                              text=True).stdout
        assert "Minimal ablative margin (MAM)" in text
        assert f"{ev.margin.minimal_margin_mm:.1f} mm" in text
        assert "no follow-up evaluation" not in text


def test_masks_saved_under_names_unique_to_the_plan(plan_window, tmp_path: Path) -> None:
    from irplan.io.plan_file import load_plan, resolve_plan_path
    from irplan.planning.volume import Volume

    win = plan_window
    t = win.case.structures["tumor"]
    # an edited tumour (no file of its own yet), as after segmenting
    edited = Volume(t.array.copy(), t.origin_lps_mm.copy(), t.spacing_mm.copy(),
                    t.direction.copy())
    win.case.set_structure("tumor", edited)
    win.case.plan.structures.pop("tumor", None)
    a = _save(win, tmp_path / "first.irplan.json")
    assert (tmp_path / "first.masks" / "tumor.nii.gz").is_file()
    assert not (tmp_path / "masks").exists()
    win.case.plan.structures.pop("tumor", None)
    b = _save(win, tmp_path / "second.irplan.json")
    assert (tmp_path / "second.masks" / "tumor.nii.gz").is_file()
    pa, pb = load_plan(a), load_plan(b)
    fa = resolve_plan_path(pa, pa.structures["tumor"])
    fb = resolve_plan_path(pb, pb.structures["tumor"])
    assert fa != fb and fa.parent.name == "first.masks" and fb.parent.name == "second.masks"
    # a plan of the former layout (masks/tumor.nii.gz beside it) still opens with its mask
    old = tmp_path / "old"
    (old / "masks").mkdir(parents=True)
    shutil.copy(fa, old / "masks" / "tumor.nii.gz")
    d = json.loads(a.read_text())
    d["structures"] = {"tumor": "masks/tumor.nii.gz"}
    d["image"]["path"] = str(resolve_plan_path(pa, pa.image.path))
    (old / "old.irplan.json").write_text(json.dumps(d))
    win.open_path(old / "old.irplan.json")
    assert win.tasks.wait_idle(240)
    got = win.case.structures["tumor"]
    assert int(np.count_nonzero(got.array)) == int(np.count_nonzero(t.array))
