"""Tissue electric conductivities (S/m, low frequency) for the IRE field model, with sources.

The field *shape* depends only on conductivity ratios between tissues; the absolute value
scales the predicted current. Values are baselines before electroporation (the optional
dynamic model in :mod:`irplan.planning.ire_field` raises them where |E| is high).
Users may pass their own table (``dict[str, float]``) to :func:`conductivity_map`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irplan.planning.errors import InputError
from irplan.planning.volume import Volume


@dataclass(frozen=True)
class TissueConductivity:
    key: str
    sigma_s_per_m: float
    source: str


CONDUCTIVITIES: dict[str, TissueConductivity] = {
    t.key: t for t in (
        TissueConductivity(
            "liver", 0.12,
            "Porcine liver baseline 0.12 S/m (Beitel-White et al. 2021, IEEE TBME 68:771, "
            "PMC8048145; CLINICAL.md). Human liver in vivo 0.13 +/- 0.06 S/m at 3 kHz "
            "(Sarreshtehdari et al. 2024, Biosensors 14:382) agrees."),
        TissueConductivity(
            "tumor", 0.41,
            "Human liver tumours in vivo 0.41 +/- 0.10 S/m at 3 kHz vs normal liver 0.13 "
            "(Sarreshtehdari et al. 2024, Biosensors 14:382; ex vivo 0.27 +/- 0.09)."),
        TissueConductivity(
            "blood", 0.67,
            "Blood 0.67 S/m, low frequency (Geddes and Baker 1967, as tabulated in "
            "PMC5361410 Table 1)."),
        TissueConductivity(
            "bile", 0.67,
            "No cited bile value found here: bile ducts take the blood value (user-supplied "
            "assumption; replace when a measured value is at hand)."),
        TissueConductivity(
            "fat", 0.025,
            "Fat 0.025 S/m, low frequency (Gabriel et al. 1996, as tabulated in PMC5361410)."),
        TissueConductivity(
            "muscle", 0.16,
            "Muscle 0.16 S/m, low frequency (Geddes and Baker 1967, PMC5361410 Table 1); "
            "used for non-liver soft tissue inside the body."),
        TissueConductivity(
            "bone", 0.0214,
            "Cancellous bone 0.0214 S/m (Akhtari et al. 2002, PMC5361410 Table 1)."),
        TissueConductivity(
            "lung", 0.025,
            "No lung value found here: air-filled lung taken as poorly conducting, equal to "
            "fat (user-supplied assumption)."),
    )
}

# Structure key -> tissue; later entries are painted over earlier ones.
STRUCTURE_TISSUE: tuple[tuple[str, str], ...] = (
    ("lung", "lung"),
    ("bone", "bone"),
    ("liver", "liver"),
    ("bile_duct", "bile"),
    ("tumor", "tumor"),
    ("portal_vein", "blood"),
    ("hepatic_vein", "blood"),
    ("artery", "blood"),
)


def mask_on_grid(mask: Volume, grid: Volume) -> np.ndarray:
    """``mask != 0`` sampled on ``grid`` (nearest neighbour, by LPS position), bool [k, j, i].

    Direct index arithmetic (the grid-to-mask index map is affine): for a zone/solver grid
    and a 256^2 x 128 CT mask ~10x faster than a SimpleITK resample of the whole mask."""
    if mask.same_geometry(grid):
        return mask.array != 0
    a, b = grid.index_map_to(mask)  # continuous mask index (i, j, k) = a @ (i, j, k)_grid + b
    nk, nj, ni = grid.array.shape
    size = mask.size_xyz
    if np.allclose(a - np.diag(np.diag(a)), 0.0, atol=1e-9):
        # axes parallel (the usual case: axis-aligned zone grid, CT mask): the index map is
        # separable, one gather of the outer product (measured 2x faster, same result)
        ax_idx = []
        ok = []
        for c, n in zip(range(3), (ni, nj, nk)):
            v = np.rint(b[c] + a[c, c] * np.arange(n)).astype(np.int64)
            ok.append((v >= 0) & (v < size[c]))
            ax_idx.append(np.clip(v, 0, size[c] - 1))
        out = mask.array[np.ix_(ax_idx[2], ax_idx[1], ax_idx[0])] != 0
        out &= ok[2][:, None, None] & ok[1][None, :, None] & ok[0][None, None, :]
        return out
    gi = np.arange(ni)[None, None, :]
    gj = np.arange(nj)[None, :, None]
    gk = np.arange(nk)[:, None, None]
    inside = np.ones(grid.array.shape, dtype=bool)
    idx = []
    for c in range(3):
        v = np.rint(b[c] + a[c, 0] * gi + a[c, 1] * gj + a[c, 2] * gk).astype(np.int64)
        v = np.broadcast_to(v, grid.array.shape)
        inside &= (v >= 0) & (v < size[c])
        idx.append(np.clip(v, 0, size[c] - 1))
    out = mask.array[idx[2], idx[1], idx[0]] != 0
    return out & inside


def default_table() -> dict[str, float]:
    """Tissue key -> S/m of the cited defaults."""
    return {k: t.sigma_s_per_m for k, t in CONDUCTIVITIES.items()}


def conductivity_map(grid: Volume, structures: dict[str, Volume],
                     table: dict[str, float] | None = None,
                     background: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Conductivity (S/m) per node of ``grid`` from structure masks (any grid, resampled by
    LPS position, nearest neighbour). Returns (array [k, j, i], notes).

    Background: ``background`` tissue if given; else liver when there is no liver mask
    (homogeneous liver assumed, said in the notes), else muscle ("soft tissue") outside
    the liver; outside a ``body`` mask 0 (air). Vessels are painted last (blood wins over
    tumour where they overlap).
    """
    tab = default_table()
    if table:
        for k, v in table.items():
            if not (np.isfinite(v) and v > 0):
                raise InputError(f"conductivity of {k!r} must be > 0 S/m, got {v}")
            tab[k] = float(v)
    notes: list[str] = []
    if background is None:
        background = "muscle" if "liver" in structures else "liver"
        if "liver" not in structures:
            notes.append("no liver mask: tissue around the electrodes taken as homogeneous "
                         f"liver ({tab['liver']:g} S/m)")
    if background not in tab:
        raise InputError(f"unknown background tissue {background!r} (known: {', '.join(tab)})")
    sigma = np.full(grid.array.shape, tab[background], dtype=np.float64)
    body = structures.get("body")
    if body is not None:
        sigma[~mask_on_grid(body, grid)] = 0.0  # air outside the body does not conduct
    for key, tissue in STRUCTURE_TISSUE:
        if key == "body":
            continue
        mask = structures.get(key)
        if mask is None:
            continue
        sigma[mask_on_grid(mask, grid)] = tab[tissue]
    return sigma, notes


# --------------------------------------------------------------------------- pair current
@dataclass(frozen=True)
class PairCurrentModel:
    """Conductivity during the pulse train, for the predicted PAIR CURRENT only (issue 14).

    The zone keeps its static, empirically fitted threshold (resources/zone_settings.json);
    the current needs tissue that conducts better while pulsing. Two documented factors on
    the baseline sigma0 of each node:

    - electroporation: sigma0 + (sigma_sat - sigma0) s(|E|), s the C1 sigmoid of
      :func:`irplan.planning.ire_field.dynamic_sigma` between ``e_rev`` and ``e_irr`` (the
      form of Šel et al. 2005, IEEE TBME 52:816; thresholds 362 / 637 V/cm, Miklavčič
      2000). sigma_sat = 3.6 x liver baseline 0.12 S/m = 0.43 S/m: 3.6 = 0.241 / 0.067 S/m,
      Šel's rabbit liver conductivities as quoted in the IRE modelling literature (not
      re-read from the paper here). sigma_sat is common to all tissues (ASSUMPTION made
      here: permeabilised membranes no longer insulate, so tissues converge; tumour's
      baseline 0.41 S/m, Sarreshtehdari 2024, is already there and does not rise);
    - temperature at the end of the train: x (1 + alpha dT), alpha = 1.2 %/degC for porcine
      liver (Beitel-White et al. 2021, PMC8048145), dT the adiabatic Joule heating
      sigma_ep |E|^2 t_on / (rho c) with t_on = pulses x pulse width, rho = 1079 kg/m^3 and
      c = 3540 J/(kg K) for liver (IT'IS Foundation tissue database v4.1), capped at
      ``max_heating_c`` = 40 degC: the largest rise van den Bos et al. measured in a gel
      phantom over their voltage range (2.5-40.4 degC; "Thermal energy during
      irreversible electroporation and the influence of different ablation parameters",
      JVIR 2016), since adiabatic heating overestimates next to the electrodes, where
      perfusion and conduction spread the heat.

    Measured (bench/validate_zones.py): 1500 V/cm, 19 G, 20 mm exposure, 90 x 90 us ->
    ~24 A at 15 mm and ~31 A at 20 mm spacing, inside the clinical 20-50 A window
    (CLINICAL.md); porcine muscle 28.5-31.7 A (Ben-David 2013) is of the same order.
    """

    sigma_ratio: float = 3.6
    sigma_base_s_per_m: float = 0.12        # liver baseline (Beitel-White 2021)
    e_rev_v_per_cm: float = 362.0
    e_irr_v_per_cm: float = 637.0
    temp_coeff_per_c: float = 0.012
    rho_c_j_per_m3_k: float = 1079.0 * 3540.0
    max_heating_c: float = 40.0
    source: str = ("electroporation rise: Šel et al. 2005 sigmoid form to 3.6 x the liver "
                   "baseline 0.12 S/m for every tissue (ratio 0.241/0.067 S/m as quoted; not "
                   "re-read here; common saturation assumed here), thresholds 362/637 V/cm "
                   "(Miklavčič 2000); temperature: 1.2 %/degC (Beitel-White 2021, "
                   "PMC8048145), adiabatic Joule heating, rho c of liver (IT'IS v4.1), "
                   "capped at 40 degC (largest rise in van den Bos, JVIR 2016)")

    def sigma_s_per_m(self, sigma0: np.ndarray, e_v_per_cm: np.ndarray,
                      pulse_on_s: float) -> np.ndarray:
        """Conductivity (S/m) at the end of a pulse train of ``pulse_on_s`` seconds on."""
        x = np.clip((e_v_per_cm - self.e_rev_v_per_cm)
                    / max(self.e_irr_v_per_cm - self.e_rev_v_per_cm, 1e-9), 0.0, 1.0)
        sat = np.maximum(sigma0, self.sigma_ratio * self.sigma_base_s_per_m)
        sep = sigma0 + (sat - sigma0) * (x * x * (3.0 - 2.0 * x))
        heat_c = np.minimum(sep * (e_v_per_cm * 100.0) ** 2 * pulse_on_s / self.rho_c_j_per_m3_k,
                            self.max_heating_c)
        return sep * (1.0 + self.temp_coeff_per_c * heat_c)


PAIR_CURRENT_MODEL = PairCurrentModel()
