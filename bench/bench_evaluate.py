"""Benchmark of the follow-up evaluation: registration, margin analysis, accuracy figures.

    .venv/bin/python bench/bench_evaluate.py [--size 512 512 200] [--cache DIR] [--quick]

1. Makes a planning / follow-up phantom pair (irplan.planning.phantom, exact truth) of
   ``--size`` voxels (default 512 x 512 x 200 at 0.7 x 0.7 x 1.25 mm) and caches it.
2. Runs each stage in a fresh process (so peak memory is the stage's own): rigid
   registration, deformable registration, margin analysis at 0.5 mm. Prints wall time,
   peak resident memory and the target registration error at the tumour (mm).
3. Margin accuracy on analytic spheres: MAM error by voxel size and by anti-aliasing
   sigma (how rasterisation at CT voxels biases a minimum low).

Targets (issue 7): rigid <= 15 s, deformable <= 90 s, margin <= 2 s on the 2-core box.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_pair(cache: Path, size: tuple[int, int, int], spacing: tuple[float, float, float],
              scenario: str = "margin_at_risk") -> None:
    from irplan.io.masks import write_mask, write_volume_file
    from irplan.planning import phantom as ph

    if (cache / "done").exists():
        return
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    truth = ph.make_truth(0, scenario)
    grid = ph.phantom_grid("axial", size, spacing)
    ct, masks, _ = ph.make_planning(grid, 0, scenario, truth)
    write_volume_file(ct, cache / "planning.nii.gz", compress=False)
    write_mask(masks["tumor"], cache / "tumor.nii.gz")
    write_mask(masks["liver"], cache / "liver.nii.gz")
    del ct, masks
    fgrid = ph.followup_grid(grid)
    fct, fmasks = ph.make_followup(fgrid, truth, 0)
    write_volume_file(fct, cache / "followup.nii.gz", compress=False)
    write_mask(fmasks["ablation_zone"], cache / "zone_followup.nii.gz")
    (cache / "truth.json").write_text(json.dumps(truth.to_dict()))
    (cache / "done").write_text("ok")
    print(f"phantom pair {size} at {spacing} mm written in {time.perf_counter() - t0:.0f} s "
          f"to {cache}")


def _tre(result, truth) -> tuple[float, float]:
    from irplan.planning import phantom as ph

    c = np.asarray(truth.tumor.center_lps_mm)
    r = truth.tumor.radius_mm
    u = np.random.default_rng(7).normal(size=(500, 3))
    pts = c + r * u / np.linalg.norm(u, axis=1, keepdims=True)
    err = np.linalg.norm(result.map_points(pts) - ph.followup_from_planning(pts, truth), axis=1)
    return float(err.mean()), float(err.max())


def run_stage(stage: str, cache: Path) -> dict:
    """One stage in this process; returns its figures."""
    from irplan.io.masks import read_mask, read_volume_file
    from irplan.planning.margin import compute_margin
    from irplan.planning.phantom_truth import PhantomTruth
    from irplan.planning.registration import register

    truth = PhantomTruth.from_dict(json.loads((cache / "truth.json").read_text()))
    tumor = read_mask(cache / "tumor.nii.gz")
    zone = read_mask(cache / "zone_followup.nii.gz")
    out: dict = {"stage": stage}
    if stage in ("rigid", "deformable"):
        p = read_volume_file(cache / "planning.nii.gz")
        f = read_volume_file(cache / "followup.nii.gz")
        out["size"] = list(p.size_xyz)
        base = _peak_mb()
        t0, c0 = time.perf_counter(), _cpu_s()
        res = register(p, f, stage, target=tumor, followup_exclude=zone)
        out["seconds"] = time.perf_counter() - t0
        out["cpu_s"] = _cpu_s() - c0
        out["tre_mean_mm"], out["tre_max_mm"] = _tre(res, truth)
        out["metric"] = res.metric_value
        out["iterations"] = res.iterations
        out["peak_mb"] = _peak_mb()
        out["peak_mb_before_stage"] = base
    else:
        import SimpleITK as sitk

        # exact rigid part of the phantom motion as the transform (no registration here)
        tf = truth.followup_transform
        e = sitk.AffineTransform(3)
        e.SetMatrix([float(v) for v in tf.rotation_matrix.ravel()])
        e.SetTranslation([float(v) for v in tf.translation_mm])
        import scipy.ndimage  # noqa: F401 - imports loaded once in the app, not timed
        import scipy.spatial  # noqa: F401
        import skimage.measure  # noqa: F401

        base = _peak_mb()
        t0, c0 = time.perf_counter(), _cpu_s()
        m = compute_margin(tumor, zone, 5.0, 0.5, zone_transform=e)
        out["seconds"] = time.perf_counter() - t0
        out["cpu_s"] = _cpu_s() - c0
        out["mam_mm"] = m.minimal_margin_mm
        out["true_mam_mm"] = truth.minimal_margin_mm
        out["coverage_percent"] = m.tumor_coverage_percent
        out["true_coverage_percent"] = truth.tumor_coverage_percent
        out["surface_vertices"] = int(len(m.surface_points_lps_mm))
        t0 = time.perf_counter()
        compute_margin(tumor, zone, 5.0, None, zone_transform=e)
        out["preview_seconds"] = time.perf_counter() - t0
        out["peak_mb"] = _peak_mb()
        out["peak_mb_before_stage"] = base
    return out


def sphere_accuracy(quick: bool) -> None:
    """MAM error on analytic spheres by voxel size and anti-aliasing sigma."""
    from irplan.planning.margin import compute_margin
    from irplan.planning.volume import Volume

    def sphere(spacing, size, origin, c, r):
        g = Volume(np.zeros(size[::-1], np.uint8), origin, np.asarray(spacing, float))
        k, j, i = np.meshgrid(*(np.arange(n) for n in g.array.shape), indexing="ij")
        p = g.index_to_lps(np.stack([i, j, k], -1).astype(float))
        return g.with_array((np.linalg.norm(p - c, axis=-1) <= r).astype(np.uint8))

    rng = np.random.default_rng(3)
    n = 3 if quick else 8
    print("\nMAM error on analytic spheres (tumour r 10 mm, zone r 15 mm, random offsets "
          f"0-8 mm and voxel phase, n={n}); error = measured - exact (mm)")
    print(f"{'voxel mm':>16} {'sigma':>6} {'mean':>7} {'min':>7} {'max':>7} {'s/case':>7}")
    cases = []
    for _ in range(n):
        d = rng.normal(size=3)
        cases.append((rng.uniform(0, 1, 3), rng.uniform(-1, 1, 3), d / np.linalg.norm(d),
                      rng.uniform(0, 8)))
    for sp in [(0.5, 0.5, 0.5), (0.75, 0.75, 2.5), (1.0, 1.0, 1.0), (1.5, 1.5, 2.0)]:
        for sig in ([1.0] if quick else [0.0, 0.5, 1.0, 1.5]):
            errs, secs = [], []
            for phase, ct, d, off in cases:
                o = np.array([-30.0, -30.0, -30.0]) + phase
                size = tuple(int(60 / s) for s in sp)
                t = sphere(sp, size, o, ct, 10.0)
                z = sphere(sp, size, o, ct + off * d, 15.0)
                t0 = time.perf_counter()
                m = compute_margin(t, z, sigma_factor=sig)
                secs.append(time.perf_counter() - t0)
                errs.append(m.minimal_margin_mm - (5.0 - off))
            e = np.asarray(errs)
            print(f"{str(sp):>16} {sig:>6.1f} {e.mean():>7.2f} {e.min():>7.2f} {e.max():>7.2f} "
                  f"{np.mean(secs):>7.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=3, default=[512, 512, 200])
    ap.add_argument("--spacing", type=float, nargs=3, default=[0.7, 0.7, 1.25])
    ap.add_argument("--cache", default="/tmp/irplan_bench_evaluate")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="fewer sphere cases")
    ap.add_argument("--skip-spheres", action="store_true")
    ap.add_argument("--spheres-only", action="store_true")
    args = ap.parse_args()
    cache = Path(args.cache) / "x".join(str(v) for v in args.size)
    if args.stage:
        print(json.dumps(run_stage(args.stage, cache)))
        return 0
    if args.spheres_only:
        sphere_accuracy(args.quick)
        return 0
    make_pair(cache, tuple(args.size), tuple(args.spacing))
    targets = {"rigid": 15.0, "deformable": 90.0, "margin": 2.0}
    print(f"\nfollow-up evaluation on a {args.size} pair ({args.spacing} mm), "
          "each stage in its own process")
    for stage in ("rigid", "deformable", "margin"):
        proc = subprocess.run([sys.executable, __file__, "--stage", stage, "--cache",
                               args.cache, "--size", *map(str, args.size)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{stage}: FAILED\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        ok = "ok" if r["seconds"] <= targets[stage] else "OVER TARGET"
        line = (f"{stage:>10}: {r['seconds']:6.1f} s wall, {r['cpu_s']:6.1f} s CPU "
                f"(target {targets[stage]:g} s, {ok}), "
                f"peak RSS {r['peak_mb']:.0f} MB (inputs loaded {r['peak_mb_before_stage']:.0f}"
                " MB)")
        if "tre_mean_mm" in r:
            line += (f", TRE at tumour mean {r['tre_mean_mm']:.2f} / max "
                     f"{r['tre_max_mm']:.2f} mm, {r['iterations']} iterations")
        if "mam_mm" in r:
            line += (f", MAM {r['mam_mm']:.2f} (true {r['true_mam_mm']:.2f}) mm, coverage "
                     f"{r['coverage_percent']:.2f} (true {r['true_coverage_percent']:.2f}) %, "
                     f"{r['surface_vertices']} vertices; preview on CT grid "
                     f"{r['preview_seconds']:.2f} s")
        print(line)
    if not args.skip_spheres:
        sphere_accuracy(args.quick)
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          "(other work on the machine inflates wall times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
