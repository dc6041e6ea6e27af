"""Needle placement in the main window: ``install(ctx)`` builds the Plan step from its parts.

- :mod:`irplan.app.plan_session`: the Logic (plan, undo stack, selection, checks, zone job,
  autosave and recovery); registered as ``ctx.services.session``.
- :mod:`irplan.app.needle_panel`: the "Plan" step panel (modality/device, needle table,
  templates, findings).
- :mod:`irplan.app.needle_interaction`: placement clicks and handle drags in 2D and 3D.
- :mod:`irplan.app.plan_prompts`: save dialog, unsaved-changes prompt on close, the
  crash-recovery offer at start-up.
- here: the needle overlays in the views (colour = worst finding: red error, orange
  warning, green fine) and the Undo / Redo / Place needle actions (Ctrl+Z,
  Ctrl+Shift+Z, N).

Place: "Place" (or N), click the target, then the entry point, in any slice view. IRE
templates (pair ... 2x3) around the tumour; thermal: one applicator whose zone centre
falls on the tumour. Every edit is a command on the undo stack; findings of
:mod:`irplan.planning.safety` are re-evaluated after every edit. Autosave: a recovery
file at most 30 s after an unsaved edit (:mod:`irplan.io.recovery`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence

from irplan.app.context import AppContext
from irplan.app.needle_interaction import NeedleInteraction
from irplan.app.needle_panel import NeedlePanel
from irplan.app.plan_prompts import CloseGuard, RecoveryOffer, ask_save_plan
from irplan.app.plan_session import PlanSession
from irplan.viewers.needle_actors import NeedleActors


class NeedleOverlay:
    """Draws the session's needles in every view; redraws on its events."""

    def __init__(self, session: PlanSession, actors: NeedleActors) -> None:
        self.session = session
        self.actors = actors
        session.findings_changed.connect(self.update)
        session.selection_changed.connect(self.update)

    def update(self, *_args: Any) -> None:
        s = self.session
        self.actors.update(s.plan, s.needle_severities(), s.selected, s.needle_radii_mm(),
                           s.pending_target)


class NeedleTools:
    """The installed Plan step: ``session`` (the Logic), ``panel``, ``actors``,
    ``interaction``, ``actions``. Other attributes are the session's (compatibility for
    scripts and tests written against the former single class)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.session = PlanSession(ctx.case, ctx.tasks)
        ctx.services.session = self.session
        self.session.message.connect(self._show_message)
        self.actors = NeedleActors(ctx.views)
        self.overlay = NeedleOverlay(self.session, self.actors)
        self.panel = NeedlePanel(self.session, ctx)
        ctx.workflow.set_panel("plan", self.panel)
        self.interaction = NeedleInteraction(self.session, ctx.views)
        self.close_guard = CloseGuard(ctx, self.session)
        self.recovery = RecoveryOffer(ctx, self.session)
        self.actions = self._make_actions()
        ctx.case.plan_replaced.connect(self._show_plan_step)

    def __getattr__(self, name: str) -> Any:
        # only called for names not found on the bundle: the session's API
        if name == "session":
            raise AttributeError(name)
        return getattr(self.session, name)

    def _make_actions(self) -> dict[str, QAction]:
        s, parent = self.session, self.ctx.parent
        specs = {"undo": ("Undo plan edit", [QKeySequence.StandardKey.Undo], s.undo),
                 "redo": ("Redo plan edit", ["Ctrl+Shift+Z", "Ctrl+Y"], s.redo),
                 "place": ("Place needle", ["N"], s.start_placing)}
        out = {}
        for key, (text, keys, slot) in specs.items():
            a = QAction(text, parent)
            a.setShortcuts([QKeySequence(k) for k in keys])
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            a.triggered.connect(slot)
            parent.addAction(a)
            self.ctx.actions[f"plan_{key}"] = a
            out[key] = a
        return out

    def _show_message(self, text: str, timeout_ms: int) -> None:
        if text:
            from irplan.planning.display_names import user_text

            self.ctx.show_status(user_text(text, self.session.plan.modality), timeout_ms)
        else:
            self.ctx.status.clearMessage()

    def _show_plan_step(self) -> None:
        if self.session.plan.needles:
            self.ctx.workflow.set_step("plan")

    def save_plan_as(self, path: str | Path | None = None) -> Path | None:
        """Save the plan (None: ask for the file); the file or None."""
        return ask_save_plan(self.ctx, self.session, path)

    def sync_with_case(self) -> None:
        """Built after a case was loaded: take it over as its signals would have told."""
        self.session.sync_with_case()
        self._show_plan_step()


def install(ctx: AppContext) -> NeedleTools:
    """Build the Plan step for the main window's context (called once)."""
    return NeedleTools(ctx)
