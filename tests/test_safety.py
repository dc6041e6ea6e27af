"""Safety checks on constructed geometries (analytic tubes/spheres, 0.5 mm grids):
distances exact to 0.5 mm, severities as documented, and moving a needle away from a
structure never makes its finding worse (hypothesis)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irplan.io.phantom_writer import load_truth
from irplan.planning.devices import get_device
from irplan.planning.ire_array import make_array
from irplan.planning.plan import IreParams, Needle, Plan
from irplan.planning.safety import SafetyChecker, check_plan, heat_sink_findings
from irplan.planning.volume import Volume

SP = 0.5
R14 = get_device("mwa-14g").radius_mm     # 1.055 mm
R19 = get_device("ire-19g-monopolar").radius_mm


def grid(size_mm: float = 40.0, sp: float = SP, origin=(0.0, 0.0, 0.0)) -> Volume:
    n = int(round(size_mm / sp))
    return Volume(np.zeros((n, n, n), np.uint8), origin, [sp] * 3)


@lru_cache(maxsize=8)
def _centres(size_mm: float, sp: float) -> np.ndarray:
    return grid(size_mm, sp).voxel_centres_lps()


def tube_z(centre_xy, radius, size_mm=40.0, sp=SP) -> Volume:
    """Vessel along S through (x, y) = centre_xy."""
    p = _centres(size_mm, sp)
    m = (p[..., 0] - centre_xy[0]) ** 2 + (p[..., 1] - centre_xy[1]) ** 2 <= radius ** 2
    return grid(size_mm, sp).with_array(m.astype(np.uint8))


def sphere(centre, radius, size_mm=40.0, sp=SP) -> Volume:
    p = _centres(size_mm, sp)
    m = np.linalg.norm(p - np.asarray(centre), axis=-1) <= radius
    return grid(size_mm, sp).with_array(m.astype(np.uint8))


def mwa(tip, entry) -> Plan:
    return Plan(modality="MWA", needles=[Needle("mwa-14g", tip, entry)])


def codes(findings, code):
    return [f for f in findings if f.code == code]


def real(findings):
    """Findings without the device-catalogue note (tested on its own)."""
    return [f for f in findings if f.code != "device_unverified"]


# ------------------------------------------------------------------ path vs structures
@pytest.fixture(scope="module")
def pv_checker() -> SafetyChecker:
    # 6 mm portal vein along S at (20.2, 19.9); 2.4 mm artery at (8.3, 30.1)
    c = SafetyChecker({"portal_vein": tube_z((20.2, 19.9), 3.0),
                       "artery": tube_z((8.3, 30.1), 1.2)})
    c.prepare()
    return c


@pytest.mark.parametrize("clearance", [-1.5, -0.3, 0.6, 2.2, 4.4, 6.0, 9.0])
def test_path_near_or_through_a_thick_vessel(pv_checker: SafetyChecker, clearance: float) -> None:
    x = 20.2 + 3.0 + R14 + clearance       # needle axis along P at this L
    plan = mwa([x, 19.9, 20.0], [x, 39.0, 20.0])
    found = codes(pv_checker.check(plan), "path_crosses") + \
        codes(pv_checker.check(plan), "path_near")
    pv = [f for f in found if f.structure == "portal_vein"]
    if clearance < 0:
        assert len(pv) == 1 and pv[0].severity == "error" and pv[0].code == "path_crosses"
    elif clearance < 5.0:  # >= 5 mm calibre -> 5 mm threshold
        assert len(pv) == 1 and pv[0].severity == "warning" and pv[0].code == "path_near"
        assert "Portal vein" in pv[0].message and f"{pv[0].distance_mm:.1f} mm" in pv[0].message
    else:
        assert pv == []
    d, _, depth = pv_checker.path_clearance_mm(plan.needles[0], "portal_vein", R14)
    assert d == pytest.approx(clearance, abs=0.5)
    if clearance < 5.0:
        assert pv[0].distance_mm == pytest.approx(clearance, abs=0.5)
        assert depth == pytest.approx(39.0 - 19.9, abs=1.0)  # closest at the vessel's level


def test_threshold_follows_vessel_calibre(pv_checker: SafetyChecker) -> None:
    # thin (2.4 mm) artery: 2 mm threshold -> 3 mm clearance is fine, 1.5 mm is not
    for clearance, expect in ((3.0, 0), (1.5, 1)):
        x = 8.3 - 1.2 - R14 - clearance
        f = [f for f in pv_checker.check(mwa([x, 30.1, 20], [x, 39.5, 20]))
             if f.structure == "artery"]
        assert len(f) == expect
        if f:
            assert "calibre 2." in f[0].message and "threshold 2 mm" in f[0].message
    assert pv_checker.clearance_threshold_mm("portal_vein", 6.0) == 5.0
    assert pv_checker.clearance_threshold_mm("portal_vein", 4.0) == 3.0


def test_ire_proximity_to_vessel_is_info_but_crossing_is_error(pv_checker: SafetyChecker) -> None:
    for clearance, sev in ((2.0, "info"), (-1.0, "error")):
        x = 20.2 + 3.0 + R19 + clearance
        plan = Plan(modality="IRE", needles=[
            Needle("ire-19g-monopolar", [x, 19.9, 20], [x, 39.5, 20], 10.0),
            Needle("ire-19g-monopolar", [x + 15, 19.9, 20], [x + 15, 39.5, 20], 10.0)])
        f = [f for f in pv_checker.check(plan) if f.structure == "portal_vein"]
        assert [g.severity for g in f] == [sev]


def test_sphere_organ_tip_approach_and_unknown_structure() -> None:
    c = SafetyChecker({"gallbladder": sphere((20.3, 20.1, 15.2), 6.0),
                       "nerve_plexus": sphere((20, 20, 33), 3.0)})
    for gap in (1.2, 3.7, 7.0):
        tip = np.array([20.3, 20.1, 15.2 + 6.0 + gap])
        plan = mwa(tip, tip + [0, 0.0, 40.0])
        f = [g for g in c.check(plan) if g.structure == "gallbladder"]
        d = c.path_clearance_mm(plan.needles[0], "gallbladder", R14)[0]
        assert d == pytest.approx(gap - R14, abs=0.5)
        assert (len(f) == 1) == (gap - R14 < 5.0)
    plan = mwa([20, 5, 33], [20, 39.9, 33])  # through the unknown structure
    f = c.check(plan)
    assert [g.code for g in f if g.structure == "nerve_plexus"] == ["path_crosses",
                                                                    "unknown_structure"]
    assert any("nerve_plexus" in g.message and "not a standard type" in g.message for g in f)


def test_bone_and_lung_crossing_are_errors() -> None:
    c = SafetyChecker({"bone": tube_z((10, 30), 2.0), "lung": sphere((30, 30, 30), 6.0)})
    f = real(c.check(mwa([10, 20, 20], [10, 39.9, 20])))
    assert [(g.severity, g.structure) for g in f] == [("error", "bone")]
    f = real(c.check(mwa([30, 30, 20], [30, 30, 39.9])))
    assert [(g.severity, g.code, g.structure) for g in f] == [("error", "path_crosses", "lung")]


# ------------------------------------------------------------------ skin, air, depth
@pytest.fixture(scope="module")
def body_ct() -> tuple[Volume, Volume]:
    g = grid(60.0, 1.0)
    p = g.voxel_centres_lps()
    body = (p[..., 1] <= 40.3)  # skin is the plane P = 40.3 (+ half voxel)
    ct = np.where(body, 40.0, -1000.0)
    air = np.linalg.norm(p - [30, 25, 30], axis=-1) <= 4.0   # gas bubble, 8 mm across
    ct = np.where(air, -1000.0, ct).astype(np.int16)
    return g.with_array(body.astype(np.uint8)), g.with_array(ct)


def test_entry_outside_skin_and_tip_outside_body(body_ct) -> None:
    body, ct = body_ct
    c = SafetyChecker({"body": body}, ct)
    f = c.check(mwa([10, 20, 10], [10, 40.8 + 15.0, 10]))
    (e,) = codes(f, "entry_outside_skin")
    assert e.distance_mm == pytest.approx(15.0, abs=0.5) and e.severity == "warning"
    assert codes(c.check(mwa([10, 20, 10], [10, 45.0, 10])), "entry_outside_skin") == []
    (t,) = codes(c.check(mwa([10, 44, 10], [10, 58, 10])), "tip_outside_body")
    assert t.severity == "error"


@pytest.mark.parametrize("with_body", [True, False])
def test_path_through_air(body_ct, with_body: bool) -> None:
    body, ct = body_ct
    c = SafetyChecker({"body": body} if with_body else {}, ct)
    (a,) = codes(c.check(mwa([30, 15, 30], [30, 50, 30])), "path_through_air")
    assert a.severity == "error" and a.distance_mm == pytest.approx(8.0, abs=1.0)
    assert "crosses air" in a.message
    assert codes(c.check(mwa([40, 15, 30], [40, 50, 30])), "path_through_air") == []


def test_depth_beyond_device_length() -> None:
    plan = Plan(modality="MWA", needles=[Needle("mwa-16g", [0, 0, 0], [0, 0, 212.0])])
    (f,) = codes(check_plan(plan, {}), "depth_exceeds_device")
    assert f.severity == "error" and f.distance_mm == pytest.approx(12.0, abs=1e-6)
    assert "212.0 mm" in f.message and "200 mm" in f.message


# ------------------------------------------------------------------ IRE array
def ire(needles, voltage=None) -> Plan:
    return Plan(modality="IRE", needles=needles, ire=IreParams(voltage, 90, 90.0))


def E(tip, entry, exp=20.0) -> Needle:
    return Needle("ire-19g-monopolar", tip, entry, exp)


def test_clean_ire_array_has_no_geometry_findings() -> None:
    arr = make_array("square", np.array([0, 0, 0.0]), [0, 0, -1], 15.0, 5.0, 20.0)
    assert real(check_plan(ire(arr), {})) == []  # voltage derived per pair: nothing to say
    # one voltage for all pairs: the diagonals (21.2 mm) fall below 1500 V/cm
    f = real(check_plan(ire(arr, voltage=2400.0), {}))
    assert {g.code for g in f} == {"ire_voltage_per_cm"}
    assert sorted(g.needles for g in f) == [[0, 2], [1, 3]]


def test_not_parallel() -> None:
    ang = math.radians(12.0)
    plan = ire([E([0, 0, 0], [0, 0, 100]),
                E([15, 0, 0], [15 + 100 * math.sin(ang), 0, 100 * math.cos(ang)])])
    (f,) = codes(check_plan(plan, {}), "ire_not_parallel")
    assert f.needles == [0, 1] and "12.0 deg" in f.message


@pytest.mark.parametrize("spacing,bad", [(8.0, True), (10.5, False), (24.0, False), (27.0, True)])
def test_pair_spacing(spacing: float, bad: bool) -> None:
    plan = ire([E([0, 0, 0], [0, 0, 100]), E([spacing, 0, 0], [spacing, 0, 100])])
    f = codes(check_plan(plan, {}), "ire_spacing")
    assert bool(f) == bad
    if bad:
        assert f[0].distance_mm == pytest.approx(spacing, abs=1e-6)


def test_electrodes_too_close_anywhere() -> None:
    # crossing paths: 15 mm apart at the tips, 3 mm apart higher up
    plan = ire([E([0, 0, 0], [0, 0, 100]), E([15, 0, 0], [-15 * 1.2 + 15, 3.0, 100 * 1.2])])
    from irplan.planning.needle_geometry import segment_segment_distance_mm

    exact = segment_segment_distance_mm(*[p for n in plan.needles
                                           for p in (n.entry_lps_mm, n.tip_lps_mm)])
    (f,) = codes(check_plan(plan, {}), "ire_too_close")
    assert f.severity == "error" and f.distance_mm == pytest.approx(exact, abs=1e-9)
    assert exact < 5.0


def test_tips_at_different_depths() -> None:
    plan = ire([E([0, 0, 0], [0, 0, 100]), E([15, 0, -8.0], [15, 0, 100])])
    (f,) = codes(check_plan(plan, {}), "ire_tip_depth")
    assert f.distance_mm == pytest.approx(8.0, abs=1e-6) and f.needles == [0, 1]


def test_exposure_must_cover_tumour_extent() -> None:
    tumour = sphere((20, 20, 20), 8.0)  # extent along S 16 mm (+0.5 voxel)
    for exp, tip_z, short in ((20.0, 12.0 - 2, None), (10.0, 12.0 - 0.0, 6.5)):
        plan = ire([E([12.5, 20, tip_z], [12.5, 20, 110], exp),
                    E([27.5, 20, tip_z], [27.5, 20, 110], exp)])
        f = codes(check_plan(plan, {"tumor": tumour}), "ire_exposure_coverage")
        if short is None:
            assert f == []
        else:
            assert len(f) == 2 and f[0].distance_mm == pytest.approx(short, abs=0.5)
            assert "shallow edge" in f[0].message


def test_exposure_outside_device_range_and_voltage() -> None:
    plan = ire([E([0, 0, 0], [0, 0, 100], 45.0), E([15, 0, 0], [15, 0, 100], 20.0)], 3200.0)
    f = check_plan(plan, {})
    assert [g.needles for g in codes(f, "exposure_range")] == [[0]]
    assert codes(f, "ire_voltage")[0].severity == "error"
    info = codes(check_plan(ire(plan.needles[1:] + [E([35, 0, 0], [35, 0, 100])], 1500.0), {}),
                 "ire_voltage_per_cm")
    assert info and "750 V/cm" in info[0].message


def test_single_electrode_ire_is_an_error() -> None:
    (f,) = codes(check_plan(ire([E([0, 0, 0], [0, 0, 100])]), {}), "ire_count")
    assert f.severity == "error"


# ------------------------------------------------------------------ heat sink
@pytest.mark.parametrize("radius,gap,expect", [(2.5, 6.0, True), (1.0, 3.0, False),
                                               (2.5, 13.0, False)])
def test_heat_sink(radius: float, gap: float, expect: bool) -> None:
    zone = sphere((20, 20, 20), 6.0, size_mm=50.0)
    vessel = tube_z((20 + 6.0 + gap + radius, 20.0), radius, size_mm=50.0)
    f = heat_sink_findings(zone, {"hepatic_vein": vessel})
    assert bool(f) == expect
    if expect:
        assert f[0].distance_mm == pytest.approx(gap, abs=0.5)
        assert "Hepatic veins" in f[0].message and "heat sink" in f[0].message


# ------------------------------------------------------------------ property
@lru_cache(maxsize=1)
def _sphere_checker() -> SafetyChecker:
    c = SafetyChecker({"gallbladder": sphere((20.0, 20.0, 20.0), 5.0)})
    c.prepare()
    return c


_RANK = {"error": 0, "warning": 1, "info": 2, None: 3}


def _worst(checker: SafetyChecker, needle: Needle):
    f = [g for g in checker.check(Plan(modality="MWA", needles=[needle]))
         if g.structure == "gallbladder"]
    return (f[0].severity if f else None), checker.path_clearance_mm(needle, "gallbladder",
                                                                       R14)[0]


@settings(max_examples=60, deadline=None)
@given(tip=st.tuples(*[st.floats(8.0, 32.0)] * 3),
       direction=st.tuples(*[st.floats(-1.0, 1.0)] * 3),
       step=st.floats(1.0, 8.0))
def test_moving_away_never_makes_the_finding_worse(tip, direction, step) -> None:
    d = np.asarray(direction)
    if np.linalg.norm(d) < 0.1:
        return
    tip = np.asarray(tip)
    entry = tip - 15.0 * d / np.linalg.norm(d)
    needle = Needle("mwa-14g", tip, entry)
    # direction away from the sphere: centre -> closest point of the axis
    from irplan.planning.needle_geometry import segment_segment_closest

    _, cp, _ = segment_segment_closest(entry, tip, np.full(3, 20.0), np.full(3, 20.0))
    away = cp - 20.0
    if np.linalg.norm(away) < 1e-6:
        return
    away /= np.linalg.norm(away)
    moved = Needle("mwa-14g", tip + step * away, entry + step * away)
    sev0, d0 = _worst(_sphere_checker(), needle)
    sev1, d1 = _worst(_sphere_checker(), moved)
    assert _RANK[sev1] >= _RANK[sev0]
    assert d1 >= d0 - 0.05
    g = grid()
    inside = all(bool(np.all(g.contains_lps(np.array([n.tip_lps_mm, n.entry_lps_mm]))))
                 for n in (needle, moved))
    if inside and d0 < 30 and d1 < 30:  # both within the image and the map's pad
        assert d1 == pytest.approx(d0 + step, abs=0.6)


# ------------------------------------------------------------------ modality advice
def test_advice_recommends_ire_near_a_major_vessel() -> None:
    from irplan.planning.advice import modality_advice

    tumour = sphere((15.0, 20.0, 20.0), 5.0)
    for gap, rec in ((4.0, "IRE"), (14.0, "either")):
        pv = tube_z((15.0 + 5.0 + gap + 3.0, 20.0), 3.0)          # 6 mm portal vein
        thin = tube_z((15.0 - 5.0 - 2.0 - 0.8, 20.0), 0.8)         # 1.6 mm: not major
        a = modality_advice(tumour, {"portal_vein": pv, "artery": thin})
        assert a.recommended == rec
        assert a.nearest_vessel is not None and a.nearest_vessel.key == "portal_vein"
        assert a.nearest_vessel.distance_mm == pytest.approx(gap, abs=0.5)
        assert "Portal vein" in a.message and "no bile duct segmented" in a.message
        if rec == "IRE":
            assert "IRE is the indicated technique" in a.message and "heat sink" in a.message
    duct = tube_z((15.0, 20.0 + 5.0 + 2.5 + 1.5), 1.5)
    a = modality_advice(tumour, {"bile_duct": duct})
    assert a.recommended == "IRE" and a.nearest_duct is not None
    assert a.nearest_duct.distance_mm == pytest.approx(2.5, abs=0.5)


# ------------------------------------------------------------------ irplan check CLI
def test_irplan_check_cli_on_a_constructed_case(tmp_path, capsys) -> None:
    import json

    from irplan.app.cli import main as cli_main
    from irplan.io.masks import write_mask, write_volume_file
    from irplan.io.plan_file import save_plan
    from irplan.planning.plan import ImageRef

    pv = tube_z((20.2, 19.9), 3.0)
    ct = pv.with_array(np.where(pv.array > 0, 180, 60).astype(np.int16))
    write_volume_file(ct, tmp_path / "ct.nii.gz")
    write_mask(pv, tmp_path / "masks" / "portal_vein.nii.gz")
    x = 20.2 + 3.0 + R14 + 2.0
    plan = Plan(modality="MWA", image=ImageRef("ct.nii.gz", ""),
                needles=[Needle("mwa-14g", [x, 19.9, 20.0], [x, 39.0, 20.0])],
                structures={"portal_vein": "masks/portal_vein.nii.gz"})
    plan.file_dir = str(tmp_path)
    save_plan(plan, tmp_path / "p.irplan.json")
    assert cli_main(["check", str(tmp_path / "p.irplan.json"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [(f["severity"], f["code"], f["structure"], f["needles"]) for f in out] == \
        [("warning", "path_near", "portal_vein", [0]), ("info", "device_unverified", None, [0])]
    assert out[0]["distance_mm"] == pytest.approx(2.0, abs=0.5)
    assert cli_main(["check", str(tmp_path / "p.irplan.json")]) == 0
    text = capsys.readouterr().out
    assert "WARNING" in text and "Portal vein" in text and "1 warning(s)" in text


# ------------------------------------------------------------------ needle geometry
@pytest.mark.parametrize("entry,cc,lr,kind", [
    ([0, -100, 0], 0.0, 0.0, "in-plane"),                 # straight anterior -> posterior
    ([-100, 0, 0], 0.0, 90.0, "in-plane"),                # from the right, going left
    ([0, -100 * math.cos(math.radians(20)), 100 * math.sin(math.radians(20))], 20.0, 0.0,
     "single-oblique"),                                   # tilted caudally in the sagittal plane
    ([-50, -80, 40], None, None, "double-oblique"),
])
def test_needle_angles(entry, cc, lr, kind) -> None:
    from irplan.planning.needle_geometry import needle_angles

    a = needle_angles(Needle("mwa-14g", [0, 0, 0], entry))
    assert a.depth_mm == pytest.approx(float(np.linalg.norm(entry)))
    assert a.plane_kind == kind
    if cc is not None:
        assert a.cc_angle_deg == pytest.approx(cc, abs=1e-9)
        assert a.lr_angle_deg == pytest.approx(lr, abs=1e-9)
    else:
        u = -np.asarray(entry, float) / np.linalg.norm(entry)
        assert a.cc_angle_deg == pytest.approx(math.degrees(math.asin(-u[2])))
        assert a.lr_angle_deg == pytest.approx(math.degrees(math.atan2(u[0], u[1])))


def test_segment_distances_match_brute_force() -> None:
    from irplan.planning.needle_geometry import (
        point_segment_distance_mm,
        segment_segment_distance_mm,
    )

    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 401)
    for _ in range(40):
        p0, p1, q0, q1 = rng.uniform(-20, 20, (4, 3))
        a = p0 + t[:, None] * (p1 - p0)
        b = q0 + t[:, None] * (q1 - q0)
        brute = np.min(np.linalg.norm(a[:, None] - b[None], axis=-1))
        exact = segment_segment_distance_mm(p0, p1, q0, q1)
        assert exact <= brute + 1e-9 and exact == pytest.approx(brute, abs=0.2)
        assert point_segment_distance_mm(q0, p0, p1) == pytest.approx(
            np.min(np.linalg.norm(a - q0, axis=1)), abs=0.1)
    # parallel segments
    assert segment_segment_distance_mm([0, 0, 0], [0, 0, 10], [3, 4, 2], [3, 4, 8]) == 5.0


# ------------------------------------------------------------------ the phantom case
@pytest.mark.slow
def test_reference_phantom_plan_checks_cleanly(phantom_case) -> None:
    """The phantom's reference IRE plan: readable, structures on the CT grid, no errors."""
    from irplan.io.plan_file import load_plan, load_plan_image, load_plan_structures

    plan = load_plan(phantom_case / "plan.irplan.json")
    ct = load_plan_image(plan)
    masks, notes = load_plan_structures(plan, ct)
    assert notes == [] and all(m.same_geometry(ct) for m in masks.values())
    findings = SafetyChecker(masks, ct).check(plan)
    assert [f.message for f in findings if f.severity == "error"] == []
    assert all(f.code not in ("ire_not_parallel", "ire_spacing", "ire_too_close")
               for f in findings)


def test_advice_appears_in_the_checks() -> None:
    tumour = sphere((15.0, 20.0, 20.0), 5.0)
    pv = tube_z((15.0 + 5.0 + 4.0 + 3.0, 20.0), 3.0)
    c = SafetyChecker({"tumor": tumour, "portal_vein": pv})
    far = [5.0, 5.0, 5.0]
    (mwa_f,) = codes(c.check(mwa([15, 20, 20], far)), "modality_advice")
    assert mwa_f.severity == "warning" and mwa_f.structure == "portal_vein"
    assert mwa_f.distance_mm == pytest.approx(4.0, abs=0.5) and "IRE is the indicated" in \
        mwa_f.message
    plan = ire([E([10, 20, 15], [10, 20, 39]), E([25, 20, 15], [25, 20, 39])])
    (ire_f,) = codes(c.check(plan), "modality_advice")
    assert ire_f.severity == "info"


@pytest.mark.slow
def test_phantom_advice_and_spacing_match_ground_truth(phantom_case) -> None:

    from irplan.io.plan_file import load_plan, load_plan_image, load_plan_structures
    from irplan.planning.ire_array import electrode_pairs

    truth = load_truth(phantom_case)
    plan = load_plan(phantom_case / "plan.irplan.json")
    ct = load_plan_image(plan)
    masks, _ = load_plan_structures(plan, ct)
    a = SafetyChecker(masks, ct).advice()
    assert a is not None and a.nearest_vessel is not None
    # 1.5 x 1.5 x 2 mm grid: surface-to-surface distance within one voxel
    assert a.nearest_vessel.distance_mm == pytest.approx(truth.nearest_vessel_distance_mm,
                                                         abs=1.0)
    assert a.recommended == ("IRE" if truth.nearest_vessel_distance_mm < 10 else "either")
    spacing = min(p.spacing_mm for p in electrode_pairs(plan.needles))
    assert spacing == pytest.approx(truth.needle_spacing_mm, abs=0.05)


def test_heat_sink_with_a_zone_on_its_own_tight_grid() -> None:
    from irplan.planning.safety import pad_volume

    zone = sphere((20, 20, 20), 6.0, size_mm=50.0)
    tight = zone.crop_index([26, 26, 26], [55, 55, 55])      # the zone's box only (0.5 mm)
    assert tight.array.sum() == zone.array.sum()
    vessel = tube_z((20 + 6.0 + 6.0 + 2.5, 20.0), 2.5, size_mm=50.0)
    (f,) = heat_sink_findings(tight, {"portal_vein": vessel})
    assert f.distance_mm == pytest.approx(6.0, abs=0.5)
    padded = pad_volume(tight, 3.0)
    assert padded.array.shape == tuple(n + 12 for n in tight.array.shape)
    np.testing.assert_allclose(padded.index_to_lps([6, 6, 6]), tight.origin_lps_mm)


def test_exposure_coverage_follows_plan_targets() -> None:
    near = sphere((20, 20, 20), 4.0)
    far = sphere((20, 20, 33), 4.0)          # a second, taller lesion along the needle axis
    plan = ire([E([12.5, 20, 15], [12.5, 20, 60], 10.0), E([27.5, 20, 15], [27.5, 20, 60], 10.0)])
    masks = {"tumor": near, "tumor_2": far}
    assert codes(check_plan(plan, masks), "ire_exposure_coverage")      # both lesions: short
    plan.targets = ["tumor"]
    assert codes(check_plan(plan, masks), "ire_exposure_coverage") == []


def test_user_supplied_device_figures_are_flagged() -> None:
    plan = ire([E([0, 0, 0], [0, 0, 100]), E([15, 0, 0], [15, 0, 100])])
    (f,) = codes(check_plan(plan, {}), "device_unverified")
    assert f.severity == "info" and f.needles == [0, 1] and "user-supplied" in f.message


def test_thick_branch_behind_a_thin_one_is_not_hidden() -> None:
    # thin 2 mm branch 2.5 mm from the needle (2 mm threshold: fine), thick 7 mm branch
    # 4 mm from it on the other side (5 mm threshold: warning)
    x = 20.0
    thin = tube_z((x - R14 - 2.5 - 1.0, 20.0), 1.0)
    thick = tube_z((x + R14 + 4.0 + 3.5, 20.0), 3.5)
    pv = thin.with_array(thin.array | thick.array)
    (f,) = [g for g in check_plan(mwa([x, 20.0, 20.0], [x, 39.5, 20.0]), {"portal_vein": pv})
            if g.structure == "portal_vein"]
    assert f.code == "path_near" and f.distance_mm == pytest.approx(4.0, abs=0.5)
    assert "threshold 5 mm" in f.message and "calibre 7." in f.message


@lru_cache(maxsize=1)
def _tree_checker() -> SafetyChecker:
    thin = tube_z((12.0, 20.0), 1.0)
    thick = tube_z((27.0, 20.0), 3.5)
    c = SafetyChecker({"portal_vein": thin.with_array(thin.array | thick.array)})
    c.prepare()
    return c


@settings(max_examples=40, deadline=None)
@given(x=st.floats(8.0, 32.0), step=st.floats(1.0, 6.0), direction=st.sampled_from([-1, 1]))
def test_moving_away_from_a_vessel_tree_never_worse(x, step, direction) -> None:
    c = _tree_checker()

    def worst(xx: float):
        f = [g for g in c.check(mwa([xx, 20.0, 20.0], [xx, 39.5, 20.0]))
             if g.structure == "portal_vein"]
        return _RANK[f[0].severity] if f else _RANK[None]

    # away from both branches: beyond the outer one, moving outwards
    x0 = 27.0 + 3.5 + R14 + 0.2 + (x - 8.0) / 4.0 if direction > 0 else \
        12.0 - 1.0 - R14 - 0.2 - (x - 8.0) / 4.0
    x1 = x0 + direction * step
    if not 1.0 < x1 < 38.5:
        return
    assert worst(x1) >= worst(x0)
