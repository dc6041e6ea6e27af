"""View > Measure (issue 16): distance, angle and ROI statistics on the slice views,
distance and angle between points picked on the surfaces of the 3D view
(:mod:`irplan.viewers.measure_tools`), and View > Synchronise zoom/pan.

``install_measure(ctx)`` adds the menu entries; each finished measurement's figure goes
to the status line. The measurements are kept with the plan: the plan file's optional
top-level ``measurements`` list (one object per measurement: ``kind``, ``view``,
``points_lps_mm``, ``text`` and ``distance_mm`` / ``angle_deg`` / ``mean_hu``, ``sd_hu``,
``min_hu``, ``max_hu``, ``n_voxels``, ``area_mm2``; an extra key of schema 1, kept by
io/plan_file) and drawn again when that plan is opened on its CT.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup

from irplan.app.context import AppContext
from irplan.viewers.measure_tools import MeasureTool, measurement_from_json

MODE_TITLES = {"distance": "&Distance (mm)", "angle": "&Angle (degrees)",
               "roi_ellipse": "&Elliptical ROI (HU statistics)",
               "roi_rect": "&Rectangular ROI (HU statistics)",
               "distance_3d": "Distance in &3D (mm, on surfaces)",
               "angle_3d": "Angle in 3D (de&grees, on surfaces)"}
KIND_NAMES = {"distance": "Distance", "angle": "Angle", "roi_ellipse": "Ellipse ROI",
              "roi_rect": "Rectangle ROI", "distance_3d": "Distance", "angle_3d": "Angle"}
HOW = {"distance_3d": "click two points on the surfaces in the 3D view",
       "angle_3d": "click three points (vertex second) on the surfaces in the 3D view"}


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
        self._restoring = False
        self._shown = ""            # the last measurement's status line (kept until replaced)
        self.tool.changed.connect(self._on_changed)

    def set_mode(self, mode: str | None) -> None:
        self.tool.set_mode(mode)
        self.actions[mode or "off"].setChecked(True)
        if mode is not None:
            how = HOW.get(mode, "drag (angle: click three points) in a slice view")
            self.ctx.show_status(f"Measure: {MODE_TITLES[mode].replace('&', '')} — {how}",
                                 8000)

    def _on_changed(self) -> None:
        if self._restoring:
            return
        if self.tool.measurements:
            m = self.tool.measurements[-1]
            self._shown = f"{KIND_NAMES[m.kind]} ({m.view}): {m.text.replace(chr(10), ', ')}"
            self.ctx.show_status(self._shown, 0)
        plan = self.ctx.case.plan
        if plan is None:
            return
        rows = self.tool.to_json()
        if rows == plan.extra.get("measurements", []):
            return
        if rows:
            plan.extra["measurements"] = rows
        else:
            plan.extra.pop("measurements", None)
        session = self.ctx.services.session
        if session is not None:
            session.stack.mark_modified()      # the plan file differs: save prompt, autosave

    def sync_with_case(self) -> None:
        """The plan's measurements drawn (none carried over from another case)."""
        self._restoring = True
        # the previous case's figure must not stay in the status bar (no timeout)
        status = getattr(self.ctx.status, "currentMessage", None)
        if self._shown and status is not None and status() == self._shown:
            self.ctx.status.clearMessage()
        self._shown = ""
        try:
            self.tool.clear()
            plan, ct = self.ctx.case.plan, self.ctx.case.ct
            rows = plan.extra.get("measurements") if plan is not None else None
            if ct is None or self.ctx.views.volume is None or not isinstance(rows, list):
                return
            bad = 0
            for row in rows:
                try:
                    self.tool.add(measurement_from_json(row))
                except ValueError:
                    bad += 1
            if bad:
                self.ctx.show_status(f"Plan measurements: {bad} of {len(rows)} unreadable, "
                                     "not shown", 10000)
        finally:
            self._restoring = False


def install_measure(ctx: AppContext) -> MeasurePanel:
    panel = MeasurePanel(ctx)
    ctx.case.ct_changed.connect(panel.sync_with_case)
    ctx.case.plan_replaced.connect(panel.sync_with_case)
    panel.sync_with_case()
    return panel
