"""Heavy numerical jobs in one separate worker process, so the GUI thread never waits
for the GIL.

Threads are not enough for some of our numerics: pyamg's classical AMG set-up (C++
through pybind11) holds the GIL for up to ~0.5 s on a 1-mm IRE grid, and the GUI thread
then freezes although the work is "in the background" (measured with a 2-ms heartbeat:
522 ms longest gap for a 216k-node set-up in a thread, see bench/bench_render.py). A
process has its own interpreter and GIL.

Use from a :class:`irplan.app.workers.TaskRunner` job (a thread), which then only waits::

    def job(progress, cancel):
        return pool.run(predict_zone_job, Cached(key, structures), plan, progress=progress,
                        cancel=cancel)

* One worker process ("spawn": no fork of a Qt/VTK process), started on first use or by
  :meth:`ProcessPool.warm_up`; jobs run one after another in submission order.
* ``fn`` must be a module-level function; it is called as ``fn(*args, progress=...,
  cancel=...)`` in the worker, with ``progress(fraction, text)`` and ``cancel() -> bool``
  forwarded to the caller's callbacks (cancel is checked by the job itself, as for
  thread jobs).
* :class:`Cached` arguments are sent once per key and kept in the worker (the structure
  masks of a case are tens of MB: they cross the process boundary once, not per drag).
* An exception in the job is raised again in the caller with its type and message; a
  crashed worker (killed, out of memory) gives :class:`WorkerCrashedError` and the next
  job starts a fresh process.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue as queue_mod
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from irplan.planning.errors import CancelledError, IrplanError

_SLOTS = 256            # cancel flags, indexed by job id modulo this
_POLL_S = 0.05          # how often the waiting thread forwards progress and cancel


class WorkerCrashedError(IrplanError):
    """The worker process ended while running a job (killed, out of memory)."""


@dataclass(frozen=True)
class Cached:
    """A job argument kept in the worker under ``key`` (``value`` None: use the kept one).

    Keys must change when the value changes (e.g. ``f"structures-{generation}"``)."""

    key: str
    value: Any = None


class _CacheMiss(Exception):
    """The worker has no value for a Cached key (it was restarted): send the value."""


# ----------------------------------------------------------------- worker side
_cancel_flags: Any = None
_progress_queue: Any = None
_cache: dict[str, Any] = {}
_CACHE_KEYS_KEPT = 4


def _init_worker(flags: Any, progress_queue: Any) -> None:
    global _cancel_flags, _progress_queue
    _cancel_flags = flags
    _progress_queue = progress_queue


def _resolve(arg: Any) -> Any:
    if not isinstance(arg, Cached):
        return arg
    if arg.value is None:
        if arg.key not in _cache:
            raise _CacheMiss(arg.key)
        return _cache[arg.key]
    _cache[arg.key] = arg.value
    while len(_cache) > _CACHE_KEYS_KEPT:      # oldest first (dicts keep insertion order)
        _cache.pop(next(iter(_cache)))
    return arg.value


def _run_job(job_id: int, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    slot = job_id % _SLOTS

    def cancel() -> bool:
        return bool(_cancel_flags[slot])

    def progress(fraction: float, text: str = "") -> None:
        try:
            _progress_queue.put_nowait((job_id, float(fraction), str(text)))
        except Exception:  # noqa: BLE001 - progress is best effort
            pass

    if cancel():
        raise CancelledError("cancelled before it started")
    real_args = tuple(_resolve(a) for a in args)
    real_kwargs = {k: _resolve(v) for k, v in kwargs.items()}
    return fn(*real_args, progress=progress, cancel=cancel, **real_kwargs)


_WARM_UP_MODULES = ("numpy", "scipy.sparse", "scipy.ndimage", "SimpleITK", "pyamg",
                    "irplan.planning.zone")


def _ping(modules: tuple[str, ...] = _WARM_UP_MODULES) -> int:
    """Warm-up job: import the numerical stack (``modules``) once."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    return mp.current_process().pid or 0


# ----------------------------------------------------------------- caller side
class ProcessPool:
    """One worker process for heavy jobs; thread-safe; see the module docstring."""

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._executor: ProcessPoolExecutor | None = None
        self._flags: Any = None
        self._queue: Any = None
        self._sent_keys: set[str] = set()
        self._progress: dict[int, Callable[[float, str], None]] = {}
        self._warm = False

    # -- life cycle
    def _ensure(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._flags = self._ctx.Array("b", _SLOTS, lock=False)
                self._queue = self._ctx.Queue()
                self._executor = ProcessPoolExecutor(
                    max_workers=1, mp_context=self._ctx, initializer=_init_worker,
                    initargs=(self._flags, self._queue))
            return self._executor

    def warm_up(self, modules: tuple[str, ...] = _WARM_UP_MODULES) -> None:
        """Start the worker and import ``modules`` there (returns at once; later calls
        do nothing)."""
        with self._lock:
            if self._warm:
                return
            self._warm = True
        if os.environ.get("IRPLAN_INPROCESS") == "1":
            return
        self._ensure().submit(_ping, tuple(modules))

    def shutdown(self) -> None:
        """Stop the worker (running jobs are cancelled through their flag)."""
        with self._lock:
            ex, self._executor = self._executor, None
            if self._flags is not None:
                for i in range(_SLOTS):
                    self._flags[i] = 1
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)

    # -- jobs
    def run(self, fn: Callable[..., Any], *args: Any,
            progress: Callable[[float, str], None] | None = None,
            cancel: Callable[[], bool] | None = None, **kwargs: Any) -> Any:
        """Run ``fn(*args, progress=, cancel=, **kwargs)`` in the worker; block the calling
        thread (not the GUI thread: call this from a TaskRunner job) until it ends.
        With IRPLAN_INPROCESS=1 in the environment the job runs in the calling thread
        (debugging, profiling)."""
        if os.environ.get("IRPLAN_INPROCESS") == "1":
            def unwrap(a: Any) -> Any:
                return a.value if isinstance(a, Cached) else a

            return fn(*[unwrap(a) for a in args], progress=progress or (lambda f, t="": None),
                      cancel=cancel or (lambda: False),
                      **{k: unwrap(v) for k, v in kwargs.items()})
        for attempt in range(2):
            self._ensure()     # a new process knows no cached keys: start it first
            send = [self._with_values(a) for a in args]
            send_kw = {k: self._with_values(v) for k, v in kwargs.items()}
            try:
                return self._run_once(fn, tuple(send), send_kw, progress, cancel)
            except _CacheMiss:
                with self._lock:
                    self._sent_keys.clear()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _with_values(self, arg: Any) -> Any:
        if not isinstance(arg, Cached):
            return arg
        with self._lock:
            if arg.key in self._sent_keys:
                return Cached(arg.key)
            self._sent_keys.add(arg.key)
        return arg

    def _run_once(self, fn: Callable[..., Any], args: tuple, kwargs: dict,
                  progress: Callable[[float, str], None] | None,
                  cancel: Callable[[], bool] | None) -> Any:
        ex = self._ensure()
        job_id = next(self._ids)
        self._flags[job_id % _SLOTS] = 0
        try:
            fut = ex.submit(_run_job, job_id, fn, args, kwargs)
        except BrokenProcessPool:
            self._reset()
            raise WorkerCrashedError("the computation process had ended; "
                                     "it is restarted for the next job") from None
        if progress is not None:
            self._progress[job_id] = progress
        try:
            while True:
                try:
                    return fut.result(timeout=_POLL_S)
                except FutureTimeout:
                    pass
                except BrokenProcessPool:
                    self._reset()
                    raise WorkerCrashedError("the computation process ended during the "
                                             "job (killed or out of memory)") from None
                finally:
                    self._forward_progress()
                if cancel is not None and cancel():
                    self._flags[job_id % _SLOTS] = 1
        finally:
            self._progress.pop(job_id, None)

    def _forward_progress(self) -> None:
        q = self._queue
        if q is None:
            return
        while True:
            try:
                job_id, frac, text = q.get_nowait()
            except (queue_mod.Empty, OSError, ValueError):
                return
            cb = self._progress.get(job_id)
            if cb is not None:
                try:
                    cb(frac, text)
                except Exception:  # noqa: BLE001 - a progress display must not fail a job
                    pass

    def _reset(self) -> None:
        with self._lock:
            ex, self._executor = self._executor, None
            self._sent_keys = set()
        if ex is not None:
            ex.shutdown(wait=False, cancel_futures=True)


_pools: dict[str, ProcessPool] = {}
_pools_lock = threading.Lock()


def _named_pool(name: str) -> ProcessPool:
    with _pools_lock:
        if name not in _pools:
            _pools[name] = ProcessPool()
        return _pools[name]


def shared_pool() -> ProcessPool:
    """The application's computation process for zones (created on first use)."""
    return _named_pool("zones")


def mesh_pool() -> ProcessPool:
    """A second computation process for structure and zone surfaces (VTK), beside it."""
    return _named_pool("meshes")


def shutdown_shared_pool() -> None:
    """Stop the computation processes that were started (at quit: a running job is told
    to cancel, so the exit does not wait for a long solve)."""
    with _pools_lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.shutdown()
