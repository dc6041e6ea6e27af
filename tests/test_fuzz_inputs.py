"""Issue 13, causes 1, 2 and 4: hostile and careless inputs get one line on stderr and
exit 2 (never a traceback, never exit 1, never a silent wrong result), and no output is
ever left half-written (the previous file stays intact, no temp file is left).

Inputs are small (a 128 x 128 x 64 phantom at 3 mm, a 24 x 20 x 8 synthetic CT) so the
module stays fast. The full-disk and read-only tests mount a tmpfs inside a private mount
namespace (``unshare --mount``, root only; skipped otherwise).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from irplan.app.cli import main as cli_main
from irplan.io.atomic_write import leftover_temp_files
from irplan.io.phantom_writer import load_truth
from irplan.planning.volume import Volume

SIZE = "128,128,64"
SPACING = "3,3,4"


# ----------------------------------------------------------------------------- helpers
def run_cli(capfd: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """``irplan ARGV`` in this process: (exit code, stdout, stderr at the fd level, so
    C-library noise would be seen too)."""
    try:
        code = cli_main([str(a) for a in argv])
    except SystemExit as exc:   # argparse usage errors
        code = int(exc.code or 0)
    out, err = capfd.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *words: str) -> str:
    """Exit 2 and exactly one non-empty stderr line mentioning every word."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, f"exit {code}, stderr: {err}"
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{err}"
    assert "Traceback" not in err and "internal error" not in err
    for w in words:
        assert w.lower() in lines[0].lower(), f"{w!r} not in {lines[0]!r}"
    return lines[0]


def digest(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b"<missing>"


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small phantom case (plan, masks, DICOM) written once for the module."""
    from irplan.io.phantom_writer import write_phantom_case

    out = tmp_path_factory.mktemp("fuzz") / "case"
    write_phantom_case(out, seed=0, size=(128, 128, 64), spacing_mm=(3.0, 3.0, 4.0))
    return out


def _plan_copy(case: Path, folder: Path, name: str = "plan.irplan.json", **changes) -> Path:
    """The case's plan with absolute paths (usable from any folder) and ``changes``."""
    d = json.loads((case / "plan.irplan.json").read_text())
    d["image"]["path"] = str(case / d["image"]["path"])
    d["structures"] = {k: str(case / v) for k, v in d["structures"].items()}
    d.update(changes)
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(json.dumps(d))
    return p


def _write_nifti(arr: np.ndarray, like: Path, out: Path) -> Path:
    ref = sitk.ReadImage(str(like))
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(ref)
    sitk.WriteImage(img, str(out), True)
    return out


def tiny_ct(folder: Path, positions_mm: list[float] | None = None,
            shape: tuple[int, int, int] = (8, 20, 24), **extra) -> list[Path]:
    """A 24 x 20 x 8 CT series (2 mm slices; ``positions_mm`` overrides the slice z)."""
    from irplan.io.dicom_write import write_ct_series

    rng = np.random.default_rng(0)
    arr = rng.integers(-100, 200, size=shape).astype(np.int16)
    arr[:, 5:15, 6:18] = 700   # "bone"
    vol = Volume(arr, np.array([-20.0, -20.0, 0.0]), np.array([1.5, 1.5, 2.0]), np.eye(3))
    files = write_ct_series(vol, folder, **extra)
    if positions_mm is not None:
        for f, z in zip(files, positions_mm):
            ds = pydicom.dcmread(f)
            ds.ImagePositionPatient = [-20.0, -20.0, float(z)]
            ds.save_as(f)
    return files


def tiny_plan(folder: Path, ct_folder: Path) -> Path:
    p = folder / "tiny.irplan.json"
    p.write_text(json.dumps({"schema": 1, "modality": "IRE",
                             "image": {"path": str(ct_folder), "series_uid": ""},
                             "needles": []}))
    return p


def small_png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (16, 12), (200, 30, 30)).save(path)
    return path


# ============================================================ cause 4: numeric options
NUMERIC_CASES = [
    ("zone", ["PLAN", "--threshold-v-per-cm", "nan"], "--threshold-v-per-cm"),
    ("zone", ["PLAN", "--ratio-v-per-cm", "-1500"], "--ratio-v-per-cm"),
    ("zone", ["PLAN", "--padding-mm", "nan"], "--padding-mm"),
    ("zone", ["PLAN", "--grid-mm", "inf"], "--grid-mm"),
    ("zone", ["PLAN", "--grid-mm", "0"], "--grid-mm"),
    ("zone", ["PLAN", "--margin-grid-mm", "-1"], "--margin-grid-mm"),
    ("zone", ["PLAN", "--isotherm-c", "nan"], "--isotherm-c"),
    ("compare-plans", ["PLAN", "PLAN", "--tip-tolerance-mm", "nan"], "--tip-tolerance-mm"),
    ("compare-plans", ["PLAN", "PLAN", "--tip-tolerance-mm", "-1"], "--tip-tolerance-mm"),
    ("compare-plans", ["PLAN", "PLAN", "--coverage-tolerance", "nan"], "--coverage-tolerance"),
    ("compare-plans", ["PLAN", "PLAN", "--max-angle-deg", "-5"], "--max-angle-deg"),
    ("evaluate", ["--tumor", "T", "--ablation", "A", "--margin-mm", "nan"], "--margin-mm"),
    ("evaluate", ["--tumor", "T", "--ablation", "A", "--spacing-mm", "0"], "--spacing-mm"),
    ("segment", ["CT", "--out", "O", "--tumor-radius-mm", "1e9"], "--tumor-radius-mm"),
    ("segment", ["CT", "--out", "O", "--tumor-radius-mm", "nan"], "--tumor-radius-mm"),
    ("segment", ["CT", "--out", "O", "--tumor-seed", "1e300,0,0"], "--tumor-seed"),
    ("segment", ["CT", "--out", "O", "--vessel-seed", "nan,0,0"], "--vessel-seed"),
    ("phantom", ["OUT", "--seed", "-1"], "--seed"),
    ("phantom", ["OUT", "--seed", "1" * 400], "--seed"),
    ("pacs", ["echo", "--node", "A@localhost:104", "--timeout", "nan"], "--timeout"),
    ("pacs", ["get", "--node", "A@localhost:104", "--study", "1.2", "--out", "O",
              "--port", "70000"], "--port"),
]


@pytest.mark.parametrize(("cmd", "argv", "option"), NUMERIC_CASES,
                         ids=[f"{c}{a[-2]}={a[-1][:8]}" for c, a, _o in NUMERIC_CASES])
def test_numeric_option_refused_in_one_line(capfd, tmp_path: Path, cmd: str, argv: list[str],
                                            option: str) -> None:
    argv = [str(tmp_path / a) if a in ("PLAN", "T", "A", "CT", "O", "OUT") else a
            for a in argv]
    code, out, err = run_cli(capfd, cmd, *argv)
    assert_one_line_error(code, err, option, f"irplan {cmd}")
    assert out == ""
    assert list(tmp_path.iterdir()) == []   # nothing written


def test_conductivity_value_must_be_positive_and_finite(capfd, case: Path) -> None:
    code, _out, err = run_cli(capfd, "zone", case / "plan.irplan.json", "--conductivity",
                              "tumor=nan")
    assert_one_line_error(code, err, "--conductivity")


# ============================================================ plan files (cause 4)
@pytest.mark.parametrize("what", ["int400", "int5000", "deep900", "deeplist900"])
def test_absurd_plan_json_is_one_line_exit_2(capfd, case: Path, tmp_path: Path,
                                             what: str) -> None:
    text = (case / "plan.irplan.json").read_text()
    if what.startswith("int"):
        digits = int(what[3:])
        text = text.replace('"margin_mm": 5', f'"margin_mm": 1{"0" * (digits - 1)}')
        word = f"{digits} digits"
    else:
        nest = ('{"a":' * 900 + "1" + "}" * 900) if what == "deep900" else \
            ("[" * 900 + "]" * 900)
        text = text.rstrip().rstrip("}") + f', "notes": {nest}}}'
        word = "nested"
    p = tmp_path / "bad.irplan.json"
    p.write_text(text)
    for cmd in ("check", "zone"):
        code, _out, err = run_cli(capfd, cmd, p)
        assert_one_line_error(code, err, str(p), word)


def test_structure_path_that_is_a_folder_is_one_line(capfd, case: Path, tmp_path: Path) -> None:
    folder = tmp_path / "tumor.nii.gz"
    folder.mkdir()
    d = json.loads(_plan_copy(case, tmp_path).read_text())
    d["structures"]["tumor"] = str(folder)
    p = tmp_path / "plan.irplan.json"
    p.write_text(json.dumps(d))
    code, _out, err = run_cli(capfd, "check", p, "--no-image")
    assert_one_line_error(code, err, str(folder), "folder")


# ============================================================ masks (cause 2)
def test_truncated_nifti_gz_is_refused_naming_the_file(capfd, case: Path, tmp_path: Path) -> None:
    good = case / "masks" / "planning" / "tumor.nii.gz"
    data = good.read_bytes()
    # what a cut-off copy looks like: the gzip stream ends early
    bad = tmp_path / "tumor_cut.nii.gz"
    bad.write_bytes(data[: int(len(data) * 0.6)])
    code, _out, err = run_cli(capfd, "evaluate", "--register", "none", "--tumor", bad,
                              "--ablation", case / "masks/planning/ablation_zone.nii.gz")
    assert_one_line_error(code, err, str(bad), "truncated")
    # a complete gzip stream of a NIfTI whose image data were cut (SimpleITK would pad it)
    raw = gzip.decompress(data)
    bad2 = tmp_path / "tumor_short.nii.gz"
    bad2.write_bytes(gzip.compress(raw[: len(raw) * 2 // 3]))
    code, _out, err = run_cli(capfd, "evaluate", "--register", "none", "--tumor", bad2,
                              "--ablation", case / "masks/planning/ablation_zone.nii.gz")
    assert_one_line_error(code, err, str(bad2), "truncated NIfTI")
    # and a corrupt (bit-flipped) stream: CRC
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    bad3 = tmp_path / "tumor_flip.nii.gz"
    bad3.write_bytes(bytes(flipped))
    code, _out, err = run_cli(capfd, "evaluate", "--register", "none", "--tumor", bad3,
                              "--ablation", case / "masks/planning/ablation_zone.nii.gz")
    assert_one_line_error(code, err, str(bad3))


def test_probability_map_refused_unless_a_threshold_is_given(capfd, case: Path,
                                                             tmp_path: Path) -> None:
    tumor = case / "masks" / "planning" / "tumor.nii.gz"
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(tumor))).astype(np.float32)
    prob = np.where(arr > 0, 0.9, 0.01).astype(np.float32)   # 0.01 background
    pm = _write_nifti(prob, tumor, tmp_path / "tumor_prob.nii.gz")
    abl = case / "masks" / "planning" / "ablation_zone.nii.gz"
    code, _out, err = run_cli(capfd, "evaluate", "--register", "none", "--tumor", pm,
                              "--ablation", abl)
    assert_one_line_error(code, err, str(pm), "probability", "--mask-threshold")
    code, out, err = run_cli(capfd, "evaluate", "--register", "none", "--tumor", pm,
                             "--ablation", abl, "--mask-threshold", "0.5", "--json")
    assert code == 0, err
    d = json.loads(out)
    truth = load_truth(case)
    # the thresholded map is the tumour (not the whole volume) and the rule is stated
    assert d["tumor_volume_ml"] == pytest.approx(truth.tumor.volume_ml, rel=0.15)
    assert any("value >= 0.5" in w for w in d["warnings"])


def test_labelmap_is_not_merged_into_one_mask(capfd, case: Path, tmp_path: Path) -> None:
    tumor = case / "masks" / "planning" / "tumor.nii.gz"
    liver = case / "masks" / "planning" / "liver.nii.gz"
    t = sitk.GetArrayFromImage(sitk.ReadImage(str(tumor)))
    lv = sitk.GetArrayFromImage(sitk.ReadImage(str(liver)))
    lab = np.where(t > 0, 1, np.where(lv > 0, 2, 0)).astype(np.uint8)
    lm = _write_nifti(lab, tumor, tmp_path / "labels.nii.gz")
    code, _out, err = run_cli(capfd, "evaluate", "--register", "none", "--tumor", lm,
                              "--ablation", case / "masks/planning/ablation_zone.nii.gz")
    assert_one_line_error(code, err, str(lm), "labelmap", "2 labels")


def test_empty_tumour_is_an_error_or_a_stated_finding(capfd, case: Path, tmp_path: Path) -> None:
    tumor = case / "masks" / "planning" / "tumor.nii.gz"
    empty = _write_nifti(np.zeros(sitk.GetArrayFromImage(sitk.ReadImage(str(tumor))).shape,
                                  np.uint8), tumor, tmp_path / "empty.nii.gz")
    code, _out, err = run_cli(capfd, "evaluate", "--register", "none", "--tumor", empty,
                              "--ablation", case / "masks/planning/ablation_zone.nii.gz")
    assert_one_line_error(code, err, str(empty), "empty")
    # export: the SEG would silently lack the tumour segment -> refused
    plan = _plan_copy(case, tmp_path)
    d = json.loads(plan.read_text())
    d["structures"]["tumor"] = str(empty)
    plan.write_text(json.dumps(d))
    code, _out, err = run_cli(capfd, "export", plan, "--out", tmp_path / "exp", "--seg",
                              "--no-zone")
    assert_one_line_error(code, err, "structures.tumor", "empty")
    assert not (tmp_path / "exp" / "structures_seg.dcm").exists()
    # zone: coverage cannot be computed, and it says so
    code, out, err = run_cli(capfd, "zone", plan, "--grid-mm", "2", "--preview")
    assert code == 0, err
    assert "structures.tumor: the mask is empty" in out
    assert "coverage and margin: not computed" in out
    # check states it too (the tumour checks cannot run)
    code, _out, err = run_cli(capfd, "check", plan, "--no-zone")
    assert code == 0 and "structures.tumor: the mask is empty" in err


def test_mask_in_another_frame_is_refused_never_dropped(capfd, case: Path,
                                                        tmp_path: Path) -> None:
    src = case / "masks" / "planning" / "portal_vein.nii.gz"
    img = sitk.ReadImage(str(src))
    img.SetOrigin(tuple(np.array(img.GetOrigin()) + 5000.0))   # 5 m away: another frame
    far = tmp_path / "portal_vein_far.nii.gz"
    sitk.WriteImage(img, str(far), True)
    plan = _plan_copy(case, tmp_path)
    d = json.loads(plan.read_text())
    d["structures"]["portal_vein"] = str(far)
    plan.write_text(json.dumps(d))
    code, _out, err = run_cli(capfd, "export", plan, "--out", tmp_path / "exp", "--seg",
                              "--no-zone")
    assert_one_line_error(code, err, "portal_vein")
    assert not (tmp_path / "exp" / "structures_seg.dcm").exists()
    # check --zone with a zone mask on another frame: refused (it would lose findings)
    zone = case / "masks" / "planning" / "ablation_zone.nii.gz"
    zimg = sitk.ReadImage(str(zone))
    zimg.SetOrigin(tuple(np.array(zimg.GetOrigin()) + 5000.0))
    zfar = tmp_path / "zone_far.nii.gz"
    sitk.WriteImage(zimg, str(zfar), True)
    code, _out, err = run_cli(capfd, "check", case / "plan.irplan.json", "--zone", zfar)
    assert_one_line_error(code, err, str(zfar), "overlap")


def test_zone_honours_the_plans_targets(capfd, case: Path, tmp_path: Path) -> None:
    tumor = case / "masks" / "planning" / "tumor.nii.gz"
    t = sitk.GetArrayFromImage(sitk.ReadImage(str(tumor)))
    moved = _write_nifti(np.roll(t, 12, axis=2), tumor, tmp_path / "lesion2.nii.gz")  # 36 mm
    base = _plan_copy(case, tmp_path)
    d = json.loads(base.read_text())
    d["structures"]["lesion2"] = str(moved)
    results = {}
    for targets in (["tumor"], ["lesion2"]):
        d["targets"] = targets
        p = tmp_path / f"plan_{targets[0]}.irplan.json"
        p.write_text(json.dumps(d))
        code, out, err = run_cli(capfd, "zone", p, "--grid-mm", "2", "--preview", "--json")
        assert code == 0, err
        results[targets[0]] = json.loads(out)
    cov_t = results["tumor"]["tumor_coverage_percent"]
    cov_2 = results["lesion2"]["tumor_coverage_percent"]
    assert cov_t > 80.0            # the planned lesion is covered
    assert cov_2 < 20.0            # the other lesion, 36 mm away, is not: targets are used
    assert any("targets: lesion2" in w for w in results["lesion2"]["warnings"])


# ============================================================ one DICOM loader (export)
def _variant(folder: Path, what: str) -> None:
    files = sorted(folder.glob("*.dcm"))
    f = files[3]
    if what == "truncated":
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])
        return
    ds = pydicom.dcmread(f)
    if what == "huge_rows":
        ds.Rows = 65535
    elif what == "bits_allocated_0":
        ds.BitsAllocated = 0
    elif what == "text_pixel_spacing":
        del ds.PixelSpacing
        ds.add_new(0x00280030, "LO", "abc\\def")   # text where numbers belong
    elif what == "mixed_pixel_spacing":
        ds.PixelSpacing = [2.5, 2.5]
    elif what == "rescale_slope_1e300":
        ds.RescaleSlope = "1e300"
    ds.save_as(f)


LOADER_CASES = ["truncated", "huge_rows", "bits_allocated_0", "text_pixel_spacing",
                "mixed_pixel_spacing", "rescale_slope_1e300", "bad_jpeg2000"]


@pytest.mark.parametrize("what", LOADER_CASES)
def test_export_uses_the_one_dicom_loader(capfd, tmp_path: Path, what: str) -> None:
    ct = tmp_path / "ct"
    if what == "bad_jpeg2000":
        files = tiny_ct(ct, shape=(8, 64, 64), transfer_syntax="j2k")
        ds = pydicom.dcmread(files[3])
        from pydicom.encaps import encapsulate, generate_frames

        frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
        frame[4:44] = b"\xaa" * 40               # the codestream's SIZ header destroyed
        ds.PixelData = encapsulate([bytes(frame)])
        ds.save_as(files[3])
    else:
        tiny_ct(ct)
        _variant(ct, what)
    plan = tiny_plan(tmp_path, ct)
    out = tmp_path / "out"
    code, _o, err = run_cli(capfd, "export", plan, "--out", out, "--screenshot",
                            small_png(tmp_path / "s.png"))
    line = assert_one_line_error(code, err)
    assert "ct" in line
    assert not (out / "screenshot_sc.dcm").exists()


def test_rescale_slope_1e300_refused_by_every_loader(capfd, tmp_path: Path) -> None:
    ct = tmp_path / "ct"
    tiny_ct(ct)
    _variant(ct, "rescale_slope_1e300")
    code, _o, err = run_cli(capfd, "segment", ct, "--bone", "--out", tmp_path / "seg")
    assert_one_line_error(code, err, "RescaleSlope")


def test_uneven_slice_spacing_warning_reaches_stderr(capfd, tmp_path: Path) -> None:
    ct = tmp_path / "ct"
    z = [0.0, 2.0, 4.0, 6.7, 8.0, 10.0, 12.0, 14.0]       # one slice 0.7 mm off its place
    tiny_ct(ct, positions_mm=z)
    code, out, err = run_cli(capfd, "segment", ct, "--bone", "--out", tmp_path / "seg")
    assert code == 0, err
    warn = [ln for ln in err.splitlines() if ln.startswith("irplan: warning:")]
    assert any("non-uniform slice spacing" in ln and "interpolation" in ln for ln in warn), err
    assert (tmp_path / "seg" / "bone.nii.gz").is_file()


def test_nan_image_position_skips_that_file_and_relocation_works(capfd, case: Path,
                                                                 tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(case / "planning", tree / "moved" / "planning")
    shutil.copytree(case / "followup", tree / "followup")
    bad = sorted((tree / "followup").glob("*.dcm"))[4]
    ds = pydicom.dcmread(bad)
    ds["ImagePositionPatient"].value = "nan\\0\\0"
    ds.save_as(bad)
    d = json.loads((case / "plan.irplan.json").read_text())
    d["image"]["path"] = "planning"          # gone: re-located by series UID
    d["structures"] = {k: str(case / v) for k, v in d["structures"].items()}
    plan = tree / "plan.irplan.json"
    plan.write_text(json.dumps(d))
    code, out, err = run_cli(capfd, "check", plan)
    assert code == 0, err
    assert "re-located" in err
    code, out, err = run_cli(capfd, "info", tree / "followup")
    assert code == 0, err
    assert bad.name in out + err and "non-finite" in out + err


def _bomb_png(path: Path, w: int = 100_000, h: int = 100_000) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)   # 1-bit grey: 10 Gpx
    idat = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
                     + chunk(b"IEND", b""))
    return path


def test_decompression_bomb_png_is_exit_2(capfd, tmp_path: Path) -> None:
    ct = tmp_path / "ct"
    tiny_ct(ct)
    bomb = _bomb_png(tmp_path / "bomb.png")
    code, _o, err = run_cli(capfd, "export", tiny_plan(tmp_path, ct), "--out", tmp_path / "o",
                            "--screenshot", bomb)
    assert_one_line_error(code, err, str(bomb))


# ============================================================ PACS (cause 2 and 4)
def test_unknown_pacs_host_is_one_line(capfd) -> None:
    code, _o, err = run_cli(capfd, "pacs", "echo", "--node", "PACS@no-such-host.invalid:104",
                            "--timeout", "3")
    assert_one_line_error(code, err, "unknown host", "no-such-host.invalid")


def test_pacs_send_skips_truncated_and_ts_less_files(capfd, tmp_path: Path) -> None:
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    files = tiny_ct(tmp_path / "ct")
    good = files[0]
    trunc = tmp_path / "send" / "truncated.dcm"
    trunc.parent.mkdir()
    data = files[1].read_bytes()
    trunc.write_bytes(data[: int(len(data) * 0.7)])
    nots = tmp_path / "send" / "no_ts.dcm"
    ds = pydicom.dcmread(files[2])
    del ds.file_meta.TransferSyntaxUID
    ds.save_as(nots, implicit_vr=False, little_endian=True, enforce_file_format=False)
    shutil.copy(good, tmp_path / "send" / "good.dcm")
    received: list[str] = []

    def on_store(event) -> int:  # noqa: ANN001
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0x0000

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ae = AE(ae_title="FUZZSCP")
    ae.supported_contexts = AllStoragePresentationContexts
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        code, out, err = run_cli(capfd, "pacs", "send", "--node", f"FUZZSCP@127.0.0.1:{port}",
                                 "--timeout", "10", tmp_path / "send")
    finally:
        server.shutdown()
    assert code == 2, err
    assert received == [str(pydicom.dcmread(good).SOPInstanceUID)]   # only the good one
    assert "sent 1 files" in out
    assert f"{trunc}: truncated" in err
    assert f"{nots}: no transfer syntax" in err
    assert err.strip().splitlines()[-1].startswith("irplan: error: 2 of 3 file(s) skipped")


# ============================================================ outputs (cause 1 and 4)
def test_output_path_that_is_a_folder_or_under_a_file(capfd, case: Path, tmp_path: Path) -> None:
    plan = case / "plan.irplan.json"
    folder = tmp_path / "zone.nii.gz"
    folder.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    tumor = case / "masks/planning/tumor.nii.gz"
    abl = case / "masks/planning/ablation_zone.nii.gz"
    cases = [
        (["zone", plan, "--out", folder], str(folder), "folder"),
        (["zone", plan, "--out", afile / "zone.nii.gz"], "afile", "not a folder"),
        (["zone", plan, "--field-out", afile / "f.nii.gz"], "afile", "not a folder"),
        (["evaluate", "--register", "none", "--tumor", tumor, "--ablation", abl,
          "--save-zone", folder], str(folder), "folder"),
        (["report", plan, "--pdf", folder, "--no-pictures", "--no-compute"], str(folder),
         "folder"),
        (["export", plan, "--out", afile, "--seg", "--no-zone"], "afile", ""),
        (["segment", case / "planning", "--out", afile, "--bone"], "afile", "file"),
        (["evaluate-batch", tmp_path / "c.csv", "--out", folder], str(folder), ""),
    ]
    (tmp_path / "c.csv").write_text("case_id,planning,followup,tumor,ablation\n"
                                    f"a,,,{tumor},{abl}\n")
    for argv, where, why in cases:
        code, _o, err = run_cli(capfd, *argv)
        assert_one_line_error(code, err, where, why)
    assert folder.is_dir() and afile.read_text() == "x"
    assert leftover_temp_files(tmp_path) == []


def test_duplicate_case_ids_do_not_overwrite_details(capfd, case: Path, tmp_path: Path) -> None:
    tumor = case / "masks/planning/tumor.nii.gz"
    abl = case / "masks/planning/ablation_zone.nii.gz"
    small = _write_nifti(np.roll(sitk.GetArrayFromImage(sitk.ReadImage(str(abl))), 3, axis=2),
                         abl, tmp_path / "abl_shifted.nii.gz")
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("case_id,planning,followup,tumor,ablation\n"
                      f"P1,,,{tumor},{abl}\n"
                      f"P1,,,{tumor},{small}\n")
    out = tmp_path / "res.csv"
    code, _o, err = run_cli(capfd, "evaluate-batch", cohort, "--out", out, "--register", "none",
                            "--details", tmp_path / "det", "--no-progress")
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "det").iterdir())
    assert names == ["P1-2.json", "P1.json"]
    a = json.loads((tmp_path / "det" / "P1.json").read_text())
    b = json.loads((tmp_path / "det" / "P1-2.json").read_text())
    assert a["minimal_margin_mm"] != b["minimal_margin_mm"]   # two different results kept
    assert "duplicate case_id 'P1'" in err and "P1-2.json" in err
    rows = out.read_text().splitlines()
    assert len(rows) == 3 and "P1-2.json" in rows[2]
    assert leftover_temp_files(tmp_path) == []


def test_phantom_rerun_keeps_an_edited_plan(capfd, case: Path, tmp_path: Path) -> None:
    copy = tmp_path / "case"
    shutil.copytree(case, copy)
    plan = copy / "plan.irplan.json"
    d = json.loads(plan.read_text())
    d["needles"][0]["name"] = "my edit"
    plan.write_text(json.dumps(d, indent=1))
    before = plan.read_bytes()
    code, _o, err = run_cli(capfd, "phantom", copy, "--size", SIZE, "--spacing-mm", SPACING)
    assert_one_line_error(code, err, str(plan), "--force")
    assert plan.read_bytes() == before
    code, _o, err = run_cli(capfd, "phantom", copy, "--size", SIZE, "--spacing-mm", SPACING,
                            "--force")
    assert code == 0, err
    assert "my edit" not in plan.read_text()


def test_saving_a_plan_keeps_its_file_mode(case: Path, tmp_path: Path) -> None:
    from irplan.io.plan_file import load_plan, save_plan

    p = _plan_copy(case, tmp_path)
    plan = load_plan(p)
    for mode in (0o644, 0o640, 0o600):
        p.chmod(mode)
        save_plan(plan, p)
        assert stat.S_IMODE(p.stat().st_mode) == mode
    new = tmp_path / "new.irplan.json"
    save_plan(plan, new)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask


def test_autosave_is_on_disk_within_its_promise(tmp_path: Path, case: Path) -> None:
    """Bound: save_after_s + one tick + the write <= interval_s (30 s); measured here on a
    real plan, and in real time with a 2 s promise and 0.1 s ticks."""
    from irplan.io.plan_file import load_plan
    from irplan.io.recovery import WRITE_BUDGET_S, Autosaver

    plan = load_plan(case / "plan.irplan.json")
    saver = Autosaver(lambda: plan, tmp_path / "rec")
    t0 = time.perf_counter()
    for _ in range(5):
        saver.save_now()
    write_s = (time.perf_counter() - t0) / 5
    assert write_s < WRITE_BUDGET_S
    assert saver.save_after_s + saver.tick_s + write_s <= saver.interval_s == 30.0
    fast = Autosaver(lambda: plan, tmp_path / "rec2", interval_s=2.0, tick_s=0.1)
    fast.start()
    try:
        t_edit = time.monotonic()
        fast.mark_dirty()
        while not fast.path.exists() and time.monotonic() - t_edit < 10:
            time.sleep(0.01)
        lag = time.monotonic() - t_edit
    finally:
        fast.stop()
    assert fast.path.exists()
    assert lag <= 2.0, f"autosave after {lag:.2f} s, promise 2.0 s"


# ---------------------------------------------------------------- kill -9 during a write
KILL_CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import irplan.io.atomic_write as aw

    def stall(path):                       # the new bytes are in the temp file: stop here
        print("WRITING", flush=True)
        time.sleep(120)

    aw._fsync_path = stall
    kind, target, case = sys.argv[1], sys.argv[2], sys.argv[3]
    if kind == "plan":
        from irplan.io.plan_file import load_plan, save_plan
        plan = load_plan(case + "/plan.irplan.json")
        plan.margin_mm = 7.0
        save_plan(plan, target)
    elif kind in ("nifti", "nrrd"):
        from irplan.io.masks import read_mask, write_mask
        write_mask(read_mask(case + "/masks/planning/liver.nii.gz"), target)
    elif kind in ("seg", "pdf_dicom", "sc_dicom"):
        from irplan.io.dicom_export import (export_encapsulated_pdf,
            export_secondary_capture, export_seg, load_source_series)
        from irplan.io.masks import read_mask
        src = load_source_series(case + "/planning")
        if kind == "seg":
            export_seg(src, {"tumor": read_mask(case + "/masks/planning/tumor.nii.gz")},
                       target)
        elif kind == "pdf_dicom":
            export_encapsulated_pdf(src, sys.argv[4], target)
        else:
            export_secondary_capture(src, sys.argv[4], target)
    elif kind == "pdf":
        from irplan.app.cmd_report import build_report
        build_report(case + "/plan.irplan.json", target, pictures=False, compute=False)
    elif kind in ("csv", "json"):
        from irplan.io.atomic_write import atomic_write_text
        atomic_write_text(target, "case_id,status\\nP1,ok\\n" * 1000)
    elif kind == "png":
        from PIL import Image
        from irplan.io.atomic_write import atomic_write
        img = Image.new("RGB", (64, 64), (0, 255, 0))
        atomic_write(target, lambda tmp: img.save(tmp, format="PNG"))
""")

KILL_KINDS = {"plan": "p.irplan.json", "nifti": "m.nii.gz", "nrrd": "m.nrrd", "seg": "s.dcm",
              "pdf_dicom": "r.dcm", "sc_dicom": "sc.dcm", "pdf": "r.pdf", "csv": "r.csv",
              "json": "r.json", "png": "p.png"}


@pytest.mark.parametrize("kind", list(KILL_KINDS))
def test_kill_9_during_a_write_keeps_the_previous_file(case: Path, tmp_path: Path,
                                                       kind: str) -> None:
    target = tmp_path / KILL_KINDS[kind]
    old = b"previous complete content of " + kind.encode() + b"\n"
    target.write_bytes(old)
    extra = []
    if kind == "pdf_dicom":
        extra = [str(tmp_path / "in.pdf")]
        (tmp_path / "in.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    if kind == "sc_dicom":
        extra = [str(small_png(tmp_path / "in.png"))]
    proc = subprocess.Popen([sys.executable, "-c", KILL_CHILD, kind, str(target), str(case),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "WRITING", proc.stderr.read() if proc.stderr else ""
        temps = leftover_temp_files(tmp_path)
        assert len(temps) == 1 and temps[0].stat().st_size > 0   # new bytes are written...
        assert target.read_bytes() == old                        # ...but not in place
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == old          # the previous file, intact
    # the killed writer's hidden temp file is removed by the next write of the target
    leftovers = leftover_temp_files(tmp_path)
    for q in leftovers:
        os.utime(q, (time.time() - 3600, time.time() - 3600))
    from irplan.io.atomic_write import atomic_write_bytes

    atomic_write_bytes(target, b"next\n")
    assert leftover_temp_files(tmp_path) == []


# ---------------------------------------------------------------- full disk, read-only
FS_SCRIPT = textwrap.dedent("""
    set -u
    D="$1"; CASE="$2"; RES="$3"; IRPLAN="$4"; PY="$5"; MODE="$6"
    OLD="$7"
    mount -t tmpfs -o size=1m tmpfs "$D" || exit 99
    # previous outputs, complete (made by the same commands: fixture old_outputs)
    cp -r "$OLD/." "$D/" || exit 98
    cp "$CASE/plan.irplan.json" "$D/plan.irplan.json"
    sha256sum "$D/zone.nii.gz" "$D/report.pdf" "$D/plan.irplan.json" \\
        "$D/exp/structures_seg.dcm" > "$RES/before"
    if [ "$MODE" = full ]; then
        dd if=/dev/zero of="$D/filler" bs=4k 2>/dev/null; sync
    else
        mount -o remount,ro "$D" || exit 96
    fi
    # every output command once more, onto the full / read-only folder
    "$IRPLAN" evaluate --register none --tumor "$CASE/masks/planning/tumor.nii.gz" \\
        --ablation "$CASE/masks/planning/ablation_zone.nii.gz" --save-zone "$D/zone.nii.gz" \\
        >/dev/null 2>"$RES/evaluate.err"; echo $? > "$RES/evaluate.rc"
    "$IRPLAN" report "$CASE/plan.irplan.json" --pdf "$D/report.pdf" --no-pictures \\
        --no-compute >/dev/null 2>"$RES/report.err"; echo $? > "$RES/report.rc"
    "$IRPLAN" export "$CASE/plan.irplan.json" --out "$D/exp" --seg --no-zone \\
        >/dev/null 2>"$RES/export.err"; echo $? > "$RES/export.rc"
    "$IRPLAN" segment "$CASE/planning" --bone --out "$D" \\
        >/dev/null 2>"$RES/segment.err"; echo $? > "$RES/segment.rc"
    "$PY" -c "
import sys
from irplan.io.plan_file import load_plan, save_plan
from irplan.planning.errors import InputError
p = load_plan(sys.argv[1]); p.margin_mm = 9.0
try:
    save_plan(p, sys.argv[2])
except InputError as e:
    print('irplan: error:', e, file=sys.stderr); sys.exit(2)
" "$CASE/plan.irplan.json" "$D/plan.irplan.json" 2>"$RES/plan.err"; echo $? > "$RES/plan.rc"
    sha256sum "$D/zone.nii.gz" "$D/report.pdf" "$D/plan.irplan.json" \\
        "$D/exp/structures_seg.dcm" > "$RES/after"
    ls -a "$D" "$D/exp" > "$RES/listing"
    test -e "$D/bone.nii.gz" && echo yes > "$RES/bone" || echo no > "$RES/bone"
""")


def _can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    r = subprocess.run(["unshare", "--mount", "sh", "-c",
                        "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d && umount $d"],
                       capture_output=True)
    return r.returncode == 0


@pytest.fixture(scope="module")
def old_outputs(case: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Complete outputs of evaluate --save-zone, report --pdf and export --seg."""
    out = tmp_path_factory.mktemp("old")
    m = case / "masks" / "planning"
    for argv in (["evaluate", "--register", "none", "--tumor", m / "tumor.nii.gz",
                  "--ablation", m / "ablation_zone.nii.gz", "--save-zone",
                  out / "zone.nii.gz"],
                 ["report", case / "plan.irplan.json", "--pdf", out / "report.pdf",
                  "--no-pictures", "--no-compute"],
                 ["export", case / "plan.irplan.json", "--out", out / "exp", "--seg",
                  "--no-zone"]):
        assert cli_main([str(a) for a in argv]) == 0
    return out


@pytest.mark.skipif(not _can_mount(), reason="needs root and unshare --mount (tmpfs)")
@pytest.mark.parametrize("mode", ["full", "readonly"])
def test_full_disk_and_read_only_folder_keep_previous_outputs(case: Path, tmp_path: Path,
                                                              old_outputs: Path,
                                                              mode: str) -> None:
    d = tmp_path / "mnt"
    d.mkdir()
    res = tmp_path / "res"
    res.mkdir()
    script = tmp_path / "fs.sh"
    script.write_text(FS_SCRIPT)
    irplan = str(Path(sys.executable).with_name("irplan"))
    r = subprocess.run(["unshare", "--mount", "bash", str(script), str(d), str(case), str(res),
                        irplan, sys.executable, mode, str(old_outputs)],
                       capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"setup failed ({r.returncode}): {r.stderr}"
    assert (res / "before").read_text().split()[::2] == (res / "after").read_text().split()[::2]
    why = "no space left" if mode == "full" else "read-only"
    for name in ("evaluate", "report", "export", "segment", "plan"):
        rc = int((res / f"{name}.rc").read_text())
        err = (res / f"{name}.err").read_text()
        assert_one_line_error(rc, err, why)
    listing = (res / "listing").read_text().split()
    assert not [n for n in listing if ".tmp" in n], listing     # no temp file left
    assert (res / "bone").read_text().strip() == "no"           # no partial new mask
