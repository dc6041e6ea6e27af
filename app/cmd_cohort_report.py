"""`irplan cohort-report results.csv --out cohort.pdf [--thumbnails DIR]`: the cohort QC
report (:mod:`irplan.io.cohort_report`) re-made from a finished ``evaluate-batch``
results CSV.

``--thumbnails DIR``: per-case PNGs (:mod:`irplan.io.cohort_thumbnail`), found as
``DIR/<case id>.png`` (characters other than letters, digits, ``-_.`` replaced by ``_``).
Exit codes: 0 written; 2 the results file is unusable (not found, not a text CSV, missing
columns, a status other than ok/error) or the PDF cannot be written.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from irplan.io.cohort_thumbnail import thumbnail_filename
from irplan.planning.errors import InputError

# the results columns the report reads (a subset of evaluate-batch's OUT_COLUMNS)
REPORT_COLUMNS = (
    "case_id", "status", "error", "verdict", "minimal_margin_mm", "tumor_coverage_percent",
    "registration_method", "registration_metric_value", "registration_initial_metric_value",
    "registration_iterations", "rigid_minimal_margin_mm", "warnings",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", metavar="results.csv",
                        help="the results CSV of irplan evaluate-batch")
    parser.add_argument("--out", metavar="cohort.pdf", required=True, help="report PDF")
    parser.add_argument("--thumbnails", metavar="DIR",
                        help="folder with the per-case thumbnails (<case id>.png)")
    parser.add_argument("--title", default=None, help="report title")
    parser.add_argument("--margin-mm", type=float, default=5.0,
                        help="margin goal the cohort was evaluated with (default 5 mm)")


def read_results(path: str | Path) -> list[dict[str, str]]:
    """Rows of an evaluate-batch results CSV. Raises InputError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: results file not found")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(4096)
            if "\x00" in sample:
                raise InputError(f"{p}: not a CSV file (binary content)")
            fh.seek(0)
            reader = csv.DictReader(fh)
            header = [(h or "").strip() for h in (reader.fieldnames or [])]
            missing = [c for c in REPORT_COLUMNS if c not in header]
            if missing:
                raise InputError(f"{p}: not an evaluate-batch results CSV: missing "
                                 f"column(s) {', '.join(missing)}")
            rows = []
            for n, raw in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()
                       if k is not None and not isinstance(v, list)}
                if not any(row.values()):
                    continue
                if row.get("status") not in ("ok", "error"):
                    raise InputError(f"{p}: line {n}: status {row.get('status')!r} is "
                                     "neither 'ok' nor 'error'")
                rows.append(row)
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a CSV file (not UTF-8 text)") from None
    except csv.Error as exc:
        raise InputError(f"{p}: not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not rows:
        raise InputError(f"{p}: no case rows")
    return rows


def find_thumbnails(rows: list[dict[str, str]], folder: str | Path | None) -> dict[str, Path]:
    """case id -> thumbnail PNG in ``folder`` (only those that exist)."""
    if folder is None:
        return {}
    d = Path(folder)
    if not d.is_dir():
        raise InputError(f"{d}: --thumbnails must be an existing folder")
    out = {}
    for r in rows:
        case = r.get("case_id", "")
        q = d / thumbnail_filename(case)
        if case and q.is_file():
            out[case] = q
    return out


def run(args: argparse.Namespace) -> int:
    from irplan.io.cohort_report import DEFAULT_TITLE, write_cohort_report

    rows = read_results(args.results)
    thumbs = find_thumbnails(rows, args.thumbnails)
    if not (0 <= args.margin_mm <= 30):
        raise InputError(f"--margin-mm must be in 0..30 mm, got {args.margin_mm}")
    write_cohort_report(rows, thumbs, Path(args.out), title=args.title or DEFAULT_TITLE,
                        required_margin_mm=args.margin_mm)
    n_ok = sum(r["status"] == "ok" for r in rows)
    print(f"cohort report: {len(rows)} case(s), {n_ok} ok, {len(rows) - n_ok} failed, "
          f"{len(thumbs)} thumbnail(s) -> {args.out}", file=sys.stderr)
    return 0
