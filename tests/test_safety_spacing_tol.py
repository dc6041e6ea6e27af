"""IRE spacing limits are inclusive: electrodes placed exactly 10 or 25 mm apart (which
floating point makes 9.999999999999996 mm) raise no spacing warning."""

from __future__ import annotations

import numpy as np

from irplan.planning.plan import Needle, Plan
from irplan.planning.safety import SafetyChecker


def _pair_plan(spacing_mm: float) -> Plan:
    d = np.array([0.3, 0.1, -0.9])
    d /= np.linalg.norm(d)
    u = np.cross(d, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    tip0 = np.array([-31.7, 12.3, 5.1])
    needles = [Needle("ire-19g-monopolar", t, t - 120.0 * d, exposure_mm=20.0)
               for t in (tip0, tip0 + spacing_mm * u)]
    return Plan(modality="IRE", needles=needles)


def _spacing_findings(spacing_mm: float) -> list:
    plan = _pair_plan(spacing_mm)
    return [f for f in SafetyChecker({}).check(plan) if f.code == "ire_spacing"]


def test_exact_limits_pass_and_outside_warns() -> None:
    assert _spacing_findings(10.0) == []
    assert _spacing_findings(25.0) == []
    assert len(_spacing_findings(9.9)) == 1
    assert len(_spacing_findings(25.1)) == 1
