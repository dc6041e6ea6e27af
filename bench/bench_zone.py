"""Benchmark of the predicted ablation zone (issue 6). Prints times, peak memory, accuracy.

    .venv/bin/python bench/bench_zone.py [PHANTOM_CASE_DIR]

Without a folder the standard phantom (seed 0) is written to a temporary folder first.
Times are the best of ``REPEATS`` runs, wall clock and process CPU (the machine is shared:
the load average is printed; CPU time is the figure that does not depend on the others).
Targets (issue 6, 2-core machine): 6 pairs <= 3 s, coarse 2 mm preview <= 0.3 s,
thermal zone + coverage <= 50 ms.
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
from irplan.planning.plan import Needle, Plan, ThermalParams
from irplan.planning.volume import Volume
from irplan.planning.zone import ZoneOptions, predict_zone

REPEATS = 3


def timed(fn, repeats: int = REPEATS):
    """(result, best wall s, best cpu s, peak traced MB of the first run)."""
    tracemalloc.start()
    res = fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    best_w, best_c = np.inf, np.inf
    for _ in range(repeats):
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
    no_margin = ZoneOptions(compute_margin=False)
    # every pair pulsed (the app's default pulses only pairs <= 25 mm apart: 6 of them)
    all15 = ZoneOptions(compute_margin=False, pairs=list(itertools.combinations(range(6), 2)))
    for label, p, grid_mm, opts in (
            ("4 electrodes (6 pairs), 1 mm, zone only", plan, 1.0, no_margin),
            ("4 electrodes (6 pairs), 1 mm, + margin 0.5 mm", plan, 1.0, ZoneOptions()),
            ("4 electrodes (6 pairs), 2 mm preview", plan, 2.0, no_margin),
            ("4 electrodes (6 pairs), 2 mm preview + margin", plan, 2.0, preview),
            ("6 electrodes (15 pairs), 1 mm, zone only", ring_plan(plan, centre, 6, 15.0), 1.0,
             all15),
            ("6 electrodes (15 pairs), 2 mm preview", ring_plan(plan, centre, 6, 15.0), 2.0,
             all15)):
        r, w, c, peak = timed(lambda p=p, g=grid_mm, o=opts: predict_zone(p, None, structures, g, o))
        extra = f"{r.volume_ml:.2f} ml, {len(r.pairs)} pairs, nodes {r.zone.array.size}"
        if r.margin is not None:
            extra += (f", coverage {r.margin.tumor_coverage_percent:.1f} %, "
                      f"MAM {r.margin.minimal_margin_mm:.1f} mm")
        line(label, w, c, peak, extra)

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
                             ZoneOptions(heat_sink=True, margin_fine_mm=None), structures)):
        r, w, c, peak = timed(lambda o=opts, s=st: predict_zone(mwa, None, s, 1.0, o))
        extra = f"{r.volume_ml:.2f} ml"
        if r.margin is not None:
            extra += (f", coverage {r.margin.tumor_coverage_percent:.1f} %, "
                      f"MAM {r.margin.minimal_margin_mm:.1f} mm")
        line(label, w, c, peak, extra)

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
