"""A small PNG per evaluated lesion for the cohort QC report: the axial planning-CT slice
through the minimal-ablative-margin (MAM) point with the tumour contour (yellow), the
registered ablation-zone contour (cyan), the MAM point (a ring coloured by the margin:
red < 0 mm, orange 0 to the goal, green >= the goal) and the margin figure.

The slice is sampled in LPS mm (any grid direction): image columns run towards patient
left (L, radiological view: the patient's right on the viewer's left), rows towards
posterior (anterior at the top). The pixel -> LPS map is written into the PNG as the text
chunk ``irplan:geometry`` (JSON): pixel centre (row r, column c) lies at
``L = origin_lps_mm[0] + (c + 0.5) * pixel_mm``, ``P = origin_lps_mm[1] + (r + 0.5) *
pixel_mm``, ``S = s_mm``. Rows below ``image_px`` are the caption strip.
numpy, scipy and Pillow only (no Qt, no VTK).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin
from scipy import ndimage

from irplan.io.atomic_write import atomic_write
from irplan.planning.margin_display import format_mam
from irplan.planning.volume import Volume

IMAGE_PX = 256
CAPTION_PX = 22
TUMOR_RGB = (255, 230, 26)      # as the margin views (viewers/margin_actors.TUMOR_RGB)
ZONE_RGB = (77, 204, 255)       # as the margin views (viewers/margin_actors.ZONE_RGB)
MARGIN_RGB = {"incomplete": (230, 26, 26), "at_risk": (255, 140, 0), "ok": (38, 191, 64)}
WINDOW_HU = (400.0, 50.0)       # abdomen W/L (Radiopaedia "Windowing (CT)", viewers/presets)
PAD_MM = 12.0                   # around the tumour and zone
MIN_FOV_MM, MAX_FOV_MM = 40.0, 180.0
GEOMETRY_KEY = "irplan:geometry"


def _mask_box_lps(vol: Volume) -> tuple[np.ndarray, np.ndarray] | None:
    """LPS bounding box (mm) of the non-zero voxels, or None when empty."""
    a = vol.array != 0
    if not a.any():
        return None
    lo, hi = [], []
    for axis in (2, 1, 0):  # i, j, k: array axes k, j, i
        other = tuple(x for x in range(3) if x != axis)
        idx = np.flatnonzero(a.any(axis=other))
        lo.append(idx[0])
        hi.append(idx[-1])
    corners = np.array([[i, j, k] for i in (lo[0], hi[0]) for j in (lo[1], hi[1])
                        for k in (lo[2], hi[2])], float)
    p = vol.index_to_lps(corners)
    return p.min(axis=0), p.max(axis=0)


def _sample(vol: Volume, pts_lps: np.ndarray, order: int, cval: float,
            mask: bool = False) -> np.ndarray:
    """Values of ``vol`` at LPS points (N, 3): nearest (order 0) or trilinear (order 1);
    ``mask``: of the 0/1 indicator (non-zero voxels). Only the block of voxels around the
    points is read (a 512 x 512 x 300 CT is not converted as a whole)."""
    kji = vol.lps_to_index(pts_lps)[:, ::-1]  # array order k, j, i
    shape = np.array(vol.array.shape)
    lo = np.clip(np.floor(kji.min(axis=0)).astype(int) - 1, 0, shape)
    hi = np.clip(np.ceil(kji.max(axis=0)).astype(int) + 2, 0, shape)
    if np.any(hi <= lo):  # the slice misses the volume
        return np.full(len(pts_lps), cval, dtype=np.float32)
    arr = vol.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    if mask:
        arr = arr != 0
    if order == 1:
        arr = arr.astype(np.float32)
    return ndimage.map_coordinates(arr, (kji - lo).T, order=order, mode="constant",
                                   cval=cval)


def _contour(mask: np.ndarray) -> np.ndarray:
    """A 2-pixel inner boundary of a 2-D boolean mask."""
    inner = ndimage.binary_erosion(mask, iterations=2, border_value=0)
    return mask & ~inner


_DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def _font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans (has the \u2264/\u2265 signs) when installed, else Pillow's own."""
    try:
        if _DEJAVU.exists():
            return ImageFont.truetype(str(_DEJAVU), size)
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType
        return ImageFont.load_default()


def _ascii(text: str) -> str:
    return text.replace("\u2264", "<=").replace("\u2265", ">=")


def slice_window(result, tumor_mask: Volume) -> tuple[float, np.ndarray, float]:  # noqa: ANN001
    """(S of the slice mm, LPS (L, P) of the window's top-left corner mm, pixel size mm):
    the axial slice through the MAM point, a square window holding tumour and zone."""
    mam = np.asarray(result.margin.mam_point_lps_mm, float)
    boxes = [b for b in (_mask_box_lps(tumor_mask), _mask_box_lps(result.zone_planning))
             if b is not None]
    if boxes:
        lo = np.min([b[0] for b in boxes], axis=0)
        hi = np.max([b[1] for b in boxes], axis=0)
        lo, hi = np.minimum(lo, mam), np.maximum(hi, mam)
    else:
        lo = hi = mam
    centre = (lo[:2] + hi[:2]) / 2.0
    fov = float(np.clip(np.max(hi[:2] - lo[:2]) + 2 * PAD_MM, MIN_FOV_MM, MAX_FOV_MM))
    pix = fov / IMAGE_PX
    return float(mam[2]), centre - fov / 2.0, pix


def render_case_thumbnail(result, planning_ct: Volume | None,  # noqa: ANN001
                          tumor_mask: Volume) -> tuple[Image.Image, dict]:
    """The thumbnail image (RGB) and its geometry dict (see the module doc)."""
    s_mm, corner, pix = slice_window(result, tumor_mask)
    n = IMAGE_PX
    c = (np.arange(n) + 0.5) * pix
    ll, pp = np.meshgrid(corner[0] + c, corner[1] + c)  # rows = P, columns = L
    pts = np.column_stack([ll.ravel(), pp.ravel(), np.full(n * n, s_mm)])
    # masks: trilinear on 0/1, threshold 0.5 (smooth contours on coarse grids)
    tumor = _sample(tumor_mask, pts, 1, 0, mask=True).reshape(n, n) >= 0.5
    zone = _sample(result.zone_planning, pts, 1, 0, mask=True).reshape(n, n) >= 0.5
    if planning_ct is not None:
        hu = _sample(planning_ct, pts, 1, -1024.0).reshape(n, n)
        w, lev = WINDOW_HU
        grey = np.clip((hu - (lev - w / 2)) / w, 0, 1) * 255
        rgb = np.repeat(grey[..., None], 3, axis=2)
    else:  # no CT (register none): faint fills so the shapes read without anatomy
        rgb = np.full((n, n, 3), 24.0)
        rgb[zone] = 0.75 * rgb[zone] + 0.25 * np.array(ZONE_RGB)
        rgb[tumor] = 0.7 * rgb[tumor] + 0.3 * np.array(TUMOR_RGB)
    rgb[_contour(zone)] = ZONE_RGB
    rgb[_contour(tumor)] = TUMOR_RGB
    img = Image.new("RGB", (n, n + CAPTION_PX), (0, 0, 0))
    img.paste(Image.fromarray(rgb.astype(np.uint8)), (0, 0))
    draw = ImageDraw.Draw(img)

    m = result.margin
    mam = np.asarray(m.mam_point_lps_mm, float)
    col = (mam[0] - corner[0]) / pix - 0.5
    row = (mam[1] - corner[1]) / pix - 0.5
    key = ("incomplete" if m.minimal_margin_mm < 0 else
           "at_risk" if m.minimal_margin_mm < m.required_margin_mm else "ok")
    r = 6
    for dr, fill in ((r + 1.5, (0, 0, 0)), (r, MARGIN_RGB[key])):
        draw.ellipse((col - dr, row - dr, col + dr, row + dr), outline=fill, width=2)
    small = _font(11)
    draw.text((3, n // 2 - 6), "R", fill=(230, 230, 230), font=small)
    draw.text((n - 10, n // 2 - 6), "L", fill=(230, 230, 230), font=small)
    draw.text((n // 2 - 3, 2), "A", fill=(230, 230, 230), font=small)
    bar_px = 10.0 / pix  # 10 mm scale bar, bottom right of the picture
    x1, y = n - 6, n - 6
    draw.line((x1 - bar_px, y, x1, y), fill=(0, 0, 0), width=4)
    draw.line((x1 - bar_px, y, x1, y), fill=(230, 230, 230), width=2)
    draw.text((x1 - bar_px, y - 13), "10 mm", fill=(230, 230, 230), font=_font(9),
              stroke_width=1, stroke_fill=(0, 0, 0))
    text = f"MAM {format_mam(m)}    axial slice S {s_mm:+.1f} mm"
    font = _font(12)
    draw.text((4, n + 4), text if _DEJAVU.exists() else _ascii(text), fill=MARGIN_RGB[key],
              font=font)
    geometry = {"plane": "axial", "s_mm": round(s_mm, 3),
                "origin_lps_mm": [round(float(corner[0]), 4), round(float(corner[1]), 4)],
                "pixel_mm": round(pix, 6), "image_px": n,
                "columns": "towards patient left (L)", "rows": "towards posterior (P)"}
    return img, geometry


def write_case_thumbnail(result, planning_ct: Volume | None, tumor_mask: Volume,  # noqa: ANN001
                         out_png: Path) -> Path:
    """Write the QC thumbnail of one evaluated lesion (see the module doc) atomically.

    ``result``: a :class:`irplan.planning.evaluation.EvaluationResult`; ``planning_ct``
    (HU, may be None when the case used ``register none``) and ``tumor_mask`` as passed to
    the evaluation. Returns ``out_png``."""
    img, geometry = render_case_thumbnail(result, planning_ct, tumor_mask)
    info = PngImagePlugin.PngInfo()
    info.add_text(GEOMETRY_KEY, json.dumps(geometry))
    atomic_write(out_png, lambda tmp: img.save(tmp, format="PNG", pnginfo=info))
    return Path(out_png)


def read_geometry(png: Path) -> dict:
    """The pixel -> LPS map stored in a thumbnail (see the module doc)."""
    with Image.open(png) as im:
        return json.loads(im.text[GEOMETRY_KEY])


def thumbnail_filename(case_id: str) -> str:
    """The file name ``irplan cohort-report --thumbnails DIR`` looks for: ``<case id>.png``
    with characters other than letters, digits and ``-_.`` replaced by ``_``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in case_id).strip(".")
    return f"{safe or 'case'}.png"
