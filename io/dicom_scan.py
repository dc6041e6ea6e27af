"""Find DICOM image series under a folder, a DICOMDIR or a single file (headers only).

Frame: DICOM patient coordinates (LPS, mm). For each series the scan works out the grid
the loader will build: ``size`` (columns, rows, slices), ``spacing_mm`` (column spacing,
row spacing, median slice spacing along the normal), ``origin_lps_mm`` (ImagePositionPatient
of the first slice along the normal) and ``direction`` (columns: row cosine, column cosine,
slice normal n = row x col). Slices are ordered by ``dot(IPP, n)``, never by file name or
InstanceNumber. Questionable geometry (gaps, uneven spacing, tilt, duplicates, mixed
orientations) is reported in ``SeriesInfo.warnings``; :mod:`irplan.io.dicom_load` decides
whether it can load it.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from irplan.io.dicomdir import DICOMDIR_SOP_CLASS, dicomdir_files, is_dicomdir
from irplan.planning.errors import CancelledError, InputError

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]

# Two slices closer than this along the normal (and in-plane) share one position.
DUPLICATE_TOL_MM = 0.01
# A stack is uniform when every slice lies within this distance (mm, along the normal) of an
# evenly spaced grid from its first to its last slice: far below any CT voxel size, above
# the rounding of ImagePositionPatient strings. Otherwise it is resampled (and warned).
UNIFORM_TOL_MM = 0.05
# A step larger than this many median steps is a gap (missing slices).
GAP_FACTOR = 1.5
# Transfer syntaxes that are always lossy (PS3.5 A.4): JPEG baseline/extended, JPEG-LS
# near-lossless. JPEG 2000 (.91) may be either: LossyImageCompression says which.
LOSSY_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81"}
# Warnings of one kind listed per series before they are summarised.
MAX_LISTED = 3
# Modalities that carry pixel data but are not images to plan on (listed, never loaded).
NON_IMAGE_MODALITIES = {"SEG": "a segmentation (import it as structures)",
                        "RTDOSE": "a radiotherapy dose grid"}
# In-plane drift of slice positions off the normal line tolerated as rounding (mm).
TILT_TOL_MM = 0.05

_READ_ERRORS = (InvalidDicomError, OSError, ValueError, EOFError, TypeError, KeyError,
                AttributeError, IndexError, NotImplementedError, OverflowError)

# Keywords of SeriesDescription / ContrastBolusAgent that name a contrast phase.
# Whole words only (\b), first match wins: "late arterial" is arterial, "plate" is nothing.
_PHASE_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("non-contrast", re.compile(r"\b(nativ\w*|non[- ]?contrast|unenhanced|plain|pre[- ]?contrast|"
                                r"nect|ohne km)\b|w/o\b")),
    ("arterial", re.compile(r"\b(arterial|arteriell\w*|art|hap|early art\w*|late art\w*)\b")),
    ("portal venous", re.compile(r"\b(portal\w*|pv|pvp|ven(ous|ös|oes|ose|ös)?|venös\w*|"
                                 r"portalvenös\w*)\b")),
    ("delayed", re.compile(r"\b(delay\w*|late|equilibrium|spät\w*|spaet\w*|transitional)\b")),
]


@dataclass
class SkippedFile:
    """A file the scan did not use, with the reason in plain words."""

    path: Path
    reason: str


@dataclass
class FrameRef:
    """One 2-D image (a file, or a frame of a multi-frame file) of a series."""

    path: Path
    frame: int | None           # frame index in a multi-frame file, None for single-frame
    position_lps_mm: np.ndarray  # ImagePositionPatient (LPS mm)
    slope: float = 1.0
    intercept: float = 0.0
    instance_number: int | None = None
    pixel_offset: int | None = None  # byte offset of this frame's native pixels in the file
    sop_instance_uid: str = ""


@dataclass
class SeriesInfo:
    """One loadable stack of 2-D images (a series, or a sub-stack of a mixed series).

    Geometry fields describe the grid :func:`irplan.io.dicom_load.load_series` builds,
    in LPS mm; vectors are (x=i=column, y=j=row, z=k=slice).
    """

    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    modality: str
    description: str
    patient_id: str
    patient_name: str
    study_date: str
    phase: str | None
    files: list[Path]
    size: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_lps_mm: np.ndarray
    direction: np.ndarray
    warnings: list[str] = field(default_factory=list)
    is_localizer: bool = False
    frames: list[FrameRef] = field(default_factory=list)  # sorted along the slice normal
    rows: int = 0
    columns: int = 0
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0)   # DICOM order: (row, column) spacing
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    series_number: int | None = None
    transfer_syntax_uid: str = ""
    transfer_syntax_name: str = ""
    decodable: bool = True
    multiframe: bool = False
    window_center: float | None = None
    window_width: float | None = None
    bits_stored: int = 16
    bits_allocated: int = 16
    pixel_representation: int = 0
    samples_per_pixel: int = 1
    sub_stack: int | None = None   # index when a mixed series was split, else None
    padding_value: float | None = None  # PixelPaddingValue after rescale (e.g. -3024 HU)
    geometry: StackGeometry | None = None

    @property
    def slices(self) -> int:
        return len(self.frames)

    @property
    def label(self) -> str:
        """Short human name: 'CT 'desc' (uid ...)'."""
        desc = f" '{self.description}'" if self.description else ""
        sub = f" stack {self.sub_stack + 1}" if self.sub_stack is not None else ""
        return f"{self.modality}{desc} (series {self.series_uid}{sub})"

    @property
    def orientation_name(self) -> str:
        return orientation_name(self.direction)

    def to_json(self) -> dict[str, Any]:
        """The `irplan info --json` object of this series."""
        return {
            "series_uid": self.series_uid,
            "study_uid": self.study_uid,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "modality": self.modality,
            "description": self.description,
            "series_number": self.series_number,
            "patient_id": self.patient_id,
            "patient_name": self.patient_name,
            "study_date": self.study_date,
            "phase": self.phase,
            "slices": self.slices,
            "size": [int(v) for v in self.size],
            "spacing_mm": [float(v) for v in self.spacing_mm],
            "origin_lps_mm": [float(v) for v in self.origin_lps_mm],
            "direction": [float(v) for v in np.asarray(self.direction).reshape(-1)],
            "orientation": self.orientation_name,
            "transfer_syntax": self.transfer_syntax_name or self.transfer_syntax_uid,
            "multiframe": self.multiframe,
            "is_localizer": self.is_localizer,
            "sub_stack": self.sub_stack,
            "window_center": self.window_center,
            "window_width": self.window_width,
            "warnings": list(self.warnings),
            "files": len(self.files),
        }


@dataclass
class ScanResult:
    """All series found and every file that was skipped (with the reason)."""

    root: Path
    series: list[SeriesInfo] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def ct_candidates(self) -> list[SeriesInfo]:
        """CT series that can be planned on (not localizers, >= 2 slices), most slices first."""
        c = [s for s in self.series
             if s.modality == "CT" and not s.is_localizer and s.slices >= 2]
        return sorted(c, key=lambda s: -s.slices)


# --------------------------------------------------------------------------- geometry
@dataclass
class StackGeometry:
    """Geometry of a stack of parallel slices, sorted along the normal (LPS mm)."""

    order: np.ndarray            # indices into the input positions, sorted along n
    normal: np.ndarray           # n = row cosine x column cosine
    distances_mm: np.ndarray     # dot(IPP, n) of the sorted slices
    steps_mm: np.ndarray         # differences of consecutive distances
    spacing_mm: float            # median step (0 when < 2 distinct positions)
    inplane_offsets_mm: np.ndarray  # (N, 2) drift of each sorted slice along (row, col)
                                 # cosines relative to the first one
    tilt_deg: float              # angle between the stacking line and the normal
    duplicates: list[list[int]]  # groups (sorted indices) sharing one position
    gaps: list[tuple[int, float, int]]  # (sorted index before gap, step mm, missing count)
    nonuniform: bool             # slices off an even grid by > UNIFORM_TOL_MM (or gaps
                                 # plus uneven regular steps)
    direction: np.ndarray        # columns: row cosine, column cosine, n


def orientation_vectors(iop: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row cosine, column cosine and unit normal from ImageOrientationPatient.

    Raises ValueError for cosines that are not unit length or not perpendicular.
    """
    try:
        key = tuple(float(x) for x in iop)
    except (TypeError, ValueError):
        raise ValueError(f"ImageOrientationPatient must be 6 numbers, got {iop!r}") from None
    r, c, n = _orientation_cached(key)
    return np.array(r), np.array(c), np.array(n)


@lru_cache(maxsize=256)
def _orientation_cached(iop: tuple[float, ...]) -> tuple[tuple[float, ...], ...]:
    v = np.asarray(iop, dtype=np.float64)
    if v.shape != (6,) or not np.all(np.isfinite(v)):
        raise ValueError(f"ImageOrientationPatient must be 6 numbers, got {list(iop)}")
    row, col = v[:3], v[3:]
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if abs(nr - 1) > 1e-3 or abs(nc - 1) > 1e-3:
        raise ValueError(f"ImageOrientationPatient cosines are not unit vectors "
                         f"(lengths {nr:.4f}, {nc:.4f})")
    row, col = row / nr, col / nc
    if abs(float(row @ col)) > 1e-3:
        raise ValueError(f"ImageOrientationPatient row and column are not perpendicular "
                         f"(dot {float(row @ col):.4f})")
    # make exactly orthonormal (DS rounding) keeping the row direction
    col = col - (col @ row) * row
    col /= np.linalg.norm(col)
    n = np.cross(row, col)
    return tuple(row), tuple(col), tuple(n)


def analyse_stack(positions_lps_mm: np.ndarray, iop: Any) -> StackGeometry:
    """Sort slice positions along the normal and describe spacing, gaps, tilt, duplicates."""
    row, col, n = orientation_vectors(iop)
    pos = np.asarray(positions_lps_mm, dtype=np.float64).reshape(-1, 3)
    d = pos @ n
    order = np.argsort(d, kind="stable")
    d_sorted = d[order]
    p_sorted = pos[order]
    rel = p_sorted - p_sorted[0]
    inplane = np.stack([rel @ row, rel @ col], axis=1)
    steps = np.diff(d_sorted)
    # duplicates: same position along n and in-plane
    duplicates: list[list[int]] = []
    group = [0]
    for k in range(1, len(d_sorted)):
        same = (abs(steps[k - 1]) < DUPLICATE_TOL_MM
                and np.linalg.norm(inplane[k] - inplane[group[-1]]) < DUPLICATE_TOL_MM)
        if same:
            group.append(k)
        else:
            if len(group) > 1:
                duplicates.append(group)
            group = [k]
    if len(group) > 1:
        duplicates.append(group)
    real_steps = steps[steps >= DUPLICATE_TOL_MM]
    spacing = float(np.median(real_steps)) if real_steps.size else 0.0
    gaps: list[tuple[int, float, int]] = []
    nonuniform = False
    if spacing > 0:
        gaps = [(k, float(st), int(round(st / spacing)) - 1) for k, st in enumerate(steps)
                if st > GAP_FACTOR * spacing]
        unique_d = d_sorted[np.concatenate([[True], steps >= DUPLICATE_TOL_MM])]
        if gaps:
            regular = real_steps[real_steps <= GAP_FACTOR * spacing]
            nonuniform = bool(np.any(np.abs(regular - spacing) > UNIFORM_TOL_MM))
        else:
            # uniform when every slice lies within UNIFORM_TOL_MM of an evenly spaced grid
            # from the first to the last slice; that grid's step is the spacing
            m = len(unique_d) - 1
            fit = (unique_d[-1] - unique_d[0]) / m
            resid = np.abs(unique_d - (unique_d[0] + np.arange(m + 1) * fit)).max()
            if resid <= UNIFORM_TOL_MM:
                spacing = float(fit)
            else:
                nonuniform = True
    # tilt: in-plane drift of the stacking line relative to the normal
    span = d_sorted[-1] - d_sorted[0]
    drift = inplane[-1] if len(inplane) else np.zeros(2)
    tilt = float(np.degrees(np.arctan2(np.linalg.norm(drift), span))) if span > 0 else 0.0
    direction = np.column_stack([row, col, n])
    return StackGeometry(order, n, d_sorted, steps, spacing, inplane, tilt, duplicates,
                         gaps, nonuniform, direction)


def uniform_slice_count(span_mm: float, spacing_mm: float) -> int:
    """Slices of a uniform grid with ``spacing_mm`` that stays inside a stack ``span_mm`` long
    (the grid never extends past the last measured slice)."""
    return int(np.floor(span_mm / spacing_mm + 1e-3)) + 1


def orientation_name(direction: np.ndarray) -> str:
    """'axial', 'coronal', 'sagittal' or 'oblique' from the slice normal (3rd column)."""
    n = np.abs(np.asarray(direction, dtype=np.float64).reshape(3, 3)[:, 2])
    if n.max() < 1 - 1e-4:
        return "oblique"
    return ("sagittal", "coronal", "axial")[int(np.argmax(n))]


def geometry_warnings(geo: StackGeometry, frames: list[FrameRef]) -> list[str]:
    """Plain-language warnings for a sorted stack (file names and positions included)."""
    out: list[str] = []
    if orientation_name(geo.direction) == "oblique":
        out.append("oblique slices (ImageOrientationPatient is not axial/coronal/sagittal); "
                   "the volume keeps the true oblique direction")
    for grp in geo.duplicates[:MAX_LISTED]:
        names = ", ".join(_frame_name(frames[i]) for i in grp[:6])
        more = f" and {len(grp) - 6} more" if len(grp) > 6 else ""
        out.append(f"{len(grp)} images share the position {geo.distances_mm[grp[0]]:.2f} mm "
                   f"along the slice normal: {names}{more}")
    if len(geo.duplicates) > MAX_LISTED:
        rest = geo.duplicates[MAX_LISTED:]
        out.append(f"... and {len(rest)} more positions hold repeated images "
                   f"({sum(len(g) for g in rest)} images)")
    for k, step, missing in geo.gaps:
        out.append(f"gap: about {missing} slice(s) missing between slice {k} "
                   f"({_frame_name(frames[k])}, {geo.distances_mm[k]:.2f} mm) and slice "
                   f"{k + 1} ({_frame_name(frames[k + 1])}, {geo.distances_mm[k + 1]:.2f} mm): "
                   f"step {step:.2f} mm, expected {geo.spacing_mm:.2f} mm")
    if geo.nonuniform:
        real = geo.steps_mm[geo.steps_mm >= DUPLICATE_TOL_MM]
        out.append(f"non-uniform slice spacing: steps from {real.min():.3f} to "
                   f"{real.max():.3f} mm (median {geo.spacing_mm:.3f} mm)")
    max_drift = float(np.abs(geo.inplane_offsets_mm).max()) if geo.inplane_offsets_mm.size else 0.0
    if max_drift > TILT_TOL_MM:
        out.append(f"gantry tilt: slice positions drift {max_drift:.2f} mm in-plane, "
                   f"{geo.tilt_deg:.2f} deg off the slice normal")
    return out


def _frame_name(f: FrameRef) -> str:
    return f.path.name if f.frame is None else f"{f.path.name}[frame {f.frame}]"


# --------------------------------------------------------------------------- scan
def scan_dicom(path: str | Path, progress: ProgressFn | None = None,
               cancel: CancelFn | None = None) -> ScanResult:
    """Scan a folder tree, a DICOMDIR or one file for DICOM image series (headers only).

    ``progress(done, total)`` is called as files are read; ``cancel()`` returning True
    raises :class:`CancelledError`. Raises InputError when ``path`` does not exist.
    """
    root = Path(path)
    if not root.exists():
        raise InputError(f"{root}: no such file or folder")
    result = ScanResult(root=root)
    if root.is_dir():
        files = _walk(root)
    elif is_dicomdir(root):
        files, missing = dicomdir_files(root)
        result.skipped.extend(SkippedFile(p, r) for p, r in missing)
    else:
        files = [root]
    headers: list[tuple[Path, Dataset]] = []
    total = len(files)
    for i, f in enumerate(files):
        if cancel is not None and cancel():
            raise CancelledError(f"scan of {root} cancelled")
        try:
            with warnings.catch_warnings():  # pydicom's VR warnings: the reason says enough
                warnings.simplefilter("ignore")
                ds, reason = _read_header(f)
        except Exception as exc:  # noqa: BLE001 - one odd file must never stop the scan
            ds, reason = None, f"unreadable ({type(exc).__name__}: {exc})"
        if ds is None:
            result.skipped.append(SkippedFile(f, reason))
        else:
            headers.append((f, ds))
        if progress is not None:
            progress(i + 1, total)
    result.series = _group(headers, result.skipped)
    result.series.sort(key=lambda s: (s.study_date, s.study_uid, s.modality in NON_IMAGE_MODALITIES,
                                      s.series_number if s.series_number is not None else 1 << 30,
                                      s.series_uid, s.sub_stack or 0))
    return result


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            out.append(Path(dirpath) / name)
    return out


def _read_header(path: Path) -> tuple[Dataset | None, str]:
    """Header of one file (pixel data deferred), or None and the reason it is skipped."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    if size == 0:
        return None, "empty file (0 bytes)"
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    if not _looks_like_dicom(head):
        return None, "not a DICOM file"
    try:
        ds = pydicom.dcmread(path, defer_size=4096)
    except InvalidDicomError:
        # files without the 128-byte preamble ("DICM") are still DICOM when they parse
        try:
            ds = pydicom.dcmread(path, defer_size=4096, force=True)
        except _READ_ERRORS:
            return None, "not a DICOM file"
        if "SOPClassUID" not in ds or "PixelData" not in ds:
            return None, "not a DICOM file (no DICM preamble and no image header)"
    except PermissionError:
        return None, "unreadable (permission denied)"
    except _READ_ERRORS as exc:
        return None, f"unreadable or truncated DICOM ({type(exc).__name__}: {exc})"
    sop = _text(ds, "SOPClassUID") or ""
    media_sop = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    if sop == DICOMDIR_SOP_CLASS or media_sop == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        return None, "DICOMDIR index file (the images it lists are scanned as files)"
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            return None, "float pixel data (parametric map) is not a CT image"
        sop_uid = _get(ds, "SOPClassUID") or getattr(getattr(ds, "file_meta", None),
                                                       "MediaStorageSOPClassUID", None)
        sop_name = getattr(sop_uid, "name", "") or ""
        if not sop_uid:
            return None, ("unreadable DICOM: no SOP Class UID and no pixel data (corrupt, "
                          "or not an image)")
        if "Image Storage" in sop_name:
            return None, (f"no pixel data although it is a {sop_name} object: the file is "
                          f"truncated or incomplete")
        kind = str(_get(ds, "Modality", "")) or "non-image object"
        return None, f"no pixel data ({kind}, e.g. a report, structure set or presentation state)"
    try:
        _check_pixel_length(ds, size)
    except ValueError as exc:
        return None, str(exc)
    return ds, ""


def verify_dicom_file(path: str | Path) -> str | None:
    """None when ``path`` is a complete DICOM Part-10 object that can be sent or
    exported; else the reason in words: empty, not DICOM, no transfer syntax, no SOP
    class/instance UID, an element running past the end of the file (truncated), or
    native pixel data shorter than Rows x Columns x frames x bits. Any object type
    (images, SEG, SR, Encapsulated PDF)."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(p, defer_size=256)
    except InvalidDicomError:
        return "not a DICOM Part-10 file (no DICM preamble)"
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on bad files
        return f"unreadable or truncated DICOM ({type(exc).__name__}: {str(exc)[:120]})"
    meta = getattr(ds, "file_meta", None)
    if meta is None or not meta.get("TransferSyntaxUID"):
        return "no transfer syntax (the file meta information lacks TransferSyntaxUID)"
    for kw in ("SOPClassUID", "SOPInstanceUID"):
        if not _text(ds, kw):
            return f"no {kw}"
    for tag in list(ds.keys()):
        e = ds.get_item(tag, keep_deferred=True)
        if isinstance(e, RawDataElement) and e.length != 0xFFFFFFFF \
                and e.value_tell is not None and e.value_tell + e.length > size:
            return (f"truncated file: element {tag} needs {e.length} bytes at offset "
                    f"{e.value_tell}, the file ends at {size}")
    if "PixelData" in ds:
        try:
            _check_pixel_length(ds, size)
        except ValueError as exc:
            return str(exc)
    return None


def _looks_like_dicom(head: bytes) -> bool:
    """Part-10 preamble 'DICM', or a bare data set starting with a group 0002/0008 tag."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    group = int.from_bytes(head[0:2], "little")
    return group in (0x0002, 0x0008)


def _pixel_element(ds: Dataset) -> tuple[int | None, int | None]:
    """(file offset of the Pixel Data value, its length in bytes or None if undefined),
    without reading a deferred value."""
    e = ds.get_item("PixelData", keep_deferred=True)
    if isinstance(e, RawDataElement):
        length = None if e.length == 0xFFFFFFFF else int(e.length)
        return (int(e.value_tell) if e.value_tell is not None else None), length
    value = getattr(e, "value", None)
    length = len(value) if isinstance(value, (bytes, bytearray)) else None
    if getattr(e, "is_undefined_length", False):
        length = None
    return getattr(e, "file_tell", None), length


def _check_pixel_length(ds: Dataset, file_size: int) -> None:
    """Raise ValueError when native pixel data do not match Rows x Columns x frames x bits
    (too short: truncated file; too long: a header that mis-describes the pixels)."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and ts.is_compressed:
        return
    try:
        rows, cols = _ushort(ds, "Rows", 0), _ushort(ds, "Columns", 0)
        bits = _ushort(ds, "BitsAllocated", 0)
        spp = _ushort(ds, "SamplesPerPixel", 1) or 1
        frames = int((_floats(ds, "NumberOfFrames") or [1])[0] or 1)
        if not (rows and cols and bits):
            raise ValueError
    except (AttributeError, TypeError, ValueError):
        raise ValueError("image header incomplete (Rows, Columns or Bits Allocated "
                         "missing)") from None
    expected = (rows * cols * spp * frames * bits + 7) // 8
    offset, length = _pixel_element(ds)
    if offset is not None and offset + expected > file_size:
        have = max(file_size - offset, 0)
        raise ValueError(f"truncated file: pixel data need {expected} bytes "
                         f"({rows} x {cols} x {frames} frame(s) x {bits} bits), only {have} "
                         f"present")
    if length is not None and length > expected + 1:
        raise ValueError(f"pixel data hold {length} bytes but Rows x Columns x frames x bits "
                         f"({rows} x {cols} x {frames} x {bits}) need {expected}: header and "
                         f"pixels disagree")
    if length is not None and length < expected:
        raise ValueError(f"truncated pixel data: {length} bytes, Rows x Columns x frames x "
                         f"bits ({rows} x {cols} x {frames} x {bits}) need {expected}")


# -- fast header access: raw element bytes, no pydicom value conversion (hot per-file path)
@cache
def _tag(keyword: str) -> int:
    t = tag_for_keyword(keyword)
    if t is None:
        raise KeyError(keyword)
    return t


def _raw_elem(ds: Dataset, keyword: str) -> Any:
    try:
        return ds.get_item(_tag(keyword), keep_deferred=True)
    except _READ_ERRORS:
        return None


def _text(ds: Dataset, keyword: str) -> str | None:
    """A text-VR value (UI, CS, DS, IS, LO ...) as one str (multi-values joined by '\\')."""
    e = _raw_elem(ds, keyword)
    if e is None:
        return None
    if isinstance(e, RawDataElement):
        if e.value is None:
            return None
        return bytes(e.value).decode("latin-1").strip("\x00 ")
    v = e.value
    if v is None:
        return None
    if isinstance(v, (list, tuple, MultiValue)):
        return "\\".join(str(x).strip() for x in v)
    return str(v).strip()


def _floats(ds: Dataset, keyword: str) -> list[float] | None:
    """DS/IS values as floats; None when absent or empty; ValueError when malformed or
    not finite (NaN/inf in a position or spacing would poison a whole series)."""
    t = _text(ds, keyword)
    if not t:
        return None
    vals = [float(x) for x in t.split("\\")]
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{keyword} holds a non-finite value ({t[:40]})")
    return vals


def _ushort(ds: Dataset, keyword: str, default: int) -> int:
    """A US value (Rows, Columns, Bits ...), ``default`` when absent."""
    e = _raw_elem(ds, keyword)
    if e is None:
        return default
    if isinstance(e, RawDataElement):
        if not e.value or len(e.value) < 2:
            return default
        return int.from_bytes(bytes(e.value[:2]), "little" if e.is_little_endian else "big")
    try:
        return int(e.value) if e.value is not None else default
    except (TypeError, ValueError):
        return default


def _get(ds: Dataset, key: str, default: Any = None) -> Any:
    """ds.get that returns ``default`` for values that do not parse (malformed VR text)."""
    try:
        return ds.get(key, default)
    except _READ_ERRORS:
        return default


def _str(ds: Dataset, key: str) -> str:
    v = _get(ds, key)
    return "" if v is None else str(v).strip()


def _first_float(v: Any) -> float | None:
    if v is None or v == "":
        return None
    try:
        if isinstance(v, (list, tuple)) or hasattr(v, "__iter__") and not isinstance(v, str):
            v = list(v)[0]
        return float(v)
    except (TypeError, ValueError, IndexError):
        return None


def detect_phase(description: str, contrast_agent: str) -> str | None:
    """Contrast phase from SeriesDescription / ContrastBolusAgent keywords, else None."""
    for text in (description.lower(), contrast_agent.lower()):
        for phase, pattern in _PHASE_PATTERNS:
            if pattern.search(text):
                return phase
    if contrast_agent.strip():
        return "contrast (phase unknown)"
    return None


@dataclass
class _Img:
    """Per-image facts used for grouping (one per frame)."""

    path: Path
    frame: int | None
    ds: Dataset
    iop: tuple[float, ...] | None
    ipp: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    rows: int
    cols: int
    slope: float
    intercept: float
    localizer: bool
    problem: str = ""
    pixel_offset: int | None = None
    instance_number: int | None = None


def _native_pixel_offset(ds: Dataset) -> int | None:
    """File offset of native (uncompressed, little-endian) pixel data, else None."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is None or ts.is_compressed or not ts.is_little_endian or ts.is_deflated:
        return None
    off, _length = _pixel_element(ds)
    return int(off) if off else None


def _images_of(path: Path, ds: Dataset) -> list[_Img]:
    """One _Img per frame (enhanced multi-frame: from the functional groups)."""
    imgs = _images_of_frames(path, ds)
    off = _native_pixel_offset(ds)
    if off is not None:
        frame_bytes = (imgs[0].rows * imgs[0].cols * int(_get(ds, "SamplesPerPixel", 1) or 1)
                       * int(_get(ds, "BitsAllocated", 16) or 16) + 7) // 8
        for im in imgs:
            im.pixel_offset = off + (im.frame or 0) * frame_bytes
    return imgs


def _images_of_frames(path: Path, ds: Dataset) -> list[_Img]:
    rows = _ushort(ds, "Rows", 0)
    cols = _ushort(ds, "Columns", 0)
    image_type = (_text(ds, "ImageType") or "").upper().split("\\")
    localizer = "LOCALIZER" in image_type or "SCOUT" in image_type or "TOPOGRAM" in image_type
    nframes = int((_floats(ds, "NumberOfFrames") or [1])[0] or 1)
    if "PerFrameFunctionalGroupsSequence" in ds or nframes > 1:
        return _multiframe_images(path, ds, rows, cols, nframes, localizer)
    img = _Img(path, None, ds, None, None, None, rows, cols, 1.0, 0.0, localizer)
    try:
        slope = _floats(ds, "RescaleSlope")
        intercept = _floats(ds, "RescaleIntercept")
        img.slope = slope[0] if slope else 1.0
        img.intercept = intercept[0] if intercept else 0.0
        iop = _floats(ds, "ImageOrientationPatient")
        ipp = _floats(ds, "ImagePositionPatient")
        ps = _floats(ds, "PixelSpacing")
        if iop is not None and len(iop) != 6:
            raise ValueError(f"Image Orientation (Patient) has {len(iop)} values, needs 6")
        if ipp is not None and len(ipp) != 3:
            raise ValueError(f"Image Position (Patient) has {len(ipp)} values, needs 3")
        if ps is not None and len(ps) != 2:
            raise ValueError(f"Pixel Spacing has {len(ps)} values, needs 2")
        img.iop = tuple(iop) if iop is not None else None
        img.ipp = np.array(ipp) if ipp is not None else None
        img.pixel_spacing = (ps[0], ps[1]) if ps is not None else None
    except (TypeError, ValueError, IndexError) as exc:
        img.problem = f"malformed geometry tag ({exc})"
    img.instance_number = _int_text(_text(ds, "InstanceNumber"))
    return [img]


def _multiframe_images(path: Path, ds: Dataset, rows: int, cols: int, nframes: int,
                       localizer: bool) -> list[_Img]:
    shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    per = ds.get("PerFrameFunctionalGroupsSequence") or []

    def pick(fg: Dataset, seq: str, key: str) -> Any:
        for src in (fg, shared):
            s = src.get(seq)
            if s and key in s[0]:
                return s[0].get(key)
        return None

    out: list[_Img] = []
    for f in range(nframes):
        fg = per[f] if f < len(per) else Dataset()
        ipp = pick(fg, "PlanePositionSequence", "ImagePositionPatient")
        iop = pick(fg, "PlaneOrientationSequence", "ImageOrientationPatient")
        ps = pick(fg, "PixelMeasuresSequence", "PixelSpacing")
        slope = _first_float(pick(fg, "PixelValueTransformationSequence", "RescaleSlope"))
        icpt = _first_float(pick(fg, "PixelValueTransformationSequence", "RescaleIntercept"))
        if slope is None:
            slope = _first_float(ds.get("RescaleSlope"))
        if icpt is None:
            icpt = _first_float(ds.get("RescaleIntercept"))
        frame_type = pick(fg, "CTImageFrameTypeSequence", "FrameType") or []
        loc = localizer or "LOCALIZER" in [str(x).upper() for x in frame_type]
        img = _Img(path, f, ds, None, None, None, rows, cols,
                   1.0 if slope is None else slope, 0.0 if icpt is None else icpt, loc)
        try:
            img.iop = tuple(float(x) for x in iop) if iop is not None else None
            img.ipp = np.array([float(x) for x in ipp]) if ipp is not None else None
            img.pixel_spacing = (float(ps[0]), float(ps[1])) if ps is not None else None
        except (TypeError, ValueError, IndexError) as exc:
            img.problem = f"malformed geometry tag in frame {f} ({exc})"
        out.append(img)
    return out


def _group(headers: list[tuple[Path, Dataset]], skipped: list[SkippedFile]) -> list[SeriesInfo]:
    by_series: dict[tuple[str, str], list[_Img]] = {}
    for path, ds in headers:
        try:
            imgs = _images_of(path, ds)
        except _READ_ERRORS as exc:
            skipped.append(SkippedFile(path, f"malformed image header ({type(exc).__name__}: "
                                             f"{exc})"))
            continue
        bad = [i for i in imgs if i.problem or i.ipp is None or i.iop is None
               or i.pixel_spacing is None or i.rows <= 0 or i.cols <= 0]
        if bad:
            b = bad[0]
            missing = [name for name, val in (("Image Position (Patient)", b.ipp),
                                              ("Image Orientation (Patient)", b.iop),
                                              ("Pixel Spacing", b.pixel_spacing)) if val is None]
            if b.problem:
                reason = b.problem
            elif b.rows <= 0 or b.cols <= 0:
                reason = "Rows/Columns missing or zero"
            else:
                reason = "missing " + ", ".join(missing) + " (cannot place the image in space)"
            skipped.append(SkippedFile(path, reason))
            continue
        ps = imgs[0].pixel_spacing
        if ps is not None and (ps[0] <= 0 or ps[1] <= 0):
            skipped.append(SkippedFile(path, f"Pixel Spacing must be positive, got {list(ps)}"))
            continue
        try:
            orientation_vectors(imgs[0].iop)
        except ValueError as exc:
            skipped.append(SkippedFile(path, str(exc)))
            continue
        key = (_text(ds, "StudyInstanceUID") or "", _text(ds, "SeriesInstanceUID") or "")
        by_series.setdefault(key, []).extend(imgs)

    out: list[SeriesInfo] = []
    for (_study, _series), imgs in by_series.items():
        # sub-stacks: same orientation, matrix size and pixel spacing (and the multi-frame file)
        stacks: dict[tuple, list[_Img]] = {}
        for im in imgs:
            k = (tuple(round(v, 4) for v in im.iop or ()), im.rows, im.cols,
                 tuple(round(v, 4) for v in im.pixel_spacing or ()),
                 im.localizer)
            stacks.setdefault(k, []).append(im)
        geometry_split = len(stacks) > 1
        groups: list[list[_Img]] = []
        acq_notes: list[str] = []
        for g in stacks.values():
            parts, note = _split_acquisitions(g)
            groups.extend(parts)
            if note:
                acq_notes.append(note)
        groups.sort(key=lambda g: -len(g))
        main = groups[0]
        split_warning = ""
        if geometry_split:
            desc = "; ".join(f"{len(g)} image(s) {g[0].cols}x{g[0].rows} "
                             f"{orientation_name(_dir(g[0].iop))}" for g in groups)
            split_warning = (f"series mixes {len(stacks)} orientations/image sizes, split into "
                             f"separate stacks: {desc}")
        if acq_notes:
            split_warning = "; ".join(([split_warning] if split_warning else []) + acq_notes)
        main_dir = _dir(main[0].iop)
        for idx, g in enumerate(groups):
            info = _series_info(g)
            if len(groups) > 1:
                info.sub_stack = idx
                info.warnings.insert(0, split_warning)
                if (len(g) <= 3 and g is not main
                        and not np.allclose(_dir(g[0].iop)[:, 2], main_dir[:, 2], atol=1e-3)):
                    info.is_localizer = True
            out.append(info)
    return out


def _split_acquisitions(imgs: list[_Img]) -> tuple[list[list[_Img]], str]:
    """Split a stack that repeats slice positions into one stack per acquisition
    (TemporalPositionIdentifier, AcquisitionNumber, EchoNumbers, or the multi-frame file)
    when that separates the repeats cleanly, e.g. several contrast phases stored under one
    SeriesInstanceUID. Frames of one stack spread over several files stay together."""
    if len(imgs) < 2:
        return [imgs], ""

    def positions(g: list[_Img]) -> set[tuple[float, ...]]:
        return {tuple(np.round(i.ipp, 2)) for i in g if i.ipp is not None}

    if len(positions(imgs)) == len(imgs):
        return [imgs], ""
    keys: list[tuple[str, Callable[[_Img], str]]] = [
        (kw, lambda im, kw=kw: _text(im.ds, kw) or "")
        for kw in ("TemporalPositionIdentifier", "AcquisitionNumber", "EchoNumbers")]
    if all(im.frame is not None for im in imgs):  # multi-frame files: one stack per file
        keys.append(("file", lambda im: im.path.name))
    for name, key in keys:
        by: dict[str, list[_Img]] = {}
        for im in imgs:
            by.setdefault(key(im), []).append(im)
        if len(by) < 2 or any(len(g) < 2 for g in by.values()):
            continue
        if all(len(positions(g)) == len(g) for g in by.values()):
            parts = [by[k] for k in sorted(by, key=lambda v: (_int_text(v) or 0, v))]
            shown = ", ".join(sorted(by)[:MAX_LISTED]) + (", ..." if len(by) > MAX_LISTED else "")
            return parts, (f"series repeats slice positions in {len(parts)} acquisitions "
                           f"({name} {shown}): split into separate stacks")
    return [imgs], ""


def _dir(iop: Any) -> np.ndarray:
    r, c, n = orientation_vectors(iop)
    return np.column_stack([r, c, n])


def _series_info(imgs: list[_Img]) -> SeriesInfo:
    first = imgs[0]
    ds = first.ds
    frames = [FrameRef(i.path, i.frame, i.ipp if i.ipp is not None else np.zeros(3), i.slope,
                       i.intercept, i.instance_number, i.pixel_offset,
                       _text(i.ds, "SOPInstanceUID") or "")
              for i in imgs]
    geo = analyse_stack(np.array([f.position_lps_mm for f in frames]), first.iop)
    frames = [frames[i] for i in geo.order]
    files: list[Path] = []
    seen: set[Path] = set()
    for f in frames:
        if f.path not in seen:
            seen.add(f.path)
            files.append(f.path)
    description = _str(ds, "SeriesDescription")
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    decodable = True
    warnings: list[str] = []
    if ts is not None:
        decodable, why = _decodable(ts)
        if not decodable:
            warnings.append(why)
    if _text(ds, "LossyImageCompression") == "01" or str(ts or "") in LOSSY_SYNTAXES:
        warnings.append(f"lossy compressed pixel data ({getattr(ts, 'name', ts)}): values are "
                        f"approximate, not the scanner's original HU")
    ps = first.pixel_spacing or (1.0, 1.0)
    modality = _str(ds, "Modality").upper() or "OT"
    localizer = any(i.localizer for i in imgs)
    n_unique = len(frames) - sum(len(g) - 1 for g in geo.duplicates)
    if geo.spacing_mm > 0 and (geo.gaps or geo.nonuniform):  # the uniform grid load builds
        n_unique = uniform_slice_count(geo.distances_mm[-1] - geo.distances_mm[0], geo.spacing_mm)
    if localizer:
        warnings.append("localizer/scout image (ImageType LOCALIZER): not a CT volume")
    elif len(frames) == 1:
        warnings.append("single image: not a volume (a CT needs at least 2 slices; slice "
                        "spacing shown is the Slice Thickness)")
    if modality in NON_IMAGE_MODALITIES:
        n_pos = len(frames) - sum(len(g) - 1 for g in geo.duplicates)
        warnings.append(f"{modality} object: {NON_IMAGE_MODALITIES[modality]}, not a CT image "
                        f"({len(frames)} frames at {n_pos} positions)")
    else:
        warnings.extend(geometry_warnings(geo, frames))
    wc = _first_float(_get(ds, "WindowCenter"))
    ww = _first_float(_get(ds, "WindowWidth"))
    if ww is not None and ww <= 0:
        wc, ww = None, None  # PS3.3 C.11.2.1.2: Window Width shall be >= 1; 0 means unset
    return SeriesInfo(
        series_uid=_str(ds, "SeriesInstanceUID"),
        study_uid=_str(ds, "StudyInstanceUID"),
        frame_of_reference_uid=_str(ds, "FrameOfReferenceUID"),
        modality=modality,
        description=description,
        patient_id=_str(ds, "PatientID"),
        patient_name=_str(ds, "PatientName"),
        study_date=_str(ds, "StudyDate"),
        phase=detect_phase(description, _str(ds, "ContrastBolusAgent")),
        files=files,
        size=(first.cols, first.rows, n_unique),
        spacing_mm=(ps[1], ps[0], geo.spacing_mm if geo.spacing_mm > 0 else
                    float(_first_float(_get(ds, "SliceThickness")) or 1.0)),
        origin_lps_mm=frames[0].position_lps_mm.copy(),
        direction=geo.direction,
        warnings=warnings,
        is_localizer=localizer,
        frames=frames,
        rows=first.rows,
        columns=first.cols,
        pixel_spacing_mm=ps,
        orientation=tuple(first.iop or ()),
        series_number=_int(_get(ds, "SeriesNumber")),
        transfer_syntax_uid=str(ts or ""),
        transfer_syntax_name=getattr(ts, "name", "") if ts is not None else "",
        decodable=decodable,
        multiframe=first.frame is not None,
        window_center=wc,
        window_width=ww,
        padding_value=(None if _first_float(_get(ds, "PixelPaddingValue")) is None else
                       float(_first_float(_get(ds, "PixelPaddingValue"))) * first.slope
                       + first.intercept),
        bits_stored=int(_get(ds, "BitsStored", 16) or 16),
        bits_allocated=int(_get(ds, "BitsAllocated", 16) or 16),
        pixel_representation=int(_get(ds, "PixelRepresentation", 0) or 0),
        samples_per_pixel=int(_get(ds, "SamplesPerPixel", 1) or 1),
        geometry=geo,
    )


def _int_text(t: str | None) -> int | None:
    try:
        return int(float(t.split("\\")[0])) if t else None
    except ValueError:
        return None


def _int(v: Any) -> int | None:
    try:
        return None if v is None or v == "" else int(v)
    except (TypeError, ValueError):
        return None


def _decodable(ts: Any) -> tuple[bool, str]:
    """Whether pydicom (with the installed pylibjpeg/pyjpegls plugins) decodes ``ts``."""
    from pydicom.pixels.decoders.base import get_decoder

    name = getattr(ts, "name", str(ts))
    try:
        dec = get_decoder(ts)
    except (NotImplementedError, ValueError):
        return False, f"transfer syntax {name} ({ts}) is not supported: no decoder exists"
    if not dec.is_available:
        return False, (f"transfer syntax {name} ({ts}) needs a decoder plugin that is not "
                       f"installed (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg)")
    return True, ""
