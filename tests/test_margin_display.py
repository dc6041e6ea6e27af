"""A margin at the analysis box's cap is written "≤ -14.5 mm" (issue 12), in the PDF
report too; display names for people; masks per plan; thermal table defaults."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from irplan.planning.margin import compute_margin
from irplan.planning.margin_display import format_mam, format_margin_mm
from irplan.planning.volume import Volume


def _sphere(centre_mm, r_mm, n=60, spacing=1.0) -> Volume:
    k, j, i = np.mgrid[0:n, 0:n, 0:n].astype(float) * spacing
    d = np.sqrt((i - centre_mm[0]) ** 2 + (j - centre_mm[1]) ** 2 + (k - centre_mm[2]) ** 2)
    return Volume((d <= r_mm).astype(np.uint8), np.zeros(3), np.full(3, spacing), np.eye(3))


def test_a_margin_beyond_the_analysis_box_is_shown_as_at_most() -> None:
    tumour = _sphere((20, 30, 30), 5)
    far_zone = _sphere((50, 30, 30), 6)          # 19 mm gap: beyond the 5 + 10 mm box
    m = compute_margin(tumour, far_zone, required_margin_mm=5.0, fine_spacing_mm=1.0)
    assert m.tumor_coverage_percent == 0.0
    assert m.minimal_margin_mm == pytest.approx(-m.margin_cap_mm)   # clipped at the cap
    assert format_mam(m) == f"≤ {-m.margin_cap_mm:+.1f} mm"
    near_zone = _sphere((22, 30, 30), 9)
    m2 = compute_margin(tumour, near_zone, required_margin_mm=5.0, fine_spacing_mm=1.0)
    assert abs(m2.minimal_margin_mm) < m2.margin_cap_mm
    assert format_mam(m2) == f"{m2.minimal_margin_mm:+.1f} mm"      # a real value: no sign
    assert format_margin_mm(14.5, 14.5) == "≥ +14.5 mm"


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="pdftotext not installed")
def test_report_pdf_writes_capped_margins_with_at_most(tmp_path: Path) -> None:
    from irplan.io.report_content import EvaluationSummary, ReportContent, ZoneSummary
    from irplan.io.report_pdf import write_report_pdf

    rc = ReportContent(modality="MWA", zone_status="", evaluation_status="",
                       zone=ZoneSummary(volume_ml=12.0, coverage_percent=7.0,
                                        minimal_margin_mm=-14.5, required_margin_mm=5.0,
                                        margin_cap_mm=14.5),
                       evaluation=EvaluationSummary(mam_mm=-3.2, coverage_percent=96.0,
                                                    residual_ml=0.1, required_margin_mm=5.0,
                                                    margin_cap_mm=14.5))
    pdf = write_report_pdf(rc, tmp_path / "r.pdf")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "≤ -14.5 mm" in text
    assert "-3.2 mm" in text and "≤ -3.2" not in text


def test_user_text_has_no_internal_ids() -> None:
    from irplan.planning.display_names import code_text, user_text

    assert user_text("needles[0]: device 'ire-19g-monopolar' is IRE, the plan is MWA",
                     "MWA") == "Antenna 1: device 'ire-19g-monopolar' is IRE, the plan is MWA"
    assert user_text("needles[2].exposure_mm: not set", "IRE") == "Electrode 3 exposure: not set"
    assert "portal_vein" not in user_text("portal_vein: 0.5 ml in zone")
    assert user_text("thermal.time_s is not set") == "thermal time (s) is not set"
    assert user_text("cannot read /data/my_case/t_1.nii.gz") == \
        "cannot read /data/my_case/t_1.nii.gz"          # paths stay as they are
    assert code_text("path_crosses") == "path crosses"


def test_masks_of_two_plans_in_one_folder_do_not_collide(tmp_path: Path) -> None:
    from irplan.io.plan_masks import attach_masks, plan_mask_dir
    from irplan.planning.plan import Plan

    t1, t2 = _sphere((20, 30, 30), 5, n=40), _sphere((20, 20, 20), 8, n=40)
    a, b = Plan(), Plan()
    attach_masks(a, {"tumor": t1}, tmp_path / "a.irplan.json")
    attach_masks(b, {"tumor": t2}, tmp_path / "b.irplan.json")
    assert plan_mask_dir(tmp_path / "a.irplan.json") == tmp_path / "a.masks"
    assert Path(a.structures["tumor"]) != Path(b.structures["tumor"])
    from irplan.io.masks import read_mask

    assert int(read_mask(a.structures["tumor"]).array.sum()) == int(t1.array.sum())
    assert int(read_mask(b.structures["tumor"]).array.sum()) == int(t2.array.sum())


def test_thermal_table_defaults() -> None:
    from irplan.planning.plan import Needle, Plan
    from irplan.planning.thermal_defaults import resolve_thermal, table_default

    assert table_default("mwa-14g") == (100.0, 300.0)
    assert table_default("cryo-17g") == (None, 600.0)
    p = Plan(modality="MWA", needles=[Needle("mwa-14g", np.zeros(3), np.array([0, -90.0, 0]))])
    th, notes = resolve_thermal(p)
    assert (th.power_w, th.time_s) == (100.0, 300.0) and len(notes) == 2
    assert p.thermal.power_w is None            # the plan itself is not changed
