"""Render on demand (issue 16): a view redraws only when what it shows changed, views
asking at once are drawn one per event-loop turn, and the 3D view draws translucent
shells cheaply while frames follow each other and at full quality at rest."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_gui_views import TUMOUR_CENTRE, synthetic_case  # noqa: E402

from irplan.viewers import scene3d, vtk_widget  # noqa: E402

pytestmark = pytest.mark.gui
WINDOW_SIZE = (1100, 760)


class _FrameLog:
    """Frames drawn by each view (render window StartEvent), with the time."""

    def __init__(self, views) -> None:
        self.frames: dict[str, list[float]] = {}
        for v in views:
            name = v.name
            self.frames[name] = []
            v.GetRenderWindow().AddObserver(
                "StartEvent", lambda *_a, n=name: self.frames[n].append(time.monotonic()))

    def clear(self) -> None:
        for f in self.frames.values():
            f.clear()

    def count(self, name: str) -> int:
        return len(self.frames[name])


def _idle(qtbot, win) -> None:
    qtbot.waitUntil(lambda: vtk_widget.pending_renders() == 0
                    and not any(v.render_pending for v in win.views), timeout=10000)


def _quiet(qtbot, win, log, quiet_ms: int = 600, tries: int = 20) -> None:
    """Wait until no view draws for ``quiet_ms`` (a delayed full-quality frame or a late
    surface of the set-up may still be due on a loaded machine), then clear the log."""
    for _ in range(tries):
        _idle(qtbot, win)
        log.clear()
        qtbot.wait(quiet_ms)
        if not any(log.frames.values()):
            return
    raise AssertionError(f"views kept drawing with nothing changing: {log.frames}")


@pytest.fixture(scope="module")
def shown(main_window):
    ct, masks = synthetic_case()
    main_window.show_case(ct, masks, title="synthetic")
    assert main_window.wait_for_surfaces(120)
    assert main_window.tasks.wait_idle(120)
    return main_window, _FrameLog(main_window.views)


def test_scrolling_redraws_3d_once_after_the_pause(shown, qtbot) -> None:
    win, log = shown
    v = win.views
    assert vtk_widget.render_policy() == "queue"
    assert not v.scene3d.ct_slices_visible()     # surfaces shown: CT slices hidden in 3D
    _quiet(qtbot, win, log)
    z0 = v.axial.slice_position_mm
    changes = []
    for _ in range(5):                           # a quick wheel: 5 slices, 30 ms apart
        changes.append(time.monotonic())
        v.axial.scroll(1)
        qtbot.wait(30)
    assert v.axial.slice_position_mm == pytest.approx(z0 + 5 * v.axial.step_mm)
    assert log.count("axial") >= 1 and log.count("coronal") >= 1
    qtbot.wait(600)
    _idle(qtbot, win)
    # the slice views follow at once; the 3D view (only its frame lines move) draws only
    # once the changes paused for PAUSE_RENDER_MS, and once after the last one
    _assert_after_pause(log.frames["3d"], changes)
    assert sum(t > changes[-1] for t in log.frames["3d"]) == 1
    # window/level: the 3D view shows no CT here, the slice views do
    _quiet(qtbot, win, log)
    t = time.monotonic()
    v.set_window(300, 40)
    qtbot.wait(600)
    _idle(qtbot, win)
    assert log.count("sagittal") == 1
    _assert_after_pause(log.frames["3d"], [t])


def _assert_after_pause(frames: list[float], changes: list[float]) -> None:
    pause_s = 0.9 * scene3d.PAUSE_RENDER_MS / 1000     # (Qt timers may fire 5 % early)
    for f in frames:
        last = max(c for c in changes if c <= f)
        assert f - last >= pause_s, (f - last, "3D drawn during the changes")


def test_views_asking_at_once_are_drawn_one_per_turn(shown, qtbot) -> None:
    win, log = shown
    v = win.views
    _idle(qtbot, win)
    log.clear()
    v.set_crosshair(TUMOUR_CENTRE)
    v.set_crosshair(TUMOUR_CENTRE + 2.0)         # asked twice: drawn once each
    assert vtk_widget.pending_renders() == 3
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()
    assert sum(log.count(n) for n in ("axial", "coronal", "sagittal")) == 1
    _idle(qtbot, win)
    assert [log.count(n) for n in ("axial", "coronal", "sagittal")] == [1, 1, 1]
    assert np.allclose(v.axial.crosshair_lps_mm, TUMOUR_CENTRE + 2.0)


def test_translucent_shells_cheap_while_dragging_full_at_rest(shown, qtbot,
                                                             monkeypatch) -> None:
    win, _log = shown
    monkeypatch.setattr(vtk_widget, "INTERACTIVE_GAP_S", 2.0)   # a loaded machine: slow frames
    s3 = win.views.scene3d
    s3.set_planes_visible(False)
    s3.set_camera_preset("anterior")
    _idle(qtbot, win)
    for _ in range(4):                           # frames in quick succession: a drag
        s3.renderer.GetActiveCamera().Azimuth(1.0)
        s3.request_render()
        qtbot.wait(40)
    assert s3.interactive_quality
    qtbot.waitUntil(lambda: not s3.interactive_quality, timeout=10000)
    _idle(qtbot, win)
    s3.set_camera_preset("anterior")
    img = s3.capture_rgb()
    x, y = s3.world_to_display(TUMOUR_CENTRE)
    rgb = img[img.shape[0] - 1 - int(round(y)), int(round(x))].astype(int)
    # at rest the tumour is seen yellow through the translucent liver
    assert rgb[0] > 1.6 * rgb[2] and rgb[1] > 1.6 * rgb[2] and rgb[0] > 90, rgb
    s3.set_planes_visible(True)


def test_slices_cheaper_while_scrolling_full_at_rest(shown, qtbot, monkeypatch) -> None:
    win, _log = shown
    monkeypatch.setattr(vtk_widget, "INTERACTIVE_GAP_S", 2.0)   # a loaded machine: slow frames
    ax = win.views.axial
    _idle(qtbot, win)
    for i in range(4):                           # scheduled frames in quick succession
        ax.scroll(1 if i % 2 else -1)
        qtbot.wait(40)
    assert ax.interactive_quality                # voxel-resolution reslice while moving
    qtbot.waitUntil(lambda: not ax.interactive_quality, timeout=10000)
    assert ax._ct_mapper.GetResampleToScreenPixels()
    ax.scroll(1)
    ax.render_now()                              # a direct render is always full quality
    assert not ax.interactive_quality
