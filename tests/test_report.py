"""PDF report: what a reader sees (pdftotext of the pages) and the pictures' pixels.

- the research-software notice on every page; needle tip coordinates (LPS mm, 1 decimal)
  in the needle table; anonymised by default (no patient name, "anonymised" and the
  PatientID hash instead), patient data only on request;
- absent inputs give "not computed" sections, never a crash;
- the follow-up section states MAM, coverage and the verdict of a real margin analysis;
- MPR pictures follow the radiological convention (patient left on the picture's right,
  anterior up) and show the tumour contour in its colour; the 3D picture shows the zone
  and the needles;
- ``irplan report`` on the phantom plan writes a multi-page PDF with its pictures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irplan.io.phantom_writer import load_truth
from irplan.io.report_content import (
    NOTICE,
    Picture,
    gather_report_content,
    patient_hash,
)
from irplan.io.report_pdf import write_report_pdf
from irplan.planning.plan import ImageRef, IreParams, Needle, Plan
from irplan.planning.volume import Volume

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                reason="pdftotext (poppler-utils) is not installed")

HEADER = {"PatientName": "Doe^Jane", "PatientID": "P-123456", "PatientBirthDate": "19550304",
          "StudyDate": "20260110", "StudyInstanceUID": "1.2.3.4", "AccessionNumber": "ACC9"}


def _pages(pdf: Path) -> list[str]:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                         text=True, check=True).stdout
    return [p for p in out.split("\f") if p.strip()]


def _flat(text: str) -> str:
    return " ".join(text.split())


def _plan() -> Plan:
    needles = [Needle("nanoknife-19g", [-60.25, 10.5, -12.04], [-100.0, -80.0, -30.0], 20.0, "E1"),
               Needle("nanoknife-19g", [-45.31, 8.75, -11.96], [-85.0, -82.0, -29.0], 20.0, "E2")]
    return Plan("IRE", ImageRef("planning", "1.2.3.4.5"), 5.0, needles,
                IreParams(voltage_v=2250.0, pulses=90, pulse_width_us=90.0))


def _png(path: Path, rgb: tuple[int, int, int]) -> Picture:
    img = np.zeros((300, 400, 3), np.uint8)
    img[:] = rgb
    Image.fromarray(img).save(path)
    return Picture(f"picture {path.stem}", str(path), "test picture")


def _sphere(grid: Volume, centre_lps: np.ndarray, radius_mm: float) -> Volume:
    p = grid.voxel_centres_lps()
    return grid.with_array((np.linalg.norm(p - centre_lps, axis=-1) <= radius_mm)
                           .astype(np.uint8))


def _grid(n: int = 40, spacing_mm: float = 1.0) -> Volume:
    return Volume(np.zeros((n, n, n), np.int16), np.full(3, -(n - 1) * spacing_mm / 2),
                  np.full(3, spacing_mm))


def test_notice_on_every_page_tip_coordinates_and_anonymised(tmp_path: Path) -> None:
    plan = _plan()
    pics = [_png(tmp_path / f"p{i}.png", (40 * i, 80, 120)) for i in range(4)]
    findings = [{"severity": "warning", "code": "path_near",
                 "message": "needle 1 (E1) path passes 3.2 mm from Portal vein"},
                {"severity": "error", "code": "path_crosses",
                 "message": "needle 2 (E2) path crosses Hepatic veins"}]
    rc = gather_report_content(plan, header=HEADER, findings=findings, pictures=pics)
    pdf = write_report_pdf(rc, tmp_path / "r.pdf")
    pages = _pages(pdf)
    assert len(pages) >= 2
    for page in pages:
        assert NOTICE in _flat(page)
    text = _flat("\n".join(pages))
    for nd in plan.needles:
        tip = ", ".join(f"{v:.1f}" for v in nd.tip_lps_mm)
        entry = ", ".join(f"{v:.1f}" for v in nd.entry_lps_mm)
        assert tip in text and entry in text
        assert f"{nd.length_mm:.1f}" in text
    # anonymised by default
    assert "Doe" not in text and "Jane" not in text and "P-123456" not in text
    assert "19550304" not in text and "ACC9" not in text
    assert "20260110" not in text and "1.2.3.4.5" not in text   # dates and UIDs too
    assert "anonymised" in text and patient_hash("P-123456") in text
    # findings with severity; pair spacing of the two electrodes
    assert "path crosses Hepatic veins" in text and "ERROR" in text and "WARNING" in text
    spacing = rc.pairs[0].spacing_mm
    assert f"{spacing:.1f}" in text and "2250" in text
    assert "Not computed" in text  # no zone given


def test_patient_data_only_on_request(tmp_path: Path) -> None:
    rc = gather_report_content(_plan(), header=HEADER, include_patient_data=True)
    text = _flat("\n".join(_pages(write_report_pdf(rc, tmp_path / "r.pdf"))))
    assert "Doe Jane" in text and "P-123456" in text and "ACC9" in text
    assert "20260110" in text and "1.2.3.4.5" in text


def test_absent_inputs_give_not_computed_sections(tmp_path: Path) -> None:
    plan = Plan("MWA", ImageRef("ct", ""), 5.0, [])
    rc = gather_report_content(plan)
    text = _flat("\n".join(_pages(write_report_pdf(rc, tmp_path / "r.pdf"))))
    assert "No needles in the plan" in text
    assert text.count("Not computed") >= 3          # zone, safety, views
    assert "No follow-up evaluation" in text
    assert "Microwave ablation" in text


def test_zone_and_followup_figures_from_a_real_margin_analysis(tmp_path: Path) -> None:
    from irplan.planning.margin import compute_margin

    grid = _grid(44, 1.0)
    tumor = _sphere(grid, np.zeros(3), 6.0)
    zone = _sphere(grid, np.array([1.5, 0.0, 0.0]), 10.0)
    res = compute_margin(tumor, zone, 5.0, fine_spacing_mm=0.5)
    # exact 10 - 6 - 1.5 = 2.5 mm; spheres rasterised at 1 mm bias a minimum low (~0.4 mm)
    assert res.minimal_margin_mm == pytest.approx(2.5, abs=0.5)
    plan = _plan()
    plan.extra["evaluations"] = [res.to_dict()]
    rc = gather_report_content(plan, zone=zone, margin=res, evaluation=res.to_dict())
    text = _flat("\n".join(_pages(write_report_pdf(rc, tmp_path / "r.pdf"))))
    zone_ml = float(zone.array.sum()) * zone.voxel_volume_ml
    assert f"{zone_ml:.1f} ml" in text
    assert f"{res.minimal_margin_mm:.1f} mm (goal 5 mm)" in text
    assert f"{res.tumor_coverage_percent:.1f} %" in text
    assert "Complete ablation with insufficient margin" in text


# ------------------------------------------------------------------ pictures
@pytest.mark.gui
def test_mpr_picture_is_radiological_with_tumour_contour(tmp_path: Path) -> None:
    from irplan.viewers.report_pictures import render_mpr

    grid = _grid(60, 1.5)
    ct = grid.with_array(np.full(grid.array.shape, 60, np.int16))
    # tumour on the patient's left (+L) and anterior (-P)
    centre = np.array([20.0, -15.0, 0.0])
    tumor = _sphere(grid, centre, 8.0)
    out = render_mpr(ct, {"tumor": tumor}, [], None, np.zeros(3), tmp_path / "ax.png",
                     orientation="axial", fov_mm=80.0, size_px=400)
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    yellow = (img[..., 0] > 200) & (img[..., 1] > 170) & (img[..., 2] < 90)
    ys, xs = np.nonzero(yellow[40:-40, 40:-40])   # ignore the orientation letters
    assert len(xs) > 50
    # 80 mm across 400 px: +20 mm L -> 100 px right of centre, 15 mm anterior -> 75 px up
    assert abs(xs.mean() + 40 - 200 - 100) < 6 and abs(ys.mean() + 40 - 200 + 75) < 6
    cor = render_mpr(ct, {"tumor": tumor}, [], None, np.array([0.0, -15.0, 0.0]),
                     tmp_path / "cor.png", orientation="coronal", fov_mm=80.0, size_px=400)
    img = np.asarray(Image.open(cor).convert("RGB")).astype(int)
    yellow = (img[..., 0] > 200) & (img[..., 1] > 170) & (img[..., 2] < 90)
    ys, xs = np.nonzero(yellow[40:-40, 40:-40])
    assert abs(xs.mean() + 40 - 300) < 6 and abs(ys.mean() + 40 - 200) < 6


@pytest.mark.gui
def test_scene_picture_shows_zone_and_needles(tmp_path: Path) -> None:
    from irplan.viewers.report_pictures import render_scene

    grid = _grid(50, 1.5)
    tumor = _sphere(grid, np.zeros(3), 8.0)
    zone = _sphere(grid, np.zeros(3), 16.0)
    needles = [Needle("nanoknife-19g", [-8.0, 5.0, 0.0], [-8.0, -60.0, 0.0], 20.0, "E1"),
               Needle("nanoknife-19g", [8.0, 5.0, 0.0], [8.0, -60.0, 0.0], 20.0, "E2")]
    out = render_scene({"tumor": tumor}, needles, zone, tmp_path / "s.png", size=(500, 400))
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    orange = (r > 150) & (g > 60) & (g < 170) & (b < 80)
    cyan = (r < 120) & (g > 160) & (b > 160)
    assert orange.sum() > 500, orange.sum()
    assert cyan.sum() > 20, cyan.sum()


@pytest.mark.gui
def test_picture_captions_name_the_zone_only_when_drawn(tmp_path: Path) -> None:
    """Zone not computed (electrodes too close): the captions said 'predicted zone
    orange' under pictures without a zone (stranger trial); with a zone they say it."""
    from irplan.viewers.report_pictures import render_report_pictures

    grid = _grid(40, 1.5)
    ct = grid.with_array(np.full(grid.array.shape, 60, np.int16))
    tumor = _sphere(grid, np.zeros(3), 8.0)
    needles = [Needle("nanoknife-19g", [x, 5.0, 0.0], [x, -60.0, 0.0], 20.0) for x in (-8, 8)]
    for zone, words in ((None, "no predicted zone shown"),
                        (_sphere(grid, np.zeros(3), 14.0), "predicted zone orange")):
        pics = render_report_pictures(ct, {"tumor": tumor}, needles, zone, tmp_path)
        captions = [p.caption for p in pics]
        assert len(pics) == 4 and all(Path(p.path).is_file() for p in pics)
        assert sum(words in c for c in captions) == 3, captions      # 3D and both slices
        assert ("zone" in captions[1]) == (zone is not None), captions


@pytest.mark.gui
def test_margin_map_colours_uncovered_side_red(tmp_path: Path) -> None:
    from irplan.planning.margin import compute_margin
    from irplan.viewers.report_pictures import render_margin_map

    grid = _grid(40, 1.0)
    tumor = _sphere(grid, np.zeros(3), 6.0)
    # zone shifted to +L: the tumour's right side (-L) sticks out of it
    zone = _sphere(grid, np.array([5.0, 0.0, 0.0]), 9.0)
    res = compute_margin(tumor, zone, 5.0, fine_spacing_mm=0.5)
    assert res.minimal_margin_mm < 0
    out = render_margin_map(res, tmp_path / "m.png", size=(500, 400))
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)[:, :400]  # not the bar
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    red = (r > 150) & (g < 80) & (b < 80)
    assert red.sum() > 1000, red.sum()       # camera faces the MAM: uncovered side


# ------------------------------------------------------------------ CLI on the phantom
@pytest.fixture(scope="module")
def small_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom case on a coarse grid (3 x 3 x 4 mm) to keep the CLI test fast."""
    from irplan.io.phantom_writer import write_phantom_case

    out = tmp_path_factory.mktemp("report_phantom") / "case"
    return write_phantom_case(out, seed=0, size=(128, 128, 64), spacing_mm=(3.0, 3.0, 4.0))


@pytest.mark.gui
def test_cli_report_on_phantom_plan(small_phantom: Path, tmp_path: Path) -> None:
    import json

    from pydicom import dcmread

    pdf = tmp_path / "out" / "report.pdf"
    env = dict(os.environ)
    res = subprocess.run([sys.executable, "-m", "irplan.app.cli", "report",
                          str(small_phantom / "plan.irplan.json"), "--pdf", str(pdf)],
                         capture_output=True, text=True, env=env, timeout=400)
    assert res.returncode == 0, res.stderr
    pages = _pages(pdf)
    assert len(pages) >= 3
    assert all(NOTICE in _flat(p) for p in pages)
    text = _flat("\n".join(pages))
    plan = json.loads((small_phantom / "plan.irplan.json").read_text())
    for nd in plan["needles"]:
        assert ", ".join(f"{v:.1f}" for v in nd["tip_lps_mm"]) in text
    ds = dcmread(next((small_phantom / "planning").iterdir()), stop_before_pixels=True)
    assert str(ds.PatientName).split("^")[0] not in text
    assert str(ds.PatientID) not in text and "anonymised" in text
    assert str(ds.StudyInstanceUID) not in text and str(ds.SeriesInstanceUID) not in text
    assert "Predicted ablation zone" in text and "Safety findings" in text
    imgs = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True)
    n_images = len(imgs.stdout.strip().splitlines()) - 2 if imgs.returncode == 0 else 4
    assert n_images >= 4                      # 3D, needle view, axial, coronal

    bad = subprocess.run([sys.executable, "-m", "irplan.app.cli", "report",
                          str(tmp_path / "missing.irplan.json"), "--pdf", str(pdf)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "missing.irplan.json" in bad.stderr
    assert "Traceback" not in bad.stderr
    junk = tmp_path / "eval.json"
    junk.write_text('{"verdict": 3}')
    bad = subprocess.run([sys.executable, "-m", "irplan.app.cli", "report",
                          str(small_phantom / "plan.irplan.json"), "--pdf", str(pdf),
                          "--evaluation", str(junk)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "eval.json" in bad.stderr and "minimal_margin_mm" in bad.stderr


@pytest.mark.gui
def test_cli_report_with_followup_evaluation(small_phantom: Path, tmp_path: Path) -> None:
    """The follow-up section from a real evaluation (phantom follow-up CT + zone mask,
    rigid registration): verdict, and the MAM near the phantom's exact value."""
    truth = load_truth(small_phantom)
    pdf = tmp_path / "fu.pdf"
    res = subprocess.run([sys.executable, "-m", "irplan.app.cli", "report",
                          str(small_phantom / "plan.irplan.json"), "--pdf", str(pdf),
                          "--no-pictures", "--no-compute",
                          "--followup", str(small_phantom / "followup"),
                          "--ablation", str(small_phantom / "masks" / "followup" /
                                            "ablation_zone.nii.gz")],
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    text = _flat("\n".join(_pages(pdf)))
    assert "Verdict: Complete ablation" in text
    mam = float(text.split("Minimal ablative margin (MAM)")[1].split("mm")[0])
    # 3-4 mm voxels, rigid registration (mean TRE of clinical software 1.6 mm)
    assert abs(mam - truth.minimal_margin_mm) < 2.5, (mam, truth.minimal_margin_mm)
    assert "Registration rigid" in text
