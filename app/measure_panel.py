"""View > Measure (issue 16): distance, angle and ROI statistics on the slice views
(:mod:`irplan.viewers.measure_tools`), and View > Synchronise zoom/pan.

``install_measure(ctx)`` adds the menu entries; each finished measurement's figure goes
to the status line. The tool is ``ctx.services.measure`` when Services has that field.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup

from irplan.app.context import AppContext
from irplan.viewers.measure_tools import MeasureTool

MODE_TITLES = {"distance": "&Distance (mm)", "angle": "&Angle (degrees)",
               "roi_ellipse": "&Elliptical ROI (HU statistics)",
               "roi_rect": "&Rectangular ROI (HU statistics)"}
KIND_NAMES = {"distance": "Distance", "angle": "Angle", "roi_ellipse": "Ellipse ROI",
              "roi_rect": "Rectangle ROI"}


class MeasurePanel:
    """The Measure menu and its tool; ``actions`` by id (modes, "off", "clear", "sync")."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.tool = MeasureTool(ctx.views)
        self.actions: dict[str, QAction] = {}
        menu = ctx.menu("view").addMenu("&Measure")
        group = QActionGroup(menu)
        group.setExclusive(True)
        for mode, title in (("off", "&Off (crosshair)"), *MODE_TITLES.items()):
            a = QAction(title, menu)
            a.setCheckable(True)
            a.setObjectName(f"measure_{mode}")
            a.triggered.connect(lambda _c=False, m=mode: self.set_mode(None if m == "off" else m))
            group.addAction(a)
            menu.addAction(a)
            self.actions[mode] = a
        self.actions["off"].setChecked(True)
        menu.addSeparator()
        clear = menu.addAction("&Clear measurements")
        clear.triggered.connect(self.tool.clear)
        self.actions["clear"] = clear
        sync = QAction("&Synchronise zoom/pan", ctx.menu("view"))
        sync.setCheckable(True)
        sync.setObjectName("sync_zoom_pan")
        sync.toggled.connect(ctx.views.set_sync_zoom_pan)
        ctx.menu("view").addAction(sync)
        self.actions["sync"] = sync
        self.tool.changed.connect(self._on_changed)
        if hasattr(ctx.services, "measure"):
            ctx.services.measure = self.tool

    def set_mode(self, mode: str | None) -> None:
        self.tool.set_mode(mode)
        self.actions[mode or "off"].setChecked(True)
        if mode is not None:
            self.ctx.show_status(f"Measure: {MODE_TITLES[mode].replace('&', '')} — "
                                 "drag (angle: click three points) in a slice view", 8000)

    def _on_changed(self) -> None:
        if self.tool.measurements:
            m = self.tool.measurements[-1]
            self.ctx.show_status(f"{KIND_NAMES[m.kind]} ({m.view}): "
                                 f"{m.text.replace(chr(10), ', ')}", 0)

    def sync_with_case(self) -> None:
        """Measurements belong to the CT they were made on: none carried over."""
        self.tool.clear()


def install_measure(ctx: AppContext) -> MeasurePanel:
    panel = MeasurePanel(ctx)
    if ctx.case is not None:
        ctx.case.ct_changed.connect(panel.sync_with_case)
    return panel
