"""What the Evaluate step draws in the views (no widgets): the planning CT swapped for the
registered follow-up, a checkerboard of both or a flicker between them (the planning CT
itself is never modified); the follow-up zone as a cyan overlay on the slices (planning
space); after evaluation the tumour surface coloured by margin in 3D (red < 0, orange
0-5 mm, green >= 5 mm) with the MAM point, picked by a double-click.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from irplan.app.evaluation_logic import EvaluationLogic
from irplan.viewers.view_set import ViewSet

ZONE_KEY = "followup_ablation_zone"
DISPLAY_MODES = ("planning", "follow-up", "checkerboard", "flicker")
FLICKER_MS = 700


class EvaluateDisplay(QObject):
    """Draws :class:`EvaluationLogic`'s follow-up, zone and margin map in ``views``."""

    mode_changed = Signal(str)
    picked = Signal(object, float)   # LPS mm, margin there (mm)

    def __init__(self, logic: EvaluationLogic, views: ViewSet,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.logic, self.views = logic, views
        self.mode = "planning"
        self._orig: tuple[Any, Any] | None = None    # (vtkImageData, its own scalars)
        self._fused: dict[str, np.ndarray] = {}
        self._actors: list[tuple[str, Any]] = []
        self._margin_actor: Any = None
        self._tumor_opacity_3d = 1.0
        self._observer: int | None = None
        self._flicker = QTimer(self)
        self._flicker.setInterval(FLICKER_MS)
        self._flicker.timeout.connect(self._flick)
        self._flick_state = False
        logic.dropped.connect(self._on_dropped)
        logic.zone_changed.connect(self.show_zone_overlay)
        logic.registered.connect(self._on_registered)
        logic.evaluated.connect(self.show_result)

    def _on_dropped(self) -> None:
        self.set_mode("planning")
        self._fused = {}
        self.clear_result()

    def _on_registered(self, reg: Any) -> None:
        self.show_zone_overlay()
        if self.logic.followup is not None and reg.method != "none":
            self.set_mode("checkerboard")

    # ------------------------------------------------------------------ zone
    def show_zone_overlay(self) -> None:
        """Cyan zone overlay on the slices, in planning space."""
        def draw(zp) -> None:
            self.views.set_structure(ZONE_KEY, zp)
            self.views.set_structure_style(ZONE_KEY, color=(0.30, 0.80, 1.00), opacity_2d=0.25)
            self.views.render()

        self.logic.zone_on_planning_grid(draw)

    # ------------------------------------------------------------------ CT display
    def _show_array(self, arr: np.ndarray | None) -> None:
        """Swap the scalars of the views' CT image (no camera or crosshair change)."""
        from vtkmodules.util import numpy_support

        img = self.views.ct_image
        if img is None:
            return
        pd = img.GetPointData()
        if self._orig is None or self._orig[0] is not img:   # another CT: its own scalars
            self._orig = (img, pd.GetScalars())
        own = self._orig[1]
        if arr is None:
            pd.SetScalars(own)
        else:
            vtk_arr = numpy_support.numpy_to_vtk(np.ascontiguousarray(arr).ravel(), deep=True)
            vtk_arr.SetName(own.GetName() or "scalars")
            pd.SetScalars(vtk_arr)
        img.Modified()
        self.views.render()

    def set_mode(self, mode: str) -> None:
        """"planning", "follow-up", "checkerboard" or "flicker" in the MPR views."""
        if mode not in DISPLAY_MODES:
            raise ValueError(mode)
        self._flicker.stop()
        changed = mode != self.mode
        self.mode = mode
        if changed:
            self.mode_changed.emit(mode)
        if mode == "planning" or self.logic.followup is None or self.logic.case.ct is None:
            self._show_array(None)
            return
        if not self._fused:
            # set_mode runs again when the arrays are ready
            self.logic.fused_on_planning_grid(self._on_fused)
            return
        if mode == "flicker":
            self._flick_state = False
            self._flicker.start()
            self._flick()
        else:
            self._show_array(self._fused[mode])

    def _on_fused(self, arrays: dict[str, np.ndarray]) -> None:
        self._fused = arrays
        if self.mode != "planning":
            self.set_mode(self.mode)

    def _flick(self) -> None:
        self._flick_state = not self._flick_state
        self._show_array(self._fused.get("follow-up") if self._flick_state else None)

    # ------------------------------------------------------------------ margin map
    def clear_result(self) -> None:
        for view, prop in self._actors:
            self.views.remove_overlay_actor(prop, view)
        if self._actors and "tumor" in self.views.styles:
            self.views.set_structure_style("tumor", opacity_3d=self._tumor_opacity_3d)
        self._actors.clear()
        self._margin_actor = None

    def show_result(self, res: Any) -> None:
        """The margin-coloured tumour surface and the MAM marker in 3D; crosshair to MAM."""
        from irplan.viewers.margin_actors import mam_marker_actor, margin_surface_actor

        self.clear_result()
        m = res.margin
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

    def go_to_mam(self) -> None:
        res = self.logic.result
        if res is not None:
            self.views.set_crosshair(np.asarray(res.margin.mam_point_lps_mm, float))
            self.views.render()

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
        res = self.logic.result
        if self._margin_actor is None or res is None:
            return None
        from vtkmodules.vtkRenderingCore import vtkCellPicker

        from irplan.viewers.margin_actors import nearest_surface_point

        picker = vtkCellPicker()
        picker.SetTolerance(0.002)
        picker.PickFromListOn()
        picker.AddPickList(self._margin_actor)
        if not picker.Pick(x, y, 0, self.views.scene3d.renderer):
            return None
        p, margin_mm = nearest_surface_point(res.margin, np.array(picker.GetPickPosition()))
        self.views.set_crosshair(p)
        self.picked.emit(p, float(margin_mm))
        self.views.render()
        return p
