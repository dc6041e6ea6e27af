"""Training mode: compare a trainee's plan with a reference plan. LPS mm, pure (no Qt/VTK).

Entry point :func:`compare_plans`. The parts can also be run one by one (the GUI does the
geometry and the safety part live and the zones in a background job):
:func:`compare_geometry` -> :func:`zone_figures` / :func:`safety_summary` ->
:func:`complete_comparison` (fills the plan-level figures, the summary and the score).

Needle matching: one-to-one by tip distance (``scipy.optimize.linear_sum_assignment`` on
the trainee x reference matrix of tip-to-tip distances, mm); with unequal counts the
reference needles left over are *missing*, the trainee needles left over *extra*.

Per matched pair (trainee minus reference unless stated):

- ``tip_error_mm``: distance between the tips; split into ``tip_along_mm`` (signed
  component along the reference needle's entry->tip direction: negative = the trainee's
  tip stops *short* of the reference tip, positive = it goes *beyond* it) and
  ``tip_across_mm`` (length of the component perpendicular to the reference needle).
- ``entry_error_mm``: distance between the skin entry points.
- ``angle_deg``: angle between the two needle lines (0-90 deg).
- ``depth_difference_mm``: insertion depth (entry to tip) trainee - reference.
- ``exposure_difference_mm``: IRE exposure trainee - reference (None when either is
  unset, e.g. thermal applicators).
- ``steepness_difference_deg``: difference of the needles' elevation out of the coronal
  (table) plane, asin(|direction . P|): positive = the trainee's needle is *steeper*
  (closer to vertical for a patient lying supine or prone).
- ``cc_difference_deg``: |cranio-caudal angulation| trainee - reference
  (:func:`irplan.planning.needle_geometry.needle_angles`): positive = more tilted out of
  the axial (gantry) plane.

Plan level: modality match, needle counts, for IRE the spacing of every reference pulse
pair (:func:`irplan.planning.ire_array.electrode_pairs`) against the spacing of the
matched trainee electrodes; with structures: predicted tumour coverage (%) and minimal
margin (mm) of both plans (:func:`irplan.planning.zone.predict_zone`, the live preview on
a 2 mm grid by default, or the exact analysis on 1 mm / 0.5 mm), and the safety findings
of both (:class:`irplan.planning.safety.SafetyChecker`): counts by severity and the
findings of the trainee plan that the reference plan does not have (same code, structure
and -- through the matching -- the same needles; or a worse severity).

Score (:func:`score_rules`; thresholds in :class:`CompareThresholds`). Rules, each
applicable one passes or fails:

1. ``modality``: the trainee uses the reference's modality.
2. ``needles``: no missing needle (and no extra one unless ``allow_extra_needles``).
3. ``tips``: every matched tip within ``tip_tolerance_mm`` (5 mm) of its reference tip.
4. ``angles`` (only when ``max_angle_deg`` is set): every matched needle within it.
5. ``coverage`` (only when both zones were computed): trainee coverage >=
   reference coverage - ``coverage_tolerance_points`` (5 percentage points).
6. ``safety`` (only when the findings were computed): no *error* finding that the
   reference plan does not have.

``passed`` = every applicable rule passed; ``score_percent`` = 100 x (rules passed) /
(rules applicable). The thresholds are teaching defaults of IRPlan, not published
figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from irplan.planning.margin_display import format_margin_mm
from irplan.planning.needle_geometry import (
    angle_between_deg,
    needle_angles,
    perpendicular_spacing_mm,
)
from irplan.planning.plan import Needle, Plan
from irplan.planning.volume import Volume

SEVERITIES = ("error", "warning", "info")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
PREVIEW_GRID_MM = 2.0
EXACT_GRID_MM = 1.0


@dataclass
class CompareThresholds:
    """Pass rules and the limits under which a difference is not worth a sentence.

    ``tip_tolerance_mm``: rule 3; ``coverage_tolerance_points``: rule 5 (percentage
    points); ``max_angle_deg``: rule 4 (None = no angle rule);
    ``allow_extra_needles``: rule 2; ``mention_mm`` / ``mention_deg``: differences below
    these are called a match in the summary."""

    tip_tolerance_mm: float = 5.0
    coverage_tolerance_points: float = 5.0
    max_angle_deg: float | None = None
    allow_extra_needles: bool = False
    mention_mm: float = 1.0
    mention_deg: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        return {"tip_tolerance_mm": self.tip_tolerance_mm,
                "coverage_tolerance_points": self.coverage_tolerance_points,
                "max_angle_deg": self.max_angle_deg,
                "allow_extra_needles": self.allow_extra_needles,
                "mention_mm": self.mention_mm, "mention_deg": self.mention_deg}


@dataclass
class NeedleMatch:
    """A trainee needle and the reference needle it was matched with (see module doc)."""

    trainee_index: int
    reference_index: int
    trainee_label: str
    reference_label: str
    tip_error_mm: float
    tip_along_mm: float
    tip_across_mm: float
    entry_error_mm: float
    angle_deg: float
    depth_difference_mm: float
    exposure_difference_mm: float | None
    steepness_difference_deg: float
    cc_difference_deg: float

    def to_dict(self) -> dict[str, Any]:
        r = _round
        return {"trainee_index": self.trainee_index, "reference_index": self.reference_index,
                "trainee_label": self.trainee_label, "reference_label": self.reference_label,
                "tip_error_mm": r(self.tip_error_mm), "tip_along_mm": r(self.tip_along_mm),
                "tip_across_mm": r(self.tip_across_mm),
                "entry_error_mm": r(self.entry_error_mm), "angle_deg": r(self.angle_deg),
                "depth_difference_mm": r(self.depth_difference_mm),
                "exposure_difference_mm": r(self.exposure_difference_mm),
                "steepness_difference_deg": r(self.steepness_difference_deg),
                "cc_difference_deg": r(self.cc_difference_deg)}


@dataclass
class PairSpacing:
    """One pulsed pair of the reference IRE array (0-based indices) and the spacing of
    the matched trainee electrodes (None when one of them is missing)."""

    reference_pair: tuple[int, int]
    trainee_pair: tuple[int, int] | None
    reference_spacing_mm: float
    trainee_spacing_mm: float | None

    @property
    def difference_mm(self) -> float | None:
        if self.trainee_spacing_mm is None:
            return None
        return self.trainee_spacing_mm - self.reference_spacing_mm

    def to_dict(self) -> dict[str, Any]:
        return {"reference_pair": list(self.reference_pair),
                "trainee_pair": list(self.trainee_pair) if self.trainee_pair else None,
                "reference_spacing_mm": _round(self.reference_spacing_mm),
                "trainee_spacing_mm": _round(self.trainee_spacing_mm),
                "difference_mm": _round(self.difference_mm)}


@dataclass
class ZoneFigures:
    """What the predicted zone of one plan means for the tumour."""

    coverage_percent: float
    minimal_margin_mm: float
    volume_ml: float
    grid_mm: float
    method: str                 # "preview" | "exact"
    margin_cap_mm: float | None = None   # the margin analysis box's cap (margin_display)

    def to_dict(self) -> dict[str, Any]:
        return {"coverage_percent": _round(self.coverage_percent),
                "minimal_margin_mm": _round(self.minimal_margin_mm),
                "volume_ml": _round(self.volume_ml, 3), "grid_mm": self.grid_mm,
                "method": self.method}


@dataclass
class SafetySummary:
    """Safety findings of one plan (``irplan.planning.safety.Finding`` objects)."""

    findings: list[Any]

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "findings": [f.to_dict() for f in self.findings]}


@dataclass
class ScoreRule:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass
class PlanComparison:
    """Everything :func:`compare_plans` found. ``to_dict`` gives the JSON form (stable
    keys, documented in ``irplan.app.cmd_compare_plans``)."""

    trainee_modality: str
    reference_modality: str
    trainee_needle_count: int
    reference_needle_count: int
    matches: list[NeedleMatch]
    missing_reference_indices: list[int]
    extra_trainee_indices: list[int]
    pair_spacings: list[PairSpacing]
    thresholds: CompareThresholds
    reference_labels: list[str] = field(default_factory=list)
    trainee_labels: list[str] = field(default_factory=list)
    zone_trainee: ZoneFigures | None = None
    zone_reference: ZoneFigures | None = None
    zone_computed: bool = False         # both zones were predicted (figures may be None)
    safety_trainee: SafetySummary | None = None
    safety_reference: SafetySummary | None = None
    new_findings: list[Any] = field(default_factory=list)
    rules: list[ScoreRule] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def modality_match(self) -> bool:
        return self.trainee_modality == self.reference_modality

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rules)

    @property
    def score_percent(self) -> float:
        return 100.0 * sum(r.passed for r in self.rules) / len(self.rules) if self.rules \
            else 100.0

    def match_for_reference(self, reference_index: int) -> NeedleMatch | None:
        return next((m for m in self.matches if m.reference_index == reference_index), None)

    def to_dict(self) -> dict[str, Any]:
        def zone(z: ZoneFigures | None) -> dict[str, Any] | None:
            return z.to_dict() if z is not None else None

        def safety(s: SafetySummary | None) -> dict[str, Any] | None:
            return s.to_dict() if s is not None else None

        return {
            "passed": self.passed,
            "score_percent": _round(self.score_percent, 1),
            "modality": {"trainee": self.trainee_modality,
                         "reference": self.reference_modality,
                         "match": self.modality_match},
            "needle_count": {"trainee": self.trainee_needle_count,
                             "reference": self.reference_needle_count},
            "needles": [m.to_dict() for m in self.matches],
            "missing_needles": list(self.missing_reference_indices),
            "extra_needles": list(self.extra_trainee_indices),
            "pair_spacings": [p.to_dict() for p in self.pair_spacings],
            "zone": {"trainee": zone(self.zone_trainee),
                     "reference": zone(self.zone_reference)},
            "safety": {"trainee": safety(self.safety_trainee),
                       "reference": safety(self.safety_reference),
                       "new_in_trainee": [f.to_dict() for f in self.new_findings]},
            "rules": [r.to_dict() for r in self.rules],
            "thresholds": self.thresholds.to_dict(),
            "summary": list(self.summary),
            "notes": list(self.notes),
        }


def _round(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(float(v), nd)


def needle_label(plan: Plan, i: int) -> str:
    """'needle 2' or 'needle 2 (E2)' (1-based, as the safety messages name needles)."""
    n = plan.needles[i]
    return f"needle {i + 1}" + (f" ({n.name})" if n.name else "")


def steepness_deg(needle: Needle) -> float:
    """Elevation of the needle out of the coronal (table) plane, 0-90 deg."""
    return math.degrees(math.asin(min(1.0, abs(float(needle.direction[1])))))


# ----------------------------------------------------------------------------- geometry
def match_needles(trainee: Plan, reference: Plan) -> list[tuple[int, int]]:
    """One-to-one (trainee index, reference index) pairs minimising the summed tip
    distance (linear_sum_assignment); sorted by reference index."""
    if not trainee.needles or not reference.needles:
        return []
    t = np.array([n.tip_lps_mm for n in trainee.needles])
    r = np.array([n.tip_lps_mm for n in reference.needles])
    cost = np.linalg.norm(t[:, None, :] - r[None, :, :], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    return sorted(((int(i), int(j)) for i, j in zip(rows, cols)), key=lambda p: p[1])


def compare_needle(trainee: Plan, i: int, reference: Plan, j: int) -> NeedleMatch:
    """The differences of trainee needle ``i`` to reference needle ``j``."""
    a, b = trainee.needles[i], reference.needles[j]
    d_tip = a.tip_lps_mm - b.tip_lps_mm
    axis = b.direction
    along = float(d_tip @ axis)
    across = float(np.linalg.norm(d_tip - along * axis))
    exp = (float(a.exposure_mm) - float(b.exposure_mm)
           if a.exposure_mm is not None and b.exposure_mm is not None else None)
    return NeedleMatch(
        trainee_index=i, reference_index=j,
        trainee_label=needle_label(trainee, i), reference_label=needle_label(reference, j),
        tip_error_mm=float(np.linalg.norm(d_tip)), tip_along_mm=along, tip_across_mm=across,
        entry_error_mm=float(np.linalg.norm(a.entry_lps_mm - b.entry_lps_mm)),
        angle_deg=angle_between_deg(a.direction, b.direction),
        depth_difference_mm=a.length_mm - b.length_mm,
        exposure_difference_mm=exp,
        steepness_difference_deg=steepness_deg(a) - steepness_deg(b),
        cc_difference_deg=abs(needle_angles(a).cc_angle_deg) - abs(needle_angles(b).cc_angle_deg))


def compare_geometry(trainee: Plan, reference: Plan,
                     thresholds: CompareThresholds | None = None) -> PlanComparison:
    """Matching, per-needle differences, counts and IRE pair spacings (no zone, no
    safety); rules and summary filled as far as these allow."""
    th = thresholds or CompareThresholds()
    pairs = match_needles(trainee, reference)
    matches = [compare_needle(trainee, i, reference, j) for i, j in pairs]
    matched_t = {i for i, _ in pairs}
    matched_r = {j for _, j in pairs}
    comp = PlanComparison(
        trainee_modality=trainee.modality, reference_modality=reference.modality,
        trainee_needle_count=len(trainee.needles),
        reference_needle_count=len(reference.needles), matches=matches,
        missing_reference_indices=[j for j in range(len(reference.needles))
                                   if j not in matched_r],
        extra_trainee_indices=[i for i in range(len(trainee.needles)) if i not in matched_t],
        pair_spacings=_pair_spacings(trainee, reference, pairs), thresholds=th,
        reference_labels=[needle_label(reference, j) for j in range(len(reference.needles))],
        trainee_labels=[needle_label(trainee, i) for i in range(len(trainee.needles))])
    complete_comparison(comp)
    return comp


def _pair_spacings(trainee: Plan, reference: Plan,
                   pairs: list[tuple[int, int]]) -> list[PairSpacing]:
    if not reference.is_ire or len(reference.needles) < 2:
        return []
    from irplan.planning.ire_array import electrode_pairs

    r_to_t = {j: i for i, j in pairs}
    out = []
    for p in electrode_pairs(reference.needles):
        ti, tj = r_to_t.get(p.i), r_to_t.get(p.j)
        if ti is None or tj is None:
            out.append(PairSpacing((p.i, p.j), None, p.spacing_mm, None))
        else:
            out.append(PairSpacing((p.i, p.j), (ti, tj), p.spacing_mm,
                                   perpendicular_spacing_mm(trainee.needles[ti],
                                                            trainee.needles[tj])))
    return out


# ----------------------------------------------------------------------------- zone, safety
def zone_figures(plan: Plan, structures: dict[str, Volume], *, exact: bool = False,
                 options: Any = None, grid_mm: float | None = None,
                 progress: Callable[[float, str], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> tuple[ZoneFigures | None, list[str]]:
    """Predicted zone of ``plan`` on ``structures`` -> (figures, notes). Figures are None
    (with a note saying why) when the plan has too few needles or there is no tumour.

    Default: ``ZoneOptions.live_preview()`` on a 2 mm grid; ``exact``: the exact margin
    analysis (0.5 mm) on a 1 mm grid. ``options``/``grid_mm`` override both."""
    from irplan.planning.zone import predict_zone

    note = zone_not_possible(plan)
    if note:
        return None, [note]
    default_opts, default_grid = zone_settings(exact)
    opts = options or default_opts
    g = grid_mm or default_grid
    res = predict_zone(plan, None, structures, grid_mm=g, options=opts, progress=progress,
                       cancel=cancel)
    return figures_from_result(res)


def zone_settings(exact: bool = False) -> tuple[Any, float]:
    """(ZoneOptions, grid mm) of the preview (2 mm) or the exact (1 mm) comparison."""
    from irplan.planning.zone import ZoneOptions

    if exact:
        return ZoneOptions(margin_fine_mm=0.5), EXACT_GRID_MM
    return ZoneOptions.live_preview(), PREVIEW_GRID_MM


def figures_from_result(res: Any) -> tuple[ZoneFigures | None, list[str]]:
    """:class:`ZoneFigures` of a :class:`irplan.planning.zone.ZoneResult` -> (figures,
    notes); None with a note when it has no coverage (no tumour, empty zone)."""
    m = res.margin
    if m is None:
        why = next((w for w in res.warnings if "tumour" in w), "no coverage computed")
        return None, [f"zone coverage not computed: {why}"]
    return ZoneFigures(float(m.tumor_coverage_percent), float(m.minimal_margin_mm),
                       res.volume_ml, float(res.grid_mm),
                       "preview" if m.method.startswith("preview") else "exact",
                       float(m.margin_cap_mm)), []


def zone_not_possible(plan: Plan) -> str:
    """Why no zone can be predicted for ``plan`` ("" when one can)."""
    n_min = 2 if plan.is_ire else 1
    if len(plan.needles) < n_min:
        return (f"zone not predicted: the plan has {len(plan.needles)} needle(s), "
                f"{plan.modality} needs at least {n_min}")
    return ""


def safety_summary(plan: Plan, checker: Any) -> SafetySummary:
    """Findings of ``plan`` by a prepared :class:`irplan.planning.safety.SafetyChecker`."""
    return SafetySummary(list(checker.check(plan)))


def _finding_key(f: Any, needle_map: dict[int, int] | None) -> tuple:
    """(code, structure, needles); trainee needles mapped to reference indices, an
    unmatched one to -1 - index (never equal to a reference needle)."""
    if needle_map is None:
        needles = tuple(sorted(f.needles))
    else:
        needles = tuple(sorted(needle_map.get(i, -1 - i) for i in f.needles))
    return (f.code, f.structure, needles)


def new_findings(trainee: SafetySummary, reference: SafetySummary,
                 pairs: list[tuple[int, int]]) -> list[Any]:
    """Findings of the trainee plan absent from the reference plan: no reference finding
    with the same code, structure and (matched) needles, or only a milder one. Trainee
    needle indices are mapped to the reference through ``pairs``."""
    t_to_r = {i: j for i, j in pairs}
    ref_worst: dict[tuple, int] = {}
    for f in reference.findings:
        k = _finding_key(f, None)
        ref_worst[k] = min(ref_worst.get(k, 99), _RANK[f.severity])
    out = []
    for f in trainee.findings:
        k = _finding_key(f, t_to_r)
        if k not in ref_worst or _RANK[f.severity] < ref_worst[k]:
            out.append(f)
    return out


# ----------------------------------------------------------------------------- score, words
def score_rules(comp: PlanComparison) -> list[ScoreRule]:
    """The applicable pass rules of ``comp`` (module doc)."""
    th = comp.thresholds
    rules = [ScoreRule("modality", comp.modality_match,
                       f"{comp.trainee_modality} (reference {comp.reference_modality})")]
    extra_bad = bool(comp.extra_trainee_indices) and not th.allow_extra_needles
    rules.append(ScoreRule(
        "needles", not comp.missing_reference_indices and not extra_bad,
        f"{comp.trainee_needle_count} needle(s), reference {comp.reference_needle_count}: "
        f"{len(comp.missing_reference_indices)} missing, "
        f"{len(comp.extra_trainee_indices)} extra"))
    if comp.matches:
        worst = max(comp.matches, key=lambda m: m.tip_error_mm)
        rules.append(ScoreRule(
            "tips", worst.tip_error_mm <= th.tip_tolerance_mm,
            f"largest tip error {worst.tip_error_mm:.1f} mm ({worst.trainee_label}; limit "
            f"{th.tip_tolerance_mm:g} mm)"))
        if th.max_angle_deg is not None:
            wa = max(comp.matches, key=lambda m: m.angle_deg)
            rules.append(ScoreRule(
                "angles", wa.angle_deg <= th.max_angle_deg,
                f"largest angle {wa.angle_deg:.1f} deg ({wa.trainee_label}; limit "
                f"{th.max_angle_deg:g} deg)"))
    elif comp.reference_needle_count:
        rules.append(ScoreRule("tips", False, "no needle to compare"))
    zt, zr = comp.zone_trainee, comp.zone_reference
    if zt is not None and zr is not None:
        need = zr.coverage_percent - th.coverage_tolerance_points
        rules.append(ScoreRule(
            "coverage", zt.coverage_percent >= need,
            f"coverage {zt.coverage_percent:.1f} % (reference {zr.coverage_percent:.1f} %, "
            f"at least {need:.1f} % needed)"))
    elif comp.zone_computed and zr is not None:
        rules.append(ScoreRule("coverage", False, "the trainee plan has no predicted zone "
                               f"(reference coverage {zr.coverage_percent:.1f} %)"))
    if comp.safety_trainee is not None and comp.safety_reference is not None:
        errs = [f for f in comp.new_findings if f.severity == "error"]
        rules.append(ScoreRule(
            "safety", not errs,
            f"{len(errs)} error finding(s) the reference does not have" if errs
            else "no error finding beyond the reference's"))
    return rules


def _plural(n: float, word: str) -> str:
    return f"{n:.0f}° {word}"


def needle_sentence(m: NeedleMatch, th: CompareThresholds) -> str:
    """'needle 2 tip 6.3 mm short of the reference, 4° steeper' style sentence."""
    who = m.trainee_label
    if m.trainee_index != m.reference_index:
        who += f" (reference {m.reference_label})"
    parts = []
    if abs(m.tip_along_mm) >= th.mention_mm:
        word = "short of" if m.tip_along_mm < 0 else "beyond"
        parts.append(f"tip {abs(m.tip_along_mm):.1f} mm {word} the reference")
    if m.tip_across_mm >= th.mention_mm:
        parts.append(f"tip {m.tip_across_mm:.1f} mm off the reference path")
    if abs(m.steepness_difference_deg) >= th.mention_deg:
        parts.append(_plural(abs(m.steepness_difference_deg),
                             "steeper" if m.steepness_difference_deg > 0 else "flatter"))
    if abs(m.cc_difference_deg) >= th.mention_deg:
        parts.append(_plural(abs(m.cc_difference_deg),
                             "more cranio-caudal tilt" if m.cc_difference_deg > 0
                             else "less cranio-caudal tilt"))
    if m.angle_deg >= th.mention_deg and not any("°" in p for p in parts):
        parts.append(f"{m.angle_deg:.0f}° off the reference direction")
    if m.exposure_difference_mm is not None and abs(m.exposure_difference_mm) >= th.mention_mm:
        parts.append(f"exposure {m.exposure_difference_mm:+.1f} mm")
    if not parts:
        return (f"{who} matches the reference (tip {m.tip_error_mm:.1f} mm, "
                f"{m.angle_deg:.1f}°)")
    flag = " — outside the tolerance" if m.tip_error_mm > th.tip_tolerance_mm else ""
    return f"{who} " + ", ".join(parts) + flag


def summary_lines(comp: PlanComparison) -> list[str]:
    """Plain-language findings, most important first; the last line is the verdict."""
    th = comp.thresholds
    out: list[str] = []
    if not comp.modality_match:
        out.append(f"modality {comp.trainee_modality}, the reference uses "
                   f"{comp.reference_modality}")
    for j in comp.missing_reference_indices:
        out.append(f"missing needle: reference {comp.reference_labels[j]} has no "
                   "counterpart in the trainee plan")
    for i in comp.extra_trainee_indices:
        out.append(f"extra needle: {comp.trainee_labels[i]} has no counterpart in the "
                   "reference plan")
    for m in sorted(comp.matches, key=lambda m: m.trainee_index):
        out.append(needle_sentence(m, th))
    for p in comp.pair_spacings:
        d = p.difference_mm
        if d is not None and abs(d) >= th.mention_mm:
            i, j = p.trainee_pair or p.reference_pair
            out.append(f"pair {i + 1}-{j + 1} spacing {p.trainee_spacing_mm:.1f} mm "
                       f"(reference {p.reference_spacing_mm:.1f} mm, {d:+.1f} mm)")
    zt, zr = comp.zone_trainee, comp.zone_reference
    if zt is not None and zr is not None:
        out.append(f"tumour coverage {zt.coverage_percent:.1f} % vs reference "
                   f"{zr.coverage_percent:.1f} % ({zt.coverage_percent - zr.coverage_percent:+.1f}"
                   f" points); minimal margin "
                   f"{format_margin_mm(zt.minimal_margin_mm, zt.margin_cap_mm)} vs "
                   f"{format_margin_mm(zr.minimal_margin_mm, zr.margin_cap_mm)}")
    for f in comp.new_findings:
        if f.severity in ("error", "warning"):
            out.append(f"new {f.severity}: {f.message}")
    failed = [r for r in comp.rules if not r.passed]
    verdict = "PASS" if not failed else "FAIL"
    out.append(f"{verdict} (score {comp.score_percent:.0f} %)"
               + ("" if not failed else ": " + "; ".join(f"{r.name}: {r.detail}"
                                                         for r in failed)))
    return out


def complete_comparison(comp: PlanComparison, *, zone_trainee: ZoneFigures | None = None,
                        zone_reference: ZoneFigures | None = None,
                        safety_trainee: SafetySummary | None = None,
                        safety_reference: SafetySummary | None = None) -> PlanComparison:
    """Set the zone/safety parts that are given, then recompute the new findings, the
    rules and the summary (in place; returns ``comp``)."""
    if zone_trainee is not None:
        comp.zone_trainee = zone_trainee
    if zone_reference is not None:
        comp.zone_reference = zone_reference
    if safety_trainee is not None:
        comp.safety_trainee = safety_trainee
    if safety_reference is not None:
        comp.safety_reference = safety_reference
    if comp.safety_trainee is not None and comp.safety_reference is not None:
        pairs = [(m.trainee_index, m.reference_index) for m in comp.matches]
        comp.new_findings = new_findings(comp.safety_trainee, comp.safety_reference, pairs)
    comp.rules = score_rules(comp)
    comp.summary = summary_lines(comp)
    return comp


# ----------------------------------------------------------------------------- all at once
def compare_plans(trainee: Plan, reference: Plan,
                  structures: dict[str, Volume] | None = None, *,
                  ct: Volume | None = None, thresholds: CompareThresholds | None = None,
                  zone: bool = True, exact_zone: bool = False, zone_options: Any = None,
                  safety: bool = True, checker: Any = None,
                  progress: Callable[[float, str], None] | None = None,
                  cancel: Callable[[], bool] | None = None) -> PlanComparison:
    """Compare ``trainee`` with ``reference`` (module doc for every figure and the score).

    ``structures`` (uint8 masks, LPS, one anatomy for both plans) enable the zone part
    (``zone``; preview on 2 mm unless ``exact_zone``; ``zone_options`` overrides) and the
    safety part (``safety``; ``checker`` = a prepared SafetyChecker to reuse, else one is
    built on ``structures`` and ``ct``, the CT enabling the path-through-air check).
    Without structures only the geometry is compared."""
    comp = compare_geometry(trainee, reference, thresholds)
    if structures:
        if zone:
            zr, notes_r = zone_figures(reference, structures, exact=exact_zone,
                                       options=zone_options,
                                       progress=_sub(progress, 0.0, 0.45), cancel=cancel)
            zt, notes_t = zone_figures(trainee, structures, exact=exact_zone,
                                       options=zone_options,
                                       progress=_sub(progress, 0.45, 0.9), cancel=cancel)
            comp.notes += [f"reference: {n}" for n in notes_r]
            comp.notes += [f"trainee: {n}" for n in notes_t]
            comp.zone_reference, comp.zone_trainee = zr, zt
            comp.zone_computed = True
        if safety:
            from irplan.planning.safety import SafetyChecker

            if progress is not None:
                progress(0.9, "safety checks")
            chk = checker or SafetyChecker(structures, ct)
            comp.safety_reference = safety_summary(reference, chk)
            comp.safety_trainee = safety_summary(trainee, chk)
    else:
        comp.notes.append("no structures: zone coverage and safety findings not compared")
    return complete_comparison(comp)


def _sub(progress: Callable[[float, str], None] | None, lo: float,
         hi: float) -> Callable[[float, str], None] | None:
    if progress is None:
        return None
    return lambda f, text: progress(lo + (hi - lo) * f, text)
