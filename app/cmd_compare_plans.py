"""``irplan compare-plans TRAINEE.irplan.json REFERENCE.irplan.json [--json] [--no-zone]``:
compare a trainee's plan with a reference plan (training mode).

Both plans must be on the same image: when both name a series UID (and a Frame of
Reference UID) they must be equal. The anatomy is the reference plan's structures (the
trainee's when the reference lists none), read on the reference's planning image; both
plans are checked and their zones predicted on it (:mod:`irplan.planning.plan_compare`
documents every figure and the score). The zone is the live preview (2 mm grid, fast
margin) unless ``--exact-zone`` (1 mm, exact margin at 0.5 mm; ~5 s per IRE plan).

Text output: a table of the matched needles, the plan-level figures and the plain-language
summary ending in PASS/FAIL. ``--json`` prints one object with these keys (stable; mm,
degrees, %, 0-based needle indices; ``null`` where not computed):

- ``trainee``, ``reference``: the plan file paths as given
- ``passed`` (bool), ``score_percent`` (rules passed / rules applicable x 100)
- ``modality``: ``{"trainee", "reference", "match"}``
- ``needle_count``: ``{"trainee", "reference"}``
- ``needles``: per matched pair ``{"trainee_index", "reference_index", "trainee_label",
  "reference_label", "tip_error_mm", "tip_along_mm" (negative = short of the reference tip),
  "tip_across_mm", "entry_error_mm", "angle_deg", "depth_difference_mm",
  "exposure_difference_mm", "steepness_difference_deg", "cc_difference_deg"}``
- ``missing_needles``: reference indices without a trainee needle; ``extra_needles``:
  trainee indices without a reference needle
- ``pair_spacings``: IRE reference pulse pairs ``{"reference_pair", "trainee_pair",
  "reference_spacing_mm", "trainee_spacing_mm", "difference_mm"}``
- ``zone``: ``{"trainee", "reference"}`` each ``{"coverage_percent", "minimal_margin_mm",
  "volume_ml", "grid_mm", "method"}`` or null
- ``safety``: ``{"trainee", "reference"}`` each ``{"counts": {"error", "warning", "info"},
  "findings": [...]}`` (as ``irplan check --json``) or null, and ``"new_in_trainee"``: the
  trainee's findings the reference does not have
- ``rules``: ``[{"name", "passed", "detail"}]``; ``thresholds``: the pass limits used
- ``summary``: plain-language lines, the last one the verdict; ``notes``: what was not
  computed and why

Exit code 0 when compared (whatever the verdict); 2 with one line naming the file and the
problem for a missing or invalid plan file or plans on different images.
"""

from __future__ import annotations

import argparse
import json
import sys

from irplan.app.cli_types import finite_float
from irplan.planning.errors import InputError

NOTICE = "IRPlan is research software, not a certified medical device."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trainee", help="the trainee's plan (.irplan.json)")
    parser.add_argument("reference", help="the reference plan (.irplan.json)")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument("--no-zone", action="store_true",
                        help="do not predict the zones (no coverage/margin comparison)")
    parser.add_argument("--exact-zone", action="store_true",
                        help="exact zone analysis (1 mm grid, 0.5 mm margin) instead of the "
                             "2 mm live preview")
    parser.add_argument("--no-image", action="store_true",
                        help="do not load the planning CT (skips the path-through-air check)")
    parser.add_argument("--tip-tolerance-mm", type=finite_float(0, 1000, unit="mm"), default=5.0,
                        help="pass rule: every tip within this distance of the reference "
                             "(default 5 mm)")
    parser.add_argument("--coverage-tolerance",
                        type=finite_float(0, 100), default=5.0, metavar="POINTS",
                        help="pass rule: coverage at least the reference's minus POINTS "
                             "percentage points (default 5)")
    parser.add_argument("--max-angle-deg", type=finite_float(0, 180, unit="deg"), default=None,
                        help="pass rule (off by default): every needle within this angle of "
                             "its reference needle")


def check_same_image(trainee, reference, trainee_path: str, reference_path: str) -> None:
    """InputError naming the trainee file when the plans name different images (series or
    Frame of Reference UIDs, compared when both plans have them)."""
    for attr, what in (("series_uid", "image series"),
                       ("frame_of_reference_uid", "Frame of Reference")):
        a = getattr(trainee.image, attr)
        b = getattr(reference.image, attr)
        if a and b and a != b:
            raise InputError(f"{trainee_path}: image.{attr}: {what} {a} differs from the "
                             f"reference's {b} ({reference_path}): the plans are on "
                             "different images")


def load_pair(trainee_path: str, reference_path: str, *, need_files: bool = True):
    """(trainee, reference) plans; InputError naming the file on any problem."""
    from irplan.io.plan_file import load_plan

    trainee = load_plan(trainee_path, check_files=False)
    reference = load_plan(reference_path, check_files=need_files)
    check_same_image(trainee, reference, trainee_path, reference_path)
    return trainee, reference


def run(args: argparse.Namespace) -> int:
    from irplan.io.plan_file import load_plan_image, load_plan_structures
    from irplan.planning.plan_compare import CompareThresholds, compare_plans

    for name in ("tip_tolerance_mm", "coverage_tolerance"):
        if getattr(args, name) < 0:
            raise InputError(f"--{name.replace('_', '-')} must be >= 0")
    trainee, reference = load_pair(args.trainee, args.reference)
    ct = None if args.no_image else load_plan_image(reference)
    anatomy = reference if reference.structures else trainee
    if anatomy is trainee and trainee.structures:
        from irplan.io.plan_file import load_plan

        load_plan(args.trainee)   # the trainee's mask files must exist to be used
    structures, notes = load_plan_structures(anatomy, ct)
    th = CompareThresholds(tip_tolerance_mm=args.tip_tolerance_mm,
                           coverage_tolerance_points=args.coverage_tolerance,
                           max_angle_deg=args.max_angle_deg)
    comp = compare_plans(trainee, reference, structures, ct=ct, thresholds=th,
                         zone=not args.no_zone, exact_zone=args.exact_zone)
    comp.notes[:0] = notes
    if args.json:
        d = {"trainee": args.trainee, "reference": args.reference, **comp.to_dict()}
        json.dump(d, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    sys.stdout.write(format_text(comp, args.trainee, args.reference))
    return 0


def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "-" if v is None else fmt.format(v)


def format_text(comp, trainee_path: str, reference_path: str) -> str:
    """The text report: needle table, plan-level figures, summary."""
    lines = [f"trainee   {trainee_path}: {comp.trainee_modality}, "
             f"{comp.trainee_needle_count} needle(s)",
             f"reference {reference_path}: {comp.reference_modality}, "
             f"{comp.reference_needle_count} needle(s)", ""]
    head = ("needle", "ref", "tip mm", "along", "across", "entry mm", "angle°", "depth mm",
            "expo mm")
    widths = (7, 5, 8, 8, 8, 9, 8, 9, 8)
    lines.append("".join(h.rjust(w) for h, w in zip(head, widths)))
    for m in sorted(comp.matches, key=lambda m: m.trainee_index):
        cells = (str(m.trainee_index + 1), str(m.reference_index + 1), _f(m.tip_error_mm),
                 _f(m.tip_along_mm, "{:+.1f}"), _f(m.tip_across_mm), _f(m.entry_error_mm),
                 _f(m.angle_deg), _f(m.depth_difference_mm, "{:+.1f}"),
                 _f(m.exposure_difference_mm, "{:+.1f}"))
        lines.append("".join(c.rjust(w) for c, w in zip(cells, widths)))
    for j in comp.missing_reference_indices:
        lines.append(f"{'-':>7}{j + 1:>5}  missing")
    for i in comp.extra_trainee_indices:
        lines.append(f"{i + 1:>7}{'-':>5}  extra")
    if comp.pair_spacings:
        lines.append("")
        lines.append("IRE pair spacing (reference pair: reference mm / trainee mm)")
        for p in comp.pair_spacings:
            i, j = p.reference_pair
            lines.append(f"  {i + 1}-{j + 1}: {p.reference_spacing_mm:.1f} / "
                         f"{_f(p.trainee_spacing_mm)}"
                         + (f" ({p.difference_mm:+.1f})" if p.difference_mm is not None else ""))
    zt, zr = comp.zone_trainee, comp.zone_reference
    if zt is not None or zr is not None:
        lines.append("")
        lines.append(f"zone ({(zr or zt).method}, {(zr or zt).grid_mm:g} mm grid)"
                     "          trainee   reference")
        lines.append(f"  tumour coverage %        {_f(zt and zt.coverage_percent):>9} "
                     f"{_f(zr and zr.coverage_percent):>11}")
        lines.append(f"  minimal margin mm        {_f(zt and zt.minimal_margin_mm, '{:+.1f}'):>9} "
                     f"{_f(zr and zr.minimal_margin_mm, '{:+.1f}'):>11}")
    st, sr = comp.safety_trainee, comp.safety_reference
    if st is not None and sr is not None:
        lines.append("")
        lines.append("safety findings          trainee   reference")
        for s in ("error", "warning", "info"):
            lines.append(f"  {s:<22} {st.counts[s]:>9} {sr.counts[s]:>11}")
    lines.append("")
    lines += comp.summary
    for n in comp.notes:
        lines.append(f"note: {n}")
    lines.append(NOTICE)
    return "\n".join(lines) + "\n"
