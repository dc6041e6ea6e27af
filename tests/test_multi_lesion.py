"""Several lesions in one case (issue 17): lesion structure types, the plan's target lesion
(plan key ``target_structure``) through the plan file, the commands and the CLI
(``zone``/``check``/``report --target``), and the report's lesion table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from irplan.app.cli import main
from irplan.io.masks import read_mask
from irplan.io.plan_file import load_plan, save_plan
from irplan.planning.errors import InputError
from irplan.planning.lesions import (
    SetTargetStructure,
    lesion_rows,
    target_key,
    target_structures,
)
from irplan.planning.structures import (
    classify_structure_name,
    lesion_key,
    lesion_keys,
    lesion_name,
    next_lesion_key,
    structure_color,
    structure_types,
)

sys.path.insert(0, str(Path(__file__).parent))
from lesion_factory import add_second_lesion  # noqa: E402


@pytest.fixture(scope="module")
def two_lesion_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom on a coarse grid (3 x 3 x 4 mm: fast) with a second lesion, 7 mm in
    radius, in its liver: ``plan.irplan.json`` names tumor and tumor_2."""
    from irplan.io.phantom_writer import write_phantom_case

    case = write_phantom_case(tmp_path_factory.mktemp("lesions") / "case", seed=0,
                              size=(128, 128, 64), spacing_mm=(3.0, 3.0, 4.0))
    add_second_lesion(case)
    d = json.loads((case / "plan.irplan.json").read_text())
    d["structures"]["tumor_2"] = "masks/planning/tumor_2.nii.gz"
    (case / "plan.irplan.json").write_text(json.dumps(d, indent=1))
    return case


def _ml(path: Path) -> float:
    m = read_mask(path)
    return float(np.count_nonzero(m.array)) * m.voxel_volume_ml


# ------------------------------------------------------------------ lesion types
def test_lesion_types_have_own_names_colours_and_labels():
    types = structure_types()
    assert types["tumor"].name == "Tumour"            # one tumour: as always
    assert [lesion_name(lesion_key(n)) for n in (1, 2, 3)] == ["Tumour 1", "Tumour 2",
                                                                "Tumour 3"]
    colours = [structure_color(lesion_key(n)) for n in range(1, 10)]
    assert len(set(colours)) == 9                     # nine lesions, nine colours
    others = {st.color for k, st in types.items() if not k.startswith("tumor")}
    assert not others & set(colours)                  # none looks like a vessel or organ
    labels = [st.label for st in types.values()]
    assert len(labels) == len(set(labels))            # labelmap values stay unique
    assert classify_structure_name("tumor_2") == "tumor"   # a lesion is a tumour
    assert lesion_keys(["liver", "tumor_10", "tumor", "tumor_2", "tumor_1"]) == \
        ["tumor", "tumor_2", "tumor_10"]
    assert next_lesion_key(["tumor", "tumor_3"]) == "tumor_2"
    # text for people names lesions, also beyond the colour table
    from irplan.planning.display_names import user_text

    assert user_text("tumor_2: 0.4 ml inside; tumor_25 empty") == \
        "Tumour 2: 0.4 ml inside; Tumour 25 empty"


# ------------------------------------------------------------------ plan file + command
def test_target_in_the_plan_file_and_as_an_undoable_edit(two_lesion_case: Path, tmp_path):
    plan = load_plan(two_lesion_case / "plan.irplan.json")
    assert "target_structure" not in json.loads(
        (two_lesion_case / "plan.irplan.json").read_text())
    assert target_key(plan) == "tumor"                # old plans: the first lesion
    cmd = SetTargetStructure("tumor_2")
    cmd.do(plan)
    assert target_key(plan) == "tumor_2"
    saved = save_plan(plan, two_lesion_case / "t2.irplan.json")
    assert json.loads(saved.read_text())["target_structure"] == "tumor_2"
    assert target_key(load_plan(saved)) == "tumor_2"
    cmd.undo(plan)
    assert target_key(plan) == "tumor" and "target_structure" not in plan.extra
    d = json.loads(saved.read_text())
    d["target_structure"] = "liver"
    bad = two_lesion_case / "bad.irplan.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(InputError, match="bad.irplan.json: target_structure: expected a "
                                         "lesion key"):
        load_plan(bad)


def test_target_view_and_lesion_rows(two_lesion_case: Path):
    masks = two_lesion_case / "masks" / "planning"
    s = {k: read_mask(masks / f"{k}.nii.gz") for k in ("liver", "tumor", "tumor_2")}
    view = target_structures(s, "tumor_2")
    assert set(view) == {"tumor", "liver"} and view["tumor"] is s["tumor_2"]
    with pytest.raises(InputError, match=r"Tumour 3 \(tumor_3\) has no mask.*Tumour 1, "
                                         "Tumour 2"):
        target_structures(s, "tumor_3")
    rows = lesion_rows(s, "tumor_2")
    assert [(r.name, r.is_target) for r in rows] == [("Tumour 1", False), ("Tumour 2", True)]
    assert rows[1].volume_ml == pytest.approx(_ml(masks / "tumor_2.nii.gz"))
    assert 13.0 <= rows[1].diameter_mm <= 17.0        # a 7 mm-radius sphere on 3-4 mm voxels


# ------------------------------------------------------------------ CLI
def _zone(capsys, *argv: str) -> dict:
    assert main(["zone", *argv, "--grid-mm", "2", "--preview", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_target_moves_coverage_to_the_chosen_lesion(two_lesion_case: Path, capsys,
                                                        tmp_path):
    plan = str(two_lesion_case / "plan.irplan.json")
    first = _zone(capsys, plan, "--out", str(tmp_path / "z1.nii.gz"))
    second = _zone(capsys, plan, "--target", "tumor_2", "--out", str(tmp_path / "z2.nii.gz"))
    # the coverage is the share of each lesion's voxels inside the written zone
    zone = read_mask(tmp_path / "z2.nii.gz")
    said = []
    for d, key in ((first, "tumor"), (second, "tumor_2")):
        m = read_mask(two_lesion_case / "masks" / "planning" / f"{key}.nii.gz")
        inside = zone.value_at_lps(m.index_to_lps(np.argwhere(m.array)[:, ::-1].astype(float)),
                                   order=0, outside=0.0)
        share = 100.0 * float(np.mean(np.asarray(inside) > 0))
        said.append(f"{key}: coverage {d['tumor_coverage_percent']:.1f} % (voxels in zone "
                    f"{share:.1f} %), margin {d['minimal_margin_mm']} mm")
        assert d["tumor_coverage_percent"] == pytest.approx(share, abs=8.0)
        assert any(lesion_name(key) in w for w in d["warnings"])
    assert first["tumor_coverage_percent"] > second["tumor_coverage_percent"] + 50
    # no lesion is counted as a risk structure
    assert not any(r["key"].startswith("tumor") for r in second["risk_structures"])
    # a plan saved with its target gives the same figures without --target
    p = load_plan(plan)
    SetTargetStructure("tumor_2").do(p)
    saved = save_plan(p, two_lesion_case / "target2.irplan.json")
    again = _zone(capsys, str(saved))
    assert again["tumor_coverage_percent"] == second["tumor_coverage_percent"]
    # a lesion the case does not have, or a key that is no lesion: one line, exit 2
    for bad, text in (("tumor_3", "Tumour 3 (tumor_3) has no mask"),
                      ("liver", "'liver' is not a lesion key")):
        assert main(["check", plan, "--no-image", "--target", bad]) == 2
        err = capsys.readouterr().err
        assert text in err and len(err.strip().splitlines()) == 1
    with capsys.disabled():
        print("\n".join(said))


def test_cli_report_lists_each_lesion(two_lesion_case: Path, capsys, tmp_path):
    plan = str(two_lesion_case / "plan.irplan.json")
    d = _zone(capsys, plan, "--target", "tumor")
    pdf = tmp_path / "report.pdf"
    res = subprocess.run([sys.executable, "-m", "irplan.app.cli", "report", plan, "--pdf",
                          str(pdf), "--no-pictures", "--target", "tumor"],
                         capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    rows = {ln.split()[1]: ln.split() for ln in text.splitlines()
            if ln.strip().startswith("Tumour ") and ln.split()[1].isdigit()}
    print("\n".join(" ".join(r) for r in rows.values()))
    masks = two_lesion_case / "masks" / "planning"
    assert set(rows) == {"1", "2"}
    assert rows["1"][2] == f"{_ml(masks / 'tumor.nii.gz'):.1f}"
    assert rows["2"][2] == f"{_ml(masks / 'tumor_2.nii.gz'):.1f}"
    assert "target" in rows["1"] and "target" not in rows["2"]
    # the target's coverage: the report's exact margin analysis vs the CLI's preview
    assert float(rows["1"][5]) == pytest.approx(d["tumor_coverage_percent"], abs=5.0)
    assert float(rows["1"][5]) > 50


def test_cli_check_runs_the_tumour_checks_on_the_target(two_lesion_case: Path, capsys):
    """The IRE exposure check measures the target lesion's extent along the needles: the
    7 mm-radius Tumour 2 (about 14 mm + a voxel), not both lesions together."""
    import re

    from irplan.planning.needle_geometry import mean_axis

    plan = str(two_lesion_case / "plan.irplan.json")
    extents = {}
    for target in ("tumor", "tumor_2"):
        assert main(["check", plan, "--no-image", "--json", "--target", target]) == 0
        found = json.loads(capsys.readouterr().out)
        said = [f["message"] for f in found if f["code"] == "ire_exposure_coverage"]
        ext = {float(m) for s in said
               for m in re.findall(r"tumour's ([0-9.]+) mm extent", s)}
        assert len(ext) <= 1
        extents[target] = ext.pop() if ext else None
    m = read_mask(two_lesion_case / "masks" / "planning" / "tumor_2.nii.gz")
    axis = mean_axis(load_plan(plan).needles)
    t = m.index_to_lps(np.argwhere(m.array)[:, ::-1].astype(float)) @ axis
    expected = float(t.max() - t.min()) + min(m.spacing_mm)
    print(f"exposure check extents: {extents}, Tumour 2 along the needles {expected:.1f} mm")
    assert extents["tumor_2"] == pytest.approx(expected, abs=0.15)
    assert extents["tumor"] != extents["tumor_2"]
