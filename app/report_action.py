"""File ▸ "Write PDF report…": the one-click report of the open plan.

The report is made by the same code as ``irplan report`` (zone, checks, pictures, PDF),
run as a child process (QProcess): VTK's offscreen pictures need their own OpenGL
context, and the window stays responsive while the report is computed. The plan is saved
first (the report reads the plan file, exactly as a research pipeline would).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox


class ReportAction(QObject):
    """Owns the menu action and the report child process."""

    finished = Signal(str, str)   # (pdf path, error message or "")

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.process: QProcess | None = None
        self.action = QAction("Write PDF &report…", window)
        self.action.setShortcut(QKeySequence("Ctrl+P"))
        self.action.setStatusTip("Save the plan and write its PDF report (zone, margins, "
                                 "safety findings, pictures); anonymised")
        self.action.triggered.connect(lambda: self.write_report())
        file_menu = next((a.menu() for a in window.menuBar().actions()
                          if a.text().replace("&", "") == "File"), None)
        if file_menu is not None:
            file_menu.insertAction(file_menu.actions()[-1], self.action)

    def _plan_path(self) -> Path | None:
        tools = getattr(self.window, "needle_tools", None)
        if tools is None:
            return None
        if tools.plan_path is None or self._plan_dirty(tools):
            return tools.save_plan_as(tools.plan_path)
        return Path(tools.plan_path)

    @staticmethod
    def _plan_dirty(tools: Any) -> bool:
        stack = getattr(tools, "stack", None)
        return bool(stack is not None and not stack.is_clean)

    def write_report(self, pdf_path: str | Path | None = None) -> bool:
        """Save the plan, then write the report to ``pdf_path`` (asks when None).

        Returns False when nothing was started (no plan, dialog cancelled, already busy).
        """
        if self.process is not None:
            self.window.statusBar().showMessage("A report is already being written", 5000)
            return False
        plan_path = self._plan_path()
        if plan_path is None:
            self.window.statusBar().showMessage("Report: save the plan first", 8000)
            return False
        if pdf_path is None:
            default = str(plan_path.with_name(plan_path.name.replace(".irplan.json", "")
                                              + "-report.pdf"))
            chosen, _ = QFileDialog.getSaveFileName(self.window, "Write PDF report", default,
                                                    "PDF (*.pdf)")
            if not chosen:
                return False
            pdf_path = chosen
        pdf = Path(pdf_path)
        proc = QProcess(self)
        proc.setProgram(sys.executable)
        proc.setArguments(["-m", "irplan.app.cli", "report", str(plan_path), "--pdf", str(pdf)])
        proc.finished.connect(lambda code, _status: self._done(pdf, code))
        self.process = proc
        self.window.statusBar().showMessage(f"Writing report {pdf.name}…")
        proc.start()
        return True

    def _done(self, pdf: Path, code: int) -> None:
        proc, self.process = self.process, None
        err = ""
        if code != 0 or not pdf.is_file():
            text = bytes(proc.readAllStandardError()).decode("utf-8", "replace") if proc else ""
            err = (text.strip().splitlines() or [f"exit code {code}"])[-1]
            self.window.statusBar().showMessage(f"Report failed: {err}", 15000)
            if not getattr(self.window, "headless", False):
                QMessageBox.warning(self.window, "PDF report", f"The report was not written:\n{err}")
        else:
            self.window.statusBar().showMessage(f"Report written: {pdf}", 15000)
        if proc is not None:
            proc.deleteLater()
        self.finished.emit(str(pdf), err)


def install_report_action(window: Any) -> ReportAction:
    """Add File ▸ Write PDF report… (Ctrl+P) to ``window``."""
    return ReportAction(window)
