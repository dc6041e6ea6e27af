"""Undo/redo: every edit is a command; undo restores the plan exactly, redo re-applies it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irplan.io.plan_file import plan_from_dict, plan_to_dict
from irplan.planning.case import Case
from irplan.planning.commands import (
    AddNeedle,
    Macro,
    RemoveNeedle,
    SetAttrs,
    SetStructure,
    UndoStack,
    apply_ire_template,
    move_array_electrode,
    move_needle,
    set_needle_fields,
    translate_needles,
)
from irplan.planning.errors import InputError
from irplan.planning.ire_array import make_array
from irplan.planning.needle_geometry import angle_between_deg
from irplan.planning.plan import ImageRef, Needle, Plan


def _plan() -> Plan:
    return Plan(modality="IRE", image=ImageRef("ct", "1.2"),
                needles=[Needle("ire-19g-monopolar", [0.1, 0.2, 0.3], [0.1, 50.2, 80.3], 20.0, "E1"),
                         Needle("ire-19g-monopolar", [15.0, 0.0, 0.0], [15.0, 50.0, 80.0], 20.0, "E2")],
                structures={"tumor": "t.nii.gz"}, extra={"notes": "x"})


def _edits(plan: Plan) -> list:
    """A list of functions, each making one command for the current plan."""
    arr = make_array("square", np.zeros(3), [0, 0, -1], 15.0, 5.0, 25.0)
    return [
        lambda p: AddNeedle(Needle("ire-19g-monopolar", [30, 1, 2], [30, 1, 90], 15.0, "E3")),
        lambda p: move_needle(p, 0, tip_lps_mm=[1.0 / 3, 2.0 / 7, -5.5]),
        lambda p: move_needle(p, 1, entry_lps_mm=[14, 60, 70]),
        lambda p: translate_needles(p, [0, 1], [0.25, -0.125, 3.0]),
        lambda p: set_needle_fields(p, 0, exposure_mm=17.5, name="A"),
        lambda p: SetAttrs("ire", voltage_v=2250.0, pulses=70),
        lambda p: SetAttrs("plan", margin_mm=7.5),
        lambda p: SetAttrs("thermal", power_w=100.0, time_s=300.0),
        lambda p: SetStructure("portal_vein", "pv.nii.gz"),
        lambda p: SetStructure("tumor", None),
        lambda p: RemoveNeedle(0),
        lambda p: apply_ire_template(arr, "square"),
        lambda p: move_array_electrode(p, 0, entry_lps_mm=p.needles[0].tip_lps_mm + [5, 5, 90]),
        lambda p: Macro([SetAttrs("plan", modality="MWA"),
                         SetAttrs("thermal", power_w=60.0)], "switch to MWA"),
    ]


def test_undo_and_redo_restore_every_state_exactly() -> None:
    plan = _plan()
    stack = UndoStack(plan)
    states = [plan.copy()]
    for make in _edits(plan):
        stack.push(make(plan))
        states.append(plan.copy())
        assert plan == states[-1]
    assert len({id(s) for s in states}) == len(states)
    for k in range(len(states) - 1, 0, -1):
        assert plan == states[k]
        assert stack.undo()
        assert plan == states[k - 1]
    assert not stack.can_undo and plan == states[0]
    # bit-exact: the serialised form matches too
    assert plan_to_dict(plan) == plan_to_dict(states[0])
    for k in range(1, len(states)):
        assert stack.redo()
        assert plan == states[k]
    assert not stack.can_redo


def test_changed_signal_names_what_changed() -> None:
    plan = _plan()
    seen: list[str] = []
    plan.changed.connect(seen.append)
    stack = UndoStack(plan)
    stack.push(move_needle(plan, 1, tip_lps_mm=[15, 0, -2]))
    stack.push(SetAttrs("plan", margin_mm=10))
    stack.undo()
    assert seen == ["needle:1", "margin", "margin"]


def test_drag_merges_into_one_undo_step() -> None:
    plan = _plan()
    stack = UndoStack(plan)
    start = plan.copy()
    for k in range(20):
        stack.push(move_needle(plan, 0, tip_lps_mm=[0.1 + k, 0.2, 0.3], merge_key="drag-0"))
    np.testing.assert_array_equal(plan.needles[0].tip_lps_mm, [19.1, 0.2, 0.3])
    assert stack.undo() and plan == start and not stack.can_undo
    assert stack.redo()
    np.testing.assert_array_equal(plan.needles[0].tip_lps_mm, [19.1, 0.2, 0.3])
    # a new drag after the first is a second step
    stack.push(move_needle(plan, 0, tip_lps_mm=[5, 5, 5], merge_key="drag-0b"))
    stack.undo()
    np.testing.assert_array_equal(plan.needles[0].tip_lps_mm, [19.1, 0.2, 0.3])


def test_clean_state_tracks_saves() -> None:
    plan = _plan()
    stack = UndoStack(plan)
    assert stack.is_clean
    stack.push(SetAttrs("plan", margin_mm=6))
    assert not stack.is_clean
    stack.mark_clean()
    stack.push(move_needle(plan, 0, tip_lps_mm=[1, 1, 1], merge_key="d"))
    stack.push(move_needle(plan, 0, tip_lps_mm=[2, 2, 2], merge_key="d"))
    assert not stack.is_clean
    stack.undo()
    assert stack.is_clean and plan.margin_mm == 6
    stack.mark_modified()              # e.g. a recovered plan: no state equals the file
    assert not stack.is_clean
    stack.undo()
    assert not stack.is_clean and plan.margin_mm == 5


def test_case_relays_only_the_current_plans_changes() -> None:
    case = Case()
    first, second = _plan(), _plan()
    topics: list[str] = []
    case.plan_changed.connect(topics.append)
    case.set_plan(first)
    UndoStack(first).push(SetAttrs("plan", margin_mm=7))
    case.set_plan(second)
    UndoStack(first).push(SetAttrs("plan", margin_mm=8))     # no longer the case's plan
    UndoStack(second).push(move_needle(second, 0, tip_lps_mm=[1, 1, 1]))
    case.set_plan(second)                                   # again: still one relay
    UndoStack(second).push(SetAttrs("plan", margin_mm=9))
    assert len(topics) == 3 and first.margin_mm == 8


def test_locked_array_move_keeps_electrodes_parallel() -> None:
    plan = Plan(modality="IRE", needles=make_array("triangle", np.zeros(3), [0, 0, -1], 15.0,
                                                   5.0, 25.0))
    stack = UndoStack(plan)
    before = plan.copy()
    depths = [n.length_mm for n in plan.needles]
    tip0 = plan.needles[0].tip_lps_mm.copy()
    stack.push(move_array_electrode(plan, 0, entry_lps_mm=tip0 + [20.0, 10.0, 100.0]))
    for n in plan.needles[1:]:
        assert angle_between_deg(n.direction, plan.needles[0].direction) < 1e-9
    np.testing.assert_allclose([n.length_mm for n in plan.needles[1:]], depths[1:], atol=1e-9)
    # tips did not move
    for a, b in zip(plan.needles, before.needles):
        np.testing.assert_array_equal(a.tip_lps_mm, b.tip_lps_mm)
    stack.undo()
    assert plan == before
    # unlocked: only that electrode moves
    stack.push(move_array_electrode(plan, 0, entry_lps_mm=tip0 + [20.0, 10.0, 100.0],
                                    locked=False))
    assert plan.needles[1] == before.needles[1]
    assert angle_between_deg(plan.needles[0].direction, plan.needles[1].direction) > 5


def test_invalid_edits_are_refused_before_changing_anything() -> None:
    plan = _plan()
    stack = UndoStack(plan)
    before = plan.copy()
    with pytest.raises(InputError, match="same point"):
        stack.push(move_needle(plan, 0, tip_lps_mm=plan.needles[0].entry_lps_mm))
    with pytest.raises(InputError, match="needle 5 does not exist"):
        stack.push(move_needle(plan, 4, tip_lps_mm=[0, 0, 0]))
    with pytest.raises(InputError, match="modality"):
        stack.push(SetAttrs("plan", modality="laser"))
    with pytest.raises(InputError, match="finite"):
        stack.push(move_needle(plan, 0, tip_lps_mm=[np.nan, 0, 0]))
    assert plan == before and not stack.can_undo


def test_in_memory_round_trip_through_dict() -> None:
    plan = _plan()
    assert plan_from_dict(plan_to_dict(plan)) == plan


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 13), st.floats(-50, 50, allow_nan=False)),
                min_size=1, max_size=12))
def test_random_edit_sequences_undo_exactly(ops: list[tuple[int, float]]) -> None:
    plan = _plan()
    stack = UndoStack(plan)
    start = plan.copy()
    for k, x in ops:
        make = _edits(plan)[k]
        try:
            cmd = make(plan)
            if k in (1, 2):  # vary the coordinates
                cmd = move_needle(plan, min(k - 1, len(plan.needles) - 1),
                                  tip_lps_mm=[x, x / 3, 7.0])
            stack.push(cmd)
        except (InputError, IndexError):
            continue
    while stack.undo():
        pass
    assert plan == start


def test_copies_and_pickles_do_not_carry_signal_connections() -> None:
    import copy
    import pickle
    import warnings

    plan = _plan()
    seen: list[str] = []
    plan.changed.connect(seen.append)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for other in (copy.deepcopy(plan), pickle.loads(pickle.dumps(plan)), plan.copy()):
            assert other == plan
            other.notify("x")
    assert seen == []
    plan.notify("y")
    assert seen == ["y"]
