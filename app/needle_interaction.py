"""Needle handles under the mouse: placement clicks and drags in the slice views and the
3D view. Edits go through :class:`irplan.app.plan_session.PlanSession` (one merged undo
step per drag).

- 2D: in placement mode a left click puts the target, then the entry (in the view's
  plane); otherwise, unless a slice tool is on (measure, Segment strokes), a press on a
  tip or entry disc (within HANDLE_PX) drags it in the view's plane (an IRE electrode moves the array parallel when "lock parallel" is on).
  Esc cancels placement.
- 3D: a press on a tip or entry handle drags it in the plane through it parallel to the
  screen, keeping the offset between the mouse and the handle; Shift+drag on a shaft
  moves the whole needle (the locked IRE array). Any other press goes to the camera. The
  cursor is an open hand over a handle (a shaft with Shift), a closed one while dragging.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QCursor

from irplan.app.plan_session import PlanSession
from irplan.viewers.view_set import ViewSet

HANDLE_PX = 9.0                  # grab radius of a tip/entry disc (logical px)


@dataclass
class _Drag3D:
    """A handle (or Shift+shaft) drag in the 3D view. Positions LPS mm, mouse Qt px."""

    index: int              # needle grabbed
    which: str              # "tip" | "entry" | "shaft"
    key: str                # undo merge key: one command per drag
    start_lps_mm: np.ndarray    # grabbed point (handle centre; for "shaft" the tip)
    press_lps_mm: np.ndarray    # the mouse at press, on the screen plane through it
    moved_mm: np.ndarray        # shaft drags: translation applied so far


def _segment_distance_px(p: tuple[float, float], a: tuple[float, float],
                         b: tuple[float, float]) -> float:
    """Distance (px) of screen point p from the screen segment a-b (NaN-safe: inf)."""
    pa, ab = np.subtract(p, a), np.subtract(b, a)
    if not (np.all(np.isfinite(pa)) and np.all(np.isfinite(ab))):
        return float("inf")
    den = float(np.dot(ab, ab))
    t = 0.0 if den == 0 else min(1.0, max(0.0, float(np.dot(pa, ab)) / den))
    return float(np.linalg.norm(pa - t * ab))


class NeedleInteraction(QObject):
    """Event filter on the slice views and the 3D view (installed by the constructor)."""

    def __init__(self, session: PlanSession, views: ViewSet) -> None:
        super().__init__(views.widget)
        self.session = session
        self.views = views
        self._drag: tuple[object, int, str, str] | None = None
        self._drag3d: _Drag3D | None = None
        self._drag_count = 0
        for v in views.mprs():
            v.installEventFilter(self)
        views.scene3d.installEventFilter(self)   # handle drags in 3D (else camera)
        # a drag does not continue into another plan
        session.case.plan_replaced.connect(self.cancel_drags)

    def cancel_drags(self) -> None:
        self._drag = self._drag3d = None

    def _handle_at(self, view, x: float, y: float) -> tuple[int, str] | None:
        best = None
        for i, n in enumerate(self.session.plan.needles):
            for which, p in (("tip", n.tip_lps_mm), ("entry", n.entry_lps_mm)):
                qx, qy = view.lps_to_qt(p)
                d = float(np.hypot(qx - x, qy - y))
                if d <= HANDLE_PX and (best is None or d < best[0]):
                    best = (d, i, which)
        return None if best is None else (best[1], best[2])

    def _shaft_at(self, view, x: float, y: float) -> int | None:
        """Needle whose projected shaft (entry -> tip) passes within HANDLE_PX of (x, y)."""
        best = None
        for i, n in enumerate(self.session.plan.needles):
            d = _segment_distance_px((x, y), view.lps_to_qt(n.entry_lps_mm),
                                     view.lps_to_qt(n.tip_lps_mm))
            if d <= HANDLE_PX and (best is None or d < best[0]):
                best = (d, i)
        return None if best is None else best[1]

    def _point_in_plane_of(self, view, x: float, y: float, keep: np.ndarray | None) -> np.ndarray:
        p = view.display_to_lps(*view.qt_to_display(x, y))
        if keep is not None:  # stay at the handle's depth along the view normal
            n = view.normal
            p = p + n * float(np.dot(keep - p, n))
        return p

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt naming
        t = ev.type()
        if obj is self.views.scene3d:
            return self._scene3d_event(obj, ev)
        if t == QEvent.Type.KeyPress and ev.key() == Qt.Key.Key_Escape and self.session.placing:
            self.session.cancel_placing()
            return True
        if t not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove,
                     QEvent.Type.MouseButtonRelease):
            return False
        view = obj
        if getattr(view, "volume", None) is None:
            return False
        pos = ev.position()
        x, y = pos.x(), pos.y()
        if t == QEvent.Type.MouseButtonPress:
            if ev.button() != Qt.MouseButton.LeftButton or ev.modifiers() & (
                    Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier
                    | Qt.KeyboardModifier.AltModifier):
                return False
            if self.session.placing in ("target", "entry"):
                self.session.place_point(self._point_in_plane_of(view, x, y, None))
                return True
            if getattr(view, "tool", None) is not None:
                # a slice tool is on (measure, Segment strokes/brush): the press is its
                # (a ruler or stroke starting on a tip moved the needle instead)
                return False
            hit = self._handle_at(view, x, y)
            if hit is None:
                return False
            i, which = hit
            self._drag_count += 1
            self._drag = (view, i, which, f"drag-{self._drag_count}")
            self.session.select(i)
            return True
        if t == QEvent.Type.MouseMove and self._drag is not None:
            view0, i, which, key = self._drag
            if view0 is not view or i >= len(self.session.plan.needles):
                return True
            n = self.session.plan.needles[i]
            keep = n.tip_lps_mm if which == "tip" else n.entry_lps_mm
            p = self._point_in_plane_of(view, x, y, keep)
            self.session.move_point(i, which, p, key)
            return True
        if t == QEvent.Type.MouseButtonRelease and self._drag is not None:
            self._drag = None
            return True
        return False

    def _scene3d_event(self, view, ev) -> bool:
        """Mouse in the 3D view: press on a handle (Shift: on a shaft) starts a drag in the
        screen-parallel plane through the grabbed point; True = consumed (the camera
        style does not see it). Anything else goes on to the trackball camera."""
        t = ev.type()
        if t not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove,
                     QEvent.Type.MouseButtonRelease, QEvent.Type.MouseButtonDblClick,
                     QEvent.Type.Leave):
            return False
        if t == QEvent.Type.MouseButtonDblClick:   # on a handle: no maximise toggle
            pos = ev.position()
            return self._drag3d is not None or self._handle_at(view, pos.x(), pos.y()) \
                is not None
        if t == QEvent.Type.Leave:
            if self._drag3d is None:
                view.unsetCursor()
            return False
        pos = ev.position()
        x, y = pos.x(), pos.y()
        drag = self._drag3d
        if t == QEvent.Type.MouseButtonPress:
            if ev.button() != Qt.MouseButton.LeftButton or drag is not None:
                return drag is not None
            mods = ev.modifiers()
            shift = mods == Qt.KeyboardModifier.ShiftModifier
            if mods != Qt.KeyboardModifier.NoModifier and not shift:
                return False
            hit = self._handle_at(view, x, y)
            if hit is None or shift:
                i = self._shaft_at(view, x, y) if shift else None
                if i is None:
                    return False          # camera: rotate (Shift: pan)
                hit = (i, "shaft")
            i, which = hit
            n = self.session.plan.needles[i]
            start = n.entry_lps_mm if which == "entry" else n.tip_lps_mm
            self._drag_count += 1
            self._drag3d = _Drag3D(i, which, f"drag3d-{self._drag_count}", start.copy(),
                                   view.qt_to_plane_lps(x, y, start), np.zeros(3))
            view.setCursor(QCursor(Qt.CursorShape.ClosedHandCursor))
            self.session.select(i)
            return True
        if t == QEvent.Type.MouseMove:
            if drag is None:
                if ev.buttons() == Qt.MouseButton.NoButton:
                    over = self._handle_at(view, x, y) is not None or (
                        ev.modifiers() == Qt.KeyboardModifier.ShiftModifier
                        and self._shaft_at(view, x, y) is not None)
                    if over:
                        view.setCursor(QCursor(Qt.CursorShape.OpenHandCursor))
                    else:
                        view.unsetCursor()
                return False
            if drag.index >= len(self.session.plan.needles):
                return True
            delta = view.qt_to_plane_lps(x, y, drag.start_lps_mm) - drag.press_lps_mm
            if drag.which == "shaft":
                self._translate_grabbed(drag, delta)
            else:
                self.session.move_point(drag.index, drag.which, drag.start_lps_mm + delta, drag.key)
            return True
        # release
        if drag is None:
            return False
        self._drag3d = None
        view.setCursor(QCursor(Qt.CursorShape.OpenHandCursor))
        return True

    def _translate_grabbed(self, drag: _Drag3D, delta_lps_mm: np.ndarray) -> None:
        """Shift+shaft drag: the needle (the whole array for locked IRE) is translated by
        ``delta_lps_mm`` from where it was at the press (one merged command)."""
        step = delta_lps_mm - drag.moved_mm
        if np.any(step) and self.session.translate(drag.index, step, merge_key=drag.key):
            drag.moved_mm = drag.moved_mm + step
