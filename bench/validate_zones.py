"""Published ablation zones vs IRPlan's predictions (issue 14). Prints tables, no asserts.

    .venv/bin/python bench/validate_zones.py [--grid-mm 1.0] [--quick]

1. IRE, every record of resources/zone_validation.json with a reproducible two-electrode
   configuration: published width x depth x height (mm, mean +/- SD) against the zone of
   every named model setting (resources/zone_settings.json), relative error per axis, and
   the pair current (static, and the pair-current model while pulsing).
2. The static threshold that fits the porcine records best (RMS relative axis error).
3. Currents of the clinical standard (1500 V/cm, 15 and 20 mm, 19 G, 20 mm exposure).
4. Padding study: zone extents for 10-45 mm padding, far-field vs insulated box.
5. Dynamic (electroporation-dependent) conductivity: damped fixed point, iterations,
   residual, current, time.
6. Thermal records against the thermal zone tables (resources/thermal_tables.json).
The load average is printed: the machine is shared, CPU times are the stable figure.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from irplan.planning import ire_field as ire
from irplan.planning import zone_validation as zv
from irplan.planning.conductivity import PAIR_CURRENT_MODEL
from irplan.planning.zone_settings import settings

AXES = ("width_mm", "depth_mm", "height_mm")


def _pm(v) -> str:
    if not isinstance(v, list):
        return "-"
    return f"{v[0]:.0f}" + (f"+/-{v[1]:.0f}" if len(v) > 1 and v[1] is not None else "")


def ire_table(grid_mm: float) -> list[tuple[dict, zv.IreConfigField]]:
    print(f"\n## IRE: published vs predicted (static conductivity, {grid_mm:g} mm grid, "
          f"far-field box, padding {ire.DEFAULT_PADDING_MM:g} mm)\n")
    print("| record | setting | width mm | depth mm | height mm | errors | current A "
          "(static / pulsing) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    out = []
    for rec in zv.ire_zone_records():
        t0 = time.process_time()
        f = zv.ire_config_field(rec, grid_mm)
        cfg = rec["config"]
        fac = ire.pair_current_factor(cfg["spacing_mm"], cfg["exposure_mm"],
                                      cfg["diameter_mm"] / 2, cfg["voltage_v"], 70 * 70e-6,
                                      0.12, PAIR_CURRENT_MODEL)
        cpu = time.process_time() - t0
        pub = rec["published"]
        print(f"| {rec['id']} | published | {_pm(pub.get('width_mm'))} | "
              f"{_pm(pub.get('depth_mm'))} | {_pm(pub.get('height_mm'))} | | |")
        for s in settings():
            ax = zv.ire_axes_mm(f.field_v_per_cm, s.threshold_v_per_cm)
            err = zv.relative_errors(ax, pub)
            errs = ", ".join(f"{k[0]} {100 * v:+.0f} %" for k, v in err.items())
            print(f"| | {s.name} ({s.threshold_v_per_cm:g}) | {ax['width_mm']:.1f} | "
                  f"{ax['depth_mm']:.1f} | {ax['height_mm']:.1f} | {errs} | "
                  f"{f.current_a:.1f} / {f.current_a * fac.factor:.1f} |")
        print(f"<!-- {rec['id']}: solve + current model {cpu:.1f} s CPU -->")
        out.append((rec, f))
    return out


def fit(fields: list[tuple[dict, zv.IreConfigField]]) -> None:
    t, rms = zv.fit_threshold([(r, f.field_v_per_cm) for r, f in fields],
                              np.arange(250.0, 700.0, 5.0))
    print(f"\nbest static threshold for the porcine records: {t:.0f} V/cm, RMS relative axis "
          f"error {100 * rms:.1f} %")


def currents() -> None:
    print("\n## Pair current, clinical standard (1500 V/cm, 19 G, 20 mm exposure, liver "
          "0.12 S/m, 90 x 90 us)\n")
    print("| spacing mm | V | static A | pulsing A | factor | iterations | residual |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rec = zv.record("clinical-target-current")
    for d in (15.0, 20.0):
        v = 1500.0 * d / 10.0
        f = zv.ire_config_field(rec | {"config": rec["config"] | {"spacing_mm": d}}, 1.0,
                                voltage_v=v)
        fac = ire.pair_current_factor(d, 20.0, ire.DEFAULT_RADIUS_MM, v, 90 * 90e-6, 0.12,
                                      PAIR_CURRENT_MODEL)
        print(f"| {d:.0f} | {v:.0f} | {f.current_a:.1f} | {f.current_a * fac.factor:.1f} | "
              f"{fac.factor:.2f} | {fac.iterations} | {fac.residual:.1e} |")


def padding_study(grid_mm: float) -> None:
    print(f"\n## Padding study (Ben-David 1.5 cm / 2250 V, {grid_mm:g} mm grid): width x "
          "depth x height (mm)\n")
    print("| box | padding mm | 350 V/cm | 637 V/cm | current A | CPU s |")
    print("| --- | --- | --- | --- | --- | --- |")
    rec = zv.record("bendavid2012-15mm-2250v")
    for boundary, pads in (("farfield", (10.0, 20.0, 40.0)), ("insulated", (15.0, 30.0, 45.0))):
        for pad in pads:
            t0 = time.process_time()
            f = zv.ire_config_field(rec, grid_mm, padding_mm=pad, boundary=boundary)
            cells = []
            for t in (350.0, 637.0):
                e = zv.zone_extents_mm(f.field_v_per_cm, t)
                cells.append(" x ".join(f"{v:.2f}" for v in e))
            print(f"| {boundary} | {pad:g} | {cells[0]} | {cells[1]} | {f.current_a:.2f} | "
                  f"{time.process_time() - t0:.1f} |")


def dynamic_study() -> None:
    print("\n## Dynamic conductivity (Šel form, sigma x ratio above 637 V/cm), Ben-David "
          "1.5 cm / 2250 V, 2 mm grid\n")
    print("| ratio | damping | converged | iterations | residual | current A | zone ml | "
          "CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    els = [ire.Electrode([x, 0.0, 0.0], [0, 0, -1], 20.0, 0.635, shaft_mm=100.0)
           for x in (-7.5, 7.5)]
    grid = ire.solver_grid(els, 2.0)
    sigma = np.full(grid.array.shape, 0.12)
    solver = ire.FieldSolver(grid, els, sigma, boundary="farfield")
    for ratio in (3.0, 4.0, 6.0):
        for damping, adaptive in ((1.0, False), (ire.DYNAMIC_DAMPING, True)):
            t0 = time.process_time()
            o = ire.solve_nonlinear_pair(
                solver, 0, 1, 2250.0, sigma,
                lambda s, e, r=ratio: ire.dynamic_sigma(s, e, r, 362.0, 637.0),
                max_iterations=12 if not adaptive else 40, damping=damping, adaptive=adaptive)
            vol = float((o.field_v_per_cm >= 637.0).sum()) * 8e-3
            print(f"| {ratio:g} | {'undamped' if not adaptive else f'{damping:g} adaptive'} | "
                  f"{o.converged} | {o.iterations} | {o.residual:.1e} | {o.current_a:.1f} | "
                  f"{vol:.2f} | {time.process_time() - t0:.1f} |")


def thermal_table() -> None:
    from irplan.planning import thermal_zone as tz

    print("\n## Thermal: published vs the zone tables (length x width mm)\n")
    print("| record | published | table | predicted | errors |")
    print("| --- | --- | --- | --- | --- |")
    tables = tz.load_tables()
    for rec in zv.load_records():
        if rec["modality"] == "IRE" or "zone" not in rec["use"]:
            continue
        pub = rec["published"]
        cfg = rec.get("config", {})
        for t in tables.values():
            if t.modality != rec["modality"]:
                continue
            power = cfg.get("power_w")
            if power is None and t.modality == "RFA":
                power = max(float(r["power_w"]) for r in t.rows)
            try:
                length, width, _ = tz.interpolate(t, power, cfg.get("time_s"),
                                                  cfg.get("isotherm_c"))
                pred = f"{length:.1f} x {width:.1f}"
                err = zv.relative_errors({"length_mm": length, "width_mm": width}, pub)
                errs = ", ".join(f"{k[0]} {100 * v:+.0f} %" for k, v in err.items())
            except Exception as exc:  # noqa: BLE001 - outside the table: say so
                pred, errs = f"not predicted ({str(exc)[:60]})", ""
            print(f"| {rec['id']} | {_pm(pub.get('length_mm'))} x {_pm(pub.get('width_mm'))} "
                  f"| {t.id} ({t.kind}) | {pred} | {errs} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid-mm", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="skip the padding and dynamic studies")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    fields = ire_table(args.grid_mm)
    fit(fields)
    currents()
    thermal_table()
    if not args.quick:
        padding_study(args.grid_mm)
        dynamic_study()


if __name__ == "__main__":
    main()
