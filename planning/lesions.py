"""Several lesions in one case, and the plan's target lesion (issue 17).

Lesion keys are ``tumor`` (the first lesion), ``tumor_2``, ``tumor_3``, ...
(:mod:`irplan.planning.structures`). A plan treats one of them: the plan JSON key
``target_structure`` (kept in ``Plan.extra``; absent = ``"tumor"``, so plans written
before it open unchanged). Zone coverage/margin, checks, evaluation and the training
score read the target through :func:`target_structures`: the structure set in which
``"tumor"`` *is* the target lesion, the other lesions left out (they are neither the
target nor risk structures), so every computation written for one tumour works as is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from irplan.planning.commands import Command
from irplan.planning.errors import InputError
from irplan.planning.plan import Plan
from irplan.planning.structures import (
    LESION_KIND,
    is_lesion_key,
    lesion_keys,
    lesion_name,
)
from irplan.planning.volume import Volume

TARGET_KEY = "target_structure"          # plan JSON key (top level)


def target_key(plan: Plan | None) -> str:
    """The plan's target lesion key; "tumor" for a plan without ``target_structure``."""
    if plan is None:
        return LESION_KIND
    t = plan.extra.get(TARGET_KEY)
    return t if isinstance(t, str) and t else LESION_KIND


def check_target(key: Any, where: str = "target_structure") -> str:
    """``key`` when it is a lesion key; InputError naming ``where`` otherwise."""
    if not isinstance(key, str) or not is_lesion_key(key):
        raise InputError(f"{where}: {key!r} is not a lesion key (expected tumor, tumor_2, "
                         "tumor_3, ...)")
    return key


def target_display(key: str, structures: dict[str, Any] | None = None) -> str:
    """"Tumour 2"; the first lesion is "Tumour 1" when the case has several, else
    "Tumour"."""
    from irplan.planning.structures import structure_types

    if key == LESION_KIND and structures is not None and len(lesion_keys(structures)) < 2:
        return structure_types()[LESION_KIND].name
    return lesion_name(key)


def target_structures(structures: dict[str, Volume], target: str = LESION_KIND,
                      where: str = "target_structure") -> dict[str, Volume]:
    """``structures`` with ``"tumor"`` = the ``target`` lesion's mask and the other lesions
    left out (same order otherwise; the masks are not copied). A target other than
    "tumor" that has no mask is an InputError naming ``where`` and the lesions there are;
    a missing "tumor" gives a set without tumour (coverage "not computed", as before)."""
    check_target(target, where)
    if target != LESION_KIND and target not in structures:
        have = ", ".join(lesion_name(k) for k in lesion_keys(structures)) or "none"
        raise InputError(f"{where}: {lesion_name(target)} ({target}) has no mask in this "
                         f"case (lesions: {have})")
    out: dict[str, Volume] = {}
    if target in structures:
        out[LESION_KIND] = structures[target]
    for k, v in structures.items():
        if not is_lesion_key(k):
            out[k] = v
    return out


def plan_with_target(plan: Plan, target: str | None) -> Plan:
    """``plan`` itself (``target`` None, or its own target), else a copy that treats
    ``target`` alone (a CLI ``--target``; the plan file is not changed; it replaces the
    plan's ``targets`` list too)."""
    if target is None:
        return plan
    check_target(target, "--target")
    if target == target_key(plan) and not plan.targets:
        return plan
    out = plan.copy()
    out.targets = []
    _set(out, target)
    return out


def _set(plan: Plan, key: str) -> None:
    if key == LESION_KIND:
        plan.extra.pop(TARGET_KEY, None)    # the default: written as plans always were
    else:
        plan.extra[TARGET_KEY] = key


class SetTargetStructure(Command):
    """Plan edit: treat lesion ``key`` (undoable; topic "target")."""

    topic = "target"

    def __init__(self, key: str) -> None:
        self.key = check_target(key)
        self.text = f"target {lesion_name(key)}"

    def _do(self, plan: Plan) -> None:
        self.old = copy.deepcopy(plan.extra.get(TARGET_KEY))
        _set(plan, self.key)

    def _undo(self, plan: Plan) -> None:
        if self.old is None:
            plan.extra.pop(TARGET_KEY, None)
        else:
            plan.extra[TARGET_KEY] = self.old


@dataclass
class LesionRow:
    """One lesion of the case for lists and the report (mm, mL)."""

    key: str
    name: str
    volume_ml: float
    diameter_mm: float
    is_target: bool
    coverage_percent: float | None = None    # the target's, when a zone was predicted
    minimal_margin_mm: float | None = None


def lesion_rows(structures: dict[str, Volume], target: str = LESION_KIND,
                margin: Any | None = None) -> list[LesionRow]:
    """Every lesion of ``structures`` in lesion order: volume (mL) and largest diameter
    (3-D Feret, mm); empty masks are listed with 0 mL. ``margin``: the target's margin
    analysis (``tumor_coverage_percent``, ``minimal_margin_mm``) for its row."""
    from irplan.planning.mask_ops import max_diameter_mm

    several = len(lesion_keys(structures)) > 1
    rows = []
    for k in lesion_keys(structures):
        m = structures[k]
        n = int(np.count_nonzero(m.array))
        rows.append(LesionRow(k, lesion_name(k) if several else target_display(k, structures),
                              n * m.voxel_volume_ml,
                              max_diameter_mm(m) if n else 0.0, k == target))
        if k == target and margin is not None:
            cov = getattr(margin, "tumor_coverage_percent", None)
            mam = getattr(margin, "minimal_margin_mm", None)
            rows[-1].coverage_percent = None if cov is None else float(cov)
            rows[-1].minimal_margin_mm = None if mam is None else float(mam)
    return rows


def plan_for_checks(plan: Plan, structures: dict[str, Volume]) -> Plan:
    """The plan as the safety checks see it: its tumour checks (e.g. IRE exposure over
    the tumour's extent) on the target lesion when the case has several lesions or the
    target is not "tumor" (a copy with ``targets`` = [target]); ``plan`` itself when it
    names its own ``targets`` or has one lesion."""
    t = target_key(plan)
    if plan.targets or (t == LESION_KIND and len(lesion_keys(structures)) < 2):
        return plan
    out = plan.copy()
    out.targets = [t]
    return out
