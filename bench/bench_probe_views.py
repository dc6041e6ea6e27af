"""Needle-aligned (probe's eye) views: cost of following a needle drag and of scrolling
the bull's-eye (prints figures; not a test).

The demo case with its reference IRE plan in a 1600x1000 main window with the probe dock
(app/probe_panel.py); electrode 1 selected. Live zone prediction is switched off so the
figures are the probe views' own.

1. Drag: 40 tip moves of 0.5 mm (one merged undo step, as a mouse drag makes); per move
   the panel refresh (geometry, overlays of the three views) plus the render of the three
   views, timed around exactly those calls.
2. Scroll: 60 bull's-eye steps of 1 mm; per step the new slice and the render of the
   bull's-eye and both in-plane views (their depth line moves).

Wall time and CPU time of the GUI thread (time.thread_time) per step, median and max;
process CPU time (time.process_time, all threads) of each loop; the load average.
Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python bench/bench_probe_views.py``.
"""

from __future__ import annotations

import os
import statistics
import time


def main() -> None:
    import numpy as np
    from PySide6.QtTest import QTest

    from irplan.app.demo import demo_case
    from irplan.app.gui_main import make_app
    from irplan.app.main_window import MainWindow
    from irplan.app.probe_panel import install_probe_views
    from irplan.io.plan_file import load_plan, load_plan_image, load_plan_structures

    make_app()
    case = demo_case()
    win = MainWindow(restore_state=False)
    win.headless = True
    win.resize(1600, 1000)
    win.show()
    QTest.qWaitForWindowExposed(win)
    panel = install_probe_views(win.ctx)
    zone_panel = getattr(win, "zone_panel", None)
    if zone_panel is not None:
        zone_panel.live_check.setChecked(False)
    ref = load_plan(case / "plan.irplan.json")
    ct = load_plan_image(ref)
    masks, _ = load_plan_structures(ref, ct)
    win.show_case(ct, masks, plan=ref, title="demo")
    win.wait_for_surfaces(120)
    win.tasks.wait_idle(240)
    tools = win.ctx.services.session           # the plan session: selection, edits, undo
    tools.lock_parallel = False
    tools.select(0)
    QTest.qWait(200)
    panel.refresh()
    panel.render_now()
    w, h = panel.view_a.display_size()
    print(f"probe views: 3 x {w}x{h} px, load average {os.getloadavg()}")

    def timed(step, n: int, before=None) -> tuple[list[float], list[float], float]:
        """Per call of ``step(k)``: wall s, GUI-thread CPU s; process CPU s of the loop
        (``before(k)`` runs untimed ahead of each step)."""
        walls, cpus = [], []
        p0 = time.process_time()
        for k in range(n):
            if before is not None:
                before(k)
            t0, c0 = time.perf_counter(), time.thread_time()
            step(k)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.thread_time() - c0)
            QTest.qWait(1)
        return walls, cpus, time.process_time() - p0

    def report(name: str, unit: str, res: tuple[list[float], list[float], float]) -> None:
        walls, cpus, proc = res
        print(f"{name}: per {unit} wall median {1e3 * statistics.median(walls):.1f} ms, max "
              f"{1e3 * max(walls):.1f} ms; GUI-thread CPU median "
              f"{1e3 * statistics.median(cpus):.1f} ms; process CPU {proc:.2f} s for "
              f"{len(walls)} steps")

    tip0 = tools.plan.needles[0].tip_lps_mm.copy()
    side = np.cross(tools.plan.needles[0].direction, [0.0, 0.0, 1.0])
    side /= np.linalg.norm(side)

    def move(k: int) -> None:       # the edit itself (checks, 2x2 views): not timed
        tools.move_point(0, "tip", tip0 + 0.5 * (k + 1) * side, merge_key="bench-drag")

    def follow(_k: int) -> None:
        panel.refresh()
        panel.render_now()

    def scroll(_k: int) -> None:
        panel.view_eye.scroll(1)
        panel.render_now()

    report("drag  ", "tip move (refresh + 3 renders)", timed(follow, 40, move))
    tools.undo()
    panel.set_depth(0.0)
    report("scroll", "1 mm bull's-eye step (3 renders)", timed(scroll, 60))
    print(f"load average after: {os.getloadavg()}")
    win.close()


if __name__ == "__main__":
    main()
