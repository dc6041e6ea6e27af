"""Point picking on the surfaces of the 3D view for the 3D measurements (issue 16).

``SurfacePicker(scene3d, on_pick)`` filters the 3D view's mouse events: while
``enabled``, a left click (press and release within CLICK_PX, no modifier) on a surface
calls ``on_pick(lps_mm)`` with the point where the mouse ray first meets a pickable,
visible prop (structure surfaces, zones, needles; the CT slices, plane frames and volume
rendering are not pickable). A drag still rotates the camera. All points LPS mm.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt
from vtkmodules.vtkRenderingCore import vtkCellPicker

CLICK_PX = 4.0          # press-release movement still counted as a click (logical px)
PICK_TOLERANCE = 0.0005  # fraction of the window diagonal (cell picker)


def pick_surface_lps(view, x: float, y: float) -> np.ndarray | None:
    """The LPS point (mm) of the first surface under Qt widget point (x, y) of a 3D view
    (logical px, origin top-left); None when the ray meets no surface."""
    picker = vtkCellPicker()
    picker.SetTolerance(PICK_TOLERANCE)
    dx, dy = view.qt_to_display(x, y)
    if not picker.Pick(float(dx), float(dy), 0.0, view.renderer):
        return None
    if picker.GetCellId() < 0:
        return None
    return np.array(picker.GetPickPosition(), dtype=float)


class SurfacePicker(QObject):
    """Event filter on a Scene3DView: clicks on surfaces -> ``on_pick(lps_mm)``."""

    def __init__(self, view, on_pick: Callable[[np.ndarray], None]) -> None:
        super().__init__(view)
        self.view = view
        self.on_pick = on_pick
        self.enabled = False
        self._press: tuple[float, float] | None = None
        view.installEventFilter(self)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt naming
        if not self.enabled or obj is not self.view:
            return False
        t = ev.type()
        if t == QEvent.Type.MouseButtonPress:
            if (ev.button() == Qt.MouseButton.LeftButton
                    and ev.modifiers() == Qt.KeyboardModifier.NoModifier):
                pos = ev.position()
                self._press = (pos.x(), pos.y())
            else:
                self._press = None
            return False                 # the camera still sees it (a drag rotates)
        if t == QEvent.Type.MouseButtonRelease and ev.button() == Qt.MouseButton.LeftButton:
            press, self._press = self._press, None
            if press is None:
                return False
            pos = ev.position()
            if float(np.hypot(pos.x() - press[0], pos.y() - press[1])) > CLICK_PX:
                return False             # it was a rotation
            p = pick_surface_lps(self.view, pos.x(), pos.y())
            if p is not None:
                self.on_pick(p)
            return False
        if t == QEvent.Type.MouseButtonDblClick and ev.button() == Qt.MouseButton.LeftButton:
            pos = ev.position()          # a quick second click: a point, not maximise
            self._press = (pos.x(), pos.y())
            return True
        return False
