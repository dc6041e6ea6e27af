"""The Segment step: import masks, semi-automatic tools, refine, brush, undo/redo.

Tools act on clicks in the MPR views (through ``ViewSet.set_tool``); all points are LPS mm:

* Tumour: click inside the lesion (drag to give its radius) -> region growing;
* Liver: each click adds a seed and re-runs the liver tool with all seeds;
* Vessel: click in an enhanced vessel (limited to the liver when there is one);
* Brush / Eraser: paint or erase a disc of the chosen radius (mm) in the shown slice.

Each result is a proposal shown at once as its structure: Accept keeps it, Reject puts
back what was there, Refine (grow / shrink by mm, smooth, fill holes, keep largest part)
edits it. Every change is one step of the panel's undo stack (Ctrl+Z / Ctrl+Shift+Z).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoCommand, QUndoStack
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

from irplan.planning import segmentation as seg
from irplan.planning.case import Case
from irplan.planning.errors import IrplanError
from irplan.planning.mask_ops import MaskEdit, brush_stroke, max_diameter_mm, volume_ml
from irplan.planning.structures import structure_types
from irplan.planning.volume import Volume

TOOLS: tuple[tuple[str, str, str], ...] = (
    ("navigate", "Navigate", "Clicks move the crosshair"),
    ("tumor", "Tumour", "Click inside a hypodense lesion; drag to give its radius"),
    ("liver", "Liver", "Click in the liver parenchyma; more clicks add seeds"),
    ("vessel", "Vessel", "Click inside an enhanced vessel"),
    ("brush", "Brush", "Paint the target structure in the shown slice"),
    ("erase", "Eraser", "Erase the target structure in the shown slice"),
)
VESSEL_KEYS = ("portal_vein", "hepatic_vein", "artery", "bile_duct", "vessels")
EDIT_KEYS = ("tumor", "liver", "portal_vein", "hepatic_vein", "artery", "bile_duct", "bone",
             "lung", "ablation_zone")


def _name(key: str) -> str:
    st = structure_types().get(key)
    return st.name if st else key


# ================================================================== undo commands
class ReplaceStructure(QUndoCommand):
    """Set a structure to ``after`` (None = remove); undo puts ``before`` back."""

    def __init__(self, case: Case, key: str, before: Volume | None, after: Volume | None,
                 text: str) -> None:
        super().__init__(text)
        self.case, self.key, self.before, self.after = case, key, before, after

    def _apply(self, vol: Volume | None) -> None:
        if vol is None:
            self.case.remove_structure(self.key)
        else:
            self.case.set_structure(self.key, vol)

    def redo(self) -> None:
        self._apply(self.after)

    def undo(self) -> None:
        self._apply(self.before)


class BrushCommand(QUndoCommand):
    """One brush/eraser stroke (already applied when pushed); undo restores the voxels."""

    def __init__(self, case: Case, key: str, mask: Volume, edits: list[MaskEdit],
                 created: bool, text: str) -> None:
        super().__init__(text)
        self.case, self.key, self.mask, self.edits, self.created = case, key, mask, edits, created
        self._first = True

    def redo(self) -> None:
        if self._first:  # painted live during the drag
            self._first = False
            return
        for e in self.edits:
            e.redo(self.mask)
        self.case.set_structure(self.key, self.mask)

    def undo(self) -> None:
        for e in reversed(self.edits):
            e.undo(self.mask)
        if self.created:
            self.case.remove_structure(self.key)
        else:
            self.case.set_structure(self.key, self.mask)


# ================================================================== view tool
class _ViewTool:
    """Receives plain left-button presses from the MPR views (``ViewSet.set_tool``)."""

    def __init__(self, panel: SegmentPanel) -> None:
        self.panel = panel
        self.start: np.ndarray | None = None

    def press(self, view: Any, p_lps_mm: np.ndarray) -> bool:
        return self.panel.tool_press(view, np.asarray(p_lps_mm, float))

    def move(self, view: Any, p_lps_mm: np.ndarray) -> None:
        self.panel.tool_move(view, np.asarray(p_lps_mm, float))

    def release(self, view: Any, p_lps_mm: np.ndarray) -> None:
        self.panel.tool_release(view, np.asarray(p_lps_mm, float))

    def hover(self, view: Any, p_lps_mm: np.ndarray) -> None:
        self.panel.tool_hover(view, np.asarray(p_lps_mm, float))


def _circle_points(centre: np.ndarray, normal: np.ndarray, radius_mm: float,
                   n: int = 64) -> np.ndarray:
    nrm = np.asarray(normal, float) / np.linalg.norm(normal)
    a = np.cross(nrm, [1.0, 0, 0] if abs(nrm[0]) < 0.9 else [0, 1.0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(nrm, a)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return centre + radius_mm * (np.outer(np.cos(t), a) + np.outer(np.sin(t), b))


def _circle_poly(centre: np.ndarray, normal: np.ndarray, radius_mm: float, n: int = 64):
    """A closed circle (LPS mm) in the plane with ``normal``: vtkPolyData lines."""
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

    pts = vtkPoints()
    lines = vtkCellArray()
    for x in _circle_points(centre, normal, radius_mm, n):
        pts.InsertNextPoint(*x)
    lines.InsertNextCell(n + 1)
    for i in [*range(n), 0]:
        lines.InsertCellPoint(i)
    poly = vtkPolyData()
    poly.SetPoints(pts)
    poly.SetLines(lines)
    return poly


# ================================================================== panel
class SegmentPanel(QWidget):
    """Workflow step 2. ``tasks``: the window's TaskRunner (None: run synchronously)."""

    proposal_ready = Signal(str)   # structure key of a new proposal
    failed = Signal(str)           # one-line message
    busy_changed = Signal(bool)

    def __init__(self, case: Case, views: Any, tasks: Any = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("segmentPanel")
        self.case, self.views, self.tasks = case, views, tasks
        self.undo_stack = QUndoStack(self)
        self.tool = "navigate"
        self.pending: str | None = None          # key of an unaccepted proposal
        self._pending_cmd: QUndoCommand | None = None
        self.liver_seeds: list[np.ndarray] = []
        self._stroke: dict[str, Any] | None = None
        self._info_queued = False
        self._info_stale = False
        self._drag_view: Any = None
        self._drag_start: np.ndarray | None = None
        self._brush_view: Any = None
        self._brush_poly: Any = None
        self._busy = False
        self._view_tool = _ViewTool(self)
        self._build()
        self.case.structures_changed.connect(self._on_structures_changed)
        self.case.ct_changed.connect(self._on_ct_changed)
        self.undo_stack.indexChanged.connect(self._on_undo_index)
        self._update_buttons()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(8)

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
        lay.addWidget(imp)

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
            self.target_combo.addItem(_name(k), k)
        self.target_combo.setCurrentIndex(0)
        self.target_combo.currentIndexChanged.connect(lambda _i: self._update_info())
        tl.addWidget(self.target_combo, row, 1, 1, 2)
        tl.addWidget(QLabel("Brush radius"), row + 1, 0)
        self.radius_spin = QDoubleSpinBox()
        self.radius_spin.setRange(0.5, 50.0)
        self.radius_spin.setSingleStep(0.5)
        self.radius_spin.setValue(5.0)
        self.radius_spin.setSuffix(" mm")
        tl.addWidget(self.radius_spin, row + 1, 1, 1, 2)
        self.btn_clear_seeds = QPushButton("Clear liver seeds")
        self.btn_clear_seeds.clicked.connect(self.clear_liver_seeds)
        tl.addWidget(self.btn_clear_seeds, row + 2, 0, 1, 2)
        self.vesselness_check = QCheckBox("Vesselness")
        self.vesselness_check.setToolTip("Vessel tool: add thin branches by Hessian vesselness "
                                         "inside the liver (needs a liver)")
        tl.addWidget(self.vesselness_check, row + 2, 2)
        tl.addWidget(QLabel("Vessel threshold"), row + 4, 0)
        self.vessel_hu_spin = QSpinBox()
        self.vessel_hu_spin.setRange(0, 600)
        self.vessel_hu_spin.setSuffix(" HU")
        self.vessel_hu_spin.setSpecialValueText("auto")
        self.vessel_hu_spin.setToolTip("Lowest HU of the vessel tool; auto = half way between "
                                       "the clicked vessel and the liver")
        tl.addWidget(self.vessel_hu_spin, row + 4, 1, 1, 2)
        auto = QHBoxLayout()
        self.btn_bone = QPushButton("Bone (auto)")
        self.btn_bone.clicked.connect(lambda: self.run_auto("bone"))
        self.btn_lung = QPushButton("Lung (auto)")
        self.btn_lung.clicked.connect(lambda: self.run_auto("lung"))
        auto.addWidget(self.btn_bone)
        auto.addWidget(self.btn_lung)
        tl.addLayout(auto, row + 3, 0, 1, 3)
        lay.addWidget(tools)

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
        self.step_spin = QDoubleSpinBox()
        self.step_spin.setRange(0.5, 20.0)
        self.step_spin.setSingleStep(0.5)
        self.step_spin.setValue(1.0)
        self.step_spin.setSuffix(" mm")
        ref.addWidget(self.step_spin, 0, 1)
        self.refine_buttons: dict[str, QPushButton] = {}
        for n, (op, label) in enumerate((("grow", "Grow"), ("shrink", "Shrink"),
                                         ("smooth", "Smooth"), ("fill", "Fill holes"),
                                         ("largest", "Keep largest part"))):
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
        lay.addWidget(prop)
        lay.addStretch(1)

        for text, seq, slot in (("Undo segmentation", QKeySequence.StandardKey.Undo,
                                 self.undo_stack.undo),
                                ("Redo segmentation", QKeySequence.StandardKey.Redo,
                                 self.undo_stack.redo)):
            a = QAction(text, self)
            a.setShortcut(QKeySequence(seq))
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            a.triggered.connect(slot)
            self.addAction(a)

    # ------------------------------------------------------------------ state
    @property
    def target_key(self) -> str:
        return str(self.target_combo.currentData())

    def set_target(self, key: str) -> None:
        i = self.target_combo.findData(key)
        if i < 0:
            self.target_combo.addItem(_name(key), key)
            i = self.target_combo.count() - 1
        self.target_combo.setCurrentIndex(i)

    def set_tool(self, tool: str) -> None:
        """Activate a tool ("navigate", "tumor", "liver", "vessel", "brush", "erase")."""
        if tool not in self.tool_buttons:
            raise KeyError(tool)
        self.tool = tool
        self.tool_buttons[tool].setChecked(True)
        if tool not in ("brush", "erase"):
            self._hide_brush()
        if hasattr(self.views, "set_tool"):
            self.views.set_tool(None if tool == "navigate" else self._view_tool)
        hint = dict((k, t) for k, _, t in TOOLS)[tool]
        self._say(hint)

    def deactivate(self) -> None:
        """Give the mouse back to navigation (when the user leaves the Segment step)."""
        if hasattr(self.views, "set_tool"):
            self.views.set_tool(None)
        self._hide_brush()

    def activate(self) -> None:
        self.set_tool(self.tool)
        if self._info_stale:
            self._update_info()

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color:#ff6b6b" if error else "")

    def _on_undo_index(self, _index: int) -> None:
        import shiboken6

        if shiboken6.isValid(self.btn_undo):  # not while the panel is being destroyed
            self._update_buttons()

    def _update_buttons(self) -> None:
        has_ct = self.case.ct is not None
        pend = self.pending is not None
        self.btn_accept.setEnabled(pend)
        self.btn_reject.setEnabled(pend)
        key = self.pending or self.target_key
        has_mask = key in self.case.structures
        for b in self.refine_buttons.values():
            b.setEnabled(has_mask and not self._busy)
        self.btn_undo.setEnabled(self.undo_stack.canUndo())
        self.btn_redo.setEnabled(self.undo_stack.canRedo())
        for w in (self.btn_import, self.btn_import_dir, self.btn_bone, self.btn_lung):
            w.setEnabled(has_ct and not self._busy)
        self.btn_clear_seeds.setEnabled(bool(self.liver_seeds))

    def _update_info(self) -> None:
        key = self.pending or self.target_key
        m = self.case.structures.get(key)
        if m is not None and not self.isVisible():
            # measured when the Segment step is shown (the diameter is not free)
            self._info_stale = True
            self._update_buttons()
            return
        self._info_stale = False
        if m is None:
            self.info.setText(f"{_name(key)}: none yet")
        else:
            self.info.setText(f"{_name(key)}: {volume_ml(m):.1f} mL, largest diameter "
                              f"{max_diameter_mm(m):.1f} mm")
        self._update_buttons()

    def _on_structures_changed(self, key: str) -> None:
        # a case load sets several structures in one go: measure once, after them
        if self._stroke is None and not self._info_queued:
            self._info_queued = True
            QTimer.singleShot(0, self._queued_update_info)

    def _queued_update_info(self) -> None:
        self._info_queued = False
        self._update_info()

    def _on_ct_changed(self) -> None:
        self.undo_stack.clear()
        self.pending = None
        self.liver_seeds.clear()
        self._update_info()

    def _set_busy(self, busy: bool) -> None:
        self._busy = busy
        self.busy_changed.emit(busy)
        self._update_buttons()

    # ------------------------------------------------------------------ running
    def _run(self, name: str, fn: Callable[[], Volume], on_done: Callable[[Volume], None]) -> None:
        """Run a segmentation off the GUI thread (TaskRunner) or inline without one."""
        if self.case.ct is None:
            self._fail("Load a CT first")
            return
        self._set_busy(True)
        self._say(f"{name}…")
        if self.tasks is None:
            try:
                res = fn()
            except IrplanError as exc:
                self._set_busy(False)
                self._fail(str(exc))
                return
            self._set_busy(False)
            on_done(res)
            return

        def job(progress, cancel):  # noqa: ANN001, ANN202
            progress(0.0, name)
            return fn()

        def done(res: Volume) -> None:
            self._set_busy(False)
            on_done(res)

        def err(msg: str) -> None:
            self._set_busy(False)
            self._fail(msg)

        self.tasks.start(name, job, done, err)

    def _fail(self, msg: str) -> None:
        self._say(msg, error=True)
        self.failed.emit(msg)

    def _propose(self, key: str, mask: Volume, text: str, union: bool = False) -> None:
        """Show a tool result as structure ``key`` (pending until Accept/Reject)."""
        if self.pending is not None:
            self.accept()
        before = self.case.structures.get(key)
        after = mask
        if union and before is not None:
            after = before.with_array(((before.array != 0) | (mask.array != 0)).astype(np.uint8))
            after.metadata.update(mask.metadata)
        cmd = ReplaceStructure(self.case, key, before, after, text)
        self.undo_stack.push(cmd)
        self.pending = key
        self._pending_cmd = cmd
        self.set_target(key)
        window = mask.metadata.get("hu_window")
        extra = f" (HU window {window[0]}..{window[1]})" if window else ""
        self._say(f"{text}: {volume_ml(mask):.1f} mL, largest diameter "
                  f"{max_diameter_mm(mask):.1f} mm{extra}. Accept, refine or reject.")
        self._update_info()
        self.proposal_ready.emit(key)

    def accept(self) -> None:
        if self.pending is not None:
            self._say(f"{_name(self.pending)} accepted.")
        self.pending = None
        self._pending_cmd = None
        self._update_info()

    def reject(self) -> None:
        """Undo the pending proposal (and any refinement made on it)."""
        if self.pending is None or self._pending_cmd is None:
            return
        key = self.pending
        # undo back to (and including) the proposal command
        while self.undo_stack.canUndo():
            cmd = self.undo_stack.command(self.undo_stack.index() - 1)
            self.undo_stack.undo()
            if cmd is self._pending_cmd:
                break
        self.pending = None
        self._pending_cmd = None
        self._say(f"{_name(key)} proposal rejected.")
        self._update_info()

    # ------------------------------------------------------------------ tools
    def run_tumor(self, seed_lps_mm: np.ndarray, radius_mm: float | None = None) -> None:
        ct = self.case.ct

        def fn() -> Volume:
            return seg.segment_tumor(ct, seed_lps_mm, radius_mm=radius_mm)

        self._run("Tumour", fn, lambda m: self._propose("tumor", m, "Tumour", union=True))

    def add_liver_seed(self, seed_lps_mm: np.ndarray) -> None:
        self.liver_seeds.append(np.asarray(seed_lps_mm, float))
        seeds = [s.copy() for s in self.liver_seeds]
        ct = self.case.ct
        tumour = self.case.structures.get("tumor")  # lesions are part of the liver
        self._show_seed_markers()

        def fn() -> Volume:
            return seg.segment_liver(ct, seeds, include=tumour)

        def done(m: Volume) -> None:
            if self.pending == "liver":  # a new seed refines the same proposal
                self.reject()
            self._propose("liver", m, f"Liver ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})")

        self._run("Liver", fn, done)

    def clear_liver_seeds(self) -> None:
        self.liver_seeds.clear()
        self._show_seed_markers()
        self._update_buttons()

    def _show_seed_markers(self) -> None:
        if not hasattr(self.views, "add_overlay_polydata"):
            return
        if not self.liver_seeds:
            self.views.remove_overlay("segment-seeds")
            return
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

        pts, verts = vtkPoints(), vtkCellArray()
        for s in self.liver_seeds:
            verts.InsertNextCell(1)
            verts.InsertCellPoint(pts.InsertNextPoint(*s))
        poly = vtkPolyData()
        poly.SetPoints(pts)
        poly.SetVerts(verts)
        actors = self.views.add_overlay_polydata("segment-seeds", poly, color=(0.2, 1.0, 0.4))
        for a in actors.values():
            a.GetProperty().SetPointSize(8)
            a.GetProperty().SetRenderPointsAsSpheres(True)

    def run_vessel(self, seed_lps_mm: np.ndarray) -> None:
        ct = self.case.ct
        liver = self.case.structures.get("liver")
        key = self.target_key if self.target_key in VESSEL_KEYS else "portal_vein"

        use_vn = self.vesselness_check.isChecked() and liver is not None
        lower = float(self.vessel_hu_spin.value()) or None  # 0 = auto

        def fn() -> Volume:
            return seg.segment_vessels(ct, seed_lps_mm, liver=liver, key=key,
                                       use_vesselness=use_vn, lower_hu=lower)

        self._run(f"{_name(key)}", fn, lambda m: self._propose(key, m, _name(key), union=True))

    def run_auto(self, which: str) -> None:
        ct = self.case.ct
        fn = {"bone": lambda: seg.segment_bone(ct), "lung": lambda: seg.segment_lung(ct)}[which]
        self._run(_name(which), fn, lambda m: self._propose(which, m, _name(which)))

    def refine(self, op: str) -> None:
        """Refine the pending proposal (or the target structure): grow, shrink, smooth,
        fill, largest. Grow/shrink/smooth use the Step (mm)."""
        key = self.pending or self.target_key
        mask = self.case.structures.get(key)
        if mask is None:
            self._fail(f"{_name(key)}: nothing to refine")
            return
        step = float(self.step_spin.value())
        fns = {"grow": lambda: seg.grow_mm(mask, step), "shrink": lambda: seg.shrink_mm(mask, step),
               "smooth": lambda: seg.smooth_mm(mask, step), "fill": lambda: seg.fill_holes(mask),
               "largest": lambda: seg.keep_largest_component(mask)}
        labels = {"grow": f"grow {step:g} mm", "shrink": f"shrink {step:g} mm",
                  "smooth": f"smooth {step:g} mm", "fill": "fill holes",
                  "largest": "keep largest part"}
        new = fns[op]()
        self.undo_stack.push(ReplaceStructure(self.case, key, mask, new,
                                              f"{_name(key)}: {labels[op]}"))
        self._say(f"{_name(key)}: {labels[op]} -> {volume_ml(new):.1f} mL")
        self._update_info()

    # ------------------------------------------------------------------ import
    def _ask_import_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import masks", "", "Masks (*.nii *.nii.gz *.nrrd *.nhdr *.mha *.mhd *.dcm "
            "*.zip);;All files (*)")
        if path:
            self.import_path(path)

    def _ask_import_dir(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Import a folder of masks")
        if path:
            self.import_path(path)

    def import_path(self, path: str | Path) -> None:
        """Import every structure of a file/folder onto the CT (one undo step)."""
        from irplan.io.mask_import import import_masks, merge_by_key

        ct = self.case.ct
        if ct is None:
            self._fail("Load a CT first")
            return
        if self.pending is not None:
            self.accept()
        result: dict[str, Any] = {}

        def fn() -> Volume:
            imported = import_masks(path, ct)
            result["warnings"] = [w for m in imported for w in m.warnings]
            result["masks"] = merge_by_key(imported)
            return ct  # the Volume return type of _run; the masks travel in ``result``

        def done(_ct: Volume) -> None:
            masks: dict[str, Volume] = result["masks"]
            self.undo_stack.beginMacro(f"Import {Path(path).name}")
            for key, m in masks.items():
                self.undo_stack.push(ReplaceStructure(self.case, key,
                                                      self.case.structures.get(key), m,
                                                      f"import {key}"))
            self.undo_stack.endMacro()
            names = ", ".join(f"{_name(k)} {volume_ml(m):.1f} mL" for k, m in masks.items())
            warn = result["warnings"]
            self._say(f"Imported {names}." + (f" Warning: {'; '.join(warn)}" if warn else ""),
                      error=False)
            self._update_info()

        self._run(f"Import {Path(path).name}", fn, done)

    # ------------------------------------------------------------------ mouse
    def tool_press(self, view: Any, p: np.ndarray) -> bool:
        """A left press in an MPR view; True when the tool takes the drag."""
        if self.case.ct is None or self.tool == "navigate" or self._busy:
            return False
        if not self.case.ct.contains_lps(p):
            return False
        self._drag_view = view
        if self.tool in ("brush", "erase"):
            self._begin_stroke(view, p)
        else:
            self._stroke = None
            self._drag_start = p
        return True

    def tool_move(self, view: Any, p: np.ndarray) -> None:
        if self.tool in ("brush", "erase") and self._stroke is not None:
            self._continue_stroke(p)
        elif self.tool == "tumor" and self._drag_start is not None:
            r = float(np.linalg.norm(p - self._drag_start))
            if hasattr(self.views, "add_overlay_polydata") and r > 1.0:
                self.views.add_overlay_polydata(
                    "segment-drag", _circle_poly(self._drag_start, view.normal, r),
                    color=(1.0, 0.9, 0.2), views=[view.name], line_width=1.5)
            self._say(f"Tumour radius {r:.1f} mm")

    def tool_hover(self, view: Any, p: np.ndarray) -> None:
        """Mouse over a slice view: the brush circle (radius in mm) follows it."""
        if self.tool in ("brush", "erase"):
            self._show_brush(view, p)
        elif self._brush_view is not None:
            self._hide_brush()

    def _show_brush(self, view: Any, p: np.ndarray) -> None:
        if not hasattr(self.views, "add_overlay_polydata"):
            return
        r = float(self.radius_spin.value())
        if self._brush_view is not view or self._brush_poly is None:
            self._hide_brush()
            self._brush_poly = _circle_poly(p, view.normal, r)
            color = (1.0, 0.4, 0.4) if self.tool == "erase" else (0.4, 1.0, 0.6)
            self.views.add_overlay_polydata("segment-brush", self._brush_poly, color=color,
                                            views=[view.name], line_width=1.5)
            self._brush_view = view
        else:
            pts = self._brush_poly.GetPoints()
            for i, x in enumerate(_circle_points(p, view.normal, r)):
                pts.SetPoint(i, *x)
            pts.Modified()
            self._brush_poly.Modified()
            view.request_render()

    def _hide_brush(self) -> None:
        if self._brush_view is not None and hasattr(self.views, "remove_overlay"):
            self.views.remove_overlay("segment-brush")
        self._brush_view = None
        self._brush_poly = None

    def tool_release(self, view: Any, p: np.ndarray) -> None:
        if self.tool in ("brush", "erase"):
            self._end_stroke()
            return
        start, self._drag_start = self._drag_start, None
        if hasattr(self.views, "remove_overlay"):
            self.views.remove_overlay("segment-drag")
        if start is None:
            return
        if self.tool == "tumor":
            r = float(np.linalg.norm(p - start))
            self.run_tumor(start, r if r >= 2.0 else None)
        elif self.tool == "liver":
            self.add_liver_seed(start)
        elif self.tool == "vessel":
            self.run_vessel(start)

    # brush strokes: painted live, one undo step per stroke
    def _begin_stroke(self, view: Any, p: np.ndarray) -> None:
        key = self.target_key
        if self.pending is not None and self.pending != key:
            self.accept()
        mask = self.case.structures.get(key)
        created = mask is None
        if created:
            if self.tool == "erase":
                self._stroke = None
                self._fail(f"{_name(key)}: nothing to erase")
                return
            mask = self.case.ct.with_array(np.zeros(self.case.ct.array.shape, np.uint8))
            mask.metadata = {"structure": key, "method": "brush"}
            self.case.set_structure(key, mask)
        self._stroke = {"key": key, "mask": mask, "edits": [], "last": p,
                        "normal": np.asarray(view.normal, float), "created": created}
        self._paint(p, p)

    def _paint(self, a: np.ndarray, b: np.ndarray) -> None:
        st = self._stroke
        assert st is not None
        edit = brush_stroke(st["mask"], np.stack([a, b]), float(self.radius_spin.value()),
                            erase=self.tool == "erase", plane_normal_lps=st["normal"])
        if edit.changed_voxels:
            st["edits"].append(edit)
            if hasattr(self.views, "refresh_structure"):
                self.views.refresh_structure(st["key"])
        st["last"] = b

    def _continue_stroke(self, p: np.ndarray) -> None:
        # keep the brush in the plane where the stroke started
        st = self._stroke
        assert st is not None
        n = st["normal"]
        p = p - n * float(np.dot(p - st["last"], n))
        self._paint(st["last"], p)
        if self._drag_view is not None:
            self._show_brush(self._drag_view, p)

    def _end_stroke(self) -> None:
        st, self._stroke = self._stroke, None
        if st is None:
            return
        if not st["edits"]:
            if st["created"]:
                self.case.remove_structure(st["key"])
            return
        what = "Erase" if self.tool == "erase" else "Paint"
        self.undo_stack.push(BrushCommand(self.case, st["key"], st["mask"], st["edits"],
                                          st["created"], f"{what} {_name(st['key'])}"))
        self.case.set_structure(st["key"], st["mask"])  # volume, surface, lists
        self._say(f"{what}: {_name(st['key'])} {volume_ml(st['mask']):.1f} mL")
        self._update_info()
