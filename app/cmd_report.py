"""``irplan report PLAN.irplan.json --pdf OUT.pdf [--patient-data]``: the PDF report.

Loads the plan, its CT and masks, predicts the zone, analyses the margin, runs the safety
checks, renders the pictures headless (VTK offscreen) and writes the PDF. Anonymised by
default: no name, ID, date, description, UID, file or folder name from the CT or the
paths; the patient appears as a keyed pseudonym (:mod:`irplan.io.pseudonym`). Patient
identity appears only with ``--patient-data``. All text is printed literally (needle names
with markup such as ``<img>`` or ``<a href>`` are text, not markup).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from irplan.io.report_content import (
    ComputedCase,
    Picture,
    ReportContent,
    build_report_content,
    load_case,
)
from irplan.io.report_pdf import write_report_pdf
from irplan.planning.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="plan file (.irplan.json)")
    parser.add_argument("--pdf", required=True, metavar="OUT.pdf", help="PDF file to write")
    parser.add_argument("--patient-data", action="store_true",
                        help="print patient name, ID and birth date (default: anonymised)")
    parser.add_argument("--no-pictures", action="store_true",
                        help="skip the 3D/MPR pictures (faster)")
    parser.add_argument("--no-compute", action="store_true",
                        help="do not predict the zone or run the checks (plan data only)")
    from irplan.app.cmd_zone import add_target_argument

    add_target_argument(parser)
    ev = parser.add_argument_group("follow-up evaluation (optional)")
    ev.add_argument("--evaluation", metavar="EVAL.json",
                    help="result of `irplan evaluate --json` to include")
    ev.add_argument("--followup", metavar="DIR",
                    help="follow-up ceCT (DICOM folder): evaluate now, with --ablation")
    ev.add_argument("--ablation", metavar="MASK",
                    help="ablation-zone mask in follow-up space (NIfTI/NRRD/SEG)")
    ev.add_argument("--register", default="rigid", choices=("none", "rigid", "deformable"),
                    help="follow-up to planning registration (default %(default)s)")


def _device_radius_mm(case: ComputedCase) -> float:
    from irplan.planning.devices import get_device

    radii = []
    for n in case.plan.needles:
        try:
            radii.append(get_device(n.device).radius_mm)
        except Exception:  # noqa: BLE001 - unknown device: default radius
            continue
    return max(0.8, max(radii) if radii else 1.0)


def _surface_margin(ev: Any) -> Any | None:
    """An object with surface arrays for the margin map, from an evaluation entry."""
    if hasattr(ev, "surface_points_lps_mm"):
        return ev
    if hasattr(ev, "margin") and hasattr(ev.margin, "surface_points_lps_mm"):
        return ev.margin
    if isinstance(ev, dict):
        d = ev.get("margin") if isinstance(ev.get("margin"), dict) else ev
        keys = ("surface_points_lps_mm", "surface_faces", "surface_margins_mm",
                "mam_point_lps_mm", "minimal_margin_mm")
        if all(k in d for k in keys):
            return argparse.Namespace(**{k: d[k] for k in keys},
                                      required_margin_mm=d.get("required_margin_mm", 5.0))
    return None


def make_pictures(case: ComputedCase, out_dir: Path, *, anonymised: bool = False,
                  ) -> tuple[list[Picture], str, Picture | None]:
    """Render the report pictures; returns (pictures, status, margin map).
    ``anonymised``: needle labels drawn into the pictures are redacted like the text."""
    from irplan.viewers.report_pictures import render_margin_map, render_report_pictures

    pics: list[Picture] = []
    status = ""
    try:
        needles = case.plan.needles
        if anonymised:
            import dataclasses

            from irplan.io.report_content import report_redactor

            red = report_redactor(case.plan, case.plan_path, case.header)
            needles = [dataclasses.replace(nd, name=red(nd.name) if nd.name else
                                           f"N{i}") for i, nd in enumerate(needles, 1)]
        rendered = render_report_pictures(case.ct, case.structures, needles,
                                          case.zone, out_dir,
                                          needle_radius_mm=_device_radius_mm(case))
        pics = [Picture(p.title, str(p.path), p.caption) for p in rendered]
        if case.margin is not None:
            path = render_margin_map(case.margin, out_dir / "predicted_margin.png",
                                     title="Predicted margin on the tumour")
            pics.append(Picture(
                "Predicted margin map", str(path),
                "Tumour surface coloured by the distance to the predicted zone surface (mm); "
                "white dot: minimal margin."))
    except Exception as exc:  # noqa: BLE001 - the report is still written without pictures
        status = f"not computed: rendering failed ({type(exc).__name__}: {exc})"
    margin_map = None
    surf = _surface_margin(case.evaluation) if case.evaluation is not None else None
    if surf is not None:
        try:
            path = render_margin_map(surf, out_dir / "followup_margin.png",
                                     title="Follow-up margin on the tumour")
            margin_map = Picture("Margin map at follow-up", str(path),
                                 "Tumour surface coloured by the local ablative margin (mm).")
        except Exception as exc:  # noqa: BLE001
            status = (status + "; " if status else "") + f"margin map failed ({exc})"
    return pics, status, margin_map


def load_evaluation_json(path: str | Path) -> dict:
    """An ``irplan evaluate --json`` result. Raises InputError naming the file."""
    p = Path(path)
    try:
        d = json.loads(p.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read the evaluation JSON ({exc})") from None
    if not isinstance(d, dict) or not isinstance(d.get("minimal_margin_mm"), int | float):
        raise InputError(f"{p}: not an evaluation result (no numeric minimal_margin_mm; "
                         "expected the output of `irplan evaluate --json`)")
    return d


def evaluate_followup(case: ComputedCase, followup: str | Path, ablation: str | Path,
                      register: str = "rigid") -> Any:
    """Run the follow-up evaluation (planning.evaluation.evaluate) for the case's tumour."""
    from irplan.io.dicom_load import load_ct
    from irplan.io.masks import read_mask
    from irplan.planning.evaluation import evaluate
    from irplan.planning.lesions import target_key

    tumor = case.structures.get(target_key(case.plan))   # the target lesion (issue 17)
    if tumor is None:
        raise InputError(f"{case.plan_path}: the plan has no tumour structure to evaluate")
    f_ct = load_ct(followup) if register != "none" else None
    zone = read_mask(ablation)
    return evaluate(case.ct, f_ct, tumor, zone, register=register,
                    liver_mask=case.structures.get("liver"), plan_zone=case.zone,
                    required_margin_mm=case.plan.margin_mm)


def build_report(plan_path: str | Path, pdf_path: str | Path, *, patient_data: bool = False,
                 pictures: bool = True, compute: bool = True,
                 case: ComputedCase | None = None, evaluation: Any | None = None,
                 deidentified: bool = False, target: str | None = None
                 ) -> tuple[Path, ReportContent]:
    """Everything ``irplan report`` does, for the GUI's one-click report too. ``case``:
    an already loaded/computed case (else loaded from ``plan_path``); ``evaluation``: an
    EvaluationResult or its dict, overriding the plan's stored evaluation;
    ``deidentified``: for ``export --anonymize`` (anonymised, no creation date, fixed PDF
    metadata); ``target``: the lesion coverage and margin are for (default the plan's)."""
    if deidentified and patient_data:
        raise InputError("a de-identified report cannot show patient data")
    if case is None:
        case = load_case(plan_path, compute=compute, target=target)
    if evaluation is not None:
        case.evaluation = evaluation
    with tempfile.TemporaryDirectory(prefix="irplan-report-") as tmp:
        if pictures:
            pics, pic_status, mmap = make_pictures(case, Path(tmp),
                                                   anonymised=not patient_data)
        else:
            pics, pic_status, mmap = [], "not rendered (--no-pictures)", None
        rc = build_report_content(case, include_patient_data=patient_data, pictures=pics,
                                  pictures_status=pic_status, margin_map=mmap,
                                  deidentified=deidentified)
        out = write_report_pdf(rc, pdf_path)
    return out, rc


def run(args: argparse.Namespace) -> int:
    if bool(args.followup) != bool(args.ablation) and not (args.ablation and
                                                          args.register == "none"):
        raise InputError("--followup DIR and --ablation MASK go together "
                         "(--ablation alone only with --register none)")
    if args.evaluation and args.ablation:
        raise InputError("give either --evaluation or --followup/--ablation, not both")
    from irplan.io.atomic_write import check_output_path

    check_output_path(args.pdf)   # a bad output path fails before the work
    evaluation = load_evaluation_json(args.evaluation) if args.evaluation else None
    case = None
    if args.ablation:
        case = load_case(args.plan, compute=not args.no_compute, target=args.target)
        evaluation = evaluate_followup(case, args.followup, args.ablation, args.register)
    out, rc = build_report(args.plan, args.pdf, patient_data=args.patient_data,
                           pictures=not args.no_pictures, compute=not args.no_compute,
                           case=case, evaluation=evaluation, target=args.target)
    missing = [name for name, status in (("zone", rc.zone_status),
                                         ("safety", rc.findings_status),
                                         ("pictures", rc.pictures_status))
               if status.startswith("not computed")]
    print(f"wrote {out}" + (f" (not computed: {', '.join(missing)})" if missing else ""))
    for n in rc.notes:
        print(f"note: {n}", file=sys.stderr)
    return 0
