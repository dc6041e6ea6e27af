"""The "Target lesion" chooser (issue 17): which lesion of the case (Tumour 1, Tumour 2,
...) the plan treats. Coverage, margin and the tumour checks follow it; the choice is a
plan edit (plan key ``target_structure``, undoable, saved with the plan).

Shown when the case has several lesions (or the plan targets a lesion that is missing);
hidden for the usual one-tumour case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from irplan.planning.case import Case
from irplan.planning.lesions import SetTargetStructure, target_key
from irplan.planning.structures import lesion_keys, lesion_name


class TargetCombo(QWidget):
    """"Target lesion [Tumour 2 — 78.6 mL ▾]"; ``push`` runs the plan edit (a session's
    undo stack)."""

    def __init__(self, case: Case, push: Callable[[Any], Any],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.case, self.push = case, push
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("Target lesion")
        self.combo = QComboBox()
        self.combo.setObjectName("targetLesionCombo")
        self.combo.setToolTip("The lesion this plan treats: the zone's coverage and margin, "
                              "the tumour checks, the evaluation and the report are for it "
                              "(saved with the plan)")
        lay.addWidget(self.label)
        lay.addWidget(self.combo, 1)
        self.combo.activated.connect(self._on_activated)
        case.structures_changed.connect(self._on_structure)
        case.plan_replaced.connect(self.sync)
        case.plan_changed.connect(lambda t: self.sync() if t in ("target", "all") else None)
        self.sync()

    def _on_structure(self, key: str) -> None:
        if key.startswith("tumor"):
            self.sync()

    def sync(self, *_args: Any) -> None:
        """List the case's lesions with their volumes; select the plan's target."""
        structures = self.case.structures
        keys = lesion_keys(structures)
        target = target_key(self.case.plan)
        self.combo.blockSignals(True)
        self.combo.clear()
        for k in keys:
            m = structures[k]
            ml = float(np.count_nonzero(m.array)) * m.voxel_volume_ml
            self.combo.addItem(f"{lesion_name(k)} \u2014 {ml:.1f} mL", k)
        if target not in keys:
            self.combo.addItem(f"{lesion_name(target)} \u2014 no mask", target)
        self.combo.setCurrentIndex(self.combo.findData(target))
        self.combo.blockSignals(False)
        self.setVisible(len(keys) > 1 or target not in keys and target != "tumor")

    def current_key(self) -> str:
        return str(self.combo.currentData())

    def _on_activated(self, index: int) -> None:
        key = str(self.combo.itemData(index))
        if key != target_key(self.case.plan):
            self.push(SetTargetStructure(key))
        self.sync()
