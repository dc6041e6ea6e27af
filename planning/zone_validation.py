"""Published ablation zones (``resources/zone_validation.json``) against IRPlan's models.

IRE records with ``"zone"`` in ``use`` describe two parallel electrodes in homogeneous
liver: :func:`ire_config_field` solves the field once (static conductivity, far-field box
boundary) and :func:`zone_extents_mm` measures the zone of any threshold along the three
published axes (width: along the line joining the electrodes, depth: across it, height:
along the electrodes), sub-voxel by linear interpolation of |E|. LPS mm, V/cm, A.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from scipy import ndimage

from irplan.planning.conductivity import CONDUCTIVITIES
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume


@lru_cache(maxsize=1)
def load_records() -> tuple[dict[str, Any], ...]:
    """The validation records (read once)."""
    text = resources.files("irplan.resources").joinpath("zone_validation.json").read_text("utf-8")
    return tuple(json.loads(text)["records"])


def record(record_id: str) -> dict[str, Any]:
    for r in load_records():
        if r["id"] == record_id:
            return r
    raise InputError(f"zone_validation.json has no record {record_id!r}")


def ire_zone_records() -> list[dict[str, Any]]:
    """IRE records whose zone the model can predict (fully known two-electrode geometry)."""
    return [r for r in load_records() if r["modality"] == "IRE" and "zone" in r["use"]]


@dataclass
class IreConfigField:
    """The solved field of one published two-electrode configuration."""

    record_id: str
    field_v_per_cm: Volume       # max |E| over the pair (V/cm), x = pair axis, z = shaft
    current_a: float
    grid_mm: float
    padding_mm: float


def ire_config_field(rec: dict[str, Any], grid_mm: float = 1.0, padding_mm: float | None = None,
                     sigma_s_per_m: float | None = None, boundary: str = "farfield",
                     voltage_v: float | None = None, radius_mm: float | None = None,
                     ) -> IreConfigField:
    """Solve the pair of ``rec`` (electrodes along -S, pair along L, centred at 0)."""
    from irplan.planning import ire_field as ire

    cfg = rec["config"]
    spacing = float(cfg["spacing_mm"] if not isinstance(cfg["spacing_mm"], list)
                    else cfg["spacing_mm"][0])
    radius = radius_mm if radius_mm is not None else 0.5 * float(cfg["diameter_mm"])
    v = voltage_v if voltage_v is not None else float(cfg.get("voltage_v")
                                                       or cfg["voltage_per_cm"] * spacing / 10)
    exposure = float(cfg["exposure_mm"])
    els = [ire.Electrode([x, 0.0, 0.0], [0, 0, -1], exposure, radius, shaft_mm=100.0)
           for x in (-spacing / 2, spacing / 2)]
    pad = ire.DEFAULT_PADDING_MM if padding_mm is None else padding_mm
    grid = ire.solver_grid(els, grid_mm, pad)
    sig = CONDUCTIVITIES["liver"].sigma_s_per_m if sigma_s_per_m is None else sigma_s_per_m
    res = ire.solve_ire(grid, els, np.full(grid.array.shape, sig), voltages_v=v,
                        boundary=boundary)
    return IreConfigField(rec["id"], res.field_v_per_cm, res.pairs[0].current_a, grid_mm, pad)


def zone_extents_mm(field: Volume, threshold_v_per_cm: float, upsample: int = 4) -> np.ndarray:
    """Extent (mm) along L, P, S of {|E| >= threshold}: |E| linearly interpolated on a grid
    ``upsample`` times finer around the zone (sub-voxel). Zeros when the zone is empty."""
    a = field.array
    near = a >= 0.7 * threshold_v_per_cm
    if not (a >= threshold_v_per_cm).any():
        return np.zeros(3)
    kji = np.argwhere(near)
    lo = np.maximum(kji.min(axis=0) - 2, 0)
    hi = np.minimum(kji.max(axis=0) + 3, a.shape)
    sub = a[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float64)
    fine = ndimage.zoom(sub, upsample, order=1, grid_mode=False)
    step = np.array([(s - 1) / max(f - 1, 1) for s, f in zip(sub.shape, fine.shape)])
    z = np.argwhere(fine >= threshold_v_per_cm)
    ext_kji = (z.max(axis=0) - z.min(axis=0)) * step * field.spacing_mm[::-1]
    return ext_kji[::-1]


def ire_axes_mm(field: Volume, threshold_v_per_cm: float) -> dict[str, float]:
    """Published axes of the zone: width (L, pair axis), depth (P), height (S, shaft)."""
    e = zone_extents_mm(field, threshold_v_per_cm)
    return {"width_mm": float(e[0]), "depth_mm": float(e[1]), "height_mm": float(e[2])}


def relative_errors(pred: dict[str, float], published: dict[str, Any]) -> dict[str, float]:
    """(predicted - published) / published for every published axis the prediction has."""
    out = {}
    for k, v in published.items():
        if k in pred and isinstance(v, list) and v and v[0]:
            out[k] = pred[k] / float(v[0]) - 1.0
    return out


def fit_threshold(fields: list[tuple[dict[str, Any], Volume]],
                  thresholds_v_per_cm: np.ndarray) -> tuple[float, float]:
    """Static threshold minimising the RMS relative axis error over the records.
    Returns (threshold V/cm, RMS relative error)."""
    best = (float("nan"), float("inf"))
    for t in thresholds_v_per_cm:
        errs = []
        for rec, fld in fields:
            errs += list(relative_errors(ire_axes_mm(fld, float(t)), rec["published"]).values())
        rms = float(np.sqrt(np.mean(np.square(errs))))
        if rms < best[1]:
            best = (float(t), rms)
    return best
