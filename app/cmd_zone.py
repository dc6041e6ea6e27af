"""``irplan zone PLAN.irplan.json``: predict the ablation zone, coverage and margin.

Prints a summary (or JSON with ``--json``): zone volume (ml), tumour coverage (%), minimal
margin (mm), per IRE pair the voltage, spacing and predicted current, warnings, timings.
``--out`` writes the zone mask (NIfTI/NRRD), ``--field-out`` the IRE |E| map (V/cm).
"""

from __future__ import annotations

import argparse
import json
import sys

from irplan.app.cli_types import finite_float
from irplan.planning.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", help="plan file (.irplan.json)")
    parser.add_argument("--grid-mm", type=finite_float(0, 5, lo_open=True, unit="mm"), default=1.0,
                        help="zone/solver grid spacing in mm (default 1.0; 2.0 = fast preview)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--out", metavar="zone.nii.gz", help="write the zone mask")
    parser.add_argument("--field-out", metavar="field.nii.gz",
                        help="IRE: write the max |E| over pairs (V/cm)")
    parser.add_argument("--threshold-v-per-cm",
                        type=finite_float(1, 1e5, unit="V/cm"), default=None,
                        help="IRE lethal field threshold (default 637 V/cm, Miklavcic 2000)")
    parser.add_argument("--ratio-v-per-cm", type=finite_float(1, 1e5, unit="V/cm"), default=None,
                        help="IRE default voltage = ratio x spacing (default 1500 V/cm)")
    parser.add_argument("--dynamic-ratio", type=finite_float(1, 100), default=None,
                        help="IRE: electroporation-dependent conductivity, sigma x RATIO above "
                             "the irreversible threshold (nonlinear, slower)")
    parser.add_argument("--heat-sink", action="store_true",
                        help="thermal: cut the cooled shell around vessels >= 3 mm")
    parser.add_argument("--heat-sink-shell-mm", type=finite_float(0, 20, unit="mm"), default=None,
                        help="thermal: cooled shell thickness (default 2 mm, model parameter)")
    parser.add_argument("--isotherm-c", type=finite_float(-200, 100, unit="degC"), default=None,
                        help="cryo: isotherm used as the zone (default the table's lethal one)")
    parser.add_argument("--tables", default=None,
                        help="extra thermal zone tables (JSON, format of thermal_tables.json)")
    parser.add_argument("--margin-grid-mm", type=finite_float(0, 5, unit="mm"), default=0.5,
                        help="margin analysis spacing in mm (0 = the tumour's own grid)")
    parser.add_argument("--preview", action="store_true",
                        help="fast preview (the GUI's live one): coverage and margin on the "
                             "masks' own grids (MAM within a quarter of the coarser voxel "
                             "diagonal + 0.25 mm of the exact analysis), IRE solver to "
                             "1e-4; combine with --grid-mm 2")
    parser.add_argument("--pairs", default=None, metavar="1-2,2-3",
                        help="IRE pulse pairs, 1-based (default: pairs <= 25 mm apart)")
    parser.add_argument("--padding-mm", type=finite_float(0, 100, unit="mm"), default=None,
                        help="IRE solver box padding around the electrodes (mm; default 20, "
                             "far-field boundary: doubling it moves the zone < 0.5 mm)")
    parser.add_argument("--setting", default=None, metavar="NAME",
                        help="IRE model setting: conservative (637 V/cm, default), human-fit "
                             "(550 V/cm), porcine-fit (350 V/cm); see resources/"
                             "zone_settings.json. --threshold-v-per-cm overrides it. Without "
                             "these flags: the model the plan records (key zone_model, set "
                             "in the GUI's zone dock), else conservative")
    parser.add_argument("--params", default=None, metavar="PARAMS.json",
                        help="calibrated parameters written by irplan calibrate --out (IRE "
                             "threshold, or a thermal zone scale)")
    parser.add_argument("--band", action="store_true",
                        help="IRE: also the inner/outer plausible zones (conservative .. "
                             "in vivo porcine fit) with the inner zone's coverage and margin")
    add_target_argument(parser)
    parser.add_argument("--conductivity", action="append", default=[], metavar="TISSUE=S_PER_M",
                        help="override a tissue conductivity (liver, tumor, blood, bile, fat, "
                             "muscle, bone, lung); repeatable")


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    """``--target LESION`` (issue 17), shared by zone, check, evaluate and report."""
    parser.add_argument("--target", default=None, metavar="LESION",
                        help="lesion the coverage, margin and tumour checks are for: tumor "
                             "(Tumour 1), tumor_2, ... (default: the plan's "
                             "target_structure, else tumor)")


def parse_pairs(text: str, n_needles: int) -> list[tuple[int, int]]:
    """'1-2,2-3' -> [(0, 1), (1, 2)]; InputError naming the bad item."""
    out: list[tuple[int, int]] = []
    for item in text.split(","):
        parts = item.strip().split("-")
        try:
            i, j = (int(v) for v in parts)
        except ValueError:
            raise InputError(f"--pairs: {item.strip()!r} is not of the form I-J") from None
        if not (1 <= i <= n_needles and 1 <= j <= n_needles) or i == j:
            raise InputError(f"--pairs: {item.strip()!r} does not name two of the {n_needles} "
                             "needles (1-based)")
        out.append((i - 1, j - 1))
    return out


def parse_conductivities(items: list[str]) -> dict[str, float] | None:
    """['tumor=0.3'] -> {'tumor': 0.3}; InputError naming the bad item."""
    from irplan.planning.conductivity import default_table

    known = default_table()
    out: dict[str, float] = {}
    for item in items:
        key, _, val = item.partition("=")
        key = key.strip()
        if key not in known:
            raise InputError(f"--conductivity {item}: unknown tissue {key!r} (known: "
                             f"{', '.join(known)})")
        try:
            out[key] = float(val)
        except ValueError:
            raise InputError(f"--conductivity {item}: {val!r} is not a number (S/m)") from None
        if not (0 < out[key] <= 100):   # finite; tissue 1e-3..1 S/m, blood ~0.7
            raise InputError(f"--conductivity {item}: must be a number in (0, 100] S/m")
    return out or None


def target_structures(plan, structures: dict, notes: list[str], source: str) -> dict:  # noqa: ANN001
    """The structures with "tumor" = the union of the plan's ``targets`` (coverage and
    margin are computed on it), else the plan's target lesion (``target_structure``, issue
    17), with a note; the other lesions are left out (not risk structures). An empty
    tumour is a stated note, never a silently missing coverage."""
    import numpy as np

    from irplan.planning.lesions import target_key
    from irplan.planning.lesions import target_structures as lesion_view
    from irplan.planning.structures import is_lesion_key, lesion_keys

    targets = list(plan.targets or [])
    if not targets:
        target = target_key(plan)
        several = len(lesion_keys(structures)) > 1
        structures = lesion_view(structures, target, f"{source}: target_structure")
        if target != "tumor" or several:
            from irplan.planning.lesions import target_display

            notes.append(f"coverage and margin are computed on the target lesion: "
                         f"{target_display(target)} ({target})")
    else:
        structures = {k: v for k, v in structures.items()
                      if k in targets or not is_lesion_key(k)}
    if targets:
        missing = [k for k in targets if k not in structures]
        if missing:
            raise InputError(f"{source}: targets: {missing[0]!r} has no mask in structures")
        first = structures[targets[0]]
        arr = (first.array != 0).astype(np.uint8)
        for key in targets[1:]:
            m = structures[key]
            if not m.same_geometry(first, tol_mm=1e-3):
                m = m.resample_like(first, "nearest")
            arr |= (m.array != 0).astype(np.uint8)
        structures = dict(structures)
        structures["tumor"] = first.with_array(arr)
        if targets != ["tumor"]:
            notes.append(f"coverage and margin are computed on the plan's targets: "
                         f"{', '.join(targets)}")
    tumor = structures.get("tumor")
    if tumor is not None and not np.any(tumor.array) \
            and not any("mask is empty" in n for n in notes):
        notes.append(f"{source}: the tumour mask is empty (no voxel): coverage and margin "
                     "cannot be computed")
    return structures


def run(args: argparse.Namespace) -> int:
    from irplan.io.atomic_write import check_output_path
    from irplan.io.masks import write_mask, write_volume_file
    from irplan.io.plan_file import load_plan, load_plan_structures
    from irplan.planning.zone import (
        PREVIEW_PADDING_MM,
        PREVIEW_SOLVER_TOL,
        ZoneOptions,
        predict_zone,
    )

    if args.margin_grid_mm is not None and args.margin_grid_mm < 0:
        raise InputError(f"--margin-grid-mm must be >= 0, got {args.margin_grid_mm}")
    from irplan.planning.lesions import plan_with_target

    plan = plan_with_target(load_plan(args.plan), args.target)
    structures, notes = load_plan_structures(plan)
    structures = target_structures(plan, structures, notes, args.plan)
    pairs = parse_pairs(args.pairs, len(plan.needles)) if args.pairs else None
    extra: dict = {}
    if args.preview:
        extra = {"margin_method": "preview", "solver_tol": PREVIEW_SOLVER_TOL,
                 "solver_amg": "rs-direct"}

    opts = ZoneOptions(threshold_v_per_cm=args.threshold_v_per_cm, pairs=pairs,
                       padding_mm=(PREVIEW_PADDING_MM if args.preview and args.padding_mm is None
                                   else args.padding_mm), setting=args.setting,
                       params_path=args.params, band=args.band,
                       conductivity_s_per_m=parse_conductivities(args.conductivity),
                       ratio_v_per_cm=args.ratio_v_per_cm, dynamic_ratio=args.dynamic_ratio,
                       heat_sink=args.heat_sink, heat_sink_shell_mm=args.heat_sink_shell_mm,
                       isotherm_c=args.isotherm_c, tables_path=args.tables,
                       margin_fine_mm=args.margin_grid_mm or None, **extra)
    if args.field_out and plan.modality != "IRE":
        raise InputError("--field-out: only IRE plans have a field map")
    for out_arg in (args.out, args.field_out):
        if out_arg:
            check_output_path(out_arg)   # a bad output path fails before the solve
    res = predict_zone(plan, None, structures, grid_mm=args.grid_mm, options=opts)
    res.warnings[:0] = notes
    if args.out and not res.converged:
        raise InputError("the dynamic-conductivity solve did not converge (see irplan zone "
                         "--json: solver.dynamic); the zone is not final and was not written "
                         f"to {args.out}; try a smaller --dynamic-ratio or the static model")
    if args.out:
        write_mask(res.zone, args.out)
    if args.field_out:
        if res.field_v_per_cm is None:
            raise InputError("--field-out: only IRE plans have a field map")
        write_volume_file(res.field_v_per_cm, args.field_out)
    d = res.to_dict()
    if args.json:
        json.dump(d, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    out = sys.stdout
    out.write(f"{plan.modality} zone: {d['zone_volume_ml']:.2f} ml (grid {args.grid_mm:g} mm"
              f"{', preview margin' if args.preview else ''})\n")
    if d["tumor_coverage_percent"] is None:
        out.write("tumour coverage and margin: not computed (no non-empty tumour mask)\n")
    else:
        out.write(f"tumour coverage: {d['tumor_coverage_percent']:.1f} %   minimal margin: "
                  f"{d['minimal_margin_mm']:.1f} mm (required {plan.margin_mm:g} mm)   "
                  f"tumour + margin shell covered: {d['shell_coverage_percent']:.1f} %\n")
    st = d.get("setting") or {}
    out.write(f"model setting: {st.get('name', '?')}\n")
    if not d.get("converged", True):
        out.write("NOT CONVERGED: the dynamic-conductivity solve did not converge; this zone "
                  "is not a final result\n")
    if plan.modality == "IRE":
        out.write(f"threshold {d['threshold_v_per_cm']:g} V/cm\n")
        for k in ("inner", "outer"):
            b = (d.get("band") or {}).get(k)
            if b:
                extra = (f", coverage {b['tumor_coverage_percent']:.1f} %, minimal margin "
                         f"{b['minimal_margin_mm']:.1f} mm"
                         if b.get("minimal_margin_mm") is not None else "")
                out.write(f"  band {k}: {b['setting']} ({b['threshold_v_per_cm']:g} V/cm) "
                          f"{b['zone_volume_ml']:.2f} ml{extra}\n")
        for p in d["pairs"]:
            i, j = p["electrodes"]
            static = (f" (static conductivity {p['current_static_a']:.1f} A)"
                      if "current_static_a" in p else "")
            out.write(f"  pair {i + 1}-{j + 1}: {p['voltage_v']:.0f} V, spacing "
                      f"{p['spacing_mm']:.1f} mm, current {p['current_a']:.1f} A{static}\n")
    else:
        for t in d["tables"]:
            out.write(f"  table {t['id']}: {t['source']}\n")
    for r in d["risk_structures"]:
        out.write(f"  {r['key']}: {r['volume_ml']:.2f} ml in zone ({r['note']})\n")
    for w in d["warnings"]:
        out.write(f"warning: {w}\n")
    out.write(f"time {d['timings_s'].get('total_s', 0):.2f} s. IRPlan is research software, "
              "not a certified medical device.\n")
    return 0
