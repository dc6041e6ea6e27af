"""File ▸ "Write PDF report…": the one-click report of the open plan.

The report is made by the same code as ``irplan report`` (zone, checks, pictures, PDF),
run as a child process (QProcess): VTK's offscreen pictures need their own OpenGL
context, and the window stays responsive while the report is computed. The child reads
a temporary copy of the plan as shown (app/report_inputs.py) and the evaluation shown in
the Evaluate tab (``--evaluation``): the case's own plan file is never written.
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
        self.inputs: Any = None          # app.report_inputs.ReportInputs of the running child
        self.action = QAction("Write PDF &report…", window)
        self.action.setShortcut(QKeySequence("Ctrl+P"))
        self.action.setStatusTip("Write the PDF report of the plan as shown (zone, margins, "
                                 "safety findings, follow-up evaluation, pictures); "
                                 "anonymised; the plan file is not changed")
        self.action.triggered.connect(lambda: self.write_report())
        file_menu = next((a.menu() for a in window.menuBar().actions()
                          if a.text().replace("&", "") == "File"), None)
        if file_menu is not None:
            file_menu.insertAction(file_menu.actions()[-1], self.action)

    def _saved_plan_path(self) -> Path | None:
        p = getattr(self.window.case, "plan_path", None)
        if not p:
            tools = getattr(self.window, "needle_tools", None)
            p = getattr(getattr(tools, "session", tools), "plan_path", None)
        return Path(p) if p else None

    def default_pdf_path(self) -> Path:
        """Where the PDF dialog starts: ``<plan stem>-report.pdf`` in the case's folder
        (the plan's, else the opened case folder, else the CT's), else the home folder."""
        from irplan.io.plan_masks import plan_stem

        plan_path = self._saved_plan_path()
        if plan_path is not None:
            return plan_path.with_name(plan_stem(plan_path) + "-report.pdf")
        case = self.window.case
        for d in (case.plan.file_dir or None, getattr(self.window, "case_dir", None),
                  getattr(case, "ct_path", None)):
            if d:
                d = Path(d)
                folder = d if d.is_dir() else d.parent
                return folder / "plan-report.pdf"
        return Path.home() / "plan-report.pdf"

    def current_evaluation(self) -> Any:
        """The follow-up evaluation shown in the Evaluate tab (None when there is none)."""
        panel = getattr(self.window, "evaluate_panel", None)
        return getattr(panel, "result", None)

    def write_report(self, pdf_path: str | Path | None = None,
                     extra_args: list[str] | None = None) -> bool:
        """Ask for the PDF name (when ``pdf_path`` is None), then write the report of the
        plan as shown with the evaluation of the Evaluate tab. The plan file is not
        written. ``extra_args``: more ``irplan report`` flags (e.g. ``--no-pictures``).

        Returns False when nothing was started (no CT, dialog cancelled, already busy).
        """
        from irplan.app.report_inputs import write_report_inputs
        from irplan.planning.errors import IrplanError

        status = self.window.statusBar()
        if self.process is not None:
            status.showMessage("A report is already being written", 5000)
            return False
        case = self.window.case
        if case.ct is None:
            status.showMessage("Report: open a CT and plan first", 8000)
            return False
        if pdf_path is None:
            chosen, _ = QFileDialog.getSaveFileName(self.window, "Write PDF report",
                                                    str(self.default_pdf_path()),
                                                    "PDF (*.pdf)")
            if not chosen:
                return False
            pdf_path = chosen if chosen.lower().endswith(".pdf") else chosen + ".pdf"
        pdf = Path(pdf_path)
        try:
            self.inputs = write_report_inputs(case.plan, case.structures, case.ct_path,
                                              self.current_evaluation())
        except (IrplanError, OSError) as exc:
            status.showMessage(f"Report not written: {exc}", 15000)
            return False
        args = ["-m", "irplan.app.cli", "report", str(self.inputs.plan_path), "--pdf", str(pdf)]
        if self.inputs.evaluation_path is not None:
            args += ["--evaluation", str(self.inputs.evaluation_path)]
        proc = QProcess(self)
        proc.setProgram(sys.executable)
        proc.setArguments(args + list(extra_args or []))
        proc.finished.connect(lambda code, _status: self._done(pdf, code))
        self.process = proc
        status.showMessage(f"Writing report {pdf}…")
        proc.start()
        return True

    def _done(self, pdf: Path, code: int) -> None:
        proc, self.process = self.process, None
        inputs, self.inputs = self.inputs, None
        if inputs is not None:
            inputs.cleanup()
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
