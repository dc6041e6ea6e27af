"""Switching the plan's modality in the Plan panel (issue 12: IRE -> MWA left the
electrodes as "wrong device" errors). Needles of another device type are converted (same
tip and entry, the new modality's default device), removed, or kept, as the user chooses;
without a dialog (headless) they are converted. One undo step
(:func:`irplan.planning.modality_switch.switch_modality_command`).
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from irplan.planning.modality_switch import switch_modality_command, wrong_device_needles
from irplan.planning.plan import Plan


def ask_switch_action(parent: QWidget, plan: Plan, modality: str, headless: bool) -> str | None:
    """"convert" | "remove" | "keep", or None when the user cancels the switch."""
    wrong = wrong_device_needles(plan, modality)
    if not wrong or headless:
        return "convert"
    box = QMessageBox(parent)
    box.setWindowTitle("Change modality")
    box.setText(f"{len(wrong)} of {len(plan.needles)} needle(s) are not {modality} devices.\n\n"
                f"Convert: the same positions with the default {modality} device.\n"
                "Remove: delete them.\nKeep: leave them (the checks list them as errors).")
    convert = box.addButton("Convert", QMessageBox.ButtonRole.AcceptRole)
    remove = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
    keep = box.addButton("Keep", QMessageBox.ButtonRole.NoRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(convert)
    box.exec()
    return {convert: "convert", remove: "remove", keep: "keep"}.get(box.clickedButton())


def switch_modality(session, parent: QWidget, modality: str, headless: bool) -> bool:
    """Switch ``session.plan`` to ``modality`` (asking about wrong-device needles);
    True when switched."""
    plan = session.plan
    if modality == plan.modality:
        return False
    action = ask_switch_action(parent, plan, modality, headless)
    if action is None:
        return False
    return bool(session.push(switch_modality_command(plan, modality, action)))
