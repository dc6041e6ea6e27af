"""Registration and evaluation on phantom scans with exact truth (known motion, zone, MAM).

Small grids around the tumour (96 x 96 x 64 at 1.5 x 1.5 x 2 mm) keep this module fast;
the anatomy and the motion are the phantom's, exact in LPS.
"""

from __future__ import annotations

import numpy as np
import pytest

from irplan.planning import phantom as ph
from irplan.planning.errors import InputError
from irplan.planning.evaluation import evaluate
from irplan.planning.registration import register
from irplan.planning.volume import Volume

SIZE = (96, 96, 64)
SPACING = (1.5, 1.5, 2.0)
EXPECTED = {"margin_ok": "complete_margin_ok", "margin_at_risk": "complete_margin_at_risk",
            "incomplete": "incomplete"}


def make_pair(scenario: str, seed: int = 0) -> dict:
    truth = ph.make_truth(seed, scenario)
    c = np.asarray(truth.tumor.center_lps_mm)
    grid = ph.phantom_grid("axial", SIZE, SPACING, centre_lps_mm=tuple(c))
    ct, masks, _ = ph.make_planning(grid, seed, scenario, truth)
    cf = ph.followup_from_planning(c, truth)
    fgrid = ph.phantom_grid("axial", SIZE, SPACING,
                            centre_lps_mm=tuple(cf + np.array([2.0, -3.0, 8.0])))
    fct, fmasks = ph.make_followup(fgrid, truth, seed)
    return {"truth": truth, "ct": ct, "masks": masks, "fct": fct, "fmasks": fmasks}


@pytest.fixture(scope="module")
def pairs() -> dict[str, dict]:
    return {sc: make_pair(sc) for sc in EXPECTED}


def tumour_surface_points(truth: ph.PhantomTruth, n: int = 300) -> np.ndarray:
    c = np.asarray(truth.tumor.center_lps_mm)
    r = float(truth.tumor.radii_mm[0])
    u = np.random.default_rng(7).normal(size=(n, 3))
    return c + r * u / np.linalg.norm(u, axis=1, keepdims=True)


def tre_mm(result, truth: ph.PhantomTruth) -> np.ndarray:
    pts = tumour_surface_points(truth)
    return np.linalg.norm(result.map_points(pts) - ph.followup_from_planning(pts, truth),
                          axis=1)


@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_rigid_registration_and_margin_match_truth(pairs, scenario):
    """After rigid registration: target error at the tumour <= 1.5 mm, MAM within 1 mm and
    coverage within 1 percentage point of the analytic truth, the right verdict."""
    p = pairs[scenario]
    reg = register(p["ct"], p["fct"], "rigid", target=p["masks"]["tumor"],
                   liver=p["masks"]["liver"])
    err = tre_mm(reg, p["truth"])
    assert err.max() <= 1.5, f"TRE mean {err.mean():.2f} max {err.max():.2f} mm"
    assert reg.metric_value < reg.initial_metric_value  # MI improved (lower is better)
    res = evaluate(p["ct"], p["fct"], p["masks"]["tumor"], p["fmasks"]["ablation_zone"],
                   registration=reg)
    truth = p["truth"]
    assert res.minimal_margin_mm == pytest.approx(truth.minimal_margin_mm, abs=1.0)
    assert res.margin.tumor_coverage_percent == pytest.approx(
        truth.tumor_coverage_percent, abs=1.0)
    assert res.verdict == EXPECTED[scenario]
    if scenario == "incomplete":
        vol = truth.tumor.volume_ml
        exact_res = vol * (1 - truth.tumor_coverage_percent / 100.0)
        assert res.margin.residual_tumor_ml == pytest.approx(exact_res, abs=0.1)
        assert res.residual is not None and res.residual["components"] >= 1
    else:
        assert res.residual is None


def test_landmarks_recover_a_large_offset(pairs):
    """The follow-up moved 60 mm (beyond what a local search finds): 4 landmark pairs
    initialise the rigid stage; residuals and tumour error stay small."""
    p = pairs["margin_at_risk"]
    truth = p["truth"]
    shift = np.array([0.0, 25.0, 55.0])
    fct = Volume(p["fct"].array, p["fct"].origin_lps_mm + shift, p["fct"].spacing_mm,
                 p["fct"].direction)
    c = np.asarray(truth.tumor.center_lps_mm)
    fixed_pts = c + np.array([[0, 0, 0], [30, 0, 5], [0, 30, -5], [-10, -10, 25.0]])
    moving_pts = ph.followup_from_planning(fixed_pts, truth) + shift
    reg = register(p["ct"], fct, "rigid", target=p["masks"]["tumor"],
                   landmarks=(fixed_pts, moving_pts))
    assert max(reg.landmark_residuals_mm) < 1.0
    pts = tumour_surface_points(truth)
    err = np.linalg.norm(reg.map_points(pts) - (ph.followup_from_planning(pts, truth) + shift),
                         axis=1)
    assert err.max() <= 1.5
    assert reg.to_dict()["landmark_residual_mean_mm"] < 1.0


@pytest.mark.slow
def test_deformable_keeps_tumour_and_reports_rigid_side_by_side(pairs):
    p = pairs["incomplete"]
    # few B-spline iterations keep the test short; the bench runs the full default
    reg = register(p["ct"], p["fct"], "deformable", target=p["masks"]["tumor"],
                   followup_exclude=p["fmasks"]["ablation_zone"], bspline_iterations=8)
    res = evaluate(p["ct"], p["fct"], p["masks"]["tumor"], p["fmasks"]["ablation_zone"],
                   registration=reg)
    err = tre_mm(res.registration, p["truth"])
    assert err.max() <= 1.5, f"TRE mean {err.mean():.2f} max {err.max():.2f} mm"
    assert res.minimal_margin_mm == pytest.approx(p["truth"].minimal_margin_mm, abs=1.0)
    d = res.to_dict()
    assert d["registration"]["method"] == "deformable"
    assert d["rigid_comparison"]["verdict"] == "incomplete"
    assert abs(d["rigid_comparison"]["minimal_margin_mm"] - d["minimal_margin_mm"]) < 1.0


def test_registration_refuses_bad_input(pairs):
    p = pairs["margin_ok"]
    with pytest.raises(InputError, match="unknown method"):
        register(p["ct"], p["fct"], "affine")
    with pytest.raises(InputError, match="at least 3"):
        register(p["ct"], p["fct"], "rigid", landmarks=([[0, 0, 0]], [[0, 0, 0]]))
    with pytest.raises(InputError, match="pairs"):
        register(p["ct"], p["fct"], "rigid",
                 landmarks=(np.zeros((4, 3)), np.zeros((3, 3))))
    far = Volume(p["fct"].array, p["fct"].origin_lps_mm + 5000.0, p["fct"].spacing_mm)
    with pytest.raises(InputError, match="overlap"):
        register(p["ct"], far, "rigid", target=p["masks"]["tumor"],
                 landmarks=(np.eye(3) * 10, np.eye(3) * 10))


@pytest.mark.parametrize("scenario", ["margin_ok", "incomplete"])
def test_ablation_zone_from_one_click(pairs, scenario):
    """Region growing from the zone centre on the follow-up matches the true zone."""
    from irplan.planning.ablation_segmentation import segment_ablation_zone

    p = pairs[scenario]
    truth = p["truth"]
    seed = ph.followup_from_planning(np.asarray(truth.ablation_zone.center_lps_mm),
                                     truth)
    zone = segment_ablation_zone(p["fct"], seed)
    a = zone.array != 0
    b = p["fmasks"]["ablation_zone"].array != 0
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.93
    assert zone.metadata["volume_ml"] == pytest.approx(truth.ablation_zone.volume_ml,
                                                       rel=0.1)
    lo, hi = zone.metadata["hu_window"]
    assert lo < 30.0 < hi < 100.0  # zone ~30 HU inside, enhancing liver ~100 HU outside


def test_ablation_seed_outside_the_zone_is_refused(pairs):
    from irplan.planning.ablation_segmentation import segment_ablation_zone

    p = pairs["margin_ok"]
    with pytest.raises(InputError, match="outside the follow-up scan"):
        segment_ablation_zone(p["fct"], [5000.0, 0.0, 0.0])
    truth = p["truth"]
    seed = ph.followup_from_planning(np.asarray(truth.ablation_zone.center_lps_mm),
                                     truth)
    with pytest.raises(InputError, match="window"):
        segment_ablation_zone(p["fct"], seed, hu_window=(150.0, 250.0))
