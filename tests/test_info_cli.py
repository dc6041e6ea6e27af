"""`irplan info PATH [--json]`: the series a user sees, with exact geometry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from dicom_factory import write_enhanced_ct, write_series  # noqa: E402

from irplan.app.cli import main as cli_main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IRPLAN = REPO / ".venv" / "bin" / "irplan"

ROW = (np.cos(0.5), 0.0, -np.sin(0.5))
COL = (0.0, 1.0, 0.0)


def _info_json(path: Path, capsys) -> list[dict]:
    assert cli_main(["info", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_contract_oblique_reversed(tmp_path, capsys):
    w = write_series(tmp_path / "ct", row_cos=ROW, col_cos=COL, file_order="reversed",
                     n_slices=5, rows=10, cols=12, description="Leber arteriell")
    (tmp_path / "ct" / "README.txt").write_text("not dicom")
    out = _info_json(tmp_path, capsys)
    assert isinstance(out, list) and len(out) == 1
    s = out[0]
    for key in ("series_uid", "modality", "description", "size", "spacing_mm",
                "origin_lps_mm", "direction", "warnings"):
        assert key in s
    assert s["series_uid"] == w.series_uid and s["modality"] == "CT"
    assert s["description"] == "Leber arteriell" and s["phase"] == "arterial"
    assert s["size"] == [12, 10, 5] and s["slices"] == 5
    assert np.allclose(s["spacing_mm"], [0.7, 0.8, 2.0])
    # origin = ImagePositionPatient of the first slice along the normal (LPS mm)
    assert np.allclose(s["origin_lps_mm"], w.sorted_positions_lps_mm[0], atol=1e-6)
    d = np.array(s["direction"]).reshape(3, 3)  # row-major; columns are the i, j, k axes
    assert np.allclose(d[:, 0], ROW) and np.allclose(d[:, 1], COL)
    assert np.allclose(d[:, 2], w.normal)
    assert any("oblique" in m for m in s["warnings"])
    assert s["files_skipped"] == 1 and s["is_localizer"] is False


def test_text_table(tmp_path, capsys):
    write_series(tmp_path / "a", n_slices=4, description="Abdomen portal venous")
    write_enhanced_ct(tmp_path / "b" / "mf.dcm", n_frames=3)
    write_series(tmp_path / "c", n_slices=5, drop=[2], description="gappy")
    (tmp_path / "junk.bin").write_bytes(b"\x00\x01" * 10)
    assert cli_main(["info", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    assert lines[0].split()[:3] == ["#", "Modality", "Description"]
    assert any("Abdomen portal venous" in x and "portal venous" in x and "12 10 4" in x
               and "0.700 0.800 2.000" in x and "axial" in x for x in lines)
    assert any("enhanced multi-frame" in x and "9 8 3" in x for x in lines)
    assert any(x.strip().startswith("warning: gap") for x in lines)
    assert "junk.bin: not a DICOM file" in cap.err and "1 file(s) skipped" in cap.err


def test_subprocess_exit_codes(tmp_path):
    """The installed console script: JSON on stdout, one-line error and exit 2 on bad input."""
    write_series(tmp_path / "ok", n_slices=3)
    ok = subprocess.run([str(IRPLAN), "info", str(tmp_path / "ok"), "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["size"] == [12, 10, 3]
    bad = subprocess.run([str(IRPLAN), "info", str(tmp_path / "missing")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"irplan: error: {tmp_path / 'missing'}: no such file or folder"


@pytest.mark.shared_data
def test_ircadb17_info(ircadb17, capsys):
    out = _info_json(ircadb17 / "PATIENT_DICOM", capsys)
    assert len(out) == 1
    s = out[0]
    ds = pydicom.dcmread(ircadb17 / "PATIENT_DICOM" / "image_0", stop_before_pixels=True)
    assert s["modality"] == "CT" and s["size"] == [512, 512, 119]
    ps = [float(v) for v in ds.PixelSpacing]
    assert np.allclose(s["spacing_mm"], [ps[1], ps[0], float(ds.SpacingBetweenSlices)], atol=1e-6)
    assert np.allclose(s["spacing_mm"], [0.743, 0.743, 1.6], atol=1e-4)
    assert np.allclose(s["origin_lps_mm"], [0, 0, 0])
    assert np.allclose(s["direction"], np.eye(3).reshape(-1))
    assert s["warnings"] == [] and s["patient_name"] == "liver_17^patient"
    # the parent folder: the zip and SOURCE.md are skipped, the series is the same
    assert cli_main(["info", str(ircadb17)]) == 0
    cap = capsys.readouterr()
    assert "512 512 119" in cap.out and "MASKS_DICOM.zip: not a DICOM file" in cap.err


def test_phantom_case_listing(phantom_case, capsys):
    """The demo case: three CT series and the SEG of its structures, each described."""
    out = _info_json(phantom_case, capsys)
    cts = [s for s in out if s["modality"] == "CT"]
    assert len(cts) == 3 and all(s["warnings"] == [] for s in cts)
    planning = next(s for s in cts if "Planning" in s["description"])
    assert planning["phase"] == "portal venous"
    seg = [s for s in out if s["modality"] == "SEG"]
    assert len(seg) == 1 and len(seg[0]["warnings"]) == 1
    assert "import it as structures" in seg[0]["warnings"][0]
    from irplan.io.dicom_load import load_ct, load_series
    from irplan.io.dicom_scan import scan_dicom
    from irplan.planning.errors import InputError

    vol = load_ct(phantom_case / "planning")
    assert vol.size_xyz == tuple(planning["size"])
    assert np.allclose(vol.origin_lps_mm, planning["origin_lps_mm"])
    seg_info = next(s for s in scan_dicom(phantom_case / "seg").series)
    with pytest.raises(InputError, match="is SEG, a segmentation"):
        load_series(seg_info)
