"""Write structure masks as one DICOM Segmentation (highdicom, BINARY) on a CT series.

The SEG references the source CT images and lives in their frame of reference; each
mask slice is matched to its source image by ImagePositionPatient (never by file order).
Segment categories/types are SNOMED CT codes (pydicom's code dictionary, DICOM CID 7150/
7151 style: "Anatomical Structure" / "Morphologically Abnormal Structure").
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from irplan.planning.errors import InputError
from irplan.planning.structures import structure_types
from irplan.planning.volume import Volume

_ANAT = codes.SCT.AnatomicalStructure
_ABN = codes.SCT.MorphologicallyAbnormalStructure
# key -> (category, property type); SNOMED CT codes
SEGMENT_CODES: dict[str, tuple[Code, Code]] = {
    "tumor": (_ABN, codes.SCT.Neoplasm),
    "liver": (_ANAT, codes.SCT.Liver),
    "portal_vein": (_ANAT, codes.SCT.PortalVein),
    "hepatic_vein": (_ANAT, codes.SCT.HepaticVein),
    "artery": (_ANAT, Code("51114001", "SCT", "Artery")),
    "bile_duct": (_ANAT, Code("28273000", "SCT", "Bile duct")),
    "bone": (_ANAT, codes.SCT.Bone),
    "lung": (_ANAT, codes.SCT.Lung),
    "body": (_ANAT, codes.SCT.EntireBody),
    "ablation_zone": (_ABN, codes.SCT.Necrosis),
}
_OTHER = (_ANAT, codes.SCT.Tissue)


def _label(key: str) -> str:
    st = structure_types().get(key)
    return st.name if st else key.replace("_", " ").capitalize()


def _colour(key: str) -> hd.color.CIELabColor:
    """Recommended display colour: the structure table's RGB (free names: 'other')."""
    types = structure_types()
    st = types.get(key) or types["other"]
    r, g, b = (int(round(255 * c)) for c in st.color)
    return hd.color.CIELabColor.from_rgb(r, g, b)


def write_seg(masks: dict[str, Volume], source_datasets: list[pydicom.Dataset],
              out_path: str | Path, *, series_description: str = "IRPlan structures",
              series_number: int = 100, algorithm_name: str | None = None,
              algorithm_version: str = "0.1", algorithm_family: Code | None = None,
              series_uid: str | None = None, sop_uid: str | None = None) -> Path:
    """Write ``masks`` (uint8 0/1 Volumes on the CT grid) as one BINARY DICOM SEG.

    ``source_datasets``: the CT series' datasets (headers suffice), any order; every mask
    slice k is matched to the dataset whose ImagePositionPatient is voxel (0, 0, k).
    Segments are numbered in ``masks`` order. ``algorithm_name`` given: segments are
    AUTOMATIC with that algorithm identification (``algorithm_family`` from DICOM CID 7162,
    default Artificial Intelligence), else MANUAL. Raises InputError when a
    mask is not on the CT grid or a slice has no source image. ``series_uid``/``sop_uid``
    default to new UIDs.
    """
    if not masks:
        raise InputError("write_seg: no masks to write")
    if not source_datasets:
        raise InputError("write_seg: no source CT images given")
    keys = list(masks)
    ref = masks[keys[0]]
    for key in keys[1:]:
        if not masks[key].same_geometry(ref, tol_mm=1e-3):
            raise InputError(f"write_seg: mask '{key}' is not on the same grid as '{keys[0]}'")
    ds0 = source_datasets[0]
    iop = np.asarray([float(v) for v in ds0.ImageOrientationPatient])
    if not (np.allclose(iop[:3], ref.direction[:, 0], atol=1e-4)
            and np.allclose(iop[3:], ref.direction[:, 1], atol=1e-4)):
        raise InputError("write_seg: mask orientation differs from the CT's "
                         "ImageOrientationPatient")
    if int(ds0.Rows) != ref.array.shape[1] or int(ds0.Columns) != ref.array.shape[2]:
        raise InputError(f"write_seg: mask rows/columns {ref.array.shape[1:]} differ from the "
                         f"CT's {int(ds0.Rows)}x{int(ds0.Columns)}")
    nk = ref.array.shape[0]
    by_k: dict[int, pydicom.Dataset] = {}
    for ds in source_datasets:
        idx = ref.lps_to_index([float(v) for v in ds.ImagePositionPatient])
        k = int(round(idx[2]))
        if np.max(np.abs(idx - [0.0, 0.0, k])) > 1e-2 or not 0 <= k < nk:
            continue
        by_k[k] = ds
    missing = [k for k in range(nk) if k not in by_k]
    if missing:
        raise InputError(f"write_seg: no source CT image at mask slice(s) {missing[:5]}"
                         f"{' ...' if len(missing) > 5 else ''}")
    sources = [by_k[k] for k in range(nk)]
    pixels = np.stack([(masks[key].array != 0) for key in keys], axis=-1).astype(np.uint8)

    if algorithm_name:
        algo_type = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        algo_id = hd.AlgorithmIdentificationSequence(
            name=algorithm_name, family=algorithm_family or codes.cid7162.ArtificialIntelligence,
            version=algorithm_version)
    else:
        algo_type = hd.seg.SegmentAlgorithmTypeValues.MANUAL
        algo_id = None
    descriptions = []
    for n, key in enumerate(keys, start=1):
        cat, typ = SEGMENT_CODES.get(key, _OTHER)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=n, segment_label=_label(key)[:64],
            segmented_property_category=cat, segmented_property_type=typ,
            algorithm_type=algo_type, algorithm_identification=algo_id,
            tracking_uid=generate_uid(entropy_srcs=[str(series_uid), key]) if series_uid
            else generate_uid(), tracking_id=key,
            display_color=_colour(key)))
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=series_uid or generate_uid(),
            series_number=int(series_number), sop_instance_uid=sop_uid or generate_uid(),
            instance_number=1, manufacturer="IRPlan", manufacturer_model_name="IRPlan",
            software_versions="0.1", device_serial_number="0",
            series_description=series_description)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"write_seg: cannot build the DICOM SEG: {exc}") from None
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out)
    return out
