"""The installers of packaging/bundle.sh, smoke-tested as a user gets them.

The bundle is built once per run (``bash packaging/bundle.sh`` into a temporary folder;
~4-6 min on 2 cores) unless ``IRPLAN_BUNDLE_DIST`` names the dist folder of a build made
earlier in the same run (CI: build first, then test). The .tar.gz is unpacked elsewhere
and its ``irplan`` runs with a bare environment: ``env -i PATH=/usr/bin:/bin HOME=<empty>
DISPLAY=<the test's Xvfb>`` (no venv, no Python on the path). Checked: the demo
screenshot is a real picture, ``info`` reads a JPEG-compressed real CT, ``zone`` and
``evaluate`` give the installed command's figures on the phantom case (whose CTs are
JPEG 2000 compressed, so the bundled decoders run), the launcher's one-line message for a
missing host library, and the .deb's files, dependencies and notice.
Time (2 cores): whole module 6.1 min at load 5-7 (build 4.1 min, checks 2.0 min); see
packaging/README.md ("Figures").
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from irplan.app.cli import COMMANDS, NOTICE
from irplan.io.phantom_writer import load_truth

# the first test's setup builds the bundle (pytest-timeout counts fixture setup)
pytestmark = [pytest.mark.slow, pytest.mark.gui, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[1]
HOST_LIB_PREFIXES = ("libGL", "libEGL", "libdrm", "libX11", "libxcb", "libgbm", "libglapi",
                     "libxkbcommon", "libfontconfig", "libdbus-1", "libwayland")


def _version() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dist folder: bundle, .tar.gz and .deb (built now, or reused from this run)."""
    given = os.environ.get("IRPLAN_BUNDLE_DIST")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("bundle")
    env = dict(os.environ, IRPLAN_DIST_DIR=str(out / "dist"),
               IRPLAN_BUILD_DIR=str(out / "build"))
    t0 = time.monotonic()
    res = subprocess.run(["bash", str(REPO / "packaging" / "bundle.sh")], env=env,
                         capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    print(f"\nbundle.sh: {time.monotonic() - t0:.0f} s; {res.stdout.strip()}")
    shutil.rmtree(out / "build", ignore_errors=True)
    return out / "dist"


@pytest.fixture(scope="module")
def app(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .tar.gz unpacked in a fresh folder: <tmp>/irplan/irplan."""
    tgz = dist / f"irplan-{_version()}-linux-x86_64.tar.gz"
    where = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(tgz) as tf:
        tf.extractall(where, filter="tar")
    if not os.environ.get("IRPLAN_BUNDLE_DIST"):           # built here: only the copy is used
        shutil.rmtree(dist / "irplan", ignore_errors=True)
    return where / "irplan"


def _bare_env(home: Path, **extra: str) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    if os.environ.get("DISPLAY"):
        env["DISPLAY"] = os.environ["DISPLAY"]
    env.update(extra)
    return env


def _run(app: Path, *args: str, home: Path, timeout_s: float = 300,
         **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(app / "irplan"), *args], env=_bare_env(home, **extra),
                          capture_output=True, text=True, timeout=timeout_s,
                          cwd=home)


def _venv_json(*args: str) -> dict | list:
    """The same command through the development install (the reference)."""
    res = subprocess.run([sys.executable, "-m", "irplan.app.cli", *args],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_archives_hold_the_bundle_the_notice_and_no_host_libraries(dist: Path) -> None:
    v = _version()
    with tarfile.open(dist / f"irplan-{v}-linux-x86_64.tar.gz") as tf:
        names = tf.getnames()
        notice = tf.extractfile("irplan/NOTICE").read().decode()
        launcher = tf.getmember("irplan/irplan")
    assert NOTICE.rstrip(".") in notice.replace("\n", " ")
    assert launcher.mode & 0o111 and "irplan/irplan-bin" in names
    assert "irplan/_internal/irplan/resources/devices.json" in names
    assert "irplan/_internal/irplan/resources/icons/irplan.svg" in names
    # no host graphics/X libraries (a wheel's private copy with a hashed soname is allowed)
    libs = [Path(n).name for n in names]
    bad = [n for n in libs if n.startswith(HOST_LIB_PREFIXES)
           and not any(c == "-" and n[i + 1:i + 9].isalnum() and n[i + 9:i + 12] == ".so"
                       for i, c in enumerate(n))]
    assert not bad, bad
    assert not any("/Qt/qml/" in n or "/Qt/translations/" in n for n in names)

    deb = dist / f"irplan_{v}_amd64.deb"
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Depends",
                           "Description"], capture_output=True, text=True, check=True).stdout
    assert f"Version: {v}" in info
    for pkg in ("libgl1", "libegl1", "libxkbcommon-x11-0", "libxcb-cursor0",
                "libfontconfig1", "libdbus-1-3"):
        assert pkg in info
    assert "not a certified medical device" in info
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    assert "./opt/irplan/irplan\n" in listing and "./opt/irplan/NOTICE" in listing
    assert "./usr/bin/irplan -> /opt/irplan/irplan" in listing
    assert "./usr/share/applications/irplan.desktop" in listing
    assert "./usr/share/icons/hicolor/scalable/apps/irplan.svg" in listing
    sizes = {p.name: p.stat().st_size / 1e6 for p in (deb, dist / f"irplan-{v}-linux-x86_64.tar.gz")}
    print("\narchive sizes MB:", {k: round(s, 1) for k, s in sizes.items()})


def test_cli_help_lists_every_subcommand(app: Path, tmp_path: Path) -> None:
    res = _run(app, "--help", home=tmp_path / "home", COLUMNS="100")
    assert res.returncode == 0, res.stderr
    assert "not a certified medical device" in " ".join(res.stdout.split())
    ref = subprocess.run([sys.executable, "-m", "irplan.app.cli", "--help"], text=True,
                         capture_output=True, env=dict(os.environ, COLUMNS="100"))
    assert res.stdout == ref.stdout                      # the same CLI as the installed one
    for name in COMMANDS:
        sub = _run(app, name, "--help", home=tmp_path / "home", timeout_s=120)
        assert sub.returncode == 0, (name, sub.stderr)


def test_demo_screenshot_is_a_real_picture(app: Path, tmp_path: Path) -> None:
    """The bundle generates the demo case and renders it as the installed command does."""
    from PIL import Image

    home = tmp_path / "home"
    out = tmp_path / "demo.png"
    t0 = time.monotonic()
    res = _run(app, "--demo", "--screenshot", str(out), home=home)
    took = time.monotonic() - t0
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    print(f"\nbundle: demo (first start, phantom generated) to screenshot {took:.1f} s, "
          f"load {os.getloadavg()[0]:.1f}")
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    h, w, _ = img.shape
    assert (w, h) == (1600, 1000)
    x0 = int(w * 0.25)
    quads = [img[int(h * 0.12):int(h * 0.5), x0:int((x0 + w) / 2)],
             img[int(h * 0.12):int(h * 0.5), int((x0 + w) / 2):],
             img[int(h * 0.55):int(h * 0.95), x0:int((x0 + w) / 2)],
             img[int(h * 0.55):int(h * 0.95), int((x0 + w) / 2):]]
    for q in quads:                       # each view shows a picture, not black
        assert q.mean() > 25 and q.std() > 20
    # the research-software notice: an amber banner row near the top
    amber = (img[..., 0] > 90) & (img[..., 1] > 60) & (img[..., 2] < 40)
    assert amber[: int(h * 0.1)].sum() > 2000
    # the demo case was generated under the empty HOME (the demo generator is inside)
    cached = list((home / ".cache" / "irplan").glob("demo-*/.complete"))
    assert cached

    # the installed command on the same demo case (copied cache): the same picture in the
    # four views, including what background jobs draw (predicted zone, |E| colour map)
    ref_home = tmp_path / "ref_home"
    shutil.copytree(home / ".cache", ref_home / ".cache")
    ref_out = tmp_path / "ref.png"
    ref = subprocess.run([str(Path(sys.executable).parent / "irplan"), "--demo",
                          "--screenshot", str(ref_out)], env=_bare_env(ref_home),
                         capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    ref_img = np.asarray(Image.open(ref_out).convert("RGB")).astype(int)
    views = (slice(int(h * 0.07), int(h * 0.96)), slice(x0, int(w * 0.77)))
    differ = np.abs(img[views] - ref_img[views]).max(axis=2) > 40
    assert differ.mean() < 0.005, f"{100 * differ.mean():.2f} % of the view pixels differ"


def _compress_series(src: Path, dst: Path, uid: str, limit: int | None = None) -> int:
    """Copy a DICOM series re-encoded losslessly (pydicom encoders); returns the count."""
    dst.mkdir(parents=True)
    files = sorted(p for p in src.iterdir() if p.is_file())
    if limit is not None:
        files = files[len(files) // 2 - limit // 2:][:limit]
    for p in files:
        ds = pydicom.dcmread(p)
        ds.compress(uid)
        ds.save_as(dst / (p.name + ".dcm"), enforce_file_format=True)
    return len(files)


def test_info_reads_a_jpeg_compressed_real_ct(app: Path, ircadb17: Path, tmp_path: Path) -> None:
    from pydicom.uid import JPEG2000Lossless

    ct = tmp_path / "ct"
    n = _compress_series(ircadb17 / "PATIENT_DICOM", ct, JPEG2000Lossless, limit=24)
    res = _run(app, "info", str(ct), "--json", home=tmp_path / "home")
    assert res.returncode == 0, res.stderr
    (series,) = json.loads(res.stdout)
    assert "JPEG 2000" in series["transfer_syntax"] and series["modality"] == "CT"
    assert series["slices"] == n and series["size"][:2] == [512, 512]
    # the same geometry as the installed (development) command reads
    (ref,) = _venv_json("info", str(ct), "--json")
    for key in ("size", "spacing_mm", "origin_lps_mm", "direction"):
        assert np.allclose(series[key], ref[key]), key


@pytest.fixture(scope="module")
def compressed_case(phantom_case: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom case with its planning and follow-up CTs JPEG 2000 (lossless)."""
    from pydicom.uid import JPEG2000Lossless

    case = tmp_path_factory.mktemp("jp2case") / "case"
    shutil.copytree(phantom_case, case)
    for series in ("planning", "followup"):
        shutil.rmtree(case / series)
        _compress_series(phantom_case / series, case / series, JPEG2000Lossless)
    return case


def test_zone_gives_the_installed_commands_figures(app: Path, compressed_case: Path,
                                                   tmp_path: Path) -> None:
    plan = str(compressed_case / "plan.irplan.json")
    args = ("zone", plan, "--grid-mm", "2.0", "--json")
    res = _run(app, *args, home=tmp_path / "home")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    ref = _venv_json(*args)
    for key in ("zone_volume_ml", "tumor_coverage_percent", "minimal_margin_mm"):
        assert got[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-6), key
    assert [p["voltage_v"] for p in got["pairs"]] == [p["voltage_v"] for p in ref["pairs"]]
    assert len(got["pairs"]) == 6 and got["converged"] is True


def test_evaluate_on_compressed_cts_matches_the_truth(app: Path, compressed_case: Path,
                                                       tmp_path: Path) -> None:
    case = compressed_case
    truth = load_truth(case)
    res = _run(app, "evaluate", "--planning", str(case / "planning"),
               "--followup", str(case / "followup"),
               "--tumor", str(case / "masks/planning/tumor.nii.gz"),
               "--ablation", str(case / "masks/followup/ablation_zone.nii.gz"),
               "--liver", str(case / "masks/planning/liver.nii.gz"),
               "--register", "rigid", "--json", home=tmp_path / "home")
    assert res.returncode == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["minimal_margin_mm"] == pytest.approx(truth.minimal_margin_mm, abs=1.0)
    assert d["tumor_coverage_percent"] == pytest.approx(truth.tumor_coverage_percent, abs=1.0)
    assert d["verdict"] == "complete_margin_ok"
    rot = d["registration"]["rigid"]["rotation_deg_xyz"]
    assert np.allclose(rot, truth.followup_transform.rotation_deg_xyz, atol=0.5)


def test_launcher_names_the_package_of_a_missing_host_library(app: Path,
                                                               tmp_path: Path) -> None:
    # IRPLAN_REQUIRE_LIBS (documented in the launcher) adds a library the host lacks
    res = _run(app, "info", str(tmp_path), home=tmp_path / "home",
               IRPLAN_REQUIRE_LIBS="libirplan-absent.so.7=libirplan-absent7")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "libirplan-absent.so.7" in lines[0]
    assert "apt-get install libirplan-absent7" in lines[0]
    assert res.stdout == ""
