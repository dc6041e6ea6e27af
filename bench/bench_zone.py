"""Benchmark of the predicted ablation zone (issue 6). Prints times, peak memory, accuracy.

    .venv/bin/python bench/bench_zone.py [PHANTOM_CASE_DIR]

Without a folder the standard phantom (seed 0) is written to a temporary folder first.
Times are the best of ``REPEATS`` runs, wall clock and process CPU (the machine is shared:
the load average is printed; CPU time is the figure that does not depend on the others).
Targets (issue 6, 2-core machine): 6 pairs <= 3 s, coarse 2 mm preview <= 0.3 s,
thermal zone + coverage <= 50 ms. "live" lines are the GUI's coarse preview
(``ZoneOptions.live_preview``: fast margin of planning/margin_preview.py, CG to 1e-4);
their ratio to the exact path is measured in the same process, and the preview MAM is
compared with the exact 0.5 mm analysis of the same zone. The template table gives the
predicted coverage of each IRE template on the phantom tumour with the previous default
spacing (15 mm up to 20 mm diameter, 20 mm above) and the current one (ire_array.py).
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from irplan.io.plan_file import load_plan, load_plan_structures
from irplan.planning import ire_field as ire
from irplan.planning.ire_array import default_spacing_mm, plan_ire_array, plane_axes
from irplan.planning.margin import compute_margin
from irplan.planning.margin_preview import preview_mam_bound_mm
from irplan.planning.plan import Needle, Plan, ThermalParams
from irplan.planning.volume import Volume
from irplan.planning.zone import ZoneOptions, predict_zone

REPEATS = 3


def timed(fn, repeats: int = REPEATS, cached: bool = False):
    """(result, best wall s, best cpu s, peak traced MB of the first run). The IRE solver
    cache is cleared before every run unless ``cached``."""
    tracemalloc.start()
    ire.clear_solver_cache()
    res = fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    best_w, best_c = np.inf, np.inf
    for _ in range(repeats):
        if not cached:
            ire.clear_solver_cache()
        w, c = time.perf_counter(), time.process_time()
        res = fn()
        best_w = min(best_w, time.perf_counter() - w)
        best_c = min(best_c, time.process_time() - c)
    return res, best_w, best_c, peak


def ring_plan(plan: Plan, centre: np.ndarray, n: int, radius_mm: float) -> Plan:
    """n parallel electrodes on a ring around ``centre``, direction of the plan's first."""
    d = plan.needles[0].direction
    u = np.cross(d, [1.0, 0, 0])
    if np.linalg.norm(u) < 0.1:
        u = np.cross(d, [0, 1.0, 0])
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    needles = []
    for k in range(n):
        a = 2 * np.pi * k / n
        tip = centre + 10.0 * d + radius_mm * (np.cos(a) * u + np.sin(a) * v)
        needles.append(Needle("ire-19g-monopolar", tip, tip - 150.0 * d, exposure_mm=20.0,
                              name=f"E{k + 1}"))
    out = Plan(modality="IRE", needles=needles, margin_mm=plan.margin_mm)
    out.ire.voltage_v = None        # ratio x spacing, capped at 3000 V
    return out


def line(label: str, wall: float, cpu: float, peak: float, extra: str = "") -> None:
    print(f"  {label:44s} wall {wall:7.3f} s  cpu {cpu:7.3f} s  peak {peak:7.1f} MB  {extra}")


def ratio(label: str, new: tuple[float, float], old: tuple[float, float]) -> None:
    print(f"  ratio {label}: wall {new[0] / old[0]:.2f}, cpu {new[1] / old[1]:.2f}")


def preview_accuracy(label: str, res, tumor: Volume, required_mm: float) -> None:
    """Preview margin of ``res`` against the exact 0.5 mm analysis of the same zone."""
    ex = compute_margin(tumor, res.zone, required_mm, fine_spacing_mm=0.5)
    pv = res.margin
    bound = preview_mam_bound_mm(tumor.spacing_mm, res.zone.spacing_mm)
    print(f"  preview vs exact 0.5 mm ({label}): MAM {pv.minimal_margin_mm:+.2f} vs "
          f"{ex.minimal_margin_mm:+.2f} mm (diff {pv.minimal_margin_mm - ex.minimal_margin_mm:+.2f},"
          f" stated bound {bound:.2f}), MAM points "
          f"{np.linalg.norm(pv.mam_point_lps_mm - ex.mam_point_lps_mm):.1f} mm apart, coverage "
          f"{pv.tumor_coverage_percent:.1f} vs {ex.tumor_coverage_percent:.1f} %, shell "
          f"{pv.shell_coverage_percent:.1f} vs {ex.shell_coverage_percent:.1f} %")


def template_table(plan: Plan, structures: dict[str, Volume]) -> None:
    """Predicted coverage of each IRE template on the phantom tumour, previous and current
    default spacing (1 mm grid, exact margin; direction of the reference plan)."""
    tumor = structures["tumor"]
    d = plan.needles[0].direction
    kji = np.argwhere(tumor.array)
    pts = tumor.index_to_lps(kji[:, ::-1].astype(float))
    u, v = plane_axes(d)
    vox = float(np.min(tumor.spacing_mm))
    diam = max(float(np.ptp(pts @ u)), float(np.ptp(pts @ v))) + vox
    print(f"IRE templates on the phantom tumour (in-plane diameter {diam:.1f} mm, 1 mm grid, "
          "exact margin, voltage 1500 V/cm x spacing <= 3000 V):")
    print(f"  {'template':9s} {'previous default':>34s}   {'current default':>34s}")
    for tpl in ("pair", "triangle", "square", "2x3", "hexagon"):
        cells = []
        for spacing in (15.0 if diam <= 20.0 else 20.0, default_spacing_mm(diam, tpl)):
            needles = plan_ire_array(tumor, tpl, d, spacing, margin_mm=plan.margin_mm,
                                     body=structures.get("body"))
            p = Plan(modality="IRE", needles=needles, margin_mm=plan.margin_mm)
            c0 = time.process_time()
            r = predict_zone(p, None, structures, 1.0, ZoneOptions())
            m = r.margin
            cells.append(f"{spacing:4.1f} mm: {m.tumor_coverage_percent:5.1f} %, MAM "
                         f"{m.minimal_margin_mm:+5.1f} mm ({time.process_time() - c0:.1f} s)")
        print(f"  {tpl:9s} {cells[0]:>34s}   {cells[1]:>34s}")


def two_rod_accuracy() -> None:
    d_mm, a_mm, v = 15.0, ire.DEFAULT_RADIUS_MM, 2250.0
    print("two infinite rods (slab with mirror faces), d 15 mm, a 0.535 mm, 2250 V:")
    for h in (2.0, 1.0, 0.5):
        for sub in (True, False):
            w = 60.0
            n = int(round(2 * w / h)) + 1
            grid = Volume(np.zeros((3, n, n), np.uint8), [-w, -w, 0.0], np.full(3, h))
            els = [ire.Electrode([x, 0, 3 * h], [0, 0, 1], 4 * h, a_mm) for x in (-7.5, 7.5)]
            s = ire.FieldSolver(grid, els, np.full(grid.array.shape, 0.12), subvoxel=sub)
            u = s.pair_potentials(0, 1, v)
            f = grid.with_array(s.field_magnitude_v_per_cm(u))
            xs = np.array([-4.0, -2.0, 0.0, 2.0, 4.0]) if h <= 1 else np.array([-2.0, 0, 2.0])
            num = f.value_at_lps(np.stack([xs, 0 * xs, 0 * xs + h], 1))
            ana = v / (2 * np.log((d_mm - a_mm) / a_mm)) * (
                1 / (d_mm / 2 - xs) + 1 / (d_mm / 2 + xs)) * 10
            i_l = s.current_a(u, 0) / (3 * h * 1e-3)
            i_a = np.pi * 0.12 * v / np.log((d_mm - a_mm) / a_mm)
            print(f"  h {h} mm {'sub-voxel' if sub else 'staircase'}: max |E| error "
                  f"{100 * np.abs(num / ana - 1).max():.2f} % (|x| <= {xs.max():g} mm), "
                  f"I/L error {100 * (i_l / i_a - 1):+.2f} %")


def ben_david() -> None:
    print("Ben-David case: 2 electrodes 15 mm, 20 mm exposure, 2250 V, liver 0.12 S/m "
          "(porcine in vivo 30 x 17 x 30 mm):")
    els = [ire.Electrode([x, 0, 0], [0, 0, -1], 20.0, ire.DEFAULT_RADIUS_MM, 100.0)
           for x in (-7.5, 7.5)]
    for thr, dyn in ((637.0, None), (680.0, None), (637.0, 3.0)):
        ire.clear_solver_cache()
        g = ire.solver_grid(els, 1.0)
        c = time.process_time()
        r = ire.solve_ire(g, els, np.full(g.array.shape, 0.12), voltages_v=2250.0,
                          threshold_v_per_cm=thr, dynamic_ratio=dyn)
        kji = np.argwhere(r.zone.array)
        ext = (kji.max(0) - kji.min(0) + 1)[::-1] * 1.0
        print(f"  threshold {thr:.0f} V/cm, {'static' if dyn is None else f'dynamic x{dyn:g}'}: "
              f"length {ext[0]:.0f} x width {ext[1]:.0f} x depth {ext[2]:.0f} mm, "
              f"{r.zone_volume_ml:.2f} ml, current {r.pairs[0].current_a:.1f} A, "
              f"cpu {time.process_time() - c:.1f} s")


def main() -> int:
    if len(sys.argv) > 1:
        case = Path(sys.argv[1])
    else:
        from irplan.io.phantom_writer import write_phantom_case

        case = Path(tempfile.mkdtemp()) / "case"
        print(f"writing the phantom case to {case} ...")
        write_phantom_case(case, seed=0)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    plan = load_plan(case / "plan.irplan.json")
    structures, _ = load_plan_structures(plan)
    tumor = structures["tumor"]
    kji = np.argwhere(tumor.array)
    centre = tumor.index_to_lps(kji.mean(axis=0)[::-1])

    print("IRE (conductivity from the phantom's masks, threshold 637 V/cm):")
    preview = ZoneOptions(margin_fine_mm=None)
    live = ZoneOptions.live_preview()
    times: dict[str, tuple[float, float]] = {}
    no_margin = ZoneOptions(compute_margin=False)
    # every pair pulsed (the app's default pulses only pairs <= 25 mm apart: 6 of them)
    all15 = ZoneOptions(compute_margin=False, pairs=list(itertools.combinations(range(6), 2)))
    for label, p, grid_mm, opts in (
            ("4 electrodes (6 pairs), 1 mm, zone only", plan, 1.0, no_margin),
            ("4 electrodes (6 pairs), 1 mm, + margin 0.5 mm", plan, 1.0, ZoneOptions()),
            ("4 electrodes (6 pairs), 2 mm preview", plan, 2.0, no_margin),
            ("4 electrodes (6 pairs), 2 mm preview + margin", plan, 2.0, preview),
            ("4 electrodes (6 pairs), 2 mm live (fast margin)", plan, 2.0, live),
            ("6 electrodes (15 pairs), 1 mm, zone only", ring_plan(plan, centre, 6, 15.0), 1.0,
             all15),
            ("6 electrodes (15 pairs), 2 mm preview", ring_plan(plan, centre, 6, 15.0), 2.0,
             all15)):
        r, w, c, peak = timed(lambda p=p, g=grid_mm, o=opts: predict_zone(p, None, structures, g, o))
        times[label] = (w, c)
        extra = f"{r.volume_ml:.2f} ml, {len(r.pairs)} pairs, nodes {r.zone.array.size}"
        if r.margin is not None:
            extra += (f", coverage {r.margin.tumor_coverage_percent:.1f} %, "
                      f"MAM {r.margin.minimal_margin_mm:.1f} mm")
        line(label, w, c, peak, extra)
        if opts is live:
            live_res = r
    for grid_mm, opts in ((2.0, live), (1.0, ZoneOptions())):
        # threshold box edited: same electrodes and conductivity, the solved system is reused
        predict_zone(plan, None, structures, grid_mm, opts)
        r, w, c, peak = timed(lambda g=grid_mm, o=opts: predict_zone(
            plan, None, structures, g, ZoneOptions(**{**o.__dict__, "threshold_v_per_cm":
                                                      680.0})), cached=True)
        line(f"threshold changed, {grid_mm:g} mm {'live' if opts is live else '+ margin'}",
             w, c, peak, f"{r.volume_ml:.2f} ml (solver cached)")
    ratio("live / 2 mm preview + exact margin on the tumour grid",
          times["4 electrodes (6 pairs), 2 mm live (fast margin)"],
          times["4 electrodes (6 pairs), 2 mm preview + margin"])
    preview_accuracy("IRE 2 mm zone", live_res, tumor, plan.margin_mm)

    print("thermal (MWA 100 W x 600 s, one antenna through the tumour centre):")
    d = plan.needles[0].direction
    tip = centre + 18.0 * d
    mwa = Plan(modality="MWA", needles=[Needle("mwa-14g", tip, tip - 120 * d)],
               thermal=ThermalParams(power_w=100.0, time_s=600.0), margin_mm=plan.margin_mm)
    tumor_only = {"tumor": tumor}
    for label, opts, st in (("zone only", ZoneOptions(compute_margin=False), tumor_only),
                            ("zone + coverage (tumour grid)", preview, tumor_only),
                            ("zone + coverage (0.5 mm)", ZoneOptions(), tumor_only),
                            ("zone + heat sink + coverage (tumour grid)",
                             ZoneOptions(heat_sink=True, margin_fine_mm=None), structures),
                            ("live: zone + fast coverage", live, tumor_only),
                            ("live: zone + heat sink + fast coverage",
                             ZoneOptions.live_preview(heat_sink=True), structures)):
        r, w, c, peak = timed(lambda o=opts, s=st: predict_zone(mwa, None, s, 1.0, o))
        times[label] = (w, c)
        if opts is live:
            live_res = r
        extra = f"{r.volume_ml:.2f} ml"
        if r.margin is not None:
            extra += (f", coverage {r.margin.tumor_coverage_percent:.1f} %, "
                      f"MAM {r.margin.minimal_margin_mm:.1f} mm")
        line(label, w, c, peak, extra)
    ratio("live / exact coverage on the tumour grid", times["live: zone + fast coverage"],
          times["zone + coverage (tumour grid)"])
    ratio("live heat sink / exact, heat sink", times["live: zone + heat sink + fast coverage"],
          times["zone + heat sink + coverage (tumour grid)"])
    preview_accuracy("MWA 1 mm zone", live_res, tumor, plan.margin_mm)

    template_table(plan, structures)
    two_rod_accuracy()
    ben_david()
    try:
        import resource

        print(f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
