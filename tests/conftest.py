"""Shared fixtures. Real data: ../shared/data beside the checkout (skips when absent)."""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
IRCADB17 = SHARED_DATA / "ircadb1-17"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def ircadb17() -> Path:
    """3D-IRCADb-01 patient 17 (real ceCT with masks), or skip."""
    if not (IRCADB17 / "PATIENT_DICOM").is_dir():
        pytest.skip("../shared/data/ircadb1-17 is not present (only on developer machines)")
    return IRCADB17


@pytest.fixture(scope="session")
def phantom_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The standard phantom case (seed 0) written once per test session.

    Layout: see irplan.io.phantom_writer (planning/, intraop/, followup/ DICOM series,
    masks/, truth.json).
    """
    from irplan.io.phantom_writer import write_phantom_case

    out = tmp_path_factory.mktemp("phantom") / "case"
    write_phantom_case(out, seed=0)
    return out


# --- GUI: one main window per module ---------------------------------------------------
DEFAULT_WINDOW_SIZE = (1400, 900)


@pytest.fixture(scope="module")
def main_window(qapp, request: pytest.FixtureRequest):
    """An empty IRPlan main window for the module: panels installed, settings not
    restored, ``headless`` (errors go to ``win.messages``, no dialogs), shown and exposed.

    Size: the module's ``WINDOW_SIZE = (w, h)``, else 1400x900 (creating a window costs
    seconds on 2 shared cores, so modules share one). At the end the window lets running
    jobs (also other modules' ones) end and deliver their results, then closes.
    """
    from PySide6.QtTest import QTest

    from irplan.app.gui_main import make_app
    from irplan.app.main_window import MainWindow

    make_app()
    win = MainWindow(restore_state=False)
    win.headless = True
    win.resize(*getattr(request.module, "WINDOW_SIZE", DEFAULT_WINDOW_SIZE))
    win.show()
    QTest.qWaitForWindowExposed(win)
    yield win
    win.tasks.shutdown(120)
    QTest.qWait(100)
    win.close()
    win.deleteLater()
    QTest.qWait(50)


@dataclass
class PhantomWindow:
    """:func:`phantom_window`: the window, the case's reference plan (as read, not
    shown), the planning CT and its structure masks (LPS mm, on the CT grid)."""

    win: Any
    reference: Any
    ct: Any
    masks: dict[str, Any]


@pytest.fixture(scope="module")
def phantom_window(main_window, phantom_case: Path) -> PhantomWindow:
    """:func:`main_window` showing the phantom's planning CT and structure masks with an
    empty IRE plan on that image, once every job the load started (surfaces, safety
    check preparation) is done."""
    from irplan.io.plan_file import load_plan, load_plan_image, load_plan_structures
    from irplan.planning.plan import Plan

    ref = load_plan(phantom_case / "plan.irplan.json")
    ct = load_plan_image(ref)
    masks, _notes = load_plan_structures(ref, ct)
    main_window.show_case(ct, masks, plan=Plan(modality="IRE", image=ref.image),
                          title="phantom")
    assert main_window.tasks.wait_idle(240), "the phantom's jobs did not finish"
    assert main_window.wait_for_surfaces(240), "the phantom's surfaces did not arrive"
    return PhantomWindow(main_window, ref, ct, masks)


@pytest.fixture(scope="session")
def screen_pixel():
    """``screen_pixel(win, view, p_lps)``: RGB (floats 0-255) of the screen pixel that
    shows LPS point ``p_lps`` (mm) in ``view`` of window ``win``, after a render; grabbed
    from the screen (``QWidget.grab()`` is black where VTK draws)."""
    import numpy as np
    from PySide6.QtCore import QPoint

    def pixel(win, view, p_lps) -> np.ndarray:
        x, y = view.lps_to_qt(np.asarray(p_lps, float))
        pt = view.mapTo(win, QPoint(int(round(x)), int(round(y))))
        win.views.render_now()
        img = win.screen().grabWindow(win.winId()).toImage()
        dpr = img.devicePixelRatio()
        col = img.pixelColor(int(pt.x() * dpr), int(pt.y() * dpr))
        return np.array([col.red(), col.green(), col.blue()], float)

    return pixel


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Keep Qt settings and recovery files of tests away from the user's own."""
    home = tmp_path_factory.getbasetemp() / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("IRPLAN_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")



# --- clean exit after GUI tests ------------------------------------------------------
# pytest-xvfb stops Xvfb in an atexit handler; once VTK has rendered, libGL/VTK still hold
# an X connection that is torn down by C++ destructors *after* atexit, and Xlib then
# kills the process with exit code 1 ("XIO: fatal IO error") although every test passed.
# So, when VTK rendering was used: stop Xvfb ourselves and leave with pytest's status
# before those destructors run. (Registered after pytest-xvfb's handler -> runs first.)
_SESSION_STATUS: dict[str, int] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _SESSION_STATUS["status"] = int(exitstatus)


def _exit_before_x_teardown() -> None:
    import sys

    status = _SESSION_STATUS.get("status")
    if status is None or "vtkmodules.vtkRenderingOpenGL2" not in sys.modules:
        return
    xvfb_mod = sys.modules.get("pytest_xvfb")
    if xvfb_mod is None or getattr(xvfb_mod, "xvfb_instance", None) is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    xvfb_mod.shutdown_xvfb()
    os._exit(status)


atexit.register(_exit_before_x_teardown)
