"""Write a Volume as a DICOM CT image series (one CT Image Storage file per slice).

Geometry (DICOM PS3.3 C.7.6.2): the row direction cosine is the Volume's i axis
(``direction[:, 0]``), the column cosine its j axis (``direction[:, 1]``); slice k sits at
``index_to_lps((0, 0, k))``; PixelSpacing is [row spacing, column spacing] =
[spacing_j, spacing_i]. Pixels are stored as unsigned 16-bit with RescaleIntercept -1024
(HU = stored - 1024): HU below -1024 (scanner padding) are stored as -1024; values above
64511 HU are refused (InputError). A left-handed direction (det -1) cannot be expressed in
DICOM: positions stay exact, and readers rebuild k along row x column (reversed order).
"""

from __future__ import annotations

import datetime as _dt
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from irplan.planning.errors import InputError
from irplan.planning.volume import Volume

INTERCEPT_HU = -1024.0
IMPLEMENTATION_CLASS_UID = UID("1.2.826.0.1.3680043.8.498.1")  # pydicom's root + 1
SOFTWARE = "IRPlan 0.1 (research software, not a certified medical device)"

_TS_NAMES: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpegls": JPEGLSLossless,
    "jpeg-ls": JPEGLSLossless,
    "j2k": JPEG2000Lossless,
    "jpeg2000": JPEG2000Lossless,
}


def _ts_uid(transfer_syntax: str | UID | None) -> UID:
    if transfer_syntax is None:
        return ExplicitVRLittleEndian
    key = str(transfer_syntax).lower()
    if key in _TS_NAMES:
        return _TS_NAMES[key]
    uid = UID(str(transfer_syntax))
    if uid in (ExplicitVRLittleEndian, RLELossless, JPEGLSLossless, JPEG2000Lossless):
        return uid
    raise InputError(f"transfer_syntax '{transfer_syntax}': use one of "
                     f"{', '.join(sorted(_TS_NAMES))} or their UIDs")


def _ds(value: float) -> str:
    """DICOM decimal string (max 16 characters) of a float."""
    for digits in (10, 9, 8, 7, 6):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    return f"{value:.5g}"


def write_ct_series(volume: Volume, outdir: str | Path, *,
                    patient_name: str = "IRPLAN^PHANTOM", patient_id: str = "IRPLAN-0001",
                    study_uid: str | None = None, series_uid: str | None = None,
                    frame_of_reference_uid: str | None = None,
                    series_description: str = "", series_number: int = 1,
                    modality: str = "CT", transfer_syntax: str | UID | None = None,
                    window: tuple[float, float] = (40.0, 400.0),
                    study_date: str | None = None, study_time: str = "080000",
                    series_time: str | None = None, study_description: str = "",
                    accession_number: str = "", study_id: str = "1",
                    file_prefix: str = "IM", extra: dict[str, Any] | None = None,
                    deterministic_uids: bool = False) -> list[Path]:
    """Write ``volume`` (HU, array [k, j, i]) as a CT series in ``outdir``, one file per slice.

    Files are named ``{file_prefix}{k+1:04d}.dcm`` in k order (not necessarily the order
    along the patient axis). UIDs default to new ones (``pydicom.uid.generate_uid``).
    ``transfer_syntax``: None/"explicit" (uncompressed), "rle", "jpegls" or "j2k"
    (all lossless). ``window``: (centre, width) in HU. ``extra``: DICOM keyword -> value
    set on every file (e.g. ``{"ContrastBolusAgent": "iodine"}``). Returns the paths in
    k order. ``deterministic_uids``: SOP Instance UIDs derived from the series UID and the
    slice index (reproducible files, e.g. phantoms), else random. Raises InputError for
    values DICOM cannot hold.
    """
    arr = np.asarray(volume.array)
    if arr.ndim != 3:
        raise InputError(f"write_ct_series: volume must be 3-D, got shape {arr.shape}")
    nk, nj, ni = arr.shape
    ts = _ts_uid(transfer_syntax)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)

    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()
    today = _dt.date.today().strftime("%Y%m%d")
    study_date = study_date or today
    series_time = series_time or study_time

    row_cos = volume.direction[:, 0]
    col_cos = volume.direction[:, 1]
    normal = np.cross(row_cos, col_cos)
    spacing = volume.spacing_mm

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = "IRPLAN_01"

    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.AcquisitionDate = study_date
    ds.ContentDate = study_date
    ds.StudyTime = study_time
    ds.SeriesTime = series_time
    ds.AcquisitionTime = series_time
    ds.ContentTime = series_time
    ds.AccessionNumber = accession_number
    ds.Modality = modality
    ds.Manufacturer = "IRPlan"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study_description
    ds.SeriesDescription = series_description
    ds.ManufacturerModelName = "IRPlan synthetic writer"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "ABDOMEN"
    ds.SliceThickness = _ds(float(spacing[2]))
    ds.SpacingBetweenSlices = _ds(float(spacing[2]))
    ds.KVP = "120"
    ds.SoftwareVersions = SOFTWARE
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = study_id
    ds.SeriesNumber = int(series_number)
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [_ds(float(v)) for v in np.concatenate([row_cos, col_cos])]
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = nj
    ds.Columns = ni
    ds.PixelSpacing = [_ds(float(spacing[1])), _ds(float(spacing[0]))]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.WindowCenter = _ds(float(window[0]))
    ds.WindowWidth = _ds(float(window[1]))
    ds.RescaleIntercept = _ds(INTERCEPT_HU)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.LossyImageCompression = "00"
    for key, value in (extra or {}).items():
        try:
            setattr(ds, key, value)
        except (ValueError, TypeError) as exc:
            raise InputError(f"write_ct_series: extra attribute {key}={value!r}: {exc}") from None

    stored = _to_stored(arr)
    fast = _FastWriter(ds) if ts == ExplicitVRLittleEndian else None
    paths: list[Path] = []
    for k in range(nk):
        pos = volume.index_to_lps((0.0, 0.0, float(k)))
        sop_uid = (generate_uid(entropy_srcs=[str(series_uid), "instance", str(k)])
                   if deterministic_uids else generate_uid())
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(float(v)) for v in pos]
        ds.SliceLocation = _ds(float(pos @ normal))
        path = out / f"{file_prefix}{k + 1:04d}.dcm"
        if fast is not None:
            fast.write(path, ds, stored[k])
        else:
            sl = ds.copy()
            sl.file_meta = FileMetaDataset(ds.file_meta)
            sl.PixelData = stored[k].tobytes()
            sl["PixelData"].VR = "OW"
            try:
                sl.compress(ts, stored[k], generate_instance_uid=False)
            except (RuntimeError, ValueError, ImportError) as exc:
                raise InputError(f"write_ct_series: cannot compress with {ts.name}: {exc}") \
                    from None
            sl.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


_PER_SLICE = (Tag("SOPInstanceUID"), Tag("InstanceNumber"), Tag("ImagePositionPatient"),
              Tag("SliceLocation"))


class _FastWriter:
    """Explicit VR Little Endian files whose fixed elements are encoded once.

    The header elements that are the same on every slice are serialised a single time
    with pydicom's own element writer; per slice only the file meta, the four per-slice
    elements and the pixel data are encoded (in ascending tag order, as DICOM requires).
    """

    def __init__(self, ds: pydicom.Dataset) -> None:
        self.fixed: dict[BaseTag, bytes] = {}
        for elem in ds:
            if elem.tag not in _PER_SLICE and elem.tag != Tag("PixelData"):
                self.fixed[elem.tag] = _encode(elem)
        self.order = sorted(set(self.fixed) | set(_PER_SLICE))

    def write(self, path: Path, ds: pydicom.Dataset, pixels: np.ndarray) -> None:
        buf = DicomBytesIO()
        buf.is_little_endian = True
        buf.is_implicit_VR = False
        buf.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(buf, ds.file_meta, enforce_standard=True)
        parts = [buf.getvalue()]
        for tag in self.order:
            parts.append(self.fixed[tag] if tag in self.fixed else _encode(ds[tag]))
        data = pixels.astype("<u2", copy=False).tobytes()
        parts.append(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, len(data)))
        parts.append(data)
        with open(path, "wb") as fh:
            fh.write(b"".join(parts))


def _encode(elem: pydicom.DataElement) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_data_element(fp, elem)
    return fp.getvalue()


def _to_stored(arr: np.ndarray) -> np.ndarray:
    """HU array -> uint16 stored values (HU + 1024), clipped to the representable range."""
    a = np.asarray(arr)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise InputError("write_ct_series: the volume holds NaN or infinite values")
        a = np.rint(a)
    if a.size and float(a.max()) > 65535 + INTERCEPT_HU:
        raise InputError(f"write_ct_series: values up to {float(a.max()):.0f} HU exceed the "
                         f"storable maximum {65535 + INTERCEPT_HU:.0f} HU (is this HU?)")
    # below -1024 HU (scanner padding, e.g. -2048/-3024) is stored as -1024 (air)
    shifted = np.clip(a.astype(np.int32) - int(INTERCEPT_HU), 0, 65535)
    return shifted.astype("<u2")


def read_series_headers(paths: Iterable[str | Path]) -> list[pydicom.Dataset]:
    """Headers (no pixel data) of written files, in the given order."""
    return [pydicom.dcmread(str(p), stop_before_pixels=True) for p in paths]
