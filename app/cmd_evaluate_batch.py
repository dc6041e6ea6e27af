"""`irplan evaluate-batch cohort.csv --out results.csv`: evaluate a whole cohort.

Input CSV, one row per lesion (header required; extra columns are ignored):

    case_id, planning, followup, tumor, ablation   required
    register (none|rigid|deformable), liver, plan_zone, margin_mm   optional

Paths may be relative: they are taken relative to the CSV file's folder. An empty
``register`` uses ``--register`` (default rigid).

Output CSV, one row per input row in the same order: case_id, status (ok/error), error
(the one-line message), verdict, minimal_margin_mm, tumor_coverage_percent,
residual_tumor_ml, ... registration figures, predicted-vs-achieved figures when a
plan_zone is given, elapsed_s. A case that fails is reported and the batch continues.
Text cells that a spreadsheet would run as a formula (starting with = + - @, tab, CR) get
a leading ``'`` (OWASP CSV injection rule); numbers stay numeric.
A progress bar goes to stderr. ``--details DIR`` also writes each case's full JSON.

Parallel and resumable (issue 18; :mod:`irplan.app.batch_engine`): ``--workers N`` runs
the cases on a local Dask cluster of N worker processes, ``--scheduler tcp://HOST:PORT``
on an existing one; ``--timeout-s`` stops a case that runs too long (its worker is
restarted). A case that crashes its worker, runs out of memory or times out is an error
row; the batch goes on. The rows and numbers are the same whatever the number of workers
(one compute thread per case in every mode; only elapsed_s differs). Each finished case
is journalled in ``RESULTS.csv.journal/`` (:mod:`irplan.app.batch_journal`, one JSON per
content key); ``--resume`` takes the cases already finished with the same input files and
options from there instead of computing them again. ``--report cohort.pdf`` also writes
the cohort QC report (:mod:`irplan.io.cohort_report`) with a thumbnail per case
(:mod:`irplan.io.cohort_thumbnail`, written by the worker into ``cohort.pdf.thumbnails/``).

Exit codes: 0 every case ok; 1 one or more cases failed (see the status column);
2 the cohort file itself is unusable (missing file or required column).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

from irplan.app import batch_engine
from irplan.io.csv_safe import safe_row
from irplan.planning.errors import InputError
from irplan.planning.registration import METHODS

REQUIRED = ("case_id", "planning", "followup", "tumor", "ablation")
OPTIONAL = ("register", "liver", "plan_zone", "margin_mm")
OUT_COLUMNS = (
    "case_id", "status", "error", "verdict", "minimal_margin_mm", "tumor_coverage_percent",
    "residual_tumor_ml", "tumor_volume_ml", "ablation_zone_volume_ml",
    "shell_coverage_percent", "mam_l_mm", "mam_p_mm", "mam_s_mm", "residual_direction",
    "registration_method", "registration_metric_value", "registration_initial_metric_value",
    "registration_iterations", "rigid_minimal_margin_mm", "dice", "hd95_mm",
    "predicted_volume_ml", "achieved_volume_ml", "warnings", "elapsed_s",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("cohort.csv columns: case_id, planning, followup, tumor, ablation "
                     "(required); register, liver, plan_zone, margin_mm (optional). Relative "
                     "paths are relative to the CSV's folder. Exit code 0 when every case is "
                     "ok, 1 when one or more failed (status/error columns), 2 when the "
                     "cohort file itself is unusable.")
    parser.add_argument("cohort", metavar="cohort.csv",
                        help="one row per lesion (columns below)")
    parser.add_argument("--out", metavar="results.csv", required=True,
                        help="results CSV (one row per input row)")
    parser.add_argument("--register", choices=METHODS, default="rigid",
                        help="registration for rows without a 'register' value")
    parser.add_argument("--details", metavar="DIR",
                        help="also write each case's full result as DIR/<case_id>.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    batch_engine.add_engine_arguments(parser, resume_help="take cases already finished with the same "
                         "input files and options from RESULTS.csv.journal/ (written as "
                         "cases finish) instead of computing them again")
    parser.add_argument("--report", metavar="cohort.pdf",
                        help="also write the cohort QC report (PDF) with a thumbnail per "
                        "case (in cohort.pdf.thumbnails/)")


def read_cohort(path: str | Path) -> list[dict[str, str]]:
    """Rows of the cohort CSV with paths made absolute. Raises InputError."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: cohort file not found")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise InputError(f"{p}: missing column(s) {', '.join(missing)} "
                                 f"(required: {', '.join(REQUIRED)})")
            rows = []
            for raw in reader:
                row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()
                       if k is not None}
                if not any(row.values()):
                    continue
                rows.append(row)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{p}: cannot read cohort CSV ({exc})") from None
    base = p.resolve().parent
    for row in rows:
        for key in ("planning", "followup", "tumor", "ablation", "liver", "plan_zone"):
            if row.get(key):
                q = Path(row[key]).expanduser()
                row[key] = str(q if q.is_absolute() else base / q)
    if not rows:
        raise InputError(f"{p}: no case rows")
    return rows


def evaluate_row(row: dict[str, str], default_register: str) -> tuple[dict[str, Any],
                                                                      dict[str, Any]]:
    """(output CSV row, full JSON) for one cohort row; raises IrplanError on bad input."""
    out, d, _res, _p_ct = _evaluate(row, default_register)
    return out, d


def _method_and_margin(row: dict[str, str], default_register: str) -> tuple[str, float]:
    method = row.get("register") or default_register
    if method not in METHODS:
        raise InputError(f"register '{method}': use one of {', '.join(METHODS)}")
    try:
        margin_mm = float(row["margin_mm"]) if row.get("margin_mm") else 5.0
    except ValueError:
        raise InputError(f"margin_mm '{row['margin_mm']}' is not a number") from None
    if not (math.isfinite(margin_mm) and 0 <= margin_mm <= 30):
        raise InputError(f"margin_mm '{row['margin_mm']}' must be a number in 0..30 mm")
    return method, margin_mm


def _evaluate(row: dict[str, str], default_register: str):  # noqa: ANN202
    """(output CSV values, full JSON, EvaluationResult, planning CT or None)."""
    from irplan.app.cmd_evaluate import evaluate_paths

    if not row.get("case_id"):
        raise InputError("row has no case_id")
    for key in REQUIRED[1:]:
        if not row.get(key) and not (key in ("planning", "followup")
                                     and (row.get("register") or default_register) == "none"):
            raise InputError(f"column '{key}' is empty")
    method, margin_mm = _method_and_margin(row, default_register)
    res, p_ct, _f, _z = evaluate_paths(row.get("planning") or None, row.get("followup") or None,
                                 row["tumor"], row["ablation"], method,
                                 row.get("liver") or None, row.get("plan_zone") or None,
                                 None, margin_mm)
    d = res.to_dict()
    reg = d["registration"]
    pva = d.get("predicted_vs_achieved") or {}
    out = {
        "verdict": d["verdict"],
        "minimal_margin_mm": d["minimal_margin_mm"],
        "tumor_coverage_percent": d["tumor_coverage_percent"],
        "residual_tumor_ml": d["residual_tumor_ml"],
        "tumor_volume_ml": d["tumor_volume_ml"],
        "ablation_zone_volume_ml": d["ablation_zone_volume_ml"],
        "shell_coverage_percent": d["shell_coverage_percent"],
        "mam_l_mm": d["mam_point_lps_mm"][0],
        "mam_p_mm": d["mam_point_lps_mm"][1],
        "mam_s_mm": d["mam_point_lps_mm"][2],
        "residual_direction": (d["residual"] or {}).get("direction_from_tumor_center", ""),
        "registration_method": reg["method"],
        "registration_metric_value": reg.get("metric_value"),
        "registration_initial_metric_value": reg.get("initial_metric_value"),
        "registration_iterations": reg.get("iterations"),
        "rigid_minimal_margin_mm": (d.get("rigid_comparison") or {}).get("minimal_margin_mm"),
        "dice": pva.get("dice"),
        "hd95_mm": pva.get("hd95_mm"),
        "predicted_volume_ml": pva.get("predicted_volume_ml"),
        "achieved_volume_ml": pva.get("achieved_volume_ml"),
        "warnings": " | ".join(d["warnings"]),
    }
    return out, d, res, p_ct


def evaluate_case(case: tuple[dict[str, str], str, str | None]
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The batch engine's task for one row: ``case`` = (row, default register, thumbnail
    PNG path or None). (CSV values, full JSON); a thumbnail that cannot be drawn is a
    warning of the row, not an error."""
    row, default_register, thumb = case
    out, d, res, p_ct = _evaluate(row, default_register)
    if thumb:
        try:
            from irplan.app.cmd_evaluate import load_mask
            from irplan.io.cohort_thumbnail import write_case_thumbnail

            write_case_thumbnail(res, p_ct, load_mask(row["tumor"], "tumour"), Path(thumb))
        except Exception as exc:  # noqa: BLE001 - the numbers stand without the picture
            note = f"no QC thumbnail ({type(exc).__name__}: {' '.join(str(exc).split())})"
            out["warnings"] = " | ".join(w for w in (out["warnings"], note) if w)
    return out, d


def warm_up() -> None:
    """The imports of a case, done once per worker process before its first case."""
    import irplan.app.cmd_evaluate  # noqa: F401
    import irplan.io.cohort_thumbnail  # noqa: F401
    import irplan.planning.evaluation  # noqa: F401


def case_key(row: dict[str, str], default_register: str,
             cache: dict[str, bytes | None] | None = None) -> str | None:
    """The content key of a row for ``--resume`` (:func:`batch_journal.input_key`): the
    input files' bytes and the options that change the result; None when it cannot be
    keyed (an input that is not a file or folder) or the row is invalid."""
    from irplan.app.batch_journal import input_key

    try:
        method, margin_mm = _method_and_margin(row, default_register)
    except InputError:
        return None
    files = {k: row.get(k) or None for k in ("planning", "followup", "tumor", "ablation",
                                              "liver", "plan_zone")}
    return input_key(files, {"command": "evaluate-batch", "register": method,
                             "margin_mm": margin_mm}, cache)


def details_name(case: str, used: set[str]) -> tuple[str, str | None]:
    """File name for a case's ``--details`` JSON, unique in ``used`` (compared without
    case, as some file systems do). Returns (name, note): a duplicate or colliding
    case_id gets ``<id>-2.json``, ``<id>-3.json``, ... and a note saying so."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in case).strip(".") or "case"
    name, n = f"{safe}.json", 1
    while name.lower() in used:
        n += 1
        name = f"{safe}-{n}.json"
    used.add(name.lower())
    note = None if n == 1 else (f"case_id {case!r} repeats an earlier row's (or its file "
                                f"name): details written to {name}")
    return name, note


def _prepare_folder(path: Path, flag: str) -> Path:
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: {flag} must be a folder, it is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create the folder ({exc.strerror or exc})") from None
    return path


def run(args: argparse.Namespace) -> int:
    from irplan.app.batch_engine import Outcome, Progress, run_cases
    from irplan.app.batch_journal import Journal
    from irplan.io.atomic_write import atomic_write_text, check_output_path

    rows = read_cohort(args.cohort)
    out_path = check_output_path(args.out)
    opts = batch_engine.engine_options(args)
    details = _prepare_folder(Path(args.details), "--details") if args.details else None
    report = check_output_path(args.report) if args.report else None
    thumbs = (_prepare_folder(report.with_name(report.name + ".thumbnails"), "--report")
              if report else None)
    show = not args.no_progress
    labels = [row.get("case_id") or f"row {i + 2}" for i, row in enumerate(rows)]
    journal = Journal(out_path.with_name(out_path.name + ".journal"))
    if show:
        sys.stderr.write(f"hashing the inputs of {len(rows)} case(s) for the journal ...\r")
        sys.stderr.flush()
    digests: dict[str, bytes | None] = {}
    keys = [case_key(row, args.register, digests) for row in rows]
    if show:
        sys.stderr.write("\r" + " " * 60 + "\r")
    thumb_of = {}
    if thumbs:
        from irplan.io.cohort_thumbnail import thumbnail_filename

        thumb_of = {i: thumbs / thumbnail_filename(labels[i]) for i in range(len(rows))}
    outcomes: dict[int, Outcome] = {}
    todo: list[int] = []
    for i, key in enumerate(keys):
        rec = journal.get(key) if args.resume else None
        # with --report, an ok case is reused only when its thumbnail is there too
        if rec is not None and (not thumbs or rec.get("status") != "ok"
                                or thumb_of[i].is_file()):
            outcomes[i] = Outcome(i, rec["status"], (rec.get("values"), rec.get("full")),
                                  rec.get("error", ""), rec.get("kind", ""),
                                  float(rec.get("elapsed_s") or 0.0))
        else:
            todo.append(i)

    def journalled(o: Outcome) -> None:
        i = todo[o.index]
        if o.status == "ok" or o.kind == "input":   # not crashes/timeouts: worth a retry
            values, full = o.value if o.status == "ok" else (None, None)
            journal.put(keys[i], {"status": o.status, "values": values, "full": full,
                                  "error": o.error, "kind": o.kind,
                                  "elapsed_s": round(o.elapsed_s, 2)})

    if show and args.resume:
        sys.stderr.write(f"{len(outcomes)} case(s) taken from {journal.folder.name}/, "
                         f"{len(todo)} to compute ({opts.describe()})\n")
    progress = Progress(len(todo), enabled=show and bool(todo))
    cases = [(rows[i], args.register, str(thumb_of[i]) if thumbs else None) for i in todo]
    for o in run_cases(evaluate_case, cases, opts, [labels[i] for i in todo],
                       on_outcome=journalled, progress=progress, warm_up=warm_up):
        outcomes[todo[o.index]] = Outcome(todo[o.index], o.status, o.value, o.error, o.kind,
                                          o.elapsed_s)
    recs = _assemble(rows, outcomes, details)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=OUT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for rec in recs:
        writer.writerow(safe_row(rec))  # no cell a spreadsheet runs as a formula
    atomic_write_text(out_path, buf.getvalue(), newline="")
    n_fail = sum(r["status"] != "ok" for r in recs)
    ok = len(rows) - n_fail
    reused = len(rows) - len(todo)
    print(f"{ok}/{len(rows)} case(s) evaluated, {n_fail} failed -> {out_path} "
          f"({len(todo)} computed, {reused} taken from the journal)", file=sys.stderr)
    if report:
        _write_report(recs, thumb_of, report, rows)
        print(f"cohort QC report -> {report}", file=sys.stderr)
    return 1 if n_fail else 0


def _assemble(rows: list[dict[str, str]], outcomes: dict, details: Path | None
              ) -> list[dict[str, Any]]:
    """The output rows in cohort order (duplicate-id notes, --details files)."""
    from irplan.io.atomic_write import atomic_write_text

    used: set[str] = set()
    seen_ids: dict[str, int] = {}
    recs = []
    for i, row in enumerate(rows):
        o = outcomes[i]
        case = row.get("case_id") or f"row {i + 2}"
        rec: dict[str, Any] = {"case_id": row.get("case_id", "")}
        dup_note = None
        if row.get("case_id"):
            if row["case_id"] in seen_ids:
                dup_note = (f"duplicate case_id {row['case_id']!r} (also row "
                            f"{seen_ids[row['case_id']]})")
            seen_ids.setdefault(row["case_id"], i + 2)
        if o.status == "ok":
            values, full = o.value
            rec.update(values)
            rec["status"] = "ok"
            if details:
                name, note = details_name(case, used)
                atomic_write_text(details / name, json.dumps(full, indent=1) + "\n")
                notes = [n for n in (dup_note, note) if n]
                if notes:
                    rec["warnings"] = " | ".join(notes + ([rec["warnings"]]
                                                          if rec.get("warnings") else []))
                    sys.stderr.write(f"{case}: note: {'; '.join(notes)}\n")
        else:
            rec["status"], rec["error"] = "error", o.error
        rec["elapsed_s"] = round(o.elapsed_s, 2)
        recs.append(rec)
    return recs


def _write_report(recs: list[dict[str, Any]], thumb_of: dict[int, Path], report: Path,
                  rows: list[dict[str, str]]) -> None:
    from irplan.io.cohort_report import write_cohort_report

    thumbs = {r["case_id"]: thumb_of[i] for i, r in enumerate(recs)
              if r["status"] == "ok" and r["case_id"] and thumb_of[i].is_file()}
    margins = {float(row["margin_mm"]) for row in rows if row.get("margin_mm")}
    kw = {"required_margin_mm": margins.pop()} if len(margins) == 1 else {}
    write_cohort_report(recs, thumbs, report, **kw)
