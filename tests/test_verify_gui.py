"""The Verify step (issue 15) in the main window on the phantom: the intra-op series'
needles are found in the background, the deviation table shows each placed needle's
planned partner and tip error (as truth.json states them), the placed needles are drawn
dashed beside the solid planned ones, and "Accept placed needles" makes them the plan in
one undo step."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

WINDOW_SIZE = (1500, 950)   # main_window fixture (conftest)


def test_verify_finds_compares_draws_and_accepts(phantom_window, phantom_case) -> None:
    from irplan.app.verify_panel import TIP_COLUMN, install_verify
    from irplan.io.phantom_writer import load_truth

    win = phantom_window.win
    # the plan: the case's reference with needle 1 moved 10 mm to the patient's left,
    # so that the electrode placed for it is 10 mm off
    ref = phantom_window.reference.copy()
    shift = np.array([10.0, 0.0, 0.0])
    ref.needles[0].tip_lps_mm = ref.needles[0].tip_lps_mm + shift
    ref.needles[0].entry_lps_mm = ref.needles[0].entry_lps_mm + shift
    win.case.set_plan(ref.copy())
    assert win.tasks.wait_idle(240)
    panel = install_verify(win.ctx)
    assert install_verify(win.ctx) is panel
    assert panel.action in win.ctx.menu("file").actions()

    panel.detect(phantom_case / "intraop")
    assert win.tasks.wait_idle(240)
    res = panel.logic.result
    assert res is not None and panel.dock.isVisible()
    truth = load_truth(phantom_case)
    assert panel.table.rowCount() == len(truth.placed_needles) == 4
    for r, row in enumerate(res.rows):
        t = min(truth.placed_needles,
                key=lambda t: np.linalg.norm(t.tip_lps_mm - row["tip_lps_mm"]))
        assert np.linalg.norm(t.tip_lps_mm - row["tip_lps_mm"]) <= 1.0
        assert row["planned_index"] == t.planned_index
        assert panel.table.item(r, 1).text() == str(t.planned_index + 1)
        true_err = np.linalg.norm(t.tip_lps_mm - ref.needles[t.planned_index].tip_lps_mm)
        assert float(panel.table.item(r, TIP_COLUMN).text()) == pytest.approx(true_err,
                                                                            abs=1.05)
    assert "NOT as planned" in panel.verdict_label.text()
    assert "(planned 1): tip" in panel.verdict_label.text()
    assert panel.pairs_label.text().count("pair ") == len(res.pairs) >= 4

    # the electrodes as placed are drawn dashed (ghosts), the one placed for needle 1
    # 10 mm from the plan's solid needle
    k = next(i for i, r in enumerate(res.rows) if r["planned_index"] == 0)
    assert res.rows[k]["tip_error_mm"] > 8.0
    ghosts = panel.ghosts
    assert len(ghosts.keys) == 2 * len(res.rows)
    assert all(a.GetVisibility() for a in ghosts.actors)
    placed_tip = res.rows[k]["tip_lps_mm"]
    bounds = [a.GetBounds() for a in ghosts.actors]
    assert any(all(b[2 * c] - 1.5 <= placed_tip[c] <= b[2 * c + 1] + 1.5 for c in range(3))
               for b in bounds)

    # accept: the plan's needles are the placed ones, one undo step brings the plan back
    planned_tips = [n.tip_lps_mm.copy() for n in win.case.plan.needles]
    assert panel.accept()
    assert np.allclose([n.tip_lps_mm for n in win.case.plan.needles],
                       [r["tip_lps_mm"] for r in res.rows])
    win.ctx.services.session.undo()
    assert np.allclose([n.tip_lps_mm for n in win.case.plan.needles], planned_tips)

    # the case closes: nothing of its verification stays (result, table, dashed needles)
    win.case.close()
    assert panel.logic.result is None
    assert panel.table.rowCount() == 0 and not panel.accept_button.isEnabled()
    assert ghosts.keys == [] and "Open the intra-op CT" in panel.summary.text()
