"""`irplan detect-needles` on the phantom's intra-op series (issue 15): the electrodes as
placed (truth.json "placed_needles") found to sub-millimetre, matched to the plan, pair
spacings and voltages, re-predicted zone, technical-success verdict, the placed plan
accepted by `irplan check`, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from irplan.app.cli import main
from irplan.io.phantom_writer import load_truth


def _run(capsys, *argv: str) -> tuple[int, str, str]:  # noqa: ANN001
    rc = main(["detect-needles", *map(str, argv)])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def placed_run(phantom_case: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("placed")
    csv = out / "log.csv"
    csv.write_text("pair,pulses,current_a\n" + "".join(
        f"{a}-{b},90,{25 + a + b}\n" for a in range(1, 5) for b in range(a + 1, 5)))
    placed = out / "placed.irplan.json"
    rc = main(["detect-needles", str(phantom_case / "intraop"), "--plan",
               str(phantom_case / "plan.irplan.json"), "--json", "--out", str(placed),
               "--currents", str(csv), "--grid-mm", "2"])
    return {"rc": rc, "placed": placed, "dir": out}


def test_placed_needles_found_matched_and_measured(phantom_case: Path,
                                                   placed_run: dict) -> None:
    assert placed_run["rc"] == 0
    truth = load_truth(phantom_case)
    plan = json.loads((phantom_case / "plan.irplan.json").read_text())
    res = json.loads(placed_run["placed"].read_text())["procedure"]
    assert len(res["needles"]) == len(truth.placed_needles) == 4
    assert res["missing_planned"] == []
    for t in truth.placed_needles:
        det = min(res["needles"], key=lambda n: np.linalg.norm(np.subtract(n["tip_lps_mm"],
                                                                         t.tip_lps_mm)))
        tip_err = np.linalg.norm(np.subtract(det["tip_lps_mm"], t.tip_lps_mm))
        assert tip_err <= 1.0, tip_err                        # mm, 1.5 x 1.5 x 2 mm voxels
        axis_t = _unit(np.asarray(t.tip_lps_mm) - t.entry_lps_mm)
        axis_d = _unit(np.subtract(det["tip_lps_mm"], det["entry_lps_mm"]))
        assert np.degrees(np.arccos(min(1.0, axis_t @ axis_d))) <= 1.0
        # entry on the skin, where the truth's entry is
        assert np.linalg.norm(np.subtract(det["entry_lps_mm"], t.entry_lps_mm)) <= 2.0
        # matched to the planned electrode it was aimed at (the plan's order is arbitrary)
        assert det["planned_index"] == t.planned_index + 1
        p = plan["needles"][t.planned_index]
        true_err = np.linalg.norm(np.asarray(t.tip_lps_mm) - p["tip_lps_mm"])
        assert det["tip_error_mm"] == pytest.approx(true_err, abs=1.0)
        axis_p = _unit(np.subtract(p["tip_lps_mm"], p["entry_lps_mm"]))
        true_ang = np.degrees(np.arccos(min(1.0, axis_t @ axis_p)))
        assert det["angle_error_deg"] == pytest.approx(true_ang, abs=1.0)
        depth = float((np.asarray(t.tip_lps_mm) - p["tip_lps_mm"]) @ axis_p)
        assert det["depth_error_mm"] == pytest.approx(depth, abs=1.0)
    # pairs: tip-to-tip spacing of the true placed tips, voltage = 1500 V/cm x it, <= 3000 V
    tips = [np.asarray(res["needles"][i]["tip_lps_mm"]) for i in range(4)]
    assert len(res["pairs"]) >= 4
    for pr in res["pairs"]:
        a, b = pr["needles"]
        ta = min(truth.placed_needles, key=lambda t: np.linalg.norm(t.tip_lps_mm - tips[a - 1]))
        tb = min(truth.placed_needles, key=lambda t: np.linalg.norm(t.tip_lps_mm - tips[b - 1]))
        true_sp = np.linalg.norm(ta.tip_lps_mm - tb.tip_lps_mm)
        assert pr["spacing_mm"] == pytest.approx(true_sp, abs=1.0)
        assert pr["voltage_v"] == pytest.approx(min(150.0 * pr["spacing_mm"], 3000.0), abs=1)
        assert pr["angle_deg"] < 2.0
        assert pr["pulses"] == 90 and pr["current_a"] == 25 + a + b
    v = res["verdict"]
    assert v["success"] is True and v["reasons"] == []


def test_repredicted_zone_matches_the_zone_model(phantom_case: Path, placed_run: dict,
                                                 capsys) -> None:  # noqa: ANN001
    rp = json.loads(placed_run["placed"].read_text())["procedure"]["repredicted"]
    assert main(["zone", str(phantom_case / "plan.irplan.json"), "--grid-mm", "2",
                 "--json"]) == 0
    zone = json.loads(capsys.readouterr().out)
    assert rp["planned"]["tumor_coverage_percent"] == pytest.approx(
        zone["tumor_coverage_percent"], abs=0.01)
    assert rp["planned"]["minimal_margin_mm"] == pytest.approx(zone["minimal_margin_mm"],
                                                               abs=0.01)
    placed = rp["placed"]
    assert 0 < placed["tumor_coverage_percent"] <= 100
    assert len(placed["thinnest_margin_lps_mm"]) == 3
    # per-pair voltages of the placed needles = the measured ones
    res = json.loads(placed_run["placed"].read_text())["procedure"]
    volts = {tuple(p["needles"]): p["voltage_v"] for p in res["pairs"]}
    for p in placed["pairs"]:
        i, j = p["electrodes"]
        assert p["voltage_v"] == pytest.approx(volts[(i + 1, j + 1)], abs=1.0)
    # measured currents (25 + a + b A) vs the placed needles' predicted ones
    cur = res["currents"]
    pred = np.array([p["current_a"] for p in placed["pairs"]])
    meas = np.array([25.0 + i + j + 2 for i, j in (p["electrodes"] for p in placed["pairs"])])
    assert cur["conductivity_scale"] == pytest.approx(float(meas @ pred / (pred @ pred)),
                                                      rel=1e-3)
    assert cur["residual_rms_a"] >= 0
    assert rp["coverage_change_percent"] == pytest.approx(
        placed["tumor_coverage_percent"] - rp["planned"]["tumor_coverage_percent"], abs=0.02)


def test_placed_plan_is_accepted_by_check(placed_run: dict, capsys) -> None:  # noqa: ANN001
    capsys.readouterr()
    assert main(["check", str(placed_run["placed"]), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    assert isinstance(findings, list)
    d = json.loads(placed_run["placed"].read_text())
    assert d["schema"] == 1 and len(d["needles"]) == 4
    assert all(n["device"] == "ire-19g-monopolar" and n["exposure_mm"] > 0 for n in d["needles"])


def test_short_pulses_fail_the_verdict(phantom_case: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    csv = tmp_path / "log.csv"
    csv.write_text("1-2,70,30\n")
    rc, out, _ = _run(capsys, phantom_case / "intraop", "--plan",
                      phantom_case / "plan.irplan.json", "--currents", csv, "--no-zone")
    assert rc == 0
    assert "technical success: NO" in out and "70 pulses (< 90)" in out


def test_no_needle_is_a_normal_result(phantom_case: Path, capsys) -> None:  # noqa: ANN001
    rc, out, _ = _run(capsys, phantom_case / "planning", "--json")
    assert rc == 0
    d = json.loads(out)
    assert d["needles"] == [] and d["pairs"] == []


def test_unreadable_inputs_exit_2(phantom_case: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    (tmp_path / "empty").mkdir()
    rc, _, err = _run(capsys, tmp_path / "empty", "--json")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.irplan.json"
    bad.write_text("{not json")
    rc, _, err = _run(capsys, phantom_case / "intraop", "--plan", bad)
    assert rc == 2 and "bad.irplan.json" in err and len(err.strip().splitlines()) == 1
    csv = tmp_path / "c.csv"
    csv.write_text("1-9,90,20\n")
    rc, _, err = _run(capsys, phantom_case / "intraop", "--plan",
                      phantom_case / "plan.irplan.json", "--currents", csv, "--no-zone")
    assert rc == 2 and "c.csv: line 1" in err


def test_other_frame_is_registered_to_the_plan(phantom_case: Path, tmp_path: Path,
                                               capsys) -> None:  # noqa: ANN001
    """An intra-op CT on another Frame of Reference (table moved 6, -4, 5 mm): the needles
    are reported in the planning frame after the rigid registration."""
    from irplan.io.dicom_load import load_ct
    from irplan.io.dicom_write import write_ct_series
    from irplan.planning.volume import Volume

    ct = load_ct(phantom_case / "intraop")
    moved = Volume(ct.array, ct.origin_lps_mm + np.array([6.0, -4.0, 5.0]), ct.spacing_mm,
                   ct.direction)
    write_ct_series(moved, tmp_path / "moved", frame_of_reference_uid="1.2.826.0.1.3680043.8.498.15")
    rc, out, _ = _run(capsys, tmp_path / "moved", "--plan", phantom_case / "plan.irplan.json",
                      "--json", "--no-zone")
    assert rc == 0
    d = json.loads(out)
    assert d["registration"]["applied"] is True
    assert d["registration"]["metric_value"] < d["registration"]["initial_metric_value"]
    truth = load_truth(phantom_case)
    for t in truth.placed_needles:
        det = min(d["needles"], key=lambda n: np.linalg.norm(np.subtract(n["tip_lps_mm"],
                                                                         t.tip_lps_mm)))
        assert np.linalg.norm(np.subtract(det["tip_lps_mm"], t.tip_lps_mm)) <= 1.5
        assert det["planned_index"] == t.planned_index + 1
