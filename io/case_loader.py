"""One case loader for the GUI, the CLI and the demo: a path -> the CT, its structures, the plan.

``load_case(path)`` accepts

* a **plan** (``*.irplan.json``): the plan's own series, found by its SeriesInstanceUID
  (never "the series with most slices"), its Frame of Reference checked against the
  plan's; a series that moved is re-located by UID under the plan's folder (a note says
  where). A plan whose series cannot be found is refused (:class:`InputError`, one line),
  never replaced by another series. Its structures in every format the CLI reads (NIfTI,
  NRRD, MetaImage, DICOM SEG, RTSTRUCT); masks on another grid are resampled onto the CT
  (nearest neighbour) and a note says so;
* an **IRPlan case folder** (``planning/`` DICOM, ``masks/planning/*.nii.gz``, optional
  ``plan.irplan.json``; see CONTRIBUTING.md): the plan's series when the plan opens, else
  the CT with most slices of ``planning/`` (the plan's problem in a note);
* a **DICOM folder or DICOMDIR**: the CT series with most slices; when there are others a
  note says so (the Case panel switches series, :func:`load_series_case`).

Everything here runs in a worker thread: no Qt. ``progress(fraction, text)`` and
``cancel() -> bool`` are optional (the CLI passes neither). Geometry LPS mm; masks uint8 0/1
Volumes on the CT grid.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from irplan.planning.errors import CancelledError, InputError
from irplan.planning.plan import Plan
from irplan.planning.volume import Volume

if TYPE_CHECKING:
    from irplan.io.dicom_scan import ScanResult, SeriesInfo

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

CASE_PLAN_FILE = "plan.irplan.json"
CASE_MASKS = Path("masks") / "planning"
# case-folder masks that are not planning structures: the body outline, and the true
# ablation zone (the answer the planner is asked to find)
NOT_STRUCTURES = ("body", "ablation_zone")


@dataclass
class LoadedCase:
    """A case read from disk (GUI, CLI, demo): what the previous one is replaced with."""

    ct: Volume                                  # planning CT (HU, LPS mm)
    ct_path: Path | None                        # its folder, DICOMDIR or image file
    scan: ScanResult | None                     # the scan it was picked from (DICOM)
    structures: dict[str, Volume] = field(default_factory=dict)   # on the CT grid
    plan: Plan | None = None
    plan_path: Path | None = None
    case_dir: Path | None = None                # an IRPlan case folder (follow-up etc.)
    title: str = ""
    notes: list[str] = field(default_factory=list)   # said to the user


# ------------------------------------------------------------------------- progress
def counting_progress(progress: ProgressFn | None, text: str, lo: float = 0.0,
                      hi: float = 1.0) -> Callable[[int, int], None] | None:
    """Adapt a ``(done, total)`` callback (io loaders) to ``progress(fraction, text)``
    mapped into the [lo, hi] part of the bar (None when there is no progress)."""
    if progress is None:
        return None

    def cb(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        progress(lo + (hi - lo) * frac, f"{text} {done}/{total}")
    return cb


def _check_cancel(cancel: CancelFn | None) -> None:
    if cancel is not None and cancel():
        raise CancelledError("loading cancelled")


# ------------------------------------------------------------------------- entry point
def is_case_folder(path: Path) -> bool:
    """An IRPlan case folder: ``planning/`` and ``masks/planning/`` inside."""
    return path.is_dir() and (path / "planning").is_dir() and (path / CASE_MASKS).is_dir()


def load_case(path: str | Path, progress: ProgressFn | None = None,
              cancel: CancelFn | None = None) -> LoadedCase:
    """Load a plan, a case folder, a DICOM folder or a DICOMDIR (see the module text).

    Raises InputError (one line naming the file and the problem) or CancelledError.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_file() and p.name.lower().endswith(".json"):
        return load_plan_case(p, progress, cancel)
    if is_case_folder(p):
        return load_case_folder(p, progress, cancel)
    return load_dicom_case(p, progress, cancel)


def load_dicom_case(path: Path, progress: ProgressFn | None = None,
                    cancel: CancelFn | None = None) -> LoadedCase:
    """A DICOM folder or DICOMDIR: the CT with most slices (a note names the others)."""
    from irplan.io.dicom_load import pick_ct
    from irplan.io.dicom_scan import scan_dicom

    scan = scan_dicom(path, counting_progress(progress, "Scanning", 0.0, 0.2), cancel)
    info = pick_ct(scan)
    out = _from_series(info, scan, path, progress, cancel)
    others = [s for s in scan.ct_candidates() if s is not info]
    if others:
        out.notes.append(f"{len(others)} other CT series found; opened the one with most "
                         "slices (double-click another in the Case panel to switch)")
    out.title = info.description or path.name
    return out


def load_series_case(info: SeriesInfo, scan: ScanResult | None,
                     progress: ProgressFn | None = None,
                     cancel: CancelFn | None = None) -> LoadedCase:
    """One series of an earlier scan (the Case panel's choice) as a case of its own."""
    folder = Path(os.path.commonpath([str(f.parent) for f in info.files])) if info.files \
        else None
    out = _from_series(info, scan, folder, progress, cancel, lo=0.0)
    out.title = info.description or info.series_uid
    return out


def _from_series(info: SeriesInfo, scan: ScanResult | None, path: Path | None,
                 progress: ProgressFn | None, cancel: CancelFn | None,
                 lo: float = 0.2) -> LoadedCase:
    from irplan.io.dicom_load import load_series

    ct = load_series(info, counting_progress(progress, "Reading slices", lo, 1.0), cancel)
    return LoadedCase(ct=ct, ct_path=path, scan=scan)


# ------------------------------------------------------------------------- plans
def load_plan_case(plan_path: Path, progress: ProgressFn | None = None,
                   cancel: CancelFn | None = None) -> LoadedCase:
    """A ``.irplan.json`` plan with its own series and its structures."""
    from irplan.io.plan_file import load_plan_with_notes

    plan, notes = load_plan_with_notes(plan_path)
    out = _plan_image(plan, str(plan_path), progress, cancel)
    out.notes[:0] = notes
    structures, more = read_plan_structures(plan, out.ct, cancel)
    out.structures = structures
    out.notes.extend(more)
    out.plan = plan
    out.plan_path = plan_path
    out.title = plan_path.name
    return out


def load_plan_image(plan: Plan, source: str = "",
                    progress: ProgressFn | None = None,
                    cancel: CancelFn | None = None) -> tuple[Volume, list[str]]:
    """The plan's planning image (HU, LPS) and notes; see :func:`_plan_image`."""
    out = _plan_image(plan, source, progress, cancel)
    return out.ct, out.notes


def _plan_image(plan: Plan, source: str, progress: ProgressFn | None,
                cancel: CancelFn | None) -> LoadedCase:
    """The plan's own image: a NIfTI/NRRD/MetaImage file, or the DICOM series
    ``plan.image.series_uid`` under ``image.path`` (re-located under the plan's folder
    when it is not there; ``plan.image.path`` then points at it). Refused (InputError):
    the series is nowhere, or its Frame of Reference differs from the plan's."""
    from irplan.io.dicom_load import pick_ct
    from irplan.io.dicom_scan import scan_dicom
    from irplan.io.masks import is_mask_file, read_volume_file
    from irplan.io.plan_file import image_path, set_image_folder

    src = f"{source}: " if source else ""
    path = image_path(plan)
    notes: list[str] = []
    if not path.exists():
        raise InputError(f"{src}image.path: {str(path)!r} not found")
    if path.is_file() and is_mask_file(path):
        return LoadedCase(ct=read_volume_file(path), ct_path=path, scan=None, notes=notes)
    scan_cb = counting_progress(progress, "Scanning", 0.0, 0.2)
    scan = scan_dicom(path, scan_cb, cancel)
    uid = plan.image.series_uid
    if not uid:
        info = pick_ct(scan)
        if len(scan.ct_candidates()) > 1:
            notes.append(f"{src}image.series_uid is empty: opened the CT with most slices "
                         f"of {str(path)!r}")
    else:
        info = _series_by_uid(scan, uid)
        root = Path(plan.file_dir) if plan.file_dir else None
        if info is None and root is not None and root.is_dir():
            wider = scan_dicom(root, scan_cb, cancel)   # the folder moved: by UID
            info = _series_by_uid(wider, uid)
            if info is not None:
                old = plan.image.path
                path = Path(os.path.commonpath([str(f.parent) for f in info.files]))
                set_image_folder(plan, path)
                scan = wider
                notes.append(f"{src}image.path: {old!r} does not hold series {uid}; "
                             f"re-located it at {str(path)!r}")
        if info is None:
            where = f"under {str(path)!r}" + (f" nor anywhere under {str(root)!r}"
                                               if root is not None else "")
            raise InputError(f"{src}image: series {uid} not found {where} (found "
                             f"{len(scan.series)} other series); the plan is not opened")
    ref = plan.image.frame_of_reference_uid
    if ref and info.frame_of_reference_uid and info.frame_of_reference_uid != ref:
        raise InputError(f"{src}image: series {info.series_uid} has Frame of Reference "
                         f"{info.frame_of_reference_uid}, the plan expects {ref}")
    out = _from_series(info, scan, path, progress, cancel)
    out.notes[:0] = notes
    return out


def _series_by_uid(scan: ScanResult, uid: str) -> SeriesInfo | None:
    matches = [s for s in scan.series if s.series_uid == uid and s.files]
    return max(matches, key=lambda s: s.slices) if matches else None


# ------------------------------------------------------------------------- case folders
def case_structure_paths(case_dir: Path) -> dict[str, Path]:
    """Structure key -> mask file of a case folder's planning masks
    (``masks/planning/*.nii.gz`` without the body outline and the true ablation zone)."""
    folder = case_dir / CASE_MASKS
    out: dict[str, Path] = {}
    if folder.is_dir():
        for p in sorted(folder.glob("*.nii.gz")):
            key = p.name[: -len(".nii.gz")]
            if key not in NOT_STRUCTURES:
                out[key] = p
    return out


def load_case_folder(case_dir: Path, progress: ProgressFn | None = None,
                     cancel: CancelFn | None = None) -> LoadedCase:
    """An IRPlan case folder: the plan's series (plan.irplan.json) when the plan opens,
    else the CT with most slices under ``planning/``; structures from masks/planning."""
    from irplan.io.plan_file import load_plan_with_notes

    plan_file = case_dir / CASE_PLAN_FILE
    out: LoadedCase | None = None
    notes: list[str] = []
    if plan_file.exists():
        try:
            plan, notes = load_plan_with_notes(plan_file)
            out = _plan_image(plan, str(plan_file), progress, cancel)
            out.plan, out.plan_path = plan, plan_file
        except InputError as exc:
            notes = [f"plan not opened: {exc}"]
    if out is None:
        out = load_dicom_case(case_dir / "planning", progress, cancel)
    out.notes[:0] = notes
    structures, more = read_structures(
        {k: (p, p.name) for k, p in case_structure_paths(case_dir).items()}, out.ct, cancel)
    out.structures = structures
    out.notes.extend(more)
    out.case_dir = case_dir
    out.title = case_dir.name
    return out


# ------------------------------------------------------------------------- structures
def read_plan_structures(plan: Plan, reference: Volume | None,
                         cancel: CancelFn | None = None
                         ) -> tuple[dict[str, Volume], list[str]]:
    """The plan's structure masks (uint8 0/1) onto ``reference``'s grid; (masks, notes).

    See :func:`read_structures`; messages name the plan field ``structures.<key>``."""
    from irplan.io.plan_file import structure_paths

    return read_structures({k: (p, f"structures.{k}")
                            for k, p in structure_paths(plan).items()}, reference, cancel)


def read_structures(files: dict[str, tuple[Path, str]], reference: Volume | None,
                    cancel: CancelFn | None = None, dicom_cache: dict[Path, Any] | None = None
                    ) -> tuple[dict[str, Volume], list[str]]:
    """Structure key -> (file, name in messages) read as uint8 0/1 masks; (masks, notes).

    NIfTI/NRRD/MetaImage files hold one mask each; a mask on another grid is resampled
    onto ``reference`` by physical position (nearest neighbour; ``metadata["resampled"]``
    set) with a note giving the volume before and after (mL). A DICOM SEG or RTSTRUCT
    (``.dcm``) may hold several structures: the one(s) whose type or label matches the
    key (a file with one structure serves any key); it needs ``reference`` and is refused
    on another Frame of Reference (:mod:`irplan.io.mask_import`). Refused (InputError
    naming the structure): a mask that does not overlap ``reference`` at all.
    ``dicom_cache``: SEG/RTSTRUCT files already read (kept across calls).
    """
    from irplan.io.masks import read_mask
    from irplan.io.plan_masks import stamp_as_read

    masks: dict[str, Volume] = {}
    notes: list[str] = []
    from irplan.planning.structures import lesion_number

    dicom: dict[Path, Any] = {} if dicom_cache is None else dicom_cache
    # a SEG/RTSTRUCT named for tumor_2 (or later) holds the lesions apart (issue 17)
    apart = {path for key, (path, _) in files.items() if (lesion_number(key) or 1) > 1}
    for key, (path, where) in files.items():
        _check_cancel(cancel)
        if str(path).lower().endswith(".dcm"):
            mask = _dicom_structure(path, key, where, reference, dicom, path in apart)
        else:
            mask = read_mask(path)
        if reference is not None and not mask.same_geometry(reference, tol_mm=1e-3):
            mask, note = _onto_reference(mask, reference, path, where)
            notes.append(note)
        if key == "tumor" and not np.any(mask.array):   # stated, never silent (issue 13)
            notes.append(f"{where}: the mask is empty (no voxel): tumour coverage, margin "
                         "and tumour checks cannot be computed")
        masks[key] = stamp_as_read(mask)   # saving rewrites it only once edited
    return masks, notes


def _onto_reference(mask: Volume, reference: Volume, path: Path, where: str
                    ) -> tuple[Volume, str]:
    lo_m, hi_m = mask.bounds_lps()
    lo_r, hi_r = reference.bounds_lps()
    if np.any(hi_m < lo_r) or np.any(hi_r < lo_m):
        raise InputError(f"{where}: mask {str(path)!r} does not overlap the planning image "
                         "(different frame of reference?)")
    before_ml = float(np.count_nonzero(mask.array)) * mask.voxel_volume_ml
    out = mask.resample_like(reference, "nearest")
    out.metadata["resampled"] = "nearest"
    after_ml = float(np.count_nonzero(out.array)) * out.voxel_volume_ml
    return out, (f"{where}: resampled onto the planning grid (nearest neighbour, "
                 f"{before_ml:.2f} -> {after_ml:.2f} ml)")


def _dicom_structure(path: Path, key: str, where: str, reference: Volume | None,
                     cache: dict[Path, list[Any]], lesions_apart: bool = False) -> Volume:
    """The structure ``key`` of a DICOM SEG or RTSTRUCT file, on the reference grid.
    ``lesions_apart`` (the plan names tumor_2 or later in this file): lesion keys pick one
    lesion each (:func:`irplan.io.mask_import.lesions_of`), else "tumor" is the union of
    the tumour segments."""
    import re

    from irplan.io.mask_import import import_masks, lesions_of

    if reference is None:
        raise InputError(f"{where}: {str(path)!r} is a DICOM SEG/RTSTRUCT; reading it needs "
                         "the planning image")
    if path not in cache:
        cache[path] = import_masks(path, reference)
    items = cache[path]
    if lesions_apart and (key == "tumor" or key.startswith("tumor_")):
        lesions, _ = lesions_of([m for m in items if m.key == "tumor"])
        if key not in lesions:
            raise InputError(f"{where}: {str(path)!r} has no lesion for {key!r} (it holds "
                             f"{len(lesions)} lesion(s))")
        return lesions[key]

    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9]", "", text.lower())

    match = [m for m in items if m.key == key and key != "other"]
    if not match:   # free names ("body", "gallbladder"): by the structure's label
        match = [m for m in items if norm(m.name) == norm(key)]
    if not match and len(items) == 1:
        match = items
    if not match:
        raise InputError(f"{where}: {str(path)!r} has no structure for {key!r} "
                         f"(it holds: {', '.join(m.name for m in items)})")
    arr = np.zeros(match[0].mask.array.shape, np.uint8)
    for m in match:
        arr |= (m.mask.array != 0).astype(np.uint8)
    return match[0].mask.with_array(arr)
