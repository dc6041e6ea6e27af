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
