"""The IRPlan main window: 2x2 linked views, workflow side panel, menus, status bar.

Panels never get the window: each ``install_*`` takes the window's
:class:`irplan.app.context.AppContext` (``window.ctx``: case, views, tasks, status line,
workflow, menus and actions by id, ``add_dock``, ``open_path``, headless flag) and
registers its logic in ``ctx.services`` (``ctx.services.session`` is the plan session).
The window pushes model changes into the views (``case.ct_changed`` ->
``views.set_volume``, ``structures_changed`` -> slices and surfaces); viewers never import
the model. Actions/menus/toolbar: app/main_actions.py; status bar: app/status_bar.py;
3D surfaces: app/surface_jobs.py. ``window.case_loaded`` (Qt signal): emitted after a CT
and its structures are shown.
"""

from __future__ import annotations

import html
import importlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from irplan.app.case_loading import CaseLoading, apply_to_case, initial_focus
from irplan.app.case_panel import CasePanel
from irplan.app.context import AppContext
from irplan.app.main_actions import MainActions
from irplan.app.settings import app_settings
from irplan.app.status_bar import StatusBarWidgets
from irplan.app.surface_jobs import SurfaceJobs
from irplan.app.workers import TaskRunner
from irplan.app.workflow_panel import WorkflowPanel
from irplan.planning.case import Case
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume
from irplan.viewers.view_set import ViewSet

if TYPE_CHECKING:
    from irplan.io.case_loader import LoadedCase

NOTICE_SHORT = "Research software — not a certified medical device, not for clinical use"
APP_TITLE = "IRPlan"

# the workflow panels, in build order: (window attribute, module, install(ctx) function)
PANELS = (("segment_panel", "irplan.app.segment_panel", "install_segment_panel"),
          ("needle_tools", "irplan.app.needle_tools", "install"),
          ("zone_panel", "irplan.app.zone_panel", "install_zone_panel"),
          ("probe_panel", "irplan.app.probe_panel", "install_probe_views"),
          ("evaluate_panel", "irplan.app.evaluate_panel", "install_evaluate_panel"),
          ("report_action", "irplan.app.report_action", "install_report_action"),
          ("training_panel", "irplan.app.training_panel", "install_training"),
          ("verify_panel", "irplan.app.verify_panel", "install_verify"),
          ("measure_panel", "irplan.app.measure_panel", "install_measure"))


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
        self.messages: list[str] = []
        self.headless = False       # True: no dialogs (scripts, screenshots, tests)
        self._loaded_once = False   # a loaded case waits for its first full render
        self._defer_surfaces_until = 0.0
        self._volumes_ml: dict[str, float] = {}
        # wall-clock (time.time()) of the first render of a loaded case (CT + slice
        # overlays in all views) and of the last structure surface shown in 3D
        self.first_render_epoch: float | None = None
        self.first_render_cpu_s: float | None = None

        from irplan.app.wheel_guard import install_wheel_guard

        install_wheel_guard()   # the wheel scrolls the panel, never edits a box under it
        self.setWindowTitle(f"{APP_TITLE} — {NOTICE_SHORT}")
        self.setObjectName("irplanMainWindow")
        self._build_central()
        self.main_actions = MainActions(self, NOTICE_SHORT)
        self.status_widgets = StatusBarWidgets(self.statusBar(), self.views, self.tasks,
                                               NOTICE_SHORT)
        self.surfaces = SurfaceJobs(self.case, self.views, self.tasks,
                                    self._surfaces_wait_for_first_picture,
                                    self._report_error_quiet,
                                    on_idle=self._surfaces_idle)
        self.ctx = AppContext(
            case=self.case, views=self.views, tasks=self.tasks, status=self.statusBar(),
            workflow=self.workflow, parent=self, menus=self.main_actions.menus,
            actions=self.main_actions.actions, add_dock=self._add_dock,
            open_path=self.open_path, headless=lambda: bool(self.headless),
            case_loaded=self.case_loaded)
        self.loader = CaseLoading(self.ctx, self._show_loaded)
        self.loader.failed.connect(self._on_load_failed)
        self.loader.cancelled.connect(self._on_load_cancelled)

        self.case.ct_changed.connect(self._on_ct_changed)
        self.case.structures_changed.connect(self._on_structure_changed)
        self.case_panel.series_activated.connect(self.loader.open_series)
        self.case.case_closed.connect(self._on_case_closed)
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
        steps = [(lambda a=attr, m=module, f=func: self._install_panel(a, m, f), module)
                 for attr, module, func in PANELS]
        steps.append((self._panels_done, ""))
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

    def _install_panel(self, attr: str, module: str, func: str) -> None:
        """``self.<attr> = <module>.<func>(ctx)``: the window keeps what a panel's install
        returns (scripts and tests reach it there); the panel registers its logic in
        ``ctx.services`` and never gets the window."""
        install = getattr(importlib.import_module(module), func)
        setattr(self, attr, install(self.ctx))

    def _panels_done(self) -> None:
        if self._restore_state:
            self._restore_settings()
        if self.case.ct is not None:
            self._panels_catch_up()
        self.panels_installed = True

    def _panels_catch_up(self) -> None:
        """Panels built after a case was loaded learn of it as its signals would have
        told them: ``sync_with_case()`` of each (the others read the case when built)."""
        for attr, _module, _func in PANELS:
            panel = getattr(self, attr, None)
            sync = getattr(panel, "sync_with_case", None)
            if sync is not None:
                sync()

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

    def _add_dock(self, name: str, dock: QDockWidget, area: Qt.DockWidgetArea) -> None:
        """Add a panel's dock (``ctx.add_dock``); its state is saved under ``name``."""
        if not dock.objectName():
            dock.setObjectName(f"{name}Dock")
        self.addDockWidget(area, dock)
        self.ctx.docks[name] = dock

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
        if isinstance(key, str) and key in self.main_actions.presets:
            self.views.window_key = key
            self.main_actions.presets[key].setChecked(True)
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
    # ``self.loader`` (app/case_loading.py): File > Open…/Close case, the load jobs
    # (io/case_loader.py), the unsaved-changes prompt
    def open_demo(self) -> None:
        """Open the built-in phantom case (generated once into the cache)."""
        self.loader.open_demo()

    def open_path(self, path: str | Path) -> None:
        """Open a DICOM folder, a DICOMDIR, an IRPlan case folder or a .irplan.json plan."""
        self.loader.open_path(path)

    _loading = property(lambda self: self.loader.loading)
    scan_result = property(lambda self: self.loader.scan)    # the open case's DICOM scan
    case_dir = property(lambda self: self.case.case_dir)     # an IRPlan case folder

    def _on_load_cancelled(self) -> None:
        self._install_deferred_panels()
        self.messages.append("loading cancelled")
        self.statusBar().showMessage("Loading cancelled; the case shown is unchanged.", 8000)

    def _on_load_failed(self, msg: str) -> None:
        self._install_deferred_panels()
        self._report_error(msg)

    def _report_error(self, msg: str) -> None:
        from irplan.planning.display_names import user_text

        self.messages.append(msg)
        shown = user_text(msg)       # people read "Needle 1", not "needles[0]"
        self.statusBar().showMessage(shown, 15000)
        self.load_failed.emit(msg)
        if self.isVisible() and not getattr(self, "headless", False):
            QMessageBox.warning(self, APP_TITLE, shown)

    def show_case(self, ct: Volume, masks: dict[str, Volume] | None = None,
                  plan: Any = None, title: str = "") -> None:
        """Show an already loaded CT (+ structure masks on its grid, + plan: a fresh empty
        one when None) at once, in place of the open case."""
        from irplan.io.case_loader import LoadedCase
        from irplan.io.plan_masks import stamp_as_read

        self.loader.scan = None
        # the caller's masks are the case as given, not edits of this session (edits after
        # this are what the unsaved-changes prompt and Save plan look for)
        structures = {k: stamp_as_read(m) for k, m in (masks or {}).items()}
        self._show_loaded(LoadedCase(ct=ct, ct_path=None, scan=None,
                                     structures=structures, plan=plan, title=title))

    def _show_loaded(self, loaded: LoadedCase) -> None:
        """The loaded case replaces the open one (``Case.open``) and is shown."""
        self._loaded_once = self.first_render_epoch is None
        if self._loaded_once:
            # checks and zones triggered by this case wait for its first picture
            self.tasks.hold()
        self._defer_surfaces_until = time.monotonic() + 10.0
        # the case's 3D surfaces before its zones and check preparation (surfaces.on_idle)
        self.tasks.hold_background()
        self._applying_case = True
        try:
            apply_to_case(self.case, loaded)
        finally:
            self._applying_case = False
        self._surfaces_idle()
        target = initial_focus(loaded.structures)
        if target is not None:
            self.views.set_crosshair(target)
        vol = loaded.ct
        notes = list(loaded.notes) + list(vol.metadata.get("warnings", []) or [])
        self.messages.extend(notes)
        if notes:
            self.statusBar().showMessage(" · ".join(notes), 15000)
        if loaded.scan is not None:
            self.case_panel.set_series(loaded.scan.series, str(vol.metadata.get("series_uid", "")))
        self._update_case_text(vol, loaded.title)
        name = loaded.title or (loaded.ct_path.name if loaded.ct_path else "")
        self.setWindowTitle(f"{APP_TITLE} — {name} — {NOTICE_SHORT}")
        self._mark_first_render()
        self.case_loaded.emit()

    def _on_case_closed(self) -> None:
        """The open case went (another follows, or none): nothing of it stays shown."""
        self._volumes_ml.clear()
        self.case_panel.set_series([])
        self.case_panel.set_case_text("<i>No case open</i>")
        self.setWindowTitle(f"{APP_TITLE} — {NOTICE_SHORT}")

    def _update_case_text(self, vol: Volume, title: str) -> None:
        md = vol.metadata
        i, j, k = vol.size_xyz
        sp = vol.spacing_mm
        lines = [f"<b>{html.escape(str(title or md.get('description') or 'CT'))}</b>"]
        pid = md.get("patient_id") or md.get("PatientID")
        if pid:
            lines.append(f"Patient {html.escape(str(pid))}")
        lines.append(f"{i}×{j}×{k} voxels, {sp[0]:.2f}×{sp[1]:.2f}×{sp[2]:.2f} mm")
        ori = "axial" if np.allclose(np.abs(vol.direction), np.eye(3), atol=1e-3) else "oblique"
        lines.append(f"Grid {ori}; shown in LPS mm")
        self.case_panel.set_case_text("<br>".join(lines))

    # ================================================================= model -> views
    def _on_ct_changed(self) -> None:
        self.surfaces.cancel_all()
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
        self.views.set_structure(key, mask)
        # the surface after the slices are drawn: the first picture must not wait for meshes
        self.surfaces.structure_changed(key, mask)
        if mask is not None:
            self._volumes_ml[key] = float(np.count_nonzero(mask.array)) * mask.voxel_volume_ml
        else:
            self._volumes_ml.pop(key, None)
        self.case_panel.refresh_structures(self._volumes_ml)

    def _surfaces_wait_for_first_picture(self) -> bool:
        return (self.first_render_epoch is None and self.case.ct is not None
                and self._loaded_once and time.monotonic() < self._defer_surfaces_until)

    def _surfaces_idle(self) -> None:
        """No surface is pending: the zones and check preparation held for them start."""
        if not getattr(self, "_applying_case", False) and not self.surfaces.pending():
            self.tasks.release_background()

    def surfaces_pending(self) -> bool:
        """True while structure surfaces are still being extracted for the 3D view."""
        return self.surfaces.pending()

    def wait_for_surfaces(self, timeout_s: float = 120.0) -> bool:
        """Process events until every structure surface is shown (scripts, tests)."""
        return self.surfaces.wait(timeout_s)

    @property
    def surfaces_done_epoch(self) -> float | None:
        """time.time() when the last structure surface of the case was shown in 3D."""
        return self.surfaces.done_epoch

    def _report_error_quiet(self, msg: str) -> None:
        self.messages.append(msg)
        self.statusBar().showMessage(msg, 10000)

    # ================================================================= actions
    def apply_window_preset(self, key: str) -> None:
        self.views.apply_window_preset(key)
        self.main_actions.presets[key].setChecked(True)

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

    # status-bar widgets (scripts and tests read them here)
    cursor_label = property(lambda self: self.status_widgets.cursor_label)
    hu_label = property(lambda self: self.status_widgets.hu_label)
    wl_label = property(lambda self: self.status_widgets.wl_label)
    progress = property(lambda self: self.status_widgets.progress)
    cancel_button = property(lambda self: self.status_widgets.cancel_button)
