"""Needles drawn in the views (LPS mm): paths coloured by their worst safety finding.

In the three MPR views each needle is a line entry -> tip drawn on top of the image, its
active part (IRE exposure) as a thicker segment, and small discs at tip and entry (the
drag handles). In 3D it is a tube of the device's real diameter with its two drag handles
as flat (unlit) discs of :func:`handle_rgb_3d` drawn on top of the anatomy, so a handle
inside the tumour can still be seen and grabbed. Colours:

- red: an error finding involves the needle; orange: a warning; green: nothing above
  info. The selected needle is drawn brighter and wider.
"""

from __future__ import annotations

import numpy as np
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkAppendPolyData, vtkTubeFilter
from vtkmodules.vtkFiltersSources import vtkSphereSource
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from irplan.planning.plan import Plan
from irplan.viewers.view_set import ViewSet

SEVERITY_RGB: dict[str | None, tuple[float, float, float]] = {
    "error": (0.95, 0.15, 0.15),
    "warning": (1.0, 0.6, 0.0),
    "info": (0.2, 0.85, 0.35),
    None: (0.2, 0.85, 0.35),
}
TARGET_RGB = (0.3, 0.85, 1.0)
MPR_VIEWS = ("axial", "coronal", "sagittal")
HANDLE_3D_RADIUS_MM = 2.5     # 3D drag handle (sphere drawn unlit: a disc on screen)
HANDLE_3D_WHITE = 0.45        # share of white mixed into the path colour for 3D handles


def handle_rgb_3d(path_rgb: tuple[float, float, float]) -> tuple[float, float, float]:
    """Colour of a needle's 3D drag handles: its path colour lightened towards white, so
    the handle stands out from the tube it sits on (same hue = same finding)."""
    return tuple(float(c + (1.0 - c) * HANDLE_3D_WHITE) for c in path_rgb)  # type: ignore


def line_polydata(a: np.ndarray, b: np.ndarray) -> vtkPolyData:
    pts = vtkPoints()
    pts.InsertNextPoint(*(float(v) for v in a))
    pts.InsertNextPoint(*(float(v) for v in b))
    lines = vtkCellArray()
    lines.InsertNextCell(2)
    lines.InsertCellPoint(0)
    lines.InsertCellPoint(1)
    poly = vtkPolyData()
    poly.SetPoints(pts)
    poly.SetLines(lines)
    return poly


def tube_polydata(a: np.ndarray, b: np.ndarray, radius_mm: float) -> vtkPolyData:
    tube = vtkTubeFilter()
    tube.SetInputData(line_polydata(a, b))
    tube.SetRadius(float(radius_mm))
    tube.SetNumberOfSides(16)
    tube.CappingOn()
    tube.Update()
    out = vtkPolyData()
    out.DeepCopy(tube.GetOutput())
    return out


def spheres_polydata(points: list[np.ndarray], radius_mm: float) -> vtkPolyData:
    app = vtkAppendPolyData()
    for p in points:
        s = vtkSphereSource()
        s.SetCenter(*(float(v) for v in p))
        s.SetRadius(float(radius_mm))
        s.SetThetaResolution(16)
        s.SetPhiResolution(12)
        s.Update()
        app.AddInputData(s.GetOutput())
    app.Update()
    out = vtkPolyData()
    out.DeepCopy(app.GetOutput())
    return out


class NeedleActors:
    """Keeps one set of overlays per needle in a :class:`ViewSet` up to date."""

    def __init__(self, views: ViewSet) -> None:
        self.views = views
        self._keys: set[str] = set()
        self._drawn: dict[int, tuple] = {}    # needle index -> what its overlays show
        self._handles_3d: dict[int, vtkActor] = {}   # needle index -> on-top 3D handles
        self._polys: dict[str, vtkPolyData] = {}     # overlay key -> its drawn polydata

    def clear(self) -> None:
        for k in list(self._keys):
            self.views.remove_overlay(k)
        self._keys.clear()
        for i in list(self._handles_3d):
            self._remove_handles_3d(i)
        self._drawn.clear()

    def _remove_handles_3d(self, i: int) -> None:
        a = self._handles_3d.pop(i, None)
        if a is not None:
            self.views.remove_overlay_actor(a, view="3d")

    def _remove_needle(self, i: int) -> None:
        for k in [k for k in self._keys if k.startswith(f"needle:{i}:")]:
            self.views.remove_overlay(k)
            self._keys.discard(k)
            self._polys.pop(k, None)
        self._remove_handles_3d(i)
        self._drawn.pop(i, None)

    def _add_handles_3d(self, i: int, tip: np.ndarray, entry: np.ndarray,
                        path_rgb: tuple[float, float, float]) -> None:
        """Tip and entry handles in the 3D view: unlit, on top (overlay layer)."""
        m = vtkPolyDataMapper()
        m.SetInputData(spheres_polydata([tip, entry], HANDLE_3D_RADIUS_MM))
        m.ScalarVisibilityOff()
        a = vtkActor()
        a.SetMapper(m)
        prop = a.GetProperty()
        prop.SetColor(*handle_rgb_3d(path_rgb))
        prop.LightingOff()
        self.views.add_overlay_actor(a, view="3d", on_top=True)
        self._handles_3d[i] = a

    def _add(self, key: str, poly: vtkPolyData, color, views, line_width: float = 2.0,
             opacity: float = 1.0) -> None:
        self.views.add_overlay_polydata(key, poly, color=color, opacity=opacity,
                                        line_width=line_width, views=views)
        self._keys.add(key)
        self._polys[key] = poly

    def _move_in_place(self, i: int, tip: np.ndarray, entry: np.ndarray,
                       exposure_mm: float | None, radius_mm: float) -> None:
        """Needle ``i`` drawn at a new place with its style unchanged (a drag): the same
        actors get the new geometry (no actors removed and made again in four views:
        cheaper to handle and to draw, issue 16)."""
        def put(key: str, poly: vtkPolyData) -> None:
            old = self._polys.get(key)
            if old is not None:
                old.ShallowCopy(poly)
                old.Modified()

        direction = tip - entry
        length = float(np.linalg.norm(direction))
        put(f"needle:{i}:path", line_polydata(entry, tip))
        put(f"needle:{i}:tube", tube_polydata(entry, tip, radius_mm))
        if exposure_mm:
            a = tip - direction / max(length, 1e-9) * min(float(exposure_mm), length)
            put(f"needle:{i}:active", line_polydata(a, tip))
            put(f"needle:{i}:active3d", tube_polydata(a, tip, radius_mm * 1.6))
        put(f"needle:{i}:handles", spheres_polydata([tip, entry], 2.0))
        h = self._handles_3d.get(i)
        if h is not None:
            h.GetMapper().GetInput().ShallowCopy(
                spheres_polydata([tip, entry], HANDLE_3D_RADIUS_MM))
            h.GetMapper().GetInput().Modified()

    def update(self, plan: Plan, severities: list[str | None], selected: int | None = None,
               radii_mm: list[float] | None = None,
               pending_target_lps_mm: np.ndarray | None = None) -> None:
        """Redraw the needles of ``plan`` whose geometry or colour changed (a drag redraws
        one needle, not all); ``severities[i]``: worst finding of needle i."""
        for i in [i for i in self._drawn if i >= len(plan.needles)]:
            self._remove_needle(i)
        for i, n in enumerate(plan.needles):
            sig = (tuple(n.tip_lps_mm), tuple(n.entry_lps_mm), n.exposure_mm,
                   severities[i] if i < len(severities) else None, i == selected,
                   radii_mm[i] if radii_mm and i < len(radii_mm) else None)
            old = self._drawn.get(i)
            if old == sig:
                continue
            r = (radii_mm[i] if radii_mm and i < len(radii_mm) else 0.55)
            r = max(r, 0.75)   # thinner tubes vanish in an overview 3D view
            if old is not None and old[2:] == sig[2:] and i in self._handles_3d:
                self._move_in_place(i, n.tip_lps_mm, n.entry_lps_mm, n.exposure_mm, r)
                self._drawn[i] = sig
                continue
            self._remove_needle(i)
            self._drawn[i] = sig
            sev = severities[i] if i < len(severities) else None
            rgb = np.asarray(SEVERITY_RGB.get(sev, SEVERITY_RGB[None]))
            sel = i == selected
            if sel:
                rgb = np.minimum(1.0, rgb * 1.15 + 0.1)
            color = tuple(float(c) for c in rgb)
            tip, entry = n.tip_lps_mm, n.entry_lps_mm
            self._add(f"needle:{i}:path", line_polydata(entry, tip), color, MPR_VIEWS,
                      line_width=4.0 if sel else 2.5)
            self._add(f"needle:{i}:tube", tube_polydata(entry, tip, r), color, ("3d",))
            if n.exposure_mm:
                a = tip - n.direction * min(float(n.exposure_mm), n.length_mm)
                self._add(f"needle:{i}:active", line_polydata(a, tip), color, MPR_VIEWS,
                          line_width=7.0 if sel else 5.5)
                self._add(f"needle:{i}:active3d", tube_polydata(a, tip, r * 1.6), color,
                          ("3d",))
            self._add(f"needle:{i}:handles", spheres_polydata([tip, entry], 2.0), color,
                      MPR_VIEWS, opacity=0.9)
            self._add_handles_3d(i, tip, entry, color)
        if "needle:pending" in self._keys:
            self.views.remove_overlay("needle:pending")
            self._keys.discard("needle:pending")
        if pending_target_lps_mm is not None:
            self._add("needle:pending", spheres_polydata([pending_target_lps_mm], 2.5),
                      TARGET_RGB, MPR_VIEWS + ("3d",))
        self.views.render()
