"""The IRE model a plan is made with is part of the plan (key ``zone_model``): the zone
dock writes it, the plan file keeps it, and ``irplan zone`` and ``irplan report`` use it,
so the report states and shows the zone that was on screen (not the default's)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from irplan.app.cli import main
from irplan.io.plan_file import load_plan, save_plan
from irplan.planning.commands import SetZoneModel, UndoStack
from irplan.planning.errors import InputError
from irplan.planning.zone_settings import get_setting, model_record, plan_model


def _plan_with_model(phantom_case: Path, record: dict | None, name: str) -> Path:
    plan = load_plan(phantom_case / "plan.irplan.json")
    if record is not None:
        plan.extra["zone_model"] = record
    return save_plan(plan, phantom_case / name)


def test_record_round_trip_validation_and_undo(phantom_case: Path):
    rec = model_record(get_setting("human fit"))
    assert rec == {"setting": "human-fit", "threshold_v_per_cm": 550.0}
    path = _plan_with_model(phantom_case, rec, "human.irplan.json")
    assert json.loads(path.read_text())["zone_model"] == rec        # a plan JSON key
    plan = load_plan(path)
    assert plan_model(plan.extra, plan.file_dir).name == "human fit"
    for bad, words in (({"setting": "optimistic", "threshold_v_per_cm": 500}, "optimistic"),
                       ({"setting": "human-fit", "threshold_v_per_cm": 600}, "550"),
                       ({"setting": "custom", "threshold_v_per_cm": "x"}, "threshold"),
                       ({"setting": "calibrated", "threshold_v_per_cm": 420,
                         "params_path": "gone.json"}, "gone.json"),
                       ("human-fit", "object")):
        with pytest.raises(InputError, match=words):
            plan_model({"zone_model": bad})
        with pytest.raises(InputError):
            SetZoneModel(bad)                     # refused before it reaches the plan
    stack = UndoStack(plan)
    stack.push(SetZoneModel({"setting": "custom", "threshold_v_per_cm": 500.0}))
    stack.push(SetZoneModel({"setting": "custom", "threshold_v_per_cm": 510.0}))   # merged
    stack.push(SetZoneModel(model_record(get_setting("porcine-fit"))))
    assert plan.extra["zone_model"]["threshold_v_per_cm"] == 350.0
    stack.undo()
    assert plan.extra["zone_model"] == {"setting": "custom", "threshold_v_per_cm": 510.0}
    stack.undo()
    assert plan.extra["zone_model"] == rec


def test_zone_and_report_use_the_plans_model(phantom_case: Path, capsys, tmp_path):
    human = str(_plan_with_model(phantom_case, model_record(get_setting("human-fit")),
                                 "human2.irplan.json"))
    common = ("--grid-mm", "2", "--margin-grid-mm", "0", "--json")
    assert main(["zone", human, *common]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["setting"]["id"] == "human-fit" and d["threshold_v_per_cm"] == 550.0
    assert main(["zone", human, *common, "--setting", "conservative"]) == 0   # flag wins
    assert json.loads(capsys.readouterr().out)["threshold_v_per_cm"] == 637.0
    # a plan naming a calibrated file that is gone: refused, not another threshold
    gone = str(_plan_with_model(phantom_case, {"setting": "calibrated",
                                               "threshold_v_per_cm": 420.0,
                                               "params_path": "params_gone.json"},
                                "gone.irplan.json"))
    assert main(["zone", gone, *common]) == 2
    assert "params_gone.json" in capsys.readouterr().err
    pdf = tmp_path / "human.pdf"
    assert main(["report", human, "--pdf", str(pdf)]) == 0
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True,
                          encoding="utf-8", check=True).stdout
    flat = " ".join(text.split())
    assert "model setting 'human fit'" in flat and "550 V/cm" in flat, flat[:3000]
    assert "41105588" in flat                     # the setting's source is stated
