"""The open case: the planning CT, its structures and the plan, with change signals.

Views and panels subscribe to the signals (psygnal, no Qt needed); only app commands
change the case. ``plan_changed`` relays the *current* plan's ``Plan.changed`` (the old
plan is disconnected when another is set), so nobody follows ``plan_replaced`` to
re-subscribe by hand. Structure masks are uint8 Volumes on the CT grid (1 = inside).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from psygnal import Signal

from irplan.planning.errors import GeometryError
from irplan.planning.plan import Plan
from irplan.planning.volume import Volume


class Case:
    """One patient case being planned or evaluated."""

    ct_changed = Signal()                 # a new planning CT was set
    structures_changed = Signal(str)      # structure key added/changed/removed
    plan_replaced = Signal()              # a different Plan object was set
    plan_changed = Signal(str)            # the current plan's Plan.changed(topic), relayed
    # the open case was closed or replaced by another (before the new one is set):
    # whatever belonged to it goes (training reference, evaluation, undo history)
    case_closed = Signal()

    def __init__(self) -> None:
        self.ct: Volume | None = None
        self.ct_path: Path | None = None
        self.structures: dict[str, Volume] = {}
        self.plan: Plan = Plan()
        self.plan.changed.connect(self._relay_plan_change)
        self.followup: Volume | None = None
        self.plan_path: Path | None = None   # the file the plan was opened from
        self.case_dir: Path | None = None    # an IRPlan case folder (follow-up, masks)
        # bumped on every structures_changed (also in-place edits that emit it): a key
        # for caches of the structure set, e.g. the computation process's copy
        self.structures_generation = 0
        self.uid = uuid.uuid4().hex          # tells cases apart in such caches
        self.structures_changed.connect(self._bump_generation)

    def _relay_plan_change(self, topic: str) -> None:
        self.plan_changed.emit(topic)

    def _bump_generation(self, _key: str) -> None:
        self.structures_generation += 1

    def set_ct(self, ct: Volume, path: str | Path | None = None) -> None:
        """Replace the planning CT; existing structures are dropped (other grid)."""
        self.ct = ct
        self.ct_path = Path(path) if path else None
        removed = list(self.structures)
        self.structures.clear()
        for key in removed:
            self.structures_changed.emit(key)
        self.ct_changed.emit()

    def set_structure(self, key: str, mask: Volume) -> None:
        """Add or replace a structure mask; it must lie on the CT grid."""
        if self.ct is not None and not mask.same_geometry(self.ct, tol_mm=1e-3):
            raise GeometryError(f"structure '{key}' is not on the CT grid; resample it first")
        self.structures[key] = mask
        self.structures_changed.emit(key)

    def remove_structure(self, key: str) -> None:
        if self.structures.pop(key, None) is not None:
            self.structures_changed.emit(key)

    def set_plan(self, plan: Plan, path: str | Path | None = None) -> None:
        """Make ``plan`` the current plan: ``plan_changed`` follows it from now on.
        ``path``: the file it was read from (None: it has none yet)."""
        self.plan_path = Path(path) if path else None
        if plan is not self.plan:
            self.plan.changed.disconnect(self._relay_plan_change)
            plan.changed.connect(self._relay_plan_change)
        self.plan = plan
        self.plan_replaced.emit()

    def open(self, ct: Volume, ct_path: str | Path | None = None,
             structures: dict[str, Volume] | None = None, plan: Plan | None = None,
             plan_path: str | Path | None = None, case_dir: str | Path | None = None) -> None:
        """Replace the whole case by another: ``case_closed`` (subscribers drop what
        belonged to the previous case), then the CT, its structures in the given order
        (on the CT grid) and the plan — a fresh empty one when ``plan`` is None."""
        self._drop()
        self.case_dir = Path(case_dir) if case_dir else None
        self.set_ct(ct, ct_path)
        for key, mask in (structures or {}).items():
            self.set_structure(key, mask)
        self.set_plan(plan if plan is not None else Plan(), plan_path)

    def close(self) -> None:
        """Close the case: ``case_closed``, then no CT (``ct_changed`` with ``ct`` None),
        no structures and a fresh empty plan."""
        self._drop()
        self.ct = None
        self.ct_path = None
        removed = list(self.structures)
        self.structures.clear()
        for key in removed:
            self.structures_changed.emit(key)
        self.ct_changed.emit()
        self.set_plan(Plan())

    def _drop(self) -> None:
        self.followup = None
        self.plan_path = None
        self.case_dir = None
        self.uid = uuid.uuid4().hex          # caches keyed by case never mix two cases
        self.case_closed.emit()
