"""``irplan report PLAN.irplan.json --pdf OUT.pdf [--patient-data]``: the PDF report.

Loads the plan, its CT and masks, predicts the zone, analyses the margin, runs the safety
checks, renders the pictures headless (VTK offscreen) and writes the PDF. Anonymised by
default: patient identity appears only with ``--patient-data``.
"""

from __future__ import annotations

import argparse
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="plan file (.irplan.json)")
    parser.add_argument("--pdf", required=True, metavar="OUT.pdf", help="PDF file to write")
    parser.add_argument("--patient-data", action="store_true",
                        help="print patient name, ID and birth date (default: anonymised)")
    parser.add_argument("--no-pictures", action="store_true",
                        help="skip the 3D/MPR pictures (faster)")
    parser.add_argument("--no-compute", action="store_true",
                        help="do not predict the zone or run the checks (plan data only)")


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
    if isinstance(ev, dict):
        d = ev.get("margin") if isinstance(ev.get("margin"), dict) else ev
        keys = ("surface_points_lps_mm", "surface_faces", "surface_margins_mm",
                "mam_point_lps_mm", "minimal_margin_mm")
        if all(k in d for k in keys):
            return argparse.Namespace(**{k: d[k] for k in keys},
                                      required_margin_mm=d.get("required_margin_mm", 5.0))
    return None


def make_pictures(case: ComputedCase, out_dir: Path) -> tuple[list[Picture], str,
                                                             Picture | None]:
    """Render the report pictures; returns (pictures, status, margin map)."""
    try:
        from irplan.viewers.report_pictures import render_margin_map, render_report_pictures
    except ImportError as exc:
        return [], f"not computed: VTK rendering unavailable ({exc})", None
    pics: list[Picture] = []
    status = ""
    try:
        rendered = render_report_pictures(case.ct, case.structures, case.plan.needles,
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


def build_report(plan_path: str | Path, pdf_path: str | Path, *, patient_data: bool = False,
                 pictures: bool = True, compute: bool = True,
                 case: ComputedCase | None = None) -> tuple[Path, ReportContent]:
    """Everything ``irplan report`` does, for the GUI's one-click report too. ``case``:
    an already loaded/computed case (else loaded from ``plan_path``)."""
    if case is None:
        case = load_case(plan_path, compute=compute)
    with tempfile.TemporaryDirectory(prefix="irplan-report-") as tmp:
        if pictures:
            pics, pic_status, mmap = make_pictures(case, Path(tmp))
        else:
            pics, pic_status, mmap = [], "not rendered (--no-pictures)", None
        rc = build_report_content(case, include_patient_data=patient_data, pictures=pics,
                                  pictures_status=pic_status, margin_map=mmap)
        out = write_report_pdf(rc, pdf_path)
    return out, rc


def run(args: argparse.Namespace) -> int:
    out, rc = build_report(args.plan, args.pdf, patient_data=args.patient_data,
                           pictures=not args.no_pictures, compute=not args.no_compute)
    missing = [name for name, status in (("zone", rc.zone_status),
                                         ("safety", rc.findings_status),
                                         ("pictures", rc.pictures_status))
               if status.startswith("not computed")]
    print(f"wrote {out}" + (f" (not computed: {', '.join(missing)})" if missing else ""))
    for n in rc.notes:
        print(f"note: {n}", file=sys.stderr)
    return 0
