"""`irplan evaluate` and `irplan evaluate-batch` on the DICOM phantom case (exact truth)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from irplan.app.cli import main
from irplan.io.masks import read_mask
from irplan.io.phantom_writer import load_truth
from irplan.planning.phantom_truth import PhantomTruth


def _truth(case: Path) -> PhantomTruth:
    return load_truth(case)


def test_evaluate_rigid_json_matches_truth(phantom_case, capsys, tmp_path):
    case = phantom_case
    truth = _truth(case)
    zone_out = tmp_path / "zone_planning.nii.gz"
    code = main(["evaluate", "--planning", str(case / "planning"),
                 "--followup", str(case / "followup"),
                 "--tumor", str(case / "masks/planning/tumor.nii.gz"),
                 "--ablation", str(case / "masks/followup/ablation_zone.nii.gz"),
                 "--liver", str(case / "masks/planning/liver.nii.gz"),
                 "--register", "rigid", "--json", "--save-zone", str(zone_out)])
    out = capsys.readouterr().out
    assert code == 0
    d = json.loads(out)
    assert d["minimal_margin_mm"] == pytest.approx(truth.minimal_margin_mm, abs=1.0)
    assert d["tumor_coverage_percent"] == pytest.approx(truth.tumor_coverage_percent,
                                                        abs=1.0)
    assert d["residual_tumor_ml"] == pytest.approx(0.0, abs=0.01)
    assert d["verdict"] == "complete_margin_ok"
    assert d["registration"]["method"] == "rigid"
    assert d["registration"]["metric_value"] < d["registration"]["initial_metric_value"]
    # the recovered rigid motion is the phantom's rotation (deg) within 0.5 deg
    rot = d["registration"]["rigid"]["rotation_deg_xyz"]
    assert np.allclose(rot, truth.followup_transform.rotation_deg_xyz, atol=0.5)
    # the saved zone, mapped into planning space, overlaps the true planning-space zone
    saved = read_mask(zone_out)
    true_zone = read_mask(case / "masks/planning/ablation_zone.nii.gz")
    a, b = saved.array != 0, true_zone.array != 0
    assert saved.same_geometry(true_zone)
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.95


def test_evaluate_none_text_and_predicted_vs_achieved(phantom_case, capsys):
    case = phantom_case
    truth = _truth(case)
    zone = str(case / "masks/planning/ablation_zone.nii.gz")
    code = main(["evaluate", "--tumor", str(case / "masks/planning/tumor.nii.gz"),
                 "--ablation", zone, "--register", "none", "--plan-zone", zone])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("Complete ablation, minimal ablative margin >= 5 mm")
    mam = float(out.split("minimal ablative margin")[2].split("mm")[0])
    assert mam == pytest.approx(truth.minimal_margin_mm, abs=0.5)
    assert "Dice 1.000" in out and "HD95 0.0 mm" in out
    assert "not a certified medical device" in out


def test_evaluate_user_errors_exit_2(phantom_case, capsys):
    case = phantom_case
    code = main(["evaluate", "--tumor", str(case / "nope.nii.gz"),
                 "--ablation", str(case / "masks/planning/ablation_zone.nii.gz"),
                 "--register", "none"])
    err = capsys.readouterr().err
    assert code == 2
    assert "nope.nii.gz" in err and "not found" in err and "Traceback" not in err
    code = main(["evaluate", "--tumor", str(case / "masks/planning/tumor.nii.gz"),
                 "--ablation", str(case / "masks/planning/ablation_zone.nii.gz")])
    err = capsys.readouterr().err
    assert code == 2 and "--planning" in err


def test_evaluate_batch_continues_past_a_bad_case(phantom_case, tmp_path, capsys):
    case = phantom_case
    truth = _truth(case)
    rel = Path(os.path.relpath(case, tmp_path))  # relative to the CSV's folder
    cohort = tmp_path / "cohort.csv"
    with cohort.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "planning", "followup", "tumor", "ablation", "register",
                    "plan_zone"])
        w.writerow(["good", "", "", rel / "masks/planning/tumor.nii.gz",
                    rel / "masks/planning/ablation_zone.nii.gz", "none",
                    rel / "masks/planning/ablation_zone.nii.gz"])
        w.writerow(["broken", "", "", rel / "masks/planning/tumor.nii.gz",
                    rel / "masks/missing_zone.nii.gz", "none", ""])
        w.writerow(["tight", "", "", rel / "masks/planning/ablation_zone.nii.gz",
                    rel / "masks/planning/ablation_zone.nii.gz", "none", ""])
    out = tmp_path / "results.csv"
    code = main(["evaluate-batch", str(cohort), "--out", str(out),
                 "--details", str(tmp_path / "details")])
    err = capsys.readouterr().err
    assert code == 1  # one case failed
    assert "3/3" in err and "missing_zone.nii.gz" in err
    rows = list(csv.DictReader(out.open()))
    assert [r["case_id"] for r in rows] == ["good", "broken", "tight"]
    good, broken, tight = rows
    assert good["status"] == "ok" and good["verdict"] == "complete_margin_ok"
    assert float(good["minimal_margin_mm"]) == pytest.approx(truth.minimal_margin_mm,
                                                             abs=0.5)
    assert float(good["dice"]) == pytest.approx(1.0)
    assert broken["status"] == "error" and "missing_zone.nii.gz" in broken["error"]
    # a "tumour" equal to the zone: margin 0 everywhere, complete but at risk
    assert tight["status"] == "ok" and tight["verdict"] == "complete_margin_at_risk"
    assert abs(float(tight["minimal_margin_mm"])) < 0.5
    assert (tmp_path / "details" / "good.json").is_file()


def test_evaluate_batch_refuses_a_cohort_without_columns(tmp_path, capsys):
    cohort = tmp_path / "c.csv"
    cohort.write_text("case_id,tumor\nx,y.nii.gz\n")
    code = main(["evaluate-batch", str(cohort), "--out", str(tmp_path / "r.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "planning" in err and "c.csv" in err


def test_evaluate_with_ablation_seed_segments_the_zone(phantom_case, tmp_path, capsys):
    from irplan.planning.phantom import followup_from_planning

    case = phantom_case
    truth = _truth(case)
    seed = followup_from_planning(np.asarray(truth.ablation_zone.center_lps_mm), truth)
    out = tmp_path / "zone_fu.nii.gz"
    code = main(["evaluate", "--followup", str(case / "followup"),
                 "--tumor", str(case / "masks/followup/tumor.nii.gz"),
                 "--ablation-seed=" + ",".join(f"{v:.2f}" for v in seed),
                 "--save-ablation", str(out), "--register", "none", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0
    seg = read_mask(out).array != 0
    ref = read_mask(case / "masks/followup/ablation_zone.nii.gz").array != 0
    assert 2 * (seg & ref).sum() / (seg.sum() + ref.sum()) > 0.93
    # tumour and zone both in follow-up space: the MAM is the truth (rigid motion near it)
    assert d["minimal_margin_mm"] == pytest.approx(truth.minimal_margin_mm, abs=1.0)
    assert any("segmented from the click" in w for w in d["warnings"])


@pytest.mark.gui
def test_evaluate_screenshot_shows_margin_colours_and_contours(phantom_case, tmp_path, capsys):
    """margin_ok phantom: the 3D panel is green (margin >= 5 mm everywhere), never red;
    the slices carry the yellow tumour and cyan zone contours."""
    from PIL import Image

    case = phantom_case
    png = tmp_path / "eval.png"
    code = main(["evaluate", "--planning", str(case / "planning"),
                 "--tumor", str(case / "masks/planning/tumor.nii.gz"),
                 "--ablation", str(case / "masks/planning/ablation_zone.nii.gz"),
                 "--register", "none", "--screenshot", str(png), "--json"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0 and d["screenshot"] == str(png)
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    head, panel = 64, (img.shape[1] - 8) // 3
    r, g, b = (img[head:, :panel, c] for c in range(3))
    green = (g > 120) & (g > r + 50) & (g > b + 40)
    red = (r > 150) & (g < 60) & (b < 60)
    assert green.mean() > 0.03 and red.sum() == 0
    ax = img[head:, panel + 4:2 * panel + 4]
    yellow = (ax[..., 0] > 230) & (ax[..., 1] > 200) & (ax[..., 2] < 60)
    cyan = (ax[..., 0] < 110) & (ax[..., 1] > 170) & (ax[..., 2] > 230)
    assert yellow.sum() > 100 and cyan.sum() > 100
