"""Autosave and crash recovery of plans (no Qt).

While a plan has unsaved changes, :class:`Autosaver` writes it to a recovery file so that
a crash or ``kill -9`` loses at most ``interval_s`` (30 s) of work. Bound: the save is
started ``save_after_s = interval_s - tick_s - WRITE_BUDGET_S`` (28.5 s) after the first
unsaved change; the timer ticks every ``tick_s`` (1 s), so the write starts at the
latest 29.5 s after that change and is on disk by 30 s when a write takes less than
``WRITE_BUDGET_S`` (0.5 s; a plan's recovery file is written in ~1-5 ms, see
tests/test_fuzz_inputs.py). (Before: a save started at 30 s + up to one tick, measured
worst case 30.9 s.) The app calls :meth:`Autosaver.mark_dirty` on every edit and
:meth:`Autosaver.maybe_save` from a timer (a QTimer every second, or :meth:`start` for a
background thread); :meth:`Autosaver.discard` after a real save or a clean close.

Recovery folder: ``$IRPLAN_CONFIG_DIR/recovery``, else ``$XDG_STATE_HOME/irplan/recovery``,
else ``~/.local/state/irplan/recovery``. One file per plan,
``<plan name>-<8 hex of its path>.irplan-recovery.json``, holding::

    {"irplan_recovery": 1, "plan_path": "/abs/plan.irplan.json" | null,
     "file_dir": "/abs/folder", "saved_at": "2026-...Z", "saved_at_epoch": 1.7e9,
     "pid": 1234, "host": "name", "plan": {schema-1 plan dict}}

written atomically (temp file + fsync + rename). At the next start,
:func:`find_recoverable` lists files whose writer process is gone (crash), newest first;
:func:`recover` turns one into a Plan, :func:`discard` deletes it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from irplan.io.plan_file import atomic_write_text, plan_from_dict, plan_to_dict
from irplan.planning.errors import InputError
from irplan.planning.plan import Plan

RECOVERY_SUFFIX = ".irplan-recovery.json"
DEFAULT_INTERVAL_S = 30.0
DEFAULT_TICK_S = 1.0      # the GUI's autosave timer (plan_session: QTimer every second)
WRITE_BUDGET_S = 0.5      # time allowed for one recovery write (and a busy event loop)


def recovery_dir() -> Path:
    """The recovery folder (see module doc); not created here."""
    cfg = os.environ.get("IRPLAN_CONFIG_DIR")
    if cfg:
        return Path(cfg) / "recovery"
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state) if state else Path.home() / ".local" / "state"
    return base / "irplan" / "recovery"


def recovery_file_for(plan_path: str | Path | None, folder: Path,
                      session: str | None = None) -> Path:
    """Recovery file name for a plan file (or an unsaved plan of this process)."""
    if plan_path is not None:
        p = Path(plan_path).resolve()
        stem = p.name.removesuffix(".irplan.json").removesuffix(".json") or "plan"
        key = str(p)
    else:
        stem = "untitled"
        key = session or f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    return folder / f"{stem}-{digest}{RECOVERY_SUFFIX}"


class Autosaver:
    """Writes the plan given by ``plan_provider()`` to a recovery file while it has
    unsaved changes. ``plan_path``: the plan's own file (None = never saved).
    ``clock``: seconds (monotonic), injectable for tests."""

    def __init__(self, plan_provider: Callable[[], Plan], recovery_folder: str | Path | None = None,
                 interval_s: float = DEFAULT_INTERVAL_S, plan_path: str | Path | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 tick_s: float = DEFAULT_TICK_S) -> None:
        self.plan_provider = plan_provider
        self.folder = Path(recovery_folder) if recovery_folder else recovery_dir()
        self.interval_s = float(interval_s)
        self.tick_s = float(tick_s)
        self.clock = clock
        self._lock = threading.RLock()
        self._dirty_since: float | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.plan_path: Path | None = None
        self.path = self.folder / "unset"
        # recovery files this autosaver wrote or adopted: the only ones it ever deletes
        # (a crashed session's file for the same plan is the user's, until recovered or
        # declined)
        self._owned: set[Path] = set()
        self.set_plan_path(plan_path)
        self.last_saved: float | None = None
        self.saves = 0

    def set_plan_path(self, plan_path: str | Path | None) -> None:
        """The plan was saved under a (new) name: later recovery files follow it. When
        another session's recovery file for that plan exists (a crash not yet recovered),
        this session writes beside it under a name with its process id."""
        with self._lock:
            old = self.path
            self.plan_path = Path(plan_path).resolve() if plan_path else None
            path = recovery_file_for(self.plan_path, self.folder)
            if path.exists() and path not in self._owned:
                path = path.with_name(path.name.replace(
                    RECOVERY_SUFFIX, f"-{os.getpid()}{RECOVERY_SUFFIX}"))
            self.path = path
            if old != self.path and old in self._owned:
                old.unlink(missing_ok=True)
                self._owned.discard(old)

    def adopt(self, recovery_file: str | Path) -> None:
        """Take over a crashed session's recovery file (the user recovered it): this
        autosaver now writes to it and deletes it after a save or a clean close."""
        with self._lock:
            p = Path(recovery_file)
            if self.path != p and self.path in self._owned:
                self.path.unlink(missing_ok=True)
                self._owned.discard(self.path)
            self.path = p
            self._owned.add(p)

    @property
    def dirty(self) -> bool:
        return self._dirty_since is not None

    def mark_dirty(self, now: float | None = None) -> None:
        """Call on every edit; the first unsaved edit starts the 30 s clock."""
        with self._lock:
            if self._dirty_since is None:
                self._dirty_since = self.clock() if now is None else now

    def mark_clean(self) -> None:
        """The plan was saved to its file: nothing to recover any more."""
        with self._lock:
            self._dirty_since = None
            self.discard()

    @property
    def save_after_s(self) -> float:
        """Seconds after the first unsaved change at which a save is due: early enough
        that a tick's delay and the write still finish within ``interval_s``."""
        return max(0.0, self.interval_s - self.tick_s - WRITE_BUDGET_S)

    def due(self, now: float | None = None) -> bool:
        t = self.clock() if now is None else now
        return self._dirty_since is not None and t - self._dirty_since >= self.save_after_s

    def maybe_save(self, now: float | None = None) -> bool:
        """Write the recovery file when changes are ``interval_s`` old. True if written."""
        with self._lock:
            if not self.due(now):
                return False
            self.save_now()
            return True

    def save_now(self) -> Path:
        """Write the recovery file now and reset the dirty clock."""
        with self._lock:
            plan = self.plan_provider()
            self.folder.mkdir(parents=True, exist_ok=True)
            now = time.time()
            data = {
                "irplan_recovery": 1,
                "plan_path": str(self.plan_path) if self.plan_path else None,
                "file_dir": plan.file_dir or (str(self.plan_path.parent) if self.plan_path
                                              else ""),
                "saved_at": _dt.datetime.fromtimestamp(now, _dt.UTC).isoformat(
                    timespec="seconds").replace("+00:00", "Z"),
                "saved_at_epoch": now,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "plan": plan_to_dict(plan),
            }
            try:
                text = json.dumps(data, indent=1, allow_nan=False)
            except ValueError:
                raise InputError("autosave: the plan holds NaN or infinite numbers") from None
            atomic_write_text(self.path, text)
            self._owned.add(self.path)
            self._dirty_since = None
            self.last_saved = now
            self.saves += 1
            return self.path

    def discard(self) -> None:
        """Delete this session's recovery file (after a real save or a clean close);
        another session's file is left alone."""
        with self._lock:
            if self.path in self._owned:
                self.path.unlink(missing_ok=True)
                self._owned.discard(self.path)

    # -- optional background thread (for apps without their own timer)
    def start(self, tick_s: float | None = None) -> None:
        """Tick every ``tick_s`` (default: the autosaver's own ``tick_s``) in a thread."""
        if self._thread is not None:
            return
        if tick_s is None:
            tick_s = self.tick_s
        else:
            self.tick_s = float(tick_s)
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(tick_s):
                try:
                    self.maybe_save()
                except Exception:  # noqa: BLE001 - autosave must never kill the app
                    pass

        self._thread = threading.Thread(target=loop, name="irplan-autosave", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


@dataclass
class RecoveryEntry:
    """A recovery file found at start-up."""

    path: Path
    plan_path: Path | None
    file_dir: str
    saved_at: str
    saved_at_epoch: float
    pid: int
    host: str
    needles: int
    modality: str

    @property
    def writer_alive(self) -> bool:
        """True when the process that wrote it still runs on this host (not a crash)."""
        if self.host != socket.gethostname():
            return False
        if self.pid == os.getpid():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        name = str(self.plan_path) if self.plan_path else "an unsaved plan"
        return (f"{name}: {self.modality}, {self.needles} needle(s), autosaved "
                f"{self.saved_at}")


def read_recovery_file(path: str | Path) -> tuple[RecoveryEntry, dict]:
    """Parse a recovery file; InputError naming it when damaged."""
    p = Path(path)
    try:
        data = json.loads(p.read_text("utf-8"))
        if not isinstance(data, dict) or data.get("irplan_recovery") != 1:
            raise ValueError("not an IRPlan recovery file")
        plan = data["plan"]
        entry = RecoveryEntry(
            path=p,
            plan_path=Path(data["plan_path"]) if data.get("plan_path") else None,
            file_dir=str(data.get("file_dir") or ""),
            saved_at=str(data.get("saved_at", "")),
            saved_at_epoch=float(data.get("saved_at_epoch", 0.0)),
            pid=int(data.get("pid", -1)),
            host=str(data.get("host", "")),
            needles=len(plan.get("needles", [])) if isinstance(plan, dict) else 0,
            modality=str(plan.get("modality", "?")) if isinstance(plan, dict) else "?",
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise InputError(f"{p}: damaged recovery file ({str(exc)[:200]})") from None
    return entry, plan


def find_recoverable(folder: str | Path | None = None, include_live: bool = False
                     ) -> list[RecoveryEntry]:
    """Recovery files left by crashed sessions, newest first. Files whose writer is still
    running are skipped unless ``include_live``; damaged files are skipped (see
    :func:`damaged_recovery_files`)."""
    d = Path(folder) if folder else recovery_dir()
    if not d.is_dir():
        return []
    out = []
    for p in d.glob(f"*{RECOVERY_SUFFIX}"):
        try:
            entry, _ = read_recovery_file(p)
        except InputError:
            continue
        if include_live or not entry.writer_alive:
            out.append(entry)
    return sorted(out, key=lambda e: -e.saved_at_epoch)


def damaged_recovery_files(folder: str | Path | None = None) -> list[str]:
    """One message per unreadable recovery file (so the app can tell the user)."""
    d = Path(folder) if folder else recovery_dir()
    msgs = []
    for p in sorted(d.glob(f"*{RECOVERY_SUFFIX}")) if d.is_dir() else []:
        try:
            read_recovery_file(p)
        except InputError as exc:
            msgs.append(str(exc))
    return msgs


def recover(entry: RecoveryEntry | str | Path) -> Plan:
    """The autosaved plan (its relative paths resolved against its original folder).
    The recovered plan is not yet saved to its file: the app should mark it modified."""
    path = entry.path if isinstance(entry, RecoveryEntry) else Path(entry)
    info, plan_dict = read_recovery_file(path)
    return plan_from_dict(plan_dict, f"{path}: plan", file_dir=info.file_dir)


def discard(entry: RecoveryEntry | str | Path) -> None:
    """Delete a recovery file (the user declined recovery, or recovered and saved)."""
    path = entry.path if isinstance(entry, RecoveryEntry) else Path(entry)
    path.unlink(missing_ok=True)
