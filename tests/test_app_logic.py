"""The logic tier of app/ without a window: a Case, a TaskRunner and the logic object —
the follow-up evaluation on the phantom case (register, accept, evaluate, truth MAM) and
the live training comparison (tip error in mm, re-compare on a plan edit, another image
refused, the reference dropped with its image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def runner(qapp):
    from irplan.app.workers import TaskRunner

    r = TaskRunner()
    yield r
    r.shutdown(60)
    r.deleteLater()


@pytest.fixture(scope="module")
def loaded(phantom_case: Path):
    from irplan.io.case_loader import load_case

    return load_case(phantom_case)


def test_evaluation_logic_on_the_phantom_case(loaded, phantom_case, runner) -> None:
    from irplan.app.evaluation_logic import EvaluationLogic
    from irplan.io.phantom_writer import load_truth
    from irplan.planning.case import Case

    truth = load_truth(phantom_case)
    case = Case()
    case.open(loaded.ct, loaded.ct_path, {k: loaded.structures[k] for k in ("tumor", "liver")},
              case_dir=phantom_case)
    logic = EvaluationLogic(case, runner)
    errors: list[str] = []
    logic.status.connect(lambda text, error: errors.append(text) if error else None)
    assert logic.case_followup_dir() == phantom_case

    logic.load_case_followup()          # followup/ and masks/followup/ablation_zone
    assert runner.wait_idle(120)
    assert logic.followup is not None and logic.zone_followup is not None
    assert not logic.can_evaluate()     # not registered yet
    assert logic.evaluate() is None and "accept a registration" in errors[-1]

    logic.register("rigid")
    assert runner.wait_idle(240)
    assert logic.registration is not None and not logic.accepted
    logic.accept_registration()
    assert logic.can_evaluate()
    logic.evaluate(5.0)
    assert runner.wait_idle(240)
    res = logic.result
    assert res is not None and res.verdict == "complete_margin_ok"
    assert res.minimal_margin_mm == pytest.approx(truth.minimal_margin_mm, abs=1.0)
    assert res.margin.tumor_coverage_percent == pytest.approx(
        truth.tumor_coverage_percent, abs=1.0)

    case.set_ct(loaded.ct, loaded.ct_path)   # another CT: the follow-up work goes
    assert logic.followup is None and logic.registration is None and logic.result is None


def test_training_logic_compares_live_without_a_window(loaded, phantom_case, runner) -> None:
    from irplan.app.training_logic import TrainingLogic
    from irplan.io.plan_file import load_plan, save_plan
    from irplan.planning.case import Case
    from irplan.planning.errors import InputError

    ref_path = phantom_case / "plan.irplan.json"
    ref = load_plan(ref_path)
    trainee = ref.copy()
    n = trainee.needles[1]
    n.tip_lps_mm = n.tip_lps_mm - 6.0 * n.direction      # 6 mm short along its axis
    case = Case()
    case.open(loaded.ct, loaded.ct_path, {}, plan=trainee)   # no anatomy: no zones
    logic = TrainingLogic(case, runner)
    shown = []
    logic.comparison_changed.connect(lambda comp, pending: shown.append((comp, pending)))

    comp = logic.load_reference(ref_path)
    m = comp.match_for_reference(1)
    assert m.tip_error_mm == pytest.approx(6.0, abs=1e-6)
    assert m.tip_along_mm == pytest.approx(-6.0, abs=1e-6)
    assert not comp.passed and shown[-1] == (comp, False)
    assert any("checks still being prepared" in note for note in comp.notes)

    # live: needle 3's tip 3 mm along L -> re-compared after the debounce
    case.plan.needles[2].tip_lps_mm = case.plan.needles[2].tip_lps_mm + np.array([3.0, 0, 0])
    case.plan.notify("needle:2")
    assert runner.wait_idle(30)
    assert logic.comparison is not comp
    assert logic.comparison.match_for_reference(2).tip_error_mm == pytest.approx(3.0, abs=1e-6)

    # a reference on another image is refused; the old one stays
    other = ref.copy()
    other.image.series_uid = "1.2.3.4.5"
    bad = phantom_case.parent / "other-image.irplan.json"
    save_plan(other, bad)
    with pytest.raises(InputError, match="another image"):
        logic.load_reference(bad)
    assert logic.reference_path == ref_path

    # another case (here the same CT opened anew) drops the reference and says why
    dropped = []
    logic.reference_dropped.connect(dropped.append)
    case.open(loaded.ct, loaded.ct_path)
    assert logic.reference is None and logic.comparison is None
    assert dropped and str(ref_path) in dropped[0]
