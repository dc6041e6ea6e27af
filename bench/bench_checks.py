"""Time the live safety checks of a 6-electrode IRE plan on the phantom after a drag.

Usage: python bench/bench_checks.py [PHANTOM_DIR]   (default: writes one to a temp folder)

Prints: load time, one-off distance-map preparation per structure, and the time to
re-evaluate every check after each of 60 drag steps of one electrode (median, p95, max;
target <= 30 ms), with the array kept parallel (locked) and unlocked.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from irplan.io.plan_file import load_plan, load_plan_image, load_plan_structures
from irplan.planning.commands import UndoStack, move_array_electrode
from irplan.planning.ire_array import plan_ire_array
from irplan.planning.plan import Plan
from irplan.planning.safety import SafetyChecker, structure_role


def main() -> None:
    if len(sys.argv) > 1:
        case = Path(sys.argv[1])
    else:
        from irplan.io.phantom_writer import write_phantom_case

        case = Path(tempfile.mkdtemp(prefix="bench_checks_")) / "case"
        t = time.perf_counter()
        write_phantom_case(case, seed=0)
        print(f"phantom written in {time.perf_counter() - t:.1f} s: {case}")
    t = time.perf_counter()
    ref = load_plan(case / "plan.irplan.json")
    ct = load_plan_image(ref)
    masks, _ = load_plan_structures(ref, ct)
    print(f"plan + CT {ct.size_xyz} @ {ct.spacing_mm.round(2).tolist()} mm + "
          f"{len(masks)} masks loaded in {time.perf_counter() - t:.1f} s")

    checker = SafetyChecker(masks, ct)
    t_all = time.perf_counter()
    for key in masks:
        if structure_role(key) == "target":
            continue
        t = time.perf_counter()
        checker.field(key)
        sd = getattr(checker.field(key), "sd", None)
        print(f"  distance map {key:14s} {(time.perf_counter() - t) * 1e3:8.0f} ms "
              f"(crop {sd.shape if sd is not None else 'none: inside/outside sampling only'})")
    t = time.perf_counter()
    for key in masks:
        if structure_role(key) == "vessel":
            checker.class_fields(key)
    print(f"  vessel calibre classes    {(time.perf_counter() - t) * 1e3:8.0f} ms")
    checker.tumour_points()
    print(f"prepare total {(time.perf_counter() - t_all):.2f} s (once per case)")

    direction = ref.needles[0].direction
    needles = plan_ire_array(masks["tumor"], "2x3", direction, body=masks.get("body"))
    plan = Plan(modality="IRE", image=ref.image, needles=needles, ire=ref.ire)
    stack = UndoStack(plan)
    checker.check(plan)  # warm-up
    for locked in (True, False):
        times = []
        cpu = []
        counts = []
        tip0 = plan.needles[0].tip_lps_mm.copy()
        entry0 = plan.needles[0].entry_lps_mm.copy()
        for k in range(60):
            offset = np.array([0.5 * np.sin(k / 5.0), 0.3 * k / 60.0, 0.2]) * 4.0
            stack.push(move_array_electrode(plan, 0, entry_lps_mm=entry0 + offset * 3,
                                            tip_lps_mm=tip0 + offset * 0.2, locked=locked,
                                            merge_key="drag"))
            t = time.perf_counter()
            c = time.thread_time()
            findings = checker.check(plan)
            cpu.append((time.thread_time() - c) * 1e3)
            times.append((time.perf_counter() - t) * 1e3)
            counts.append(len(findings))
        stack.undo()
        ms = np.array(times)
        print(f"re-check after drag ({'locked' if locked else 'unlocked'}, 6 electrodes, "
              f"{len(masks)} structures, CT air check): median {np.median(ms):.1f} ms, "
              f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms "
              f"(target <= 30 ms); CPU median {np.median(cpu):.1f} ms (wall time includes "
              f"waiting for the shared CPU: load {os.getloadavg()[0]:.1f}); "
              f"findings per check {min(counts)}-{max(counts)}")


if __name__ == "__main__":
    main()
