"""The journal of finished cases behind ``--resume`` (issue 18).

A case's key is a content hash (SHA-256, hex): the bytes of every input file (a DICOM
folder: every regular file under it, by relative path), which role each input plays, the
options that change the result and IRPlan's version. Paths and case ids are not in the key
(renaming or moving a case keeps its results; changing one byte of an input redoes it).
An input that is not a regular file or folder (a FIFO, a device) gives no key: that case
is always recomputed.

The journal is a folder (``RESULTS.csv.journal/``) with one JSON file per finished case,
named ``<key>.json`` (no identifier in any file name), each written atomically
(:mod:`irplan.io.atomic_write`: temp file, fsync, rename, fsync of the folder) as soon as
the case finishes, so a ``kill -9`` of the batch loses at most the cases then running.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SCHEMA = 1
CHUNK = 1 << 20


@functools.cache
def _version() -> str:
    try:
        from importlib.metadata import version

        return version("irplan")
    except Exception:  # noqa: BLE001 - a source checkout without metadata
        return "unknown"


def _hash_file(h: Any, path: Path) -> None:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)


def _hash_path(h: Any, path: Path) -> bool:
    """Feed ``path``'s content into ``h``; False when it cannot be keyed (not a regular
    file or folder, or a FIFO/device inside a folder). A missing path is hashed as
    missing (the case will fail and its error is journalled like a result)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        h.update(b"<missing>")
        return True
    except OSError:
        return False
    if stat.S_ISREG(st.st_mode):
        h.update(b"<file>")
        _hash_file(h, path)
        return True
    if not stat.S_ISDIR(st.st_mode):
        return False
    h.update(b"<folder>")
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            try:
                mode = p.stat().st_mode
            except OSError:
                return False
            if not stat.S_ISREG(mode):
                return False
            rel = p.relative_to(path).as_posix().encode()
            h.update(len(rel).to_bytes(4, "little") + rel)
            _hash_file(h, p)
    return True


def path_digest(path: str, cache: dict[str, bytes | None] | None = None) -> bytes | None:
    """SHA-256 of a file's or folder's content (None: cannot be keyed). ``cache`` (path ->
    digest) spares hashing a planning CT shared by several lesions twice in one run."""
    if cache is not None and path in cache:
        return cache[path]
    h = hashlib.sha256()
    digest = h.digest() if _hash_path(h, Path(path)) else None
    if cache is not None:
        cache[path] = digest
    return digest


def input_key(files: Mapping[str, str | None], options: Mapping[str, Any],
              cache: dict[str, bytes | None] | None = None) -> str | None:
    """The content key of one case: ``files`` role -> path (None: not given), ``options``
    the JSON-able settings that change the result. None when an input cannot be keyed."""
    h = hashlib.sha256()
    h.update(json.dumps({"schema": SCHEMA, "irplan": _version(), "options": options},
                        sort_keys=True).encode())
    for role in sorted(files):
        h.update(f"\0{role}\0".encode())
        path = files[role]
        if not path:
            h.update(b"<none>")
            continue
        digest = path_digest(path, cache)
        if digest is None:
            return None
        h.update(digest)
    return h.hexdigest()


class Journal:
    """One JSON record per finished case, in ``folder`` (created on first write)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def get(self, key: str | None) -> dict[str, Any] | None:
        """The record of ``key``, or None (no key, not journalled, unreadable)."""
        if not key:
            return None
        try:
            rec = json.loads((self.folder / f"{key}.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) and rec.get("key") == key else None

    def put(self, key: str | None, record: Mapping[str, Any]) -> None:
        """Write ``record`` for ``key`` atomically (nothing when there is no key)."""
        from irplan.io.atomic_write import atomic_write_text

        if not key:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / f"{key}.json",
                          json.dumps({"key": key, **record}, allow_nan=True) + "\n")

    def count(self) -> int:
        return len(list(self.folder.glob("*.json"))) if self.folder.is_dir() else 0
