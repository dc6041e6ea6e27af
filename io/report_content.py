"""The figures of an IRPlan report, gathered into plain data (no Qt, no VTK, no PDF).

:func:`gather_report_content` turns a plan (and whatever has been computed: CT, masks,
predicted zone, margin result, safety findings, follow-up evaluation) into a
:class:`ReportContent` that :mod:`irplan.io.report_pdf` lays out. It is tolerant: a
section whose input is absent, or whose computation failed, carries a status text such
as "not computed: no tumour structure in the plan" instead of raising.
:func:`build_report_content` does the whole job from a plan file (loads the CT and masks,
runs the zone prediction, margin analysis and safety checks of this build).

Units and frames: positions LPS mm (DICOM patient frame); volumes ml; margins mm;
angles degrees as defined in :mod:`irplan.planning.needle_geometry`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irplan.planning.display_names import needle_label
from irplan.planning.errors import IrplanError
from irplan.planning.plan import Plan
from irplan.planning.volume import Volume

NOTICE = ("IRPlan \u2014 research software, not a certified medical device; "
          "not for clinical use")
NOT_COMPUTED = "not computed"

MODALITY_LABELS = {"IRE": "Irreversible electroporation (IRE)",
                   "MWA": "Microwave ablation (MWA)", "RFA": "Radiofrequency ablation (RFA)",
                   "cryo": "Cryoablation"}


@dataclass
class CaseInfo:
    """Who and what. ``anonymised``: no identifier from the DICOM header or a path; the
    patient is shown as a keyed pseudonym (``patient_hash``, HMAC-SHA256 with the
    installation secret, :mod:`irplan.io.pseudonym`) or not at all (``pseudonym_status``
    says which)."""

    anonymised: bool = True
    patient_label: str = "anonymised"
    patient_hash: str = ""
    pseudonym_status: str = ""
    patient_name: str = ""
    patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_description: str = ""
    accession: str = ""
    study_uid: str = ""
    series_uid: str = ""
    frame_of_reference_uid: str = ""
    ct_summary: str = ""
    plan_file: str = ""


@dataclass
class NeedleRow:
    """One needle: LPS mm positions, depth (mm), angulation (deg), exposure (mm)."""

    name: str
    device: str
    device_name: str
    tip_lps_mm: tuple[float, float, float]
    entry_lps_mm: tuple[float, float, float]
    depth_mm: float
    cc_angle_deg: float
    lr_angle_deg: float
    plane_kind: str
    exposure_mm: float | None


@dataclass
class PairRow:
    """One pulsed IRE electrode pair: spacing (mm), pair voltage (V), predicted current (A,
    field model with static conductivity; None when not computed)."""

    a: str
    b: str
    spacing_mm: float
    voltage_v: float | None
    voltage_note: str = ""
    current_a: float | None = None


@dataclass
class ZoneSummary:
    """Predicted zone volume (ml), tumour coverage (%), minimal margin (mm)."""

    volume_ml: float | None = None
    coverage_percent: float | None = None
    minimal_margin_mm: float | None = None
    required_margin_mm: float | None = None
    shell_coverage_percent: float | None = None
    method: str = ""
    notes: list[str] = field(default_factory=list)
    margin_cap_mm: float | None = None     # margins at +/- this are "at most/least" it


@dataclass
class Finding:
    severity: str
    message: str
    check: str = ""


@dataclass
class EvaluationSummary:
    """Follow-up evaluation: minimal ablative margin (mm), coverage (%), verdict."""

    mam_mm: float | None = None
    coverage_percent: float | None = None
    residual_ml: float | None = None
    required_margin_mm: float | None = None
    verdict: str = ""
    surface_percent_ok: float | None = None
    surface_percent_at_risk: float | None = None
    surface_percent_uncovered: float | None = None
    followup_date: str = ""
    registration: str = ""
    notes: list[str] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)
    margin_cap_mm: float | None = None     # MAM at -/+ this is "at most/least" it


@dataclass
class ProcedureNeedleRow:
    """One needle found on the check CT against its planned needle (errors mm / deg;
    ``planned`` "" when it matches none)."""

    placed: str
    planned: str
    tip_error_mm: float | None = None
    depth_error_mm: float | None = None
    lateral_error_mm: float | None = None
    angle_error_deg: float | None = None


@dataclass
class ProcedurePairRow:
    """One pulsed pair as placed: measured tip-to-tip spacing (mm), angle between the
    electrodes (deg), voltage set (V), pulses delivered, measured current (A)."""

    a: str
    b: str
    spacing_mm: float | None = None
    angle_deg: float | None = None
    voltage_v: float | None = None
    voltage_capped: bool = False
    pulses: int | None = None
    current_a: float | None = None
    predicted_a: float | None = None


@dataclass
class ProcedureSummary:
    """The intra-procedural record (plan key "procedure", ``irplan detect-needles
    --out``): planned vs placed needles, pairs, the technical-success verdict."""

    needles: list[ProcedureNeedleRow] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    pairs: list[ProcedurePairRow] = field(default_factory=list)
    verdict: str = NOT_COMPUTED
    success: bool | None = None
    definition: str = ""
    reasons: list[str] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)   # zone, currents, registration
    notes: list[str] = field(default_factory=list)


@dataclass
class Picture:
    title: str
    path: str
    caption: str = ""


@dataclass
class ReportContent:
    """Everything the PDF shows. ``*_status`` is "" when the section has data, else the
    reason it is missing (e.g. "not computed: ...")."""

    title: str = "Ablation planning report"
    notice: str = NOTICE
    created_utc: str = ""
    software_version: str = ""
    case: CaseInfo = field(default_factory=CaseInfo)
    modality: str = ""
    modality_label: str = ""
    parameters: list[tuple[str, str]] = field(default_factory=list)
    devices: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, source)
    needles: list[NeedleRow] = field(default_factory=list)
    pairs: list[PairRow] = field(default_factory=list)
    pairs_status: str = ""
    zone: ZoneSummary | None = None
    zone_status: str = NOT_COMPUTED
    findings: list[Finding] = field(default_factory=list)
    findings_status: str = NOT_COMPUTED
    # View > Measure (issue 16): io.report_measurements.MeasurementRow, from the plan
    measurements: list[Any] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    pictures_status: str = ""
    evaluation: EvaluationSummary | None = None
    evaluation_status: str = "no follow-up evaluation in this plan"
    margin_map: Picture | None = None
    procedure: ProcedureSummary | None = None
    procedure_status: str = ""
    # the case's lesions (issue 17): planning.lesions.LesionRow (name, volume, diameter;
    # coverage and margin on the plan's target lesion)
    lesions: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    deidentified: bool = False  # de-identified export: no creation date, fixed PDF metadata


# --------------------------------------------------------------------------- helpers
def patient_hash(patient_id: str) -> str:
    """The keyed pseudonym of a PatientID (16 hex digits of HMAC-SHA256 with this
    installation's secret, :mod:`irplan.io.pseudonym`); "" without an ID or a secret."""
    from irplan.io.pseudonym import installation_pseudonymizer

    return installation_pseudonymizer().pseudonym(patient_id) if patient_id else ""


def _fmt(v: float | None, digits: int = 1, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "\u2014"
    s = f"{v:.{digits}f}"
    return f"{s} {unit}".strip()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("irplan")
    except Exception:  # noqa: BLE001 - source tree without metadata
        return "0"


def _why(exc: BaseException) -> str:
    if isinstance(exc, IrplanError):
        return f"{NOT_COMPUTED}: {exc}"
    return f"{NOT_COMPUTED}: internal error ({type(exc).__name__}: {exc})"


def _device(device_id: str) -> Any | None:
    try:
        from irplan.planning.devices import get_device

        return get_device(device_id)
    except Exception:  # noqa: BLE001 - unknown device: shown by id only
        return None


def _case_info(plan: Plan, plan_path: str | Path | None, header: Any | None,
               ct: Volume | None, include_patient_data: bool) -> CaseInfo:
    info = CaseInfo(anonymised=not include_patient_data)
    info.series_uid = plan.image.series_uid
    info.frame_of_reference_uid = plan.image.frame_of_reference_uid
    info.plan_file = Path(plan_path).name if plan_path else ""

    def get(key: str) -> str:
        if header is None:
            return ""
        v = header.get(key, "") if isinstance(header, Mapping) else getattr(header, key, "")
        return "" if v is None else str(v)

    pid = get("PatientID")
    if not include_patient_data and pid:
        from irplan.io.pseudonym import installation_pseudonymizer

        pz = installation_pseudonymizer()
        info.patient_hash = pz.pseudonym(pid)
        info.pseudonym_status = pz.status
    info.study_date = get("StudyDate")
    info.study_description = get("StudyDescription")
    info.study_uid = get("StudyInstanceUID")
    info.series_uid = info.series_uid or get("SeriesInstanceUID")
    info.frame_of_reference_uid = info.frame_of_reference_uid or get("FrameOfReferenceUID")
    if include_patient_data:
        info.patient_name = get("PatientName").replace("^", " ").strip()
        info.patient_id = pid
        info.birth_date = get("PatientBirthDate")
        info.sex = get("PatientSex")
        info.accession = get("AccessionNumber")
        info.patient_label = info.patient_name or pid or "unknown patient"
    else:
        # DICOM PS3.15 basic de-identification removes dates and UIDs as well
        # DICOM PS3.15 basic de-identification removes descriptions, dates and UIDs too
        info.patient_label = "anonymised"
        info.study_date = info.study_uid = info.study_description = ""
        info.series_uid = info.frame_of_reference_uid = ""
        info.plan_file = ""  # file names often carry patient names
    if ct is not None:
        sx, sy, sz = ct.size_xyz
        sp = ct.spacing_mm
        info.ct_summary = (f"{sx} \u00d7 {sy} \u00d7 {sz} voxels, "
                           f"{sp[0]:.2f} \u00d7 {sp[1]:.2f} \u00d7 {sp[2]:.2f} mm")
    return info


def needle_rows(plan: Plan) -> list[NeedleRow]:
    """The needle table (angles from :func:`irplan.planning.needle_geometry.needle_angles`)."""
    from irplan.planning.needle_geometry import needle_angles

    rows = []
    for n, nd in enumerate(plan.needles, start=1):
        ang = needle_angles(nd)
        dev = _device(nd.device)
        rows.append(NeedleRow(
            name=needle_label(nd, n - 1), device=nd.device,
            device_name=getattr(dev, "name", "") or nd.device,
            tip_lps_mm=tuple(float(v) for v in nd.tip_lps_mm),
            entry_lps_mm=tuple(float(v) for v in nd.entry_lps_mm),
            depth_mm=ang.depth_mm, cc_angle_deg=ang.cc_angle_deg,
            lr_angle_deg=ang.lr_angle_deg, plane_kind=ang.plane_kind,
            exposure_mm=None if nd.exposure_mm is None else float(nd.exposure_mm)))
    return rows


def pair_rows(plan: Plan, ire_pairs: Sequence[Any] | None = None) -> tuple[list[PairRow], str]:
    """IRE pairs with spacing and voltage. ``ire_pairs``: solver results (objects with
    ``electrodes``, ``spacing_mm``, ``voltage_v``) when the field was computed; else the
    pair list of :func:`irplan.planning.ire_array.electrode_pairs` with the plan's voltage
    or the voltage-to-distance rule (1500 V/cm, Kos et al. 2015; capped at 3000 V,
    CLINICAL.md)."""
    if plan.modality != "IRE":
        return [], ""
    names = [needle_label(nd, i) for i, nd in enumerate(plan.needles)]
    if len(plan.needles) < 2:
        return [], "fewer than two electrodes: no pairs"
    out: list[PairRow] = []
    if ire_pairs:
        for p in ire_pairs:
            a, b = (int(v) for v in p.electrodes)
            cur = getattr(p, "current_a", None)
            out.append(PairRow(names[a], names[b], float(p.spacing_mm), float(p.voltage_v),
                               "field model", None if cur is None else float(cur)))
        return out, ""
    from irplan.planning.ire_array import electrode_pairs
    from irplan.planning.ire_field import default_voltage_v

    for p in electrode_pairs(plan.needles):
        if plan.ire.voltage_v is not None:
            v, note = float(plan.ire.voltage_v), "plan"
        else:
            v, capped = default_voltage_v(p.spacing_mm)
            note = "1500 V/cm rule (Kos 2015)" + ("; capped at 3000 V" if capped else "")
        out.append(PairRow(names[p.i], names[p.j], p.spacing_mm, v, note))
    return out, ""


def parameter_rows(plan: Plan) -> list[tuple[str, str]]:
    rows = [("Required margin", _fmt(plan.margin_mm, 1, "mm"))]
    if plan.modality == "IRE":
        rows += [("Pair voltage", _fmt(plan.ire.voltage_v, 0, "V") if plan.ire.voltage_v
                  else "per pair from spacing (1500 V/cm, Kos et al. 2015)"),
                 ("Pulses per pair", str(plan.ire.pulses)),
                 ("Pulse width", _fmt(plan.ire.pulse_width_us, 0, "\u00b5s"))]
    else:
        rows += [("Generator power", _fmt(plan.thermal.power_w, 0, "W")),
                 ("Ablation time", _fmt(plan.thermal.time_s, 0, "s"))]
    return rows


def _finding(obj: Any) -> Finding:
    if isinstance(obj, Mapping):
        get = obj.get
    else:
        def get(k: str, d: Any = "") -> Any:
            return getattr(obj, k, d)
    sev = get("severity", "") or get("level", "") or "info"
    sev = getattr(sev, "value", sev)
    msg = get("message", "") or get("text", "") or str(obj)
    check = get("check", "") or get("code", "") or get("name", "")
    return Finding(str(sev), str(msg), str(check))


def zone_summary(zone: Volume | None, margin: Any | None, required_margin_mm: float,
                 method: str = "") -> ZoneSummary:
    """Zone figures from the zone mask (volume) and a MarginResult (coverage, MAM)."""
    s = ZoneSummary(required_margin_mm=required_margin_mm, method=method)
    if zone is not None:
        s.volume_ml = float(np.count_nonzero(zone.array)) * zone.voxel_volume_ml
    if margin is not None:
        s.coverage_percent = float(margin.tumor_coverage_percent)
        s.minimal_margin_mm = float(margin.minimal_margin_mm)
        cap = getattr(margin, "margin_cap_mm", None)
        s.margin_cap_mm = float(cap) if isinstance(cap, int | float) else None
        s.shell_coverage_percent = float(getattr(margin, "shell_coverage_percent", math.nan))
        if s.volume_ml is None:
            s.volume_ml = float(margin.zone_volume_ml)
        s.notes = list(getattr(margin, "notes", []) or [])
    return s


def verdict_text(mam_mm: float | None, coverage_percent: float | None,
                 required_margin_mm: float) -> str:
    """Standard wording (Ahmed et al. 2014 terminology): complete ablation needs full
    tumour coverage; a minimal ablative margin below the goal is reported as such."""
    if mam_mm is None or coverage_percent is None:
        return NOT_COMPUTED
    if coverage_percent < 99.95 or mam_mm < 0:
        return ("Incomplete ablation: residual tumour outside the ablation zone "
                f"(coverage {coverage_percent:.1f} %)")
    if mam_mm < required_margin_mm:
        return (f"Complete ablation with insufficient margin: MAM {mam_mm:.1f} mm "
                f"< {required_margin_mm:.0f} mm goal")
    return f"Complete ablation with adequate margin (MAM {mam_mm:.1f} mm)"


def evaluation_summary(ev: Any, required_margin_mm: float) -> EvaluationSummary:
    """From an EvaluationResult / MarginResult, their ``to_dict()`` (e.g. the output of
    ``irplan evaluate --json``), or a plan's ``evaluations`` entry."""
    d = ev.to_dict() if hasattr(ev, "to_dict") else dict(ev)
    inner = d.get("margin") if isinstance(d.get("margin"), Mapping) else d

    def num(*keys: str) -> float | None:
        for src in (d, inner):
            for k in keys:
                v = src.get(k)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    return float(v)
        return None

    req = num("required_margin_mm") or required_margin_mm
    reg = d.get("registration")
    if isinstance(reg, Mapping):
        reg_text = str(reg.get("method", ""))
        if reg.get("metric_value") is not None:
            reg_text += f", {reg.get('metric') or 'metric'} {float(reg['metric_value']):.4f}"
        if reg.get("landmark_residual_mean_mm") is not None:
            reg_text += (f", landmark residual {float(reg['landmark_residual_mean_mm']):.2f}"
                         " mm")
    else:
        reg_text = str(reg or d.get("method", "") or "")
    notes = [str(n) for n in (inner.get("notes") or [])]
    notes += [str(w) for w in (d.get("warnings") or [])]
    s = EvaluationSummary(
        mam_mm=num("minimal_margin_mm", "mam_mm"),
        coverage_percent=num("tumor_coverage_percent", "coverage_percent"),
        residual_ml=num("residual_tumor_ml", "residual_ml"), required_margin_mm=req,
        surface_percent_ok=num("surface_percent_ok"),
        surface_percent_at_risk=num("surface_percent_at_risk"),
        surface_percent_uncovered=num("surface_percent_uncovered"),
        followup_date=str(d.get("followup_date", "") or d.get("date", "") or ""),
        registration=reg_text, notes=notes, margin_cap_mm=num("margin_cap_mm"))
    rigid = d.get("rigid_comparison")
    if isinstance(rigid, Mapping):
        s.extra.append(("Rigid registration only",
                        f"MAM {_fmt(rigid.get('minimal_margin_mm'), 1, 'mm')}, coverage "
                        f"{_fmt(rigid.get('tumor_coverage_percent'), 1, '%')}"))
    resid = d.get("residual")
    if isinstance(resid, Mapping) and resid.get("centroid_lps_mm") is not None:
        c = resid["centroid_lps_mm"]
        s.extra.append(("Residual tumour at", f"LPS ({c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}) mm"
                        + (f", {resid['direction_from_tumor_center']} of the centre"
                           if resid.get("direction_from_tumor_center") else "")))
    pva = d.get("predicted_vs_achieved")
    if isinstance(pva, Mapping) and pva.get("dice") is not None:
        s.extra.append(("Predicted vs achieved zone",
                        f"Dice {float(pva['dice']):.2f}, HD95 "
                        f"{_fmt(pva.get('hd95_mm'), 1, 'mm')}, volume "
                        f"{_fmt(pva.get('predicted_volume_ml'), 1)} -> "
                        f"{_fmt(pva.get('achieved_volume_ml'), 1)} ml"))
    text = d.get("verdict_text") or d.get("verdict")
    s.verdict = str(text) if text else verdict_text(s.mam_mm, s.coverage_percent, req)
    return s


def _num(v: Any) -> float | None:
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def procedure_summary(proc: Mapping[str, Any], plan: Plan) -> ProcedureSummary:
    """From a plan's "procedure" entry (``irplan detect-needles --out``; keys as
    written by :mod:`irplan.app.cmd_detect_needles`). Placed needle ``k`` is the plan's
    needle ``k`` (the placed plan); planned indices are 1-based into the source plan."""
    from irplan.planning.placement import ANGLE_TOLERANCE_DEG, MIN_PULSES, TIP_TOLERANCE_MM

    names = [needle_label(nd, i) for i, nd in enumerate(plan.needles)]

    def name(k: Any) -> str:       # 1-based index into the placed needles
        if isinstance(k, int) and 1 <= k <= len(names):
            return names[k - 1]
        return f"#{k}"

    s = ProcedureSummary()
    for k, d in enumerate(proc.get("needles") or [], start=1):
        if not isinstance(d, Mapping):
            continue
        m = d.get("planned_index")
        s.needles.append(ProcedureNeedleRow(
            placed=name(k),
            planned=f"planned needle {m}" if isinstance(m, int) else "",
            tip_error_mm=_num(d.get("tip_error_mm")),
            depth_error_mm=_num(d.get("depth_error_mm")),
            lateral_error_mm=_num(d.get("lateral_error_mm")),
            angle_error_deg=_num(d.get("angle_error_deg"))))
    s.missing = [f"planned needle {j}" for j in proc.get("missing_planned") or []
                 if isinstance(j, int)]
    fit = proc.get("currents") if isinstance(proc.get("currents"), Mapping) else {}
    predicted = {tuple(p.get("needles") or ()): _num(p.get("predicted_a"))
                 for p in fit.get("pairs") or [] if isinstance(p, Mapping)}
    for p in proc.get("pairs") or []:
        if not isinstance(p, Mapping) or len(p.get("needles") or []) != 2:
            continue
        a, b = p["needles"]
        pulses = p.get("pulses")
        s.pairs.append(ProcedurePairRow(
            name(a), name(b), _num(p.get("spacing_mm")), _num(p.get("angle_deg")),
            _num(p.get("voltage_v")), bool(p.get("voltage_capped")),
            int(pulses) if isinstance(pulses, int | float) and not isinstance(pulses, bool)
            else None, _num(p.get("current_a")), predicted.get((a, b))))
    v = proc.get("verdict")
    if isinstance(v, Mapping):
        s.success = v.get("success") if isinstance(v.get("success"), bool) else None
        s.verdict = {True: "Technical success: YES",
                     False: "Technical success: NO",
                     None: "Technical success: not decided (no pulse record)"}[s.success]
        s.reasons = [str(r) for r in v.get("reasons") or []]
        s.definition = str(v.get("definition") or "")
    s.definition = s.definition or (
        f"every planned needle placed (tip within {TIP_TOLERANCE_MM:g} mm, axis within "
        f"{ANGLE_TOLERANCE_DEG:g} deg of the plan) and >= {MIN_PULSES} pulses per "
        "electrode pair")
    rp = proc.get("repredicted")
    if isinstance(rp, Mapping) and isinstance(rp.get("placed"), Mapping):
        grid = _num(rp.get("grid_mm"))
        at = f" ({grid:g} mm grid)" if grid else ""
        for key, label in (("planned", "Zone as planned" + at),
                           ("placed", "Zone as placed" + at)):
            z = rp.get(key) if isinstance(rp.get(key), Mapping) else {}
            s.rows.append((label, f"{_fmt(_num(z.get('zone_volume_ml')), 1, 'ml')}, "
                           f"coverage {_fmt(_num(z.get('tumor_coverage_percent')), 1, '%')}, "
                           f"minimal margin {_fmt(_num(z.get('minimal_margin_mm')), 1, 'mm')}"))
        thin = (rp["placed"].get("thinnest_margin_lps_mm") or [])
        if len(thin) == 3 and all(_num(c) is not None for c in thin):
            s.rows.append(("Thinnest margin as placed",
                           "LPS (" + ", ".join(f"{float(c):.1f}" for c in thin) + ") mm"))
    elif isinstance(rp, Mapping) and rp.get("error"):
        s.notes.append(f"zone not re-predicted: {rp['error']}")
    if fit and _num(fit.get("conductivity_scale")) is not None:
        s.rows.append(("Measured vs predicted currents",
                       f"conductivity scale {_fmt(_num(fit.get('conductivity_scale')), 2)}, "
                       f"residual {_fmt(_num(fit.get('residual_rms_a')), 1, 'A')} RMS "
                       "(fit to the measured currents)"))
    reg = proc.get("registration")
    if isinstance(reg, Mapping) and reg.get("applied"):
        s.rows.append(("Registration", "intra-op CT registered rigidly to the planning CT "
                       f"(Mattes MI {_fmt(_num(reg.get('initial_metric_value')), 3)} -> "
                       f"{_fmt(_num(reg.get('metric_value')), 3)})"))
    return s


# --------------------------------------------------------------------------- gathering
def gather_report_content(plan: Plan, *, plan_path: str | Path | None = None,
                          header: Any | None = None, ct: Volume | None = None,
                          zone: Volume | None = None, zone_status: str | None = None,
                          zone_method: str = "", zone_notes: Sequence[str] = (),
                          margin: Any | None = None,
                          ire_pairs: Sequence[Any] | None = None,
                          findings: Sequence[Any] | None = None,
                          findings_status: str | None = None,
                          evaluation: Any | None = None, evaluation_status: str | None = None,
                          pictures: Sequence[Picture] = (), pictures_status: str = "",
                          margin_map: Picture | None = None,
                          include_patient_data: bool = False,
                          notes: Sequence[str] = (), deidentified: bool = False,
                          lesions: Sequence[Any] = (),
                          ) -> ReportContent:
    """Assemble the report from what is at hand; absent parts get a status text.

    ``header``: a pydicom Dataset (or mapping) of the planning CT for patient/study data;
    patient identity appears only with ``include_patient_data``. Anonymised by default:
    "anonymised" and a keyed pseudonym of PatientID; no text from the header or a path
    (:func:`redact_report`). ``deidentified`` (export --anonymize): no creation date
    either. ``findings``: safety findings (objects or dicts with ``severity`` and
    ``message``); ``None`` = checks not run.
    """
    rc = ReportContent(created_utc=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                       software_version=_version())
    rc.case = _case_info(plan, plan_path, header, ct, include_patient_data)
    rc.modality = plan.modality
    rc.modality_label = MODALITY_LABELS.get(plan.modality, plan.modality)
    rc.parameters = parameter_rows(plan)
    seen: set[str] = set()
    for nd in plan.needles:
        if nd.device in seen:
            continue
        seen.add(nd.device)
        dev = _device(nd.device)
        rc.devices.append((nd.device, getattr(dev, "name", "") or nd.device,
                           getattr(dev, "source", "") or "device not in the catalogue"))
    try:
        rc.needles = needle_rows(plan)
    except Exception as exc:  # noqa: BLE001 - a report must still be written
        rc.notes.append(f"needle table {_why(exc)}")
    try:
        rc.pairs, rc.pairs_status = pair_rows(plan, ire_pairs)
    except Exception as exc:  # noqa: BLE001
        rc.pairs, rc.pairs_status = [], _why(exc)
    if zone is not None or margin is not None:
        rc.zone = zone_summary(zone, margin, plan.margin_mm, zone_method)
        rc.zone.notes = list(zone_notes) + rc.zone.notes
        rc.zone_status = "" if margin is not None else (
            zone_status or "coverage and margin not computed (no tumour mask)")
    else:
        rc.zone_status = zone_status or NOT_COMPUTED
    if findings is not None:
        rc.findings = [_finding(f) for f in findings]
        rc.findings_status = "" if rc.findings else "no findings: every check passed"
    elif findings_status:
        rc.findings_status = findings_status
    if evaluation is not None:
        try:
            rc.evaluation = evaluation_summary(evaluation, plan.margin_mm)
            rc.evaluation_status = ""
        except Exception as exc:  # noqa: BLE001
            rc.evaluation_status = _why(exc)
    elif evaluation_status:
        rc.evaluation_status = evaluation_status
    proc = plan.extra.get("procedure") if isinstance(plan.extra, dict) else None
    if isinstance(proc, Mapping):
        try:
            rc.procedure = procedure_summary(proc, plan)
        except Exception as exc:  # noqa: BLE001 - a report must still be written
            rc.procedure_status = f"procedure record {_why(exc)}"
    rc.lesions = list(lesions)
    from irplan.io.report_measurements import measurement_rows

    measurements, bad_measurements = measurement_rows(plan.extra)
    rc.notes.extend(bad_measurements)
    rc.pictures = list(pictures)
    rc.pictures_status = pictures_status or ("" if rc.pictures else NOT_COMPUTED)
    rc.margin_map = margin_map
    rc.notes.extend(notes)
    if not include_patient_data:
        redact_report(rc, plan, plan_path, header)
    # after the redaction: numbers and fixed names only (the CT header's "HU" would go)
    rc.measurements = measurements
    if deidentified:
        rc.deidentified = True
        rc.created_utc = "date not shown (de-identified)"
    return rc


def _plan_paths(plan: Plan, plan_path: str | Path | None) -> list[str]:
    paths = [str(plan_path or ""), plan.image.path, plan.file_dir,
             *[str(v) for v in plan.structures.values()]]
    try:
        from irplan.io.plan_file import image_path, structure_paths

        paths.append(str(image_path(plan)))
        paths.extend(str(p) for p in structure_paths(plan).values())
    except Exception:  # noqa: BLE001 - unresolvable paths: the raw strings suffice
        pass
    return [p for p in paths if p]


def report_redactor(plan: Plan, plan_path: str | Path | None,
                    header: Any | None) -> Callable[[Any], str]:
    """The text redactor of an anonymised report (header values, the case's paths)."""
    from irplan.io.anonymize import TextRedactor, header_identifiers

    return TextRedactor(header_identifiers(header), _plan_paths(plan, plan_path))


def redact_report(rc: ReportContent, plan: Plan, plan_path: str | Path | None,
                  header: Any | None) -> None:
    """Anonymised report: every free text (notes, statuses, findings, zone and
    evaluation notes, needle names, picture titles) loses the CT header's text values,
    the case's paths and folder names, and anything path- or UID-like
    (:class:`irplan.io.anonymize.TextRedactor`); the follow-up date is dropped."""
    red = report_redactor(plan, plan_path, header)

    def walk(obj: Any) -> None:
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if isinstance(v, str):
                setattr(obj, f.name, red(v))
            elif isinstance(v, list):
                setattr(obj, f.name, [_redact_item(x, red, walk) for x in v])
            elif dataclasses.is_dataclass(v) and not isinstance(v, type):
                walk(v)

    keep = {"title": rc.title, "notice": rc.notice, "created_utc": rc.created_utc,
            "software_version": rc.software_version, "modality": rc.modality,
            "modality_label": rc.modality_label}
    paths = [(p, p.path) for p in rc.pictures] + (
        [(rc.margin_map, rc.margin_map.path)] if rc.margin_map is not None else [])
    devices = list(rc.devices)
    walk(rc)
    for k, v in keep.items():
        setattr(rc, k, v)
    for pic, path in paths:  # the files to embed, not printed
        pic.path = path
    rc.devices = devices  # catalogue text
    if rc.evaluation is not None:
        rc.evaluation.followup_date = ""


def _redact_item(x: Any, red: Callable[[Any], str], walk: Callable[[Any], None]) -> Any:
    if isinstance(x, str):
        return red(x)
    if isinstance(x, tuple):
        return tuple(red(v) if isinstance(v, str) else v for v in x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        walk(x)
    return x


# --------------------------------------------------------------------------- whole job
@dataclass
class ComputedCase:
    """Inputs loaded and results computed for a report (also used by the pictures)."""

    plan: Plan
    plan_path: Path | None = None
    header: Any | None = None
    ct: Volume | None = None
    structures: dict[str, Volume] = field(default_factory=dict)
    zone: Volume | None = None
    zone_method: str = ""
    zone_notes: list[str] = field(default_factory=list)
    ire_pairs: list[Any] | None = None
    margin: Any | None = None
    findings: list[Any] | None = None
    evaluation: Any | None = None
    status: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _try(status: dict[str, str], key: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ModuleNotFoundError as exc:
        status[key] = f"{NOT_COMPUTED}: {exc.name} is not part of this build"
    except Exception as exc:  # noqa: BLE001 - each section degrades on its own
        status[key] = _why(exc)
    return None


def _first_header(folder: Path) -> Any | None:
    from pydicom import dcmread

    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    for p in files[:200]:
        try:
            ds = dcmread(p, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - skip non-DICOM files
            continue
        if "PatientID" in ds or "StudyInstanceUID" in ds:
            return ds
    return None


def _predict_zone(case: ComputedCase) -> None:
    from irplan.planning.zone import predict_zone

    plan, options = case.plan, None
    proc = plan.extra.get("procedure") if isinstance(plan.extra, dict) else None
    set_pairs = _procedure_pairs(proc, len(plan.needles)) if plan.modality == "IRE" else []
    if set_pairs and plan.ire.voltage_v is None:
        # the pairs and voltages set in the room (measured tip-to-tip spacings), as
        # `irplan detect-needles` re-predicted them: one voltage per row of the report
        from irplan.planning.zone import ZoneOptions

        plan, options = plan.copy(), ZoneOptions()
        options.pairs = [ab for ab, _ in set_pairs]
        plan.ire.voltage_v = [v for _, v in set_pairs]
        case.zone_notes.append("pairs and voltages as set in the procedure record "
                               "(1500 V/cm x measured tip-to-tip spacing)")
    res = predict_zone(plan, case.ct, _target_view(case), options=options)
    case.zone = res.zone
    if res.modality == "IRE":
        thr = getattr(res, "threshold_v_per_cm", None)
        st = getattr(res, "setting", None) or {}
        named = f"model setting '{st['name']}': " if st.get("name") else ""
        case.zone_method = (f"IRE electric-field model (quasi-static), {named}zone where |E| "
                            f">= {thr:.0f} V/cm, {res.grid_mm:g} mm grid" if thr else
                            "IRE electric-field model")
        if st.get("source"):
            case.zone_notes.append(f"model setting '{st.get('name', '?')}': {st['source']}")
    else:
        names = [str(t.get("name") or t.get("id") or t.get("source") or "")
                 for t in getattr(res, "tables", []) or [] if isinstance(t, dict)]
        case.zone_method = "thermal zone table" + (f": {'; '.join(n for n in names if n)}"
                                                   if any(names) else "")
    if res.pairs:
        case.ire_pairs = list(res.pairs)
    if res.margin is not None:
        case.margin = res.margin
    for r in getattr(res, "risk", []) or []:
        if r.volume_ml > 0:
            case.zone_notes.append(f"{r.key.replace('_', ' ')}: {r.volume_ml:.2f} ml inside "
                                   f"the zone{' (spared)' if r.spared else ''}"
                                   f"{'; ' + r.note if r.note else ''}")
    case.zone_notes.extend(str(w) for w in res.warnings)


def _procedure_pairs(proc: Any, n_needles: int) -> list[tuple[tuple[int, int], float]]:
    """((a, b) 0-based, voltage V) of the pairs in a plan's "procedure" record; [] when
    absent or not usable."""
    if not isinstance(proc, Mapping):
        return []
    out = []
    for p in proc.get("pairs") or []:
        ab = p.get("needles") if isinstance(p, Mapping) else None
        v = _num(p.get("voltage_v")) if isinstance(p, Mapping) else None
        if (not isinstance(ab, list) or len(ab) != 2 or v is None or v <= 0
                or not all(isinstance(k, int) and 1 <= k <= n_needles for k in ab)):
            return []
        out.append(((ab[0] - 1, ab[1] - 1), v))
    return out


def _target_view(case: ComputedCase) -> dict[str, Volume]:
    """The structures with "tumor" = the plan's target lesion (issue 17)."""
    from irplan.planning.lesions import target_key, target_structures

    return target_structures(case.structures, target_key(case.plan))


def _run_safety(case: ComputedCase) -> list[Any]:
    from irplan.planning.lesions import plan_for_checks
    from irplan.planning.safety import check_plan

    return list(check_plan(plan_for_checks(case.plan, case.structures), case.structures,
                           ct=case.ct, zone=case.zone))


def load_case(plan_path: str | Path, *, compute: bool = True,
              checks: bool = True, target: str | None = None) -> ComputedCase:
    """Load a plan file, its CT and masks, and (``compute``) predict the zone, analyse
    the margin and (``checks``) run the safety checks. Plan-file problems raise
    InputError; missing or failing computations are recorded in ``status``.
    ``target``: the lesion to report coverage and margin for (default: the plan's)."""
    from irplan.io.plan_file import image_path, load_plan_with_notes, structure_paths
    from irplan.planning.lesions import plan_with_target

    plan, notes = load_plan_with_notes(plan_path)
    plan = plan_with_target(plan, target)
    case = ComputedCase(plan=plan, plan_path=Path(plan_path), notes=list(notes))
    img = image_path(plan)
    case.header = _try(case.status, "header", lambda: _first_header(img))

    # the one case loader (io/case_loader.py): the plan's own series by UID, its
    # structures in every format (SEG/RTSTRUCT too), resampled onto the CT with a note
    from irplan.io.case_loader import load_plan_image, read_structures

    def _load_ct() -> Volume:
        ct, more = load_plan_image(plan, str(plan_path))
        case.notes.extend(more)
        return ct

    case.ct = _try(case.status, "ct", _load_ct)
    dicom_cache: dict[Path, Any] = {}

    def _read(key: str, p: Path) -> Volume:
        masks, more = read_structures({key: (p, f"structures.{key}")}, case.ct,
                                      dicom_cache=dicom_cache)
        case.notes.extend(more)
        return masks[key]

    for key, p in structure_paths(plan).items():
        m = _try(case.status, f"structure:{key}", lambda key=key, p=p: _read(key, p))
        if m is not None:
            case.structures[key] = m
    if compute:
        _try(case.status, "zone", lambda: _predict_zone(case))
        tumour = (_try(case.status, "target", lambda: _target_view(case)) or {}).get("tumor")
        if case.margin is None and case.zone is not None and tumour is not None:
            from irplan.planning.margin import compute_margin

            case.margin = _try(case.status, "margin", lambda: compute_margin(
                tumour, case.zone, plan.margin_mm))
        elif case.zone is not None:
            case.status["margin"] = f"{NOT_COMPUTED}: no tumour structure in the plan"
        if checks:
            case.findings = _try(case.status, "safety", lambda: _run_safety(case))
    evs = plan.extra.get("evaluations") if isinstance(plan.extra, dict) else None
    if isinstance(evs, list) and evs:
        case.evaluation = evs[-1]
    elif isinstance(evs, dict) and evs:
        case.evaluation = evs
    return case


def build_report_content(case: ComputedCase, *, include_patient_data: bool = False,
                         pictures: Sequence[Picture] = (), pictures_status: str = "",
                         margin_map: Picture | None = None,
                         deidentified: bool = False) -> ReportContent:
    """:func:`gather_report_content` from a :class:`ComputedCase`."""
    st = case.status
    zone_status = st.get("zone") or (None if case.zone is not None else NOT_COMPUTED)
    if case.zone is not None and case.margin is None:
        zone_status = st.get("margin", "coverage and margin not computed")
    notes = list(case.notes) + [v for k, v in st.items() if k.startswith("structure:")]
    if "ct" in st:
        notes.append(f"planning CT {st['ct']}")
    if "target" in st:
        notes.append(f"target lesion {st['target']}")
    from irplan.planning.lesions import lesion_rows, target_key

    lesions = _try(st, "lesions", lambda: lesion_rows(case.structures, target_key(case.plan),
                                                      case.margin)) or []
    return gather_report_content(
        case.plan, plan_path=case.plan_path, header=case.header, ct=case.ct, zone=case.zone,
        zone_status=zone_status, zone_method=case.zone_method, zone_notes=case.zone_notes,
        margin=case.margin,
        ire_pairs=case.ire_pairs, findings=case.findings,
        findings_status=st.get("safety"), evaluation=case.evaluation,
        pictures=pictures, pictures_status=pictures_status, margin_map=margin_map,
        include_patient_data=include_patient_data, notes=notes, deidentified=deidentified,
        lesions=lesions)
