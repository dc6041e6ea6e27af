"""Training mode: comparison of a trainee plan with a reference plan
(irplan.planning.plan_compare), on the phantom's reference plan and on known moves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from irplan.planning.plan import Needle, Plan
from irplan.planning.plan_compare import (
    CompareThresholds,
    compare_geometry,
    compare_plans,
    steepness_deg,
)


@pytest.fixture(scope="module")
def phantom(phantom_case):
    """(reference plan, CT, structure masks on the CT grid) of the phantom case."""
    from irplan.io.plan_file import load_plan, load_plan_image, load_plan_structures

    ref = load_plan(phantom_case / "plan.irplan.json")
    ct = load_plan_image(ref)
    masks, _notes = load_plan_structures(ref, ct)
    return ref, ct, masks


def _shortened(ref: Plan, i: int, shift_mm: float) -> Plan:
    """A copy of ``ref`` with needle i's tip moved ``shift_mm`` back along its axis."""
    p = ref.copy()
    n = p.needles[i]
    n.tip_lps_mm = n.tip_lps_mm - shift_mm * n.direction
    return p


def _rotate_about_tip(n: Needle, axis: np.ndarray, angle_deg: float) -> None:
    """Rotate the needle's entry about its tip (Rodrigues) by angle_deg around axis."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    v = n.entry_lps_mm - n.tip_lps_mm
    t = math.radians(angle_deg)
    v = v * math.cos(t) + np.cross(k, v) * math.sin(t) + k * (k @ v) * (1 - math.cos(t))
    n.entry_lps_mm = n.tip_lps_mm + v


@pytest.fixture(scope="module")
def shortened_comparison(phantom):
    ref, ct, masks = phantom
    trainee = _shortened(ref, 1, 6.0)
    return trainee, compare_plans(trainee, ref, masks, ct=ct)


def test_reference_against_itself_all_zero_and_pass(phantom) -> None:
    ref, ct, masks = phantom
    comp = compare_plans(ref.copy(), ref, masks, ct=ct)
    assert comp.passed and comp.score_percent == 100.0
    assert [(m.trainee_index, m.reference_index) for m in comp.matches] == \
        [(i, i) for i in range(len(ref.needles))]
    for m in comp.matches:
        for v in (m.tip_error_mm, m.tip_along_mm, m.tip_across_mm, m.entry_error_mm,
                  m.angle_deg, m.depth_difference_mm, m.exposure_difference_mm,
                  m.steepness_difference_deg, m.cc_difference_deg):
            assert v == pytest.approx(0.0, abs=1e-9)
    assert not comp.missing_reference_indices and not comp.extra_trainee_indices
    assert all(p.difference_mm == pytest.approx(0.0, abs=1e-9) for p in comp.pair_spacings)
    assert len(comp.pair_spacings) == 6          # the square's 4 sides and 2 diagonals
    assert comp.zone_trainee.coverage_percent == comp.zone_reference.coverage_percent
    assert comp.zone_trainee.minimal_margin_mm == comp.zone_reference.minimal_margin_mm
    assert comp.safety_trainee.counts == comp.safety_reference.counts
    assert comp.new_findings == []
    assert {r.name for r in comp.rules} == {"modality", "needles", "tips", "coverage", "safety"}
    assert comp.summary[-1].startswith("PASS")


def test_tip_moved_along_axis(phantom, shortened_comparison) -> None:
    ref, _ct, _masks = phantom
    trainee, comp = shortened_comparison
    m = comp.match_for_reference(1)
    assert m.trainee_index == 1
    assert m.tip_error_mm == pytest.approx(6.0, abs=1e-9)
    assert m.tip_along_mm == pytest.approx(-6.0, abs=1e-9)     # short of the reference
    assert m.tip_across_mm == pytest.approx(0.0, abs=1e-6)
    assert m.angle_deg == pytest.approx(0.0, abs=1e-6)
    assert m.entry_error_mm == pytest.approx(0.0, abs=1e-9)
    assert m.depth_difference_mm == pytest.approx(-6.0, abs=1e-9)
    for other in comp.matches:
        if other.reference_index != 1:
            assert other.tip_error_mm == pytest.approx(0.0, abs=1e-9)
    # the active part slid along the (common) axis: the perpendicular spacings stay
    assert all(abs(p.difference_mm) < 1e-6 for p in comp.pair_spacings)
    # verdict: only the tip rule fails (6 mm > 5 mm)
    assert not comp.passed
    assert [r.name for r in comp.rules if not r.passed] == ["tips"]
    assert comp.score_percent == pytest.approx(100.0 * 4 / 5)
    assert any("needle 2 tip 6.0 mm short of the reference" in s for s in comp.summary)
    # the tips are now 6 mm apart in depth: a finding the reference does not have
    assert "ire_tip_depth" in {f.code for f in comp.new_findings}
    # a looser tip limit passes the same plan
    looser = compare_plans(trainee, ref, thresholds=CompareThresholds(tip_tolerance_mm=6.5))
    assert "tips" not in [r.name for r in looser.rules if not r.passed]


def test_shortened_needle_covers_less(phantom, shortened_comparison) -> None:
    """The zone figures are those of the zone model for each plan, and pulling an
    electrode back out of the tumour lowers the coverage."""
    from irplan.planning.zone import ZoneOptions, predict_zone

    ref, _ct, masks = phantom
    trainee, comp = shortened_comparison
    direct = predict_zone(trainee, None, masks, grid_mm=2.0, options=ZoneOptions.live_preview())
    assert comp.zone_trainee.coverage_percent == pytest.approx(
        direct.margin.tumor_coverage_percent, abs=1e-9)
    assert comp.zone_trainee.grid_mm == 2.0 and comp.zone_trainee.method == "preview"
    assert comp.zone_trainee.coverage_percent < comp.zone_reference.coverage_percent
    assert comp.zone_trainee.minimal_margin_mm <= comp.zone_reference.minimal_margin_mm


def test_needle_removed_is_missing(phantom) -> None:
    ref, ct, masks = phantom
    trainee = ref.copy()
    del trainee.needles[2]
    comp = compare_plans(trainee, ref, masks, ct=ct, zone=False)
    assert comp.missing_reference_indices == [2] and comp.extra_trainee_indices == []
    # the others keep their partners: trainee needle 3 is reference needle 4
    assert [(m.trainee_index, m.reference_index) for m in comp.matches] == \
        [(0, 0), (1, 1), (2, 3)]
    assert all(m.tip_error_mm == pytest.approx(0.0, abs=1e-9) for m in comp.matches)
    assert any(s.startswith("missing needle: reference needle 3") for s in comp.summary)
    assert not comp.passed and "needles" in [r.name for r in comp.rules if not r.passed]
    pair = [p for p in comp.pair_spacings if 2 in p.reference_pair]
    assert pair and all(p.trainee_spacing_mm is None for p in pair)


def test_extra_needle_and_shuffled_order() -> None:
    ref = Plan(modality="IRE", needles=[
        Needle("ire-19g-monopolar", [x, 0.0, 0.0], [x, 0.0, 100.0], exposure_mm=20.0)
        for x in (-8.0, 8.0, 0.0)])
    trainee = ref.copy()
    trainee.needles.reverse()
    trainee.needles.append(Needle("ire-19g-monopolar", [40.0, 0, 0], [40.0, 0, 100.0],
                                  exposure_mm=20.0))
    comp = compare_geometry(trainee, ref)
    assert sorted((m.trainee_index, m.reference_index) for m in comp.matches) == \
        [(0, 2), (1, 1), (2, 0)]
    assert comp.extra_trainee_indices == [3]
    assert any(s.startswith("extra needle: needle 4") for s in comp.summary)
    assert not comp.passed
    allowed = compare_geometry(trainee, ref, CompareThresholds(allow_extra_needles=True))
    assert allowed.passed


def test_rotation_across_and_steepness() -> None:
    """Angle, entry error and the across component follow from the known moves."""
    # reference: straight down the A->P axis (vertical for a supine patient)
    ref = Plan(modality="MWA", needles=[Needle("mwa-14g", [0.0, 0.0, 0.0],
                                               [0.0, -100.0, 0.0])])
    trainee = ref.copy()
    n = trainee.needles[0]
    _rotate_about_tip(n, [0.0, 0.0, 1.0], 10.0)        # tilt 10 deg in the axial plane
    n.tip_lps_mm = n.tip_lps_mm + np.array([3.0, 0.0, 0.0])
    n.entry_lps_mm = n.entry_lps_mm + np.array([3.0, 0.0, 0.0])
    m = compare_geometry(trainee, ref).matches[0]
    assert m.angle_deg == pytest.approx(10.0, abs=1e-9)
    assert m.tip_error_mm == pytest.approx(3.0) and m.tip_across_mm == pytest.approx(3.0)
    assert m.tip_along_mm == pytest.approx(0.0, abs=1e-12)
    # entry: swept 2 x 100 mm x sin(5 deg) on the 100 mm radius about the tip, in the
    # axial plane at 5 deg from L (isosceles triangle), plus the 3 mm shift along L
    chord = 2 * 100.0 * math.sin(math.radians(5.0))
    sweep = chord * np.array([math.cos(math.radians(5.0)), math.sin(math.radians(5.0)), 0.0])
    sign = np.sign((n.entry_lps_mm - ref.needles[0].entry_lps_mm)[0] - 3.0)
    expected_entry = np.linalg.norm(np.array([3.0, 0.0, 0.0]) + sign * sweep)
    assert m.entry_error_mm == pytest.approx(expected_entry)
    assert m.steepness_difference_deg == pytest.approx(-10.0)   # flatter than vertical
    assert steepness_deg(ref.needles[0]) == pytest.approx(90.0)
    assert m.exposure_difference_mm is None
    comp = compare_geometry(trainee, ref, CompareThresholds(max_angle_deg=5.0))
    assert [r.name for r in comp.rules if not r.passed] == ["angles"]
    assert any("10° flatter" in s for s in comp.summary)


def test_modality_mismatch_fails() -> None:
    ref = Plan(modality="IRE", needles=[
        Needle("ire-19g-monopolar", [x, 0.0, 0.0], [x, 0.0, 100.0], exposure_mm=20.0)
        for x in (-8.0, 8.0)])
    trainee = ref.copy()
    trainee.modality = "MWA"
    comp = compare_geometry(trainee, ref)
    assert not comp.modality_match and not comp.passed
    assert comp.summary[0] == "modality MWA, the reference uses IRE"
    d = comp.to_dict()
    assert d["modality"] == {"trainee": "MWA", "reference": "IRE", "match": False}
    assert d["zone"] == {"trainee": None, "reference": None}
