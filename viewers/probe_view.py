"""Needle-aligned ("probe's eye") reslice views of one needle, drawn in LPS mm.

A needle from ``entry`` to ``tip`` (LPS mm) defines a right-handed frame
(:class:`NeedleFrame`): ``d`` the unit direction entry -> tip, ``a`` the unit vector
perpendicular to ``d`` closest to the patient's superior axis +S (when the needle is
within 10 deg of cranio-caudal, the anterior axis -P is used instead), and
``b = d x a``. Three views are built on it:

==============  =====================  ==========  ========  ======================
kind            plane                  looking     screen    screen up
                                       along       right
==============  =====================  ==========  ========  ======================
``inplane_a``   contains d and +S      -b          d         a (superior side)
``inplane_b``   A turned 90 deg        a           d         b
                about the needle
``bullseye``    perpendicular to d     d           b         a
==============  =====================  ==========  ========  ======================

In the in-plane views the needle runs left (skin entry) to right (tip), with a depth ruler
(a tick every 10 mm from the entry) below it and its active part (IRE exposure) in
another colour; in the bull's-eye view the slice sits at a depth along the path (mm from
the entry) and every needle crossing that plane is marked. For an anterior needle going
straight posterior, view A is the sagittal view, view B the axial view turned 90 deg, and
the bull's-eye the coronal view: all are true (unmirrored) views from one side. Edge
labels name the patient directions the screen edges point to (letters of every LPS
component above sin 22.5 deg, largest first, e.g. "SL"), and the info line gives the
needle's angulation (cranio-caudal and left-right angles of
:func:`irplan.planning.needle_geometry.needle_angles`).

The CT and structure overlays are those of :class:`~irplan.viewers.mpr_view.MprView`
(vtkImageResliceMapper slicing in the plane facing the camera), so any plane works. Mouse
and keys as in the MPR views; wheel/PageUp/PageDown move the bull's-eye along the path
(1 mm, Shift: 10 mm) and the in-plane views parallel to the needle (the offset is shown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtWidgets import QWidget
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkImageData, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper, vtkTextActor

from irplan.planning.volume import Volume
from irplan.viewers.mpr_view import MprView, Orientation, _text_actor

PROBE_KINDS = ("inplane_a", "inplane_b", "bullseye")
PROBE_TITLES = {"inplane_a": "In-plane A (with S)", "inplane_b": "In-plane B (A + 90°)",
                "bullseye": "Bull's-eye (across the needle)"}
# view colours (frames, titles; the bull's-eye depth line in the in-plane views)
PROBE_COLORS: dict[str, tuple[float, float, float]] = {
    "inplane_a": (0.80, 0.55, 0.95),
    "inplane_b": (0.45, 0.75, 1.00),
    "bullseye": (1.00, 0.50, 0.70),     # not the orange of the predicted zone
}
ACTIVE_RGB = (0.2, 0.9, 1.0)          # active (exposed) part of an IRE electrode
BEYOND_RGB = (0.65, 0.65, 0.65)       # bull's-eye marker past the tip / before the entry
RULER_RGB = (0.92, 0.92, 0.88)
TICK_STEP_MM = 10.0
CC_FALLBACK_DEG = 10.0                # needle this close to S: frame built on -P instead
_LABEL_MIN_SIN = float(np.sin(np.radians(22.5)))
_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))


@dataclass(frozen=True)
class NeedleFrame:
    """Orthonormal frame of a needle (LPS): ``d`` entry -> tip, ``a`` perpendicular towards
    +S (or -P for a near cranio-caudal needle), ``b = d x a``; ``length_mm`` entry -> tip."""

    entry_lps_mm: np.ndarray
    tip_lps_mm: np.ndarray
    d: np.ndarray
    a: np.ndarray
    b: np.ndarray
    length_mm: float

    @classmethod
    def from_points(cls, entry_lps_mm: Sequence[float], tip_lps_mm: Sequence[float]
                    ) -> NeedleFrame:
        e = np.asarray(entry_lps_mm, dtype=float).reshape(3).copy()
        t = np.asarray(tip_lps_mm, dtype=float).reshape(3).copy()
        v = t - e
        length = float(np.linalg.norm(v))
        if length < 1e-6:
            raise ValueError("needle entry and tip coincide: no direction")
        d = v / length
        ref = np.array([0.0, 0.0, 1.0])
        if abs(float(d @ ref)) > np.cos(np.radians(CC_FALLBACK_DEG)):
            ref = np.array([0.0, -1.0, 0.0])
        a = ref - float(ref @ d) * d
        a /= np.linalg.norm(a)
        b = np.cross(d, a)
        return cls(e, t, d, a, b, length)

    def point_at_depth(self, depth_mm: float) -> np.ndarray:
        """LPS point ``depth_mm`` along the path from the entry."""
        return self.entry_lps_mm + float(depth_mm) * self.d

    def depth_of(self, p_lps_mm: Sequence[float]) -> float:
        """Depth (mm from the entry, along the needle) of the projection of a point."""
        return float((np.asarray(p_lps_mm, dtype=float) - self.entry_lps_mm) @ self.d)

    def axes(self, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(normal = looking direction, screen up, screen right) of a view kind (LPS)."""
        if kind == "inplane_a":
            return -self.b, self.a, self.d
        if kind == "inplane_b":
            return self.a, self.b, self.d
        if kind == "bullseye":
            return self.d, self.a, self.b
        raise KeyError(kind)


def direction_label(v: Sequence[float]) -> str:
    """Patient-direction letters of an LPS vector: every component above sin 22.5 deg,
    the largest first (``(0.7, 0, 0.7)`` -> ``"LS"``)."""
    u = np.asarray(v, dtype=float)
    u = u / max(float(np.linalg.norm(u)), 1e-12)
    order = np.argsort(-np.abs(u))
    return "".join(_LETTERS[k][int(u[k] > 0)] for k in order if abs(u[k]) >= _LABEL_MIN_SIN)


@dataclass
class NeedleMark:
    """A needle as the probe views draw it: LPS mm end points, colour RGB 0-1."""

    name: str
    entry_lps_mm: np.ndarray
    tip_lps_mm: np.ndarray
    rgb: tuple[float, float, float]
    exposure_mm: float | None = None


def _poly(points: list[np.ndarray], segments: list[tuple[int, int]]) -> vtkPolyData:
    pts = vtkPoints()
    for p in points:
        pts.InsertNextPoint(*(float(c) for c in p))
    lines = vtkCellArray()
    for i, j in segments:
        lines.InsertNextCell(2)
        lines.InsertCellPoint(i)
        lines.InsertCellPoint(j)
    poly = vtkPolyData()
    poly.SetPoints(pts)
    poly.SetLines(lines)
    return poly


class _Lines:
    """One overlay actor (lines in LPS mm, on top of the image) whose geometry is replaced."""

    def __init__(self, view: MprView, rgb: tuple[float, float, float], width: float) -> None:
        self.poly = vtkPolyData()
        m = vtkPolyDataMapper()
        m.SetInputData(self.poly)
        m.ScalarVisibilityOff()
        self.actor = vtkActor()
        self.actor.SetMapper(m)
        p = self.actor.GetProperty()
        p.SetColor(*rgb)
        p.SetLineWidth(width)
        p.LightingOff()
        self.actor.PickableOff()
        view.overlay_renderer.AddActor(self.actor)

    def set(self, points: list[np.ndarray], segments: list[tuple[int, int]],
            rgb: tuple[float, float, float] | None = None) -> None:
        self.poly.ShallowCopy(_poly(points, segments))
        self.poly.Modified()
        if rgb is not None:
            self.actor.GetProperty().SetColor(*rgb)
        self.actor.SetVisibility(bool(segments))


def _ring(centre: np.ndarray, u: np.ndarray, v: np.ndarray, radius_mm: float, n: int = 24
          ) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    pts = [centre + radius_mm * (np.cos(t) * u + np.sin(t) * v)
           for t in np.linspace(0, 2 * np.pi, n, endpoint=False)]
    return pts, [(i, (i + 1) % n) for i in range(n)]


class ProbeView(MprView):
    """One needle-aligned view (``kind`` in :data:`PROBE_KINDS`), set from a needle with
    :meth:`set_needle`. ``slice_position_mm`` is the depth along the path (bull's-eye) or
    the offset of the plane from the needle along the view normal (in-plane views)."""

    def __init__(self, kind: str, parent: QWidget | None = None) -> None:
        if kind not in PROBE_KINDS:
            raise KeyError(kind)
        super().__init__("axial", parent)   # MPR machinery; the geometry is replaced below
        self.kind = kind
        self.name = kind
        self.orientation = Orientation(kind, (0.0, 0.0, 1.0), (0.0, -1.0, 0.0), -1,
                                       ("", "", "", ""), "")
        self.show_crosshair = False
        self.frame: NeedleFrame | None = None
        self.needle: NeedleMark | None = None
        self.others: list[NeedleMark] = []
        self._up = np.array([0.0, -1.0, 0.0])
        self._right = np.array([1.0, 0.0, 0.0])
        self._offset_mm = 0.0              # in-plane: plane offset from the needle axis
        self._depth_mm = 0.0               # bull's-eye: depth from the entry
        self._marker_depth_mm: float | None = None
        self.angles_text = ""
        self._spacing_text = ""
        self._fit: tuple[int, int, float] | None = None   # (w, h, scale) of the last fit
        if kind != "bullseye":
            # the path runs across the middle: left/right labels above it, off its ends
            for t, x in zip(self._edge_labels[:2], (0.012, 0.988)):
                t.GetPositionCoordinate().SetValue(x, 0.62)
        self._title.SetInput(PROBE_TITLES[kind])
        self._title.GetTextProperty().SetColor(*PROBE_COLORS[kind])
        self._path = _Lines(self, (0.2, 0.85, 0.35), 3.0)
        self._active = _Lines(self, ACTIVE_RGB, 6.0)
        self._ticks = _Lines(self, RULER_RGB, 1.5)
        self._depth_line = _Lines(self, PROBE_COLORS["bullseye"], 1.5)
        self._marks = _Lines(self, (0.2, 0.85, 0.35), 2.5)       # bull's-eye: this needle
        self._other_path: list[_Lines] = []   # other needles: paths or bull's-eye rings
        self._labels: list[vtkTextActor] = []
        self._label_anchors: list[tuple[np.ndarray, str, tuple[float, float, float],
                                        float, float]] = []
        for lines in (self._path, self._active, self._ticks, self._depth_line, self._marks):
            lines.set([], [])

    # ================================================================= needle
    def set_needle(self, needle: NeedleMark | None, others: Sequence[NeedleMark] = (),
                   refit: bool = False, angles_text: str = "") -> None:
        """Follow ``needle`` (None: nothing to show). ``refit``: re-centre and re-zoom the
        camera on the whole path (else the zoom and the offset/depth are kept, clamped)."""
        self.needle = needle
        self.others = list(others)
        self.angles_text = angles_text
        if needle is None:
            self.frame = None
            for lines in (self._path, self._active, self._ticks, self._depth_line,
                          self._marks, *self._other_path):
                lines.set([], [])
            self._label_anchors = []
            self.request_render()
            return
        self.frame = NeedleFrame.from_points(needle.entry_lps_mm, needle.tip_lps_mm)
        self._normal, self._up, self._right = (v.copy() for v in self.frame.axes(self.kind))
        self._step_mm = 1.0
        if refit:
            self._offset_mm = 0.0
        self._draw_needle()
        self.reset_camera(keep_zoom=not refit)

    def _draw_needle(self) -> None:
        f, n = self.frame, self.needle
        assert f is not None and n is not None
        for lines in self._other_path:
            self.remove_overlay_actor(lines.actor)
        # other needles: thinner and dimmer, drawn first (under the selected needle)
        self._other_path = [_Lines(self, tuple(0.7 * c for c in o.rgb),
                                   1.5 if self.kind != "bullseye" else 2.0)
                            for o in self.others]
        for lines in (self._path, self._active, self._marks):
            self.overlay_renderer.RemoveActor(lines.actor)
            self.overlay_renderer.AddActor(lines.actor)
        if self.kind == "bullseye":
            for lines in (self._path, self._active, self._ticks, self._depth_line):
                lines.set([], [])
            return
        self._marks.set([], [])
        self._path.set([f.entry_lps_mm, f.tip_lps_mm], [(0, 1)], n.rgb)
        if n.exposure_mm:
            a = f.tip_lps_mm - f.d * min(float(n.exposure_mm), f.length_mm)
            self._active.set([a, f.tip_lps_mm], [(0, 1)])
        else:
            self._active.set([], [])
        # other needles: only their part within 2.5 mm of this plane
        for o, lines in zip(self.others, self._other_path):
            lines.set([o.entry_lps_mm, o.tip_lps_mm], [(0, 1)])
            self.clip_to_slab(lines.actor, 2.5)

    def set_depth_marker(self, depth_mm: float | None) -> None:
        """In-plane views: show where the bull's-eye slice cuts the path (depth mm)."""
        self._marker_depth_mm = None if depth_mm is None else float(depth_mm)
        self.request_render()

    @property
    def depth_mm(self) -> float:
        """Bull's-eye: depth of the slice along the path, mm from the skin entry."""
        return self._depth_mm

    def set_depth(self, depth_mm: float, emit: bool = True) -> None:
        """Bull's-eye: move the slice to ``depth_mm`` from the entry along the path."""
        self.set_slice_position(depth_mm, emit=emit)

    # ================================================================= geometry
    def _range_along(self, n: np.ndarray) -> tuple[float, float]:
        """Extent of the CT along ``n`` relative to the entry (mm)."""
        if self._bounds is None or self.frame is None:
            return -1e9, 1e9
        lo, hi = self._bounds
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])])
        s = (corners - self.frame.entry_lps_mm) @ n
        return float(s.min()), float(s.max())

    def depth_range_mm(self) -> tuple[float, float]:
        """Range of slice positions within the CT (mm): depths from the entry for the
        bull's-eye, offsets from the needle for the in-plane views."""
        return self._range_along(self._normal)

    @property
    def slice_position_mm(self) -> float:
        return self._depth_mm if self.kind == "bullseye" else self._offset_mm

    def set_slice_position(self, pos_mm: float, emit: bool = True) -> None:
        """Bull's-eye: depth from the entry; in-plane: offset from the needle (mm), both
        clamped to the CT."""
        if self.frame is None:
            return
        lo, hi = self._range_along(self._normal)
        pos_mm = float(np.clip(pos_mm, lo, hi))
        cam = self.renderer.GetActiveCamera()
        delta = pos_mm - self.slice_position_mm
        fp = np.array(cam.GetFocalPoint()) + delta * self._normal
        cam.SetFocalPoint(*fp)
        cam.SetPosition(*(np.array(cam.GetPosition()) + delta * self._normal))
        if self.kind == "bullseye":
            self._depth_mm = pos_mm
        else:
            self._offset_mm = pos_mm
        self._after_slice_move()
        if emit:
            self.slice_changed.emit(self.name, pos_mm)

    def set_crosshair(self, p_lps_mm: np.ndarray) -> None:
        """Move the slice through an LPS point (depth or offset of that point)."""
        self._crosshair = np.asarray(p_lps_mm, dtype=float).copy()
        if self.frame is not None:
            self.set_slice_position(float((self._crosshair - self.frame.entry_lps_mm)
                                          @ self._normal), emit=False)

    def reset_camera(self, keep_zoom: bool = False) -> None:
        """Centre on the needle (whole path across the width); the bull's-eye at its depth.
        ``keep_zoom``: keep the current magnification."""
        if self._bounds is None or self.frame is None:
            return
        f = self.frame
        if self.kind == "bullseye":
            self._depth_mm = float(np.clip(self._depth_mm, *self._range_along(f.d)))
            fp = f.point_at_depth(self._depth_mm)
        else:
            fp = f.point_at_depth(f.length_mm / 2) + self._offset_mm * self._normal
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(*fp)
        cam.SetPosition(*(fp - self._normal))
        cam.SetViewUp(*self._up)
        w, h = self.display_size()
        half_w_mm = cam.GetParallelScale() * (w / h if h > 0 else 1.0)
        if not keep_zoom or self._fit is None or (
                self.kind != "bullseye" and half_w_mm < f.length_mm / 2 + 5.0):
            self._fit_zoom()       # first view of this needle, or its path left the view
        self._after_slice_move()

    def _fit_zoom(self) -> None:
        """Magnify so the whole path plus 20 mm each side spans the view's width."""
        if self.frame is None:
            return
        w, h = self.display_size()
        aspect = w / h if h > 0 else 1.0
        half_w_mm = self.frame.length_mm / 2 + 20.0
        scale = max(half_w_mm / max(aspect, 1e-3), 30.0)
        self.renderer.GetActiveCamera().SetParallelScale(scale)
        self._fit = (w, h, scale)

    def _after_slice_move(self) -> None:
        self._follow_slice()
        if self.kind == "bullseye":
            self._draw_bullseye_marks()
        self._update_text()
        self.request_render()

    def _update_text(self) -> None:
        f, n = self.frame, self.needle
        if f is None or n is None:
            self._info.SetInput("")
            for t in self._edge_labels:
                t.SetInput("")
            return
        for t, v in zip(self._edge_labels, (-self._right, self._right, self._up, -self._up)):
            t.SetInput(direction_label(v))
        name = n.name or "needle"
        if self.kind == "bullseye":
            depth = self._depth_mm
            if depth > f.length_mm + 1e-6:
                where = f"{depth - f.length_mm:.1f} mm beyond the tip"
            elif depth < 0:
                where = f"{-depth:.1f} mm outside the entry"
            else:
                where = f"{f.length_mm - depth:.1f} mm before the tip"
            self._info.SetInput(f"{name}: depth {depth:.1f} mm from the entry\n{where} "
                                f"(path {f.length_mm:.1f} mm)" + self._spacing_text)
        else:
            off = "" if abs(self._offset_mm) < 0.05 else \
                f"\nplane {self._offset_mm:+.1f} mm off the path (needle projected)"
            self._info.SetInput(f"{name}: {f.length_mm:.1f} mm   {self.angles_text}{off}")

    def set_volume(self, volume: Volume | None, image: vtkImageData | None = None) -> None:
        super().set_volume(volume, image)
        self._step_mm = 1.0        # scroll 1 mm (Shift: 10 mm) along the view normal
        self.reset_camera()

    def _update_crosshair_geometry(self) -> None:
        for a in self._cross_actors:
            a.SetVisibility(False)

    # ================================================================= bull's-eye
    def _draw_bullseye_marks(self) -> None:
        """Rings where this needle (and the others) cross the bull's-eye plane."""
        f, n = self.frame, self.needle
        if f is None or n is None:
            return
        depth = self._depth_mm
        p = f.point_at_depth(depth)
        active_from = f.length_mm - min(float(n.exposure_mm or 0.0), f.length_mm)
        if 0 <= depth <= f.length_mm:
            rgb = ACTIVE_RGB if n.exposure_mm and depth >= active_from else n.rgb
        else:
            rgb = BEYOND_RGB
        pts, segs = _ring(p, self._up, self._right, 2.5)
        self._marks.set(pts, segs, rgb)
        anchors = []
        spacings = []
        for o, lines in zip(self.others, self._other_path):
            v = o.tip_lps_mm - o.entry_lps_mm
            den = float(v @ f.d)
            s = float((p - o.entry_lps_mm) @ f.d) / den if abs(den) > 1e-6 else -1.0
            if not 0.0 <= s <= 1.0:
                lines.set([], [])
                continue
            q = o.entry_lps_mm + s * v
            lines.set(*_ring(q, self._up, self._right, 2.0, 16))
            # name outside the ring, pointing away from this needle (off the target)
            away = np.array([(q - p) @ self._right, (q - p) @ self._up])
            norm = float(np.linalg.norm(away))
            dx, dy = (14.0 * away / norm) if norm > 1e-6 else (12.0, 10.0)
            anchors.append((q, o.name, o.rgb, float(dx), float(dy)))
            spacings.append(f"{o.name} {np.linalg.norm(q - p):.1f}")
        self._label_anchors = anchors
        # distance in this plane from the needle to each needle crossing it (IRE spacing)
        self._spacing_text = ("\nto " + ", ".join(spacings) + " mm") if spacings else ""

    # ================================================================= per render
    def before_render(self) -> None:
        """Scale bar, depth ruler (ticks every 10 mm, labels at least 40 px apart), the
        bull's-eye depth line and needle names, all sized in screen pixels."""
        w, h = self.display_size()
        cam = self.renderer.GetActiveCamera()
        if self._fit is not None and (w, h) != self._fit[:2] \
                and cam.GetParallelScale() == self._fit[2]:
            self._fit_zoom()   # resized and not zoomed by the user since: fit again
        super().before_render()
        if w < 2 or h < 2 or self.volume is None or self.frame is None:
            self._place_labels([])
            return
        f = self.frame
        mm_per_px = 2 * self.renderer.GetActiveCamera().GetParallelScale() / h
        anchors = list(self._label_anchors)
        if self.kind != "bullseye":
            # ticks below the path (never on it): every 10 mm from the entry to the tip
            below = -self._up
            pts, segs = [], []
            n_ticks = int(np.floor(f.length_mm / TICK_STEP_MM + 1e-9))
            label_every = 1
            while TICK_STEP_MM * label_every / mm_per_px < 40:
                label_every = {1: 2, 2: 5}.get(label_every, label_every * 2)
            for k in range(n_ticks + 1):
                p = f.point_at_depth(k * TICK_STEP_MM)
                long = k % label_every == 0
                a0 = p + below * 4 * mm_per_px
                a1 = p + below * (12 if long else 8) * mm_per_px
                pts += [a0, a1]
                segs.append((len(pts) - 2, len(pts) - 1))
                if long:
                    anchors.append((a1, f"{k * TICK_STEP_MM:.0f}", RULER_RGB, 0.0, -13.0))
            self._ticks.set(pts, segs)
            # other needles: name at the middle of their part within the 2.5 mm slab
            fp = np.array(self.renderer.GetActiveCamera().GetFocalPoint())
            for o in self.others:
                v = o.tip_lps_mm - o.entry_lps_mm
                h0, dh = float((o.entry_lps_mm - fp) @ self._normal), float(v @ self._normal)
                if abs(dh) < 1e-9:
                    s0, s1 = (0.0, 1.0) if abs(h0) <= 2.5 else (1.0, 0.0)
                else:
                    s0, s1 = sorted(((-2.5 - h0) / dh, (2.5 - h0) / dh))
                s0, s1 = max(s0, 0.0), min(s1, 1.0)
                if s1 > s0:
                    q = o.entry_lps_mm + (s0 + s1) / 2 * v
                    anchors.append((q, o.name, o.rgb, 0.0, 11.0))
            # the bull's-eye slice: a line across the path, with a gap at the needle
            if self._marker_depth_mm is not None:
                c = f.point_at_depth(self._marker_depth_mm) + self._offset_mm * self._normal
                span = 2.0 * self.renderer.GetActiveCamera().GetParallelScale()
                gap = 8 * mm_per_px
                self._depth_line.set([c - span * self._up, c - gap * self._up,
                                      c + gap * self._up, c + span * self._up],
                                     [(0, 1), (2, 3)])
                # its label near the top edge, under the title lines (off the anatomy)
                fp = np.array(self.renderer.GetActiveCamera().GetFocalPoint())
                top = c + self._up * (span / 2 - float((c - fp) @ self._up) - 52 * mm_per_px)
                anchors.append((top, f"{self._marker_depth_mm:.0f} mm",
                                PROBE_COLORS["bullseye"], 22.0, 0.0))
            else:
                self._depth_line.set([], [])
        self._place_labels(anchors)

    def _place_labels(self, anchors: list[tuple[np.ndarray, str, tuple[float, float, float],
                                                float, float]]) -> None:
        while len(self._labels) < len(anchors):
            t = _text_actor(12)
            t.GetTextProperty().SetJustificationToCentered()
            t.GetTextProperty().SetVerticalJustificationToCentered()
            self.overlay_renderer.AddViewProp(t)
            self._labels.append(t)
        for t, (p, text, rgb, dx, dy) in zip(self._labels, anchors):
            x, y = self.world_to_display(p)
            t.SetInput(text)
            t.GetTextProperty().SetColor(*rgb)
            t.SetPosition(x + dx, y + dy)
            t.SetVisibility(True)
        for t in self._labels[len(anchors):]:
            t.SetVisibility(False)
