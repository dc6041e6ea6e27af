"""Read the file list of a DICOMDIR (DICOM media directory, PS3.10 / PS3.3 F).

Only the referenced image files are returned; the scan reads their headers itself, so the
DICOMDIR records are never trusted for geometry. Referenced File IDs stay on the media
(PS3.10 8.5: a relative path of components below the DICOMDIR's folder): an absolute
path, a ``..`` component, or a symbolic link leading out of that folder is refused with
an InputError naming the DICOMDIR.
"""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from irplan.planning.errors import InputError

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage


def is_dicomdir(path: str | Path) -> bool:
    """True when ``path`` is a DICOMDIR file (by its SOP class, or its name and records)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["DirectoryRecordSequence"])
    except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, KeyError):
        return False
    sop = str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "")) if hasattr(ds, "file_meta") else ""
    return sop == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds


def dicomdir_files(path: str | Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files referenced by a DICOMDIR.

    Returns ``(existing_files, missing)`` where ``missing`` lists ``(path, reason)`` for
    referenced files that are not on disk. Raises InputError when the DICOMDIR is unreadable.
    """
    p = Path(path)
    try:
        ds = pydicom.dcmread(p)
    except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, KeyError) as exc:
        raise InputError(f"{p}: cannot read DICOMDIR ({exc})") from None
    records = ds.get("DirectoryRecordSequence")
    if records is None:
        raise InputError(f"{p}: not a DICOMDIR (no Directory Record Sequence)")
    root = p.parent
    root_real = root.resolve()
    found: list[Path] = []
    missing: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for rec in records:
        ref = rec.get("ReferencedFileID")
        if ref is None:
            continue
        parts = [str(x) for x in ([ref] if isinstance(ref, str) else list(ref))]
        parts = _check_on_media(p, parts)
        f = root.joinpath(*parts)
        if not f.exists():
            # media written on case-insensitive file systems: try a case-insensitive match
            f = _case_insensitive(root, parts) or f
        if f.exists() and not f.resolve().is_relative_to(root_real):
            raise InputError(f"{p}: referenced file {'/'.join(parts)!r} leads outside the "
                             f"media folder {root} (symbolic link); refused")
        if f in seen:
            continue
        seen.add(f)
        if f.is_file():
            found.append(f)
        else:
            missing.append((f, "listed in the DICOMDIR but missing on disk"))
    return found, missing


def _check_on_media(dicomdir: Path, parts: list[str]) -> list[str]:
    """The path components of a Referenced File ID below the media folder; InputError
    when it is absolute (leading separator, drive letter) or climbs out with ``..``."""
    segs: list[str] = []
    absolute = False
    for x in parts:
        if x.startswith(("/", "\\")) or x[1:2] == ":" or "\0" in x:
            absolute = True
        segs.extend(s for s in re.split(r"[/\\]", x) if s not in ("", "."))
    if absolute or ".." in segs or not segs:
        shown = "\\".join(parts)
        raise InputError(f"{dicomdir}: DICOMDIR references {shown!r}, a path outside the "
                         "media (absolute or with '..'); refused")
    return segs


def _case_insensitive(root: Path, parts: list[str]) -> Path | None:
    cur = root
    for part in parts:
        if not cur.is_dir():
            return None
        match = next((c for c in cur.iterdir() if c.name.lower() == part.lower()), None)
        if match is None:
            return None
        cur = match
    return cur
