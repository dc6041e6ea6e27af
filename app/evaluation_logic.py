"""Follow-up evaluation without widgets (the Evaluate step's Logic): follow-up CT,
registration (proposed, then accepted or rejected), ablation zone, margin analysis and the
technical-efficacy verdict (Ahmed et al. 2014 terms).

Every long step runs in ``tasks`` (a TaskRunner: ``start(name, fn, on_result,
on_error)``); the planning CT itself is never modified. A new CT or case drops the
follow-up, its registration and the result. Registered as ``ctx.services.evaluation``;
the widget is :mod:`irplan.app.evaluate_panel`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from irplan.planning.case import Case
from irplan.planning.volume import Volume

CHECKER_MM = 15.0
METHODS = ("rigid", "deformable", "none")
DEFAULT_MARGIN_MM = 5.0   # ACCLAIM; Laimer 2020 (HCC), Laimer 2024


def fused_arrays(ct: Volume, followup: Volume, transform: Any,
                 checker_mm: float = CHECKER_MM) -> dict[str, np.ndarray]:
    """Planning-grid arrays: "follow-up" (registered through ``transform``, planning ->
    follow-up; None = identity) and "checkerboard" (squares of ``checker_mm``)."""
    import SimpleITK as sitk

    ref = ct.to_sitk()
    fu = sitk.Resample(followup.to_sitk(), ref, transform or sitk.Transform(), sitk.sitkLinear,
                       -1024.0, ref.GetPixelID())
    fu_arr = sitk.GetArrayFromImage(fu)
    n = [max(1, int(round(checker_mm / sp))) for sp in ct.spacing_mm[::-1]]   # k, j, i
    k, j, i = (np.arange(m, dtype=np.int32) // step for m, step in zip(ct.array.shape, n))
    chk = ((k[:, None, None] + j[None, :, None] + i[None, None, :]) % 2).astype(bool)
    return {"follow-up": fu_arr, "checkerboard": np.where(chk, fu_arr, ct.array)}


class EvaluationLogic(QObject):
    """The follow-up evaluation of ``case`` (planning CT + ``tumor`` structure)."""

    changed = Signal()              # any state the controls depend on
    status = Signal(str, bool)      # one line for the user, is it an error
    followup_loaded = Signal(object)  # the follow-up Volume
    zone_changed = Signal()         # zone_followup set
    registered = Signal(object)     # RegistrationResult (proposed)
    dropped = Signal()              # follow-up registration (and result) dropped
    evaluated = Signal(object)      # EvaluationResult

    def __init__(self, case: Case, tasks: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.case, self.tasks = case, tasks
        self.method = "rigid"
        self.required_margin_mm = DEFAULT_MARGIN_MM
        self.followup: Volume | None = None
        self.followup_path: Path | None = None
        self.zone_followup: Volume | None = None
        self.registration: Any = None
        self.accepted = False
        self.result: Any = None
        case.ct_changed.connect(self.reset)
        case.case_closed.connect(self.reset)
        case.plan_replaced.connect(self.changed.emit)
        case.structures_changed.connect(lambda _key: self.changed.emit())

    # ------------------------------------------------------------------ state
    @property
    def aligned(self) -> bool:
        """The follow-up is in planning space: accepted registration, or method none."""
        return self.accepted or self.method == "none"

    def can_evaluate(self) -> bool:
        return (self.case.ct is not None and self.tumour() is not None
                and self.zone_followup is not None and self.aligned)

    def tumour(self) -> Any:
        """The plan's target lesion (issue 17: tumor, tumor_2, ...), None without a mask."""
        from irplan.planning.lesions import target_key

        return self.case.structures.get(target_key(self.case.plan))

    def _say(self, text: str) -> None:
        self.status.emit(text, False)

    def _error(self, msg: str) -> None:
        self.status.emit(msg, True)
        self.changed.emit()

    def reset(self) -> None:
        """Forget the follow-up, its zone, registration and result (another CT/case)."""
        self.followup = None
        self.followup_path = None
        self.zone_followup = None
        self._drop_registration()
        self.changed.emit()

    def set_method(self, method: str) -> None:
        if method not in METHODS:
            raise ValueError(method)
        self.method = method
        self.changed.emit()

    # ------------------------------------------------------------------ follow-up
    def case_followup_dir(self) -> Path | None:
        """The open case folder, else the open plan's folder, else the folder holding the
        planning CT (a plan saved elsewhere), when it has ``followup/``."""
        ct_parent = Path(self.case.ct_path).parent if self.case.ct_path else None
        for d in (self.case.case_dir, self.case.plan.file_dir or None, ct_parent):
            if d is not None and (Path(d) / "followup").is_dir():
                return Path(d)
        return None

    def load_followup(self, path: str | Path, zone_mask: str | Path | None = None) -> Any:
        """Load a follow-up CT (DICOM folder or NIfTI) in the background (+ a zone mask)."""
        p = Path(path)

        def job(progress, cancel):
            from irplan.app.cmd_evaluate import load_image, load_mask

            progress(0.1, "Reading the follow-up CT")
            vol = load_image(p, "follow-up CT")
            zone = load_mask(zone_mask, "ablation-zone") if zone_mask else None
            return vol, zone

        def done(res):
            vol, zone = res
            self.set_followup(vol, p)
            if zone is not None:
                self.set_zone(zone)

        self._say(f"loading {p.name}…")
        return self.tasks.start("Loading the follow-up CT", job, done, self._error)

    def load_case_followup(self) -> Any:
        d = self.case_followup_dir()
        if d is None:
            self._error("the open case has no followup/ folder")
            return None
        z = d / "masks" / "followup" / "ablation_zone.nii.gz"
        return self.load_followup(d / "followup", z if z.exists() else None)

    def set_followup(self, vol: Volume, path: str | Path | None = None) -> None:
        self.followup = vol
        self.followup_path = Path(path) if path else None
        self._drop_registration()
        self.followup_loaded.emit(vol)
        self._say("follow-up loaded: register it next")
        self.changed.emit()

    # ------------------------------------------------------------------ zone
    def set_zone(self, mask: Volume) -> None:
        """The ablation zone mask in follow-up space (uint8)."""
        self.zone_followup = mask
        self.zone_changed.emit()
        self.changed.emit()

    def segment_zone_at(self, p_lps_mm: np.ndarray) -> Any:
        """Region growing on the follow-up from a planning-space point (mapped into the
        follow-up through the registration, identity before registering)."""
        if self.followup is None:
            self._error("load the follow-up CT first")
            return None
        p = np.asarray(p_lps_mm, float)
        if self.registration is not None:
            p = self.registration.map_points(p)
        fu = self.followup

        def job(progress, cancel):
            from irplan.planning.ablation_segmentation import segment_ablation_zone

            return segment_ablation_zone(fu, p)

        self._say("growing the ablation zone…")
        return self.tasks.start("Segmenting the ablation zone", job, self.set_zone,
                                self._error)

    def zone_on_planning_grid(self, on_done) -> Any:
        """Map the zone into planning space in the background: ``on_done(mask)`` unless
        the registration, zone or CT changed meanwhile (before a registration the
        follow-up is used as it is)."""
        if self.zone_followup is None or self.case.ct is None:
            return None
        from irplan.planning.evaluation import zone_on_grid
        from irplan.planning.registration import identity_result

        reg, zone, ct = self.registration, self.zone_followup, self.case.ct
        tf = (reg or identity_result()).transform

        def job(progress, cancel):
            return zone_on_grid(zone, ct, tf)

        def done(zp):
            if self.registration is reg and self.zone_followup is zone and self.case.ct is ct:
                on_done(zp)

        return self.tasks.start("Mapping the ablation zone", job, done, self._error)

    def fused_on_planning_grid(self, on_done) -> Any:
        """The follow-up resampled onto the planning grid (:func:`fused_arrays`) in the
        background: ``on_done(arrays)`` unless the registration or CT changed meanwhile."""
        if self.case.ct is None or self.followup is None:
            return None
        ct, fu, reg = self.case.ct, self.followup, self.registration
        tf = reg.transform if reg is not None else None

        def job(progress, cancel):
            progress(0.1, "resampling the follow-up onto the planning grid")
            return fused_arrays(ct, fu, tf)

        def done(res):
            if self.registration is reg and self.case.ct is ct:
                on_done(res)

        return self.tasks.start("Preparing the fused display", job, done, self._error)

    # ------------------------------------------------------------------ registration
    def register(self, method: str | None = None) -> Any:
        """Register the follow-up to the planning CT in the background (proposed until
        accepted)."""
        if method is not None:
            self.set_method(method)
        method = self.method
        ct, fu = self.case.ct, self.followup
        if ct is None or fu is None:
            self._error("load the planning CT and the follow-up CT first")
            return None
        tumor = self.tumour()
        liver = self.case.structures.get("liver")
        zone = self.zone_followup

        def job(progress, cancel):
            from irplan.planning.registration import register

            progress(0.05, f"{method} registration")
            return register(ct, fu, method, target=tumor, liver=liver, followup_exclude=zone)

        self._say(f"{method} registration running…")
        return self.tasks.start(f"Registering ({method})", job, self._on_registered,
                                self._error)

    def _on_registered(self, reg: Any) -> None:
        self._drop_registration()
        self.registration = reg
        self.accepted = reg.method == "none"
        self._say("check the checkerboard/flicker, then Accept or Reject")
        self.registered.emit(reg)
        self.changed.emit()

    def accept_registration(self) -> None:
        if self.registration is None:
            return
        self.accepted = True
        self._say("registration accepted: evaluate the margin")
        self.changed.emit()

    def reject_registration(self) -> None:
        self._drop_registration()
        self._say("registration rejected")
        self.changed.emit()

    def _drop_registration(self) -> None:
        self.registration = None
        self.accepted = False
        self.result = None
        self.dropped.emit()

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, required_margin_mm: float | None = None) -> Any:
        """Margin analysis with the accepted registration, in the background."""
        if required_margin_mm is not None:
            self.required_margin_mm = float(required_margin_mm)
        ct = self.case.ct
        tumor = self.tumour()
        if ct is None or tumor is None:
            from irplan.planning.lesions import target_key
            from irplan.planning.structures import lesion_name

            self._error("the case needs a planning CT and a mask of the target lesion "
                        f"({lesion_name(target_key(self.case.plan))})")
            return None
        if self.zone_followup is None:
            self._error("import or grow the ablation zone first")
            return None
        from irplan.planning.registration import identity_result

        if self.registration is None and self.method == "none":
            self.registration = identity_result()
            self.accepted = True
        if self.registration is None or not self.accepted:
            self._error("accept a registration first (or choose 'none')")
            return None
        reg, zone, fu = self.registration, self.zone_followup, self.followup
        margin_mm = self.required_margin_mm
        plan_zone = self.case.structures.get("ablation_zone")

        def job(progress, cancel):
            from irplan.planning.evaluation import evaluate

            progress(0.1, "margin analysis")
            return evaluate(ct, fu, tumor, zone, registration=reg,
                            plan_zone=plan_zone, required_margin_mm=margin_mm)

        self._say("evaluating the margin…")
        return self.tasks.start("Evaluating the margin", job, self._on_evaluated, self._error)

    def _on_evaluated(self, res: Any) -> None:
        self.result = res
        self._say("done")
        self.evaluated.emit(res)
        self.changed.emit()
