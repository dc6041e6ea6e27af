"""The cohort QC report (`irplan cohort-report`, io.cohort_report) and the per-case
thumbnail (io.cohort_thumbnail): what the PDF states, and where the contours are drawn."""

from __future__ import annotations

import csv
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irplan.app.cli import main
from irplan.app.cmd_evaluate_batch import OUT_COLUMNS
from irplan.io.atomic_write import leftover_temp_files
from irplan.io.cohort_thumbnail import (
    MARGIN_RGB,
    TUMOR_RGB,
    ZONE_RGB,
    read_geometry,
    thumbnail_filename,
    write_case_thumbnail,
)
from irplan.io.csv_safe import safe_row
from irplan.planning.evaluation import VERDICTS

needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None
                                   or shutil.which("pdfimages") is None,
                                   reason="poppler-utils (pdftotext, pdfimages) not installed")


def _row(case: str, mam: float | None, verdict: str, method: str = "rigid",
         rigid: float | None = None, ini: float = -0.33, fin: float = -0.43,
         status: str = "ok", error: str = "") -> dict:
    if status != "ok":
        return {"case_id": case, "status": status, "error": error}
    return {"case_id": case, "status": "ok", "verdict": verdict, "minimal_margin_mm": mam,
            "tumor_coverage_percent": 100.0 if mam >= 0 else 96.5,
            "registration_method": method, "registration_metric_value": fin,
            "registration_initial_metric_value": ini, "registration_iterations": 40,
            "rigid_minimal_margin_mm": rigid, "elapsed_s": 3.2}


ROWS = [
    _row("A01", 6.2, "complete_margin_ok"),
    _row("A02", 2.1, "complete_margin_at_risk", ini=-0.400, fin=-0.402),  # barely improved
    _row("A03", -1.4, "incomplete"),
    _row("D01", 7.25, "complete_margin_ok", "deformable", 6.82, -0.431, -0.430),
    _row("D02", 3.10, "complete_margin_at_risk", "deformable", 4.60, -0.40, -0.41),
    _row("D03", -0.80, "incomplete", "deformable", -0.20, -0.52, -0.53),
    _row("D04", 5.6, "complete_margin_ok", "deformable", 5.1, -0.45, -0.46),
    _row("F01", None, "", status="error",
         error="/secret/site/Doe John/tumor.nii.gz: file not found"),
    _row("F02", None, "", status="error",
         error="rigid registration failed (Too many samples map outside moving image "
               "buffer); check that both scans show the liver, or give landmarks"),
]


def _write_results(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=OUT_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(safe_row(r))
    return path


def _pdf_pages(pdf: Path) -> list[str]:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                         capture_output=True, text=True).stdout
    return [" ".join(p.split()) for p in out.split("\f") if p.strip()]


@needs_poppler
def test_cohort_report_states_counts_bland_altman_and_failures(tmp_path, capsys):
    results = _write_results(tmp_path / "results.csv", ROWS)
    thumbs = tmp_path / "thumbs"
    thumbs.mkdir()
    Image.new("RGB", (64, 70), (40, 40, 40)).save(thumbs / thumbnail_filename("A01"))
    pdf = tmp_path / "out" / "cohort.pdf"
    code = main(["cohort-report", str(results), "--out", str(pdf),
                 "--thumbnails", str(thumbs)])
    assert code == 0, capsys.readouterr().err
    assert pdf.stat().st_size > 0 and not leftover_temp_files(pdf.parent)
    pages = _pdf_pages(pdf)
    text = " ".join(pages)
    # research-use notice on every page
    assert len(pages) >= 2
    assert all("not a certified medical device" in p for p in pages)
    # counts
    assert "Cases in the cohort 9" in text
    assert "Evaluated (status ok) 7" in text and "Failed (status error) 2" in text
    for key, n in (("complete_margin_ok", 3), ("complete_margin_at_risk", 2),
                   ("incomplete", 2)):
        assert f"{VERDICTS[key].format(m=5)} {key} {n} {round(100 * n / 7)} %" in text
    # Bland-Altman, computed here independently from the rows
    diffs = [r["minimal_margin_mm"] - r["rigid_minimal_margin_mm"] for r in ROWS
             if r.get("rigid_minimal_margin_mm") is not None]
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    assert (f"mean difference {mean:+.2f} mm, SD {sd:.2f} mm, 95 % limits of agreement "
            f"{mean - 1.96 * sd:+.2f} to {mean + 1.96 * sd:+.2f} mm (n = 4 cases") in text
    # registration QC flags: rigid that barely moved the metric, rigid/deformable disagree
    assert "barely improved (0.5 %)" in text
    assert "MAM deformable \u2212 rigid" in text and "-1.5 mm" in text   # cell wraps
    assert "Registration QC flag (see the per-case table) 3" in text   # A02, D02, F02
    # failures with their reasons, paths cut to the file name
    assert "F01 tumor.nii.gz: file not found" in text
    assert "F02 rigid registration failed (Too many samples map outside moving image" in text
    assert "Doe" not in text and "secret" not in text
    # one thumbnail given -> one picture in the PDF; the others are listed as missing
    images = subprocess.run(["pdfimages", "-list", str(pdf)], check=True,
                            capture_output=True, text=True).stdout.splitlines()[2:]
    assert len(images) == 1
    assert "No thumbnail for: A02, A03, D01, D02, D03, D04." in text
    # rows as evaluate-batch --report passes them (numbers and None, not CSV text): the
    # same statements; a case id with markup is printed as text
    from irplan.io.cohort_report import write_cohort_report

    typed = [dict(r) for r in ROWS] + [_row("<b>X1</b>", 8.0, "complete_margin_ok")]
    pdf2 = tmp_path / "typed.pdf"
    write_cohort_report(typed, {}, pdf2)
    text2 = " ".join(_pdf_pages(pdf2))
    assert f"limits of agreement {mean - 1.96 * sd:+.2f} to {mean + 1.96 * sd:+.2f}" in text2
    assert f"{VERDICTS['complete_margin_ok'].format(m=5)} complete_margin_ok 4 50 %" in text2
    assert "<b>X1</b>" in text2 and "No thumbnails given." in text2


def test_cohort_report_bad_input_exit_2(tmp_path, capsys):
    pdf = tmp_path / "cohort.pdf"
    cohort = tmp_path / "cohort.csv"  # the batch's INPUT, not its results
    cohort.write_text("case_id,planning,followup,tumor,ablation\nc1,a,b,c,d\n")
    png = tmp_path / "picture.csv"
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    bad_status = _write_results(tmp_path / "status.csv",
                                [dict(ROWS[0], status="maybe")])
    for path, why in ((cohort, "missing column(s) status, error, verdict"),
                      (png, "not a CSV file"),
                      (tmp_path / "absent.csv", "not found"),
                      (bad_status, "line 2: status 'maybe'")):
        code = main(["cohort-report", str(path), "--out", str(pdf)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 1 and str(path) in err[0] and why in err[0], err
        assert not pdf.exists()


def _colour_mask(img: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.all(np.abs(img.astype(int) - np.array(rgb)) <= 2, axis=2)


def test_thumbnail_of_phantom_evaluation_draws_contours_where_they_are(phantom_case,
                                                                       tmp_path):
    from irplan.app.cmd_evaluate import evaluate_paths
    from irplan.io.masks import read_mask
    from irplan.io.phantom_writer import load_truth

    case = phantom_case
    truth = load_truth(case).to_dict()
    tumor_path = case / "masks/planning/tumor.nii.gz"
    res, planning_ct, _f, _z = evaluate_paths(
        str(case / "planning"), None, str(tumor_path),
        str(case / "masks/planning/ablation_zone.nii.gz"), "none")
    tumor = read_mask(tumor_path)
    c_t = np.array(truth["tumor"]["center_lps_mm"])
    r_t = truth["tumor"]["radii_mm"][0]
    z = truth["ablation_zone"]
    c_z, radii_z, axes_z = (np.array(z["center_lps_mm"]), np.array(z["radii_mm"]),
                            np.array(z["axes"]))
    for ct, name in ((planning_ct, "with_ct.png"), (None, "no_ct.png")):
        out = write_case_thumbnail(res, ct, tumor, tmp_path / name)
        assert out.is_file() and not leftover_temp_files(tmp_path)
        g = read_geometry(out)
        n = g["image_px"]
        img = np.asarray(Image.open(out).convert("RGB"))[:n]  # without the caption strip
        # the slice goes through the minimal-margin point
        assert g["s_mm"] == pytest.approx(res.margin.mam_point_lps_mm[2], abs=1e-3)
        rows, cols = np.mgrid[0:n, 0:n]
        lps = np.stack([g["origin_lps_mm"][0] + (cols + 0.5) * g["pixel_mm"],
                        g["origin_lps_mm"][1] + (rows + 0.5) * g["pixel_mm"],
                        np.full((n, n), g["s_mm"])], axis=-1)
        # tumour contour colour: on the true sphere's cross-section circle (mm)
        r_slice = np.sqrt(r_t ** 2 - (g["s_mm"] - c_t[2]) ** 2)
        tum = _colour_mask(img, TUMOR_RGB)
        d_t = np.linalg.norm(lps[tum][:, :2] - c_t[:2], axis=1)
        assert tum.sum() > 100
        assert np.percentile(np.abs(d_t - r_slice), 95) < 2.5   # voxels 1.5 x 1.5 x 2 mm
        # zone contour colour: elsewhere, on the true ellipsoid's surface
        zon = _colour_mask(img, ZONE_RGB)
        q = (lps[zon] - c_z) @ axes_z.T / radii_z   # rows of "axes" are the unit axes
        rho = np.linalg.norm(q, axis=1)
        assert zon.sum() > 200
        assert np.percentile(np.abs(rho - 1.0), 95) < 2.5 / radii_z.min()
        assert np.all(np.linalg.norm(lps[zon][:, :2] - c_t[:2], axis=1) > r_slice + 2.0)
        # the MAM point is ringed in the margin's colour (>= 5 mm: green)
        assert res.margin.minimal_margin_mm >= 5.0
        mam = res.margin.mam_point_lps_mm
        pc = ((mam[0] - g["origin_lps_mm"][0]) / g["pixel_mm"] - 0.5,
              (mam[1] - g["origin_lps_mm"][1]) / g["pixel_mm"] - 0.5)
        ring = _colour_mask(img, MARGIN_RGB["ok"])
        rr, cc = np.nonzero(ring)
        assert ring.sum() > 10
        assert np.all(np.hypot(cc - pc[0], rr - pc[1]) < 9)
