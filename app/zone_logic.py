"""The predicted zone of the open plan, without widgets (the zone dock's Logic).

Live mode: every change of the current plan (``Case.plan_changed``) or of the structures
starts a coarse preview in the background after :data:`DEBOUNCE_MS` (2 mm grid, CG to
1e-4, the fast margin of :mod:`irplan.planning.margin_preview`); when it is shown, a
refined computation (1 mm, exact sub-voxel margin at 0.5 mm) follows. A newer change
cancels the running computation; results of stale computations are dropped.

Registered as ``ctx.services.zone`` (:class:`ZoneLogic`); the dock
(:mod:`irplan.app.zone_panel`) draws and lists what it emits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from irplan.app.process_jobs import predict_zone_job, zone_surface_job
from irplan.app.process_pool import Cached, mesh_pool, shared_pool
from irplan.planning.case import Case
from irplan.planning.errors import IrplanError
from irplan.planning.lesions import target_key, target_structures
from irplan.planning.plan import IreParams, Plan, ThermalParams
from irplan.planning.volume import Volume
from irplan.planning.zone import ZoneOptions, ZoneResult, predict_zone

PREVIEW_GRID_MM = 2.0
FINE_GRID_MM = 1.0
DEBOUNCE_MS = 150


def plan_snapshot(plan: Plan) -> Plan:
    """An independent copy of the fields the zone models read (safe for a worker thread
    while the user keeps dragging needles). Unset thermal power/time: the device table's
    default, which the Plan panel shows as "table default (… W)"."""
    from irplan.planning.thermal_defaults import resolve_thermal

    th = resolve_thermal(plan)[0]
    return Plan(modality=plan.modality, margin_mm=plan.margin_mm,
                needles=[n.copy() for n in plan.needles],
                ire=IreParams(plan.ire.voltage_v, plan.ire.pulses, plan.ire.pulse_width_us),
                thermal=ThermalParams(th.power_w, th.time_s),
                structures=dict(plan.structures))


def case_structures_key(case: Case) -> str:
    """The key of the case's structure set in the computation process's cache."""
    return f"structures-{case.uid}-{case.structures_generation}"


def compute_zone(plan: Plan, structures: dict[str, Volume], structures_key: str,
                 grid_mm: float, opts: ZoneOptions, progress: Any, cancel: Any) -> ZoneResult:
    """The zone of ``plan`` (a copy no one edits), from a worker thread: IRE in the
    computation process (pyamg's set-up holds the GIL for up to 0.5 s, which would
    freeze the GUI in a thread; the structures are sent once per ``structures_key``),
    thermal zones here (numpy/SimpleITK work that releases the GIL)."""
    if plan.is_ire:
        return shared_pool().run(predict_zone_job, plan, Cached(structures_key, structures),
                                 grid_mm, opts, progress=progress, cancel=cancel)
    return predict_zone(plan, None, structures, grid_mm, opts, progress=progress,
                        cancel=cancel)


def minimum_needles(plan: Plan) -> int:
    """Needles a zone needs: 2 electrodes for IRE, 1 applicator otherwise."""
    return 2 if plan.modality == "IRE" else 1


class ZoneLogic(QObject):
    """Computes the zone of ``case.plan`` with ``tasks`` (a TaskRunner).

    ``surfaces``: also mesh the zone (in the mesh process) for a 3D view; the arrays come
    with :attr:`result_ready`. ``headless()``: a newly opened plan is computed fine at once.
    """

    started = Signal(bool)               # fine
    progress = Signal(float)             # 0-1 of the running computation
    result_ready = Signal(object, bool)  # ZoneResult, fine (also .result/.result_is_fine)
    failed = Signal(str)
    cleared = Signal(str)                # no zone: why (one line)
    stopped = Signal()                   # the running computation was cancelled
    needles_present = Signal(bool)       # the plan has (no) needles, at every start

    def __init__(self, case: Case, tasks: Any, headless: Callable[[], bool] = lambda: False,
                 surfaces: bool = True, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.case, self.tasks, self.headless, self.surfaces = case, tasks, headless, surfaces
        self.live = True
        self.heat_sink = False
        self.band = False                  # IRE: also the inner/outer plausible zones
        # how a model change reaches the plan (PlanSession.push: one undo step); None:
        # the plan is edited directly (no session, e.g. a bare logic in a test)
        self.push: Callable[[Any], Any] | None = None
        self.result: ZoneResult | None = None
        self.result_is_fine = False
        self.mesh: dict[str, Any] | None = None   # surface arrays of ``result`` (or None)
        self._gen = 0
        self._task: Any = None
        self._call = tasks.deferred(DEBOUNCE_MS, lambda: self.start(fine=False), parent=self)
        case.plan_replaced.connect(self._on_plan_replaced)
        case.plan_changed.connect(self.schedule)
        case.structures_changed.connect(self.schedule)

    # ------------------------------------------------ the IRE model (plan key zone_model)
    def model(self) -> Any:
        """The IRE model setting of the current plan (zone_settings.ZoneSetting): the one it
        records, else the default. InputError when its record is unusable."""
        from irplan.planning.zone_settings import default_setting, plan_model

        plan = self.case.plan
        return plan_model(plan.extra, plan.file_dir) or default_setting()

    def set_model(self, setting: Any, params_path: str | None = None) -> None:
        """Make ``setting`` (a ZoneSetting; a calibrated one with its ``params_path``) the
        plan's model: a plan edit (saved with it, one undo step), then the zone follows."""
        from irplan.planning.commands import SetZoneModel
        from irplan.planning.zone_settings import model_record

        cmd = SetZoneModel(model_record(setting, params_path))
        if self.push is not None:
            self.push(cmd)
        else:
            cmd.do(self.case.plan)

    def _on_plan_replaced(self) -> None:
        # at once (no debounce): a screenshot waits for running tasks
        self.start(fine=self.headless())

    def catch_up(self) -> None:
        """Compute the zone of the plan open now (installed after a case was loaded)."""
        self._on_plan_replaced()

    def schedule(self, *_args: Any) -> None:
        """Recompute soon (coalesces bursts of changes), when live."""
        if self.live:
            self._call.start()

    def cancel(self) -> None:
        if self._task is not None and self._task.state in ("pending", "running"):
            self._task.cancel()
        self._task = None

    def start(self, fine: bool = False) -> Any:
        """Compute the zone of the current plan in the background (preview or fine);
        returns the task (None when the plan has too few needles)."""
        self._call.stop()
        plan = self.case.plan
        self.needles_present.emit(len(plan.needles) > 0)
        n_min = minimum_needles(plan)
        self.cancel()
        if len(plan.needles) < n_min:
            self.result = None
            self.mesh = None
            self.cleared.emit(f"Place at least {n_min} "
                              f"{'electrodes' if n_min == 2 else 'applicator'} to see the "
                              "predicted zone.")
            return None
        self._gen += 1
        gen = self._gen
        snap = plan_snapshot(plan)
        try:   # "tumor" = the plan's target lesion (issue 17); other lesions left out
            structures = target_structures(self.case.structures, target_key(plan))
        except IrplanError as exc:
            self.result = None
            self.mesh = None
            self.failed.emit(str(exc))
            return None
        common: dict[str, Any] = {"heat_sink": self.heat_sink, "band": self.band}
        if plan.modality == "IRE":
            from irplan.planning.zone_settings import plan_model_options

            try:      # the plan's recorded model, as the report and `irplan zone` use it
                common.update(plan_model_options(plan.extra, plan.file_dir))
            except IrplanError as exc:
                self.result = None
                self.mesh = None
                self.failed.emit(str(exc))
                return None
        opts = (ZoneOptions(margin_fine_mm=0.5, **common) if fine
                else ZoneOptions.live_preview(**common))
        grid_mm = FINE_GRID_MM if fine else PREVIEW_GRID_MM
        structures_key = f"{case_structures_key(self.case)}-{target_key(plan)}"
        surfaces = self.surfaces

        def job(progress, cancel):
            res = compute_zone(snap, structures, structures_key, grid_mm, opts, progress,
                               cancel)
            # the surface in the mesh process: no VTK objects in this thread
            surf = (mesh_pool().run(zone_surface_job, res, progress=progress, cancel=cancel)
                    if surfaces and res.zone.array.any() else None)
            return res, surf

        self.started.emit(fine)
        task = self.tasks.start("zone" if fine else "zone preview", job,
                                on_result=lambda r, g=gen, f=fine: self._done(g, f, r),
                                on_error=lambda m, g=gen: self._failed(g, m))
        task.signals.progress.connect(
            lambda f, _t, g=gen: self.progress.emit(float(f)) if g == self._gen else None)
        task.signals.cancelled.connect(lambda g=gen: self.stopped.emit() if g == self._gen
                                       else None)
        self._task = task
        return task

    def _failed(self, gen: int, msg: str) -> None:
        if gen != self._gen:
            return
        self.result = None
        self.mesh = None
        self.failed.emit(msg)

    def _done(self, gen: int, fine: bool, payload: tuple[ZoneResult, Any]) -> None:
        if gen != self._gen:
            return                                   # a newer change superseded it
        self.result, self.mesh = payload
        self.result_is_fine = fine
        self.result_ready.emit(self.result, fine)
        if not fine and (self.live or self.headless()):
            self.start(fine=True)
