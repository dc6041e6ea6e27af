"""The Qt binding must not leak references to None.

PySide6 6.12.0 on Python 3.11 releases one reference to ``None`` on every call that
returns nothing (``processEvents``, ``setObjectName``, ``QTimer.start`` …): after ~100,000
such calls Python aborts with "Fatal Python error: none_dealloc" — a long planning session
or test run dies without a trace (pyproject.toml pins the binding below 6.12).
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QCoreApplication, QObject, QTimer


def test_void_calls_keep_none_alive(qapp) -> None:
    obj = QObject()
    timer = QTimer()
    before = sys.getrefcount(None)
    for _ in range(2000):
        QCoreApplication.processEvents()
        obj.setObjectName("irplan")
        timer.setInterval(5)
    lost = before - sys.getrefcount(None)
    assert lost < 100, (f"the Qt binding lost {lost} references to None in 6000 calls: "
                        "a long session would abort (none_dealloc)")
