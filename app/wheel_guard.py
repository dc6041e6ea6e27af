"""Application-wide: the mouse wheel never edits a spin box or combo box it merely passes
over (issue 12: scrolling the side panel turned Margin from 5 to 19 mm unnoticed).

Spin boxes and combo boxes get ``Qt.StrongFocus`` (no focus by wheel) and ignore wheel
events unless they have keyboard focus; the ignored event goes on to the parent, so the
side panel's scroll area scrolls instead. Click (or Tab) into a box to wheel its value.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QWidget,
)

_GUARDED = (QAbstractSpinBox, QComboBox)


class WheelGuard(QObject):
    """Event filter on the QApplication (sees every widget's events)."""

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 - Qt name
        t = ev.type()
        if t == QEvent.Type.Wheel and isinstance(obj, _GUARDED):
            if obj.hasFocus():
                return False
            area = _scroll_area_of(obj)
            if area is None:
                ev.ignore()       # not accepted: Qt passes it on to the parent widget
                return True       # ... and the box itself never sees it
            d = ev.angleDelta()
            bar = (area.horizontalScrollBar() if abs(d.x()) > abs(d.y())
                   else area.verticalScrollBar())
            QApplication.sendEvent(bar, ev)    # the panel scrolls (synthetic events too)
            ev.accept()
            return True
        if t in (QEvent.Type.Polish, QEvent.Type.Show) and isinstance(obj, _GUARDED):
            guard_widget(obj)
        return False


def _scroll_area_of(w: QWidget) -> QAbstractScrollArea | None:
    """The nearest scroll area (not a box's own popup list) the widget sits in."""
    p = w.parentWidget()
    while p is not None:
        if isinstance(p, QAbstractScrollArea) and not isinstance(p, _GUARDED):
            return p
        p = p.parentWidget()
    return None


def guard_widget(w: QWidget) -> None:
    """No focus by the wheel for one box (StrongFocus: click or Tab only)."""
    if w.focusPolicy() == Qt.FocusPolicy.WheelFocus:
        w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)


_GUARD: WheelGuard | None = None


def install_wheel_guard(app: QApplication | None = None) -> WheelGuard:
    """Install the guard once on ``app`` (default: the running QApplication)."""
    global _GUARD
    app = app or QApplication.instance()
    if _GUARD is None:
        _GUARD = WheelGuard()
        app.installEventFilter(_GUARD)
    return _GUARD
