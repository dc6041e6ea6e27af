"""The package installs both ways: a built wheel and the editable install used in development."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_maps_root_folders_into_irplan_namespace(tmp_path: Path) -> None:
    """A normal (non-editable) install: build the wheel, unpack it alone on sys.path, import."""
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    wheels = list((tmp_path / "dist").glob("irplan-*.whl"))
    assert len(wheels) == 1
    site = tmp_path / "site"
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
        zf.extractall(site)
    for sub in ("app", "viewers", "planning", "io", "resources"):
        assert f"irplan/{sub}/__init__.py" in names
    assert "irplan/resources/structures.json" in names
    assert not any(n.startswith("tests/") for n in names)
    code = (
        "import io, sys, irplan.io, irplan.planning.volume, irplan.planning.structures as s;"
        "assert io.BytesIO and io.__name__ == 'io' and 'irplan' not in str(getattr(io,'__file__',''));"
        "assert irplan.io.__file__.startswith(sys.argv[1]), irplan.io.__file__;"
        "assert s.structure_types()['tumor'].label == 1;"
        "print('ok')"
    )
    # -S: no site-packages, so the editable finder cannot serve irplan; the wheel's folder
    # comes first and the venv's site-packages (numpy, SimpleITK) after it.
    import numpy

    venv_site = str(Path(numpy.__file__).parents[1])
    env = {"PYTHONPATH": f"{site}:{venv_site}", "PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    run = subprocess.run([sys.executable, "-S", "-c", code, str(site)], capture_output=True,
                         text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


def test_editable_install_imports_from_the_checkout() -> None:
    import irplan.io
    import irplan.planning

    assert Path(irplan.io.__file__).resolve() == (REPO / "io" / "__init__.py").resolve()
    assert Path(irplan.planning.__file__).resolve().parent == (REPO / "planning").resolve()


def test_console_script_runs() -> None:
    exe = Path(sys.executable).parent / "irplan"
    res = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert "not a certified medical device" in res.stdout
