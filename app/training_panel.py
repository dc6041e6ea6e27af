"""Training mode in the main window: compare the open plan (the trainee's) with a
reference plan (:mod:`irplan.planning.plan_compare`).

File ▸ "Compare with reference plan…" asks for a reference ``.irplan.json`` on the same
image (:meth:`TrainingPanel.compare_with` does it without a dialog). Then:

- the reference needles are drawn as ghosts: dashed lines of :data:`GHOST_RGB` from tip to
  entry (the dash pattern starts at the tip) with a small disc at the tip, in the three
  slice views (on top of the image) and in 3D (on top of the anatomy); "Hide reference"
  hides them;
- a dock shows the needle table (tip error with its along/across components, entry
  error, angle, depth and exposure differences), the plan-level figures (modality,
  counts, zone coverage and minimal margin of both plans, safety findings of both), the
  plain-language summary and the score (PASS/FAIL, % of rules passed).

Live: every change of the open plan re-compares after :data:`DEBOUNCE_MS` (a
``window.tasks.deferred`` call): geometry and safety findings at once (milliseconds, with
the window's prepared safety checker), the zones in a ``window.tasks`` job (the live
preview, 2 mm grid; IRE in the computation process). The reference's zone is computed
once per reference and structure set.

``install_training(window)`` adds the action and the (hidden) dock and returns the panel
(``window.training_panel``). Screenshot: ``python -m irplan.app.training_panel CASE_DIR
--screenshot OUT.png`` (see :func:`main`).
"""

from __future__ import annotations

import html
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QDockWidget,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from irplan.planning.errors import IrplanError
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
from irplan.viewers.needle_actors import spheres_polydata

GHOST_RGB = (0.78, 0.62, 1.0)   # pale violet: apart from finding colours and structures
DASH_MM = 4.0
GAP_MM = 3.0
TIP_DISC_MM = 1.6               # radius of the reference tip marker (2D and 3D)
DEBOUNCE_MS = 150
MPR_VIEWS = ("axial", "coronal", "sagittal")
COLUMNS = ("needle", "ref", "tip mm", "along mm", "across mm", "entry mm", "angle °",
           "depth mm", "exposure mm")
TIP_COLUMN = 2
DOCK_HEIGHT_PX = 225

_GREEN, _ORANGE, _RED, _GREY = "#6cc070", "#f0a030", "#ff5a4f", "#9aa4b2"


def dashed_polydata(tip: np.ndarray, entry: np.ndarray, dash_mm: float = DASH_MM,
                    gap_mm: float = GAP_MM) -> vtkPolyData:
    """Dashes (line cells, LPS mm) from ``tip`` towards ``entry``: the first dash starts
    at the tip, so the tip itself is always drawn."""
    tip = np.asarray(tip, float)
    entry = np.asarray(entry, float)
    length = float(np.linalg.norm(entry - tip))
    u = (entry - tip) / length if length > 0 else np.zeros(3)
    pts = vtkPoints()
    lines = vtkCellArray()
    s = 0.0
    while s < length:
        e = min(s + dash_mm, length)
        a, b = tip + s * u, tip + e * u
        i0 = pts.InsertNextPoint(*a)
        i1 = pts.InsertNextPoint(*b)
        lines.InsertNextCell(2)
        lines.InsertCellPoint(i0)
        lines.InsertCellPoint(i1)
        s = e + gap_mm
    poly = vtkPolyData()
    poly.SetPoints(pts)
    poly.SetLines(lines)
    return poly


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:+.1f}" if signed else f"{v:.1f}"


class GhostNeedles:
    """The reference needles drawn as dashed ghosts in the four views."""

    def __init__(self, views: Any) -> None:
        self.views = views
        self.keys: list[str] = []
        self.actors: list[vtkActor] = []          # every ghost actor (for visibility)
        self._own_3d: list[vtkActor] = []         # 3D actors added directly (on top)
        self.visible = True

    def clear(self) -> None:
        for k in self.keys:
            self.views.remove_overlay(k)
        for a in self._own_3d:
            self.views.remove_overlay_actor(a, view="3d")
        self.keys.clear()
        self._own_3d.clear()
        self.actors.clear()

    def show(self, plan: Plan) -> None:
        self.clear()
        for i, n in enumerate(plan.needles):
            dashes = dashed_polydata(n.tip_lps_mm, n.entry_lps_mm)
            disc = spheres_polydata([n.tip_lps_mm], TIP_DISC_MM)
            for key, poly, width in ((f"training:ref:{i}:path", dashes, 2.5),
                                     (f"training:ref:{i}:tip", disc, 1.0)):
                acts = self.views.add_overlay_polydata(key, poly, color=GHOST_RGB,
                                                       line_width=width, views=MPR_VIEWS)
                self.keys.append(key)
                for a in acts.values():
                    a.GetProperty().LightingOff()
                    self.actors.append(a)
            for poly, width in ((dashes, 3.0), (disc, 1.0)):
                m = vtkPolyDataMapper()
                m.SetInputData(poly)
                m.ScalarVisibilityOff()
                a = vtkActor()
                a.SetMapper(m)
                p = a.GetProperty()
                p.SetColor(*GHOST_RGB)
                p.SetLineWidth(width)
                p.LightingOff()
                self.views.add_overlay_actor(a, view="3d", on_top=True)
                self._own_3d.append(a)
                self.actors.append(a)
        self.set_visible(self.visible)

    def set_visible(self, on: bool) -> None:
        self.visible = bool(on)
        for a in self.actors:
            a.SetVisibility(self.visible)
        self.views.render()


class TrainingPanel(QWidget):
    """The comparison dock's content; owns the ghost needles and the live updates."""

    comparison_shown = Signal(object)     # PlanComparison, after the dock shows it

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window = window
        self.case = window.case
        self.reference: Plan | None = None
        self.reference_path: Path | None = None
        self.comparison: PlanComparison | None = None
        self.ghosts = GhostNeedles(window.views)
        self.dock: QDockWidget | None = None
        self._plan: Plan | None = None
        self._gen = 0
        self._task: Any = None
        self._ref_zone_key: tuple | None = None
        self._ref_zone: tuple[ZoneFigures | None, list[str]] | None = None
        self._ref_safety_key: tuple[Any, Plan] | None = None
        self._ref_safety: SafetySummary | None = None
        self._build()
        self._call = window.tasks.deferred(DEBOUNCE_MS, self.refresh, parent=self)
        self.case.plan_replaced.connect(self._on_plan_replaced)
        self.case.structures_changed.connect(self._on_structures_changed)
        self.case.ct_changed.connect(self._on_ct_changed)
        tools = getattr(window, "needle_tools", None)
        if tools is not None:
            tools.checker_ready.connect(self.schedule)
        self._connect_plan()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(6, 4, 6, 4)
        left = QVBoxLayout()
        right = QVBoxLayout()
        outer.addLayout(left, 3)
        outer.addLayout(right, 2)
        row = QHBoxLayout()
        self.score_label = QLabel("<b>Comparison with the reference plan</b>")
        self.score_label.setObjectName("trainingScore")
        self.score_label.setTextFormat(Qt.TextFormat.RichText)
        self.hide_check = QCheckBox("Hide reference")
        self.hide_check.setToolTip("hide the reference needles (dashed) in the views")
        self.hide_check.toggled.connect(lambda on: self.ghosts.set_visible(not on))
        self.choose_button = QPushButton("Reference…")
        self.choose_button.clicked.connect(self.ask_reference)
        row.addWidget(self.score_label)
        row.addStretch(1)
        row.addWidget(self.hide_check)
        row.addWidget(self.choose_button)
        left.addLayout(row)
        self.path_label = QLabel("No reference plan.")
        self.path_label.setWordWrap(True)
        self.path_label.setStyleSheet(f"color: {_GREY}")
        left.addWidget(self.path_label)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        left.addWidget(self.table, 1)
        self.figures = QLabel()
        self.figures.setTextFormat(Qt.TextFormat.RichText)
        self.figures.setWordWrap(True)
        right.addWidget(self.figures)
        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setWordWrap(True)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        scroll = QScrollArea()
        scroll.setWidget(self.summary)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        right.addWidget(scroll, 1)

    # ------------------------------------------------------------------ reference
    def ask_reference(self) -> None:
        start = str(self.reference_path.parent if self.reference_path else Path.home())
        f, _ = QFileDialog.getOpenFileName(self.window, "Reference plan", start,
                                           "IRPlan plans (*.irplan.json *.json)")
        if f:
            self.compare_with(f)

    def compare_with(self, path: str | Path) -> PlanComparison | None:
        """Load the reference plan at ``path``, draw it and compare the open plan with it
        (the geometry and safety part at once, the zones follow in the background).
        A plan that cannot be read or lies on another image is reported (status bar,
        ``window.messages``, a message box unless headless) and None returned."""
        from irplan.io.plan_file import load_plan

        p = Path(path)
        try:
            ref = load_plan(p, check_files=False)
            self._check_same_image(ref, p)
        except IrplanError as exc:
            self._report(str(exc))
            return None
        self.reference = ref
        self.reference_path = p
        self._ref_zone_key = None
        self._ref_zone = None
        self.path_label.setText(f"Reference: {html.escape(str(p))} — {ref.modality}, "
                                f"{len(ref.needles)} needle(s); dashed lines in the views")
        self.ghosts.show(ref)
        if self.dock is not None:
            self.dock.show()
            self.dock.raise_()
            self.window.resizeDocks([self.dock], [DOCK_HEIGHT_PX], Qt.Orientation.Vertical)
        self.refresh()
        return self.comparison

    def _check_same_image(self, ref: Plan, path: Path) -> None:
        from irplan.planning.errors import InputError

        plan = self.case.plan
        md = self.case.ct.metadata if self.case.ct is not None else {}
        for attr, what in (("series_uid", "image series"),
                           ("frame_of_reference_uid", "Frame of Reference")):
            mine = getattr(plan.image, attr) or str(md.get(attr, "") or "")
            theirs = getattr(ref.image, attr)
            if mine and theirs and mine != theirs:
                raise InputError(f"{path}: image.{attr}: {what} {theirs} is not the open "
                                 f"image's {mine}: the reference plan is on another image")

    def clear_reference(self) -> None:
        self._cancel_running()
        self.reference = None
        self.reference_path = None
        self.comparison = None
        self.ghosts.clear()
        self.table.setRowCount(0)
        self.score_label.setText("<b>Comparison with the reference plan</b>")
        self.figures.setText("")
        self.summary.setText("")
        self.path_label.setText("No reference plan.")

    def _report(self, msg: str) -> None:
        self.window.messages.append(msg)
        self.window.statusBar().showMessage(f"Training: {msg}", 15000)
        self.path_label.setText(f"<span style='color:{_RED}'>{html.escape(msg)}</span>")
        if self.window.isVisible() and not getattr(self.window, "headless", False):
            QMessageBox.warning(self.window, "Compare with reference plan", msg)

    # ------------------------------------------------------------------ live updates
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
        self.schedule()

    def _on_plan_changed(self, _topic: str = "") -> None:
        self.schedule()

    def _on_ct_changed(self) -> None:
        """Another image: a reference on a different series is dropped (with a note)."""
        if self.reference is None or self.reference_path is None:
            return
        try:
            self._check_same_image(self.reference, self.reference_path)
        except IrplanError as exc:
            path = self.reference_path
            self.clear_reference()
            self.path_label.setText(f"Reference {html.escape(str(path))} closed: "
                                    f"{html.escape(str(exc))}")

    def _on_structures_changed(self, _key: str) -> None:
        self._ref_zone_key = None
        self._ref_zone = None
        self.schedule()

    def schedule(self) -> None:
        """Re-compare after DEBOUNCE_MS (bursts of changes coalesce)."""
        if self.reference is not None:
            self._call.start()

    def _cancel_running(self) -> None:
        if self._task is not None and self._task.state in ("pending", "running"):
            self._task.cancel()
        self._task = None

    def refresh(self) -> None:
        """Compare now: geometry and safety on this thread, zones in a job."""
        self._call.stop()
        ref = self.reference
        if ref is None:
            return
        self._cancel_running()
        self._gen += 1
        trainee = self.case.plan.copy()
        comp = compare_geometry(trainee, ref)
        tools = getattr(self.window, "needle_tools", None)
        checker = getattr(tools, "checker", None)
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
        self._show(comp, zones_pending=bool(self.case.structures))
        if self.case.structures:
            self._start_zones(self._gen, trainee, ref)

    def _start_zones(self, gen: int, trainee: Plan, ref: Plan) -> None:
        from irplan.app.process_jobs import predict_zone_job
        from irplan.app.process_pool import Cached, shared_pool
        from irplan.planning.zone import predict_zone

        structures = dict(self.case.structures)
        key = (id(ref), self.case.uid, self.case.structures_generation)
        cached = self._ref_zone if self._ref_zone_key == key else None
        structures_key = f"structures-{self.case.uid}-{self.case.structures_generation}"
        opts, grid_mm = zone_settings(exact=False)

        def one(plan: Plan, progress, cancel) -> tuple[ZoneFigures | None, list[str]]:
            note = zone_not_possible(plan)
            if note:
                return None, [note]
            if plan.is_ire:   # pyamg holds the GIL: computation process (as the zone panel)
                res = shared_pool().run(predict_zone_job, plan,
                                        Cached(structures_key, structures), grid_mm, opts,
                                        progress=progress, cancel=cancel)
            else:
                res = predict_zone(plan, None, structures, grid_mm, opts, progress=progress,
                                   cancel=cancel)
            return figures_from_result(res)

        def job(progress, cancel):
            ref_z = cached or one(ref.copy(), lambda f, t: progress(0.5 * f, t), cancel)
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
            complete_comparison(comp, zone_reference=ref_z[0], zone_trainee=tr_z[0])
            self._show(comp, zones_pending=False)

        def failed(msg: str) -> None:
            if gen == self._gen and self.comparison is not None:
                self.comparison.notes.append(f"zones not compared: {msg}")
                self._show(self.comparison, zones_pending=False)

        self._task = self.window.tasks.start("comparing zones with the reference", job,
                                             done, failed)

    # ------------------------------------------------------------------ display
    def row_of_reference(self, reference_index: int) -> int:
        """Table row of a reference needle (rows follow the reference order)."""
        return reference_index

    def _show(self, comp: PlanComparison, zones_pending: bool) -> None:
        th = comp.thresholds
        rows: list[tuple[str, ...]] = []
        flags: list[tuple[bool, ...]] = []
        for j in range(comp.reference_needle_count):
            m = comp.match_for_reference(j)
            if m is None:
                rows.append(("—", str(j + 1), "missing", "", "", "", "", "", ""))
                flags.append((False, False, True) + (False,) * 6)
                continue
            rows.append((str(m.trainee_index + 1), str(j + 1), _fmt(m.tip_error_mm),
                         _fmt(m.tip_along_mm, True), _fmt(m.tip_across_mm),
                         _fmt(m.entry_error_mm), _fmt(m.angle_deg),
                         _fmt(m.depth_difference_mm, True),
                         _fmt(m.exposure_difference_mm, True)))
            bad_angle = th.max_angle_deg is not None and m.angle_deg > th.max_angle_deg
            flags.append((False, False, m.tip_error_mm > th.tip_tolerance_mm, False, False,
                          False, bad_angle, False, False))
        for i in comp.extra_trainee_indices:
            rows.append((str(i + 1), "—", "extra", "", "", "", "", "", ""))
            flags.append((False, False, not th.allow_extra_needles) + (False,) * 6)
        self.table.setRowCount(len(rows))
        for r, (cells, bad) in enumerate(zip(rows, flags)):
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if bad[c]:
                    item.setForeground(QColor(_RED))
                self.table.setItem(r, c, item)

        col = _GREEN if comp.passed else _RED
        verdict = "PASS" if comp.passed else "FAIL"
        pend = (f" <span style='color:{_GREY}'>(zones being computed…)</span>"
                if zones_pending else "")
        self.score_label.setText(f"<span style='font-size:15pt; color:{col}'><b>{verdict}"
                                 f"</b></span> &nbsp;score {comp.score_percent:.0f} % "
                                 f"({sum(r.passed for r in comp.rules)}/{len(comp.rules)} "
                                 f"rules){pend}")
        lines = [f"Modality {html.escape(comp.trainee_modality)} "
                 f"(reference {html.escape(comp.reference_modality)}) · needles "
                 f"{comp.trainee_needle_count} / {comp.reference_needle_count}"]
        zt, zr = comp.zone_trainee, comp.zone_reference
        if zt is not None or zr is not None:
            def cov(z: ZoneFigures | None) -> str:
                return f"{z.coverage_percent:.1f} %" if z else "—"

            def mam(z: ZoneFigures | None) -> str:
                return f"{z.minimal_margin_mm:+.1f} mm" if z else "—"

            z = zr or zt
            lines.append(f"Coverage <b>{cov(zt)}</b> (reference {cov(zr)}) · minimal margin "
                         f"<b>{mam(zt)}</b> (reference {mam(zr)}) <span style='color:{_GREY}'>"
                         f"({z.grid_mm:g} mm {z.method})</span>")
        st, sr = comp.safety_trainee, comp.safety_reference
        if st is not None and sr is not None:
            ct, cr = st.counts, sr.counts
            lines.append(f"Findings: {ct['error']} error / {ct['warning']} warning / "
                         f"{ct['info']} info (reference {cr['error']} / {cr['warning']} / "
                         f"{cr['info']})")
        wide = [p for p in comp.pair_spacings
                if p.difference_mm is not None and abs(p.difference_mm) >= th.mention_mm]
        if comp.pair_spacings:
            lines.append(f"IRE pairs: {len(comp.pair_spacings)} in the reference, "
                         f"{len(wide)} with a spacing ≥ {th.mention_mm:g} mm off")
        self.figures.setText("<br>".join(lines))
        items = []
        for s in comp.summary[:-1]:
            c = _ORANGE if any(w in s for w in ("missing", "extra", "new error",
                                                "outside the tolerance", "modality")) \
                else "#d7dae0"
            items.append(f"<li style='color:{c}'>{html.escape(s)}</li>")
        notes = "".join(f"<div style='color:{_GREY}'>{html.escape(n)}</div>"
                        for n in comp.notes)
        self.summary.setText(f"<ul style='margin-left:-20px'>{''.join(items)}</ul>{notes}")
        self.comparison_shown.emit(comp)


def install_training(window: Any) -> TrainingPanel:
    """Add File ▸ "Compare with reference plan…" and the (hidden) comparison dock to
    ``window``; returns the panel (``window.training_panel``). Idempotent."""
    existing = getattr(window, "training_panel", None)
    if isinstance(existing, TrainingPanel):
        return existing
    panel = TrainingPanel(window)
    dock = QDockWidget("Training: comparison with the reference", window)
    dock.setObjectName("trainingDock")
    dock.setWidget(panel)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                     | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                     | QDockWidget.DockWidgetFeature.DockWidgetClosable)
    window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    panel.setMinimumHeight(DOCK_HEIGHT_PX)
    dock.hide()
    panel.dock = dock
    action = QAction("Compare with &reference plan…", window)
    action.setStatusTip("Training: compare the open plan with a reference plan (dashed "
                        "needles, error table, score)")
    action.triggered.connect(lambda: panel.ask_reference())
    file_menu = next((a.menu() for a in window.menuBar().actions()
                      if a.text().replace("&", "") == "File"), None)
    if file_menu is not None:
        file_menu.insertAction(file_menu.actions()[-1], action)
    window.addAction(action)
    panel.action = action
    window.training_panel = panel
    window.training_dock = dock
    return panel


def main(argv: list[str] | None = None) -> int:
    """``python -m irplan.app.training_panel CASE_DIR --screenshot OUT.png [--shift-mm 6]``:
    open a phantom-layout case, move the tip of the trainee's needle 2 back along its
    axis by ``--shift-mm`` and tilt its entry by ``--tilt-mm`` (the open plan is the
    case's reference plan), compare with ``CASE_DIR/plan.irplan.json`` and save a
    picture of the window (run under Xvfb: ``xvfb-run -a -s "-screen 0 1600x1000x24"``)."""
    import argparse
    import time

    from PySide6.QtWidgets import QApplication

    ap = argparse.ArgumentParser(prog="python -m irplan.app.training_panel")
    ap.add_argument("case_dir")
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--shift-mm", type=float, default=6.0)
    ap.add_argument("--tilt-mm", type=float, default=8.0)
    ap.add_argument("--zoom", type=float, default=2.0, help="slice views magnification")
    args = ap.parse_args(argv)

    from irplan.app.gui_main import make_app
    from irplan.app.main_window import MainWindow

    app = make_app()
    win = MainWindow(restore_state=False)
    win.headless = True
    win.resize(1600, 1000)
    win.move(0, 0)
    panel = install_training(win)
    win.show()
    case = Path(args.case_dir)
    win.open_path(case)

    def wait(cond, timeout_s: float) -> bool:
        t_end = time.monotonic() + timeout_s
        while not cond() and time.monotonic() < t_end:
            QApplication.processEvents()
            time.sleep(0.01)
        return cond()

    if not wait(lambda: len(win.case.plan.needles) > 0, 240):
        print("the case did not load", file=sys.stderr)
        return 1
    win.tasks.wait_idle(240)
    win.wait_for_surfaces(240)
    tools = win.needle_tools
    tools.panel.lock_check.setChecked(False)
    n = win.case.plan.needles[1]
    tools.move_point(1, "tip", n.tip_lps_mm - args.shift_mm * n.direction)
    n = win.case.plan.needles[1]
    tools.move_point(1, "entry", n.entry_lps_mm + np.array([0.0, -args.tilt_mm, 0.0]))
    panel.compare_with(case / "plan.irplan.json")
    win.tasks.wait_idle(240)
    tip = win.case.plan.needles[1].tip_lps_mm
    win.views.set_crosshair(tip)
    for v in win.views.mprs():   # centre the slice views on the needles, 2x closer
        cam = v.renderer.GetActiveCamera()
        fp = np.array(cam.GetFocalPoint())
        d = tip - fp
        d -= (d @ v.normal) * v.normal
        cam.SetFocalPoint(*(fp + d))
        cam.SetPosition(*(np.array(cam.GetPosition()) + d))
        v.zoom(args.zoom)
    win.tasks.wait_idle(60)
    app.processEvents()
    out = win.save_screenshot(args.screenshot)
    print(f"saved {out}")
    for line in panel.comparison.summary:
        print(line)
    win.tasks.shutdown(60)
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
