"""Thermal zones from tables: ellipsoid geometry, interpolation, union, cryo, heat sink."""

from __future__ import annotations

import numpy as np
import pytest

from irplan.planning.errors import InputError
from irplan.planning.plan import Needle, Plan, ThermalParams
from irplan.planning.thermal_zone import (
    applicator_ellipsoid,
    box_grid,
    interpolate,
    large_vessel_mask,
    load_tables,
    rasterise,
)
from irplan.planning.volume import Volume
from irplan.planning.zone import ZoneOptions, predict_zone

MWA = "mwa-generic-illustrative"


def _direction(theta_deg: float, phi_deg: float) -> np.ndarray:
    t, p = np.deg2rad(theta_deg), np.deg2rad(phi_deg)
    return np.array([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), -np.cos(t)])


def _plan(modality: str, device: str, tips, dirs, power_w=100.0, time_s=300.0) -> Plan:
    needles = [Needle(device, np.asarray(t, float), np.asarray(t, float) - 120.0 * np.asarray(d))
               for t, d in zip(tips, dirs)]
    return Plan(modality=modality, needles=needles,
                thermal=ThermalParams(power_w=power_w, time_s=time_s))


def _ball(centre, radius_mm: float, spacing=(0.8, 0.8, 1.0), half_mm=40.0) -> Volume:
    n = (2 * half_mm / np.asarray(spacing)).astype(int) + 1
    g = Volume(np.zeros(n[::-1], np.uint8), np.asarray(centre) - half_mm, spacing)
    c = g.voxel_centres_lps()
    return g.with_array((np.linalg.norm(c - np.asarray(centre), axis=-1) <= radius_mm)
                        .astype(np.uint8))


@pytest.mark.parametrize("theta,phi", [(0.0, 0.0), (37.0, 20.0)])
def test_single_applicator_zone_is_the_table_ellipsoid_within_one_voxel(theta, phi):
    h = 1.0
    tip = np.array([10.0, -20.0, 30.0])
    d = _direction(theta, phi)
    plan = _plan("MWA", "mwa-14g", [tip], [d])
    res = predict_zone(plan, None, {}, grid_mm=h)
    row = next(r for r in load_tables()[MWA].rows if r["power_w"] == 100 and r["time_s"] == 300)
    length, width, offset = row["length_mm"], row["width_mm"], row["tip_offset_mm"]
    pts = res.zone.index_to_lps(np.argwhere(res.zone.array)[:, ::-1].astype(float))
    centre = tip - offset * d
    v = pts - centre
    along = v @ d
    perp = np.linalg.norm(v - along[:, None] * d, axis=1)
    meas_len = along.max() - along.min() + h
    meas_wid = 2 * perp.max() + h
    print(f"theta {theta}: length {meas_len:.2f} (table {length}), width {meas_wid:.2f} "
          f"(table {width}), volume {res.volume_ml:.2f} ml")
    assert abs(meas_len - length) <= h
    assert abs(meas_wid - width) <= h * np.sqrt(2)
    assert np.linalg.norm(pts.mean(axis=0) - centre) < 0.5 * h
    ell_ml = 4 / 3 * np.pi * (length / 2) * (width / 2) ** 2 / 1000
    assert res.volume_ml == pytest.approx(ell_ml, rel=0.05)
    assert any("illustrative" in w for w in res.warnings)


def test_interpolation_between_rows_and_refusal_outside():
    t = load_tables()[MWA]
    rows = {(r["power_w"], r["time_s"]): r for r in t.rows}
    length, width, offset = interpolate(t, 80.0, 240.0)
    corners = [rows[(p, s)] for p in (60, 100) for s in (180, 300)]
    assert length == pytest.approx(np.mean([r["length_mm"] for r in corners]))
    assert width == pytest.approx(np.mean([r["width_mm"] for r in corners]))
    assert offset == pytest.approx(np.mean([r["tip_offset_mm"] for r in corners]))
    assert interpolate(t, 100.0, 300.0)[0] == rows[(100, 300)]["length_mm"]
    with pytest.raises(InputError, match="thermal.power_w 150 W is outside"):
        interpolate(t, 150.0, 300.0)
    with pytest.raises(InputError, match="thermal.time_s 60 s is outside"):
        interpolate(t, 100.0, 60.0)
    with pytest.raises(InputError, match="power_w is not set"):
        interpolate(t, None, 300.0)


def test_union_of_applicators():
    t = load_tables()[MWA]
    d = np.array([0.0, 0.0, -1.0])
    grid = box_grid(np.array([-60.0, -30, -40]), np.array([60.0, 30, 40]), 1.0)
    e1 = applicator_ellipsoid(t, [-30.0, 0, 0], d, 100.0, 300.0)
    e2 = applicator_ellipsoid(t, [30.0, 0, 0], d, 100.0, 300.0)
    e3 = applicator_ellipsoid(t, [-15.0, 0, 0], d, 100.0, 300.0)
    one = rasterise(grid, [e1]).sum()
    apart = rasterise(grid, [e1, e2]).sum()
    overlap = rasterise(grid, [e1, e3]).sum()
    assert apart == 2 * one
    assert one < overlap < 2 * one


def test_cryo_isotherms_are_nested_and_lethal_default():
    t = load_tables()["cryo-17g-illustrative"]
    l0, w0, _ = interpolate(t, None, 450.0, 0.0)
    l20, w20, _ = interpolate(t, None, 450.0, None)          # table's lethal: -20 degC
    l40, w40, _ = interpolate(t, None, 450.0, -40.0)
    assert (l0, w0) > (l20, w20) > (l40, w40)
    assert (l20, w20) == interpolate(t, None, 450.0, -20.0)[:2]
    with pytest.raises(InputError, match="no -30 degC isotherm"):
        interpolate(t, None, 450.0, -30.0)
    plan = _plan("cryo", "cryo-17g", [[0, 0, 0], [12, 0, 0]], [[0, 0, -1]] * 2,
                 power_w=None, time_s=600.0)
    iceball = predict_zone(plan, None, {}, options=ZoneOptions(isotherm_c=0.0))
    lethal = predict_zone(plan, None, {})
    assert lethal.volume_ml < iceball.volume_ml


def _vessel(x_mm: float, radius_mm: float, half_mm: float = 40.0) -> Volume:
    sp = np.array([0.7, 0.7, 1.0])
    n = (2 * half_mm / sp).astype(int) + 1
    g = Volume(np.zeros(n[::-1], np.uint8), [-half_mm] * 3, sp)
    c = g.voxel_centres_lps()
    return g.with_array((((c[..., 0] - x_mm) ** 2 + c[..., 1] ** 2) <= radius_mm ** 2)
                        .astype(np.uint8))


def test_large_vessel_mask_keeps_only_calibre_of_3mm_and_more():
    for r_thick, r_thin in ((3.0, 1.0), (1.8, 1.2)):          # calibre 6 / 2, 3.6 / 2.4 mm
        thick, thin = _vessel(-10.0, r_thick), _vessel(10.0, r_thin)
        both = np.maximum(thick.array, thin.array)
        large = large_vessel_mask(both, thick.spacing_mm, 3.0)
        assert large[thick.array.astype(bool)].mean() > 0.6     # >= 3 mm kept (core + most rim)
        assert not large[thin.array.astype(bool)].any()         # < 3 mm dropped


def test_heat_sink_cuts_the_cooled_shell_and_always_warns():
    plan = _plan("RFA", "rfa-17g-cooled", [[0.0, 0.0, 0.0]], [[0, 0, -1]],
                 power_w=150.0, time_s=720.0)
    big = {"portal_vein": _vessel(8.0, 3.0)}                 # 6 mm vessel in the zone
    small = {"portal_vein": _vessel(8.0, 1.0)}               # 2 mm: no heat sink
    plain = predict_zone(plan, None, big)
    cut = predict_zone(plan, None, big, options=ZoneOptions(heat_sink=True, heat_sink_shell_mm=2.0))
    cut_small = predict_zone(plan, None, small, options=ZoneOptions(heat_sink=True))
    assert any("heat sink likely" in w for w in plain.warnings)
    assert any("heat-sink model" in w for w in cut.warnings)
    assert any("heat-sink model" in w for w in cut_small.warnings)
    assert cut_small.volume_ml == pytest.approx(plain.volume_ml)
    assert cut.volume_ml < plain.volume_ml - 0.5
    # nothing of the zone is left within 3 mm (radius) + 2 mm (shell) of the vessel axis
    z = cut.zone
    pts = z.index_to_lps(np.argwhere(z.array)[:, ::-1].astype(float))
    dist = np.hypot(pts[:, 0] - 8.0, pts[:, 1])
    assert dist.min() > 3.0 + 2.0 - 1.0
    # thermal zones do not spare vessels: the risk report says so
    pv = next(r for r in plain.risk if r.key == "portal_vein")
    assert pv.volume_ml > 0 and not pv.spared and "heat does not spare" in pv.note


def test_thermal_coverage_and_margin_of_a_centred_tumour():
    tip = np.array([0.0, 0.0, 0.0])
    d = np.array([0.0, 0.0, -1.0])
    plan = _plan("MWA", "mwa-14g", [tip], [d])
    t = load_tables()[MWA]
    length, width, offset = interpolate(t, 100.0, 300.0)
    centre = tip - offset * d
    tumor = _ball(centre, 8.0)
    res = predict_zone(plan, None, {"tumor": tumor}, grid_mm=1.0)
    m = res.margin
    print(f"coverage {m.tumor_coverage_percent:.1f} %, MAM {m.minimal_margin_mm:.2f} mm "
          f"(expected {width / 2 - 8:.2f})")
    assert m.tumor_coverage_percent > 99.5
    assert m.minimal_margin_mm == pytest.approx(width / 2 - 8.0, abs=0.75)
    d_json = res.to_dict()
    assert d_json["tumor_coverage_percent"] == pytest.approx(m.tumor_coverage_percent, abs=0.01)
    assert d_json["applicators"][0]["length_mm"] == pytest.approx(length)


def test_unknown_table_and_wrong_device_are_refused(tmp_path):
    plan = _plan("MWA", "ire-19g-monopolar", [[0, 0, 0]], [[0, 0, -1]])
    with pytest.raises(InputError, match="is IRE"):
        predict_zone(plan, None, {})
    bad = tmp_path / "t.json"
    bad.write_text('{"tables": [{"id": "x", "modality": "MWA", "source": "", "rows": []}]}')
    with pytest.raises(InputError, match="no source"):
        load_tables(bad)


def test_heat_sink_cache_follows_in_place_mask_edits():
    """The large-vessel mask is cached per vessel mask content: editing the mask in place
    (as the brush does) is seen by the next prediction."""
    plan = _plan("RFA", "rfa-17g-cooled", [[0.0, 0.0, 0.0]], [[0, 0, -1]],
                 power_w=150.0, time_s=720.0)
    vessel = _vessel(8.0, 3.0)
    opts = ZoneOptions(heat_sink=True, heat_sink_shell_mm=2.0)
    cut = predict_zone(plan, None, {"portal_vein": vessel}, options=opts)
    again = predict_zone(plan, None, {"portal_vein": vessel}, options=opts)
    assert again.volume_ml == pytest.approx(cut.volume_ml)          # cached: same answer
    vessel.array[:] = 0                                             # erased in place
    vessel.array[:, :, :3] = 1                                      # a far-away 2 mm sheet
    plain = predict_zone(plan, None, {"portal_vein": vessel}, options=opts)
    assert plain.volume_ml > cut.volume_ml + 0.5


def test_published_thermal_tables_are_sourced_and_kept_apart_from_illustrative_ones():
    """Issue 14: every published row carries its source and setting (in vivo / clinical /
    phantom) and what was assumed; illustrative tables are marked as such; each published
    table reproduces its own validation record exactly at the published point."""
    from irplan.planning.thermal_zone import interpolate, load_tables
    from irplan.planning.zone_validation import record

    tables = load_tables()
    kinds = {t.kind for t in tables.values()}
    assert kinds == {"illustrative", "published"}
    for t in tables.values():
        assert t.source.strip()
        if t.kind == "illustrative":
            assert "ILLUSTRATIVE" in t.source
        else:
            assert not t.devices            # never a device default: chosen explicitly
            for r in t.rows:
                assert r["source"] and r["setting"] and "assumed" in r
    for table_id, rec_id in (("mwa-porcine-invivo-80w-2012", "mwa-porcine-80w-5min"),
                             ("mwa-clinical-100w-2016", "mwa-clinical-93-tumours"),
                             ("rfa-cooled-2cm-2009", "rfa-cooled-2cm-12min")):
        rec = record(rec_id)
        row = tables[table_id].rows[0]
        length, width, _ = interpolate(tables[table_id], row["power_w"], rec["config"]["time_s"])
        assert length == pytest.approx(rec["published"]["length_mm"][0])
        assert width == pytest.approx(rec["published"]["width_mm"][0])
