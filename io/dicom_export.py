"""DICOM export of IRPlan results, consistent with the source CT study.

* :func:`export_seg` — structures and predicted/actual ablation zones as one DICOM SEG
  (highdicom, BINARY) on the CT's grid and Frame of Reference.
* :func:`export_encapsulated_pdf` — the PDF report as Encapsulated PDF (Modality DOC).
* :func:`export_secondary_capture` — a screenshot PNG as RGB Secondary Capture.

Each object keeps the source study's identifiers (StudyInstanceUID, PatientID/Name,
study date/accession) and gets a new SeriesInstanceUID; SEG carries the CT's
FrameOfReferenceUID and highdicom's ReferencedSeriesSequence/source image references;
the PDF and SC objects reference the CT series in ReferencedSeriesSequence (Common
Instance Reference). Geometry: masks are uint8 0/1 :class:`Volume` s on the CT grid (LPS
mm); a mask on another grid is resampled (nearest neighbour, by LPS position) onto it.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from irplan.planning.errors import GeometryError, InputError
from irplan.planning.volume import Volume

MANUFACTURER = "IRPlan (research software, not a certified medical device)"
MODEL_NAME = "IRPlan"
try:  # the installed distribution's version
    from importlib.metadata import version as _version

    SOFTWARE_VERSION = _version("irplan")
except Exception:  # noqa: BLE001 - running from a source tree without metadata
    SOFTWARE_VERSION = "0"

# Coded concepts (SNOMED CT via DICOM CID 7150/7151) per structure key:
# (label, category, type). Ablation zones: "Morphologically altered structure" /
# "Necrosis" (SCT 6574001): the coagulated/ablated tissue region.
_ANAT = codes.SCT.AnatomicalStructure
_TISSUE = codes.SCT.Tissue
_ALTERED = Code("49755003", "SCT", "Morphologically Altered Structure")
_NECROSIS = Code("6574001", "SCT", "Necrosis")
SEGMENT_CODES: dict[str, tuple[str, Code, Code]] = {
    "tumor": ("Tumour", _ALTERED, codes.SCT.Neoplasm),
    "liver": ("Liver", _ANAT, codes.SCT.Liver),
    "portal_vein": ("Portal vein", _ANAT, codes.SCT.PortalVein),
    "hepatic_vein": ("Hepatic vein", _ANAT, codes.SCT.HepaticVein),
    "artery": ("Hepatic artery", _ANAT, codes.SCT.HepaticArtery),
    "bile_duct": ("Bile duct", _ANAT, codes.SCT.BileDuct),
    "bone": ("Bone", _TISSUE, codes.SCT.Bone),
    "lung": ("Lung", _ANAT, codes.SCT.Lung),
    "body": ("Body", _ANAT, Code("38266002", "SCT", "Entire body")),
    "predicted_zone": ("Predicted ablation zone", _ALTERED, _NECROSIS),
    "ablation_zone": ("Ablation zone", _ALTERED, _NECROSIS),
    "actual_zone": ("Ablation zone", _ALTERED, _NECROSIS),
}
_COMPUTED_KEYS = ("predicted_zone",)


@dataclass
class SourceSeries:
    """A CT series as read from disk: datasets sorted along the slice normal (with pixel
    data), their folder, and the CT as a Volume (HU, LPS mm)."""

    datasets: list[Dataset]
    volume: Volume
    files: list[Path]

    @property
    def first(self) -> Dataset:
        return self.datasets[0]


def load_source_series(folder_or_files: str | Path | Sequence[str | Path],
                       series_uid: str | None = None) -> SourceSeries:
    """Read one CT series (a folder searched recursively, or a list of files).

    ``series_uid`` picks one series when the folder holds several. Raises InputError for
    no/mixed series, GeometryError for tilted or unevenly spaced slices.
    """
    if isinstance(folder_or_files, str | Path):
        root = Path(folder_or_files)
        if not root.exists():
            raise InputError(f"{root}: not found")
        files = sorted(p for p in (root.rglob("*") if root.is_dir() else [root]) if p.is_file())
        where = str(root)
    else:
        files = [Path(p) for p in folder_or_files]
        where = f"{len(files)} files"
    by_series: dict[str, list[tuple[Path, Dataset]]] = {}
    for p in files:
        try:
            ds = dcmread(p)
        except (InvalidDicomError, OSError):
            continue
        if "PixelData" not in ds or "ImagePositionPatient" not in ds:
            continue
        by_series.setdefault(str(ds.SeriesInstanceUID), []).append((p, ds))
    if not by_series:
        raise InputError(f"{where}: no DICOM image series found")
    if series_uid is None:
        if len(by_series) > 1:
            raise InputError(f"{where}: {len(by_series)} image series found; choose one by "
                             f"SeriesInstanceUID ({', '.join(sorted(by_series))})")
        series_uid = next(iter(by_series))
    if series_uid not in by_series:
        raise InputError(f"{where}: series {series_uid} not found")
    items = by_series[series_uid]
    iop = np.asarray(items[0][1].ImageOrientationPatient, dtype=np.float64)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    for p, ds in items:
        if not np.allclose(np.asarray(ds.ImageOrientationPatient, float), iop, atol=1e-4):
            raise GeometryError(f"{p}: slice orientation differs within series {series_uid}")
    items.sort(key=lambda it: float(np.dot(np.asarray(it[1].ImagePositionPatient, float),
                                           normal)))
    pos = np.array([np.asarray(ds.ImagePositionPatient, float) for _p, ds in items])
    if len(items) > 1:
        steps = np.diff(pos @ normal)
        if np.any(steps <= 1e-3) or np.ptp(steps) > 0.01 * max(abs(steps.mean()), 1e-6):
            raise GeometryError(f"{where}: slices of series {series_uid} are not evenly "
                                f"spaced (steps {steps.min():.3f}-{steps.max():.3f} mm)")
        # positions must run along the normal (no gantry tilt)
        off = pos[-1] - pos[0]
        if np.linalg.norm(np.cross(off / np.linalg.norm(off), normal)) > 1e-3:
            raise GeometryError(f"{where}: series {series_uid} is tilted (gantry tilt)")
        dz = float(steps.mean())
    else:
        dz = float(getattr(items[0][1], "SliceThickness", 1.0) or 1.0)
    ds0 = items[0][1]
    ps = [float(v) for v in ds0.PixelSpacing]  # [row spacing, column spacing]
    arr = np.stack([ds.pixel_array.astype(np.float32) * float(getattr(ds, "RescaleSlope", 1))
                    + float(getattr(ds, "RescaleIntercept", 0)) for _p, ds in items])
    vol = Volume(arr, pos[0], np.array([ps[1], ps[0], dz]),
                 np.column_stack([row, col, normal]),
                 {"series_uid": series_uid,
                  "frame_of_reference_uid": str(ds0.get("FrameOfReferenceUID", ""))})
    return SourceSeries([ds for _p, ds in items], vol, [p for p, _ds in items])


def _on_grid(source: SourceSeries, key: str, mask: Volume) -> np.ndarray:
    if mask.same_geometry(source.volume, tol_mm=1e-3):
        arr = mask.array
    else:
        lo, hi = mask.bounds_lps()
        slo, shi = source.volume.bounds_lps()
        if np.any(hi < slo - 1) or np.any(lo > shi + 1):
            raise GeometryError(f"structure '{key}' lies outside the CT volume")
        arr = mask.with_array((mask.array != 0).astype(np.uint8)).resample_like(
            source.volume, "nearest").array
    return np.asarray(arr != 0)


def _display_color(key: str) -> hd.color.CIELabColor | None:
    try:
        from irplan.planning.structures import structure_color

        rgb = structure_color(key if key in SEGMENT_CODES and "zone" not in key else "other")
        if "zone" in key:
            rgb = (1.0, 0.55, 0.0) if key == "predicted_zone" else (0.85, 0.1, 0.1)
        return hd.color.CIELabColor.from_rgb(*(int(round(255 * c)) for c in rgb))
    except Exception:  # noqa: BLE001 - colour is a display hint only
        return None


def export_seg(source: SourceSeries, masks: Mapping[str, Volume], out_path: str | Path, *,
               series_description: str = "IRPlan structures", series_number: int = 901,
               labels: Mapping[str, str] | None = None) -> Path:
    """Write ``masks`` (structure key -> uint8 mask Volume) as one BINARY DICOM SEG.

    Segment order follows ``masks``; labels from :data:`SEGMENT_CODES` (or ``labels``).
    Empty masks are refused (InputError) because a SEG segment needs at least one voxel.
    """
    if not masks:
        raise InputError("export_seg: no structures to export")
    arrays, descs = [], []
    for n, (key, mask) in enumerate(masks.items(), start=1):
        arr = _on_grid(source, key, mask)
        if not arr.any():
            raise InputError(f"structure '{key}' is empty; nothing to export as a SEG segment")
        label, cat, typ = SEGMENT_CODES.get(key, (key.replace("_", " "), _ANAT, _TISSUE))
        if labels and key in labels:
            label = labels[key]
        computed = key in _COMPUTED_KEYS
        # CID 7162 is extensible: a private (99-prefixed) scheme names IRPlan's model.
        algo = hd.AlgorithmIdentificationSequence(
            name="IRPlan ablation zone model", version=SOFTWARE_VERSION,
            family=Code("ZONEMODEL", "99IRPLAN", "Ablation zone model")) if computed else None
        descs.append(hd.seg.SegmentDescription(
            segment_number=n, segment_label=label[:64], segmented_property_category=cat,
            segmented_property_type=typ,
            algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if computed
                            else hd.seg.SegmentAlgorithmTypeValues.MANUAL),
            algorithm_identification=algo, tracking_uid=generate_uid(), tracking_id=key,
            display_color=_display_color(key)))
        arrays.append(arr)
    pixel = np.stack(arrays, axis=-1).astype(bool)  # (frames=k, rows=j, cols=i, segments)
    seg = hd.seg.Segmentation(
        source_images=source.datasets, pixel_array=pixel,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descs, series_instance_uid=generate_uid(),
        series_number=series_number, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER[:64], manufacturer_model_name=MODEL_NAME,
        software_versions=SOFTWARE_VERSION, device_serial_number="0",
        content_description="IRPlan structures and ablation zones"[:64],
        content_label="IRPLAN", omit_empty_frames=True)
    seg.SeriesDescription = series_description[:64]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out)
    return out


def _copy_patient_study(src: Dataset, ds: Dataset) -> None:
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
               "IssuerOfPatientID", "StudyInstanceUID", "StudyDate", "StudyTime",
               "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription"):
        if kw in src:
            setattr(ds, kw, src.data_element(kw).value)
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
               "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if kw not in ds:
            setattr(ds, kw, "")  # type 2: present, may be empty


def _referenced_series(source: SourceSeries) -> DicomSequence:
    item = Dataset()
    item.SeriesInstanceUID = source.first.SeriesInstanceUID
    refs = []
    for d in source.datasets:
        r = Dataset()
        r.ReferencedSOPClassUID = d.SOPClassUID
        r.ReferencedSOPInstanceUID = d.SOPInstanceUID
        refs.append(r)
    item.ReferencedInstanceSequence = DicomSequence(refs)
    return DicomSequence([item])


def export_encapsulated_pdf(source: SourceSeries, pdf_path: str | Path, out_path: str | Path, *,
                            title: str = "IRPlan ablation report",
                            series_number: int = 902) -> Path:
    """Wrap the PDF file as an Encapsulated PDF object in the source study (Modality DOC).

    The document bytes are stored unchanged (``EncapsulatedDocumentLength`` gives the
    length before the even-length padding DICOM requires).
    """
    pdf = Path(pdf_path)
    try:
        data = pdf.read_bytes()
    except OSError as exc:
        raise InputError(f"{pdf}: cannot read the PDF ({exc.strerror or exc})") from None
    if not data.startswith(b"%PDF"):
        raise InputError(f"{pdf}: not a PDF file (no %PDF header)")
    now = _dt.datetime.now()
    meta = FileMetaDataset()
    sop_uid = generate_uid()
    meta.MediaStorageSOPClassUID = EncapsulatedPDFStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = source.first.get("SpecificCharacterSet", "ISO_IR 192")
    _copy_patient_study(source.first, ds)
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = title[:64]
    ds.Manufacturer = MANUFACTURER[:64]
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = SOFTWARE_VERSION
    ds.ConversionType = "WSD"  # workstation
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.InstanceCreationDate = ds.ContentDate
    ds.InstanceCreationTime = ds.ContentTime
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = DicomSequence([])
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(data)
    ds.EncapsulatedDocument = data + (b"\x00" if len(data) % 2 else b"")
    src_item = Dataset()
    src_item.ReferencedSOPClassUID = source.first.SOPClassUID
    src_item.ReferencedSOPInstanceUID = source.first.SOPInstanceUID
    ds.SourceInstanceSequence = DicomSequence([src_item])
    ds.ReferencedSeriesSequence = _referenced_series(source)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


def export_secondary_capture(source: SourceSeries, png_path: str | Path, out_path: str | Path,
                             *, description: str = "IRPlan screenshot",
                             series_number: int = 903,
                             patient_orientation: tuple[str, str] | None = None) -> Path:
    """A screenshot PNG as an RGB Secondary Capture image in the source study.

    ``patient_orientation`` (row, column directions, e.g. ("L", "P") for an axial view in
    radiological convention) when the picture has one; a window of several views has
    none, and the Type 2 PatientOrientation is then left empty (unknown)."""
    from PIL import Image, UnidentifiedImageError

    png = Path(png_path)
    try:
        with Image.open(png) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"{png}: cannot read the image ({exc})") from None
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source.first, pixel_array=rgb, photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT", series_instance_uid=generate_uid(),
        series_number=series_number, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER[:64], patient_orientation=patient_orientation or ("L", "P"),
        transfer_syntax_uid=ExplicitVRLittleEndian)
    if patient_orientation is None:
        sc.PatientOrientation = ""  # Type 2: present, unknown
    sc.SeriesDescription = description[:64]
    sc.BurnedInAnnotation = "YES"
    sc.ReferencedSeriesSequence = _referenced_series(source)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sc.save_as(out)
    return out
