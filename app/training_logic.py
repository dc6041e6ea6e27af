"""Training mode without widgets: compare the open plan (the trainee's) with a reference
plan (:mod:`irplan.planning.plan_compare`), live.

:meth:`TrainingLogic.load_reference` reads a reference ``.irplan.json`` on the same image
(another series or Frame of Reference is refused). Every change of the current plan
(``Case.plan_changed``), another plan, or new structures re-compare after
:data:`DEBOUNCE_MS` (a ``tasks.deferred`` call): geometry and safety findings at once
(milliseconds, with the plan session's prepared safety checker), the zones in a
``tasks`` job (the live preview, 2 mm grid; IRE in the computation process). The
reference's zone and findings are computed once per reference and anatomy.

Another case, or a new CT on which the reference does not lie, drops the reference
(:attr:`TrainingLogic.reference_dropped`). Registered as ``ctx.services.training``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from irplan.planning.case import Case
from irplan.planning.errors import InputError, IrplanError
from irplan.planning.plan import Plan
from irplan.planning.plan_compare import (
    PlanComparison,
    SafetySummary,
    ZoneFigures,
    compare_geometry,
    complete_comparison,
    figures_from_result,
    zone_not_possible,
    zone_settings,
)

DEBOUNCE_MS = 150


def check_same_image(case: Case, ref: Plan, path: Path) -> None:
    """Raise InputError when ``ref`` (read from ``path``) lies on another series or Frame
    of Reference than the open plan/CT of ``case``."""
    plan = case.plan
    md = case.ct.metadata if case.ct is not None else {}
    for attr, what in (("series_uid", "image series"),
                       ("frame_of_reference_uid", "Frame of Reference")):
        mine = getattr(plan.image, attr) or str(md.get(attr, "") or "")
        theirs = getattr(ref.image, attr)
        if mine and theirs and mine != theirs:
            raise InputError(f"{path}: image.{attr}: {what} {theirs} is not the open "
                             f"image's {mine}: the reference plan is on another image")


class TrainingLogic(QObject):
    """The reference plan and the live comparison of ``case.plan`` with it.

    ``checker()``: the prepared safety checker of the open anatomy, or None while it is
    being prepared (the findings are then not compared).
    """

    reference_changed = Signal(object)        # the reference Plan, or None
    reference_dropped = Signal(str)           # a new image closed the reference: why
    comparison_changed = Signal(object, bool)  # PlanComparison, zones still pending

    def __init__(self, case: Case, tasks: Any,
                 checker: Callable[[], Any] = lambda: None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.case, self.tasks, self.checker = case, tasks, checker
        self.reference: Plan | None = None
        self.reference_path: Path | None = None
        self.comparison: PlanComparison | None = None
        self._gen = 0
        self._task: Any = None
        self._ref_zone_key: tuple | None = None
        self._ref_zone: tuple[ZoneFigures | None, list[str]] | None = None
        self._ref_safety_key: tuple[Any, Plan] | None = None
        self._ref_safety: SafetySummary | None = None
        # the zone dock's logic (ZoneLogic), when attached: the trainee's zone figures are
        # the ones that dock shows (one computation, the same figures in both docks)
        self.zone_source: Any = None
        self._trainee_zone: ZoneFigures | None = None
        self._call = tasks.deferred(DEBOUNCE_MS, self.refresh, parent=self)
        case.plan_replaced.connect(self.schedule)
        case.plan_changed.connect(self.schedule)
        case.structures_changed.connect(self._on_structures_changed)
        case.ct_changed.connect(self._on_ct_changed)
        case.case_closed.connect(self._on_case_closed)

    # ------------------------------------------------------------------ reference
    def load_reference(self, path: str | Path) -> PlanComparison | None:
        """Read the reference plan at ``path`` and compare the open plan with it (geometry
        and safety at once, the zones follow in the background). Raises IrplanError
        (file unreadable, another image): the old reference then stays."""
        from irplan.io.plan_file import load_plan

        p = Path(path)
        ref = load_plan(p, check_files=False)
        check_same_image(self.case, ref, p)
        self.reference = ref
        self.reference_path = p
        self._ref_zone_key = None
        self._ref_zone = None
        self.reference_changed.emit(ref)
        self.refresh()
        return self.comparison

    def clear_reference(self) -> None:
        self.cancel()
        self.reference = None
        self.reference_path = None
        self.comparison = None
        self.reference_changed.emit(None)

    def _on_case_closed(self) -> None:
        """Another case: the reference belonged to the previous one."""
        if self.reference_path is not None:
            path = self.reference_path
            self.clear_reference()
            self.reference_dropped.emit(f"Reference {path} closed with its case")

    def _on_ct_changed(self) -> None:
        """Another image: a reference on a different series is dropped."""
        if self.reference is None or self.reference_path is None:
            return
        try:
            check_same_image(self.case, self.reference, self.reference_path)
        except IrplanError as exc:
            path = self.reference_path
            self.clear_reference()
            self.reference_dropped.emit(f"Reference {path} closed: {exc}")

    def _on_structures_changed(self, _key: str) -> None:
        self._ref_zone_key = None
        self._ref_zone = None
        self.schedule()

    # ------------------------------------------------------------------ comparing
    def schedule(self, *_args: Any) -> None:
        """Re-compare after DEBOUNCE_MS (bursts of changes coalesce)."""
        if self.reference is not None:
            self._call.start()

    def cancel(self) -> None:
        self._call.stop()
        if self._task is not None and self._task.state in ("pending", "running"):
            self._task.cancel()
        self._task = None

    def refresh(self) -> None:
        """Compare now: geometry and safety on this thread, zones in a job."""
        self._call.stop()
        ref = self.reference
        if ref is None:
            return
        self.cancel()
        self._gen += 1
        trainee = self.case.plan.copy()
        comp = compare_geometry(trainee, ref)
        checker = self.checker()
        if checker is not None:
            try:
                held = self._ref_safety_key
                if held is None or held[0] is not checker or held[1] is not ref:
                    # the reference's findings: once per checker (anatomy) and reference
                    self._ref_safety = SafetySummary(checker.check(ref))
                    self._ref_safety_key = (checker, ref)
                complete_comparison(comp, safety_trainee=SafetySummary(checker.check(trainee)),
                                    safety_reference=self._ref_safety)
            except IrplanError as exc:
                comp.notes.append(f"safety findings not compared: {exc}")
        else:
            comp.notes.append("safety findings: checks still being prepared")
        self.comparison = comp
        pending = bool(self.case.structures)
        self.comparison_changed.emit(comp, pending)
        if pending:
            self._start_zones(self._gen, trainee, ref)

    def _start_zones(self, gen: int, trainee: Plan, ref: Plan) -> None:
        from irplan.app.zone_logic import case_structures_key, compute_zone
        from irplan.planning.lesions import target_key, target_structures

        target = target_key(trainee)   # both plans scored on the trainee's target lesion
        try:
            structures = target_structures(self.case.structures, target)
        except IrplanError as exc:   # the zones without coverage, and why
            if self.comparison is not None:
                self.comparison.notes.append(f"coverage not compared: {exc}")
            structures = target_structures(
                {k: v for k, v in self.case.structures.items() if not k.startswith("tumor")})
        key = (id(ref), self.case.uid, self.case.structures_generation, target)
        cached = self._ref_zone if self._ref_zone_key == key else None
        structures_key = f"{case_structures_key(self.case)}-{target}"
        opts, grid_mm = zone_settings(exact=False)

        def one(plan: Plan, progress, cancel) -> tuple[ZoneFigures | None, list[str]]:
            note = zone_not_possible(plan)
            if note:
                return None, [note]
            from irplan.planning.thermal_defaults import resolve_thermal

            plan.thermal = resolve_thermal(plan)[0]   # unset: the table default (zone dock)
            return figures_from_result(compute_zone(plan, structures, structures_key,
                                                    grid_mm, opts, progress, cancel))

        shared = self.zone_source is not None
        if shared:      # the reference as the zone dock computes the trainee's (fine)
            opts, grid_mm = zone_settings(exact=True)

        def job(progress, cancel):
            ref_z = cached or one(ref.copy(), lambda f, t: progress(0.5 * f, t), cancel)
            if shared:      # the trainee's zone: the zone dock's result (_on_zone_result)
                return ref_z, (None, [])
            tr_z = one(trainee, lambda f, t: progress(0.5 + 0.5 * f, t), cancel)
            return ref_z, tr_z

        def done(payload) -> None:
            ref_z, tr_z = payload
            self._ref_zone_key, self._ref_zone = key, ref_z
            if gen != self._gen or self.comparison is None:
                return
            comp = self.comparison
            comp.zone_computed = True
            comp.notes += [f"reference: {n}" for n in ref_z[1]]
            comp.notes += [f"trainee: {n}" for n in tr_z[1]]
            tr_fig = self._trainee_zone if shared else tr_z[0]
            complete_comparison(comp, zone_reference=ref_z[0], zone_trainee=tr_fig)
            self.comparison_changed.emit(comp, shared and tr_fig is None
                                         and not zone_not_possible(trainee))

        def failed(msg: str) -> None:
            if gen == self._gen and self.comparison is not None:
                self.comparison.notes.append(f"zones not compared: {msg}")
                self.comparison_changed.emit(self.comparison, False)

        self._task = self.tasks.start("comparing zones with the reference", job, done, failed)

    # ------------------------------------------------------------------ shared zone
    def attach_zone_source(self, zone_logic: Any) -> None:
        """Take the trainee's zone figures from ``zone_logic`` (the zone dock's
        :class:`irplan.app.zone_logic.ZoneLogic`: ``result``, ``result_ready(res, fine)``)
        instead of computing them again with other settings (issue 12: 12.9 % / -11.2 mm
        in the zone dock, 14.9 % / -6.0 mm in the training dock for one plan)."""
        self.zone_source = zone_logic
        zone_logic.result_ready.connect(self._on_zone_result)
        # a changed plan or anatomy: the dock's figures are stale until its next result
        self.case.plan_changed.connect(self._forget_trainee_zone)
        self.case.plan_replaced.connect(self._forget_trainee_zone)
        self.case.structures_changed.connect(self._forget_trainee_zone)
        if zone_logic.result is not None:
            self._trainee_zone = figures_from_result(zone_logic.result)[0]

    def _forget_trainee_zone(self, *_args: Any) -> None:
        self._trainee_zone = None

    def _on_zone_result(self, res: Any, _fine: bool) -> None:
        self._trainee_zone = figures_from_result(res)[0]
        comp = self.comparison
        if comp is None or self.reference is None or not comp.zone_computed:
            return                   # the comparison's own zone job picks it up
        complete_comparison(comp, zone_trainee=self._trainee_zone)
        self.comparison_changed.emit(comp, False)
