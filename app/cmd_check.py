"""`irplan check PLAN.irplan.json [--json]`: run every safety check on a plan file.

Loads the plan (``irplan.io.plan_file``), its planning image and structure masks
(resampled onto the image grid by physical position; refused when they do not overlap),
and prints every finding. ``--json`` prints a JSON list of ``{"severity", "code",
"message", "structure", "distance_mm", "needles"}`` (needles 0-based). Exit code 0 when
the plan was checked, whatever it found; 2 with a one-line message when it cannot be
read. Notes (image re-located, masks resampled, heat-sink check skipped) go to stderr.

Thermal plans (MWA/RFA/cryo): the heat-sink check needs the predicted zone; it is
``--zone MASK`` when given, else predicted with :func:`irplan.planning.zone.predict_zone`
(device tables); when no zone can be predicted the check is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from irplan.io.case_loader import load_plan_case
from irplan.io.plan_file import load_plan_structures, load_plan_with_notes
from irplan.planning.safety import SafetyChecker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="plan file (.irplan.json)")
    parser.add_argument("--json", action="store_true", help="print findings as a JSON list")
    parser.add_argument("--no-image", action="store_true",
                        help="do not load the planning CT (skips the path-through-air check)")
    parser.add_argument("--zone", metavar="MASK",
                        help="predicted ablation zone mask (NIfTI/NRRD) for the thermal "
                             "heat-sink check (default: predicted from the device tables)")
    parser.add_argument("--no-zone", action="store_true",
                        help="thermal plans: skip the zone prediction and heat-sink check")
    from irplan.app.cmd_zone import add_target_argument

    add_target_argument(parser)


def run(args: argparse.Namespace) -> int:
    from irplan.io.masks import read_mask

    if args.no_image:
        plan, notes = load_plan_with_notes(args.plan, check_files=False)
        ct = None
        structures, more = load_plan_structures(plan, ct)
        notes += more
    else:   # the one case loader: the plan's own series, its structures (any format)
        loaded = load_plan_case(Path(args.plan))
        plan, ct, structures, notes = loaded.plan, loaded.ct, loaded.structures, loaded.notes
    zone = read_mask(args.zone) if args.zone else None
    if zone is not None:   # a zone on another frame would silently lose its findings
        from irplan.io.masks import require_nonempty, require_overlap

        require_nonempty(zone, "--zone", args.zone)
        ref = ct if ct is not None else next(iter(structures.values()), None)
        if ref is not None:
            require_overlap(zone, ref, "--zone", args.zone)
    if zone is None and plan.modality != "IRE" and plan.needles and not args.no_zone:
        zone = _predict_thermal_zone(plan, ct, structures, notes)
    from irplan.planning.lesions import (
        plan_for_checks,
        plan_with_target,
        target_key,
        target_structures,
    )

    plan = plan_with_target(plan, args.target)   # tumour checks on the target lesion
    target_structures(structures, target_key(plan),
                      "--target" if args.target else f"{args.plan}: target_structure")
    findings = SafetyChecker(structures, ct).check(plan_for_checks(plan, structures), zone)
    for note in notes:
        print(f"irplan check: note: {note}", file=sys.stderr)
    if args.json:
        json.dump([f.to_dict() for f in findings], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not findings:
        print(f"{args.plan}: {len(plan.needles)} needle(s) checked, no findings")
        return 0
    for f in findings:
        print(f"{f.severity.upper():8s}{f.code:24s}{f.message}")
    counts = {s: sum(f.severity == s for f in findings) for s in ("error", "warning", "info")}
    print(f"{args.plan}: {len(plan.needles)} needle(s) checked: " +
          ", ".join(f"{n} {s}(s)" for s, n in counts.items()))
    return 0


def _predict_thermal_zone(plan, ct, structures, notes: list[str]):
    """The predicted thermal zone mask, or None (with a note saying why)."""
    from irplan.planning.errors import IrplanError
    from irplan.planning.zone import ZoneOptions, predict_zone

    try:
        return predict_zone(plan, ct, structures, grid_mm=1.0,
                            options=ZoneOptions(compute_margin=False)).zone
    except IrplanError as exc:
        notes.append(f"heat-sink check skipped: zone not predicted ({exc})")
        return None
