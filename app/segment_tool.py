"""The Segment step's mouse tool in the slice views (``ViewSet.set_tool``), LPS mm:

* Tumour: click inside the lesion (drag to give its radius: a circle follows) -> region
  growing;
* Liver: each click adds a seed (green points) and re-runs the liver tool with all seeds;
* Vessel: click in an enhanced vessel (limited to the liver when there is one);
* Brush / Eraser: paint or erase a disc of the brush radius (mm) in the shown slice (only
  voxels in the HU window when one is set); the brush circle follows the mouse;
* Inside / Outside stroke: paint a stroke (drawn as a green / red line) inside or outside
  the lesion; on release the lesion is grown again from all strokes (issue 17).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from irplan.app.segment_commands import circle_points, circle_poly, points_poly, polyline_poly
from irplan.app.segment_logic import SCRIBBLE_TOOLS, SegmentLogic
from irplan.viewers.view_set import ViewSet

PAINT_TOOLS = ("brush", "erase")


class SegmentTool:
    """Receives left-button presses, drags and hovers from the MPR views and drives
    :class:`SegmentLogic`; draws the brush, drag and seed outlines in ``views``."""

    def __init__(self, logic: SegmentLogic, views: ViewSet) -> None:
        self.logic, self.views = logic, views
        self._drag_view: Any = None
        self._drag_start: np.ndarray | None = None
        self._brush_view: Any = None
        self._brush_poly: Any = None
        logic.seeds_changed.connect(self.show_seed_markers)
        logic.scribbles_changed.connect(self.show_scribbles)
        logic.failed.connect(lambda _msg: self.show_scribbles())

    @property
    def tool(self) -> str:
        return self.logic.tool

    def set_tool(self, tool: str) -> None:
        """Activate a tool ("navigate", "tumor", "liver", "vessel", "brush", "erase")."""
        self.logic.tool = tool
        if tool not in PAINT_TOOLS:
            self.hide_brush()
        self.views.set_tool(None if tool == "navigate" else self)

    def deactivate(self) -> None:
        """Give the mouse back to navigation (the user left the Segment step)."""
        self.views.set_tool(None)
        self.hide_brush()

    # ------------------------------------------------------------------ ViewSet tool API
    def press(self, view: Any, p_lps_mm: np.ndarray) -> bool:
        """A left press in an MPR view; True when the tool takes the drag."""
        p = np.asarray(p_lps_mm, float)
        lg = self.logic
        if lg.case.ct is None or self.tool == "navigate" or lg.busy:
            return False
        if not lg.case.ct.contains_lps(p):
            return False
        self._drag_view = view
        if self.tool in PAINT_TOOLS:
            if lg.begin_stroke(p, view.normal, erase=self.tool == "erase"):
                self.views.refresh_structure(lg.stroke["key"])
        elif self.tool in SCRIBBLE_TOOLS:
            if not lg.begin_scribble(p, view.normal, inside=self.tool == "inside"):
                self._drag_view = None
        else:
            self._drag_start = p
        return True

    def move(self, view: Any, p_lps_mm: np.ndarray) -> None:
        p = np.asarray(p_lps_mm, float)
        lg = self.logic
        if self.tool in PAINT_TOOLS and lg.stroke is not None:
            p, changed = lg.continue_stroke(p)
            if changed:
                self.views.refresh_structure(lg.stroke["key"])
            if self._drag_view is not None:
                self._show_brush(self._drag_view, p)
        elif self.tool in SCRIBBLE_TOOLS and lg.scribble is not None:
            lg.continue_scribble(p)
        elif self.tool == "tumor" and self._drag_start is not None:
            r = float(np.linalg.norm(p - self._drag_start))
            if r > 1.0:
                self.views.add_overlay_polydata(
                    "segment-drag", circle_poly(self._drag_start, view.normal, r),
                    color=(1.0, 0.9, 0.2), views=[view.name], line_width=1.5)
            lg.message.emit(f"Tumour radius {r:.1f} mm", False)

    def release(self, view: Any, p_lps_mm: np.ndarray) -> None:
        p = np.asarray(p_lps_mm, float)
        if self.tool in PAINT_TOOLS:
            self.logic.end_stroke()
            return
        if self.tool in SCRIBBLE_TOOLS:
            self._drag_view = None
            if self.logic.scribble is not None:
                self.logic.continue_scribble(p)
                self.logic.end_scribble()
            return
        start, self._drag_start = self._drag_start, None
        self.views.remove_overlay("segment-drag")
        if start is None:
            return
        if self.tool == "tumor":
            r = float(np.linalg.norm(p - start))
            self.logic.run_tumor(start, r if r >= 2.0 else None)
        elif self.tool == "liver":
            self.logic.add_liver_seed(start)
        elif self.tool == "vessel":
            self.logic.run_vessel(start)

    def hover(self, view: Any, p_lps_mm: np.ndarray) -> None:
        """Mouse over a slice view: the brush circle (radius in mm) follows it."""
        if self.tool in PAINT_TOOLS:
            self._show_brush(view, np.asarray(p_lps_mm, float))
        elif self._brush_view is not None:
            self.hide_brush()

    # ------------------------------------------------------------------ outlines
    def _show_brush(self, view: Any, p: np.ndarray) -> None:
        r = float(self.logic.radius_mm)
        if self._brush_view is not view or self._brush_poly is None:
            self.hide_brush()
            self._brush_poly = circle_poly(p, view.normal, r)
            color = (1.0, 0.4, 0.4) if self.tool == "erase" else (0.4, 1.0, 0.6)
            self.views.add_overlay_polydata("segment-brush", self._brush_poly, color=color,
                                            views=[view.name], line_width=1.5)
            self._brush_view = view
        else:
            pts = self._brush_poly.GetPoints()
            for i, x in enumerate(circle_points(p, view.normal, r)):
                pts.SetPoint(i, *x)
            pts.Modified()
            self._brush_poly.Modified()
            view.request_render()

    def hide_brush(self) -> None:
        if self._brush_view is not None:
            self.views.remove_overlay("segment-brush")
        self._brush_view = None
        self._brush_poly = None

    def show_scribbles(self) -> None:
        """The strokes on the lesion (inside green, outside red) and the one being painted."""
        lg = self.logic
        sc = lg.scribbles
        lines: dict[bool, list[np.ndarray]] = {True: [], False: []}
        if sc is not None:
            lines[True] += list(sc.inside)
            lines[False] += list(sc.outside)
        if lg.scribble is not None:
            lines[lg.scribble["inside"]].append(np.asarray(lg.scribble["points"]))
        for inside, name, color in ((True, "segment-scribble-in", (0.3, 1.0, 0.4)),
                                    (False, "segment-scribble-out", (1.0, 0.35, 0.35))):
            if lines[inside]:
                self.views.add_overlay_polydata(name, polyline_poly(lines[inside]),
                                                color=color, line_width=2.5, slab_mm=3.0)
            else:
                self.views.remove_overlay(name)

    def show_seed_markers(self) -> None:
        seeds = self.logic.liver_seeds
        if not seeds:
            self.views.remove_overlay("segment-seeds")
            return
        actors = self.views.add_overlay_polydata("segment-seeds", points_poly(seeds),
                                                 color=(0.2, 1.0, 0.4))
        for a in actors.values():
            a.GetProperty().SetPointSize(8)
            a.GetProperty().SetRenderPointsAsSpheres(True)
