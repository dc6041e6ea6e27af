"""The "Plan" step panel: modality/device, placement tools, the needle table (typed
tip/entry coordinates in LPS mm, exposure), IRE array and thermal applicator settings, the
safety findings. A view of :class:`irplan.app.plan_session.PlanSession`: it edits the plan
only through the session and redraws on the session's events.
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from irplan.app.context import AppContext
from irplan.app.plan_session import PlanSession
from irplan.planning.commands import SetAttrs, set_needle_fields
from irplan.planning.devices import catalogue
from irplan.planning.display_names import needle_label
from irplan.planning.errors import IrplanError
from irplan.planning.ire_array import TEMPLATES, electrode_pairs
from irplan.planning.needle_geometry import needle_angles
from irplan.planning.plan import MODALITIES
from irplan.viewers.needle_actors import SEVERITY_RGB

_COLS = ("Name", "Depth mm", "CC°", "LR°", "Exposure mm", "Plane")
_AXES = ("L", "P", "S")


def rgb_hex(rgb: tuple[float, float, float]) -> str:
    r, g, b = (int(255 * c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


class NeedlePanel(QWidget):
    """The "Plan" step: modality/device, placement tools, needle table, findings."""

    def __init__(self, session: PlanSession, ctx: AppContext) -> None:
        super().__init__()
        self.session = session
        self.ctx = ctx
        self._refreshing = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)

        self.advice_label = QLabel()
        self.advice_label.setWordWrap(True)
        self.advice_label.setObjectName("adviceLabel")
        lay.addWidget(self.advice_label)

        box = QGroupBox("Safety findings")
        v = QVBoxLayout(box)
        self.findings_list = QListWidget()
        self.findings_list.setWordWrap(True)
        self.findings_list.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.findings_list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.findings_list.setMinimumHeight(190)
        self.findings_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.findings_list.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.findings_list.itemClicked.connect(self._on_finding_clicked)
        v.addWidget(self.findings_list)
        self.summary_label = QLabel()
        v.addWidget(self.summary_label)
        lay.addWidget(box)

        box = QGroupBox("Modality and device")
        form = QFormLayout(box)
        self.modality_combo = QComboBox()
        self.modality_combo.addItems(list(MODALITIES))
        self.modality_combo.activated.connect(self._on_modality)
        self.device_combo = QComboBox()
        self.device_combo.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.device_combo.activated.connect(self._on_device)
        self.device_note = QLabel()
        self.device_note.setWordWrap(True)
        self.device_note.setStyleSheet("color:#c9a35a")
        self.margin_spin = QDoubleSpinBox()
        self.margin_spin.setRange(0, 30)
        self.margin_spin.setSuffix(" mm")
        self.margin_spin.setDecimals(1)
        self.margin_spin.editingFinished.connect(
            lambda: self.session.push(SetAttrs("plan", margin_mm=self.margin_spin.value()))
            if self.margin_spin.value() != self.session.plan.margin_mm else None)
        form.addRow("Modality", self.modality_combo)
        form.addRow("Device", self.device_combo)
        form.addRow(self.device_note)
        form.addRow("Margin", self.margin_spin)
        # the lesion to treat, before any needle (the zone dock shows the same choice once
        # there is a zone): "Place at tumour" and the IRE template aim at it
        from irplan.app.target_combo import TargetCombo

        self.target = TargetCombo(self.session.case, self.session.push)
        form.addRow(self.target)
        lay.addWidget(box)

        box = QGroupBox("Needles")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        self.place_btn = QPushButton("Place")
        self.place_btn.setToolTip("Place a needle: click the target, then the entry point, "
                                  "in a slice view (N; Esc cancels)")
        self.place_btn.clicked.connect(self.session.start_placing)
        self.delete_btn = QPushButton("Delete")
        self.delete_btn.clicked.connect(self.session.delete_selected)
        self.undo_btn = QPushButton("Undo")
        self.undo_btn.clicked.connect(self.session.undo)
        self.redo_btn = QPushButton("Redo")
        self.redo_btn.clicked.connect(self.session.redo)
        for b in (self.place_btn, self.delete_btn, self.undo_btn, self.redo_btn):
            b.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            row.addWidget(b)
        v.addLayout(row)
        self.snap_check = QCheckBox("Snap target to tumour centre")
        self.snap_btn = QPushButton("Move tip to tumour centre")
        self.snap_btn.setToolTip("Move the selected needle (the array when locked) so its tip "
                                 "is at the centroid of the nearest lesion")
        self.snap_btn.clicked.connect(self.session.snap_selected_to_tumour)
        v.addWidget(self.snap_check)
        v.addWidget(self.snap_btn)
        self.table = QTableWidget(0, len(_COLS))
        self.table.setHorizontalHeaderLabels(list(_COLS))
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setMinimumHeight(110)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        v.addWidget(self.table)
        grid = QFormLayout()
        self.coord_spins: dict[tuple[str, int], QDoubleSpinBox] = {}
        for which in ("tip", "entry"):
            r = QHBoxLayout()
            for k, ax in enumerate(_AXES):
                sp = QDoubleSpinBox()
                sp.setRange(-5000, 5000)
                sp.setDecimals(1)
                sp.setToolTip(f"{'Tip' if which == 'tip' else 'Entry'} {ax} (LPS mm)")
                sp.setButtonSymbols(QDoubleSpinBox.ButtonSymbols.NoButtons)
                sp.setKeyboardTracking(False)
                sp.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
                sp.valueChanged.connect(lambda _v, w=which: self._on_coord(w))
                self.coord_spins[(which, k)] = sp
                r.addWidget(sp)
            grid.addRow("Tip L P S" if which == "tip" else "Entry L P S", r)
        v.addLayout(grid)
        self.pairs_label = QLabel()
        self.pairs_label.setWordWrap(True)
        v.addWidget(self.pairs_label)
        lay.addWidget(box)

        self.ire_box = QGroupBox("IRE array")
        f = QFormLayout(self.ire_box)
        self.template_combo = QComboBox()
        self.template_combo.addItems(list(TEMPLATES))
        self.template_combo.setCurrentText("square")
        self.spacing_spin = QDoubleSpinBox()
        self.spacing_spin.setRange(0, 25)
        self.spacing_spin.setSuffix(" mm")
        self.spacing_spin.setSpecialValueText("auto (15/20 mm by size)")
        self.spacing_spin.setValue(0)
        self.apply_btn = QPushButton("Apply around tumour")
        self.apply_btn.clicked.connect(
            lambda: self.session.apply_template(self.template_combo.currentText(),
                                              self.spacing_spin.value() or None))
        self.lock_check = QCheckBox("Lock parallel")
        self.lock_check.setToolTip("Moving one electrode keeps the array parallel")
        self.lock_check.setChecked(True)
        self.voltage_spin = QSpinBox()
        self.voltage_spin.setRange(0, 3000)
        self.voltage_spin.setSingleStep(50)
        self.voltage_spin.setSuffix(" V")
        self.voltage_spin.setSpecialValueText("from spacing")
        self.voltage_spin.editingFinished.connect(self._on_voltage)
        f.addRow("Template", self.template_combo)
        f.addRow("Spacing", self.spacing_spin)
        f.addRow(self.apply_btn)
        f.addRow(self.lock_check)
        f.addRow("Voltage", self.voltage_spin)
        lay.addWidget(self.ire_box)

        self.thermal_box = QGroupBox("Thermal applicator")
        f = QFormLayout(self.thermal_box)
        self.power_spin = QDoubleSpinBox()
        self.power_spin.setRange(0, 250)
        self.power_spin.setSuffix(" W")
        self.power_spin.setSpecialValueText("table default")
        self.time_spin = QDoubleSpinBox()
        self.time_spin.setRange(0, 3600)
        self.time_spin.setSuffix(" s")
        self.time_spin.setSpecialValueText("table default")
        self.power_spin.editingFinished.connect(self._on_thermal)
        self.time_spin.editingFinished.connect(self._on_thermal)
        self.antenna_btn = QPushButton("Place at tumour")
        self.antenna_btn.setToolTip("One applicator along the selected needle's direction "
                                    "(else antero-posterior), its zone centred on the tumour")
        self.antenna_btn.clicked.connect(self.session.place_thermal_at_tumour)
        f.addRow("Power", self.power_spin)
        f.addRow("Time", self.time_spin)
        f.addRow(self.antenna_btn)
        lay.addWidget(self.thermal_box)

        self.save_btn = QPushButton("Save plan…")
        self.save_btn.clicked.connect(self._save)
        lay.addWidget(self.save_btn)
        lay.addStretch(1)
        # edit options live in the session (its logic never reads a widget)
        self.lock_check.toggled.connect(lambda on: setattr(session, "lock_parallel", on))
        self.snap_check.toggled.connect(lambda on: setattr(session, "snap_to_tumour", on))
        self.device_combo.currentIndexChanged.connect(
            lambda _i: setattr(session, "device_id", self.device_combo.currentData()))
        session.lock_parallel = self.lock_check.isChecked()
        session.snap_to_tumour = self.snap_check.isChecked()
        session.findings_changed.connect(self.refresh_all)
        session.stack_changed.connect(self.update_undo)
        session.selection_changed.connect(self.select_row)
        self.refresh_all()

    def _save(self) -> None:
        from irplan.app.plan_prompts import ask_save_plan

        ask_save_plan(self.ctx, self.session)

    # ------------------------------------------------------------------ refresh
    def refresh_all(self) -> None:
        plan = self.session.plan
        self._refreshing = True
        try:
            self.modality_combo.setCurrentText(plan.modality)
            self._fill_devices()
            self.margin_spin.setValue(float(plan.margin_mm))
            self.voltage_spin.setValue(int(plan.ire.voltage_v or 0))
            self.power_spin.setValue(float(plan.thermal.power_w or 0))
            self.time_spin.setValue(float(plan.thermal.time_s or 0))
            if not plan.is_ire:   # "table default" says which value the zone uses
                from irplan.planning.thermal_defaults import resolve_thermal

                th = resolve_thermal(plan)[0]
                self.power_spin.setSpecialValueText(
                    f"table default ({th.power_w:g} W)" if th.power_w else "table default")
                self.time_spin.setSpecialValueText(
                    f"table default ({th.time_s:g} s)" if th.time_s else "table default")
            self.ire_box.setVisible(plan.is_ire)
            self.thermal_box.setVisible(not plan.is_ire)
            self._fill_table()
            self._fill_findings()
            self._fill_advice()
            self.update_undo()
            self._update_enabled()
        finally:
            self._refreshing = False

    def _update_enabled(self) -> None:
        """Buttons that cannot act now are disabled and say why (issue 12)."""
        from irplan.app.enable_state import set_enabled

        s = self.session
        gen = (s.case.uid, s.case.structures_generation)
        if getattr(self, "_tumour_gen", None) != gen:      # once per structure change
            self._tumour_gen, self._has_tumour = gen, s.tumour_mask() is not None
        has_ct, tumour = s.case.ct is not None, self._has_tumour
        sel = s.selected is not None and s.selected < len(s.plan.needles)
        no_tumour = "the case has no tumour structure (Segment step)"
        set_enabled(self.place_btn, has_ct, "open a CT first")
        set_enabled(self.delete_btn, sel, "select a needle first (table row or its tip)")
        set_enabled(self.snap_btn, sel and tumour,
                    no_tumour if not tumour else "select a needle first")
        set_enabled(self.apply_btn, tumour, no_tumour)
        set_enabled(self.antenna_btn, tumour, no_tumour)

    def update_undo(self) -> None:
        st = self.session.stack
        self.undo_btn.setEnabled(st.can_undo)
        self.redo_btn.setEnabled(st.can_redo)
        self.undo_btn.setToolTip(f"Undo {st.undo_text}" if st.can_undo else "")
        self.redo_btn.setToolTip(f"Redo {st.redo_text}" if st.can_redo else "")

    def _fill_devices(self) -> None:
        plan = self.session.plan
        cur = self.device_combo.currentData()
        self.device_combo.clear()
        for d in catalogue().values():
            if d.modality == plan.modality:
                self.device_combo.addItem(d.name, d.id)
        used = plan.needles[0].device if plan.needles else cur
        k = self.device_combo.findData(used)
        self.device_combo.setCurrentIndex(max(k, 0))
        dev = catalogue().get(self.device_combo.currentData() or "")
        self.device_note.setText("Figures partly user-supplied (manufacturer IFU not "
                                 "verified): check them." if dev and dev.unverified else "")

    def _fill_table(self) -> None:
        plan = self.session.plan
        self.table.setRowCount(len(plan.needles))
        sev = self.session.needle_severities()
        for r, n in enumerate(plan.needles):
            a = needle_angles(n)
            vals = [needle_label(n, r), f"{a.depth_mm:.1f}", f"{a.cc_angle_deg:.1f}",
                    f"{a.lr_angle_deg:.1f}", "" if n.exposure_mm is None else f"{n.exposure_mm:g}",
                    a.plane_kind]
            for c, text in enumerate(vals):
                it = QTableWidgetItem(text)
                if not (c == 4 and plan.is_ire):
                    it.setFlags(it.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(r, c, it)
            rgb = SEVERITY_RGB.get(sev[r] if r < len(sev) else None, SEVERITY_RGB[None])
            self.table.item(r, 0).setForeground(QBrush(QColor(rgb_hex(rgb))))
            self.table.item(r, 0).setToolTip(f"{n.device}; worst finding: {sev[r] or 'none'}")
        sel = self.session.selected
        if sel is not None and sel < len(plan.needles):
            self.table.selectRow(sel)
        self._fill_coords()
        if plan.is_ire and len(plan.needles) >= 2:
            pairs = electrode_pairs(plan.needles)
            names = [needle_label(n, i) for i, n in enumerate(plan.needles)]
            self.pairs_label.setText("Pairs: " + ", ".join(
                f"{names[p.i]}–{names[p.j]} {p.spacing_mm:.1f} mm" for p in pairs))
        else:
            self.pairs_label.setText("")

    def _fill_coords(self) -> None:
        plan = self.session.plan
        sel = self.session.selected
        ok = sel is not None and sel < len(plan.needles)
        for (which, k), sp in self.coord_spins.items():
            sp.blockSignals(True)
            sp.setEnabled(ok)
            if ok:
                n = plan.needles[sel]
                sp.setSpecialValueText("")
                sp.setValue(float((n.tip_lps_mm if which == "tip" else n.entry_lps_mm)[k]))
            else:   # no needle selected: no figures (not the previous case's)
                sp.setSpecialValueText("—")
                sp.setValue(sp.minimum())
            sp.blockSignals(False)

    def _fill_findings(self) -> None:
        self.findings_list.clear()
        counts = {"error": 0, "warning": 0, "info": 0}
        from irplan.planning.display_names import code_text, user_text

        modality = self.session.plan.modality
        for f in self.session.findings:
            counts[f.severity] += 1
            text = user_text(f.message, modality)      # no internal ids (portal_vein ...)
            it = QListWidgetItem(f"{f.severity.upper()}: {text}")
            rgb = SEVERITY_RGB[f.severity] if f.severity != "info" else (0.62, 0.78, 0.95)
            it.setForeground(QBrush(QColor(rgb_hex(rgb))))
            it.setToolTip(f"{code_text(f.code).capitalize()}: {text}")
            it.setData(Qt.ItemDataRole.UserRole, f.needles)
            self.findings_list.addItem(it)
        self.summary_label.setText(
            f"{counts['error']} error(s), {counts['warning']} warning(s), "
            f"{counts['info']} note(s)" + ("" if self.session.checker else
                                           " — anatomy checks pending"))

    def _fill_advice(self) -> None:
        checker = self.session.checker
        a = checker.advice() if checker is not None else None
        if a is None:
            self.advice_label.setText("")
            return
        color = "#ffb347" if a.recommended == "IRE" else "#9fd89f"
        self.advice_label.setText(f"<span style='color:{color}'>{html.escape(a.message)}</span>")

    def select_row(self, index: int | None) -> None:
        self._refreshing = True
        try:
            if index is None:
                self.table.clearSelection()
            else:
                self.table.selectRow(index)
            self._fill_coords()
            self._update_enabled()
        finally:
            self._refreshing = False

    # ------------------------------------------------------------------ edits
    def _on_modality(self) -> None:
        from irplan.app.modality_prompt import switch_modality

        m = self.modality_combo.currentText()
        if m != self.session.plan.modality and not switch_modality(
                self.session, self, m, self.ctx.headless()):
            self.refresh_all()      # cancelled: the combo shows the plan's modality again

    def _on_device(self) -> None:
        dev = self.device_combo.currentData()
        i = self.session.selected
        if dev and i is not None and i < len(self.session.plan.needles) \
                and self.session.plan.needles[i].device != dev:
            self.session.push(set_needle_fields(self.session.plan, i, device=dev))

    def _on_voltage(self) -> None:
        v = self.voltage_spin.value()
        new = float(v) if v else None
        if new != self.session.plan.ire.voltage_v:
            self.session.push(SetAttrs("ire", voltage_v=new))

    def _on_thermal(self) -> None:
        p = self.power_spin.value() or None
        t = self.time_spin.value() or None
        th = self.session.plan.thermal
        if (p, t) != (th.power_w, th.time_s):
            self.session.push(SetAttrs("thermal", power_w=p, time_s=t))

    def _on_table_selection(self) -> None:
        if self._refreshing:
            return
        rows = {i.row() for i in self.table.selectedIndexes()}
        if len(rows) == 1:
            r = rows.pop()
            if r != self.session.selected:
                self.session.select(r)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._refreshing or item.column() != 4:
            return
        r = item.row()
        plan = self.session.plan
        if r >= len(plan.needles):
            return
        try:
            value = float(item.text().replace(",", "."))
            self.session.push(set_needle_fields(plan, r, exposure_mm=value))
        except ValueError:
            self.ctx.show_status(
                f"exposure: '{item.text()}' is not a number (mm)", 6000)
            self.session.request_recheck()
        except IrplanError as exc:
            self.ctx.show_status(str(exc), 6000)
            self.session.request_recheck()

    def _on_coord(self, which: str) -> None:
        """A typed tip/entry coordinate (LPS mm) of the selected needle."""
        sel = self.session.selected
        if self._refreshing or sel is None or sel >= len(self.session.plan.needles):
            return
        n = self.session.plan.needles[sel]
        old = n.tip_lps_mm if which == "tip" else n.entry_lps_mm
        p = old.copy()
        for k in range(3):   # only the typed axis changes; the others keep full precision
            v = self.coord_spins[(which, k)].value()
            if abs(v - round(float(old[k]), 1)) > 1e-9:
                p[k] = v
        if np.array_equal(p, old):
            return
        self.session.move_point(sel, which, p)

    def _on_finding_clicked(self, item: QListWidgetItem) -> None:
        needles = item.data(Qt.ItemDataRole.UserRole) or []
        if needles:
            i = int(needles[0])
            self.session.select(i)
            if i < len(self.session.plan.needles):
                self.ctx.views.set_crosshair(self.session.plan.needles[i].tip_lps_mm)
