"""IRPlan's one atomic file writer: every output (plan, PDF, DICOM, masks, CSV, JSON, PNG,
autosave) goes through :func:`atomic_write`.

Guarantee: the target path holds either its previous content or the complete new content,
never a partial file, also after ``kill -9`` or power loss. The new content is written to
a hidden temporary file in the target's folder (``.<name>.<random>.tmp``), flushed and
fsynced, then renamed over the target (``os.replace``, atomic on POSIX within one file
system), and the folder is fsynced. On any failure the temporary file is removed and the
previous file is left untouched. A process killed mid-write (``kill -9``) leaves the
target intact and a hidden ``.<name>.*.tmp`` file, which the next successful write of the
same target deletes (when older than a minute). A replaced file keeps its permission
bits; a new file gets ``0666 & ~umask`` (usually 0644), as ``open()`` would give it.

Errors a user can fix (no space left, read-only folder, permission denied, the target is
a folder, a parent is a file, name too long) become one-line :class:`InputError` s
naming the path.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from irplan.planning.errors import InputError

TMP_SUFFIX = ".tmp"
STALE_TEMP_S = 60.0   # a temp file this old beside a target is a killed writer's leftover

_REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "is a folder",
    errno.ENOTDIR: "a parent of the path is a file, not a folder",
    errno.ENAMETOOLONG: "file name too long",
    errno.EEXIST: "a file is in the way of the folder",
    errno.EFBIG: "file too large",
    errno.EIO: "input/output error",
}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def os_error_message(path: str | Path, exc: OSError, what: str = "cannot write") -> str:
    """One line naming ``path`` and why an OS call failed (no errno numbers, no paths
    repeated twice)."""
    why = _REASONS.get(exc.errno or -1) or exc.strerror or str(exc) or type(exc).__name__
    return f"{path}: {what} ({why})"


def output_error(path: str | Path, exc: OSError, what: str = "cannot write") -> InputError:
    """The :class:`InputError` for a failed write of ``path``."""
    return InputError(os_error_message(path, exc, what))


def check_output_path(path: str | Path) -> Path:
    """Refuse early (InputError) an output path that is a folder or whose parent is a file;
    create missing parent folders. Returns the path."""
    p = Path(path)
    if str(path) == "" or p.name == "":
        raise InputError(f"{path!r}: not a file name")
    if p.is_dir():
        raise InputError(f"{p}: cannot write (is a folder)")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{p}: cannot write ({parent} is a file, not a folder)")
            break
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(p, exc, "cannot create the folder") from None
    return p


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename is still atomic
    finally:
        os.close(fd)


def _target_mode(p: Path) -> int:
    try:
        return stat.S_IMODE(p.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[Path], object], *,
                 what: str = "cannot write", keep_suffix: bool = True) -> Path:
    """Write ``path`` atomically through ``write(tmp_path)``, a callback that creates the
    complete file at ``tmp_path`` (a hidden name in the same folder; it keeps the target's
    suffixes when ``keep_suffix``, so format-by-suffix writers such as SimpleITK work;
    else it ends in ``.tmp``).

    The callback may raise: the temporary file is removed and the exception propagates
    (OSError become InputError naming ``path``). Returns ``path``.
    """
    p = check_output_path(path)
    folder = p.parent
    suffix = "".join(p.suffixes[-2:]) if keep_suffix else ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=f"{TMP_SUFFIX}{suffix}",
                                   dir=folder)
        os.close(fd)
    except OSError as exc:
        raise output_error(p, exc) from None
    mode = _target_mode(p)
    try:
        try:
            write(Path(tmp))
        except (OSError, RuntimeError, InputError):
            if _disk_full(folder):
                raise OSError(errno.ENOSPC, "no space left") from None
            raise
        # some writers (ITK, VTK) report a failed write only on their own stderr: a full
        # file system after the write means the file may be cut short
        if _disk_full(folder):
            raise OSError(errno.ENOSPC, "no space left")
        if not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise InputError(f"{p}: {what} (the writer produced an empty file)")
        os.chmod(tmp, mode)
        _fsync_path(tmp)
        os.replace(tmp, p)
    except OSError as exc:
        _remove(tmp)
        raise output_error(p, exc) from None
    except RuntimeError as exc:  # SimpleITK / VTK writers report I/O errors like this
        _remove(tmp)
        text = str(exc).strip()
        low = text.lower()
        if "no space" in low or "errno 28" in low:
            raise InputError(f"{p}: {what} (no space left on the device)") from None
        last = text.splitlines()[-1] if text else type(exc).__name__
        raise InputError(f"{p}: {what} ({last[:200]})") from None
    except BaseException:
        _remove(tmp)
        raise
    _fsync_folder(folder)
    _remove_stale_temps(p)
    return p


def _disk_full(folder: Path) -> bool:
    """True when the file system holding ``folder`` has no free block left for this
    process (root may use the blocks reserved for it)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) == 0


def _remove_stale_temps(p: Path) -> None:
    """Delete temporary files of earlier writes of ``p`` that a killed process left
    (older than STALE_TEMP_S, so a concurrent writer's temp file is never touched)."""
    now = time.time()
    try:
        for q in p.parent.glob(f".{glob.escape(p.name)}.*{TMP_SUFFIX}*"):
            try:
                if now - q.stat().st_mtime > STALE_TEMP_S:
                    q.unlink()
            except OSError:
                pass
    except OSError:
        pass


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see module doc)."""
    def _w(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()

    return atomic_write(path, _w, keep_suffix=False) if data else _atomic_empty(path)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8",
                      newline: str | None = None) -> Path:
    """Write ``text`` to ``path`` atomically (see module doc)."""
    def _w(tmp: Path) -> None:
        with open(tmp, "w", encoding=encoding, newline=newline) as fh:
            fh.write(text)
            fh.flush()

    return atomic_write(path, _w, keep_suffix=False) if text else _atomic_empty(path)


def _atomic_empty(path: str | Path) -> Path:
    """An empty file (the one case where an empty result is intended)."""
    p = check_output_path(path)
    mode = _target_mode(p)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=TMP_SUFFIX, dir=p.parent)
        os.close(fd)
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except OSError as exc:
        raise output_error(p, exc) from None
    return p


def leftover_temp_files(folder: str | Path) -> list[Path]:
    """Temporary files of this writer in ``folder`` (tests: none may survive a write)."""
    d = Path(folder)
    return sorted(q for q in d.glob(".*") if TMP_SUFFIX in q.name) if d.is_dir() else []
