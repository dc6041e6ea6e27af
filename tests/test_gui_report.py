"""One click: File ▸ Write PDF report… on the open phantom plan writes the real report."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui


def test_report_action_writes_the_pdf_of_the_open_plan(main_window, qtbot, phantom_case: Path,
                                                       tmp_path: Path) -> None:
    from irplan.app.report_action import install_report_action

    win = main_window
    win.open_path(phantom_case / "plan.irplan.json")
    assert win.tasks.wait_idle(240)
    report = getattr(win, "report_action", None) or install_report_action(win.ctx)
    texts = [a.text() for m in win.menuBar().actions() if m.menu()
             for a in m.menu().actions()]
    assert "Write PDF &report…" in texts

    pdf = tmp_path / "one-click.pdf"
    with qtbot.waitSignal(report.finished, timeout=400_000) as sig:
        assert report.write_report(pdf)
    out, err = sig.args
    assert err == "" and Path(out) == pdf and pdf.stat().st_size > 10_000
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True,
                              text=True).stdout
        assert "not a certified medical device" in text
        assert "IRE" in text
