"""Cohort throughput vs workers (issue 18): cases per minute with 1 and 2 Dask worker
processes on registration-bound (deformable) phantom cases, the speed-up, and the
projected time for a 200-lesion cohort.

    .venv/bin/python bench/bench_batch_scaling.py [--cases 4] [--workers 1 2]
        [--register deformable] [--cache /tmp/irplan_bench_batch]

Each run goes through :func:`irplan.app.batch_engine.run_cases` with the task of
``irplan evaluate-batch`` (``cmd_evaluate_batch.evaluate_case``), on a local cluster of
N worker processes with one compute thread each (``--workers 1`` also runs on a
one-worker cluster, so both figures carry the same Dask overhead; the serial in-process
mode is timed too). The start-up of a cluster (spawn + imports of every worker) is timed
on its own and reported apart: a cohort pays it once. Figures:

* wall: the run's wall time (start-up included); steady rate = cases / (wall -
  start-up), the cases per minute a long cohort sees;
* per case: wall time in its worker and CPU time of its worker process (s). CPU time
  hardly depends on the machine's load; when it grows with the number of workers, the
  cases compete for memory bandwidth or caches. On a loaded machine the wall speed-up
  says little (each process gets a share of the cores); the CPU-time ratio then tells
  what 2 idle cores would give: speed-up ~= 2 x cpu(1 worker) / cpu(2 workers);
* projected 200 lesions = start-up + 200 / steady rate.

The machine is shared: the load average is printed before and after each run. Goal
(issue 18): >= 1.8x from 1 to 2 workers on 2 idle cores.

Measured 2026-12-05 (4 deformable cases, 2 vCPUs shared by ~7 sessions, load 10-19):
serial 14.7 s CPU/case; 1 worker 15.7 s CPU/case, 0.97 cases/min; 2 workers 17.7 s
CPU/case, 1.03 cases/min: wall speed-up 1.07x (the load, not the engine: each worker got
~15 % of a core), CPU-time estimate 1.78x; projected 200 lesions ~193 min at that load;
on 2 idle cores (a whole core per worker) 200 x 17.7 s / 2 workers ~= 30 min, against
200 x 15.7 s ~= 52 min with 1 worker. MAM identical in every mode.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _noop(case: int) -> int:
    return case


def make_cases(cache: Path, n: int, register: str) -> list[tuple[dict, str, None]]:
    """n rows over the phantom case (seed 0, written once into ``cache``); the cases are
    the same lesion (same work each), with their own ids."""
    from irplan.io.phantom_writer import write_phantom_case

    case = cache / "case"
    if not (case / "truth.json").is_file():
        t0 = time.perf_counter()
        write_phantom_case(case, seed=0)
        print(f"phantom case written in {time.perf_counter() - t0:.0f} s to {case}")
    m = case / "masks"
    row = {"planning": str(case / "planning"), "followup": str(case / "followup"),
           "tumor": str(m / "planning/tumor.nii.gz"),
           "ablation": str(m / "followup/ablation_zone.nii.gz"), "register": register}
    return [({**row, "case_id": f"lesion{i + 1}"}, register, None) for i in range(n)]


def timed(cases: list, workers: int | None) -> dict:
    from irplan.app.batch_engine import EngineOptions, run_cases
    from irplan.app.cmd_evaluate_batch import evaluate_case, warm_up

    # a timeout far above any case puts workers=1 on a one-worker cluster (not serial)
    opts = (EngineOptions() if workers is None
            else EngineOptions(workers=workers, timeout_s=1e5))
    res: dict = {"load_before": _load()}
    if workers is not None:
        t0 = time.perf_counter()
        run_cases(_noop, list(range(workers)), opts, warm_up=warm_up)
        res["startup_s"] = time.perf_counter() - t0
    else:
        res["startup_s"] = 0.0
    t0 = time.perf_counter()
    out = run_cases(evaluate_case, cases, opts, warm_up=warm_up)
    res["wall_s"] = time.perf_counter() - t0
    res["load_after"] = _load()
    bad = [o.error for o in out if o.status != "ok"]
    if bad:
        raise SystemExit(f"a case failed: {bad[0]}")
    res["case_sum_s"] = sum(o.elapsed_s for o in out)
    res["cpu_sum_s"] = sum(o.cpu_s or 0.0 for o in out)
    res["mam_mm"] = sorted({o.value[0]["minimal_margin_mm"] for o in out})
    steady = max(res["wall_s"] - res["startup_s"] * (workers is not None), 1e-9)
    res["rate_per_min"] = 60.0 * len(cases) / steady
    res["project_200_min"] = (res["startup_s"] + 200 * 60.0 / res["rate_per_min"]) / 60.0
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=4, help="cases per run (default 4)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--register", default="deformable", choices=("none", "rigid",
                                                                 "deformable"))
    ap.add_argument("--no-serial", action="store_true", help="skip the serial run")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/irplan_bench_batch"))
    args = ap.parse_args()
    cases = make_cases(args.cache, args.cases, args.register)
    print(f"{args.cases} {args.register} phantom cases; machine: {os.cpu_count()} CPUs, "
          f"load average {_load()} (1/5/15 min)")
    runs: list[tuple[str, dict]] = []
    if not args.no_serial:
        runs.append(("serial", timed(cases, None)))
    for w in args.workers:
        runs.append((f"{w} worker{'s' if w > 1 else ''}", timed(cases, w)))
    print(f"\n{'mode':<10} {'start-up':>9} {'wall':>8} {'wall/case':>9} {'CPU/case':>9} "
          f"{'cases/min':>10} {'200 lesions':>12}  load before -> after")
    for name, r in runs:
        print(f"{name:<10} {r['startup_s']:8.1f}s {r['wall_s']:7.1f}s "
              f"{r['case_sum_s'] / args.cases:8.1f}s {r['cpu_sum_s'] / args.cases:8.1f}s "
              f"{r['rate_per_min']:10.2f} "
              f"{r['project_200_min']:9.0f} min  {r['load_before']} -> {r['load_after']}")
    mams = {tuple(r["mam_mm"]) for _n, r in runs}
    print(f"\nMAM of every case in every mode: {sorted(mams)} mm "
          f"({'identical' if len(mams) == 1 else 'DIFFERENT'})")
    by = dict(runs)
    if "1 worker" in by and "2 workers" in by:
        s = by["2 workers"]["rate_per_min"] / by["1 worker"]["rate_per_min"]
        c = 2.0 * by["1 worker"]["cpu_sum_s"] / max(by["2 workers"]["cpu_sum_s"], 1e-9)
        print(f"speed-up 1 -> 2 workers: {s:.2f}x wall (goal >= 1.8x on 2 idle cores); "
              f"CPU-time estimate for 2 idle cores: {c:.2f}x; load average now {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
