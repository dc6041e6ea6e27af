"""IRE electric field: finite-volume solver of div(sigma grad phi) = 0 around needle electrodes.

Frame and units: the solver grid is an axis-aligned LPS grid (identity direction), node =
voxel centre, spacing ``h`` mm (isotropic). Potentials in V, conductivities in S/m,
fields in V/cm, currents in A.

Model (CLINICAL.md "IRE physics"): quasi-static potential, electrode active parts
(``exposure_mm`` back from the tip, radius ``radius_mm``) are equipotential conductors,
insulated shafts do not conduct. Outer box boundary (``boundary``): "farfield" (default of
:func:`solve_ire`) is the Robin condition of a dipole field towards a floating shell (see
``FieldSolver._farfield_faces``); "insulated" (Neumann) is kept for the slab tests. With
the far-field boundary the default padding (``DEFAULT_PADDING_MM`` = 20 mm) is enough:
doubling it changes the zone by < 0.05 mm at 350 and 637 V/cm, while the former insulated
15 mm box was 2.5 mm narrow and 3.6 mm too deep at 350 V/cm (issue 14;
tests/test_ire_field.py, bench/validate_zones.py).

Discretisation: 7-point finite-volume stencil, face conductance ``G = h * harmonic_mean(
sigma_a, sigma_b)``. Electrode nodes (voxel centres within ``max(a, h*sqrt(3)/2)`` of the
axis, so the cells always enclose the axis) are Dirichlet nodes. Sub-voxel treatment:
every face between an electrode node and a free node ``m`` gets the conductance of the
exact 2-D radial solution ``phi = V + A ln(r/a)`` of a rod of the true radius ``a``::

    G = sigma_m * J / ln(r_m / a),   J = integral over the face of (w . n) / |w|^2 dA

where ``w`` is the vector from the active axis to the face point (perpendicular part) and
``r_m`` the distance of node ``m`` from the axis (``J`` = face area times the angle the face
subtends, counted only where the face point projects onto the active part). This is a
generalised Peaceman well model: for an axis through node centres it gives the factor
``pi / (2 ln(h/a))`` on the 4 side faces. Faces beyond the ends keep the plain
conductance. Measured error against the analytic two-rod formula: see the tests.

Measured accuracy (tests/test_ire_field.py, bench/bench_zone.py; two infinite rods 15 mm
apart, a = 0.535 mm, 2250 V): max |E| error on the line between them, >= 3.5 mm from the
axes, 0.9 % (2 mm grid), 2.3 % (1 mm), 0.2 % (0.5 mm); staircase electrodes without the
sub-voxel model: 47 / 4.7 / 3.4 %. Current per unit length -2 % (the insulated box walls and
ln((d-a)/a) vs the exact arccosh(d/2a)). The same pair at an oblique angle: current and
zone volume within 0.3 / 0.7 %.

Superposition (linear case): one sparse matrix for all electrodes at fixed potential; one
solve per electrode (that electrode 1 V, the rest 0 V; pyamg smoothed-aggregation
preconditioned CG, hierarchy built once; the last electrode's solution is 1 minus the
others' because the box is insulated); the N x N conductance matrix ``C`` (A/V) from the
boundary fluxes; each pulsed pair (+V, 0 V, others floating with zero net current) is then a
small linear solve for the floating potentials and a linear combination of fields.
Preconditioner: pyamg classical Ruge-Stuben AMG by default (measured ~2x faster here than
smoothed aggregation, which stays available as ``amg="sa"``). The GUI's live 2 mm preview
uses ``amg="rs-direct"`` (direct interpolation, forward/backward Gauss-Seidel) with
``tol=1e-4``: on the phantom's reference plan 0.18-0.23 s instead of 0.31 s for the whole
preview, same zone (tests/test_ire_field.py, bench/bench_zone.py). The fill values of
insulator nodes (nearest solved node) are computed once per solver, not once per pair.

Dynamic conductivity (optional, nonlinear): sigma(|E|) rises smoothly from its baseline to
``ratio`` times it between the reversible and irreversible thresholds (the form of Šel et
al. 2005, IEEE TBME 52:816). It needs its own iterations per pair (no superposition):
:func:`solve_nonlinear_pair`, a damped fixed point stopped on the conductivity residual;
the result says whether it converged (``IreResult.converged``, ``IreResult.dynamic``).

Pair current (``current_model``): the zone keeps the static field; the current is the
static one times :func:`pair_current_factor` (conductivity while pulsing,
:class:`irplan.planning.conductivity.PairCurrentModel`).
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pyamg
import scipy.sparse as sp
from scipy import ndimage
from threadpoolctl import threadpool_limits

from irplan.planning.conductivity import PairCurrentModel
from irplan.planning.errors import CancelledError, InputError
from irplan.planning.volume import Volume

# Thresholds, liver, 8 x 100 us (Miklavčič et al. 2000, rat liver; CLINICAL.md):
# reversible 362 +/- 21 V/cm, irreversible 637 +/- 43 V/cm. Models often use 360 / 680.
E_REVERSIBLE_V_PER_CM = 362.0
E_IRREVERSIBLE_V_PER_CM = 637.0
# Manufacturer voltage-to-distance rule in liver 1500-1700 V/cm (Kos et al. 2015, CLINICAL.md).
VOLTAGE_TO_DISTANCE_V_PER_CM = 1500.0
VOLTAGE_TO_DISTANCE_RANGE_V_PER_CM = (1500.0, 1700.0)
# Generator range 1500-3000 V per pair (CLINICAL.md "The procedures").
MAX_VOLTAGE_V = 3000.0
# Target current 20-50 A per pair (CLINICAL.md "The procedures").
CURRENT_WINDOW_A = (20.0, 50.0)
# 19 G needle outer diameter 1.07 mm (ISO 9626:2016) -> radius 0.535 mm.
DEFAULT_RADIUS_MM = 1.07 / 2.0

_SQRT3_2 = np.sqrt(3.0) / 2.0
# Outer box boundary: "insulated" (Neumann) or "farfield" (Robin condition of a dipole,
# see FieldSolver._farfield_faces); FARFIELD_ORDER is the decay exponent of phi - phi_inf.
BOUNDARIES = ("insulated", "farfield")
FARFIELD_ORDER = 2.0
# Box padding (mm) around the active parts: with the far-field boundary, doubling it changes
# the zone by < 0.5 mm down to 300 V/cm (tests/test_ire_field.py, bench/validate_zones.py).
DEFAULT_PADDING_MM = 20.0
# Nonlinear (dynamic-conductivity) solve: damped fixed point, stopped on the relative
# conductivity residual (see solve_nonlinear_pair).
DYNAMIC_MAX_ITERATIONS = 30
DYNAMIC_RESIDUAL_TOL = 5e-3
DYNAMIC_DAMPING = 0.6

ProgressFn = Callable[[float, str], None]   # (fraction 0..1, text)
CancelFn = Callable[[], bool]               # True once the user cancelled


@dataclass
class Electrode:
    """One electrode: tip (LPS mm), unit direction entry->tip, active length back from the tip.

    ``shaft_mm``: insulated length behind the active part (towards the entry), non-conducting.
    """

    tip_lps_mm: np.ndarray
    direction: np.ndarray
    exposure_mm: float
    radius_mm: float = DEFAULT_RADIUS_MM
    shaft_mm: float = 0.0
    name: str = ""

    def __post_init__(self) -> None:
        self.tip_lps_mm = np.asarray(self.tip_lps_mm, dtype=np.float64).reshape(3)
        d = np.asarray(self.direction, dtype=np.float64).reshape(3)
        n = float(np.linalg.norm(d))
        if not np.isfinite(n) or n == 0:
            raise InputError(f"electrode {self.name or '?'}: direction is zero")
        self.direction = d / n
        if not (self.exposure_mm and self.exposure_mm > 0):
            raise InputError(f"electrode {self.name or '?'}: exposure_mm must be > 0, "
                             f"got {self.exposure_mm}")
        if not self.radius_mm > 0:
            raise InputError(f"electrode {self.name or '?'}: radius_mm must be > 0")

    @property
    def active_end_lps_mm(self) -> np.ndarray:
        """Proximal end of the active part (LPS mm)."""
        return self.tip_lps_mm - self.exposure_mm * self.direction

    @property
    def active_centre_lps_mm(self) -> np.ndarray:
        return self.tip_lps_mm - 0.5 * self.exposure_mm * self.direction


@dataclass
class PairResult:
    """One pulsed pair: electrode indices (+V, 0 V), voltage, spacing, predicted current."""

    electrodes: tuple[int, int]
    voltage_v: float
    spacing_mm: float
    current_a: float
    electrode_potentials_v: np.ndarray
    max_field_v_per_cm: float = 0.0
    current_static_a: float | None = None   # static-conductivity current (A)
    current_model: str = "static"           # "static" or "pulsing" (PairCurrentModel)

    def to_dict(self) -> dict:
        d = {"electrodes": [int(self.electrodes[0]), int(self.electrodes[1])],
             "voltage_v": round(float(self.voltage_v), 1),
             "spacing_mm": round(float(self.spacing_mm), 2),
             "current_a": round(float(self.current_a), 2),
             "current_model": self.current_model}
        if self.current_static_a is not None:
            d["current_static_a"] = round(float(self.current_static_a), 2)
        return d


@dataclass
class IreResult:
    """Field of all pairs: max |E| over pairs (V/cm, Volume), zone mask, pairs, warnings."""

    field_v_per_cm: Volume
    zone: Volume
    pairs: list[PairResult]
    threshold_v_per_cm: float
    grid_mm: float
    conductance_s: np.ndarray
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    iterations: dict[str, int] = field(default_factory=dict)
    converged: bool = True                 # False: a nonlinear pair solve did not converge
    dynamic: list[dict] = field(default_factory=list)   # per pair: iterations, residual

    @property
    def zone_volume_ml(self) -> float:
        return float(self.zone.array.sum()) * self.zone.voxel_volume_ml


# --------------------------------------------------------------------------- grid
def solver_grid(electrodes: list[Electrode], grid_mm: float = 1.0,
                padding_mm: float = DEFAULT_PADDING_MM,
                include_lps_mm: np.ndarray | None = None) -> Volume:
    """Axis-aligned LPS grid (uint8 zeros) around the active parts plus ``padding_mm``.

    ``include_lps_mm``: extra points (N, 3) the box must hold (e.g. the tumour box).
    """
    if grid_mm <= 0 or not np.isfinite(grid_mm):
        raise InputError(f"grid_mm must be > 0, got {grid_mm}")
    if padding_mm < 0:
        raise InputError(f"padding_mm must be >= 0, got {padding_mm}")
    pts = [e.tip_lps_mm for e in electrodes] + [e.active_end_lps_mm for e in electrodes]
    if include_lps_mm is not None and len(include_lps_mm):
        pts += list(np.atleast_2d(include_lps_mm))
    pts_a = np.asarray(pts)
    lo = pts_a.min(axis=0) - padding_mm
    hi = pts_a.max(axis=0) + padding_mm
    n = np.ceil((hi - lo) / grid_mm).astype(int) + 1
    if int(np.prod(n)) > 60_000_000:
        raise InputError(f"IRE solver grid of {n.tolist()} nodes at {grid_mm} mm is too large; "
                         "use a coarser grid_mm or check the electrode positions")
    return Volume(np.zeros(n[::-1], dtype=np.uint8), lo, np.full(3, float(grid_mm)))


def _node_coords(grid: Volume, sl: tuple[slice, slice, slice]) -> np.ndarray:
    """LPS mm of the nodes in an array slice (k, j, i), shape (nk, nj, ni, 3)."""
    lo = [sl[2].start, sl[1].start, sl[0].start]
    hi = [sl[2].stop, sl[1].stop, sl[0].stop]
    return np.stack(grid.index_box_lps(lo, hi), axis=-1)


def _axial_radial(e: Electrode, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance back from the tip along the shaft t (mm), perpendicular vector w and |w|."""
    v = p - e.tip_lps_mm
    along = v @ e.direction
    t = -along
    w = v - along[..., None] * e.direction
    return t, w, np.linalg.norm(w, axis=-1)


def _bbox_slice(grid: Volume, a: np.ndarray, b: np.ndarray, r: float) -> tuple[slice, ...] | None:
    lo = np.minimum(a, b) - r
    hi = np.maximum(a, b) + r
    ilo = np.floor(grid.lps_to_index(lo)).astype(int)
    ihi = np.ceil(grid.lps_to_index(hi)).astype(int) + 1
    size = np.asarray(grid.size_xyz)
    ilo = np.clip(ilo, 0, size)
    ihi = np.clip(ihi, 0, size)
    if np.any(ihi <= ilo):
        return None
    return (slice(ilo[2], ihi[2]), slice(ilo[1], ihi[1]), slice(ilo[0], ihi[0]))


def rasterise_electrodes(grid: Volume, electrodes: list[Electrode]) -> np.ndarray:
    """Node labels (int16, [k, j, i]): 0 tissue, e+1 active part of electrode e, -1 insulator."""
    h = float(grid.spacing_mm[0])
    labels = np.zeros(grid.array.shape, dtype=np.int16)
    for ei, e in enumerate(electrodes):
        r_sel = max(e.radius_mm, h * _SQRT3_2)
        a0 = e.tip_lps_mm + 0.5 * h * e.direction
        a1 = e.active_end_lps_mm - 0.5 * h * e.direction
        sl = _bbox_slice(grid, a0, a1, r_sel + h)
        if sl is not None:
            t, _, r = _axial_radial(e, _node_coords(grid, sl))
            act = (r <= r_sel) & (t >= -0.5 * h) & (t <= e.exposure_mm + 0.5 * h)
            sub = labels[sl]
            clash = act & (sub > 0) & (sub != ei + 1)
            if clash.any():
                other = int(sub[clash][0]) - 1
                raise InputError(f"electrodes {ei + 1} and {other + 1} touch or are closer than "
                                 f"the {h} mm solver grid can separate")
            sub[act] = ei + 1
    for ei, e in enumerate(electrodes):
        if e.shaft_mm <= 0:
            continue
        s0 = e.active_end_lps_mm
        s1 = s0 - e.shaft_mm * e.direction
        sl = _bbox_slice(grid, s0, s1, e.radius_mm + h)
        if sl is None:
            continue
        t, _, r = _axial_radial(e, _node_coords(grid, sl))
        ins = (r <= e.radius_mm) & (t > e.exposure_mm + 0.5 * h) & (t <= e.exposure_mm + e.shaft_mm)
        sub = labels[sl]
        hit = ins & (sub > 0)
        if hit.any():
            other = int(sub[hit][0]) - 1
            raise InputError(f"the insulated shaft of electrode {ei + 1} passes through the active "
                             f"part of electrode {other + 1}")
        sub[ins & (sub == 0)] = -1
    return labels


# --------------------------------------------------------------------------- assembly
_GAUSS_N = 8
_GX, _GW = np.polynomial.legendre.leggauss(_GAUSS_N)


def _electrode_face_conductance(grid: Volume, e: Electrode, n_idx: np.ndarray, axis: int,
                                sign: int, sigma_m: np.ndarray) -> np.ndarray:
    """Conductance (S) of faces from electrode nodes ``n_idx`` (k, j, i rows) to their
    neighbour along array ``axis`` in direction ``sign``: log-radial sub-voxel model."""
    h = float(grid.spacing_mm[0])
    xyz_axis = 2 - axis                       # array axis 0 (k) is LPS axis 2 (S), ...
    normal = np.zeros(3)
    normal[xyz_axis] = sign
    tang = [np.eye(3)[a] for a in range(3) if a != xyz_axis]
    p_n = grid.index_to_lps(n_idx[:, ::-1])
    p_m = p_n + h * normal
    centre = p_n + 0.5 * h * normal
    s = 0.5 * h * _GX
    wq = (0.25 * h * h) * np.outer(_GW, _GW).reshape(-1)  # weights on [-h/2, h/2]^2
    offs = (s[:, None, None] * tang[0] + s[None, :, None] * tang[1]).reshape(-1, 3)
    q = centre[:, None, :] + offs[None, :, :]             # (F, Q, 3)
    t, w, r = _axial_radial(e, q)
    inside = (t >= 0.0) & (t <= e.exposure_mm)
    r = np.maximum(r, 1e-9)
    integrand = np.where(inside, (w @ normal) / (r * r), 0.0)
    j_mm = integrand @ wq                                 # mm
    _, _, r_m = _axial_radial(e, p_m)
    log_ratio = np.maximum(np.log(np.maximum(r_m, 1e-9) / e.radius_mm), 0.05)
    g_rad = np.maximum(j_mm, 0.0) * 1e-3 / log_ratio      # m
    outside_frac = 1.0 - (inside.astype(np.float64) @ wq) / (h * h)
    g_end = (h * 1e-3) * (normal @ e.direction) ** 2 * outside_frac
    return sigma_m * (g_rad + g_end)


class FieldSolver:
    """The linear system of one electrode geometry and conductivity map, with its AMG
    hierarchy, per-electrode unit solutions and the conductance matrix.

    ``sigma_s_per_m``: conductivity per node, array [k, j, i] of ``grid``'s shape (S/m).
    """

    def __init__(self, grid: Volume, electrodes: list[Electrode], sigma_s_per_m: np.ndarray,
                 tol: float = 1e-6, labels: np.ndarray | None = None,
                 amg: str = "rs", subvoxel: bool = True, boundary: str = "insulated",
                 progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> None:
        if not electrodes:
            raise InputError("IRE field: no electrodes")
        sig = np.asarray(sigma_s_per_m, dtype=np.float64)
        if sig.shape != grid.array.shape:
            raise InputError(f"conductivity map shape {sig.shape} != grid {grid.array.shape}")
        if np.any(sig < 0) or not np.all(np.isfinite(sig)):
            raise InputError("conductivity map has negative or non-finite values")
        if not np.allclose(grid.direction, np.eye(3)) or np.ptp(grid.spacing_mm) > 1e-9:
            raise InputError("IRE solver grid must be axis-aligned LPS with isotropic spacing")
        self.grid = grid
        self.electrodes = electrodes
        self.tol = tol
        if amg not in ("rs", "rs-direct", "sa"):
            raise InputError(f"amg must be 'rs' (Ruge-Stuben), 'rs-direct' (Ruge-Stuben with "
                             f"direct interpolation) or 'sa' (smoothed aggregation), "
                             f"got {amg!r}")
        self.amg = amg
        self.subvoxel = subvoxel
        if boundary not in BOUNDARIES:
            raise InputError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
        self.boundary = boundary
        # unknown potentials: one per electrode, plus the far-field shell (floating)
        self.n_terminals = len(electrodes) + (1 if boundary == "farfield" else 0)
        self._progress = progress or (lambda f, t: None)
        self._cancel = cancel or (lambda: False)
        self.h_mm = float(grid.spacing_mm[0])
        t0 = time.perf_counter()
        self.labels = rasterise_electrodes(grid, electrodes) if labels is None else labels
        for ei in range(len(electrodes)):
            if not np.any(self.labels == ei + 1):
                raise InputError(f"electrode {ei + 1}: its active part lies outside the solver grid")
        self.sigma = np.where(self.labels == -1, 0.0, sig)
        self.timings: dict[str, float] = {"rasterise_s": time.perf_counter() - t0}
        self.warnings: list[str] = []
        # Multi-threaded BLAS on the short CG vectors costs 30x on a busy 2-core machine
        # (measured: 1.2 s -> 0.04 s for a 15k-node solve); one thread is fastest here.
        with threadpool_limits(limits=1, user_api="blas"):
            self._assemble()
            self._solve_basis()

    # ------------------------------------------------------------------ assembly
    def _assemble(self) -> None:
        t0 = time.perf_counter()
        lab = self.labels
        shape = lab.shape
        nn = lab.size
        h_m = self.h_mm * 1e-3
        free = (lab == 0) & (self.sigma > 0)
        # tissue not connected to any electrode (e.g. an island surrounded by air) carries
        # no current; dropping it keeps the matrix non-singular
        comp, _ = ndimage.label(free | (lab > 0))
        keep = np.unique(comp[lab > 0])
        free &= np.isin(comp, keep[keep > 0])
        self.free = free
        idx = np.full(nn, -1, dtype=np.int64)
        nfree = int(free.sum())
        idx[free.reshape(-1)] = np.arange(nfree)
        self.free_index = idx
        n_el = len(self.electrodes)
        flat_lab = lab.reshape(-1)
        sig = self.sigma
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        diag = np.zeros(nfree)
        b_rows: list[np.ndarray] = []
        b_cols: list[np.ndarray] = []
        b_vals: list[np.ndarray] = []
        strides = np.array([shape[1] * shape[2], shape[2], 1])
        for axis in range(3):
            sl_a = [slice(None)] * 3
            sl_b = [slice(None)] * 3
            sl_a[axis] = slice(0, shape[axis] - 1)
            sl_b[axis] = slice(1, shape[axis])
            sa = sig[tuple(sl_a)]
            sb = sig[tuple(sl_b)]
            with np.errstate(divide="ignore", invalid="ignore"):
                g = np.where((sa > 0) & (sb > 0), 2.0 * sa * sb / (sa + sb), 0.0) * h_m
            ia = np.arange(nn).reshape(shape)[tuple(sl_a)].reshape(-1)
            ib = ia + strides[axis]
            g = g.reshape(-1)
            la, lb = flat_lab[ia], flat_lab[ib]
            fa, fb = idx[ia], idx[ib]
            # free-free faces
            m = (fa >= 0) & (fb >= 0) & (g > 0)
            rows += [fa[m], fb[m]]
            cols += [fb[m], fa[m]]
            vals += [-g[m], -g[m]]
            np.add.at(diag, fa[m], g[m])
            np.add.at(diag, fb[m], g[m])
            # electrode-free faces (both orientations)
            for sign, (le, ff, ie) in ((+1, (la, fb, ia)), (-1, (lb, fa, ib))):
                m2 = (le > 0) & (ff >= 0)
                if not m2.any():
                    continue
                el_ids = le[m2] - 1
                free_ids = ff[m2]
                node_flat = ie[m2]
                kji = np.stack(np.unravel_index(node_flat, shape), axis=-1)
                nb_flat = node_flat + sign * strides[axis]
                sigma_m = sig.reshape(-1)[nb_flat]
                gf = np.empty(len(el_ids))
                if not self.subvoxel:   # plain staircase electrode (for comparison only)
                    gf[:] = sigma_m * h_m
                for e_i in np.unique(el_ids) if self.subvoxel else []:
                    sel = el_ids == e_i
                    gf[sel] = _electrode_face_conductance(
                        self.grid, self.electrodes[e_i], kji[sel], axis, sign, sigma_m[sel])
                np.add.at(diag, free_ids, gf)
                b_rows.append(free_ids)
                b_cols.append(el_ids)
                b_vals.append(gf)
            # electrode-electrode faces between different electrodes cannot happen
            m3 = (la > 0) & (lb > 0) & (la != lb)
            if m3.any():
                e1, e2 = sorted((int(la[m3][0]), int(lb[m3][0])))
                raise InputError(f"electrodes {e1} and {e2} touch or are closer than the "
                                 f"{self.h_mm:g} mm solver grid can separate")
        if self.boundary == "farfield":
            fr, fv = self._farfield_faces(free, idx)
            np.add.at(diag, fr, fv)
            b_rows.append(fr)
            b_cols.append(np.full(len(fr), n_el, dtype=np.int64))
            b_vals.append(fv)
        r = np.concatenate(rows + [np.arange(nfree)])
        c = np.concatenate(cols + [np.arange(nfree)])
        v = np.concatenate(vals + [diag])
        self.A = sp.csr_matrix((v, (r, c)), shape=(nfree, nfree))
        br = np.concatenate(b_rows) if b_rows else np.zeros(0, dtype=np.int64)
        bc = np.concatenate(b_cols) if b_cols else np.zeros(0, dtype=np.int64)
        bv = np.concatenate(b_vals) if b_vals else np.zeros(0)
        self.B = sp.csr_matrix((bv, (br, bc)), shape=(nfree, self.n_terminals))
        self.g_total = np.asarray(self.B.sum(axis=0)).reshape(-1)  # S per electrode
        if np.any(self.g_total[:n_el] <= 0):
            bad = int(np.argmin(self.g_total)) + 1
            raise InputError(f"electrode {bad} touches no conducting tissue on the solver grid")
        self.timings["assemble_s"] = time.perf_counter() - t0

    def _farfield_faces(self, free: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Free nodes on the box faces and their conductance (S) to the far-field shell.

        Robin condition of a dipole field, phi - phi_inf ~ cos(theta) / r^2 around the
        electrodes' centre c: d(phi)/dn = -2 (r_hat . n) / r (phi - phi_inf); a face of area
        h^2 then conducts G = sigma h^2 2 (r_hat . n) / r to a shell at phi_inf, which floats
        (zero net current: a pulsed pair injects none). The shell is one more unknown
        terminal of the superposition. Edge and corner nodes get one face per side."""
        shape = free.shape
        h_m = self.h_mm * 1e-3
        centre = np.mean([e.active_centre_lps_mm for e in self.electrodes], axis=0)
        rows: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        for axis in range(3):
            xyz = 2 - axis
            for end, sign in ((0, -1.0), (shape[axis] - 1, 1.0)):
                sl = [slice(None)] * 3
                sl[axis] = slice(end, end + 1)
                f = free[tuple(sl)]
                if not f.any():
                    continue
                nodes = np.argwhere(f)
                nodes[:, axis] = end
                p = self.grid.index_to_lps(nodes[:, ::-1])
                p[:, xyz] += 0.5 * sign * self.h_mm          # the face, half a voxel out
                w = p - centre
                r_mm = np.linalg.norm(w, axis=1)
                cos_n = np.maximum(sign * w[:, xyz] / np.maximum(r_mm, 1e-9), 0.0)
                flat = np.ravel_multi_index(nodes.T, shape)
                sig = self.sigma.reshape(-1)[flat]
                g = sig * h_m * h_m * FARFIELD_ORDER * cos_n / np.maximum(r_mm * 1e-3, h_m)
                rows.append(idx[flat])
                vals.append(g)
        return np.concatenate(rows), np.concatenate(vals)

    def _solve_basis(self) -> None:
        t0 = time.perf_counter()
        if self.amg == "sa":
            # 'local' (Gershgorin) weighting of the prolongation smoother avoids pyamg's
            # eigenvalue estimate, ~2/3 of the default setup time here.
            self.ml = pyamg.smoothed_aggregation_solver(
                self.A, symmetry="symmetric", max_coarse=500, coarse_solver="splu",
                smooth=("jacobi", {"omega": 4.0 / 3.0, "weighting": "local"}))
        else:
            # Classical (Ruge-Stuben) AMG: measured on a 4-electrode, 198k-node system (CPU
            # s): setup 0.73 vs 0.76 for SA, one CG solve 0.27 (7 it.) vs 0.60 (14 it.).
            # coarse level by sparse LU: pyamg's default pseudo-inverse (dense SVD of up to
            # 500 x 500) cost ~40 ms per setup, more than the whole 2 mm preview solve
            # "rs-direct" (live preview): direct instead of classical interpolation, a
            # coarsest level of up to 2000 nodes, one forward Gauss-Seidel sweep before and
            # one backward after (symmetric V-cycle, as CG needs) instead of symmetric
            # sweeps. Measured on the phantom's 38k-node 2 mm system, 3 solves to 1e-4
            # (CPU s): setup + solves 0.14 vs 0.22 with the classical defaults, 6 CG
            # iterations; at 1 mm the classical form needs fewer iterations (8 vs 11).
            if self.amg == "rs-direct":
                self.ml = pyamg.ruge_stuben_solver(
                    self.A, max_coarse=2000, coarse_solver="splu", interpolation="direct",
                    presmoother=("gauss_seidel", {"sweep": "forward"}),
                    postsmoother=("gauss_seidel", {"sweep": "backward"}))
            else:
                self.ml = pyamg.ruge_stuben_solver(self.A, max_coarse=500,
                                                   coarse_solver="splu")
        self.timings["amg_setup_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        n_el = self.n_terminals
        self.basis = np.zeros((self.A.shape[0], n_el))
        self.iterations: list[int] = []
        bd = self.B.toarray()
        # The outer boundary is insulated, so all electrodes at 1 V give phi = 1 everywhere:
        # the last unit solution is 1 minus the others (one solve saved, exact).
        for e in range(n_el - 1):
            if self._cancel():
                raise CancelledError("IRE field computation cancelled")
            self._progress((e + 1) / n_el, f"IRE field: electrode {e + 1} of {n_el}")
            res: list[float] = []
            x = self.ml.solve(bd[:, e], tol=self.tol, accel="cg", maxiter=300, residuals=res)
            self.basis[:, e] = x
            self.iterations.append(len(res))
            if res and res[0] > 0 and res[-1] > 10 * self.tol * res[0]:
                self.warnings.append(f"electrode {e + 1}: the field solver stopped at relative "
                                     f"residual {res[-1] / res[0]:.1e} (> {self.tol:g}); the "
                                     "field may be inaccurate")
        self.basis[:, n_el - 1] = 1.0 - self.basis[:, : n_el - 1].sum(axis=1)
        # C[e, f]: current (A) out of electrode e when f is at 1 V and the others at 0 V.
        c = np.diag(self.g_total) - bd.T @ self.basis
        self.conductance_s = 0.5 * (c + c.T)
        self.timings["solve_s"] = time.perf_counter() - t0

    # ------------------------------------------------------------------ pairs
    def pair_potentials(self, plus: int, zero: int, voltage_v: float) -> np.ndarray:
        """Electrode potentials (V) with ``plus`` at V, ``zero`` at 0, others floating
        (with the far-field boundary, the last entry is the shell's potential)."""
        n = self.n_terminals
        u = np.zeros(n)
        u[plus] = voltage_v
        fl = [i for i in range(n) if i not in (plus, zero)]
        if fl:
            c = self.conductance_s
            u[fl] = np.linalg.solve(c[np.ix_(fl, fl)], -c[fl, plus] * voltage_v)
        return u

    def current_a(self, u: np.ndarray, electrode: int) -> float:
        """Net current (A) leaving ``electrode`` for electrode potentials ``u`` (V)."""
        return float(self.conductance_s[electrode] @ u)

    def potential(self, u: np.ndarray) -> np.ndarray:
        """Potential (V) on every node, [k, j, i]; insulator nodes take a neighbour's value."""
        phi = np.zeros(self.labels.size)
        phi[self.free.reshape(-1)] = self.basis @ u
        flat_lab = self.labels.reshape(-1)
        for e in range(len(self.electrodes)):
            phi[flat_lab == e + 1] = u[e]
        phi = phi.reshape(self.labels.shape)
        ind = self._hole_source()
        if ind is not None:
            phi = phi[ind]
        return phi

    def _hole_source(self) -> tuple[np.ndarray, ...] | None:
        """Nearest solved node of every node (index arrays), for filling insulator and
        cut-off nodes; computed once per solver (it depends only on the geometry)."""
        if not hasattr(self, "_hole_ind"):
            holes = ~self.free & (self.labels <= 0)
            self._hole_ind = None
            if holes.any():
                ind = ndimage.distance_transform_edt(holes, return_distances=False,
                                                     return_indices=True)
                self._hole_ind = tuple(ind)
        return self._hole_ind

    def field_magnitude_v_per_cm(self, u: np.ndarray) -> np.ndarray:
        """|E| (V/cm) on every node for electrode potentials ``u``; inside the electrodes
        and shafts the largest neighbouring tissue value (for display and zone)."""
        return field_magnitude_from_potential(self.potential(u), self.h_mm, self.labels)


def field_magnitude_from_potential(phi: np.ndarray, h_mm: float, labels: np.ndarray) -> np.ndarray:
    """Central-difference |grad phi| (V/cm) with electrode/insulator nodes filled from their
    neighbours."""
    gk, gj, gi = np.gradient(phi, h_mm * 1e-3)
    mag = np.sqrt(gk * gk + gj * gj + gi * gi) * 1e-2
    solid = labels != 0
    if solid.any():
        tissue = np.where(solid, 0.0, mag)
        grown = ndimage.grey_dilation(tissue, size=(3, 3, 3))
        mag = np.where(solid, grown, mag)
    return mag


# --------------------------------------------------------------------------- pairs/voltage
def pair_spacing_mm(a: Electrode, b: Electrode) -> float:
    """Spacing of two (roughly parallel) electrodes: distance between the midpoints of their
    active parts perpendicular to their mean axis (mm); the definition of
    ``irplan.planning.needle_geometry.perpendicular_spacing_mm``."""
    axis = a.direction + (b.direction if a.direction @ b.direction >= 0 else -b.direction)
    axis = axis / np.linalg.norm(axis)
    d = b.active_centre_lps_mm - a.active_centre_lps_mm
    return float(np.linalg.norm(d - (d @ axis) * axis))


def default_voltage_v(spacing_mm: float,
                      ratio_v_per_cm: float = VOLTAGE_TO_DISTANCE_V_PER_CM,
                      max_voltage_v: float = MAX_VOLTAGE_V) -> tuple[float, bool]:
    """Pair voltage = ratio x spacing, capped at the generator maximum. Returns (V, capped)."""
    v = ratio_v_per_cm * spacing_mm / 10.0
    return (min(v, max_voltage_v), v > max_voltage_v)


def dynamic_sigma(sigma0: np.ndarray, e_v_per_cm: np.ndarray, ratio: float,
                  e_rev_v_per_cm: float, e_irr_v_per_cm: float) -> np.ndarray:
    """Electroporation-dependent conductivity: sigma0 below E_rev, ratio*sigma0 above E_irr,
    a smooth (C1) sigmoid between (form of Šel et al. 2005)."""
    x = np.clip((e_v_per_cm - e_rev_v_per_cm) / max(e_irr_v_per_cm - e_rev_v_per_cm, 1e-9),
                0.0, 1.0)
    s = x * x * (3.0 - 2.0 * x)
    return sigma0 * (1.0 + (ratio - 1.0) * s)


# The last few solved systems (basis solutions, conductance matrix), keyed by everything
# they depend on: grid, electrode geometry, conductivity map, tolerance and AMG. A change
# of voltage, threshold or pulse pairs (e.g. the threshold box of the zone panel) then
# costs only the pair fields (~30 ms at 2 mm instead of ~0.2 s; ~0.7 s with the exact
# margin at 1 mm instead of ~2.8 s). Two entries: the live 2 mm preview and the 1 mm
# refinement, ~20 MB together.
_SOLVER_CACHE: OrderedDict[tuple, FieldSolver] = OrderedDict()
_SOLVER_CACHE_SIZE = 2
_SOLVER_CACHE_LOCK = threading.Lock()


def _solver_key(grid: Volume, electrodes: list[Electrode], sigma_s_per_m: np.ndarray,
                tol: float, amg: str, boundary: str = "insulated") -> tuple:
    sig = np.ascontiguousarray(sigma_s_per_m, dtype=np.float64)
    els = tuple((tuple(e.tip_lps_mm), tuple(e.direction), e.exposure_mm, e.radius_mm,
                 e.shaft_mm) for e in electrodes)
    return (grid.array.shape, grid.origin_lps_mm.tobytes(), grid.spacing_mm.tobytes(),
            grid.direction.tobytes(), els, sig.shape, zlib.crc32(sig), float(tol), amg,
            boundary)


def clear_solver_cache() -> None:
    """Forget the cached solved systems (benchmarks)."""
    with _SOLVER_CACHE_LOCK:
        _SOLVER_CACHE.clear()


def _cached_solver(key: tuple) -> FieldSolver | None:
    with _SOLVER_CACHE_LOCK:
        hit = _SOLVER_CACHE.get(key)
        if hit is not None:
            _SOLVER_CACHE.move_to_end(key)
        return hit


def _store_solver(key: tuple, solver: FieldSolver) -> None:
    """Keep the solved system without its AMG hierarchy and matrices (not needed for new
    pair voltages: measured 117 -> ~17 MB for the phantom's 4 electrodes at 1 mm)."""
    solver.ml = None
    solver.A = None
    solver.B = None
    with _SOLVER_CACHE_LOCK:
        _SOLVER_CACHE[key] = solver
        while len(_SOLVER_CACHE) > _SOLVER_CACHE_SIZE:
            _SOLVER_CACHE.popitem(last=False)


def solve_ire(grid: Volume, electrodes: list[Electrode], sigma_s_per_m: np.ndarray,
              pairs: list[tuple[int, int]] | None = None,
              voltages_v: list[float] | float | None = None,
              threshold_v_per_cm: float = E_IRREVERSIBLE_V_PER_CM,
              ratio_v_per_cm: float = VOLTAGE_TO_DISTANCE_V_PER_CM,
              max_voltage_v: float = MAX_VOLTAGE_V,
              current_window_a: tuple[float, float] = CURRENT_WINDOW_A,
              dynamic_ratio: float | None = None,
              e_rev_v_per_cm: float = E_REVERSIBLE_V_PER_CM,
              dynamic_iterations: int | None = None, dynamic_tol: float | None = None,
              tol: float = 1e-6, amg: str = "rs",
              boundary: str = "farfield", current_model: PairCurrentModel | None = None,
              pulse_on_s: float = 90 * 90e-6, current_cached_only: bool = False,
              progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> IreResult:
    """Field, currents and zone of an IRE protocol on ``grid`` (see :func:`solver_grid`).

    ``pairs``: (plus, zero) electrode indices; default every pair i < j. ``voltages_v``:
    one value for all pairs, one per pair, or None for ratio x spacing (capped).
    ``dynamic_ratio``: None = constant conductivity (superposition), else the sigma ratio of
    the electroporated tissue (nonlinear iterations per pair).
    ``current_model``: the pair current is the static current times the factor of
    :func:`pair_current_factor` (conductivity while pulsing, ``pulse_on_s`` = pulses x
    width); the zone is unchanged. ``current_cached_only``: take the factor of the nearest
    configuration already solved (live preview), solving only when there is none.
    """
    t_start = time.perf_counter()
    dynamic_iterations = dynamic_iterations or DYNAMIC_MAX_ITERATIONS
    dynamic_tol = dynamic_tol or DYNAMIC_RESIDUAL_TOL
    n = len(electrodes)
    if n < 2:
        raise InputError(f"IRE needs at least 2 electrodes, the plan has {n}")
    if threshold_v_per_cm <= 0:
        raise InputError(f"threshold_v_per_cm must be > 0, got {threshold_v_per_cm}")
    if pairs is None:
        pairs = list(combinations(range(n), 2))
    for p, q in pairs:
        if not (0 <= p < n and 0 <= q < n) or p == q:
            raise InputError(f"pulse pair ({p + 1}, {q + 1}) does not name two of the "
                             f"{n} electrodes")
    if voltages_v is None or np.isscalar(voltages_v):
        vlist: list[float | None] = [voltages_v] * len(pairs)  # type: ignore[list-item]
    else:
        vlist = list(voltages_v)  # type: ignore[arg-type]
        if len(vlist) != len(pairs):
            raise InputError(f"{len(vlist)} voltages given for {len(pairs)} pairs")
    for (p, q), v_in in zip(pairs, vlist):
        if v_in is not None and not 0 < float(v_in) <= max_voltage_v:
            raise InputError(f"pair {p + 1}-{q + 1}: voltage {float(v_in):g} V outside 0-"
                             f"{max_voltage_v:.0f} V (generator maximum)")
    cpu0 = time.process_time()
    key = _solver_key(grid, electrodes, sigma_s_per_m, tol, amg, boundary)
    solver = _cached_solver(key)
    if solver is None:
        solver = FieldSolver(grid, electrodes, sigma_s_per_m, tol=tol, amg=amg, boundary=boundary,
                             progress=(lambda f, t: progress(0.8 * f, t)) if progress else None,
                             cancel=cancel)
        _store_solver(key, solver)
        timings = dict(solver.timings)
    else:
        timings = {"solver_cached": 1.0}
    warnings: list[str] = list(solver.warnings)
    converged = True
    dyn_report: list[dict] = []
    field_max = np.zeros(grid.array.shape)
    results: list[PairResult] = []
    t0 = time.perf_counter()
    for k, ((p, q), v_in) in enumerate(zip(pairs, vlist)):
        if cancel is not None and cancel():
            raise CancelledError("IRE field computation cancelled")
        if progress is not None:
            progress(0.8 + 0.2 * k / len(pairs), f"IRE field: pair {p + 1}-{q + 1}")
        spacing = pair_spacing_mm(electrodes[p], electrodes[q])
        if v_in is None:
            v, capped = default_voltage_v(spacing, ratio_v_per_cm, max_voltage_v)
            if capped:
                warnings.append(f"pair {p + 1}-{q + 1}: {ratio_v_per_cm:.0f} V/cm x "
                                f"{spacing / 10:.2f} cm exceeds the generator maximum; "
                                f"capped at {max_voltage_v:.0f} V")
        else:
            v = float(v_in)
        if spacing < 10.0 or spacing > 25.0:
            warnings.append(f"pair {p + 1}-{q + 1}: spacing {spacing:.1f} mm is outside 10-25 mm "
                            "(usual 1.5-2.0 cm, CLINICAL.md)")
        if dynamic_ratio is None:
            u = solver.pair_potentials(p, q, v)
            cur = solver.current_a(u, p)
            mag = solver.field_magnitude_v_per_cm(u)
        else:
            dyn = solve_nonlinear_pair(
                solver, p, q, v, sigma_s_per_m,
                lambda s0, e: dynamic_sigma(s0, e, dynamic_ratio, e_rev_v_per_cm,
                                            threshold_v_per_cm),
                dynamic_iterations, dynamic_tol, cancel=cancel)
            u, cur, mag = dyn.potentials_v, dyn.current_a, dyn.field_v_per_cm
            dyn_report.append({"pair": [p, q], "converged": dyn.converged,
                               "iterations": dyn.iterations,
                               "residual": float(dyn.residual)})
            if not dyn.converged:   # show the last converged solution: the static one
                converged = False
                u = solver.pair_potentials(p, q, v)
                cur, mag = solver.current_a(u, p), solver.field_magnitude_v_per_cm(u)
                warnings.append(f"pair {p + 1}-{q + 1}: dynamic conductivity NOT CONVERGED after "
                                f"{dyn.iterations} iterations (conductivity residual "
                                f"{dyn.residual:.1e} > {dynamic_tol:g}): this zone is not a "
                                "final result; the pair's last converged (static-conductivity) "
                                "field is shown")
        cur_static, cur_kind = None, "static"
        if current_model is not None and dynamic_ratio is None:
            a, b = electrodes[p], electrodes[q]
            s0 = _sigma_near(solver, sigma_s_per_m, (p, q))
            fac = pair_current_factor(spacing, 0.5 * (a.exposure_mm + b.exposure_mm),
                                      0.5 * (a.radius_mm + b.radius_mm), v, pulse_on_s, s0,
                                      current_model, cached_only=current_cached_only)
            cur_static, cur, cur_kind = cur, cur * fac.factor, "pulsing"
            if not fac.converged:
                warnings.append(f"pair {p + 1}-{q + 1}: the pair-current model did not "
                                f"converge (residual {fac.residual:.1e}); current approximate")
        lo_a, hi_a = current_window_a
        if not lo_a <= cur <= hi_a:
            model = ("static-conductivity model: tissue conductivity rises while pulsing"
                     if dynamic_ratio is None and cur_kind == "static" else
                     "pair-current model: electroporation and heating" if cur_kind == "pulsing"
                     else "dynamic-conductivity model")
            warnings.append(f"pair {p + 1}-{q + 1}: predicted current {cur:.1f} A is outside "
                            f"the {lo_a:.0f}-{hi_a:.0f} A target window ({model})")
        np.maximum(field_max, mag, out=field_max)
        results.append(PairResult((p, q), v, spacing, cur, u[:n], float(mag.max()),
                                  cur_static, cur_kind))
    if dynamic_ratio is not None:
        warnings.append(f"dynamic conductivity: sigma x {dynamic_ratio:g} above the irreversible "
                        "threshold is a user parameter; Šel et al. 2005 constants were not "
                        "verified here")
    timings["pairs_s"] = time.perf_counter() - t0
    dead = (solver.labels == 0) & ~solver.free   # air, and tissue cut off from electrodes
    field_max[dead] = 0.0
    field_vol = grid.with_array(field_max.astype(np.float32), units="V/cm")
    zone = grid.with_array((field_max >= threshold_v_per_cm).astype(np.uint8))
    timings["total_s"] = time.perf_counter() - t_start
    timings["total_cpu_s"] = time.process_time() - cpu0
    its = {"cg_max": max(solver.iterations) if solver.iterations else 0}
    if dyn_report:
        its["dynamic_max"] = max(d["iterations"] for d in dyn_report)
    return IreResult(field_vol, zone, results, float(threshold_v_per_cm), solver.h_mm,
                     solver.conductance_s, warnings, timings, its, converged, dyn_report)


@dataclass(frozen=True)
class CurrentFactor:
    """Pair current while pulsing / static pair current, for one two-rod configuration."""

    factor: float
    converged: bool
    iterations: int
    residual: float
    static_a: float
    pulsing_a: float


_CURRENT_FACTORS: OrderedDict[tuple, CurrentFactor] = OrderedDict()
_CURRENT_FACTORS_LOCK = threading.Lock()
CURRENT_MODEL_GRID_MM = 2.0      # coarse two-rod model of the current factor
CURRENT_MODEL_PADDING_MM = 10.0


def _sigma_near(solver: FieldSolver, sigma: np.ndarray, els: tuple[int, int],
                radius_mm: float = 3.0) -> float:
    """Mean baseline conductivity (S/m) of the tissue around two electrodes' active parts:
    sampled on rings of ``radius_mm`` at 9 stations along each (physical positions, so the
    same on any grid)."""
    pts = []
    for ei in els:
        e = solver.electrodes[ei]
        u = np.cross(e.direction, [1.0, 0.0, 0.0])
        if np.linalg.norm(u) < 0.1:
            u = np.cross(e.direction, [0.0, 1.0, 0.0])
        u /= np.linalg.norm(u)
        w = np.cross(e.direction, u)
        for t in np.linspace(0.1, 0.9, 9) * e.exposure_mm:
            c = e.tip_lps_mm - t * e.direction
            for a in np.linspace(0.0, 2 * np.pi, 12, endpoint=False):
                pts.append(c + radius_mm * (np.cos(a) * u + np.sin(a) * w))
    idx = np.rint(solver.grid.lps_to_index(np.asarray(pts))).astype(int)
    size = np.asarray(solver.grid.size_xyz)
    idx = idx[np.all((idx >= 0) & (idx < size), axis=1)]
    vals = sigma[idx[:, 2], idx[:, 1], idx[:, 0]] if len(idx) else np.zeros(0)
    vals = vals[vals > 0]
    return float(vals.mean()) if vals.size else float(sigma[sigma > 0].mean())


def pair_current_factor(spacing_mm: float, exposure_mm: float, radius_mm: float,
                        voltage_v: float, pulse_on_s: float, sigma0_s_per_m: float,
                        model: PairCurrentModel, cached_only: bool = False) -> CurrentFactor:
    """Ratio of the pair current while pulsing (``model``) to the static one, from two
    parallel rods in homogeneous tissue of ``sigma0`` on a coarse grid
    (``CURRENT_MODEL_GRID_MM``, far-field box), solved with :func:`solve_nonlinear_pair`.
    The ratio multiplies the static current of the real (heterogeneous, multi-electrode)
    solve. Cached per configuration (spacing to 0.5 mm, V/cm to 10, exposure to 1 mm);
    ``cached_only``: the nearest cached configuration of the same exposure, radius, pulse
    train and tissue when there is one (live preview)."""
    ratio = voltage_v / max(spacing_mm, 1e-6) * 10.0
    fixed = (round(exposure_mm), round(radius_mm, 2), round(pulse_on_s, 4),
             round(sigma0_s_per_m, 2), model)
    key = (round(spacing_mm * 2) / 2, round(ratio, -1), *fixed)
    with _CURRENT_FACTORS_LOCK:
        hit = _CURRENT_FACTORS.get(key)
        if hit is None and cached_only:
            near = [(abs(k[0] - key[0]) + abs(k[1] - key[1]) / 100.0, f)
                    for k, f in _CURRENT_FACTORS.items() if k[2:] == key[2:]]
            if near:
                hit = min(near, key=lambda t: t[0])[1]
    if hit is not None:
        return hit
    d = key[0]
    els = [Electrode([x, 0.0, 0.0], [0, 0, -1], float(fixed[0]), radius_mm, shaft_mm=60.0)
           for x in (-d / 2, d / 2)]
    grid = solver_grid(els, CURRENT_MODEL_GRID_MM, CURRENT_MODEL_PADDING_MM)
    s0 = np.full(grid.array.shape, float(fixed[3]))
    with threadpool_limits(limits=1, user_api="blas"):
        solver = FieldSolver(grid, els, s0, tol=1e-5, boundary="farfield")
    v = key[1] * d / 10.0
    u = solver.pair_potentials(0, 1, v)
    static = solver.current_a(u, 0)
    out = solve_nonlinear_pair(solver, 0, 1, v, s0,
                               lambda s, e: model.sigma_s_per_m(s, e, float(fixed[2])),
                               max_iterations=40)
    res = CurrentFactor(out.current_a / static, out.converged, out.iterations, out.residual,
                        static, out.current_a)
    with _CURRENT_FACTORS_LOCK:
        _CURRENT_FACTORS[key] = res
        while len(_CURRENT_FACTORS) > 256:
            _CURRENT_FACTORS.popitem(last=False)
    return res


@dataclass
class DynamicOutcome:
    """One pair's nonlinear (conductivity depends on |E|) solve.

    ``residual``: max over tissue nodes of |sigma(|E(sigma_k)|) - sigma_k| divided by the
    largest conductivity (dimensionless); converged when <= the requested tolerance."""

    potentials_v: np.ndarray
    current_a: float
    field_v_per_cm: np.ndarray
    converged: bool
    iterations: int
    residual: float
    residuals: list[float]


def solve_nonlinear_pair(solver: FieldSolver, p: int, q: int, v: float, sigma0: np.ndarray,
                         sigma_of_field: Callable[[np.ndarray, np.ndarray], np.ndarray],
                         max_iterations: int = DYNAMIC_MAX_ITERATIONS,
                         residual_tol: float = DYNAMIC_RESIDUAL_TOL,
                         damping: float = DYNAMIC_DAMPING, adaptive: bool = True,
                         cancel: CancelFn | None = None) -> DynamicOutcome:
    """Damped fixed point sigma_{k+1} = sigma_k + w (sigma(|E(sigma_k)|) - sigma_k) for one
    pulsed pair, stopped on the conductivity residual (see :class:`DynamicOutcome`).

    ``sigma_of_field(sigma0, |E| V/cm) -> sigma`` (S/m). The damping ``w`` starts at
    ``damping`` and, if ``adaptive``, is halved whenever the residual does not fall by 10 %
    (the undamped iteration flips between two states on the Ben-David pair, issue 14: its
    residual stays at ~0.75); each step re-assembles the system
    (AMG set-up + solves by superposition). Starts from the static solution."""
    tissue = solver.labels == 0
    sig = np.where(tissue, sigma0, 0.0).astype(np.float64)
    cur_solver = solver
    u = cur_solver.pair_potentials(p, q, v)
    mag = cur_solver.field_magnitude_v_per_cm(u)
    w = float(damping)
    residuals: list[float] = []
    for it in range(max_iterations + 1):
        target = np.where(tissue, sigma_of_field(sigma0, mag), 0.0)
        scale = max(float(target.max()), 1e-12)
        res = float(np.abs(target - sig)[tissue & cur_solver.free].max()) / scale
        residuals.append(res)
        if res <= residual_tol:
            return DynamicOutcome(u, cur_solver.current_a(u, p), mag, True, it, res, residuals)
        if it == max_iterations:
            break
        if cancel is not None and cancel():
            raise CancelledError("IRE field computation cancelled")
        if adaptive and len(residuals) > 1 and res > 0.9 * residuals[-2]:   # damp more
            w = max(0.5 * w, 0.05)
        sig = sig + w * (target - sig)
        cur_solver = FieldSolver(solver.grid, solver.electrodes, sig, tol=solver.tol,
                                 labels=solver.labels, amg=solver.amg, boundary=solver.boundary)
        u = cur_solver.pair_potentials(p, q, v)
        mag = cur_solver.field_magnitude_v_per_cm(u)
    return DynamicOutcome(u, cur_solver.current_a(u, p), mag, False, max_iterations,
                          residuals[-1], residuals)
