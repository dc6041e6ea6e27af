"""Start and stop a real Orthanc DICOM server for the PACS tests (loopback only).

The server gets its own JSON configuration, storage and index folders in the test's
temporary directory, free loopback ports for DICOM and HTTP, no plugins, no remote
access and no authentication. The test client's AE title is registered as a DICOM
modality (127.0.0.1 and the client's own storage port) so C-FIND/C-GET/C-MOVE are allowed.
Stopped by its PID in :meth:`OrthancServer.stop`. Tests skip when Orthanc is not installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ORTHANC_BIN = Path("/usr/sbin/Orthanc")
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass
class OrthancServer:
    """One Orthanc process. ``client_aet``/``client_port`` are the test client's."""

    workdir: Path
    aet: str = "ORTHANCTEST"
    client_aet: str = "IRPLANTEST"
    client_port: int = 0
    dicom_port: int = 0
    http_port: int = 0
    process: subprocess.Popen | None = field(default=None, repr=False)

    def config(self) -> dict[str, Any]:
        return {
            "Name": "IRPlanTestOrthanc",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "StorageCompression": False,
            "Plugins": [],
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "SslEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True,
            "DicomCheckModalityHost": False,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomScpTimeout": 10,
            "DicomScuTimeout": 5,
            "DicomAssociationCloseDelay": 0,
            "DicomThreadsCount": 2,
            "ConcurrentJobs": 1,
            "SaveJobs": False,
            "StableAge": 60,
            "HttpTimeout": 10,
            "DicomModalities": {
                "irplantest": {
                    "AET": self.client_aet, "Host": LOOPBACK, "Port": self.client_port,
                    "AllowEcho": True, "AllowFind": True, "AllowGet": True,
                    "AllowMove": True, "AllowStore": True,
                },
            },
        }

    @property
    def http_url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def start(self, timeout_s: float = 30.0) -> OrthancServer:
        """Write the config, start Orthanc and wait until HTTP /system answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for sub in ("storage", "index"):
            (self.workdir / sub).mkdir(exist_ok=True)
        self.dicom_port = self.dicom_port or free_port()
        self.http_port = self.http_port or free_port()
        self.client_port = self.client_port or free_port()
        cfg = self.workdir / "orthanc.json"
        cfg.write_text(json.dumps(self.config(), indent=2), "utf-8")
        log = open(self.workdir / "orthanc.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([str(ORTHANC_BIN), str(cfg)], stdout=log,
                                        stderr=subprocess.STDOUT, cwd=self.workdir)
        self._log = log
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}: "
                                   f"{self.log_text()[-2000:]}")
            try:
                info = self.http_get("/system")
                if info.get("DicomAet") == self.aet and self._dicom_port_open():
                    return self
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer on {self.http_url} within {timeout_s} s")

    def _dicom_port_open(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.dicom_port), timeout=1.0):
                return True
        except OSError:
            return False

    def http_get(self, path: str) -> Any:
        """GET a JSON resource of the REST API (loopback only)."""
        with urllib.request.urlopen(self.http_url + path, timeout=10) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def log_text(self) -> str:
        p = self.workdir / "orthanc.log"
        return p.read_text("utf-8", errors="replace") if p.exists() else ""

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections open but nothing answers."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL after 10 s)."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._log.close()
        self.process = None
