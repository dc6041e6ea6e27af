"""Write a complete synthetic case to disk (DICOM series, masks, SEG, plan, truth.json).

Layout (CONTRIBUTING.md, "Phantom case layout")::

    OUTDIR/planning/   OUTDIR/intraop/   OUTDIR/followup/      DICOM CT series
    OUTDIR/masks/planning/<key>.nii.gz   tumor liver portal_vein hepatic_vein bone lung
                                         body, plus ablation_zone (true zone, planning)
    OUTDIR/masks/followup/{ablation_zone,tumor}.nii.gz         follow-up grid
    OUTDIR/seg/planning_structures.dcm   planning masks as one DICOM SEG
    OUTDIR/plan.irplan.json              reference IRE plan (schema 1)
    OUTDIR/truth.json                    exact ground truth (irplan.planning.phantom)

Planning and intra-op CT share StudyInstanceUID and FrameOfReferenceUID; the follow-up
is another study (a month later) in its own frame of reference.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

from irplan.io.atomic_write import atomic_write_text, output_error
from irplan.io.dicom_export import export_seg, source_series_on_grid
from irplan.io.dicom_write import read_series_headers, write_ct_series
from irplan.io.masks import write_mask
from irplan.planning import phantom as ph
from irplan.planning.errors import InputError
from irplan.planning.phantom_truth import CaseFiles, DicomSeriesTruth, GridTruth, PhantomTruth

PLAN_FILE = "plan.irplan.json"
TRUTH_FILE = "truth.json"
PLANNING_DATE = _dt.date(2026, 1, 12)
FOLLOWUP_DATE = PLANNING_DATE + _dt.timedelta(days=30)


def _uid_for(seed: int, scenario: str, variant: str, what: str) -> str:
    """Deterministic UIDs: the same seed/scenario/variant writes the same UIDs."""
    return generate_uid(entropy_srcs=["irplan-phantom", str(seed), scenario, variant, what])


def write_phantom_case(outdir: str | Path, seed: int = 0, scenario: str = "margin_ok",
                       variant: str = "axial", size: tuple[int, int, int] | None = None,
                       spacing_mm: tuple[float, float, float] | float | None = None,
                       transfer_syntax: str | None = None, force: bool = False) -> Path:
    """Write the phantom case ``seed``/``scenario`` into ``outdir``; returns ``outdir``.

    ``variant`` ("axial", "oblique", "flipped") changes only the planning/intra-op grid
    orientation; the anatomy in LPS is identical. ``size`` (i, j, k) and ``spacing_mm``
    (i, j, k) change the grids (default 256x256x128 at 1.5x1.5x2.0 mm). Deterministic for
    a given seed (pixels, UIDs, truth). Raises InputError for unknown options.

    Re-writing a case folder whose ``plan.irplan.json`` differs from the phantom's
    reference plan (the user edited it) is refused before anything is written, unless
    ``force``: an edited plan is never replaced silently.
    """
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / TRUTH_FILE).exists():
        raise InputError(f"{out}: folder is not empty and holds no phantom case; "
                         "choose an empty or new folder")
    truth = ph.make_truth(seed, scenario)
    grid = ph.phantom_grid(variant, size, spacing_mm)
    fgrid = ph.followup_grid(grid)
    structures = {key: f"masks/planning/{key}.nii.gz" for key in ph.MASK_KEYS}
    plan = _reference_plan(truth, _uid_for(seed, scenario, variant, "series-planning"),
                           structures)
    if not force:
        _refuse_edited_plan(out / PLAN_FILE, plan)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(out, exc, "cannot create the folder") from None
    for sub in ("planning", "intraop", "followup"):  # rewriting a case: no stale slices
        for old in (out / sub).glob("IM*.dcm"):
            old.unlink()

    patient = {"patient_name": "PHANTOM^IRPLAN", "patient_id": f"IRPLAN-PH{seed:04d}"}
    study_plan = _uid_for(seed, scenario, variant, "study-planning")
    study_fu = _uid_for(seed, scenario, variant, "study-followup")
    for_plan = _uid_for(seed, scenario, variant, "for-planning")
    for_fu = _uid_for(seed, scenario, variant, "for-followup")
    uids = {
        "planning": _uid_for(seed, scenario, variant, "series-planning"),
        "intraop": _uid_for(seed, scenario, variant, "series-intraop"),
        "followup": _uid_for(seed, scenario, variant, "series-followup"),
    }
    pdate = PLANNING_DATE.strftime("%Y%m%d")
    fdate = FOLLOWUP_DATE.strftime("%Y%m%d")

    ct, masks, ict = ph.make_planning_and_intraop(grid, truth, seed)
    plan_paths = write_ct_series(
        ct, out / "planning", **patient, study_uid=study_plan, series_uid=uids["planning"],
        frame_of_reference_uid=for_plan, series_description="Planning ceCT portal venous",
        series_number=2, study_date=pdate, study_time="081500", series_time="082000",
        study_description="IRE liver (phantom)", transfer_syntax=transfer_syntax,
        extra={"ContrastBolusAgent": "Iodinated contrast (portal venous phase)"},
        deterministic_uids=True)
    mask_dir = out / "masks" / "planning"
    for key in ph.MASK_KEYS:
        write_mask(masks[key], mask_dir / f"{key}.nii.gz")
    write_mask(ph.planning_zone_mask(grid, truth), mask_dir / "ablation_zone.nii.gz")
    seg_masks = {k: masks[k] for k in ("tumor", "liver", "portal_vein", "hepatic_vein",
                                       "bone", "lung", "body")}
    export_seg(source_series_on_grid(read_series_headers(plan_paths), ct, plan_paths),
               seg_masks, out / "seg" / "planning_structures.dcm",
               series_description="Phantom structures (ground truth)", series_number=100,
               series_uid=_uid_for(seed, scenario, variant, "series-seg"),
               sop_uid=_uid_for(seed, scenario, variant, "sop-seg"))
    del ct, masks, seg_masks

    write_ct_series(
        ict, out / "intraop", **patient, study_uid=study_plan, series_uid=uids["intraop"],
        frame_of_reference_uid=for_plan, series_description="Intra-procedural CT, electrodes",
        series_number=3, study_date=pdate, study_time="081500", series_time="101000",
        study_description="IRE liver (phantom)", transfer_syntax=transfer_syntax,
        window=(40.0, 400.0), deterministic_uids=True)
    del ict

    fct, fmasks = ph.make_followup(fgrid, truth, seed)
    write_ct_series(
        fct, out / "followup", **patient, study_uid=study_fu, series_uid=uids["followup"],
        frame_of_reference_uid=for_fu, series_description="Follow-up ceCT 1 month",
        series_number=2, study_date=fdate, study_time="093000", series_time="093500",
        study_description="Liver follow-up (phantom)", transfer_syntax=transfer_syntax,
        extra={"ContrastBolusAgent": "Iodinated contrast (portal venous phase)"},
        deterministic_uids=True)
    for key in ("ablation_zone", "tumor"):
        write_mask(fmasks[key], out / "masks" / "followup" / f"{key}.nii.gz")
    del fct, fmasks

    _write_json(out / PLAN_FILE, plan)

    truth.variant = variant
    truth.grids = {"planning": GridTruth.from_volume(grid), "intraop": GridTruth.from_volume(grid),
                   "followup": GridTruth.from_volume(fgrid)}
    truth.dicom = {
        "planning": DicomSeriesTruth(study_uid=study_plan, series_uid=uids["planning"],
                                     frame_of_reference_uid=for_plan, study_date=pdate),
        "intraop": DicomSeriesTruth(study_uid=study_plan, series_uid=uids["intraop"],
                                    frame_of_reference_uid=for_plan, study_date=pdate),
        "followup": DicomSeriesTruth(study_uid=study_fu, series_uid=uids["followup"],
                                     frame_of_reference_uid=for_fu, study_date=fdate),
    }
    truth.files = CaseFiles(
        plan=PLAN_FILE, planning="planning", intraop="intraop", followup="followup",
        seg="seg/planning_structures.dcm",
        masks_planning=structures | {"ablation_zone": "masks/planning/ablation_zone.nii.gz"},
        masks_followup={"ablation_zone": "masks/followup/ablation_zone.nii.gz",
                        "tumor": "masks/followup/tumor.nii.gz"})
    _write_json(out / TRUTH_FILE, truth.to_dict())
    return out


def _reference_plan(truth: PhantomTruth, series_uid: str,
                    structures: dict[str, str]) -> dict[str, Any]:
    """The phantom's reference IRE plan (schema 1 dict)."""
    return {
        "schema": 1,
        "modality": "IRE",
        "image": {"path": "planning", "series_uid": series_uid},
        "margin_mm": 5,
        "needles": [{"device": n.device, "tip_lps_mm": n.tip_lps_mm.tolist(),
                     "entry_lps_mm": n.entry_lps_mm.tolist(), "exposure_mm": n.exposure_mm}
                    for n in truth.needles],
        "ire": {"voltage_v": truth.ire.voltage_v, "pulses": truth.ire.pulses,
                "pulse_width_us": truth.ire.pulse_width_us},
        "thermal": {"power_w": None, "time_s": None},
        "structures": structures,
    }


def _refuse_edited_plan(path: Path, plan: dict[str, Any]) -> None:
    """InputError when ``path`` holds a plan other than ``plan`` (the user's edits)."""
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        same = old == json.loads(json.dumps(plan, default=_json_default))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        same = False
    if not same:
        raise InputError(f"{path}: differs from the phantom's reference plan (edited?); "
                         "not replaced: write the phantom into another folder, or use "
                         "--force to overwrite the case")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_truth(path: str | Path) -> PhantomTruth:
    """Read truth.json (give the file or the case folder) as a PhantomTruth. Raises
    InputError naming the file and the missing or bad field."""
    p = Path(path)
    if p.is_dir():
        p = p / TRUTH_FILE
    if not p.exists():
        raise InputError(f"{p}: no phantom truth file here")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read phantom truth ({exc})") from None
    try:
        return PhantomTruth.from_dict(data)
    except InputError as exc:
        raise InputError(f"{p}: {exc}") from None
