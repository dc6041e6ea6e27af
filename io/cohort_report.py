"""The cohort QC report (PDF): what a reviewer checks before trusting a cohort's numbers.

Input: the rows of ``irplan evaluate-batch`` (``OUT_COLUMNS`` of
:mod:`irplan.app.cmd_evaluate_batch`; values as read back from the results CSV, text, or
as computed, numbers/None) and an optional thumbnail per case id
(:mod:`irplan.io.cohort_thumbnail`). Sections:

* summary: cases ok / failed, verdict counts per technical-efficacy category (Ahmed et al.
  2014 terms as :data:`irplan.planning.evaluation.VERDICTS` names them), verdicts near a
  threshold, registration QC flags;
* minimal-ablative-margin (MAM) histogram, 1 mm bins, lines at 0 mm and the goal;
* rigid vs deformable Bland-Altman plot (deformable - rigid MAM against their mean; mean
  difference and 95 % limits of agreement = mean +/- 1.96 SD (sample SD), n stated);
* per-case table: verdict, MAM, coverage, registration figure of merit (Mattes MI before
  -> after, iterations) and a QC flag (:func:`registration_flag`);
* thumbnail grid (axial slice through the MAM point) with case ids;
* failures with their reasons.

Privacy: case ids are printed as given (the trial's pseudonyms); file paths inside error
messages are cut to the file name; nothing is read from DICOM headers.
The research-use notice is in every page's header. The PDF is written atomically.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from reportlab.graphics.shapes import Circle, Drawing, Group, Line, Rect, String
from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import (
    CondPageBreak,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from irplan.io.atomic_write import atomic_write, check_output_path
from irplan.io.report_content import NOTICE
from irplan.io.report_pdf import MARGIN, PAGE, _esc, _NumberedCanvas, _styles, _table
from irplan.planning.evaluation import (
    DEFAULT_REQUIRED_MARGIN_MM,
    REGISTRATION_UNCERTAINTY_MM,
    VERDICTS,
)

DEFAULT_TITLE = "IRPlan cohort QC report"
VERDICT_ORDER = ("complete_margin_ok", "complete_margin_at_risk", "incomplete")
SHORT_VERDICT = {"complete_margin_ok": "complete, \u2265 goal",
                 "complete_margin_at_risk": "complete, at risk",
                 "incomplete": "incomplete"}
# QC heuristics for the registration figure of merit (Mattes MI, negative, lower = better;
# planning/registration.py). Not clinical thresholds: they pick cases to look at.
MIN_RIGID_GAIN = 0.02        # rigid: (initial - final) / |initial| below 2 %: barely improved
MAX_DEFORMABLE_LOSS = 0.02   # deformable (starts at the rigid result): worse by > 2 %
RIGID_DEFORMABLE_MM = 1.0    # |deformable - rigid MAM| above this (as evaluation warns)
RED = colors.HexColor("#d62728")
ORANGE = colors.HexColor("#ff8c00")
GREEN = colors.HexColor("#2ca02c")
FLAG_BG = colors.HexColor("#fde9c4")
FAIL_BG = colors.HexColor("#f8d0d0")
# a path: starts at a root, drive, share, ~/ or ./ (not inside a word: "V/cm" stays), runs
# (spaces allowed) to its last separator before a colon, quote or bracket; group 1 = name
_PATH = re.compile(r"(?<![\w.])(?:[A-Za-z]:[\\/]|\\\\|~?/(?=\S)|\.\.?/)"
                   r"(?:[^:'\"()\n]*[/\\])?([^\s/\\:'\"(),;]*)")


# ----------------------------------------------------------------------------- values
def num(value: Any) -> float | None:
    """A finite float from a CSV cell or a number; None for empty/NaN/text."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(str(value).strip().lstrip("'")) if isinstance(value, str) else float(value)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def text(value: Any) -> str:
    """A CSV text cell as written: the leading ``'`` of a formula-looking cell removed."""
    s = "" if value is None else str(value)
    if s.startswith("'") and s[1:2] in ("=", "+", "-", "@", "\t", "\r"):
        s = s[1:]
    return s


def strip_paths(message: str) -> str:
    """``message`` with every file path cut to its last component (no folder names)."""
    return _PATH.sub(lambda m: m.group(1) or "(folder)", message)


def is_ok(row: Mapping[str, Any]) -> bool:
    return text(row.get("status")).strip() == "ok"


# ----------------------------------------------------------------------------- figures
def bland_altman(pairs: Sequence[tuple[float, float]]) -> dict[str, float] | None:
    """Bland-Altman of (rigid, deformable) MAM pairs (mm): mean difference (deformable -
    rigid), sample SD, 95 % limits of agreement (mean +/- 1.96 SD); None when n < 2."""
    if len(pairs) < 2:
        return None
    a = np.asarray(pairs, float)
    d = a[:, 1] - a[:, 0]
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    return {"n": len(d), "mean_mm": mean, "sd_mm": sd, "lower_mm": mean - 1.96 * sd,
            "upper_mm": mean + 1.96 * sd}


def rigid_deformable_pairs(rows: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(rigid MAM, deformable MAM) mm of the ok rows where both exist."""
    out = []
    for r in rows:
        rig, dfm = num(r.get("rigid_minimal_margin_mm")), num(r.get("minimal_margin_mm"))
        if is_ok(r) and rig is not None and dfm is not None:
            out.append((rig, dfm))
    return out


def registration_flag(row: Mapping[str, Any]) -> str:
    """The registration QC flag of one row ("" when nothing to look at):
    failed; no figure of merit; rigid barely improved (< 2 % of the start MI) or worse
    than its start; deformable worse than its rigid start by > 2 %; rigid and deformable
    MAM apart by > 1 mm."""
    method = text(row.get("registration_method")).strip()
    if not is_ok(row):
        err = text(row.get("error")).lower()
        return "registration failed" if "registration" in err else ""
    if method in ("", "none"):
        return ""
    ini, fin = num(row.get("registration_initial_metric_value")), num(
        row.get("registration_metric_value"))
    flags = []
    if ini is None or fin is None:
        flags.append("no figure of merit")
    else:
        rel = (ini - fin) / abs(ini) if ini else 0.0  # > 0: improved
        if method == "deformable":
            if rel < -MAX_DEFORMABLE_LOSS:
                flags.append(f"deformable worse than rigid ({-100 * rel:.1f} %)")
        elif rel < 0:
            flags.append(f"metric worse than start ({-100 * rel:.1f} %)")
        elif rel < MIN_RIGID_GAIN:
            flags.append(f"barely improved ({100 * rel:.1f} %)")
    if method == "deformable":
        rig, dfm = num(row.get("rigid_minimal_margin_mm")), num(row.get("minimal_margin_mm"))
        if rig is not None and dfm is not None and abs(dfm - rig) > RIGID_DEFORMABLE_MM:
            flags.append(f"MAM deformable \u2212 rigid {dfm - rig:+.1f} mm")
    return "; ".join(flags)


def near_threshold(row: Mapping[str, Any]) -> bool:
    """True when the evaluation flagged the verdict as uncertain (MAM within the mean
    registration error of a threshold)."""
    return "verdict is uncertain" in text(row.get("warnings"))


# ----------------------------------------------------------------------------- drawing
def _ticks(lo: float, hi: float, target: int = 8) -> list[float]:
    span = max(hi - lo, 1e-9)
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 6) for i in range(int((hi - start) / step + 1e-9) + 1)]


class _Plot:
    """Linear data -> drawing coordinates inside a framed plot area."""

    def __init__(self, d: Drawing, box: tuple[float, float, float, float],
                 xr: tuple[float, float], yr: tuple[float, float], font: str) -> None:
        self.d, (self.x0, self.y0, self.w, self.h), self.xr, self.yr = d, box, xr, yr
        self.font = font
        d.add(Rect(self.x0, self.y0, self.w, self.h, fillColor=None,
                   strokeColor=colors.HexColor("#555555"), strokeWidth=0.6))

    def x(self, v: float) -> float:
        return self.x0 + (v - self.xr[0]) / (self.xr[1] - self.xr[0]) * self.w

    def y(self, v: float) -> float:
        return self.y0 + (v - self.yr[0]) / (self.yr[1] - self.yr[0]) * self.h

    def axes(self, xt: list[float], yt: list[float], xlabel: str, ylabel: str,
             fmt: str = "{:g}") -> None:
        grey = colors.HexColor("#555555")
        for v in xt:
            self.d.add(Line(self.x(v), self.y0, self.x(v), self.y0 - 3, strokeColor=grey))
            self.d.add(String(self.x(v), self.y0 - 11, fmt.format(v), fontName=self.font,
                              fontSize=7, textAnchor="middle"))
        for v in yt:
            self.d.add(Line(self.x0, self.y(v), self.x0 - 3, self.y(v), strokeColor=grey))
            self.d.add(String(self.x0 - 5, self.y(v) - 2.5, fmt.format(v), fontName=self.font,
                              fontSize=7, textAnchor="end"))
        self.d.add(String(self.x0 + self.w / 2, self.y0 - 22, xlabel, fontName=self.font,
                          fontSize=8, textAnchor="middle"))
        lab = String(0, 0, ylabel, fontName=self.font, fontSize=8, textAnchor="middle")
        g = Group(lab)
        g.rotate(90)
        g.translate(self.y0 + self.h / 2, -(self.x0 - 26))
        self.d.add(g)

    def hline(self, v: float, color: colors.Color, label: str, dash: bool = True) -> None:
        self.d.add(Line(self.x0, self.y(v), self.x0 + self.w, self.y(v), strokeColor=color,
                        strokeWidth=0.9, strokeDashArray=[3, 2] if dash else None))
        self.d.add(String(self.x0 + self.w + 3, self.y(v) - 2.5, label, fontName=self.font,
                          fontSize=7, fillColor=color))

    def vline(self, v: float, color: colors.Color, label: str) -> None:
        self.d.add(Line(self.x(v), self.y0, self.x(v), self.y0 + self.h, strokeColor=color,
                        strokeWidth=1.0, strokeDashArray=[3, 2]))
        self.d.add(String(self.x(v) + 2, self.y0 + self.h - 9, label, fontName=self.font,
                          fontSize=7, fillColor=color))


def margin_histogram(margins_mm: Sequence[float], required_mm: float, width: float,
                     font: str) -> Drawing:
    """Counts of MAM in 1 mm bins [k, k+1) mm; bars red < 0, orange < goal, green."""
    d = Drawing(width, 62 * mm)
    lo = min(math.floor(min(margins_mm)), -1)
    hi = max(math.floor(max(margins_mm)) + 1, int(math.ceil(required_mm)) + 1)
    edges = np.arange(lo, hi + 1)
    counts, _ = np.histogram(np.clip(margins_mm, lo, hi - 1e-9), bins=edges)
    top = max(int(counts.max()), 1)
    p = _Plot(d, (16 * mm, 12 * mm, width - 30 * mm, 46 * mm), (lo, hi), (0, top * 1.15),
              font)
    for k, c in zip(edges[:-1], counts, strict=True):
        if not c:
            continue
        col = RED if k < 0 else ORANGE if k < required_mm else GREEN
        d.add(Rect(p.x(k) + 0.4, p.y(0), p.x(k + 1) - p.x(k) - 0.8, p.y(c) - p.y(0),
                   fillColor=col, strokeColor=colors.white, strokeWidth=0.3))
        d.add(String(p.x(k + 0.5), p.y(c) + 2, str(int(c)), fontName=font, fontSize=6.5,
                     textAnchor="middle"))
    yt = [v for v in _ticks(0, top, 5) if float(v).is_integer()]
    p.axes(_ticks(lo, hi, 12), yt, "minimal ablative margin (mm), 1 mm bins", "cases")
    p.vline(0.0, RED, "0 mm")
    p.vline(required_mm, GREEN, f"{required_mm:g} mm goal")
    return d


def bland_altman_plot(pairs: Sequence[tuple[float, float]], ba: Mapping[str, float],
                      width: float, font: str) -> Drawing:
    """Deformable - rigid MAM (mm) against their mean, mean difference and limits."""
    d = Drawing(width, 66 * mm)
    a = np.asarray(pairs, float)
    mean = a.mean(axis=1)
    diff = a[:, 1] - a[:, 0]
    ys = np.concatenate([diff, [ba["lower_mm"], ba["upper_mm"], 0.0]])
    ypad = max(0.5, 0.12 * float(ys.max() - ys.min()))
    xpad = max(1.0, 0.08 * float(mean.max() - mean.min()))
    xr = (float(mean.min()) - xpad, float(mean.max()) + xpad)
    yr = (float(ys.min()) - ypad, float(ys.max()) + ypad)
    p = _Plot(d, (16 * mm, 14 * mm, width - 52 * mm, 48 * mm), xr, yr, font)
    p.axes(_ticks(*xr, 8), _ticks(*yr, 6), "mean of rigid and deformable MAM (mm)",
           "deformable \u2212 rigid (mm)")
    grey = colors.HexColor("#999999")
    if yr[0] < 0 < yr[1]:
        d.add(Line(p.x0, p.y(0), p.x0 + p.w, p.y(0), strokeColor=grey, strokeWidth=0.4))
    p.hline(ba["upper_mm"], ORANGE, f"+1.96 SD {ba['upper_mm']:+.2f}")
    p.hline(ba["mean_mm"], colors.HexColor("#1f4e79"), f"mean {ba['mean_mm']:+.2f}",
            dash=False)
    p.hline(ba["lower_mm"], ORANGE, f"\u22121.96 SD {ba['lower_mm']:+.2f}")
    for x, y in zip(mean, diff, strict=True):
        d.add(Circle(p.x(x), p.y(y), 2.2, fillColor=colors.HexColor("#1f4e79"),
                     strokeColor=colors.white, strokeWidth=0.4))
    return d


# ----------------------------------------------------------------------------- report
def _fmt(v: float | None, digits: int = 1, sign: bool = False) -> str:
    if v is None:
        return "\u2014"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def _fom(row: Mapping[str, Any]) -> str:
    """Registration figure of merit: method, MI before -> after, iterations."""
    method = text(row.get("registration_method")).strip() or "\u2014"
    if method == "none":
        return "none"
    ini, fin = num(row.get("registration_initial_metric_value")), num(
        row.get("registration_metric_value"))
    it = num(row.get("registration_iterations"))
    its = f" ({int(it)} it.)" if it is not None else ""
    return f"{method} {_fmt(ini, 3)} \u2192 {_fmt(fin, 3)}{its}"


def _verdict_label(key: str, required_mm: float) -> str:
    return VERDICTS[key].format(m=required_mm) if key in VERDICTS else key


def write_cohort_report(rows: list[dict], thumbnails: dict[str, Path], out_path: Path,
                        title: str = DEFAULT_TITLE,
                        required_margin_mm: float = DEFAULT_REQUIRED_MARGIN_MM) -> None:
    """Write the cohort QC report PDF (see the module doc) atomically to ``out_path``.

    ``rows``: evaluate-batch result rows (dicts keyed by its column names, in cohort order);
    ``thumbnails``: case id -> PNG (missing files are listed, not fatal);
    ``required_margin_mm``: the margin goal the cohort was evaluated with (verdict names,
    histogram line). Raises InputError when the PDF cannot be written."""
    out = check_output_path(out_path)
    st = _styles()
    reg_font = st["_reg"]
    width = PAGE[0] - 2 * MARGIN
    created = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    ok_rows = [r for r in rows if is_ok(r)]
    failed = [r for r in rows if not is_ok(r)]
    story: list[Any] = [Paragraph(_esc(title), st["title"]),
                        Paragraph(f"created {created} &nbsp;\u2022&nbsp; "
                                  f"{len(rows)} case(s) &nbsp;\u2022&nbsp; margin goal "
                                  f"{required_margin_mm:g} mm", st["body"])]

    # ---- summary
    story.append(Paragraph("Summary", st["h2"]))
    counts = {k: 0 for k in VERDICT_ORDER}
    other: dict[str, int] = {}
    for r in ok_rows:
        v = text(r.get("verdict")).strip()
        if v in counts:
            counts[v] += 1
        else:
            other[v or "(none)"] = other.get(v or "(none)", 0) + 1
    n_ok = len(ok_rows)

    def pct(n: int) -> str:
        return f"{100.0 * n / n_ok:.0f} %" if n_ok else "\u2014"

    srows: list[list[Any]] = [["", "verdict (CSV)", "Cases", "Share"],
                              ["Cases in the cohort", "", str(len(rows)), ""],
                              ["Evaluated (status ok)", "", str(n_ok), ""],
                              ["Failed (status error)", "", str(len(failed)), ""]]
    for k in VERDICT_ORDER:
        srows.append([_verdict_label(k, required_margin_mm), k, str(counts[k]),
                      pct(counts[k])])
    for k, n in other.items():
        srows.append(["not a known category", k, str(n), pct(n)])
    n_unc = sum(near_threshold(r) for r in ok_rows)
    n_flag = sum(bool(registration_flag(r)) for r in rows)
    srows.append([f"Verdict uncertain: MAM within {REGISTRATION_UNCERTAINTY_MM} mm of 0 mm "
                  f"or the goal", "", str(n_unc), pct(n_unc)])
    srows.append(["Registration QC flag (see the per-case table)", "", str(n_flag), ""])
    story.append(_table(srows, [106 * mm, 40 * mm, 14 * mm, width - 160 * mm], st))
    story.append(Paragraph(
        "Share: of the evaluated (ok) cases. Technical-efficacy categories as Ahmed et "
        "al. 2014 (Radiology 273:241) name them; "
        f"margin goal {required_margin_mm:g} mm (ACCLAIM; Laimer 2020/2024). Uncertain: the "
        "mean target registration error of clinical margin software is 1.62 mm (Diagn "
        "Interv Imaging 2022;103:240).", st["small"]))

    # ---- histogram
    story.append(CondPageBreak(75 * mm))
    story.append(Paragraph("Minimal ablative margin", st["h2"]))
    margins = [m for m in (num(r.get("minimal_margin_mm")) for r in ok_rows) if m is not None]
    if margins:
        a = np.asarray(margins)
        story.append(margin_histogram(margins, required_margin_mm, width, reg_font))
        story.append(Paragraph(
            f"n = {len(a)}; median {np.median(a):+.1f} mm, range {a.min():+.1f} to "
            f"{a.max():+.1f} mm. Bins [k, k+1) mm; red: residual tumour (MAM &lt; 0), "
            f"orange: 0 to {required_margin_mm:g} mm, green: \u2265 {required_margin_mm:g} "
            "mm.", st["small"]))
    else:
        story.append(Paragraph("No evaluated case with a margin.", st["status"]))

    # ---- Bland-Altman
    story.append(CondPageBreak(80 * mm))
    story.append(Paragraph("Rigid vs deformable registration (Bland\u2013Altman)", st["h2"]))
    pairs = rigid_deformable_pairs(rows)
    ba = bland_altman(pairs)
    if ba is not None:
        story.append(bland_altman_plot(pairs, ba, width, reg_font))
        story.append(Paragraph(
            f"Deformable \u2212 rigid MAM: mean difference {ba['mean_mm']:+.2f} mm, SD "
            f"{ba['sd_mm']:.2f} mm, 95 % limits of agreement {ba['lower_mm']:+.2f} to "
            f"{ba['upper_mm']:+.2f} mm (n = {ba['n']} cases with both results; limits = "
            "mean \u00b1 1.96 SD).", st["body"]))
    else:
        story.append(Paragraph(
            f"Not computed: needs at least 2 cases evaluated with deformable registration "
            f"(which also gives the rigid result); n = {len(pairs)}.", st["status"]))

    # ---- per-case table
    story.append(CondPageBreak(40 * mm))
    story.append(Paragraph("Cases", st["h2"]))
    head = ["Case", "Verdict", "MAM (mm)", "Coverage (%)",
            "Registration: Mattes MI before \u2192 after (iterations)", "QC flag"]
    trows: list[list[Any]] = [head]
    extra: list[tuple] = []
    for i, r in enumerate(rows, start=1):
        case = text(r.get("case_id")) or f"(row {i + 1})"
        if is_ok(r):
            v = text(r.get("verdict")).strip()
            verdict = SHORT_VERDICT.get(v, v) + (", uncertain" if near_threshold(r) else "")
            flag = registration_flag(r)
            trows.append([case, verdict, _fmt(num(r.get("minimal_margin_mm")), 1, True),
                          _fmt(num(r.get("tumor_coverage_percent")), 1), _fom(r), flag])
            if flag:
                extra.append(("BACKGROUND", (5, i), (5, i), FLAG_BG))
        else:
            flag = registration_flag(r)
            trows.append([case, "failed", "\u2014", "\u2014", "\u2014",
                          flag])
            extra.append(("BACKGROUND", (0, i), (-1, i), FAIL_BG))
    w = [21 * mm, 28 * mm, 14 * mm, 19 * mm, 57 * mm]
    w.append(width - sum(w))
    story.append(_table(trows, w, st, extra=extra))
    story.append(Paragraph(
        "Registration figure of merit: Mattes mutual information of the planning and "
        "follow-up CT around the tumour before and after registration (negative; lower = "
        "better aligned; deformable starts at the rigid result; none: masks given in one "
        "space, no registration). QC flag (heuristics that "
        f"pick cases to look at, not clinical limits): rigid improved by less than "
        f"{100 * MIN_RIGID_GAIN:g} % or got worse; deformable worse than its rigid start by "
        f"more than {100 * MAX_DEFORMABLE_LOSS:g} %; rigid and deformable MAM more than "
        f"{RIGID_DEFORMABLE_MM:g} mm apart; registration failed.", st["small"]))

    # ---- thumbnails
    story.append(CondPageBreak(60 * mm))
    story.append(Paragraph("Thumbnails at the minimal-margin point", st["h2"]))
    story += _thumb_grid(rows, thumbnails, width, st)

    # ---- failures
    story.append(CondPageBreak(30 * mm))
    story.append(Paragraph("Failures", st["h2"]))
    if failed:
        frows: list[list[Any]] = [["Case", "Reason"]]
        for i, r in enumerate(rows, start=1):
            if is_ok(r):
                continue
            reason = strip_paths(text(r.get("error")).strip()) or "no reason recorded"
            frows.append([text(r.get("case_id")) or f"(row {i + 1})", reason])
        story.append(_table(frows, [30 * mm, width - 30 * mm], st,
                            extra=[("VALIGN", (0, 0), (-1, -1), "TOP")]))
        story.append(Paragraph("File paths in the reasons are shortened to the file name.",
                               st["small"]))
    else:
        story.append(Paragraph("None: every case was evaluated.", st["body"]))
    story.append(Spacer(1, 6))
    story.append(Paragraph(_esc(NOTICE) + ". Case ids as given in the cohort file; "
                           "figures are measurements on the images given and must be "
                           "checked by the reviewing physician.", st["small"]))

    footer = f"{title} \u2014 {created}"
    canvas_cls = type("_CohortCanvas", (_NumberedCanvas,),
                      {"notice": NOTICE, "footer": footer,
                       "fonts": (st["_reg"], st["_bold"])})

    def _build(tmp: Path) -> None:
        doc = SimpleDocTemplate(str(tmp), pagesize=PAGE, leftMargin=MARGIN,
                                rightMargin=MARGIN, topMargin=18 * mm, bottomMargin=15 * mm,
                                title=title, author="IRPlan", subject=NOTICE,
                                creator="IRPlan")
        doc.build(story, canvasmaker=canvas_cls)

    atomic_write(out, _build, what="cannot write the PDF")


def _thumb_grid(rows: Sequence[Mapping[str, Any]], thumbnails: Mapping[str, Path],
                width: float, st: dict, per_row: int = 4) -> list[Any]:
    cells: list[Any] = []
    missing: list[str] = []
    cw = width / per_row
    for r in rows:
        if not is_ok(r):
            continue
        case = text(r.get("case_id"))
        p = thumbnails.get(case)
        if p is None or not Path(p).is_file():
            missing.append(case)
            continue
        iw, ih = ImageReader(str(p)).getSize()
        img_w = cw - 4 * mm
        v = text(r.get("verdict")).strip()
        cap = (f"<b>{_esc(case)}</b> &nbsp;{_esc(SHORT_VERDICT.get(v, v))}, MAM "
               f"{_fmt(num(r.get('minimal_margin_mm')), 1, True)} mm"
               + (" &nbsp;(QC flag)" if registration_flag(r) else ""))
        cells.append([Image(str(p), width=img_w, height=img_w * ih / iw),
                      Paragraph(cap, st["small"])])
    out: list[Any] = []
    if cells:
        grid = [cells[i:i + per_row] for i in range(0, len(cells), per_row)]
        grid[-1] += [""] * (per_row - len(grid[-1]))
        t = Table(grid, colWidths=[cw] * per_row, hAlign="LEFT")
        t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("LEFTPADDING", (0, 0), (-1, -1), 2),
                               ("RIGHTPADDING", (0, 0), (-1, -1), 2)]))
        out.append(t)
        out.append(Paragraph(
            "Axial planning-CT slice through the minimal-margin point (patient right on the "
            "left, anterior at the top): tumour contour yellow, registered ablation zone "
            "cyan, MAM point ringed (red &lt; 0 mm, orange below the goal, green at or "
            "above it).", st["small"]))
    else:
        out.append(Paragraph("No thumbnails given.", st["status"]))
    if missing and cells:
        out.append(KeepTogether([Paragraph(
            "No thumbnail for: " + _esc(", ".join(missing)) + ".", st["status"])]))
    return out
