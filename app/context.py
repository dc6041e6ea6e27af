"""The typed application context every panel and tool is installed with.

Panels never receive the main window: they get an ``AppContext`` holding what they may use
(the open case, the views, the task runner, the status line, menus and docks by id, the
headless flag) and a ``Services`` registry where the logic objects of the other panels are
found by typed attribute (``ctx.services.session``), not by ``getattr(window, ...)``.

Menu ids: ``"file"``, ``"view"``, ``"workflow"``, ``"help"``; file-menu actions are
inserted before the ``"quit"`` action with ``add_file_action``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QMenu, QWidget

if TYPE_CHECKING:  # the types only; no import cycle at run time
    from irplan.app.workers import TaskRunner
    from irplan.app.workflow_panel import WorkflowPanel
    from irplan.planning.case import Case
    from irplan.viewers.view_set import ViewSet


class StatusSink(Protocol):
    """Where one-line messages to the user go (the main window's status bar)."""

    def showMessage(self, text: str, timeout: int = 0) -> None: ...  # noqa: N802 - Qt name

    def clearMessage(self) -> None: ...  # noqa: N802 - Qt name


@dataclass
class Services:
    """Logic objects registered by the panels that own them (None until installed).

    Typed as ``Any`` here to keep this module free of panel imports; each owner documents
    the type it registers (e.g. ``session``: ``irplan.app.plan_session.PlanSession``).
    """

    session: Any = None        # the plan session: plan, undo stack, selection, checks, autosave
    zone: Any = None           # predicted-zone logic (zone dock)
    evaluation: Any = None     # follow-up evaluation logic (Evaluate step)
    training: Any = None       # reference-plan comparison (training dock)
    probe: Any = None          # needle-aligned views (probe dock)
    report: Any = None         # File > Write PDF report
    segment: Any = None        # Segment step
    verify: Any = None         # intra-op verification (app/verify_logic.VerifyLogic)


@dataclass
class AppContext:
    """What a panel may use; built once by the main window."""

    case: Case
    views: ViewSet
    tasks: TaskRunner
    status: StatusSink
    workflow: WorkflowPanel
    parent: QWidget                       # parent of dialogs and docks
    menus: dict[str, QMenu]
    actions: dict[str, QAction]           # named actions, e.g. "quit", "open", "open_plan"
    add_dock: Callable[[str, QDockWidget, Qt.DockWidgetArea], None]
    open_path: Callable[[str | Path], None]
    headless: Callable[[], bool]          # no dialogs may be shown (scripts, screenshots)
    services: Services = field(default_factory=Services)
    docks: dict[str, QDockWidget] = field(default_factory=dict)
    case_loaded: Any = None               # Qt signal: a case's CT and structures are shown

    def show_status(self, text: str, timeout_ms: int = 6000) -> None:
        """One line in the status bar for ``timeout_ms`` (0: until replaced)."""
        self.status.showMessage(text, timeout_ms)

    def menu(self, menu_id: str) -> QMenu:
        """The menu with id ``menu_id`` (KeyError names the known ids)."""
        try:
            return self.menus[menu_id]
        except KeyError:
            raise KeyError(f"no menu '{menu_id}' (known: {', '.join(self.menus)})") from None

    def add_file_action(self, action: QAction) -> None:
        """Insert ``action`` into the File menu, before Quit."""
        m = self.menu("file")
        quit_action = self.actions.get("quit")
        if quit_action is not None and quit_action in m.actions():
            m.insertAction(quit_action, action)
        else:
            m.addAction(action)

    def case_folder(self) -> Path:
        """The folder file dialogs start in: the open case's (plan's, case folder's or
        CT's) folder, else the user's home folder."""
        session = self.services.session
        plan_path = getattr(session, "plan_path", None) if session is not None else None
        for p in (plan_path, self.case.case_dir, self.case.ct_path):
            if p:
                p = Path(p)
                return p if p.is_dir() else p.parent
        return Path.home()
