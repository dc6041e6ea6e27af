"""Architecture and code-quality rules that keep the layers honest."""

from __future__ import annotations

import ast
import importlib
import io as stdlib_io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "vtk", "vtkmodules", "shiboken6", "irplan.app", "irplan.viewers")


@pytest.mark.parametrize("layer", ["planning", "io"])
def test_planning_and_io_never_import_qt_or_vtk(layer: str) -> None:
    offenders = []
    for path in (REPO / layer).rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                if any(n == f or n.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports {n}")
    assert not offenders, "\n".join(offenders)


def test_namespace_maps_folders_and_keeps_stdlib_io() -> None:
    for sub in ("app", "viewers", "planning", "io", "resources"):
        mod = importlib.import_module(f"irplan.{sub}")
        assert Path(mod.__file__).resolve().parent == (REPO / sub).resolve()
    assert hasattr(stdlib_io, "BytesIO") and stdlib_io.__name__ == "io"
    assert "irplan" not in (getattr(stdlib_io, "__file__", None) or "")


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff not installed")
    res = subprocess.run([ruff, "check", "."], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
