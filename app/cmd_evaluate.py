"""`irplan evaluate`: margin and technical efficacy of one lesion at follow-up.

    irplan evaluate --planning DIR --followup DIR --tumor MASK
                    (--ablation MASK | --ablation-seed L,P,S [--save-ablation OUT])
                    [--register none|rigid|deformable] [--liver MASK] [--plan-zone MASK]
                    [--landmarks FILE.json] [--margin-mm 5] [--json] [--save-zone OUT]
                    [--screenshot OUT.png]

The tumour mask is in planning space, the ablation mask in follow-up space (with
``--register none`` both are taken as already in one space, and the CTs are optional).
``--ablation-seed`` segments the zone on the follow-up from one point inside it
(:mod:`irplan.planning.ablation_segmentation`) instead of reading a mask.
``--json`` prints the full result (minimal_margin_mm, tumor_coverage_percent,
residual_tumor_ml, verdict, registration {method, metric_value, ...}, ...).
Exit codes: 0 done, 2 a user error (message names the file/field).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from irplan.app.cli_types import finite_float
from irplan.planning.errors import InputError
from irplan.planning.registration import METHODS
from irplan.planning.volume import Volume


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--planning", metavar="DIR", help="planning CT: DICOM folder "
                        "(or a NIfTI/NRRD volume)")
    parser.add_argument("--followup", metavar="DIR", help="follow-up CT: DICOM folder "
                        "(or a NIfTI/NRRD volume)")
    parser.add_argument("--tumor", metavar="MASK", required=True,
                        help="tumour mask, planning space (NIfTI/NRRD)")
    zone = parser.add_mutually_exclusive_group(required=True)
    zone.add_argument("--ablation", metavar="MASK",
                      help="ablation-zone mask, follow-up space (NIfTI/NRRD)")
    zone.add_argument("--ablation-seed", metavar="L,P,S",
                      help="segment the zone semi-automatically from this follow-up LPS "
                           "point (mm) inside the non-enhancing zone (write "
                           "--ablation-seed=-70,5,-5 when it starts with a minus)")
    parser.add_argument("--save-ablation", metavar="OUT.nii.gz",
                        help="with --ablation-seed: write the segmented zone (follow-up grid)")
    parser.add_argument("--register", choices=METHODS, default="rigid",
                        help="registration of follow-up to planning (default rigid; "
                             "deformable also reports the rigid result)")
    parser.add_argument("--liver", metavar="MASK", help="liver mask, planning space: "
                        "restricts the registration metric")
    parser.add_argument("--plan-zone", metavar="MASK", help="predicted (planned) zone, "
                        "planning space: adds Dice, volumes and HD95 vs the achieved zone")
    parser.add_argument("--landmarks", metavar="FILE.json", help='point pairs {"planning": '
                        '[[L,P,S],...], "followup": [[L,P,S],...]} (LPS mm, >= 3 pairs)')
    parser.add_argument("--margin-mm", type=finite_float(0, 30, unit="mm"), default=5.0,
                        help="required margin (mm, default 5: ACCLAIM, Laimer 2020/2024)")
    parser.add_argument("--spacing-mm", type=finite_float(0.1, 5, unit="mm"), default=0.5,
                        help="isotropic analysis spacing around the tumour (mm, default 0.5)")
    parser.add_argument("--mask-threshold", type=finite_float(0, 1e6, lo_open=True),
                        metavar="P", help="read masks that are probability maps as value >= P "
                        "(without it a non-binary mask is refused)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--save-zone", metavar="OUT.nii.gz",
                        help="write the ablation zone mapped onto the planning grid")
    parser.add_argument("--screenshot", metavar="OUT.png",
                        help="render the evaluation view (margin-coloured tumour, fused MPR)")


def load_image(path: str | Path, what: str) -> Volume:
    """A CT from a DICOM folder/DICOMDIR or a NIfTI/NRRD file. Raises InputError."""
    from irplan.io.masks import is_mask_file, read_volume_file

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: {what} not found")
    if p.is_file() and is_mask_file(p):
        return read_volume_file(p)
    from irplan.io.dicom_load import load_ct

    return load_ct(p)


def load_mask(path: str | Path, what: str, threshold: float | None = None,
              notes: list[str] | None = None) -> Volume:
    """A binary mask (strict rules of :func:`irplan.io.masks.read_mask`); a threshold rule
    that was applied is added to ``notes``."""
    from irplan.io.masks import read_mask

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: {what} mask not found")
    m = read_mask(p, threshold=threshold)
    if notes is not None and m.metadata.get("mask_rule"):
        notes.append(f"{what} mask {m.metadata['mask_rule']}")
    return m


def load_landmarks(path: str | Path) -> tuple[list[Any], list[Any]]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        return data["planning"], data["followup"]
    except FileNotFoundError:
        raise InputError(f"{p}: landmarks file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{p}: cannot read landmarks ({type(exc).__name__}: {exc}); "
                         'expected {"planning": [[L,P,S],...], "followup": [...]}') from None


def parse_point(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.replace(";", ",").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3 or not all(math.isfinite(v) and abs(v) <= 10_000 for v in vals):
        raise InputError(f"{what}: expected three finite numbers L,P,S in mm, got '{text}'")
    return vals


def evaluate_paths(planning: str | None, followup: str | None, tumor: str,
                   ablation: str | None, register: str = "rigid", liver: str | None = None,
                   plan_zone: str | None = None, landmarks: str | None = None,
                   margin_mm: float = 5.0, spacing_mm: float = 0.5,
                   ablation_seed: str | None = None,
                   mask_threshold: float | None = None):  # noqa: ANN201
    """Load the inputs and run :func:`irplan.planning.evaluation.evaluate`. The zone is
    the ``ablation`` mask, or segmented from ``ablation_seed`` ("L,P,S", follow-up mm).

    ``mask_threshold``: masks are read as value >= threshold (probability maps); the rule
    is stated in the result's warnings. An empty tumour mask is refused.

    Returns (EvaluationResult, planning CT or None, follow-up CT or None, zone mask)."""
    from irplan.io.masks import require_nonempty
    from irplan.planning.evaluation import evaluate

    if register != "none" and (not planning or not followup):
        raise InputError(f"--register {register} needs --planning and --followup "
                         "(or use --register none when the masks share one space)")
    if not (math.isfinite(margin_mm) and 0 <= margin_mm <= 30):
        raise InputError(f"--margin-mm must be a number in 0..30 mm, got {margin_mm}")
    if ablation_seed and not followup:
        raise InputError("--ablation-seed needs --followup (the zone is segmented on it)")
    seed = parse_point(ablation_seed, "--ablation-seed") if ablation_seed else None
    if not ablation and seed is None:
        raise InputError("give --ablation MASK or --ablation-seed L,P,S")
    rules: list[str] = []
    t = mask_threshold
    tumor_v = require_nonempty(load_mask(tumor, "tumour", t, rules), "tumour", tumor)
    abl_v = load_mask(ablation, "ablation-zone", t, rules) if ablation else None
    liver_v = load_mask(liver, "liver", t, rules) if liver else None
    plan_v = load_mask(plan_zone, "planned zone", t, rules) if plan_zone else None
    lm = load_landmarks(landmarks) if landmarks else None
    p_ct = load_image(planning, "planning CT") if planning else None
    f_ct = load_image(followup, "follow-up CT") if followup else None
    if abl_v is None:
        from irplan.planning.ablation_segmentation import segment_ablation_zone

        abl_v = segment_ablation_zone(f_ct, seed)
    res = evaluate(p_ct, f_ct, tumor_v, abl_v, register=register, liver_mask=liver_v,
                   landmarks=lm, plan_zone=plan_v, required_margin_mm=margin_mm,
                   fine_spacing_mm=spacing_mm)
    res.warnings[:0] = rules
    if seed is not None:
        res.warnings.append(
            f"ablation zone segmented from the click {seed} mm (window "
            f"{abl_v.metadata.get('hu_window')} HU): check it on the images")
        if abl_v.metadata.get("warning"):
            res.warnings.append(f"ablation zone: {abl_v.metadata['warning']}")
    return res, p_ct, f_ct, abl_v


def format_text(d: dict[str, Any]) -> str:
    """Human-readable summary of an evaluation dict."""
    lines = [
        d["verdict_text"],
        f"  minimal ablative margin   {d['minimal_margin_mm']:+.1f} mm at LPS "
        + "({:.1f}, {:.1f}, {:.1f}) mm".format(*d["mam_point_lps_mm"]),
        f"  tumour coverage           {d['tumor_coverage_percent']:.1f} %  "
        f"(tumour {d['tumor_volume_ml']:.2f} mL, residual {d['residual_tumor_ml']:.3f} mL)",
        f"  tumour + {d['required_margin_mm']:g} mm covered   {d['shell_coverage_percent']:.1f} %",
        f"  ablation zone             {d['ablation_zone_volume_ml']:.2f} mL",
    ]
    m = d["margin"]
    lines.append(f"  surface: {m['surface_percent_uncovered']:.1f} % < 0 mm, "
                 f"{m['surface_percent_at_risk']:.1f} % 0-{d['required_margin_mm']:g} mm, "
                 f"{m['surface_percent_ok']:.1f} % >= {d['required_margin_mm']:g} mm")
    r = d["registration"]
    reg = f"  registration: {r['method']}"
    if r.get("metric_value") is not None:
        reg += f", {r['metric']} {r['metric_value']:.4f} (start {r['initial_metric_value']:.4f})"
    if r.get("landmark_residual_mean_mm") is not None:
        reg += f", landmark residual {r['landmark_residual_mean_mm']:.2f} mm"
    lines.append(reg)
    if d.get("rigid_comparison"):
        c = d["rigid_comparison"]
        lines.append(f"  rigid only: MAM {c['minimal_margin_mm']:+.1f} mm, coverage "
                     f"{c['tumor_coverage_percent']:.1f} % ({c['verdict']})")
    if d.get("residual"):
        rr = d["residual"]
        lines.append("  residual tumour centroid LPS ({:.1f}, {:.1f}, {:.1f}) mm, ".format(
            *rr["centroid_lps_mm"]) + f"{rr['direction_from_tumor_center']} of the centre")
    if d.get("predicted_vs_achieved"):
        p = d["predicted_vs_achieved"]
        lines.append(f"  predicted vs achieved: Dice {p['dice']:.3f}, HD95 {p['hd95_mm']:.1f} mm, "
                     f"{p['predicted_volume_ml']:.1f} -> {p['achieved_volume_ml']:.1f} mL")
    for w in d.get("warnings", []):
        lines.append(f"  warning: {w}")
    lines.append("IRPlan is research software, not a certified medical device.")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from irplan.io.atomic_write import check_output_path

    if args.save_ablation and not args.ablation_seed:
        raise InputError("--save-ablation goes with --ablation-seed")
    for out_arg in (args.save_ablation, args.save_zone, args.screenshot):
        if out_arg:
            check_output_path(out_arg)   # a bad output path fails before the work
    res, p_ct, f_ct, zone = evaluate_paths(
        args.planning, args.followup, args.tumor, args.ablation, args.register, args.liver,
        args.plan_zone, args.landmarks, args.margin_mm, args.spacing_mm, args.ablation_seed,
        args.mask_threshold)
    d = res.to_dict()
    code = 0
    if args.save_ablation:
        if not args.ablation_seed:
            raise InputError("--save-ablation goes with --ablation-seed")
        from irplan.io.masks import write_mask

        write_mask(zone, args.save_ablation)
    if args.save_zone:
        from irplan.io.masks import write_mask

        write_mask(res.zone_planning, args.save_zone)
    if args.screenshot:
        from irplan.viewers.margin_actors import render_evaluation_png

        tumor_v = load_mask(args.tumor, "tumour", args.mask_threshold)
        render_evaluation_png(res, tumor_v, p_ct, f_ct, args.screenshot)
        d["screenshot"] = str(args.screenshot)
    if args.json:
        json.dump(d, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_text(d))
    return code
