"""Training mode in the main window: the comparison dock over
:class:`irplan.app.training_logic.TrainingLogic` (``ctx.services.training``).

File ▸ "Compare with reference plan…" asks for a reference ``.irplan.json`` on the same
image (:meth:`TrainingPanel.compare_with` does it without a dialog). Then the reference
needles are drawn as ghosts (:mod:`irplan.viewers.ghost_needles`; "Hide reference" hides
them) and the dock shows the needle table (tip error with its along/across components,
entry error, angle, depth and exposure differences), the plan-level figures (modality,
counts, zone coverage and minimal margin of both plans, safety findings of both), the
plain-language summary and the score (PASS/FAIL, % of rules passed), live.

``install_training(ctx)`` adds the action and the (hidden) dock ``ctx.docks["training"]``
and returns the panel. Screenshot: ``python -m irplan.app.training_panel CASE_DIR
--screenshot OUT.png`` (see :func:`main`).
"""

from __future__ import annotations

import html
import sys
from pathlib import Path

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

from irplan.app.context import AppContext
from irplan.app.dock_util import add_panel_dock, installed_panel, resize_dock
from irplan.app.training_logic import TrainingLogic
from irplan.planning.errors import IrplanError
from irplan.planning.plan import Plan
from irplan.planning.plan_compare import PlanComparison, ZoneFigures
from irplan.viewers.ghost_needles import GHOST_RGB, GhostNeedles

__all__ = ["GHOST_RGB", "TIP_COLUMN", "TrainingPanel", "install_training"]

COLUMNS = ("needle", "ref", "tip mm", "along mm", "across mm", "entry mm", "angle °",
           "depth mm", "exposure mm")
TIP_COLUMN = 2
DOCK_HEIGHT_PX = 225

_GREEN, _ORANGE, _RED, _GREY = "#6cc070", "#f0a030", "#ff5a4f", "#9aa4b2"


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:+.1f}" if signed else f"{v:.1f}"


class TrainingPanel(QWidget):
    """The comparison dock's content: table, figures, summary; draws the ghosts."""

    comparison_shown = Signal(object)     # PlanComparison, after the dock shows it

    def __init__(self, ctx: AppContext, logic: TrainingLogic,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.logic = logic
        self.ghosts = GhostNeedles(ctx.views)
        self.dock: QDockWidget | None = None
        self.action: QAction | None = None
        self._build()
        logic.reference_changed.connect(self._on_reference)
        logic.reference_dropped.connect(self.path_label.setText)
        logic.comparison_changed.connect(self._show)

    # the logic's state, under the names the panel always had
    @property
    def reference(self) -> Plan | None:
        return self.logic.reference

    @property
    def reference_path(self) -> Path | None:
        return self.logic.reference_path

    @property
    def comparison(self) -> PlanComparison | None:
        return self.logic.comparison

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
        start = str(self.reference_path.parent if self.reference_path
                    else self.ctx.case_folder())
        f, _ = QFileDialog.getOpenFileName(self.ctx.parent, "Reference plan", start,
                                           "IRPlan plans (*.irplan.json *.json)")
        if f:
            self.compare_with(f)

    def compare_with(self, path: str | Path) -> PlanComparison | None:
        """Load the reference plan at ``path``, draw it and compare the open plan with it.
        A plan that cannot be read or lies on another image is reported (status bar,
        the dock, a message box unless headless) and None returned."""
        try:
            return self.logic.load_reference(path)
        except IrplanError as exc:
            self._report(str(exc))
            return None

    def clear_reference(self) -> None:
        self.logic.clear_reference()

    def _on_reference(self, ref: Plan | None) -> None:
        if ref is None:
            self.ghosts.clear()
            self.table.setRowCount(0)
            self.score_label.setText("<b>Comparison with the reference plan</b>")
            self.figures.setText("")
            self.summary.setText("")
            self.path_label.setText("No reference plan.")
            return
        self.path_label.setText(f"Reference: {html.escape(str(self.reference_path))} — "
                                f"{ref.modality}, {len(ref.needles)} needle(s); dashed lines "
                                "in the views")
        self.ghosts.show(ref)
        if self.dock is not None:
            self.dock.show()
            self.dock.raise_()
            resize_dock(self.dock, DOCK_HEIGHT_PX)

    def _report(self, msg: str) -> None:
        self.ctx.show_status(f"Training: {msg}", 15000)
        self.path_label.setText(f"<span style='color:{_RED}'>{html.escape(msg)}</span>")
        if self.ctx.parent.isVisible() and not self.ctx.headless():
            QMessageBox.warning(self.ctx.parent, "Compare with reference plan", msg)

    # ------------------------------------------------------------------ display
    def row_of_reference(self, reference_index: int) -> int:
        """Table row of a reference needle (rows follow the reference order)."""
        return reference_index

    def _show(self, comp: PlanComparison, zones_pending: bool) -> None:
        self._fill_table(comp)
        col = _GREEN if comp.passed else _RED
        verdict = "PASS" if comp.passed else "FAIL"
        pend = (f" <span style='color:{_GREY}'>(zones being computed…)</span>"
                if zones_pending else "")
        self.score_label.setText(f"<span style='font-size:15pt; color:{col}'><b>{verdict}"
                                 f"</b></span> &nbsp;score {comp.score_percent:.0f} % "
                                 f"({sum(r.passed for r in comp.rules)}/{len(comp.rules)} "
                                 f"rules){pend}")
        self.figures.setText("<br>".join(_figure_lines(comp)))
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

    def _fill_table(self, comp: PlanComparison) -> None:
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


def _figure_lines(comp: PlanComparison) -> list[str]:
    """The plan-level figures of ``comp`` as rich-text lines."""
    th = comp.thresholds
    lines = [f"Modality {html.escape(comp.trainee_modality)} "
             f"(reference {html.escape(comp.reference_modality)}) · needles "
             f"{comp.trainee_needle_count} / {comp.reference_needle_count}"]
    zt, zr = comp.zone_trainee, comp.zone_reference
    if zt is not None or zr is not None:
        def cov(z: ZoneFigures | None) -> str:
            return f"{z.coverage_percent:.1f} %" if z else "—"

        def mam(z: ZoneFigures | None) -> str:
            from irplan.planning.margin_display import format_margin_mm

            return format_margin_mm(z.minimal_margin_mm, z.margin_cap_mm) if z else "—"

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
    return lines


def install_training(ctx: AppContext) -> TrainingPanel:
    """Register :class:`TrainingLogic` as ``ctx.services.training``, add File ▸ "Compare
    with reference plan…" and the (hidden) dock ``ctx.docks["training"]``; returns the
    panel. Idempotent."""
    existing = installed_panel(ctx, "training", TrainingPanel)
    if existing is not None:
        return existing
    services = ctx.services

    def checker():
        return getattr(services.session, "checker", None)

    logic = TrainingLogic(ctx.case, ctx.tasks, checker=checker, parent=ctx.parent)
    services.training = logic
    if services.zone is not None:      # the zone dock's figures for the trainee's plan
        logic.attach_zone_source(services.zone)
    session = services.session
    if session is not None:
        session.checker_ready.connect(logic.schedule)
    panel = TrainingPanel(ctx, logic)
    dock = add_panel_dock(ctx, "training", "Training: comparison with the reference", panel,
                          Qt.DockWidgetArea.BottomDockWidgetArea)
    panel.setMinimumHeight(DOCK_HEIGHT_PX)
    dock.hide()
    panel.dock = dock
    action = QAction("Compare with &reference plan…", ctx.parent)
    action.setStatusTip("Training: compare the open plan with a reference plan (dashed "
                        "needles, error table, score)")
    action.triggered.connect(lambda: panel.ask_reference())
    ctx.add_file_action(action)
    ctx.actions["compare_reference"] = action
    panel.action = action
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
    panel = install_training(win.ctx)
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
    session = win.ctx.services.session
    session.lock_parallel = False          # move needle 2 alone
    n = win.case.plan.needles[1]
    session.move_point(1, "tip", n.tip_lps_mm - args.shift_mm * n.direction)
    n = win.case.plan.needles[1]
    session.move_point(1, "entry", n.entry_lps_mm + np.array([0.0, -args.tilt_mm, 0.0]))
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
