"""GUI tests of issue 12's planning defects, as the user saw them on the phantom:
switching IRE -> MWA, thermal "table default" values that did not compute, "Place at
tumour" adding a second antenna, margins clipped at the analysis box shown without "≤",
zone and training docks disagreeing, internal ids in messages.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui

WINDOW_SIZE = (1400, 900)
_ID = re.compile(r"\b[a-z]+_[a-z_]+\b|needles\[\d+\]")


def _session(win):
    for name in ("plan_session", "session"):
        obj = getattr(win, name, None)
        if obj is not None and hasattr(obj, "stack"):
            return obj
    services = getattr(getattr(win, "ctx", None), "services", None)
    if services is not None and services.session is not None:
        return services.session
    return win.needle_tools


def _panel(win):
    return win.workflow.panel("plan")


def _zone_text(win) -> str:
    return win.ctx.docks["zone"].widget().figures.text()


def _settle(win) -> None:
    assert win.tasks.wait_idle(300)


def _choose_modality(win, modality: str) -> None:
    combo = _panel(win).modality_combo
    combo.setCurrentText(modality)
    combo.activated.emit(combo.currentIndex())      # as a user's pick
    _settle(win)


def _plain(html_text: str) -> str:
    return re.sub(r"<[^>]+>", "", html_text).replace("&ge;", "≥").replace("&le;", "≤")


@pytest.fixture(scope="module")
def ire_window(phantom_window):
    """The phantom with its reference IRE plan (four electrodes) as the open plan."""
    win = phantom_window.win
    win.case.set_plan(phantom_window.reference.copy())
    _settle(win)
    assert len(win.case.plan.needles) == 4
    return phantom_window


def test_switch_ire_to_mwa_converts_the_electrodes_and_the_zone_computes(ire_window) -> None:
    from irplan.planning.devices import catalogue

    win = ire_window.win
    plan_before = [n.tip_lps_mm.copy() for n in win.case.plan.needles]
    _choose_modality(win, "MWA")
    plan = win.case.plan
    assert plan.modality == "MWA"
    # converted: same positions, MWA devices, no "wrong device" errors left
    assert [catalogue()[n.device].modality for n in plan.needles] == ["MWA"] * 4
    assert all(np.allclose(a, n.tip_lps_mm) for a, n in zip(plan_before, plan.needles))
    codes = {f.code for f in _session(win).findings}
    assert "device_modality" not in codes
    # "table default" is a value: the zone computes with it, the boxes say which
    assert plan.thermal.power_w == 100.0 and plan.thermal.time_s == 300.0
    panel = _panel(win)
    assert panel.power_spin.value() == 100.0 and panel.time_spin.value() == 300.0
    text = _plain(_zone_text(win))
    assert "Tumour coverage" in text and "not set" not in text
    # one undo step back to the IRE electrodes
    _session(win).undo()
    _settle(win)
    assert win.case.plan.modality == "IRE"
    assert [n.device for n in win.case.plan.needles] == \
        [n.device for n in ire_window.reference.needles]


def test_unset_thermal_values_use_the_table_default(ire_window) -> None:
    from irplan.planning.commands import Macro, ReplaceNeedles, SetAttrs

    win = ire_window.win
    _session(win).push(Macro([SetAttrs("plan", modality="MWA"), ReplaceNeedles([]),
                              SetAttrs("thermal", power_w=None, time_s=None)]))
    _settle(win)
    panel = _panel(win)
    assert panel.power_spin.text().startswith("table default (100 W)")
    assert panel.time_spin.text().startswith("table default (300 s)")
    panel.antenna_btn.click()                       # Place at tumour
    _settle(win)
    plan = win.case.plan
    assert len(plan.needles) == 1
    text = _plain(_zone_text(win))
    assert "Tumour coverage" in text and "not set" not in text


def test_place_at_tumour_moves_the_antenna_instead_of_adding_one(ire_window) -> None:
    from irplan.planning.commands import translate_needles

    win = ire_window.win
    plan = win.case.plan
    assert plan.modality == "MWA" and len(plan.needles) == 1
    placed = plan.needles[0].tip_lps_mm.copy()
    _session(win).push(translate_needles(plan, [0], np.array([0.0, 0.0, 12.0])))
    _settle(win)
    _panel(win).antenna_btn.click()
    _settle(win)
    assert len(win.case.plan.needles) == 1
    assert np.allclose(win.case.plan.needles[0].tip_lps_mm, placed, atol=1e-6)


def test_capped_margin_is_shown_as_at_most_and_both_docks_agree(ire_window,
                                                                 phantom_case: Path) -> None:
    from irplan.planning.commands import translate_needles

    win = ire_window.win
    plan = win.case.plan
    # the antenna 40 mm away from the tumour: 0 % coverage, margin beyond the box
    _session(win).push(translate_needles(plan, [0], np.array([0.0, 0.0, 40.0])))
    _settle(win)
    zone = win.ctx.services.zone
    m = zone.result.margin
    assert m.tumor_coverage_percent < 1.0
    assert m.minimal_margin_mm == pytest.approx(-m.margin_cap_mm)
    text = _plain(_zone_text(win))
    assert f"Minimal margin ≤ {m.minimal_margin_mm:+.1f} mm" in text
    # the training dock shows the same computation's figures (and the same ≤)
    training = win.ctx.services.training
    training.load_reference(phantom_case / "plan.irplan.json")
    _settle(win)
    dock = win.ctx.docks["training"].widget()
    tr = _plain(dock.figures.text())
    assert f"Coverage {m.tumor_coverage_percent:.1f} %" in tr
    assert f"minimal margin ≤ {m.minimal_margin_mm:+.1f} mm" in tr
    # after a move both docks follow with one figure again
    _session(win).push(translate_needles(plan, [0], np.array([0.0, 0.0, -34.0])))
    _settle(win)
    m2 = zone.result.margin
    assert m2.tumor_coverage_percent > 5.0
    tr = _plain(dock.figures.text())
    cov = f"{m2.tumor_coverage_percent:.1f} %"
    assert f"Tumour coverage {cov}" in _plain(_zone_text(win))
    assert f"Coverage {cov}" in tr
    training.clear_reference()
    _settle(win)


def test_messages_use_display_names_not_internal_ids(ire_window) -> None:
    from irplan.planning.modality_switch import switch_modality_command

    win = ire_window.win
    win.case.set_plan(ire_window.reference.copy())
    _settle(win)
    # keep the IRE electrodes in an MWA plan: the zone refuses them, naming the needle
    _session(win).push(switch_modality_command(win.case.plan, "MWA", "keep"))
    _settle(win)
    text = _plain(_zone_text(win))
    assert "Zone not computed" in text and "Antenna 1" in text
    panel = _panel(win)
    items = [panel.findings_list.item(i) for i in range(panel.findings_list.count())]
    assert items
    for it in items:
        assert not _ID.search(it.text()), it.text()
        assert not _ID.search(it.toolTip()), it.toolTip()
    assert any("device" in it.text() for it in items)


def test_switch_offers_to_remove_the_needles_of_the_other_device_type(ire_window) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    win = ire_window.win
    win.case.set_plan(ire_window.reference.copy())
    _settle(win)
    seen: list[str] = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, answer)
            return
        seen.append(box.text())
        next(b for b in box.buttons() if b.text() == "Remove").click()

    QTimer.singleShot(50, answer)
    win.headless = False              # the user is asked (scripts and tests are not)
    try:
        _choose_modality(win, "MWA")
    finally:
        win.headless = True
    assert seen and "4 of 4 needle(s) are not MWA devices" in seen[0]
    assert win.case.plan.modality == "MWA" and win.case.plan.needles == []
    assert "device_modality" not in {f.code for f in _session(win).findings}
    panel = _panel(win)                 # nothing selected: Delete is off and says why
    assert not panel.delete_btn.isEnabled()
    assert "select a needle" in panel.delete_btn.toolTip()
    assert panel.antenna_btn.isEnabled()            # the case has a tumour
