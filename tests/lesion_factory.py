"""A second lesion for the phantom case (issue 17 tests): a sphere in the liver, away from
the first tumour and the vessels, written beside the case's masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import distance_transform_edt

from irplan.planning.volume import Volume


def second_lesion(tumour: Volume, liver: Volume, vessels: list[Volume],
                  radius_mm: float = 7.0, min_gap_mm: float = 25.0) -> Volume:
    """A sphere of ``radius_mm`` inside the liver (>= 3 mm from its border and from every
    vessel), its centre at least ``min_gap_mm`` beyond the tumour's surface (the nearest
    such point: deterministic). uint8 0/1 on the tumour's grid."""
    sp = np.asarray(tumour.spacing_mm, float)[::-1]            # (k, j, i) mm
    inside = liver.array != 0
    for v in vessels:
        inside &= v.array == 0
    room = distance_transform_edt(inside, sampling=sp)          # mm to the liver edge/vessels
    gap = distance_transform_edt(tumour.array == 0, sampling=sp)
    ok = (room >= radius_mm + 3.0) & (gap >= min_gap_mm)
    if not ok.any():
        raise ValueError("no room for a second lesion in this liver")
    cand = np.argwhere(ok)
    best = cand[np.argmin(gap[tuple(cand.T)])]
    kk, jj, ii = np.indices(tumour.array.shape, dtype=np.float32)
    d2 = (((kk - best[0]) * sp[0]) ** 2 + ((jj - best[1]) * sp[1]) ** 2
          + ((ii - best[2]) * sp[2]) ** 2)
    out = tumour.with_array((d2 <= radius_mm ** 2).astype(np.uint8))
    out.metadata = {"structure": "tumor", "name": "second lesion"}
    return out


def add_second_lesion(case_dir: Path, radius_mm: float = 7.0) -> Path:
    """Write ``masks/planning/tumor_2.nii.gz`` of the phantom case in ``case_dir``."""
    from irplan.io.masks import read_mask, write_mask

    masks = case_dir / "masks" / "planning"
    t = read_mask(masks / "tumor.nii.gz")
    liver = read_mask(masks / "liver.nii.gz")
    vessels = [read_mask(masks / f"{k}.nii.gz") for k in ("portal_vein", "hepatic_vein")]
    return write_mask(second_lesion(t, liver, vessels, radius_mm), masks / "tumor_2.nii.gz")
