"""Load a scanned DICOM series into a :class:`Volume` in Hounsfield units (LPS mm).

Slices are ordered by their position along the slice normal n = row x column cosine
(``dot(ImagePositionPatient, n)``), never by file name or InstanceNumber. The Volume's
direction columns are the row cosine, the column cosine and the stacking direction; the
origin is the ImagePositionPatient of the first slice along n. Stored values are mapped
with RescaleSlope/RescaleIntercept (PS3.3 C.11.1.1.2) into int16 when every slope and
intercept is integral and the values fit, else float32. Pixel data are decoded slice by
slice straight into one preallocated array.

Questionable geometry is either loaded correctly with a warning in
``volume.metadata["warnings"]`` or refused with an :class:`InputError` that names the
series, the files and the problem.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from pydicom.pixels import iter_pixels, pixel_array

from irplan.io.dicom_scan import (
    DUPLICATE_TOL_MM,
    MAX_LISTED,
    NON_IMAGE_MODALITIES,
    TILT_TOL_MM,
    FrameRef,
    ScanResult,
    SeriesInfo,
    analyse_stack,
    scan_dicom,
    uniform_slice_count,
)
from irplan.planning.errors import CancelledError, InputError
from irplan.planning.volume import Volume

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]

# Modalities IRPlan plans on, and those it can show as secondary (overlay/fusion) images.
PLANNING_MODALITIES = ("CT",)
SECONDARY_MODALITIES = ("CT", "MR", "PT", "NM", "US", "OT", "SC")
# Gantry tilts beyond this are refused (clinical CT tilts stay within +-30 deg).
MAX_TILT_DEG = 30.0
# Slice steps smaller than this fraction of the median are refused as "wild" spacing.
WILD_STEP_FRACTION = 0.25
# Values after rescale outside these are refused (corrupt RescaleSlope/Intercept): CT in HU
# (extended CT scale reaches ~ +30000 HU; stored 16-bit data cannot go below -32768), and
# any other modality within float32's exactly representable integers.
CT_LIMITS_HU = (-32768.0, 65535.0)
OTHER_LIMITS = (-1.0e7, 1.0e7)
# Value for voxels shifted in from outside the field of view by tilt correction (HU of air).
OUTSIDE_HU = -1024


def load_series(info: SeriesInfo, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None, allow_gaps: bool = False,
                secondary: bool = False) -> Volume:
    """Load one scanned series into a Volume (values in HU for CT; LPS mm geometry).

    Args:
        info: a series from :func:`irplan.io.dicom_scan.scan_dicom`.
        progress: ``progress(done, total)`` called per image read.
        cancel: ``cancel()`` returning True stops with :class:`CancelledError`.
        allow_gaps: load a series with missing slices by interpolating onto a uniform grid
            (warned); without it a gap is refused.
        secondary: accept non-CT modalities (MR, PET, ...) as secondary images.
    Raises:
        InputError: the series cannot be loaded faithfully (message says why and where).
    """
    label = info.label
    if info.is_localizer:
        raise InputError(f"{label} is a localizer/scout image, not a CT volume")
    allowed = SECONDARY_MODALITIES if secondary else PLANNING_MODALITIES
    if info.modality not in allowed:
        if secondary:
            raise InputError(f"{label}: modality {info.modality} cannot be shown as a "
                             f"secondary image")
        if info.modality in NON_IMAGE_MODALITIES:
            raise InputError(f"series {info.series_uid} is {info.modality}, "
                             f"{NON_IMAGE_MODALITIES[info.modality]}; IRPlan plans on CT")
        raise InputError(f"series {info.series_uid} is {info.modality}; IRPlan plans on CT "
                         f"(load it as a secondary image instead)")
    if info.samples_per_pixel != 1:
        raise InputError(f"{label}: colour images ({info.samples_per_pixel} samples per pixel) "
                         f"are not CT")
    if not info.decodable:
        raise InputError(f"{label} ({info.files[0]}): transfer syntax "
                         f"{info.transfer_syntax_name or info.transfer_syntax_uid} "
                         f"cannot be decoded")
    frames = list(info.frames)
    if len(frames) < 2:
        raise InputError(f"{label} ({frames[0].path if frames else '?'}) has only "
                         f"{len(frames)} slice; a CT volume needs at least 2")
    geo = analyse_stack(np.array([f.position_lps_mm for f in frames]), info.orientation)
    frames = [frames[i] for i in geo.order]
    warnings: list[str] = []
    if geo.spacing_mm <= 0:
        raise InputError(f"{label}: all {len(frames)} slices share one position "
                         f"({frames[0].path.name}); slice spacing is zero")
    _check_spacing(info, geo, frames, allow_gaps)
    group_of = {k: g for g, grp in enumerate(geo.duplicates) for k in grp}
    for k, st in enumerate(geo.steps_mm):
        if st < DUPLICATE_TOL_MM and (group_of.get(k, -1) != group_of.get(k + 1, -2)):
            raise InputError(f"{label}: {frames[k].path.name} and {frames[k + 1].path.name} lie "
                             f"in the same plane ({geo.distances_mm[k]:.2f} mm along the normal) "
                             f"but at different in-plane positions")
    max_drift = float(np.abs(geo.inplane_offsets_mm).max())
    tilted = max_drift > TILT_TOL_MM
    if tilted and geo.tilt_deg > MAX_TILT_DEG:
        raise InputError(f"{label}: slice positions are {geo.tilt_deg:.1f} deg off the slice "
                         f"normal (more than the {MAX_TILT_DEG:.0f} deg a gantry tilts); "
                         f"refusing to guess the geometry")

    # ---- duplicates: keep the first image of each group; the others must be identical
    dup_groups = geo.duplicates
    dup_member = {k: grp for grp in dup_groups for k in grp}
    drop = {k for grp in dup_groups for k in grp[1:]}
    keep = [k for k in range(len(frames)) if k not in drop]
    slot = {k: s for s, k in enumerate(keep)}

    # ---- read pixels into one preallocated array
    integral = all(float(f.slope).is_integer() and float(f.intercept).is_integer()
                   for f in frames)
    out = np.empty((len(keep), info.rows, info.columns),
                   dtype=np.int16 if integral else np.float32)
    total = len(frames)
    dup_raw: dict[int, np.ndarray] = {}
    reader = _iter_native if _native_ok(info, frames) else _iter_sorted_pixels
    limits = CT_LIMITS_HU if info.modality == "CT" else OTHER_LIMITS
    for done, (k, raw) in enumerate(reader(info, frames, cancel), start=1):
        _check_shape(info, frames[k], raw)
        _check_rescaled(raw, frames[k], limits, info.modality)
        if k in dup_member:
            dup_raw[k] = raw.copy()
        if k not in drop:
            out = _store(out, slot[k], raw, frames[k])
        if progress is not None:
            progress(done, total)
    for grp in dup_groups:
        if not all(np.array_equal(dup_raw[grp[0]], dup_raw[k]) for k in grp[1:]):
            names = ", ".join(str(frames[i].path) for i in grp)
            raise InputError(f"{label}: images at the same position "
                             f"{geo.distances_mm[grp[0]]:.2f} mm along the slice normal hold "
                             f"different pixel data: {names}")
    for grp in dup_groups[:MAX_LISTED]:
        names = ", ".join(frames[i].path.name for i in grp)
        warnings.append(f"{len(grp)} identical images at {geo.distances_mm[grp[0]]:.2f} mm "
                        f"along the slice normal; kept one, dropped {len(grp) - 1} ({names})")
    if len(dup_groups) > MAX_LISTED:
        warnings.append(f"... and identical repeated images at {len(dup_groups) - MAX_LISTED} "
                        f"more positions, dropped")
    kept_frames = [frames[k] for k in keep]
    positions = np.array([f.position_lps_mm for f in kept_frames])
    row, col, n = geo.direction[:, 0], geo.direction[:, 1], geo.normal
    origin = positions[0].copy()
    dists = positions @ n
    spacing_k = geo.spacing_mm

    # ---- gantry tilt: shift each slice in-plane onto the orthogonal grid of slice 0
    if tilted:
        offsets = np.stack([(positions - origin) @ row, (positions - origin) @ col], axis=1)
        fill = float(OUTSIDE_HU) if info.modality == "CT" else float(out.min())
        out = _correct_tilt(out, offsets, info.pixel_spacing_mm, fill, cancel)
        warnings.append(
            f"gantry tilt {geo.tilt_deg:.2f} deg corrected: each slice was shifted in-plane "
            f"(up to {np.abs(offsets).max():.2f} mm, linear interpolation) onto an orthogonal "
            f"grid; voxels shifted in from outside the field of view are set to {fill:g}")

    # ---- non-uniform spacing / gaps: resample along n onto a uniform grid
    if geo.gaps or geo.nonuniform:
        n_new = uniform_slice_count(dists[-1] - dists[0], spacing_k)
        out, interpolated = _resample_along_normal(out, dists - dists[0], spacing_k, n_new)
        reason = "missing slices" if geo.gaps else "non-uniform slice spacing"
        warnings.append(
            f"{reason}: resampled onto a uniform {spacing_k:.3f} mm grid by linear "
            f"interpolation along the slice normal ({len(dists)} slices -> {n_new}; "
            f"{interpolated} slice(s) lie more than 0.1 mm from a measured slice)")
        for k, step, missing in geo.gaps:
            warnings.append(f"gap of {step:.2f} mm (~{missing} slice(s)) after "
                            f"{frames[k].path.name} at {geo.distances_mm[k]:.2f} mm is "
                            f"filled by interpolation, not measured")

    direction = np.column_stack([row, col, n])
    if info.warnings:
        for w in info.warnings:
            if w.startswith(("oblique", "series ", "lossy")):
                warnings.insert(0, w)
    vol = Volume(out, origin, np.array([info.pixel_spacing_mm[1], info.pixel_spacing_mm[0],
                                        spacing_k]), direction)
    vol.metadata.update({
        "series_uid": info.series_uid,
        "study_uid": info.study_uid,
        "frame_of_reference_uid": info.frame_of_reference_uid,
        "modality": info.modality,
        "description": info.description,
        "patient_name": info.patient_name,
        "patient_id": info.patient_id,
        "study_date": info.study_date,
        "phase": info.phase,
        "window_center": info.window_center,
        "window_width": info.window_width,
        "padding_value": info.padding_value,  # outside-FOV value after rescale, or None
        "source_files": list(dict.fromkeys(str(f.path) for f in kept_frames)),
        "sop_instance_uids": [f.sop_instance_uid for f in kept_frames],  # per measured slice
        "warnings": warnings,
        "secondary": info.modality not in PLANNING_MODALITIES,
        "units": "HU" if info.modality == "CT" else "stored values x slope + intercept",
    })
    for w in warnings:
        _notify(f"{label}: {w}")
    return vol


def load_ct(path: str | Path, progress: ProgressFn | None = None,
            cancel: CancelFn | None = None, allow_gaps: bool = False) -> Volume:
    """Scan ``path`` and load the CT series with the most slices. Raises InputError."""
    scan = scan_dicom(path, cancel=cancel)
    info = pick_ct(scan)
    vol = load_series(info, progress=progress, cancel=cancel, allow_gaps=allow_gaps)
    others = [s for s in scan.ct_candidates() if s is not info]
    if others:
        vol.metadata["warnings"].append(
            f"{len(others)} other CT series under {path} were not loaded "
            f"(chose the one with most slices: {info.slices})")
        _notify(vol.metadata["warnings"][-1])
    return vol


# --------------------------------------------------------------------------- warnings out
# Loader warnings are kept in ``volume.metadata["warnings"]`` (the GUI shows them in its
# status bar and messages) and also sent to every registered sink: the command line
# registers one that prints each as one line on stderr.
_sinks: list[Callable[[str], None]] = []


def add_warning_sink(sink: Callable[[str], None]) -> Callable[[], None]:
    """Call ``sink(message)`` for every loader warning from now on; returns a function
    that unregisters it."""
    _sinks.append(sink)

    def remove() -> None:
        if sink in _sinks:
            _sinks.remove(sink)

    return remove


def _notify(message: str) -> None:
    for sink in list(_sinks):
        try:
            sink(message)
        except Exception:  # noqa: BLE001 - a broken sink must not stop a load
            pass


def pick_ct(scan: ScanResult) -> SeriesInfo:
    """The CT series with most slices, or InputError naming the folder and what it holds."""
    cands = scan.ct_candidates()
    if cands:
        return cands[0]
    found = ", ".join(sorted({f"{s.modality}" + (" localizer" if s.is_localizer else "")
                              for s in scan.series})) or "no DICOM images"
    skipped = f"; {len(scan.skipped)} file(s) skipped" if scan.skipped else ""
    raise InputError(f"{scan.root}: no CT series with 2 or more slices found "
                     f"(found: {found}{skipped})")


# --------------------------------------------------------------------------- helpers
def _check_spacing(info: SeriesInfo, geo, frames: list[FrameRef], allow_gaps: bool) -> None:
    label = info.label
    real = geo.steps_mm[geo.steps_mm >= DUPLICATE_TOL_MM]
    if real.size and real.min() < WILD_STEP_FRACTION * geo.spacing_mm:
        k = int(np.argmin(np.where(geo.steps_mm >= DUPLICATE_TOL_MM, geo.steps_mm, np.inf)))
        raise InputError(f"{label}: slice spacing varies wildly ({real.min():.3f} to "
                         f"{real.max():.3f} mm, median {geo.spacing_mm:.3f} mm; smallest "
                         f"between {frames[k].path.name} and {frames[k + 1].path.name}); "
                         f"refusing to resample")
    if geo.gaps and not allow_gaps:
        k, step, missing = geo.gaps[0]
        more = f" (and {len(geo.gaps) - 1} more gap(s))" if len(geo.gaps) > 1 else ""
        raise InputError(f"{label}: about {missing} slice(s) missing between slice {k} "
                         f"({frames[k].path.name}, {geo.distances_mm[k]:.2f} mm) and slice "
                         f"{k + 1} ({frames[k + 1].path.name}, {geo.distances_mm[k + 1]:.2f} mm)"
                         f": step {step:.2f} mm, expected {geo.spacing_mm:.2f} mm{more}; "
                         f"load with allow_gaps to interpolate")


def _iter_sorted_pixels(info: SeriesInfo, frames: list[FrameRef],
                        cancel: CancelFn | None) -> Iterator[tuple[int, np.ndarray]]:
    """(sorted index, stored pixel array) for every frame; one file parse per file."""
    by_file: dict[Path, list[tuple[int, int | None]]] = {}
    for k, f in enumerate(frames):
        by_file.setdefault(f.path, []).append((k, f.frame))
    for path, items in by_file.items():
        if cancel is not None and cancel():
            raise CancelledError(f"loading {info.label} cancelled")
        try:
            if items[0][1] is None:
                yield items[0][0], pixel_array(str(path))
                continue
            want = {fr: k for k, fr in items}
            for fr, arr in enumerate(iter_pixels(str(path))):
                if fr in want:
                    yield want[fr], arr
                if cancel is not None and cancel():
                    raise CancelledError(f"loading {info.label} cancelled")
        except (CancelledError, InputError):
            raise
        except Exception as exc:  # noqa: BLE001 - decoders raise many types; name the file
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{path}: cannot decode pixel data ({msg})") from None


def _check_shape(info: SeriesInfo, f: FrameRef, raw: np.ndarray) -> None:
    if raw.shape != (info.rows, info.columns):
        raise InputError(f"{f.path}: pixel data shape {raw.shape} does not match "
                         f"Rows x Columns {info.rows} x {info.columns}")


def _native_ok(info: SeriesInfo, frames: list[FrameRef]) -> bool:
    """True when the pixels can be read straight from the file (uncompressed little-endian
    8/16-bit grey, no sign extension needed); pydicom decodes everything else."""
    return (info.samples_per_pixel == 1 and info.bits_allocated in (8, 16)
            and (info.bits_stored == info.bits_allocated or info.pixel_representation == 0)
            and all(f.pixel_offset is not None for f in frames))


def _iter_native(info: SeriesInfo, frames: list[FrameRef],
                 cancel: CancelFn | None) -> Iterator[tuple[int, np.ndarray]]:
    """(sorted index, stored pixels) read with one readinto per image into one reused
    buffer (the caller copies what it keeps)."""
    kind = "i" if info.pixel_representation == 1 else "u"
    dtype = np.dtype(f"<{kind}{info.bits_allocated // 8}")
    buf = np.empty((info.rows, info.columns), dtype=dtype)
    view = memoryview(buf).cast("B")
    mask = (1 << info.bits_stored) - 1 if info.bits_stored < info.bits_allocated else None
    for k, f in enumerate(frames):
        if cancel is not None and cancel():
            raise CancelledError(f"loading {info.label} cancelled")
        try:
            with open(f.path, "rb", buffering=0) as fh:
                fh.seek(int(f.pixel_offset or 0))
                got = fh.readinto(view)
        except OSError as exc:
            raise InputError(f"{f.path}: cannot read pixel data ({exc.strerror or exc})") from None
        if got != buf.nbytes:
            raise InputError(f"{f.path}: truncated file (pixel data {got} of {buf.nbytes} bytes)")
        if mask is not None:
            buf &= mask
        yield k, buf


def _check_rescaled(raw: np.ndarray, f: FrameRef, limits: tuple[float, float],
                    modality: str) -> None:
    """InputError when stored x RescaleSlope + RescaleIntercept leaves ``limits`` (or is
    not finite): a corrupt header (e.g. slope 1e300) must not become garbage HU."""
    slope, icpt = float(f.slope), float(f.intercept)
    if not (math.isfinite(slope) and math.isfinite(icpt)) or slope == 0:
        raise InputError(f"{f.path}: RescaleSlope {slope:g} / RescaleIntercept {icpt:g} "
                         "cannot map stored values (not finite, or slope 0)")
    if raw.size == 0:
        return
    lo, hi = float(raw.min()), float(raw.max())
    ends = (lo * slope + icpt, hi * slope + icpt)
    vmin, vmax = min(ends), max(ends)
    if not (math.isfinite(vmin) and math.isfinite(vmax)) or vmin < limits[0] \
            or vmax > limits[1]:
        unit = " HU" if modality == "CT" else ""
        raise InputError(f"{f.path}: values after RescaleSlope {slope:g} and "
                         f"RescaleIntercept {icpt:g} span {vmin:.4g}..{vmax:.4g}{unit}, "
                         f"outside {limits[0]:g}..{limits[1]:g}{unit} (corrupt header?)")


def _store(out: np.ndarray, k: int, raw: np.ndarray, f: FrameRef) -> np.ndarray:
    """Write slice k = raw * slope + intercept without whole-volume temporaries;
    upgrades the volume int16 -> float32 if a slice does not fit int16."""
    slope, icpt = float(f.slope), float(f.intercept)
    if out.dtype == np.int16:
        if slope == 1.0 and icpt == 0.0 and raw.dtype == np.int16:
            out[k] = raw
            return out
        lo, hi = int(raw.min()), int(raw.max())
        ends = (lo * slope + icpt, hi * slope + icpt)
        if min(ends) >= -32768 and max(ends) <= 32767:
            if slope == 1.0:
                np.add(raw, np.int32(icpt), out=out[k], casting="unsafe")
            else:
                out[k] = raw.astype(np.int32) * int(slope) + int(icpt)
            return out
        out = out.astype(np.float32)  # rare: values beyond int16 after rescale
    np.multiply(raw, slope, out=out[k], casting="unsafe")
    out[k] += icpt
    return out


def _correct_tilt(arr: np.ndarray, offsets_mm: np.ndarray, pixel_spacing_mm: tuple[float, float],
                  fill: float, cancel: CancelFn | None) -> np.ndarray:
    """Shift slice k by -offsets_mm[k] (along row, column cosines) so that all slices share
    the in-plane grid of slice 0. Linear interpolation; outside = ``fill``."""
    from scipy.ndimage import shift

    row_sp, col_sp = pixel_spacing_mm  # spacing between rows (j), between columns (i)
    is_int = arr.dtype == np.int16
    for k in range(arr.shape[0]):
        if cancel is not None and cancel():
            raise CancelledError("tilt correction cancelled")
        di = offsets_mm[k, 0] / col_sp  # slice k's voxel (0,0) sits at +di columns
        dj = offsets_mm[k, 1] / row_sp
        if abs(di) < 1e-6 and abs(dj) < 1e-6:
            continue
        # out(j, i) = in(j - dj, i - di)
        moved = shift(arr[k].astype(np.float32), (dj, di), order=1, mode="constant",
                      cval=fill)
        arr[k] = np.rint(moved) if is_int else moved
    return arr


def _resample_along_normal(arr: np.ndarray, dists_mm: np.ndarray, spacing_mm: float,
                           n_new: int) -> tuple[np.ndarray, int]:
    """Linear interpolation of slices at ``dists_mm`` (ascending, first 0) onto
    k * spacing_mm, k = 0..n_new-1. Returns the new array and how many output slices lie
    more than 0.1 mm from any measured slice."""
    new_d = np.arange(n_new) * spacing_mm
    new_d[-1] = min(new_d[-1], dists_mm[-1])
    out = np.empty((n_new,) + arr.shape[1:], dtype=arr.dtype)
    interpolated = 0
    for k, z in enumerate(new_d):
        hi = int(np.searchsorted(dists_mm, z, side="left"))
        hi = min(max(hi, 1), len(dists_mm) - 1)
        lo = hi - 1
        w = (z - dists_mm[lo]) / (dists_mm[hi] - dists_mm[lo])
        w = float(np.clip(w, 0.0, 1.0))
        if min(abs(z - dists_mm[lo]), abs(z - dists_mm[hi])) > 0.1:
            interpolated += 1
        if w < 1e-6:
            out[k] = arr[lo]
        elif w > 1 - 1e-6:
            out[k] = arr[hi]
        else:
            val = (1 - w) * arr[lo].astype(np.float32) + w * arr[hi].astype(np.float32)
            out[k] = np.rint(val) if arr.dtype == np.int16 else val
    return out, interpolated
