"""The computation process: results, progress, cancel, cached arguments, errors, crashes.

Real child processes (spawn), real jobs from irplan.app.process_jobs."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from irplan.app.process_jobs import predict_zone_job, sleep_job
from irplan.app.process_pool import Cached, ProcessPool, WorkerCrashedError
from irplan.planning.errors import CancelledError, InputError
from irplan.planning.plan import Needle, Plan, ThermalParams
from irplan.planning.volume import Volume
from irplan.planning.zone import predict_zone


@pytest.fixture(scope="module")
def pool():
    p = ProcessPool()
    yield p
    p.shutdown()


def _sphere_case() -> tuple[Plan, dict[str, Volume]]:
    """A 20-mm tumour sphere (1-mm grid, LPS origin at voxel 0) and one microwave antenna
    along -S through its centre, 100 W x 300 s."""
    n = 60
    tumor = Volume(np.zeros((n, n, n), np.uint8), np.zeros(3), (1.0, 1.0, 1.0))
    centre = np.array([30.0, 30.0, 30.0])
    inside = np.linalg.norm(tumor.voxel_centres_lps() - centre, axis=-1) <= 10.0
    tumor = tumor.with_array(inside.astype(np.uint8))
    liver = tumor.with_array(np.ones((n, n, n), np.uint8))
    tip = centre + [0.0, 0.0, -15.0]
    plan = Plan(modality="MWA", needles=[Needle("mwa-14g", tip, tip + [0.0, 0.0, 120.0])],
                thermal=ThermalParams(power_w=100.0, time_s=300.0))
    return plan, {"tumor": tumor, "liver": liver}


def test_zone_in_the_process_equals_the_zone_in_this_process(pool):
    plan, structures = _sphere_case()
    here = predict_zone(plan, None, structures, 1.0)
    seen: list[float] = []
    there = pool.run(predict_zone_job, plan, Cached("s1", structures), 1.0,
                     progress=lambda f, t: seen.append(f), cancel=lambda: False)
    assert there.volume_ml == pytest.approx(here.volume_ml, rel=1e-12)
    assert np.array_equal(there.zone.array, here.zone.array)
    assert there.margin.minimal_margin_mm == pytest.approx(here.margin.minimal_margin_mm)
    # the cached structures are used again without being sent
    assert "s1" in pool._sent_keys
    again = pool.run(predict_zone_job, plan, Cached("s1", structures), 1.0)
    assert again.volume_ml == pytest.approx(here.volume_ml, rel=1e-12)


def test_progress_and_cancel_reach_the_job(pool):
    seen: list[tuple[float, str]] = []
    flag = threading.Event()
    threading.Timer(0.5, flag.set).start()
    t = time.monotonic()
    with pytest.raises(CancelledError):
        pool.run(sleep_job, 30.0, progress=lambda f, s: seen.append((f, s)), cancel=flag.is_set)
    assert time.monotonic() - t < 10.0          # stopped long before the 30 s
    assert seen and seen[-1][1] == "sleeping" and 0.0 <= seen[-1][0] < 0.5


def test_errors_come_back_with_their_type_and_message(pool):
    plan, structures = _sphere_case()
    with pytest.raises(InputError, match="grid"):
        pool.run(predict_zone_job, plan, Cached("s1", structures), -1.0)


def test_a_killed_worker_is_reported_and_replaced(pool):
    pid = int(pool.run(sleep_job, 0.0))
    assert pid != os.getpid()
    threading.Timer(0.5, lambda: os.kill(pid, signal.SIGKILL)).start()
    with pytest.raises(WorkerCrashedError, match="ended"):
        pool.run(sleep_job, 30.0)
    new_pid = int(pool.run(sleep_job, 0.0))
    assert new_pid not in (pid, os.getpid())
    # cached values are sent again to the new process
    plan, structures = _sphere_case()
    res = pool.run(predict_zone_job, plan, Cached("s1", structures), 1.0)
    assert res.volume_ml > 0


def test_surface_mesh_from_the_mesh_process_equals_the_direct_one() -> None:
    """The structure surface made in the mesh process (from the structure's box) is the
    mesh made here from the whole mask: same triangles, same enclosed volume."""
    from irplan.app.process_jobs import surface_mesh_job
    from irplan.app.process_pool import mesh_pool
    from irplan.viewers.surfaces import (
        mask_to_polydata,
        polydata_from_arrays,
        polydata_volume_ml,
    )

    _plan, structures = _sphere_case()
    tumor = structures["tumor"]
    direct = mask_to_polydata(tumor, max_triangles=4000)
    box = tumor.crop_index([17, 17, 17], [44, 44, 44])
    mesh = mesh_pool().run(surface_mesh_job, box, 4000)
    poly = polydata_from_arrays(mesh)
    assert poly.GetNumberOfPolys() == direct.GetNumberOfPolys() > 500
    assert poly.GetPointData().GetNormals() is not None
    # same mesh up to rounding (the box shifts the local frame the smoothing normalises)
    assert polydata_volume_ml(poly) == pytest.approx(polydata_volume_ml(direct), rel=1e-4)
    # a 10 mm ball: 4.19 mL
    assert polydata_volume_ml(poly) == pytest.approx(4.0 / 3.0 * np.pi * 1.0, rel=0.06)
