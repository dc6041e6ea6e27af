"""Write small synthetic DICOM series with pydicom only (independent of IRPlan's code).

Each writer returns a :class:`Written` record with the files and the exact truth: the
ImagePositionPatient of every slice, the expected HU array in slice-normal order, etc.
Stored values encode (i, j, k) so misplaced voxels are detectable:
``stored = 100 * k_true + 3 * j + i`` where k_true is the slice's rank along the normal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DSequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


@dataclass
class Written:
    """What a writer put on disk, with the truth in slice-normal order."""

    folder: Path
    files: list[Path]
    positions_lps_mm: np.ndarray       # IPP per file, in the order of `files`
    sorted_positions_lps_mm: np.ndarray  # IPP in ascending order along the normal
    stored_sorted: np.ndarray          # stored values [k, j, i] along the normal
    hu_sorted: np.ndarray              # stored * slope + intercept
    row_cos: np.ndarray
    col_cos: np.ndarray
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing) as in DICOM
    series_uid: str
    study_uid: str
    extra: dict = field(default_factory=dict)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_cos, self.col_cos)


def stored_values(rows: int, cols: int, k: int, base: int = 0) -> np.ndarray:
    j, i = np.mgrid[0:rows, 0:cols]
    return (base + 100 * k + 3 * j + i).astype(np.int64)


# pixel formats: (BitsAllocated, BitsStored, PixelRepresentation)
PIXEL_FORMATS = {"s16": (16, 16, 1), "u16": (16, 16, 0), "u12": (16, 12, 0),
                 "s12": (16, 12, 1), "u8": (8, 8, 0)}


def base_dataset(path: Path, *, modality: str = "CT", sop_class: str = CT_IMAGE,
                 transfer_syntax: str = ExplicitVRLittleEndian) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = generate_uid(prefix="1.2.826.0.1.3680043.8.498.")
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Test^Factory"
    ds.PatientID = "FACT001"
    ds.StudyDate = "20260101"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = "ACC1"
    return ds


def write_series(
    folder: str | Path,
    *,
    n_slices: int = 6,
    rows: int = 10,
    cols: int = 12,
    pixel_spacing: tuple[float, float] = (0.8, 0.7),
    slice_spacing_mm: float = 2.0,
    origin_lps_mm: Sequence[float] = (-40.0, -30.0, 100.0),
    row_cos: Sequence[float] = (1.0, 0.0, 0.0),
    col_cos: Sequence[float] = (0.0, 1.0, 0.0),
    steps_mm: Sequence[float] | None = None,
    tilt_mm_per_slice: Sequence[float] = (0.0, 0.0),
    file_order: str = "normal",
    drop: Sequence[int] = (),
    duplicate: Sequence[tuple[int, bool]] = (),
    modality: str = "CT",
    slope: float = 1.0,
    intercept: float = -1024.0,
    transfer_syntax: str = ExplicitVRLittleEndian,
    compress: str | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    description: str = "factory series",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    prefix: str = "img",
    contrast_agent: str | None = None,
    window: tuple[float, float] | None = (40.0, 400.0),
    base_value: int = 1000,
    pixel_format: str = "s16",
    high_bit_noise: bool = False,
    extra_tags: dict | None = None,
) -> Written:
    """Write a single-frame series.

    steps_mm: custom distances between consecutive slices along the normal (len n-1).
    tilt_mm_per_slice: in-plane drift (along row cos, col cos) added per slice (gantry tilt).
    file_order: 'normal' (names follow the normal), 'reversed' (first file = last along
        the normal; InstanceNumber reversed too) or 'shuffled'.
    drop: slice indices (along the normal) not written (gaps).
    duplicate: (k, identical) pairs: write a second file at slice k's position, with
        identical pixel data or different data.
    compress: None, 'rle', 'jpeg2000', 'jpegls' (pydicom encoders), 'jpeg_lossless' (GDCM).
    pixel_format: one of PIXEL_FORMATS; stored values wrap into its range (u8: modulo 256).
    high_bit_noise: set random bits above BitsStored (must be ignored by a reader).
    extra_tags: keyword -> value set on every file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    r = np.asarray(row_cos, dtype=float)
    c = np.asarray(col_cos, dtype=float)
    n = np.cross(r, c)
    steps = list(steps_mm) if steps_mm is not None else [slice_spacing_mm] * (n_slices - 1)
    dist = np.concatenate([[0.0], np.cumsum(steps)])
    tilt = np.asarray(tilt_mm_per_slice, dtype=float)
    origin = np.asarray(origin_lps_mm, dtype=float)
    all_pos = np.array([origin + d * n + k * (tilt[0] * r + tilt[1] * c)
                        for k, d in enumerate(dist)])
    keep = [k for k in range(n_slices) if k not in set(drop)]
    series_uid = series_uid or generate_uid()
    study_uid = study_uid or generate_uid()
    for_uid = frame_of_reference_uid or generate_uid()
    order = list(keep)
    if file_order == "reversed":
        order = order[::-1]
    elif file_order == "shuffled":
        rng = np.random.default_rng(7)
        order = list(rng.permutation(order))
    files: list[Path] = []
    positions: list[np.ndarray] = []
    stored_sorted = np.stack([stored_values(rows, cols, rank, base_value)
                              for rank in range(len(keep))])
    if pixel_format == "u8":
        stored_sorted = stored_sorted % 256
    rank_of = {k: rank for rank, k in enumerate(keep)}
    entries: list[tuple[int, np.ndarray]] = [(k, stored_sorted[rank_of[k]]) for k in order]
    for k, identical in duplicate:
        data = stored_sorted[rank_of[k]].copy()
        if not identical:
            data = data + 7
        entries.append((k, data))
    for idx, (k, data) in enumerate(entries):
        path = folder / f"{prefix}{idx:04d}.dcm"
        ds = base_dataset(path, modality=modality,
                          sop_class=CT_IMAGE if modality == "CT" else MR_IMAGE,
                          transfer_syntax=transfer_syntax)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = for_uid
        ds.SeriesNumber = 3
        ds.SeriesDescription = description
        ds.ImageType = list(image_type)
        ds.InstanceNumber = idx + 1
        if contrast_agent is not None:
            ds.ContrastBolusAgent = contrast_agent
        ds.ImagePositionPatient = [_ds(v) for v in all_pos[k]]
        ds.ImageOrientationPatient = [_ds(v) for v in (*r, *c)]
        ds.PixelSpacing = [_ds(pixel_spacing[0]), _ds(pixel_spacing[1])]
        ds.SliceThickness = _ds(slice_spacing_mm)
        for key, value in (extra_tags or {}).items():
            setattr(ds, key, value)
        _set_pixels(ds, data, slope, intercept, window, pixel_format, high_bit_noise)
        _save(ds, path, transfer_syntax, compress)
        files.append(path)
        positions.append(all_pos[k])
    sorted_pos = all_pos[keep]
    return Written(folder, files, np.array(positions), sorted_pos, stored_sorted,
                   stored_sorted.astype(np.float64) * slope + intercept, r, c,
                   tuple(pixel_spacing), series_uid, study_uid,
                   {"frame_of_reference_uid": for_uid})


def _ds(v: float) -> str:
    """A DICOM DS string (<= 16 chars) of v."""
    s = f"{float(v):.10g}"
    if len(s) > 16:
        s = f"{float(v):.8g}"
    return s


def _set_pixels(ds: Dataset, data: np.ndarray, slope: float, intercept: float,
                window: tuple[float, float] | None, pixel_format: str = "s16",
                high_bit_noise: bool = False) -> None:
    allocated, stored, rep = PIXEL_FORMATS[pixel_format]
    lo = -(1 << (stored - 1)) if rep else 0
    hi = (1 << (stored - 1)) - 1 if rep else (1 << stored) - 1
    assert data.min() >= lo and data.max() <= hi, f"values do not fit {pixel_format}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = data.shape
    ds.BitsAllocated = allocated
    ds.BitsStored = stored
    ds.HighBit = stored - 1
    ds.PixelRepresentation = rep
    ds.RescaleSlope = _ds(slope)
    ds.RescaleIntercept = _ds(intercept)
    ds.RescaleType = "HU"
    if window is not None:
        ds.WindowCenter = _ds(window[0])
        ds.WindowWidth = _ds(window[1])
    raw = data.astype(np.int64) & ((1 << stored) - 1)  # two's complement in `stored` bits
    if high_bit_noise and stored < allocated:
        rng = np.random.default_rng(11)
        raw |= rng.integers(0, 1 << (allocated - stored), raw.shape) << stored
    ds.PixelData = np.ascontiguousarray(raw.astype("<u1" if allocated == 8 else "<u2")).tobytes()


def _save(ds: FileDataset, path: Path, transfer_syntax: str, compress: str | None) -> None:
    if compress == "jpeg_lossless":
        _encode_jpeg_lossless(ds, path)
    elif compress is not None:
        from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

        uid = {"rle": RLELossless, "jpeg2000": JPEG2000Lossless, "jpegls": JPEGLSLossless}[compress]
        ds.compress(uid)
    implicit = ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True, implicit_vr=implicit if not compress else None)


def _encode_jpeg_lossless(ds: FileDataset, path: Path) -> None:
    """JPEG Lossless SV1 (1.2.840.10008.1.2.4.70) bitstream made by GDCM (via SimpleITK),
    spliced into our own pydicom data set (pydicom has no encoder for it)."""
    import SimpleITK as sitk
    from pydicom.uid import JPEGLosslessSV1

    arr = np.frombuffer(ds.PixelData, dtype="<i2" if ds.PixelRepresentation else "<u2")
    arr = arr.reshape(int(ds.Rows), int(ds.Columns))
    tmp = path.with_name(path.stem + "_gdcm_tmp.dcm")
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(tmp))
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")
    writer.Execute(sitk.GetImageFromArray(arr))
    enc = pydicom.dcmread(tmp)
    tmp.unlink()
    assert enc.file_meta.TransferSyntaxUID == JPEGLosslessSV1
    ds.PixelData = enc.PixelData
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1


def write_enhanced_ct(
    path: str | Path,
    *,
    n_frames: int = 5,
    rows: int = 8,
    cols: int = 9,
    pixel_spacing: tuple[float, float] = (0.9, 0.6),
    slice_spacing_mm: float = 1.5,
    origin_lps_mm: Sequence[float] = (10.0, -20.0, -50.0),
    row_cos: Sequence[float] = (1.0, 0.0, 0.0),
    col_cos: Sequence[float] = (0.0, 1.0, 0.0),
    frame_order: str = "reversed",
    slope: float = 1.0,
    intercept: float = -1024.0,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
) -> Written:
    """One multi-frame Enhanced CT file (functional groups geometry)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    r = np.asarray(row_cos, dtype=float)
    c = np.asarray(col_cos, dtype=float)
    n = np.cross(r, c)
    origin = np.asarray(origin_lps_mm, dtype=float)
    pos_sorted = np.array([origin + k * slice_spacing_mm * n for k in range(n_frames)])
    stored_sorted = np.stack([stored_values(rows, cols, k, 500) for k in range(n_frames)])
    order = list(range(n_frames))[::-1] if frame_order == "reversed" else list(range(n_frames))
    ds = base_dataset(path, sop_class=ENHANCED_CT_IMAGE)
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
    ds.SeriesDescription = "enhanced multi-frame"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    ds.InstanceNumber = 1
    ds.NumberOfFrames = n_frames
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [_ds(pixel_spacing[0]), _ds(pixel_spacing[1])]
    pm.SliceThickness = _ds(slice_spacing_mm)
    shared.PixelMeasuresSequence = DSequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = [_ds(v) for v in (*r, *c)]
    shared.PlaneOrientationSequence = DSequence([po])
    pv = Dataset()
    pv.RescaleSlope = _ds(slope)
    pv.RescaleIntercept = _ds(intercept)
    pv.RescaleType = "HU"
    shared.PixelValueTransformationSequence = DSequence([pv])
    ds.SharedFunctionalGroupsSequence = DSequence([shared])
    per = []
    for k in order:
        fg = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [_ds(v) for v in pos_sorted[k]]
        fg.PlanePositionSequence = DSequence([pp])
        per.append(fg)
    ds.PerFrameFunctionalGroupsSequence = DSequence(per)
    data = np.stack([stored_sorted[k] for k in order])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = np.ascontiguousarray(data.astype("<i2")).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return Written(path.parent, [path], pos_sorted[order], pos_sorted, stored_sorted,
                   stored_sorted * slope + intercept, r, c, tuple(pixel_spacing),
                   str(ds.SeriesInstanceUID), str(ds.StudyInstanceUID))


def write_dicomdir(folder: str | Path) -> Path:
    """Write a DICOMDIR indexing every .dcm file under ``folder`` (pydicom FileSet)."""
    from pydicom.fileset import FileSet

    folder = Path(folder)
    fs = FileSet()
    for f in sorted(folder.rglob("*.dcm")):
        fs.add(pydicom.dcmread(f))
    out = folder.parent / (folder.name + "_media")
    fs.write(out)
    return out / "DICOMDIR"
