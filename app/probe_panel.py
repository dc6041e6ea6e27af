"""Needle-aligned ("probe's eye") views of the selected needle, in a dock of the main window.

Three :class:`~irplan.viewers.probe_view.ProbeView` side by side: two in-plane reformats
that contain the whole path of the selected needle (A: with the patient's superior axis,
B: A turned 90 deg about the needle), entry on the left, tip on the right, a depth ruler
every 10 mm; and the bull's-eye view perpendicular to the needle at a depth along the
path (mm from the skin entry; wheel/PageUp/PageDown or the Depth box move it, a click in
an in-plane view puts it there). What they show comes from
:class:`irplan.app.probe_logic.ProbeLogic` (the plan session's selected needle, every plan
edit, the safety colours). Structures are drawn as in the MPR views (same colours,
visibility, fill/outline mode: they follow ``ViewSet.style_changed``), and so is the
predicted zone of ``ctx.services.zone``. With no needle selected the dock shows a hint.
Nothing is polled: hidden, the dock computes nothing and catches up when shown.

``install_probe_views(ctx)`` adds the dock ``ctx.docks["probe"]`` (bottom area) and
returns the panel; it needs the plan session (``ctx.services.session``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from irplan.app.context import AppContext
from irplan.app.dock_util import add_panel_dock, installed_panel, resize_dock
from irplan.app.probe_logic import ProbeLogic, default_depth_mm
from irplan.planning.volume import Volume
from irplan.viewers.probe_view import PROBE_COLORS, ProbeView
from irplan.viewers.view_set import ViewCell, default_style
from irplan.viewers.vtk_convert import volume_to_vtk
from irplan.viewers.zone_actors import ZONE_KEY

HINT = ("Select a needle (Plan step) to see its path: two in-plane views along it and a "
        "bull's-eye view across it.")
DOCK_HEIGHT_PX = 340    # initial height of the dock (the 2x2 views keep the rest)
RENDER_INTERVAL_S = 0.1  # probe views redraw at most this often on requests (not render_now)


class ProbePanel(QWidget):
    """The three needle-aligned views of :class:`ProbeLogic`'s target."""

    def __init__(self, ctx: AppContext, logic: ProbeLogic, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx, self.logic = ctx, logic
        self.case, self.views = ctx.case, ctx.views
        self.view_a = ProbeView("inplane_a")
        self.view_b = ProbeView("inplane_b")
        self.view_eye = ProbeView("bullseye")
        self.probe_views = (self.view_a, self.view_b, self.view_eye)
        for v in self.probe_views:
            # at most ~10 frames/s while a needle is dragged in the 2x2 views: those stay
            # fluid on software GL (refresh + 3 renders ~90 ms, bench_probe_views.py)
            v.min_interval_s = RENDER_INTERVAL_S
        self.needle_index: int | None = None     # the needle shown (None: hint)
        self._shown_key: tuple[int, int] | None = None
        self.depth_mm = 0.0
        self.dock: QDockWidget | None = None
        self._maximised: ProbeView | None = None
        self._struct_images: dict[str, Any] = {}
        self._zone_mask: Volume | None = None
        self._applied: dict[str, tuple] = {}     # key -> style/surface signature applied
        self._stale = False
        self._build()
        # one refresh / style sync per event-loop turn (a drag's many edits draw once)
        self._refresh_call = ctx.tasks.deferred(0, self.refresh, parent=self)
        self._style_call = ctx.tasks.deferred(0, self.sync_styles, parent=self)

        logic.changed.connect(self.schedule_refresh)
        self.views.style_changed.connect(self._on_style_changed)
        self.case.ct_changed.connect(self._on_ct_changed)
        self.case.structures_changed.connect(self._on_structure_changed)
        self.views.window_changed.connect(self._on_main_window_level)
        for v in self.probe_views:
            v.window_changed.connect(lambda w, lvl: self.views.set_window(w, lvl))
            v.cursor_moved.connect(self.views.cursor_moved)
            v.maximise_requested.connect(lambda v=v: self.toggle_maximise(v))
        self.view_a.crosshair_requested.connect(self._on_inplane_click)
        self.view_b.crosshair_requested.connect(self._on_inplane_click)
        self.view_eye.crosshair_requested.connect(self.views.set_crosshair)
        self.view_eye.slice_changed.connect(lambda _n, pos: self._on_depth(pos))
        zone = ctx.services.zone
        if zone is not None:
            zone.result_ready.connect(lambda _res, _fine: self._on_style_changed(ZONE_KEY))
            zone.cleared.connect(lambda _why: self._on_style_changed(ZONE_KEY))
            zone.failed.connect(lambda _msg: self._on_style_changed(ZONE_KEY))
        if self.case.ct is not None:
            self._on_ct_changed()
            for key in self.case.structures:
                self._on_structure_changed(key)
        self.refresh()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(2)
        head = QHBoxLayout()
        self.title_label = QLabel("")
        head.addWidget(self.title_label, 1)
        head.addWidget(QLabel("Bull's-eye depth"))
        self.depth_spin = QDoubleSpinBox()
        self.depth_spin.setDecimals(1)
        self.depth_spin.setSingleStep(1.0)
        self.depth_spin.setSuffix(" mm")
        self.depth_spin.setToolTip("Depth of the bull's-eye slice along the path, mm from the "
                                   "skin entry (wheel in the bull's-eye view: 1 mm, Shift 10)")
        self.depth_spin.setKeyboardTracking(False)
        self.depth_spin.valueChanged.connect(self.set_depth)
        head.addWidget(self.depth_spin)
        self.tip_button = QPushButton("At tip")
        self.tip_button.clicked.connect(lambda: self.set_depth(self._length_mm()))
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Re-centre and re-zoom the three views on the path")
        self.fit_button.clicked.connect(self.fit)
        head.addWidget(self.tip_button)
        head.addWidget(self.fit_button)
        self.header = QWidget()
        self.header.setLayout(head)
        lay.addWidget(self.header)
        self.stack = QStackedWidget()
        self.hint_label = QLabel(HINT)
        self.hint_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint_label.setWordWrap(True)
        self.stack.addWidget(self.hint_label)
        page = QWidget()
        row = QHBoxLayout(page)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        self._cells: dict[str, ViewCell] = {}
        for v in self.probe_views:
            cell = ViewCell(v, PROBE_COLORS[v.kind], name="probeCell")
            self._cells[v.kind] = cell
            row.addWidget(cell, 1)
        self.stack.addWidget(page)
        lay.addWidget(self.stack, 1)

    def toggle_maximise(self, view: ProbeView) -> None:
        """Show one probe view alone in the dock (again: all three)."""
        self._maximised = None if self._maximised is view else view
        for v in self.probe_views:
            self._cells[v.kind].setVisible(self._maximised is None or v is self._maximised)
        self.render()

    @property
    def showing_hint(self) -> bool:
        return self.stack.currentIndex() == 0

    # ------------------------------------------------------------------ updates
    def schedule_refresh(self) -> None:
        """Refresh at the next event-loop turn; while the dock is hidden nothing is
        computed: it refreshes when shown."""
        if not self.isVisible():
            self._stale = True
            return
        self._refresh_call.start()

    def _on_style_changed(self, _key: str = "") -> None:
        if not self.isVisible():
            self._stale = True
            return
        self._style_call.start()

    def on_shown(self, shown: bool) -> None:
        """The dock was shown (catch up when something changed while hidden) or hidden."""
        if not shown:
            return
        if self._stale:
            self._stale = False
            self.sync_styles()
            self.refresh()
        self.render()

    def _length_mm(self) -> float:
        v = self.view_eye
        return v.frame.length_mm if v.frame is not None else 0.0

    def refresh(self) -> None:
        """Show the logic's target needle (or the hint)."""
        self._refresh_call.stop()
        t = self.logic.target()
        if t is None:
            self.needle_index = None
            self._shown_key = None
            for v in self.probe_views:
                v.set_needle(None)
            self.title_label.setText("")
            self.header.setEnabled(False)
            self.stack.setCurrentIndex(0)
            return
        refit = t.key != self._shown_key
        if refit:
            self.depth_mm = default_depth_mm(t.needle)
        self._shown_key = t.key
        self.needle_index = t.index
        self.stack.setCurrentIndex(1)
        self.header.setEnabled(True)
        for v in self.probe_views:
            v.set_needle(t.mark, t.others, refit=refit, angles_text=t.angles_text)
        self.title_label.setText(t.title)
        self.set_depth(self.depth_mm)

    def set_depth(self, depth_mm: float) -> None:
        """Put the bull's-eye slice ``depth_mm`` from the entry along the path."""
        if self.view_eye.frame is None:
            return
        self.view_eye.set_depth(float(depth_mm), emit=True)

    def _on_depth(self, depth_mm: float) -> None:
        self.depth_mm = float(depth_mm)
        for v in (self.view_a, self.view_b):
            v.set_depth_marker(self.depth_mm)
        lo, hi = self.view_eye.depth_range_mm()
        self.depth_spin.blockSignals(True)
        self.depth_spin.setRange(lo, hi)
        self.depth_spin.setValue(self.depth_mm)
        self.depth_spin.blockSignals(False)

    def _on_inplane_click(self, p_lps_mm: np.ndarray) -> None:
        """A click in an in-plane view: bull's-eye to that depth, crosshair to the point."""
        f = self.view_eye.frame
        if f is not None:
            self.set_depth(f.depth_of(p_lps_mm))
        self.views.set_crosshair(p_lps_mm)

    def fit(self) -> None:
        for v in self.probe_views:
            v.reset_camera()

    def render(self) -> None:
        for v in self.probe_views:
            v.request_render()

    def render_now(self) -> None:
        for v in self.probe_views:
            v.render_now()

    # ------------------------------------------------------------------ image data
    def _on_ct_changed(self) -> None:
        ct = self.case.ct
        img = self.views.ct_image if self.views.volume is ct else None
        for v in self.probe_views:
            v.set_volume(ct, img)
            v.set_window(*self.views.window)
        self._shown_key = None
        self.schedule_refresh()

    def _on_structure_changed(self, key: str) -> None:
        self._set_structure(key, self.case.structures.get(key))

    def _sync_zone(self) -> None:
        """The predicted zone of ``ctx.services.zone``, if any, as the structure
        ``predicted_zone`` (contour or fill like the MPR views)."""
        zone = self.ctx.services.zone
        res = zone.result if zone is not None else None
        mask = res.zone if res is not None else None
        if mask is not self._zone_mask:
            self._zone_mask = mask
            self._set_structure(ZONE_KEY, mask)

    def _set_structure(self, key: str, mask: Volume | None) -> None:
        self._applied.pop(key, None)
        if mask is None:
            self._struct_images.pop(key, None)
            for v in self.probe_views:
                v.set_structure(key, None)
            return
        style = self.views.styles.get(key) or default_style(key)
        img = volume_to_vtk(mask)
        self._struct_images[key] = img
        for v in self.probe_views:
            v.set_structure(key, mask, style, image=img)
        self._on_style_changed(key)

    def sync_styles(self) -> None:
        """Apply the main views' structure colours, visibility, fill opacity, outline mode
        and surfaces (for outlines) where they changed."""
        self._style_call.stop()
        self._sync_zone()
        outline = self.views.outline_mode
        changed = False
        for key in self._struct_images:
            st = self.views.styles.get(key)
            if st is None:
                continue
            poly = self.views.surface(key)
            sig = (tuple(st.color), st.opacity_2d, st.visible, outline, id(poly))
            if self._applied.get(key) == sig:
                continue
            old = self._applied.get(key)
            for v in self.probe_views:
                if old is None or old[4] != id(poly):
                    v.set_structure_surface(key, poly)
                v.outline_mode = outline
                v.set_structure_style(key, st)
            self._applied[key] = sig
            changed = True
        if changed:
            self.render()

    def _on_main_window_level(self, w: float, lvl: float) -> None:
        for v in self.probe_views:
            if v.window != (w, lvl):
                v.set_window(w, lvl)


def install_probe_views(ctx: AppContext) -> ProbePanel:
    """Register :class:`ProbeLogic` as ``ctx.services.probe`` and add the needle-aligned
    views as the bottom dock ``ctx.docks["probe"]`` (hidden; View menu, Ctrl+Shift+N);
    returns the panel. Needs the plan session. Idempotent."""
    existing = installed_panel(ctx, "probe", ProbePanel)
    if existing is not None:
        return existing
    session = ctx.services.session
    if session is None:
        raise RuntimeError("install_probe_views: install the plan session first "
                           "(ctx.services.session)")
    logic = ProbeLogic(ctx.case, session)
    ctx.services.probe = logic
    panel = ProbePanel(ctx, logic)
    dock = add_panel_dock(ctx, "probe", "Needle views (probe's eye)", panel,
                          Qt.DockWidgetArea.BottomDockWidgetArea)
    panel.setMinimumHeight(220)
    resize_dock(dock, DOCK_HEIGHT_PX)
    dock.visibilityChanged.connect(panel.on_shown)
    dock.hide()   # on request (View menu, Ctrl+Shift+N): the 2x2 views keep their room
    toggle = dock.toggleViewAction()
    toggle.setText("Needle views (probe's eye)")
    toggle.setShortcut("Ctrl+Shift+N")
    ctx.menu("view").addAction(toggle)
    ctx.actions["probe_views"] = toggle
    panel.dock = dock
    return panel
