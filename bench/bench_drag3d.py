"""Dragging a needle handle in the 3D view: cost per mouse move (prints figures; not a
test).

The demo case with its reference IRE plan in a 1600x1000 main window, the 3D view
maximised (anterior camera), electrode 1's tip grabbed (lock parallel off). Live zone
prediction is switched off so the figures are the drag's own.

1. Hover: 200 mouse moves without a button (handle look-up for the open-hand cursor:
   projection of every tip and entry), per move.
2. Drag: 40 mouse moves of 2 px, sent as real Qt mouse events to the 3D view; per move
   (a) the event (screen-plane point, move command merged into one undo step),
   (b) the safety re-check and the needle overlays (what the deferred re-check runs),
   (c) the render of the 3D view.

Wall time and CPU time of the GUI thread (time.thread_time) per step, median and max;
process CPU time (time.process_time, all threads) of each loop; the load average.
Run: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python bench/bench_drag3d.py``.
"""

from __future__ import annotations

import os
import statistics
import time


def main() -> None:
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from irplan.app.demo import demo_case
    from irplan.app.gui_main import make_app
    from irplan.app.main_window import MainWindow
    from irplan.io.plan_file import load_plan, load_plan_image, load_plan_structures

    make_app()
    case = demo_case()
    win = MainWindow(restore_state=False)
    win.headless = True
    win.resize(1600, 1000)
    win.show()
    QTest.qWaitForWindowExposed(win)
    zone_panel = getattr(win, "zone_panel", None)
    if zone_panel is not None:
        zone_panel.live_check.setChecked(False)
    ref = load_plan(case / "plan.irplan.json")
    ct = load_plan_image(ref)
    masks, _ = load_plan_structures(ref, ct)
    win.show_case(ct, masks, plan=ref, title="demo")
    win.wait_for_surfaces(120)
    win.tasks.wait_idle(240)
    tools = win.needle_tools
    tools.panel.lock_check.setChecked(False)
    view = win.views.scene3d
    win.views.set_maximised("3d")
    view.set_camera_preset("anterior")
    QTest.qWait(300)
    win.tasks.wait_idle(240)
    view.render_now()
    w, h = view.display_size()
    print(f"3D view {w}x{h} px, {len(tools.plan.needles)} needles, "
          f"load average {os.getloadavg()}")

    def send(kind: QEvent.Type, x: float, y: float, buttons) -> None:
        button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove \
            else Qt.MouseButton.LeftButton
        ev = QMouseEvent(kind, QPointF(x, y), view.mapToGlobal(QPointF(x, y)), button,
                         buttons, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(view, ev)

    def stats(name: str, walls: list[float], cpus: list[float], proc: float) -> None:
        print(f"{name}: wall median {1e3 * statistics.median(walls):.2f} ms, max "
              f"{1e3 * max(walls):.2f} ms; GUI-thread CPU median "
              f"{1e3 * statistics.median(cpus):.2f} ms; process CPU {proc:.2f} s for "
              f"{len(walls)} steps")

    # 1. hover
    walls, cpus = [], []
    p0 = time.process_time()
    for k in range(200):
        x, y = 20 + (k * 7) % (view.width() - 40), 20 + (k * 13) % (view.height() - 40)
        t0, c0 = time.perf_counter(), time.thread_time()
        send(QEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.thread_time() - c0)
    stats("hover (handle look-up) per move", walls, cpus, time.process_time() - p0)
    view.unsetCursor()

    # 2. drag
    tip0 = tools.plan.needles[0].tip_lps_mm.copy()
    x0, y0 = view.lps_to_qt(tip0)
    send(QEvent.Type.MouseButtonPress, x0, y0, Qt.MouseButton.LeftButton)
    QTest.qWait(50)
    parts: dict[str, tuple[list[float], list[float]]] = {
        k: ([], []) for k in ("event", "re-check + overlays", "3D render")}
    p0 = time.process_time()
    for k in range(1, 41):
        steps = (
            ("event", lambda k=k: send(QEvent.Type.MouseMove, x0 + 2 * k, y0,
                                       Qt.MouseButton.LeftButton)),
            ("re-check + overlays", tools.recheck),
            ("3D render", view.render_now),
        )
        for name, fn in steps:
            t0, c0 = time.perf_counter(), time.thread_time()
            fn()
            parts[name][0].append(time.perf_counter() - t0)
            parts[name][1].append(time.thread_time() - c0)
        QTest.qWait(1)
    proc = time.process_time() - p0
    send(QEvent.Type.MouseButtonRelease, x0 + 80, y0, Qt.MouseButton.NoButton)
    for name, (walls, cpus) in parts.items():
        stats(f"drag {name} per move", walls, cpus, proc)
    print("(process CPU: the whole drag loop, all threads incl. the software GL renderer)")
    moved = tools.plan.needles[0].tip_lps_mm - tip0
    print(f"tip moved {float((moved ** 2).sum() ** 0.5):.2f} mm in one undo step: "
          f"{tools.stack.undo_text!r}; load average after {os.getloadavg()}")
    win.close()


if __name__ == "__main__":
    main()
