"""The built-in demo case: the standard phantom, generated once into a cache folder.

Location: ``$IRPLAN_CONFIG_DIR/demo-<version>-phantom<N>`` when IRPLAN_CONFIG_DIR is set, else
``~/.cache/irplan/demo-<version>-phantom<N>`` (``$XDG_CACHE_HOME`` honoured). A ``.complete``
marker is written last, so an interrupted generation is redone, never half-used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from irplan.io.case_loader import LoadedCase

DEMO_SEED = 0
DEMO_TITLE = "Demo case (synthetic phantom)"
_MARKER = ".complete"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("irplan")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return "dev"


def demo_dir() -> Path:
    """Folder of the cached demo case (may not exist yet)."""
    base = os.environ.get("IRPLAN_CONFIG_DIR")
    if base:
        root = Path(base).expanduser()
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(cache) / "irplan"
    from irplan.planning.phantom_version import PHANTOM_VERSION

    return root / f"demo-{_version()}-phantom{PHANTOM_VERSION}"


def demo_case(progress: Callable[[float, str], None] | None = None) -> Path:
    """Path of the demo case, generating the phantom first when needed."""
    out = demo_dir()
    if (out / _MARKER).exists() and (out / "planning").is_dir():
        return out
    from irplan.io.phantom_writer import write_phantom_case

    if progress is not None:
        progress(0.05, "Generating the demo phantom (first run only)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=out.parent))
    try:
        write_phantom_case(tmp / "case", seed=DEMO_SEED)
        (tmp / "case" / _MARKER).write_text("ok\n")
        if out.exists():
            shutil.rmtree(out)
        (tmp / "case").rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def demo_masks(case_dir: Path) -> dict[str, Path]:
    """Structure key -> mask file of the case's planning masks (masks/planning/*.nii.gz,
    without the body outline and the true ablation zone):
    :func:`irplan.io.case_loader.case_structure_paths`."""
    from irplan.io.case_loader import case_structure_paths

    return case_structure_paths(case_dir)


def load_demo(progress: Callable[[float, str], None] | None = None,
              cancel: Callable[[], bool] | None = None) -> LoadedCase:
    """The demo case read by the one case loader (generated first when needed)."""
    from irplan.io.case_loader import load_case

    loaded = load_case(demo_case(progress), progress, cancel)
    loaded.title = DEMO_TITLE
    return loaded
