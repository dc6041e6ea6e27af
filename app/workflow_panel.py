"""The workflow side panel: steps Case -> Segment -> Plan -> Evaluate.

Other modules put their step's widget in with ``workflow.set_panel("plan", widget)``;
until then the step shows a placeholder. ``workflow.set_step("plan")`` switches steps.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

STEPS: tuple[tuple[str, str, str], ...] = (
    ("case", "1  Case", "Load the planning CT and its structures"),
    ("segment", "2  Segment", "Tumour, liver, vessels: import or segment"),
    ("plan", "3  Plan", "Place needles, check safety, predict the ablation zone"),
    ("evaluate", "4  Evaluate", "Follow-up CT: registration, margin, efficacy"),
)


def _placeholder(title: str, text: str) -> QWidget:
    w = QWidget()
    lay = QVBoxLayout(w)
    lab = QLabel(f"<b>{title}</b><br><span style='color:#9aa4b2'>{text}</span><br><br>"
                 "<i style='color:#7d8591'>This step is not available in this build yet.</i>")
    lab.setWordWrap(True)
    lab.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
    lay.addWidget(lab)
    lay.addStretch(1)
    return w


class WorkflowPanel(QWidget):
    """Step buttons on top, the current step's panel below (scrollable)."""

    step_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("workflowPanel")
        self.setMinimumWidth(280)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        bar = QFrame()
        bar.setObjectName("stepBar")
        bl = QHBoxLayout(bar)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.setSpacing(2)
        self._group = QButtonGroup(self)
        self._group.setExclusive(True)
        self._buttons: dict[str, QToolButton] = {}
        self._stack = QStackedWidget()
        self._pages: dict[str, QScrollArea] = {}
        self._panels: dict[str, QWidget] = {}
        for key, label, tip in STEPS:
            b = QToolButton()
            b.setText(label)
            b.setToolTip(tip)
            b.setCheckable(True)
            b.setObjectName("stepButton")
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            b.setSizePolicy(b.sizePolicy().horizontalPolicy().Expanding,
                            b.sizePolicy().verticalPolicy())
            b.clicked.connect(lambda _=False, k=key: self.set_step(k))
            self._group.addButton(b)
            bl.addWidget(b)
            self._buttons[key] = b
            area = QScrollArea()
            area.setWidgetResizable(True)
            area.setFrameShape(QFrame.Shape.NoFrame)
            self._pages[key] = area
            self._stack.addWidget(area)
            self.set_panel(key, _placeholder(label.split()[-1], tip))
        lay.addWidget(bar)
        lay.addWidget(self._stack, 1)
        self._current = ""
        self.set_step("case")

    @property
    def steps(self) -> list[str]:
        return [k for k, _, _ in STEPS]

    def set_panel(self, step: str, widget: QWidget) -> None:
        """Put ``widget`` as the panel of ``step`` ("case", "segment", "plan", "evaluate")."""
        if step not in self._pages:
            raise KeyError(f"unknown workflow step {step!r} (known: {', '.join(self._pages)})")
        old = self._pages[step].takeWidget()
        if old is not None and old is not widget:
            old.deleteLater()
        self._pages[step].setWidget(widget)
        self._panels[step] = widget

    def panel(self, step: str) -> QWidget:
        return self._panels[step]

    def set_step(self, step: str) -> None:
        if step not in self._pages:
            raise KeyError(step)
        self._buttons[step].setChecked(True)
        self._stack.setCurrentWidget(self._pages[step])
        if step != self._current:
            self._current = step
            self.step_changed.emit(step)

    @property
    def current_step(self) -> str:
        return self._current
