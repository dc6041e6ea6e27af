"""Import modules in a background thread, so that building the workflow panels later on
the GUI thread does not wait for scipy, pyamg or highdicom to load (0.3-0.6 s each panel
on a 2-core machine). Python releases the GIL every few milliseconds while a module body
runs, so the GUI thread keeps answering meanwhile."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable


class Preloader:
    """Imports ``modules`` in order in a daemon thread; :meth:`ready` tells whether one
    has been imported (or failed to: the GUI thread then imports it and sees the error)."""

    def __init__(self, modules: Iterable[str]) -> None:
        self.modules = list(modules)
        self._done: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="irplan-preload", daemon=True)

    def start(self) -> Preloader:
        self._thread.start()
        return self

    def _run(self) -> None:
        for name in self.modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - reported when the GUI imports it itself
                pass
            with self._lock:
                self._done.add(name)

    def ready(self, name: str) -> bool:
        with self._lock:
            return name in self._done or name not in self.modules
