"""The "4 Evaluate" workflow panel: follow-up CT, registration (accept / reject), ablation
zone, margin analysis and the technical-efficacy verdict (Ahmed et al. 2014 terms).

Display: the planning CT in the views can be swapped for the registered follow-up, a
checkerboard of both, or a flicker between them (the follow-up is resampled onto the
planning grid through the registration; the planning CT itself is never modified).
After evaluation the tumour surface is drawn coloured by margin in 3D (red < 0, orange
0-5 mm, green >= 5 mm) with the MAM point; "Go to MAM" or a double-click on the coloured
surface moves the MPR views there. The zone (registered into planning space) is shown as
a cyan overlay on the slices.

``install_evaluate_panel(window)`` puts the panel in ``window.workflow`` ("evaluate")
and returns it (``window.evaluate_panel``). Every long step runs in ``window.tasks``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
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

from irplan.planning.errors import InputError
from irplan.planning.volume import Volume

ZONE_KEY = "followup_ablation_zone"
VERDICT_COLORS = {"complete_margin_ok": "#2e9d48", "complete_margin_at_risk": "#d9822b",
                  "incomplete": "#c62828"}
DISPLAY_MODES = ("planning", "follow-up", "checkerboard", "flicker")
CHECKER_MM = 15.0


def _label(text: str = "") -> QLabel:
    lab = QLabel(text)
    lab.setWordWrap(True)
    lab.setTextFormat(Qt.TextFormat.RichText)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return lab


class EvaluatePanel(QWidget):
    """Follow-up evaluation of the open case (planning CT + tumour structure)."""

    registered = Signal(object)    # RegistrationResult (proposed)
    evaluated = Signal(object)     # EvaluationResult
    zone_changed = Signal()

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window = window
        self.views = window.views
        self.case = window.case
        self.followup: Volume | None = None
        self.followup_path: Path | None = None
        self.zone_followup: Volume | None = None
        self.registration: Any = None
        self.accepted = False
        self.result: Any = None
        self.display_mode = "planning"
        self._orig_scalars: Any = None
        self._fused: dict[str, Any] = {}
        self._actors: list[Any] = []
        self._margin_actor: Any = None
        self._tumor_opacity_3d = 1.0
        self._observer: int | None = None
        self._flicker = QTimer(self)
        self._flicker.setInterval(700)
        self._flicker.timeout.connect(self._flick)
        self._flick_state = False
        self._build()
        self.case.ct_changed.connect(self._on_ct_changed)
        self.case.plan_replaced.connect(self._refresh)
        self.case.structures_changed.connect(lambda _key: self._refresh())
        self.cmb_method.currentTextChanged.connect(lambda _t: self._refresh())
        self._refresh()

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
        self.cmb_method.addItems(["rigid", "deformable", "none"])
        self.cmb_method.setToolTip("rigid: mutual information in a box around the tumour; "
                                   "deformable: B-spline on top (tumour kept rigid, both "
                                   "reported); none: the scans already share one space")
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
        self.spin_margin.setValue(5.0)
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
        lay.addWidget(g4)
        self.lbl_status = _label()
        lay.addWidget(self.lbl_status)
        lay.addStretch(1)

    def _refresh(self) -> None:
        from irplan.app.enable_state import set_enabled

        has_ct = self.case.ct is not None
        has_tumor = "tumor" in self.case.structures
        fu = self.followup is not None
        reg = self.registration is not None
        need_fu = "load a follow-up CT first (Load follow-up… or Case follow-up)"
        set_enabled(self.btn_case_fu, self._case_followup_dir() is not None,
                    "the open case (or the plan's folder) has no followup/ folder: use "
                    "Load follow-up…")
        set_enabled(self.btn_register, has_ct and fu,
                    "open a planning CT first" if not has_ct else need_fu)
        set_enabled(self.btn_accept, reg and not self.accepted,
                    "registration accepted" if self.accepted else
                    (need_fu if not fu else "register the follow-up first"))
        set_enabled(self.btn_reject, reg, need_fu if not fu else "register the follow-up first")
        set_enabled(self.btn_segment_zone, fu, need_fu)
        set_enabled(self.cmb_display, reg and fu,
                    need_fu if not fu else "register the follow-up first")
        aligned = self.accepted or self.cmb_method.currentText() == "none"
        set_enabled(self.btn_evaluate, has_ct and has_tumor and self.zone_followup is not None
                    and aligned,
                    "open a planning CT first" if not has_ct else
                    "the case has no 'tumor' structure" if not has_tumor else
                    need_fu if not fu else
                    "import or grow the ablation zone first" if self.zone_followup is None
                    else "accept a registration first (or choose 'none')")
        set_enabled(self.btn_mam, self.result is not None, "evaluate first")
        if not fu:
            self.lbl_followup.setText("<i>no follow-up CT loaded</i>")
        if self.registration is None:
            self.lbl_registration.setText("<i>not registered</i>")

    def _status(self, text: str, error: bool = False) -> None:
        col = "#ff8a80" if error else "#9aa4b2"
        self.lbl_status.setText(f"<span style='color:{col}'>{html.escape(text)}</span>")

    def _error(self, msg: str) -> None:
        self._status(msg, error=True)
        self._refresh()

    # ------------------------------------------------------------------ follow-up
    def _case_followup_dir(self) -> Path | None:
        # the case folder opened, else the folder of the open plan's file (a plan saved
        # in a case folder: its follow-up is there too)
        for d in (getattr(self.window, "case_dir", None), self.case.plan.file_dir or None):
            if d is not None and (Path(d) / "followup").is_dir():
                return Path(d)
        return None

    def ask_load_followup(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Follow-up CT (DICOM folder)")
        if path:
            self.load_followup(path)

    def load_followup(self, path: str | Path, zone_mask: str | Path | None = None) -> Any:
        """Load a follow-up CT (DICOM folder or NIfTI) in the background (+ a zone mask)."""
        p = Path(path)

        def job(progress, cancel):
            from irplan.app.cmd_evaluate import load_image, load_mask

            progress(0.1, "Reading the follow-up CT")
            vol = load_image(p, "follow-up CT")
            zone = load_mask(zone_mask, "ablation-zone") if zone_mask else None
            return vol, zone

        def done(res):
            vol, zone = res
            self.followup_path = p
            self.set_followup(vol)
            if zone is not None:
                self.set_zone(zone)

        self._status(f"loading {p.name}…")
        return self.window.tasks.start("Loading the follow-up CT", job, done, self._error)

    def load_case_followup(self) -> Any:
        d = self._case_followup_dir()
        if d is None:
            self._error("the open case has no followup/ folder")
            return None
        z = d / "masks" / "followup" / "ablation_zone.nii.gz"
        return self.load_followup(d / "followup", z if z.exists() else None)

    def set_followup(self, vol: Volume) -> None:
        self.followup = vol
        self._drop_registration()
        sx, sy, sz = vol.size_xyz
        sp = ", ".join(f"{v:.2f}" for v in vol.spacing_mm)
        self.lbl_followup.setText(f"{sx} × {sy} × {sz} voxels, {sp} mm"
                                  + (f"<br><span style='color:#9aa4b2'>"
                                     f"{html.escape(str(self.followup_path))}</span>"
                                     if self.followup_path else ""))
        self._status("follow-up loaded: register it next")
        self._refresh()

    # ------------------------------------------------------------------ zone
    def ask_import_zone(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Ablation-zone mask (follow-up space)",
                                              "", "Masks (*.nii *.nii.gz *.nrrd *.mha)")
        if path:
            try:
                from irplan.io.masks import read_mask

                self.set_zone(read_mask(path))
            except InputError as exc:
                self._error(str(exc))

    def set_zone(self, mask: Volume) -> None:
        """The ablation zone mask in follow-up space (uint8)."""
        self.zone_followup = mask
        self.lbl_zone.setText(f"zone {float((mask.array != 0).sum()) * mask.voxel_volume_ml:.1f}"
                              " mL (follow-up space)")
        self._show_zone_overlay()
        self.zone_changed.emit()
        self._refresh()

    def segment_zone_at_crosshair(self) -> Any:
        """Region growing on the follow-up from the crosshair (planning point mapped into
        the follow-up through the registration, identity before registering)."""
        if self.followup is None:
            self._error("load the follow-up CT first")
            return None
        p = self.views.crosshair_lps_mm
        if self.registration is not None:
            p = self.registration.map_points(p)
        fu = self.followup

        def job(progress, cancel):
            from irplan.planning.ablation_segmentation import segment_ablation_zone

            return segment_ablation_zone(fu, p)

        self._status("growing the ablation zone…")
        return self.window.tasks.start("Segmenting the ablation zone", job, self.set_zone,
                                       self._error)

    def _show_zone_overlay(self) -> None:
        """Cyan zone overlay on the slices, in planning space (needs a registration, or
        the follow-up used as is before one)."""
        if self.zone_followup is None or self.case.ct is None:
            return
        from irplan.planning.evaluation import zone_on_grid
        from irplan.planning.registration import identity_result

        reg = self.registration
        tf = (reg or identity_result()).transform
        zone, ct = self.zone_followup, self.case.ct

        def job(progress, cancel):
            return zone_on_grid(zone, ct, tf)

        def done(zp):
            if self.registration is reg and self.zone_followup is zone and self.case.ct is ct:
                self.views.set_structure(ZONE_KEY, zp)
                self.views.set_structure_style(ZONE_KEY, color=(0.30, 0.80, 1.00),
                                               opacity_2d=0.25)
                self.views.render()

        self.window.tasks.start("Mapping the ablation zone", job, done, self._error)

    # ------------------------------------------------------------------ registration
    def register(self, method: str | None = None) -> Any:
        """Register the follow-up to the planning CT in the background (proposed until
        accepted)."""
        method = method or self.cmb_method.currentText()
        if method != self.cmb_method.currentText():
            self.cmb_method.setCurrentText(method)
        ct, fu = self.case.ct, self.followup
        if ct is None or fu is None:
            self._error("load the planning CT and the follow-up CT first")
            return None
        tumor = self.case.structures.get("tumor")
        liver = self.case.structures.get("liver")
        zone = self.zone_followup

        def job(progress, cancel):
            from irplan.planning.registration import register

            progress(0.05, f"{method} registration")
            return register(ct, fu, method, target=tumor, liver=liver, followup_exclude=zone)

        self._status(f"{method} registration running…")
        self.btn_register.setEnabled(False)
        return self.window.tasks.start(f"Registering ({method})", job, self._on_registered,
                                       self._error)

    def _on_registered(self, reg: Any) -> None:
        self._drop_registration()
        self.registration = reg
        self.accepted = reg.method == "none"
        self._show_registration_text()
        self._show_zone_overlay()
        if self.followup is not None and reg.method != "none":
            self.cmb_display.setCurrentText("checkerboard")
        self._status("check the checkerboard/flicker, then Accept or Reject")
        self.registered.emit(reg)
        self._refresh()

    def _show_registration_text(self) -> None:
        reg = self.registration
        if reg is None:
            return
        d = reg.to_dict()
        parts = [f"<b>{html.escape(reg.method)}</b>"
                 + (" — <span style='color:#7bd389'>accepted</span>" if self.accepted
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
        self.lbl_registration.setText("<br>".join(parts))

    def accept_registration(self) -> None:
        if self.registration is None:
            return
        self.accepted = True
        self._show_registration_text()
        self._status("registration accepted: evaluate the margin")
        self._refresh()

    def reject_registration(self) -> None:
        self._drop_registration()
        self._status("registration rejected")
        self._show_zone_overlay()
        self._refresh()

    def _drop_registration(self) -> None:
        self.set_display("planning")
        self.cmb_display.blockSignals(True)
        self.cmb_display.setCurrentText("planning")
        self.cmb_display.blockSignals(False)
        self.registration = None
        self.accepted = False
        self._fused.clear()
        self._clear_result()

    # ------------------------------------------------------------------ display
    def _prepare_fused(self) -> Any:
        """Resample the follow-up onto the planning grid (background task); the chosen
        display mode is applied when it is ready."""
        if self.case.ct is None or self.followup is None:
            return None
        ct, fu = self.case.ct, self.followup
        tf = self.registration.transform if self.registration is not None else None
        reg = self.registration

        def job(progress, cancel):
            progress(0.1, "resampling the follow-up onto the planning grid")
            return fused_arrays(ct, fu, tf)

        def done(res):
            if self.registration is reg and self.case.ct is ct:
                self._fused = res
                if self.display_mode != "planning":
                    self.set_display(self.display_mode)

        return self.window.tasks.start("Preparing the fused display", job, done, self._error)

    def _show_array(self, arr: np.ndarray | None) -> None:
        """Swap the scalars of the views' CT image (no camera or crosshair change)."""
        from vtkmodules.util import numpy_support

        img = self.views.ct_image
        if img is None:
            return
        pd = img.GetPointData()
        if self._orig_scalars is None:
            self._orig_scalars = pd.GetScalars()
        if arr is None:
            pd.SetScalars(self._orig_scalars)
        else:
            vtk_arr = numpy_support.numpy_to_vtk(np.ascontiguousarray(arr).ravel(), deep=True)
            vtk_arr.SetName(self._orig_scalars.GetName() or "scalars")
            pd.SetScalars(vtk_arr)
        img.Modified()
        self.views.render()

    def set_display(self, mode: str) -> None:
        """"planning", "follow-up", "checkerboard" or "flicker" in the MPR views."""
        if mode not in DISPLAY_MODES:
            raise ValueError(mode)
        self._flicker.stop()
        self.display_mode = mode
        if self.cmb_display.currentText() != mode:
            self.cmb_display.blockSignals(True)
            self.cmb_display.setCurrentText(mode)
            self.cmb_display.blockSignals(False)
        if mode == "planning" or self.followup is None or self.case.ct is None:
            self._show_array(None)
            return
        if not self._fused:
            self._prepare_fused()   # set_display runs again when the arrays are ready
            return
        fused = self._fused
        if mode == "flicker":
            self._flick_state = False
            self._flicker.start()
            self._flick()
        else:
            self._show_array(fused[mode])

    def _flick(self) -> None:
        self._flick_state = not self._flick_state
        self._show_array(self._fused.get("follow-up") if self._flick_state else None)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> Any:
        """Margin analysis with the accepted registration, in the background."""
        ct = self.case.ct
        tumor = self.case.structures.get("tumor")
        if ct is None or tumor is None:
            self._error("the case needs a planning CT and a 'tumor' structure")
            return None
        if self.zone_followup is None:
            self._error("import or grow the ablation zone first")
            return None
        from irplan.planning.registration import identity_result

        if self.registration is None and self.cmb_method.currentText() == "none":
            self.registration = identity_result()
            self.accepted = True
        if self.registration is None or not self.accepted:
            self._error("accept a registration first (or choose 'none')")
            return None
        reg, zone = self.registration, self.zone_followup
        margin_mm = float(self.spin_margin.value())
        plan_zone = self.case.structures.get("ablation_zone")

        def job(progress, cancel):
            from irplan.planning.evaluation import evaluate

            progress(0.1, "margin analysis")
            return evaluate(ct, self.followup, tumor, zone, registration=reg,
                            plan_zone=plan_zone, required_margin_mm=margin_mm)

        self._status("evaluating the margin…")
        self.btn_evaluate.setEnabled(False)
        return self.window.tasks.start("Evaluating the margin", job, self._on_evaluated,
                                       self._error)

    def _clear_result(self) -> None:
        for view, prop in self._actors:
            self.views.remove_overlay_actor(prop, view)
        if self._actors and "tumor" in self.views.styles:
            self.views.set_structure_style("tumor", opacity_3d=self._tumor_opacity_3d)
        self._actors.clear()
        self._margin_actor = None
        self.result = None
        if hasattr(self, "lbl_verdict"):
            self.lbl_verdict.setText("")
            self.lbl_figures.setText("")

    def _on_evaluated(self, res: Any) -> None:
        from irplan.viewers.margin_actors import mam_marker_actor, margin_surface_actor

        self._clear_result()
        self.result = res
        col = VERDICT_COLORS[res.verdict]
        self.lbl_verdict.setText(
            f"<div style='background:{col}; color:white; padding:6px; font-weight:bold'>"
            f"{html.escape(res.verdict_text)}</div>")
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
        self.lbl_figures.setText("<br>".join(lines))
        surf = margin_surface_actor(m)
        mark = mam_marker_actor(m)
        # the margin-coloured surface replaces the plain tumour surface in 3D
        st = self.views.styles.get("tumor")
        self._tumor_opacity_3d = st.opacity_3d if st is not None else 1.0
        if st is not None:
            self.views.set_structure_style("tumor", opacity_3d=0.0)
        for prop in (surf, mark):
            self.views.add_overlay_actor(prop, "3d")
            self._actors.append(("3d", prop))
        self._margin_actor = surf
        self._install_picker()
        self.go_to_mam()
        self._status("done")
        self.evaluated.emit(res)
        self._refresh()

    def go_to_mam(self) -> None:
        if self.result is not None:
            self.views.set_crosshair(np.asarray(self.result.margin.mam_point_lps_mm, float))
            self.views.render()

    # ------------------------------------------------------------------ 3D picking
    def _install_picker(self) -> None:
        if self._observer is not None:
            return
        try:
            iren = self.views.scene3d.GetRenderWindow().GetInteractor()
        except AttributeError:
            return
        self._observer = iren.AddObserver("LeftButtonPressEvent", self._on_3d_press, 1.0)

    def _on_3d_press(self, iren: Any, _event: str) -> None:
        if iren.GetRepeatCount() < 1:  # double-click only: single clicks rotate
            return
        x, y = iren.GetEventPosition()
        self.pick_3d(x, y)

    def pick_3d(self, x: float, y: float) -> np.ndarray | None:
        """Pick the margin surface at 3D-view display pixel (x, y) (VTK, origin bottom
        left); moves the crosshair to the surface point and returns it (LPS mm)."""
        if self._margin_actor is None or self.result is None:
            return None
        from vtkmodules.vtkRenderingCore import vtkCellPicker

        from irplan.viewers.margin_actors import nearest_surface_point

        picker = vtkCellPicker()
        picker.SetTolerance(0.002)
        picker.PickFromListOn()
        picker.AddPickList(self._margin_actor)
        if not picker.Pick(x, y, 0, self.views.scene3d.renderer):
            return None
        p, margin_mm = nearest_surface_point(self.result.margin, np.array(picker.GetPickPosition()))
        self.views.set_crosshair(p)
        self._status(f"margin here {margin_mm:+.1f} mm")
        self.views.render()
        return p

    # ------------------------------------------------------------------ case
    def _on_ct_changed(self) -> None:
        self._flicker.stop()
        self._orig_scalars = None
        self.followup = None
        self.zone_followup = None
        self.registration = None
        self.accepted = False
        self._fused.clear()
        self._clear_result()
        self._refresh()


def fused_arrays(ct: Volume, followup: Volume, transform: Any,
                 checker_mm: float = CHECKER_MM) -> dict[str, np.ndarray]:
    """Planning-grid arrays: "follow-up" (registered through ``transform``, planning ->
    follow-up; None = identity) and "checkerboard" (squares of ``checker_mm``)."""
    import SimpleITK as sitk

    ref = ct.to_sitk()
    fu = sitk.Resample(followup.to_sitk(), ref, transform or sitk.Transform(), sitk.sitkLinear,
                       -1024.0, ref.GetPixelID())
    fu_arr = sitk.GetArrayFromImage(fu)
    n = [max(1, int(round(checker_mm / sp))) for sp in ct.spacing_mm[::-1]]   # k, j, i
    k, j, i = (np.arange(m, dtype=np.int32) // step for m, step in zip(ct.array.shape, n))
    chk = ((k[:, None, None] + j[None, :, None] + i[None, None, :]) % 2).astype(bool)
    return {"follow-up": fu_arr, "checkerboard": np.where(chk, fu_arr, ct.array)}


def install_evaluate_panel(window: Any) -> EvaluatePanel:
    """Put the evaluation panel in the workflow's "evaluate" step."""
    panel = EvaluatePanel(window)
    window.workflow.set_panel("evaluate", panel)
    window.evaluate_panel = panel
    return panel
