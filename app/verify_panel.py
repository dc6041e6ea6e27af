"""The Verify step (issue 15) in the main window: File ▸ "Verify placed needles
(intra-op CT)…" opens an intra-op CT of the same case; the needles are found in the
background (:class:`irplan.app.verify_logic.VerifyLogic`, ``ctx.services.verify``) and
the dock shows the deviation table (planned needle, tip/depth/lateral error, axis angle),
the IRE pairs with measured spacing and voltage to set, and the placement verdict. The
placed needles are drawn as dashed ghosts beside the solid planned ones; "Accept placed
needles" makes them the plan (one undo step) and the planned ones become the ghosts.

``install_verify(ctx)`` adds the action and the (hidden) dock ``ctx.docks["verify"]``
and returns the panel (idempotent).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from irplan.app.context import AppContext
from irplan.app.verify_logic import VerifyLogic, VerifyResult
from irplan.planning.placement import ANGLE_TOLERANCE_DEG, TIP_TOLERANCE_MM

COLUMNS = ("found", "planned", "tip mm", "depth mm", "lateral mm", "angle °")
TIP_COLUMN = 2


class VerifyPanel(QWidget):
    def __init__(self, ctx: AppContext, logic: VerifyLogic) -> None:
        super().__init__(ctx.parent)
        self.ctx = ctx
        self.logic = logic
        self.dock: QDockWidget | None = None
        self.ghosts = None
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open intra-op CT…")
        self.open_button.clicked.connect(self.ask_ct)
        self.accept_button = QPushButton("Accept placed needles")
        self.accept_button.setEnabled(False)
        self.accept_button.setToolTip("make the detected needles the plan (one undo step)")
        self.accept_button.clicked.connect(self.accept)
        row.addWidget(self.open_button)
        row.addWidget(self.accept_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.summary = QLabel("Open the intra-op CT (needles in place) of this case.")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        lay.addWidget(self.table)
        self.pairs_label = QLabel("")
        self.pairs_label.setWordWrap(True)
        lay.addWidget(self.pairs_label)
        self.verdict_label = QLabel("")
        self.verdict_label.setWordWrap(True)
        lay.addWidget(self.verdict_label)
        logic.result_ready.connect(self._show)
        logic.cleared.connect(self._clear)
        logic.failed.connect(lambda t: self._say(f"Verify: {t}"))
        logic.message.connect(self._say)

    def _say(self, text: str) -> None:
        self.ctx.show_status(text)

    def ask_ct(self) -> None:
        if self.ctx.headless():
            return
        d = QFileDialog.getExistingDirectory(self, "Intra-op CT (DICOM folder)",
                                             str(self.ctx.case_folder()))
        if d:
            self.detect(d)

    def detect(self, ct_dir: str | Path) -> None:
        if self.dock is not None:
            self.dock.show()
        self.summary.setText(f"Finding the needles on {Path(ct_dir).name}…")
        self.logic.detect(ct_dir)

    def _ghost(self, plan) -> None:  # noqa: ANN001
        from irplan.viewers.ghost_needles import GhostNeedles

        if self.ghosts is None:
            self.ghosts = GhostNeedles(self.ctx.views, key_prefix="verify:placed")
        self.ghosts.show(plan)

    def _clear(self) -> None:
        """A new case: nothing of the previous verification stays on screen."""
        self.table.setRowCount(0)
        self.pairs_label.setText("")
        self.verdict_label.setText("")
        self.summary.setText("Open the intra-op CT (needles in place) of this case.")
        self.accept_button.setEnabled(False)
        if self.ghosts is not None:
            self.ghosts.clear()

    def _show(self, res: VerifyResult) -> None:
        self.table.setRowCount(len(res.rows))
        for r, d in enumerate(res.rows):
            m = d["planned_index"]
            cells = [str(r + 1), "—" if m is None else str(m + 1)]
            for k, fmt in (("tip_error_mm", "{:.1f}"), ("depth_error_mm", "{:+.1f}"),
                           ("lateral_error_mm", "{:.1f}"), ("angle_error_deg", "{:.1f}")):
                cells.append("—" if m is None else fmt.format(d[k]))
            for c, text in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(text))
        miss = ", ".join(str(j + 1) for j in res.missing_planned)
        self.summary.setText(f"{len(res.rows)} needle(s) found on {res.ct_path.name}"
                             + (f"; planned needle(s) {miss} NOT FOUND" if miss else "")
                             + ". Dashed: the needles as placed.")
        self.pairs_label.setText("<br>".join(
            f"pair {p['needles'][0] + 1}-{p['needles'][1] + 1}: spacing "
            f"{p['spacing_mm']:.1f} mm, angle {p['angle_deg']:.1f}°, set "
            f"{p['voltage_v']:.0f} V{' (capped)' if p['capped'] else ''}" for p in res.pairs))
        v = res.verdict
        ok = v.get("needles_as_planned")
        self.verdict_label.setText(
            ("Needles placed as planned" if ok else "NOT as planned: " + "; ".join(
                v.get("reasons", []))) +
            f" (tolerance: tip {TIP_TOLERANCE_MM:g} mm, axis {ANGLE_TOLERANCE_DEG:g}°).")
        self.accept_button.setEnabled(res.placed_plan is not None)
        if res.placed_plan is not None:
            self._ghost(res.placed_plan)

    def accept(self) -> bool:
        res = self.logic.result
        if res is None or not self.logic.accept():
            return False
        self._ghost(res.planned)           # the plan is now the placed needles
        self.summary.setText(self.summary.text().replace("Dashed: the needles as placed.",
                                                         "Dashed: the planned needles."))
        self.accept_button.setEnabled(False)
        return True


def install_verify(ctx: AppContext) -> VerifyPanel:
    """Register :class:`VerifyLogic` as ``ctx.services.verify``, add the File action and
    the hidden dock ``ctx.docks["verify"]``; returns the panel. Idempotent."""
    dock = ctx.docks.get("verify")
    if dock is not None and isinstance(dock.widget(), VerifyPanel):
        return dock.widget()
    logic = VerifyLogic(ctx.case, ctx.tasks, ctx.services.session)
    ctx.services.verify = logic
    panel = VerifyPanel(ctx, logic)
    dock = QDockWidget("Verify: needles as placed", ctx.parent)
    dock.setObjectName("verifyDock")
    dock.setWidget(panel)
    ctx.add_dock("verify", dock, Qt.DockWidgetArea.BottomDockWidgetArea)
    dock.hide()
    panel.dock = dock
    action = QAction("&Verify placed needles (intra-op CT)…", ctx.parent)
    action.setStatusTip("Find the needles on an intra-op CT and compare them with the plan")
    action.triggered.connect(panel.ask_ct)
    ctx.add_file_action(action)
    ctx.actions["verify_needles"] = action
    panel.action = action
    return panel
