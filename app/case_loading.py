"""Opening and closing cases in the window: File ▸ Open DICOM folder… / Open plan… / Open
demo case / Close case, and the Case panel's series.

Every path goes through the one case loader (:func:`irplan.io.case_loader.load_case`) in
a background task; the result replaces the whole case through the model
(:meth:`irplan.planning.case.Case.open`, ``case_closed`` first), after the unsaved-changes
prompt of the plan (:func:`irplan.app.plan_prompts.confirm_discard`; none when headless).
The window shows what was loaded (``show``: crosshair, title, case text).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from irplan.app.settings import app_settings

if TYPE_CHECKING:
    from irplan.app.context import AppContext
    from irplan.io.case_loader import LoadedCase
    from irplan.io.dicom_scan import ScanResult, SeriesInfo
    from irplan.planning.case import Case
    from irplan.planning.volume import Volume


class CaseLoading(QObject):
    """Loads one case at a time off the GUI thread and hands it to the model."""

    failed = Signal(str)          # one line: the case shown is unchanged
    cancelled = Signal()

    def __init__(self, ctx: AppContext, show: Callable[[LoadedCase], None]) -> None:
        super().__init__(ctx.parent)
        self.ctx = ctx
        self._show = show
        self.loading = False
        self.scan: ScanResult | None = None   # the open case's DICOM scan (series list)

    # ------------------------------------------------------------------ actions
    def ask_open_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self.ctx.parent, "Open DICOM folder",
                                             str(self._start_folder("paths/last_folder")))
        if d:
            app_settings().setValue("paths/last_folder", d)
            self.open_path(d)

    def ask_open_plan(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self.ctx.parent, "Open plan",
                                           str(self._start_folder("paths/last_plan_folder")),
                                           "IRPlan plans (*.irplan.json *.json)")
        if f:
            app_settings().setValue("paths/last_plan_folder", str(Path(f).parent))
            self.open_path(f)

    def _start_folder(self, key: str) -> Path:
        """The open case's folder; with no case, the folder used last."""
        if self.ctx.case.ct is not None:
            return self.ctx.case_folder()
        return Path(str(app_settings().value(key, str(Path.home()))))

    def open_path(self, path: str | Path) -> None:
        """Open a DICOM folder, a DICOMDIR, an IRPlan case folder or a .irplan.json plan."""
        from irplan.io.case_loader import load_case

        p = Path(path).expanduser()
        if not p.exists():
            self.failed.emit(f"{p}: no such file or folder")
            return
        self._start(f"Opening {p.name}", lambda progress, cancel: load_case(p, progress, cancel))

    def open_demo(self) -> None:
        """Open the built-in phantom case (generated once into the cache)."""
        from irplan.app.demo import load_demo

        self._start("Opening the demo case", load_demo)

    def open_series(self, info: SeriesInfo) -> None:
        """Another series of the open case's scan, as a case of its own (fresh plan)."""
        from irplan.io.case_loader import load_series_case

        scan = self.scan
        self._start(f"Loading {info.description or info.series_uid}",
                    lambda progress, cancel: load_series_case(info, scan, progress, cancel))

    def close_case(self) -> bool:
        """File ▸ Close case: after the unsaved-changes prompt the views are emptied and
        everything of the case goes. False when the user cancelled."""
        if self.loading or not self.may_discard():
            return False
        self.scan = None
        self.ctx.tasks.cancel_all()
        self.ctx.case.close()
        self.ctx.show_status("Case closed", 5000)
        return True

    def may_discard(self) -> bool:
        """The unsaved-changes prompt (Save / Discard / Cancel) before the case goes."""
        session = self.ctx.services.session
        if session is None:
            return True
        from irplan.app.plan_prompts import confirm_discard

        return confirm_discard(self.ctx, session)

    # ------------------------------------------------------------------ the task
    def _start(self, name: str, job: Callable[[Any, Any], LoadedCase]) -> None:
        if self.loading:
            self.ctx.show_status("Still loading the previous case…", 3000)
            return
        if not self.may_discard():
            return
        self.loading = True
        # in the quick lane, ahead of its queue: the open case's long jobs (zones, checks)
        # must not make the user wait for the case that replaces it
        task = self.ctx.tasks.start(name, job, self._on_loaded, self._on_failed,
                                    priority=2, quick=True)
        task.signals.cancelled.connect(self._on_cancelled)

    def _on_loaded(self, loaded: LoadedCase) -> None:
        self.loading = False
        self.ctx.tasks.cancel_all()    # the previous case's jobs go with it
        if loaded.scan is not None:
            self.scan = loaded.scan
        self._show(loaded)

    def _on_failed(self, msg: str) -> None:
        self.loading = False
        self.failed.emit(msg)

    def _on_cancelled(self) -> None:
        self.loading = False
        self.cancelled.emit()


def apply_to_case(case: Case, loaded: LoadedCase) -> None:
    """Replace ``case`` by ``loaded``: small structures first (their surfaces, tumour and
    vessels, appear first in 3D)."""
    order = sorted(loaded.structures,
                   key=lambda k: int(np.count_nonzero(loaded.structures[k].array)))
    case.open(loaded.ct, loaded.ct_path, {k: loaded.structures[k] for k in order},
              loaded.plan, loaded.plan_path, loaded.case_dir)


def initial_focus(masks: dict[str, Volume]) -> np.ndarray | None:
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
