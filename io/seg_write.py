"""``write_seg``: masks on a CT grid plus that CT's headers -> one DICOM SEG.

A thin front of :func:`irplan.io.dicom_export.export_seg`, IRPlan's only SEG writer
(highdicom, BINARY; labels, SNOMED CT codes and colours from its ``SEGMENT_CODES``). Kept
for callers that hold CT headers rather than a :class:`~irplan.io.dicom_export.SourceSeries`
(tests/test_phantom.py, bench/bench_phantom.py); new code calls ``export_seg`` with
:func:`~irplan.io.dicom_export.source_series_on_grid` directly.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.sr.coding import Code

from irplan.io.dicom_export import SOFTWARE_VERSION, export_seg, source_series_on_grid
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume


def write_seg(masks: dict[str, Volume], source_datasets: list[pydicom.Dataset],
              out_path: str | Path, *, series_description: str = "IRPlan structures",
              series_number: int = 100, algorithm_name: str | None = None,
              algorithm_version: str = SOFTWARE_VERSION, algorithm_family: Code | None = None,
              series_uid: str | None = None, sop_uid: str | None = None) -> Path:
    """Write ``masks`` (uint8 0/1 Volumes, the first one on the CT grid) as one SEG.

    ``source_datasets``: the CT series' datasets (headers suffice), any order; slice k of
    the first mask is matched to the dataset whose ImagePositionPatient is voxel
    (0, 0, k). Other arguments as :func:`~irplan.io.dicom_export.export_seg`. Raises
    InputError when the first mask is not on the CT grid, a slice has no source image or
    a mask is empty.
    """
    if not masks:
        raise InputError("write_seg: no masks to write")
    source = source_series_on_grid(source_datasets, next(iter(masks.values())))
    return export_seg(source, masks, out_path, series_description=series_description,
                      series_number=series_number, algorithm_name=algorithm_name,
                      algorithm_version=algorithm_version, algorithm_family=algorithm_family,
                      series_uid=series_uid, sop_uid=sop_uid)
