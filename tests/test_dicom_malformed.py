"""A corpus of malformed DICOM inputs: each gives a clear message, none crashes.

File-level faults are skipped by the scan (listed with a reason) while the rest of the
series still loads; series-level faults are refused by the loader with an InputError that
names the problem and the file. Every case also goes through `irplan info` / load_ct.
"""

from __future__ import annotations

import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from dicom_factory import write_series  # noqa: E402

from irplan.app.cli import main as cli_main  # noqa: E402
from irplan.io.dicom_load import load_ct, load_series  # noqa: E402
from irplan.io.dicom_scan import scan_dicom  # noqa: E402
from irplan.planning.errors import InputError  # noqa: E402


def _png_bytes() -> bytes:
    """A valid 1x1 grey PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


def _edit(path: Path, fn: Callable[[pydicom.Dataset], None]) -> None:
    ds = pydicom.dcmread(path)
    fn(ds)
    ds.save_as(path, enforce_file_format=True)


def _truncate(n_bytes: int | None = None, keep: int | None = None) -> Callable[[Path], None]:
    def f(p: Path) -> None:
        data = p.read_bytes()
        p.write_bytes(data[:keep] if keep is not None else data[:-n_bytes])
    return f


def _patch_ipp(p: Path) -> None:
    data = p.read_bytes()
    ds = pydicom.dcmread(p)
    old = "\\".join(str(v) for v in ds.ImagePositionPatient).encode()
    i = data.index(old[:3])  # value starts with "-40"
    p.write_bytes(data[:i] + b"x" + data[i + 1:])


def _del(*keys: str) -> Callable[[Path], None]:
    def f(p: Path) -> None:
        _edit(p, lambda ds: [delattr(ds, k) for k in keys])
    return f


def _set(**values) -> Callable[[Path], None]:
    def f(p: Path) -> None:
        def g(ds: pydicom.Dataset) -> None:
            for k, v in values.items():
                setattr(ds, k, v)
        _edit(p, g)
    return f


def _garbage_after_preamble(p: Path) -> None:
    rng = np.random.default_rng(3)
    p.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f" + rng.bytes(64))


# (id, how to break the LAST slice file, expected words in the skip reason)
FILE_FAULTS: list[tuple[str, Callable[[Path], None], str]] = [
    ("truncated_pixels", _truncate(n_bytes=100), "truncated file"),
    ("truncated_header", _truncate(keep=400), "truncated or incomplete"),
    ("empty_file", lambda p: p.write_bytes(b""), "empty file"),
    ("text_file", lambda p: p.write_text("patient notes\nnot an image\n"), "not a DICOM file"),
    ("png_renamed", lambda p: p.write_bytes(_png_bytes()), "not a DICOM file"),
    ("garbage_after_DICM", _garbage_after_preamble, "unreadable"),
    ("no_pixel_data", _del("PixelData"), "no pixel data"),
    ("missing_ipp", _del("ImagePositionPatient"), "missing Image Position (Patient)"),
    ("missing_iop", _del("ImageOrientationPatient"), "missing Image Orientation (Patient)"),
    ("missing_pixel_spacing", _del("PixelSpacing"), "missing Pixel Spacing"),
    ("rows_too_large", _set(Rows=20), "truncated file"),
    ("rows_too_small", _set(Rows=5), "header and pixels disagree"),
    ("non_unit_iop", _set(ImageOrientationPatient=[2, 0, 0, 0, 1, 0]), "not unit vectors"),
    ("non_perpendicular_iop", _set(ImageOrientationPatient=[1, 0, 0, 0.5, 0.866, 0]),
     "not perpendicular"),
    ("zero_pixel_spacing", _set(PixelSpacing=[0, 0.7]), "Pixel Spacing must be positive"),
    ("malformed_ipp_text", _patch_ipp, "malformed"),
]


@pytest.mark.parametrize("name,breaker,words", FILE_FAULTS, ids=[f[0] for f in FILE_FAULTS])
def test_bad_file_skipped_with_reason(tmp_path, name, breaker, words, capsys):
    w = write_series(tmp_path, n_slices=5)
    bad = w.files[-1]  # the last slice along the normal: the other 4 stay gap-free
    breaker(bad)
    scan = scan_dicom(tmp_path)
    reasons = {s.path: s.reason for s in scan.skipped}
    assert bad in reasons, f"{name}: not skipped"
    assert words in reasons[bad], reasons[bad]
    assert len(scan.series) == 1 and scan.series[0].slices == 4
    vol = load_ct(tmp_path)
    np.testing.assert_array_equal(vol.array, w.hu_sorted[:4])
    # the CLI lists the series and names the skipped file with its reason on stderr
    assert cli_main(["info", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"{bad}: " in err and words in err


def _load_error(folder: Path, **kw) -> str:
    with pytest.raises(InputError) as exc:
        scan = scan_dicom(folder)
        load_series(scan.series[0], **kw) if scan.series else load_ct(folder)
    return str(exc.value)


def test_gap_refused_names_where(tmp_path):
    write_series(tmp_path, n_slices=6, drop=[2])
    msg = _load_error(tmp_path)
    assert ("missing between slice 1 (img0001.dcm, 102.00 mm) and slice 2 (img0002.dcm, "
            "106.00 mm)") in msg


def test_different_duplicates_refused(tmp_path):
    write_series(tmp_path, n_slices=4, duplicate=[(1, False)])
    msg = _load_error(tmp_path)
    assert "different pixel data" in msg and "img0001.dcm" in msg and "img0004.dcm" in msg


def test_extreme_tilt_refused(tmp_path):
    write_series(tmp_path, n_slices=4, tilt_mm_per_slice=(0.0, 2.5))
    assert "deg off the slice normal" in _load_error(tmp_path)


def test_wild_spacing_refused(tmp_path):
    write_series(tmp_path, n_slices=6, steps_mm=[2.0, 2.0, 0.2, 2.0, 2.0])
    msg = _load_error(tmp_path)
    assert "varies wildly" in msg and "img0002.dcm" in msg and "img0003.dcm" in msg


def test_single_slice_refused(tmp_path):
    write_series(tmp_path, n_slices=1)
    assert "only 1 slice" in _load_error(tmp_path)
    with pytest.raises(InputError, match="no CT series with 2 or more slices"):
        load_ct(tmp_path)


def test_all_slices_same_position_refused(tmp_path):
    """Zero slice spacing: every file at one position with identical pixels."""
    w = write_series(tmp_path, n_slices=2, steps_mm=[0.0])
    # make the two files identical in pixel data so they are pure duplicates
    pix = pydicom.dcmread(w.files[0]).PixelData
    _edit(w.files[1], lambda ds: setattr(ds, "PixelData", pix))
    assert "slice spacing is zero" in _load_error(tmp_path)


def test_mr_only_refused(tmp_path):
    w = write_series(tmp_path, modality="MR", intercept=0.0)
    assert f"series {w.series_uid} is MR; IRPlan plans on CT" in _load_error(tmp_path)
    with pytest.raises(InputError, match=r"no CT series .*found: MR"):
        load_ct(tmp_path)


def test_localizer_only_refused(tmp_path):
    write_series(tmp_path, n_slices=1, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    assert "localizer" in _load_error(tmp_path)
    with pytest.raises(InputError, match="found: CT localizer"):
        load_ct(tmp_path)


def test_unsupported_transfer_syntax(tmp_path):
    w = write_series(tmp_path, n_slices=3)
    for f in w.files:  # claim MPEG-2 (no decoder exists for video in a CT reader)
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"
        ds["PixelData"].is_undefined_length = True
        ds.PixelData = pydicom.encaps.encapsulate([b"\0" * 16])
        ds.save_as(f, enforce_file_format=True)
    info = scan_dicom(tmp_path).series[0]
    assert not info.decodable and any("MPEG2" in m for m in info.warnings)
    msg = _load_error(tmp_path)
    assert "MPEG2" in msg and "cannot be decoded" in msg and "img000" in msg


def test_corrupt_compressed_pixels(tmp_path):
    w = write_series(tmp_path, n_slices=3, compress="rle")
    ds = pydicom.dcmread(w.files[1])
    ds.PixelData = pydicom.encaps.encapsulate([b"\x01\x00\x00\x00" + b"\0" * 60])
    ds.save_as(w.files[1], enforce_file_format=True)
    msg = _load_error(tmp_path)
    assert "img0001.dcm: cannot decode pixel data" in msg


def test_mixed_series_grouped_separately(tmp_path):
    a = write_series(tmp_path, n_slices=3, prefix="a")
    b = write_series(tmp_path, n_slices=4, prefix="b", origin_lps_mm=(0, 0, 101.0))
    scan = scan_dicom(tmp_path)
    assert {s.series_uid: s.slices for s in scan.series} == {a.series_uid: 3, b.series_uid: 4}
    assert not any(s.warnings for s in scan.series)


# ------------------------------------------------------------------ CLI: one line, exit 2
@pytest.mark.parametrize("setup,words", [
    (lambda p: p / "nope", "no such file or folder"),
    (lambda p: (p / "notes.txt").write_text("x") and p, "no DICOM image series found"),
    (lambda p: p, "no DICOM image series found (no files)"),
    (lambda p: (p / "e.dcm").write_bytes(b"") * 0 or p / "e.dcm", "e.dcm: empty file"),
])
def test_cli_bad_input_one_line(tmp_path, capsys, setup, words):
    target = setup(tmp_path)
    assert cli_main(["info", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("irplan: error:") and words in err
    assert "Traceback" not in err


def test_cli_whole_corpus_never_crashes(tmp_path, capsys):
    """Every file fault side by side in one folder tree: one listing, each file named."""
    for name, breaker, _words in FILE_FAULTS:
        w = write_series(tmp_path / name, n_slices=3)
        breaker(w.files[-1])
    assert cli_main(["info", str(tmp_path), "--skipped"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("CT ") >= len(FILE_FAULTS)
    for name, _breaker, words in FILE_FAULTS:
        assert f"{tmp_path / name / 'img0002.dcm'}: " in captured.err, name
        assert words in captured.err
