"""The predicted-zone dock: controls, coverage, margin, pair currents, risk structures,
warnings; the zone and |E| map drawn in the views (:class:`ZoneDisplay`).

The computing is :class:`irplan.app.zone_logic.ZoneLogic` (``ctx.services.zone``); this
module is its widget. ``install_zone_panel(ctx)`` adds the panel as a dock on the right
(``ctx.docks["zone"]``) and returns it; the dock shows once the plan has a needle.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
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

from irplan.app.context import AppContext
from irplan.app.dock_util import add_panel_dock, installed_panel
from irplan.app.zone_logic import ZoneLogic
from irplan.planning.ire_field import CURRENT_WINDOW_A, E_IRREVERSIBLE_V_PER_CM
from irplan.planning.zone import ZoneResult
from irplan.viewers.surfaces import polydata_from_arrays
from irplan.viewers.zone_actors import ZoneDisplay

_GREEN, _ORANGE, _RED, _GREY = "#6cc070", "#f0a030", "#ff5a4f", "#9aa4b2"
# band of plausible zones (issue 14): inner = smallest (conservative), outer = largest
BAND_COLOURS = {"inner": (0.35, 0.85, 1.0), "outer": (0.8, 0.55, 1.0)}


def margin_colour(mam_mm: float, required_mm: float) -> str:
    """Red when tumour is uncovered, orange below the required margin, green otherwise."""
    if mam_mm < 0:
        return _RED
    return _GREEN if mam_mm >= required_mm else _ORANGE


class ZonePanel(QWidget):
    """Controls and figures of :class:`ZoneLogic`'s zone; draws it with ``display``."""

    zone_shown = Signal(object)          # ZoneResult, after it is drawn (preview or fine)

    def __init__(self, logic: ZoneLogic, views: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.logic = logic
        self.case = logic.case
        self.display = ZoneDisplay(views)
        self.dock: QDockWidget | None = None
        self._build()
        logic.started.connect(self._on_started)
        logic.progress.connect(lambda f: self.progress.setValue(int(100 * f)))
        logic.stopped.connect(lambda: self.progress.setVisible(False))
        logic.result_ready.connect(self._on_result)
        logic.failed.connect(self._on_failed)
        logic.cleared.connect(self._on_cleared)
        logic.needles_present.connect(self._set_dock_visible)
        self.case.plan_replaced.connect(self.sync_model)
        self.case.plan_changed.connect(
            lambda topic: self.sync_model() if topic in ("zone_model", "all") else None)
        self.sync_model()

    # the logic's state, under the names the panel always had
    @property
    def result(self) -> ZoneResult | None:
        return self.logic.result

    @property
    def result_is_fine(self) -> bool:
        return self.logic.result_is_fine

    def start(self, fine: bool = False) -> Any:
        return self.logic.start(fine)

    def schedule(self) -> None:
        self.logic.schedule()

    def sync_with_case(self) -> None:
        """Installed after a case was loaded: compute the zone of its plan."""
        self.logic.catch_up()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(QLabel("<b>Predicted ablation zone</b>"))
        row = QHBoxLayout()
        self.live_check = QCheckBox("Live")
        self.live_check.setChecked(self.logic.live)
        self.live_check.setToolTip("recompute on every plan change: 2 mm preview with a fast "
                                   "margin, then 1 mm with the exact margin")
        self.live_check.toggled.connect(lambda on: setattr(self.logic, "live", bool(on)))
        self.update_button = QPushButton("Update")
        self.update_button.clicked.connect(lambda: self.logic.start(fine=True))
        row.addWidget(self.live_check)
        row.addStretch(1)
        row.addWidget(self.update_button)
        lay.addLayout(row)
        form = QFormLayout()
        # which lesion coverage and margin are for (issue 17; shown with several lesions)
        from irplan.app.target_combo import TargetCombo

        self.target = TargetCombo(self.case, self._push)
        form.addRow(self.target)
        # named model settings (resources/zone_settings.json, issue 14)
        from irplan.planning.zone_settings import settings as zone_settings

        self.setting_combo = QComboBox()
        for st in zone_settings():
            self.setting_combo.addItem(f"{st.name} ({st.threshold_v_per_cm:g} V/cm)", st.id)
            self.setting_combo.setItemData(self.setting_combo.count() - 1, st.source,
                                           Qt.ItemDataRole.ToolTipRole)
        self.setting_combo.addItem("custom (threshold below)", "custom")
        self.setting_combo.addItem("calibrated parameter file…", "file")
        self.setting_combo.setItemData(self.setting_combo.count() - 1,
                                       "a threshold fitted by irplan calibrate --out",
                                       Qt.ItemDataRole.ToolTipRole)
        self.setting_combo.setToolTip("IRE zone model: the lethal-field threshold of a named, "
                                      "sourced setting (hover an item for its source)")
        self.setting_combo.currentIndexChanged.connect(self._on_setting)
        form.addRow("IRE model", self.setting_combo)
        self._setting_label = form.labelForField(self.setting_combo)
        self.band_check = QCheckBox("band: conservative .. in vivo porcine fit")
        self.band_check.setToolTip("also compute the smallest and largest plausible zones; "
                                   "coverage and margin of the smallest (inner) one")
        self.band_check.toggled.connect(self._on_band)
        form.addRow("Uncertainty", self.band_check)
        self._band_label = form.labelForField(self.band_check)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(100.0, 3000.0)
        self.threshold_spin.setDecimals(0)
        self.threshold_spin.setSingleStep(10.0)
        self.threshold_spin.setSuffix(" V/cm")
        self.threshold_spin.setValue(E_IRREVERSIBLE_V_PER_CM)
        self.threshold_spin.setToolTip("IRE lethal field; default 637 V/cm (Miklavcic 2000, "
                                       "rat liver, 8 x 100 us; lower with more pulses)")
        self.threshold_spin.valueChanged.connect(self._on_threshold)
        form.addRow("IRE threshold", self.threshold_spin)
        self._threshold_label = form.labelForField(self.threshold_spin)
        self.heat_sink_check = QCheckBox("cut cooled shell at vessels >= 3 mm")
        self.heat_sink_check.toggled.connect(self._on_heat_sink)
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

    def _push(self, cmd: Any) -> None:
        """A plan edit from this panel: through the session (undoable) when there is one."""
        push = getattr(self.logic, "push", None)
        if push is not None:
            push(cmd)
        else:
            cmd.do(self.case.plan)

    def _on_threshold(self, value: float) -> None:
        """A typed threshold: the named setting with that value, else a custom one."""
        from irplan.planning.zone_settings import custom_setting
        from irplan.planning.zone_settings import settings as zone_settings

        st = next((st for st in zone_settings() if st.threshold_v_per_cm == value),
                  None) or custom_setting(float(value))
        self.logic.set_model(st)

    def _on_setting(self, index: int) -> None:
        sid = self.setting_combo.itemData(index)
        if sid == "file":
            from PySide6.QtWidgets import QFileDialog

            path, _ = QFileDialog.getOpenFileName(self, "Calibrated zone parameters", "",
                                                  "Parameter files (*.json)")
            if not path or not self.load_params_file(path):
                self.sync_model()                 # back to what the plan says
            return
        if sid != "custom":
            from irplan.planning.zone_settings import get_setting

            self.logic.set_model(get_setting(sid))

    def load_params_file(self, path: str) -> bool:
        """Use a calibrated parameter file (``irplan calibrate --out``) as the IRE model;
        False (and the reason shown) when the file is not usable."""
        from irplan.planning.errors import InputError
        from irplan.planning.zone_settings import load_params

        try:
            st = load_params(path)
        except InputError as exc:
            self.figures.setText(f"<span style='color:{_RED}'>{html.escape(str(exc))}</span>")
            return False
        self.logic.set_model(st, params_path=str(Path(path).resolve()))
        return True

    def sync_model(self, *_args: Any) -> None:
        """Show the plan's recorded IRE model (after opening a plan, an edit or an undo)."""
        from irplan.planning.errors import IrplanError

        try:
            st = self.logic.model()
        except IrplanError:
            return                               # the zone dock says why (logic.failed)
        sid = st.id if self.setting_combo.findData(st.id) >= 0 else (
            "file" if st.id == "calibrated" else "custom")
        for w, fn in ((self.threshold_spin, lambda: self.threshold_spin.setValue(
                          st.threshold_v_per_cm)),
                      (self.setting_combo, lambda: self.setting_combo.setCurrentIndex(
                          self.setting_combo.findData(sid)))):
            w.blockSignals(True)
            fn()
            w.blockSignals(False)

    def _on_band(self, on: bool) -> None:
        self.logic.band = bool(on)
        self.logic.schedule()

    def _on_heat_sink(self, on: bool) -> None:
        self.logic.heat_sink = bool(on)
        self.logic.schedule()

    def _update_controls(self) -> None:
        """IRE controls for IRE plans, the heat-sink option for thermal ones."""
        ire = self.case.plan.modality == "IRE"
        for w in (self.threshold_spin, self._threshold_label, self.field_check,
                  self._field_label, self.setting_combo, self._setting_label,
                  self.band_check, self._band_label):
            w.setVisible(ire)
        for w in (self.heat_sink_check, self._heat_sink_label):
            w.setVisible(not ire)

    def _show_idle(self, text: str) -> None:
        self.figures.setText(f"<span style='color:{_GREY}'>{html.escape(text)}</span>")
        self.pairs.setRowCount(0)
        self.pairs.setVisible(False)
        self.notes.setText("")

    def _set_dock_visible(self, on: bool) -> None:
        """The dock appears once the plan has a needle (the views keep their full width
        until there is a zone to show)."""
        self._update_controls()
        dock = self.dock
        if dock is not None and dock.isVisibleTo(dock.parentWidget()) != on:
            dock.setVisible(on)

    # ------------------------------------------------------------------ logic events
    def _on_started(self, fine: bool) -> None:
        self.progress.setVisible(True)
        self.progress.setValue(0)
        self.progress.setFormat(f"{'zone' if fine else 'preview'} %p%")

    def _show_band(self, res: ZoneResult | None) -> None:
        """The band's inner and outer zones as faint fills on the slices (issue 14)."""
        views = self.display.views
        for key, colour in BAND_COLOURS.items():
            mask = res.band_zones.get(key) if res is not None and res.band_zones else None
            views.set_structure(f"zone_band_{key}", mask)
            if mask is not None:
                views.set_structure_style(f"zone_band_{key}", color=colour, opacity_2d=0.18,
                                          opacity_3d=0.0, visible=True)

    def _on_cleared(self, text: str) -> None:
        self.progress.setVisible(False)
        self._show_band(None)
        self.display.clear()
        self._show_idle(text)

    def _on_failed(self, msg: str) -> None:
        self.progress.setVisible(False)
        self._show_band(None)
        self.display.clear()
        self._show_idle("")
        from irplan.planning.display_names import user_text

        self.figures.setText(f"<span style='color:{_RED}'>Zone not computed: "
                             f"{html.escape(user_text(msg, self.case.plan.modality))}</span>")

    def _on_result(self, res: ZoneResult, fine: bool) -> None:
        mesh = self.logic.mesh
        self.display.show(res, polydata_from_arrays(mesh) if mesh is not None else None)
        self._show_band(res)
        self._show_result(res, fine)
        if fine or not (self.logic.live or self.logic.headless()):
            self.progress.setVisible(False)     # else the fine computation follows
        self.zone_shown.emit(res)

    # ------------------------------------------------------------------ figures
    def _show_result(self, res: ZoneResult, fine: bool) -> None:
        from irplan.planning.display_names import structure_name, user_text
        from irplan.planning.lesions import target_key
        from irplan.planning.margin_display import format_mam
        from irplan.planning.structures import lesion_name

        plan = self.case.plan
        lines = [f"<b>{html.escape(res.modality)}</b> zone <b>{res.volume_ml:.1f} ml</b> "
                 f"<span style='color:{_GREY}'>({res.grid_mm:g} mm grid"
                 f"{'' if fine else ', preview'})</span>"]
        m = res.margin
        if m is not None:
            col = margin_colour(m.minimal_margin_mm, plan.margin_mm)
            cov_col = _GREEN if m.tumor_coverage_percent >= 99.95 else _RED
            lesion = ("Tumour" if self.target.isHidden()   # several lesions: the target's
                      else lesion_name(target_key(plan)))
            lines.append(f"{lesion} coverage <b style='color:{cov_col}'>"
                         f"{m.tumor_coverage_percent:.1f} %</b>")
            # at the analysis box's cap the margin is "at most" it (≤), never a bare value
            lines.append(f"Minimal margin <b style='color:{col}'>{html.escape(format_mam(m))}"
                         f"</b> (required {plan.margin_mm:g} mm)")
            lines.append(f"Tumour + {plan.margin_mm:g} mm covered: "
                         f"{m.shell_coverage_percent:.1f} %")
            if m.residual_tumor_ml > 0:
                lines.append(f"<span style='color:{_RED}'>Uncovered tumour "
                             f"{m.residual_tumor_ml:.2f} ml</span>")
        if res.threshold_v_per_cm is not None:
            lines.append(f"<span style='color:{_GREY}'>Model: "
                         f"{html.escape(str(res.setting.get('name', '?')))}, |E| &ge; "
                         f"{res.threshold_v_per_cm:.0f} V/cm</span>")
        for key, label in (("inner", "Band inner"), ("outer", "Band outer")):
            b = res.band.get(key) if res.band else None
            if b:
                fig = (f", coverage {b['tumor_coverage_percent']:.1f} %, margin "
                       f"{b['minimal_margin_mm']:+.1f} mm"
                       if b.get("minimal_margin_mm") is not None else "")
                lines.append(f"<span style='color:{_GREY}'>{label} ({html.escape(b['setting'])}"
                             f", {b['threshold_v_per_cm']:.0f} V/cm): "
                             f"{b['zone_volume_ml']:.1f} ml{fig}</span>")
        if not res.converged:
            lines.append(f"<span style='color:{_RED}'>NOT CONVERGED: this zone is not a final "
                         "result</span>")
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
                notes.append(f"<span style='color:{col}'>"
                             f"{html.escape(structure_name(rv.key))}: "
                             f"{rv.volume_ml:.2f} ml in zone ({html.escape(rv.note)})</span>")
        off = [p for p in res.pairs if not lo <= p.current_a <= hi]
        if off:   # one line instead of one warning per pair (the table marks them)
            notes.append(f"<span style='color:{_ORANGE}'>&#9888; {len(off)} of {len(res.pairs)} "
                         f"pairs outside the {lo:.0f}-{hi:.0f} A target window (marked; "
                         "predicted with the pair-current model: electroporation and "
                         "heating)</span>")
        for w in res.warnings:
            if "target window" in w and off:
                continue
            notes.append(f"<span style='color:{_ORANGE}'>&#9888; "
                         f"{html.escape(user_text(w, res.modality))}</span>")
        self.notes.setText("<br>".join(notes))


def install_zone_panel(ctx: AppContext) -> ZonePanel:
    """Register :class:`ZoneLogic` as ``ctx.services.zone`` and add its panel as the
    right-hand dock ``ctx.docks["zone"]``; returns the panel. Idempotent."""
    existing = installed_panel(ctx, "zone", ZonePanel)
    if existing is not None:
        return existing
    logic = ZoneLogic(ctx.case, ctx.tasks, headless=ctx.headless, parent=ctx.parent)
    session = ctx.services.session
    if session is not None:          # a model change is a plan edit: saved, undoable
        logic.push = session.push
    ctx.services.zone = logic
    panel = ZonePanel(logic, ctx.views)
    dock = add_panel_dock(ctx, "zone", "Predicted zone", panel,
                          Qt.DockWidgetArea.RightDockWidgetArea, closable=False)
    panel.setMinimumWidth(260)
    panel.dock = dock
    dock.setVisible(bool(ctx.case.plan.needles))
    return panel
