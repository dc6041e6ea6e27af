"""DICOM export of IRPlan results, consistent with the source CT study.

* :func:`export_seg` — structures and predicted/actual ablation zones as one DICOM SEG
  (highdicom, BINARY) on the CT's grid and Frame of Reference. IRPlan's only SEG writer:
  the phantom writer uses it too, through :func:`source_series_on_grid` (CT headers
  matched to a grid's slices by ImagePositionPatient, no pixel data needed).
* :func:`export_encapsulated_pdf` — the PDF report as Encapsulated PDF (Modality DOC).
* :func:`export_secondary_capture` — a screenshot PNG as RGB Secondary Capture.

Each object keeps the source study's identifiers (StudyInstanceUID, PatientID/Name,
study date/accession), so it files into the patient's study on PACS, and gets a new
SeriesInstanceUID (``deidentify``: a :class:`irplan.io.anonymize.DicomDeidentifier`
applied just before the file is written instead: PS3.15 Basic Profile, nothing
identifying ever reaches the disk); SEG carries the CT's
FrameOfReferenceUID and highdicom's ReferencedSeriesSequence/source image references;
the PDF and SC objects reference the CT series in ReferencedSeriesSequence (Common
Instance Reference). Geometry: masks are uint8 0/1 :class:`Volume` s on the CT grid (LPS
mm); a mask on another grid is resampled (nearest neighbour, by LPS position) onto it.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

from irplan.io.atomic_write import atomic_write
from irplan.planning.errors import GeometryError, InputError
from irplan.planning.structures import is_lesion_key, lesion_name, structure_color
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
# Largest screenshot accepted as Secondary Capture (pixels): a 8K screen is 33 Mpx; more
# is a decompression bomb, not a screenshot.
MAX_SC_PIXELS = 40_000_000


@dataclass
class SourceSeries:
    """A CT series: its datasets, one per slice of ``volume`` in its k order, the files
    they came from (same order) and the CT grid as a Volume (LPS mm).

    From :func:`load_source_series`: datasets with pixel data sorted along the slice
    normal, ``volume`` the CT in HU. From :func:`source_series_on_grid`: headers suffice;
    the exports use only ``volume``'s geometry.
    """

    datasets: list[Dataset]
    volume: Volume
    files: list[Path]

    @property
    def first(self) -> Dataset:
        return self.datasets[0]


def load_source_series(folder_or_files: str | Path | Sequence[str | Path],
                       series_uid: str | None = None) -> SourceSeries:
    """Read one CT series (a folder searched recursively, a DICOMDIR, one file, or a list
    of files in one folder) through IRPlan's one DICOM loader
    (:func:`irplan.io.dicom_scan.scan_dicom` + :func:`irplan.io.dicom_load.load_series`):
    the same checks as every other command (mixed PixelSpacing, truncated files, bad
    headers, undecodable pixels, values after rescale), the same warnings
    (``volume.metadata["warnings"]``).

    ``series_uid`` picks one series when the folder holds several. Raises InputError
    (naming the folder or file) for no/mixed series or a series that cannot be loaded
    faithfully; a series loaded onto an interpolated grid (gaps, tilt) is refused too,
    because the exported objects must reference the CT's own slices.
    """
    from irplan.io.dicom_load import load_series
    from irplan.io.dicom_scan import scan_dicom

    if isinstance(folder_or_files, str | Path):
        root = Path(folder_or_files)
        wanted: set[Path] | None = None
    else:
        paths = [Path(p).resolve() for p in folder_or_files]
        if not paths:
            raise InputError("no DICOM files given")
        root = Path(os.path.commonpath([str(p.parent) for p in paths]))
        wanted = set(paths)
    if not root.exists():
        raise InputError(f"{root}: not found")
    scan = scan_dicom(root)
    series = [s for s in scan.series
              if wanted is None or any(f.resolve() in wanted for f in s.files)]
    if not series:
        skipped = f" ({len(scan.skipped)} file(s) skipped, e.g. {scan.skipped[0].path}: " \
                  f"{scan.skipped[0].reason})" if scan.skipped else ""
        raise InputError(f"{root}: no DICOM image series found{skipped}")
    if series_uid is None:
        uids = sorted({s.series_uid for s in series})
        if len(uids) > 1:
            raise InputError(f"{root}: {len(uids)} image series found; choose one by "
                             f"SeriesInstanceUID ({', '.join(uids)})")
        series_uid = uids[0]
    matches = [s for s in series if s.series_uid == series_uid]
    if not matches:
        raise InputError(f"{root}: series {series_uid} not found")
    if len(matches) > 1:
        raise InputError(f"{root}: series {series_uid} mixes {len(matches)} image stacks "
                         "(different orientation, size or pixel spacing); cannot export "
                         "into it")
    info = matches[0]
    vol = load_series(info, secondary=info.modality != "CT")
    files = [f.path for f in info.frames]
    if any(f.frame is not None for f in info.frames):
        raise InputError(f"{info.label}: multi-frame images cannot be export sources")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            datasets = [dcmread(p, stop_before_pixels=True) for p in files]
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise InputError(f"{root}: cannot re-read a DICOM header ({exc})") from None
    try:
        src = source_series_on_grid(datasets, vol, files)
    except InputError as exc:
        raise InputError(f"{info.label}: the loaded grid does not match the CT slices "
                         f"(interpolated?): {exc}") from None
    return src


def source_series_on_grid(datasets: Sequence[Dataset], grid: Volume,
                          files: Sequence[str | Path] = ()) -> SourceSeries:
    """The CT images (headers suffice, any order) that make up ``grid``'s slices.

    Slice k of ``grid`` is the dataset whose ImagePositionPatient is voxel (0, 0, k)
    (within 0.01 voxel); ``files``, when given, are the datasets' paths in the same
    order. Raises InputError when the orientation or rows/columns differ from the grid's
    or a slice has no image.
    """
    if not datasets:
        raise InputError("DICOM SEG: no source CT images given")
    ds0 = datasets[0]
    iop = np.asarray([float(v) for v in ds0.ImageOrientationPatient])
    if not (np.allclose(iop[:3], grid.direction[:, 0], atol=1e-4)
            and np.allclose(iop[3:], grid.direction[:, 1], atol=1e-4)):
        raise InputError("DICOM SEG: mask orientation differs from the CT's "
                         "ImageOrientationPatient")
    if int(ds0.Rows) != grid.array.shape[1] or int(ds0.Columns) != grid.array.shape[2]:
        raise InputError(f"DICOM SEG: mask rows/columns {grid.array.shape[1:]} differ from "
                         f"the CT's {int(ds0.Rows)}x{int(ds0.Columns)}")
    paths = [Path(f) for f in files]
    if paths and len(paths) != len(datasets):
        raise InputError(f"DICOM SEG: {len(paths)} file names for {len(datasets)} images")
    nk = grid.array.shape[0]
    by_k: dict[int, int] = {}
    for n, ds in enumerate(datasets):
        idx = grid.lps_to_index([float(v) for v in ds.ImagePositionPatient])
        k = int(round(idx[2]))
        if np.max(np.abs(idx - [0.0, 0.0, k])) <= 1e-2 and 0 <= k < nk:
            by_k[k] = n
    missing = [k for k in range(nk) if k not in by_k]
    if missing:
        raise InputError(f"DICOM SEG: no source CT image at mask slice(s) {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}")
    order = [by_k[k] for k in range(nk)]
    return SourceSeries([datasets[n] for n in order], grid,
                        [paths[n] for n in order] if paths else [])


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


# zones: orange for the prediction, red for the actual zone; else the structure table's
_ZONE_RGB = {"predicted_zone": (1.0, 0.55, 0.0), "ablation_zone": (0.85, 0.1, 0.1),
             "actual_zone": (0.85, 0.1, 0.1)}


def _display_color(key: str) -> hd.color.CIELabColor:
    """Recommended display colour (free names: the table's 'other' grey)."""
    rgb = _ZONE_RGB.get(key) or structure_color(key)
    return hd.color.CIELabColor.from_rgb(*(int(round(255 * c)) for c in rgb))


def export_seg(source: SourceSeries, masks: Mapping[str, Volume], out_path: str | Path, *,
               series_description: str = "IRPlan structures", series_number: int = 901,
               labels: Mapping[str, str] | None = None, algorithm_name: str | None = None,
               algorithm_family: Code | None = None,
               algorithm_version: str = SOFTWARE_VERSION, series_uid: str | None = None,
               sop_uid: str | None = None,
               deidentify: Callable[[Dataset], Any] | None = None) -> Path:
    """Write ``masks`` (structure key -> uint8 mask Volume) as one BINARY DICOM SEG.

    Segment order follows ``masks``; labels and SNOMED CT codes from
    :data:`SEGMENT_CODES` (or ``labels``). A mask on another grid than ``source.volume``
    is resampled onto it (nearest neighbour, by LPS position). Empty masks are refused
    (InputError) because a SEG segment needs at least one voxel. ``algorithm_name``
    given: every segment is AUTOMATIC with that algorithm (``algorithm_family`` from
    DICOM CID 7162, default Artificial Intelligence); else computed keys
    (``predicted_zone``) are AUTOMATIC by IRPlan's zone model and the rest MANUAL.
    ``series_uid``/``sop_uid`` default to new UIDs; given, the segments' tracking UIDs
    derive from ``series_uid`` too (a deterministic writer writes the same UIDs).
    """
    if not masks:
        raise InputError("export_seg: no structures to export")
    series_uid = series_uid or generate_uid()
    given_algo = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, version=algorithm_version,
        family=algorithm_family or codes.cid7162.ArtificialIntelligence) \
        if algorithm_name else None
    # CID 7162 is extensible: a private (99-prefixed) scheme names IRPlan's model.
    zone_algo = hd.AlgorithmIdentificationSequence(
        name="IRPlan ablation zone model", version=SOFTWARE_VERSION,
        family=Code("ZONEMODEL", "99IRPLAN", "Ablation zone model"))
    arrays, descs = [], []
    for n, (key, mask) in enumerate(masks.items(), start=1):
        arr = _on_grid(source, key, mask)
        if not arr.any():
            raise InputError(f"structure '{key}' is empty; nothing to export as a SEG segment")
        label, cat, typ = SEGMENT_CODES.get(key, (key.replace("_", " "), _ANAT, _TISSUE))
        if key not in SEGMENT_CODES and is_lesion_key(key):    # tumor_2, ...: a tumour too
            label, cat, typ = lesion_name(key), _ALTERED, codes.SCT.Neoplasm
        if labels and key in labels:
            label = labels[key]
        algo = given_algo or (zone_algo if key in _COMPUTED_KEYS else None)
        descs.append(hd.seg.SegmentDescription(
            segment_number=n, segment_label=label[:64], segmented_property_category=cat,
            segmented_property_type=typ,
            algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if algo is not None
                            else hd.seg.SegmentAlgorithmTypeValues.MANUAL),
            algorithm_identification=algo,
            tracking_uid=generate_uid(entropy_srcs=[series_uid, key]), tracking_id=key,
            display_color=_display_color(key)))
        arrays.append(arr)
    pixel = np.stack(arrays, axis=-1).astype(bool)  # (frames=k, rows=j, cols=i, segments)
    try:
        seg = hd.seg.Segmentation(
            source_images=source.datasets, pixel_array=pixel,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descs, series_instance_uid=series_uid,
            series_number=int(series_number), sop_instance_uid=sop_uid or generate_uid(),
            instance_number=1, manufacturer=MANUFACTURER[:64],
            manufacturer_model_name=MODEL_NAME, software_versions=SOFTWARE_VERSION,
            device_serial_number="0",
            content_description="IRPlan structures and ablation zones"[:64],
            content_label="IRPLAN", omit_empty_frames=True)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"export_seg: cannot build the DICOM SEG: {exc}") from None
    seg.SeriesDescription = series_description[:64]
    if deidentify is not None:
        deidentify(seg)
    return atomic_write(out_path, lambda tmp: seg.save_as(tmp))


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
                            series_number: int = 902,
                            deidentify: Callable[[Dataset], Any] | None = None) -> Path:
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
    if deidentify is not None:
        deidentify(ds)
    return atomic_write(out_path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))


def export_secondary_capture(source: SourceSeries, png_path: str | Path, out_path: str | Path,
                             *, description: str = "IRPlan screenshot",
                             series_number: int = 903,
                             patient_orientation: tuple[str, str] | None = None,
                             deidentify: Callable[[Dataset], Any] | None = None) -> Path:
    """A screenshot PNG as an RGB Secondary Capture image in the source study.

    ``patient_orientation`` (row, column directions, e.g. ("L", "P") for an axial view in
    radiological convention) when the picture has one; a window of several views has
    none, and the Type 2 PatientOrientation is then left empty (unknown)."""
    from PIL import Image, UnidentifiedImageError
    from PIL.Image import DecompressionBombError, DecompressionBombWarning

    png = Path(png_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DecompressionBombWarning)
            with Image.open(png) as im:
                w, h = im.size
                if w * h > MAX_SC_PIXELS:
                    raise InputError(f"{png}: {w} x {h} pixels is too large for a screenshot "
                                     f"(limit {MAX_SC_PIXELS // 1_000_000} megapixels)")
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (DecompressionBombError, DecompressionBombWarning) as exc:
        raise InputError(f"{png}: refused, too many pixels ({exc})") from None
    except (OSError, UnidentifiedImageError, ValueError) as exc:
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
    if deidentify is not None:
        deidentify(sc)
    return atomic_write(out_path, lambda tmp: sc.save_as(tmp))
