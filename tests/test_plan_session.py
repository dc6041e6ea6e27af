"""The plan session (app/plan_session.py) driven with no main window: a synthetic CT with a
tumour, needles added/moved/undone through the session, selection events, the safety
checker built in the background, the autosave file on disk and the saved plan file.
Judged by needle coordinates (LPS mm), events received and file contents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from irplan.app.plan_session import PlanSession
from irplan.app.workers import TaskRunner
from irplan.io.recovery import find_recoverable, read_recovery_file
from irplan.planning.case import Case
from irplan.planning.commands import move_needle
from irplan.planning.needle_geometry import angle_between_deg
from irplan.planning.plan import Plan
from irplan.planning.volume import Volume

DEVICE = "ire-19g-monopolar"
CENTRE_LPS_MM = np.array([0.0, 0.0, 0.0])


def _sphere(ct: Volume, radius_mm: float) -> Volume:
    k, j, i = np.indices(ct.array.shape)
    ijk = np.stack([i, j, k], axis=-1).astype(float)
    lps = ct.origin_lps_mm + ijk * ct.spacing_mm
    inside = np.linalg.norm(lps - CENTRE_LPS_MM, axis=-1) <= radius_mm
    return Volume(inside.astype(np.uint8), ct.origin_lps_mm, ct.spacing_mm)


@pytest.fixture()
def session(qapp, tmp_path: Path):
    ct = Volume(np.full((40, 40, 40), 60, np.int16), [-39.0, -39.0, -39.0], [2.0, 2.0, 2.0],
                metadata={"series_uid": "1.2.3", "frame_of_reference_uid": "1.2.4"})
    case = Case()
    tasks = TaskRunner(max_threads=2)
    s = PlanSession(case, tasks, autosave_interval_s=0.2, autosave_tick_ms=50)
    case.set_ct(ct, tmp_path / "ct")          # a case is loaded into the session's case
    case.set_structure("liver", _sphere(ct, 30.0))
    case.set_structure("tumor", _sphere(ct, 8.0))
    yield s
    s.close()
    tasks.shutdown(60)


def test_add_undo_redo_and_selection_events(session, qtbot) -> None:
    selections: list[int | None] = []
    session.selection_changed.connect(selections.append)
    tip1, entry1 = np.array([-7.5, 0.0, 0.0]), np.array([-7.5, -60.0, 10.0])
    tip2, entry2 = np.array([7.5, 0.0, 0.0]), np.array([7.5, -60.0, 10.0])
    assert session.add_needle(tip1, entry1) and session.add_needle(tip2, entry2)
    plan = session.plan
    assert [n.device for n in plan.needles] == [DEVICE, DEVICE]
    np.testing.assert_array_equal(plan.needles[1].tip_lps_mm, tip2)
    np.testing.assert_array_equal(plan.needles[1].entry_lps_mm, entry2)
    assert selections == [0, 1] and session.selected == 1
    assert session.is_modified and session.stack.undo_text

    session.undo()                     # the second needle goes; selection follows
    assert len(plan.needles) == 1 and selections[-1] == 0 and session.selected == 0
    session.redo()
    np.testing.assert_array_equal(plan.needles[1].tip_lps_mm, tip2)

    # locked IRE array: moving one tip keeps the electrodes parallel; unlocked it tilts
    session.lock_parallel = True
    shift = np.array([0.0, 0.0, 4.0])
    assert session.move_point(0, "tip", tip1 + shift)
    np.testing.assert_allclose(plan.needles[0].tip_lps_mm, tip1 + shift, atol=1e-9)
    assert angle_between_deg(plan.needles[0].direction, plan.needles[1].direction) < 1e-6
    session.undo()
    session.lock_parallel = False
    assert session.move_point(0, "tip", tip1 + shift)
    np.testing.assert_allclose(plan.needles[0].tip_lps_mm, tip1 + shift, atol=1e-9)
    np.testing.assert_array_equal(plan.needles[1].tip_lps_mm, tip2)
    assert angle_between_deg(plan.needles[0].direction, plan.needles[1].direction) > 3.0


def test_checker_findings_and_image_reference(session, qtbot) -> None:
    ready: list[bool] = []
    session.checker_ready.connect(lambda: ready.append(True))
    assert session.tasks.wait_idle(60)
    assert ready and session.checker is not None
    # the plan learns its image from the case's CT
    assert session.plan.image.series_uid == "1.2.3"
    findings_events: list[int] = []
    session.findings_changed.connect(lambda: findings_events.append(len(session.findings)))
    session.add_needle(np.array([0.0, 0.0, 0.0]), np.array([0.0, -60.0, 0.0]))
    assert session.tasks.wait_idle(60)
    assert findings_events, "an edit re-evaluates the findings"
    assert len(session.needle_severities()) == 1


def test_autosave_file_then_save_removes_it(session, qtbot, tmp_path: Path) -> None:
    tip, entry = np.array([1.25, -2.5, 3.75]), np.array([1.25, -62.5, 3.75])
    session.add_needle(tip, entry)
    qtbot.waitUntil(lambda: session.autosaver.path.is_file(), timeout=5000)
    info, plan = read_recovery_file(session.autosaver.path)
    assert plan["needles"][0]["tip_lps_mm"] == [1.25, -2.5, 3.75] and info.needles == 1
    assert find_recoverable(include_live=True)

    out = session.save_plan(tmp_path / "a.irplan.json")
    saved = json.loads(out.read_text("utf-8"))       # (its CT folder is not on disk)
    assert saved["needles"][0]["tip_lps_mm"] == [1.25, -2.5, 3.75]
    assert saved["image"]["series_uid"] == "1.2.3"
    assert not session.is_modified and session.plan_path == out
    assert not session.autosaver.path.exists()
    # the structures without a file were written for this plan and named in it
    assert set(saved["structures"]) >= {"tumor", "liver"}
    assert all((out.parent / p).is_file() for p in saved["structures"].values())


def test_new_plan_resets_history_and_old_plan_is_not_followed(session) -> None:
    session.add_needle(np.array([0.0, 0.0, 0.0]), np.array([0.0, -60.0, 0.0]))
    old = session.plan
    selections: list[int | None] = []
    session.selection_changed.connect(selections.append)
    session.case.set_plan(Plan())
    assert not session.stack.can_undo and session.selected is None and selections == [None]
    session.autosaver.mark_clean()
    old.changed.emit("needles")        # an edit of the former plan is not this session's
    assert not session.autosaver.dirty and not session.is_modified
    # ... while an edit of the current plan is
    session.add_needle(np.array([0.0, 0.0, 0.0]), np.array([0.0, -60.0, 0.0]))
    session.stack.push(move_needle(session.plan, 0, tip_lps_mm=[1.0, 0.0, 0.0]))
    assert session.autosaver.dirty and session.is_modified and selections[-1] == 0
