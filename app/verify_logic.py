"""Intra-op verification without widgets (issue 15): find the placed needles on an
intra-op CT in the background, compare them with the open plan, accept them as a new
plan version (one undo step). Registered as ``ctx.services.verify``.

The computation is the CLI's (``irplan detect-needles``): detection
:mod:`irplan.planning.needle_detection`, comparison/pairs/verdict
:mod:`irplan.planning.placement`. Positions are compared as stored (same Frame of
Reference as the plan's CT; the CLI registers other frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psygnal import Signal

from irplan.planning.errors import InputError
from irplan.planning.plan import Plan


@dataclass
class VerifyResult:
    """Detected needles compared with ``planned`` (LPS mm)."""

    ct_path: Path
    planned: Plan
    placed_plan: Plan | None                       # the plan with the placed needles
    rows: list[dict[str, Any]] = field(default_factory=list)    # per detected needle
    pairs: list[dict[str, Any]] = field(default_factory=list)   # IRE, 0-based needles
    missing_planned: list[int] = field(default_factory=list)    # 0-based
    verdict: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def verify_ct(ct: Any, plan: Plan, ct_path: Path) -> VerifyResult:
    """Detect the needles on ``ct`` (HU Volume) and compare them with ``plan``."""
    from irplan.planning import placement as pl
    from irplan.planning.needle_detection import detect_needles

    det = detect_needles(ct)
    placed = [pl.PlacedNeedle(n.tip_lps_mm, n.entry_lps_mm) for n in det.needles]
    matches = pl.match_to_plan(placed, plan.needles)
    rows, errors = [], []
    for n, p, m in zip(det.needles, placed, matches):
        e = pl.needle_errors(p, plan.needles[m]) if m is not None else None
        errors.append(e)
        rows.append({"tip_lps_mm": n.tip_lps_mm, "entry_lps_mm": n.entry_lps_mm,
                     "planned_index": m, **(e or {})})
    pairs = pl.measured_pairs(placed) if plan.is_ire and len(placed) >= 2 else []
    found = {m for m in matches if m is not None}
    return VerifyResult(
        ct_path, plan.copy(), pl.placed_plan(plan, placed, matches) if placed else None,
        rows, pairs, [j for j in range(len(plan.needles)) if j not in found],
        pl.technical_success(len(plan.needles), matches, errors, pairs, None),
        list(det.rejected))


class VerifyLogic:
    """State and jobs of the Verify step (no widgets)."""

    result_ready = Signal(object)       # VerifyResult
    cleared = Signal()                  # the case closed: its result is gone
    failed = Signal(str)
    message = Signal(str)

    def __init__(self, case: Any, tasks: Any, session: Any = None) -> None:
        self.case = case
        self.tasks = tasks
        self.session = session
        self.result: VerifyResult | None = None
        self.accepted = False
        case.case_closed.connect(self.clear)

    def clear(self) -> None:
        """Forget the result (it belonged to the case that closed)."""
        self.result = None
        self.accepted = False
        self.cleared.emit()

    def detect(self, ct_dir: str | Path) -> Any:
        """Load ``ct_dir`` and find/compare the needles in the background."""
        p = Path(ct_dir)
        plan = self.case.plan.copy()
        plan_for = str((self.case.ct.metadata if self.case.ct is not None else {})
                       .get("frame_of_reference_uid", "") or "")

        def job(progress, cancel):  # noqa: ANN001, ANN202
            from irplan.io.dicom_load import load_ct

            progress(0.1, "Reading the intra-op CT")
            ct = load_ct(p)
            ct_for = str(ct.metadata.get("frame_of_reference_uid", "") or "")
            if plan_for and ct_for and ct_for != plan_for:
                # positions are compared as stored: another frame would give nonsense
                raise InputError(
                    f"{p}: the intra-op CT has another Frame of Reference than the planning "
                    "CT; register it first (irplan detect-needles CT --plan PLAN "
                    "--register rigid)")
            progress(0.6, "Finding the needles")
            return verify_ct(ct, plan, p)

        self.message.emit(f"finding the needles on {p.name}…")
        return self.tasks.start("Finding the needles", job, self._done, self._error)

    def _done(self, res: VerifyResult) -> None:
        self.result = res
        self.accepted = False
        self.result_ready.emit(res)
        self.message.emit(f"{len(res.rows)} needle(s) found on {res.ct_path.name}")

    def _error(self, text: str) -> None:
        self.failed.emit(text)

    def accept(self) -> bool:
        """Replace the plan's needles by the placed ones (one undoable step)."""
        from irplan.planning.commands import ReplaceNeedles

        res = self.result
        if res is None or res.placed_plan is None or self.session is None:
            return False
        ok = bool(self.session.push(ReplaceNeedles(res.placed_plan.needles,
                                                   "accept placed needles")))
        self.accepted = ok
        return ok
