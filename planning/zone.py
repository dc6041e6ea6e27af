"""Predicted ablation zone of a plan: IRE field solver or thermal tables, with coverage,
margin and the risk structures inside the zone. LPS mm throughout.

Entry point :func:`predict_zone`. The zone grid is axis-aligned LPS at ``grid_mm``
(isotropic) around the needles and the tumour; coverage and the minimal margin come from
:func:`irplan.planning.margin.compute_margin` (the zone is sampled on the tumour's grid by
physical position), or for live previews from
:func:`irplan.planning.margin_preview.compute_margin_preview` (``ZoneOptions.live_preview``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from irplan.planning.conductivity import mask_on_grid
from irplan.planning.errors import CancelledError, InputError
from irplan.planning.plan import Plan
from irplan.planning.volume import Volume

# Structures IRE spares: the extracellular matrix of vessels and bile ducts survives (IRE is
# non-thermal, CLINICAL.md "The procedures"); heat does not spare them.
MATRIX_STRUCTURES = ("portal_vein", "hepatic_vein", "artery", "bile_duct")
NOT_RISK = ("tumor", "liver", "body", "ablation_zone")
# CG tolerance of the live preview: the unit potentials change by < 1e-4 of the electrode
# voltage (measured max 1e-4 vs 1e-6 on the phantom's 2 mm system), far below the 2 mm
# grid's own discretisation error.
PREVIEW_SOLVER_TOL = 1e-4
# Box padding of the live preview (mm): 4 mm less than ire_field.DEFAULT_PADDING_MM, so the
# 2 mm preview and the final runs share one node lattice (2 voxels; 1 mm grids too). Stated
# bound (tests/test_ire_field.py): with the far-field boundary its zone is within 0.5 mm
# per axis of a 40 mm box down to 350 V/cm; on the demo plan the same zone and MAM as the
# 20 mm box at 0.32 instead of 0.44 s CPU (load ~19 on 2 cores).
PREVIEW_PADDING_MM = 16.0


@dataclass
class ZoneOptions:
    """User-changeable parameters (defaults cited in the modules that own them)."""

    threshold_v_per_cm: float | None = None     # None: ire_field.E_IRREVERSIBLE_V_PER_CM
    ratio_v_per_cm: float | None = None         # None: ire_field.VOLTAGE_TO_DISTANCE_V_PER_CM
    max_voltage_v: float | None = None          # None: ire_field.MAX_VOLTAGE_V
    padding_mm: float | None = None             # IRE box padding; None: ire_field.DEFAULT_
    #                                             PADDING_MM (doubling it moves the zone
    #                                             < 0.5 mm, tests/test_ire_field.py)
    setting: str | None = None                  # IRE named setting (zone_settings.json);
    #                                             None: the file's default ("conservative")
    params_path: str | None = None              # calibrated parameters (irplan calibrate)
    band: bool = False                          # IRE: also the inner/outer plausible zones
    current_model: bool = True                  # IRE pair current while pulsing
    #                                             (conductivity.PairCurrentModel); False:
    #                                             static-conductivity current
    current_cached_only: bool = False           # nearest solved current factor (preview)
    pairs: list[tuple[int, int]] | None = None  # IRE pulse pairs (0-based); None = the
    #                                             ire_array convention (spacing <= 25 mm)
    conductivity_s_per_m: dict[str, float] | None = None
    dynamic_ratio: float | None = None          # None = constant conductivity
    heat_sink: bool = False
    heat_sink_shell_mm: float | None = None     # None: thermal_zone.HEAT_SINK_SHELL_MM
    isotherm_c: float | None = None             # cryo; None = the table's lethal isotherm
    tables_path: str | None = None              # extra thermal tables file
    margin_fine_mm: float | None = 0.5          # None = margin on the tumour grid (preview)
    compute_margin: bool = True
    # "exact": margin.compute_margin (sub-voxel, margin_fine_mm); "preview": the fast
    # margin_preview.compute_margin_preview on the masks' own grids (live planning)
    margin_method: str = "exact"
    solver_tol: float = 1e-6                    # IRE CG relative residual
    solver_amg: str = "rs"                      # IRE AMG: "rs", "rs-direct", "sa"

    @classmethod
    def live_preview(cls, **changes: Any) -> ZoneOptions:
        """Options of the GUI's coarse live preview (use with a 2 mm grid): preview margin,
        CG to 1e-4 relative residual and Ruge-Stuben AMG with direct interpolation.
        Measured on the phantom's reference plan (bench/bench_zone.py): zone volume within
        0.1 % and identical coverage/MAM of the 1e-6 solve; ~2x faster solver."""
        base: dict[str, Any] = {"margin_method": "preview", "margin_fine_mm": None,
                                "solver_tol": PREVIEW_SOLVER_TOL, "solver_amg": "rs-direct",
                                "padding_mm": PREVIEW_PADDING_MM, "current_cached_only": True}
        base.update(changes)
        return cls(**base)


@dataclass
class RiskVolume:
    key: str
    volume_ml: float
    spared: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "volume_ml": round(self.volume_ml, 3),
                "spared": self.spared, "note": self.note}


@dataclass
class ZoneResult:
    """The predicted zone and what it means for the tumour and the structures at risk."""

    modality: str
    zone: Volume
    grid_mm: float
    field_v_per_cm: Volume | None = None
    pairs: list[Any] = field(default_factory=list)            # ire_field.PairResult
    threshold_v_per_cm: float | None = None
    ellipsoids: list[Any] = field(default_factory=list)       # thermal_zone.Ellipsoid
    tables: list[dict[str, str]] = field(default_factory=list)
    margin: Any = None                                        # margin.MarginResult | None
    risk: list[RiskVolume] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    setting: dict[str, Any] = field(default_factory=dict)      # model setting used
    converged: bool = True          # False: a nonlinear solve did not converge (not final)
    solver: dict[str, Any] = field(default_factory=dict)       # padding, boundary, iterations
    band_zones: dict[str, Volume] = field(default_factory=dict)  # "inner"/"outer" (IRE)
    band: dict[str, Any] = field(default_factory=dict)         # their settings and figures

    @property
    def volume_ml(self) -> float:
        return float(self.zone.array.sum()) * self.zone.voxel_volume_ml

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (the ``irplan zone --json`` output)."""
        m = self.margin
        d: dict[str, Any] = {
            "modality": self.modality,
            "zone_volume_ml": round(self.volume_ml, 3),
            "tumor_coverage_percent": (round(float(m.tumor_coverage_percent), 2)
                                       if m is not None else None),
            "minimal_margin_mm": round(float(m.minimal_margin_mm), 2) if m is not None else None,
            "grid_mm": self.grid_mm,
        }
        if m is not None:
            d["mam_point_lps_mm"] = [round(float(v), 2) for v in m.mam_point_lps_mm]
            d["margin_method"] = "preview" if m.method.startswith("preview") else "exact"
            d["required_margin_mm"] = float(m.required_margin_mm)
            d["shell_coverage_percent"] = round(float(m.shell_coverage_percent), 2)
            d["residual_tumor_ml"] = round(float(m.residual_tumor_ml), 3)
            d["tumor_volume_ml"] = round(float(m.tumor_volume_ml), 3)
        if self.modality == "IRE":
            d["threshold_v_per_cm"] = self.threshold_v_per_cm
            d["pairs"] = [p.to_dict() for p in self.pairs]
            if self.field_v_per_cm is not None:
                d["max_field_v_per_cm"] = round(float(self.field_v_per_cm.array.max()), 1)
        else:
            d["applicators"] = [{"centre_lps_mm": [round(float(v), 2) for v in e.centre_lps_mm],
                                 "length_mm": round(e.length_mm, 2),
                                 "width_mm": round(e.width_mm, 2)} for e in self.ellipsoids]
            d["tables"] = self.tables
        d["setting"] = dict(self.setting)
        d["converged"] = bool(self.converged)
        if self.solver:
            d["solver"] = dict(self.solver)
        if self.band:
            d["band"] = dict(self.band)
        d["risk_structures"] = [r.to_dict() for r in self.risk]
        d["warnings"] = list(self.warnings)
        d["timings_s"] = {k: round(v, 4) for k, v in self.timings_s.items()}
        return d


def _tumor_box(structures: dict[str, Volume], pad_mm: float) -> np.ndarray | None:
    """LPS corners (8, 3) of the tumour's box grown by ``pad_mm``, or None."""
    tumor = structures.get("tumor")
    if tumor is None:
        return None
    arr = tumor.array
    ks = np.flatnonzero(arr.any(axis=(1, 2)))     # projections: ~50x faster than argwhere
    if ks.size == 0:
        return None
    js = np.flatnonzero(arr.any(axis=(0, 2)))
    is_ = np.flatnonzero(arr.any(axis=(0, 1)))
    lo = np.array([is_[0], js[0], ks[0]])
    hi = np.array([is_[-1], js[-1], ks[-1]])
    c = np.array([[a, b, d] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                  for d in (lo[2], hi[2])], dtype=np.float64)
    pts = tumor.index_to_lps(c)
    lo_l, hi_l = pts.min(axis=0) - pad_mm, pts.max(axis=0) + pad_mm
    return np.array([[x, y, z] for x in (lo_l[0], hi_l[0]) for y in (lo_l[1], hi_l[1])
                     for z in (lo_l[2], hi_l[2])])


def predict_zone(plan: Plan, ct: Volume | None, structures: dict[str, Volume],
                 grid_mm: float = 1.0, options: ZoneOptions | None = None, *,
                 progress: Callable[[float, str], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> ZoneResult:
    """Predict the ablation zone of ``plan`` (IRE: field solver; MWA/RFA/cryo: tables).

    ``ct`` is not needed by the models (kept for callers that have it; unused for now);
    ``structures``: uint8 masks by key (any grid; "tumor" for coverage/margin, vessels
    and liver for conductivity and heat sink). ``progress(fraction, text)`` and
    ``cancel() -> bool`` (raise CancelledError) serve background workers.
    Raises InputError naming the problem.
    """
    del ct
    opts = options or ZoneOptions()
    if (plan.modality == "IRE" and opts.setting is None and opts.threshold_v_per_cm is None
            and opts.params_path is None):
        # the model the plan was made with (plan key "zone_model"), as on screen
        from irplan.planning.zone_settings import plan_model_options

        recorded = plan_model_options(plan.extra, plan.file_dir)
        if recorded:
            opts = dataclasses.replace(opts, **recorded)
    if not plan.needles:
        raise InputError("plan has no needles: place at least one needle to predict a zone")
    if grid_mm <= 0 or grid_mm > 5:
        raise InputError(f"grid_mm must be in (0, 5] mm, got {grid_mm}")
    if opts.margin_method not in ("exact", "preview"):
        raise InputError(f"margin_method must be 'exact' or 'preview', got "
                         f"{opts.margin_method!r}")
    t0 = time.perf_counter()
    tumor_box = _tumor_box(structures, float(plan.margin_mm) + 4.0)
    if plan.modality == "IRE":
        res = _predict_ire(plan, structures, grid_mm, opts, tumor_box, progress, cancel)
    elif plan.modality in ("MWA", "RFA", "cryo"):
        res = _predict_thermal(plan, structures, grid_mm, opts, tumor_box)
    else:
        raise InputError(f"modality {plan.modality!r} has no zone model")
    res.timings_s["zone_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    _risk(res, structures)
    res.timings_s["risk_s"] = time.perf_counter() - t1
    if opts.compute_margin:
        if cancel is not None and cancel():
            raise CancelledError("zone prediction cancelled")
        if progress is not None:
            progress(0.95, "coverage and margin")
        _margin(res, structures, float(plan.margin_mm), opts.margin_fine_mm,
                opts.margin_method)
        _band_margin(res, structures, float(plan.margin_mm), opts.margin_fine_mm,
                     opts.margin_method)
    res.timings_s["total_s"] = time.perf_counter() - t0
    return res


def _predict_ire(plan: Plan, structures: dict[str, Volume], grid_mm: float, opts: ZoneOptions,
                 tumor_box: np.ndarray | None, progress: Callable[[float, str], None] | None,
                 cancel: Callable[[], bool] | None) -> ZoneResult:
    from irplan.planning import ire_field as ire
    from irplan.planning.conductivity import PAIR_CURRENT_MODEL, conductivity_map
    from irplan.planning.devices import get_device

    electrodes: list[ire.Electrode] = []
    warnings: list[str] = []
    for i, n in enumerate(plan.needles):
        dev = get_device(n.device)
        if dev.modality != "IRE":
            raise InputError(f"needles[{i}]: device {n.device!r} is {dev.modality}, not an IRE "
                             "electrode")
        exposure = n.exposure_mm if n.exposure_mm is not None else dev.exposure_default_mm
        if exposure is None or exposure <= 0:
            raise InputError(f"needles[{i}].exposure_mm: not set and device {n.device!r} has no "
                             "default exposure")
        if n.exposure_mm is None:
            warnings.append(f"needles[{i}]: exposure not set, device default {exposure:g} mm used")
        electrodes.append(ire.Electrode(n.tip_lps_mm, n.direction, float(exposure),
                                        dev.radius_mm, max(n.length_mm - float(exposure), 0.0),
                                        n.name or f"E{i + 1}"))
    pairs = opts.pairs
    if pairs is None:   # IRPlan's pulse-pair convention (irplan.planning.ire_array)
        from irplan.planning.ire_array import electrode_pairs

        pairs = [(p.i, p.j) for p in electrode_pairs(plan.needles)]
    t0 = time.perf_counter()
    padding = opts.padding_mm if opts.padding_mm is not None else ire.DEFAULT_PADDING_MM
    grid = ire.solver_grid(electrodes, grid_mm, padding)
    sigma, notes = conductivity_map(grid, structures, opts.conductivity_s_per_m)
    t_sigma = time.perf_counter() - t0
    setting = resolve_setting(opts)
    threshold = setting.threshold_v_per_cm
    result = ire.solve_ire(
        grid, electrodes, sigma, pairs=pairs, voltages_v=plan.ire.voltage_v,
        threshold_v_per_cm=threshold,
        ratio_v_per_cm=opts.ratio_v_per_cm or ire.VOLTAGE_TO_DISTANCE_V_PER_CM,
        max_voltage_v=opts.max_voltage_v or ire.MAX_VOLTAGE_V,
        dynamic_ratio=opts.dynamic_ratio, tol=opts.solver_tol, amg=opts.solver_amg,
        current_model=PAIR_CURRENT_MODEL if opts.current_model else None,
        pulse_on_s=float(plan.ire.pulses) * float(plan.ire.pulse_width_us) * 1e-6,
        current_cached_only=opts.current_cached_only,
        progress=(lambda f, t: progress(0.9 * f, t)) if progress else None, cancel=cancel)
    timings = {"conductivity_s": t_sigma, **result.timings_s}
    zone, fld = result.zone, result.field_v_per_cm
    if tumor_box is not None:   # the margin analysis needs a zone image around the tumour
        zone, fld = _extend_to_cover(zone, tumor_box), _extend_to_cover(fld, tumor_box)
    solver_info: dict[str, Any] = {"padding_mm": float(padding), "boundary": "farfield",
                                   "cg_max_iterations": result.iterations.get("cg_max", 0)}
    if result.dynamic:
        solver_info["dynamic"] = result.dynamic
    res = ZoneResult("IRE", zone, grid_mm, field_v_per_cm=fld,
                     pairs=result.pairs, threshold_v_per_cm=threshold,
                     warnings=warnings + notes + result.warnings, timings_s=timings,
                     setting=setting.to_dict(), converged=result.converged, solver=solver_info)
    if opts.band:
        from irplan.planning.zone_settings import band_settings

        inner, outer = band_settings()
        t_in = max(inner.threshold_v_per_cm, threshold)
        t_out = min(outer.threshold_v_per_cm, threshold)
        res.band_zones = {"inner": fld.with_array((fld.array >= t_in).astype(np.uint8)),
                          "outer": fld.with_array((fld.array >= t_out).astype(np.uint8))}
        res.band = {k: {"setting": s.name, "threshold_v_per_cm": t,
                        "zone_volume_ml": round(float(res.band_zones[k].array.sum())
                                                * zone.voxel_volume_ml, 3)}
                    for k, s, t in (("inner", inner, t_in), ("outer", outer, t_out))}
    return res


def resolve_setting(opts: ZoneOptions) -> Any:
    """The IRE model setting of ``opts`` (zone_settings.ZoneSetting): a calibrated parameter
    file, else an explicit threshold (named after the setting with that threshold, if any),
    else the named setting, else the default ("conservative", 637 V/cm)."""
    from irplan.planning import zone_settings as zs

    if opts.params_path:
        return zs.load_params(opts.params_path)
    if opts.threshold_v_per_cm is not None:
        if opts.threshold_v_per_cm <= 0:
            raise InputError(f"threshold_v_per_cm must be > 0, got {opts.threshold_v_per_cm}")
        if opts.setting:
            named = zs.get_setting(opts.setting)
            if named.threshold_v_per_cm == opts.threshold_v_per_cm:
                return named
        for s in zs.settings():
            if s.threshold_v_per_cm == float(opts.threshold_v_per_cm):
                return s
        return zs.custom_setting(float(opts.threshold_v_per_cm))
    if opts.setting:
        return zs.get_setting(opts.setting)
    return zs.default_setting()


def _extend_to_cover(vol: Volume, pts_lps_mm: np.ndarray) -> Volume:
    """``vol`` on the same voxel lattice, grown with zeros to hold ``pts_lps_mm``."""
    idx = vol.lps_to_index(pts_lps_mm)
    size = np.asarray(vol.size_xyz)
    lo = np.minimum(np.floor(idx.min(axis=0)).astype(int), 0)
    hi = np.maximum(np.ceil(idx.max(axis=0)).astype(int) + 1, size)
    if np.all(lo == 0) and np.all(hi == size):
        return vol
    n = hi - lo
    arr = np.zeros(n[::-1], dtype=vol.array.dtype)
    arr[-lo[2]:-lo[2] + size[2], -lo[1]:-lo[1] + size[1], -lo[0]:-lo[0] + size[0]] = vol.array
    return Volume(arr, vol.index_to_lps(lo.astype(np.float64)), vol.spacing_mm.copy(),
                  vol.direction.copy(), dict(vol.metadata))


def _predict_thermal(plan: Plan, structures: dict[str, Volume], grid_mm: float,
                     opts: ZoneOptions, tumor_box: np.ndarray | None) -> ZoneResult:
    from irplan.planning import thermal_zone as tz
    from irplan.planning.devices import get_device

    t0 = time.perf_counter()
    tables = tz.load_tables(opts.tables_path)
    ellipsoids: list[tz.Ellipsoid] = []
    used: dict[str, tz.ZoneTable] = {}
    warnings: list[str] = []
    for i, n in enumerate(plan.needles):
        dev = get_device(n.device)
        if dev.modality != plan.modality:
            raise InputError(f"needles[{i}]: device {n.device!r} is {dev.modality}, the plan is "
                             f"{plan.modality}")
        table = tz.table_for_device(n.device, plan.modality, tables, dev.zone_table)
        used[table.id] = table
        ellipsoids.append(tz.applicator_ellipsoid(
            table, n.tip_lps_mm, n.direction, plan.thermal.power_w, plan.thermal.time_s,
            opts.isotherm_c, n.name or f"A{i + 1}"))
    for t in used.values():
        if t.kind == "published":
            warnings.append(f"zone table {t.id!r}: published zones ({t.source[:80]}), not the "
                            "chart of your device")
        elif not t.verified:
            warnings.append(f"zone table {t.id!r} is illustrative, not the manufacturer's "
                            "chart: replace it with the chart of your device")
    calibrated: dict[str, Any] | None = None
    if opts.params_path:   # a thermal zone scale fitted by irplan calibrate
        from irplan.planning.zone_settings import load_thermal_scale

        scale, calibrated = load_thermal_scale(opts.params_path)
        ellipsoids = [tz.Ellipsoid(e.centre_lps_mm, e.axis, e.length_mm * scale,
                                   e.width_mm * scale, e.label) for e in ellipsoids]
    pts = [e.centre_lps_mm + s * e.half_extent_mm() for e in ellipsoids for s in (-1, 1)]
    if tumor_box is not None:
        pts += list(tumor_box)
    pa = np.asarray(pts)
    grid = tz.box_grid(pa.min(axis=0) - 2 * grid_mm, pa.max(axis=0) + 2 * grid_mm, grid_mm)
    zone = tz.rasterise(grid, ellipsoids)
    vessels = {k: structures[k] for k in tz.VESSEL_KEYS if k in structures}
    if opts.heat_sink:
        hs = tz.apply_heat_sink(grid, zone, vessels, plan.modality,
                                shell_mm=(opts.heat_sink_shell_mm
                                          if opts.heat_sink_shell_mm is not None
                                          else tz.HEAT_SINK_SHELL_MM))
        zone = hs.zone
        warnings += hs.notes
        warnings.append(f"heat sink: {hs.removed_ml:.2f} ml removed from the zone next to "
                        f"{hs.large_vessel_ml:.2f} ml of vessels >= 3 mm")
    else:
        near = tz.large_vessels_near(grid, zone, vessels) if vessels else 0.0
        if near > 0:
            warnings.append(f"heat sink likely: {near:.2f} ml of vessels >= 3 mm calibre lie "
                            "within 5 mm of the zone (73 % of pig-liver veins > 3 mm showed "
                            "it with RFA, AJR 2002); the zone there may be smaller than shown "
                            "(heat-sink option not applied)")
        elif not vessels:
            warnings.append("no vessel masks: heat sink from vessels >= 3 mm not assessed")
    tables_info = [{"id": t.id, "source": t.source, "kind": t.kind} for t in used.values()]
    setting = {"id": "table", "name": "zone table " + ", ".join(t.id for t in used.values()),
               "source": "; ".join(t.source for t in used.values())}
    if calibrated is not None:
        setting = calibrated | {"tables": [t.id for t in used.values()]}
    return ZoneResult(plan.modality, grid.with_array(zone), grid_mm, ellipsoids=ellipsoids,
                      tables=tables_info, warnings=warnings,
                      timings_s={"thermal_s": time.perf_counter() - t0}, setting=setting)


def _risk(res: ZoneResult, structures: dict[str, Volume]) -> None:
    zone = res.zone
    ire = res.modality == "IRE"
    for key, mask in structures.items():
        if key in NOT_RISK:
            continue
        vol = float((mask_on_grid(mask, zone) & (zone.array != 0)).sum()) * zone.voxel_volume_ml
        matrix = key in MATRIX_STRUCTURES
        if ire and matrix:
            note = "inside the IRE zone; IRE spares the vessel/bile-duct matrix (non-thermal)"
        elif matrix:
            note = "inside the thermal zone: heat does not spare vessels or bile ducts"
        else:
            note = "inside the zone: not spared"
        res.risk.append(RiskVolume(key, vol, ire and matrix, note))
        if vol > 0 and not (ire and matrix):
            res.warnings.append(f"{key}: {vol:.2f} ml inside the predicted zone ({note})")


def _margin(res: ZoneResult, structures: dict[str, Volume], required_mm: float,
            fine_mm: float | None, method: str = "exact") -> None:
    tumor = structures.get("tumor")
    if tumor is None or not np.any(tumor.array):
        res.warnings.append("no tumour mask: coverage and margin not computed")
        return
    if not np.any(res.zone.array):
        res.warnings.append("the predicted zone is empty: the tumour is not covered")
        return
    t0 = time.perf_counter()
    if method == "preview":
        from irplan.planning.margin_preview import compute_margin_preview

        res.margin = compute_margin_preview(tumor, res.zone, required_mm)
    else:
        from irplan.planning.margin import compute_margin

        res.margin = compute_margin(tumor, res.zone, required_mm, fine_spacing_mm=fine_mm)
    res.timings_s["margin_s"] = time.perf_counter() - t0
    if res.modality == "IRE" and not res.converged:
        res.warnings.append("the dynamic-conductivity solve did not converge: coverage and "
                            "margin of this zone are NOT final")
    if res.margin.minimal_margin_mm < required_mm:
        res.warnings.append(f"minimal margin {res.margin.minimal_margin_mm:.1f} mm is below the "
                            f"required {required_mm:g} mm")


def _band_margin(res: ZoneResult, structures: dict[str, Volume], required_mm: float,
                 fine_mm: float | None, method: str) -> None:
    """Coverage and minimal margin of the band's inner (smallest plausible) zone."""
    inner = res.band_zones.get("inner")
    tumor = structures.get("tumor")
    if inner is None or tumor is None or not np.any(tumor.array):
        return
    if not np.any(inner.array):
        res.band["inner"].update({"tumor_coverage_percent": 0.0, "minimal_margin_mm": None})
        return
    t0 = time.perf_counter()
    if method == "preview":
        from irplan.planning.margin_preview import compute_margin_preview

        m = compute_margin_preview(tumor, inner, required_mm)
    else:
        from irplan.planning.margin import compute_margin

        m = compute_margin(tumor, inner, required_mm, fine_spacing_mm=fine_mm)
    res.band["inner"].update({
        "tumor_coverage_percent": round(float(m.tumor_coverage_percent), 2),
        "minimal_margin_mm": round(float(m.minimal_margin_mm), 2)})
    res.timings_s["band_margin_s"] = time.perf_counter() - t0
