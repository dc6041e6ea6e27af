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

Exit codes: 0 every case ok; 1 one or more cases failed (see the status column);
2 the cohort file itself is unusable (missing file or required column).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from irplan.io.csv_safe import safe_row
from irplan.planning.errors import InputError, IrplanError
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


def _progress(i: int, n: int, label: str, t0: float, enabled: bool) -> None:
    if not enabled:
        return
    width = 30
    filled = int(width * i / n) if n else width
    el = time.perf_counter() - t0
    eta = f", ~{el / i * (n - i):.0f} s left" if 0 < i < n else ""
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {i}/{n} {label[:30]:<30}"
                     f" {el:.0f} s{eta}   ")
    if i == n:
        sys.stderr.write("\n")
    sys.stderr.flush()


def evaluate_row(row: dict[str, str], default_register: str) -> tuple[dict[str, Any],
                                                                      dict[str, Any]]:
    """(output CSV row, full JSON) for one cohort row; raises IrplanError on bad input."""
    from irplan.app.cmd_evaluate import evaluate_paths

    if not row.get("case_id"):
        raise InputError("row has no case_id")
    for key in REQUIRED[1:]:
        if not row.get(key) and not (key in ("planning", "followup")
                                     and (row.get("register") or default_register) == "none"):
            raise InputError(f"column '{key}' is empty")
    method = row.get("register") or default_register
    if method not in METHODS:
        raise InputError(f"register '{method}': use one of {', '.join(METHODS)}")
    try:
        margin_mm = float(row["margin_mm"]) if row.get("margin_mm") else 5.0
    except ValueError:
        raise InputError(f"margin_mm '{row['margin_mm']}' is not a number") from None
    if not (math.isfinite(margin_mm) and 0 <= margin_mm <= 30):
        raise InputError(f"margin_mm '{row['margin_mm']}' must be a number in 0..30 mm")
    res, _p, _f, _z = evaluate_paths(row.get("planning") or None, row.get("followup") or None,
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
    return out, d


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


def run(args: argparse.Namespace) -> int:
    from irplan.io.atomic_write import atomic_write_text, check_output_path

    rows = read_cohort(args.cohort)
    out_path = check_output_path(args.out)
    details = Path(args.details) if args.details else None
    if details:
        if details.exists() and not details.is_dir():
            raise InputError(f"{details}: --details must be a folder, it is a file")
        try:
            details.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{details}: cannot create the folder "
                             f"({exc.strerror or exc})") from None
    show = not args.no_progress
    n_fail = 0
    t0 = time.perf_counter()
    used: set[str] = set()
    seen_ids: dict[str, int] = {}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=OUT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for i, row in enumerate(rows):
        case = row.get("case_id") or f"row {i + 2}"
        _progress(i, len(rows), case, t0, show)
        t_case = time.perf_counter()
        rec: dict[str, Any] = {"case_id": row.get("case_id", "")}
        dup_note = None
        if row.get("case_id"):
            if row["case_id"] in seen_ids:
                dup_note = (f"duplicate case_id {row['case_id']!r} (also row "
                            f"{seen_ids[row['case_id']]})")
            seen_ids.setdefault(row["case_id"], i + 2)
        try:
            values, full = evaluate_row(row, args.register)
            rec.update(values)
            rec["status"] = "ok"
            if details:
                name, note = details_name(case, used)
                atomic_write_text(details / name, json.dumps(full, indent=1) + "\n")
                notes = [n for n in (dup_note, note) if n]
                if notes:
                    rec["warnings"] = " | ".join(notes + ([rec["warnings"]]
                                                          if rec.get("warnings") else []))
                    sys.stderr.write(f"\n{case}: note: {'; '.join(notes)}\n")
        except IrplanError as exc:
            rec["status"], rec["error"] = "error", str(exc)
            n_fail += 1
        except Exception as exc:  # noqa: BLE001 - one bad case must not stop a cohort
            if os.environ.get("IRPLAN_DEBUG"):
                traceback.print_exc()
            rec["status"] = "error"
            rec["error"] = f"internal error: {type(exc).__name__}: {exc}"
            n_fail += 1
        rec["elapsed_s"] = round(time.perf_counter() - t_case, 2)
        writer.writerow(safe_row(rec))  # no cell a spreadsheet runs as a formula
        if rec["status"] == "error" and show:
            sys.stderr.write(f"\n{case}: {rec['error']}\n")
    _progress(len(rows), len(rows), "done", t0, show)
    atomic_write_text(out_path, buf.getvalue(), newline="")
    ok = len(rows) - n_fail
    print(f"{ok}/{len(rows)} case(s) evaluated, {n_fail} failed -> {out_path}",
          file=sys.stderr)
    return 1 if n_fail else 0
