"""Every edit of a plan is a command with do/undo; :class:`UndoStack` runs them.

Commands store exact copies of what they change (numpy arrays copied), so undo restores
the plan bit for bit and redo re-applies the same values. After each do/undo the plan's
``changed`` signal is emitted with a topic (see :class:`irplan.planning.plan.Plan`).

Drags: pass the same ``merge_key`` to consecutive move commands (e.g. "drag-3") and the
stack folds them into one step, so one undo returns to where the drag started.
No Qt here: the GUI wraps ``UndoStack`` (signals are psygnal).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from psygnal import Signal

from irplan.planning.errors import InputError
from irplan.planning.plan import MODALITIES, Needle, Plan
from irplan.planning.zone_settings import ZONE_MODEL_KEY, plan_model


class Command:
    """Base class. Subclasses implement ``_do``/``_undo`` and give ``text`` and ``topic``."""

    text = "edit"
    topic = "all"
    merge_key: str | None = None

    def do(self, plan: Plan) -> None:
        self._do(plan)
        plan.notify(self.topic)

    def undo(self, plan: Plan) -> None:
        self._undo(plan)
        plan.notify(self.topic)

    def merge(self, other: Command) -> bool:
        """Absorb ``other`` (already done) into this command; True when merged."""
        return False

    def _do(self, plan: Plan) -> None:
        raise NotImplementedError

    def _undo(self, plan: Plan) -> None:
        raise NotImplementedError


def _pt(p: Any, what: str) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise InputError(f"{what}: expected 3 finite LPS coordinates (mm), got {p!r}")
    return a.copy()


def _check_index(plan: Plan, i: int) -> None:
    if not 0 <= i < len(plan.needles):
        raise InputError(f"needle {i + 1} does not exist (the plan has {len(plan.needles)})")


class AddNeedle(Command):
    topic = "needles"

    def __init__(self, needle: Needle, index: int | None = None) -> None:
        if np.linalg.norm(needle.tip_lps_mm - needle.entry_lps_mm) == 0:
            raise InputError("new needle: tip and entry are the same point")
        self.needle = needle.copy()
        self.index = index
        self.text = f"add {needle.name or 'needle'}"

    def _do(self, plan: Plan) -> None:
        i = len(plan.needles) if self.index is None else self.index
        self._at = i
        plan.needles.insert(i, self.needle.copy())

    def _undo(self, plan: Plan) -> None:
        del plan.needles[self._at]


class RemoveNeedle(Command):
    topic = "needles"

    def __init__(self, index: int) -> None:
        self.index = index
        self.text = f"remove needle {index + 1}"

    def _do(self, plan: Plan) -> None:
        _check_index(plan, self.index)
        self.old = plan.needles.pop(self.index)

    def _undo(self, plan: Plan) -> None:
        plan.needles.insert(self.index, self.old)


class SetNeedles(Command):
    """Replace several needles' states at once (the base of all needle edits)."""

    topic = "needles"

    def __init__(self, new: dict[int, Needle], text: str = "move needles",
                 merge_key: str | None = None) -> None:
        self.new = {i: n.copy() for i, n in new.items()}
        self.old: dict[int, Needle] | None = None
        self.text = text
        self.merge_key = merge_key
        if len(self.new) == 1:
            self.topic = f"needle:{next(iter(self.new))}"

    def _do(self, plan: Plan) -> None:
        for i in self.new:
            _check_index(plan, i)
        if self.old is None:
            self.old = {i: plan.needles[i].copy() for i in self.new}
        for i, n in self.new.items():
            plan.needles[i] = n.copy()

    def _undo(self, plan: Plan) -> None:
        assert self.old is not None
        for i, n in self.old.items():
            plan.needles[i] = n.copy()

    def merge(self, other: Command) -> bool:
        if (self.merge_key is None or not isinstance(other, SetNeedles)
                or other.merge_key != self.merge_key or other.old is None):
            return False
        assert self.old is not None
        for i, n in other.old.items():
            self.old.setdefault(i, n.copy())
        self.new.update({i: n.copy() for i, n in other.new.items()})
        if len(self.new) > 1:
            self.topic = "needles"
        return True


def move_needle(plan: Plan, index: int, tip_lps_mm: Any = None, entry_lps_mm: Any = None,
                merge_key: str | None = None) -> SetNeedles:
    """Command: set the tip and/or entry of one needle (LPS mm)."""
    _check_index(plan, index)
    n = plan.needles[index].copy()
    if tip_lps_mm is not None:
        n.tip_lps_mm = _pt(tip_lps_mm, f"needle {index + 1} tip")
    if entry_lps_mm is not None:
        n.entry_lps_mm = _pt(entry_lps_mm, f"needle {index + 1} entry")
    if np.linalg.norm(n.tip_lps_mm - n.entry_lps_mm) == 0:
        raise InputError(f"needle {index + 1}: tip and entry would be the same point")
    what = "tip" if entry_lps_mm is None else "entry" if tip_lps_mm is None else "needle"
    return SetNeedles({index: n}, f"move {what} of needle {index + 1}", merge_key)


def translate_needles(plan: Plan, indices: Sequence[int], delta_lps_mm: Any,
                      merge_key: str | None = None) -> SetNeedles:
    """Command: shift whole needles (tip and entry) by ``delta_lps_mm``."""
    delta = _pt(delta_lps_mm, "translation")
    new = {}
    for i in indices:
        _check_index(plan, i)
        n = plan.needles[i].copy()
        n.tip_lps_mm = n.tip_lps_mm + delta
        n.entry_lps_mm = n.entry_lps_mm + delta
        new[i] = n
    return SetNeedles(new, f"move {len(new)} needle(s)", merge_key)


def move_array_electrode(plan: Plan, index: int, tip_lps_mm: Any = None,
                         entry_lps_mm: Any = None, locked: bool = True,
                         merge_key: str | None = None) -> SetNeedles:
    """Command: move one IRE electrode. ``locked``: keep the array parallel (see
    :func:`irplan.planning.ire_array.move_electrode_parallel`); unlocked = move only it."""
    from irplan.planning.ire_array import move_electrode_parallel

    if not locked:
        return move_needle(plan, index, tip_lps_mm, entry_lps_mm, merge_key)
    _check_index(plan, index)
    tip = None if tip_lps_mm is None else _pt(tip_lps_mm, f"needle {index + 1} tip")
    entry = None if entry_lps_mm is None else _pt(entry_lps_mm, f"needle {index + 1} entry")
    states = move_electrode_parallel(plan.needles, index, tip, entry)
    new = {}
    for i, (t, e) in enumerate(states):
        n = plan.needles[i]
        if not (np.array_equal(t, n.tip_lps_mm) and np.array_equal(e, n.entry_lps_mm)):
            m = n.copy()
            m.tip_lps_mm, m.entry_lps_mm = t.copy(), e.copy()
            new[i] = m
    return SetNeedles(new, f"move electrode {index + 1} (array parallel)", merge_key)


def set_needle_fields(plan: Plan, index: int, **values: Any) -> SetNeedles:
    """Command: set ``device``, ``exposure_mm`` or ``name`` of a needle."""
    _check_index(plan, index)
    n = plan.needles[index].copy()
    for key, v in values.items():
        if key == "exposure_mm":
            if v is not None and (not np.isfinite(float(v)) or float(v) <= 0):
                raise InputError(f"needle {index + 1} exposure_mm: must be > 0, got {v!r}")
            n.exposure_mm = None if v is None else float(v)
        elif key in ("device", "name"):
            setattr(n, key, str(v))
        else:
            raise InputError(f"needle field {key!r} cannot be set (device, exposure_mm, name)")
    return SetNeedles({index: n}, f"edit needle {index + 1}")


class ReplaceNeedles(Command):
    """Replace the whole needle list (e.g. apply an IRE template)."""

    topic = "needles"

    def __init__(self, needles: Sequence[Needle], text: str = "replace needles") -> None:
        self.new = [n.copy() for n in needles]
        self.text = text

    def _do(self, plan: Plan) -> None:
        self.old = [n.copy() for n in plan.needles]
        plan.needles[:] = [n.copy() for n in self.new]

    def _undo(self, plan: Plan) -> None:
        plan.needles[:] = [n.copy() for n in self.old]


def apply_ire_template(needles: Sequence[Needle], template: str = "") -> ReplaceNeedles:
    """Command: replace the needles by an IRE array (from :mod:`irplan.planning.ire_array`)."""
    return ReplaceNeedles(needles, f"apply IRE template {template}".strip())


class SetAttrs(Command):
    """Set attributes of the plan (``modality``, ``margin_mm``) or of ``plan.ire`` /
    ``plan.thermal`` / ``plan.image``; ``target`` names which object."""

    _ALLOWED = {"plan": ("modality", "margin_mm", "targets"),
                "ire": ("voltage_v", "pulses", "pulse_width_us"),
                "thermal": ("power_w", "time_s"),
                "image": ("path", "series_uid", "frame_of_reference_uid")}

    def __init__(self, target: str, **values: Any) -> None:
        if target not in self._ALLOWED:
            raise InputError(f"cannot edit {target!r}")
        for k in values:
            if k not in self._ALLOWED[target]:
                raise InputError(f"{target}.{k} cannot be set here")
        if target == "plan" and "modality" in values and values["modality"] not in MODALITIES:
            raise InputError(f"modality: expected one of {', '.join(MODALITIES)}, got "
                             f"{values['modality']!r}")
        if target == "plan" and "margin_mm" in values:
            m = float(values["margin_mm"])
            if not np.isfinite(m) or m < 0:
                raise InputError(f"margin_mm: must be >= 0, got {values['margin_mm']!r}")
        self.target = target
        self.values = copy.deepcopy(values)
        self.topic = {"plan": next(iter(values), "plan").replace("margin_mm", "margin"),
                      }.get(target, target)
        self.text = f"set {', '.join(values)}"

    def _obj(self, plan: Plan) -> Any:
        return plan if self.target == "plan" else getattr(plan, self.target)

    def _do(self, plan: Plan) -> None:
        obj = self._obj(plan)
        self.old = {k: copy.deepcopy(getattr(obj, k)) for k in self.values}
        for k, v in self.values.items():
            setattr(obj, k, copy.deepcopy(v))

    def _undo(self, plan: Plan) -> None:
        obj = self._obj(plan)
        for k, v in self.old.items():
            setattr(obj, k, copy.deepcopy(v))


class SetZoneModel(Command):
    """Record the IRE zone model the plan is made with (plan key ``zone_model``, see
    :mod:`irplan.planning.zone_settings`); ``None`` removes it (the default setting)."""

    topic = "zone_model"

    def __init__(self, record: dict[str, Any] | None) -> None:
        if record is not None:
            plan_model({ZONE_MODEL_KEY: record})        # validated now, not at the next use
        self.record = copy.deepcopy(record)
        self.text = "set zone model"

    def merge(self, other: Command) -> bool:
        """Stepping a custom threshold (each step a custom value) is one undo step."""
        if not (isinstance(other, SetZoneModel) and
                all((r or {}).get("setting") == "custom" for r in (self.record, other.record))):
            return False
        self.record = copy.deepcopy(other.record)
        return True

    def _do(self, plan: Plan) -> None:
        self.old = copy.deepcopy(plan.extra.get(ZONE_MODEL_KEY))
        self._set(plan, self.record)

    def _undo(self, plan: Plan) -> None:
        self._set(plan, self.old)

    @staticmethod
    def _set(plan: Plan, rec: dict[str, Any] | None) -> None:
        if rec is None:
            plan.extra.pop(ZONE_MODEL_KEY, None)
        else:
            plan.extra[ZONE_MODEL_KEY] = copy.deepcopy(rec)


class SetStructure(Command):
    """Add/replace (path) or remove (None) a structure's mask path in the plan."""

    topic = "structures"

    def __init__(self, key: str, path: str | None) -> None:
        if not key.strip():
            raise InputError("structure key must not be empty")
        self.key = key
        self.path = path
        self.text = f"{'remove' if path is None else 'set'} structure {key}"

    def _do(self, plan: Plan) -> None:
        self.had = self.key in plan.structures
        self.old = plan.structures.get(self.key)
        self.order = list(plan.structures)
        if self.path is None:
            plan.structures.pop(self.key, None)
        else:
            plan.structures[self.key] = self.path

    def _undo(self, plan: Plan) -> None:
        restored = {}
        for k in self.order:
            restored[k] = self.old if k == self.key else plan.structures[k]
        if not self.had:
            restored.pop(self.key, None)
        plan.structures.clear()
        plan.structures.update(restored)


class Macro(Command):
    """Several commands as one undo step."""

    def __init__(self, commands: Sequence[Command], text: str = "edit") -> None:
        self.commands = list(commands)
        self.text = text
        self.topic = "all"

    def _do(self, plan: Plan) -> None:
        done = []
        try:
            for c in self.commands:
                c._do(plan)
                done.append(c)
        except Exception:
            for c in reversed(done):
                c._undo(plan)
            raise

    def _undo(self, plan: Plan) -> None:
        for c in reversed(self.commands):
            c._undo(plan)


class UndoStack:
    """Undo/redo for one plan. ``changed`` is emitted after every push/undo/redo/clear.

    ``is_clean``: the plan equals the state last marked with :meth:`mark_clean` (saved).
    """

    changed = Signal()

    def __init__(self, plan: Plan, limit: int = 500) -> None:
        self.plan = plan
        self.limit = limit
        self._undo: list[Command] = []
        self._redo: list[Command] = []
        self._clean_index: int | None = 0

    def push(self, cmd: Command) -> None:
        """Do ``cmd`` on the plan and record it (merging drags with the same key)."""
        cmd.do(self.plan)
        top = self._undo[-1] if self._undo else None
        if (top is not None and not self._redo and self._clean_index != len(self._undo)
                and top.merge(cmd)):
            self.changed.emit()
            return
        self._undo.append(cmd)
        self._redo.clear()
        if self._clean_index is not None and self._clean_index >= len(self._undo):
            self._clean_index = None
        if len(self._undo) > self.limit:
            self._undo.pop(0)
            self._clean_index = None if self._clean_index in (None, 0) else self._clean_index - 1
        self.changed.emit()

    def undo(self) -> bool:
        if not self._undo:
            return False
        cmd = self._undo.pop()
        cmd.undo(self.plan)
        self._redo.append(cmd)
        self.changed.emit()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        cmd = self._redo.pop()
        cmd.do(self.plan)
        self._undo.append(cmd)
        self.changed.emit()
        return True

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._clean_index = 0
        self.changed.emit()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_text(self) -> str:
        return self._undo[-1].text if self._undo else ""

    @property
    def redo_text(self) -> str:
        return self._redo[-1].text if self._redo else ""

    def mark_clean(self) -> None:
        self._clean_index = len(self._undo)
        self.changed.emit()

    def mark_modified(self) -> None:
        """No state of the history equals the saved file (e.g. a recovered plan)."""
        self._clean_index = None
        self.changed.emit()

    @property
    def is_clean(self) -> bool:
        return self._clean_index == len(self._undo)
