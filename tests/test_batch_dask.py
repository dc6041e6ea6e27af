"""The cohort engine (issue 18): `irplan evaluate-batch` on phantom cases with a broken row
and a row that hangs (its ablation mask is a FIFO nobody writes: reading it blocks), run
serially, on 2 local Dask workers and on a real `dask scheduler` + 2 `dask worker`
processes on 127.0.0.1; the same rows and numbers in every mode; a SIGKILL of the batch
mid-run and `--resume` redoes only the unfinished cases. Engine level: a crash
(os._exit) and a memory blow-up are reported on their rows and the batch goes on."""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

from irplan.app.batch_engine import EngineOptions, run_cases
from irplan.app.cli import main
from irplan.io.phantom_writer import load_truth
from irplan.planning.errors import InputError

TIMEOUT_S = 20.0   # the hang row is stopped after this; real cases take 1-3 s unloaded
ROOT = Path(__file__).resolve().parents[1]


def _cohort(case: Path, folder: Path, hang: bool) -> Path:
    """Phantom rows (masks in one space: register none, plus one rigid row), one broken
    row (missing mask), and with ``hang`` a first row whose ablation mask is a FIFO."""
    folder.mkdir(parents=True, exist_ok=True)
    m = case / "masks"
    tumor, zone = m / "planning/tumor.nii.gz", m / "planning/ablation_zone.nii.gz"
    rows = [["case_id", "planning", "followup", "tumor", "ablation", "register",
             "plan_zone", "margin_mm"]]
    if hang:
        fifo = folder / "hang_zone.nii.gz"
        if not fifo.exists():
            os.mkfifo(fifo)
        rows.append(["hang", "", "", tumor, fifo, "none", "", ""])
    rows += [["good", "", "", tumor, zone, "none", zone, ""],
             ["broken", "", "", tumor, m / "missing_zone.nii.gz", "none", "", ""],
             ["rigid", case / "planning", case / "followup", tumor,
              m / "followup/ablation_zone.nii.gz", "rigid", "", ""],
             ["goal7", "", "", tumor, zone, "none", "", "7"]]
    path = folder / "cohort.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _same_results(a: list[dict[str, str]], b: list[dict[str, str]]) -> None:
    """Same rows, same order, same numbers (elapsed_s aside)."""
    assert [r["case_id"] for r in a] == [r["case_id"] for r in b]
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if k != "elapsed_s"} == \
               {k: v for k, v in rb.items() if k != "elapsed_s"}, ra["case_id"]


def _irplan(*args: str) -> list[str]:
    return [sys.executable, "-m", "irplan.app.cli", *map(str, args)]


@pytest.fixture(scope="module")
def serial_resumed(phantom_case, tmp_path_factory):
    """The serial run of the cohort without the hang row, SIGKILLed once 2 cases are in
    the journal, then finished with --resume. Returns (rows, journalled before the kill,
    stderr of the resumed run, output folder)."""
    folder = tmp_path_factory.mktemp("serial")
    cohort = _cohort(phantom_case, folder, hang=False)
    out = folder / "results.csv"
    journal = folder / "results.csv.journal"
    proc = subprocess.Popen(_irplan("evaluate-batch", cohort, "--out", out, "--no-progress"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while (len(list(journal.glob("*.json"))) if journal.is_dir() else 0) < 2:
        assert proc.poll() is None and time.monotonic() - t0 < 120
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(journal.glob("*.json")))
    assert not out.exists()              # killed before the end: no partial results CSV
    res = subprocess.run(_irplan("evaluate-batch", cohort, "--out", out, "--resume",
                                 "--no-progress"), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 1, res.stderr           # the broken row
    return _rows(out), done_before, res.stderr, folder


def test_resume_after_sigkill_redoes_only_the_unfinished_cases(serial_resumed,
                                                               phantom_case, capsys):
    rows, done_before, err, folder = serial_resumed
    n = len(rows)
    assert 2 <= done_before < n
    m = re.search(r"\((\d+) computed, (\d+) taken from the journal\)", err)
    assert m, err
    assert (int(m.group(1)), int(m.group(2))) == (n - done_before, done_before)
    truth = load_truth(phantom_case)
    by_id = {r["case_id"]: r for r in rows}
    assert by_id["good"]["status"] == "ok"
    assert float(by_id["good"]["minimal_margin_mm"]) == pytest.approx(
        truth.minimal_margin_mm, abs=0.5)
    assert by_id["broken"]["status"] == "error"
    assert "missing_zone.nii.gz" in by_id["broken"]["error"]
    assert by_id["goal7"]["verdict"] == "complete_margin_at_risk"     # 6.8 mm < 7 mm goal
    assert by_id["rigid"]["registration_method"] == "rigid"
    # the journal: one file per case, named by a content hash (no id, no path in names)
    names = sorted(p.name for p in (folder / "results.csv.journal").iterdir())
    assert len(names) == n and all(re.fullmatch(r"[0-9a-f]{64}\.json", x) for x in names)
    # a second --resume (journal copied beside another output) computes nothing
    again = folder / "again.csv"
    for p in (folder / "results.csv.journal").iterdir():
        (folder / "again.csv.journal").mkdir(exist_ok=True)
        (folder / "again.csv.journal" / p.name).write_bytes(p.read_bytes())
    assert main(["evaluate-batch", str(folder / "cohort.csv"), "--out", str(again),
                 "--resume", "--no-progress"]) == 1
    assert f"(0 computed, {n} taken from the journal)" in capsys.readouterr().err
    _same_results(_rows(again), rows)


def test_two_local_workers_match_serial_and_stop_the_hang(serial_resumed, phantom_case,
                                                          tmp_path, capsys):
    serial = serial_resumed[0]
    cohort = _cohort(phantom_case, tmp_path, hang=True)
    out = tmp_path / "results.csv"
    report = tmp_path / "cohort.pdf"
    t0 = time.monotonic()
    code = main(["evaluate-batch", str(cohort), "--out", str(out), "--workers", "2",
                 "--timeout-s", str(TIMEOUT_S), "--report", str(report)])
    wall = time.monotonic() - t0
    err = capsys.readouterr().err
    print(f"2 local workers: {wall:.1f} s wall; load {os.getloadavg()}")
    assert code == 1
    rows = _rows(out)
    hang, rest = rows[0], rows[1:]
    assert hang["case_id"] == "hang" and hang["status"] == "error"
    assert "--timeout-s" in hang["error"] and "restarted" in hang["error"]
    assert float(hang["elapsed_s"]) >= TIMEOUT_S
    _same_results(rest, serial)
    assert "5/5" in err                       # the progress bar went over every case
    # the QC report and a thumbnail per evaluated case beside it
    assert report.read_bytes().startswith(b"%PDF")
    thumbs = sorted(p.name for p in (tmp_path / "cohort.pdf.thumbnails").glob("*.png"))
    assert thumbs == sorted(f"{r['case_id']}.png" for r in rest if r["status"] == "ok")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    """A real `dask scheduler` and 2 `dask worker --nthreads 1` on 127.0.0.1."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).with_name("dask"))
    env = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="0")
    logs = [open(tmp_path / f"dask{i}.log", "w") for i in range(3)]  # noqa: SIM115
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], env=env, stdout=logs[0],
                              stderr=subprocess.STDOUT, cwd=tmp_path)]
    try:
        t0 = time.monotonic()
        while True:                       # the scheduler listens (a few s under load)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert procs[0].poll() is None and time.monotonic() - t0 < 90
                time.sleep(0.2)
        for i in (1, 2):
            procs.append(subprocess.Popen(
                [dask, "worker", addr, "--nthreads", "1", "--host", "127.0.0.1",
                 "--no-dashboard", "--local-directory", str(tmp_path / f"w{i}")],
                env=env, stdout=logs[i], stderr=subprocess.STDOUT, cwd=tmp_path))
        yield addr
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in logs:
            f.close()


def test_real_scheduler_and_workers_match_serial(serial_resumed, phantom_case, tmp_path,
                                                 dask_cluster, capsys):
    serial = serial_resumed[0]
    cohort = _cohort(phantom_case, tmp_path, hang=True)
    out = tmp_path / "results.csv"
    code = main(["evaluate-batch", str(cohort), "--out", str(out), "--scheduler",
                 dask_cluster, "--timeout-s", str(TIMEOUT_S), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1, err
    rows = _rows(out)
    assert rows[0]["case_id"] == "hang" and "--timeout-s" in rows[0]["error"]
    _same_results(rows[1:], serial)


def test_scheduler_that_is_not_there_is_one_line_exit_2(tmp_path, phantom_case, capsys):
    cohort = _cohort(phantom_case, tmp_path, hang=False)
    code = main(["evaluate-batch", str(cohort), "--out", str(tmp_path / "r.csv"),
                 "--scheduler", f"tcp://127.0.0.1:{_free_port()}"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot connect" in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


# --- engine level: crashes and memory blow-ups of a case -------------------------------
def _case(case: tuple[str, int]) -> int:
    kind, x = case
    if kind == "crash":
        os._exit(3)                        # the worker process dies, as in a segfault
    if kind == "memory":
        blocks = []
        while True:                        # ~50 MB every 20 ms until the nanny stops it
            blocks.append(np.ones(50_000_000 // 8))
            time.sleep(0.02)
    if kind == "input":
        raise InputError(f"row {x}: the tumour mask is empty")
    if kind == "bug":
        return [][x]
    return x * x


def test_engine_reports_crash_and_memory_blowup_on_their_rows():
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import us
    cases = [("ok", 1), ("crash", 2), ("ok", 3), ("memory", 4), ("input", 5), ("bug", 6),
             ("ok", 7)]
    out = run_cases(_case, cases, EngineOptions(workers=2, memory_limit="400MB"))
    assert [o.index for o in out] == list(range(len(cases)))
    assert [o.status for o in out] == ["ok", "error", "ok", "error", "error", "error", "ok"]
    assert [o.value for o in out if o.status == "ok"] == [1, 9, 49]
    assert out[1].kind == "crash" and "worker process died" in out[1].error
    assert out[3].kind in ("memory", "crash") and "memory" in out[3].error
    assert out[4].kind == "input" and out[4].error == "row 5: the tumour mask is empty"
    assert out[5].kind == "internal" and "IndexError" in out[5].error


def test_journal_key_is_the_content_not_the_name(tmp_path):
    from irplan.app.batch_journal import input_key

    ct = tmp_path / "ct"
    (ct / "sub").mkdir(parents=True)
    (ct / "a.dcm").write_bytes(b"slice one")
    (ct / "sub" / "b.dcm").write_bytes(b"slice two")
    mask = tmp_path / "tumour.nii.gz"
    mask.write_bytes(b"mask bytes")
    opts = {"register": "rigid", "margin_mm": 5.0}
    key = input_key({"planning": str(ct), "tumor": str(mask)}, opts)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    moved = tmp_path / "renamed_ct"
    ct.rename(moved)                                   # a moved/renamed case: same key
    assert input_key({"planning": str(moved), "tumor": str(mask)}, opts) == key
    assert input_key({"planning": str(moved), "tumor": str(mask)},
                     {**opts, "margin_mm": 7.0}) != key          # an option that matters
    (moved / "sub" / "b.dcm").write_bytes(b"slice 2")  # one file of the series changed
    assert input_key({"planning": str(moved), "tumor": str(mask)}, opts) != key
    fifo = tmp_path / "pipe.nii.gz"
    os.mkfifo(fifo)                                    # never opened: no key, recomputed
    assert input_key({"planning": str(moved), "tumor": str(fifo)}, opts) is None
