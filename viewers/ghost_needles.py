"""Reference needles drawn as "ghosts" (training mode): dashed lines of :data:`GHOST_RGB`
from tip to entry (the dash pattern starts at the tip) with a small disc at the tip, in
the three slice views (on top of the image) and in 3D (on top of the anatomy). LPS mm.
"""

from __future__ import annotations

import numpy as np
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from irplan.planning.plan import Plan
from irplan.viewers.needle_actors import spheres_polydata
from irplan.viewers.view_set import MPR_NAMES, ViewSet

GHOST_RGB = (0.78, 0.62, 1.0)   # pale violet: apart from finding colours and structures
DASH_MM = 4.0
GAP_MM = 3.0
TIP_DISC_MM = 1.6               # radius of the reference tip marker (2D and 3D)


def dashed_polydata(tip: np.ndarray, entry: np.ndarray, dash_mm: float = DASH_MM,
                    gap_mm: float = GAP_MM) -> vtkPolyData:
    """Dashes (line cells, LPS mm) from ``tip`` towards ``entry``: the first dash starts
    at the tip, so the tip itself is always drawn."""
    tip = np.asarray(tip, float)
    entry = np.asarray(entry, float)
    length = float(np.linalg.norm(entry - tip))
    u = (entry - tip) / length if length > 0 else np.zeros(3)
    pts = vtkPoints()
    lines = vtkCellArray()
    s = 0.0
    while s < length:
        e = min(s + dash_mm, length)
        a, b = tip + s * u, tip + e * u
        i0 = pts.InsertNextPoint(*a)
        i1 = pts.InsertNextPoint(*b)
        lines.InsertNextCell(2)
        lines.InsertCellPoint(i0)
        lines.InsertCellPoint(i1)
        s = e + gap_mm
    poly = vtkPolyData()
    poly.SetPoints(pts)
    poly.SetLines(lines)
    return poly


class GhostNeedles:
    """The needles of a plan drawn as dashed ghosts in the four views."""

    def __init__(self, views: ViewSet, key_prefix: str = "training:ref") -> None:
        self.views = views
        self.key_prefix = key_prefix       # overlay keys: two ghost sets never collide
        self.keys: list[str] = []
        self.actors: list[vtkActor] = []          # every ghost actor (for visibility)
        self._own_3d: list[vtkActor] = []         # 3D actors added directly (on top)
        self.visible = True

    def clear(self) -> None:
        for k in self.keys:
            self.views.remove_overlay(k)
        for a in self._own_3d:
            self.views.remove_overlay_actor(a, view="3d")
        self.keys.clear()
        self._own_3d.clear()
        self.actors.clear()

    def show(self, plan: Plan) -> None:
        self.clear()
        for i, n in enumerate(plan.needles):
            dashes = dashed_polydata(n.tip_lps_mm, n.entry_lps_mm)
            disc = spheres_polydata([n.tip_lps_mm], TIP_DISC_MM)
            for key, poly, width in ((f"{self.key_prefix}:{i}:path", dashes, 2.5),
                                     (f"{self.key_prefix}:{i}:tip", disc, 1.0)):
                acts = self.views.add_overlay_polydata(key, poly, color=GHOST_RGB,
                                                       line_width=width, views=MPR_NAMES)
                self.keys.append(key)
                for a in acts.values():
                    a.GetProperty().LightingOff()
                    self.actors.append(a)
            for poly, width in ((dashes, 3.0), (disc, 1.0)):
                m = vtkPolyDataMapper()
                m.SetInputData(poly)
                m.ScalarVisibilityOff()
                a = vtkActor()
                a.SetMapper(m)
                p = a.GetProperty()
                p.SetColor(*GHOST_RGB)
                p.SetLineWidth(width)
                p.LightingOff()
                self.views.add_overlay_actor(a, view="3d", on_top=True)
                self._own_3d.append(a)
                self.actors.append(a)
        self.set_visible(self.visible)

    def set_visible(self, on: bool) -> None:
        self.visible = bool(on)
        for a in self.actors:
            a.SetVisibility(self.visible)
        self.views.render()
