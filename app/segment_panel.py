"""The Segment step's widget: import masks, tools, refine, brush, undo/redo — over
:class:`irplan.app.segment_logic.SegmentLogic` (``ctx.services.segment``) and the mouse
tool :class:`irplan.app.segment_tool.SegmentTool` (tools act on clicks in the MPR views).

``install_segment_panel(ctx)`` puts the panel in the workflow's "segment" step; the
mouse tool is active while that step is shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from irplan.app.context import AppContext
from irplan.app.segment_logic import EDIT_KEYS, TOOLS, SegmentLogic, structure_name
from irplan.app.segment_tool import SegmentTool
from irplan.planning.mask_ops import max_diameter_mm, volume_ml

REFINE_BUTTONS = (("grow", "Grow"), ("shrink", "Shrink"), ("smooth", "Smooth"),
                  ("fill", "Fill holes"), ("largest", "Keep largest part"))


class SegmentPanel(QWidget):
    """Workflow step 2: the controls of :class:`SegmentLogic`."""

    def __init__(self, logic: SegmentLogic, tool: SegmentTool, ctx: AppContext,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("segmentPanel")
        self.logic, self.mouse, self.ctx = logic, tool, ctx
        self.case = logic.case
        self.undo_stack = logic.undo_stack
        self._info_queued = False
        self._info_stale = False
        self._build()
        logic.message.connect(self._say)
        logic.state_changed.connect(self._on_state)
        self.case.structures_changed.connect(self._on_structures_changed)
        self.undo_stack.indexChanged.connect(self._on_undo_index)
        self._update_buttons()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(8)
        lay.addWidget(self._build_import())
        lay.addWidget(self._build_tools())
        lay.addWidget(self._build_result())
        lay.addStretch(1)
        # Ctrl+Z / Ctrl+Shift+Z anywhere in the window (the mouse and key focus are in a
        # slice view while painting) while the Segment step is shown; the plan's undo
        # actions (same keys) are off meanwhile, else the shortcut is ambiguous
        self.undo_actions: list[QAction] = []
        for text, seqs, slot in (("Undo segmentation", [QKeySequence.StandardKey.Undo],
                                  self.undo_stack.undo),
                                 ("Redo segmentation", ["Ctrl+Shift+Z", "Ctrl+Y"],
                                  self.undo_stack.redo)):
            a = QAction(text, self)
            a.setShortcuts([QKeySequence(k) for k in seqs])
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.setEnabled(False)
            a.triggered.connect(slot)
            self.addAction(a)
            self.undo_actions.append(a)

    def _build_import(self) -> QGroupBox:
        imp = QGroupBox("Import masks")
        il = QHBoxLayout(imp)
        self.btn_import = QPushButton("File…")
        self.btn_import.setToolTip("NIfTI / NRRD, DICOM SEG, DICOM RTSTRUCT or MASKS_DICOM.zip")
        self.btn_import.clicked.connect(self._ask_import_file)
        self.btn_import_dir = QPushButton("Folder…")
        self.btn_import_dir.setToolTip("A folder of NIfTI/NRRD masks or an IRCADb MASKS_DICOM")
        self.btn_import_dir.clicked.connect(self._ask_import_dir)
        il.addWidget(self.btn_import)
        il.addWidget(self.btn_import_dir)
        return imp

    def _build_tools(self) -> QGroupBox:
        lg = self.logic
        tools = QGroupBox("Tools (click in a slice view)")
        tl = QGridLayout(tools)
        self.tool_group = QButtonGroup(self)
        self.tool_group.setExclusive(True)
        self.tool_buttons: dict[str, QToolButton] = {}
        for n, (key, label, tip) in enumerate(TOOLS):
            b = QToolButton()
            b.setText(label)
            b.setToolTip(tip)
            b.setCheckable(True)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setSizePolicy(b.sizePolicy().horizontalPolicy().Expanding,
                            b.sizePolicy().verticalPolicy())
            b.clicked.connect(lambda _=False, k=key: self.set_tool(k))
            self.tool_group.addButton(b)
            tl.addWidget(b, n // 3, n % 3)
            self.tool_buttons[key] = b
        self.tool_buttons["navigate"].setChecked(True)
        row = len(TOOLS) // 3 + 1
        tl.addWidget(QLabel("Target"), row, 0)
        self.target_combo = QComboBox()
        self.target_combo.setToolTip("Structure the brush, eraser, vessel tool and refine act on")
        for k in EDIT_KEYS:
            self.target_combo.addItem(structure_name(k), k)
        self.target_combo.setCurrentIndex(0)
        self.target_combo.currentIndexChanged.connect(
            lambda _i: lg.set_target(str(self.target_combo.currentData())))
        tl.addWidget(self.target_combo, row, 1, 1, 2)
        tl.addWidget(QLabel("Brush radius"), row + 1, 0)
        self.radius_spin = _mm_spin(0.5, 50.0, 0.5, lg.radius_mm)
        self.radius_spin.valueChanged.connect(lambda v: setattr(lg, "radius_mm", float(v)))
        tl.addWidget(self.radius_spin, row + 1, 1, 1, 2)
        tl.addWidget(self._build_hu_window(), row + 5, 0, 1, 3)
        self.btn_clear_strokes = QPushButton("Clear strokes")
        self.btn_clear_strokes.setToolTip("Forget the inside/outside strokes (the lesion "
                                          "stays); the next stroke refines it as it is")
        self.btn_clear_strokes.clicked.connect(lg.clear_scribbles)
        lg.scribbles_changed.connect(self._update_buttons)
        tl.addWidget(self.btn_clear_strokes, row + 6, 0, 1, 3)
        self.btn_clear_seeds = QPushButton("Clear liver seeds")
        self.btn_clear_seeds.clicked.connect(self.clear_liver_seeds)
        tl.addWidget(self.btn_clear_seeds, row + 2, 0, 1, 2)
        self.vesselness_check = QCheckBox("Vesselness")
        self.vesselness_check.setToolTip("Vessel tool: add thin branches by Hessian vesselness "
                                         "inside the liver (needs a liver)")
        self.vesselness_check.toggled.connect(lambda on: setattr(lg, "use_vesselness", on))
        tl.addWidget(self.vesselness_check, row + 2, 2)
        tl.addWidget(QLabel("Vessel threshold"), row + 4, 0)
        self.vessel_hu_spin = QSpinBox()
        self.vessel_hu_spin.setRange(0, 600)
        self.vessel_hu_spin.setSuffix(" HU")
        self.vessel_hu_spin.setSpecialValueText("auto")
        self.vessel_hu_spin.setToolTip("Lowest HU of the vessel tool; auto = half way between "
                                       "the clicked vessel and the liver")
        self.vessel_hu_spin.valueChanged.connect(   # 0 = auto
            lambda v: setattr(lg, "vessel_lower_hu", float(v) or None))
        tl.addWidget(self.vessel_hu_spin, row + 4, 1, 1, 2)
        auto = QHBoxLayout()
        self.btn_bone = QPushButton("Bone (auto)")
        self.btn_bone.clicked.connect(lambda: lg.run_auto("bone"))
        self.btn_lung = QPushButton("Lung (auto)")
        self.btn_lung.clicked.connect(lambda: lg.run_auto("lung"))
        auto.addWidget(self.btn_bone)
        auto.addWidget(self.btn_lung)
        tl.addLayout(auto, row + 3, 0, 1, 3)
        return tools

    def _build_hu_window(self) -> QWidget:
        """Brush/eraser limited to an HU window (threshold painting)."""
        w = QWidget()
        hl = QHBoxLayout(w)
        hl.setContentsMargins(0, 0, 0, 0)
        self.hu_check = QCheckBox("Brush only")
        self.hu_check.setToolTip("Brush and eraser change only voxels whose CT value lies "
                                 "in this HU window")
        self.hu_low_spin, self.hu_high_spin = QSpinBox(), QSpinBox()
        for sp, v in ((self.hu_low_spin, 0), (self.hu_high_spin, 100)):
            sp.setRange(-1024, 3071)
            sp.setSuffix(" HU")
            sp.setValue(v)
            sp.valueChanged.connect(self._hu_window_changed)
        self.hu_check.toggled.connect(self._hu_window_changed)
        hl.addWidget(self.hu_check)
        hl.addWidget(self.hu_low_spin)
        hl.addWidget(QLabel(".."))
        hl.addWidget(self.hu_high_spin)
        return w

    def set_brush_hu_window(self, window: tuple[float, float] | None) -> None:
        """Limit the brush/eraser to ``window`` (low, high) HU; None: every voxel."""
        if window is not None:
            self.hu_low_spin.setValue(int(round(min(window))))
            self.hu_high_spin.setValue(int(round(max(window))))
        self.hu_check.setChecked(window is not None)
        self._hu_window_changed()

    def _hu_window_changed(self, *_a: Any) -> None:
        on = self.hu_check.isChecked()
        self.logic.brush_hu_window = ((float(self.hu_low_spin.value()),
                                       float(self.hu_high_spin.value())) if on else None)
        self.hu_low_spin.setEnabled(on)
        self.hu_high_spin.setEnabled(on)

    def _build_result(self) -> QGroupBox:
        prop = QGroupBox("Result")
        pl = QVBoxLayout(prop)
        self.status = QLabel("Choose a tool, then click in a slice view.")
        self.status.setWordWrap(True)
        self.status.setObjectName("segmentStatus")
        pl.addWidget(self.status)
        ab = QHBoxLayout()
        self.btn_accept = QPushButton("Accept")
        self.btn_accept.clicked.connect(self.accept)
        self.btn_reject = QPushButton("Reject")
        self.btn_reject.clicked.connect(self.reject)
        ab.addWidget(self.btn_accept)
        ab.addWidget(self.btn_reject)
        pl.addLayout(ab)
        ref = QGridLayout()
        ref.addWidget(QLabel("Step"), 0, 0)
        self.step_spin = _mm_spin(0.5, 20.0, 0.5, self.logic.step_mm)
        self.step_spin.valueChanged.connect(lambda v: setattr(self.logic, "step_mm", float(v)))
        ref.addWidget(self.step_spin, 0, 1)
        self.refine_buttons: dict[str, QPushButton] = {}
        for n, (op, label) in enumerate(REFINE_BUTTONS):
            b = QPushButton(label)
            b.clicked.connect(lambda _=False, o=op: self.refine(o))
            ref.addWidget(b, 1 + n // 2, n % 2)
            self.refine_buttons[op] = b
        pl.addLayout(ref)
        ur = QHBoxLayout()
        self.btn_undo = QPushButton("Undo")
        self.btn_undo.clicked.connect(self.undo_stack.undo)
        self.btn_redo = QPushButton("Redo")
        self.btn_redo.clicked.connect(self.undo_stack.redo)
        ur.addWidget(self.btn_undo)
        ur.addWidget(self.btn_redo)
        pl.addLayout(ur)
        self.info = QLabel("")
        self.info.setObjectName("segmentInfo")
        self.info.setStyleSheet("color:#9aa4b2")
        pl.addWidget(self.info)
        return prop

    # ------------------------------------------------------------------ the logic's API
    @property
    def proposal_ready(self) -> Any:
        """Signal(str): the structure key of a new proposal."""
        return self.logic.proposal_ready

    def set_target(self, key: str) -> None:
        self.logic.set_target(key)

    def set_tool(self, tool: str) -> None:
        """Activate a tool ("navigate", "tumor", "liver", "vessel", "brush", "erase")."""
        if tool not in self.tool_buttons:
            raise KeyError(tool)
        self.tool_buttons[tool].setChecked(True)
        self.mouse.set_tool(tool)
        self._say(dict((k, t) for k, _, t in TOOLS)[tool])

    def activate(self) -> None:
        """The Segment step is shown: the mouse tool and Ctrl+Z (segmentation) are back."""
        self._take_undo_keys(True)
        self.set_tool(self.logic.tool)
        if self._info_stale:
            self._update_info()

    def deactivate(self) -> None:
        """The user left the Segment step: the mouse navigates, Ctrl+Z undoes plan edits."""
        self.mouse.deactivate()
        self._take_undo_keys(False)

    def _take_undo_keys(self, on: bool) -> None:
        for a in self.undo_actions:
            a.setEnabled(on)
        for key in ("plan_undo", "plan_redo"):
            plan_action = self.ctx.actions.get(key)
            if plan_action is not None:
                plan_action.setEnabled(not on)

    def accept(self) -> None:
        self.logic.accept()

    def reject(self) -> None:
        self.logic.reject()

    def refine(self, op: str) -> None:
        self.logic.refine(op)

    def run_auto(self, which: str) -> None:
        self.logic.run_auto(which)

    def clear_liver_seeds(self) -> None:
        self.logic.clear_liver_seeds()

    def import_path(self, path: str | Path) -> None:
        self.logic.import_path(path)

    def sync_with_case(self) -> None:
        """Installed after a case was loaded: start from that CT."""
        self.logic.reset()

    # ------------------------------------------------------------------ import dialogs
    def _ask_import_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import masks", str(self.ctx.case_folder()),
            "Masks (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.dcm *.zip);;All files (*)")
        if path:
            self.import_path(path)

    def _ask_import_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Import a folder of masks",
                                                str(self.ctx.case_folder()))
        if path:
            self.import_path(path)

    # ------------------------------------------------------------------ state
    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color:#ff6b6b" if error else "")

    def _on_state(self) -> None:
        i = self.target_combo.findData(self.logic.target_key)
        if i < 0:
            self.target_combo.addItem(structure_name(self.logic.target_key),
                                      self.logic.target_key)
            i = self.target_combo.count() - 1
        if i != self.target_combo.currentIndex():
            self.target_combo.blockSignals(True)
            self.target_combo.setCurrentIndex(i)
            self.target_combo.blockSignals(False)
        self._update_info()

    def _on_undo_index(self, _index: int) -> None:
        import shiboken6

        if shiboken6.isValid(self.btn_undo):  # not while the panel is being destroyed
            self._update_buttons()

    def _update_buttons(self) -> None:
        lg = self.logic
        has_ct = self.case.ct is not None
        pend = lg.pending is not None
        self.btn_accept.setEnabled(pend)
        self.btn_reject.setEnabled(pend)
        has_mask = (lg.pending or lg.target_key) in self.case.structures
        for b in self.refine_buttons.values():
            b.setEnabled(has_mask and not lg.busy)
        self.btn_undo.setEnabled(self.undo_stack.canUndo())
        self.btn_redo.setEnabled(self.undo_stack.canRedo())
        for w in (self.btn_import, self.btn_import_dir, self.btn_bone, self.btn_lung):
            w.setEnabled(has_ct and not lg.busy)
        self.btn_clear_seeds.setEnabled(bool(lg.liver_seeds))
        self.btn_clear_strokes.setEnabled(lg.scribbles is not None)

    def _update_info(self) -> None:
        key = self.logic.pending or self.logic.target_key
        m = self.case.structures.get(key)
        if m is not None and not self.isVisible():
            # measured when the Segment step is shown (the diameter is not free)
            self._info_stale = True
            self._update_buttons()
            return
        self._info_stale = False
        if m is None:
            self.info.setText(f"{structure_name(key)}: none yet")
        else:
            self.info.setText(f"{structure_name(key)}: {volume_ml(m):.1f} mL, largest "
                              f"diameter {max_diameter_mm(m):.1f} mm")
        self._update_buttons()

    def _on_structures_changed(self, _key: str) -> None:
        # a case load sets several structures in one go: measure once, after them
        if self.logic.stroke is None and not self._info_queued:
            self._info_queued = True
            QTimer.singleShot(0, self._queued_update_info)

    def _queued_update_info(self) -> None:
        self._info_queued = False
        self._update_info()


def _mm_spin(lo: float, hi: float, step: float, value: float) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    s.setValue(value)
    s.setSuffix(" mm")
    return s


def install_segment_panel(ctx: AppContext) -> SegmentPanel:
    """Register :class:`SegmentLogic` as ``ctx.services.segment`` and put its panel in
    the workflow's "segment" step; the mouse tool is active while that step is shown."""
    logic = SegmentLogic(ctx.case, ctx.tasks, parent=ctx.parent)
    ctx.services.segment = logic
    panel = SegmentPanel(logic, SegmentTool(logic, ctx.views), ctx)
    ctx.workflow.set_panel("segment", panel)
    ctx.workflow.step_changed.connect(
        lambda s: panel.activate() if s == "segment" else panel.deactivate())
    return panel
