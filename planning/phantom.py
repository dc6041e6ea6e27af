"""Synthetic abdominal CT phantoms with exact ground truth (pure numpy/scipy, no file IO).

Every structure is defined analytically in patient space (DICOM LPS, mm: +x = patient
left, +y = posterior, +z = superior) and sampled on any grid (a :class:`Volume` template),
so the same anatomy appears on axial, oblique and flipped grids. Three scans of one
patient are made:

* planning portal-venous ceCT (:func:`make_planning`),
* intra-procedural CT with four parallel IRE electrodes in place (:func:`make_intraop`;
  :func:`make_planning_and_intraop` makes both from one anatomy pass),
* 1-month follow-up ceCT (:func:`make_followup`): the same anatomy moved by a known rigid
  transform plus a smooth Gaussian displacement bump, with a non-enhancing ablation zone.

This module is the public entry point; the work is done in

* :mod:`irplan.planning.phantom_anatomy` - CT numbers and the analytic organs,
* :mod:`irplan.planning.phantom_patient` - :func:`make_truth`: the seed's tumour,
  electrodes, zone and motion with the exact MAM and coverage,
* :mod:`irplan.planning.phantom_truth` - :class:`PhantomTruth` (typed fields, JSON of
  truth.json via ``to_dict``/``from_dict``) and the exact motion
  :func:`followup_from_planning` / :func:`planning_from_followup`,
* :mod:`irplan.planning.phantom_render` - sampling on a grid, blur and noise.
"""

from __future__ import annotations

import numpy as np

from irplan.planning import phantom_anatomy as an
from irplan.planning.errors import InputError
from irplan.planning.phantom_anatomy import (  # noqa: F401 - re-exported
    BLUR_SIGMA_MM,
    HU,
    MASK_KEYS,
    NEEDLE_DRAW_RADIUS_MM,
    NEEDLE_RADIUS_MM,
    NOISE_SD_HU,
    rotation_matrix_deg,
)
from irplan.planning.phantom_patient import (  # noqa: F401 - re-exported
    make_truth,
    minimal_margin_mm,
    point_ellipsoid_distance_mm,
    tumor_coverage_percent,
)
from irplan.planning.phantom_render import (  # noqa: F401 - re-exported
    PhantomScan,
    planning_zone_mask,
    render,
)
from irplan.planning.phantom_truth import (  # noqa: F401 - re-exported
    SCENARIOS,
    PhantomTruth,
    followup_from_planning,
    planning_from_followup,
)
from irplan.planning.phantom_version import PHANTOM_VERSION  # noqa: F401 - re-exported
from irplan.planning.volume import Volume

VARIANTS = ("axial", "oblique", "flipped")
DEFAULT_SIZE = (256, 256, 128)
DEFAULT_SPACING_MM = (1.5, 1.5, 2.0)


def phantom_grid(variant: str = "axial", size: tuple[int, int, int] | None = None,
                 spacing_mm: tuple[float, float, float] | float | None = None,
                 centre_lps_mm: tuple[float, float, float] = (0.0, 5.0, -1.0)) -> Volume:
    """An empty grid (uint8 zero Volume, no memory) centred on the phantom abdomen.

    ``variant``: "axial" (identity direction), "oblique" (rotated 20 deg about an oblique
    axis) or "flipped" (rows run posterior->anterior and slices superior->inferior:
    direction diag(1, -1, -1)). ``size`` (i, j, k) voxels, ``spacing_mm`` (i, j, k).
    """
    if variant not in VARIANTS:
        raise InputError(f"phantom variant '{variant}': use one of {', '.join(VARIANTS)}")
    size_ijk = np.asarray(size if size is not None else DEFAULT_SIZE, dtype=int).reshape(3)
    sp = np.broadcast_to(np.asarray(spacing_mm if spacing_mm is not None
                                    else DEFAULT_SPACING_MM, float), (3,)).copy()
    if np.any(size_ijk < 2) or np.any(sp <= 0):
        raise InputError(f"phantom grid: size {size_ijk.tolist()} / spacing {sp.tolist()} "
                         "must be >= 2 voxels and > 0 mm")
    if variant == "axial":
        d = np.eye(3)
    elif variant == "oblique":
        d = an.axis_angle(np.array([1.0, 2.0, 1.5]), 20.0)
    else:
        d = np.diag([1.0, -1.0, -1.0])
    half = d @ (sp * (size_ijk - 1) / 2.0)
    origin = np.asarray(centre_lps_mm, float) - half
    arr = np.broadcast_to(np.uint8(0), tuple(size_ijk[::-1]))
    return Volume(arr, origin, sp, d, {"phantom_variant": variant})


def make_planning(template: Volume | None = None, seed: int = 0, scenario: str = "margin_ok",
                  truth: PhantomTruth | None = None
                  ) -> tuple[Volume, dict[str, Volume], PhantomTruth]:
    """Planning portal-venous ceCT on ``template``'s grid (default :func:`phantom_grid`).

    Returns (HU int16 Volume, masks {tumor, liver, portal_vein, hepatic_vein, bone, lung,
    body} as uint8 0/1 Volumes on the same grid, the truth).
    """
    truth = truth if truth is not None else make_truth(seed, scenario)
    grid = template if template is not None else phantom_grid()
    scan = render(grid, truth, kind="planning", seed=seed)["planning"]
    return scan.ct, scan.masks, truth


def make_planning_and_intraop(template: Volume, truth: PhantomTruth, seed: int = 0
                              ) -> tuple[Volume, dict[str, Volume], Volume]:
    """Planning CT, its masks and the intra-op CT (electrodes in) from one anatomy pass."""
    scans = render(template, truth, kind="planning", seed=seed)
    return scans["planning"].ct, scans["planning"].masks, scans["intraop"].ct


def make_intraop(template: Volume, truth: PhantomTruth, seed: int = 0) -> Volume:
    """Intra-procedural CT (same anatomy and frame as planning) with the electrodes in."""
    return render(template, truth, kind="planning", seed=seed)["intraop"].ct


def followup_grid(planning_template: Volume) -> Volume:
    """Axial follow-up grid: same size/spacing as planning, table shifted by (2, -3, 8) mm."""
    g = phantom_grid("axial", planning_template.size_xyz, tuple(planning_template.spacing_mm))
    return Volume(g.array, g.origin_lps_mm + np.array([2.0, -3.0, 8.0]), g.spacing_mm,
                  g.direction, {"phantom_variant": "followup"})


def make_followup(template: Volume, truth: PhantomTruth, seed: int = 0
                  ) -> tuple[Volume, dict[str, Volume]]:
    """1-month follow-up ceCT on ``template`` (follow-up frame) and its masks.

    Masks: "ablation_zone" and "tumor", mapped into the follow-up frame with the exact
    transform of ``truth``.
    """
    scan = render(template, truth, kind="followup", seed=seed)["followup"]
    return scan.ct, scan.masks
