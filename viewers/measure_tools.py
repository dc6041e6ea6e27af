"""Measurements on the slice views (issue 16): distance (mm), angle (degrees) and an
elliptical or rectangular ROI with the CT's HU mean/SD/min/max. All points LPS mm.

``MeasureTool(views)`` is a ViewSet tool (``views.set_tool``): with ``mode`` set, a plain
left press/drag/release in a slice view measures instead of moving the crosshair:

- ``"distance"``: press at one end, drag, release at the other;
- ``"angle"``: click the first arm's end, the vertex, the second arm's end;
- ``"roi_ellipse"`` / ``"roi_rect"``: press at one corner of the box, drag, release.

In the 3D view (:mod:`irplan.viewers.measure_3d`) a click on a surface picks a point:

- ``"distance_3d"``: click two points on the surfaces (drag still rotates the camera);
- ``"angle_3d"``: click the first arm's end, the vertex, the second arm's end.

Each measurement is drawn in the view it was made in (a line and its figure); on a slice
view it is shown while that view's slice is within half a slice of it, in 3D always (on
top of the surfaces, points as dots). ``measurements`` lists them; ``changed`` (psygnal)
fires when one is added or removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psygnal import Signal as Event
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkTextActor

from irplan.planning.volume import Volume

MODES_2D = ("distance", "angle", "roi_ellipse", "roi_rect")
MODES_3D = ("distance_3d", "angle_3d")
MODES = (*MODES_2D, *MODES_3D)
SLICE_VIEWS = ("axial", "coronal", "sagittal")
LINE_RGB = (1.0, 0.85, 0.1)
LINE_3D_RGB = (1.0, 0.4, 1.0)   # magenta: stands out on the yellow tumour, red liver
ELLIPSE_SEGMENTS = 64


def distance_mm(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(b, float) - np.asarray(a, float)))


def angle_deg(a: np.ndarray, vertex: np.ndarray, c: np.ndarray) -> float:
    """Angle (degrees, 0-180) at ``vertex`` between the arms to ``a`` and ``c``."""
    u = np.asarray(a, float) - np.asarray(vertex, float)
    v = np.asarray(c, float) - np.asarray(vertex, float)
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(np.dot(u, v) / (nu * nv), -1.0, 1.0))))


def roi_stats(ct: Volume, corner_a: np.ndarray, corner_b: np.ndarray, normal: np.ndarray,
              up: np.ndarray, shape: str = "ellipse") -> dict[str, float]:
    """HU statistics of the CT voxels whose centres lie in the ROI on the slice plane.

    The ROI is the box (``shape="rect"``) or the ellipse inscribed in it between two
    opposite corners (LPS mm) on the plane through ``corner_a`` with unit ``normal``;
    ``up`` is the screen's up direction (in the plane). Voxels count when their centre is
    within half a voxel of the plane (along ``normal``). Returns mean_hu, sd_hu, min_hu,
    max_hu, n_voxels, area_mm2 (of the drawn shape); NaN statistics when no voxel is in.
    """
    a, b = np.asarray(corner_a, float), np.asarray(corner_b, float)
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    up = np.asarray(up, float) - n * float(np.dot(up, n))
    up /= np.linalg.norm(up)
    right = np.cross(n, up)
    centre = (a + b) / 2
    half_u = abs(float(np.dot(b - a, right))) / 2
    half_v = abs(float(np.dot(b - a, up))) / 2
    area = (np.pi if shape == "ellipse" else 4.0) * half_u * half_v
    out = {"mean_hu": float("nan"), "sd_hu": float("nan"), "min_hu": float("nan"),
           "max_hu": float("nan"), "n_voxels": 0, "area_mm2": float(area)}
    if half_u <= 0 or half_v <= 0:
        return out
    # candidate voxels: the index box around the ROI's corners (+1 voxel)
    corners = [centre + su * half_u * right + sv * half_v * up
               for su in (-1, 1) for sv in (-1, 1)]
    idx = ct.lps_to_index(np.array(corners))
    size = np.array(ct.size_xyz)
    lo = np.clip(np.floor(idx.min(axis=0)) - 1, 0, size - 1).astype(int)
    hi = np.clip(np.ceil(idx.max(axis=0)) + 1, 0, size - 1).astype(int)
    ii, jj, kk = np.meshgrid(*(np.arange(lo[d], hi[d] + 1) for d in range(3)), indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1)
    p = ct.index_to_lps(ijk) - centre
    half_thick = 0.5 * float(np.abs(ct.direction.T @ n) @ ct.spacing_mm) + 1e-6
    du, dv, dn = p @ right / half_u, p @ up / half_v, p @ n
    inside = np.abs(dn) <= half_thick
    if shape == "ellipse":
        inside &= du ** 2 + dv ** 2 <= 1.0
    else:
        inside &= (np.abs(du) <= 1.0) & (np.abs(dv) <= 1.0)
    sel = ijk[inside]
    if len(sel) == 0:
        return out
    hu = ct.array[sel[:, 2], sel[:, 1], sel[:, 0]].astype(np.float64)
    out.update(mean_hu=float(hu.mean()), sd_hu=float(hu.std(ddof=1)) if len(hu) > 1 else 0.0,
               min_hu=float(hu.min()), max_hu=float(hu.max()), n_voxels=int(len(hu)))
    return out


@dataclass
class Measurement:
    """One measurement: kind (a MODES entry), the view it was made in, its points (LPS
    mm: 2 ends, 3 angle points with the vertex second, or 2 ROI corners), its value (mm,
    degrees or mean HU), ROI statistics, and the figure shown."""

    kind: str
    view: str
    points_lps_mm: list[np.ndarray]
    value: float = float("nan")
    stats: dict[str, float] = field(default_factory=dict)
    text: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "view": self.view,
                               "points_lps_mm": [[round(float(c), 3) for c in p]
                                                 for p in self.points_lps_mm],
                               "text": self.text}
        if self.kind in ("distance", "distance_3d"):
            out["distance_mm"] = round(self.value, 2)
        elif self.kind in ("angle", "angle_3d"):
            out["angle_deg"] = round(self.value, 2)
        else:
            out.update({k: (round(v, 2) if isinstance(v, float) else v)
                        for k, v in self.stats.items()})
        return out


def measurement_from_json(row: Any) -> Measurement:
    """A Measurement from its ``to_json`` row (value and figure are recomputed when it is
    added to a MeasureTool); ValueError names what is wrong."""
    if not isinstance(row, dict):
        raise ValueError(f"measurement: expected an object, got {type(row).__name__}")
    kind, view = row.get("kind"), row.get("view")
    if kind not in MODES:
        raise ValueError(f"measurement kind: expected one of {', '.join(MODES)}, got {kind!r}")
    if kind in MODES_3D and view != "3d":
        raise ValueError(f"measurement view of a {kind}: expected '3d', got {view!r}")
    if kind in MODES_2D and view not in SLICE_VIEWS:
        raise ValueError(f"measurement view: expected axial/coronal/sagittal, got {view!r}")
    pts = np.asarray(row.get("points_lps_mm"), dtype=float)
    n_pts = 3 if kind in ("angle", "angle_3d") else 2
    if pts.shape != (n_pts, 3) or not np.all(np.isfinite(pts)):
        raise ValueError(f"measurement points_lps_mm: expected {n_pts} LPS points (mm)")
    m = Measurement(kind, view, [p.copy() for p in pts])
    up = row.get("up")
    if kind.startswith("roi") and up is not None:
        m.stats["up"] = [float(c) for c in up]
    return m


class _Drawn:
    """The actors of one measurement in its view (overlay layer)."""

    def __init__(self, view, rgb: tuple[float, float, float] = LINE_RGB) -> None:
        self.view = view
        self.poly = vtkPolyData()
        m = vtkPolyDataMapper()
        m.SetInputData(self.poly)
        self.line = vtkActor()
        self.line.SetMapper(m)
        prop = self.line.GetProperty()
        prop.SetColor(*rgb)
        prop.SetLineWidth(2.0)
        prop.LightingOff()
        self.line.PickableOff()
        self.label = vtkTextActor()
        tp = self.label.GetTextProperty()
        tp.SetFontSize(14)
        tp.SetColor(*rgb)
        tp.SetBold(True)
        tp.SetShadow(True)
        self.label.GetPositionCoordinate().SetCoordinateSystemToWorld()
        view.add_overlay_actor(self.line, on_top=True)
        view.add_overlay_actor(self.label, on_top=True)

    def set_polyline(self, pts: list[np.ndarray], closed: bool = False,
                     dots: bool = False) -> None:
        """The line through ``pts`` (LPS mm); ``dots``: each point also drawn as a dot."""
        vp = vtkPoints()
        for p in pts:
            vp.InsertNextPoint(*[float(c) for c in p])
        cells = vtkCellArray()
        ids = list(range(len(pts))) + ([0] if closed and pts else [])
        cells.InsertNextCell(len(ids))
        for i in ids:
            cells.InsertCellPoint(i)
        self.poly.SetPoints(vp)
        self.poly.SetLines(cells)
        if dots:
            verts = vtkCellArray()
            for i in range(len(pts)):
                verts.InsertNextCell(1)
                verts.InsertCellPoint(i)
            self.poly.SetVerts(verts)
            prop = self.line.GetProperty()
            prop.SetPointSize(9.0)
            prop.SetRenderPointsAsSpheres(True)
        self.poly.Modified()

    def set_text(self, text: str, at_lps: np.ndarray) -> None:
        self.label.SetInput(text)
        self.label.GetPositionCoordinate().SetValue(*[float(c) for c in at_lps])

    def set_visible(self, on: bool) -> None:
        self.line.SetVisibility(on)
        self.label.SetVisibility(on)

    def remove(self) -> None:
        self.view.remove_overlay_actor(self.line)
        self.view.remove_overlay_actor(self.label)


class MeasureTool:
    """Distance, angle and ROI measurements in the slice views of a ViewSet."""

    changed = Event()     # a measurement was added or removed

    def __init__(self, views) -> None:
        self.views = views
        self.mode: str | None = None
        self.measurements: list[Measurement] = []
        self._drawn: list[_Drawn] = []
        self._active: Measurement | None = None
        self._active_drawn: _Drawn | None = None
        views.crosshair_changed.connect(self.update_visibility)
        from irplan.viewers.measure_3d import SurfacePicker

        self.picker = SurfacePicker(views.scene3d, self.pick_3d)

    # ------------------------------------------------------------ mode
    def set_mode(self, mode: str | None) -> None:
        """Start measuring (a MODES entry) or stop (None: the crosshair has the mouse).
        A 3D mode leaves the slice views to the crosshair."""
        if mode is not None and mode not in MODES:
            raise ValueError(f"measure mode {mode!r}: expected one of {', '.join(MODES)}")
        self._cancel_active()
        self.mode = mode
        self.views.set_tool(self if mode in MODES_2D else None)
        self.picker.enabled = mode in MODES_3D

    def pick_3d(self, p: np.ndarray) -> None:
        """A point (LPS mm) clicked on a surface in the 3D view: the next point of the
        3D measurement under way, or the first of a new one."""
        if self.mode not in MODES_3D:
            return
        view = self.views.scene3d
        p = np.asarray(p, float).copy()
        act = self._active
        if act is None or act.kind != self.mode:
            self._cancel_active()
            self._active = Measurement(self.mode, "3d", [p])
            self._active_drawn = _Drawn(view, LINE_3D_RGB)
            self._update(view)
            return
        act.points_lps_mm.append(p)
        if len(act.points_lps_mm) == (3 if act.kind == "angle_3d" else 2):
            self._finish()
            view.request_render()
        else:
            self._update(view)

    # ------------------------------------------------------------ tool protocol
    def press(self, view, p: np.ndarray) -> bool:
        if self.mode is None or view.volume is None:
            return False
        p = np.asarray(p, float)
        act = self._active
        if act is not None and act.kind == "angle" and act.view == view.name:
            act.points_lps_mm[-1] = p          # fixes this point, the next one follows
            if len(act.points_lps_mm) == 3:
                self._finish()
            else:
                act.points_lps_mm.append(p.copy())
                self._update(view)
            return True
        self._cancel_active()
        self._active = Measurement(self.mode, view.name, [p.copy(), p.copy()])
        self._active_drawn = _Drawn(view)
        self._update(view)
        return True

    def move(self, view, p: np.ndarray) -> None:
        if self._active is not None and self._active.view == view.name:
            self._active.points_lps_mm[-1] = np.asarray(p, float).copy()
            self._update(view)

    def hover(self, view, p: np.ndarray) -> None:
        if self._active is not None and self._active.kind == "angle":
            self.move(view, p)

    def release(self, view, p: np.ndarray) -> None:
        act = self._active
        if act is None or act.view != view.name:
            return
        act.points_lps_mm[-1] = np.asarray(p, float).copy()
        if act.kind == "angle":
            if len(act.points_lps_mm) == 2 and distance_mm(*act.points_lps_mm) > 0.5:
                act.points_lps_mm.append(act.points_lps_mm[-1].copy())  # dragged 1st arm
            self._update(view)
            return
        if distance_mm(act.points_lps_mm[0], act.points_lps_mm[1]) < 0.5:
            self._cancel_active()          # a click without a drag measures nothing
            return
        self._finish()

    # ------------------------------------------------------------ results
    def clear(self) -> None:
        self._cancel_active()
        for d in self._drawn:
            d.remove()
        self._drawn.clear()
        self.measurements.clear()
        self.changed.emit()

    def add(self, m: Measurement) -> Measurement:
        """Add a finished measurement (e.g. read back from a plan): computed and drawn."""
        view = self._view_of(m)
        d = _Drawn(view, LINE_3D_RGB if m.view == "3d" else LINE_RGB)
        self._evaluate(m, view)
        self._draw(m, d)
        self.measurements.append(m)
        self._drawn.append(d)
        self.update_visibility()
        self.changed.emit()
        return m

    def to_json(self) -> list[dict[str, Any]]:
        return [m.to_json() for m in self.measurements]

    def update_visibility(self, *_args: Any) -> None:
        for m, d in zip(self.measurements, self._drawn):
            if m.view not in SLICE_VIEWS:
                continue                    # 3D: always shown
            view = self.views.mpr(m.view)
            fp, n = view.slice_plane()
            off = abs(float(np.dot(m.points_lps_mm[0] - fp, n)))
            d.set_visible(off <= view.step_mm / 2 + 1e-3)
            view.request_render()

    # ------------------------------------------------------------ internals
    def _view_of(self, m: Measurement):
        return self.views.scene3d if m.view == "3d" else self.views.mpr(m.view)

    def _cancel_active(self) -> None:
        if self._active_drawn is not None:
            self._active_drawn.remove()
        self._active = self._active_drawn = None

    def _finish(self) -> None:
        m, d = self._active, self._active_drawn
        self._active = self._active_drawn = None
        if m is None or d is None:
            return
        self._evaluate(m, self._view_of(m))
        self._draw(m, d)
        self.measurements.append(m)
        self._drawn.append(d)
        self.changed.emit()

    def _update(self, view) -> None:
        m, d = self._active, self._active_drawn
        if m is None or d is None:
            return
        self._evaluate(m, view)
        self._draw(m, d)
        view.request_render()

    def _evaluate(self, m: Measurement, view) -> None:
        pts = m.points_lps_mm
        if m.kind in MODES_3D:
            n_need = 3 if m.kind == "angle_3d" else 2
            if len(pts) < n_need:
                m.value, m.text = float("nan"), ""
            elif m.kind == "distance_3d":
                m.value = distance_mm(pts[0], pts[1])
                m.text = f"{m.value:.1f} mm"
            else:
                m.value = angle_deg(pts[0], pts[1], pts[2])
                m.text = f"{m.value:.1f}°"
            return
        if m.kind == "distance":
            m.value = distance_mm(pts[0], pts[1])
            m.text = f"{m.value:.1f} mm"
        elif m.kind == "angle":
            if len(pts) < 3:
                m.value = float("nan")
                m.text = f"{distance_mm(pts[0], pts[1]):.1f} mm"
            else:
                m.value = angle_deg(pts[0], pts[1], pts[2])
                m.text = f"{m.value:.1f}°"
        else:
            cam = view.renderer.GetActiveCamera()
            shape = "ellipse" if m.kind == "roi_ellipse" else "rect"
            m.stats = roi_stats(view.volume, pts[0], pts[1], view.normal,
                                np.array(cam.GetViewUp()), shape)
            m.stats["up"] = [float(c) for c in cam.GetViewUp()]
            s = m.stats
            m.value = s["mean_hu"]
            m.text = (f"mean {s['mean_hu']:.1f} HU  SD {s['sd_hu']:.1f}\n"
                      f"min {s['min_hu']:.0f}  max {s['max_hu']:.0f}  "
                      f"{s['area_mm2'] / 100:.2f} cm²")

    def _draw(self, m: Measurement, d: _Drawn) -> None:
        pts = m.points_lps_mm
        if m.kind in MODES_3D:
            d.set_polyline(list(pts), dots=True)
            at = pts[1] if (m.kind == "angle_3d" and len(pts) == 3) else (pts[0] + pts[-1]) / 2
            d.set_text(m.text, at)
            return
        if m.kind in ("distance", "angle"):
            d.set_polyline(list(pts))
            at = pts[1] if (m.kind == "angle" and len(pts) == 3) else (pts[0] + pts[-1]) / 2
            d.set_text(m.text, at)
            return
        view = self.views.mpr(m.view)
        n = view.normal
        up = np.array(m.stats.get("up") or view.renderer.GetActiveCamera().GetViewUp())
        up = up - n * float(np.dot(up, n))
        up /= np.linalg.norm(up)
        right = np.cross(n, up)
        c = (pts[0] + pts[1]) / 2
        hu = abs(float(np.dot(pts[1] - pts[0], right))) / 2
        hv = abs(float(np.dot(pts[1] - pts[0], up))) / 2
        if m.kind == "roi_ellipse":
            t = np.linspace(0, 2 * np.pi, ELLIPSE_SEGMENTS, endpoint=False)
            outline = [c + hu * np.cos(a) * right + hv * np.sin(a) * up for a in t]
        else:
            outline = [c + su * hu * right + sv * hv * up
                       for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        d.set_polyline(outline, closed=True)
        d.set_text(m.text, c + hu * right + hv * up)
