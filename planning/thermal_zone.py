"""Thermal ablation zones (MWA, RFA, cryo) from applicator tables, united; heat-sink option.

Frame: LPS mm. A table row maps (power W, time s) to an ellipsoid of revolution around the
applicator axis: ``length_mm`` along the shaft, ``width_mm`` across it, its centre
``tip_offset_mm`` back from the tip along the shaft (towards the entry). Cryo rows give
isotherm ellipsoids (0 / -20 / -40 degC) per freeze time; the zone is the lethal isotherm.
Tables live in ``resources/thermal_tables.json``; every table carries its source, and the
shipped ones are illustrative (CLINICAL.md: no vendor table was verifiable here).

Interpolation: linear in time for each tabulated power, then linear in power between the
two bracketing powers. Values outside the table's range are refused (no extrapolation).

Heat sink (simple documented model, always warned): flowing blood cools tissue next to
large vessels. In pig RFA 73 % of veins > 3 mm showed a heat sink and none < 3 mm; viable
tissue remained around 7/7 veins > 5 mm (AJR 2002; CLINICAL.md); MWA is much less affected
(PMC5778864). The option removes from the zone every vessel part of calibre >= 3 mm (a
ball of 3 mm diameter fits: morphological opening by distance maps) and a cooled shell of
``shell_mm`` around it. The shell thickness is a model parameter with no published value
(default 2 mm, user-changeable).
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from irplan.planning.conductivity import mask_on_grid
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume

HEAT_SINK_MIN_CALIBRE_MM = 3.0   # AJR 2002 (CLINICAL.md): heat sink at veins > 3 mm, none < 3
HEAT_SINK_SHELL_MM = 2.0         # model parameter, no published value (user-changeable)
VESSEL_KEYS = ("portal_vein", "hepatic_vein", "artery")


@dataclass(frozen=True)
class ZoneTable:
    """One applicator's zone table. ``rows``: dicts as in thermal_tables.json."""

    id: str
    modality: str
    devices: tuple[str, ...]
    verified: bool
    source: str
    rows: tuple[dict[str, Any], ...]
    lethal_isotherm_c: float | None = None
    kind: str = "illustrative"      # "illustrative", "published" (rows from studies), "vendor"

    @property
    def is_cryo(self) -> bool:
        return self.modality == "cryo"

    def isotherms_c(self) -> list[float]:
        if not self.is_cryo:
            return []
        return sorted({float(k) for r in self.rows for k in r["isotherms"]}, reverse=True)


def _parse_table(t: dict[str, Any], where: str) -> ZoneTable:
    try:
        table = ZoneTable(
            id=str(t["id"]), modality=str(t["modality"]),
            devices=tuple(str(d) for d in t.get("devices", [])),
            verified=bool(t.get("verified", False)), source=str(t["source"]),
            rows=tuple(dict(r) for r in t["rows"]),
            lethal_isotherm_c=(float(t["lethal_isotherm_c"]) if "lethal_isotherm_c" in t
                               else None),
            kind=str(t.get("kind", "vendor" if t.get("verified") else "illustrative")))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: invalid zone table ({type(exc).__name__}: {exc})") from None
    if not table.source.strip():
        raise InputError(f"{where}: table {table.id!r} has no source")
    if not table.rows:
        raise InputError(f"{where}: table {table.id!r} has no rows")
    for i, r in enumerate(table.rows):
        w = f"{where}: table {table.id!r} rows[{i}]"
        if "time_s" not in r or "tip_offset_mm" not in r:
            raise InputError(f"{w}: needs time_s and tip_offset_mm")
        if table.is_cryo:
            iso = r.get("isotherms")
            if not isinstance(iso, dict) or not iso:
                raise InputError(f"{w}: cryo rows need 'isotherms' {{degC: [length, width]}}")
            sizes = list(iso.values())
        else:
            if "power_w" not in r or "length_mm" not in r or "width_mm" not in r:
                raise InputError(f"{w}: needs power_w, length_mm and width_mm")
            sizes = [[r["length_mm"], r["width_mm"]]]
        for s in sizes:
            if len(s) != 2 or not all(isinstance(v, int | float) and v > 0 for v in s):
                raise InputError(f"{w}: sizes must be two positive numbers (mm), got {s}")
    return table


def _parse_tables(data: dict[str, Any], where: str) -> dict[str, ZoneTable]:
    out: dict[str, ZoneTable] = {}
    if not isinstance(data, dict) or not isinstance(data.get("tables"), list):
        raise InputError(f"{where}: expected an object with a 'tables' list")
    for i, t in enumerate(data["tables"]):
        table = _parse_table(t, f"{where}: tables[{i}]")
        out[table.id] = table
    return out


@lru_cache(maxsize=1)
def _builtin_tables() -> dict[str, ZoneTable]:
    text = resources.files("irplan.resources").joinpath("thermal_tables.json").read_text("utf-8")
    return _parse_tables(json.loads(text), "thermal_tables.json")


def load_tables(extra_path: str | Path | None = None) -> dict[str, ZoneTable]:
    """Built-in tables plus a user's file (same format; its ids win)."""
    tables = dict(_builtin_tables())
    if extra_path is not None:
        p = Path(extra_path)
        try:
            data = json.loads(p.read_text("utf-8"))
        except FileNotFoundError:
            raise InputError(f"{p}: zone table file not found") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{p}: cannot read zone tables ({exc})") from None
        tables.update(_parse_tables(data, str(p)))
    return tables


def table_for_device(device_id: str, modality: str, tables: dict[str, ZoneTable],
                     zone_table: str | None = None) -> ZoneTable:
    """The table named by the device's ``zone_table``, else the one listing the device."""
    if zone_table:
        if zone_table not in tables:
            raise InputError(f"device {device_id!r}: zone table {zone_table!r} not found "
                             f"(known: {', '.join(tables)})")
        return tables[zone_table]
    for t in tables.values():
        if device_id in t.devices:
            if t.modality != modality:
                raise InputError(f"zone table {t.id!r} is for {t.modality}, the plan is {modality}")
            return t
    raise InputError(f"device {device_id!r}: no thermal zone table lists it; add the "
                     "manufacturer's chart to a tables file (irplan zone --tables)")


# --------------------------------------------------------------------------- interpolation
def _interp_1d(x: float, xs: np.ndarray, ys: np.ndarray, what: str, unit: str,
               table_id: str, context: str = "") -> np.ndarray:
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]
    if x < xs[0] - 1e-9 or x > xs[-1] + 1e-9:
        raise InputError(f"zone table {table_id!r}: {what} {x:g} {unit} is outside the table "
                         f"({xs[0]:g}-{xs[-1]:g} {unit}{context}); no extrapolation")
    return np.array([np.interp(x, xs, ys[:, c]) for c in range(ys.shape[1])])


def interpolate(table: ZoneTable, power_w: float | None, time_s: float | None,
                isotherm_c: float | None = None) -> tuple[float, float, float]:
    """(length_mm, width_mm, tip_offset_mm) at (power, time); cryo: of ``isotherm_c``
    (default the table's lethal isotherm)."""
    if time_s is None:
        raise InputError(f"thermal.time_s is not set (table {table.id!r} needs a time)")
    if table.is_cryo:
        iso = isotherm_c if isotherm_c is not None else table.lethal_isotherm_c
        if iso is None:
            raise InputError(f"zone table {table.id!r}: no lethal isotherm given")
        key = [k for k in table.rows[0]["isotherms"] if float(k) == float(iso)]
        if not key:
            raise InputError(f"zone table {table.id!r}: no {iso:g} degC isotherm "
                             f"(has {', '.join(table.rows[0]['isotherms'])})")
        rows = [r for r in table.rows if key[0] in r["isotherms"]]
        xs = np.array([float(r["time_s"]) for r in rows])
        ys = np.array([[*r["isotherms"][key[0]], r["tip_offset_mm"]] for r in rows], float)
        lw = _interp_1d(float(time_s), xs, ys, "thermal.time_s", "s", table.id)
        return float(lw[0]), float(lw[1]), float(lw[2])
    if power_w is None:
        raise InputError(f"thermal.power_w is not set (table {table.id!r} needs a power)")
    powers = sorted({float(r["power_w"]) for r in table.rows})
    per_power = []
    for pw in powers:
        rows = [r for r in table.rows if float(r["power_w"]) == pw]
        xs = np.array([float(r["time_s"]) for r in rows])
        ys = np.array([[r["length_mm"], r["width_mm"], r["tip_offset_mm"]] for r in rows], float)
        per_power.append((pw, xs, ys))
    p = float(power_w)
    if p < powers[0] - 1e-9 or p > powers[-1] + 1e-9:
        raise InputError(f"zone table {table.id!r}: thermal.power_w {p:g} W is outside the "
                         f"table ({powers[0]:g}-{powers[-1]:g} W); no extrapolation")
    below = max(pw for pw in powers if pw <= p + 1e-9)
    above = min(pw for pw in powers if pw >= p - 1e-9)
    use = [(pw, xs, ys) for pw, xs, ys in per_power if pw in (below, above)]
    vals = np.array([_interp_1d(float(time_s), xs, ys, "thermal.time_s", "s", table.id,
                                f" at {pw:g} W") for pw, xs, ys in use])
    out = _interp_1d(p, np.array([u[0] for u in use]), vals, "thermal.power_w", "W", table.id)
    return float(out[0]), float(out[1]), float(out[2])


# --------------------------------------------------------------------------- geometry
@dataclass
class Ellipsoid:
    """Ellipsoid of revolution: centre (LPS mm), unit axis, full length/width (mm)."""

    centre_lps_mm: np.ndarray
    axis: np.ndarray
    length_mm: float
    width_mm: float
    label: str = ""

    def half_extent_mm(self) -> np.ndarray:
        """Half size of the axis-aligned LPS box around it (mm)."""
        a, b = self.length_mm / 2.0, self.width_mm / 2.0
        u2 = self.axis ** 2
        return np.sqrt(a * a * u2 + b * b * (1.0 - u2))

    def contains(self, p_lps_mm: np.ndarray) -> np.ndarray:
        v = np.asarray(p_lps_mm, dtype=np.float64) - self.centre_lps_mm
        along = v @ self.axis
        perp2 = np.einsum("...i,...i->...", v, v) - along * along
        a, b = self.length_mm / 2.0, self.width_mm / 2.0
        return (along * along) / (a * a) + perp2 / (b * b) <= 1.0

    @property
    def volume_ml(self) -> float:
        return float(4.0 / 3.0 * np.pi * (self.length_mm / 2) * (self.width_mm / 2) ** 2) / 1000


def applicator_ellipsoid(table: ZoneTable, tip_lps_mm: np.ndarray, direction: np.ndarray,
                         power_w: float | None, time_s: float | None,
                         isotherm_c: float | None = None, label: str = "") -> Ellipsoid:
    """The zone ellipsoid of one applicator (``direction``: unit entry -> tip)."""
    length, width, offset = interpolate(table, power_w, time_s, isotherm_c)
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    centre = np.asarray(tip_lps_mm, dtype=np.float64) - offset * d
    return Ellipsoid(centre, d, length, width, label)


def box_grid(lo_lps_mm: np.ndarray, hi_lps_mm: np.ndarray, grid_mm: float) -> Volume:
    """Axis-aligned LPS grid (uint8 zeros) covering [lo, hi] with spacing ``grid_mm``."""
    if not grid_mm > 0:
        raise InputError(f"grid_mm must be > 0, got {grid_mm}")
    n = np.ceil((np.asarray(hi_lps_mm) - np.asarray(lo_lps_mm)) / grid_mm).astype(int) + 1
    if int(np.prod(n)) > 80_000_000:
        raise InputError(f"zone grid {n.tolist()} at {grid_mm} mm is too large")
    return Volume(np.zeros(n[::-1], dtype=np.uint8), np.asarray(lo_lps_mm, float),
                  np.full(3, float(grid_mm)))


def rasterise(grid: Volume, ellipsoids: list[Ellipsoid]) -> np.ndarray:
    """uint8 [k, j, i]: 1 where a voxel centre lies inside any ellipsoid (any grid
    direction; the quadratic form is evaluated by broadcasting over the box of each)."""
    out = np.zeros(grid.array.shape, dtype=bool)
    size = np.asarray(grid.size_xyz)
    for e in ellipsoids:
        half = e.half_extent_mm()
        corners = np.array([e.centre_lps_mm + half * np.array([sx, sy, sz])
                            for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        idx = grid.lps_to_index(corners)
        lo = np.clip(np.floor(idx.min(axis=0)).astype(int), 0, size)
        hi = np.clip(np.ceil(idx.max(axis=0)).astype(int) + 1, 0, size)
        if np.any(hi <= lo):
            continue
        v = np.stack(grid.index_box_lps(lo, hi, relative_to_lps_mm=e.centre_lps_mm), axis=-1)
        along = v @ e.axis
        a, b = e.length_mm / 2.0, e.width_mm / 2.0
        q = (along * along) * (1.0 / (a * a) - 1.0 / (b * b)) + np.einsum("...i,...i->...", v, v) / (b * b)
        out[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] |= q <= 1.0
    return out.astype(np.uint8)


# --------------------------------------------------------------------------- heat sink
def large_vessel_mask(vessels: np.ndarray, spacing_mm: np.ndarray,
                      min_calibre_mm: float = HEAT_SINK_MIN_CALIBRE_MM) -> np.ndarray:
    """Parts of a vessel mask ([k, j, i]) where a ball of ``min_calibre_mm`` diameter fits
    (morphological opening computed with exact Euclidean distance maps, mm)."""
    v = vessels.astype(bool)
    if not v.any():
        return v
    sampling = np.asarray(spacing_mm, dtype=np.float64)[::-1]
    r = 0.5 * min_calibre_mm
    # distance from each vessel voxel centre to the nearest outside voxel centre is at most
    # half a voxel more than to the wall: compare with r + half the smallest spacing
    depth = ndimage.distance_transform_edt(v, sampling=sampling)
    thr = r + 0.5 * float(sampling.min())
    core = depth >= thr
    if not core.any():
        return np.zeros_like(v)
    dist_core = ndimage.distance_transform_edt(~core, sampling=sampling)
    return v & (dist_core <= thr)


@dataclass
class HeatSinkResult:
    zone: np.ndarray
    removed_ml: float
    large_vessel_ml: float
    notes: list[str] = field(default_factory=list)


# Large-vessel mask per vessel mask, computed once on the mask's own grid and keyed by its
# content (CRC-32 of the voxels, ~3 ms for 256^2 x 128, and its geometry): two distance
# transforms on the zone grid for every needle move of a live preview cost ~30 ms; a mask
# edited in place gets a new key. A few entries (one case's vessels, two calibres).
_VESSEL_CACHE: OrderedDict[tuple, Volume] = OrderedDict()
_VESSEL_CACHE_SIZE = 6
_VESSEL_CACHE_LOCK = threading.Lock()   # zone previews run in worker threads


def _mask_key(mask: Volume) -> tuple:
    arr = np.ascontiguousarray(mask.array)
    return (arr.shape, str(arr.dtype), zlib.crc32(arr), mask.origin_lps_mm.tobytes(),
            mask.spacing_mm.tobytes(), mask.direction.tobytes())


def large_vessel_volume(mask: Volume,
                        min_calibre_mm: float = HEAT_SINK_MIN_CALIBRE_MM) -> Volume:
    """Large-vessel mask (calibre >= ``min_calibre_mm``, :func:`large_vessel_mask`) of one
    vessel mask, on a crop of the mask's own grid (uint8 Volume; sample it on any grid by
    LPS position). Cached by mask content (see ``_VESSEL_CACHE``)."""
    key = (_mask_key(mask), float(min_calibre_mm))
    with _VESSEL_CACHE_LOCK:
        hit = _VESSEL_CACHE.get(key)
        if hit is not None:
            _VESSEL_CACHE.move_to_end(key)
            return hit
    arr = mask.array != 0
    if not arr.any():
        out = mask.crop_index([0, 0, 0], [1, 1, 1]).with_array(np.zeros((1, 1, 1), np.uint8))
    else:
        nz = [np.flatnonzero(arr.any(axis=tuple(a for a in range(3) if a != ax)))
              for ax in range(3)]
        lo = np.maximum(np.array([n[0] for n in nz]) - 2, 0)            # k, j, i
        hi = np.minimum(np.array([n[-1] for n in nz]) + 3, arr.shape)
        crop = mask.crop_index(lo[::-1], hi[::-1])
        out = crop.with_array(large_vessel_mask(crop.array != 0, crop.spacing_mm,
                                                min_calibre_mm).astype(np.uint8))
    with _VESSEL_CACHE_LOCK:
        _VESSEL_CACHE[key] = out
        while len(_VESSEL_CACHE) > _VESSEL_CACHE_SIZE:
            _VESSEL_CACHE.popitem(last=False)
    return out


def apply_heat_sink(grid: Volume, zone: np.ndarray, vessels: dict[str, Volume],
                    modality: str, min_calibre_mm: float = HEAT_SINK_MIN_CALIBRE_MM,
                    shell_mm: float = HEAT_SINK_SHELL_MM) -> HeatSinkResult:
    """Remove large vessels (>= ``min_calibre_mm``) and a cooled shell of ``shell_mm``
    around them from ``zone`` ([k, j, i] on ``grid``)."""
    if shell_mm < 0:
        raise InputError(f"heat-sink shell_mm must be >= 0, got {shell_mm}")
    # calibre on each vessel mask's own grid (cached), sampled here; the shell on this grid
    large = np.zeros(grid.array.shape, dtype=bool)
    for m in vessels.values():
        large |= mask_on_grid(large_vessel_volume(m, min_calibre_mm), grid)
    notes = [f"heat-sink model: vessels >= {min_calibre_mm:g} mm calibre and a {shell_mm:g} mm "
             "cooled shell around them removed from the zone (simple model; heat sink in "
             "73 % of pig-liver veins > 3 mm with RFA, AJR 2002; shell thickness is not a "
             "published value)"]
    if modality == "MWA":
        notes.append("MWA is much less affected by heat sink than RFA (PMC5778864): the "
                     "model may cut too much")
    if not large.any():
        return HeatSinkResult(zone, 0.0, 0.0, notes)
    cooled = ndimage.distance_transform_edt(~large, sampling=grid.spacing_mm[::-1]) <= shell_mm
    out = zone.astype(bool) & ~cooled
    vox_ml = grid.voxel_volume_ml
    removed = float((zone.astype(bool) & cooled).sum()) * vox_ml
    return HeatSinkResult(out.astype(np.uint8), removed, float(large.sum()) * vox_ml, notes)


def large_vessels_near(grid: Volume, zone: np.ndarray, vessels: dict[str, Volume],
                       within_mm: float = 5.0,
                       min_calibre_mm: float = HEAT_SINK_MIN_CALIBRE_MM) -> float:
    """Volume (ml) of vessel parts >= ``min_calibre_mm`` within ``within_mm`` of the zone
    (calibre on each vessel mask's own grid, cached: :func:`large_vessel_volume`)."""
    if not zone.any():
        return 0.0
    large = np.zeros(grid.array.shape, dtype=bool)
    for m in vessels.values():
        large |= mask_on_grid(large_vessel_volume(m, min_calibre_mm), grid)
    if not large.any():
        return 0.0
    near = ndimage.distance_transform_edt(~zone.astype(bool),
                                          sampling=grid.spacing_mm[::-1]) <= within_mm
    return float((large & near).sum()) * grid.voxel_volume_ml
