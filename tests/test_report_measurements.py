"""Measurements in the PDF report (issue 16): `irplan report` on a plan file whose
``measurements`` list (View > Measure) holds a 2D distance, an angle, an ROI and a 3D
distance; the reader sees each figure with its unit, the view and the position (pdftotext);
an unreadable entry is a note, not a failure."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from irplan.app.cli import main

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                reason="pdftotext (poppler-utils) is not installed")

A, B = [-60.0, 10.0, 4.0], [-35.5, 30.25, 4.0]          # LPS mm
V = [-40.0, 0.0, 4.0]
P3, Q3 = [-70.2, -2.5, 6.0], [-52.0, -1.0, 9.5]


def _text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                         text=True, check=True)
    return out.stdout


def _plan_with_measurements(phantom_case: Path, out: Path) -> Path:
    plan = json.loads((phantom_case / "plan.irplan.json").read_text())
    plan["image"]["path"] = str(phantom_case / plan["image"]["path"])
    plan["structures"] = {k: str(phantom_case / v) for k, v in plan["structures"].items()}
    plan["measurements"] = [
        {"kind": "distance", "view": "axial", "points_lps_mm": [A, B], "text": "x"},
        {"kind": "angle", "view": "coronal", "points_lps_mm": [[-40.0, 0.0, 24.0], V,
                                                                 [-10.0, 0.0, 4.0]]},
        {"kind": "roi_ellipse", "view": "axial", "points_lps_mm": [[-80.0, -40.0, 4.0],
                                                                   [-40.0, 0.0, 4.0]],
         "mean_hu": 41.25, "sd_hu": 3.5, "min_hu": 30.0, "max_hu": 52.0, "n_voxels": 400,
         "area_mm2": 1256.6},
        {"kind": "distance_3d", "view": "3d", "points_lps_mm": [P3, Q3]},
        {"kind": "distance", "view": "axial", "points_lps_mm": [A]},    # broken entry
    ]
    path = out / "measured.irplan.json"
    path.write_text(json.dumps(plan))
    return path


def test_report_lists_the_plans_measurements(phantom_case: Path, tmp_path: Path) -> None:
    plan = _plan_with_measurements(phantom_case, tmp_path)
    pdf = tmp_path / "R.pdf"
    assert main(["report", str(plan), "--pdf", str(pdf), "--no-pictures",
                 "--no-compute"]) == 0
    text = _text(pdf)
    sec = text[text.index("Measurements"):]
    d = float(np.linalg.norm(np.subtract(B, A)))
    assert re.search(rf"Distance\s+axial\s+{d:.1f} mm\s+\(-60\.0, 10\.0, 4\.0\) to", sec), sec
    u, w = np.subtract([-40.0, 0.0, 24.0], V), np.subtract([-10.0, 0.0, 4.0], V)
    ang = float(np.degrees(np.arccos(np.dot(u, w) / np.linalg.norm(u) / np.linalg.norm(w))))
    assert re.search(rf"Angle\s+coronal\s+{ang:.1f}\u00b0\s+vertex \(-40\.0, 0\.0, 4\.0\)",
                     sec), sec
    roi = sec[sec.index("Elliptical ROI") - 300:]     # the figure may wrap over lines
    assert re.search(r"mean 41\.[23] \u00b1 3\.5 HU", roi) and "range 30 to" in roi, roi
    assert "52 HU, area 12.57 cm\u00b2" in roi and "centre (-60.0, -20.0, 4.0)" in roi
    d3 = float(np.linalg.norm(np.subtract(Q3, P3)))
    assert re.search(rf"Distance\s+3D, surfaces\s+{d3:.1f} mm\s+\(-70\.2, -2\.5, 6\.0\)", sec), sec
    # the broken entry: a note naming it, the others shown
    assert "measurement 5 not shown: points_lps_mm: expected 2 LPS points (mm)" in \
        " ".join(text.split())


def test_report_without_measurements_has_no_table(phantom_case: Path, tmp_path: Path) -> None:
    from irplan.io.report_measurements import measurement_rows

    assert measurement_rows({}) == ([], [])
    rows, bad = measurement_rows({"measurements": "3 mm"})
    assert rows == [] and "expected a list" in bad[0]
