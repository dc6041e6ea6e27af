"""irplan's start-up order: the case's first picture comes before the workflow panels,
which are then built and catch up with the loaded case (needles, checks, zone), and are
built as well when the load fails; the case's 3D surfaces come before its zone and the
safety-check preparation (issue 16)."""

from __future__ import annotations

import time
from pathlib import Path


def _window():
    from irplan.app.main_window import MainWindow

    win = MainWindow(restore_state=False, install_panels=False)
    win.panels_after_first_picture = True
    win.headless = True
    win.resize(1400, 900)
    win.show()
    return win


def _close(win) -> None:
    win.tasks.shutdown(120)
    win.close()
    win.deleteLater()


def test_panels_come_after_the_first_picture_and_catch_up(qapp, qtbot, phantom_case: Path):
    win = _window()
    try:
        seen: dict[str, bool] = {}
        win.case_loaded.connect(lambda: seen.setdefault("panels_at_load", win.panels_installed))
        # when each task started and ended (monotonic s)
        spans: list[tuple[str, float, float]] = []

        def on_done(task) -> None:
            now = time.monotonic()
            spans.append((task.name, now - task.elapsed_s, now))

        win.tasks.task_done.connect(on_done)
        win.open_path(phantom_case / "plan.irplan.json")
        qtbot.waitUntil(lambda: win.first_render_epoch is not None, timeout=120_000)
        assert seen["panels_at_load"] is False          # the picture did not wait for them
        assert win.tasks.wait_idle(300)
        assert win.panels_installed
        # the zone and the check preparation started once the last surface was shown
        surfaces = [sp for sp in spans if sp[0].startswith("Surface")]
        later = [sp for sp in spans if sp[0].startswith(("zone", "Preparing safety"))]
        assert len(surfaces) >= 6 and later
        last_surface_s = max(end for _n, _s, end in surfaces)
        assert all(start >= last_surface_s - 0.05 for _n, start, _e in later), (spans)
        plan = win.case.plan
        assert len(plan.needles) == 4
        # the Plan step shows the loaded plan's needles, its checks ran, the zone is there
        tools = win.needle_tools
        assert tools.panel.table.rowCount() == 4
        assert tools.checker is not None and len(tools.findings) >= 1
        assert win.workflow.current_step == "plan"
        res = win.zone_panel.result
        assert res is not None and res.margin is not None
        assert 50.0 < res.margin.tumor_coverage_percent <= 100.0
        win.workflow.set_step("segment")       # measured when shown, on this case
        qtbot.waitUntil(lambda: "largest diameter" in win.segment_panel.info.text(),
                        timeout=10_000)
    finally:
        _close(win)


def test_panels_are_built_when_the_load_fails(qapp, qtbot, tmp_path: Path):
    win = _window()
    try:
        bad = tmp_path / "not-dicom"
        bad.mkdir()
        (bad / "x.dcm").write_bytes(b"not a DICOM file")
        win.open_path(bad)
        qtbot.waitUntil(lambda: win.panels_installed, timeout=60_000)
        assert win.case.ct is None
        assert any("x.dcm" in m or "not-dicom" in m or "DICOM" in m for m in win.messages)
    finally:
        _close(win)

