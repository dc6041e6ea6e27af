"""3-D view: structure surfaces, optional CT volume rendering, the three MPR planes,
an LPS orientation cube and standard camera presets. World frame = LPS mm.

Mouse: left drag rotate, middle/Shift+left pan, right drag/wheel zoom (VTK trackball
camera). Double-click = maximise. The needle tools (app/needle_tools.py) filter the
presses that land on a needle handle first and drag it in the screen-parallel plane
through it (:meth:`Scene3DView.qt_to_plane_lps`, :meth:`Scene3DView.lps_to_qt`).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QWidget
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import (
    vtkCellArray,
    vtkImageData,
    vtkPiecewiseFunction,
    vtkPlane,
    vtkPolyData,
)
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera
from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget
from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkColorTransferFunction,
    vtkImageSlice,
    vtkPolyDataMapper,
    vtkProp,
    vtkTextActor,
    vtkVolume,
    vtkVolumeProperty,
)
from vtkmodules.vtkRenderingImage import vtkImageResliceMapper

from irplan.planning.volume import Volume
from irplan.viewers.mpr_view import ORIENTATIONS, StructureStyle
from irplan.viewers.presets import VIEW_COLORS, VR_PRESETS
from irplan.viewers.vtk_convert import numpy_to_matrix, volume_to_vtk
from irplan.viewers.vtk_widget import VtkWidget, render_policy

# render on demand (issue 16): a slice/window change not shown in 3D is drawn once the
# changes pause this long
PAUSE_RENDER_MS = 250

# camera presets: (direction of projection, view up) in LPS
CAMERA_PRESETS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "anterior": ((0, 1, 0), (0, 0, 1)),     # from the front: patient right on screen left
    "posterior": ((0, -1, 0), (0, 0, 1)),
    "left": ((-1, 0, 0), (0, 0, 1)),        # from the patient's left side
    "right": ((1, 0, 0), (0, 0, 1)),
    "superior": ((0, 0, -1), (0, -1, 0)),   # from the head, anterior up
    "inferior": ((0, 0, 1), (0, -1, 0)),    # from the feet, as an axial slice
}


# structures the default 3D camera frames (when present)
FOCUS_KEYS = ("liver", "tumor")


VR_MAX_VOXELS = 2_000_000


def _vr_image(image: vtkImageData) -> tuple[vtkImageData, vtkMatrix4x4]:
    """The CT for volume rendering: downsampled to at most VR_MAX_VOXELS voxels, in its
    unrotated frame (origin 0, identity direction), plus the matrix placing it in LPS.

    The CPU ray-cast mapper ignores vtkImageData's direction matrix (checked: an oblique
    test ball was drawn 60 px off); a prop user matrix is honoured by every mapper."""
    from vtkmodules.vtkImagingCore import vtkImageResample

    n = image.GetNumberOfPoints()
    if n > VR_MAX_VOXELS:
        f = (VR_MAX_VOXELS / n) ** (1 / 3)
        r = vtkImageResample()
        r.SetInputData(image)
        r.SetMagnificationFactors(f, f, f)
        r.SetInterpolationModeToLinear()
        r.Update()
        src = r.GetOutput()
    else:
        src = image
    d = src.GetDirectionMatrix()
    ext = src.GetExtent()
    sp = np.array(src.GetSpacing())
    rot = np.array([[d.GetElement(i, j) for j in range(3)] for i in range(3)])
    first = np.array(src.GetOrigin()) + rot @ (sp * np.array(ext[0::2], dtype=float))
    out = vtkImageData()
    out.ShallowCopy(src)
    out.SetExtent(0, ext[1] - ext[0], 0, ext[3] - ext[2], 0, ext[5] - ext[4])
    out.SetOrigin(0.0, 0.0, 0.0)
    out.SetDirectionMatrix(1, 0, 0, 0, 1, 0, 0, 0, 1)
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = first
    return out, numpy_to_matrix(m)


class Scene3DView(VtkWidget):
    """The 3-D scene. Surfaces come as vtkPolyData (LPS mm) from a worker thread."""

    maximise_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, use_vtk_style=True)
        self.name = "3d"
        self.min_interval_s = 0.15   # during crosshair drags; camera moves render directly
        # render on demand: slice-frame and window changes wait for a pause; frames in
        # quick succession draw translucency cheaply (set_interactive_quality)
        self._pause_timer = QTimer(self)
        self._pause_timer.setSingleShot(True)
        self._pause_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._pause_timer.setInterval(PAUSE_RENDER_MS)
        self._pause_timer.timeout.connect(self.request_render)
        style = vtkInteractorStyleTrackballCamera()
        self.GetRenderWindow().GetInteractor().SetInteractorStyle(style)
        ren = self.renderer
        ren.GradientBackgroundOn()
        ren.SetBackground(0.02, 0.02, 0.04)
        ren.SetBackground2(0.16, 0.18, 0.26)
        # no FXAA: it blanks the picture when an overlay renderer layer is present
        self._surfaces: dict[str, vtkActor] = {}
        self._styles: dict[str, StructureStyle] = {}
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None
        self._volume_actor: vtkVolume | None = None
        self._ct_image: vtkImageData | None = None
        self._vr_preset = "soft_tissue"
        self._camera_preset = "anterior"

        # the three MPR planes as coloured frames
        self._plane_polys: dict[str, vtkPolyData] = {}
        self._plane_actors: dict[str, vtkActor] = {}
        for name in ("axial", "coronal", "sagittal"):
            poly = vtkPolyData()
            m = vtkPolyDataMapper()
            m.SetInputData(poly)
            a = vtkActor()
            a.SetMapper(m)
            a.GetProperty().SetColor(*VIEW_COLORS[name])
            a.GetProperty().SetLineWidth(1.5)
            a.GetProperty().LightingOff()
            a.PickableOff()
            a.VisibilityOff()
            ren.AddActor(a)
            self._plane_polys[name] = poly
            self._plane_actors[name] = a
        self._positions = np.zeros(3)
        # the CT's three MPR slices drawn in 3D (textured planes); None = automatic:
        # shown while there are no structure surfaces to look at
        self._slices: dict[str, tuple[vtkImageSlice, vtkPlane]] = {}
        self._ct_slices_user: bool | None = None
        self._window = (400.0, 50.0)

        # orientation cube labelled in patient terms (LPS: +x = L, +y = P, +z = S)
        cube = vtkAnnotatedCubeActor()
        cube.SetXPlusFaceText("L")
        cube.SetXMinusFaceText("R")
        cube.SetYPlusFaceText("P")
        cube.SetYMinusFaceText("A")
        cube.SetZPlusFaceText("S")
        cube.SetZMinusFaceText("I")
        cube.SetFaceTextScale(0.65)
        cube.GetCubeProperty().SetColor(0.35, 0.42, 0.55)
        cube.GetTextEdgesProperty().SetColor(0.9, 0.9, 0.9)
        cube.GetTextEdgesProperty().SetLineWidth(1)
        for getter in (cube.GetXPlusFaceProperty, cube.GetXMinusFaceProperty):
            getter().SetColor(0.95, 0.55, 0.5)
        for getter in (cube.GetYPlusFaceProperty, cube.GetYMinusFaceProperty):
            getter().SetColor(0.55, 0.9, 0.55)
        for getter in (cube.GetZPlusFaceProperty, cube.GetZMinusFaceProperty):
            getter().SetColor(0.6, 0.7, 1.0)
        self._marker = vtkOrientationMarkerWidget()
        self._marker.SetOrientationMarker(cube)
        self._marker.SetInteractor(self.GetRenderWindow().GetInteractor())
        self._marker.SetViewport(0.0, 0.0, 0.17, 0.17)
        self._marker.SetEnabled(1)
        self._marker.InteractiveOff()

        self._title = vtkTextActor()
        tp = self._title.GetTextProperty()
        tp.SetFontSize(14)
        tp.SetBold(True)
        tp.SetColor(*VIEW_COLORS["3d"])
        tp.SetVerticalJustificationToTop()
        tp.SetShadow(True)
        self._title.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        self._title.GetPositionCoordinate().SetValue(0.012, 0.985)
        self._title.SetInput("3D")
        self.overlay_renderer.AddViewProp(self._title)

        self.double_clicked.connect(self.maximise_requested)

    # ------------------------------------------------------------------ data
    def set_volume(self, volume: Volume | None, image: vtkImageData | None = None) -> None:
        """Set the CT (for bounds, planes and optional volume rendering)."""
        if self._volume_actor is not None:
            self.renderer.RemoveVolume(self._volume_actor)
            self._volume_actor = None
        self._ct_image = image
        self._ct_volume = volume
        if volume is None:
            self._bounds = None
            for a in self._plane_actors.values():
                a.VisibilityOff()
            self._build_ct_slices()        # removes the closed case's CT slices
            self.request_render()
            return
        lo, hi = volume.bounds_lps()
        self._bounds = (lo, hi)
        self._positions = (lo + hi) / 2
        for a in self._plane_actors.values():
            a.VisibilityOn()
        self._build_ct_slices()
        self._update_planes()
        self.set_camera_preset(self._camera_preset)

    def _build_ct_slices(self) -> None:
        for sl, _ in self._slices.values():
            self.renderer.RemoveViewProp(sl)
        self._slices.clear()
        if self._ct_volume is None:
            return
        if self._ct_image is None:
            self._ct_image = volume_to_vtk(self._ct_volume)
        for name in ("axial", "coronal", "sagittal"):
            plane = vtkPlane()
            n = np.zeros(3)
            n[ORIENTATIONS[name].axis] = 1.0
            plane.SetNormal(*n)
            m = vtkImageResliceMapper()
            m.SetInputData(self._ct_image)
            m.SetSlicePlane(plane)
            m.SliceFacesCameraOff()
            m.SliceAtFocalPointOff()
            m.ResampleToScreenPixelsOff()
            sl = vtkImageSlice()
            sl.SetMapper(m)
            sl.GetProperty().SetInterpolationTypeToLinear()
            sl.PickableOff()
            self.renderer.AddViewProp(sl)
            self._slices[name] = (sl, plane)
        self.set_window(*self._window)
        self._update_ct_slice_visibility()

    def set_window(self, width_hu: float, level_hu: float) -> None:
        """Window/level (HU) of the CT slices drawn in 3D (same as the MPR views)."""
        self._window = (float(width_hu), float(level_hu))
        for sl, _ in self._slices.values():
            sl.GetProperty().SetColorWindow(self._window[0])
            sl.GetProperty().SetColorLevel(self._window[1])
        self._request_if_shown(self.ct_slices_visible())

    def set_ct_slices_visible(self, on: bool | None) -> None:
        """Show (True) or hide (False) the CT slices in 3D; None = automatic (shown while
        no structure surface is visible)."""
        self._ct_slices_user = on
        self._update_ct_slice_visibility()

    def ct_slices_visible(self) -> bool:
        if self._ct_slices_user is not None:
            return self._ct_slices_user
        if self._volume_actor is not None and self._volume_actor.GetVisibility():
            return False
        return not any(self._styles.get(k) is None or self._styles[k].visible
                       for k in self._surfaces)

    def _update_ct_slice_visibility(self) -> None:
        on = self.ct_slices_visible()
        for sl, _ in self._slices.values():
            sl.SetVisibility(on)
        self.request_render()

    def set_surface(self, key: str, poly: vtkPolyData | None,
                    style: StructureStyle | None = None) -> None:
        """Add/replace (poly) or remove (None) a structure surface."""
        old = self._surfaces.pop(key, None)
        if old is not None:
            self.renderer.RemoveActor(old)
        if poly is None:
            self._styles.pop(key, None)
            self._update_ct_slice_visibility()
            return
        m = vtkPolyDataMapper()
        m.SetInputData(poly)
        m.ScalarVisibilityOff()
        a = vtkActor()
        a.SetMapper(m)
        p = a.GetProperty()
        p.SetInterpolationToGouraud()
        p.SetSpecular(0.25)
        p.SetSpecularPower(20)
        p.SetDiffuse(0.85)
        p.SetAmbient(0.12)
        self.renderer.AddActor(a)
        self._surfaces[key] = a
        self._update_ct_slice_visibility()
        if style is not None:
            self._styles[key] = style
        self.set_structure_style(key, self._styles.get(key) or StructureStyle((0.6, 0.6, 0.6)))

    def set_structure_style(self, key: str, style: StructureStyle) -> None:
        self._styles[key] = style
        a = self._surfaces.get(key)
        if a is None:
            return
        a.GetProperty().SetColor(*style.color)
        a.GetProperty().SetOpacity(style.opacity_3d)
        a.SetVisibility(style.visible)
        # translucent shells drawn without back faces look cleaner
        a.GetProperty().SetBackfaceCulling(style.opacity_3d < 0.99)
        self._update_ct_slice_visibility()

    def surface_keys(self) -> list[str]:
        return list(self._surfaces)

    def surface_actor(self, key: str) -> vtkActor | None:
        return self._surfaces.get(key)

    # ------------------------------------------------------------ overlays
    def add_overlay_actor(self, prop: vtkProp, on_top: bool = False) -> None:
        """Add a VTK prop drawn in LPS mm (``on_top``: never hidden by surfaces)."""
        (self.overlay_renderer if on_top else self.renderer).AddViewProp(prop)
        self.request_render()

    def remove_overlay_actor(self, prop: vtkProp) -> None:
        self.overlay_renderer.RemoveViewProp(prop)
        self.renderer.RemoveViewProp(prop)
        self.request_render()

    # ------------------------------------------------------------ planes
    def set_slice_positions(self, crosshair_lps_mm: np.ndarray) -> None:
        """Place the three plane frames through an LPS point."""
        self._positions = np.asarray(crosshair_lps_mm, dtype=float).copy()
        self._update_planes()

    def set_planes_visible(self, on: bool) -> None:
        for a in self._plane_actors.values():
            a.SetVisibility(on and self._bounds is not None)
        self.request_render()

    def _update_planes(self) -> None:
        if self._bounds is None:
            return
        lo, hi = self._bounds
        for name, poly in self._plane_polys.items():
            ax = ORIENTATIONS[name].axis
            u, v = [a for a in range(3) if a != ax]
            pts = vtkPoints()
            for cu, cv in ((lo[u], lo[v]), (hi[u], lo[v]), (hi[u], hi[v]), (lo[u], hi[v])):
                p = np.zeros(3)
                p[ax] = self._positions[ax]
                p[u], p[v] = cu, cv
                pts.InsertNextPoint(*p)
            cells = vtkCellArray()
            cells.InsertNextCell(5)
            for i in (0, 1, 2, 3, 0):
                cells.InsertCellPoint(i)
            poly.SetPoints(pts)
            poly.SetLines(cells)
            poly.Modified()
            if name in self._slices:
                origin = np.zeros(3)
                origin[ax] = self._positions[ax]
                self._slices[name][1].SetOrigin(*origin)
        # the frames are a few thin lines: while no CT slice is shown, a moving slice
        # does not redraw the scene at each step, only once the movement pauses
        self._request_if_shown(self.ct_slices_visible())

    # ------------------------------------------------------------ volume rendering
    def set_volume_rendering(self, on: bool, preset: str | None = None) -> None:
        """CT volume rendering (vtkSmartVolumeMapper) with a VR_PRESETS transfer function."""
        from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper

        if preset is not None:
            self._vr_preset = preset
        if not on:
            if self._volume_actor is not None:
                self._volume_actor.VisibilityOff()
            self._update_ct_slice_visibility()
            return
        if self._ct_image is None and getattr(self, "_ct_volume", None) is not None:
            self._ct_image = volume_to_vtk(self._ct_volume)
        if self._ct_image is None:
            return
        if self._volume_actor is None:
            mapper = vtkSmartVolumeMapper()
            local, to_lps = _vr_image(self._ct_image)
            mapper.SetInputData(local)
            # CPU ray casting: with software OpenGL (Mesa llvmpipe) the GPU mapper took
            # 4 s per frame on the demo CT, the CPU one 0.25 s (bench, loaded machine)
            mapper.SetRequestedRenderModeToRayCast()
            mapper.SetInteractiveAdjustSampleDistances(True)
            vol = vtkVolume()
            vol.SetMapper(mapper)
            vol.SetUserMatrix(to_lps)
            vol.SetProperty(vtkVolumeProperty())
            vol.PickableOff()
            self.renderer.AddVolume(vol)
            self._volume_actor = vol
        tf = VR_PRESETS[self._vr_preset]
        ctf = vtkColorTransferFunction()
        for hu, r, g, b in tf["color"]:
            ctf.AddRGBPoint(hu, r, g, b)
        otf = vtkPiecewiseFunction()
        for hu, o in tf["opacity"]:
            otf.AddPoint(hu, o)
        prop = self._volume_actor.GetProperty()
        prop.SetColor(ctf)
        prop.SetScalarOpacity(otf)
        prop.SetInterpolationTypeToLinear()
        prop.ShadeOn()
        prop.SetAmbient(0.25)
        prop.SetDiffuse(0.75)
        self._volume_actor.VisibilityOn()
        self._update_ct_slice_visibility()

    # ------------------------------------------------------------ camera
    def set_camera_preset(self, name: str) -> None:
        """Standard views: anterior, posterior, left, right, superior, inferior."""
        d, up = CAMERA_PRESETS[name]
        self._camera_preset = name
        cam = self.renderer.GetActiveCamera()
        if self._bounds is not None:
            lo, hi = self._focus_bounds()
            centre = (lo + hi) / 2
            radius = float(np.linalg.norm(hi - lo)) / 2
        else:
            centre, radius = np.zeros(3), 100.0
        cam.SetFocalPoint(*centre)
        cam.SetPosition(*(centre - np.array(d, dtype=float) * radius * 4))
        cam.SetViewUp(*up)
        cam.SetViewAngle(30)
        self.renderer.ResetCamera(*[v for pair in zip(lo, hi) for v in pair]
                                  if self._bounds is not None else (-100, 100) * 3)
        if self._slices and self.ct_slices_visible() and not self._surfaces:
            # only CT slices to show: a slightly oblique anterior view shows all three
            cam.Azimuth(-30 if name == "anterior" else 0)
            cam.Elevation(20 if name == "anterior" else 0)
            cam.OrthogonalizeViewUp()
            cam.Zoom(1.3)
        else:
            cam.Zoom(0.95)
        self.renderer.ResetCameraClippingRange()
        self.request_render()

    def _focus_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds of the liver and tumour surfaces when present (the planning target),
        else of all visible surfaces, else the CT."""
        assert self._bounds is not None
        los, his = [], []
        keys = [k for k in FOCUS_KEYS if k in self._surfaces] or list(self._surfaces)
        for key in keys:
            a = self._surfaces[key]
            st = self._styles.get(key)
            if st is not None and not st.visible:
                continue
            b = a.GetBounds()
            if b[0] <= b[1]:
                los.append(b[0::2])
                his.append(b[1::2])
        if not los:
            return self._bounds
        return np.min(los, axis=0), np.max(his, axis=0)

    def reset_camera(self) -> None:
        self.set_camera_preset(self._camera_preset)

    def _request_if_shown(self, shown: bool) -> None:
        """Redraw now for a change the picture shows prominently (``shown``); else once
        the changes pause (PAUSE_RENDER_MS after the last one; policy "queue")."""
        if shown or render_policy() == "eager":
            self.request_render()
            return
        if not self.render_pending:
            self._pause_timer.start()

    def frame_starting(self) -> None:
        timer = getattr(self, "_pause_timer", None)   # None while the base class is built
        if timer is not None:
            timer.stop()                 # this frame shows every change made so far

    def set_interactive_quality(self, on: bool) -> None:
        """Translucent shells with plain blending while dragging (cheap), with
        order-independent transparency at rest."""
        self.renderer.SetUseOIT(not on)

    def render_now(self) -> None:
        self.renderer.ResetCameraClippingRange()
        super().render_now()

    # ------------------------------------------------------------ picking (LPS mm)
    def view_plane_normal(self) -> np.ndarray:
        """Unit direction of projection (LPS, from the camera into the scene); planes
        parallel to the screen are perpendicular to it."""
        d = np.array(self.renderer.GetActiveCamera().GetDirectionOfProjection(), float)
        return d / np.linalg.norm(d)

    def lps_to_qt(self, p: np.ndarray) -> tuple[float, float]:
        """LPS mm -> Qt widget coordinates (logical px, origin top-left); NaN for a point
        behind the camera (it is not on the picture)."""
        p = np.asarray(p, dtype=float)
        cam = self.renderer.GetActiveCamera()
        if not cam.GetParallelProjection() and float(
                np.dot(p - np.array(cam.GetPosition()), self.view_plane_normal())) <= 0:
            return float("nan"), float("nan")
        return self.display_to_qt(*self.world_to_display(p))

    def display_to_plane_lps(self, x: float, y: float, through_lps_mm: np.ndarray
                             ) -> np.ndarray:
        """The LPS point (mm) seen at VTK display point (x, y) (device px, y up) on the
        plane through ``through_lps_mm`` parallel to the screen: the mouse ray (from the
        camera, or along the view direction for a parallel camera) meets that plane."""
        ren = self.renderer
        ends = []
        for z in (0.0, 1.0):   # near and far clipping planes
            ren.SetDisplayPoint(float(x), float(y), z)
            ren.DisplayToWorld()
            w = np.array(ren.GetWorldPoint(), float)
            ends.append(w[:3] / w[3])
        a, b = ends
        n = self.view_plane_normal()
        q = np.asarray(through_lps_mm, dtype=float)
        return a + (b - a) * (float(np.dot(q - a, n)) / float(np.dot(b - a, n)))

    def qt_to_plane_lps(self, x: float, y: float, through_lps_mm: np.ndarray) -> np.ndarray:
        """Qt widget point (logical px) -> LPS mm on the screen-parallel plane through
        ``through_lps_mm`` (see :meth:`display_to_plane_lps`)."""
        return self.display_to_plane_lps(*self.qt_to_display(x, y), through_lps_mm)
