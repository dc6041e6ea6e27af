"""Axial / coronal / sagittal MPR view of a CT Volume, drawn in LPS mm.

The CT is resliced by vtkImageResliceMapper in the plane that faces the camera through
the focal point, so the slice is a true world-axis plane whatever the scan's direction
matrix (oblique and flipped series look the same as axial ones). Cameras follow the
radiological convention:

=========  ====================  ===========  =============================
view       looking along (LPS)   screen up    screen left / right
=========  ====================  ===========  =============================
axial      +S (from the feet)    anterior     patient right / patient left
coronal    +P (from the front)   superior     patient right / patient left
sagittal   -L (from the left)    superior     anterior / posterior
=========  ====================  ===========  =============================

Mouse: left click/drag = move the linked crosshair; right drag = window/level;
middle drag or Shift+left = pan; Ctrl+left drag or Ctrl+wheel = zoom; wheel,
PageUp/PageDown, Up/Down = move one slice (Shift: 10). Double-click = maximise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QWidget
from vtkmodules.vtkCommonCore import vtkLookupTable, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPlane, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkCutter
from vtkmodules.vtkRenderingCore import (
    vtkActor,
    vtkActor2D,
    vtkImageProperty,
    vtkImageSlice,
    vtkPolyDataMapper,
    vtkPolyDataMapper2D,
    vtkProp,
    vtkTextActor,
)
from vtkmodules.vtkRenderingImage import vtkImageResliceMapper, vtkImageStack

from irplan.planning.volume import Volume
from irplan.viewers.presets import VIEW_COLORS
from irplan.viewers.vtk_convert import volume_to_vtk
from irplan.viewers.vtk_widget import VtkWidget


@dataclass(frozen=True)
class Orientation:
    name: str
    normal: tuple[float, float, float]   # direction of projection (camera looks along it)
    view_up: tuple[float, float, float]
    axis: int                            # LPS axis index of the normal
    labels: tuple[str, str, str, str]    # left, right, top, bottom screen edge labels
    axis_label: str                      # prefix for the slice position


ORIENTATIONS: dict[str, Orientation] = {
    "axial": Orientation("axial", (0, 0, 1), (0, -1, 0), 2, ("R", "L", "A", "P"), "S"),
    "coronal": Orientation("coronal", (0, 1, 0), (0, 0, 1), 1, ("R", "L", "S", "I"), "P"),
    "sagittal": Orientation("sagittal", (-1, 0, 0), (0, 0, 1), 0, ("A", "P", "S", "I"), "L"),
}

_TEXT_RGB = (0.92, 0.92, 0.88)


def _text_actor(size: int, color: tuple[float, float, float] = _TEXT_RGB, bold: bool = False,
                ) -> vtkTextActor:
    t = vtkTextActor()
    p = t.GetTextProperty()
    p.SetFontSize(size)
    p.SetColor(*color)
    p.SetBold(bold)
    p.SetFontFamilyToArial()
    p.SetShadow(True)
    p.SetShadowOffset(1, -1)
    return t


def _nice_length_mm(max_mm: float) -> float:
    """Largest 1/2/5 x 10^n length <= max_mm."""
    if max_mm <= 0:
        return 1.0
    e = 10 ** np.floor(np.log10(max_mm))
    for m in (5, 2, 1):
        if m * e <= max_mm:
            return float(m * e)
    return float(e)


@dataclass
class StructureStyle:
    """How one structure is drawn: colour RGB 0-1, 2-D fill opacity, 3-D opacity."""

    color: tuple[float, float, float]
    opacity_2d: float = 0.35
    opacity_3d: float = 1.0
    visible: bool = True
    name: str = ""


class MprView(VtkWidget):
    """One MPR view. Emits ``crosshair_requested(lps)`` on click, ``cursor_moved(lps, hu)``
    on hover (hu is NaN outside the CT), ``window_changed(w, l)`` when dragged."""

    crosshair_requested = Signal(object)
    cursor_moved = Signal(object, float)
    window_changed = Signal(float, float)
    slice_changed = Signal(str, float)
    maximise_requested = Signal()
    camera_changed = Signal(str)     # zoom or pan by the user (view name)

    def __init__(self, orientation: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.orientation = ORIENTATIONS[orientation]
        self.name = orientation
        self.volume: Volume | None = None
        self._image: vtkImageData | None = None
        self._normal = np.array(self.orientation.normal, dtype=float)
        self._step_mm = 1.0
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None
        self._crosshair = np.zeros(3)
        self._drag: tuple[str, float, float] | None = None
        self._drag_start: tuple[float, float, float, float, np.ndarray, np.ndarray] | None = None
        self._window = (400.0, 50.0)
        # editing tool (ViewSet.set_tool): takes plain left presses when it wants them;
        # an object with press(view, lps) -> bool, move(view, lps), release(view, lps)
        # and optionally hover(view, lps) (mouse moves without a button)
        self.tool = None
        self.outline_mode = True   # contour lines of the surfaces; fills until they exist
        self.show_crosshair = True

        ren = self.renderer
        ren.SetBackground(0, 0, 0)
        cam = ren.GetActiveCamera()
        cam.ParallelProjectionOn()

        # image stack: CT (layer 0) + structure fills (layers 1..n)
        self._stack = vtkImageStack()
        ren.AddViewProp(self._stack)
        self._ct_slice = vtkImageSlice()
        self._ct_mapper = vtkImageResliceMapper()
        self._ct_mapper.SliceFacesCameraOn()
        self._ct_mapper.SliceAtFocalPointOn()
        self._ct_mapper.ResampleToScreenPixelsOn()
        self._ct_slice.SetMapper(self._ct_mapper)
        prop = self._ct_slice.GetProperty()
        prop.SetInterpolationTypeToLinear()
        prop.SetLayerNumber(0)
        self._ct_slice.VisibilityOff()
        self._stack.AddImage(self._ct_slice)
        self._struct_slices: dict[str, tuple[vtkImageSlice, vtkImageData]] = {}
        self._struct_outlines: dict[str, tuple[vtkActor, vtkCutter]] = {}
        self._struct_voxels: dict[str, int] = {}
        self._styles: dict[str, StructureStyle] = {}
        self._cut_plane = vtkPlane()
        self._slabs: list[tuple[vtkActor, vtkPlane, vtkPlane, float]] = []

        # crosshair (overlay layer, never hidden by the image)
        self._cross_pts = vtkPoints()
        self._cross_poly = vtkPolyData()
        self._cross_actors: list[vtkActor] = []
        self._cross_polys: list[vtkPolyData] = []
        for other in ("axial", "coronal", "sagittal"):
            if other == orientation:
                continue
            poly = vtkPolyData()
            m = vtkPolyDataMapper()
            m.SetInputData(poly)
            a = vtkActor()
            a.SetMapper(m)
            a.GetProperty().SetColor(*VIEW_COLORS[other])
            a.GetProperty().SetLineWidth(1.0)
            a.GetProperty().SetOpacity(0.85)
            a.GetProperty().LightingOff()
            a.PickableOff()
            self.overlay_renderer.AddActor(a)
            self._cross_actors.append(a)
            self._cross_polys.append(poly)

        # annotations
        self._edge_labels: list[vtkTextActor] = []
        for pos, just in (((0.012, 0.5), "left"), ((0.988, 0.5), "right"),
                          ((0.5, 0.985), "top"), ((0.5, 0.015), "bottom")):
            t = _text_actor(15, (1.0, 0.85, 0.35), bold=True)
            tp = t.GetTextProperty()
            tp.SetJustification({"left": 0, "right": 2}.get(just, 1))
            tp.SetVerticalJustification({"top": 2, "bottom": 0}.get(just, 1))
            t.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
            t.GetPositionCoordinate().SetValue(*pos)
            self._edge_labels.append(t)
            self.overlay_renderer.AddViewProp(t)
        for t, lab in zip(self._edge_labels, self.orientation.labels):
            t.SetInput(lab)
        self._title = _text_actor(14, VIEW_COLORS[orientation], bold=True)
        self._title.GetTextProperty().SetVerticalJustificationToTop()
        self._title.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        self._title.GetPositionCoordinate().SetValue(0.012, 0.985)
        self._title.SetInput(orientation.capitalize())
        self.overlay_renderer.AddViewProp(self._title)
        self._info = _text_actor(13)
        self._info.GetTextProperty().SetVerticalJustificationToTop()
        self._info.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        self._info.GetPositionCoordinate().SetValue(0.012, 0.935)
        self.overlay_renderer.AddViewProp(self._info)
        self._wl_text = _text_actor(13)
        self._wl_text.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        self._wl_text.GetPositionCoordinate().SetValue(0.012, 0.015)
        self.overlay_renderer.AddViewProp(self._wl_text)
        # scale bar (display coordinates, updated before each render)
        self._bar_pts = vtkPoints()
        self._bar_poly = vtkPolyData()
        self._bar_poly.SetPoints(self._bar_pts)
        bar_map = vtkPolyDataMapper2D()
        bar_map.SetInputData(self._bar_poly)
        self._bar = vtkActor2D()
        self._bar.SetMapper(bar_map)
        self._bar.GetProperty().SetColor(*_TEXT_RGB)
        self._bar.GetProperty().SetLineWidth(2)
        self.overlay_renderer.AddViewProp(self._bar)
        self._bar_text = _text_actor(12)
        self._bar_text.GetTextProperty().SetJustificationToCentered()
        self.overlay_renderer.AddViewProp(self._bar_text)
        self._set_annotations_visible(False)

        self.double_clicked.connect(self.maximise_requested)

    # ================================================================= data
    def set_volume(self, volume: Volume | None, image: vtkImageData | None = None) -> None:
        """Show a CT Volume (LPS). ``image``: an existing vtkImageData of it to share."""
        self.volume = volume
        if volume is None:
            self._ct_slice.VisibilityOff()
            self._set_annotations_visible(False)
            self.request_render()
            return
        self._image = image if image is not None else volume_to_vtk(volume)
        self._ct_mapper.SetInputData(self._image)
        self._ct_slice.VisibilityOn()
        lo, hi = volume.bounds_lps()
        half = np.abs(volume.direction) @ (volume.spacing_mm / 2)
        self._bounds = (lo - half, hi + half)
        # slice step: spacing of the grid axis closest to the view normal
        along = np.abs(volume.direction.T @ self._normal)
        self._step_mm = float(volume.spacing_mm[int(np.argmax(along))])
        self._crosshair = (self._bounds[0] + self._bounds[1]) / 2
        self._set_annotations_visible(True)
        self.reset_camera()

    @property
    def image(self) -> vtkImageData | None:
        return self._image

    def set_window(self, width_hu: float, level_hu: float, emit: bool = False) -> None:
        width_hu = max(1.0, float(width_hu))
        self._window = (width_hu, float(level_hu))
        p: vtkImageProperty = self._ct_slice.GetProperty()
        p.SetColorWindow(width_hu)
        p.SetColorLevel(level_hu)
        self._wl_text.SetInput(f"W {width_hu:.0f}  L {level_hu:.0f}")
        if emit:
            self.window_changed.emit(width_hu, float(level_hu))
        self.request_render()

    @property
    def window(self) -> tuple[float, float]:
        return self._window

    # ------------------------------------------------------------ structures
    def set_structure(self, key: str, mask: Volume | None, style: StructureStyle | None = None,
                      image: vtkImageData | None = None) -> None:
        """Add/replace (mask given) or remove (None) a structure's coloured overlay."""
        old = self._struct_slices.pop(key, None)
        if old is not None:
            self._stack.RemoveImage(old[0])
        if mask is None:
            self._styles.pop(key, None)
            self.set_structure_surface(key, None)
            self.request_render()
            return
        img = image if image is not None else volume_to_vtk(mask)
        sl = vtkImageSlice()
        m = vtkImageResliceMapper()
        m.SetInputData(img)
        m.SliceFacesCameraOn()
        m.SliceAtFocalPointOn()
        # reslice at voxel resolution (nearest-neighbour texture): 3x cheaper than at
        # screen resolution and the same picture for a label mask
        m.ResampleToScreenPixelsOff()
        sl.SetMapper(m)
        prop = sl.GetProperty()
        prop.SetInterpolationTypeToNearest()
        prop.UseLookupTableScalarRangeOn()
        self._struct_slices[key] = (sl, img)
        self._struct_voxels[key] = int(np.count_nonzero(mask.array))
        self._stack.AddImage(sl)
        # smaller structures on top (a tumour fill stays visible inside the liver's)
        ranked = sorted(self._struct_slices, key=lambda k: -self._struct_voxels.get(k, 0))
        for layer, k in enumerate(ranked, start=1):
            self._struct_slices[k][0].GetProperty().SetLayerNumber(layer)
        if style is not None:
            self._styles[key] = style
        self.set_structure_style(key, self._styles.get(key) or StructureStyle((0.6, 0.6, 0.6)))

    def refresh_structure(self, key: str) -> None:
        """Redraw a structure whose mask voxels were edited in place (brush)."""
        entry = self._struct_slices.get(key)
        if entry is not None:
            img = entry[1]
            img.GetPointData().GetScalars().Modified()
            img.Modified()
            self.request_render()

    def set_structure_style(self, key: str, style: StructureStyle) -> None:
        self._styles[key] = style
        entry = self._struct_slices.get(key)
        if entry is not None:
            sl, _ = entry
            lut = vtkLookupTable()
            lut.SetNumberOfTableValues(2)
            lut.SetTableRange(0, 1)
            lut.SetTableValue(0, 0, 0, 0, 0)
            lut.SetTableValue(1, *style.color, 1.0)
            lut.Build()
            sl.GetProperty().SetLookupTable(lut)
            sl.GetProperty().SetOpacity(style.opacity_2d)
            has_outline = key in self._struct_outlines
            sl.SetVisibility(style.visible and not (self.outline_mode and has_outline))
        out = self._struct_outlines.get(key)
        if out is not None:
            actor, _ = out
            actor.GetProperty().SetColor(*style.color)
            actor.SetVisibility(style.visible and self.outline_mode)
        self.request_render()

    def set_structure_surface(self, key: str, poly: vtkPolyData | None) -> None:
        """Surface mesh of a structure, used for outline mode (cut by the slice plane)."""
        old = self._struct_outlines.pop(key, None)
        if old is not None:
            self.overlay_renderer.RemoveActor(old[0])
        if poly is None or poly.GetNumberOfPoints() == 0:
            return
        cutter = vtkCutter()
        cutter.SetInputData(poly)
        cutter.SetCutFunction(self._cut_plane)
        m = vtkPolyDataMapper()
        m.SetInputConnection(cutter.GetOutputPort())
        m.ScalarVisibilityOff()
        a = vtkActor()
        a.SetMapper(m)
        a.GetProperty().SetLineWidth(2.0)
        a.GetProperty().LightingOff()
        a.PickableOff()
        self.overlay_renderer.AddActor(a)
        self._struct_outlines[key] = (a, cutter)
        style = self._styles.get(key)
        if style is not None:
            self.set_structure_style(key, style)

    def set_outline_mode(self, outline: bool) -> None:
        """Draw structures as contour lines (True) or translucent fills (False). In
        outline mode a structure whose surface is not computed yet is drawn filled."""
        self.outline_mode = outline
        for key, style in list(self._styles.items()):
            self.set_structure_style(key, style)

    def structure_keys(self) -> list[str]:
        return list(self._struct_slices)

    # ------------------------------------------------------------ overlays
    def add_overlay_actor(self, prop: vtkProp, on_top: bool = False) -> None:
        """Add a VTK prop drawn in LPS mm. ``on_top``: draw it above the image (overlay
        layer, never hidden by the slice); otherwise it is depth-tested with the slice."""
        (self.overlay_renderer if on_top else self.renderer).AddViewProp(prop)
        self.request_render()

    def remove_overlay_actor(self, prop: vtkProp) -> None:
        self.overlay_renderer.RemoveViewProp(prop)
        self.renderer.RemoveViewProp(prop)
        self._slabs = [s for s in self._slabs if s[0] is not prop]
        self.request_render()

    def clip_to_slab(self, actor: vtkActor, half_thickness_mm: float) -> None:
        """Show only the part of ``actor`` within +-half_thickness_mm of the slice plane
        (kept up to date when the slice moves), e.g. a needle crossing the slice."""
        below, above = vtkPlane(), vtkPlane()
        mapper = actor.GetMapper()
        mapper.AddClippingPlane(below)
        mapper.AddClippingPlane(above)
        self._slabs.append((actor, below, above, float(half_thickness_mm)))
        self._update_slabs()

    def _update_slabs(self) -> None:
        fp, n = self.slice_plane()
        for _actor, below, above, half in self._slabs:
            below.SetOrigin(*(fp - n * half))
            below.SetNormal(*n)          # keeps the side the normal points to
            above.SetOrigin(*(fp + n * half))
            above.SetNormal(*(-n))

    # ================================================================= geometry
    @property
    def normal(self) -> np.ndarray:
        """Unit view direction (LPS); the slice plane is perpendicular to it."""
        return self._normal.copy()

    @property
    def slice_position_mm(self) -> float:
        """Slice position along this view's LPS axis (mm): S for axial, P coronal, L sagittal."""
        fp = np.array(self.renderer.GetActiveCamera().GetFocalPoint())
        return float(fp[self.orientation.axis])

    def slice_plane(self) -> tuple[np.ndarray, np.ndarray]:
        """(point on plane, unit normal) in LPS mm."""
        fp = np.array(self.renderer.GetActiveCamera().GetFocalPoint())
        return fp, self._normal.copy()

    @property
    def step_mm(self) -> float:
        return self._step_mm

    def set_slice_position(self, pos_mm: float, emit: bool = True) -> None:
        """Move the slice to ``pos_mm`` along the view's LPS axis (clamped to the CT)."""
        if self._bounds is not None:
            ax = self.orientation.axis
            pos_mm = float(np.clip(pos_mm, self._bounds[0][ax], self._bounds[1][ax]))
        cam = self.renderer.GetActiveCamera()
        fp = np.array(cam.GetFocalPoint())
        pos = np.array(cam.GetPosition())
        ax = self.orientation.axis
        delta = pos_mm - fp[ax]
        fp[ax] += delta
        pos[ax] += delta
        cam.SetFocalPoint(*fp)
        cam.SetPosition(*pos)
        self._crosshair[ax] = pos_mm
        self._after_slice_move()
        if emit:
            self.slice_changed.emit(self.name, pos_mm)

    def scroll(self, n_slices: float) -> None:
        """Move ``n_slices`` slices towards the camera's far side (positive = +axis)."""
        self.set_slice_position(self.slice_position_mm + n_slices * self._step_mm)

    def set_crosshair(self, p_lps_mm: np.ndarray) -> None:
        """Put the crosshair at an LPS point and move this view's slice through it."""
        self._crosshair = np.asarray(p_lps_mm, dtype=float).copy()
        self.set_slice_position(float(self._crosshair[self.orientation.axis]), emit=False)

    @property
    def crosshair_lps_mm(self) -> np.ndarray:
        return self._crosshair.copy()

    def reset_camera(self) -> None:
        """Fit the CT to the view, slice through the crosshair."""
        if self._bounds is None:
            return
        lo, hi = self._bounds
        centre = (lo + hi) / 2
        ax = self.orientation.axis
        fp = centre.copy()
        fp[ax] = self._crosshair[ax]
        cam = self.renderer.GetActiveCamera()
        dist = float(np.linalg.norm(hi - lo)) + 100.0
        cam.SetFocalPoint(*fp)
        cam.SetPosition(*(fp - self._normal * dist))
        cam.SetViewUp(*self.orientation.view_up)
        up = np.array(self.orientation.view_up, dtype=float)
        right = np.cross(self._normal, up)
        ext = hi - lo
        h_mm = float(np.abs(up) @ ext)
        w_mm = float(np.abs(right) @ ext)
        w, h = self.display_size()
        aspect = w / h if h > 0 else 1.0
        cam.SetParallelScale(max(h_mm / 2, w_mm / 2 / max(aspect, 1e-3)) * 1.04)
        self._after_slice_move()

    def _follow_slice(self) -> np.ndarray:
        """Cut plane, overlay slabs and camera follow the slice through the focal point
        (returned, LPS mm); subclasses with other planes reuse it."""
        cam = self.renderer.GetActiveCamera()
        fp = np.array(cam.GetFocalPoint())
        self._cut_plane.SetOrigin(*fp)
        self._cut_plane.SetNormal(*self._normal)
        self._update_slabs()
        if self._bounds is not None:
            lo, hi = self._bounds
            d = float(np.linalg.norm(hi - lo)) + 100.0
            cam.SetPosition(*(fp - self._normal * d))
            cam.SetClippingRange(1.0, 2 * d + 10)
        return fp

    def _after_slice_move(self) -> None:
        fp = self._follow_slice()
        if self._bounds is not None:
            lo, hi = self._bounds
            ax = self.orientation.axis
            n_total = int(round((hi[ax] - lo[ax]) / self._step_mm))
            idx = int(round((fp[ax] - lo[ax]) / self._step_mm - 0.5)) + 1
            lab = self.orientation.axis_label
            self._info.SetInput(f"{lab} {fp[ax]:+.1f} mm   ({idx}/{n_total})")
        self._update_crosshair_geometry()
        self.request_render()

    def set_crosshair_visible(self, on: bool) -> None:
        """Show or hide the linked crosshair lines of this view."""
        self.show_crosshair = bool(on)
        self._update_crosshair_geometry()
        self.request_render()

    def set_crosshair_coordinate(self, axis: int, pos_mm: float) -> None:
        """Another view's slice moved: the crosshair's LPS ``axis`` coordinate (mm)."""
        self._crosshair[axis] = pos_mm
        self._update_crosshair_geometry()
        self.request_render()

    def _update_crosshair_geometry(self) -> None:
        if self._bounds is None:
            return
        lo, hi = self._bounds
        ax = self.orientation.axis
        c = self._crosshair.copy()
        c[ax] = self.slice_position_mm
        cam = self.renderer.GetActiveCamera()
        gap = cam.GetParallelScale() * 0.04
        others = [a for a in range(3) if a != ax]
        # the line drawn for another view's plane runs along the remaining axis
        names = [n for n in ("axial", "coronal", "sagittal") if n != self.name]
        for poly, other in zip(self._cross_polys, names):
            oax = ORIENTATIONS[other].axis
            run = [a for a in others if a != oax][0]
            pts = vtkPoints()
            lines = vtkCellArray()
            segs = ((lo[run], c[run] - gap), (c[run] + gap, hi[run]))
            for s0, s1 in segs:
                if s1 <= s0:
                    continue
                p0, p1 = c.copy(), c.copy()
                p0[run], p1[run] = s0, s1
                i0 = pts.InsertNextPoint(*p0)
                i1 = pts.InsertNextPoint(*p1)
                lines.InsertNextCell(2)
                lines.InsertCellPoint(i0)
                lines.InsertCellPoint(i1)
            poly.SetPoints(pts)
            poly.SetLines(lines)
            poly.Modified()
        for a in self._cross_actors:
            a.SetVisibility(self.show_crosshair)

    def _set_annotations_visible(self, on: bool) -> None:
        for t in self._edge_labels:
            t.SetVisibility(on)
        for t in (self._info, self._wl_text, self._bar, self._bar_text):
            t.SetVisibility(on)
        for a in self._cross_actors:
            a.SetVisibility(on and self.show_crosshair)

    def before_render(self) -> None:
        """Scale bar: a round length (mm) about a fifth of the view width."""
        w, h = self.display_size()
        if w < 2 or h < 2 or self.volume is None:
            return
        mm_per_px = 2 * self.renderer.GetActiveCamera().GetParallelScale() / h
        length_mm = _nice_length_mm(0.2 * w * mm_per_px)
        length_px = length_mm / mm_per_px
        x1 = w - 14
        x0 = x1 - length_px
        y = 16
        pts = self._bar_pts
        pts.Reset()
        for x, yy in ((x0, y + 5), (x0, y), (x1, y), (x1, y + 5)):
            pts.InsertNextPoint(x, yy, 0)
        lines = vtkCellArray()
        lines.InsertNextCell(4)
        for i in range(4):
            lines.InsertCellPoint(i)
        self._bar_poly.SetLines(lines)
        self._bar_poly.Modified()
        label = f"{length_mm:.0f} mm" if length_mm >= 1 else f"{length_mm:.1f} mm"
        self._bar_text.SetInput(label)
        self._bar_text.SetPosition((x0 + x1) / 2, y + 6)
        self._update_crosshair_geometry()

    # ================================================================= picking
    def display_to_lps(self, x: float, y: float) -> np.ndarray:
        """VTK display point (device px, y up) -> LPS mm on the current slice plane."""
        ren = self.renderer
        ren.SetDisplayPoint(float(x), float(y), 0.0)
        ren.DisplayToWorld()
        wp = np.array(ren.GetWorldPoint()[:3])
        fp, n = self.slice_plane()
        return wp - n * float(np.dot(wp - fp, n))

    def lps_to_qt(self, p: np.ndarray) -> tuple[float, float]:
        """LPS mm -> Qt widget coordinates (logical px, origin top-left)."""
        return self.display_to_qt(*self.world_to_display(np.asarray(p, dtype=float)))

    def hu_at(self, p_lps_mm: np.ndarray) -> float:
        """CT value (HU) of the voxel containing an LPS point; NaN outside the CT."""
        if self.volume is None:
            return float("nan")
        i, j, k = self.volume.lps_to_voxel(np.asarray(p_lps_mm, dtype=float))
        ni, nj, nk = self.volume.size_xyz
        if 0 <= i < ni and 0 <= j < nj and 0 <= k < nk:
            return float(self.volume.array[k, j, i])
        return float("nan")

    # ================================================================= events
    def _event_lps(self, ev) -> np.ndarray:
        pos = ev.position()
        return self.display_to_lps(*self.qt_to_display(pos.x(), pos.y()))

    def mousePressEvent(self, ev) -> None:  # noqa: N802
        self.setFocus()
        if self.volume is None:
            return
        btn = ev.button()
        mods = ev.modifiers()
        pos = ev.position()
        mode = None
        if btn == Qt.MouseButton.LeftButton:
            if mods & Qt.KeyboardModifier.ShiftModifier:
                mode = "pan"
            elif mods & Qt.KeyboardModifier.ControlModifier:
                mode = "zoom"
            elif mods & Qt.KeyboardModifier.AltModifier:
                mode = "window"
            else:
                mode = "cross"
        elif btn == Qt.MouseButton.RightButton:
            mode = "window"
        elif btn == Qt.MouseButton.MiddleButton:
            mode = "pan"
        if mode == "cross" and self.tool is not None and self.tool.press(self,
                                                                          self._event_lps(ev)):
            self._drag = ("tool", pos.x(), pos.y())
            ev.accept()
            return
        if mode is None:
            return
        cam = self.renderer.GetActiveCamera()
        self._drag = (mode, pos.x(), pos.y())
        self._drag_start = (pos.x(), pos.y(), self._window[0], self._window[1],
                            np.array(cam.GetFocalPoint()), np.array(cam.GetPosition()))
        self._drag_scale = cam.GetParallelScale()
        if mode == "cross":
            self.crosshair_requested.emit(self._event_lps(ev))
        ev.accept()

    def mouseMoveEvent(self, ev) -> None:  # noqa: N802
        if self.volume is None:
            return
        p = self._event_lps(ev)
        if self._drag is None:
            self._take_key_focus()
            self.cursor_moved.emit(p, self.hu_at(p))
            if self.tool is not None and hasattr(self.tool, "hover"):
                self.tool.hover(self, p)
            return
        mode = self._drag[0]
        if mode == "tool":
            if self.tool is not None:
                self.tool.move(self, p)
            self.cursor_moved.emit(p, self.hu_at(p))
            ev.accept()
            return
        x0, y0, w0, l0, fp0, pos0 = self._drag_start  # type: ignore[misc]
        pos = ev.position()
        dx, dy = pos.x() - x0, pos.y() - y0
        cam = self.renderer.GetActiveCamera()
        if mode == "cross":
            self.crosshair_requested.emit(p)
            self.cursor_moved.emit(p, self.hu_at(p))
        elif mode == "window":
            w = max(1.0, w0 * float(np.exp(dx * 0.006)))
            lvl = l0 - dy * max(w0, 20.0) * 0.004
            self.set_window(w, lvl, emit=True)
        elif mode == "pan":
            _, h = self.display_size()
            mm_per_px = 2 * cam.GetParallelScale() / max(h, 1) * self.pixel_ratio()
            up = np.array(cam.GetViewUp())
            right = np.cross(self._normal, up)
            shift = (-dx * right + dy * up) * mm_per_px
            cam.SetFocalPoint(*(fp0 + shift))
            cam.SetPosition(*(pos0 + shift))
            self._after_slice_move()
            self.camera_changed.emit(self.name)
        elif mode == "zoom":
            cam.SetParallelScale(self._drag_scale * float(np.exp(dy * 0.01)))
            self._update_crosshair_geometry()
            self.request_render()
            self.camera_changed.emit(self.name)
        ev.accept()

    def mouseReleaseEvent(self, ev) -> None:  # noqa: N802
        if self._drag is not None and self._drag[0] == "tool" and self.tool is not None:
            self.tool.release(self, self._event_lps(ev))
        self._drag = None
        self._drag_start = None
        ev.accept()

    def wheelEvent(self, ev) -> None:  # noqa: N802
        if self.volume is None:
            return
        steps = ev.angleDelta().y() / 120.0
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom(1.1 ** steps)
        else:
            fast = 10 if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
            self.scroll(steps * fast)
        ev.accept()

    def zoom(self, factor: float) -> None:
        """Magnify by ``factor`` (>1 = closer)."""
        cam = self.renderer.GetActiveCamera()
        cam.SetParallelScale(cam.GetParallelScale() / factor)
        self._update_crosshair_geometry()
        self.request_render()
        self.camera_changed.emit(self.name)

    def set_zoom_pan(self, parallel_scale_mm: float, centre_lps_mm: np.ndarray,
                     axes: tuple[int, ...]) -> None:
        """Follow another view (synchronised zoom/pan): its parallel scale (mm, half the
        view height) and its view centre along the LPS ``axes`` both views show."""
        cam = self.renderer.GetActiveCamera()
        cam.SetParallelScale(float(parallel_scale_mm))
        fp = np.array(cam.GetFocalPoint())
        for a in axes:
            if a != self.orientation.axis:
                fp[a] = float(centre_lps_mm[a])
        cam.SetFocalPoint(*fp)
        self._after_slice_move()

    @property
    def parallel_scale_mm(self) -> float:
        """Half the view height in mm (zoom)."""
        return float(self.renderer.GetActiveCamera().GetParallelScale())

    def _take_key_focus(self) -> None:
        """The view under the pointer gets the keyboard (PageUp/Down, arrows) without a
        click, unless a text field or other control has it."""
        focus = QWidget.window(self).focusWidget()   # (.window is VTK's attribute)
        if focus is self:
            return
        if focus is None or isinstance(focus, VtkWidget):
            self.setFocus(Qt.FocusReason.MouseFocusReason)

    def enterEvent(self, ev) -> None:  # noqa: N802
        self._take_key_focus()
        super().enterEvent(ev)

    def keyPressEvent(self, ev) -> None:  # noqa: N802
        key = ev.key()
        fast = 10 if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier else 1
        if key in (Qt.Key.Key_PageUp, Qt.Key.Key_Up):
            self.scroll(fast)
        elif key in (Qt.Key.Key_PageDown, Qt.Key.Key_Down):
            self.scroll(-fast)
        elif key == Qt.Key.Key_Plus or key == Qt.Key.Key_Equal:
            self.zoom(1.2)
        elif key == Qt.Key.Key_Minus:
            self.zoom(1 / 1.2)
        else:
            ev.ignore()
            return
        ev.accept()

    def set_interactive_quality(self, on: bool) -> None:
        """While dragging/scrolling the CT is resliced at voxel resolution and drawn as a
        linearly filtered texture (0.42x the time of a screen-resolution reslice on the
        demo, software GL); at rest and in captures at screen resolution."""
        self._ct_mapper.SetResampleToScreenPixels(not on)

    def resizeEvent(self, ev) -> None:  # noqa: N802
        super().resizeEvent(ev)
        self.request_render()
