"""Lay out a :class:`~irplan.io.report_content.ReportContent` as a PDF (reportlab).

Every page carries the research-software notice in its header and "page N of M" in its
footer. Units are printed in every column heading (LPS mm, ml, %, V, deg). Sections with
no data print their status (e.g. "not computed: ...") instead of being left out, so a
reader sees what was not assessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import (
    CondPageBreak,
    Image,
    KeepTogether,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from irplan.io.report_content import Picture, ReportContent
from irplan.planning.errors import InputError

PAGE = A4
MARGIN = 16 * mm
ACCENT = colors.HexColor("#1f4e79")
WARN_BG = {"error": colors.HexColor("#f8d0d0"), "warning": colors.HexColor("#fde9c4"),
           "info": colors.HexColor("#e3ecf7")}
GRID = colors.HexColor("#9aa7b5")
HEAD_BG = colors.HexColor("#dfe7f0")

# Sources printed at the end of the report (CLINICAL.md).
REFERENCES = (
    "Voltage-to-distance rule 1500-1700 V/cm: Kos B et al. 2015, careful treatment "
    "planning enables safe ablation of liver tumors adjacent to major blood vessels by "
    "percutaneous IRE.",
    "Margin and efficacy terms: Ahmed M et al., Image-guided tumor ablation: "
    "standardization of terminology and reporting criteria - a 10-year update, "
    "Radiology 2014.",
    "Margin evidence: Wang X et al. 2013 (PMC4122121); Laimer G et al. 2020 and 2024 "
    "(no local progression with MAM >= 5 mm in HCC).",
)


def _fonts() -> tuple[str, str]:
    """A Unicode TrueType font pair (DejaVu when installed, else reportlab's Vera)."""
    candidates = [
        ("DejaVuSans", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ]
    import reportlab

    rl = Path(reportlab.__file__).parent / "fonts"
    candidates.append(("Vera", str(rl / "Vera.ttf"), str(rl / "VeraBd.ttf")))
    for name, reg, bold in candidates:
        if Path(reg).exists() and Path(bold).exists():
            if name not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont(name, reg))
                pdfmetrics.registerFont(TTFont(name + "-Bold", bold))
            return name, name + "-Bold"
    return "Helvetica", "Helvetica-Bold"


def _styles() -> dict[str, ParagraphStyle]:
    reg, bold = _fonts()
    base = getSampleStyleSheet()
    s = {
        "title": ParagraphStyle("title", parent=base["Title"], fontName=bold, fontSize=17,
                                leading=21, alignment=TA_LEFT, textColor=ACCENT,
                                spaceAfter=2),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontName=bold, fontSize=12,
                             leading=15, textColor=ACCENT, spaceBefore=9, spaceAfter=4),
        "body": ParagraphStyle("body", parent=base["BodyText"], fontName=reg, fontSize=9,
                               leading=11.5),
        "small": ParagraphStyle("small", parent=base["BodyText"], fontName=reg, fontSize=7.5,
                                leading=9.5, textColor=colors.HexColor("#333333")),
        "cell": ParagraphStyle("cell", fontName=reg, fontSize=8, leading=10),
        "cellb": ParagraphStyle("cellb", fontName=bold, fontSize=8, leading=10),
        "status": ParagraphStyle("status", fontName=reg, fontSize=9, leading=11.5,
                                 textColor=colors.HexColor("#7a4b00")),
        "verdict": ParagraphStyle("verdict", fontName=bold, fontSize=10.5, leading=13),
    }
    s["_reg"], s["_bold"] = reg, bold  # type: ignore[assignment]
    return s


_CONTROL = {c: None for c in range(32) if c not in (9, 10, 13)} | {127: None}


def _esc(text: Any) -> str:
    """Any text as literal Paragraph text: markup characters escaped (``<img>``,
    ``<a href>``, malformed tags print as text), control characters dropped."""
    return (str(text).translate(_CONTROL).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"))


def _f(v: float | None, digits: int = 1) -> str:
    if v is None or v != v:  # None or NaN
        return "\u2014"
    return f"{v:.{digits}f}"


def _mam(v: float | None, cap_mm: float | None) -> str:
    """A margin (mm, no unit): "≤ -14.5" when it sits at the analysis box's cap."""
    from irplan.planning.margin_display import cap_side

    if v is None or v != v:
        return "\u2014"
    side = cap_side(v, cap_mm)
    return ("\u2264 " if side < 0 else "\u2265 " if side > 0 else "") + f"{v:.1f}"


def _xyz(p: Sequence[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in p)


def _table(rows: list[list[Any]], widths: list[float], st: dict, header: bool = True,
           zebra: bool = True, extra: list[tuple] | None = None) -> Table:
    cells = [[c if not isinstance(c, str) else
              Paragraph(_esc(c), st["cellb"] if header and r == 0 else st["cell"])
              for c in row] for r, row in enumerate(rows)]
    t = Table(cells, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    style = [("GRID", (0, 0), (-1, -1), 0.4, GRID),
             ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
             ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
             ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3)]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), HEAD_BG))
    if zebra:
        for r in range(1 if header else 0, len(rows)):
            if r % 2 == 0:
                style.append(("BACKGROUND", (0, r), (-1, r), colors.HexColor("#f4f6f9")))
    t.setStyle(TableStyle(style + list(extra or [])))
    return t


def _kv(rows: list[tuple[str, str]], st: dict, key_w: float = 48 * mm) -> Table:
    body_w = PAGE[0] - 2 * MARGIN - key_w
    return _table([[k, v] for k, v in rows], [key_w, body_w], st, header=False, zebra=False,
                  extra=[("BACKGROUND", (0, 0), (0, -1), HEAD_BG)])


def _status(text: str, st: dict) -> Paragraph:
    return Paragraph(_esc(text[:1].upper() + text[1:]), st["status"])


def _image(pic: Picture, width: float, st: dict) -> list[Any]:
    p = Path(pic.path)
    if not p.exists():
        return [_status(f"picture '{pic.title}' missing", st)]
    from reportlab.lib.utils import ImageReader

    iw, ih = ImageReader(str(p)).getSize()
    h = width * ih / iw
    return [Image(str(p), width=width, height=h),
            Paragraph(f"<b>{_esc(pic.title)}</b>. {_esc(pic.caption)}", st["small"])]


def _lesions(rc: ReportContent, st: dict, width: float) -> list[Any]:
    """The case's lesions (issue 17): volume, largest diameter; coverage and minimal
    margin of the plan's target lesion."""
    if not rc.lesions:
        return []
    rows: list[list[Any]] = [["Lesion", "Volume (ml)", "Largest diameter (mm)", "Target",
                              "Predicted coverage (%)", "Minimal margin (mm)"]]
    for les in rc.lesions:
        rows.append([les.name, _f(les.volume_ml), _f(les.diameter_mm),
                     "target" if les.is_target else "",
                     _f(les.coverage_percent) if les.is_target else "",
                     _f(les.minimal_margin_mm) if les.is_target else ""])
    w = [26 * mm, 22 * mm, 34 * mm, 18 * mm, 36 * mm]
    w.append(width - sum(w))
    return [CondPageBreak(30 * mm), Paragraph("Lesions", st["h2"]), _table(rows, w, st),
            Paragraph("Largest diameter: 3-D (largest distance across the lesion). Coverage "
                      "and margin are predicted for the plan's target lesion only.",
                      st["small"])]


def _measurements(rc: ReportContent, st: dict, width: float) -> list[Any]:
    """The plan's measurements (View > Measure, issue 16): kind, view, figure with its
    unit, position (LPS mm); nothing when the plan has none."""
    if not rc.measurements:
        return []
    rows: list[list[Any]] = [["Measurement", "View", "Figure", "Position (LPS mm)"]]
    rows += [[m.kind, m.view, m.figure, m.position] for m in rc.measurements]
    w = [27 * mm, 22 * mm, 60 * mm]
    w.append(width - sum(w))
    return [CondPageBreak(30 * mm), Paragraph("Measurements", st["h2"]), _table(rows, w, st)]


def _procedure(rc: ReportContent, st: dict, width: float) -> list[Any]:
    """The "Procedure" page: planned vs placed needles, pairs as placed with the pulses
    and currents of the generator log, the technical-success verdict and its tolerances."""
    out: list[Any] = [Paragraph("Procedure: needles as placed (check CT)", st["h2"])]
    pr = rc.procedure
    if pr is None:
        return out + [_status(rc.procedure_status, st)]
    if pr.needles:
        rows: list[list[Any]] = [["Needle as placed", "Matched to", "Tip error (mm)",
                                  "Depth error (mm)", "Lateral error (mm)",
                                  "Axis angle error (\u00b0)"]]
        for n in pr.needles:
            rows.append([n.placed, n.planned or "no planned needle", _f(n.tip_error_mm),
                         ("+" if (n.depth_error_mm or 0) > 0 else "") + _f(n.depth_error_mm),
                         _f(n.lateral_error_mm), _f(n.angle_error_deg)])
        w = [30 * mm, 32 * mm, 24 * mm, 26 * mm, 28 * mm]
        w.append(width - sum(w))
        out.append(_table(rows, w, st))
        out.append(Paragraph(
            "Needle as placed: as named in the Needles table. Errors against the matched "
            "planned needle (optimal assignment; the plan's order is arbitrary). Depth error along the planned axis, positive when deeper "
            "than planned; lateral error perpendicular to it.", st["small"]))
    else:
        out.append(_status("no needle found on the check CT", st))
    for m in pr.missing:
        out.append(_status(f"{m}: not found on the check CT", st))
    out.append(Paragraph("Electrode pairs as placed", st["h2"]))
    if pr.pairs:
        rows2: list[list[Any]] = [["Pair", "Spacing tip-tip (mm)", "Angle (\u00b0)",
                                   "Voltage set (V)", "Pulses delivered",
                                   "Measured current (A)", "Predicted current (A)"]]
        for p in pr.pairs:
            rows2.append([f"{p.a} \u2013 {p.b}", _f(p.spacing_mm), _f(p.angle_deg),
                          _f(p.voltage_v, 0) + (" (max)" if p.voltage_capped else ""),
                          "\u2014" if p.pulses is None else str(p.pulses),
                          _f(p.current_a), _f(p.predicted_a)])
        w2 = [24 * mm, 25 * mm, 17 * mm, 24 * mm, 22 * mm, 27 * mm]
        w2.append(width - sum(w2))
        out.append(_table(rows2, w2, st))
        out.append(Paragraph(
            "Voltage from the measured spacing: 1500 V/cm (Kos et al. 2015), capped at the "
            "3000 V generator maximum. Pulses and measured currents from the generator log "
            "(target 20-50 A per pair); predicted currents by the field model with the "
            "needles as placed.", st["small"]))
    else:
        out.append(_status("no pulsed electrode pairs", st))
    if pr.rows:
        out += [Spacer(1, 4), _kv(pr.rows, st)]
    block: list[Any] = [Spacer(1, 6), Paragraph(_esc(pr.verdict), st["verdict"]),
                        Paragraph("Trial definition with IRPlan's tolerances: "
                                  + _esc(pr.definition) + ".", st["small"])]
    for r in pr.reasons:
        block.append(Paragraph("\u2022 " + _esc(r), st["body"]))
    out.append(KeepTogether(block))
    for note in pr.notes:
        out.append(Paragraph("\u2022 " + _esc(note), st["small"]))
    return out


class _NumberedCanvas(rl_canvas.Canvas):
    """Canvas that writes the header notice and "page N of M" on every page."""

    notice = ""
    footer = ""
    fonts = ("Helvetica", "Helvetica-Bold")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict] = []

    def showPage(self) -> None:  # noqa: N802 - reportlab API
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self._decorate(total)
            super().showPage()
        super().save()

    def _decorate(self, total: int) -> None:
        w, h = PAGE
        reg, bold = self.fonts
        self.saveState()
        self.setFillColor(colors.HexColor("#fff4e0"))
        self.setStrokeColor(colors.HexColor("#c77700"))
        self.rect(MARGIN, h - 13 * mm, w - 2 * MARGIN, 7.5 * mm, fill=1, stroke=1)
        self.setFillColor(colors.HexColor("#7a3e00"))
        self.setFont(bold, 9)
        self.drawCentredString(w / 2, h - 10.3 * mm, self.notice)
        self.setFillColor(colors.HexColor("#555555"))
        self.setFont(reg, 7.5)
        self.drawString(MARGIN, 9 * mm, self.footer)
        self.drawRightString(w - MARGIN, 9 * mm, f"page {self._pageNumber} of {total}")
        self.restoreState()


def write_report_pdf(rc: ReportContent, out_path: str | Path) -> Path:
    """Write the report PDF. Returns the path. Raises InputError when it cannot be written."""
    st = _styles()
    out = Path(out_path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the folder ({exc.strerror or exc})") from None
    width = PAGE[0] - 2 * MARGIN
    story: list[Any] = []
    story.append(Paragraph(_esc(rc.title), st["title"]))
    story.append(Paragraph(
        f"{_esc(rc.modality_label)} &nbsp;\u2022&nbsp; created {_esc(rc.created_utc)} "
        f"&nbsp;\u2022&nbsp; IRPlan {_esc(rc.software_version)}", st["body"]))

    # ---- case
    c = rc.case
    story.append(Paragraph("Case", st["h2"]))
    if c.anonymised:
        if c.patient_hash:
            who = (f"anonymised (pseudonym {c.patient_hash}: HMAC-SHA256 of PatientID with "
                   "this installation's secret key; not reversible without it)")
        else:
            who = "anonymised" + (f" ({c.pseudonym_status})" if c.pseudonym_status else "")
        rows = [("Patient", who)]
    else:
        rows = [("Patient", c.patient_label), ("Patient ID", c.patient_id or "\u2014"),
                ("Birth date / sex", f"{c.birth_date or chr(8212)} / {c.sex or chr(8212)}"),
                ("Accession", c.accession or "\u2014")]
    if not c.anonymised:
        rows += [("Study date", c.study_date or "\u2014")]
    if c.study_description:
        rows.append(("Study", c.study_description))
    rows.append(("Planning CT", c.ct_summary or "not loaded"))
    if c.anonymised:
        rows.append(("Identifiers", "names, IDs, dates, study and series descriptions, "
                                    "UIDs, file and folder names not shown (anonymised "
                                    "report; `irplan report --patient-data` shows them)"))
    else:
        rows += [("Study UID", c.study_uid or "\u2014"),
                 ("Series UID", c.series_uid or "\u2014"),
                 ("Frame of reference", c.frame_of_reference_uid or "\u2014")]
        rows.append(("Plan file", c.plan_file or "\u2014"))
    rows += [("Coordinates", "DICOM patient frame, LPS (x to patient left, y posterior, "
                             "z superior), mm")]
    story.append(_kv(rows, st))

    # ---- procedure
    story.append(Paragraph("Procedure and device parameters", st["h2"]))
    prows = [("Modality", rc.modality_label)] + list(rc.parameters)
    for dev_id, name, source in rc.devices:
        prows.append((f"Device {dev_id}", f"{name}. Source: {source}"))
    story.append(_kv(prows, st))

    # ---- needles
    story.append(CondPageBreak(40 * mm))
    story.append(Paragraph("Needles", st["h2"]))
    if rc.needles:
        head = ["Needle", "Device", "Tip L, P, S (mm)", "Entry L, P, S (mm)", "Depth (mm)",
                "CC angle (\u00b0)", "LR angle (\u00b0)", "Exposure (mm)"]
        rows2: list[list[Any]] = [head]
        for n in rc.needles:
            rows2.append([n.name, n.device, _xyz(n.tip_lps_mm), _xyz(n.entry_lps_mm),
                          _f(n.depth_mm), _f(n.cc_angle_deg), _f(n.lr_angle_deg),
                          _f(n.exposure_mm)])
        w = [14 * mm, 29 * mm, 33 * mm, 33 * mm, 15 * mm, 16 * mm, 16 * mm]
        w.append(width - sum(w))
        story.append(_table(rows2, w, st))
        story.append(Spacer(1, 2))
        story.append(Paragraph(
            "Depth: entry to tip. CC angle: angulation out of the axial plane, positive when "
            "the tip is caudal to the entry. LR angle: direction within the axial plane from "
            "antero-posterior (0\u00b0), positive towards the patient's left. "
            + _esc("; ".join(f"{n.name}: {n.plane_kind}" for n in rc.needles)) + ".",
            st["small"]))
    else:
        story.append(_status("no needles in the plan", st))

    if rc.modality == "IRE":
        story.append(CondPageBreak(35 * mm))
        story.append(Paragraph("IRE electrode pairs", st["h2"]))
        if rc.pairs:
            rows3: list[list[Any]] = [["Pair", "Spacing (mm)", "Voltage (V)",
                                       "Voltage / spacing (V/cm)", "Predicted current (A)",
                                       "Voltage from"]]
            for p in rc.pairs:
                vpc = (p.voltage_v / (p.spacing_mm / 10.0)
                       if p.voltage_v and p.spacing_mm > 0 else None)
                rows3.append([f"{p.a} \u2013 {p.b}", _f(p.spacing_mm), _f(p.voltage_v, 0),
                              _f(vpc, 0), _f(p.current_a), p.voltage_note])
            w3 = [20 * mm, 22 * mm, 22 * mm, 34 * mm, 30 * mm]
            w3.append(width - sum(w3))
            story.append(_table(rows3, w3, st))
            story.append(Paragraph("Spacing: distance between electrode axes (field model: "
                                   "between the centres of the active parts). Manufacturer "
                                   "rule 1500-1700 V/cm (Kos et al. 2015); target current "
                                   "20-50 A per pair (CLINICAL.md).", st["small"]))
        else:
            story.append(_status(rc.pairs_status or "no pairs", st))

    # ---- predicted zone
    story.append(CondPageBreak(45 * mm))
    story.append(Paragraph("Predicted ablation zone", st["h2"]))
    if rc.zone is not None:
        z = rc.zone
        goal = z.required_margin_mm
        zrows = [("Zone volume", f"{_f(z.volume_ml)} ml"),
                 ("Tumour coverage", f"{_f(z.coverage_percent)} %"),
                 ("Minimal margin", f"{_mam(z.minimal_margin_mm, z.margin_cap_mm)} mm "
                                    f"(goal {_f(goal, 0)} mm)")]
        if z.shell_coverage_percent is not None and z.shell_coverage_percent == \
                z.shell_coverage_percent:
            zrows.append((f"Margin shell ({_f(goal, 0)} mm) covered",
                          f"{_f(z.shell_coverage_percent)} %"))
        if z.method:
            zrows.append(("Model", z.method))
        story.append(_kv(zrows, st))
        if rc.zone_status:
            story.append(_status(rc.zone_status, st))
        for note in z.notes:
            story.append(Paragraph("\u2022 " + _esc(note), st["small"]))
    else:
        story.append(_status(rc.zone_status or "not computed", st))
    story.extend(_lesions(rc, st, width))

    # ---- safety
    story.append(CondPageBreak(35 * mm))
    story.append(Paragraph("Safety findings", st["h2"]))
    if rc.findings:
        rows4: list[list[Any]] = [["Severity", "Check", "Finding"]]
        extra = []
        order = {"error": 0, "warning": 1, "info": 2}
        fs = sorted(rc.findings, key=lambda f: order.get(f.severity.lower(), 3))
        for r, f in enumerate(fs, start=1):
            rows4.append([f.severity.upper(), f.check, f.message])
            bg = WARN_BG.get(f.severity.lower())
            if bg is not None:
                extra.append(("BACKGROUND", (0, r), (0, r), bg))
        w4 = [19 * mm, 42 * mm]
        w4.append(width - sum(w4))
        story.append(_table(rows4, w4, st, zebra=False, extra=extra))
    else:
        story.append(_status(rc.findings_status or "not computed", st))
    story.extend(_measurements(rc, st, width))

    # ---- pictures
    if rc.pictures:
        story.append(CondPageBreak(120 * mm))
        story.append(Paragraph("Views", st["h2"]))
        colw = (width - 6 * mm) / 2
        cells = [_image(p, colw, st) for p in rc.pictures]
        grid = [cells[i:i + 2] + ([[]] if len(cells[i:i + 2]) == 1 else [])
                for i in range(0, len(cells), 2)]
        t = Table(grid, colWidths=[colw + 3 * mm, colw + 3 * mm], hAlign="LEFT")
        t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("LEFTPADDING", (0, 0), (-1, -1), 0),
                               ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
        story.append(t)
    else:
        story.append(Paragraph("Views", st["h2"]))
        story.append(_status(rc.pictures_status or "not computed", st))

    # ---- intra-procedural record (irplan detect-needles --out)
    if rc.procedure is not None or rc.procedure_status:
        story.append(PageBreak())
        story.extend(_procedure(rc, st, width))

    # ---- evaluation
    story.append(CondPageBreak(60 * mm))
    story.append(Paragraph("Follow-up evaluation", st["h2"]))
    if rc.evaluation is not None:
        e = rc.evaluation
        erows = [("Minimal ablative margin (MAM)", f"{_mam(e.mam_mm, e.margin_cap_mm)} mm "
                  f"(goal {_f(e.required_margin_mm, 0)} mm)"),
                 ("Tumour coverage", f"{_f(e.coverage_percent)} %"),
                 ("Residual tumour", f"{_f(e.residual_ml, 2)} ml")]
        if e.surface_percent_ok is not None:
            erows.append(("Tumour surface by margin",
                          f"{_f(e.surface_percent_uncovered)} % uncovered, "
                          f"{_f(e.surface_percent_at_risk)} % below goal, "
                          f"{_f(e.surface_percent_ok)} % at goal or more"))
        if e.followup_date:
            erows.append(("Follow-up CT", e.followup_date))
        if e.registration:
            erows.append(("Registration", e.registration))
        erows.extend(e.extra)
        block: list[Any] = [_kv(erows, st), Spacer(1, 4),
                            Paragraph(f"Verdict: {_esc(e.verdict)}", st["verdict"])]
        for note in e.notes:
            block.append(Paragraph("\u2022 " + _esc(note), st["small"]))
        story.append(KeepTogether(block))
        if rc.margin_map is not None:
            story.append(Spacer(1, 6))
            story.append(KeepTogether(_image(rc.margin_map, width * 0.7, st)))
    else:
        story.append(_status(rc.evaluation_status, st))

    # ---- notes and references
    if rc.notes:
        story.append(Paragraph("Notes", st["h2"]))
        for n in rc.notes:
            story.append(Paragraph("\u2022 " + _esc(n), st["small"]))
    story.append(Paragraph("References", st["h2"]))
    for r in REFERENCES:
        story.append(Paragraph("\u2022 " + _esc(r), st["small"]))
    story.append(Spacer(1, 4))
    story.append(Paragraph(_esc(rc.notice) + ". Figures are model predictions and "
                           "measurements on the images given; they must be checked by "
                           "the treating physician.", st["small"]))

    footer = (f"{rc.title} \u2014 "
              + ("anonymised" if rc.case.anonymised else rc.case.patient_label)
              + f" \u2014 {rc.created_utc}")
    # a subclass per report: no shared state between concurrent reports
    canvas_cls = type("_ReportCanvas", (_NumberedCanvas,),
                      {"notice": rc.notice, "footer": footer,
                       "fonts": (st["_reg"], st["_bold"])})
    from irplan.io.atomic_write import atomic_write

    def _build(tmp: Path) -> None:   # atomic: a failed/killed write keeps the old PDF
        doc = SimpleDocTemplate(str(tmp), pagesize=PAGE, leftMargin=MARGIN,
                                rightMargin=MARGIN, topMargin=18 * mm, bottomMargin=15 * mm,
                                title=rc.title, author="IRPlan", subject=rc.notice,
                                creator="IRPlan", invariant=1 if rc.deidentified else 0)
        doc.build(story, canvasmaker=canvas_cls)

    return atomic_write(out, _build, what="cannot write the PDF")
