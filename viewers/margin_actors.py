"""VTK actors and pictures of the follow-up evaluation (LPS mm scenes).

* :func:`margin_polydata` / :func:`margin_surface_actor` - the tumour surface of a
  :class:`irplan.planning.margin.MarginResult`, coloured by local margin: red < 0 mm
  (tumour outside the zone), orange 0 to the required margin, green >= required (issue 7).
* :func:`mam_marker_actor` - a white ball at the minimal-margin point.
* :func:`fused_slice` - planning CT and registered follow-up CT on one MPR plane:
  checkerboard, blend or follow-up only (the follow-up is resampled through the
  registration transform planning -> follow-up, so anatomy should continue across the
  squares when the registration is right).
* :func:`render_evaluation_png` - the `irplan evaluate --screenshot` picture: the
  margin-coloured tumour in 3D beside axial and coronal fused slices through the MAM point
  with tumour (yellow) and zone (cyan) contours. Radiological convention (patient left
  on the picture's right), orientation letters at the edges.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from irplan.planning.volume import Volume

RED = (0.90, 0.10, 0.10)
ORANGE = (1.00, 0.55, 0.00)
GREEN = (0.15, 0.75, 0.25)
TUMOR_RGB = (1.0, 0.9, 0.1)
ZONE_RGB = (0.30, 0.80, 1.00)  # cyan: kept apart from the margin colours
ABDOMEN_WINDOW = (400.0, 50.0)  # W/L, Radiopaedia "Windowing (CT)" (as viewers/presets.py)


def margin_color(margin_mm: float | np.ndarray, required_mm: float = 5.0) -> np.ndarray:
    """RGB (0-1) of margin value(s): red < 0, orange [0, required), green >= required."""
    m = np.atleast_1d(np.asarray(margin_mm, float))
    out = np.empty(m.shape + (3,))
    out[:] = GREEN
    out[m < required_mm] = ORANGE
    out[m < 0.0] = RED
    return out


def margin_polydata(margin: Any) -> Any:
    """vtkPolyData of the tumour surface with point scalars ``margin_mm`` (mm) and
    unsigned-char RGB colours ``margin_rgb`` (red/orange/green)."""
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

    pts = np.ascontiguousarray(margin.surface_points_lps_mm, dtype=np.float64)
    faces = np.asarray(margin.surface_faces, np.int64)
    vals = np.ascontiguousarray(margin.surface_margins_mm, dtype=np.float64)
    poly = vtkPolyData()
    vp = vtkPoints()
    vp.SetData(numpy_support.numpy_to_vtk(pts, deep=True))
    poly.SetPoints(vp)
    ca = vtkCellArray()
    offsets = np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64)
    ca.SetData(numpy_support.numpy_to_vtkIdTypeArray(offsets, deep=True),
               numpy_support.numpy_to_vtkIdTypeArray(faces.ravel().copy(), deep=True))
    poly.SetPolys(ca)
    sc = numpy_support.numpy_to_vtk(vals, deep=True)
    sc.SetName("margin_mm")
    poly.GetPointData().AddArray(sc)
    rgb = (255 * margin_color(vals, float(margin.required_margin_mm))).astype(np.uint8)
    col = numpy_support.numpy_to_vtk(rgb, deep=True)
    col.SetName("margin_rgb")
    poly.GetPointData().SetScalars(col)
    return poly


def margin_surface_actor(margin: Any) -> Any:
    """Actor of the margin-coloured tumour surface (smooth normals)."""
    from vtkmodules.vtkFiltersCore import vtkPolyDataNormals
    from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

    normals = vtkPolyDataNormals()
    normals.SetInputData(margin_polydata(margin))
    normals.ConsistencyOn()
    normals.AutoOrientNormalsOn()
    normals.SplittingOff()
    mapper = vtkPolyDataMapper()
    mapper.SetInputConnection(normals.GetOutputPort())
    mapper.SetColorModeToDirectScalars()
    mapper.ScalarVisibilityOn()
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetInterpolationToPhong()
    actor.GetProperty().SetSpecular(0.2)
    return actor


def mam_marker_actor(margin: Any, radius_mm: float = 1.3) -> Any:
    """A white ball at the MAM point (LPS mm)."""
    from vtkmodules.vtkFiltersSources import vtkSphereSource
    from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

    s = vtkSphereSource()
    s.SetCenter(*(float(v) for v in margin.mam_point_lps_mm))
    s.SetRadius(radius_mm)
    s.SetThetaResolution(24)
    s.SetPhiResolution(16)
    m = vtkPolyDataMapper()
    m.SetInputConnection(s.GetOutputPort())
    a = vtkActor()
    a.SetMapper(m)
    a.GetProperty().SetColor(1.0, 1.0, 1.0)
    a.GetProperty().SetAmbient(0.4)
    return a


def nearest_surface_point(margin: Any, p_lps_mm: np.ndarray) -> tuple[np.ndarray, float]:
    """The tumour-surface vertex nearest to a picked point and its margin (mm)."""
    pts = np.asarray(margin.surface_points_lps_mm, float)
    i = int(np.argmin(np.linalg.norm(pts - np.asarray(p_lps_mm, float), axis=1)))
    return pts[i].copy(), float(margin.surface_margins_mm[i])


# ----------------------------------------------------------------------------- slices
_PLANES = {  # screen-right, screen-up (LPS) and edge letters (left, right, top, bottom)
    "axial": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), ("R", "L", "A", "P")),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), ("R", "L", "S", "I")),
    "sagittal": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0), ("A", "P", "S", "I")),
}


def plane_grid(centre_lps_mm: np.ndarray, orientation: str, fov_mm: float,
               size_px: int) -> Volume:
    """A one-slice grid on an MPR plane: i -> screen right, j -> screen down (row 0 top)."""
    right, up, _ = _PLANES[orientation]
    r, u = np.asarray(right), np.asarray(up)
    px = fov_mm / size_px
    d = np.stack([r, -u, np.cross(r, -u)], axis=1)
    origin = np.asarray(centre_lps_mm, float) - (size_px - 1) / 2 * px * (r - u)
    return Volume(np.zeros((1, size_px, size_px), np.uint8), origin, (px, px, px), d)


def _sample(vol: Volume | None, grid: Volume, transform: sitk.Transform | None,
            nearest: bool, default: float) -> np.ndarray | None:
    if vol is None:
        return None
    img = vol.to_sitk()
    if not nearest:
        img = sitk.Cast(img, sitk.sitkFloat32)
    out = sitk.Resample(img, grid.to_sitk(), transform or sitk.Transform(),
                        sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear,
                        float(default), img.GetPixelID())
    return sitk.GetArrayFromImage(out)[0].astype(np.float32)


def _window(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    w, lev = window
    return np.clip((hu - (lev - w / 2.0)) / w, 0.0, 1.0)


def fused_slice(planning_ct: Volume | None, followup_ct: Volume | None,
                transform: sitk.Transform | None, centre_lps_mm: np.ndarray,
                orientation: str = "axial", fov_mm: float = 140.0, size_px: int = 512,
                mode: str = "checkerboard", square_mm: float = 15.0,
                window: tuple[float, float] = ABDOMEN_WINDOW) -> np.ndarray:
    """RGB float image (rows top -> bottom) of the planning CT and the registered
    follow-up on one plane. ``mode``: "checkerboard" (alternating squares of
    ``square_mm``), "blend" (planning grey, follow-up in magenta/green difference colours)
    or "followup" / "planning" alone."""
    grid = plane_grid(centre_lps_mm, orientation, fov_mm, size_px)
    a = _sample(planning_ct, grid, None, False, -1000.0)
    b = _sample(followup_ct, grid, transform, False, -1000.0)
    ga = _window(a, window) if a is not None else np.zeros((size_px, size_px))
    gb = _window(b, window) if b is not None else ga
    if mode == "planning" or b is None:
        g = np.repeat(ga[..., None], 3, axis=2)
    elif mode == "followup":
        g = np.repeat(gb[..., None], 3, axis=2)
    elif mode == "blend":
        g = np.stack([ga, gb, ga], axis=2)  # planning magenta, follow-up green
    elif mode == "checkerboard":
        n = max(1, int(round(square_mm / (fov_mm / size_px))))
        yy, xx = np.indices((size_px, size_px))
        chk = ((yy // n + xx // n) % 2).astype(bool)
        g = np.repeat(np.where(chk, gb, ga)[..., None], 3, axis=2)
    else:
        raise ValueError(f"fused_slice mode {mode!r}")
    return g


def _contour(img: np.ndarray, inside: np.ndarray, rgb: tuple[float, float, float],
             width: int = 2, tint: float = 0.0) -> None:
    if not inside.any():
        return
    if tint > 0:
        img[inside] = (1 - tint) * img[inside] + tint * np.asarray(rgb)
    edge = inside & ~ndimage.binary_erosion(inside, iterations=1)
    if width > 1:
        edge = ndimage.binary_dilation(edge, iterations=width // 2)
    img[edge] = rgb


def evaluation_slice(result: Any, tumor: Volume, planning_ct: Volume | None,
                     followup_ct: Volume | None, orientation: str,
                     centre_lps_mm: np.ndarray | None = None, fov_mm: float = 100.0,
                     size_px: int = 512, mode: str = "checkerboard") -> np.ndarray:
    """Fused slice through the MAM point (or ``centre_lps_mm``) with the tumour contour
    (yellow), the registered ablation-zone contour (cyan) and the MAM point (white ring).
    Mask contours come from trilinear sampling at 0.5 (smoother than voxel steps)."""
    c = np.asarray(centre_lps_mm if centre_lps_mm is not None
                   else result.margin.mam_point_lps_mm, float)
    tf = result.registration.transform
    img = fused_slice(planning_ct, followup_ct, tf, c, orientation, fov_mm, size_px, mode)
    grid = plane_grid(c, orientation, fov_mm, size_px)
    t_in = _sample(tumor.with_array((tumor.array != 0).astype(np.float32)), grid, None,
                   False, 0.0)
    zp = result.zone_planning
    z_in = _sample(zp.with_array((zp.array != 0).astype(np.float32)), grid, None, False, 0.0)
    if z_in is not None:
        _contour(img, z_in > 0.5, ZONE_RGB, 3, 0.12)
    if t_in is not None:
        _contour(img, t_in > 0.5, TUMOR_RGB, 2, 0.0)
    mam = np.asarray(result.margin.mam_point_lps_mm, float)
    ij = grid.lps_to_index(mam)
    if abs(ij[2]) * grid.spacing_mm[2] < 3.0:
        x, y = ij[0], ij[1]
        yy, xx = np.ogrid[:size_px, :size_px]
        ring = np.abs(np.hypot(xx - x, yy - y) - 7.0) < 1.6
        img[ring] = (1.0, 1.0, 1.0)
    return img


# ----------------------------------------------------------------------------- picture
def _render_3d(result: Any, size: tuple[int, int]) -> np.ndarray:
    """Offscreen render of the margin-coloured tumour (+ translucent zone) -> RGB float."""
    from irplan.viewers.report_pictures import ensure_headless_backend

    ensure_headless_backend()
    import vtkmodules.vtkRenderingFreeType  # noqa: F401
    import vtkmodules.vtkRenderingOpenGL2  # noqa: F401
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkRenderingCore import vtkRenderer

    from irplan.viewers.offscreen import grab_offscreen

    margin = result.margin
    ren = vtkRenderer()
    ren.SetBackground(0.08, 0.09, 0.12)
    ren.SetBackground2(0.22, 0.24, 0.30)
    ren.GradientBackgroundOn()
    ren.AddActor(margin_surface_actor(margin))
    ren.AddActor(mam_marker_actor(margin))
    zone = result.zone_planning
    if zone is not None and np.any(zone.array):
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        from irplan.viewers.surfaces import mask_to_polydata

        try:
            poly = mask_to_polydata(zone)
        except Exception:  # noqa: BLE001 - the zone surface is context only
            poly = None
        if poly is not None and poly.GetNumberOfPoints():
            m = vtkPolyDataMapper()
            m.SetInputData(poly)
            m.ScalarVisibilityOff()
            a = vtkActor()
            a.SetMapper(m)
            a.GetProperty().SetColor(*ZONE_RGB)
            a.GetProperty().SetOpacity(0.18)
            ren.AddActor(a)
    pts = np.asarray(margin.surface_points_lps_mm, float)
    centre = pts.mean(axis=0)
    view = np.asarray(margin.mam_point_lps_mm, float) - centre
    if np.linalg.norm(view) < 1e-6:
        view = np.array([0.0, -1.0, 0.0])
    view /= np.linalg.norm(view)
    cam = ren.GetActiveCamera()
    cam.SetFocalPoint(*centre)
    cam.SetPosition(*(centre + 300.0 * view))
    cam.SetViewUp(*((0.0, 0.0, 1.0) if abs(view[2]) < 0.9 else (0.0, -1.0, 0.0)))
    ren.ResetCamera()
    cam.Zoom(1.2)
    img = grab_offscreen(ren, size)
    w, h, _ = img.GetDimensions()
    arr = numpy_support.vtk_to_numpy(img.GetPointData().GetScalars()).reshape(h, w, 3)
    return arr[::-1].astype(np.float32) / 255.0


def render_evaluation_png(result: Any, tumor: Volume, planning_ct: Volume | None,
                          followup_ct: Volume | None, out_png: str | Path,
                          panel_px: int = 560) -> Path:
    """One PNG: margin-coloured tumour in 3D | axial fused slice | coronal fused slice,
    with a title line (verdict, MAM, coverage) and a colour legend."""
    from PIL import Image, ImageDraw, ImageFont

    three_d = _render_3d(result, (panel_px, panel_px))
    slices = [evaluation_slice(result, tumor, planning_ct, followup_ct, o, size_px=panel_px)
              for o in ("axial", "coronal")]
    head = 64
    canvas = np.zeros((panel_px + head, 3 * panel_px + 8, 3), np.float32)
    canvas[:] = (0.05, 0.06, 0.08)
    for n, img in enumerate([three_d, *slices]):
        x0 = n * (panel_px + 4)
        canvas[head:, x0:x0 + panel_px] = img
    pil = Image.fromarray((255 * np.clip(canvas, 0, 1)).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    try:
        big = ImageFont.load_default(size=20)
        small = ImageFont.load_default(size=15)
    except TypeError:  # very old Pillow
        big = small = ImageFont.load_default()
    m = result.margin
    draw.text((10, 8), result.verdict_text, fill=(255, 255, 255), font=big)
    draw.text((10, 36), f"MAM {m.minimal_margin_mm:+.1f} mm   coverage "
              f"{m.tumor_coverage_percent:.1f} %   residual {m.residual_tumor_ml:.2f} mL   "
              f"registration {result.registration.method}", fill=(220, 220, 220), font=small)
    x = 3 * panel_px - 560
    for rgb, label in ((RED, "margin < 0 mm"), (ORANGE, f"0-{m.required_margin_mm:g} mm"),
                       (GREEN, f">= {m.required_margin_mm:g} mm"), (TUMOR_RGB, "tumour"),
                       (ZONE_RGB, "ablation zone")):
        draw.rectangle((x, 40, x + 14, 54), fill=tuple(int(255 * c) for c in rgb))
        draw.text((x + 20, 38), label, fill=(230, 230, 230), font=small)
        x += 20 + int(draw.textlength(label, font=small)) + 18
    labels = ["3D, looking at the thinnest margin", "axial, fused (checkerboard)",
              "coronal, fused (checkerboard)"]
    for n, text in enumerate(labels):
        draw.text((n * (panel_px + 4) + 8, head + 6), text, fill=(255, 255, 255), font=small)
    for n, o in enumerate(("axial", "coronal")):
        left, right, top, bottom = _PLANES[o][2]
        x0 = (n + 1) * (panel_px + 4)
        mid = head + panel_px // 2
        draw.text((x0 + 6, mid), left, fill=(255, 230, 0), font=big)
        draw.text((x0 + panel_px - 20, mid), right, fill=(255, 230, 0), font=big)
        draw.text((x0 + panel_px // 2, head + 26), top, fill=(255, 230, 0), font=big)
        draw.text((x0 + panel_px // 2, head + panel_px - 28), bottom, fill=(255, 230, 0),
                  font=big)
    from irplan.io.atomic_write import atomic_write

    return atomic_write(out_png, lambda tmp: pil.save(tmp, format="PNG"))
