"""Needle placement in the main window: the "Plan" step panel, mouse tools in the MPR
views, live safety checks, undo/redo and autosave.

- Place: "Place needle" (or key N), click the target, then the entry point, in any MPR
  view (with "snap to tumour" the target jumps to the nearest lesion's centroid).
- Drag: press on a tip or entry disc in an MPR view and drag (in the view's plane); an
  IRE electrode moves with the array kept parallel unless "lock parallel" is off.
- Drag in 3D: press on a tip or entry handle in the 3D view (within HANDLE_PX of its
  projection) and drag: the point moves in the plane through it parallel to the screen,
  keeping the offset between the mouse and the handle (same commands and undo merging as
  in 2D). Shift+drag on a needle's shaft moves the whole needle (the whole array when
  IRE "lock parallel" is on). Any other press rotates/pans the camera as before. The
  cursor is an open hand over a handle (a shaft with Shift), a closed one while dragging.
- Type: edit tip/entry coordinates (LPS mm) or the exposure in the needle table.
- IRE templates (pair ... 2x3) around the tumour; thermal: one antenna whose zone centre
  falls on the tumour. Every edit is a command (Ctrl+Z / Ctrl+Shift+Z).
- Findings of :mod:`irplan.planning.safety` are listed in the panel and colour the paths
  (red error, orange warning, green fine); they are re-evaluated after every edit.
- Autosave: a recovery file at most 30 s after an unsaved edit (:mod:`irplan.io.recovery`);
  at start-up a crashed session's plan is offered.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QCursor, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from irplan.io.recovery import Autosaver
from irplan.planning.commands import (
    AddNeedle,
    RemoveNeedle,
    SetAttrs,
    UndoStack,
    apply_ire_template,
    move_array_electrode,
    move_needle,
    set_needle_fields,
    translate_needles,
)
from irplan.planning.devices import catalogue, default_device
from irplan.planning.errors import IrplanError
from irplan.planning.ire_array import TEMPLATES, electrode_pairs, plan_ire_array
from irplan.planning.needle_geometry import (
    needle_angles,
    thermal_applicator_for_tumour,
    tumour_centroid_near,
)
from irplan.planning.plan import MODALITIES, Needle, Plan
from irplan.planning.safety import Finding, SafetyChecker, structure_role
from irplan.planning.structures import classify_structure_name
from irplan.viewers.needle_actors import SEVERITY_RGB, NeedleActors

HANDLE_PX = 9.0                  # grab radius of a tip/entry disc (logical px)
DEFAULT_DIRECTION = np.array([0.0, 1.0, 0.0])   # anterior entry, going posterior (LPS)
_RANK = {"error": 0, "warning": 1, "info": 2}
_COLS = ("Name", "Depth mm", "CC°", "LR°", "Exposure mm", "Plane")
_AXES = ("L", "P", "S")


@dataclass
class _Drag3D:
    """A handle (or Shift+shaft) drag in the 3D view. Positions LPS mm, mouse Qt px."""

    index: int              # needle grabbed
    which: str              # "tip" | "entry" | "shaft"
    key: str                # undo merge key: one command per drag
    start_lps_mm: np.ndarray    # grabbed point (handle centre; for "shaft" the tip)
    press_lps_mm: np.ndarray    # the mouse at press, on the screen plane through it
    moved_mm: np.ndarray        # shaft drags: translation applied so far


def _segment_distance_px(p: tuple[float, float], a: tuple[float, float],
                         b: tuple[float, float]) -> float:
    """Distance (px) of screen point p from the screen segment a-b (NaN-safe: inf)."""
    pa, ab = np.subtract(p, a), np.subtract(b, a)
    if not (np.all(np.isfinite(pa)) and np.all(np.isfinite(ab))):
        return float("inf")
    den = float(np.dot(ab, ab))
    t = 0.0 if den == 0 else min(1.0, max(0.0, float(np.dot(pa, ab)) / den))
    return float(np.linalg.norm(pa - t * ab))


def _rgb_hex(rgb: tuple[float, float, float]) -> str:
    r, g, b = (int(255 * c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


class NeedleTools(QObject):
    """Owns the plan's undo stack, the checker, the needle overlays and the Plan panel."""

    findings_changed = Signal()
    checker_ready = Signal()

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.case = window.case
        self.views = window.views
        self.stack = UndoStack(self.case.plan)
        self.checker: SafetyChecker | None = None
        self._checker_gen = 0
        self.findings: list[Finding] = []
        self.selected: int | None = None
        self.mode: str | None = None            # None | "target" | "entry"
        self.pending_target: np.ndarray | None = None
        self._drag: tuple[Any, int, str, str] | None = None
        self._drag3d: _Drag3D | None = None
        self._drag_count = 0
        self.plan_path: Path | None = None
        self.actors = NeedleActors(self.views)
        self.autosaver = Autosaver(lambda: self.case.plan)
        self.panel = NeedlePanel(self)
        window.workflow.set_panel("plan", self.panel)
        for v in self.views.mprs():
            v.installEventFilter(self)
        self.views.scene3d.installEventFilter(self)   # handle drags in 3D (else camera)
        window.installEventFilter(self)   # close: ask to save, then drop the recovery file

        # debounced work through the task runner: its busy/wait_idle see it pending
        tasks = window.tasks
        self._recheck_call = tasks.deferred(0, self.recheck, parent=self)
        self._prepare_call = tasks.deferred(300, self._prepare_checker, parent=self)
        self.zone = None                     # predicted thermal zone (heat-sink check)
        self._zone_gen = 0
        self._zone_call = tasks.deferred(600, self._predict_zone, parent=self)
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setInterval(1000)
        self._autosave_timer.timeout.connect(self._autosave_tick)
        self._autosave_timer.start()

        self.act_undo = QAction("Undo plan edit", window)
        self.act_undo.setShortcuts([QKeySequence(QKeySequence.StandardKey.Undo)])
        self.act_undo.triggered.connect(self.undo)
        self.act_redo = QAction("Redo plan edit", window)
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.act_redo.triggered.connect(self.redo)
        self.act_place = QAction("Place needle", window)
        self.act_place.setShortcut(QKeySequence("N"))
        self.act_place.triggered.connect(self.start_placing)
        for a in (self.act_undo, self.act_redo, self.act_place):
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            window.addAction(a)

        self.case.plan_replaced.connect(self._on_plan_replaced)
        self.case.structures_changed.connect(lambda _key: self._prepare_call.start())
        self.case.ct_changed.connect(self._on_ct_changed)
        self.stack.changed.connect(self.panel.update_undo)
        self._connect_plan(self.case.plan)
        QTimer.singleShot(0, self._offer_recovery)

    # ------------------------------------------------------------------ model
    @property
    def plan(self) -> Plan:
        return self.case.plan

    def _connect_plan(self, plan: Plan) -> None:
        plan.changed.connect(self._on_plan_changed)

    def _on_plan_replaced(self) -> None:
        self._drag = self._drag3d = None     # a drag does not continue into another plan
        self._invalidate_zone(immediate=True)
        self.stack = UndoStack(self.case.plan)
        self.stack.changed.connect(self.panel.update_undo)
        self._connect_plan(self.case.plan)
        self.selected = 0 if self.plan.needles else None
        self.plan_path = None
        if self.plan.file_dir:
            cands = sorted(Path(self.plan.file_dir).glob("*.irplan.json"))
            self.plan_path = cands[0] if len(cands) == 1 else None
        self.autosaver.set_plan_path(self.plan_path)
        self.panel.refresh_all()
        if self.plan.needles:
            self.window.workflow.set_step("plan")
        self.request_recheck()

    def _on_ct_changed(self) -> None:
        ct = self.case.ct
        if ct is not None and not self.plan.image.path and self.case.ct_path is not None:
            self.plan.image.path = str(self.case.ct_path)
            self.plan.image.series_uid = str(ct.metadata.get("series_uid", ""))
            self.plan.image.frame_of_reference_uid = str(
                ct.metadata.get("frame_of_reference_uid", ""))
        self._prepare_call.start()

    def _on_plan_changed(self, topic: str) -> None:
        self.autosaver.mark_dirty()
        self._invalidate_zone()
        if self.selected is not None and self.selected >= len(self.plan.needles):
            self.selected = len(self.plan.needles) - 1 if self.plan.needles else None
        self.request_recheck()

    def push(self, cmd: Any) -> bool:
        """Run a command through the undo stack; a refused edit shows its reason."""
        try:
            self.stack.push(cmd)
        except IrplanError as exc:
            self.window.statusBar().showMessage(f"Plan: {exc}", 8000)
            return False
        return True

    def undo(self) -> None:
        self.stack.undo()

    def redo(self) -> None:
        self.stack.redo()

    # ------------------------------------------------------------------ checks
    def _prepare_checker(self) -> None:
        """Build the checker (distance maps) for the current structures off the GUI thread."""
        self._checker_gen += 1
        gen = self._checker_gen
        structures = dict(self.case.structures)
        ct = self.case.ct

        def job(progress, cancel):
            checker = SafetyChecker(structures, ct)
            keys = list(structures)
            for n, key in enumerate(keys):
                if cancel():
                    from irplan.planning.errors import CancelledError

                    raise CancelledError("safety check preparation cancelled")
                progress(n / max(len(keys), 1), f"distance map {key}")
                checker.field(key)
                if structure_role(key) == "vessel":
                    checker.class_fields(key)
            checker.tumour_points()
            checker.advice()
            return checker

        def done(checker: SafetyChecker) -> None:
            if gen == self._checker_gen:
                self.checker = checker
                self.request_recheck()
                self._invalidate_zone(immediate=True)
                self.checker_ready.emit()

        self.window.tasks.start("Preparing safety checks", job, done,
                                lambda msg: self.window.statusBar().showMessage(msg, 8000))

    def request_recheck(self) -> None:
        self._recheck_call.start()

    def _invalidate_zone(self, immediate: bool = False) -> None:
        """The plan changed: the thermal zone is stale until predicted again (debounced
        during edits, at once when a plan or the anatomy was loaded)."""
        self._zone_gen += 1
        self.zone = None
        if not self.plan.is_ire and self.plan.needles and self.case.ct is not None:
            self._zone_call.start(0 if immediate else 600)

    def _predict_zone(self) -> None:
        """Thermal plans: predict the zone off the GUI thread for the heat-sink check."""
        try:
            from irplan.planning.zone import ZoneOptions, predict_zone
        except ImportError:
            return
        gen = self._zone_gen
        plan = self.plan.copy()
        structures = dict(self.case.structures)
        ct = self.case.ct

        def job(progress, cancel):
            return predict_zone(plan, ct, structures, grid_mm=1.5,
                                options=ZoneOptions(compute_margin=False)).zone

        def done(zone) -> None:
            if gen == self._zone_gen:
                self.zone = zone
                self.request_recheck()

        def failed(msg: str) -> None:
            if gen == self._zone_gen:
                self.window.statusBar().showMessage(f"Heat-sink check: {msg}", 8000)

        self.window.tasks.start("Predicting the thermal zone", job, done, failed)

    def recheck(self) -> None:
        """Re-evaluate every finding (milliseconds) and redraw paths and the panel."""
        checker = self.checker or SafetyChecker({}, None)
        zone = self.zone if not self.plan.is_ire else None
        try:
            self.findings = checker.check(self.plan, zone)
        except IrplanError as exc:
            self.findings = [Finding("error", "check_failed", f"checks failed: {exc}")]
        self.actors.update(self.plan, self.needle_severities(), self.selected,
                           self._radii(), self.pending_target)
        self.panel.refresh_all()
        self.findings_changed.emit()

    def needle_severities(self) -> list[str | None]:
        worst: list[str | None] = [None] * len(self.plan.needles)
        for f in self.findings:
            if f.severity == "info":
                continue
            for i in f.needles:
                if 0 <= i < len(worst) and (worst[i] is None
                                            or _RANK[f.severity] < _RANK[worst[i]]):
                    worst[i] = f.severity
        return worst

    def _radii(self) -> list[float]:
        cat = catalogue()
        return [cat[n.device].radius_mm if n.device in cat else 0.55 for n in self.plan.needles]

    # ------------------------------------------------------------------ helpers
    def tumour_mask(self):
        for key, m in self.case.structures.items():
            if classify_structure_name(key) == "tumor" and m.array.any():
                return m
        return None

    def current_direction(self) -> np.ndarray:
        if self.selected is not None and self.selected < len(self.plan.needles):
            return self.plan.needles[self.selected].direction
        if self.plan.needles:
            return self.plan.needles[0].direction
        return DEFAULT_DIRECTION.copy()

    def current_device(self) -> str:
        dev = self.panel.device_combo.currentData()
        if dev and catalogue().get(dev) and catalogue()[dev].modality == self.plan.modality:
            return dev
        return default_device(self.plan.modality).id

    def select(self, index: int | None) -> None:
        self.selected = index
        self.actors.update(self.plan, self.needle_severities(), self.selected,
                           self._radii(), self.pending_target)
        self.panel.select_row(index)

    # ------------------------------------------------------------------ actions
    def start_placing(self) -> None:
        if self.case.ct is None:
            self.window.statusBar().showMessage("Open a CT before placing needles", 5000)
            return
        self.mode = "target"
        self.pending_target = None
        self.window.statusBar().showMessage(
            "Place needle: click the TARGET (tip) in a slice view (Esc cancels)", 0)

    def cancel_placing(self) -> None:
        self.mode = None
        self.pending_target = None
        self.window.statusBar().clearMessage()
        self.request_recheck()

    def place_point(self, p_lps_mm: np.ndarray) -> None:
        """One click of the placement tool (target first, then entry)."""
        if self.mode == "target":
            t = self.tumour_mask()
            if self.panel.snap_check.isChecked() and t is not None:
                p_lps_mm = tumour_centroid_near(t, p_lps_mm)
            self.pending_target = np.asarray(p_lps_mm, dtype=np.float64)
            self.mode = "entry"
            self.window.statusBar().showMessage(
                "Place needle: now click the ENTRY point (skin)", 0)
            self.request_recheck()
        elif self.mode == "entry" and self.pending_target is not None:
            self.add_needle(self.pending_target, np.asarray(p_lps_mm, dtype=np.float64))
            self.mode = None
            self.pending_target = None
            self.window.statusBar().clearMessage()

    def add_needle(self, tip: np.ndarray, entry: np.ndarray) -> bool:
        dev = catalogue()[self.current_device()]
        n = len(self.plan.needles)
        prefix = "E" if self.plan.is_ire else "A"
        exposure = dev.exposure_default_mm if self.plan.is_ire else None
        needle = Needle(dev.id, tip, entry, exposure, f"{prefix}{n + 1}")
        try:
            cmd = AddNeedle(needle)
        except IrplanError as exc:
            self.window.statusBar().showMessage(f"Plan: {exc}", 8000)
            return False
        ok = self.push(cmd)
        if ok:
            self.select(len(self.plan.needles) - 1)
        return ok

    def delete_selected(self) -> None:
        if self.selected is not None and self.selected < len(self.plan.needles):
            self.push(RemoveNeedle(self.selected))

    def snap_selected_to_tumour(self) -> None:
        t = self.tumour_mask()
        if t is None or self.selected is None:
            self.window.statusBar().showMessage("Snap: needs a tumour and a selected needle",
                                                5000)
            return
        n = self.plan.needles[self.selected]
        c = tumour_centroid_near(t, n.tip_lps_mm)
        if self.plan.is_ire and self.panel.lock_check.isChecked() and len(self.plan.needles) > 1:
            idx = list(range(len(self.plan.needles)))
            self.push(translate_needles(self.plan, idx, c - n.tip_lps_mm))
        else:
            self.push(translate_needles(self.plan, [self.selected], c - n.tip_lps_mm))

    def apply_template(self, template: str, spacing_mm: float | None) -> bool:
        t = self.tumour_mask()
        if t is None:
            self.window.statusBar().showMessage("IRE template: segment the tumour first", 6000)
            return False
        try:
            needles = plan_ire_array(t, template, self.current_direction(), spacing_mm,
                                     self.plan.margin_mm, self.current_device(),
                                     body=self.case.structures.get("body"))
        except IrplanError as exc:
            self.window.statusBar().showMessage(f"IRE template: {exc}", 8000)
            return False
        ok = self.push(apply_ire_template(needles, template))
        if ok:
            self.select(0)
        return ok

    def place_thermal_at_tumour(self) -> bool:
        t = self.tumour_mask()
        if t is None:
            self.window.statusBar().showMessage("Antenna: segment the tumour first", 6000)
            return False
        try:
            n = thermal_applicator_for_tumour(t, self.current_direction(), self.current_device(),
                                              self.plan.thermal.power_w,
                                              self.plan.thermal.time_s,
                                              body=self.case.structures.get("body"))
        except IrplanError as exc:
            self.window.statusBar().showMessage(f"Antenna: {exc}", 8000)
            return False
        n.name = f"A{len(self.plan.needles) + 1}"
        ok = self.push(AddNeedle(n))
        if ok:
            self.select(len(self.plan.needles) - 1)
        return ok

    def save_plan_as(self, path: str | Path | None = None) -> Path | None:
        from irplan.io.plan_file import save_plan

        if path is None:
            start = str(self.plan_path or Path.home() / "plan.irplan.json")
            f, _ = QFileDialog.getSaveFileName(self.panel, "Save plan", start,
                                               "IRPlan plans (*.irplan.json)")
            if not f:
                return None
            path = f if f.endswith(".irplan.json") else f + ".irplan.json"
        path = Path(path)
        try:
            # masks without a file get one in this plan's own <stem>.masks/ folder
            from irplan.io.plan_masks import attach_masks

            attach_masks(self.plan, self.case.structures, path)
            save_plan(self.plan, path)
        except IrplanError as exc:
            QMessageBox.warning(self.panel, "Save plan", str(exc))
            return None
        self.plan_path = path
        self.stack.mark_clean()
        self.autosaver.set_plan_path(path)
        self.autosaver.mark_clean()
        self.window.statusBar().showMessage(f"Plan saved: {path}", 6000)
        return path

    # ------------------------------------------------------------------ autosave
    def _autosave_tick(self) -> None:
        if self.stack.is_clean:
            return
        try:
            self.autosaver.maybe_save()
        except (IrplanError, OSError) as exc:
            self.window.statusBar().showMessage(f"Autosave failed: {exc}", 8000)

    def _offer_recovery(self) -> None:
        if getattr(self.window, "headless", False):
            return
        from irplan.io.recovery import discard, find_recoverable, recover

        found = find_recoverable()
        if not found:
            return
        e = found[0]
        box = QMessageBox(self.window)
        box.setWindowTitle("Recover plan")
        box.setText("IRPlan did not close normally. Recover the autosaved plan?\n\n"
                    + e.describe())
        box.setStandardButtons(QMessageBox.StandardButton.Yes
                               | QMessageBox.StandardButton.Discard
                               | QMessageBox.StandardButton.Cancel)
        ans = box.exec()
        if ans == QMessageBox.StandardButton.Yes:
            try:
                plan = recover(e)
            except IrplanError as exc:
                QMessageBox.warning(self.window, "Recover plan", str(exc))
                return
            self._pending_recovery = (plan, e)
            if e.plan_path is not None and e.plan_path.exists():
                self.window.case_loaded.connect(self._apply_recovery)
                self.window.open_path(e.plan_path)
            else:
                self._apply_recovery()
        elif ans == QMessageBox.StandardButton.Discard:
            discard(e)

    def _apply_recovery(self) -> None:
        try:
            self.window.case_loaded.disconnect(self._apply_recovery)
        except (RuntimeError, TypeError):
            pass
        plan, entry = getattr(self, "_pending_recovery", (None, None))
        if plan is None:
            return
        self._pending_recovery = (None, None)
        self.case.set_plan(plan)
        self.plan_path = entry.plan_path
        self.autosaver.set_plan_path(entry.plan_path)
        self.autosaver.adopt(entry.path)     # saved or closed cleanly: this file goes
        self.autosaver.mark_dirty()
        self.stack.mark_clean()
        self.stack._clean_index = None  # recovered = not saved to its file yet
        self.window.statusBar().showMessage("Recovered plan (not saved yet)", 8000)

    # ------------------------------------------------------------------ mouse
    def _handle_at(self, view, x: float, y: float) -> tuple[int, str] | None:
        best = None
        for i, n in enumerate(self.plan.needles):
            for which, p in (("tip", n.tip_lps_mm), ("entry", n.entry_lps_mm)):
                qx, qy = view.lps_to_qt(p)
                d = float(np.hypot(qx - x, qy - y))
                if d <= HANDLE_PX and (best is None or d < best[0]):
                    best = (d, i, which)
        return None if best is None else (best[1], best[2])

    def _shaft_at(self, view, x: float, y: float) -> int | None:
        """Needle whose projected shaft (entry -> tip) passes within HANDLE_PX of (x, y)."""
        best = None
        for i, n in enumerate(self.plan.needles):
            d = _segment_distance_px((x, y), view.lps_to_qt(n.entry_lps_mm),
                                     view.lps_to_qt(n.tip_lps_mm))
            if d <= HANDLE_PX and (best is None or d < best[0]):
                best = (d, i)
        return None if best is None else best[1]

    def _point_in_plane_of(self, view, x: float, y: float, keep: np.ndarray | None) -> np.ndarray:
        p = view.display_to_lps(*view.qt_to_display(x, y))
        if keep is not None:  # stay at the handle's depth along the view normal
            n = view.normal
            p = p + n * float(np.dot(keep - p, n))
        return p

    def _on_window_close(self, ev) -> bool:
        """True (event ignored) when the user cancels closing with unsaved plan edits."""
        if not self.stack.is_clean and self.plan.needles and \
                not getattr(self.window, "headless", False):
            ans = QMessageBox.question(
                self.window, "Unsaved plan", "The plan has unsaved changes. Save them?",
                QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                | QMessageBox.StandardButton.Cancel)
            if ans == QMessageBox.StandardButton.Cancel:
                ev.ignore()
                return True
            if ans == QMessageBox.StandardButton.Save and self.save_plan_as(self.plan_path) \
                    is None:
                ev.ignore()
                return True
        self._autosave_timer.stop()
        self.autosaver.discard()
        return False

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt naming
        t = ev.type()
        if obj is self.window:
            return self._on_window_close(ev) if t == QEvent.Type.Close else False
        if obj is self.views.scene3d:
            return self._scene3d_event(obj, ev)
        if t == QEvent.Type.KeyPress and ev.key() == Qt.Key.Key_Escape and self.mode:
            self.cancel_placing()
            return True
        if t not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove,
                     QEvent.Type.MouseButtonRelease):
            return False
        view = obj
        if getattr(view, "volume", None) is None:
            return False
        pos = ev.position()
        x, y = pos.x(), pos.y()
        if t == QEvent.Type.MouseButtonPress:
            if ev.button() != Qt.MouseButton.LeftButton or ev.modifiers() & (
                    Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier
                    | Qt.KeyboardModifier.AltModifier):
                return False
            if self.mode in ("target", "entry"):
                self.place_point(self._point_in_plane_of(view, x, y, None))
                return True
            hit = self._handle_at(view, x, y)
            if hit is None:
                return False
            i, which = hit
            self._drag_count += 1
            self._drag = (view, i, which, f"drag-{self._drag_count}")
            self.select(i)
            return True
        if t == QEvent.Type.MouseMove and self._drag is not None:
            view0, i, which, key = self._drag
            if view0 is not view or i >= len(self.plan.needles):
                return True
            n = self.plan.needles[i]
            keep = n.tip_lps_mm if which == "tip" else n.entry_lps_mm
            p = self._point_in_plane_of(view, x, y, keep)
            self.move_point(i, which, p, key)
            return True
        if t == QEvent.Type.MouseButtonRelease and self._drag is not None:
            self._drag = None
            return True
        return False

    def _scene3d_event(self, view, ev) -> bool:
        """Mouse in the 3D view: press on a handle (Shift: on a shaft) starts a drag in the
        screen-parallel plane through the grabbed point; True = consumed (the camera
        style does not see it). Anything else goes on to the trackball camera."""
        t = ev.type()
        if t not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove,
                     QEvent.Type.MouseButtonRelease, QEvent.Type.MouseButtonDblClick,
                     QEvent.Type.Leave):
            return False
        if t == QEvent.Type.MouseButtonDblClick:   # on a handle: no maximise toggle
            pos = ev.position()
            return self._drag3d is not None or self._handle_at(view, pos.x(), pos.y()) \
                is not None
        if t == QEvent.Type.Leave:
            if self._drag3d is None:
                view.unsetCursor()
            return False
        pos = ev.position()
        x, y = pos.x(), pos.y()
        drag = self._drag3d
        if t == QEvent.Type.MouseButtonPress:
            if ev.button() != Qt.MouseButton.LeftButton or drag is not None:
                return drag is not None
            mods = ev.modifiers()
            shift = mods == Qt.KeyboardModifier.ShiftModifier
            if mods != Qt.KeyboardModifier.NoModifier and not shift:
                return False
            hit = self._handle_at(view, x, y)
            if hit is None or shift:
                i = self._shaft_at(view, x, y) if shift else None
                if i is None:
                    return False          # camera: rotate (Shift: pan)
                hit = (i, "shaft")
            i, which = hit
            n = self.plan.needles[i]
            start = n.entry_lps_mm if which == "entry" else n.tip_lps_mm
            self._drag_count += 1
            self._drag3d = _Drag3D(i, which, f"drag3d-{self._drag_count}", start.copy(),
                                   view.qt_to_plane_lps(x, y, start), np.zeros(3))
            view.setCursor(QCursor(Qt.CursorShape.ClosedHandCursor))
            self.select(i)
            return True
        if t == QEvent.Type.MouseMove:
            if drag is None:
                if ev.buttons() == Qt.MouseButton.NoButton:
                    over = self._handle_at(view, x, y) is not None or (
                        ev.modifiers() == Qt.KeyboardModifier.ShiftModifier
                        and self._shaft_at(view, x, y) is not None)
                    if over:
                        view.setCursor(QCursor(Qt.CursorShape.OpenHandCursor))
                    else:
                        view.unsetCursor()
                return False
            if drag.index >= len(self.plan.needles):
                return True
            delta = view.qt_to_plane_lps(x, y, drag.start_lps_mm) - drag.press_lps_mm
            if drag.which == "shaft":
                self._translate_grabbed(drag, delta)
            else:
                self.move_point(drag.index, drag.which, drag.start_lps_mm + delta, drag.key)
            return True
        # release
        if drag is None:
            return False
        self._drag3d = None
        view.setCursor(QCursor(Qt.CursorShape.OpenHandCursor))
        return True

    def _translate_grabbed(self, drag: _Drag3D, delta_lps_mm: np.ndarray) -> None:
        """Shift+shaft drag: the needle (the whole array for locked IRE) is translated by
        ``delta_lps_mm`` from where it was at the press (one merged command)."""
        step = delta_lps_mm - drag.moved_mm
        if not np.any(step):
            return
        locked = self.plan.is_ire and self.panel.lock_check.isChecked()
        idx = list(range(len(self.plan.needles))) if locked else [drag.index]
        try:
            cmd = translate_needles(self.plan, idx, step, merge_key=drag.key)
        except IrplanError as exc:
            self.window.statusBar().showMessage(f"Plan: {exc}", 5000)
            return
        if self.push(cmd):
            drag.moved_mm = drag.moved_mm + step

    def move_point(self, index: int, which: str, p_lps_mm: np.ndarray,
                   merge_key: str | None = None) -> bool:
        """Move a needle's tip or entry (the whole array parallel for locked IRE)."""
        kw = {"tip_lps_mm": p_lps_mm} if which == "tip" else {"entry_lps_mm": p_lps_mm}
        try:
            if self.plan.is_ire and len(self.plan.needles) > 1:
                cmd = move_array_electrode(self.plan, index, locked=self.panel.lock_check.isChecked(),
                                           merge_key=merge_key, **kw)
            else:
                cmd = move_needle(self.plan, index, merge_key=merge_key, **kw)
        except IrplanError as exc:
            self.window.statusBar().showMessage(f"Plan: {exc}", 5000)
            return False
        return self.push(cmd)


class NeedlePanel(QWidget):
    """The "Plan" step: modality/device, placement tools, needle table, findings."""

    def __init__(self, tools: NeedleTools) -> None:
        super().__init__()
        self.tools = tools
        self._refreshing = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)

        self.advice_label = QLabel()
        self.advice_label.setWordWrap(True)
        self.advice_label.setObjectName("adviceLabel")
        lay.addWidget(self.advice_label)

        box = QGroupBox("Safety findings")
        v = QVBoxLayout(box)
        self.findings_list = QListWidget()
        self.findings_list.setWordWrap(True)
        self.findings_list.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.findings_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.findings_list.setMinimumHeight(190)
        self.findings_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.findings_list.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.findings_list.itemClicked.connect(self._on_finding_clicked)
        v.addWidget(self.findings_list)
        self.summary_label = QLabel()
        v.addWidget(self.summary_label)
        lay.addWidget(box)

        box = QGroupBox("Modality and device")
        form = QFormLayout(box)
        self.modality_combo = QComboBox()
        self.modality_combo.addItems(list(MODALITIES))
        self.modality_combo.activated.connect(self._on_modality)
        self.device_combo = QComboBox()
        self.device_combo.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.device_combo.activated.connect(self._on_device)
        self.device_note = QLabel()
        self.device_note.setWordWrap(True)
        self.device_note.setStyleSheet("color:#c9a35a")
        self.margin_spin = QDoubleSpinBox()
        self.margin_spin.setRange(0, 30)
        self.margin_spin.setSuffix(" mm")
        self.margin_spin.setDecimals(1)
        self.margin_spin.editingFinished.connect(
            lambda: self.tools.push(SetAttrs("plan", margin_mm=self.margin_spin.value()))
            if self.margin_spin.value() != self.tools.plan.margin_mm else None)
        form.addRow("Modality", self.modality_combo)
        form.addRow("Device", self.device_combo)
        form.addRow(self.device_note)
        form.addRow("Margin", self.margin_spin)
        lay.addWidget(box)

        box = QGroupBox("Needles")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.place_btn = QPushButton("Place")
        self.place_btn.setToolTip("Place a needle: click the target, then the entry point, "
                                  "in a slice view (N; Esc cancels)")
        self.place_btn.clicked.connect(self.tools.start_placing)
        self.delete_btn = QPushButton("Delete")
        self.delete_btn.clicked.connect(self.tools.delete_selected)
        self.undo_btn = QPushButton("Undo")
        self.undo_btn.clicked.connect(self.tools.undo)
        self.redo_btn = QPushButton("Redo")
        self.redo_btn.clicked.connect(self.tools.redo)
        for b in (self.place_btn, self.delete_btn, self.undo_btn, self.redo_btn):
            b.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            row.addWidget(b)
        v.addLayout(row)
        self.snap_check = QCheckBox("Snap target to tumour centre")
        self.snap_btn = QPushButton("Move tip to tumour centre")
        self.snap_btn.setToolTip("Move the selected needle (the array when locked) so its tip "
                                 "is at the centroid of the nearest lesion")
        self.snap_btn.clicked.connect(self.tools.snap_selected_to_tumour)
        v.addWidget(self.snap_check)
        v.addWidget(self.snap_btn)
        self.table = QTableWidget(0, len(_COLS))
        self.table.setHorizontalHeaderLabels(list(_COLS))
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setMinimumHeight(110)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        v.addWidget(self.table)
        grid = QFormLayout()
        self.coord_spins: dict[tuple[str, int], QDoubleSpinBox] = {}
        for which in ("tip", "entry"):
            r = QHBoxLayout()
            for k, ax in enumerate(_AXES):
                sp = QDoubleSpinBox()
                sp.setRange(-5000, 5000)
                sp.setDecimals(1)
                sp.setToolTip(f"{'Tip' if which == 'tip' else 'Entry'} {ax} (LPS mm)")
                sp.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.NoButtons)
                sp.setKeyboardTracking(False)
                sp.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
                sp.valueChanged.connect(lambda _v, w=which: self._on_coord(w))
                self.coord_spins[(which, k)] = sp
                r.addWidget(sp)
            grid.addRow("Tip L P S" if which == "tip" else "Entry L P S", r)
        v.addLayout(grid)
        self.pairs_label = QLabel()
        self.pairs_label.setWordWrap(True)
        v.addWidget(self.pairs_label)
        lay.addWidget(box)

        self.ire_box = QGroupBox("IRE array")
        f = QFormLayout(self.ire_box)
        self.template_combo = QComboBox()
        self.template_combo.addItems(list(TEMPLATES))
        self.template_combo.setCurrentText("square")
        self.spacing_spin = QDoubleSpinBox()
        self.spacing_spin.setRange(0, 25)
        self.spacing_spin.setSuffix(" mm")
        self.spacing_spin.setSpecialValueText("auto (15/20 mm by size)")
        self.spacing_spin.setValue(0)
        self.apply_btn = QPushButton("Apply around tumour")
        self.apply_btn.clicked.connect(
            lambda: self.tools.apply_template(self.template_combo.currentText(),
                                              self.spacing_spin.value() or None))
        self.lock_check = QCheckBox("Lock parallel")
        self.lock_check.setToolTip("Moving one electrode keeps the array parallel")
        self.lock_check.setChecked(True)
        self.voltage_spin = QSpinBox()
        self.voltage_spin.setRange(0, 3000)
        self.voltage_spin.setSingleStep(50)
        self.voltage_spin.setSuffix(" V")
        self.voltage_spin.setSpecialValueText("from spacing")
        self.voltage_spin.editingFinished.connect(self._on_voltage)
        f.addRow("Template", self.template_combo)
        f.addRow("Spacing", self.spacing_spin)
        f.addRow(self.apply_btn)
        f.addRow(self.lock_check)
        f.addRow("Voltage", self.voltage_spin)
        lay.addWidget(self.ire_box)

        self.thermal_box = QGroupBox("Thermal applicator")
        f = QFormLayout(self.thermal_box)
        self.power_spin = QDoubleSpinBox()
        self.power_spin.setRange(0, 250)
        self.power_spin.setSuffix(" W")
        self.power_spin.setSpecialValueText("table default")
        self.time_spin = QDoubleSpinBox()
        self.time_spin.setRange(0, 3600)
        self.time_spin.setSuffix(" s")
        self.time_spin.setSpecialValueText("table default")
        self.power_spin.editingFinished.connect(self._on_thermal)
        self.time_spin.editingFinished.connect(self._on_thermal)
        self.antenna_btn = QPushButton("Place at tumour")
        self.antenna_btn.setToolTip("One applicator along the selected needle's direction "
                                    "(else antero-posterior), its zone centred on the tumour")
        self.antenna_btn.clicked.connect(self.tools.place_thermal_at_tumour)
        f.addRow("Power", self.power_spin)
        f.addRow("Time", self.time_spin)
        f.addRow(self.antenna_btn)
        lay.addWidget(self.thermal_box)

        self.save_btn = QPushButton("Save plan…")
        self.save_btn.clicked.connect(lambda: self.tools.save_plan_as())
        lay.addWidget(self.save_btn)
        lay.addStretch(1)
        self.refresh_all()

    # ------------------------------------------------------------------ refresh
    def refresh_all(self) -> None:
        plan = self.tools.plan
        self._refreshing = True
        try:
            self.modality_combo.setCurrentText(plan.modality)
            self._fill_devices()
            self.margin_spin.setValue(float(plan.margin_mm))
            self.voltage_spin.setValue(int(plan.ire.voltage_v or 0))
            self.power_spin.setValue(float(plan.thermal.power_w or 0))
            self.time_spin.setValue(float(plan.thermal.time_s or 0))
            self.ire_box.setVisible(plan.is_ire)
            self.thermal_box.setVisible(not plan.is_ire)
            self._fill_table()
            self._fill_findings()
            self._fill_advice()
            self.update_undo()
        finally:
            self._refreshing = False

    def update_undo(self) -> None:
        st = self.tools.stack
        self.undo_btn.setEnabled(st.can_undo)
        self.redo_btn.setEnabled(st.can_redo)
        self.undo_btn.setToolTip(f"Undo {st.undo_text}" if st.can_undo else "")
        self.redo_btn.setToolTip(f"Redo {st.redo_text}" if st.can_redo else "")

    def _fill_devices(self) -> None:
        plan = self.tools.plan
        cur = self.device_combo.currentData()
        self.device_combo.clear()
        for d in catalogue().values():
            if d.modality == plan.modality:
                self.device_combo.addItem(d.name, d.id)
        used = plan.needles[0].device if plan.needles else cur
        k = self.device_combo.findData(used)
        self.device_combo.setCurrentIndex(max(k, 0))
        dev = catalogue().get(self.device_combo.currentData() or "")
        self.device_note.setText("Figures partly user-supplied (manufacturer IFU not "
                                 "verified): check them." if dev and dev.unverified else "")

    def _fill_table(self) -> None:
        plan = self.tools.plan
        self.table.setRowCount(len(plan.needles))
        sev = self.tools.needle_severities()
        for r, n in enumerate(plan.needles):
            a = needle_angles(n)
            vals = [n.name or f"#{r + 1}", f"{a.depth_mm:.1f}", f"{a.cc_angle_deg:.1f}",
                    f"{a.lr_angle_deg:.1f}", "" if n.exposure_mm is None else f"{n.exposure_mm:g}",
                    a.plane_kind]
            for c, text in enumerate(vals):
                it = QTableWidgetItem(text)
                if not (c == 4 and plan.is_ire):
                    it.setFlags(it.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(r, c, it)
            rgb = SEVERITY_RGB.get(sev[r] if r < len(sev) else None, SEVERITY_RGB[None])
            self.table.item(r, 0).setForeground(QBrush(QColor(_rgb_hex(rgb))))
            self.table.item(r, 0).setToolTip(f"{n.device}; worst finding: {sev[r] or 'none'}")
        sel = self.tools.selected
        if sel is not None and sel < len(plan.needles):
            self.table.selectRow(sel)
        self._fill_coords()
        if plan.is_ire and len(plan.needles) >= 2:
            pairs = electrode_pairs(plan.needles)
            names = [n.name or f"#{i + 1}" for i, n in enumerate(plan.needles)]
            self.pairs_label.setText("Pairs: " + ", ".join(
                f"{names[p.i]}–{names[p.j]} {p.spacing_mm:.1f} mm" for p in pairs))
        else:
            self.pairs_label.setText("")

    def _fill_coords(self) -> None:
        plan = self.tools.plan
        sel = self.tools.selected
        ok = sel is not None and sel < len(plan.needles)
        for (which, k), sp in self.coord_spins.items():
            sp.blockSignals(True)
            sp.setEnabled(ok)
            if ok:
                n = plan.needles[sel]
                sp.setValue(float((n.tip_lps_mm if which == "tip" else n.entry_lps_mm)[k]))
            sp.blockSignals(False)

    def _fill_findings(self) -> None:
        self.findings_list.clear()
        counts = {"error": 0, "warning": 0, "info": 0}
        for f in self.tools.findings:
            counts[f.severity] += 1
            it = QListWidgetItem(f"{f.severity.upper()}: {f.message}")
            rgb = SEVERITY_RGB[f.severity] if f.severity != "info" else (0.62, 0.78, 0.95)
            it.setForeground(QBrush(QColor(_rgb_hex(rgb))))
            it.setToolTip(f"{f.code}: {f.message}")
            it.setData(Qt.ItemDataRole.UserRole, f.needles)
            self.findings_list.addItem(it)
        self.summary_label.setText(
            f"{counts['error']} error(s), {counts['warning']} warning(s), "
            f"{counts['info']} note(s)" + ("" if self.tools.checker else
                                           " — anatomy checks pending"))

    def _fill_advice(self) -> None:
        checker = self.tools.checker
        a = checker.advice() if checker is not None else None
        if a is None:
            self.advice_label.setText("")
            return
        color = "#ffb347" if a.recommended == "IRE" else "#9fd89f"
        self.advice_label.setText(f"<span style='color:{color}'>{html.escape(a.message)}</span>")

    def select_row(self, index: int | None) -> None:
        self._refreshing = True
        try:
            if index is None:
                self.table.clearSelection()
            else:
                self.table.selectRow(index)
            self._fill_coords()
        finally:
            self._refreshing = False

    # ------------------------------------------------------------------ edits
    def _on_modality(self) -> None:
        m = self.modality_combo.currentText()
        if m != self.tools.plan.modality:
            self.tools.push(SetAttrs("plan", modality=m))

    def _on_device(self) -> None:
        dev = self.device_combo.currentData()
        i = self.tools.selected
        if dev and i is not None and i < len(self.tools.plan.needles) \
                and self.tools.plan.needles[i].device != dev:
            self.tools.push(set_needle_fields(self.tools.plan, i, device=dev))

    def _on_voltage(self) -> None:
        v = self.voltage_spin.value()
        new = float(v) if v else None
        if new != self.tools.plan.ire.voltage_v:
            self.tools.push(SetAttrs("ire", voltage_v=new))

    def _on_thermal(self) -> None:
        p = self.power_spin.value() or None
        t = self.time_spin.value() or None
        th = self.tools.plan.thermal
        if (p, t) != (th.power_w, th.time_s):
            self.tools.push(SetAttrs("thermal", power_w=p, time_s=t))

    def _on_table_selection(self) -> None:
        if self._refreshing:
            return
        rows = {i.row() for i in self.table.selectedIndexes()}
        if len(rows) == 1:
            r = rows.pop()
            if r != self.tools.selected:
                self.tools.select(r)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._refreshing or item.column() != 4:
            return
        r = item.row()
        plan = self.tools.plan
        if r >= len(plan.needles):
            return
        try:
            value = float(item.text().replace(",", "."))
            self.tools.push(set_needle_fields(plan, r, exposure_mm=value))
        except ValueError:
            self.tools.window.statusBar().showMessage(
                f"exposure: '{item.text()}' is not a number (mm)", 6000)
            self.tools.request_recheck()
        except IrplanError as exc:
            self.tools.window.statusBar().showMessage(str(exc), 6000)
            self.tools.request_recheck()

    def _on_coord(self, which: str) -> None:
        """A typed tip/entry coordinate (LPS mm) of the selected needle."""
        sel = self.tools.selected
        if self._refreshing or sel is None or sel >= len(self.tools.plan.needles):
            return
        n = self.tools.plan.needles[sel]
        old = n.tip_lps_mm if which == "tip" else n.entry_lps_mm
        p = old.copy()
        for k in range(3):   # only the typed axis changes; the others keep full precision
            v = self.coord_spins[(which, k)].value()
            if abs(v - round(float(old[k]), 1)) > 1e-9:
                p[k] = v
        if np.array_equal(p, old):
            return
        self.tools.move_point(sel, which, p)

    def _on_finding_clicked(self, item: QListWidgetItem) -> None:
        needles = item.data(Qt.ItemDataRole.UserRole) or []
        if needles:
            i = int(needles[0])
            self.tools.select(i)
            if i < len(self.tools.plan.needles):
                self.tools.views.set_crosshair(self.tools.plan.needles[i].tip_lps_mm)


def install(window: Any) -> NeedleTools:
    """Create the needle tools of a main window (called once by the window)."""
    return NeedleTools(window)
