"""The main window's actions, menus (found by id: "file", "view", "workflow", "help") and
toolbar. Panels add to them through :class:`irplan.app.context.AppContext` (menus by id,
``add_file_action`` before the "quit" action), never by a menu's title text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QMessageBox, QToolBar

from irplan.viewers.presets import WINDOW_PRESETS
from irplan.viewers.scene3d import CAMERA_PRESETS

if TYPE_CHECKING:
    from irplan.app.main_window import MainWindow

KEYS_HELP = (
    "<b>Slices</b>: left click/drag = crosshair (links all views); wheel, "
    "PageUp/PageDown, ↑/↓ = slice (Shift ×10); right drag or Alt+left = window/level;"
    " middle drag or Shift+left = pan; Ctrl+wheel or Ctrl+left drag = zoom; "
    "double-click or M = maximise, Esc = back.<br><b>3D</b>: left drag rotate, "
    "middle pan, right/wheel zoom; Ctrl+1…6 camera presets.<br><b>Keys</b>: 1–5 "
    "window presets, R reset views, O outlines, C crosshair, V volume rendering.")


class MainActions:
    """Builds the actions (``actions`` by name, ``presets`` by window-preset key), the
    menus (``menus`` by id) and the toolbar of ``window``."""

    def __init__(self, window: MainWindow, notice: str) -> None:
        self.window = window
        self.notice = notice
        self.actions: dict[str, QAction] = {}
        self.menus: dict[str, QMenu] = {}
        self.presets: dict[str, QAction] = {}
        self._build_file_menu()
        self._build_view_menu()
        self._build_workflow_and_help()
        self.toolbar = self._build_toolbar()
        window.views.maximised_changed.connect(self._on_maximised)

    def action(self, name: str, text: str, slot: Callable, shortcut: str | QKeySequence |
               QKeySequence.StandardKey | None = None, tip: str = "") -> QAction:
        """A window-wide action (its shortcut works anywhere in the window)."""
        a = QAction(text, self.window)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(f"{tip} ({a.shortcut().toString()})" if shortcut else tip)
        a.triggered.connect(slot)
        self.window.addAction(a)
        self.actions[name] = a
        return a

    def _build_file_menu(self) -> None:
        w = self.window
        m = self.menus["file"] = w.menuBar().addMenu("&File")
        m.addAction(self.action("open", "&Open DICOM folder…", lambda: w.loader.ask_open_folder(),
                                QKeySequence.StandardKey.Open,
                                "Open a DICOM folder or DICOMDIR"))
        m.addAction(self.action("open_plan", "Open &plan…", lambda: w.loader.ask_open_plan(),
                                "Ctrl+Shift+O",
                                "Open a .irplan.json plan with its image"))
        m.addAction(self.action("demo", "Open &demo case", w.open_demo, None,
                                "Open the built-in phantom case"))
        m.addAction(self.action("close_case", "&Close case", lambda: w.loader.close_case(),
                                QKeySequence.StandardKey.Close,
                                "Close the open case (asks about unsaved plan changes)"))
        m.addSeparator()
        m.addAction(self.action("screenshot", "Save &screenshot…", w.ask_screenshot,
                                "Ctrl+Shift+S", "Save a PNG of the whole window"))
        m.addSeparator()
        m.addAction(self.action("quit", "&Quit", w.close, QKeySequence.StandardKey.Quit,
                                "Quit"))

    def _build_view_menu(self) -> None:
        w, views, case_panel = self.window, self.window.views, self.window.case_panel
        v = self.menus["view"] = w.menuBar().addMenu("&View")
        wm = v.addMenu("&Window / level")
        group = QActionGroup(w)
        for p in WINDOW_PRESETS:
            label = (f"{p.name}" if p.key == "dicom"
                     else f"{p.name}  (W {p.width_hu:.0f} / L {p.level_hu:.0f})")
            a = self.action(f"preset_{p.key}", label,
                            lambda _=False, k=p.key: w.apply_window_preset(k),
                            p.shortcut, f"Window preset: {p.name}")
            a.setCheckable(True)
            group.addAction(a)
            wm.addAction(a)
            self.presets[p.key] = a
        self.presets["abdomen"].setChecked(True)
        v.addAction(self.action("reset_views", "&Reset views", views.reset_views, "R",
                                "Fit every view and reset the 3D camera"))
        v.addAction(self.action("maximise", "&Maximise view", self.toggle_maximise, "M",
                                "Show the view under focus alone (again: back to 2×2)"))
        outline = self.action("outline", "Structure &outlines on slices",
                              lambda on=False: case_panel.mode_combo.setCurrentIndex(
                                  1 if on else 0), "O",
                              "Draw structures as contour lines instead of fills")
        outline.setCheckable(True)
        outline.setChecked(views.outline_mode)
        case_panel.mode_combo.currentIndexChanged.connect(lambda i: outline.setChecked(i == 1))
        v.addAction(outline)
        cross = self.action("crosshair", "Cross&hair",
                            lambda on=False: views.set_crosshair_visible(on), "C",
                            "Show the linked crosshair lines")
        cross.setCheckable(True)
        cross.setChecked(True)
        v.addAction(cross)
        cm = v.addMenu("3D &camera")
        for i, name in enumerate(CAMERA_PRESETS):
            cm.addAction(self.action(f"camera_{name}", name.capitalize(),
                                     lambda _=False, n=name: views.scene3d.set_camera_preset(n),
                                     f"Ctrl+{i + 1}", f"3D view from {name}"))
        # a checkable action passes its state (a bare setChecked slot got none: TypeError)
        vr = self.action("volume_rendering", "CT &volume rendering in 3D",
                         lambda on=False: case_panel.vr_check.setChecked(on), "V",
                         "Show the CT as a volume rendering in the 3D view")
        vr.setCheckable(True)
        case_panel.vr_check.toggled.connect(vr.setChecked)
        v.addAction(vr)

    def _build_workflow_and_help(self) -> None:
        w = self.window
        wf = self.menus["workflow"] = w.menuBar().addMenu("&Workflow")
        for i, step in enumerate(w.workflow.steps):
            wf.addAction(self.action(f"step_{step}", step.capitalize(),
                                     lambda _=False, s=step: w.workflow.set_step(s),
                                     f"Alt+{i + 1}", f"Workflow step: {step}"))
        h = self.menus["help"] = w.menuBar().addMenu("&Help")
        h.addAction(self.action("about", "&About IRPlan", self.about, None, "About"))
        h.addAction(self.action("keys", "&Mouse and keys", self.help_keys, "F1",
                                "Mouse and keys"))

    def _build_toolbar(self) -> QToolBar:
        a = self.actions
        tb = QToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.addAction(a["open"])
        tb.addAction(a["open_plan"])
        tb.addSeparator()
        for p in WINDOW_PRESETS:
            act = self.presets[p.key]
            act.setIconText(f"{p.shortcut} {p.name.split()[0]}" if p.key != "dicom"
                            else f"{p.shortcut} DICOM")
            tb.addAction(act)
        tb.addSeparator()
        for name in ("reset_views", "maximise", "outline", "volume_rendering"):
            tb.addAction(a[name])
        tb.addSeparator()
        tb.addAction(a["screenshot"])
        self.window.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
        return tb

    # ------------------------------------------------------------------ slots
    def toggle_maximise(self) -> None:
        views = self.window.views
        views.toggle_maximise(views.maximised or views.focused_view_name())

    def _on_maximised(self, name: str) -> None:
        self.actions["maximise"].setText("Back to 2×2 views" if name else "&Maximise view")

    def about(self) -> None:
        QMessageBox.about(self.window, "About IRPlan",
                          "<b>IRPlan</b> — planning and evaluation of percutaneous liver "
                          f"tumour ablation (IRE, MWA, RFA, cryo).<br><br><b>{self.notice}."
                          "</b><br>All positions are DICOM patient coordinates (LPS, mm).")

    def help_keys(self) -> None:
        QMessageBox.information(self.window, "Mouse and keys", KEYS_HELP)
