"""The per-case batch engine: one pure function over a list of cases, serially in this
process, on a local Dask cluster of worker processes, or on an existing Dask scheduler
(issue 18). No Qt, no VTK.

* Serial (no ``workers``, or ``workers=1`` without a timeout): the cases run one after
  another in this process, as ``evaluate-batch`` always did.
* ``workers=N``: a local Dask cluster of N worker *processes* (one thread each), on
  127.0.0.1, no dashboard. ``scheduler="tcp://HOST:PORT"``: the same run on an existing
  cluster (``dask scheduler`` + ``dask worker --nthreads 1`` on other machines; the
  input paths must be readable there).
* A ``timeout_s`` needs a process that can be killed: without ``workers``/``scheduler``
  it runs on a local cluster of one worker.

Each case is isolated. An exception is caught in the worker and reported as that case's
one-line error (an :class:`IrplanError` as is; anything else as "internal error: Type:
message"). A worker process that dies while running a case (``os._exit``, a segfault,
the nanny's memory limit: 95 % of ``memory_limit``) makes that case an error ("the worker
process died ...") and the nanny starts a fresh worker; local clusters never retry such a
case (``allowed-failures`` 0). A case running longer than ``timeout_s`` (counted from
when it starts on its worker, including that worker's first imports) is cancelled, its
worker restarted through its nanny, and the batch goes on.

At most one case runs per worker thread: the engine submits a new case only when one
finishes, so a crash or a timeout takes down no innocent neighbour when workers have one
thread each (the local cluster always has; start external workers with
``--nthreads 1``).

Threads: every case runs with one compute thread (ITK's global default, OpenMP/BLAS
through threadpoolctl; local workers also get OMP/MKL/OPENBLAS/ITK_*_THREADS=1 in their
environment), in every mode. So 2 workers on 2 cores do not oversubscribe, and the
numbers do not depend on the mode: ITK's multi-threaded Mattes metric sums in a
thread-count-dependent order (deformable phantom: metric -0.42961 with 2 threads,
-0.42960 with 1), so results are identical whatever the number of workers.

On Dask workers, library warnings (Python and ITK) are not shown: they would come raw
through the workers' stderr into the progress bar (a serial run prints them as notes).

Results come back in input order; ``on_outcome`` is called in this process as each case
finishes (for journalling), in completion order.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from irplan.planning.errors import InputError, IrplanError

START_TOPIC = "irplan-batch-case-start"
MEMORY_TOPIC = "worker-restart-memory"     # logged by distributed's nanny
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}
CONNECT_TIMEOUT_S = 20.0
WORKER_WAIT_S = 60.0
POLL_S = 0.25


@dataclass
class EngineOptions:
    """How to run a batch. ``memory_limit``: per local worker ("4GB", bytes, or None for
    Dask's default, the machine's RAM / workers)."""

    workers: int | None = None
    scheduler: str | None = None
    timeout_s: float | None = None
    memory_limit: str | int | None = None

    def uses_dask(self) -> bool:
        return bool(self.scheduler) or (self.workers or 1) > 1 or self.timeout_s is not None

    def describe(self) -> str:
        if self.scheduler:
            return f"Dask scheduler {self.scheduler}"
        if self.uses_dask():
            n = self.workers or 1
            return f"local Dask cluster, {n} worker process{'es' if n > 1 else ''}"
        return "serial, in this process"

    def validate(self) -> None:
        """InputError for values a user can fix."""
        if self.workers is not None and not 1 <= self.workers <= 256:
            raise InputError(f"--workers must be 1..256, got {self.workers}")
        if self.timeout_s is not None and not (self.timeout_s > 0 and self.timeout_s < 1e7):
            raise InputError(f"--timeout-s must be a positive number of seconds, got "
                             f"{self.timeout_s}")
        if self.scheduler and self.workers:
            raise InputError("give --workers (a local cluster) or --scheduler (an existing "
                             "one), not both")
        if self.scheduler and not re.fullmatch(r"(tcp|tls|inproc|ws|wss)://\S+:\d+|"
                                               r"[\w.\-\[\]:]+:\d+", self.scheduler):
            raise InputError(f"--scheduler {self.scheduler!r}: expected tcp://HOST:PORT")
        if isinstance(self.memory_limit, str):
            from dask.utils import parse_bytes

            try:
                ok = parse_bytes(self.memory_limit) > 0
            except (ValueError, TypeError):
                ok = False
            if not ok:
                raise InputError(f"--memory-limit {self.memory_limit!r}: expected a size "
                                 "such as 4GB or 500MB")


@dataclass
class Outcome:
    """One case's result. ``kind`` of an error: input (IrplanError), internal, crash,
    memory, timeout, lost (the cluster went away)."""

    index: int
    status: str                 # "ok" | "error"
    value: Any = None
    error: str = ""
    kind: str = ""
    elapsed_s: float = 0.0
    cpu_s: float | None = None  # CPU time of the case's process (None: not known)


def add_engine_arguments(parser: argparse.ArgumentParser, resume_help: str | None) -> None:
    """--workers/--scheduler/--timeout-s/--memory-limit (and --resume when
    ``resume_help``): the options of :mod:`irplan.app.batch_engine`."""
    from irplan.app.cli_types import positive_float, positive_int

    g = parser.add_argument_group("parallel runs (Dask)")
    g.add_argument("--workers", type=positive_int(256), metavar="N",
                   help="run the cases on a local Dask cluster of N worker processes (one "
                   "thread each); default: one after another in this process")
    g.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run the cases on an existing Dask cluster (dask scheduler + dask "
                   "worker --nthreads 1; the input paths must be readable by the workers)")
    g.add_argument("--timeout-s", type=positive_float(1e6, unit=" s"), metavar="S",
                   help="stop a case that runs longer than S seconds (its row says so; "
                   "its worker process is restarted). Runs on Dask workers (without "
                   "--workers/--scheduler: a local cluster of one worker)")
    g.add_argument("--memory-limit", metavar="SIZE",
                   help="memory per local worker, e.g. 4GB (default: RAM / workers); a "
                   "case above 95 %% of it is stopped and reported")
    if resume_help:
        g.add_argument("--resume", action="store_true", help=resume_help)


def engine_options(args: argparse.Namespace) -> EngineOptions:
    """The :class:`EngineOptions` of parsed :func:`add_engine_arguments` flags."""
    opts = EngineOptions(workers=args.workers, scheduler=args.scheduler,
                         timeout_s=args.timeout_s, memory_limit=args.memory_limit)
    opts.validate()
    return opts



class Progress:
    """A one-line progress bar over cases on stderr, with the ETA."""

    def __init__(self, n: int, enabled: bool = True, stream: Any = None) -> None:
        self.n, self.enabled = n, enabled
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()

    def show(self, done: int, label: str = "") -> None:
        if not self.enabled:
            return
        n, width = self.n, 30
        filled = int(width * done / n) if n else width
        el = time.perf_counter() - self.t0
        eta = f", ~{el / done * (n - done):.0f} s left" if 0 < done < n else ""
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{n} "
                          f"{label[:30]:<30} {el:.0f} s{eta}   ")
        if done == n:
            self.stream.write("\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (an error of one case) without breaking the bar."""
        if self.enabled:
            self.stream.write(f"\n{text}\n")
            self.stream.flush()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One compute thread for ITK and OpenMP/BLAS while the block runs (restored after)."""
    import SimpleITK as sitk
    from threadpoolctl import threadpool_limits

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def call_case(fn: Callable[[Any], Any], case: Any) -> tuple[str, Any, str, float, float]:
    """``fn(case)`` with its errors caught: (status, value, message, elapsed_s, cpu_s);
    an error's message is one line and its kind is in ``value`` ("input", "internal",
    "memory"). cpu_s: CPU time of this process during the case (s)."""
    import os
    import traceback

    t0, c0 = time.perf_counter(), time.process_time()

    def took() -> tuple[float, float]:
        return time.perf_counter() - t0, time.process_time() - c0

    try:
        with one_thread():
            value = fn(case)
        return "ok", value, "", *took()
    except IrplanError as exc:
        return "error", "input", _one_line(str(exc)), *took()
    except MemoryError:
        return "error", "memory", "out of memory", *took()
    except Exception as exc:  # noqa: BLE001 - one bad case must not stop a cohort
        if os.environ.get("IRPLAN_DEBUG"):
            traceback.print_exc()
        return ("error", "internal", _one_line(f"internal error: {type(exc).__name__}: {exc}"),
                *took())


def _one_line(text: str, limit: int = 500) -> str:
    return " ".join(text.split())[:limit]


_WARM: set[str] = set()     # warm-up functions already run in this (worker) process


def _dask_task(fn: Callable[[Any], Any], case: Any, index: int,
               warm_up: Callable[[], None] | None = None
               ) -> tuple[str, Any, str, float, float]:
    """What a Dask worker runs for one case: the warm-up once per worker process (imports:
    not counted in the timeout, so a freshly restarted worker is not penalised), tell the
    client the case has started (for the timeout), then :func:`call_case`."""
    if warm_up is not None:
        name = f"{warm_up.__module__}.{warm_up.__qualname__}"
        if name not in _WARM:
            with contextlib.suppress(Exception):
                warm_up()
            _WARM.add(name)
    try:
        from distributed import get_worker

        w = get_worker()
        w.log_event(START_TOPIC, {"index": index, "worker": w.address})
    except Exception:  # noqa: BLE001 - the start event only serves the timeout
        pass
    import warnings

    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalWarningDisplay(False)   # as the CLI: nothing raw on stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # library warnings would break the progress bar
        return call_case(fn, case)


def run_cases(fn: Callable[[Any], Any], cases: Sequence[Any], options: EngineOptions,
              labels: Sequence[str] | None = None,
              on_outcome: Callable[[Outcome], None] | None = None,
              progress: Progress | None = None,
              warm_up: Callable[[], None] | None = None) -> list[Outcome]:
    """Run ``fn`` (a module-level function: it is pickled to the workers) over ``cases``;
    the outcomes in input order. ``labels`` name the cases on the progress bar;
    ``warm_up`` (module-level, e.g. heavy imports) runs once per worker process before
    its first case, outside the timeout."""
    options.validate()
    labels = list(labels) if labels is not None else [f"case {i + 1}" for i in
                                                      range(len(cases))]
    progress = progress or Progress(len(cases), enabled=False)
    out: list[Outcome | None] = [None] * len(cases)
    done = 0

    def finish(o: Outcome) -> None:
        nonlocal done
        out[o.index] = o
        done += 1
        if o.status == "error":
            progress.note(f"{labels[o.index]}: {o.error}")
        if on_outcome is not None:
            on_outcome(o)
        progress.show(done, labels[o.index])

    progress.show(0, labels[0] if labels else "")
    if not cases:
        return []
    if options.uses_dask():
        _run_dask(fn, cases, options, finish, warm_up)
    else:
        for i, case in enumerate(cases):
            progress.show(done, labels[i])
            finish(_from_call(i, call_case(fn, case)))
    return [o for o in out if o is not None]


@contextlib.contextmanager
def _quiet_distributed() -> Iterator[None]:
    """distributed's own warnings (worker restarts, lost connections) stay off stderr:
    the engine reports them on the case's row."""
    loggers = [logging.getLogger(n) for n in ("distributed", "tornado")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def _reachable(address: str) -> None:
    """Fail fast (InputError) when nothing listens at a tcp:// scheduler address (the
    Dask client would retry until its timeout)."""
    import socket

    m = re.fullmatch(r"(?:tcp://)?\[?([^\]]+?)\]?:(\d+)", address)
    if not m:
        return
    try:
        socket.create_connection((m.group(1), int(m.group(2))), timeout=5.0).close()
    except OSError as exc:
        raise InputError(f"--scheduler {address}: cannot connect "
                         f"({exc.strerror or type(exc).__name__})") from None


@contextlib.contextmanager
def dask_client(options: EngineOptions) -> Iterator[Any]:
    """A distributed Client on the local cluster or the given scheduler (closed after)."""
    import dask
    from distributed import Client, LocalCluster

    # local workers: no statistical profiler, fewer event-loop ticks and system samples
    # (the per-case CPU time fell by ~10 %: rigid phantom 2.46 -> 2.19 s; serial 1.83 s)
    cfg = {"distributed.scheduler.allowed-failures": 0,
           "distributed.scheduler.worker-saturation": 1.0,
           "distributed.worker.daemon": False,
           "distributed.worker.profile.enabled": False,
           "distributed.admin.tick.interval": "500ms",
           "distributed.admin.system-monitor.interval": "5s"}
    with _quiet_distributed(), dask.config.set(cfg):
        if options.scheduler:
            _reachable(options.scheduler)
            try:
                client = Client(options.scheduler, timeout=CONNECT_TIMEOUT_S,
                                set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise InputError(f"--scheduler {options.scheduler}: cannot connect "
                                 f"({_one_line(str(exc), 200) or type(exc).__name__})"
                                 ) from None
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except (OSError, TimeoutError):
                client.close()
                raise InputError(f"--scheduler {options.scheduler}: no worker joined within "
                                 f"{WORKER_WAIT_S:.0f} s (start one with: dask worker "
                                 f"{options.scheduler} --nthreads 1)") from None
            try:
                yield client
            finally:
                client.close()
            return
        kw: dict[str, Any] = {}
        if options.memory_limit is not None:
            kw["memory_limit"] = options.memory_limit
        cluster = LocalCluster(n_workers=options.workers or 1, threads_per_worker=1,
                               processes=True, host="127.0.0.1", dashboard_address=None,
                               silence_logs=logging.CRITICAL, env=dict(THREAD_ENV), **kw)
        try:
            client = Client(cluster, set_as_default=False)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()


def _run_dask(fn: Callable[[Any], Any], cases: Sequence[Any], options: EngineOptions,
              finish: Callable[[Outcome], None],
              warm_up: Callable[[], None] | None = None) -> None:
    starts: dict[int, tuple[float, str]] = {}
    over_memory: set[str] = set()          # workers the nanny killed for memory
    lock = threading.Lock()

    def on_start(event: Any) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        with lock:
            starts[int(msg["index"])] = (time.monotonic(), str(msg["worker"]))

    def on_memory(event: Any) -> None:
        msg = event[1] if isinstance(event, tuple) else event
        with lock:
            over_memory.add(str(msg.get("worker")))

    token = uuid.uuid4().hex[:12]
    wake = threading.Event()
    with dask_client(options) as client, _quiet_distributed():
        client.subscribe_topic(START_TOPIC, on_start)
        client.subscribe_topic(MEMORY_TOPIC, on_memory)
        pending = deque(range(len(cases)))
        running: dict[Any, int] = {}
        slots, slots_at = 1, 0.0
        try:
            while pending or running:
                if time.monotonic() - slots_at > 2.0:
                    slots = max(1, sum(client.nthreads().values()))
                    slots_at = time.monotonic()
                while pending and len(running) < slots:
                    i = pending.popleft()
                    with lock:
                        starts.pop(i, None)
                    fut = client.submit(_dask_task, fn, cases[i], i, warm_up, pure=False,
                                        key=f"irplan-case-{token}-{i}", retries=0)
                    running[fut] = i
                    fut.add_done_callback(lambda _f: wake.set())
                wake.wait(POLL_S)
                wake.clear()
                for fut in [f for f in running if f.done()]:
                    i = running.pop(fut)
                    if fut.status == "error":
                        time.sleep(POLL_S)     # let the nanny's memory event arrive
                    with lock:
                        st = starts.get(i)
                        mem = st is not None and st[1] in over_memory
                    finish(_outcome_of(fut, i, st, options, mem))
                if options.timeout_s:
                    _stop_overdue(client, running, starts, lock, options, finish)
        except (OSError, TimeoutError) as exc:   # the scheduler went away
            why = _one_line(f"{type(exc).__name__}: {exc}", 200)
            for i in list(running.values()) + list(pending):
                finish(Outcome(i, "error", None, f"not run: lost the Dask cluster ({why})",
                               "lost"))


def _from_call(i: int, r: tuple[str, Any, str, float, float]) -> Outcome:
    status, value, msg, el, cpu = r
    return (Outcome(i, "ok", value, elapsed_s=el, cpu_s=cpu) if status == "ok"
            else Outcome(i, "error", None, msg, value, el, cpu))


def _outcome_of(fut: Any, i: int, started: tuple[float, str] | None,
                options: EngineOptions, over_memory: bool = False) -> Outcome:
    from distributed import KilledWorker

    el = time.monotonic() - started[0] if started else 0.0
    if fut.status == "finished":
        return _from_call(i, fut.result())
    exc = fut.exception() if fut.status == "error" else None
    limit = f" ({options.memory_limit})" if options.memory_limit else ""
    if over_memory:
        return Outcome(i, "error", None, f"stopped: its memory went above the worker's "
                       f"limit{limit}; its worker was restarted", "memory", el)
    if isinstance(exc, KilledWorker) or fut.status != "error":
        msg = ("the worker process died while running this case (a crash, or memory "
               f"above the worker's limit{limit}); its worker was restarted")
        return Outcome(i, "error", None, msg, "crash", el)
    return Outcome(i, "error", None,
                   _one_line(f"internal error: {type(exc).__name__}: {exc}"), "internal", el)


def _stop_overdue(client: Any, running: dict[Any, int],
                  starts: dict[int, tuple[float, str]], lock: threading.Lock,
                  options: EngineOptions, finish: Callable[[Outcome], None]) -> None:
    """Cancel the cases running longer than the timeout and restart their workers."""
    now = time.monotonic()
    with lock:
        overdue = [(f, i, starts[i]) for f, i in running.items()
                   if i in starts and now - starts[i][0] > options.timeout_s]
    for fut, i, (t_start, worker) in overdue:
        elapsed = time.monotonic() - t_start
        running.pop(fut, None)
        client.cancel([fut], force=True)
        restarted = client.restart_workers([worker], timeout=60, raise_for_error=False)
        note = "its worker was restarted"
        if isinstance(restarted, dict) and restarted.get(worker) not in (None, "OK"):
            with contextlib.suppress(Exception):
                client.retire_workers([worker], close_workers=True)
            note = "its worker could not be restarted (no nanny?) and was retired"
        finish(Outcome(i, "error", None, f"stopped after the --timeout-s of "
                       f"{options.timeout_s:g} s; {note}", "timeout", elapsed))
