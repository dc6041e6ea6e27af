"""`irplan segment`: the headless tool a user runs on a CT folder with LPS seeds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from irplan.io.masks import read_mask, read_volume_file
from irplan.io.phantom_writer import load_truth


def _irplan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "irplan.app.cli", *args], capture_output=True,
                          text=True, timeout=300)


def _fmt(p) -> str:
    return ",".join(f"{v:.2f}" for v in p)


def dice(a, b) -> float:
    a, b = a.array != 0, b.array != 0
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_segment_tumour_liver_vessels_from_seeds(phantom_case: Path, tmp_path):
    truth = load_truth(phantom_case)
    tumour = np.asarray(truth.tumor.center_lps_mm)
    rpv = truth.vessel("right portal vein")
    vessel = 0.5 * (np.asarray(rpv.start_lps_mm) + np.asarray(rpv.end_lps_mm))
    liver_truth = read_mask(phantom_case / "masks" / "planning" / "liver.nii.gz")
    # a liver seed: deep in the parenchyma, away from the tumour and vessels
    from scipy.ndimage import distance_transform_edt

    d = distance_transform_edt(liver_truth.array, sampling=liver_truth.spacing_mm[::-1])
    liver_seed = liver_truth.index_to_lps(
        np.array(np.unravel_index(int(np.argmax(d)), d.shape)[::-1], float))
    out = tmp_path / "seg"
    # negative first coordinates without '=' (argparse would take them for options)
    r = _irplan("segment", str(phantom_case / "planning"), "--tumor-seed", _fmt(tumour),
                "--liver-seed", _fmt(liver_seed), "--vessel-seed", _fmt(vessel),
                "--calibre", "--out", str(out))
    assert r.returncode == 0, r.stderr
    print(r.stdout)
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.strip()}
    assert {"tumor", "liver", "vessels"} <= set(lines)
    assert "mL" in lines["tumor"] and "max diameter" in lines["tumor"]
    t = read_mask(out / "tumor.nii.gz")
    t_truth = read_mask(phantom_case / "masks" / "planning" / "tumor.nii.gz")
    assert t.same_geometry(t_truth, tol_mm=1e-3)
    assert dice(t, t_truth) >= 0.90
    assert dice(read_mask(out / "liver.nii.gz"), liver_truth) >= 0.90
    # the printed tumour volume is the file's volume (mL)
    printed_ml = float(lines["tumor"].split()[1])
    assert printed_ml == pytest.approx(t.array.sum() * t.voxel_volume_ml, abs=0.05)
    v = read_mask(out / "vessels.nii.gz")
    assert v.array.sum() > 0
    # vessels limited to the liver (+10 mm) because a liver was segmented in the same run
    cal = read_volume_file(out / "vessels_diameter_mm.nii.gz")
    assert cal.value_at_lps(vessel, order=0) == pytest.approx(2 * rpv.radius_mm, abs=1.6)


def test_segment_json_bone_and_errors(phantom_case: Path, tmp_path):
    r = _irplan("segment", str(phantom_case / "planning"), "--bone", "--json",
                "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows[0]["structure"] == "bone" and rows[0]["volume_ml"] > 100
    assert (tmp_path / "o" / "bone.nii.gz").exists()
    # a portal-vein seed without a liver: the tree runs on into the aorta (they touch in
    # the phantom) and the tool says so
    truth = load_truth(phantom_case)
    rpv = truth.vessel("right portal vein")
    seed = 0.5 * (np.asarray(rpv.start_lps_mm) + np.asarray(rpv.end_lps_mm))
    r = _irplan("segment", str(phantom_case / "planning"), "--vessel-seed", _fmt(seed),
                "--out", str(tmp_path / "v"))
    assert r.returncode == 0, r.stderr
    assert "warning:" in r.stdout and "segment the liver first" in r.stdout
    # user errors: one line on stderr, exit 2, no traceback
    r = _irplan("segment", str(phantom_case / "planning"), "--tumor-seed=900,0,0",
                "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "outside the CT" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = _irplan("segment", str(phantom_case / "planning"), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "nothing to do" in r.stderr
    r = _irplan("segment", str(phantom_case / "planning"), "--tumor-seed", "1,2",
                "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "X,Y,Z" in r.stderr
    r = _irplan("segment", str(tmp_path / "nowhere"), "--bone", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
