"""Where a plan's structure masks are written when they have no file yet.

Each plan gets its own mask folder beside it, ``<plan stem>.masks/`` (``liver.irplan.json``
-> ``liver.masks/tumor.nii.gz``), so two plans saved in one folder never overwrite each
other's masks (issue 12: both went to ``masks/tumor.nii.gz``). The plan file stores the
paths, so plans saved with the former ``masks/`` layout still load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from irplan.planning.plan import Plan
from irplan.planning.volume import Volume

PLAN_SUFFIX = ".irplan.json"


def plan_stem(plan_path: str | Path) -> str:
    """``a/b/liver.irplan.json`` -> ``liver`` (else the name without its last suffix)."""
    name = Path(plan_path).name
    if name.lower().endswith(PLAN_SUFFIX):
        return name[: -len(PLAN_SUFFIX)] or "plan"
    return Path(name).stem or "plan"


def plan_mask_dir(plan_path: str | Path) -> Path:
    """The folder for the masks of the plan saved at ``plan_path``: ``<stem>.masks``."""
    p = Path(plan_path)
    return p.parent / f"{plan_stem(p)}.masks"


def attach_masks(plan: Plan, structures: Mapping[str, Volume], plan_path: str | Path) -> list[Path]:
    """Give every structure of ``structures`` missing from ``plan.structures`` a file:
    its source file when it was read from one unchanged (absolute path), else a NIfTI
    written into :func:`plan_mask_dir`. Returns the files written."""
    from irplan.io.masks import write_mask

    written: list[Path] = []
    for key, mask in structures.items():
        if key in plan.structures:
            continue
        src = mask.metadata.get("source_path")
        if src and Path(src).is_file() and mask.metadata.get("resampled") is None:
            plan.structures[key] = str(Path(src).resolve())
            continue
        out = write_mask(mask, plan_mask_dir(plan_path) / f"{key}.nii.gz")
        plan.structures[key] = str(out.resolve())
        written.append(out)
    return written
