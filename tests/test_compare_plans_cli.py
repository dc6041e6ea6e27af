"""`irplan compare-plans` on the phantom case: text table, JSON keys and figures, bad
input (one line naming the file, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from irplan.app.cli import main
from irplan.io.plan_file import load_plan, save_plan

JSON_KEYS = {"trainee", "reference", "passed", "score_percent", "modality", "needle_count",
             "needles", "missing_needles", "extra_needles", "pair_spacings", "zone", "safety",
             "rules", "thresholds", "summary", "notes"}
NEEDLE_KEYS = {"trainee_index", "reference_index", "trainee_label", "reference_label",
               "tip_error_mm", "tip_along_mm", "tip_across_mm", "entry_error_mm", "angle_deg",
               "depth_difference_mm", "exposure_difference_mm", "steepness_difference_deg",
               "cc_difference_deg"}


@pytest.fixture(scope="module")
def plans(phantom_case: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(trainee file: the reference with needle 2's tip 6 mm short, reference file)."""
    ref_path = phantom_case / "plan.irplan.json"
    plan = load_plan(ref_path)
    n = plan.needles[1]
    n.tip_lps_mm = n.tip_lps_mm - 6.0 * n.direction
    out = tmp_path_factory.mktemp("trainee") / "trainee.irplan.json"
    save_plan(plan, out)
    return out, ref_path


def test_text_table(plans, capsys) -> None:
    trainee, ref = plans
    assert main(["compare-plans", str(trainee), str(ref), "--no-zone"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:3] == ["needle", "ref", "tip"])
    rows = [line.split() for line in lines[head + 1:head + 5]]
    assert [r[:2] for r in rows] == [["1", "1"], ["2", "2"], ["3", "3"], ["4", "4"]]
    assert rows[1][2:4] == ["6.0", "-6.0"]                 # tip error, along (short)
    assert [r[2] for r in rows if r[0] != "2"] == ["0.0"] * 3
    assert "needle 2 tip 6.0 mm short of the reference" in out
    assert "zone (" not in out                              # --no-zone
    assert any(line.startswith("FAIL") and "tips" in line for line in lines)


def test_json_keys_and_figures(plans, capsys) -> None:
    trainee, ref = plans
    assert main(["compare-plans", str(trainee), str(ref), "--json", "--no-image"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d) == JSON_KEYS
    assert d["trainee"] == str(trainee) and d["reference"] == str(ref)
    assert d["modality"] == {"trainee": "IRE", "reference": "IRE", "match": True}
    assert d["needle_count"] == {"trainee": 4, "reference": 4}
    assert all(set(m) == NEEDLE_KEYS for m in d["needles"])
    m = d["needles"][1]
    assert (m["trainee_index"], m["reference_index"]) == (1, 1)
    assert m["tip_error_mm"] == pytest.approx(6.0) and m["tip_along_mm"] == pytest.approx(-6.0)
    assert m["angle_deg"] == pytest.approx(0.0, abs=0.01)
    assert d["missing_needles"] == [] and d["extra_needles"] == []
    zt, zr = d["zone"]["trainee"], d["zone"]["reference"]
    assert zt["method"] == zr["method"] == "preview" and zt["grid_mm"] == 2.0
    assert zt["coverage_percent"] < zr["coverage_percent"]
    assert set(d["safety"]["trainee"]["counts"]) == {"error", "warning", "info"}
    assert "ire_tip_depth" in {f["code"] for f in d["safety"]["new_in_trainee"]}
    assert d["passed"] is False
    assert [r["name"] for r in d["rules"] if not r["passed"]] == ["tips"]
    assert d["score_percent"] == pytest.approx(80.0)
    assert d["thresholds"]["tip_tolerance_mm"] == 5.0
    assert d["summary"][-1].startswith("FAIL")
    # a looser tip limit from the command line passes the same plans
    assert main(["compare-plans", str(trainee), str(ref), "--json", "--no-zone",
                 "--no-image", "--tip-tolerance-mm", "6.5"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_input_exit_2(plans, tmp_path, capsys) -> None:
    trainee, ref = plans
    missing = tmp_path / "nothere.irplan.json"
    assert main(["compare-plans", str(missing), str(ref)]) == 2
    line = _one_error_line(capsys)
    assert str(missing) in line and "not found" in line

    broken = tmp_path / "broken.irplan.json"
    broken.write_text('{"schema": 1, "modality": "IRE", "needles": [', "utf-8")
    assert main(["compare-plans", str(trainee), str(broken)]) == 2
    line = _one_error_line(capsys)
    assert str(broken) in line and "not valid JSON" in line

    other = load_plan(trainee, check_files=False)
    other.image.series_uid = "1.2.3.4.5"
    other_path = tmp_path / "other-image.irplan.json"
    save_plan(other, other_path)
    assert main(["compare-plans", str(other_path), str(ref)]) == 2
    line = _one_error_line(capsys)
    assert str(other_path) in line and "different images" in line and "1.2.3.4.5" in line
