"""``irplan detect-needles CT_DIR [--plan PLAN.irplan.json] [--json] [--out PLACED.irplan.json]
[--currents CSV]``: find the placed needles on an intra-procedural CT and compare them
with the plan.

Detection: :mod:`irplan.planning.needle_detection`; comparison, pairs and verdict:
:mod:`irplan.planning.placement`. ``--json`` prints one object: ``"needles"`` (each
``tip_lps_mm``, ``entry_lps_mm``; with ``--plan`` also ``planned_index`` 1-based or null,
``tip_error_mm``, ``angle_error_deg``, ``depth_error_mm``, ``lateral_error_mm``),
``"pairs"`` (IRE: ``needles`` [a, b] 1-based, tip-to-tip ``spacing_mm``, ``angle_deg``,
``voltage_v``), with ``--plan`` ``"missing_planned"``, ``"repredicted"`` (zone, coverage
and minimal margin planned vs placed; ``--no-zone`` skips it) and ``"verdict"``
(technical success; pulses from ``--currents``: ``pair,pulses,current_a``).
``--out`` writes a schema-1 plan of the placed needles (``irplan check``/``zone`` read it)
with the record under the new key ``"procedure"``. No needle found is a normal result
(exit 0); an unreadable CT, plan or CSV is one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from irplan.app.cli_types import finite_float
from irplan.planning.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ct_dir", help="intra-procedural CT (DICOM folder)")
    parser.add_argument("--plan", metavar="PLAN.irplan.json", help="compare with this plan")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--out", metavar="PLACED.irplan.json",
                        help="write a plan of the placed needles (needs --plan)")
    parser.add_argument("--currents", metavar="CSV",
                        help="generator log: pair,pulses,current_a (pair 1-based, e.g. 1-2)")
    parser.add_argument("--threshold-hu", type=finite_float(300, 3071, unit="HU"),
                        default=None, help="metal threshold (default 1500 HU)")
    parser.add_argument("--grid-mm", type=finite_float(0, 5, lo_open=True, unit="mm"),
                        default=1.0, help="re-prediction zone grid (default 1.0 mm)")
    parser.add_argument("--no-zone", action="store_true",
                        help="skip the zone re-prediction")
    parser.add_argument("--register", choices=("auto", "none", "rigid"), default="auto",
                        help="map the needles into the plan's CT by a rigid registration "
                             "around the tumour/liver (auto: when the Frames of Reference "
                             "differ)")


def _r(v: Any, nd: int = 2) -> Any:
    if v is None:
        return None
    if isinstance(v, (list, tuple, np.ndarray)):
        return [round(float(x), nd) for x in v]
    return round(float(v), nd)


def run(args: argparse.Namespace) -> int:
    from irplan.io.dicom_load import load_ct
    from irplan.planning import placement as pl
    from irplan.planning.needle_detection import DetectionOptions, detect_needles

    if args.out and not args.plan:
        raise InputError("--out needs --plan (devices and exposures come from the plan)")
    plan = None
    if args.plan:
        from irplan.io.plan_file import load_plan

        plan = load_plan(args.plan)
    if args.out:
        from irplan.io.atomic_write import check_output_path

        check_output_path(args.out)
    ct = load_ct(args.ct_dir)
    opts = DetectionOptions()
    if args.threshold_hu is not None:
        opts.threshold_hu = args.threshold_hu
    det = detect_needles(ct, opts)
    notes: list[str] = list(det.rejected)
    placed = [pl.PlacedNeedle(n.tip_lps_mm, n.entry_lps_mm) for n in det.needles]
    needles_out = []
    for n in det.needles:
        d = n.to_dict()
        needles_out.append(d)
    out: dict[str, Any] = {"ct": str(args.ct_dir), "needles": needles_out,
                           "detection": {"threshold_hu": det.threshold_hu,
                                         "metal_voxels": det.metal_voxels,
                                         "time_s": round(det.timings_s.get("total_s", 0), 3)}}
    is_ire = plan.is_ire if plan is not None else len(placed) >= 2
    pairs = pl.measured_pairs(placed) if is_ire and len(placed) >= 2 else []
    if plan is not None:
        ct_for = str(ct.metadata.get("frame_of_reference_uid", "") or "")
        plan_for = plan.image.frame_of_reference_uid
        if not plan_for and args.register == "auto" and ct_for:
            plan_for = _plan_frame(plan, notes)
        other_frame = bool(ct_for and plan_for and ct_for != plan_for)
        if args.register == "rigid" or (args.register == "auto" and other_frame):
            out["registration"] = _register_to_plan(plan, ct, placed, notes)
            for d, p in zip(needles_out, placed):
                d["tip_lps_mm"] = _r(p.tip_lps_mm, 3)
                d["entry_lps_mm"] = _r(p.entry_lps_mm, 3)
                d["frame"] = "planning CT (registered)"
        elif other_frame:
            notes.append("the intra-op CT has another Frame of Reference than the plan's CT "
                         "and --register none: positions are compared as stored")
        matches = pl.match_to_plan(placed, plan.needles)
        errors: list[dict[str, float] | None] = []
        for d, p, m in zip(needles_out, placed, matches):
            d["planned_index"] = None if m is None else m + 1
            e = pl.needle_errors(p, plan.needles[m]) if m is not None else None
            errors.append(e)
            for k in ("tip_error_mm", "angle_error_deg", "depth_error_mm", "lateral_error_mm"):
                d[k] = None if e is None else _r(e[k], 2)
        found = {m for m in matches if m is not None}
        out["missing_planned"] = [j + 1 for j in range(len(plan.needles)) if j not in found]
    out["pairs"] = [{"needles": [a + 1, b + 1], "spacing_mm": _r(p["spacing_mm"]),
                     "angle_deg": _r(p["angle_deg"]), "voltage_v": _r(p["voltage_v"], 0),
                     "voltage_capped": p["capped"]}
                    for p in pairs for a, b in [p["needles"]]]
    record = None
    if args.currents:
        record = _read_currents(args.currents, len(placed))
        for p in out["pairs"]:
            got = record.get((p["needles"][0] - 1, p["needles"][1] - 1))
            p["pulses"] = None if got is None else int(got["pulses"])
            p["current_a"] = None if got is None else got["current_a"]
    placed_plan = None
    if plan is not None:
        out["verdict"] = pl.technical_success(len(plan.needles), matches, errors, pairs, record)
        if placed:
            placed_plan = pl.placed_plan(plan, placed, matches)
        if placed_plan is not None and not args.no_zone and plan.structures:
            out["repredicted"] = _repredict(plan, placed_plan, pairs, args.grid_mm, notes)
    if record is not None and "placed" in (out.get("repredicted") or {}):
        predicted = {tuple(sorted(pp["electrodes"])): pp["current_a"]
                     for pp in out["repredicted"]["placed"].get("pairs", [])
                     if pp.get("current_a") is not None}
        fit = pl.fit_current_scale(predicted, {k: v["current_a"] for k, v in record.items()})
        if fit is not None:
            out["currents"] = fit
    if args.out:
        _write_out(args.out, args.plan, plan, placed_plan, out)
    out["notes"] = notes
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    _print_text(out)
    return 0


def _plan_frame(plan, notes: list[str]) -> str:  # noqa: ANN001
    """The Frame of Reference UID of the plan's CT series ("" when not DICOM / unknown)."""
    from irplan.io.dicom_scan import scan_dicom
    from irplan.io.plan_file import image_path
    from irplan.planning.errors import IrplanError

    try:
        path = image_path(plan)
        if not path.is_dir():
            return ""
        scan = scan_dicom(path)
        uid = plan.image.series_uid
        for info in scan.ct_candidates():
            if not uid or info.series_uid == uid:
                return str(info.frame_of_reference_uid or "")
    except (IrplanError, OSError) as exc:
        notes.append(f"frame of reference of the plan's CT unknown ({exc})")
    return ""


def _register_to_plan(plan, ct, placed, notes: list[str]) -> dict[str, Any]:  # noqa: ANN001
    """Rigid registration planning CT (fixed) <- intra-op CT (moving) around the tumour
    (liver-restricted metric), the evaluation's registration; ``placed`` needles are
    mapped into the planning frame in place. Returns its figures of merit."""
    from irplan.io.plan_file import load_plan_image, load_plan_structures
    from irplan.planning.registration import register

    planning = load_plan_image(plan)
    structures, more = load_plan_structures(plan, planning)
    notes += more
    res = register(planning, ct, "rigid", target=structures.get("tumor"),
                   liver=structures.get("liver"))
    inverse = res.transform.GetInverse()       # intra-op LPS -> planning LPS
    from irplan.planning.registration import map_points

    for p in placed:
        p.tip_lps_mm = map_points(inverse, np.asarray(p.tip_lps_mm, float))
        p.entry_lps_mm = map_points(inverse, np.asarray(p.entry_lps_mm, float))
    d = res.to_dict()
    d["applied"] = True
    notes.append(f"intra-op CT registered rigidly to the plan's CT around the tumour "
                 f"(Mattes MI {d['initial_metric_value']} -> {d['metric_value']}); "
                 "needle positions are in the planning frame")
    return d


def _read_currents(path: str, n: int) -> dict:
    from pathlib import Path

    from irplan.planning.placement import parse_currents_csv

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--currents {path}: cannot read ({exc.__class__.__name__})") from None
    return parse_currents_csv(text, path, n)


def _zone_summary(res) -> dict[str, Any]:  # noqa: ANN001
    m = res.margin
    d: dict[str, Any] = {"zone_volume_ml": _r(res.volume_ml, 3),
                         "tumor_coverage_percent": None if m is None
                         else _r(m.tumor_coverage_percent),
                         "minimal_margin_mm": None if m is None else _r(m.minimal_margin_mm),
                         "thinnest_margin_lps_mm": None if m is None
                         else _r(m.mam_point_lps_mm)}
    if m is not None:
        d["shell_coverage_percent"] = _r(m.shell_coverage_percent)
    if res.pairs:
        d["pairs"] = [p.to_dict() for p in res.pairs]
    d["converged"] = bool(res.converged)
    return d


def _repredict(plan, placed_plan, pairs: list[dict], grid_mm: float,  # noqa: ANN001
               notes: list[str]) -> dict[str, Any]:
    """Zone, coverage and minimal margin of the plan and of the placed needles (IRE: the
    measured per-pair voltages), with the same structures and model."""
    from irplan.app.cmd_zone import target_structures
    from irplan.io.plan_file import load_plan_structures
    from irplan.planning.errors import IrplanError
    from irplan.planning.zone import ZoneOptions, predict_zone

    structures, more = load_plan_structures(plan)
    notes += more
    structures = target_structures(plan, structures, notes, "plan")
    out: dict[str, Any] = {"grid_mm": grid_mm}
    try:
        planned = predict_zone(plan, None, structures, grid_mm=grid_mm, options=ZoneOptions())
        opts = ZoneOptions()
        run_plan = placed_plan
        if placed_plan.is_ire and pairs:
            run_plan = placed_plan.copy()
            opts.pairs = [tuple(p["needles"]) for p in pairs]
            run_plan.ire.voltage_v = [p["voltage_v"] for p in pairs]  # per pair (in memory)
        placed = predict_zone(run_plan, None, structures, grid_mm=grid_mm, options=opts)
    except IrplanError as exc:
        notes.append(f"zone not re-predicted: {exc}")
        return {"error": str(exc)}
    out["planned"] = _zone_summary(planned)
    out["placed"] = _zone_summary(placed)
    a, b = out["planned"], out["placed"]
    if a["tumor_coverage_percent"] is not None and b["tumor_coverage_percent"] is not None:
        out["coverage_change_percent"] = _r(b["tumor_coverage_percent"]
                                            - a["tumor_coverage_percent"])
        out["margin_change_mm"] = _r(b["minimal_margin_mm"] - a["minimal_margin_mm"])
        out["margin_ok"] = bool(b["minimal_margin_mm"] >= plan.margin_mm)
    out["required_margin_mm"] = float(plan.margin_mm)
    out["setting"] = placed.setting.get("name")
    return out


def _write_out(path: str, plan_path: str, plan, placed_plan, out: dict) -> None:  # noqa: ANN001
    from irplan.io.plan_file import save_plan

    if placed_plan is None:
        placed_plan = plan.copy()
        placed_plan.needles = []
    placed_plan.extra["procedure"] = {
        "source_plan": str(plan_path),
        "intraop_ct": out["ct"],
        "needles": [{k: d.get(k) for k in ("tip_lps_mm", "entry_lps_mm", "planned_index",
                                            "tip_error_mm", "depth_error_mm",
                                            "lateral_error_mm", "angle_error_deg")}
                    for d in out["needles"]],
        "missing_planned": out.get("missing_planned", []),
        "pairs": out["pairs"],
        "verdict": out.get("verdict"),
    }
    for key in ("repredicted", "currents", "registration"):
        if key in out:
            placed_plan.extra["procedure"][key] = out[key]
    save_plan(placed_plan, path)


def _print_text(out: dict) -> None:
    w = sys.stdout.write
    w(f"{len(out['needles'])} needle(s) found on {out['ct']}\n")
    for k, d in enumerate(out["needles"], start=1):
        line = (f"  {k}: tip {d['tip_lps_mm']} entry {d['entry_lps_mm']} "
                f"(visible {d['visible_length_mm']:.0f} mm)")
        if "planned_index" in d:
            line += (" unmatched" if d["planned_index"] is None else
                     f" -> planned {d['planned_index']}: tip {d['tip_error_mm']:.1f} mm "
                     f"(depth {d['depth_error_mm']:+.1f}, lateral {d['lateral_error_mm']:.1f}),"
                     f" axis {d['angle_error_deg']:.1f} deg")
        w(line + "\n")
    for j in out.get("missing_planned", []):
        w(f"  planned needle {j}: NOT FOUND\n")
    for p in out["pairs"]:
        a, b = p["needles"]
        w(f"  pair {a}-{b}: spacing {p['spacing_mm']:.1f} mm, angle {p['angle_deg']:.1f} deg, "
          f"set {p['voltage_v']:.0f} V{' (capped)' if p['voltage_capped'] else ''}\n")
    rp = out.get("repredicted") or {}
    if "placed" in rp:
        for k in ("planned", "placed"):
            z = rp[k]
            w(f"  zone {k}: {z['zone_volume_ml']} ml, coverage {z['tumor_coverage_percent']} %, "
              f"minimal margin {z['minimal_margin_mm']} mm\n")
    cf = out.get("currents")
    if cf:
        w(f"  measured/predicted currents: conductivity scale {cf['conductivity_scale']:.2f}, "
          f"residual {cf['residual_rms_a']:.1f} A RMS\n")
    v = out.get("verdict")
    if v is not None:
        s = {True: "YES", False: "NO", None: "not decided (no pulse record)"}[v["success"]]
        w(f"technical success: {s}\n")
        for r in v["reasons"]:
            w(f"  - {r}\n")
    for n in out["notes"]:
        w(f"note: {n}\n")
    w("IRPlan is research software, not a certified medical device.\n")
