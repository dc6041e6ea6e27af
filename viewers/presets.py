"""Display presets: CT window/level, 3D volume-rendering transfer functions, view colours.

Window values (HU). Source: the standard CT window table of Radiopaedia, "Windowing (CT)"
(https://radiopaedia.org/articles/windowing-ct): abdomen soft tissue W400 L50,
liver W150 L30 (unenhanced), bone W1800 L400, lung W1500 L-600. For the portal-venous
planning ceCT the liver window is centred on enhanced parenchyma, which reaches roughly
100-110 HU in the portal-venous phase (Bae KT, "Intravenous contrast medium
administration and scan timing at CT", Radiology 2010;256:32-61), hence L90.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WindowPreset:
    key: str
    name: str
    width_hu: float
    level_hu: float
    shortcut: str


# Order = keyboard shortcuts 1..5. "dicom" takes the series' own WindowWidth/Center.
WINDOW_PRESETS: tuple[WindowPreset, ...] = (
    WindowPreset("abdomen", "Abdomen soft tissue", 400.0, 50.0, "1"),
    WindowPreset("liver", "Liver (ceCT)", 150.0, 90.0, "2"),
    WindowPreset("bone", "Bone", 1800.0, 400.0, "3"),
    WindowPreset("lung", "Lung", 1500.0, -600.0, "4"),
    WindowPreset("dicom", "DICOM file's own", 400.0, 50.0, "5"),
)

DEFAULT_WINDOW = "abdomen"


def window_preset(key: str) -> WindowPreset:
    for p in WINDOW_PRESETS:
        if p.key == key:
            return p
    raise KeyError(key)


def dicom_window(metadata: dict) -> tuple[float, float] | None:
    """(width, level) HU from a Volume's metadata (WindowWidth/WindowCenter) if present.

    Accepts the keys the loader may use: ``window_width``/``window_center`` or the DICOM
    keywords ``WindowWidth``/``WindowCenter`` (first value of multi-valued entries).
    """
    def first(v: object) -> float | None:
        if v is None:
            return None
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        try:
            return float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None

    for wk, ck in (("window_width", "window_center"), ("WindowWidth", "WindowCenter"),
                   ("window_width_hu", "window_center_hu")):
        w, c = first(metadata.get(wk)), first(metadata.get(ck))
        if w is not None and c is not None and w > 0:
            return w, c
    win = metadata.get("window")
    if isinstance(win, (list, tuple)) and len(win) == 2:
        w, c = first(win[0]), first(win[1])
        if w is not None and c is not None and w > 0:
            return w, c
    return None


# Slicer-style view colours (axial red, coronal green, sagittal yellow): frames,
# crosshair lines and the slice planes in 3D use them.
VIEW_COLORS: dict[str, tuple[float, float, float]] = {
    "axial": (0.93, 0.33, 0.30),
    "coronal": (0.40, 0.80, 0.40),
    "sagittal": (0.95, 0.85, 0.35),
    "3d": (0.55, 0.65, 0.85),
}

# 3D CT volume rendering presets: (HU, r, g, b) colour points and (HU, opacity) points.
# Shapes follow the usual "CT-Soft-Tissue"/"CT-Bone" presets of VTK/3D Slicer
# (Slicer VolumeRendering presets.xml); HU anchors from the window table above.
VR_PRESETS: dict[str, dict[str, list[tuple[float, ...]]]] = {
    "soft_tissue": {
        "color": [(-1000, 0, 0, 0), (-100, 0.55, 0.25, 0.15), (40, 0.85, 0.55, 0.45),
                  (150, 1.0, 0.9, 0.8), (400, 1.0, 1.0, 0.95)],
        "opacity": [(-1000, 0), (-150, 0), (20, 0.02), (80, 0.10), (200, 0.3), (600, 0.6)],
    },
    "bone": {
        "color": [(-1000, 0, 0, 0), (150, 0.9, 0.6, 0.4), (300, 1.0, 0.95, 0.85),
                  (1500, 1.0, 1.0, 1.0)],
        "opacity": [(-1000, 0), (150, 0), (250, 0.25), (600, 0.8), (1500, 0.95)],
    },
    "vessels": {
        "color": [(-1000, 0, 0, 0), (100, 0.7, 0.2, 0.2), (180, 1.0, 0.4, 0.35),
                  (400, 1.0, 0.95, 0.9)],
        "opacity": [(-1000, 0), (120, 0), (170, 0.35), (350, 0.7), (1500, 0.9)],
    },
}
