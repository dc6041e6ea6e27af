"""The IRPlan main window: 2x2 linked views, workflow side panel, menus, status bar.

Hooks for other modules:

- ``window.case``: the open :class:`irplan.planning.case.Case` (psygnal signals). Changing
  its structures (``case.set_structure``) updates the slices and re-extracts the surface.
- ``window.views``: the :class:`irplan.viewers.view_set.ViewSet` (``add_overlay_actor``,
  ``add_overlay_polydata``, ``crosshair_changed``, ``mpr("axial")``, ``scene3d`` ...).
- ``window.workflow.set_panel(step, widget)``: the panel of "case", "segment", "plan",
  "evaluate".
- ``window.tasks.start(name, fn, on_result, on_error)``: run ``fn(progress, cancel)`` off
  the GUI thread with the status-bar progress bar and Cancel button.
- ``window.case_loaded`` (Qt signal): emitted after a CT and its structures are shown.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from irplan.app.case_panel import CasePanel
from irplan.app.settings import app_settings
from irplan.app.workers import Task, TaskRunner, counting_progress
from irplan.app.workflow_panel import WorkflowPanel
from irplan.planning.case import Case
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume
from irplan.viewers.presets import WINDOW_PRESETS
from irplan.viewers.scene3d import CAMERA_PRESETS
from irplan.viewers.view_set import ViewSet

NOTICE_SHORT = "Research software — not a certified medical device, not for clinical use"
APP_TITLE = "IRPlan"

STYLE_SHEET = """
QMainWindow, QWidget { background: #1e2127; color: #d7dae0; }
QMenuBar, QMenu { background: #23272e; color: #d7dae0; }
QMenu::item:selected, QMenuBar::item:selected { background: #3a4150; }
QToolBar { background: #23272e; border: 0; spacing: 4px; padding: 2px; }
QToolButton { padding: 3px 7px; border-radius: 3px; }
QToolButton:hover { background: #343a46; }
QToolButton:checked { background: #3d5a80; color: white; }
QToolButton#stepButton { padding: 6px 4px; font-weight: bold; background: #2a2f38; }
QToolButton#stepButton:checked { background: #3d5a80; }
QGroupBox { border: 1px solid #3a404c; border-radius: 4px; margin-top: 14px;
            padding-top: 4px; font-weight: bold; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 3px; color: #aab4c4; }
QTreeWidget { background: #181a1f; alternate-background-color: #1f2228;
              border: 1px solid #3a404c; }
QHeaderView::section { background: #2a2f38; color: #c0c6d0; border: 0; padding: 3px; }
QStatusBar { background: #16181c; color: #c9ced6; }
QStatusBar QLabel { padding: 0 6px; }
QLabel#notice { background: #6b4a00; color: #ffe4a3; font-weight: bold; padding: 3px 8px; }
QLabel#statusNotice { color: #ffcf66; font-weight: bold; }
QComboBox, QPushButton { background: #2c313a; border: 1px solid #454c59; padding: 2px 6px;
                         border-radius: 3px; }
QPushButton:disabled, QComboBox:disabled, QToolButton:disabled {
    color: #5f6673; background: #23262c; border-color: #30343c; }
QAbstractSpinBox:disabled, QCheckBox:disabled, QRadioButton:disabled { color: #5f6673; }
QProgressBar { border: 1px solid #454c59; border-radius: 3px; text-align: center;
               background: #181a1f; }
QProgressBar::chunk { background: #3d7bd9; }
QSplitter::handle { background: #2a2f38; }
"""


class MainWindow(QMainWindow):
    """The application window. ``open_path``/``open_demo`` load a case in the background."""

    case_loaded = Signal()
    load_failed = Signal(str)

    def __init__(self, restore_state: bool = True, install_panels: bool = True) -> None:
        super().__init__()
        self.t_created = time.monotonic()
        self.case = Case()
        self.tasks = TaskRunner(self, max_threads=2)
        self.views = ViewSet(self)
        self.workflow = WorkflowPanel()
        self.case_panel = CasePanel(self.views)
        self.workflow.set_panel("case", self.case_panel)
        self.scan_result: Any = None
        self.case_dir: Path | None = None
        self.messages: list[str] = []
        self._loading = False
        self._surface_tasks: dict[str, Task] = {}
        self._surface_pending: set[str] = set()
        self._loaded_once = False   # a loaded case waits for its first full render
        self._defer_surfaces_until = 0.0
        self._volumes_ml: dict[str, float] = {}
        # wall-clock (time.time()) of the first render of a loaded case (CT + slice
        # overlays in all views) and of the last structure surface shown in 3D
        self.first_render_epoch: float | None = None
        self.surfaces_done_epoch: float | None = None
        self.first_render_cpu_s: float | None = None

        from irplan.app.wheel_guard import install_wheel_guard

        install_wheel_guard()   # the wheel scrolls the panel, never edits a box under it
        self.setWindowTitle(f"{APP_TITLE} — {NOTICE_SHORT}")
        self.setObjectName("irplanMainWindow")
        self._build_central()
        self._build_actions()
        self._build_status_bar()

        self.case.ct_changed.connect(self._on_ct_changed)
        self.case.structures_changed.connect(self._on_structure_changed)
        self.views.cursor_moved.connect(self._on_cursor)
        self.views.window_changed.connect(self._on_window_changed)
        self.views.maximised_changed.connect(self._on_maximised)
        self.case_panel.series_activated.connect(self.load_series_info)
        self.tasks.busy_changed.connect(self._on_busy)
        self.tasks.task_started.connect(self._on_task_started)
        self.resize(1600, 1000)
        self._restore_state = restore_state
        if restore_state:
            self._restore_geometry()
        self.panels_installed = False
        self._panels_started = False
        # irplan's start: panels come after the first picture of the case (or its failure)
        self.panels_after_first_picture = False
        if install_panels:
            self.install_panels()

    def install_panels(self, staged: bool = False) -> None:
        """Build the workflow panels (Segment, Plan, zone dock, needle views, Evaluate,
        report action, training); ``panels_installed`` is True once all are built.

        ``irplan`` builds the window's core (views, Case panel, menus) and starts the case
        load first, and calls this ``staged`` after the case's first picture: one panel
        per event-loop turn, so the window keeps answering while their imports (scipy,
        pyamg, highdicom) and widgets are made. Panels built after a case was loaded
        catch up with it. Idempotent.
        """
        if self._panels_started:
            return
        self._panels_started = True
        steps = [(self._install_segment_panel, "irplan.app.segment_panel"),
                 (self._install_needle_tools, "irplan.app.needle_tools"),
                 (self._install_zone_panel, "irplan.app.zone_panel"),
                 (self._install_probe_views, "irplan.app.probe_panel"),
                 (self._install_evaluate_panel, "irplan.app.evaluate_panel"),
                 (self._install_report_action, "irplan.app.report_action"),
                 (self._install_training, "irplan.app.training_panel"),
                 (self._panels_done, "")]
        if not staged:
            for step, _module in steps:
                step()
            return
        from irplan.app.preload import Preloader

        # the modules load in a background thread; each panel is built on the GUI thread
        # once its module is in (one panel per event-loop turn)
        preload = Preloader(m for _s, m in steps if m).start()

        def run(i: int) -> None:
            step, module = steps[i]
            if module and not preload.ready(module):
                self.tasks.defer(15, lambda: run(i))
                return
            step()
            if i + 1 < len(steps):
                self.tasks.defer(0, lambda: run(i + 1))

        run(0)

    def _install_segment_panel(self) -> None:
        from irplan.app.segment_panel import SegmentPanel

        self.segment_panel = SegmentPanel(self.case, self.views, self.tasks)
        self.workflow.set_panel("segment", self.segment_panel)
        self.workflow.step_changed.connect(lambda s: self.segment_panel.activate()
                                           if s == "segment" else self.segment_panel.deactivate())

    def _install_needle_tools(self) -> None:
        """Plan step: needle placement, live safety checks, undo/redo, autosave."""
        from irplan.app.needle_tools import install as install_needle_tools

        self.needle_tools = install_needle_tools(self)

    def _install_zone_panel(self) -> None:
        """Predicted zone dock: live zone, |E| map, coverage and margin."""
        from irplan.app.zone_panel import install_zone_panel

        self.zone_panel = install_zone_panel(self)

    def _install_probe_views(self) -> None:
        """Needle-aligned views of the selected needle (dock, app/probe_panel.py)."""
        from irplan.app.probe_panel import install_probe_views

        self.probe_panel = install_probe_views(self)

    def _install_evaluate_panel(self) -> None:
        """Evaluate step: follow-up registration, margin map, verdict."""
        from irplan.app.evaluate_panel import install_evaluate_panel

        self.evaluate_panel = install_evaluate_panel(self)

    def _install_report_action(self) -> None:
        """File > Write PDF report... (the `irplan report` code, in a child process)."""
        from irplan.app.report_action import install_report_action

        self.report_action = install_report_action(self)

    def _install_training(self) -> None:
        """File > Compare with reference plan..., comparison dock (app/training_panel.py)."""
        from irplan.app.training_panel import install_training

        self.training_panel = install_training(self)

    def _panels_done(self) -> None:
        if self._restore_state:
            self._restore_settings()
        if self.case.ct is not None:
            self._panels_catch_up()
        self.panels_installed = True

    def _panels_catch_up(self) -> None:
        """Panels built after a case was loaded learn of it as its signals would have
        told them (the probe, training and evaluate panels read the case when built)."""
        self.segment_panel._on_ct_changed()
        self.needle_tools._on_ct_changed()
        self.needle_tools._on_plan_replaced()
        self.zone_panel._on_plan_replaced()

    def _install_deferred_panels(self) -> None:
        if self.panels_after_first_picture and not self._panels_started:
            self.tasks.defer(0, lambda: self.install_panels(staged=True))

    # ================================================================= layout
    def _build_central(self) -> None:
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.notice = QLabel(f"⚠  {NOTICE_SHORT}.")
        self.notice.setObjectName("notice")
        self.notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.notice)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(self.workflow)
        self.splitter.addWidget(self.views.widget)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([340, 1260])
        lay.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

    def _action(self, text: str, slot, shortcut: str | QKeySequence | None = None,
                tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(f"{tip} ({a.shortcut().toString()})" if shortcut else tip)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        mb = self.menuBar()
        self.act_open = self._action("&Open DICOM folder…", self.ask_open_folder,
                                     QKeySequence.StandardKey.Open,
                                     "Open a DICOM folder or DICOMDIR")
        self.act_open_plan = self._action("Open &plan…", self.ask_open_plan, "Ctrl+Shift+O",
                                          "Open a .irplan.json plan with its image")
        self.act_demo = self._action("Open &demo case", self.open_demo, None,
                                     "Open the built-in phantom case")
        self.act_shot = self._action("Save &screenshot…", self.ask_screenshot, "Ctrl+Shift+S",
                                     "Save a PNG of the whole window")
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit, "Quit")
        m = mb.addMenu("&File")
        for a in (self.act_open, self.act_open_plan, self.act_demo):
            m.addAction(a)
        m.addSeparator()
        m.addAction(self.act_shot)
        m.addSeparator()
        m.addAction(self.act_quit)

        v = mb.addMenu("&View")
        wm = v.addMenu("&Window / level")
        self.preset_group = QActionGroup(self)
        self.act_presets: dict[str, QAction] = {}
        for p in WINDOW_PRESETS:
            label = (f"{p.name}" if p.key == "dicom"
                     else f"{p.name}  (W {p.width_hu:.0f} / L {p.level_hu:.0f})")
            a = self._action(label, lambda _=False, k=p.key: self.apply_window_preset(k),
                             p.shortcut, f"Window preset: {p.name}")
            a.setCheckable(True)
            self.preset_group.addAction(a)
            wm.addAction(a)
            self.act_presets[p.key] = a
        self.act_presets["abdomen"].setChecked(True)
        self.act_reset = self._action("&Reset views", self.views.reset_views, "R",
                                      "Fit every view and reset the 3D camera")
        self.act_max = self._action("&Maximise view", self.toggle_maximise, "M",
                                    "Show the view under focus alone (again: back to 2×2)")
        self.act_outline = self._action("Structure &outlines on slices",
                                        lambda on: self.case_panel.mode_combo.setCurrentIndex(
                                            1 if on else 0), "O",
                                        "Draw structures as contour lines instead of fills")
        self.act_outline.setCheckable(True)
        self.act_outline.setChecked(self.views.outline_mode)
        self.case_panel.mode_combo.currentIndexChanged.connect(
            lambda i: self.act_outline.setChecked(i == 1))
        self.act_cross = self._action("Cross&hair", self._toggle_crosshair, "C",
                                      "Show the linked crosshair lines")
        self.act_cross.setCheckable(True)
        self.act_cross.setChecked(True)
        v.addAction(self.act_reset)
        v.addAction(self.act_max)
        v.addAction(self.act_outline)
        v.addAction(self.act_cross)
        cm = v.addMenu("3D &camera")
        for i, name in enumerate(CAMERA_PRESETS):
            a = self._action(name.capitalize(),
                             lambda _=False, n=name: self.views.scene3d.set_camera_preset(n),
                             f"Ctrl+{i + 1}", f"3D view from {name}")
            cm.addAction(a)
        self.act_vr = self._action("CT &volume rendering in 3D",
                                   lambda *_a: self.case_panel.vr_check.setChecked(
                                       self.act_vr.isChecked()),
                                   "V", "Show the CT as a volume rendering in the 3D view")
        self.act_vr.setCheckable(True)
        self.case_panel.vr_check.toggled.connect(self.act_vr.setChecked)
        v.addAction(self.act_vr)

        wf = mb.addMenu("&Workflow")
        for i, step in enumerate(self.workflow.steps):
            wf.addAction(self._action(step.capitalize(),
                                      lambda _=False, s=step: self.workflow.set_step(s),
                                      f"Alt+{i + 1}", f"Workflow step: {step}"))
        h = mb.addMenu("&Help")
        h.addAction(self._action("&About IRPlan", self._about, None, "About"))
        h.addAction(self._action("&Mouse and keys", self._help_keys, "F1", "Mouse and keys"))

        tb = QToolBar("Main")
        tb.setObjectName("mainToolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.addAction(self.act_open)
        tb.addAction(self.act_open_plan)
        tb.addSeparator()
        for p in WINDOW_PRESETS:
            a = self.act_presets[p.key]
            a.setIconText(f"{p.shortcut} {p.name.split()[0]}" if p.key != "dicom"
                          else f"{p.shortcut} DICOM")
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.act_reset)
        tb.addAction(self.act_max)
        tb.addAction(self.act_outline)
        tb.addAction(self.act_vr)
        tb.addSeparator()
        tb.addAction(self.act_shot)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
        self.toolbar = tb

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.cursor_label = QLabel("Point at a slice: position (LPS mm) and HU show here")
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
        self.cancel_button.clicked.connect(self.tasks.cancel_all)
        status_notice = QLabel("RESEARCH USE ONLY")
        status_notice.setObjectName("statusNotice")
        status_notice.setToolTip(NOTICE_SHORT)
        box = QWidget()
        bl = QHBoxLayout(box)
        bl.setContentsMargins(0, 0, 0, 0)
        for w in (self.cursor_label, self.hu_label, self.wl_label):
            bl.addWidget(w)
        sb.addWidget(box, 1)
        sb.addPermanentWidget(self.progress_text)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(status_notice)

    # ================================================================= settings
    def _restore_geometry(self) -> None:
        geo = app_settings().value("main/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)

    def _restore_settings(self) -> None:
        """Dock/toolbar state, splitter and window preset (after the panels exist)."""
        s = app_settings()
        st = s.value("main/state")
        if isinstance(st, QByteArray) and not st.isEmpty():
            self.restoreState(st)
        sp = s.value("main/splitter")
        if isinstance(sp, QByteArray) and not sp.isEmpty():
            self.splitter.restoreState(sp)
        key = s.value("view/window_preset")
        if isinstance(key, str) and key in self.act_presets:
            self.views.window_key = key
            self.act_presets[key].setChecked(True)
            if key != "dicom":
                self.views.apply_window_preset(key)

    def save_settings(self) -> None:
        s = app_settings()
        s.setValue("main/geometry", self.saveGeometry())
        s.setValue("main/state", self.saveState())
        s.setValue("main/splitter", self.splitter.saveState())
        s.setValue("view/window_preset", self.views.window_key)
        s.sync()

    def closeEvent(self, ev: QCloseEvent) -> None:  # noqa: N802
        self.save_settings()
        self.tasks.cancel_all()
        self.tasks.pool.waitForDone(5000)
        self.tasks.quick_pool.waitForDone(5000)
        self.views.finalize()
        super().closeEvent(ev)

    # ================================================================= opening
    def ask_open_folder(self) -> None:
        start = str(app_settings().value("paths/last_folder", str(Path.home())))
        d = QFileDialog.getExistingDirectory(self, "Open DICOM folder", start)
        if d:
            app_settings().setValue("paths/last_folder", d)
            self.open_path(d)

    def ask_open_plan(self) -> None:
        start = str(app_settings().value("paths/last_plan_folder", str(Path.home())))
        f, _ = QFileDialog.getOpenFileName(self, "Open plan", start,
                                           "IRPlan plans (*.irplan.json *.json)")
        if f:
            app_settings().setValue("paths/last_plan_folder", str(Path(f).parent))
            self.open_path(f)

    def open_demo(self) -> None:
        """Open the built-in phantom case (generated once into the cache)."""
        from irplan.app.demo import demo_case

        def job(progress, cancel):
            case_dir = demo_case(progress)
            res = _load_case_folder(case_dir, progress, cancel)
            res["title"] = "Demo case (synthetic phantom)"
            return res

        self._start_load("Opening the demo case", job)

    def open_path(self, path: str | Path) -> None:
        """Open a DICOM folder, a DICOMDIR, an IRPlan case folder or a .irplan.json plan."""
        p = Path(path).expanduser()
        if not p.exists():
            self._report_error(f"{p}: no such file or folder")
            return
        if p.is_file() and p.name.lower().endswith(".json"):
            self._start_load(f"Opening plan {p.name}", lambda pr, c: _load_plan(p, pr, c))
        elif p.is_dir() and (p / "planning").is_dir() and (p / "masks" / "planning").is_dir():
            self._start_load(f"Opening case {p.name}", lambda pr, c: _load_case_folder(p, pr, c))
        else:
            self._start_load(f"Opening {p.name}", lambda pr, c: _load_dicom(p, pr, c))

    def load_series_info(self, info: Any) -> None:
        """Load another series of the scanned folder (from the Case panel)."""
        def job(progress, cancel):
            from irplan.io.dicom_load import load_series

            vol = load_series(info, counting_progress(progress, "Reading slices"), cancel)
            return {"ct": vol, "path": info.files[0].parent if info.files else None,
                    "scan": self.scan_result, "masks": {}, "plan": None, "notes": []}

        self._start_load(f"Loading {info.description or info.series_uid}", job)

    def _start_load(self, name: str, job) -> None:
        if self._loading:
            self.statusBar().showMessage("Still loading the previous case…", 3000)
            return
        self._loading = True
        task = self.tasks.start(name, job, self._on_loaded, self._on_load_failed)
        task.signals.cancelled.connect(self._on_load_cancelled)

    def _on_load_cancelled(self) -> None:
        self._loading = False
        self._install_deferred_panels()
        self.messages.append("loading cancelled")
        self.statusBar().showMessage("Loading cancelled; the case shown is unchanged.", 8000)

    def _on_load_failed(self, msg: str) -> None:
        self._loading = False
        self._install_deferred_panels()
        self._report_error(msg)

    def _report_error(self, msg: str) -> None:
        self.messages.append(msg)
        self.statusBar().showMessage(msg, 15000)
        self.load_failed.emit(msg)
        if self.isVisible() and not getattr(self, "headless", False):
            QMessageBox.warning(self, APP_TITLE, msg)

    def show_case(self, ct: Volume, masks: dict[str, Volume] | None = None,
                  plan: Any = None, title: str = "") -> None:
        """Show an already loaded CT (+ structure masks on its grid, + plan) at once."""
        self._on_loaded({"ct": ct, "masks": masks or {}, "plan": plan, "title": title,
                         "path": None})

    def _on_loaded(self, res: dict) -> None:
        self._loading = False
        self._loaded_once = self.first_render_epoch is None
        if self._loaded_once:
            # checks and zones triggered by this case wait for its first picture
            self.tasks.hold()
        self._defer_surfaces_until = time.monotonic() + 10.0
        vol: Volume = res["ct"]
        self.scan_result = res.get("scan")
        self.case_dir = res.get("case_dir")
        self._volumes_ml.clear()
        self.case.set_ct(vol, res.get("path"))
        masks: dict[str, Volume] = res.get("masks", {})
        # small structures first: their surfaces (tumour, vessels) appear first in 3D
        for key in sorted(masks, key=lambda k: int(np.count_nonzero(masks[k].array))):
            self.case.set_structure(key, masks[key])
        target = self._initial_focus(masks)
        if target is not None:
            self.views.set_crosshair(target)
        if res.get("plan") is not None:
            self.case.set_plan(res["plan"])
        notes = list(res.get("notes", [])) + list(vol.metadata.get("warnings", []) or [])
        for n in notes:
            self.messages.append(n)
        if notes:
            self.statusBar().showMessage(" · ".join(notes), 15000)
        if self.scan_result is not None:
            self.case_panel.set_series(self.scan_result.series,
                                       str(vol.metadata.get("series_uid", "")))
        self._update_case_text(vol, res)
        name = res.get("title") or (Path(res["path"]).name if res.get("path") else "")
        self.setWindowTitle(f"{APP_TITLE} — {name} — {NOTICE_SHORT}")
        self._mark_first_render()
        self.case_loaded.emit()

    @staticmethod
    def _initial_focus(masks: dict[str, Volume]) -> np.ndarray | None:
        """LPS centroid (mm) of the tumour (else the liver) to centre the views on."""
        for key in ("tumor", "liver"):
            m = masks.get(key)
            if m is not None and m.array.any():
                a = m.array != 0
                n = float(a.sum())
                # centroid from the marginal counts (no index list of every voxel)
                kji = [float((a.sum(axis=tuple(x for x in range(3) if x != ax))
                              * np.arange(a.shape[ax])).sum()) / n for ax in range(3)]
                return m.index_to_lps(np.array(kji[::-1]))
        return None

    def _update_case_text(self, vol: Volume, res: dict) -> None:
        md = vol.metadata
        i, j, k = vol.size_xyz
        sp = vol.spacing_mm
        lines = [f"<b>{html.escape(str(res.get('title') or md.get('description') or 'CT'))}</b>"]
        pid = md.get("patient_id") or md.get("PatientID")
        if pid:
            lines.append(f"Patient {html.escape(str(pid))}")
        lines.append(f"{i}×{j}×{k} voxels, {sp[0]:.2f}×{sp[1]:.2f}×{sp[2]:.2f} mm")
        ori = "axial" if np.allclose(np.abs(vol.direction), np.eye(3), atol=1e-3) else "oblique"
        lines.append(f"Grid {ori}; shown in LPS mm")
        self.case_panel.set_case_text("<br>".join(lines))

    # ================================================================= model -> views
    def _on_ct_changed(self) -> None:
        for t in self._surface_tasks.values():
            t.cancel()
        self._surface_tasks.clear()
        self.views.set_volume(self.case.ct)
        if self.views.window_key == "dicom":
            self.views.apply_window_preset("dicom")
        self.case_panel.refresh_structures()

    def _mark_first_render(self, index: int = 0) -> None:
        """Draw the four views one per event-loop turn (the first draw of a view compiles
        its shaders: with software GL that is hundreds of ms each, and the GUI keeps
        answering in between), then note the time of the first full picture."""
        if self.first_render_epoch is not None or self.case.ct is None:
            return
        views = list(self.views)
        if index < len(views):
            views[index].render_now()
            self.tasks.defer(0, lambda: self._mark_first_render(index + 1))
            return
        self.first_render_epoch = time.time()
        self.first_render_cpu_s = time.process_time()   # all threads of the process
        self._loaded_once = False
        self.tasks.release()
        self._install_deferred_panels()

    def _on_structure_changed(self, key: str) -> None:
        mask = self.case.structures.get(key)
        old = self._surface_tasks.pop(key, None)
        if old is not None:
            old.cancel()
        self.views.set_structure(key, mask)
        if mask is not None:
            self._volumes_ml[key] = float(np.count_nonzero(mask.array)) * mask.voxel_volume_ml
            # after the slices are drawn: the first picture must not wait for meshes
            self._surface_pending.add(key)
            self.tasks.defer(0, lambda k=key, m=mask: self._start_surface_if_current(k, m))
        else:
            self._volumes_ml.pop(key, None)
        self.case_panel.refresh_structures(self._volumes_ml)

    def _start_surface_if_current(self, key: str, mask: Volume) -> None:
        if (self.first_render_epoch is None and self.case.ct is not None and self._loaded_once
                and time.monotonic() < self._defer_surfaces_until):
            # the first picture of a case comes first; meshes right after it
            self.tasks.defer(20, lambda: self._start_surface_if_current(key, mask))
            return
        self._surface_pending.discard(key)
        if self.case.structures.get(key) is mask and key not in self._surface_tasks:
            self._start_surface(key, mask)

    def surfaces_pending(self) -> bool:
        """True while structure surfaces are still being extracted for the 3D view."""
        return bool(self._surface_pending or self._surface_tasks)

    def wait_for_surfaces(self, timeout_s: float = 120.0) -> bool:
        """Process events until every structure surface is shown (scripts, tests)."""
        deadline = time.monotonic() + timeout_s
        QApplication.processEvents()
        while self.surfaces_pending() and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.005)
        QApplication.processEvents()
        return not self.surfaces_pending()

    def _start_surface(self, key: str, mask: Volume) -> None:
        from irplan.app.process_jobs import surface_mesh_job
        from irplan.app.process_pool import mesh_pool
        from irplan.planning.margin import bbox_ijk
        from irplan.viewers.surfaces import polydata_from_arrays, triangle_budget

        def job(progress, cancel):
            # the mesh is made in the mesh process (no VTK objects in this thread: VTK's
            # garbage-collector lock and the GIL can deadlock with the GUI's renders);
            # only the structure's box (+3 voxels) crosses the process boundary
            progress(0.0, f"Surface of {key}")
            arr = mask.array != 0
            if not arr.any():
                return {"points": np.zeros((0, 3)), "triangles": np.zeros((0, 3), np.int64)}
            lo, hi = bbox_ijk(arr)
            box = mask.crop_index(lo - 3, hi + 4)
            return mesh_pool().run(surface_mesh_job, box, triangle_budget(key),
                                   progress=progress, cancel=cancel)

        def done(mesh, k=key, m=mask):
            if self.case.structures.get(k) is m:
                self.views.set_surface(k, polydata_from_arrays(mesh))
                if len(self._surface_tasks) == 0:
                    self.views.scene3d.reset_camera()

        # surfaces are quick and what the user waits to see: ahead of long jobs (zones)
        task = self.tasks.start(f"Surface {key}", job, done, self._report_error_quiet,
                                priority=1, quick=True)
        self._surface_tasks[key] = task
        task.signals.done.connect(lambda k=key, t=task: self._surface_done(k, t))

    def _surface_done(self, key: str, task: Task) -> None:
        if self._surface_tasks.get(key) is task:
            del self._surface_tasks[key]
        if not self._surface_tasks:
            self.surfaces_done_epoch = time.time()
            self.views.scene3d.reset_camera()

    def _report_error_quiet(self, msg: str) -> None:
        self.messages.append(msg)
        self.statusBar().showMessage(msg, 10000)

    # ================================================================= actions
    def apply_window_preset(self, key: str) -> None:
        self.views.apply_window_preset(key)
        self.act_presets[key].setChecked(True)

    def toggle_maximise(self) -> None:
        name = self.views.maximised or self.views.focused_view_name()
        self.views.toggle_maximise(name)

    def _toggle_crosshair(self, on: bool) -> None:
        self.views.set_crosshair_visible(on)

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        if ev.key() == Qt.Key.Key_Escape and self.views.maximised:
            self.views.set_maximised("")
            return
        super().keyPressEvent(ev)

    def ask_screenshot(self) -> None:
        f, _ = QFileDialog.getSaveFileName(self, "Save screenshot", "irplan.png", "PNG (*.png)")
        if f:
            self.save_screenshot(f)
            self.statusBar().showMessage(f"Saved {f}", 5000)

    def save_screenshot(self, path: str | Path) -> Path:
        """Render every view and save a PNG of the whole window (QScreen.grabWindow:
        QWidget.grab() is black where VTK draws)."""
        self.views.render_now()
        QApplication.processEvents()
        self.views.render_now()
        screen = self.screen() or QGuiApplication.primaryScreen()
        pix = screen.grabWindow(self.winId())
        from irplan.io.atomic_write import atomic_write

        def _write(tmp: Path) -> None:
            if not pix.save(str(tmp), "PNG"):
                raise InputError(f"{path}: cannot write the screenshot PNG")

        return atomic_write(path, _write)   # temp file + rename: never a partial PNG

    def _about(self) -> None:
        QMessageBox.about(self, "About IRPlan",
                          "<b>IRPlan</b> — planning and evaluation of percutaneous liver "
                          f"tumour ablation (IRE, MWA, RFA, cryo).<br><br><b>{NOTICE_SHORT}."
                          "</b><br>All positions are DICOM patient coordinates (LPS, mm).")

    def _help_keys(self) -> None:
        QMessageBox.information(
            self, "Mouse and keys",
            "<b>Slices</b>: left click/drag = crosshair (links all views); wheel, "
            "PageUp/PageDown, ↑/↓ = slice (Shift ×10); right drag or Alt+left = window/level;"
            " middle drag or Shift+left = pan; Ctrl+wheel or Ctrl+left drag = zoom; "
            "double-click or M = maximise, Esc = back.<br><b>3D</b>: left drag rotate, "
            "middle pan, right/wheel zoom; Ctrl+1…6 camera presets.<br><b>Keys</b>: 1–5 "
            "window presets, R reset views, O outlines, C crosshair, V volume rendering.")

    # ================================================================= status
    def _on_cursor(self, p: np.ndarray, hu: float) -> None:
        lr = f"{'L' if p[0] >= 0 else 'R'} {abs(p[0]):6.1f}"
        ap = f"{'P' if p[1] >= 0 else 'A'} {abs(p[1]):6.1f}"
        si = f"{'S' if p[2] >= 0 else 'I'} {abs(p[2]):6.1f}"
        self.cursor_label.setText(f"Cursor  {lr}  {ap}  {si} mm  (LPS {p[0]:.1f}, "
                                  f"{p[1]:.1f}, {p[2]:.1f})")
        self.hu_label.setText("—" if np.isnan(hu) else f"{hu:.0f} HU")

    def _on_window_changed(self, w: float, lvl: float) -> None:
        self.wl_label.setText(f"W {w:.0f} / L {lvl:.0f}")

    def _on_maximised(self, name: str) -> None:
        self.act_max.setText("Back to 2×2 views" if name else "&Maximise view")

    def _on_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.progress_text.setVisible(busy)
        if not busy:
            self.progress_text.setText("")
            self.progress.setValue(0)

    def _on_task_started(self, task: Task) -> None:
        task.signals.progress.connect(self._on_progress)
        self.progress_text.setText(task.name)

    def _on_progress(self, frac: float, text: str) -> None:
        self.progress.setValue(int(frac * 1000))
        if text:
            self.progress_text.setText(text)


# ===================================================================== loading jobs
# These run in a worker thread: no Qt widgets, no rendering.

def _read_masks(paths: dict[str, Path], ct: Volume, notes: list[str], cancel) -> dict[str, Volume]:
    from irplan.io.masks import is_mask_file, read_mask

    out: dict[str, Volume] = {}
    for key, p in paths.items():
        if cancel():
            from irplan.planning.errors import CancelledError

            raise CancelledError("loading cancelled")
        if not is_mask_file(p):
            notes.append(f"{p}: structure '{key}' not shown (only NIfTI/NRRD masks are "
                         "opened here)")
            continue
        m = read_mask(p)
        if not m.same_geometry(ct, tol_mm=1e-3):
            m = m.resample_like(ct, "nearest")
            notes.append(f"{p.name}: resampled onto the CT grid (nearest neighbour)")
        out[key] = m
    return out


def _load_dicom(path: Path, progress, cancel) -> dict:
    from irplan.io.dicom_load import load_series, pick_ct
    from irplan.io.dicom_scan import scan_dicom

    scan = scan_dicom(path, counting_progress(progress, "Scanning", 0.0, 0.2), cancel)
    info = pick_ct(scan)
    vol = load_series(info, counting_progress(progress, "Reading slices", 0.2, 1.0), cancel)
    notes = []
    others = [s for s in scan.ct_candidates() if s is not info]
    if others:
        notes.append(f"{len(others)} other CT series found; opened the one with most slices "
                     "(double-click another in the Case panel to switch)")
    return {"ct": vol, "path": path, "scan": scan, "masks": {}, "plan": None, "notes": notes,
            "title": info.description or path.name}


def _load_case_folder(case_dir: Path, progress, cancel) -> dict:
    """An IRPlan case folder (phantom layout): planning/ CT + masks/planning/*.nii.gz
    (+ plan.irplan.json when present and readable)."""
    from irplan.app.demo import demo_masks

    res = _load_dicom(case_dir / "planning", progress, cancel)
    notes: list[str] = res["notes"]
    res["masks"] = _read_masks(demo_masks(case_dir), res["ct"], notes, cancel)
    res["case_dir"] = case_dir
    res["title"] = case_dir.name
    plan_file = case_dir / "plan.irplan.json"
    if plan_file.exists():
        try:
            from irplan.io.plan_file import load_plan

            res["plan"] = load_plan(plan_file)
        except ImportError:
            pass
        except InputError as exc:
            notes.append(f"plan not opened: {exc}")
    return res


def _load_plan(path: Path, progress, cancel) -> dict:
    from irplan.io.plan_file import image_path, load_plan_with_notes, structure_paths

    plan, notes = load_plan_with_notes(path)
    res = _load_dicom(image_path(plan), progress, cancel)
    res["notes"] = notes + res["notes"]
    res["masks"] = _read_masks(structure_paths(plan), res["ct"], res["notes"], cancel)
    res["plan"] = plan
    res["title"] = path.name
    return res
