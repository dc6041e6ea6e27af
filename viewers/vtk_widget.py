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
import shiboken6
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

# "queue": render on demand, views drawn one per event-loop turn (_RenderQueue);
# "eager": every requested view drawn at the next turn (before issue 16; benches compare)
_POLICY = {"name": os.environ.get("IRPLAN_RENDER_POLICY", "queue")}


# frames closer than INTERACTIVE_GAP_S (scheduled or camera frames, not direct
# render_now calls) are drawn at interactive quality; REST_MS after the last one the view
# is drawn once more at full quality
INTERACTIVE_GAP_S = 0.2
REST_MS = 300


def render_policy() -> str:
    """The render policy in use: "queue" (default) or "eager" (benchmarks compare)."""
    return _POLICY["name"]


def set_render_policy(name: str) -> None:
    if name not in ("queue", "eager"):
        raise ValueError(f"render policy {name!r}: expected 'queue' or 'eager'")
    _POLICY["name"] = name


class _RenderQueue:
    """Views waiting for a render, drawn one per event-loop turn in request order.

    With software OpenGL a slice view takes 20-40 ms to draw; a crosshair move asks for
    three or four views at once. Drawing them in one pass holds the GUI for 100+ ms; one
    per turn lets mouse and key events in between (and a view asked again before its
    turn is drawn once). Safe since no VTK object lives in a worker thread (the render
    queue reverted in c32397b hung then)."""

    def __init__(self) -> None:
        self._views: list[VtkWidget] = []
        self._timer: QTimer | None = None

    def _ensure_timer(self) -> QTimer:
        if self._timer is None or not shiboken6.isValid(self._timer):
            self._timer = QTimer()
            self._timer.setSingleShot(True)
            self._timer.setInterval(0)
            self._timer.timeout.connect(self._render_next)
        return self._timer

    def queued(self, view: VtkWidget) -> bool:
        return view in self._views

    def __len__(self) -> int:
        return len(self._views)

    def add(self, view: VtkWidget) -> None:
        if view not in self._views:
            self._views.append(view)
        timer = self._ensure_timer()
        if not timer.isActive():
            timer.start()

    def discard(self, view: VtkWidget) -> None:
        if view in self._views:
            self._views.remove(view)

    def _render_next(self) -> None:
        while self._views:
            view = self._views.pop(0)
            if shiboken6.isValid(view) and not getattr(view, "_finalized", False):
                view.queued_render = True
                try:
                    view.render_now()
                finally:
                    view.queued_render = False
                break
        if self._views:
            self._ensure_timer().start()


_RENDER_QUEUE = _RenderQueue()


def pending_renders() -> int:
    """Views waiting in the render queue (tests wait until 0)."""
    return len(_RENDER_QUEUE)


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
        self._render_timer.timeout.connect(self._render_timer_due)
        self.min_interval_s = 0.0
        self._last_render = 0.0
        self.queued_render = False   # True while the render queue draws this view
        # interactive quality (policy "queue"): see _on_render_start
        self._interactive = False
        self._direct_render = False
        self._last_frame_s = 0.0
        self._rest_timer = QTimer(self)
        self._rest_timer.setSingleShot(True)
        self._rest_timer.setInterval(REST_MS)
        self._rest_timer.timeout.connect(self._at_rest)
        rw.AddObserver("StartEvent", self._on_render_start)
        self.Initialize()

    # ------------------------------------------------------------- rendering
    def request_render(self) -> None:
        """Schedule one render soon (coalesces many requests). Views asking at the same
        time are drawn one per event-loop turn (:class:`_RenderQueue`; policy "queue"),
        so input events are handled between two draws. With ``min_interval_s`` set,
        renders are at least that far apart (a slow 3D scene must not hold up the slices
        while the crosshair is dragged)."""
        queue = render_policy() == "queue"
        if self._render_timer.isActive() or (queue and _RENDER_QUEUE.queued(self)):
            return
        wait_s = self.min_interval_s - (time.monotonic() - self._last_render)
        if queue and wait_s <= 0:
            _RENDER_QUEUE.add(self)
            return
        self._render_timer.setInterval(max(0, int(wait_s * 1000)))
        self._render_timer.start()

    def _render_timer_due(self) -> None:
        if render_policy() == "queue":
            _RENDER_QUEUE.add(self)
        else:
            self.render_now()

    @property
    def render_pending(self) -> bool:
        """A render is scheduled and not done yet."""
        return self._render_timer.isActive() or _RENDER_QUEUE.queued(self)

    def render_now(self) -> None:
        self._render_timer.stop()
        _RENDER_QUEUE.discard(self)
        self._last_render = time.monotonic()
        if not self.isVisible() or getattr(self, "_finalized", False):
            return
        self.before_render()
        rw = self.GetRenderWindow()
        self._direct_render = not self.queued_render
        try:
            rw.Render()
        finally:
            self._direct_render = False
        self._rendered_size = tuple(rw.GetSize())

    # ------------------------------------------------------------- quality
    def set_interactive_quality(self, on: bool) -> None:
        """Hook for subclasses: cheaper drawing while ``on`` (a drag), full when off."""

    @property
    def interactive_quality(self) -> bool:
        """True while frames are drawn at interactive quality."""
        return self._interactive

    def _on_render_start(self, *_args) -> None:
        """Before each frame: full quality at rest and for every direct ``render_now``
        (screenshots, captures, tests); interactive quality while scheduled or camera
        frames follow each other within INTERACTIVE_GAP_S (a drag), then one full-quality
        frame REST_MS after the last one."""
        now = time.monotonic()
        fast = now - self._last_frame_s < INTERACTIVE_GAP_S
        self._last_frame_s = now
        self.frame_starting()
        if render_policy() == "eager":
            return
        if self._direct_render:
            self._rest_timer.stop()
            if self._interactive:
                self._interactive = False
                self.set_interactive_quality(False)
            return
        if fast and not self._interactive:
            self._interactive = True
            self.set_interactive_quality(True)
        if self._interactive:
            self._rest_timer.start()

    def frame_starting(self) -> None:
        """Hook for subclasses: a frame is about to be drawn."""

    def _at_rest(self) -> None:
        if self._interactive:
            self._interactive = False
            self.set_interactive_quality(False)
            self.request_render()

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
        _RENDER_QUEUE.discard(self)
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
                and not self.render_pending):
            rw.Frame()
            return
        self.render_now()

    def resizeEvent(self, ev) -> None:  # noqa: N802
        if getattr(self, "_finalized", False):
            return
        super().resizeEvent(ev)
