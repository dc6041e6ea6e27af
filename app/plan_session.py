"""The plan session: the Logic of the Plan step (3D Slicer's Logic/Widget split).

Holds what editing the open case's plan needs and no widget: the undo stack, the selected
needle, the safety checker and its findings, the thermal-zone job of the heat-sink check,
the placement state (target, then entry), autosave and recovery. Widgets (the needle
panel, the mouse interaction in the views, the recovery prompt) sit on top and only talk
to it through its methods and its psygnal signals (napari's evented models):

- ``selection_changed(index | None)``: the selected needle changed.
- ``findings_changed()``: findings (or the pending placement target) were re-evaluated.
- ``checker_ready()``: a checker for the current structures is built.
- ``stack_changed()``: the undo stack changed or was replaced (new plan).
- ``message(text, timeout_ms)``: a line for the status bar ("" clears it).

It follows the case through ``Case.plan_changed`` / ``plan_replaced`` / ``ct_changed`` /
``structures_changed`` (one subscription each). Positions are LPS mm. Needs a
``TaskRunner`` (QtCore only), so it is testable without a window
(tests/test_plan_session.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal
from PySide6.QtCore import QTimer

from irplan.app.workers import TaskRunner
from irplan.io.recovery import Autosaver, RecoveryEntry
from irplan.planning.case import Case
from irplan.planning.commands import (
    AddNeedle,
    RemoveNeedle,
    UndoStack,
    apply_ire_template,
    move_array_electrode,
    move_needle,
    translate_needles,
)
from irplan.planning.devices import catalogue, default_device
from irplan.planning.errors import CancelledError, IrplanError
from irplan.planning.ire_array import plan_ire_array
from irplan.planning.lesions import SetTargetStructure, plan_for_checks, target_key
from irplan.planning.needle_geometry import thermal_applicator_for_tumour, tumour_centroid_near
from irplan.planning.plan import Needle, Plan
from irplan.planning.safety import Finding, SafetyChecker, structure_role
from irplan.planning.structures import classify_structure_name
from irplan.planning.volume import Volume

DEFAULT_DIRECTION = np.array([0.0, 1.0, 0.0])   # anterior entry, going posterior (LPS)
RANK = {"error": 0, "warning": 1, "info": 2}


class PlanSession:
    """The open case's plan being edited: undo stack, selection, checks, autosave."""

    selection_changed = Signal(object)     # int | None
    findings_changed = Signal()
    checker_ready = Signal()
    stack_changed = Signal()
    message = Signal(str, int)             # status line text ("" clears), timeout ms

    def __init__(self, case: Case, tasks: TaskRunner, autosave_interval_s: float = 30.0,
                 autosave_tick_ms: int = 1000) -> None:
        self.case = case
        self.tasks = tasks
        self.stack = UndoStack(case.plan)
        self.stack.changed.connect(self.stack_changed.emit)
        self.checker: SafetyChecker | None = None
        self._checker_gen = 0
        self.findings: list[Finding] = []
        self._selected: int | None = None
        self.placing: str | None = None            # None | "target" | "entry"
        self.pending_target: np.ndarray | None = None
        # edit options the panel sets (the session never reads a widget)
        self.lock_parallel = True                  # IRE: one electrode moves the array
        self.snap_to_tumour = False                # placed targets jump to the lesion
        self.device_id: str | None = None          # device of new needles (None: default)
        self.plan_path: Path | None = None
        self.zone: Volume | None = None            # predicted thermal zone (heat sink)
        self._zone_gen = 0
        self.autosaver = Autosaver(lambda: self.case.plan, interval_s=autosave_interval_s)
        # debounced work through the task runner: its busy/wait_idle see it pending
        self._recheck_call = tasks.deferred(0, self.recheck)
        self._prepare_call = tasks.deferred(300, self.prepare_checker)
        self._zone_call = tasks.deferred(600, self._predict_zone)
        self._autosave_timer = QTimer()
        self._autosave_timer.setInterval(int(autosave_tick_ms))
        self._autosave_timer.timeout.connect(self.autosave_tick)
        self._autosave_timer.start()
        case.plan_replaced.connect(self._on_plan_replaced)
        case.plan_changed.connect(self._on_plan_changed)
        case.structures_changed.connect(self._on_structures_changed)
        case.ct_changed.connect(self._on_ct_changed)

    # ------------------------------------------------------------------ model
    @property
    def plan(self) -> Plan:
        return self.case.plan

    @property
    def selected(self) -> int | None:
        return self._selected

    def select(self, index: int | None) -> None:
        """Select needle ``index`` (None: none); ``selection_changed`` when it differs."""
        if index is not None and not 0 <= index < len(self.plan.needles):
            index = None
        if index != self._selected:
            self._selected = index
            self.selection_changed.emit(index)

    def sync_with_case(self) -> None:
        """Take over the case as it is (built after a case was loaded)."""
        self._on_ct_changed()
        self._on_plan_replaced()

    def _on_plan_replaced(self) -> None:
        self._invalidate_zone(immediate=True)
        self.stack = UndoStack(self.case.plan)
        self.stack.changed.connect(self.stack_changed.emit)
        # the file the plan was opened from (Case.plan_path), never a neighbour's or the
        # previous case's: a plan opened without one has none until saved
        self.plan_path = self.case.plan_path
        self.autosaver.set_plan_path(self.plan_path)
        self.autosaver.mark_clean()          # the previous plan's edits are not recoverable
        self._selected = -1                  # force the event: another plan
        self.select(0 if self.plan.needles else None)
        self.stack_changed.emit()
        self.request_recheck()

    def _on_ct_changed(self) -> None:
        ct = self.case.ct
        if ct is not None and not self.plan.image.path and self.case.ct_path is not None:
            self.plan.image.path = str(self.case.ct_path)
            self.plan.image.series_uid = str(ct.metadata.get("series_uid", ""))
            self.plan.image.frame_of_reference_uid = str(
                ct.metadata.get("frame_of_reference_uid", ""))
        self._prepare_call.start()

    def _on_structures_changed(self, _key: str) -> None:
        self._prepare_call.start()

    def _on_plan_changed(self, _topic: str) -> None:
        self.autosaver.mark_dirty()
        self._invalidate_zone()
        if self._selected is not None and self._selected >= len(self.plan.needles):
            self.select(len(self.plan.needles) - 1 if self.plan.needles else None)
        self.request_recheck()

    @property
    def is_modified(self) -> bool:
        """The plan has edits not saved to its file."""
        return not self.stack.is_clean

    def edited_structures(self) -> list[str]:
        """Keys of structures made or edited since they were read or saved (saving the
        plan writes them into its own mask folder)."""
        from irplan.io.plan_masks import modified_since_read

        return [k for k, m in self.case.structures.items() if modified_since_read(m)]

    def push(self, cmd: Any) -> bool:
        """Run a command through the undo stack; a refused edit says why (``message``)."""
        try:
            self.stack.push(cmd)
        except IrplanError as exc:
            self.message.emit(f"Plan: {exc}", 8000)
            return False
        return True

    def set_target(self, key: str) -> bool:
        """Treat lesion ``key`` (tumor, tumor_2, ...): a plan edit (one undo step); the
        zone's coverage/margin and the checks follow (issue 17)."""
        if key == target_key(self.plan):
            return True
        return self.push(SetTargetStructure(key))

    def undo(self) -> None:
        self.stack.undo()

    def redo(self) -> None:
        self.stack.redo()

    # ------------------------------------------------------------------ checks
    def prepare_checker(self) -> None:
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

        self.tasks.start("Preparing safety checks", job, done,
                         lambda msg: self.message.emit(msg, 8000))

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
        from irplan.planning.thermal_defaults import resolve_thermal
        from irplan.planning.zone import ZoneOptions, predict_zone

        gen = self._zone_gen
        plan = self.plan.copy()
        plan.thermal = resolve_thermal(plan)[0]     # unset power/time: the table default
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
                self.message.emit(f"Heat-sink check: {msg}", 8000)

        self.tasks.start("Predicting the thermal zone", job, done, failed)

    def recheck(self) -> None:
        """Re-evaluate every finding (milliseconds); ``findings_changed``."""
        checker = self.checker or SafetyChecker({}, None)
        zone = self.zone if not self.plan.is_ire else None
        try:   # tumour checks on the plan's target lesion (issue 17)
            self.findings = checker.check(plan_for_checks(self.plan, self.case.structures),
                                          zone)
        except IrplanError as exc:
            self.findings = [Finding("error", "check_failed", f"checks failed: {exc}")]
        self.findings_changed.emit()

    def needle_severities(self) -> list[str | None]:
        """Worst finding ("error" | "warning" | None) of each needle."""
        worst: list[str | None] = [None] * len(self.plan.needles)
        for f in self.findings:
            if f.severity == "info":
                continue
            for i in f.needles:
                if 0 <= i < len(worst) and (worst[i] is None
                                            or RANK[f.severity] < RANK[worst[i]]):
                    worst[i] = f.severity
        return worst

    def needle_radii_mm(self) -> list[float]:
        cat = catalogue()
        return [cat[n.device].radius_mm if n.device in cat else 0.55 for n in self.plan.needles]

    # ------------------------------------------------------------------ helpers
    def tumour_mask(self) -> Volume | None:
        """The plan's target lesion (issue 17); without one, the first tumour structure
        (a free name such as "livertumor01") when the target is the default "tumor"."""
        target = target_key(self.plan)
        m = self.case.structures.get(target)
        if m is not None and m.array.any():
            return m
        if target != "tumor":
            return None
        for key, m in self.case.structures.items():
            if classify_structure_name(key) == "tumor" and m.array.any():
                return m
        return None

    def current_direction(self) -> np.ndarray:
        """Direction (unit, LPS) of new needles: the selected needle's, else the first's."""
        if self._selected is not None and self._selected < len(self.plan.needles):
            return self.plan.needles[self._selected].direction
        if self.plan.needles:
            return self.plan.needles[0].direction
        return DEFAULT_DIRECTION.copy()

    def current_device(self) -> str:
        """Device id for new needles: ``device_id`` if it fits the modality, else the
        modality's default."""
        dev = catalogue().get(self.device_id or "")
        if dev is not None and dev.modality == self.plan.modality:
            return dev.id
        return default_device(self.plan.modality).id

    # ------------------------------------------------------------------ placement
    def start_placing(self) -> None:
        if self.case.ct is None:
            self.message.emit("Open a CT before placing needles", 5000)
            return
        self.placing = "target"
        self.pending_target = None
        self.message.emit("Place needle: click the TARGET (tip) in a slice view (Esc cancels)",
                          0)

    def cancel_placing(self) -> None:
        self.placing = None
        self.pending_target = None
        self.message.emit("", 0)
        self.request_recheck()

    def place_point(self, p_lps_mm: np.ndarray) -> None:
        """One click of the placement tool (target first, then entry)."""
        if self.placing == "target":
            t = self.tumour_mask()
            if self.snap_to_tumour and t is not None:
                p_lps_mm = tumour_centroid_near(t, p_lps_mm)
            self.pending_target = np.asarray(p_lps_mm, dtype=np.float64)
            self.placing = "entry"
            self.message.emit("Place needle: now click the ENTRY point (skin)", 0)
            self.request_recheck()
        elif self.placing == "entry" and self.pending_target is not None:
            self.add_needle(self.pending_target, np.asarray(p_lps_mm, dtype=np.float64))
            self.placing = None
            self.pending_target = None
            self.message.emit("", 0)

    # ------------------------------------------------------------------ edits
    def add_needle(self, tip: np.ndarray, entry: np.ndarray) -> bool:
        """A needle of the current device from ``tip`` to ``entry`` (LPS mm), selected."""
        dev = catalogue()[self.current_device()]
        n = len(self.plan.needles)
        prefix = "E" if self.plan.is_ire else "A"
        exposure = dev.exposure_default_mm if self.plan.is_ire else None
        try:
            cmd = AddNeedle(Needle(dev.id, tip, entry, exposure, f"{prefix}{n + 1}"))
        except IrplanError as exc:
            self.message.emit(f"Plan: {exc}", 8000)
            return False
        ok = self.push(cmd)
        if ok:
            self.select(len(self.plan.needles) - 1)
        return ok

    def delete_selected(self) -> None:
        if self._selected is not None and self._selected < len(self.plan.needles):
            self.push(RemoveNeedle(self._selected))

    def _moved_together(self, index: int) -> list[int]:
        """Needles a move of ``index`` carries: the whole locked IRE array, else itself."""
        if self.plan.is_ire and self.lock_parallel and len(self.plan.needles) > 1:
            return list(range(len(self.plan.needles)))
        return [index]

    def snap_selected_to_tumour(self) -> None:
        t = self.tumour_mask()
        if t is None or self._selected is None:
            self.message.emit("Snap: needs a tumour and a selected needle", 5000)
            return
        n = self.plan.needles[self._selected]
        c = tumour_centroid_near(t, n.tip_lps_mm)
        self.push(translate_needles(self.plan, self._moved_together(self._selected),
                                    c - n.tip_lps_mm))

    def apply_template(self, template: str, spacing_mm: float | None) -> bool:
        """An IRE electrode template around the tumour (replaces the needles)."""
        t = self.tumour_mask()
        if t is None:
            self.message.emit("IRE template: segment the tumour first", 6000)
            return False
        try:
            needles = plan_ire_array(t, template, self.current_direction(), spacing_mm,
                                     self.plan.margin_mm, self.current_device(),
                                     body=self.case.structures.get("body"))
        except IrplanError as exc:
            self.message.emit(f"IRE template: {exc}", 8000)
            return False
        ok = self.push(apply_ire_template(needles, template))
        if ok:
            self.select(0)
        return ok

    def place_thermal_at_tumour(self) -> bool:
        """One thermal applicator whose zone centre falls on the tumour."""
        t = self.tumour_mask()
        if t is None:
            self.message.emit("Antenna: segment the tumour first", 6000)
            return False
        from irplan.planning.modality_switch import place_applicator_command
        from irplan.planning.thermal_defaults import resolve_thermal

        th = resolve_thermal(self.plan)[0]      # unset power/time: the table default
        try:
            n = thermal_applicator_for_tumour(t, self.current_direction(), self.current_device(),
                                              th.power_w, th.time_s,
                                              body=self.case.structures.get("body"))
        except IrplanError as exc:
            self.message.emit(f"Antenna: {exc}", 8000)
            return False
        # the selected (or only) applicator moves there; a first one is added
        cmd, index = place_applicator_command(self.plan, n, self.selected)
        ok = self.push(cmd)
        if ok:
            self.select(index)
        return ok

    def move_point(self, index: int, which: str, p_lps_mm: np.ndarray,
                   merge_key: str | None = None) -> bool:
        """Move needle ``index``'s ``which`` ("tip" | "entry") to ``p_lps_mm`` (the whole
        array parallel for locked IRE); drags pass one ``merge_key`` (one undo step)."""
        kw = {"tip_lps_mm": p_lps_mm} if which == "tip" else {"entry_lps_mm": p_lps_mm}
        try:
            if self.plan.is_ire and len(self.plan.needles) > 1:
                cmd = move_array_electrode(self.plan, index, locked=self.lock_parallel,
                                           merge_key=merge_key, **kw)
            else:
                cmd = move_needle(self.plan, index, merge_key=merge_key, **kw)
        except IrplanError as exc:
            self.message.emit(f"Plan: {exc}", 5000)
            return False
        return self.push(cmd)

    def translate(self, index: int, step_lps_mm: np.ndarray, merge_key: str | None = None
                  ) -> bool:
        """Translate needle ``index`` (the locked IRE array) by ``step_lps_mm``."""
        try:
            cmd = translate_needles(self.plan, self._moved_together(index), step_lps_mm,
                                    merge_key=merge_key)
        except IrplanError as exc:
            self.message.emit(f"Plan: {exc}", 5000)
            return False
        return self.push(cmd)

    # ------------------------------------------------------------------ files
    def save_plan(self, path: str | Path) -> Path:
        """Write the plan (and masks that have no file yet) to ``path``; the plan is then
        clean and its autosave goes. Raises IrplanError (file/field named)."""
        from irplan.io.plan_file import save_plan
        from irplan.io.plan_masks import attach_masks

        path = Path(path)
        # masks without a file get one in this plan's own <stem>.masks/ folder
        attach_masks(self.plan, self.case.structures, path)
        save_plan(self.plan, path)
        self.plan_path = path
        self.stack.mark_clean()
        self.autosaver.set_plan_path(path)
        self.autosaver.mark_clean()
        self.message.emit(f"Plan saved: {path}", 6000)
        return path

    def autosave_tick(self) -> None:
        """Write the recovery file when an unsaved edit is due (timer, every second)."""
        if self.stack.is_clean:
            return
        try:
            self.autosaver.maybe_save()
        except (IrplanError, OSError) as exc:
            self.message.emit(f"Autosave failed: {exc}", 8000)

    def adopt_recovered(self, plan: Plan, entry: RecoveryEntry) -> None:
        """Make a recovered plan current: modified (not saved to its file yet), its
        recovery file adopted (deleted once saved or closed cleanly)."""
        self.case.set_plan(plan)
        self.plan_path = entry.plan_path
        self.autosaver.set_plan_path(entry.plan_path)
        self.autosaver.adopt(entry.path)
        self.autosaver.mark_dirty()
        self.stack.mark_modified()
        self.message.emit("Recovered plan (not saved yet)", 8000)

    def close(self) -> None:
        """A clean end of the session: no more autosaves, this session's file goes."""
        self._autosave_timer.stop()
        self.autosaver.discard()
