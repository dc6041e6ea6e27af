"""Malformed plan files: each gives one clear line naming the field, through load_plan
and through the `irplan check` command line (exit code 2, one line on stderr)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from irplan.app.cli import main as cli_main
from irplan.io.plan_file import load_plan
from irplan.planning.errors import InputError

VALID: dict[str, Any] = {
    "schema": 1, "modality": "IRE",
    "image": {"path": "ct", "series_uid": "1.2.3"},
    "margin_mm": 5,
    "needles": [
        {"device": "ire-19g-monopolar", "tip_lps_mm": [0, 0, 0], "entry_lps_mm": [0, 0, 100],
         "exposure_mm": 20},
        {"device": "ire-19g-monopolar", "tip_lps_mm": [15, 0, 0], "entry_lps_mm": [15, 0, 100],
         "exposure_mm": 20}],
    "ire": {"voltage_v": 2250, "pulses": 90, "pulse_width_us": 90},
    "thermal": {"power_w": None, "time_s": None},
    "structures": {"tumor": "tumor.nii.gz"},
}


def _mod(path: str, value: Any) -> dict[str, Any]:
    """VALID with the dotted ``path`` (list indices as ints) set to ``value`` (or deleted
    when value is the _DEL marker)."""
    d = copy.deepcopy(VALID)
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    cur: Any = d
    for k in keys[:-1]:
        cur = cur[k]
    if value is _DEL:
        del cur[keys[-1]]
    else:
        cur[keys[-1]] = value
    return d


_DEL = object()

# (case id, file content (str/bytes) or dict, expected text in the message)
CASES: list[tuple[str, Any, str]] = [
    ("empty", "", "file is empty"),
    ("whitespace", "  \n ", "file is empty"),
    ("not-json", "{\"schema\": 1,", "not valid JSON"),
    ("top-level-list", "[1, 2]", "expected a JSON object"),
    ("not-utf8", b"\xff\xfe\x00{garbage", "not UTF-8"),
    ("duplicate-key", '{"schema": 1, "schema": 1}', "duplicate key 'schema'"),
    ("deep-nesting", "[" * 100000 + "]" * 100000, "nested too deeply"),
    ("schema-missing", _mod("schema", _DEL), "schema: missing"),
    ("schema-newer", _mod("schema", 2), "newer IRPlan"),
    ("schema-string", _mod("schema", "1"), "schema: expected an integer"),
    ("schema-negative", _mod("schema", -1), "schema: unknown version -1"),
    ("modality-unknown", _mod("modality", "laser"), "modality: expected one of"),
    ("modality-case", _mod("modality", "ire"), "did you mean 'IRE'"),
    ("image-missing", _mod("image", _DEL), "image: missing"),
    ("image-not-object", _mod("image", "ct"), "image: expected an object"),
    ("image-path-empty", _mod("image.path", ""), "image.path: expected a non-empty"),
    ("series-uid-number", _mod("image.series_uid", 123), "image.series_uid: expected a string"),
    ("margin-negative", _mod("margin_mm", -2), "margin_mm: must be >= 0"),
    ("margin-string", _mod("margin_mm", "5"), 'margin_mm: expected a number, got "5"'),
    ("margin-bool", _mod("margin_mm", True), "margin_mm: expected a number, got true"),
    ("margin-huge", _mod("margin_mm", 500), "margin_mm: must be <= 30"),
    ("needles-not-list", _mod("needles", {"a": 1}), "needles: expected a list"),
    ("needle-not-object", _mod("needles.1", 7), "needles[1]: expected an object"),
    ("tip-string", _mod("needles.1.tip_lps_mm", "abc"),
     'needles[1].tip_lps_mm: expected 3 numbers [L, P, S] in mm, got "abc"'),
    ("tip-two-numbers", _mod("needles.0.tip_lps_mm", [1, 2]), "needles[0].tip_lps_mm: expected 3"),
    ("entry-nan", '{"schema": 1, "modality": "IRE", "image": {"path": "ct", "series_uid": ""},'
     ' "needles": [{"device": "ire-19g-monopolar", "tip_lps_mm": [0, 0, 0], "entry_lps_mm": '
     '[0, NaN, 100], "exposure_mm": 20}]}', "needles[0].entry_lps_mm: coordinates must be finite"),
    ("tip-infinity", '{"schema": 1, "modality": "IRE", "image": {"path": "ct", "series_uid": ""},'
     ' "needles": [{"device": "ire-19g-monopolar", "tip_lps_mm": [Infinity, 0, 0], "entry_lps_mm":'
     ' [0, 0, 100], "exposure_mm": 20}]}', "needles[0].tip_lps_mm: coordinates must be finite"),
    ("tip-equals-entry", _mod("needles.0.entry_lps_mm", [0, 0, 0.1]),
     "needles[0]: tip_lps_mm and entry_lps_mm are the same point"),
    ("device-missing", _mod("needles.0.device", _DEL), "needles[0].device: missing"),
    ("device-unknown", _mod("needles.0.device", "acme-9000"),
     "needles[0].device: unknown device id 'acme-9000'"),
    ("device-wrong-modality", _mod("needles.1.device", "mwa-14g"),
     "needles[1].device: 'mwa-14g' is a MWA device but the plan's modality is IRE"),
    ("exposure-missing-ire", _mod("needles.0.exposure_mm", None),
     "needles[0].exposure_mm: required for IRE"),
    ("exposure-negative", _mod("needles.1.exposure_mm", -5), "needles[1].exposure_mm: must be > 0"),
    ("name-number", _mod("needles.0.name", 3), "needles[0].name: expected a string"),
    ("pulses-fraction", _mod("ire.pulses", 2.5), "ire.pulses: expected an integer"),
    ("pulses-zero", _mod("ire.pulses", 0), "ire.pulses: must be > 0"),
    ("voltage-string", _mod("ire.voltage_v", "high"), "ire.voltage_v: expected a number"),
    ("ire-not-object", _mod("ire", [1]), "ire: expected an object"),
    ("power-negative", _mod("thermal.power_w", -100), "thermal.power_w: must be > 0"),
    ("structures-list", _mod("structures", ["tumor.nii.gz"]), "structures: expected an object"),
    ("structure-not-mask", _mod("structures.liver", "liver.txt"),
     "structures.liver: 'liver.txt' is not a mask file"),
    ("structure-file-missing", _mod("structures.portal_vein", "pv.nii.gz"),
     "structures.portal_vein: mask file"),
    ("image-gone", _mod("image.path", "moved_away"), "image.path:"),
    ("targets-not-list", _mod("targets", "tumor"), "targets: expected a list"),
    ("targets-unknown-key", _mod("targets", ["tumor", "tumour2"]),
     "targets[1]: \"tumour2\" is not a key of structures"),
]


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "ct").mkdir()
    (tmp_path / "tumor.nii.gz").write_bytes(b"x")
    return tmp_path


def _write(folder: Path, content: Any) -> Path:
    p = folder / "plan.irplan.json"
    if isinstance(content, dict):
        p.write_text(json.dumps(content), encoding="utf-8")
    elif isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def test_the_valid_base_plan_loads(folder: Path) -> None:
    plan = load_plan(_write(folder, VALID))
    assert len(plan.needles) == 2 and plan.ire.voltage_v == 2250


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_load_plan_names_the_problem(folder: Path, content: Any, expected: str) -> None:
    path = _write(folder, content)
    with pytest.raises(InputError) as info:
        load_plan(path)
    msg = str(info.value)
    assert expected in msg
    assert msg.startswith(str(path)) or "plan.irplan.json" in msg
    assert "\n" not in msg and "Traceback" not in msg


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_check_cli_exits_2_with_one_line(folder: Path, content: Any, expected: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(folder, content)
    rc = cli_main(["check", str(path)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("irplan: error: ") and expected in lines[0]


def test_several_problems_are_all_reported(folder: Path) -> None:
    d = _mod("margin_mm", -1)
    d["needles"][1]["tip_lps_mm"] = "abc"
    with pytest.raises(InputError) as info:
        load_plan(_write(folder, d))
    assert "margin_mm" in str(info.value) and "needles[1].tip_lps_mm" in str(info.value)
    assert len(info.value.problems) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", ["tip-string", "not-json"])
def test_real_irplan_process(folder: Path, case: str) -> None:
    content, expected = {c[0]: c[1:] for c in CASES}[case]
    path = _write(folder, content)
    irplan = Path(sys.executable).parent / "irplan"
    res = subprocess.run([str(irplan), "check", str(path), "--json"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2
    assert res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and expected in res.stderr
