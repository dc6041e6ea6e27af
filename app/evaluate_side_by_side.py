"""Side by side in the Evaluate step (issue 16): the planning CT (left) and the registered
follow-up CT (right) in two slice views of the same orientation with linked cursors.

``SideBySide(ctx, logic)`` is entered from the Evaluate panel after an evaluation
(:meth:`SideBySide.enter`): the follow-up is resampled onto the planning grid through the
accepted registration (``EvaluationLogic.fused_on_planning_grid``), so one LPS point (mm)
is the same anatomy in both panes. It replaces the four views
(``ViewSet.show_instead``) until "Back to the four views" (:meth:`SideBySide.leave`), or
until the registration, follow-up or CT goes, or another workflow step is chosen.

Linked: a click or drag of the crosshair in one pane moves both (and the four views) to
that LPS point; scrolling moves both to the same slice position (mm); zoom and pan in one
apply to the other; window/level is shared with the four views. The tumour is drawn as
an outline in both panes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from irplan.app.context import AppContext
from irplan.app.evaluation_logic import EvaluationLogic
from irplan.planning.volume import Volume
from irplan.viewers.mpr_view import MprView, StructureStyle
from irplan.viewers.presets import VIEW_COLORS
from irplan.viewers.view_set import MPR_NAMES, ViewCell

TUMOUR_STYLE = StructureStyle(color=(1.0, 0.35, 0.35), opacity_2d=0.0, opacity_3d=1.0,
                              visible=True, name="tumour")


class _Pair:
    """The two views of one orientation: planning (left) and follow-up (right)."""

    def __init__(self, orientation: str) -> None:
        self.left = MprView(orientation)
        self.right = MprView(orientation)
        self.left.setObjectName(f"sbs_planning_{orientation}")
        self.right.setObjectName(f"sbs_followup_{orientation}")
        self.widget = QWidget()
        lay = QHBoxLayout(self.widget)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        for v in (self.left, self.right):
            lay.addWidget(ViewCell(v, VIEW_COLORS[orientation]), 1)
        self.loaded: tuple[int, int] | None = None    # ids of the volumes shown

    def views(self) -> tuple[MprView, MprView]:
        return self.left, self.right


class _SideWidget(QWidget):
    """The layout's widget; ``finalize()`` (ViewSet.finalize at window close) releases
    the panes' render windows."""

    def __init__(self, finalize) -> None:
        super().__init__()
        self.finalize = finalize


class SideBySide(QObject):
    """Planning | registered follow-up layout of the Evaluate step."""

    active_changed = Signal(bool)

    def __init__(self, ctx: AppContext, logic: EvaluationLogic,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx, self.logic, self.views = ctx, logic, ctx.views
        self.active = False
        self.orientation = "axial"
        self.followup_on_grid: Volume | None = None
        self._pairs: dict[str, _Pair] = {}
        self._linking = False

        self.widget = _SideWidget(self._drop_pairs)
        self.widget.setObjectName("sideBySide")
        lay = QVBoxLayout(self.widget)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        head = QHBoxLayout()
        self.lbl_left = QLabel("<b>Planning CT</b>")
        self.lbl_right = QLabel("<b>Follow-up CT</b> (registered)")
        self.cmb_orientation = QComboBox()
        self.cmb_orientation.addItems(MPR_NAMES)
        self.cmb_orientation.currentTextChanged.connect(self.set_orientation)
        self.btn_back = QPushButton("Back to the four views")
        self.btn_back.clicked.connect(self.leave)
        head.addWidget(self.lbl_left, 1)
        head.addWidget(self.cmb_orientation)
        head.addWidget(self.btn_back)
        head.addWidget(self.lbl_right, 1)
        lay.addLayout(head)
        self._stack = QStackedWidget()
        lay.addWidget(self._stack, 1)
        self.widget.hide()

        logic.dropped.connect(self.leave)
        ctx.case.ct_changed.connect(self.leave)
        ctx.case.case_closed.connect(self.leave)
        # another workflow step works in the four views
        ctx.workflow.step_changed.connect(lambda step: self.leave() if step != "evaluate"
                                          else None)
        self.views.window_changed.connect(self._on_main_window)

    # ------------------------------------------------------------------ access
    @property
    def planning_view(self) -> MprView:
        return self._pair(self.orientation).left

    @property
    def followup_view(self) -> MprView:
        return self._pair(self.orientation).right

    def _pair(self, name: str) -> _Pair:
        pair = self._pairs.get(name)
        if pair is None:
            pair = _Pair(name)
            for v in pair.views():
                v.crosshair_requested.connect(self.set_crosshair)
                v.slice_changed.connect(lambda _n, pos, src=v: self._on_slice(src, pos))
                v.camera_changed.connect(lambda _n, src=v: self._on_camera(src))
                v.window_changed.connect(self.views.set_window)
                v.cursor_moved.connect(self.views.cursor_moved)   # HU in the status bar
            self._pairs[name] = pair
            self._stack.addWidget(pair.widget)
        return pair

    # ------------------------------------------------------------------ enter / leave
    def can_enter(self) -> bool:
        lg = self.logic
        return (lg.result is not None and lg.followup is not None
                and self.ctx.case.ct is not None)

    def enter(self) -> Any:
        """Resample the follow-up onto the planning grid (background) and show both side
        by side; the task, or None (nothing evaluated yet: a status line says so)."""
        if not self.can_enter():
            self.ctx.show_status("Side by side: evaluate a follow-up first", 8000)
            return None
        return self.logic.fused_on_planning_grid(self._on_fused)

    def _on_fused(self, arrays: dict[str, np.ndarray]) -> None:
        ct = self.ctx.case.ct
        if ct is None:
            return
        self.followup_on_grid = ct.with_array(arrays["follow-up"],
                                              description="registered follow-up")
        self.views.show_instead(self.widget)
        self.active = True
        self.set_orientation(self.orientation)
        self.active_changed.emit(True)

    def leave(self, *_args: Any) -> None:
        """Back to the four views (at the side by side's crosshair)."""
        if not self.active:
            return
        self.active = False
        self.views.show_instead(None)
        self.followup_on_grid = None
        self._drop_pairs()
        self.views.render()
        self.active_changed.emit(False)

    def _drop_pairs(self) -> None:
        """Release the panes (render windows, the follow-up image); rebuilt on entry."""
        for pair in self._pairs.values():
            for v in pair.views():
                v.finalize()
            self._stack.removeWidget(pair.widget)
            pair.widget.deleteLater()
        self._pairs.clear()

    def set_orientation(self, name: str) -> None:
        """Axial, coronal or sagittal panes, at the four views' crosshair and zoom."""
        if name not in MPR_NAMES:
            raise ValueError(f"orientation {name!r}: expected one of {', '.join(MPR_NAMES)}")
        self.orientation = name
        if self.cmb_orientation.currentText() != name:
            self.cmb_orientation.setCurrentText(name)
        if not self.active:
            return
        pair = self._pair(name)
        ct, fu = self.ctx.case.ct, self.followup_on_grid
        if ct is None or fu is None:
            return
        if pair.loaded != (id(ct), id(fu)):
            pair.left.set_volume(ct)      # its own image: the fused display swaps the 4 views
            pair.right.set_volume(fu)
            tumour = self.ctx.case.structures.get("tumor")
            for v in pair.views():
                v.set_outline_mode(True)
                v.set_structure("tumor", tumour, TUMOUR_STYLE)
                surf = self.views.surface("tumor")
                if surf is not None:
                    v.set_structure_surface("tumor", surf)
            pair.loaded = (id(ct), id(fu))
        self._stack.setCurrentWidget(pair.widget)
        main = self.views.mpr(name)
        focal = np.array(main.renderer.GetActiveCamera().GetFocalPoint())
        w, lvl = self.views.window
        for v in pair.views():
            v.set_window(w, lvl)
            v.set_zoom_pan(main.parallel_scale_mm, focal, (0, 1, 2))
        self.set_crosshair(self.views.crosshair_lps_mm)

    # ------------------------------------------------------------------ links
    def set_crosshair(self, p_lps_mm: np.ndarray) -> None:
        """Both panes (and the four views) to an LPS point (mm)."""
        p = np.asarray(p_lps_mm, float)
        pair = self._pairs.get(self.orientation)
        if pair is not None:
            for v in pair.views():
                v.set_crosshair(p)
        self.views.set_crosshair(p)

    def _on_slice(self, src: MprView, pos_mm: float) -> None:
        if self._linking:
            return
        self._linking = True
        try:
            pair = self._pair(src.name)
            other = pair.right if src is pair.left else pair.left
            other.set_slice_position(pos_mm, emit=False)
            p = self.views.crosshair_lps_mm
            p[src.orientation.axis] = src.slice_position_mm
            self.views.set_crosshair(p)
        finally:
            self._linking = False

    def _on_camera(self, src: MprView) -> None:
        if self._linking:
            return
        self._linking = True
        try:
            pair = self._pair(src.name)
            other = pair.right if src is pair.left else pair.left
            focal = np.array(src.renderer.GetActiveCamera().GetFocalPoint())
            other.set_zoom_pan(src.parallel_scale_mm, focal, (0, 1, 2))
        finally:
            self._linking = False

    def _on_main_window(self, width_hu: float, level_hu: float) -> None:
        for pair in self._pairs.values():
            for v in pair.views():
                if v.window != (width_hu, level_hu):
                    v.set_window(width_hu, level_hu)
