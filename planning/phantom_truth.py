"""Ground truth of a phantom case as typed dataclasses, and the exact follow-up motion.

:class:`PhantomTruth` (made by :func:`irplan.planning.phantom_patient.make_truth`) holds
one case's tumour, vessels, electrodes, true ablation zone, exact minimal ablative margin
and coverage and follow-up motion with typed fields (LPS mm, units in the names).
``to_dict()`` gives the JSON of ``truth.json`` (a file contract read by tests and research
scripts: its keys never change) and ``from_dict()`` reads it back
(``from_dict(t.to_dict()).to_dict() == t.to_dict()``). The exact planning -> follow-up
map is :func:`followup_from_planning`, its inverse :func:`planning_from_followup`.
No file IO here (``irplan.io.phantom_writer.load_truth`` reads the file).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from irplan.planning import phantom_anatomy as an
from irplan.planning.errors import InputError

SCENARIOS = ("margin_ok", "margin_at_risk", "incomplete")  # follow-up MAM >= 5, 0-5, < 0 mm

FRAME_NOTE = "DICOM patient LPS, mm (+x patient left, +y posterior, +z superior)"
MAM_DEFINITION = ("min over tumour surface of signed distance to zone surface, planning "
                  "space, negative = tumour outside")
HU_SOURCE = ("Kalender, Computed Tomography 3rd ed. 2011 (typical CT numbers); "
             "Bae, Radiology 2010;256:32-61 (portal venous enhancement); brief.")
IRE_SOURCE = ("voltage per pair = 1500 V/cm x that pair's spacing, capped at 3000 V (Kos "
              "et al. 2015, CLINICAL.md); 90 pulses of 90 us (CLINICAL.md, trial protocol)")
MASK_CONVENTIONS = {
    "liver": "parenchyma envelope incl. tumour and intrahepatic vessels, excl. IVC",
    "hepatic_vein": "hepatic veins and the inferior vena cava",
    "portal_vein": "portal venous tree incl. the extrahepatic trunk",
    "bone": "ribs and spine", "lung": "aerated lung bases", "body": "inside the skin",
    "ablation_zone": "true zone (ellipsoid) incl. vessels it spares (IRE)",
}


# ----------------------------------------------------------------------------- reading
def readonly_array(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Read-only float64 array of ``shape`` from JSON lists; InputError naming ``where``."""
    try:
        a = np.array(value, dtype=np.float64).reshape(shape)
    except (TypeError, ValueError):
        raise InputError(f"phantom truth: field '{where}' is not {shape} numbers") from None
    a.setflags(write=False)
    return a


def _field(d: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(d, Mapping) or key not in d:
        raise InputError(f"phantom truth lacks field '{where}{key}'")
    return d[key]


def _num(d: Mapping[str, Any], key: str, where: str) -> float:
    v = _field(d, key, where)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(f"phantom truth: field '{where}{key}' is not a number")
    return float(v)


def _vec(d: Mapping[str, Any], key: str, where: str, shape: tuple[int, ...] = (3,)
         ) -> np.ndarray:
    return readonly_array(_field(d, key, where), shape, where + key)


def _list(a: np.ndarray) -> list[Any]:
    return np.asarray(a).tolist()


# ----------------------------------------------------------------------------- types
@dataclass(eq=False, kw_only=True)
class TumorTruth:
    """The tumour: a sphere (``radii_mm`` three equal radii), planning LPS mm."""

    center_lps_mm: np.ndarray
    radii_mm: np.ndarray
    diameter_mm: float
    volume_ml: float
    shape: str = "sphere"

    @property
    def radius_mm(self) -> float:
        return float(self.radii_mm[0])

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "center_lps_mm": _list(self.center_lps_mm),
                "radii_mm": _list(self.radii_mm), "diameter_mm": self.diameter_mm,
                "volume_ml": self.volume_ml}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "tumor.") -> TumorTruth:
        return cls(shape=str(d.get("shape", "sphere")),
                   center_lps_mm=_vec(d, "center_lps_mm", where),
                   radii_mm=_vec(d, "radii_mm", where),
                   diameter_mm=_num(d, "diameter_mm", where),
                   volume_ml=_num(d, "volume_ml", where))


@dataclass(eq=False, kw_only=True)
class VesselTruth:
    """One vessel capsule (segment start-end, radius), LPS mm. ``kind`` is the mask key
    ("portal_vein", "hepatic_vein"); JSON key "type"."""

    kind: str
    name: str
    start_lps_mm: np.ndarray
    end_lps_mm: np.ndarray
    radius_mm: float

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.kind, "name": self.name, "start_lps_mm": _list(self.start_lps_mm),
                "end_lps_mm": _list(self.end_lps_mm), "radius_mm": self.radius_mm}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "vessels[].") -> VesselTruth:
        return cls(kind=str(_field(d, "type", where)), name=str(_field(d, "name", where)),
                   start_lps_mm=_vec(d, "start_lps_mm", where),
                   end_lps_mm=_vec(d, "end_lps_mm", where),
                   radius_mm=_num(d, "radius_mm", where))


@dataclass(eq=False, kw_only=True)
class NearestVesselTruth:
    """The vessel whose wall is nearest the tumour surface, and that gap (mm)."""

    name: str
    distance_to_tumor_surface_mm: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name,
                "distance_to_tumor_surface_mm": self.distance_to_tumor_surface_mm}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "nearest_vessel."
                  ) -> NearestVesselTruth:
        return cls(name=str(_field(d, "name", where)),
                   distance_to_tumor_surface_mm=_num(d, "distance_to_tumor_surface_mm", where))


@dataclass(eq=False, kw_only=True)
class ZoneTruth:
    """The true ablation zone: an ellipsoid in planning space. ``axes`` rows are the unit
    LPS directions of ``radii_mm``."""

    center_lps_mm: np.ndarray
    radii_mm: np.ndarray
    axes: np.ndarray
    volume_ml: float
    shape: str = "ellipsoid"
    space: str = "planning"
    axes_note: str = "rows are the unit directions of radii_mm (LPS)"

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape, "space": self.space,
                "center_lps_mm": _list(self.center_lps_mm), "radii_mm": _list(self.radii_mm),
                "axes": _list(self.axes), "axes_note": self.axes_note,
                "volume_ml": self.volume_ml}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "ablation_zone.") -> ZoneTruth:
        return cls(shape=str(d.get("shape", "ellipsoid")), space=str(d.get("space", "planning")),
                   center_lps_mm=_vec(d, "center_lps_mm", where),
                   radii_mm=_vec(d, "radii_mm", where), axes=_vec(d, "axes", where, (3, 3)),
                   axes_note=str(d.get("axes_note", ZoneTruth.axes_note)),
                   volume_ml=_num(d, "volume_ml", where))


@dataclass(eq=False, kw_only=True)
class BumpTruth:
    """Smooth displacement u(x) = amplitude_mm * exp(-|x - center|^2 / (2 sigma_mm^2))."""

    center_lps_mm: np.ndarray
    amplitude_mm: np.ndarray
    sigma_mm: float

    def displacement_mm(self, p: np.ndarray) -> np.ndarray:
        """u(p) (mm) for planning LPS points p, (3,) or (N, 3)."""
        c = np.asarray(self.center_lps_mm, float)
        amp = np.asarray(self.amplitude_mm, float)
        s = float(self.sigma_mm)
        r2 = np.sum((p - c) ** 2, axis=-1)
        return np.exp(-r2 / (2 * s * s))[..., None] * amp

    def to_dict(self) -> dict[str, Any]:
        return {"center_lps_mm": _list(self.center_lps_mm),
                "amplitude_mm": _list(self.amplitude_mm), "sigma_mm": self.sigma_mm}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "followup_transform.bump."
                  ) -> BumpTruth:
        return cls(center_lps_mm=_vec(d, "center_lps_mm", where),
                   amplitude_mm=_vec(d, "amplitude_mm", where),
                   sigma_mm=_num(d, "sigma_mm", where))


@dataclass(eq=False, kw_only=True)
class FollowupTransform:
    """Exact map planning LPS mm -> follow-up LPS mm: y = R (x + u(x)) + t (R rotation
    about the LPS origin, t translation, u the Gaussian bump)."""

    rotation_deg_xyz: np.ndarray
    rotation_matrix: np.ndarray
    translation_mm: np.ndarray
    bump: BumpTruth
    rigid_matrix_4x4: np.ndarray
    direction_note: str = "maps planning LPS mm -> follow-up LPS mm"
    formula: str = "y = R @ (x + u(x)) + t,  u(x) = A * exp(-|x - b|^2 / (2 sigma^2))"
    rotation_order: str = "R = Rz @ Ry @ Rx, about the LPS origin"
    inverse_note: str = ("irplan.planning.phantom.planning_from_followup (fixed-point "
                         "iteration)")
    rigid_note: str = ("the rigid part alone (bump left out): y = M @ (x, 1); the bump moves "
                       "the tumour by followup_bump_at_tumor_mm")

    def to_dict(self) -> dict[str, Any]:
        return {"direction": self.direction_note, "formula": self.formula,
                "rotation_deg_xyz": _list(self.rotation_deg_xyz),
                "rotation_order": self.rotation_order,
                "rotation_matrix": _list(self.rotation_matrix),
                "translation_mm": _list(self.translation_mm), "bump": self.bump.to_dict(),
                "inverse": self.inverse_note, "rigid_matrix_4x4": _list(self.rigid_matrix_4x4),
                "rigid_note": self.rigid_note}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "followup_transform."
                  ) -> FollowupTransform:
        dflt = cls.__dataclass_fields__
        return cls(rotation_deg_xyz=_vec(d, "rotation_deg_xyz", where),
                   rotation_matrix=_vec(d, "rotation_matrix", where, (3, 3)),
                   translation_mm=_vec(d, "translation_mm", where),
                   bump=BumpTruth.from_dict(_field(d, "bump", where), where + "bump."),
                   rigid_matrix_4x4=_vec(d, "rigid_matrix_4x4", where, (4, 4)),
                   direction_note=str(d.get("direction", dflt["direction_note"].default)),
                   formula=str(d.get("formula", dflt["formula"].default)),
                   rotation_order=str(d.get("rotation_order", dflt["rotation_order"].default)),
                   inverse_note=str(d.get("inverse", dflt["inverse_note"].default)),
                   rigid_note=str(d.get("rigid_note", dflt["rigid_note"].default)))


@dataclass(eq=False, kw_only=True)
class NeedleTruth:
    """One reference IRE electrode: tip/entry LPS mm, active length, path clearances."""

    name: str
    device: str
    tip_lps_mm: np.ndarray
    entry_lps_mm: np.ndarray
    exposure_mm: float
    clearance_rib_mm: float
    clearance_vessel_mm: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "device": self.device, "tip_lps_mm": _list(self.tip_lps_mm),
                "entry_lps_mm": _list(self.entry_lps_mm), "exposure_mm": self.exposure_mm,
                "clearance_rib_mm": self.clearance_rib_mm,
                "clearance_vessel_mm": self.clearance_vessel_mm}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "needles[].") -> NeedleTruth:
        return cls(name=str(_field(d, "name", where)), device=str(_field(d, "device", where)),
                   tip_lps_mm=_vec(d, "tip_lps_mm", where),
                   entry_lps_mm=_vec(d, "entry_lps_mm", where),
                   exposure_mm=_num(d, "exposure_mm", where),
                   clearance_rib_mm=_num(d, "clearance_rib_mm", where),
                   clearance_vessel_mm=_num(d, "clearance_vessel_mm", where))


@dataclass(eq=False, kw_only=True)
class PlacedNeedleTruth:
    """One electrode as placed in the intra-op CT (drawn there exactly: the metal ends at
    ``tip_lps_mm``; ``entry_lps_mm`` on the skin). ``planned_index``: 0-based index into
    ``needles`` of the planned electrode it was aimed at."""

    name: str
    planned_index: int
    tip_lps_mm: np.ndarray
    entry_lps_mm: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "planned_index": self.planned_index,
                "tip_lps_mm": _list(self.tip_lps_mm), "entry_lps_mm": _list(self.entry_lps_mm)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "placed_needles[].") -> PlacedNeedleTruth:
        return cls(name=str(_field(d, "name", where)),
                   planned_index=int(_num(d, "planned_index", where)),
                   tip_lps_mm=_vec(d, "tip_lps_mm", where),
                   entry_lps_mm=_vec(d, "entry_lps_mm", where))


@dataclass(eq=False, kw_only=True)
class IreTruth:
    """IRE pulse settings of the reference plan (``voltage_v`` None: per pair, see source)."""

    voltage_v: float | None
    pulses: int
    pulse_width_us: float
    source: str = IRE_SOURCE

    def to_dict(self) -> dict[str, Any]:
        return {"voltage_v": self.voltage_v, "pulses": self.pulses,
                "pulse_width_us": self.pulse_width_us, "source": self.source}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "ire.") -> IreTruth:
        v = _field(d, "voltage_v", where)
        return cls(voltage_v=None if v is None else _num(d, "voltage_v", where),
                   pulses=int(_num(d, "pulses", where)),
                   pulse_width_us=_num(d, "pulse_width_us", where),
                   source=str(d.get("source", IRE_SOURCE)))


@dataclass(eq=False, kw_only=True)
class GridTruth:
    """A written scan's voxel grid (as :class:`irplan.planning.volume.Volume`): size and
    spacing along (i, j, k), origin LPS mm, direction columns = i, j, k axes (JSON: the
    3x3 matrix row by row, 9 numbers)."""

    size: tuple[int, int, int]
    spacing_mm: np.ndarray
    origin_lps_mm: np.ndarray
    direction: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "spacing_mm": _list(self.spacing_mm),
                "origin_lps_mm": _list(self.origin_lps_mm),
                "direction": _list(np.asarray(self.direction).reshape(-1))}

    @classmethod
    def from_volume(cls, v: Any) -> GridTruth:
        """The grid of a Volume (``size_xyz``, ``spacing_mm``, ``origin_lps_mm``,
        ``direction``)."""
        return cls(size=tuple(int(n) for n in v.size_xyz),  # type: ignore[arg-type]
                   spacing_mm=readonly_array(v.spacing_mm, (3,), "spacing_mm"),
                   origin_lps_mm=readonly_array(v.origin_lps_mm, (3,), "origin_lps_mm"),
                   direction=readonly_array(v.direction, (3, 3), "direction"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "grids.") -> GridTruth:
        size = _vec(d, "size", where)
        return cls(size=tuple(int(n) for n in size),  # type: ignore[arg-type]
                   spacing_mm=_vec(d, "spacing_mm", where),
                   origin_lps_mm=_vec(d, "origin_lps_mm", where),
                   direction=readonly_array(_field(d, "direction", where), (3, 3), where + "direction"))


@dataclass(eq=False, kw_only=True)
class DicomSeriesTruth:
    """UIDs and date of one written DICOM series."""

    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    study_date: str

    def to_dict(self) -> dict[str, Any]:
        return {"study_uid": self.study_uid, "series_uid": self.series_uid,
                "frame_of_reference_uid": self.frame_of_reference_uid,
                "study_date": self.study_date}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "dicom.") -> DicomSeriesTruth:
        return cls(**{k: str(_field(d, k, where)) for k in
                      ("study_uid", "series_uid", "frame_of_reference_uid", "study_date")})


@dataclass(eq=False, kw_only=True)
class CaseFiles:
    """Paths (relative to the case folder) of a written case's files."""

    plan: str
    planning: str
    intraop: str
    followup: str
    seg: str
    masks_planning: dict[str, str]
    masks_followup: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan, "planning": self.planning, "intraop": self.intraop,
                "followup": self.followup, "seg": self.seg,
                "masks_planning": dict(self.masks_planning),
                "masks_followup": dict(self.masks_followup)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "files.") -> CaseFiles:
        def paths(key: str) -> dict[str, str]:
            m = _field(d, key, where)
            if not isinstance(m, Mapping):
                raise InputError(f"phantom truth: field '{where}{key}' is not an object")
            return {str(k): str(v) for k, v in m.items()}

        return cls(**{k: str(_field(d, k, where)) for k in
                      ("plan", "planning", "intraop", "followup", "seg")},
                   masks_planning=paths("masks_planning"), masks_followup=paths("masks_followup"))


@dataclass(eq=False, kw_only=True)
class PhantomTruth:
    """The exact ground truth of one phantom case (planning LPS mm unless named).

    The written-case fields (``variant``, ``grids``, ``dicom``, ``files``) are None for a
    truth made in memory (:func:`make_truth`) and set by
    ``irplan.io.phantom_writer.write_phantom_case``.
    """

    seed: int
    scenario: str
    tumor: TumorTruth
    vessels: list[VesselTruth]
    nearest_vessel: NearestVesselTruth
    nearest_vessel_distance_mm: float
    ablation_zone: ZoneTruth
    minimal_margin_mm: float
    tumor_coverage_percent: float
    followup_transform: FollowupTransform
    followup_bump_at_tumor_mm: float
    needles: list[NeedleTruth]
    needle_spacing_mm: float
    ire: IreTruth
    hu: dict[str, float] = field(default_factory=lambda: dict(an.HU))
    noise_sd_hu: float = an.NOISE_SD_HU
    blur_sigma_mm: float = an.BLUR_SIGMA_MM
    needle_radius_mm: float = an.NEEDLE_RADIUS_MM
    mask_conventions: dict[str, str] = field(default_factory=lambda: dict(MASK_CONVENTIONS))
    frame: str = FRAME_NOTE
    minimal_margin_definition: str = MAM_DEFINITION
    hu_source: str = HU_SOURCE
    # electrodes as placed in the intra-op CT (planned + a known placement error)
    placed_needles: list[PlacedNeedleTruth] = field(default_factory=list)
    variant: str | None = None
    grids: dict[str, GridTruth] | None = None
    dicom: dict[str, DicomSeriesTruth] | None = None
    files: CaseFiles | None = None

    def vessel(self, name: str) -> VesselTruth:
        """The vessel called ``name`` (KeyError when there is none)."""
        for v in self.vessels:
            if v.name == name:
                return v
        raise KeyError(f"phantom truth has no vessel '{name}'")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: exactly the keys (and order) of truth.json."""
        d: dict[str, Any] = {
            "seed": self.seed,
            "scenario": self.scenario,
            "frame": self.frame,
            "tumor": self.tumor.to_dict(),
            "vessels": [v.to_dict() for v in self.vessels],
            "nearest_vessel": self.nearest_vessel.to_dict(),
            "nearest_vessel_distance_mm": self.nearest_vessel_distance_mm,
            "ablation_zone": self.ablation_zone.to_dict(),
            "minimal_margin_mm": self.minimal_margin_mm,
            "minimal_margin_definition": self.minimal_margin_definition,
            "tumor_coverage_percent": self.tumor_coverage_percent,
            "followup_transform": self.followup_transform.to_dict(),
            "followup_bump_at_tumor_mm": self.followup_bump_at_tumor_mm,
            "needles": [n.to_dict() for n in self.needles],
            "needle_spacing_mm": self.needle_spacing_mm,
            "ire": self.ire.to_dict(),
            "hu": dict(self.hu),
            "hu_source": self.hu_source,
            "noise_sd_hu": self.noise_sd_hu,
            "blur_sigma_mm": self.blur_sigma_mm,
            "needle_radius_mm": self.needle_radius_mm,
            "mask_conventions": dict(self.mask_conventions),
        }
        if self.placed_needles:
            d["placed_needles"] = [n.to_dict() for n in self.placed_needles]
        if self.variant is not None:
            d["variant"] = self.variant
        if self.grids is not None:
            d["grids"] = {k: g.to_dict() for k, g in self.grids.items()}
        if self.dicom is not None:
            d["dicom"] = {k: s.to_dict() for k, s in self.dicom.items()}
        if self.files is not None:
            d["files"] = self.files.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PhantomTruth:
        """Read the dict of a truth.json. Raises InputError naming a missing/bad field."""
        if not isinstance(d, Mapping):
            raise InputError("phantom truth: expected a JSON object")

        def rows(key: str) -> list[Any]:
            v = _field(d, key, "")
            if not isinstance(v, list):
                raise InputError(f"phantom truth: field '{key}' is not a list")
            return v

        def table(key: str) -> dict[str, Any] | None:
            if key not in d:
                return None
            v = d[key]
            if not isinstance(v, Mapping):
                raise InputError(f"phantom truth: field '{key}' is not an object")
            return dict(v)

        grids, dicom = table("grids"), table("dicom")
        files = table("files")
        return cls(
            seed=int(_num(d, "seed", "")), scenario=str(_field(d, "scenario", "")),
            frame=str(d.get("frame", FRAME_NOTE)),
            tumor=TumorTruth.from_dict(_field(d, "tumor", "")),
            vessels=[VesselTruth.from_dict(v, f"vessels[{i}].")
                     for i, v in enumerate(rows("vessels"))],
            nearest_vessel=NearestVesselTruth.from_dict(_field(d, "nearest_vessel", "")),
            nearest_vessel_distance_mm=_num(d, "nearest_vessel_distance_mm", ""),
            ablation_zone=ZoneTruth.from_dict(_field(d, "ablation_zone", "")),
            minimal_margin_mm=_num(d, "minimal_margin_mm", ""),
            minimal_margin_definition=str(d.get("minimal_margin_definition", MAM_DEFINITION)),
            tumor_coverage_percent=_num(d, "tumor_coverage_percent", ""),
            followup_transform=FollowupTransform.from_dict(_field(d, "followup_transform", "")),
            followup_bump_at_tumor_mm=_num(d, "followup_bump_at_tumor_mm", ""),
            needles=[NeedleTruth.from_dict(n, f"needles[{i}].")
                     for i, n in enumerate(rows("needles"))],
            needle_spacing_mm=_num(d, "needle_spacing_mm", ""),
            ire=IreTruth.from_dict(_field(d, "ire", "")),
            hu={str(k): float(v) for k, v in (table("hu") or an.HU).items()},
            hu_source=str(d.get("hu_source", HU_SOURCE)),
            noise_sd_hu=float(d.get("noise_sd_hu", an.NOISE_SD_HU)),
            blur_sigma_mm=float(d.get("blur_sigma_mm", an.BLUR_SIGMA_MM)),
            needle_radius_mm=float(d.get("needle_radius_mm", an.NEEDLE_RADIUS_MM)),
            mask_conventions={str(k): str(v) for k, v in
                              (table("mask_conventions") or MASK_CONVENTIONS).items()},
            placed_needles=[PlacedNeedleTruth.from_dict(n, f"placed_needles[{i}].")
                            for i, n in enumerate(d.get("placed_needles") or [])],
            variant=None if d.get("variant") is None else str(d["variant"]),
            grids=None if grids is None else {k: GridTruth.from_dict(g, f"grids.{k}.")
                                              for k, g in grids.items()},
            dicom=None if dicom is None else {k: DicomSeriesTruth.from_dict(s, f"dicom.{k}.")
                                              for k, s in dicom.items()},
            files=None if files is None else CaseFiles.from_dict(files),
        )


def as_truth(truth: PhantomTruth | Mapping[str, Any]) -> PhantomTruth:
    """``truth`` as a PhantomTruth (a truth.json dict is read with ``from_dict``)."""
    return truth if isinstance(truth, PhantomTruth) else PhantomTruth.from_dict(truth)


# ----------------------------------------------------------------------------- motion
def followup_from_planning(points_lps_mm: np.ndarray,
                           truth: PhantomTruth | Mapping[str, Any]) -> np.ndarray:
    """Exact map planning LPS mm -> follow-up LPS mm: y = R (x + u(x)) + t.

    u(x) = A exp(-|x - b|^2 / (2 sigma^2)) is the smooth displacement bump, R the rotation,
    t the translation, all in ``truth.followup_transform``. Points (3,) or (N, 3).
    """
    tf = as_truth(truth).followup_transform
    p = np.asarray(points_lps_mm, dtype=np.float64)
    rot = np.asarray(tf.rotation_matrix, float)
    return _affine3(p + tf.bump.displacement_mm(p), rot) + np.asarray(tf.translation_mm, float)


def _affine3(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """m @ p for points p (..., 3), column by column (no BLAS threads: fast and exact)."""
    out = np.empty(np.shape(p), dtype=np.float64)
    for r in range(3):
        out[..., r] = m[r, 0] * p[..., 0] + m[r, 1] * p[..., 1] + m[r, 2] * p[..., 2]
    return out


def planning_from_followup(points_lps_mm: np.ndarray, truth: PhantomTruth | Mapping[str, Any],
                           tol_mm: float = 1e-9) -> np.ndarray:
    """Inverse of :func:`followup_from_planning` (fixed-point iteration, to ``tol_mm``).

    x = R^T (y - t) - u(x) converges because the bump's Jacobian norm is at most
    |A| / (sigma sqrt(e)) << 1. Points (3,) or (N, 3), LPS mm.
    """
    y = np.asarray(points_lps_mm, dtype=np.float64)
    cols = planning_from_followup_cols(y[..., 0], y[..., 1], y[..., 2], as_truth(truth), tol_mm)
    return np.stack(cols, axis=-1)


def planning_from_followup_cols(y0: np.ndarray, y1: np.ndarray, y2: np.ndarray,
                                truth: PhantomTruth, tol_mm: float, dtype: Any = np.float64
                                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column form of :func:`planning_from_followup` (x, y, z arrays of any shape).

    ``dtype`` float32 (rendering: ~1e-5 mm at 200 mm) halves memory traffic."""
    tf = truth.followup_transform
    rot = np.asarray(tf.rotation_matrix, float)
    t = np.asarray(tf.translation_mm, float)
    d = tuple(np.asarray(v, dtype) - dtype(t[r]) for r, v in enumerate((y0, y1, y2)))
    rot_t = rot.astype(dtype)
    q = [rot_t[0, r] * d[0] + rot_t[1, r] * d[1] + rot_t[2, r] * d[2] for r in range(3)]  # R^T d
    bp = tf.bump
    c = np.asarray(bp.center_lps_mm, dtype)
    amp = np.asarray(bp.amplitude_mm, dtype)
    k = dtype(-1.0 / (2.0 * float(bp.sigma_mm) ** 2))
    x = [qq.copy() for qq in q]
    for _ in range(100):
        g = np.exp(k * ((x[0] - c[0]) ** 2 + (x[1] - c[1]) ** 2 + (x[2] - c[2]) ** 2))
        step = 0.0
        for r in range(3):
            x_new = q[r] - g * amp[r]
            step = max(step, float(np.max(np.abs(x_new - x[r]), initial=0.0)))
            x[r] = x_new
        if step < tol_mm:
            break
    return x[0], x[1], x[2]
