"""Enable a control, or disable it with a tooltip saying why (issue 12: disabled buttons
looked enabled and did nothing). The control's own tooltip comes back once it is enabled.
"""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

_TIP = "irplanEnabledTip"


def set_enabled(widget: QWidget, ok: bool, why: str) -> None:
    """``widget.setEnabled(ok)``; while disabled its tooltip is ``why`` (what the user must
    do first), enabled it shows its normal tooltip again."""
    tip = widget.property(_TIP)
    if tip is None:                      # first call: remember the normal tooltip
        tip = widget.toolTip()
        widget.setProperty(_TIP, tip)
    widget.setEnabled(bool(ok))
    widget.setToolTip(str(tip) if ok else why)


def disabled_reason(widget: QWidget) -> str:
    """The tooltip a disabled control shows ("" when it is enabled)."""
    return "" if widget.isEnabled() else widget.toolTip()
