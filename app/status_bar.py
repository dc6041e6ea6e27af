"""The main window's status bar: cursor position (LPS mm) and HU, window/level, the
progress of background tasks with Cancel, the research-use notice."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QStatusBar,
    QWidget,
)

from irplan.app.workers import Task, TaskRunner
from irplan.viewers.view_set import ViewSet

CURSOR_HINT = "Point at a slice: position (LPS mm) and HU show here"


def cursor_text(p_lps_mm: np.ndarray) -> str:
    """``Cursor  R  12.0  A   3.5  S  40.0 mm  (LPS -12.0, -3.5, 40.0)``."""
    p = p_lps_mm
    lr = f"{'L' if p[0] >= 0 else 'R'} {abs(p[0]):6.1f}"
    ap = f"{'P' if p[1] >= 0 else 'A'} {abs(p[1]):6.1f}"
    si = f"{'S' if p[2] >= 0 else 'I'} {abs(p[2]):6.1f}"
    return f"Cursor  {lr}  {ap}  {si} mm  (LPS {p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f})"


class StatusBarWidgets:
    """Builds the permanent widgets of ``bar`` and keeps them up to date from the views
    (cursor, window) and the task runner (progress, Cancel)."""

    def __init__(self, bar: QStatusBar, views: ViewSet, tasks: TaskRunner,
                 notice: str) -> None:
        self.bar = bar
        self.cursor_label = QLabel(CURSOR_HINT)
        self.cursor_label.setMinimumWidth(330)
        self.hu_label = QLabel("")
        self.hu_label.setMinimumWidth(90)
        self.wl_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setFixedWidth(220)
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.progress_text = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(tasks.cancel_all)
        status_notice = QLabel("RESEARCH USE ONLY")
        status_notice.setObjectName("statusNotice")
        status_notice.setToolTip(notice)
        box = QWidget()
        bl = QHBoxLayout(box)
        bl.setContentsMargins(0, 0, 0, 0)
        for w in (self.cursor_label, self.hu_label, self.wl_label):
            bl.addWidget(w)
        bar.addWidget(box, 1)
        bar.addPermanentWidget(self.progress_text)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        bar.addPermanentWidget(status_notice)
        views.cursor_moved.connect(self.on_cursor)
        views.window_changed.connect(self.on_window_changed)
        tasks.busy_changed.connect(self.on_busy)
        tasks.task_started.connect(self.on_task_started)

    def on_cursor(self, p: np.ndarray, hu: float) -> None:
        if not np.all(np.isfinite(p)):            # another CT: no point of the old one
            self.cursor_label.setText(CURSOR_HINT)
            self.hu_label.setText("")
            return
        self.cursor_label.setText(cursor_text(p))
        self.hu_label.setText("—" if np.isnan(hu) else f"{hu:.0f} HU")

    def on_window_changed(self, w: float, lvl: float) -> None:
        self.wl_label.setText(f"W {w:.0f} / L {lvl:.0f}")

    def on_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.progress_text.setVisible(busy)
        if not busy:
            self.progress_text.setText("")
            self.progress.setValue(0)

    def on_task_started(self, task: Task) -> None:
        task.signals.progress.connect(self.on_progress)
        self.progress_text.setText(task.name)

    def on_progress(self, frac: float, text: str) -> None:
        self.progress.setValue(int(frac * 1000))
        if text:
            self.progress_text.setText(text)
