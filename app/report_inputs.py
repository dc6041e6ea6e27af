"""The files the one-click report's child process (``irplan report``) reads: the plan as
shown (a temporary copy: the case's own plan file is never written as a side effect), its
masks that have no file yet, and the follow-up evaluation shown in the Evaluate tab.
No Qt here.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from irplan.planning.plan import Plan
from irplan.planning.volume import Volume


@dataclass
class ReportInputs:
    """A temporary folder holding ``plan.irplan.json`` (+ ``plan.masks/``) and, when an
    evaluation was given, ``evaluation.json`` (the ``irplan evaluate --json`` layout)."""

    folder: Path
    plan_path: Path
    evaluation_path: Path | None

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def evaluation_dict(result: Any) -> dict[str, Any]:
    """An EvaluationResult as ``irplan evaluate --json`` writes it, with the tumour
    surface margins (the report draws the follow-up margin map from them)."""
    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    margin = getattr(result, "margin", None)
    if margin is not None and hasattr(margin, "to_dict"):
        d["margin"] = margin.to_dict(include_surface=True)
    return d


def write_report_inputs(plan: Plan, structures: Mapping[str, Volume],
                        ct_path: str | Path | None = None, evaluation: Any = None,
                        folder: str | Path | None = None) -> ReportInputs:
    """Write a copy of ``plan`` (image path and masks resolvable from the new folder; a
    thermal plan without power/time gets its device table's default, as the zone dock
    shows it) and ``evaluation`` into ``folder`` (default: a new temporary folder)."""
    from irplan.io.atomic_write import atomic_write_text
    from irplan.io.plan_file import image_path, save_plan
    from irplan.io.plan_masks import attach_masks
    from irplan.planning.thermal_defaults import resolve_thermal

    out = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="irplan-report-"))
    out.mkdir(parents=True, exist_ok=True)
    p = plan.copy()
    if ct_path and (not p.image.path or not image_path(p).exists()):
        p.image.path = str(Path(ct_path).resolve())
    p.thermal = resolve_thermal(p)[0]
    plan_path = out / "plan.irplan.json"
    attach_masks(p, structures, plan_path, record=False)   # the real plan still saves them
    save_plan(p, plan_path)
    ev_path = None
    if evaluation is not None:
        ev_path = out / "evaluation.json"
        atomic_write_text(ev_path, json.dumps(evaluation_dict(evaluation), default=_jsonable))
    return ReportInputs(out, plan_path, ev_path)
