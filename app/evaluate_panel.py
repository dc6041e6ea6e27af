"""The "4 Evaluate" workflow panel: the widget over
:class:`irplan.app.evaluation_logic.EvaluationLogic` (follow-up CT, registration accept /
reject, ablation zone, margin analysis, technical-efficacy verdict in Ahmed et al. 2014
terms) and :class:`irplan.app.evaluate_display.EvaluateDisplay` (fused display, zone
overlay, margin-coloured surface; "Go to MAM" or a double-click on the coloured surface
moves the MPR views there).

``install_evaluate_panel(ctx)`` registers the logic as ``ctx.services.evaluation``, puts
the panel in the workflow's "evaluate" step and returns it.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from irplan.app.context import AppContext
from irplan.app.enable_state import set_enabled
from irplan.app.evaluate_display import DISPLAY_MODES, ZONE_KEY, EvaluateDisplay
from irplan.app.evaluate_side_by_side import SideBySide
from irplan.app.evaluation_logic import (
    DEFAULT_MARGIN_MM,
    METHODS,
    EvaluationLogic,
    fused_arrays,
)
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume

__all__ = ["ZONE_KEY", "EvaluatePanel", "fused_arrays", "install_evaluate_panel"]

VERDICT_COLORS = {"complete_margin_ok": "#2e9d48", "complete_margin_at_risk": "#d9822b",
                  "incomplete": "#c62828"}


def _label(text: str = "") -> QLabel:
    lab = QLabel(text)
    lab.setWordWrap(True)
    lab.setTextFormat(Qt.TextFormat.RichText)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return lab


class EvaluatePanel(QWidget):
    """Controls and figures of the follow-up evaluation of the open case, redrawn from
    the logic's state whenever it changes."""

    def __init__(self, ctx: AppContext, logic: EvaluationLogic,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx, self.logic = ctx, logic
        self.case, self.views = ctx.case, ctx.views
        self.display = EvaluateDisplay(logic, ctx.views, parent=self)
        self.side_by_side = SideBySide(ctx, logic, parent=self)
        self._zone_text: tuple[int, str] = (0, "")     # (id of the mask, its text)
        self._build()
        logic.changed.connect(self._refresh)
        logic.status.connect(self._status)
        # another case: the previous case's last status line ('done', an error) goes
        ctx.case.case_closed.connect(self._clear_status)
        ctx.case.ct_changed.connect(self._clear_status)
        self.display.mode_changed.connect(self._on_mode)
        self.display.picked.connect(lambda _p, m: self._status(f"margin here {m:+.1f} mm"))
        # the required margin is the plan's (a 7 mm plan is not judged against 5 mm)
        ctx.case.plan_replaced.connect(self._margin_from_plan)
        ctx.case.plan_changed.connect(
            lambda topic: self._margin_from_plan() if topic in ("margin", "all") else None)
        self._margin_from_plan()
        self._refresh()

    def _margin_from_plan(self) -> None:
        m = getattr(self.case.plan, "margin_mm", None)
        if m is not None and m >= 0:
            self.spin_margin.setValue(float(m))

    # the logic's state, under the names the panel always had (scripts, tests)
    @property
    def followup(self) -> Volume | None:
        return self.logic.followup

    @property
    def zone_followup(self) -> Volume | None:
        return self.logic.zone_followup

    @property
    def registration(self) -> Any:
        return self.logic.registration

    @property
    def accepted(self) -> bool:
        return self.logic.accepted

    @property
    def result(self) -> Any:
        return self.logic.result

    @property
    def display_mode(self) -> str:
        return self.display.mode

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        g1 = QGroupBox("Follow-up CT")
        l1 = QVBoxLayout(g1)
        row = QHBoxLayout()
        self.btn_load = QPushButton("Load follow-up…")
        self.btn_load.clicked.connect(self.ask_load_followup)
        self.btn_case_fu = QPushButton("Case follow-up")
        self.btn_case_fu.setToolTip("Load followup/ and masks/followup/ablation_zone of the "
                                    "open case folder")
        self.btn_case_fu.clicked.connect(self.load_case_followup)
        row.addWidget(self.btn_load)
        row.addWidget(self.btn_case_fu)
        l1.addLayout(row)
        self.lbl_followup = _label()
        l1.addWidget(self.lbl_followup)
        lay.addWidget(g1)

        g2 = QGroupBox("Registration (follow-up → planning)")
        l2 = QGridLayout(g2)
        self.cmb_method = QComboBox()
        self.cmb_method.addItems(list(METHODS))
        self.cmb_method.setToolTip("rigid: mutual information in a box around the tumour; "
                                   "deformable: B-spline on top (tumour kept rigid, both "
                                   "reported); none: the scans already share one space")
        self.cmb_method.currentTextChanged.connect(self.logic.set_method)
        self.btn_register = QPushButton("Register")
        self.btn_register.clicked.connect(lambda: self.register())
        self.btn_accept = QPushButton("Accept")
        self.btn_accept.clicked.connect(self.accept_registration)
        self.btn_reject = QPushButton("Reject")
        self.btn_reject.clicked.connect(self.reject_registration)
        l2.addWidget(self.cmb_method, 0, 0)
        l2.addWidget(self.btn_register, 0, 1)
        l2.addWidget(self.btn_accept, 1, 0)
        l2.addWidget(self.btn_reject, 1, 1)
        self.lbl_registration = _label()
        l2.addWidget(self.lbl_registration, 2, 0, 1, 2)
        l2.addWidget(QLabel("Show"), 3, 0)
        self.cmb_display = QComboBox()
        self.cmb_display.addItems(DISPLAY_MODES)
        self.cmb_display.currentTextChanged.connect(self.set_display)
        l2.addWidget(self.cmb_display, 3, 1)
        lay.addWidget(g2)

        g3 = QGroupBox("Ablation zone (follow-up)")
        l3v = QVBoxLayout(g3)
        l3 = QHBoxLayout()
        l3v.addLayout(l3)
        self.btn_import_zone = QPushButton("Import mask…")
        self.btn_import_zone.clicked.connect(self.ask_import_zone)
        self.btn_segment_zone = QPushButton("Grow at crosshair")
        self.btn_segment_zone.setToolTip("Region growing in the non-enhancing zone from the "
                                         "crosshair (mapped into the follow-up)")
        self.btn_segment_zone.clicked.connect(self.segment_zone_at_crosshair)
        l3.addWidget(self.btn_import_zone)
        l3.addWidget(self.btn_segment_zone)
        self.lbl_zone = _label("<i>no ablation zone yet</i>")
        l3v.addWidget(self.lbl_zone)
        lay.addWidget(g3)

        g4 = QGroupBox("Margin and efficacy")
        l4 = QGridLayout(g4)
        l4.addWidget(QLabel("Required margin"), 0, 0)
        self.spin_margin = QDoubleSpinBox()
        self.spin_margin.setRange(0.0, 20.0)
        self.spin_margin.setSingleStep(0.5)
        self.spin_margin.setValue(DEFAULT_MARGIN_MM)
        self.spin_margin.setSuffix(" mm")
        self.spin_margin.setToolTip("5 mm: ACCLAIM; Laimer 2020 (HCC), Laimer 2024")
        l4.addWidget(self.spin_margin, 0, 1)
        self.btn_evaluate = QPushButton("Evaluate")
        self.btn_evaluate.clicked.connect(self.evaluate)
        self.btn_mam = QPushButton("Go to MAM")
        self.btn_mam.clicked.connect(self.go_to_mam)
        l4.addWidget(self.btn_evaluate, 1, 0)
        l4.addWidget(self.btn_mam, 1, 1)
        self.lbl_verdict = _label()
        self.lbl_verdict.setObjectName("verdict")
        l4.addWidget(self.lbl_verdict, 2, 0, 1, 2)
        self.lbl_figures = _label()
        l4.addWidget(self.lbl_figures, 3, 0, 1, 2)
        self.btn_side = QPushButton("Side by side: planning | follow-up")
        self.btn_side.setCheckable(True)
        self.btn_side.setToolTip("The planning CT and the registered follow-up CT in two "
                                 "linked views (crosshair, slice, zoom) instead of the "
                                 "four views; again to go back")
        self.btn_side.clicked.connect(self.toggle_side_by_side)
        self.side_by_side.active_changed.connect(self.btn_side.setChecked)
        l4.addWidget(self.btn_side, 4, 0, 1, 2)
        lay.addWidget(g4)
        self.lbl_status = _label()
        lay.addWidget(self.lbl_status)
        lay.addStretch(1)

    def _refresh(self) -> None:
        lg = self.logic
        has_ct = self.case.ct is not None
        has_tumor = "tumor" in self.case.structures
        fu = lg.followup is not None
        reg = lg.registration is not None
        need_fu = "load a follow-up CT first (Load follow-up… or Case follow-up)"
        set_enabled(self.btn_case_fu, lg.case_followup_dir() is not None,
                    "the open case (or the plan's folder) has no followup/ folder: use "
                    "Load follow-up…")
        set_enabled(self.btn_register, has_ct and fu,
                    "open a planning CT first" if not has_ct else need_fu)
        set_enabled(self.btn_accept, reg and not lg.accepted,
                    "registration accepted" if lg.accepted else
                    (need_fu if not fu else "register the follow-up first"))
        set_enabled(self.btn_reject, reg, need_fu if not fu else "register the follow-up first")
        set_enabled(self.btn_segment_zone, fu, need_fu)
        set_enabled(self.cmb_display, reg and fu,
                    need_fu if not fu else "register the follow-up first")
        set_enabled(self.btn_evaluate, lg.can_evaluate(),
                    "open a planning CT first" if not has_ct else
                    "the case has no 'tumor' structure" if not has_tumor else
                    need_fu if not fu else
                    "import or grow the ablation zone first" if lg.zone_followup is None
                    else "accept a registration first (or choose 'none')")
        set_enabled(self.btn_mam, lg.result is not None, "evaluate first")
        set_enabled(self.btn_side, self.side_by_side.can_enter(), "evaluate first")
        if self.cmb_method.currentText() != lg.method:
            self.cmb_method.setCurrentText(lg.method)
        self.lbl_followup.setText(_followup_text(lg.followup, lg.followup_path))
        self.lbl_zone.setText(self._zone_label(lg.zone_followup))
        self.lbl_registration.setText(_registration_text(lg.registration, lg.accepted))
        self._show_result(lg.result)

    def _clear_status(self) -> None:
        self.lbl_status.setText("")

    def _status(self, text: str, error: bool = False) -> None:
        col = "#ff8a80" if error else "#9aa4b2"
        self.lbl_status.setText(f"<span style='color:{col}'>{html.escape(text)}</span>")

    # ------------------------------------------------------------------ follow-up
    def ask_load_followup(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Follow-up CT (DICOM folder)",
                                                str(self.ctx.case_folder()))
        if path:
            self.load_followup(path)

    def load_followup(self, path: str | Path, zone_mask: str | Path | None = None) -> Any:
        return self.logic.load_followup(path, zone_mask)

    def load_case_followup(self) -> Any:
        return self.logic.load_case_followup()

    def set_followup(self, vol: Volume) -> None:
        self.logic.set_followup(vol)

    # ------------------------------------------------------------------ zone
    def ask_import_zone(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Ablation-zone mask (follow-up space)",
                                              str(self.ctx.case_folder()),
                                              "Masks (*.nii *.nii.gz *.nrrd *.mha)")
        if path:
            try:
                from irplan.io.masks import read_mask

                self.set_zone(read_mask(path))
            except InputError as exc:
                self._status(str(exc), error=True)

    def set_zone(self, mask: Volume) -> None:
        """The ablation zone mask in follow-up space (uint8)."""
        self.logic.set_zone(mask)

    def _zone_label(self, mask: Volume | None) -> str:
        if mask is None:
            return "<i>no ablation zone yet</i>"
        if self._zone_text[0] != id(mask):     # counted once per mask
            ml = float((mask.array != 0).sum()) * mask.voxel_volume_ml
            self._zone_text = (id(mask), f"zone {ml:.1f} mL (follow-up space)")
        return self._zone_text[1]

    def segment_zone_at_crosshair(self) -> Any:
        """Region growing on the follow-up from the crosshair."""
        return self.logic.segment_zone_at(self.views.crosshair_lps_mm)

    # ------------------------------------------------------------------ registration
    def register(self, method: str | None = None) -> Any:
        """Register the follow-up to the planning CT (proposed until accepted)."""
        if method is not None and method != self.cmb_method.currentText():
            self.cmb_method.setCurrentText(method)
        task = self.logic.register(method)
        if task is not None:
            self.btn_register.setEnabled(False)
        return task

    def accept_registration(self) -> None:
        self.logic.accept_registration()

    def reject_registration(self) -> None:
        self.logic.reject_registration()
        self.display.show_zone_overlay()

    # ------------------------------------------------------------------ display
    def set_display(self, mode: str) -> None:
        """"planning", "follow-up", "checkerboard" or "flicker" in the MPR views."""
        self.display.set_mode(mode)

    def _on_mode(self, mode: str) -> None:
        if self.cmb_display.currentText() != mode:
            self.cmb_display.blockSignals(True)
            self.cmb_display.setCurrentText(mode)
            self.cmb_display.blockSignals(False)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> Any:
        """Margin analysis with the accepted registration, in the background."""
        task = self.logic.evaluate(float(self.spin_margin.value()))
        if task is not None:
            self.btn_evaluate.setEnabled(False)
        return task

    def _show_result(self, res: Any) -> None:
        if res is None:
            self.lbl_verdict.setText("")
            self.lbl_figures.setText("")
            return
        col = VERDICT_COLORS[res.verdict]
        self.lbl_verdict.setText(
            f"<div style='background:{col}; color:white; padding:6px; font-weight:bold'>"
            f"{html.escape(res.verdict_text)}</div>")
        self.lbl_figures.setText("<br>".join(_figure_lines(res)))

    def toggle_side_by_side(self, on: bool) -> Any:
        """Enter (the resampling task) or leave the planning | follow-up layout."""
        if not on:
            self.side_by_side.leave()
            return None
        task = self.side_by_side.enter()
        if task is None:
            self.btn_side.setChecked(False)
        return task

    def go_to_mam(self) -> None:
        self.display.go_to_mam()

    def pick_3d(self, x: float, y: float) -> np.ndarray | None:
        """Pick the margin surface at 3D-view display pixel (x, y) (VTK, origin bottom
        left); moves the crosshair there and returns the point (LPS mm)."""
        return self.display.pick_3d(x, y)


def _followup_text(vol: Volume | None, path: Path | None) -> str:
    if vol is None:
        return "<i>no follow-up CT loaded</i>"
    sx, sy, sz = vol.size_xyz
    sp = ", ".join(f"{v:.2f}" for v in vol.spacing_mm)
    return (f"{sx} × {sy} × {sz} voxels, {sp} mm"
            + (f"<br><span style='color:#9aa4b2'>{html.escape(str(path))}</span>"
               if path else ""))


def _registration_text(reg: Any, accepted: bool) -> str:
    """A registration (method, accepted or proposed, metric, motion, residuals)."""
    if reg is None:
        return "<i>not registered</i>"
    d = reg.to_dict()
    parts = [f"<b>{html.escape(reg.method)}</b>"
             + (" — <span style='color:#7bd389'>accepted</span>" if accepted
                else " — <span style='color:#ffcf66'>proposed</span>")]
    if reg.metric_value is not None:
        parts.append(f"mutual information {reg.initial_metric_value:.3f} → "
                     f"{reg.metric_value:.3f} (lower = better)")
    rp = d.get("rigid")
    if rp:
        rot = ", ".join(f"{v:.1f}" for v in rp["rotation_deg_xyz"])
        tr = ", ".join(f"{v:.1f}" for v in rp["translation_mm"])
        parts.append(f"rotation ({rot})°, shift ({tr}) mm")
    if reg.landmark_residuals_mm:
        parts.append(f"landmark residual {np.mean(reg.landmark_residuals_mm):.2f} mm")
    parts.append(f"{reg.iterations} iterations, {reg.elapsed_s:.1f} s")
    return "<br>".join(parts)


def _figure_lines(res: Any) -> list[str]:
    """The figures of an EvaluationResult as rich-text lines."""
    m = res.margin
    req = m.required_margin_mm
    lines = [
        f"minimal ablative margin <b>{m.minimal_margin_mm:+.1f} mm</b>",
        f"tumour coverage <b>{m.tumor_coverage_percent:.1f} %</b> "
        f"({m.tumor_volume_ml:.2f} mL, residual {m.residual_tumor_ml:.3f} mL)",
        f"tumour + {req:g} mm covered {m.shell_coverage_percent:.1f} %",
        f"surface: <span style='color:#ef5350'>{m.surface_percent_uncovered:.1f} % &lt; 0"
        f"</span>, <span style='color:#ffa726'>{m.surface_percent_at_risk:.1f} % "
        f"0–{req:g}</span>, <span style='color:#66bb6a'>{m.surface_percent_ok:.1f} % "
        f"≥ {req:g} mm</span>",
    ]
    if res.rigid_margin is not None:
        lines.append(f"rigid only: MAM {res.rigid_margin.minimal_margin_mm:+.1f} mm")
    if res.residual:
        lines.append(f"residual {res.residual['direction_from_tumor_center']} of the "
                     "tumour centre")
    pva = res.predicted_vs_achieved
    if pva:
        lines.append(f"planned vs achieved zone: Dice {pva['dice']:.2f}, HD95 "
                     f"{pva['hd95_mm']:.1f} mm")
    for w in res.warnings:
        lines.append(f"<span style='color:#ffcf66'>⚠ {html.escape(w)}</span>")
    return lines


def install_evaluate_panel(ctx: AppContext) -> EvaluatePanel:
    """Register :class:`EvaluationLogic` as ``ctx.services.evaluation`` and put its panel
    in the workflow's "evaluate" step."""
    logic = EvaluationLogic(ctx.case, ctx.tasks, parent=ctx.parent)
    ctx.services.evaluation = logic
    panel = EvaluatePanel(ctx, logic)
    ctx.workflow.set_panel("evaluate", panel)
    return panel
