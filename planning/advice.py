"""Modality advice: distance from the tumour to the nearest major vessel and bile duct.

Rule (../shared/CLINICAL.md, the clinical IRE protocol): IRE is indicated for liver
tumours unsuitable for resection and thermal ablation because they lie **< 1 cm from
major hepatic vessels or bile ducts**; near such structures thermal ablation risks heat
sink (viable tumour next to vessels > 3 mm, pig RFA, AJR 2002) and thermal injury of the
vessel wall or duct. "Major" vessel here = calibre >= 3 mm (the heat-sink limit of the
same study), from a calibre map or :func:`irplan.planning.safety.calibre_map_mm`.
All segmented bile ducts count. Distances are surface to surface, mm (0 = touching).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from irplan.planning.errors import InputError
from irplan.planning.safety import (
    DistanceField,
    calibre_map_mm,
    pad_volume,
    structure_display_name,
    structure_role,
)
from irplan.planning.volume import Volume

IRE_PROXIMITY_MM = 10.0     # CLINICAL.md: < 1 cm from major vessels or bile ducts
MAJOR_VESSEL_CALIBRE_MM = 3.0


@dataclass
class StructureDistance:
    key: str
    name: str
    distance_mm: float
    calibre_mm: float | None = None


@dataclass
class ModalityAdvice:
    """``recommended``: "IRE" when a major vessel or duct is < 10 mm away, else "either"
    (the choice then rests on size and other criteria). ``message``: plain text."""

    nearest_vessel: StructureDistance | None
    nearest_duct: StructureDistance | None
    recommended: str
    message: str
    distances: list[StructureDistance] = field(default_factory=list)


def _distance_to(tumour_field: DistanceField, mask: Volume,
                 calibre: Volume | None, min_calibre: float) -> tuple[float, float | None]:
    kji = np.argwhere(mask.array != 0)
    if len(kji) == 0:
        return np.inf, None
    cals = calibre.array[tuple(kji.T)] if calibre is not None else None
    if cals is not None:
        keep = cals >= min_calibre
        if not keep.any():
            return np.inf, None
        kji, cals = kji[keep], cals[keep]
    pts = mask.index_to_lps(kji[:, ::-1].astype(np.float64))
    d = tumour_field.sample(pts) - float(np.min(mask.spacing_mm)) / 2
    if np.all(np.isnan(d)):            # beyond the (padded) tumour grid: far away
        return np.inf, None
    k = int(np.nanargmin(d))
    return max(float(d[k]), 0.0), (None if cals is None else float(cals[k]))


def modality_advice(tumour: Volume, structures: dict[str, Volume],
                    calibre_mm: dict[str, Volume] | None = None,
                    threshold_mm: float = IRE_PROXIMITY_MM,
                    major_calibre_mm: float = MAJOR_VESSEL_CALIBRE_MM) -> ModalityAdvice:
    """Advice for one tumour mask (uint8) against vessel and bile-duct masks (any grid).

    Distances beyond 40 mm are reported as "> 40 mm" (the distance map's reach).
    """
    if not (tumour.array != 0).any():
        raise InputError("modality advice: the tumour mask is empty")
    calibre_mm = dict(calibre_mm or {})
    tf = DistanceField(pad_volume(tumour, 40.0), pad_mm=40.0)  # outside its grid = no tumour
    dists: list[StructureDistance] = []
    for key, mask in structures.items():
        role = structure_role(key)
        if role == "vessel":
            cal = calibre_mm.get(key)
            if cal is None and (mask.array != 0).any():
                cal = calibre_map_mm(mask)
            d, c = _distance_to(tf, mask, cal, major_calibre_mm)
        elif role == "duct":
            d, c = _distance_to(tf, mask, None, 0.0)
        else:
            continue
        if np.isfinite(d):
            dists.append(StructureDistance(key, structure_display_name(key), d, c))
    vessels = [s for s in dists if structure_role(s.key) == "vessel"]
    ducts = [s for s in dists if structure_role(s.key) == "duct"]
    nv = min(vessels, key=lambda s: s.distance_mm) if vessels else None
    nd = min(ducts, key=lambda s: s.distance_mm) if ducts else None

    def say(s: StructureDistance | None, what: str) -> str:
        if s is None:
            return f"no {what} segmented"
        cal = f", calibre {s.calibre_mm:.1f} mm" if s.calibre_mm is not None else ""
        far = s.distance_mm >= 40.0 - 1e-6
        return (f"nearest {what}: {s.name} {'> 40' if far else f'{s.distance_mm:.1f}'} mm"
                f"{cal}")

    close = [s for s in (nv, nd) if s is not None and s.distance_mm < threshold_mm]
    text = f"Tumour: {say(nv, 'major vessel')}; {say(nd, 'bile duct')}."
    if close:
        names = " and ".join(f"{s.name} ({s.distance_mm:.1f} mm)" for s in close)
        text += (f" Under {threshold_mm:g} mm from {names}: thermal ablation risks heat sink "
                 "(viable tumour next to the vessel) and thermal injury of the vessel wall or "
                 "bile duct; IRE is the indicated technique (protocol: tumours < 1 cm from "
                 "major hepatic vessels or bile ducts, CLINICAL.md).")
        rec = "IRE"
    else:
        text += (f" No major vessel or bile duct within {threshold_mm:g} mm: thermal ablation "
                 "is not limited by proximity (choose by size and location).")
        rec = "either"
    return ModalityAdvice(nv, nd, rec, text, dists)
