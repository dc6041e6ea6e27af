"""Margin analysis on analytic spheres: MAM (mm), coverage (%), residual (mL), shell (%)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from irplan.planning.errors import InputError
from irplan.planning.margin import compute_margin
from irplan.planning.volume import Volume

R_TUMOR = 8.0
R_ZONE = 13.0


def sphere_mask(spacing_mm, size_ijk, origin_lps_mm, centre_lps_mm, radius_mm,
                direction=None) -> Volume:
    """Voxels whose centre lies inside the sphere (rasterisation as a CT mask would be)."""
    grid = Volume(np.zeros(tuple(size_ijk)[::-1], np.uint8), origin_lps_mm,
                  np.asarray(spacing_mm, float), np.eye(3) if direction is None else direction)
    k, j, i = np.meshgrid(*(np.arange(n) for n in grid.array.shape), indexing="ij")
    p = grid.index_to_lps(np.stack([i, j, k], axis=-1).astype(float))
    return grid.with_array((np.linalg.norm(p - centre_lps_mm, axis=-1) <= radius_mm)
                           .astype(np.uint8))


def lens_ml(r1: float, r2: float, d: float) -> float:
    """Exact volume (mL) of the intersection of two spheres (radii r1, r2 mm, distance d)."""
    if d >= r1 + r2:
        return 0.0
    if d <= abs(r1 - r2):
        return 4.0 / 3.0 * np.pi * min(r1, r2) ** 3 / 1000.0
    v = (np.pi * (r1 + r2 - d) ** 2
         * (d * d + 2 * d * r2 - 3 * r2 * r2 + 2 * d * r1 + 6 * r1 * r2 - 3 * r1 * r1)
         / (12 * d))
    return v / 1000.0


def ball_ml(r: float) -> float:
    return 4.0 / 3.0 * np.pi * r ** 3 / 1000.0


ORIGIN = np.array([-22.3, -21.9, -22.1])
CENTRE_T = np.array([0.21, -0.37, 0.13])


def _pair(offset_mm: float, spacing=(0.5, 0.5, 0.5), direction=(0.6, 0.48, 0.64)):
    d = np.asarray(direction) / np.linalg.norm(direction)
    cz = CENTRE_T + offset_mm * d
    size = [int(round(44.0 / s)) for s in spacing]
    t = sphere_mask(spacing, size, ORIGIN, CENTRE_T, R_TUMOR)
    z = sphere_mask(spacing, size, ORIGIN, cz, R_ZONE)
    return t, z, cz


@pytest.mark.parametrize("offset_mm", [0.0, 2.3, 4.6, 6.2])
def test_mam_exact_on_spheres_at_half_mm(offset_mm):
    """Spheres rasterised at 0.5 mm: MAM = R_zone - offset - R_tumour within 0.5 mm."""
    t, z, _cz = _pair(offset_mm)
    res = compute_margin(t, z, required_margin_mm=5.0)
    exact = R_ZONE - offset_mm - R_TUMOR
    assert res.minimal_margin_mm == pytest.approx(exact, abs=0.5)
    # the MAM point lies on the tumour surface, on the side the zone moved away from
    assert np.linalg.norm(res.mam_point_lps_mm - CENTRE_T) == pytest.approx(R_TUMOR, abs=0.3)
    if offset_mm > 1.0:
        away = -(np.array([0.6, 0.48, 0.64]) / np.linalg.norm([0.6, 0.48, 0.64]))
        v = (res.mam_point_lps_mm - CENTRE_T) / R_TUMOR
        assert float(v @ away) > 0.9
    assert res.tumor_volume_ml == pytest.approx(ball_ml(R_TUMOR), rel=0.02)
    covered = lens_ml(R_TUMOR, R_ZONE, offset_mm)
    assert res.tumor_coverage_percent == pytest.approx(100.0 * covered / ball_ml(R_TUMOR),
                                                       abs=0.5)
    assert res.residual_tumor_ml == pytest.approx(ball_ml(R_TUMOR) - covered, abs=0.01)
    shell_exact = 100.0 * lens_ml(R_TUMOR + 5.0, R_ZONE, offset_mm) / ball_ml(R_TUMOR + 5.0)
    assert res.shell_coverage_percent == pytest.approx(shell_exact, abs=1.5)
    # area shares add up to 100 %, the histogram too
    assert (res.surface_percent_ok + res.surface_percent_at_risk
            + res.surface_percent_uncovered) == pytest.approx(100.0, abs=1e-6)
    assert res.histogram_area_percent.sum() == pytest.approx(100.0, abs=1e-6)
    assert res.surface_area_mm2 == pytest.approx(4 * np.pi * R_TUMOR ** 2, rel=0.03)


def test_incomplete_ablation_residual_and_where():
    """Zone shifted 9 mm: the tumour pokes out by 4 mm; residual volume and place are right."""
    offset = 9.0
    t, z, cz = _pair(offset)
    res = compute_margin(t, z)
    assert res.minimal_margin_mm == pytest.approx(R_ZONE - offset - R_TUMOR, abs=0.5)
    assert not res.complete
    covered = lens_ml(R_TUMOR, R_ZONE, offset)
    exact_cov = 100.0 * covered / ball_ml(R_TUMOR)
    assert res.tumor_coverage_percent == pytest.approx(exact_cov, abs=1.0)
    assert res.residual_tumor_ml == pytest.approx(ball_ml(R_TUMOR) - covered, abs=0.03)
    assert res.residual_components == 1
    # the residual lies on the far side of the tumour from the zone centre
    to_zone = (cz - CENTRE_T) / offset
    rel = res.residual_centroid_lps_mm - CENTRE_T
    assert float(rel @ to_zone) < -3.0
    assert np.linalg.norm(rel - (rel @ to_zone) * to_zone) < 0.5  # on the axis
    assert res.surface_percent_uncovered > 1.0


def test_zone_on_other_grid_and_through_transform():
    """A zone mask on a rotated 0.8 mm grid, and the same zone moved by a known rigid
    transform, give the same margin as the zone on the tumour's own grid."""
    offset = 3.0
    t, z, cz = _pair(offset)
    ref = compute_margin(t, z)
    ang = np.deg2rad(20.0)
    rot = np.array([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]])
    z_rot = sphere_mask((0.8, 0.8, 0.8), (70, 70, 70), np.array([-5.0, -35.0, -28.0]), cz,
                        R_ZONE, direction=rot)
    other = compute_margin(t, z_rot)
    assert other.minimal_margin_mm == pytest.approx(ref.minimal_margin_mm, abs=0.35)
    # follow-up frame: zone moved by rotation + translation; tf maps tumour -> zone space
    euler = sitk.Euler3DTransform()
    euler.SetCenter(tuple(CENTRE_T))
    euler.SetRotation(0.05, -0.08, 0.12)
    euler.SetTranslation((6.0, -4.0, 9.0))
    cz_moved = np.array(euler.TransformPoint(tuple(cz)))
    z_moved = sphere_mask((0.5, 0.5, 0.5), (90, 90, 90), cz_moved - 22.0, cz_moved, R_ZONE)
    moved = compute_margin(t, z_moved, zone_transform=euler)
    assert moved.minimal_margin_mm == pytest.approx(ref.minimal_margin_mm, abs=0.3)
    assert moved.tumor_coverage_percent == pytest.approx(ref.tumor_coverage_percent, abs=0.5)


def test_coarse_ct_voxels_bias_is_small_and_low():
    """At CT voxels (0.75 x 0.75 x 2.5 mm) rasterisation costs accuracy; the MAM stays
    within 1.2 mm of the exact value (measured bias in bench/bench_evaluate.py)."""
    errs = []
    for off in (1.5, 4.0):
        t, z, _cz = _pair(off, spacing=(0.75, 0.75, 2.5))
        res = compute_margin(t, z)
        errs.append(res.minimal_margin_mm - (R_ZONE - off - R_TUMOR))
    assert all(-1.2 <= e <= 0.5 for e in errs), errs


def test_preview_on_tumour_grid_and_json():
    t, z, _cz = _pair(2.0, spacing=(1.0, 1.0, 1.0))
    res = compute_margin(t, z, fine_spacing_mm=None)
    assert res.spacing_mm == pytest.approx(1.0)
    assert res.minimal_margin_mm == pytest.approx(3.0, abs=1.0)
    d = json.loads(json.dumps(res.to_dict()))
    for key in ("minimal_margin_mm", "tumor_coverage_percent", "residual_tumor_ml",
                "shell_coverage_percent", "mam_point_lps_mm", "histogram"):
        assert key in d
    assert len(d["histogram"]["edges_mm"]) == len(d["histogram"]["counts"]) + 1


def test_user_errors_name_the_problem():
    t, z, _cz = _pair(2.0, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="empty"):
        compute_margin(t, z.with_array(np.zeros_like(z.array)))
    with pytest.raises(InputError, match="empty"):
        compute_margin(t.with_array(np.zeros_like(t.array)), z)
    # a zone image that does not reach the tumour
    far = Volume(np.ones((10, 10, 10), np.uint8), np.array([100.0, 100.0, 100.0]),
                 np.ones(3))
    with pytest.raises(InputError, match="does not cover"):
        compute_margin(t, far)
    with pytest.raises(InputError, match="fine_spacing_mm"):
        compute_margin(t, z, fine_spacing_mm=0.0)


def test_predicted_vs_achieved_on_shifted_spheres():
    """Planned zone vs achieved zone shifted 3 mm: Dice, volumes, HD95 and centroid offset
    match the geometry."""
    from irplan.planning.evaluation import compare_zones

    size = (88, 88, 88)
    c = np.array([0.0, 0.0, 0.0])
    shift = np.array([3.0, 0.0, 0.0])
    a = sphere_mask((0.5, 0.5, 0.5), size, ORIGIN, c, 10.0)
    b = sphere_mask((0.5, 0.5, 0.5), size, ORIGIN, c + shift, 10.0)
    d = compare_zones(a, b)
    dice_exact = lens_ml(10.0, 10.0, 3.0) / ball_ml(10.0)
    assert d["dice"] == pytest.approx(dice_exact, abs=0.01)
    assert d["predicted_volume_ml"] == pytest.approx(ball_ml(10.0), rel=0.01)
    assert d["centroid_offset_mm"] == pytest.approx(3.0, abs=0.05)
    assert 2.0 <= d["hd95_mm"] <= 3.2          # the largest surface gap is the 3 mm shift
    same = compare_zones(a, a)
    assert same["dice"] == 1.0 and same["hd95_mm"] == 0.0


def test_verdict_terms_and_directions():
    from irplan.planning.evaluation import classify, describe_direction

    assert classify(-0.1) == "incomplete"
    assert classify(0.0) == "complete_margin_at_risk"
    assert classify(4.99) == "complete_margin_at_risk"
    assert classify(5.0) == "complete_margin_ok"
    assert classify(3.0, required_margin_mm=3.0) == "complete_margin_ok"
    assert describe_direction([5.0, -4.0, 0.1]) == "left-anterior"   # +x left, -y anterior
    assert describe_direction([0.0, 0.0, -2.0]) == "inferior"
