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
QT_VTK = ("PySide6", "vtk", "vtkmodules", "shiboken6")
# layer -> imports it must never make (app -> viewers -> planning <- io; the app pushes
# model changes into the views, so viewers never import the model's files or the app)
FORBIDDEN = {
    "planning": (*QT_VTK, "irplan.app", "irplan.viewers", "irplan.io"),
    "io": (*QT_VTK, "irplan.app", "irplan.viewers"),
    "viewers": ("irplan.app", "irplan.io"),
}
# the one atomic file writer (stdlib only, no file format or model): pictures rendered by
# the viewers are written through it like every other output (issue 13)
ALLOWED = {"viewers": ("irplan.io.atomic_write",)}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, also those inside functions."""
    out = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            if node.module == "irplan":   # from irplan import io
                out += [(node.lineno, f"irplan.{a.name}") for a in node.names]
    return out


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in prefixes)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer: str) -> None:
    offenders = []
    for path in sorted((REPO / layer).rglob("*.py")):
        for line, name in _imports(path):
            if _under(name, FORBIDDEN[layer]) and not _under(name, ALLOWED.get(layer, ())):
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not offenders, "\n".join(offenders)


def test_no_import_guards_around_irplan_modules() -> None:
    """IRPlan's own modules are always there: no ``try: import irplan...`` fallbacks."""
    offenders = []
    for layer in ("app", "viewers", "planning", "io"):
        for path in sorted((REPO / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if not isinstance(node, ast.Try) or not any(
                        isinstance(h.type, ast.Name) and h.type.id in ("ImportError",
                                                                       "ModuleNotFoundError")
                        for h in node.handlers):
                    continue
                for stmt in node.body:
                    mods = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else (
                        [stmt.module or ""] if isinstance(stmt, ast.ImportFrom) else [])
                    if any(m.startswith("irplan") for m in mods):
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
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
