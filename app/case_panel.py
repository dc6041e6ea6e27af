"""The Case step panel: the series found in the opened folder and the structure list
(visibility, colour, opacity), plus how structures are drawn on the slices."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from irplan.viewers.view_set import ViewSet


def _rgb_css(color: tuple[float, float, float]) -> str:
    r, g, b = (int(round(c * 255)) for c in color)
    return f"rgb({r},{g},{b})"


class _StructureRow(QWidget):
    def __init__(self, panel: CasePanel, key: str) -> None:
        super().__init__()
        self.key = key
        self.panel = panel
        st = panel.views.styles[key]
        lay = QHBoxLayout(self)
        lay.setContentsMargins(2, 1, 2, 1)
        lay.setSpacing(6)
        self.check = QCheckBox()
        self.check.setChecked(st.visible)
        self.check.setToolTip("Show / hide in every view")
        self.check.toggled.connect(lambda on: panel.views.set_structure_style(key, visible=on))
        self.swatch = QPushButton()
        self.swatch.setFixedSize(18, 18)
        self.swatch.setToolTip("Change colour")
        self.swatch.clicked.connect(self._pick_color)
        self.label = QLabel(st.name or key)
        self.label.setMinimumWidth(90)
        self.volume = QLabel("")
        self.volume.setStyleSheet("color:#9aa4b2")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 100)
        self.slider.setValue(int(round(st.opacity_3d * 100)))
        self.slider.setToolTip("3D opacity")
        self.slider.setFixedWidth(70)
        self.slider.valueChanged.connect(
            lambda v: panel.views.set_structure_style(key, opacity_3d=v / 100.0))
        for w in (self.check, self.swatch):
            lay.addWidget(w)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.volume)
        lay.addWidget(self.slider)
        self._update_swatch()

    def _update_swatch(self) -> None:
        c = self.panel.views.styles[self.key].color
        self.swatch.setStyleSheet(f"background:{_rgb_css(c)}; border:1px solid #777;")

    def _pick_color(self) -> None:
        c = self.panel.views.styles[self.key].color
        q = QColorDialog.getColor(QColor.fromRgbF(*c), self, f"Colour of {self.label.text()}")
        if q.isValid():
            self.panel.views.set_structure_style(self.key, color=(q.redF(), q.greenF(), q.blueF()))
            self._update_swatch()


class CasePanel(QWidget):
    """Series of the opened study and structures of the case."""

    series_activated = Signal(object)   # a SeriesInfo the user wants to load

    def __init__(self, views: ViewSet, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.views = views
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)

        self.case_label = QLabel("No image loaded. File ▸ Open DICOM folder… (Ctrl+O)")
        self.case_label.setWordWrap(True)
        self.case_label.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.case_label)

        box = QGroupBox("Series")
        bl = QVBoxLayout(box)
        self.series_tree = QTreeWidget()
        self.series_tree.setHeaderLabels(["Series", "Slices", "Spacing mm"])
        self.series_tree.setRootIsDecorated(False)
        self.series_tree.setAlternatingRowColors(True)
        hdr = self.series_tree.header()
        hdr.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        hdr.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hdr.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.series_tree.setMaximumHeight(140)
        self.series_tree.setToolTip("Double-click a CT series to load it")
        self.series_tree.itemDoubleClicked.connect(self._on_series_double_clicked)
        bl.addWidget(self.series_tree)
        lay.addWidget(box)

        sbox = QGroupBox("Structures")
        sl = QVBoxLayout(sbox)
        sl.setSpacing(0)
        self._rows_box = QVBoxLayout()
        self._rows_box.setSpacing(0)
        sl.addLayout(self._rows_box)
        self._empty = QLabel("<i style='color:#7d8591'>No structures</i>")
        sl.addWidget(self._empty)
        opts = QHBoxLayout()
        opts.addWidget(QLabel("On slices:"))
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(["Fill", "Outline"])
        self.mode_combo.setCurrentIndex(1 if views.outline_mode else 0)
        self.mode_combo.setToolTip("Draw structures on the slices as translucent fills or "
                                   "contour lines")
        self.mode_combo.currentIndexChanged.connect(
            lambda i: self.views.set_outline_mode(i == 1))
        opts.addWidget(self.mode_combo)
        self.fill_slider = QSlider(Qt.Orientation.Horizontal)
        self.fill_slider.setRange(0, 100)
        self.fill_slider.setValue(40)
        self.fill_slider.setToolTip("Opacity of the fills on the slices")
        self.fill_slider.valueChanged.connect(self._on_fill_opacity)
        opts.addWidget(self.fill_slider, 1)
        sl.addLayout(opts)
        lay.addWidget(sbox)

        dbox = QGroupBox("3D view")
        dl = QVBoxLayout(dbox)
        self.planes_check = QCheckBox("Show slice planes")
        self.planes_check.setChecked(True)
        self.planes_check.toggled.connect(self.views.scene3d.set_planes_visible)
        dl.addWidget(self.planes_check)
        self.ct_slices_check = QCheckBox("CT slices in 3D")
        self.ct_slices_check.setTristate(True)
        self.ct_slices_check.setCheckState(Qt.CheckState.PartiallyChecked)
        self.ct_slices_check.setToolTip("Draw the three CT slices in the 3D view "
                                        "(partly checked: automatic, while no structure "
                                        "surface is shown)")
        self.ct_slices_check.checkStateChanged.connect(self._on_ct_slices)
        dl.addWidget(self.ct_slices_check)
        vr = QHBoxLayout()
        self.vr_check = QCheckBox("CT volume rendering")
        self.vr_combo = QComboBox()
        self.vr_combo.addItems(["soft_tissue", "vessels", "bone"])
        self.vr_check.toggled.connect(self._on_vr)
        self.vr_combo.currentTextChanged.connect(lambda _t: self._on_vr(self.vr_check.isChecked()))
        vr.addWidget(self.vr_check)
        vr.addWidget(self.vr_combo)
        dl.addLayout(vr)
        lay.addWidget(dbox)
        lay.addStretch(1)
        self._rows: dict[str, _StructureRow] = {}

    # ------------------------------------------------------------- series
    def set_series(self, series: list[Any], loaded_uid: str = "") -> None:
        """Fill the series list from ``ScanResult.series`` (SeriesInfo objects)."""
        self.series_tree.clear()
        for s in series:
            desc = s.description or "(no description)"
            text = f"{s.modality}  {desc}"
            if getattr(s, "phase", None):
                text += f"  [{s.phase}]"
            sp = s.spacing_mm
            item = QTreeWidgetItem([text, str(s.slices), f"{sp[0]:.3g}×{sp[1]:.3g}×{sp[2]:.3g}"])
            item.setData(0, Qt.ItemDataRole.UserRole, s)
            tip = [s.label, f"size {s.size[0]}×{s.size[1]}×{s.size[2]}",
                   f"orientation {s.orientation_name}"] + list(s.warnings)
            item.setToolTip(0, "\n".join(tip))
            if s.is_localizer:
                item.setForeground(0, QColor("#7d8591"))
            if s.series_uid == loaded_uid:
                f = item.font(0)
                f.setBold(True)
                item.setFont(0, f)
            self.series_tree.addTopLevelItem(item)

    def _on_series_double_clicked(self, item: QTreeWidgetItem, _col: int) -> None:
        s = item.data(0, Qt.ItemDataRole.UserRole)
        if s is not None:
            self.series_activated.emit(s)

    def set_case_text(self, html: str) -> None:
        self.case_label.setText(html)

    # ------------------------------------------------------------- structures
    def refresh_structures(self, volumes_ml: dict[str, float] | None = None) -> None:
        """Rebuild the structure rows from the view set's current structures."""
        keys = self.views.structure_keys()
        for key in list(self._rows):
            if key not in keys:
                row = self._rows.pop(key)
                self._rows_box.removeWidget(row)
                row.deleteLater()
        for key in keys:
            if key not in self._rows:
                row = _StructureRow(self, key)
                self._rows[key] = row
                self._rows_box.addWidget(row)
            if volumes_ml and key in volumes_ml:
                self._rows[key].volume.setText(f"{volumes_ml[key]:.1f} mL")
        self._empty.setVisible(not keys)

    def _on_fill_opacity(self, v: int) -> None:
        for key in self.views.structure_keys():
            self.views.set_structure_style(key, opacity_2d=v / 100.0)

    def _on_ct_slices(self, state: Qt.CheckState) -> None:
        on = {Qt.CheckState.Checked: True, Qt.CheckState.Unchecked: False}.get(state)
        self.views.scene3d.set_ct_slices_visible(on)

    def _on_vr(self, on: bool) -> None:
        self.views.scene3d.set_volume_rendering(on, self.vr_combo.currentText())
