"""File ▸ "Write PDF report…": the one-click report of the open plan.

The report is made by the same code as ``irplan report`` (zone, checks, pictures, PDF),
run as a child process (QProcess): VTK's offscreen pictures need their own OpenGL
context, and the window stays responsive while the report is computed. The child reads
a temporary copy of the plan as shown (app/report_inputs.py) and the evaluation shown in
the Evaluate tab (``ctx.services.evaluation``, ``--evaluation``): the case's own plan
file is never written.

:class:`ReportWriter` (no widgets; ``ctx.services.report``) runs the child;
:class:`ReportAction` is the menu action with its dialogs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from irplan.app.context import AppContext, Services
from irplan.planning.case import Case


class ReportWriter(QObject):
    """Writes the report of ``case`` (plan as shown, evaluation of ``services``) in a
    child process; ``say(text, timeout_ms)`` is the status line."""

    finished = Signal(str, str)   # (pdf path, error message or "")

    def __init__(self, case: Case, services: Services, say: Callable[[str, int], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.case, self.services, self.say = case, services, say
        self.process: QProcess | None = None
        self.inputs: Any = None          # app.report_inputs.ReportInputs of the running child

    def _saved_plan_path(self) -> Path | None:
        p = self.case.plan_path or getattr(self.services.session, "plan_path", None)
        return Path(p) if p else None

    def default_pdf_path(self) -> Path:
        """Where the PDF dialog starts: ``<plan stem>-report.pdf`` in the case's folder
        (the plan's, else the opened case folder, else the CT's), else the home folder."""
        from irplan.io.plan_masks import plan_stem

        plan_path = self._saved_plan_path()
        if plan_path is not None:
            return plan_path.with_name(plan_stem(plan_path) + "-report.pdf")
        case = self.case
        for d in (case.plan.file_dir or None, case.case_dir, case.ct_path):
            if d:
                d = Path(d)
                folder = d if d.is_dir() else d.parent
                return folder / "plan-report.pdf"
        return Path.home() / "plan-report.pdf"

    def current_evaluation(self) -> Any:
        """The follow-up evaluation shown in the Evaluate tab (None when there is none)."""
        return getattr(self.services.evaluation, "result", None)

    def refuse(self) -> bool:
        """True (and why in the status line) when no report can be started now."""
        if self.process is not None:
            self.say("A report is already being written", 5000)
            return True
        if self.case.ct is None:
            self.say("Report: open a CT and plan first", 8000)
            return True
        return False

    def start(self, pdf: Path, extra_args: list[str] | None = None) -> bool:
        """Write the report of the plan as shown to ``pdf`` (False: nothing started)."""
        from irplan.app.report_inputs import write_report_inputs
        from irplan.planning.errors import IrplanError

        if self.refuse():
            return False
        case = self.case
        try:
            self.inputs = write_report_inputs(case.plan, case.structures, case.ct_path,
                                              self.current_evaluation())
        except (IrplanError, OSError) as exc:
            self.say(f"Report not written: {exc}", 15000)
            return False
        args = ["-m", "irplan.app.cli", "report", str(self.inputs.plan_path), "--pdf", str(pdf)]
        if self.inputs.evaluation_path is not None:
            args += ["--evaluation", str(self.inputs.evaluation_path)]
        proc = QProcess(self)
        proc.setProgram(sys.executable)
        proc.setArguments(args + list(extra_args or []))
        proc.finished.connect(lambda code, _status: self._done(pdf, code))
        self.process = proc
        self.say(f"Writing report {pdf}…", 0)
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
            self.say(f"Report failed: {err}", 15000)
        else:
            self.say(f"Report written: {pdf}", 15000)
        if proc is not None:
            proc.deleteLater()
        self.finished.emit(str(pdf), err)


class ReportAction(QObject):
    """File ▸ Write PDF report… (Ctrl+P): asks for the PDF name, runs the writer, says
    a failure in a message box (unless headless)."""

    finished = Signal(str, str)   # (pdf path, error message or "")

    def __init__(self, ctx: AppContext, writer: ReportWriter) -> None:
        super().__init__(ctx.parent)
        self.ctx, self.writer = ctx, writer
        self.action = QAction("Write PDF &report…", ctx.parent)
        self.action.setShortcut(QKeySequence("Ctrl+P"))
        self.action.setStatusTip("Write the PDF report of the plan as shown (zone, margins, "
                                 "safety findings, follow-up evaluation, pictures); "
                                 "anonymised; the plan file is not changed")
        self.action.triggered.connect(lambda: self.write_report())
        ctx.add_file_action(self.action)
        ctx.actions["write_report"] = self.action
        writer.finished.connect(self._done)

    @property
    def process(self) -> QProcess | None:
        return self.writer.process

    def default_pdf_path(self) -> Path:
        return self.writer.default_pdf_path()

    def current_evaluation(self) -> Any:
        return self.writer.current_evaluation()

    def write_report(self, pdf_path: str | Path | None = None,
                     extra_args: list[str] | None = None) -> bool:
        """Ask for the PDF name (when ``pdf_path`` is None), then write the report of the
        plan as shown with the evaluation of the Evaluate tab. The plan file is not
        written. ``extra_args``: more ``irplan report`` flags (e.g. ``--no-pictures``).

        Returns False when nothing was started (no CT, dialog cancelled, already busy).
        """
        if pdf_path is None:
            if self.writer.refuse():
                return False
            chosen, _ = QFileDialog.getSaveFileName(self.ctx.parent, "Write PDF report",
                                                    str(self.default_pdf_path()),
                                                    "PDF (*.pdf)")
            if not chosen:
                return False
            pdf_path = chosen if chosen.lower().endswith(".pdf") else chosen + ".pdf"
        return self.writer.start(Path(pdf_path), extra_args)

    def _done(self, pdf: str, err: str) -> None:
        if err and not self.ctx.headless():
            QMessageBox.warning(self.ctx.parent, "PDF report",
                                f"The report was not written:\n{err}")
        self.finished.emit(pdf, err)


def install_report_action(ctx: AppContext) -> ReportAction:
    """Register :class:`ReportWriter` as ``ctx.services.report`` and add File ▸ Write PDF
    report… (Ctrl+P)."""
    writer = ReportWriter(ctx.case, ctx.services, ctx.show_status, parent=ctx.parent)
    ctx.services.report = writer
    return ReportAction(ctx, writer)
