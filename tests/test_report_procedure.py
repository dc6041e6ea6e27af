"""The report's "Procedure" page (issue 15 item 4): `irplan detect-needles --out` on the
phantom's intra-op series with a generator log, then `irplan report` on the placed plan:
the planned-vs-placed errors, each pair's spacing / voltage / pulses / current and the
technical-success verdict as a reader sees them (pdftotext), escaped and anonymised."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from irplan.app.cli import main

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                reason="pdftotext (poppler-utils) is not installed")


def _text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                         text=True, check=True)
    return out.stdout


def _procedure_section(text: str) -> str:
    start = text.index("Procedure: needles as placed")
    return text[start:text.index("Follow-up evaluation", start)]


@pytest.fixture(scope="module")
def placed(phantom_case: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("procedure")
    csv = out / "log.csv"
    csv.write_text("pair,pulses,current_a\n" + "".join(
        f"{a}-{b},{90 + a},{20.5 + a + b}\n" for a in range(1, 5) for b in range(a + 1, 5)))
    plan = out / "placed.irplan.json"
    res = subprocess.run(
        [sys.executable, "-m", "irplan.app.cli", "detect-needles", str(phantom_case / "intraop"), "--plan",
         str(phantom_case / "plan.irplan.json"), "--json", "--out", str(plan),
         "--currents", str(csv), "--grid-mm", "2"], capture_output=True, text=True,
        timeout=300)
    assert res.returncode == 0, res.stderr
    return {"plan": plan, "det": json.loads(res.stdout), "dir": out}


def test_procedure_page_shows_errors_pairs_and_verdict(placed: dict) -> None:
    pdf = placed["dir"] / "R.pdf"
    assert main(["report", str(placed["plan"]), "--pdf", str(pdf), "--no-pictures"]) == 0
    text = _text(pdf)
    sec = _procedure_section(text)
    before = text[:text.index("Procedure: needles as placed")]
    det = placed["det"]
    assert len(det["needles"]) == 4
    # planned vs placed: one row per found needle, named as in the placed plan (N1..N4)
    for k, d in enumerate(det["needles"], start=1):
        m = re.search(rf"^\s*N{k}\s+planned needle (\d)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$",
                      sec, re.M)
        assert m, f"row of N{k} missing:\n{sec}"
        assert int(m.group(1)) == d["planned_index"]
        tip, depth, lateral, angle = (float(g) for g in m.groups()[1:])
        assert tip == pytest.approx(d["tip_error_mm"], abs=0.051)       # mm
        assert depth == pytest.approx(d["depth_error_mm"], abs=0.051)   # mm, signed
        assert lateral == pytest.approx(d["lateral_error_mm"], abs=0.051)
        assert angle == pytest.approx(d["angle_error_deg"], abs=0.051)  # deg
    # pairs: spacing, voltage set (capped at 3000 V), pulses and current of the log
    assert len(det["pairs"]) == 6
    for p in det["pairs"]:
        a, b = p["needles"]
        m = re.search(rf"^\s*N{a} \u2013 N{b}\s+(\S+)\s+(\S+)\s+(\d+)( \(max\))?\s+(\d+)\s+"
                      r"(\S+)\s+(\S+)\s*$", sec, re.M)
        assert m, f"pair {a}-{b} missing:\n{sec}"
        assert float(m.group(1)) == pytest.approx(p["spacing_mm"], abs=0.051)
        assert int(m.group(3)) == round(p["voltage_v"]) <= 3000
        assert bool(m.group(4)) == p["voltage_capped"]
        assert int(m.group(5)) == p["pulses"] == 90 + a
        assert float(m.group(6)) == pytest.approx(20.5 + a + b, abs=0.051)   # A, measured
        # the zone of this report (IRE pairs section) is predicted with the same voltages
        m = re.search(rf"^\s*N{a} \u2013 N{b}\s+\S+\s+(\d+)\s", before, re.M)
        assert m and int(m.group(1)) == round(p["voltage_v"]), before
    # verdict with its tolerances stated
    assert det["verdict"]["success"] is True
    flat = " ".join(sec.split())
    assert "Technical success: YES" in flat
    assert "tip within 5 mm" in flat and "axis within 10 deg" in flat and ">= 90 pulses" in flat
    assert "Zone as placed" in flat and "conductivity scale" in flat


def test_procedure_text_is_escaped_and_anonymised(placed: dict, phantom_case: Path) -> None:
    d = json.loads(placed["plan"].read_text())
    secret = str(phantom_case / "intraop")
    d["procedure"]["verdict"] = {"success": False, "reasons": [
        "<font size=40>needle</font> & shifted", f"see {secret}/IM0001.dcm"]}
    d["procedure"]["pairs"][0]["pulses"] = 12
    plan = placed["dir"] / "edited.irplan.json"
    plan.write_text(json.dumps(d))
    pdf = placed["dir"] / "E.pdf"
    assert main(["report", str(plan), "--pdf", str(pdf), "--no-pictures",
                 "--no-compute"]) == 0
    text = _text(pdf)
    flat = " ".join(_procedure_section(text).split())
    assert "Technical success: NO" in flat
    assert "<font size=40>needle</font> & shifted" in flat       # printed, not markup
    assert secret not in text and "IM0001" not in text           # no paths (anonymised)
    assert str(phantom_case) not in text and placed["dir"].name not in text
