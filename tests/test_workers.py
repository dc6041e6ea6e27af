"""TaskRunner: work deferred on the GUI thread (debounce timers) counts as busy, so
``wait_idle`` returns only once the task such a call starts has delivered its result."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QObject

from irplan.app.workers import TaskRunner


@pytest.fixture
def runner(qapp):
    r = TaskRunner()
    yield r
    r.shutdown(10)
    r.deleteLater()


def _sleepy_task(runner: TaskRunner, results: list, value: object, sleep_s: float = 0.2):
    def job(progress, cancel):
        time.sleep(sleep_s)
        return value

    runner.start("sleepy", job, results.append)


def test_wait_idle_waits_for_the_task_a_deferred_call_starts(runner) -> None:
    results: list = []
    runner.defer(300, lambda: _sleepy_task(runner, results, 42))
    assert runner.busy and runner.pending_calls == 1 and not runner.running
    t0 = time.monotonic()
    assert runner.wait_idle(10)
    assert results == [42]                       # the result arrived before "idle"
    assert time.monotonic() - t0 >= 0.45         # 300 ms deferral + 200 ms task
    assert not runner.busy and runner.pending_calls == 0


def test_restarting_a_deferred_call_debounces_it(runner, qtbot) -> None:
    calls: list[float] = []
    call = runner.deferred(150, lambda: calls.append(time.monotonic()))
    assert not call.pending and not runner.busy  # made, not started
    for _ in range(3):
        t_last = time.monotonic()
        call.start()
        qtbot.wait(50)
    assert runner.busy and call.pending
    assert runner.wait_idle(5)
    assert len(calls) == 1
    # counted from the last start (Qt's coarse timers may fire up to 5 % early)
    assert calls[0] - t_last >= 0.95 * 0.150
    call.start(0)                                # a new interval, and reusable
    assert runner.wait_idle(5)
    assert len(calls) == 2


def test_stopped_call_never_runs_and_is_not_pending(runner, qtbot) -> None:
    calls: list[int] = []
    call = runner.deferred(100, lambda: calls.append(1))
    call.start()
    call.stop()
    assert not runner.busy
    qtbot.wait(200)
    assert calls == []


def test_call_of_a_deleted_owner_does_not_hold_wait_idle(runner, qtbot) -> None:
    owner = QObject()
    calls: list[int] = []
    runner.deferred(10_000, lambda: calls.append(1), parent=owner).start()
    assert runner.busy
    owner.deleteLater()
    qtbot.waitUntil(lambda: not runner.busy, timeout=2000)
    assert runner.wait_idle(1) and calls == []


def test_shutdown_drops_pending_calls(qapp, qtbot) -> None:
    r = TaskRunner()
    calls: list[int] = []
    r.defer(100, lambda: calls.append(1))
    assert r.busy
    assert r.shutdown(5)
    assert not r.busy
    qtbot.wait(200)
    assert calls == []
    r.deleteLater()


def test_held_tasks_run_in_order_after_release_and_cancelled_ones_not_at_all(runner) -> None:
    ran: list[str] = []

    def job(name):
        def fn(progress, cancel):
            ran.append(name)
            return name
        return fn

    runner.hold(max_s=60)
    results: list = []
    runner.start("a", job("a"), results.append)
    dropped = runner.start("b", job("b"), results.append)
    runner.start("c", job("c"), results.append)
    dropped.cancel()
    t_end = time.monotonic() + 0.3
    while time.monotonic() < t_end:
        from PySide6.QtCore import QCoreApplication

        QCoreApplication.processEvents()
        time.sleep(0.01)
    assert ran == [] and runner.busy and len(runner.running) == 3   # held, shown as running
    runner.release()
    assert runner.wait_idle(10)
    assert sorted(ran) == ["a", "c"] and sorted(results) == ["a", "c"]
    assert dropped.state == "cancelled"


def test_a_hold_ends_by_itself(runner) -> None:
    results: list = []
    runner.hold(max_s=0.3)
    _sleepy_task(runner, results, 7, sleep_s=0.0)
    assert runner.wait_idle(10)
    assert results == [7]


def test_background_hold_runs_quick_tasks_first_then_the_long_ones(runner) -> None:
    """A new case's surfaces (quick) run while its zone and check preparation (long)
    wait for release_background (issue 16: surfaces first at start-up)."""
    from PySide6.QtCore import QCoreApplication

    ran: list[str] = []

    def job(name):
        def fn(progress, cancel):
            ran.append(name)
            return name
        return fn

    runner.hold_background(max_s=60)
    runner.start("zone", job("zone"))
    runner.start("surface", job("surface"), quick=True)
    t_end = time.monotonic() + 0.3
    while time.monotonic() < t_end:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    assert ran == ["surface"] and runner.busy and runner.holding_background
    runner.release_background()
    assert runner.wait_idle(10)
    assert ran == ["surface", "zone"] and not runner.holding_background


def test_a_background_hold_ends_by_itself(runner) -> None:
    results: list = []
    runner.hold_background(max_s=0.3)
    _sleepy_task(runner, results, 5, sleep_s=0.0)
    assert runner.wait_idle(10)
    assert results == [5]
