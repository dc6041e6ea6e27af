"""``irplan calibrate COHORT.csv [--json] [--out PARAMS.json]``: fit the zone model to a
cohort's achieved ablation zones (issue 14; :mod:`irplan.planning.calibration`).

Input CSV (header required; extra columns ignored; paths relative to the CSV's folder):

    case_id, plan, ablation       required: plan file, achieved ablation mask in the
                                  plan CT's frame (LPS; any grid)
    followup, register            not supported yet: a row that fills them is reported
                                  as a bad row (bring the mask over with irplan evaluate)

IRE cohorts fit the lethal threshold (V/cm), thermal cohorts a zone scale factor. Per
case: Dice, HD95 and volume ratio before (the default setting) and after the fit, and
leave-one-out. A bad row (missing file, empty mask, plan error) is reported and the fit
continues. ``--json`` prints one object with "parameters", "cases", "dice_before",
"dice_after", "dice_loo", "bad_rows"; ``--out`` writes the parameters for
``irplan zone PLAN --params PARAMS.json``.

The per-case zone runs (the slow part: one field solve per case) go through the cohort
engine (:mod:`irplan.app.batch_engine`): ``--workers N`` (local Dask cluster),
``--scheduler tcp://HOST:PORT``, ``--timeout-s`` (a case over it is a bad row). A case
that crashes its worker or runs out of memory is a bad row too. The fit is the same
whatever the number of workers. (No ``--resume``: a case's product is its solved field,
an array, and the fit needs every case at once; re-running the solves is the journal.)

Exit codes: 0 fitted (bad rows are listed); 2 the cohort is unusable (no file, missing
column, no usable case).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from irplan.app import batch_engine
from irplan.planning.errors import InputError

REQUIRED = ("case_id", "plan", "ablation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cohort", help="cohort CSV: case_id, plan, ablation")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--out", metavar="PARAMS.json",
                        help="write the fitted parameters (for irplan zone --params)")
    parser.add_argument("--grid-mm", type=float, default=2.0,
                        help="zone grid of the fit (mm, default 2)")
    batch_engine.add_engine_arguments(parser, resume_help=None)


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        text = path.read_text("utf-8-sig")
    except OSError as exc:
        raise InputError(f"{path}: cannot read the cohort file ({exc.strerror})") from None
    reader = csv.DictReader(text.splitlines())
    cols = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (need "
                         f"{', '.join(REQUIRED)})")
    return [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]


def prepare_row(case: tuple[str, dict[str, str], str, float]):  # noqa: ANN201
    """The engine's task for one cohort row: ``case`` = (case id, row, base folder,
    grid mm) -> :class:`irplan.planning.calibration.CaseData`; raises IrplanError."""
    from irplan.io.masks import read_mask
    from irplan.io.plan_file import load_plan, load_plan_structures
    from irplan.planning.calibration import prepare_case

    cid, r, base, grid_mm = case
    for c in ("plan", "ablation"):
        if not r.get(c):
            raise InputError(f"column {c} is empty")
    if r.get("followup") or r.get("register"):
        raise InputError("followup/register columns are not supported yet: give the "
                         "ablation mask in the plan CT's frame (e.g. from irplan "
                         "evaluate's registration)")
    plan = load_plan(Path(base) / r["plan"])
    structures, _notes = load_plan_structures(plan)
    achieved = read_mask(Path(base) / r["ablation"])
    return prepare_case(cid, plan, structures, achieved, grid_mm)


def warm_up() -> None:
    """The imports of a case, once per worker process (not counted in --timeout-s)."""
    import irplan.planning.calibration  # noqa: F401
    import irplan.planning.zone  # noqa: F401


def run(args: argparse.Namespace) -> int:
    from irplan.io.atomic_write import atomic_write_text
    from irplan.planning.calibration import calibrate

    if not 0.5 <= args.grid_mm <= 5.0:
        raise InputError(f"--grid-mm must be in 0.5-5 mm, got {args.grid_mm}")
    opts = batch_engine.engine_options(args)
    cohort = Path(args.cohort)
    rows = _rows(cohort)
    base = str(cohort.resolve().parent)
    ids = [r.get("case_id") or f"line {n}" for n, r in enumerate(rows, start=2)]
    tasks = [(cid, r, base, args.grid_mm) for cid, r in zip(ids, rows)]
    progress = batch_engine.Progress(len(tasks), enabled=not args.json)
    cases, bad = [], []
    for o in batch_engine.run_cases(prepare_row, tasks, opts, ids, progress=progress,
                                    warm_up=warm_up):
        if o.status == "ok":
            cases.append(o.value)
        else:                               # line numbers as a spreadsheet shows them
            bad.append({"line": o.index + 2, "case_id": ids[o.index], "error": o.error})
    if not cases:
        msgs = "; ".join(f"{b['case_id']}: {b['error']}" for b in bad[:3])
        raise InputError(f"{cohort}: no usable case ({msgs})")
    res = calibrate(cases, bad)
    d = res.to_dict()
    d["cohort"] = str(cohort)
    d["grid_mm"] = args.grid_mm
    if args.out:
        params = {"schema": 1, "modality": res.modality, "parameters": res.parameters,
                  "cohort": cohort.name, "n_cases": len(cases),
                  "dice_after": d["dice_after"], "dice_loo": d["dice_loo"],
                  "note": "fitted by irplan calibrate; IRPlan is research software"}
        atomic_write_text(args.out, json.dumps(params, indent=2) + "\n")
    if args.json:
        json.dump(d, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    out = sys.stdout
    (name, value), = res.parameters.items()
    out.write(f"{res.modality} cohort, {len(cases)} cases: {name} = {value:g} "
              f"(default: {res.default['setting']})\n")
    out.write(f"mean Dice before {d['dice_before']:.3f}, after {d['dice_after']:.3f}, "
              f"leave-one-out {d['dice_loo'] if d['dice_loo'] is not None else 'n/a'}\n")
    out.write("case            Dice before  after  LOO   HD95 before  after (mm)  vol ratio "
              "before  after\n")
    for c in res.cases:
        loo = f"{c['dice_loo']:.3f}" if "dice_loo" in c else "  -  "
        out.write(f"{c['case_id'][:15]:15s} {c['dice_before']:10.3f} {c['dice_after']:6.3f} "
                  f"{loo} {c['hd95_before_mm']:11.1f} {c['hd95_after_mm']:6.1f} "
                  f"{c['volume_ratio_before']:15.2f} {c['volume_ratio_after']:6.2f}\n")
    for b in bad:
        out.write(f"bad row (line {b['line']}, {b['case_id']}): {b['error']}\n")
    if args.out:
        out.write(f"parameters written to {args.out}\n")
    out.write("IRPlan is research software, not a certified medical device.\n")
    return 0
