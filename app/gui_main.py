"""``irplan [PATH] [--demo] [--screenshot OUT.png]``: start the GUI.

With ``--screenshot`` the window opens at 1600x1000, loads the case (demo when no PATH),
waits for every background task, renders all views, saves a PNG of the whole window
(QScreen.grabWindow) and exits 0; on a load error it prints one line and exits 2.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from irplan.planning.errors import InputError

T_START = time.monotonic()
SCREENSHOT_TIMEOUT_S = 300.0


def make_app():
    """The QApplication (created once) with IRPlan's dark Fusion look."""
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    app.setApplicationName("IRPlan")
    app.setOrganizationName("IRPlan")
    app.setStyle("Fusion")
    pal = QPalette()
    for role, c in ((QPalette.ColorRole.Window, "#1e2127"), (QPalette.ColorRole.WindowText, "#d7dae0"),
                    (QPalette.ColorRole.Base, "#181a1f"), (QPalette.ColorRole.Text, "#d7dae0"),
                    (QPalette.ColorRole.Button, "#2c313a"), (QPalette.ColorRole.ButtonText, "#d7dae0"),
                    (QPalette.ColorRole.Highlight, "#3d7bd9"),
                    (QPalette.ColorRole.HighlightedText, "#ffffff"),
                    (QPalette.ColorRole.ToolTipBase, "#2c313a"),
                    (QPalette.ColorRole.ToolTipText, "#d7dae0")):
        pal.setColor(role, QColor(c))
    app.setPalette(pal)
    from irplan.app.style import STYLE_SHEET

    app.setStyleSheet(STYLE_SHEET)
    return app


def _check_display() -> None:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        if os.environ.get("QT_QPA_PLATFORM", "") not in ("offscreen", "minimal", "eglfs"):
            raise InputError("no display: DISPLAY is not set (run under xvfb-run for "
                             "screenshots, e.g. xvfb-run -a -s '-screen 0 1600x1000x24' "
                             "irplan --screenshot out.png)")


def run_gui(args) -> int:
    """Entry point called by ``irplan.app.cli``. Returns the process exit code."""
    path = getattr(args, "path", None)
    shot = getattr(args, "screenshot", None)
    if path:
        p = Path(path).expanduser()
        if not p.exists():
            raise InputError(f"{p}: no such file or folder")
    if shot:
        out = Path(shot).expanduser()
        if out.suffix.lower() != ".png":
            raise InputError(f"--screenshot {shot}: the file name must end in .png")
        if out.parent and not out.parent.exists():
            raise InputError(f"--screenshot {shot}: folder {out.parent} does not exist")
    _check_display()

    app = make_app()
    from PySide6.QtCore import QTimer

    from irplan.app.process_pool import shutdown_shared_pool

    app.aboutToQuit.connect(shutdown_shared_pool)

    from irplan.app.main_window import MainWindow

    # the core window and the case load first; the heavy workflow panels (scipy, pyamg,
    # highdicom imports, ~1 s) are built right after the case's first picture (or its
    # failure) and then catch up with the loaded case
    win = MainWindow(restore_state=not shot, install_panels=False)
    win.panels_after_first_picture = True
    win.headless = bool(shot)
    if shot:
        win.resize(1600, 1000)
        win.move(0, 0)
    win.show()

    def start() -> None:
        if path:
            win.open_path(path)
        else:
            win.open_demo()

    if not shot:
        start()
        return int(app.exec())

    result = {"code": 1}

    def finish_ok() -> None:
        if win.tasks.busy:
            QTimer.singleShot(50, finish_ok)
            return
        win.views.render_now()
        QTimer.singleShot(300, take)

    def take() -> None:
        try:
            saved = win.save_screenshot(shot)
            t = time.monotonic() - T_START
            print(f"irplan: screenshot saved to {saved} ({t:.1f} s)")
            if os.environ.get("IRPLAN_TIMING"):
                print(f"timing: first_render_epoch={win.first_render_epoch} "
                      f"first_render_cpu_s={win.first_render_cpu_s} "
                      f"surfaces_done_epoch={win.surfaces_done_epoch} "
                      f"screenshot_epoch={time.time()}")
            result["code"] = 0
        except InputError as exc:
            print(f"irplan: error: {exc}", file=sys.stderr)
            result["code"] = 2
        win.close()
        app.quit()

    def failed(msg: str) -> None:
        print(f"irplan: error: {msg}", file=sys.stderr)
        result["code"] = 2
        win.close()
        app.quit()

    def timeout() -> None:
        print(f"irplan: error: loading did not finish within {SCREENSHOT_TIMEOUT_S:.0f} s",
              file=sys.stderr)
        result["code"] = 1
        win.close()
        app.quit()

    win.case_loaded.connect(lambda: QTimer.singleShot(0, finish_ok))
    win.load_failed.connect(lambda m: QTimer.singleShot(0, lambda: failed(m))
                            if win.case.ct is None else None)
    QTimer.singleShot(int(SCREENSHOT_TIMEOUT_S * 1000), timeout)
    start()
    app.exec()
    return result["code"]
