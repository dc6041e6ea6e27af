"""Autosave and crash recovery: a real process killed with SIGKILL mid-edit loses at most
the edits of the last autosave interval; the next process recovers the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from irplan.io.plan_file import load_plan, save_plan
from irplan.io.recovery import (
    Autosaver,
    damaged_recovery_files,
    discard,
    find_recoverable,
    recover,
    recovery_dir,
)
from irplan.planning.plan import ImageRef, Needle, Plan


def _plan(folder: Path) -> Path:
    plan = Plan(modality="MWA", image=ImageRef("ct", "1.2.3"),
                needles=[Needle("mwa-14g", [10.0, 20.0, 30.0], [10.0, 80.0, 30.0])],
                structures={"tumor": "masks/tumor.nii.gz"}, extra={"notes": "keep me"})
    plan.file_dir = str(folder)
    return save_plan(plan, folder / "case.irplan.json")


CHILD = textwrap.dedent("""
    import sys, time
    from irplan.io.plan_file import load_plan
    from irplan.io.recovery import Autosaver
    from irplan.planning.commands import UndoStack, move_needle

    plan = load_plan(sys.argv[1], check_files=False)
    stack = UndoStack(plan)
    saver = Autosaver(lambda: plan, sys.argv[2], interval_s=float(sys.argv[3]),
                      plan_path=sys.argv[1])
    plan.changed.connect(lambda topic: saver.mark_dirty())
    saver.start(tick_s=0.05)
    stack.push(move_needle(plan, 0, tip_lps_mm=[11.5, 21.25, 29.0]))   # edit 1
    while saver.saves == 0:
        time.sleep(0.02)
    print("SAVED", flush=True)
    stack.push(move_needle(plan, 0, tip_lps_mm=[99.0, 99.0, 99.0]))    # edit 2, in progress
    print("EDITING", flush=True)
    time.sleep(600)
""")


def test_sigkill_during_next_edit_recovers_the_autosaved_edit(tmp_path: Path) -> None:
    plan_file = _plan(tmp_path)
    rec = tmp_path / "recovery"
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(plan_file), str(rec), "1.0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        t0 = time.monotonic()
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "SAVED"
        assert proc.stdout.readline().strip() == "EDITING"
        elapsed = time.monotonic() - t0
        # still alive: its recovery file is not offered to others
        assert find_recoverable(rec) == []
        assert len(find_recoverable(rec, include_live=True)) == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert elapsed < 60
    # the plan file itself was never saved again
    assert load_plan(plan_file, check_files=False).needles[0].tip_lps_mm.tolist() == \
        [10.0, 20.0, 30.0]
    # a new process finds and recovers edit 1
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            import json, sys
            from irplan.io.recovery import find_recoverable, recover
            found = find_recoverable(sys.argv[1])
            plan = recover(found[0])
            print(json.dumps({"n": len(found), "plan_path": str(found[0].plan_path),
                              "tip": plan.needles[0].tip_lps_mm.tolist(),
                              "file_dir": plan.file_dir, "notes": plan.extra.get("notes"),
                              "what": found[0].describe()}))
        """), str(rec)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["n"] == 1
    assert got["tip"] == [11.5, 21.25, 29.0]           # edit 1 recovered exactly
    assert got["plan_path"] == str(plan_file.resolve())
    assert Path(got["file_dir"]) == tmp_path.resolve()
    assert got["notes"] == "keep me"
    assert "case.irplan.json" in got["what"] and "1 needle" in got["what"]


def test_autosave_timing_with_a_clock(tmp_path: Path) -> None:
    plan = load_plan(_plan(tmp_path), check_files=False)
    now = [1000.0]
    saver = Autosaver(lambda: plan, tmp_path / "rec", plan_path=tmp_path / "case.irplan.json",
                      clock=lambda: now[0])
    assert not saver.maybe_save()          # nothing changed
    saver.mark_dirty()
    now[0] += 10
    saver.mark_dirty()                     # later edits do not restart the clock
    assert saver.save_after_s == 28.5      # 30 s promise - 1 s tick - 0.5 s write budget
    now[0] += 18.4
    assert not saver.maybe_save()
    now[0] += 0.1                          # 28.5 s after the first unsaved edit
    assert saver.maybe_save()
    assert saver.path.exists() and not saver.maybe_save()
    entries = find_recoverable(tmp_path / "rec", include_live=True)
    assert [e.path for e in entries] == [saver.path]
    assert recover(entries[0]) == plan
    saver.mark_clean()                     # saved for real: the recovery file goes
    assert not saver.path.exists()


def test_untitled_plans_and_renames(tmp_path: Path) -> None:
    plan = Plan(modality="RFA", needles=[Needle("rfa-17g-cooled", [0, 0, 0], [0, 0, 90])])
    saver = Autosaver(lambda: plan, tmp_path / "rec", interval_s=0)
    saver.mark_dirty()
    assert saver.maybe_save() and saver.path.name.startswith("untitled-")
    untitled = saver.path
    saver.set_plan_path(tmp_path / "named.irplan.json")
    assert not untitled.exists()
    saver.save_now()
    assert saver.path.name.startswith("named-")


def test_another_sessions_recovery_file_is_never_deleted_or_overwritten(tmp_path: Path) -> None:
    """A crashed session's autosave of the same plan survives this session's autosave,
    save and clean close, until the user recovers (adopt) or declines it."""
    plan_file = _plan(tmp_path)
    rec = tmp_path / "rec"
    crashed_plan = load_plan(plan_file, check_files=False)
    crashed = Autosaver(lambda: crashed_plan, rec, interval_s=0, plan_path=plan_file)
    crashed_plan.needles[0].tip_lps_mm[:] = [1.0, 2.0, 3.0]
    foreign = crashed.save_now()
    foreign_text = foreign.read_text()

    plan = load_plan(plan_file, check_files=False)
    saver = Autosaver(lambda: plan, rec, interval_s=0, plan_path=plan_file)
    assert saver.path != foreign and saver.path.parent == foreign.parent
    saver.mark_dirty()
    assert saver.maybe_save()
    assert foreign.read_text() == foreign_text          # not overwritten
    saver.mark_clean()                                  # a real save...
    saver.set_plan_path(tmp_path / "renamed.irplan.json")
    saver.discard()                                     # ...and a clean close
    assert foreign.read_text() == foreign_text
    assert not any(p != foreign for p in rec.glob("*.json"))   # its own files are gone

    # recovering adopts the file: the next save or clean close removes it
    saver.adopt(foreign)
    saver.discard()
    assert not foreign.exists()


def test_damaged_recovery_file_is_reported_not_fatal(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    (rec / "bad-0000.irplan-recovery.json").write_text("{ half written")
    assert find_recoverable(rec) == []
    (msg,) = damaged_recovery_files(rec)
    assert "bad-0000" in msg and "damaged recovery file" in msg
    discard(rec / "bad-0000.irplan-recovery.json")
    assert damaged_recovery_files(rec) == []


def test_default_folder_follows_config_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IRPLAN_CONFIG_DIR", str(tmp_path / "cfg"))
    assert recovery_dir() == tmp_path / "cfg" / "recovery"
    monkeypatch.delenv("IRPLAN_CONFIG_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert recovery_dir() == tmp_path / "state" / "irplan" / "recovery"
