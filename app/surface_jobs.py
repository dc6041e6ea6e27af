"""Structure surfaces for the 3D view, meshed in the mesh process (no VTK object is made
or freed in a worker thread: VTK's garbage-collector lock and the GIL deadlocked there
once with a GUI render). Meshes come back as arrays and become vtkPolyData on the GUI
thread; only the structure's box (+3 voxels) crosses the process boundary.

Start-up order (issue 16): the mesh process is started with the window; the planning
structures are meshed before the context anatomy (bone, lung, body); ``on_idle()`` is
called whenever no surface is pending any more (the window then lets the zones and the
safety-check preparation start: they would share the two cores with the meshes).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
from PySide6.QtWidgets import QApplication

from irplan.app.workers import Task, TaskRunner
from irplan.planning.case import Case
from irplan.planning.volume import Volume
from irplan.viewers.view_set import ViewSet

# context anatomy: meshed after the structures a plan is about
CONTEXT_KEYS = ("bone", "lung", "body", "skin")
TIMING = os.environ.get("IRPLAN_TIMING") == "2"    # per-surface times on stdout


class SurfaceJobs:
    """One meshing task per structure key (a newer mask cancels the older task).

    ``hold_back()``: True while a new case's first picture must come first (meshes wait).
    ``on_error(msg)``: a failed mesh (the slices still show the structure).
    ``on_idle()``: no surface is pending any more.
    """

    def __init__(self, case: Case, views: ViewSet, tasks: TaskRunner,
                 hold_back: Callable[[], bool], on_error: Callable[[str], None],
                 on_idle: Callable[[], None] | None = None) -> None:
        from irplan.app.process_pool import mesh_pool

        self.case = case
        self.views = views
        self.tasks = tasks
        self.hold_back = hold_back
        self.on_error = on_error
        self.on_idle = on_idle
        self._tasks: dict[str, Task] = {}
        self._pending: set[str] = set()
        self.done_epoch: float | None = None     # time.time() of the last surface shown
        # spawn + imports (~0.5 s CPU) while the case loads, not after its first picture
        mesh_pool().warm_up(("numpy", "irplan.viewers.surfaces"))

    def cancel_all(self) -> None:
        for t in self._tasks.values():
            t.cancel()
        self._tasks.clear()
        self._check_idle()

    def _check_idle(self) -> None:
        if not self.pending() and self.on_idle is not None:
            self.on_idle()

    def structure_changed(self, key: str, mask: Volume | None) -> None:
        """The mask of ``key`` changed (None: removed): mesh it after the slices are drawn."""
        old = self._tasks.pop(key, None)
        if old is not None:
            old.cancel()
        if mask is not None:
            self._pending.add(key)
            self.tasks.defer(0, lambda: self._start_if_current(key, mask))
        else:
            self._pending.discard(key)
            self._check_idle()

    def pending(self) -> bool:
        """True while structure surfaces are still being extracted for the 3D view."""
        return bool(self._pending or self._tasks)

    def wait(self, timeout_s: float = 120.0) -> bool:
        """Process events until every structure surface is shown (scripts, tests)."""
        deadline = time.monotonic() + timeout_s
        QApplication.processEvents()
        while self.pending() and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.005)
        QApplication.processEvents()
        return not self.pending()

    def _start_if_current(self, key: str, mask: Volume) -> None:
        if self.hold_back():
            # the first picture of a case comes first; meshes right after it
            self.tasks.defer(20, lambda: self._start_if_current(key, mask))
            return
        self._pending.discard(key)
        if self.case.structures.get(key) is mask and key not in self._tasks:
            self._start(key, mask)
        else:
            self._check_idle()

    def _start(self, key: str, mask: Volume) -> None:
        from irplan.app.process_jobs import surface_mesh_job
        from irplan.app.process_pool import mesh_pool
        from irplan.planning.margin import bbox_ijk
        from irplan.viewers.surfaces import polydata_from_arrays, triangle_budget

        def job(progress, cancel):
            progress(0.0, f"Surface of {key}")
            t0 = time.time()
            arr = mask.array != 0
            if not arr.any():
                return {"points": np.zeros((0, 3)), "triangles": np.zeros((0, 3), np.int64)}
            lo, hi = bbox_ijk(arr)
            box = mask.crop_index(lo - 3, hi + 4)
            mesh = mesh_pool().run(surface_mesh_job, box, triangle_budget(key),
                                   progress=progress, cancel=cancel)
            if TIMING:
                print(f"surface-timing: {key} {t0:.3f} -> {time.time():.3f} "
                      f"cpu {mesh.get('cpu_s', float('nan')):.2f} s", flush=True)
            return mesh

        def done(mesh) -> None:
            if self.case.structures.get(key) is mask:
                self.views.set_surface(key, polydata_from_arrays(mesh))
                if len(self._tasks) == 0:
                    self.views.scene3d.reset_camera()

        # surfaces are quick and what the user waits to see: ahead of long jobs (zones)
        task = self.tasks.start(f"Surface {key}", job, done, self.on_error,
                                priority=1 if key in CONTEXT_KEYS else 2, quick=True)
        self._tasks[key] = task
        task.signals.done.connect(lambda: self._done(key, task))

    def _done(self, key: str, task: Task) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not self._tasks:
            self.done_epoch = time.time()
            self.views.scene3d.reset_camera()
        self._check_idle()
