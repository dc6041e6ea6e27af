"""Background work for the GUI: run a function on a QThreadPool with progress and cancel.

A task function has the signature ``fn(progress, cancel) -> result`` where
``progress(fraction_0_1, text)`` may be called from the worker thread and ``cancel()``
returns True once the user pressed Cancel (the function should then raise
:class:`irplan.planning.errors.CancelledError`). Results, errors and progress arrive on the
GUI thread through Qt signals. VTK filters may run in a worker; rendering never does.

Work queued on the GUI thread for later (debounced preparations, starts held back until
the first picture) goes through :meth:`TaskRunner.deferred` / :meth:`TaskRunner.defer`
rather than a bare QTimer, so that :attr:`TaskRunner.busy` and
:meth:`TaskRunner.wait_idle` see it as pending work.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal

from irplan.planning.errors import CancelledError, IrplanError

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
TaskFn = Callable[[ProgressFn, CancelFn], Any]


class TaskSignals(QObject):
    progress = Signal(float, str)     # fraction 0..1, text
    finished = Signal(object)         # the result
    failed = Signal(str)              # one-line message for the user
    cancelled = Signal()
    done = Signal()                   # always last, whatever the outcome


class Task(QRunnable):
    """One cancellable background job. Connect to ``task.signals`` before starting."""

    def __init__(self, name: str, fn: TaskFn) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.name = name
        self.fn = fn
        self.signals = TaskSignals()
        self._cancel = threading.Event()
        self._last_emit = 0.0
        self.result: Any = None
        self.error: str | None = None
        self.state = "pending"   # pending, running, finished, failed, cancelled
        self.elapsed_s = 0.0

    def cancel(self) -> None:
        self._cancel.set()

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, fraction: float, text: str = "") -> None:
        now = time.monotonic()
        # throttle to ~20 updates/s so the GUI thread is never flooded
        if now - self._last_emit >= 0.05 or fraction >= 1.0:
            self._last_emit = now
            self._emit("progress", float(max(0.0, min(1.0, fraction))), text)

    def _emit(self, signal_name: str, *args: Any) -> None:
        """Emit unless the receiving side is gone (window closed while we ran)."""
        try:
            getattr(self.signals, signal_name).emit(*args)
        except RuntimeError:
            pass

    def run(self) -> None:
        self.state = "running"
        t0 = time.monotonic()
        try:
            if self.is_cancelled():      # cancelled while queued or held
                raise CancelledError(f"{self.name} cancelled")
            self.result = self.fn(self._progress, self.is_cancelled)
            if self.is_cancelled():
                raise CancelledError(f"{self.name} cancelled")
        except CancelledError:
            self.state = "cancelled"
            self.elapsed_s = time.monotonic() - t0
            self._emit("cancelled")
        except IrplanError as exc:
            self.state = "failed"
            self.error = str(exc)
            self.elapsed_s = time.monotonic() - t0
            self._emit("failed", self.error)
        except Exception as exc:  # noqa: BLE001 - shown to the user as one line
            self.state = "failed"
            self.error = f"{self.name}: internal error: {type(exc).__name__}: {exc}"
            self.traceback = traceback.format_exc()
            self.elapsed_s = time.monotonic() - t0
            self._emit("failed", self.error)
        else:
            self.state = "finished"
            self.elapsed_s = time.monotonic() - t0
            self._emit("finished", self.result)
        self._emit("done")


class Deferred(QObject):
    """A restartable single-shot call on the GUI thread, counted by its runner as pending
    work from :meth:`start` until the call has returned (a task the call starts is
    running by then, so the runner is never idle in between). Make one with
    :meth:`TaskRunner.deferred` (reusable, e.g. a debounce) or :meth:`TaskRunner.defer`
    (one shot)."""

    def __init__(self, runner: TaskRunner, interval_ms: int, fn: Callable[[], Any],
                 parent: QObject | None = None, once: bool = False) -> None:
        super().__init__(parent if parent is not None else runner)
        self._runner = runner
        self._fn = fn
        self._once = once
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(interval_ms))
        self._timer.timeout.connect(self._fire)

    @property
    def pending(self) -> bool:
        """True from :meth:`start` until the call has returned (or :meth:`stop`)."""
        return self in self._runner._deferred

    def start(self, interval_ms: int | None = None) -> None:
        """(Re)start the countdown: ``interval_ms`` given, it becomes the new interval."""
        if interval_ms is not None:
            self._timer.setInterval(int(interval_ms))
        self._runner._deferred.add(self)
        self._timer.start()

    def stop(self) -> None:
        """Drop the call if it has not run yet."""
        self._timer.stop()
        self._runner._deferred_done(self)
        if self._once:
            self.deleteLater()

    def _fire(self) -> None:
        try:
            self._fn()
        finally:
            try:
                self._runner._deferred_done(self)
            except RuntimeError:   # the runner's window was closed by the call
                pass
            if self._once:
                self.deleteLater()


class TaskRunner(QObject):
    """Starts tasks on a thread pool and tracks the running ones (for progress UI,
    cancel-all and 'wait until idle' in screenshots and tests), and the calls deferred
    on the GUI thread through it (:meth:`deferred`, :meth:`defer`).

    ``busy_changed`` follows the running tasks only (it drives the progress bar and
    Cancel button); :attr:`busy` and :meth:`wait_idle` also count deferred calls.
    """

    busy_changed = Signal(bool)
    task_started = Signal(object)
    task_done = Signal(object)

    def __init__(self, parent: QObject | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        # a separate lane for short jobs the user is looking at (surfaces): long jobs
        # (field solvers, registrations) in the main pool cannot starve them
        self.quick_pool = QThreadPool(self)
        self.quick_pool.setMaxThreadCount(1)
        self.running: list[Task] = []
        self._deferred: set[Deferred] = set()   # started and not yet returned
        self._held: list[tuple[Task, int, bool]] | None = None
        self._hold_timeout: Deferred | None = None
        self._bg_held: list[tuple[Task, int]] | None = None
        self._bg_timeout: Deferred | None = None

    def hold(self, max_s: float = 5.0) -> None:
        """Queue the tasks started from now on instead of running them, until
        :meth:`release` (at the latest after ``max_s``): the first picture of a newly
        loaded case must not share the two cores with the checks and zones it triggers.
        Held tasks count as running (progress bar, busy, wait_idle)."""
        if self._held is None:
            self._held = []
            self._hold_timeout = self.defer(int(max_s * 1000), self.release)

    def release(self) -> None:
        """Start the held tasks, in the order they were started (long ones stay queued
        while :meth:`hold_background` holds)."""
        held, self._held = self._held, None
        timeout, self._hold_timeout = self._hold_timeout, None
        if timeout is not None and shiboken6.isValid(timeout):
            timeout.stop()
        for task, priority, quick in held or []:
            self._launch(task, priority, quick)

    def hold_background(self, max_s: float = 60.0) -> None:
        """Queue the long tasks (not ``quick``) started from now on until
        :meth:`release_background` (at the latest after ``max_s``), while quick ones run:
        a new case's 3D surfaces come before its zones and safety-check preparation,
        which would otherwise share the two cores with them (issue 16)."""
        if self._bg_held is None:
            self._bg_held = []
            self._bg_timeout = self.defer(int(max_s * 1000), self.release_background)

    def release_background(self) -> None:
        """Start the long tasks queued by :meth:`hold_background`, in their order."""
        held, self._bg_held = self._bg_held, None
        timeout, self._bg_timeout = self._bg_timeout, None
        if timeout is not None and shiboken6.isValid(timeout):
            timeout.stop()
        for task, priority in held or []:
            self._launch(task, priority, False)

    @property
    def holding_background(self) -> bool:
        """True while :meth:`hold_background` queues long tasks."""
        return self._bg_held is not None

    def _launch(self, task: Task, priority: int, quick: bool) -> None:
        if task not in self.running:          # cancelled and finished meanwhile
            return
        if not quick and self._bg_held is not None:
            self._bg_held.append((task, priority))
        else:
            (self.quick_pool if quick else self.pool).start(task, priority)

    def deferred(self, interval_ms: int, fn: Callable[[], Any],
                 parent: QObject | None = None) -> Deferred:
        """A reusable deferred call of ``fn`` (not started): ``start()`` restarts the
        ``interval_ms`` countdown, so repeated starts debounce. Lives with ``parent``."""
        return Deferred(self, interval_ms, fn, parent)

    def defer(self, interval_ms: int, fn: Callable[[], Any]) -> Deferred:
        """Call ``fn`` once on the GUI thread after ``interval_ms`` (QTimer.singleShot
        that :attr:`busy` and :meth:`wait_idle` see)."""
        call = Deferred(self, interval_ms, fn, once=True)
        call.start()
        return call

    def _deferred_done(self, call: Deferred) -> None:
        self._deferred.discard(call)

    @property
    def pending_calls(self) -> int:
        """Deferred calls started and not yet returned (a call whose owner was deleted
        does not count)."""
        self._deferred = {d for d in self._deferred if shiboken6.isValid(d)}
        return len(self._deferred)

    def start(self, name: str, fn: TaskFn, on_result: Callable[[Any], None] | None = None,
              on_error: Callable[[str], None] | None = None, priority: int = 0,
              quick: bool = False) -> Task:
        """Run ``fn(progress, cancel)`` in the pool; callbacks run on the GUI thread.
        Tasks with a higher ``priority`` leave the queue first; ``quick`` tasks (seconds,
        e.g. a surface mesh) run in their own lane beside long jobs."""
        task = Task(name, fn)
        if on_result is not None:
            task.signals.finished.connect(on_result)
        if on_error is not None:
            task.signals.failed.connect(on_error)
        task.signals.done.connect(lambda t=task: self._finish(t))
        was_idle = not self.running
        self.running.append(task)
        self.task_started.emit(task)
        if was_idle:
            self.busy_changed.emit(True)
        if self._held is not None:
            self._held.append((task, priority, quick))
        else:
            self._launch(task, priority, quick)
        return task

    def _finish(self, task: Task) -> None:
        if task in self.running:
            self.running.remove(task)
        try:
            self.task_done.emit(task)
            if not self.running:
                self.busy_changed.emit(False)
        except RuntimeError:   # the runner's window was closed while the task ran
            pass

    def shutdown(self, timeout_s: float = 60.0) -> bool:
        """Drop the deferred calls, cancel every task and wait for the pools to drain
        (True when they did)."""
        for call in list(self._deferred):
            if shiboken6.isValid(call):
                call.stop()
        self._deferred.clear()
        self.cancel_all()
        ms = int(timeout_s * 1000)
        return bool(self.pool.waitForDone(ms) and self.quick_pool.waitForDone(ms))

    @property
    def busy(self) -> bool:
        """A task runs or a deferred call is pending."""
        return bool(self.running) or self.pending_calls > 0

    def cancel_all(self) -> None:
        for t in list(self.running):
            t.cancel()

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Process events until no task runs and no deferred call is pending (for
        scripts/tests). True when idle. A bare QTimer.singleShot elsewhere is invisible
        here beyond the first event pass (zero timers)."""
        from PySide6.QtCore import QCoreApplication

        deadline = time.monotonic() + timeout_s
        while True:
            QCoreApplication.processEvents()   # results, queued starts, due timers
            if not self.busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


def counting_progress(progress: ProgressFn, text: str, lo: float = 0.0, hi: float = 1.0
                      ) -> Callable[[int, int], None]:
    """Adapt a ``(done, total)`` callback (io loaders) to ``progress(fraction, text)``
    mapped into the [lo, hi] part of the bar."""
    def cb(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        progress(lo + (hi - lo) * frac, f"{text} {done}/{total}")
    return cb
