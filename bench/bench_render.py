"""Rendering benchmark of the main window (prints figures; not a test).

1. Launch to first render: ``irplan --demo --screenshot`` in a subprocess (the demo
   phantom is generated beforehand, not timed); the app reports the wall-clock time of
   its first full render (CT + structure overlays in all four views) and of the last 3D
   surface, measured from just before the process is started.
2. 3D frame rate: the demo case's structure surfaces in a Scene3DView (780x470 px, the
   3D quadrant of a 1600x1000 window), camera Azimuth by 2 degrees + Render per frame.

Run under a display: ``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python
bench/bench_render.py``. Targets (issue 3): first render <= 4 s, >= 20 frames/s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def launch_to_first_render(runs: int = 3) -> list[tuple[float, float, float]]:
    out = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, IRPLAN_TIMING="1")
            t0 = time.time()
            res = subprocess.run([sys.executable, "-m", "irplan.app.cli", "--demo",
                                  "--screenshot", str(Path(tmp) / "s.png")],
                                 capture_output=True, text=True, env=env, timeout=600)
            if res.returncode != 0:
                raise SystemExit(f"irplan failed: {res.stderr.strip()}")
            line = [ln for ln in res.stdout.splitlines() if ln.startswith("timing:")][0]
            vals = dict(kv.split("=") for kv in line.split()[1:])
            out.append((float(vals["first_render_epoch"]) - t0,
                        float(vals["surfaces_done_epoch"]) - t0,
                        float(vals["screenshot_epoch"]) - t0))
    return out


def frame_rate(seconds: float = 5.0) -> tuple[float, int]:
    from irplan.app.demo import demo_case, demo_masks
    from irplan.app.gui_main import make_app
    from irplan.io.masks import read_mask
    from irplan.viewers.scene3d import Scene3DView
    from irplan.viewers.surfaces import mask_to_polydata
    from irplan.viewers.view_set import default_style

    app = make_app()
    view = Scene3DView()
    view.resize(780, 470)
    view.show()
    app.processEvents()
    n_tri = 0
    for key, path in demo_masks(demo_case()).items():
        poly = mask_to_polydata(read_mask(path))
        n_tri += poly.GetNumberOfCells()
        view.set_surface(key, poly, default_style(key))
    view.reset_camera()
    view.render_now()
    cam = view.renderer.GetActiveCamera()
    rw = view.GetRenderWindow()
    frames = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        cam.Azimuth(2.0)
        view.renderer.ResetCameraClippingRange()
        rw.Render()
        frames += 1
    fps = frames / (time.monotonic() - t0)
    view.finalize()
    return fps, n_tri


def main() -> int:
    from irplan.app.demo import demo_case

    t = time.monotonic()
    case = demo_case()
    print(f"demo case: {case} (ready in {time.monotonic() - t:.1f} s)")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    runs = launch_to_first_render()
    for i, (first, surf, shot) in enumerate(runs, 1):
        print(f"run {i}: first full render {first:.2f} s, all 3D surfaces {surf:.2f} s, "
              f"screenshot saved {shot:.2f} s after launch")
    best = min(r[0] for r in runs)
    print(f"launch -> first render: best {best:.2f} s (target <= 4 s)")
    fps, n_tri = frame_rate()
    print(f"3D rotation: {fps:.1f} frames/s with {n_tri} triangles (target >= 20)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
