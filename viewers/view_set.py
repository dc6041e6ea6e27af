"""The four linked views (axial, coronal, sagittal, 3D) in a 2x2 grid.

``ViewSet`` is the one place other modules use to draw into the views:

- ``views.add_overlay_actor(actor, view="axial"|"coronal"|"sagittal"|"3d", on_top=False)``
  adds a VTK prop (LPS mm) to one view. A VTK actor may live in one render window only:
  make one actor per view (they can share a vtkPolyData).
- ``views.add_overlay_polydata(key, poly, color, ...)`` makes those per-view actors for you
  (lines/tubes/meshes in LPS mm) and ``views.remove_overlay(key)`` removes them.
- ``views.crosshair_changed(lps)`` / ``views.slice_changed(view, pos_mm)`` tell where the
  user looks; ``views.set_crosshair(lps)`` moves all views to a point.
- ``views.mpr("axial")`` etc. give a view; ``views.render()`` redraws all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from psygnal import Signal as Event
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QVBoxLayout, QWidget
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkProp

from irplan.planning.structures import structure_types
from irplan.planning.volume import Volume
from irplan.viewers.mpr_view import MprView, StructureStyle
from irplan.viewers.presets import DEFAULT_WINDOW, VIEW_COLORS, dicom_window, window_preset
from irplan.viewers.scene3d import Scene3DView
from irplan.viewers.vtk_convert import volume_to_vtk

MPR_NAMES = ("axial", "coronal", "sagittal")
VIEW_NAMES = (*MPR_NAMES, "3d")
HIDDEN_BY_DEFAULT = ("body", "skin")


def default_style(key: str) -> StructureStyle:
    """Style from the standard structure table (resources/structures.json)."""
    types = structure_types()
    st = types.get(key) or types["other"]
    name = st.name if key in types else key
    # the body outline hides everything in 3D: listed, but off until the user asks
    visible = key not in HIDDEN_BY_DEFAULT
    return StructureStyle(color=tuple(st.color), opacity_2d=0.4, opacity_3d=st.opacity,
                          visible=visible, name=name)


class ViewCell(QFrame):
    """A thin frame of ``color`` (RGB 0-1) around a view on black (also the probe
    views' cells; ``name``: the object name its style sheet is keyed on)."""

    def __init__(self, view: QWidget, color: tuple[float, float, float],
                 name: str = "viewCell") -> None:
        super().__init__()
        r, g, b = (int(c * 255) for c in color)
        self.setObjectName(name)
        self.setStyleSheet(f"#{name} {{ border: 1px solid rgb({r},{g},{b}); "
                           "background: black; }")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(1, 1, 1, 1)
        lay.addWidget(view)
        self.view = view


class ViewSet(QObject):
    """Axial, coronal, sagittal MPR views and the 3D scene, linked by one crosshair."""

    crosshair_changed = Signal(object)        # LPS mm (np.ndarray)
    slice_changed = Signal(str, float)        # view name, position mm along its axis
    cursor_moved = Signal(object, float)      # LPS mm under the mouse, HU (NaN outside)
    window_changed = Signal(float, float)     # width, level HU
    maximised_changed = Signal(str)           # view name or "" for the 2x2 layout
    # how a structure is drawn changed (colour, opacities, visibility, surface mesh):
    # its key, or "" for all of them (outline mode); psygnal, also outside Qt
    style_changed = Event(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.axial = MprView("axial")
        self.coronal = MprView("coronal")
        self.sagittal = MprView("sagittal")
        self.scene3d = Scene3DView()
        self.volume: Volume | None = None
        self.ct_image = None
        self.styles: dict[str, StructureStyle] = {}
        self._masks: dict[str, Volume] = {}
        self._surfaces: dict[str, vtkPolyData] = {}
        self._overlays: dict[str, list[tuple[QWidget, vtkProp]]] = {}
        self._crosshair = np.zeros(3)
        self._window = (window_preset(DEFAULT_WINDOW).width_hu,
                        window_preset(DEFAULT_WINDOW).level_hu)
        self._window_key = DEFAULT_WINDOW
        self.maximised = ""
        self.instead: QWidget | None = None   # shown in place of the four views
        self.sync_zoom_pan = False    # zoom/pan in one slice view applies to all three
        self._syncing = False

        self.widget = QWidget(parent)
        grid = QGridLayout(self.widget)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        self._grid = grid
        self._cells: dict[str, ViewCell] = {}
        self._cell_pos: dict[str, tuple[int, int]] = {}
        for (r, c), name in zip(((0, 0), (0, 1), (1, 0), (1, 1)), VIEW_NAMES):
            cell = ViewCell(self.view(name), VIEW_COLORS[name])
            grid.addWidget(cell, r, c)
            self._cells[name] = cell
            self._cell_pos[name] = (r, c)
        grid.setRowStretch(0, 1)
        grid.setRowStretch(1, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)

        for v in self.mprs():
            v.crosshair_requested.connect(self.set_crosshair)
            v.cursor_moved.connect(self.cursor_moved)
            v.window_changed.connect(self._on_view_window)
            v.slice_changed.connect(self._on_slice_changed)
            v.maximise_requested.connect(lambda n=v.name: self.toggle_maximise(n))
            v.camera_changed.connect(self._on_camera_changed)
            v.set_window(*self._window)
        self.scene3d.maximise_requested.connect(lambda: self.toggle_maximise("3d"))

    # ------------------------------------------------------------------ access
    def view(self, name: str) -> MprView | Scene3DView:
        return {"axial": self.axial, "coronal": self.coronal, "sagittal": self.sagittal,
                "3d": self.scene3d}[name]

    def mpr(self, name: str) -> MprView:
        return {"axial": self.axial, "coronal": self.coronal, "sagittal": self.sagittal}[name]

    def mprs(self) -> tuple[MprView, MprView, MprView]:
        return (self.axial, self.coronal, self.sagittal)

    def __iter__(self) -> Iterator[MprView | Scene3DView]:
        return iter((self.axial, self.coronal, self.sagittal, self.scene3d))

    def render(self) -> None:
        """Schedule a redraw of every view."""
        for v in self:
            v.request_render()

    def render_now(self) -> None:
        for v in self:
            v.render_now()

    # ------------------------------------------------------------------ CT
    def set_volume(self, volume: Volume | None) -> None:
        """Show a new CT (or clear). Structures and overlays of the old CT are removed."""
        for key in list(self._masks):
            self.set_structure(key, None)
        self.styles.clear()
        self.volume = volume
        self.ct_image = volume_to_vtk(volume) if volume is not None else None
        for v in self:
            v.set_volume(volume, self.ct_image)
        if volume is not None:
            lo, hi = volume.bounds_lps()
            self._crosshair = (lo + hi) / 2
            own = dicom_window(volume.metadata)
            if self._window_key == "dicom" and own is not None:
                self._window = own
            self.set_window(*self._window)
            self.set_crosshair(self._crosshair)
        # no position or HU of the previous CT stays on show (NaN: no point under the mouse)
        self.cursor_moved.emit(np.full(3, np.nan), float("nan"))

    def set_window(self, width_hu: float, level_hu: float) -> None:
        self._window = (float(width_hu), float(level_hu))
        for v in self.mprs():
            v.set_window(width_hu, level_hu)
        self.scene3d.set_window(width_hu, level_hu)
        self.window_changed.emit(float(width_hu), float(level_hu))

    def apply_window_preset(self, key: str) -> tuple[float, float]:
        """Apply a preset from viewers.presets (``"dicom"`` = the series' own window)."""
        self._window_key = key
        if key == "dicom":
            own = dicom_window(self.volume.metadata) if self.volume is not None else None
            wl = own or (window_preset("dicom").width_hu, window_preset("dicom").level_hu)
        else:
            p = window_preset(key)
            wl = (p.width_hu, p.level_hu)
        self.set_window(*wl)
        return wl

    @property
    def window(self) -> tuple[float, float]:
        return self._window

    @property
    def window_key(self) -> str:
        """The last window preset applied (``"dicom"``: the series' own window)."""
        return self._window_key

    @window_key.setter
    def window_key(self, key: str) -> None:
        """Remember ``key`` without applying it (a ``"dicom"`` window applies with the
        next CT)."""
        self._window_key = key

    def set_crosshair_visible(self, on: bool) -> None:
        """Show or hide the crosshair lines in the slice views."""
        for v in self.mprs():
            v.set_crosshair_visible(on)

    def _on_view_window(self, w: float, lvl: float) -> None:
        self._window = (w, lvl)
        for v in self.mprs():
            if v.window != (w, lvl):
                v.set_window(w, lvl)
        self.scene3d.set_window(w, lvl)
        self.window_changed.emit(w, lvl)

    # ------------------------------------------------------------------ crosshair
    def set_crosshair(self, p_lps_mm: np.ndarray) -> None:
        """Move every view to an LPS point (mm)."""
        self._crosshair = np.asarray(p_lps_mm, dtype=float).copy()
        for v in self.mprs():
            v.set_crosshair(self._crosshair)
        self.scene3d.set_slice_positions(self._crosshair)
        self.crosshair_changed.emit(self._crosshair.copy())

    @property
    def crosshair_lps_mm(self) -> np.ndarray:
        return self._crosshair.copy()

    def _on_slice_changed(self, name: str, pos_mm: float) -> None:
        ax = self.mpr(name).orientation.axis
        self._crosshair[ax] = pos_mm
        for v in self.mprs():
            if v.name != name:
                v.set_crosshair_coordinate(ax, pos_mm)
        self.scene3d.set_slice_positions(self._crosshair)
        self.slice_changed.emit(name, pos_mm)
        self.crosshair_changed.emit(self._crosshair.copy())

    def set_sync_zoom_pan(self, on: bool) -> None:
        """Synchronised zoom/pan: the slice views show the same mm per pixel and the same
        centre along the LPS axes they share (the axial view's zoom/pan when switched on)."""
        self.sync_zoom_pan = bool(on)
        if on:
            self._on_camera_changed("axial")

    def _on_camera_changed(self, name: str) -> None:
        if not self.sync_zoom_pan or self._syncing:
            return
        src = self.mpr(name)
        centre = np.array(src.renderer.GetActiveCamera().GetFocalPoint())
        self._syncing = True
        try:
            for v in self.mprs():
                if v is not src:
                    shared = tuple(a for a in range(3)
                                   if a not in (v.orientation.axis, src.orientation.axis))
                    v.set_zoom_pan(src.parallel_scale_mm, centre, shared)
        finally:
            self._syncing = False

    def reset_views(self) -> None:
        for v in self.mprs():
            v.reset_camera()
        self.scene3d.reset_camera()

    # ------------------------------------------------------------------ structures
    def set_structure(self, key: str, mask: Volume | None) -> None:
        """Show (mask) or remove (None) a structure's 2-D overlay; its 3-D surface comes
        separately via :meth:`set_surface` (computed off the GUI thread)."""
        if mask is None:
            self._masks.pop(key, None)
            self._surfaces.pop(key, None)
            for v in self.mprs():
                v.set_structure(key, None)
            self.scene3d.set_surface(key, None)
            return
        self._masks[key] = mask
        style = self.styles.setdefault(key, default_style(key))
        img = volume_to_vtk(mask)
        for v in self.mprs():
            v.set_structure(key, mask, style, image=img)

    def refresh_structure(self, key: str) -> None:
        """Redraw a structure's slices after its mask was edited in place (brush)."""
        for v in self.mprs():
            v.refresh_structure(key)

    def set_tool(self, tool: object | None) -> None:
        """Give plain left-button presses in the slice views to an editing tool
        (``press(view, lps) -> bool``, ``move(view, lps)``, ``release(view, lps)``, LPS mm);
        None gives them back to the crosshair."""
        for v in self.mprs():
            v.tool = tool

    def set_surface(self, key: str, poly: vtkPolyData | None) -> None:
        """Surface mesh (LPS mm) of a structure: 3-D view and MPR outlines."""
        style = self.styles.setdefault(key, default_style(key))
        if poly is None:
            self._surfaces.pop(key, None)
        else:
            self._surfaces[key] = poly
        self.scene3d.set_surface(key, poly, style)
        for v in self.mprs():
            v.set_structure_surface(key, poly)
        self.style_changed.emit(key)

    def surface(self, key: str) -> vtkPolyData | None:
        return self._surfaces.get(key)

    def structure_keys(self) -> list[str]:
        return list(self._masks)

    def set_structure_style(self, key: str, *, visible: bool | None = None,
                            color: tuple[float, float, float] | None = None,
                            opacity_2d: float | None = None,
                            opacity_3d: float | None = None) -> StructureStyle:
        """Change how a structure is drawn in every view; returns the new style."""
        st = self.styles.setdefault(key, default_style(key))
        if visible is not None:
            st.visible = visible
        if color is not None:
            st.color = tuple(float(c) for c in color)  # type: ignore[assignment]
        if opacity_2d is not None:
            st.opacity_2d = float(opacity_2d)
        if opacity_3d is not None:
            st.opacity_3d = float(opacity_3d)
        for v in self.mprs():
            v.set_structure_style(key, st)
        self.scene3d.set_structure_style(key, st)
        self.style_changed.emit(key)
        return st

    @property
    def outline_mode(self) -> bool:
        return self.axial.outline_mode

    def set_outline_mode(self, outline: bool) -> None:
        """Structures on the slices as contour lines (True) or translucent fills."""
        for v in self.mprs():
            v.set_outline_mode(outline)
        self.style_changed.emit("")

    # ------------------------------------------------------------------ overlays
    def add_overlay_actor(self, prop: vtkProp, view: str = "3d", on_top: bool = False) -> None:
        """Add a VTK prop (LPS mm) to one view ("axial", "coronal", "sagittal", "3d")."""
        self.view(view).add_overlay_actor(prop, on_top=on_top)

    def remove_overlay_actor(self, prop: vtkProp, view: str = "3d") -> None:
        self.view(view).remove_overlay_actor(prop)

    def add_overlay_polydata(self, key: str, poly: vtkPolyData,
                             color: tuple[float, float, float] = (1.0, 1.0, 0.0),
                             opacity: float = 1.0, line_width: float = 2.0,
                             views: Iterable[str] = VIEW_NAMES, on_top_2d: bool = True,
                             slab_mm: float | None = None) -> dict[str, vtkActor]:
        """Draw one vtkPolyData (LPS mm) in several views under ``key`` (replaces an
        existing overlay of that key). In MPR views it is drawn on top of the image by
        default; with ``slab_mm`` only its part within +-slab_mm/2 of the slice shows
        there. Returns the actor of each view for further styling."""
        self.remove_overlay(key)
        actors: dict[str, vtkActor] = {}
        entries: list[tuple[QWidget, vtkProp]] = []
        for name in views:
            m = vtkPolyDataMapper()
            m.SetInputData(poly)
            m.ScalarVisibilityOff()
            a = vtkActor()
            a.SetMapper(m)
            a.GetProperty().SetColor(*color)
            a.GetProperty().SetOpacity(opacity)
            a.GetProperty().SetLineWidth(line_width)
            v = self.view(name)
            v.add_overlay_actor(a, on_top=(on_top_2d and name != "3d"))
            if slab_mm is not None and isinstance(v, MprView):
                v.clip_to_slab(a, slab_mm / 2)
            actors[name] = a
            entries.append((v, a))
        self._overlays[key] = entries
        return actors

    def remove_overlay(self, key: str) -> None:
        for v, a in self._overlays.pop(key, []):
            v.remove_overlay_actor(a)

    def overlay_keys(self) -> list[str]:
        return list(self._overlays)

    # ------------------------------------------------------------------ layout
    def toggle_maximise(self, name: str) -> None:
        """Show one view alone, or back to the 2x2 grid when it already is."""
        self.set_maximised("" if self.maximised == name else name)

    def show_instead(self, widget: QWidget | None) -> None:
        """Show ``widget`` in place of the four views (e.g. the Evaluate step's side by
        side layout); None = the views again (as they were: 2x2 or maximised)."""
        if self.instead is not None and self.instead is not widget:
            self._grid.removeWidget(self.instead)
            self.instead.hide()
        self.instead = widget
        if widget is not None:
            self._grid.addWidget(widget, 0, 0, 2, 2)
            for cell in self._cells.values():
                cell.hide()
            widget.show()
        else:
            self.set_maximised(self.maximised)

    def set_maximised(self, name: str) -> None:
        self.maximised = name
        for n, cell in self._cells.items():
            cell.setVisible(self.instead is None and (not name or n == name))
        # empty rows/columns keep their stretch in a grid: give it all to the one view
        r0, c0 = self._cell_pos.get(name, (-1, -1))
        for i in range(2):
            self._grid.setRowStretch(i, 1 if not name or i == r0 else 0)
            self._grid.setColumnStretch(i, 1 if not name or i == c0 else 0)
        if name:
            self.view(name).setFocus(Qt.FocusReason.OtherFocusReason)
        self.render()
        self.maximised_changed.emit(name)

    def focused_view_name(self) -> str:
        for n in VIEW_NAMES:
            if self.view(n).hasFocus():
                return n
        return "axial"

    def finalize(self) -> None:
        for v in self:
            v.finalize()
        fin = getattr(self.instead, "finalize", None)
        if fin is not None:
            fin()                 # the views of the layout shown instead
