"""Jobs for the computation process (:mod:`irplan.app.process_pool`): module-level
functions called as ``fn(*args, progress=..., cancel=...)`` in the worker process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from irplan.planning.plan import Plan
from irplan.planning.volume import Volume


def predict_zone_job(plan: Plan, structures: dict[str, Volume], grid_mm: float,
                     options: Any = None, *, progress: Callable[[float, str], None],
                     cancel: Callable[[], bool]) -> Any:
    """:func:`irplan.planning.zone.predict_zone` without a CT (structures on the CT grid)."""
    from irplan.planning.zone import predict_zone

    return predict_zone(plan, None, structures, grid_mm, options, progress=progress,
                        cancel=cancel)


def surface_mesh_job(mask: Volume, max_triangles: int, *,
                     progress: Callable[[float, str], None],
                     cancel: Callable[[], bool]) -> dict[str, Any]:
    """The smoothed, decimated surface of a structure mask as plain arrays
    (:func:`irplan.viewers.surfaces.polydata_to_arrays`): VTK objects are made and freed
    in this process only, never in a thread of the GUI process (VTK's garbage-collector
    lock and the GIL can deadlock there)."""
    import time

    from irplan.viewers.surfaces import mask_to_polydata, polydata_to_arrays

    t0 = time.process_time()
    out: dict[str, Any] = polydata_to_arrays(mask_to_polydata(
        mask, max_triangles=max_triangles, cancel=cancel))
    out["cpu_s"] = time.process_time() - t0      # this process's CPU seconds (bench)
    return out


def zone_surface_job(result: Any, *, progress: Callable[[float, str], None],
                     cancel: Callable[[], bool]) -> dict[str, Any]:
    """The predicted zone's surface (:func:`irplan.viewers.zone_actors.zone_surface`) as
    plain arrays, made in the mesh process for the same reason as the structures'."""
    from irplan.viewers.surfaces import polydata_to_arrays
    from irplan.viewers.zone_actors import zone_surface

    return polydata_to_arrays(zone_surface(result, cancel))


def sleep_job(seconds: float, *, progress: Callable[[float, str], None],
              cancel: Callable[[], bool]) -> float:
    """Wait ``seconds`` in small steps, reporting progress and honouring cancel; returns
    the worker's process id. The pool's self-test and the tests use it."""
    import os
    import time

    from irplan.planning.errors import CancelledError

    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        if cancel():
            raise CancelledError("sleep cancelled")
        progress(1.0 - (t_end - time.monotonic()) / max(seconds, 1e-9), "sleeping")
        time.sleep(0.01)
    return float(os.getpid())
