"""The plan's measurements as report rows (issue 16): the plan file's optional top-level
``measurements`` list written by View > Measure (app/measure_panel.py; one object per
measurement with ``kind``, ``view``, ``points_lps_mm`` and the ROI statistics).

Distances (mm) and angles (degrees) are recomputed from the points (LPS mm), so the report
shows the geometry of the plan file, not a stored text; ROI statistics (HU) are as stored
(they need the CT the measurement was made on). No Qt, no VTK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

KIND_NAMES = {"distance": "Distance", "angle": "Angle", "roi_ellipse": "Elliptical ROI",
              "roi_rect": "Rectangular ROI", "distance_3d": "Distance", "angle_3d": "Angle"}
VIEW_NAMES = {"axial": "axial", "coronal": "coronal", "sagittal": "sagittal",
              "3d": "3D, surfaces"}
N_POINTS = {"distance": 2, "angle": 3, "roi_ellipse": 2, "roi_rect": 2, "distance_3d": 2,
            "angle_3d": 3}


@dataclass
class MeasurementRow:
    """One row of the report's measurement table."""

    kind: str          # e.g. "Distance"
    view: str          # plane it was made in: axial, coronal, sagittal, or 3D
    figure: str        # with its unit: "41.3 mm", "90.0°", "mean 40.0 ± 0.0 HU, ..."
    position: str      # LPS mm: both ends (distance), the vertex (angle), centre (ROI)
    value: float       # mm, degrees or mean HU


def _xyz(p: Sequence[float]) -> str:
    return f"({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f})"


def _num(row: Mapping[str, Any], key: str) -> float:
    v = row.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return float("nan")
    return float(v)


def measurement_row(row: Any) -> MeasurementRow:
    """A report row from one ``measurements`` entry; ValueError names what is wrong."""
    if not isinstance(row, Mapping):
        raise ValueError(f"expected an object, got {type(row).__name__}")
    kind, view = row.get("kind"), row.get("view")
    if kind not in KIND_NAMES:
        raise ValueError(f"kind: expected one of {', '.join(KIND_NAMES)}, got {kind!r}")
    if view not in VIEW_NAMES:
        raise ValueError(f"view: expected one of {', '.join(VIEW_NAMES)}, got {view!r}")
    try:
        pts = np.asarray(row.get("points_lps_mm"), dtype=float)
    except (TypeError, ValueError):
        pts = np.zeros((0, 3))
    n = N_POINTS[kind]
    if pts.shape != (n, 3) or not np.all(np.isfinite(pts)):
        raise ValueError(f"points_lps_mm: expected {n} LPS points (mm)")
    if kind in ("distance", "distance_3d"):
        value = float(np.linalg.norm(pts[1] - pts[0]))
        figure, position = f"{value:.1f} mm", f"{_xyz(pts[0])} to {_xyz(pts[1])}"
    elif kind in ("angle", "angle_3d"):
        u, v = pts[0] - pts[1], pts[2] - pts[1]
        nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
        if nu == 0 or nv == 0:
            raise ValueError("points_lps_mm: an arm of the angle has no length")
        value = float(np.degrees(np.arccos(np.clip(np.dot(u, v) / (nu * nv), -1, 1))))
        figure, position = f"{value:.1f}\u00b0", f"vertex {_xyz(pts[1])}"
    else:
        mean, sd = _num(row, "mean_hu"), _num(row, "sd_hu")
        lo, hi, area = _num(row, "min_hu"), _num(row, "max_hu"), _num(row, "area_mm2")
        if not np.isfinite(mean):
            raise ValueError("mean_hu: missing (no CT voxel in the ROI?)")
        value = mean
        figure = (f"mean {mean:.1f} \u00b1 {sd:.1f} HU (SD), range {lo:.0f} to {hi:.0f} HU, "
                  f"area {area / 100:.2f} cm\u00b2")
        position = f"centre {_xyz((pts[0] + pts[1]) / 2)}"
    return MeasurementRow(KIND_NAMES[kind], VIEW_NAMES[view], figure, position, value)


def measurement_rows(extra: Mapping[str, Any] | None) -> tuple[list[MeasurementRow], list[str]]:
    """Rows of a plan's ``measurements`` (``plan.extra``) and one note per entry that
    cannot be shown (naming it and the problem); ([], []) when there are none."""
    items = extra.get("measurements") if isinstance(extra, Mapping) else None
    if items is None:
        return [], []
    if not isinstance(items, list):
        return [], [f"plan key 'measurements': expected a list, got {type(items).__name__}; "
                    "not shown"]
    rows: list[MeasurementRow] = []
    bad: list[str] = []
    for i, item in enumerate(items, start=1):
        try:
            rows.append(measurement_row(item))
        except ValueError as exc:
            bad.append(f"measurement {i} not shown: {exc}")
    return rows, bad
