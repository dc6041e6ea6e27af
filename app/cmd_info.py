"""`irplan info PATH [--json]`: list the DICOM series under a folder, DICOMDIR or file.

Text mode prints one table row per series (geometry in LPS mm) and its warnings, and lists
skipped files on stderr. ``--json`` prints a JSON list of series objects (the contract:
series_uid, modality, description, size [x,y,z], spacing_mm [x,y,z], origin_lps_mm,
direction (9 numbers, row-major, columns = i/j/k axes in LPS), warnings, ...).
"""

from __future__ import annotations

import argparse
import json
import sys

from irplan.io.dicom_scan import ScanResult, SeriesInfo, scan_dicom
from irplan.planning.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="DICOM folder (searched recursively), DICOMDIR or file")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of series objects instead of a table")
    parser.add_argument("--skipped", action="store_true",
                        help="list every skipped file (text mode lists the first 20)")


def run(args: argparse.Namespace) -> int:
    scan = scan_dicom(args.path)
    if not scan.series:
        reasons = _reason_summary(scan)
        raise InputError(f"{args.path}: no DICOM image series found"
                         + (f" ({reasons})" if reasons else ""))
    if args.json:
        out = [s.to_json() for s in scan.series]
        for obj in out:
            obj["files_skipped"] = len(scan.skipped)
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    sys.stdout.write(format_table(scan.series))
    _print_skipped(scan, limit=None if args.skipped else 20)
    return 0


def format_table(series: list[SeriesInfo]) -> str:
    """A readable fixed-width table, one row per series, warnings indented below."""
    head = ("#", "Modality", "Description", "Phase", "Slices", "Size (x y z)", "Spacing mm",
            "Orient.", "Origin LPS mm")
    rows: list[tuple[str, ...]] = []
    for n, s in enumerate(series, start=1):
        mod = s.modality + (" (localizer)" if s.is_localizer else "")
        rows.append((
            str(n), mod, _clip(s.description or "-", 28), s.phase or "-", str(s.slices),
            "{} {} {}".format(*s.size),
            "{:.3f} {:.3f} {:.3f}".format(*s.spacing_mm),
            s.orientation_name,
            "{:.1f} {:.1f} {:.1f}".format(*s.origin_lps_mm),
        ))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for s, r in zip(series, rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        sub = f" (stack {s.sub_stack + 1})" if s.sub_stack is not None else ""
        lines.append(f"     series {s.series_uid}{sub}, study {s.study_uid}, "
                     f"patient {s.patient_name or '-'} {s.study_date or ''}".rstrip())
        for w in s.warnings:
            lines.append(f"     warning: {w}")
    return "\n".join(lines) + "\n"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "~"


def _print_skipped(scan: ScanResult, limit: int | None) -> None:
    if not scan.skipped:
        return
    print(f"{len(scan.skipped)} file(s) skipped:", file=sys.stderr)
    shown = scan.skipped if limit is None else scan.skipped[:limit]
    for s in shown:
        print(f"  {s.path}: {s.reason}", file=sys.stderr)
    if len(shown) < len(scan.skipped):
        print(f"  ... {len(scan.skipped) - len(shown)} more (use --skipped)", file=sys.stderr)


def _reason_summary(scan: ScanResult) -> str:
    if not scan.skipped:
        return "no files"
    counts: dict[str, int] = {}
    for s in scan.skipped:
        counts[s.reason] = counts.get(s.reason, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    parts = [f"{n} x {r}" if n > 1 else f"{_first_path(scan, r)}: {r}" for r, n in top]
    return f"{len(scan.skipped)} file(s) skipped: " + "; ".join(parts)


def _first_path(scan: ScanResult, reason: str) -> str:
    return str(next(s.path for s in scan.skipped if s.reason == reason))
