"""The QVTKRenderWindowInteractor base used by every IRPlan view.

VTK's own interactor styles are switched off (vtkInteractorStyleUser); each view handles
Qt mouse/key events itself, so the behaviour is the same on every platform and testable
with qtbot. Renders are coalesced: ``request_render()`` may be called many times per
event-loop turn and draws once.
"""

from __future__ import annotations

import os
import time

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QSizePolicy, QWidget
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
from vtkmodules.util import numpy_support
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleUser
from vtkmodules.vtkRenderingCore import vtkRenderer, vtkWindowToImageFilter

# make sure the OpenGL backend and the font/volume factories are registered
import vtkmodules.vtkRenderingFreeType  # noqa: F401  # isort: skip
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  # isort: skip
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  # isort: skip
import vtkmodules.vtkInteractionStyle  # noqa: F401  # isort: skip


# IRPLAN_EXPOSE_RENDER=1 renders the whole scene on every expose (VTK's default)
REUSE_FRAME_ON_EXPOSE = os.environ.get("IRPLAN_EXPOSE_RENDER", "") != "1"


class VtkWidget(QVTKRenderWindowInteractor):
    """A render window with one main renderer (layer 0) and an overlay layer (layer 1)
    sharing its camera, so crosshairs and tools are never hidden behind the image."""

    double_clicked = Signal()

    def __init__(self, parent: QWidget | None = None, use_vtk_style: bool = False) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(120, 120)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        rw = self.GetRenderWindow()
        # no multisampling: with Mesa llvmpipe (software GL) 8x MSAA made every frame
        # 3.5x slower (bench_render); MSAA_SAMPLES overrides for experiments
        rw.SetMultiSamples(int(os.environ.get("IRPLAN_MSAA_SAMPLES", "0")))
        rw.SetNumberOfLayers(2)
        self.renderer = vtkRenderer()
        self.renderer.SetLayer(0)
        self.overlay_renderer = vtkRenderer()
        self.overlay_renderer.SetLayer(1)
        self.overlay_renderer.InteractiveOff()
        self.overlay_renderer.SetActiveCamera(self.renderer.GetActiveCamera())
        rw.AddRenderer(self.renderer)
        rw.AddRenderer(self.overlay_renderer)
        self._use_vtk_style = use_vtk_style
        if not use_vtk_style:
            self.GetRenderWindow().GetInteractor().SetInteractorStyle(vtkInteractorStyleUser())
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(0)
        self._render_timer.timeout.connect(self.render_now)
        self.min_interval_s = 0.0
        self._last_render = 0.0
        self.Initialize()

    # ------------------------------------------------------------- rendering
    def request_render(self) -> None:
        """Schedule one render at the next event-loop turn (coalesces many requests).
        With ``min_interval_s`` set, renders are at least that far apart (a slow 3D scene
        must not hold up the slices while the crosshair is dragged)."""
        if self._render_timer.isActive():
            return
        wait_s = self.min_interval_s - (time.monotonic() - self._last_render)
        self._render_timer.setInterval(max(0, int(wait_s * 1000)))
        self._render_timer.start()

    def render_now(self) -> None:
        self._render_timer.stop()
        self._last_render = time.monotonic()
        if not self.isVisible() or getattr(self, "_finalized", False):
            return
        self.before_render()
        rw = self.GetRenderWindow()
        rw.Render()
        self._rendered_size = tuple(rw.GetSize())

    def before_render(self) -> None:
        """Hook for subclasses: update size-dependent annotations."""

    def pixel_ratio(self) -> float:
        return float(self.devicePixelRatioF())

    def display_size(self) -> tuple[int, int]:
        w, h = self.GetRenderWindow().GetSize()
        return int(w), int(h)

    def qt_to_display(self, x: float, y: float) -> tuple[float, float]:
        """Qt widget coordinates (logical px, y down) -> VTK display (device px, y up)."""
        r = self.pixel_ratio()
        _, h = self.display_size()
        return x * r, h - 1 - y * r

    def display_to_qt(self, x: float, y: float) -> tuple[float, float]:
        r = self.pixel_ratio()
        _, h = self.display_size()
        return x / r, (h - 1 - y) / r

    def world_to_display(self, p: np.ndarray) -> tuple[float, float]:
        """LPS mm -> VTK display coordinates (device px, origin bottom-left)."""
        ren = self.renderer
        ren.SetWorldPoint(float(p[0]), float(p[1]), float(p[2]), 1.0)
        ren.WorldToDisplay()
        x, y, _ = ren.GetDisplayPoint()
        return x, y

    def capture_rgb(self) -> np.ndarray:
        """The rendered picture as a uint8 array (rows top to bottom, RGB)."""
        self.render_now()
        w2i = vtkWindowToImageFilter()
        w2i.SetInput(self.GetRenderWindow())
        w2i.SetInputBufferTypeToRGB()
        w2i.ReadFrontBufferOff()
        w2i.ShouldRerenderOn()
        w2i.Update()
        img = w2i.GetOutput()
        nx, ny, _ = img.GetDimensions()
        a = numpy_support.vtk_to_numpy(img.GetPointData().GetScalars()).reshape(ny, nx, -1)
        return a[::-1, :, :3].copy()

    # ------------------------------------------------------------- events
    def mouseDoubleClickEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        self.double_clicked.emit()
        ev.accept()

    def finalize(self) -> None:
        """Release the OpenGL context and the X display connection now, while the
        display still exists (a render window left to the interpreter's exit talks to
        a possibly gone X server, and Xlib then kills the process)."""
        self._render_timer.stop()
        rw = self._RenderWindow
        if rw is None:
            return
        try:
            rw.Finalize()
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass
        self._finalized = True

    def paintEvent(self, ev) -> None:  # noqa: N802
        """Expose: show the last frame again when it is still current (VTK keeps it in
        its display framebuffer; Frame() blits and swaps, no scene render), else render.
        On software GL a scene render of a slice view costs 50-150 ms, and Qt sends
        several exposes while a window maps and its docks settle."""
        if getattr(self, "_finalized", False):
            return
        rw = self.GetRenderWindow()
        if (REUSE_FRAME_ON_EXPOSE and getattr(self, "_rendered_size", None) == tuple(rw.GetSize())
                and not self._render_timer.isActive()):
            rw.Frame()
            return
        self.render_now()

    def resizeEvent(self, ev) -> None:  # noqa: N802
        if getattr(self, "_finalized", False):
            return
        super().resizeEvent(ev)
