"""What the needle-aligned ("probe's eye") views show, without widgets: the selected
needle of the plan session, every needle coloured by its worst safety finding, the
angles line and where the bull's-eye starts. Evented: :attr:`ProbeLogic.changed` follows
the session's ``selection_changed`` and ``findings_changed`` and the case's
``plan_changed``/``plan_replaced`` (nothing is polled). Registered as
``ctx.services.probe``; the dock is :mod:`irplan.app.probe_panel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psygnal import Signal

from irplan.planning.case import Case
from irplan.planning.display_names import needle_label
from irplan.planning.needle_geometry import needle_angles
from irplan.planning.plan import Needle
from irplan.viewers.needle_actors import SEVERITY_RGB
from irplan.viewers.probe_view import NeedleMark


def needle_rgb(severity: str | None) -> tuple[float, float, float]:
    """The colour of a needle whose worst finding has ``severity`` (None: none)."""
    r, g, b = (float(c) for c in SEVERITY_RGB.get(severity, SEVERITY_RGB[None]))
    return r, g, b


def default_depth_mm(needle: Needle) -> float:
    """Where the bull's-eye starts for a newly selected needle (mm from the entry): the
    middle of an IRE electrode's exposed part, else the tip."""
    if needle.exposure_mm:
        return max(0.0, needle.length_mm - min(float(needle.exposure_mm), needle.length_mm) / 2)
    return needle.length_mm


@dataclass
class ProbeTarget:
    """The selected needle as the three views draw it (LPS mm)."""

    index: int
    needle: Needle
    mark: NeedleMark
    others: list[NeedleMark]
    key: tuple[int, int]          # (plan identity, index): another key refits the views
    angles_text: str              # short, drawn in the views
    title: str                    # rich text, the dock's header


class ProbeLogic:
    """The selected needle of ``session`` (a :class:`~irplan.app.plan_session.PlanSession`:
    ``selected``, ``needle_severities()``, ``selection_changed``, ``findings_changed``)."""

    changed = Signal()            # what the views show may have changed

    def __init__(self, case: Case, session: Any) -> None:
        self.case, self.session = case, session
        session.selection_changed.connect(self._on_changed)
        session.findings_changed.connect(self._on_changed)
        case.plan_changed.connect(self._on_changed)
        case.plan_replaced.connect(self._on_changed)
        case.ct_changed.connect(self._on_changed)

    def _on_changed(self, *_args: Any) -> None:
        self.changed.emit()

    def target(self) -> ProbeTarget | None:
        """The selected needle, or None (no CT, nothing selected, a zero-length path)."""
        plan = self.case.plan
        sel = self.session.selected
        needle = plan.needles[sel] if sel is not None and 0 <= sel < len(plan.needles) else None
        if self.case.ct is None or needle is None or needle.length_mm < 1e-3:
            return None
        assert sel is not None
        sev = self.session.needle_severities()
        marks = [NeedleMark(needle_label(n, i), n.entry_lps_mm.copy(),
                            n.tip_lps_mm.copy(), needle_rgb(sev[i] if i < len(sev) else None),
                            n.exposure_mm) for i, n in enumerate(plan.needles)]
        mark = marks[sel]
        ang = needle_angles(needle)
        title = (f"<b>{mark.name}</b>: path {ang.depth_mm:.1f} mm · CC {ang.cc_angle_deg:+.1f}° · "
                 f"LR {ang.lr_angle_deg:+.1f}° ({ang.plane_kind})"
                 + (f" · exposure {needle.exposure_mm:g} mm" if needle.exposure_mm else ""))
        return ProbeTarget(
            index=sel, needle=needle, mark=mark,
            others=[m for i, m in enumerate(marks) if i != sel], key=(id(plan), sel),
            angles_text=f"CC {ang.cc_angle_deg:+.1f}°  LR {ang.lr_angle_deg:+.1f}°  "
                        f"{ang.plane_kind}",
            title=title)
