"""The Plan step's questions to the user: save the plan (file dialog), unsaved changes
(Save / Discard / Cancel, also when the window closes) and the crash-recovery offer at
start-up. Dialogs only; what happens is done by :class:`PlanSession`. No dialog is shown
while ``ctx.headless()`` (scripts, screenshots, tests).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QFileDialog, QMessageBox

from irplan.app.context import AppContext
from irplan.app.plan_session import PlanSession
from irplan.planning.display_names import structure_name
from irplan.planning.errors import IrplanError


def ask_save_plan(ctx: AppContext, session: PlanSession,
                  path: str | Path | None = None) -> Path | None:
    """Save the plan to ``path`` (None: ask with a file dialog); the file, or None when
    cancelled or refused (the reason is shown)."""
    if path is None:
        start = str(session.plan_path or ctx.case_folder() / "plan.irplan.json")
        f, _ = QFileDialog.getSaveFileName(ctx.parent, "Save plan", start,
                                           "IRPlan plans (*.irplan.json)")
        if not f:
            return None
        path = f if f.endswith(".irplan.json") else f + ".irplan.json"
    try:
        return session.save_plan(path)
    except IrplanError as exc:
        if ctx.headless():
            ctx.show_status(f"Save plan: {exc}", 15000)
        else:
            QMessageBox.warning(ctx.parent, "Save plan", str(exc))
        return None


def confirm_discard(ctx: AppContext, session: PlanSession) -> bool:
    """True when the current plan may be dropped: it has no unsaved edits, the user saved
    it, or chose Discard. False: the user cancelled (or saving failed)."""
    if ctx.headless():
        return True
    edited = session.edited_structures()
    if not edited and (not session.is_modified or not session.plan.needles):
        return True
    what = "The plan has unsaved changes"
    if edited:
        what += f" (edited structures: {', '.join(structure_name(k) for k in edited)})"
    ans = QMessageBox.question(
        ctx.parent, "Unsaved plan", f"{what}. Save them?",
        QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
        | QMessageBox.StandardButton.Cancel)
    if ans == QMessageBox.StandardButton.Cancel:
        return False
    if ans == QMessageBox.StandardButton.Save:
        return ask_save_plan(ctx, session, session.plan_path) is not None
    return True


class CloseGuard(QObject):
    """On the main window's close: ask about unsaved plan edits (Cancel keeps it open),
    then end the session cleanly (its recovery file goes)."""

    def __init__(self, ctx: AppContext, session: PlanSession) -> None:
        super().__init__(ctx.parent)
        self.ctx = ctx
        self.session = session
        ctx.parent.installEventFilter(self)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt naming
        if obj is not self.ctx.parent or ev.type() != QEvent.Type.Close:
            return False
        if not confirm_discard(self.ctx, self.session):
            ev.ignore()
            return True
        self.session.close()
        return False


class RecoveryOffer(QObject):
    """At start-up: a crashed session's autosaved plan is offered (Yes: open its case and
    put the plan in; Discard: delete the file; Cancel: ask again next time)."""

    def __init__(self, ctx: AppContext, session: PlanSession) -> None:
        super().__init__(ctx.parent)
        self.ctx = ctx
        self.session = session
        self._pending = None
        QTimer.singleShot(0, self.offer)

    def offer(self) -> None:
        if self.ctx.headless():
            return
        from irplan.io.recovery import discard, find_recoverable, recover

        found = find_recoverable()
        if not found:
            return
        e = found[0]
        box = QMessageBox(self.ctx.parent)
        box.setWindowTitle("Recover plan")
        box.setText("IRPlan did not close normally. Recover the autosaved plan?\n\n"
                    + e.describe())
        box.setStandardButtons(QMessageBox.StandardButton.Yes
                               | QMessageBox.StandardButton.Discard
                               | QMessageBox.StandardButton.Cancel)
        ans = box.exec()
        if ans == QMessageBox.StandardButton.Yes:
            try:
                plan = recover(e)
            except IrplanError as exc:
                QMessageBox.warning(self.ctx.parent, "Recover plan", str(exc))
                return
            self._pending = (plan, e)
            if e.plan_path is not None and e.plan_path.exists() \
                    and self.ctx.case_loaded is not None:
                self.ctx.case_loaded.connect(self._apply)
                self.ctx.open_path(e.plan_path)
            else:
                self._apply()
        elif ans == QMessageBox.StandardButton.Discard:
            discard(e)

    def _apply(self) -> None:
        if self.ctx.case_loaded is not None:
            try:
                self.ctx.case_loaded.disconnect(self._apply)
            except (RuntimeError, TypeError):
                pass
        if self._pending is None:
            return
        plan, entry = self._pending
        self._pending = None
        self.session.adopt_recovered(plan, entry)
