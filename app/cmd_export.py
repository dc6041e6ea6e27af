"""``irplan export PLAN.irplan.json --out DIR [--seg] [--pdf [REPORT.pdf]] [--screenshot PNG]``

DICOM objects in the planning CT's study: ``structures_seg.dcm`` (structures, the
predicted ablation zone and, with ``--followup/--ablation``, the achieved zone registered
into planning space, as DICOM SEG on the CT grid and Frame of Reference),
``report_pdf.dcm`` (Encapsulated PDF of the report; the report is generated, anonymised,
unless a PDF file is given) and ``screenshot_sc.dcm`` (Secondary Capture of a PNG).
Send them to PACS with ``irplan pacs send``.

By default the objects keep the CT's patient and study module (name, ID, study UID, ...)
so they file into the patient's study on PACS. ``--anonymize`` applies the DICOM PS3.15
Basic Application Confidentiality Profile to everything written (:mod:`irplan.io.anonymize`):
headers de-identified with UIDs mapped consistently (SEG references, PDF and SC point to
the same new study/series), PatientID the keyed pseudonym, the embedded report generated
anonymised without a creation date, fixed file names. A PDF or screenshot made elsewhere
cannot be checked for identifiers and is refused with ``--anonymize``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from irplan.planning.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="plan file (.irplan.json)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--seg", action="store_true",
                        help="structures and predicted ablation zone as DICOM SEG")
    parser.add_argument("--pdf", nargs="?", const="", default=None, metavar="REPORT.pdf",
                        help="report as Encapsulated PDF (generated when no file is given)")
    parser.add_argument("--screenshot", metavar="PNG", help="a PNG as Secondary Capture")
    parser.add_argument("--patient-data", action="store_true",
                        help="generated report shows patient data (default: anonymised)")
    parser.add_argument("--anonymize", action="store_true",
                        help="de-identify everything written (DICOM PS3.15 Basic Profile: "
                             "no name, ID, dates, descriptions; new UIDs; PatientID a keyed "
                             "pseudonym). Default: keep the patient/study so the objects "
                             "file into the patient's study")
    parser.add_argument("--no-pictures", action="store_true",
                        help="generated report without the 3D/MPR pictures (faster)")
    parser.add_argument("--no-zone", action="store_true",
                        help="SEG without the predicted zone (skips the zone model)")
    parser.add_argument("--ablation", metavar="MASK",
                        help="achieved ablation zone (follow-up space) to add to the SEG, "
                             "registered onto the planning CT (with --followup DIR)")
    parser.add_argument("--followup", metavar="DIR", help="follow-up ceCT (DICOM folder)")
    parser.add_argument("--register", default="rigid", choices=("none", "rigid", "deformable"),
                        help="follow-up to planning registration (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from irplan.io.dicom_export import (
        export_encapsulated_pdf,
        export_secondary_capture,
        export_seg,
        load_source_series,
    )
    from irplan.io.plan_file import image_path, load_plan

    if not (args.seg or args.pdf is not None or args.screenshot):
        raise InputError("irplan export: nothing to export; give --seg, --pdf and/or "
                         "--screenshot PNG")
    if args.screenshot and not Path(args.screenshot).is_file():
        raise InputError(f"{args.screenshot}: screenshot file not found")
    if args.pdf and not Path(args.pdf).is_file():
        raise InputError(f"{args.pdf}: PDF file not found")
    deidentify = None
    if args.anonymize:
        if args.patient_data:
            raise InputError("--anonymize and --patient-data contradict each other")
        if args.pdf:
            raise InputError(f"{args.pdf}: --anonymize cannot check a PDF made elsewhere for "
                             "identifiers; omit the file name to export IRPlan's anonymised "
                             "report")
        if args.screenshot:
            raise InputError(f"{args.screenshot}: --anonymize cannot check a picture's pixels "
                             "for burned-in identifiers; export it without --anonymize")
        from irplan.io.anonymize import DicomDeidentifier

        deidentify = DicomDeidentifier()
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder ({exc.strerror})") from None
    plan = load_plan(args.plan)
    source = load_source_series(image_path(plan), plan.image.series_uid or None)
    written: list[Path] = []
    case = None
    if args.seg or args.pdf == "":
        from irplan.io.report_content import load_case

        # one load for both: the report needs the checks, the SEG only the zone
        case = load_case(args.plan, compute=not args.no_zone or args.pdf == "",
                         checks=args.pdf == "")
    if args.seg and case is not None:
        for k, why in case.status.items():
            if k.startswith("structure:"):   # never dropped from the SEG silently
                raise InputError(f"{args.plan}: structures.{k.split(':', 1)[1]}: {why}; "
                                 "fix it or remove it from the plan to export the others")
        for k, m in case.structures.items():
            if not np.any(m.array):
                raise InputError(
                    f"{args.plan}: structures.{k}: the mask is empty on the planning CT grid "
                    "(an empty file, or a mask in another frame of reference); a SEG "
                    "segment needs at least one voxel: fix it or remove it from the plan")
        masks = dict(case.structures)
        if args.no_zone:
            pass
        elif case.zone is not None and np.any(case.zone.array):
            masks["predicted_zone"] = case.zone
        else:
            print(f"note: predicted zone {case.status.get('zone', 'not computed')} "
                  "(not exported)")
        if args.ablation:
            from irplan.app.cmd_report import evaluate_followup

            if not args.followup and args.register != "none":
                raise InputError("--ablation needs --followup DIR (or --register none)")
            ev = evaluate_followup(case, args.followup, args.ablation, args.register)
            if not np.any(ev.zone_planning.array):
                raise InputError(f"{args.ablation}: the achieved zone is empty on the "
                                 "planning CT grid after registration; not exported")
            masks["actual_zone"] = ev.zone_planning
        if not masks:
            raise InputError(f"{args.plan}: no non-empty structure to export as SEG")
        written.append(export_seg(source, masks, out / "structures_seg.dcm",
                                  deidentify=deidentify))
    if args.pdf is not None:
        pdf = Path(args.pdf) if args.pdf else out / "report.pdf"
        if not args.pdf:
            from irplan.app.cmd_report import build_report

            build_report(args.plan, pdf, patient_data=args.patient_data, case=case,
                         deidentified=args.anonymize, pictures=not args.no_pictures)
            written.append(pdf)
        written.append(export_encapsulated_pdf(source, pdf, out / "report_pdf.dcm",
                                               deidentify=deidentify))
    if args.screenshot:
        written.append(export_secondary_capture(source, args.screenshot,
                                                out / "screenshot_sc.dcm",
                                                deidentify=deidentify))
    for p in written:
        print(f"wrote {p}")
    return 0
