"""Application-wide: the mouse wheel never edits a spin box or combo box it merely passes
over (issue 12: scrolling the side panel turned Margin from 5 to 19 mm unnoticed).

Spin boxes and combo boxes get ``Qt.StrongFocus`` (no focus by wheel) and ignore wheel
events unless they have keyboard focus; the ignored event goes on to the parent, so the
side panel's scroll area scrolls instead. Click (or Tab) into a box to wheel its value.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QComboBox, QWidget

_GUARDED = (QAbstractSpinBox, QComboBox)


class WheelGuard(QObject):
    """Event filter on the QApplication (sees every widget's events)."""

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 - Qt name
        t = ev.type()
        if t == QEvent.Type.Wheel and isinstance(obj, _GUARDED):
            if not obj.hasFocus():
                ev.ignore()       # not accepted: Qt passes it on to the parent widget
                return True       # ... and the box itself never sees it
            return False
        if t in (QEvent.Type.Polish, QEvent.Type.Show) and isinstance(obj, _GUARDED):
            guard_widget(obj)
        return False


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
