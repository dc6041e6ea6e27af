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


def _synthetic_case():
    """1 mm CT (70 x 70 x 50 voxels): a liver block and an 8 mm tumour at the origin."""
    from irplan.planning.case import Case
    from irplan.planning.volume import Volume

    ct = Volume(np.full((50, 70, 70), -1000, np.int16), [-35.0, -35.0, -25.0], [1.0] * 3)
    c = ct.voxel_centres_lps()
    liver = (np.abs(c[..., 0]) < 30) & (np.abs(c[..., 1]) < 30) & (np.abs(c[..., 2]) < 22)
    tumor = np.linalg.norm(c, axis=-1) <= 8.0
    ct = ct.with_array(np.where(tumor, 30, np.where(liver, 60, -1000)).astype(np.int16))
    case = Case()
    case.open(ct, structures={"liver": ct.with_array(liver.astype(np.uint8)),
                              "tumor": ct.with_array(tumor.astype(np.uint8))})
    return case


def test_zone_logic_without_a_window(runner) -> None:
    from irplan.app.zone_logic import ZoneLogic
    from irplan.planning.plan import Needle, Plan, ThermalParams

    case = _synthetic_case()
    logic = ZoneLogic(case, runner, surfaces=False)
    events: list[tuple[str, object]] = []
    logic.result_ready.connect(lambda res, fine: events.append(("result", fine)))
    logic.cleared.connect(lambda why: events.append(("cleared", why)))
    case.set_plan(Plan(modality="MWA", needles=[Needle("mwa-14g", [0.0, 0.0, -15.0],
                                                       [0.0, 0.0, 120.0])],
                       thermal=ThermalParams(power_w=100.0, time_s=300.0)))
    assert runner.wait_idle(120)
    assert [e for e in events if e[0] == "result"] == [("result", False), ("result", True)]
    assert logic.result_is_fine and logic.result.grid_mm == 1.0
    assert logic.result.margin.tumor_coverage_percent > 99.0   # 25 mm zone, 16 mm tumour
    case.plan.needles.clear()
    case.plan.notify("needles")                 # live: the relayed plan change
    assert runner.wait_idle(30)
    assert logic.result is None and events[-1] == ("cleared", "Place at least 1 applicator "
                                                   "to see the predicted zone.")


def test_segment_logic_brush_and_undo_without_a_window() -> None:
    from irplan.app.segment_logic import SegmentLogic

    case = _synthetic_case()
    logic = SegmentLogic(case)                  # no task runner: runs inline
    logic.set_target("bile_duct")
    logic.radius_mm = 4.0
    a, b = np.array([-10.0, 10.0, 0.0]), np.array([10.0, 10.0, 0.0])
    assert logic.begin_stroke(a, np.array([0.0, 0.0, 1.0]), erase=False)
    for t in np.linspace(0.2, 1.0, 5):
        logic.continue_stroke(a + t * (b - a))
    logic.end_stroke()
    m = case.structures["bile_duct"]
    assert len(np.nonzero(m.array.any(axis=(1, 2)))[0]) == 1     # one slice
    assert float(m.array.sum()) == pytest.approx(np.pi * 16 + 20 * 8, rel=0.15)   # mm2
    logic.refine("grow")                        # 1 mm: a bigger stadium, one more step
    assert float(case.structures["bile_duct"].array.sum()) > float(m.array.sum())
    assert logic.undo_stack.count() == 2
    logic.undo_stack.undo()
    logic.undo_stack.undo()
    assert "bile_duct" not in case.structures
    case.set_ct(case.ct)                        # another CT: no history
    assert logic.undo_stack.count() == 0
