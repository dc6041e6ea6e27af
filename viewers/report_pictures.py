"""Headless pictures for the report: 3D scene, axial/coronal MPR slices, margin map.

Rendering is VTK offscreen (``vtkRenderWindow.SetOffScreenRendering`` +
``vtkWindowToImageFilter`` -> PNG). Under X (Xvfb) the default window class is used;
without a display, ``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow`` is set when the user
has not chosen a window class (see ENVIRONMENT.md "Rendering").

Conventions: scenes are in LPS mm. Every picture follows the radiological convention:
the patient's left is on the picture's right. Axial: anterior up; coronal and the 3D
anterior view: superior up. Orientation letters are drawn at the picture edges.
MPR slices are sampled with :meth:`Volume.value_at_lps` (the project's only index<->world
conversion): CT trilinear, masks nearest neighbour.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from irplan.planning.display_names import needle_label
from irplan.planning.plan import Needle
from irplan.planning.structures import lesion_keys, structure_color, structure_types
from irplan.planning.volume import Volume

# Context structures of the 3D scene, drawn in this order (opaque first).
SCENE_KEYS = ("portal_vein", "hepatic_vein", "artery", "bile_duct", "tumor", "bone", "liver")
CONTEXT_KEYS = ("liver", "bone")
CONTEXT_SPACING_MM = 2.5
CONTOUR_KEYS = ("liver", "portal_vein", "hepatic_vein", "artery", "bile_duct", "tumor")

ZONE_RGB = (1.0, 0.45, 0.0)
NEEDLE_RGB = (0.80, 0.85, 0.90)
EXPOSURE_RGB = (0.10, 0.95, 0.95)
TEXT_RGB = (1.0, 1.0, 1.0)
ABDOMEN_WINDOW_HU = (400.0, 50.0)   # W/L, Radiopaedia "Windowing (CT)" (viewers/presets.py)


@dataclass
class RenderedPicture:
    """A PNG written by this module: title, file and a one-line caption."""

    title: str
    path: Path
    caption: str


def _with_lesions(keys: Sequence[str], structures: Mapping[str, Any]) -> list[str]:
    """``keys`` and, after "tumor", the case's further lesions (tumor_2, tumor_3, ...)."""
    more = [k for k in lesion_keys(structures) if k != "tumor"]
    out = list(keys)
    at = out.index("tumor") + 1 if "tumor" in out else len(out)
    return out[:at] + more + out[at:]


def ensure_headless_backend() -> None:
    """Choose VTK's EGL window when there is no X display (before any window is made)."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def _vtk() -> Any:
    """Import the VTK modules used here (after the backend choice)."""
    ensure_headless_backend()
    import vtkmodules.vtkRenderingFreeType  # noqa: F401 - text rendering
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401 - OpenGL backend
    from vtkmodules import vtkRenderingCore as rc

    return rc


def _render_png(renderer: Any, size: tuple[int, int], out: Path) -> Path:
    _vtk()
    from vtkmodules.vtkIOImage import vtkPNGWriter

    from irplan.io.atomic_write import atomic_write
    from irplan.viewers.offscreen import grab_offscreen

    image = grab_offscreen(renderer, size)
    writer = vtkPNGWriter()
    writer.SetInputData(image)

    def _write(tmp: Path) -> None:
        writer.SetFileName(str(tmp))
        writer.Write()
        if writer.GetErrorCode():
            raise OSError(writer.GetErrorCode(), "the PNG writer failed")

    return atomic_write(out, _write)


def _text(rc: Any, text: str, x: float, y: float, size: int = 16, bold: bool = True,
          justify: str = "left", vjust: str = "bottom",
          color: tuple[float, float, float] = TEXT_RGB) -> Any:
    """A 2D text actor at normalised viewport position (x, y)."""
    t = rc.vtkTextActor()
    t.SetInput(text)
    p = t.GetTextProperty()
    p.SetFontSize(size)
    p.SetBold(bold)
    p.SetColor(*color)
    p.SetShadow(True)
    {"left": p.SetJustificationToLeft, "center": p.SetJustificationToCentered,
     "right": p.SetJustificationToRight}[justify]()
    {"bottom": p.SetVerticalJustificationToBottom, "center": p.SetVerticalJustificationToCentered,
     "top": p.SetVerticalJustificationToTop}[vjust]()
    t.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    t.GetPositionCoordinate().SetValue(x, y)
    return t


def _orientation_letters(rc: Any, ren: Any, left: str, right: str, top: str, bottom: str) -> None:
    for s, x, y, j, v in ((left, 0.012, 0.5, "left", "center"),
                          (right, 0.988, 0.5, "right", "center"),
                          (top, 0.5, 0.985, "center", "top"),
                          (bottom, 0.5, 0.015, "center", "bottom")):
        ren.AddViewProp(_text(rc, s, x, y, 20, True, j, v, (1.0, 0.9, 0.3)))


# --------------------------------------------------------------------------- ROI
def focus_centre_lps(structures: Mapping[str, Volume], zone: Volume | None,
                     needles: Sequence[Needle]) -> np.ndarray | None:
    """Tumour centroid (LPS mm); else the zone's; else the mean needle tip."""
    for m in (structures.get("tumor"), zone):
        if m is not None and np.any(m.array):
            k, j, i = np.nonzero(m.array)
            return m.index_to_lps(np.array([i.mean(), j.mean(), k.mean()]))
    if needles:
        return np.mean([n.tip_lps_mm for n in needles], axis=0)
    return None


def _mask_bounds_lps(m: Volume) -> tuple[np.ndarray, np.ndarray] | None:
    if not np.any(m.array):
        return None
    idx = [np.flatnonzero(m.array.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1))]
    lo = np.array([idx[2][0], idx[1][0], idx[0][0]], float)
    hi = np.array([idx[2][-1], idx[1][-1], idx[0][-1]], float)
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                        for c in (lo[2], hi[2])])
    p = m.index_to_lps(corners)
    return p.min(axis=0), p.max(axis=0)


# --------------------------------------------------------------------------- 3D scene
def _needle_actors(rc: Any, needles: Sequence[Needle], radius_mm: float) -> list[Any]:
    from vtkmodules.vtkFiltersCore import vtkTubeFilter
    from vtkmodules.vtkFiltersSources import vtkLineSource, vtkSphereSource

    actors = []
    for nd in needles:
        parts = [(nd.entry_lps_mm, nd.tip_lps_mm, NEEDLE_RGB, radius_mm)]
        if nd.exposure_mm:
            start = nd.tip_lps_mm - float(nd.exposure_mm) * nd.direction
            parts.append((start, nd.tip_lps_mm, EXPOSURE_RGB, radius_mm * 1.35))
        for a, b, rgb, r in parts:
            line = vtkLineSource()
            line.SetPoint1(*map(float, a))
            line.SetPoint2(*map(float, b))
            tube = vtkTubeFilter()
            tube.SetInputConnection(line.GetOutputPort())
            tube.SetRadius(r)
            tube.SetNumberOfSides(16)
            tube.CappingOn()
            mapper = rc.vtkPolyDataMapper()
            mapper.SetInputConnection(tube.GetOutputPort())
            act = rc.vtkActor()
            act.SetMapper(mapper)
            act.GetProperty().SetColor(*rgb)
            act.GetProperty().SetAmbient(0.35)
            act.GetProperty().SetSpecular(0.4)
            actors.append(act)
        tip = vtkSphereSource()
        tip.SetCenter(*map(float, nd.tip_lps_mm))
        tip.SetRadius(radius_mm * 1.8)
        mapper = rc.vtkPolyDataMapper()
        mapper.SetInputConnection(tip.GetOutputPort())
        act = rc.vtkActor()
        act.SetMapper(mapper)
        act.GetProperty().SetColor(*EXPOSURE_RGB)
        actors.append(act)
    return actors


def _needle_labels(rc: Any, needles: Sequence[Needle]) -> list[Any]:
    out = []
    for n, nd in enumerate(needles, start=1):
        t = rc.vtkBillboardTextActor3D()
        t.SetInput(needle_label(nd, n - 1))
        t.SetPosition(*map(float, nd.entry_lps_mm))
        t.SetDisplayOffset(10, 8)
        t.GetTextProperty().SetFontSize(16)
        t.GetTextProperty().SetBold(True)
        t.GetTextProperty().SetColor(*EXPOSURE_RGB)
        t.GetTextProperty().SetShadow(True)
        out.append(t)
    return out


def _surface_actor(rc: Any, mask: Volume, rgb: tuple[float, float, float],
                   opacity: float) -> Any | None:
    from irplan.viewers.surfaces import mask_to_polydata

    poly = mask_to_polydata(mask, smoothing_iterations=15, target_reduction=0.5,
                            max_triangles=80000)
    if poly.GetNumberOfPoints() == 0:
        return None
    mapper = rc.vtkPolyDataMapper()
    mapper.SetInputData(poly)
    mapper.ScalarVisibilityOff()
    act = rc.vtkActor()
    act.SetMapper(mapper)
    prop = act.GetProperty()
    prop.SetColor(*rgb)
    prop.SetOpacity(opacity)
    prop.SetSpecular(0.2)
    return act


def render_scene(structures: Mapping[str, Volume], needles: Sequence[Needle],
                 zone: Volume | None, out_png: str | Path, *, size: tuple[int, int] = (900, 700),
                 needle_radius_mm: float = 1.0, roi_pad_mm: float = 40.0,
                 view: str = "anterior", title: str = "") -> Path:
    """3D picture: structure surfaces, needles (exposure in cyan), zone (orange, translucent).

    Structures are cropped to a box around the tumour, zone and needle tips grown by
    ``roi_pad_mm``. ``view``: "anterior" (from the front, S up) or "needle" (looking along
    the mean needle direction, the electrode array's cross-section).
    """
    rc = _vtk()
    ren = rc.vtkRenderer()
    ren.SetBackground(0.08, 0.09, 0.12)
    ren.SetBackground2(0.22, 0.24, 0.30)
    ren.GradientBackgroundOn()
    # region of interest
    pts = [n.tip_lps_mm for n in needles]
    for m in (structures.get("tumor"), zone):
        b = _mask_bounds_lps(m) if m is not None else None
        if b is not None:
            pts += [b[0], b[1]]
    if not pts:
        for m in structures.values():
            b = _mask_bounds_lps(m)
            if b is not None:
                pts += [b[0], b[1]]
    roi = (np.min(pts, axis=0) - roi_pad_mm, np.max(pts, axis=0) + roi_pad_mm) if pts else None
    types = structure_types()
    for key in _with_lesions(SCENE_KEYS, structures):
        m = structures.get(key)
        if m is None or not np.any(m.array):
            continue
        if roi is not None:
            try:
                m = m.crop_lps_box(roi[0], roi[1])
            except Exception:  # noqa: BLE001 - structure outside the ROI: not drawn
                continue
        if key in CONTEXT_KEYS and float(m.spacing_mm.min()) < CONTEXT_SPACING_MM:
            # context organs: a coarser grid is plenty at this scale and 5-10x faster
            m = m.resample_spacing(CONTEXT_SPACING_MM, "nearest")
        st = types.get(key) or types["other"]
        opacity = {"liver": 0.18, "bone": 0.55}.get(key, st.opacity)
        act = _surface_actor(rc, m, structure_color(key), opacity)
        if act is not None:
            ren.AddActor(act)
    if zone is not None and np.any(zone.array):
        act = _surface_actor(rc, zone, ZONE_RGB, 0.35)
        if act is not None:
            ren.AddActor(act)
    for a in _needle_actors(rc, needles, needle_radius_mm):
        ren.AddActor(a)
    for a in _needle_labels(rc, needles):
        ren.AddActor(a)
    cam = ren.GetActiveCamera()
    centre = focus_centre_lps(structures, zone, needles)
    if centre is None:
        centre = np.zeros(3)
    if view == "needle" and needles:
        d = np.mean([n.direction for n in needles], axis=0)
        d /= np.linalg.norm(d)
        up = np.array([0.0, 0.0, 1.0]) if abs(d[2]) < 0.9 else np.array([0.0, -1.0, 0.0])
        cam.SetPosition(*(centre - 300.0 * d))
        cam.ParallelProjectionOn()    # a true cross-section of the (parallel) array
        letters = ("", "", "", "")
    else:
        cam.SetPosition(*(centre + np.array([0.0, -400.0, 0.0])))  # anterior = -P
        up = np.array([0.0, 0.0, 1.0])
        letters = ("R", "L", "S", "I")
    cam.SetFocalPoint(*centre)
    cam.SetViewUp(*up)
    ren.ResetCamera()
    cam.SetFocalPoint(*centre)
    if roi is not None:
        extent = float(np.max(roi[1] - roi[0]))
        cam.SetParallelScale(extent / 2)
        dist = np.linalg.norm(np.array(cam.GetPosition()) - centre)
        cam.SetViewAngle(float(np.degrees(2 * np.arctan(0.55 * extent / dist))))
    ren.ResetCameraClippingRange()
    if any(letters):
        _orientation_letters(rc, ren, *letters)
    if title:
        ren.AddViewProp(_text(rc, title, 0.012, 0.985, 15, True, "left", "top"))
    return _render_png(ren, size, Path(out_png))


# --------------------------------------------------------------------------- MPR
def _plane_axes(orientation: str) -> tuple[np.ndarray, np.ndarray, tuple[str, str, str, str]]:
    """Screen-right and screen-up unit vectors (LPS) and letters (left, right, top, bottom)."""
    if orientation == "axial":
        return np.array([1.0, 0, 0]), np.array([0, -1.0, 0]), ("R", "L", "A", "P")
    if orientation == "coronal":
        return np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), ("R", "L", "S", "I")
    if orientation == "sagittal":
        return np.array([0, -1.0, 0]), np.array([0, 0, 1.0]), ("A", "P", "S", "I")
    raise ValueError(f"orientation {orientation!r}")


def _draw_segment(img: np.ndarray, p0: np.ndarray, p1: np.ndarray, rgb: np.ndarray,
                  width_px: int, alpha: float = 1.0, dash_px: int = 0) -> None:
    n = int(max(2, np.ceil(np.linalg.norm(p1 - p0) * 2)))
    t = np.linspace(0.0, 1.0, n)
    pts = p0[None] + t[:, None] * (p1 - p0)[None]
    if dash_px:
        keep = (np.floor(t * np.linalg.norm(p1 - p0) / dash_px) % 2) == 0
        pts = pts[keep]
    r = width_px // 2
    offs = np.array([(dx, dy) for dx in range(-r, r + 1) for dy in range(-r, r + 1)
                     if dx * dx + dy * dy <= r * r + r])
    ij = (np.rint(pts).astype(int)[:, None, :] + offs[None]).reshape(-1, 2)
    ok = (ij[:, 0] >= 0) & (ij[:, 0] < img.shape[1]) & (ij[:, 1] >= 0) & (ij[:, 1] < img.shape[0])
    mask = np.zeros(img.shape[:2], bool)
    mask[ij[ok, 1], ij[ok, 0]] = True
    img[mask] = (1 - alpha) * img[mask] + alpha * rgb


def mpr_image(ct: Volume | None, structures: Mapping[str, Volume], needles: Sequence[Needle],
              zone: Volume | None, centre_lps_mm: np.ndarray, orientation: str = "axial",
              fov_mm: float = 160.0, size_px: int = 512, slab_mm: float = 3.0,
              window_hu: tuple[float, float] = ABDOMEN_WINDOW_HU) -> np.ndarray:
    """RGB float image (rows top->bottom) of a slice through ``centre_lps_mm`` with
    structure contours, zone contour (orange) and needles (solid within ``slab_mm`` of
    the plane, dashed projection elsewhere; exposure in cyan)."""
    right, up, _ = _plane_axes(orientation)
    px_mm = fov_mm / size_px
    c = np.asarray(centre_lps_mm, float)
    u = (np.arange(size_px) - (size_px - 1) / 2) * px_mm
    uu, vv = np.meshgrid(u, -u)           # row 0 = top (+up)
    pts = c + uu[..., None] * right + vv[..., None] * up
    flat = pts.reshape(-1, 3)
    # sample from sub-volumes around the slice only (fast, same positions)
    lo = flat.min(axis=0) - slab_mm - 3.0
    hi = flat.max(axis=0) + slab_mm + 3.0

    def crop(v: Volume) -> Volume | None:
        try:
            return v.crop_lps_box(lo, hi)
        except Exception:  # noqa: BLE001 - the volume does not reach the slice
            return None

    ct = crop(ct) if ct is not None else None
    if ct is not None:
        hu = np.asarray(ct.value_at_lps(flat, order=1, outside=-1000.0)).reshape(uu.shape)
        w, lev = window_hu
        g = np.clip((hu - (lev - w / 2)) / w, 0.0, 1.0)
    else:
        g = np.zeros(uu.shape)
    img = np.repeat(g[..., None], 3, axis=2)
    items = [(k, structures[k], np.array(structure_color(k)), 2)
             for k in _with_lesions(CONTOUR_KEYS, structures) if k in structures]
    if zone is not None:
        items.append(("zone", zone, np.array(ZONE_RGB), 3))
    for key, m, rgb, width in items:
        m = crop(m)
        if m is None:
            continue
        inside = np.asarray(m.value_at_lps(flat, order=0, outside=0.0)).reshape(uu.shape) > 0.5
        if not inside.any():
            continue
        if key in ("tumor", "zone"):
            img[inside] = 0.82 * img[inside] + 0.18 * rgb
        edge = inside & ~ndimage.binary_erosion(inside, iterations=1)
        if width > 1:
            edge = ndimage.binary_dilation(edge, iterations=width // 2) & (
                inside | ndimage.binary_dilation(inside))
        img[edge] = rgb
    normal = np.cross(right, up)

    def to_px(p: np.ndarray) -> np.ndarray:
        d = p - c
        return np.array([d @ right / px_mm + (size_px - 1) / 2,
                         -(d @ up) / px_mm + (size_px - 1) / 2])

    for nd in needles:
        segs = [(nd.entry_lps_mm, nd.tip_lps_mm, np.array(NEEDLE_RGB))]
        if nd.exposure_mm:
            segs.append((nd.tip_lps_mm - float(nd.exposure_mm) * nd.direction, nd.tip_lps_mm,
                         np.array(EXPOSURE_RGB)))
        for a, b, rgb in segs:
            n = max(2, int(np.linalg.norm(b - a) / 0.5))
            t = np.linspace(0, 1, n)
            p = a[None] + t[:, None] * (b - a)[None]
            near = np.abs((p - c) @ normal) <= slab_mm
            # draw runs near the plane solid, the rest as a faint dashed projection
            for flag, (alpha, width, dash) in ((False, (0.55, 1, 6)), (True, (1.0, 3, 0))):
                sel = near == flag
                if not sel.any():
                    continue
                runs = np.flatnonzero(np.diff(np.r_[0, sel.astype(int), 0]))
                for s, e in zip(runs[::2], runs[1::2]):
                    _draw_segment(img, to_px(p[s]), to_px(p[e - 1]), rgb, width, alpha, dash)
        tip_px = to_px(nd.tip_lps_mm)
        if abs((nd.tip_lps_mm - c) @ normal) <= slab_mm:
            yy, xx = np.ogrid[:size_px, :size_px]
            dot = (xx - tip_px[0]) ** 2 + (yy - tip_px[1]) ** 2 <= 9
            img[dot] = EXPOSURE_RGB
    # scale bar: 20 mm, bottom right
    bar_px = 20.0 / px_mm
    y0 = size_px - 18
    x1 = size_px - 40
    _draw_segment(img, np.array([x1 - bar_px, y0]), np.array([x1, y0]), np.ones(3), 3)
    return img


def render_mpr(ct: Volume | None, structures: Mapping[str, Volume], needles: Sequence[Needle],
               zone: Volume | None, centre_lps_mm: np.ndarray, out_png: str | Path, *,
               orientation: str = "axial", fov_mm: float = 160.0, size_px: int = 600,
               title: str = "") -> Path:
    """An MPR slice picture (see :func:`mpr_image`) with orientation letters, title and a
    20 mm scale bar, rendered through VTK offscreen to PNG."""
    rc = _vtk()
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonDataModel import vtkImageData

    img = mpr_image(ct, structures, needles, zone, centre_lps_mm, orientation, fov_mm, size_px)
    rgb = np.ascontiguousarray((np.clip(img, 0, 1) * 255).astype(np.uint8)[::-1])  # VTK: y up
    data = vtkImageData()
    data.SetDimensions(size_px, size_px, 1)
    arr = numpy_support.numpy_to_vtk(rgb.reshape(-1, 3), deep=True)
    arr.SetNumberOfComponents(3)
    data.GetPointData().SetScalars(arr)
    actor = rc.vtkImageActor()
    actor.GetMapper().SetInputData(data)
    actor.GetProperty().SetInterpolationTypeToNearest()
    ren = rc.vtkRenderer()
    ren.SetBackground(0, 0, 0)
    ren.AddActor(actor)
    cam = ren.GetActiveCamera()
    cam.ParallelProjectionOn()
    mid = (size_px - 1) / 2
    cam.SetFocalPoint(mid, mid, 0)
    cam.SetPosition(mid, mid, 1000)
    cam.SetViewUp(0, 1, 0)
    cam.SetParallelScale(size_px / 2)
    ren.ResetCameraClippingRange()
    letters = _plane_axes(orientation)[2]
    _orientation_letters(rc, ren, *letters)
    if title:
        ren.AddViewProp(_text(rc, title, 0.012, 0.985, 15, True, "left", "top"))
    ren.AddViewProp(_text(rc, "20 mm", 1 - 40 / size_px, 30 / size_px, 13, True, "right",
                         "bottom"))
    return _render_png(ren, (size_px, size_px), Path(out_png))


# --------------------------------------------------------------------------- margin map
def render_margin_map(margin: Any, out_png: str | Path, *, zone: Volume | None = None,
                      size: tuple[int, int] = (800, 650), title: str = "") -> Path:
    """The tumour surface coloured by local margin (mm): red < 0 (tumour outside the
    zone), orange/yellow 0 to the goal, green >= goal; the MAM point marked; the camera
    looks at the thinnest margin. ``margin``: a MarginResult
    (``surface_points_lps_mm``, ``surface_faces``, ``surface_margins_mm``)."""
    rc = _vtk()
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
    from vtkmodules.vtkFiltersCore import vtkPolyDataNormals
    from vtkmodules.vtkFiltersSources import vtkSphereSource
    from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor

    pts = np.asarray(margin.surface_points_lps_mm, float)
    faces = np.asarray(margin.surface_faces, np.int64)
    vals = np.asarray(margin.surface_margins_mm, float)
    req = float(margin.required_margin_mm)
    poly = vtkPolyData()
    vp = vtkPoints()
    vp.SetData(numpy_support.numpy_to_vtk(pts, deep=True))
    poly.SetPoints(vp)
    offsets = np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64)
    ca = vtkCellArray()
    ca.SetData(numpy_support.numpy_to_vtkIdTypeArray(offsets, deep=True),
               numpy_support.numpy_to_vtkIdTypeArray(faces.ravel().copy(), deep=True))
    poly.SetPolys(ca)
    sc = numpy_support.numpy_to_vtk(vals, deep=True)
    sc.SetName("margin_mm")
    poly.GetPointData().SetScalars(sc)
    normals = vtkPolyDataNormals()
    normals.SetInputData(poly)
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOn()
    lo, hi = -5.0, max(2.0 * req, 10.0)
    ctf = rc.vtkColorTransferFunction()
    ctf.AddRGBPoint(lo, 0.55, 0.0, 0.0)
    ctf.AddRGBPoint(-0.01, 0.95, 0.1, 0.1)
    ctf.AddRGBPoint(0.0, 1.0, 0.55, 0.0)
    ctf.AddRGBPoint(req - 0.01, 1.0, 0.9, 0.1)
    ctf.AddRGBPoint(req, 0.2, 0.8, 0.3)
    ctf.AddRGBPoint(hi, 0.05, 0.45, 0.15)
    mapper = rc.vtkPolyDataMapper()
    mapper.SetInputConnection(normals.GetOutputPort())
    mapper.SetLookupTable(ctf)
    mapper.SetScalarRange(lo, hi)
    mapper.SetInterpolateScalarsBeforeMapping(True)
    ren = rc.vtkRenderer()
    ren.SetBackground(0.08, 0.09, 0.12)
    ren.SetBackground2(0.22, 0.24, 0.30)
    ren.GradientBackgroundOn()
    act = rc.vtkActor()
    act.SetMapper(mapper)
    ren.AddActor(act)
    if zone is not None and np.any(zone.array):
        za = _surface_actor(rc, zone, ZONE_RGB, 0.18)
        if za is not None:
            ren.AddActor(za)
    mam_p = np.asarray(margin.mam_point_lps_mm, float)
    sph = vtkSphereSource()
    sph.SetCenter(*mam_p)
    sph.SetRadius(1.2)
    sm = rc.vtkPolyDataMapper()
    sm.SetInputConnection(sph.GetOutputPort())
    sa = rc.vtkActor()
    sa.SetMapper(sm)
    sa.GetProperty().SetColor(1.0, 1.0, 1.0)
    ren.AddActor(sa)
    lab = rc.vtkBillboardTextActor3D()
    lab.SetInput(f"MAM {float(margin.minimal_margin_mm):.1f} mm")
    lab.SetPosition(*mam_p)
    lab.SetDisplayOffset(14, 10)
    lab.GetTextProperty().SetFontSize(16)
    lab.GetTextProperty().SetBold(True)
    lab.GetTextProperty().SetShadow(True)
    ren.AddActor(lab)
    bar = vtkScalarBarActor()
    bar.SetLookupTable(ctf)
    bar.SetTitle("margin (mm)")
    ticks = vtkDoubleArray()
    for v in sorted({lo, 0.0, req, hi}):
        ticks.InsertNextValue(v)
    bar.SetUseCustomLabels(True)
    bar.SetCustomLabels(ticks)
    bar.SetLabelFormat("%.0f")
    bar.SetMaximumWidthInPixels(90)
    bar.GetPositionCoordinate().SetValue(0.86, 0.1)
    bar.SetWidth(0.12)
    bar.SetHeight(0.8)
    ren.AddViewProp(bar)
    centre = pts.mean(axis=0)
    view = mam_p - centre
    if np.linalg.norm(view) < 1e-6:
        view = np.array([0.0, -1.0, 0.0])
    view /= np.linalg.norm(view)
    cam = ren.GetActiveCamera()
    cam.SetFocalPoint(*centre)
    cam.SetPosition(*(centre + 300.0 * view))
    cam.SetViewUp(*((0.0, 0.0, 1.0) if abs(view[2]) < 0.9 else (0.0, -1.0, 0.0)))
    ren.ResetCamera()
    cam.Zoom(1.25)
    if title:
        ren.AddViewProp(_text(rc, title, 0.012, 0.985, 15, True, "left", "top"))
    return _render_png(ren, size, Path(out_png))


# --------------------------------------------------------------------------- all at once
def render_report_pictures(ct: Volume | None, structures: Mapping[str, Volume],
                           needles: Sequence[Needle], zone: Volume | None,
                           out_dir: str | Path, *, needle_radius_mm: float = 1.0,
                           ) -> list[RenderedPicture]:
    """The report's standard pictures: 3D anterior view, needle's-eye 3D view (with 2+
    needles), axial and coronal slices through the tumour centre."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pics: list[RenderedPicture] = []
    centre = focus_centre_lps(structures, zone, needles)
    # the captions name only what is drawn (no orange zone when none was computed)
    zone_words = "predicted zone orange" if zone is not None else "no predicted zone shown"
    pics.append(RenderedPicture(
        "3D view, anterior", render_scene(structures, needles, zone, out / "scene_anterior.png",
                                          needle_radius_mm=needle_radius_mm,
                                          title="3D, anterior view"),
        f"Surfaces in LPS mm; needles grey, active part cyan; {zone_words}."))
    if len(needles) >= 2:
        pics.append(RenderedPicture(
            "3D view along the needles",
            render_scene(structures, needles, zone, out / "scene_needles.png", view="needle",
                         needle_radius_mm=needle_radius_mm, roi_pad_mm=15.0,
                         title="3D, along the mean needle axis"),
            "Looking down the mean needle direction: array cross-section"
            + (" and zone." if zone is not None else ".")))
    if centre is not None:
        for orient in ("axial", "coronal"):
            lps = centre
            where = {"axial": f"S = {lps[2]:.1f} mm", "coronal": f"P = {lps[1]:.1f} mm"}[orient]
            pics.append(RenderedPicture(
                f"{orient.capitalize()} slice through the tumour centre",
                render_mpr(ct, structures, needles, zone, centre, out / f"mpr_{orient}.png",
                           orientation=orient, title=f"{orient.capitalize()}, {where}"),
                f"Contours: tumour yellow, liver brown, vessels; {zone_words}. "
                "Needles solid within 3 mm of the slice, dashed where projected."))
    return pics
