"""The predicted-zone panel: coverage, margin, pair currents, risk structures, warnings.

Live mode: every change of the plan (needle moved, parameters) or of the structures starts
a coarse preview in the background (2 mm grid, CG to 1e-4, the fast margin of
:mod:`irplan.planning.margin_preview`: ~0.2 s CPU for the phantom's 4 electrodes, ~35 ms
for a thermal zone); when it is shown, a refined computation (1 mm, exact sub-voxel margin
at 0.5 mm) follows. A newer change cancels the
running computation; results of stale computations are dropped. The GUI never blocks.

``install_zone_panel(window)`` adds the panel as a dock on the right of the main window
and returns it (``window.zone_panel``); the dock shows once the plan has a needle.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDockWidget,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from irplan.app.process_jobs import predict_zone_job, zone_surface_job
from irplan.app.process_pool import Cached, mesh_pool, shared_pool
from irplan.planning.ire_field import CURRENT_WINDOW_A, E_IRREVERSIBLE_V_PER_CM
from irplan.planning.plan import IreParams, Plan, ThermalParams
from irplan.planning.zone import ZoneOptions, ZoneResult, predict_zone
from irplan.viewers.surfaces import polydata_from_arrays
from irplan.viewers.zone_actors import ZoneDisplay

PREVIEW_GRID_MM = 2.0
FINE_GRID_MM = 1.0
DEBOUNCE_MS = 150

_GREEN, _ORANGE, _RED, _GREY = "#6cc070", "#f0a030", "#ff5a4f", "#9aa4b2"


def plan_snapshot(plan: Plan) -> Plan:
    """An independent copy of the fields the zone models read (safe for a worker thread
    while the user keeps dragging needles)."""
    return Plan(modality=plan.modality, margin_mm=plan.margin_mm,
                needles=[n.copy() for n in plan.needles],
                ire=IreParams(plan.ire.voltage_v, plan.ire.pulses, plan.ire.pulse_width_us),
                thermal=ThermalParams(plan.thermal.power_w, plan.thermal.time_s),
                structures=dict(plan.structures))


def margin_colour(mam_mm: float, required_mm: float) -> str:
    """Red when tumour is uncovered, orange below the required margin, green otherwise."""
    if mam_mm < 0:
        return _RED
    return _GREEN if mam_mm >= required_mm else _ORANGE


class ZonePanel(QWidget):
    """Controls and figures of the predicted zone; draws it through :class:`ZoneDisplay`."""

    zone_shown = Signal(object)          # ZoneResult, after it is drawn (preview or fine)

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window = window
        self.case = window.case
        self.display = ZoneDisplay(window.views)
        self.result: ZoneResult | None = None
        self.result_is_fine = False
        self._gen = 0
        self._task: Any = None
        self._plan = None
        self._build()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(lambda: self.start(fine=False))
        self.case.plan_replaced.connect(self._on_plan_replaced)
        self.case.structures_changed.connect(self._on_structures_changed)
        self._connect_plan()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        title = QLabel("<b>Predicted ablation zone</b>")
        lay.addWidget(title)
        row = QHBoxLayout()
        self.live_check = QCheckBox("Live")
        self.live_check.setChecked(True)
        self.live_check.setToolTip("recompute on every plan change: 2 mm preview with a fast "
                                   "margin, then 1 mm with the exact margin")
        self.update_button = QPushButton("Update")
        self.update_button.clicked.connect(lambda: self.start(fine=True))
        row.addWidget(self.live_check)
        row.addStretch(1)
        row.addWidget(self.update_button)
        lay.addLayout(row)
        form = QFormLayout()
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(100.0, 3000.0)
        self.threshold_spin.setDecimals(0)
        self.threshold_spin.setSingleStep(10.0)
        self.threshold_spin.setSuffix(" V/cm")
        self.threshold_spin.setValue(E_IRREVERSIBLE_V_PER_CM)
        self.threshold_spin.setToolTip("IRE lethal field; default 637 V/cm (Miklavcic 2000, "
                                       "rat liver, 8 x 100 us; lower with more pulses)")
        self.threshold_spin.valueChanged.connect(lambda _v: self.schedule())
        form.addRow("IRE threshold", self.threshold_spin)
        self._threshold_label = form.labelForField(self.threshold_spin)
        self.heat_sink_check = QCheckBox("cut cooled shell at vessels >= 3 mm")
        self.heat_sink_check.toggled.connect(lambda _on: self.schedule())
        form.addRow("Heat sink", self.heat_sink_check)
        self._heat_sink_label = form.labelForField(self.heat_sink_check)
        self.field_check = QCheckBox("|E| colour map on the slices")
        self.field_check.setChecked(True)
        self.field_check.toggled.connect(self.display.set_field_visible)
        form.addRow("Field", self.field_check)
        self._field_label = form.labelForField(self.field_check)
        lay.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        lay.addWidget(self.progress)
        self.figures = QLabel()
        self.figures.setObjectName("zoneFigures")
        self.figures.setTextFormat(Qt.TextFormat.RichText)
        self.figures.setWordWrap(True)
        lay.addWidget(self.figures)
        self.pairs = QTableWidget(0, 4)
        self.pairs.setHorizontalHeaderLabels(["pair", "V", "mm", "A"])
        self.pairs.verticalHeader().setVisible(False)
        self.pairs.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.pairs.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.pairs.setMaximumHeight(170)
        lay.addWidget(self.pairs)
        self.notes = QLabel()
        self.notes.setTextFormat(Qt.TextFormat.RichText)
        self.notes.setWordWrap(True)
        lay.addWidget(self.notes)
        lay.addStretch(1)
        self._show_idle("Place needles to see the predicted zone.")

    def _update_controls(self) -> None:
        """IRE controls for IRE plans, the heat-sink option for thermal ones."""
        ire = self.case.plan.modality == "IRE"
        for w in (self.threshold_spin, self._threshold_label, self.field_check,
                  self._field_label):
            w.setVisible(ire)
        for w in (self.heat_sink_check, self._heat_sink_label):
            w.setVisible(not ire)

    def _show_idle(self, text: str) -> None:
        self.figures.setText(f"<span style='color:{_GREY}'>{html.escape(text)}</span>")
        self.pairs.setRowCount(0)
        self.pairs.setVisible(False)
        self.notes.setText("")

    # ------------------------------------------------------------------ model signals
    def _connect_plan(self) -> None:
        if self._plan is not None:
            try:
                self._plan.changed.disconnect(self._on_plan_changed)
            except (RuntimeError, TypeError, ValueError):
                pass
        self._plan = self.case.plan
        self._plan.changed.connect(self._on_plan_changed)

    def _on_plan_replaced(self) -> None:
        self._connect_plan()
        # start at once (no debounce): a screenshot waits for running tasks
        self.start(fine=bool(getattr(self.window, "headless", False)))

    def _on_plan_changed(self, _topic: str = "") -> None:
        self.schedule()

    def _on_structures_changed(self, _key: str) -> None:
        self.schedule()

    def schedule(self) -> None:
        """Recompute soon (coalesces bursts of changes), when live."""
        if self.live_check.isChecked():
            self._timer.start()

    # ------------------------------------------------------------------ computing
    def start(self, fine: bool = False) -> None:
        """Compute the zone of the current plan in the background (preview or fine)."""
        self._timer.stop()
        self._update_controls()
        plan = self.case.plan
        n_min = 2 if plan.modality == "IRE" else 1
        self._set_dock_visible(len(plan.needles) > 0)
        if len(plan.needles) < n_min:
            self._cancel_running()
            self.result = None
            self.display.clear()
            self._show_idle(f"Place at least {n_min} "
                            f"{'electrodes' if n_min == 2 else 'applicator'} to see the "
                            "predicted zone.")
            return
        self._cancel_running()
        self._gen += 1
        gen = self._gen
        snap = plan_snapshot(plan)
        structures = dict(self.case.structures)
        common = {"threshold_v_per_cm": float(self.threshold_spin.value()),
                  "heat_sink": self.heat_sink_check.isChecked()}
        opts = (ZoneOptions(margin_fine_mm=0.5, **common) if fine
                else ZoneOptions.live_preview(**common))
        grid_mm = FINE_GRID_MM if fine else PREVIEW_GRID_MM

        # IRE in the computation process (pyamg's set-up holds the GIL for up to 0.5 s,
        # which would freeze the GUI in a thread); thermal zones are numpy/SimpleITK work
        # that releases the GIL, so they stay in this process
        in_process = snap.modality == "IRE"
        structures_key = f"structures-{self.case.uid}-{self.case.structures_generation}"

        def job(progress, cancel):
            if in_process:
                res = shared_pool().run(predict_zone_job, snap,
                                        Cached(structures_key, structures), grid_mm, opts,
                                        progress=progress, cancel=cancel)
            else:
                res = predict_zone(snap, None, structures, grid_mm, opts, progress=progress,
                                   cancel=cancel)
            # the surface in the mesh process: no VTK objects in this thread
            surf = (mesh_pool().run(zone_surface_job, res, progress=progress, cancel=cancel)
                    if res.zone.array.any() else None)
            return res, surf

        self.progress.setVisible(True)
        self.progress.setValue(0)
        self.progress.setFormat(f"{'zone' if fine else 'preview'} %p%")
        task = self.window.tasks.start("zone" if fine else "zone preview", job,
                                       on_result=lambda r, g=gen, f=fine: self._done(g, f, r),
                                       on_error=lambda m, g=gen: self._failed(g, m))
        task.signals.progress.connect(
            lambda f, _t, g=gen: self.progress.setValue(int(100 * f)) if g == self._gen else None)
        task.signals.cancelled.connect(lambda g=gen: self._end_progress(g))
        self._task = task

    def _set_dock_visible(self, on: bool) -> None:
        """The dock appears once the plan has a needle (the views keep their full width
        until there is a zone to show)."""
        dock = getattr(self, "dock", None)
        if dock is not None and dock.isVisibleTo(self.window) != on:
            dock.setVisible(on)

    def _cancel_running(self) -> None:
        if self._task is not None and self._task.state in ("pending", "running"):
            self._task.cancel()
        self._task = None

    def _end_progress(self, gen: int) -> None:
        if gen == self._gen:
            self.progress.setVisible(False)

    def _failed(self, gen: int, msg: str) -> None:
        if gen != self._gen:
            return
        self.progress.setVisible(False)
        self.result = None
        self.display.clear()
        self._show_idle("")
        self.figures.setText(f"<span style='color:{_RED}'>Zone not computed: "
                             f"{html.escape(msg)}</span>")

    def _done(self, gen: int, fine: bool, payload: tuple[ZoneResult, Any]) -> None:
        if gen != self._gen:
            return                                   # a newer change superseded it
        res, mesh = payload
        surf = polydata_from_arrays(mesh) if mesh is not None else None
        self.result = res
        self.result_is_fine = fine
        self.display.show(res, surf)
        self._show_result(res, fine)
        self.zone_shown.emit(res)
        if fine:
            self.progress.setVisible(False)
        elif self.live_check.isChecked() or getattr(self.window, "headless", False):
            self.start(fine=True)
        else:
            self.progress.setVisible(False)

    # ------------------------------------------------------------------ figures
    def _show_result(self, res: ZoneResult, fine: bool) -> None:
        plan = self.case.plan
        lines = [f"<b>{html.escape(res.modality)}</b> zone <b>{res.volume_ml:.1f} ml</b> "
                 f"<span style='color:{_GREY}'>({res.grid_mm:g} mm grid"
                 f"{'' if fine else ', preview'})</span>"]
        m = res.margin
        if m is not None:
            col = margin_colour(m.minimal_margin_mm, plan.margin_mm)
            cov_col = _GREEN if m.tumor_coverage_percent >= 99.95 else _RED
            lines.append(f"Tumour coverage <b style='color:{cov_col}'>"
                         f"{m.tumor_coverage_percent:.1f} %</b>")
            lines.append(f"Minimal margin <b style='color:{col}'>{m.minimal_margin_mm:+.1f} mm"
                         f"</b> (required {plan.margin_mm:g} mm)")
            lines.append(f"Tumour + {plan.margin_mm:g} mm covered: "
                         f"{m.shell_coverage_percent:.1f} %")
            if m.residual_tumor_ml > 0:
                lines.append(f"<span style='color:{_RED}'>Uncovered tumour "
                             f"{m.residual_tumor_ml:.2f} ml</span>")
        if res.threshold_v_per_cm is not None:
            lines.append(f"<span style='color:{_GREY}'>|E| &ge; {res.threshold_v_per_cm:.0f} "
                         "V/cm</span>")
        self.figures.setText("<br>".join(lines))
        self.pairs.setVisible(bool(res.pairs))
        self.pairs.setRowCount(len(res.pairs))
        lo, hi = CURRENT_WINDOW_A
        for r, p in enumerate(res.pairs):
            i, j = p.electrodes
            cells = (f"{i + 1}-{j + 1}", f"{p.voltage_v:.0f}", f"{p.spacing_mm:.1f}",
                     f"{p.current_a:.1f}")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if c == 3 and not lo <= p.current_a <= hi:
                    item.setForeground(Qt.GlobalColor.yellow)
                    item.setToolTip(f"outside the {lo:.0f}-{hi:.0f} A target window")
                self.pairs.setItem(r, c, item)
        notes = []
        for rv in res.risk:
            if rv.volume_ml > 0:
                col = _GREY if rv.spared else _ORANGE
                notes.append(f"<span style='color:{col}'>{html.escape(rv.key)}: "
                             f"{rv.volume_ml:.2f} ml in zone ({html.escape(rv.note)})</span>")
        off = [p for p in res.pairs if not lo <= p.current_a <= hi]
        if off:   # one line instead of one warning per pair (the table marks them)
            notes.append(f"<span style='color:{_ORANGE}'>&#9888; {len(off)} of {len(res.pairs)} "
                         f"pairs outside the {lo:.0f}-{hi:.0f} A target window (marked; "
                         "static-conductivity prediction: tissue conductivity rises while "
                         "pulsing)</span>")
        for w in res.warnings:
            if "target window" in w and off:
                continue
            notes.append(f"<span style='color:{_ORANGE}'>&#9888; {html.escape(w)}</span>")
        self.notes.setText("<br>".join(notes))


def install_zone_panel(window: Any) -> ZonePanel:
    """Add the zone panel as a right-hand dock of ``window``; ``window.zone_panel``.
    Idempotent: a window that has one keeps it."""
    existing = getattr(window, "zone_panel", None)
    if isinstance(existing, ZonePanel):
        return existing
    panel = ZonePanel(window)
    dock = QDockWidget("Predicted zone", window)
    dock.setObjectName("zoneDock")
    dock.setWidget(panel)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                     | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    panel.setMinimumWidth(260)
    panel.dock = dock
    dock.setVisible(bool(window.case.plan.needles))
    window.zone_panel = panel
    window.zone_dock = dock
    return panel
