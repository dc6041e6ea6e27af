"""Rendering of the phantom: analytic anatomy and truth sampled on any voxel grid.

The anatomy (:mod:`irplan.planning.phantom_anatomy`) and one case's truth
(:class:`irplan.planning.phantom_truth.PhantomTruth`) are painted slab by slab onto a
:class:`Volume` grid; voxel positions come from the grid
(:meth:`Volume.index_box_lps`), and for the follow-up frame are mapped back to planning
space with the exact inverse motion. Scanner blur and seeded noise finish each scan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from irplan.planning import phantom_anatomy as an
from irplan.planning.phantom_anatomy import HU, MASK_KEYS
from irplan.planning.phantom_truth import (
    PhantomTruth,
    followup_from_planning,
    planning_from_followup_cols,
)
from irplan.planning.volume import Volume


@dataclass
class PhantomScan:
    """One synthetic scan: HU volume (int16), masks (uint8 0/1 Volumes) on its grid."""

    ct: Volume
    masks: dict[str, Volume] = field(default_factory=dict)


# ----------------------------------------------------------------------------- renderer
def _seg_dist2(x: np.ndarray, y: np.ndarray, z: np.ndarray, a: np.ndarray,
               b: np.ndarray) -> np.ndarray:
    """Squared distance (mm^2) of points (x, y, z arrays) to segment a-b (float32 math)."""
    a = np.asarray(a, np.float32)
    ab = np.asarray(b, np.float32) - a
    dx, dy, dz = x - a[0], y - a[1], z - a[2]
    t = (dx * ab[0] + dy * ab[1] + dz * ab[2]) / np.float32(ab @ ab)
    np.clip(t, 0.0, 1.0, out=t)
    dx -= t * ab[0]
    dy -= t * ab[1]
    dz -= t * ab[2]
    return dx * dx + dy * dy + dz * dz


def _rod_fraction(x: np.ndarray, y: np.ndarray, z: np.ndarray, a: np.ndarray, b: np.ndarray,
                  radius_mm: float, ramp_mm: float) -> np.ndarray:
    """Fraction (0..1, float32) of each voxel inside the flat-ended rod a-b of
    ``radius_mm``: linear ramps ``ramp_mm`` wide across its surface and both ends (a
    partial-volume approximation; 0.5 exactly on the surface and at the end faces)."""
    a = np.asarray(a, np.float32)
    ab = np.asarray(b, np.float32) - a
    length = np.float32(np.linalg.norm(ab))
    u = ab / length
    dx, dy, dz = x - a[0], y - a[1], z - a[2]
    t = dx * u[0] + dy * u[1] + dz * u[2]
    r = np.sqrt(np.maximum(dx * dx + dy * dy + dz * dz - t * t, 0.0))
    h = np.float32(ramp_mm)
    f = np.clip((np.float32(radius_mm) - r) / h + 0.5, 0.0, 1.0)
    f *= np.clip((length - t) / h + 0.5, 0.0, 1.0)
    f *= np.clip(t / h + 0.5, 0.0, 1.0)
    return f.astype(np.float32, copy=False)


class Renderer:
    """Paints analytic structures onto a grid, slab by slab.

    For every slab of slices the planning-space coordinates of all voxels are
    computed once (through ``inverse`` for the follow-up frame); each painting step then
    works on the part of the slab inside its own box.
    """

    def __init__(self, grid: Volume, inverse: Callable[..., tuple[np.ndarray, ...]] | None = None,
                 forward: Callable[[np.ndarray], np.ndarray] | None = None,
                 pad_mm: float = 0.0) -> None:
        self.grid = grid
        self.inverse = inverse
        self.forward = forward
        self.pad_mm = pad_mm
        self.shape = grid.array.shape

    def index_box(self, lo_lps: np.ndarray, hi_lps: np.ndarray) -> tuple[slice, slice, slice]:
        """Index slices [k, j, i] of the voxels whose planning points may fall in the box."""
        lo = np.maximum(np.asarray(lo_lps, float), -_BIG)
        hi = np.minimum(np.asarray(hi_lps, float), _BIG)
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                            for z in (lo[2], hi[2])])
        if self.forward is not None:
            corners = self.forward(corners)
        idx = self.grid.lps_to_index(corners)
        pad = self.pad_mm / self.grid.spacing_mm + 1.0
        size = np.asarray(self.grid.size_xyz)
        lo_i = np.clip(np.floor(idx.min(axis=0) - pad), 0, size).astype(int)
        hi_i = np.clip(np.ceil(idx.max(axis=0) + pad) + 1, 0, size).astype(int)
        return (slice(lo_i[2], hi_i[2]), slice(lo_i[1], hi_i[1]), slice(lo_i[0], hi_i[0]))

    def coords(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Planning-space x, y, z (float32 arrays, block shape) of a block's voxels."""
        xyz = self.grid.index_box_lps([s.start for s in box[::-1]], [s.stop for s in box[::-1]])
        if self.inverse is None:
            return tuple(c.astype(np.float32) for c in xyz)  # type: ignore[return-value]
        q = self.inverse(*xyz)
        return (q[0].astype(np.float32), q[1].astype(np.float32), q[2].astype(np.float32))

    def run(self, steps: list[tuple[tuple[np.ndarray, np.ndarray], Callable[..., None]]],
            slab_voxels: int = 1 << 20) -> None:
        """Call every step fn(slices, x, y, z) on each slab, in order (painter's algorithm).

        Slabs hold about ``slab_voxels`` voxels (cache friendly, bounded memory)."""
        boxes = [self.index_box(*b) for b, _ in steps]
        nk, nj, ni = self.shape
        slab = max(1, slab_voxels // (nj * ni))
        for k0 in range(0, nk, slab):
            k1 = min(k0 + slab, nk)
            slab_box = (slice(k0, k1), slice(0, nj), slice(0, ni))
            x, y, z = self.coords(slab_box)
            for box, (_, fn) in zip(boxes, steps):
                ka, kb = max(box[0].start, k0), min(box[0].stop, k1)
                if kb <= ka or box[1].stop <= box[1].start or box[2].stop <= box[2].start:
                    continue
                local = (slice(ka - k0, kb - k0), box[1], box[2])
                glob = (slice(ka, kb), box[1], box[2])
                fn(glob, x[local], y[local], z[local])


_BIG = 1e4


def render(grid: Volume, truth: PhantomTruth, *, kind: str, seed: int
           ) -> dict[str, PhantomScan]:
    """Render scans. kind "planning" gives {"planning", "intraop"} (same anatomy, needles
    added to a copy); kind "followup" gives {"followup"}."""
    if kind == "followup":
        def inverse(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
            return planning_from_followup_cols(x, y, z, truth, 1e-4, np.float32)

        def forward(p: np.ndarray) -> np.ndarray:
            return followup_from_planning(p, truth)

        amp = float(np.linalg.norm(truth.followup_transform.bump.amplitude_mm))
        rend = Renderer(grid, inverse, forward, pad_mm=amp + 1.0)
    else:
        rend = Renderer(grid)

    c_t = np.asarray(truth.tumor.center_lps_mm)
    r_t = truth.tumor.radius_mm
    zone = truth.ablation_zone
    z_c, z_r, z_ax = (np.asarray(zone.center_lps_mm), np.asarray(zone.radii_mm),
                      np.asarray(zone.axes))

    def tumor_f(x, y, z):  # noqa: ANN001, ANN202
        return ((x - c_t[0]) ** 2 + (y - c_t[1]) ** 2 + (z - c_t[2]) ** 2) <= r_t * r_t

    def zone_f(x, y, z):  # noqa: ANN001, ANN202
        q = np.zeros(x.shape, np.float64)
        for r in range(3):
            proj = (z_ax[r, 0] * (x - z_c[0]) + z_ax[r, 1] * (y - z_c[1])
                    + z_ax[r, 2] * (z - z_c[2]))
            q += (proj / z_r[r]) ** 2
        return q <= 1.0

    big = (np.array([-_BIG] * 3), np.array([_BIG] * 3))
    hu = np.empty(rend.shape, dtype=np.float32)
    masks = {k: np.zeros(rend.shape, dtype=np.uint8) for k in
             (MASK_KEYS if kind == "planning" else ("tumor", "ablation_zone"))}
    if kind not in ("planning", "followup"):
        raise ValueError(f"render: unknown kind {kind!r}")
    steps: list[tuple[tuple[np.ndarray, np.ndarray], Callable[..., None]]] = []

    def step_background(sl, x, y, z):  # noqa: ANN001, ANN202
        blk = np.full(x.shape, HU["air"], np.float32)
        body = an.inside_body(x, y, z)
        blk[body] = HU["fat"]
        blk[an.ell2(x, y, an.inset(an.BODY, an.FAT_MM)) <= 1.0] = HU["muscle"]
        cav = an.inside_cavity(x, y, z)
        blk[cav] = HU["visceral_fat"]
        blk[(an.ell2(np.abs(x), y, (36.0, 88.0, 26.0, 17.0)) <= 1.0) & body] = HU["muscle"]
        # thorax: the cavity above the diaphragm is soft tissue, then lung and heart
        blk[cav & (z >= an.dome_z(x, y) - 4.0)] = HU["soft_tissue"]
        lung = an.lung(x, y, z)
        blk[lung] = HU["lung"]
        blk[an.heart(x, y, z) & cav] = HU["heart"]
        hu[sl] = blk
        if "body" in masks:
            masks["body"][sl] = body
            masks["lung"][sl] = lung

    steps.append((big, step_background))

    def step_organs(sl, x, y, z):  # noqa: ANN001, ANN202
        blk = hu[sl]
        below = z <= an.dome_z(x, y) - 4.0
        wall, fluid, air = an.stomach(x, y, z)
        blk[wall & below] = HU["bowel_wall"]
        blk[fluid & below] = HU["fluid"]
        blk[air & below] = HU["air"]
        blk[an.spleen(x, y, z) & below & an.inside_cavity(x, y, z)] = HU["spleen"]
        blk[an.kidneys(x, y, z)] = HU["kidney"]
        blk[an.gallbladder(x, y, z)] = HU["gallbladder"]

    steps.append(((np.array([-135.0, -95.0, -200.0]), np.array([135.0, 95.0, 60.0])),
                  step_organs))

    for a, b, r, gas in an.small_bowel_segments():
        def step_bowel(sl, x, y, z, a=a, b=b, r=r, gas=gas):  # noqa: ANN001, ANN202
            blk = hu[sl]
            d2 = _seg_dist2(x, y, z, a, b)
            free = blk < HU["muscle"]  # only in fat: never over organs or muscle
            blk[(d2 <= r * r) & free] = HU["bowel_wall"]
            blk[(d2 <= (r - 2.5) ** 2) & free] = HU["air"] if gas else HU["fluid"] + 15.0

        steps.append(((np.minimum(a, b) - r, np.maximum(a, b) + r), step_bowel))

    def step_psoas(sl, x, y, z):  # noqa: ANN001, ANN202
        blk = hu[sl]
        width = np.clip((-40.0 - z) / 60.0, 0.0, 1.0) * 14.0 + 6.0  # widens caudally
        psoas = ((np.abs(x) - 40.0) ** 2 / width ** 2 + (y - 62.0) ** 2 / 16.0 ** 2 <= 1.0) & \
            (z < -30.0)
        blk[psoas] = HU["muscle"]

    steps.append(((np.array([-80.0, 40.0, -_BIG]), np.array([80.0, 80.0, -30.0])), step_psoas))

    for a, b, r in an.colon_segments():
        def step_colon(sl, x, y, z, a=a, b=b, r=r):  # noqa: ANN001, ANN202
            blk = hu[sl]
            d2 = _seg_dist2(x, y, z, a, b)
            blk[(d2 <= r * r) & (blk < HU["liver"])] = HU["bowel_wall"]
            blk[d2 <= (r - 4.0) ** 2] = HU["air"]

        steps.append(((np.minimum(a, b) - r, np.maximum(a, b) + r), step_colon))

    def step_liver(sl, x, y, z):  # noqa: ANN001, ANN202
        env = an.liver_envelope(x, y, z)
        blk = hu[sl]
        blk[env] = HU["liver"]
        tm = tumor_f(x, y, z)
        if kind == "followup":
            zn = zone_f(x, y, z)
            blk[zn & env] = HU["ablation_zone"]
            blk[tm & ~zn] = HU["tumor"]  # viable (residual) tumour stays hypodense
            masks["ablation_zone"][sl] = zn
            masks["tumor"][sl] = tm
        else:
            blk[tm] = HU["tumor"]
            if "liver" in masks:
                masks["liver"][sl] = env
                masks["tumor"][sl] = tm

    steps.append(((np.array([-140.0, -90.0, -85.0]), np.array([72.0, 90.0, 75.0])), step_liver))

    def step_aorta(sl, x, y, z):  # noqa: ANN001, ANN202
        hu[sl][(((x - 14.0) ** 2 + (y - 28.0) ** 2) <= 11.0 ** 2) & (z < 100)] = HU["aorta"]

    steps.append(((np.array([3.0, 17.0, -_BIG]), np.array([25.0, 39.0, _BIG])), step_aorta))

    for v in truth.vessels:
        a, b = np.asarray(v.start_lps_mm), np.asarray(v.end_lps_mm)
        r = float(v.radius_mm)
        value = HU["ivc"] if v.name == "inferior vena cava" else HU["vessel"]

        def step_vessel(sl, x, y, z, a=a, b=b, r=r, value=value, key=v.kind):  # noqa: ANN001, ANN202
            inside = (_seg_dist2(x, y, z, a, b) <= r * r) & an.inside_body(x, y, z)
            hu[sl][inside] = value
            if key in masks:
                masks[key][sl] |= inside.astype(np.uint8)

        steps.append(((np.minimum(a, b) - r, np.maximum(a, b) + r), step_vessel))

    def step_ribs(sl, x, y, z):  # noqa: ANN001, ANN202
        blk = hu[sl]
        cx, cy, ra, rb = an.RIB_ELLIPSE
        rn = np.sqrt(((x - cx) / ra) ** 2 + ((y - cy) / rb) ** 2)
        band = np.abs(rn - 1.0) <= (an.RIB_RADIUS_MM + 1.0) / rb
        sdf = np.full(x.shape, np.inf, np.float32)
        sdf[band] = an.rib_sdf(x[band], y[band], z[band])
        rib = sdf <= 0.0
        blk[rib] = HU["bone"]
        blk[sdf <= -2.5] = HU["marrow"]
        if "bone" in masks:
            masks["bone"][sl] |= rib.astype(np.uint8)

    z_lo = min(zp for zp, _ in an.RIBS) - an.RIB_DROP_MM - an.RIB_RADIUS_MM - 2
    z_hi = max(zp for zp, _ in an.RIBS) + an.RIB_RADIUS_MM + 2
    steps.append(((np.array([-150.0, -100.0, z_lo]), np.array([150.0, 110.0, z_hi])), step_ribs))

    def step_spine(sl, x, y, z):  # noqa: ANN001, ANN202
        blk = hu[sl]
        sb, disc, canal = an.spine(x, y, z)
        blk[disc] = HU["disc"]
        blk[sb] = HU["bone"]
        blk[canal] = HU["csf"]
        if "bone" in masks:
            masks["bone"][sl] |= sb.astype(np.uint8)

    steps.append(((np.array([-45.0, 35.0, -_BIG]), np.array([45.0, 110.0, _BIG])), step_spine))

    rend.run(steps)
    scans: dict[str, PhantomScan] = {}
    mask_vols = {k: grid.with_array(m) for k, m in masks.items()}
    if kind == "planning":
        intra = hu.copy()
        needle_steps = []
        ramp_mm = float(np.mean(grid.spacing_mm))
        for nd in truth.placed_needles or truth.needles:
            tip, entry = np.asarray(nd.tip_lps_mm), np.asarray(nd.entry_lps_mm)
            hub = entry - 40.0 * an.unit(tip - entry)  # shaft continues outside to the handle

            def step_needle(sl, x, y, z, a=hub, b=tip):  # noqa: ANN001, ANN202
                # flat-ended rod with partial volume: the metal ends exactly at the tip
                f = _rod_fraction(x, y, z, a, b, an.NEEDLE_DRAW_RADIUS_MM, ramp_mm)
                blk = intra[sl]
                blk += f * (np.float32(HU["metal"]) - blk)

            needle_steps.append(((np.minimum(hub, tip) - 3, np.maximum(hub, tip) + 3),
                                 step_needle))
        rend.run(needle_steps)
        scans["planning"] = PhantomScan(_finish(hu, grid, seed, 1, "planning"), mask_vols)
        scans["intraop"] = PhantomScan(_finish(intra, grid, seed, 2, "intraop"), {})
    else:
        scans["followup"] = PhantomScan(_finish(hu, grid, seed, 3, "followup"), mask_vols)
    return scans


def _finish(hu: np.ndarray, grid: Volume, seed: int, scan_no: int, kind: str) -> Volume:
    """Scanner blur (partial volume), seeded noise (own field per scan), int16 HU Volume."""
    gaussian_filter(hu, sigma=an.BLUR_SIGMA_MM / grid.spacing_mm[::-1], output=hu,
                    mode="nearest", truncate=3.0)
    rng = np.random.default_rng([int(seed), scan_no, 7919])
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise *= an.NOISE_SD_HU
    noise[hu <= HU["air"] + 50.0] *= 0.3
    hu += noise
    del noise
    np.clip(hu, -1024.0, 3071.0, out=hu)
    return grid.with_array(np.rint(hu).astype(np.int16), phantom_scan=kind)


def planning_zone_mask(template: Volume, truth: PhantomTruth) -> Volume:
    """The true ablation zone as a uint8 mask on a planning-space grid."""
    zone = truth.ablation_zone
    c, r, ax = (np.asarray(zone.center_lps_mm), np.asarray(zone.radii_mm),
                np.asarray(zone.axes))
    rend = Renderer(template)
    box = rend.index_box(c - r.max(), c + r.max())
    out = np.zeros(template.array.shape, np.uint8)
    if all(s.stop > s.start for s in box):
        x, y, z = rend.coords(box)
        q = np.zeros(x.shape, np.float64)
        for i in range(3):
            proj = ax[i, 0] * (x - c[0]) + ax[i, 1] * (y - c[1]) + ax[i, 2] * (z - c[2])
            q += (proj / r[i]) ** 2
        out[box] = q <= 1.0
    return template.with_array(out)
