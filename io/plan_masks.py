"""Where a plan's structure masks are written when they have no file yet.

Each plan gets its own mask folder beside it, ``<plan stem>.masks/`` (``liver.irplan.json``
-> ``liver.masks/tumor.nii.gz``), so two plans saved in one folder never overwrite each
other's masks (issue 12: both went to ``masks/tumor.nii.gz``). The plan file stores the
paths, so plans saved with the former ``masks/`` layout still load unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

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


def content_digest(mask: Volume) -> str:
    """A fingerprint of the mask's voxels and grid (BLAKE2b, 128 bit): tells an edited
    structure from the one read from (or last written to) its file."""
    h = hashlib.blake2b(digest_size=16)
    arr = np.ascontiguousarray(mask.array)
    h.update(str((arr.shape, arr.dtype.str)).encode())
    h.update(np.asarray(mask.origin_lps_mm, float).tobytes())
    h.update(np.asarray(mask.spacing_mm, float).tobytes())
    h.update(np.asarray(mask.direction, float).tobytes())
    h.update(arr.tobytes())
    return h.hexdigest()


def stamp_as_read(mask: Volume) -> Volume:
    """Record that ``mask`` now equals its file (after reading or writing it)."""
    mask.metadata["content_digest"] = content_digest(mask)
    return mask


def modified_since_read(mask: Volume) -> bool:
    """True when the mask was made in this session or edited after it was read/written
    (no record, or its voxels changed): saving must write it, never keep the old file."""
    recorded = mask.metadata.get("content_digest")
    return recorded is None or recorded != content_digest(mask)


def attach_masks(plan: Plan, structures: Mapping[str, Volume], plan_path: str | Path,
                 *, record: bool = True) -> list[Path]:
    """Give every structure of ``structures`` a file in ``plan.structures``:

    * a structure the plan already names and that was not edited since it was read keeps
      its file;
    * an unedited structure read from a file (not resampled) is named by that file
      (absolute path), unless that file is another plan's own (``<stem>.masks/``);
    * anything else (new or edited) is written into :func:`plan_mask_dir` and the plan
      names the new file: a source file (a SEG, another plan's mask) is never overwritten.

    ``record``: the written masks are recorded as saved (False for throw-away copies, e.g.
    the report's temporary plan, so the real plan still saves them). Returns the files
    written."""
    from irplan.io.masks import write_mask
    from irplan.io.plan_file import resolve_plan_path

    own_dir = plan_mask_dir(plan_path).resolve()

    def shareable(path: Path) -> bool:
        # another plan's own mask file is copied, never shared: saving that plan again
        # would otherwise change this one
        p = path.resolve()
        return p.is_file() and not (p.parent.name.endswith(".masks") and p.parent != own_dir)

    written: list[Path] = []
    for key, mask in structures.items():
        edited = modified_since_read(mask)
        if (key in plan.structures and not edited
                and shareable(resolve_plan_path(plan, plan.structures[key]))):
            continue
        src = mask.metadata.get("source_path")
        if (not edited and src and shareable(Path(src))
                and mask.metadata.get("resampled") is None):
            plan.structures[key] = str(Path(src).resolve())
            continue
        out = write_mask(mask, plan_mask_dir(plan_path) / f"{key}.nii.gz")
        plan.structures[key] = str(out.resolve())
        written.append(out)
        if record:
            mask.metadata["source_path"] = str(out.resolve())
            mask.metadata.pop("resampled", None)
            stamp_as_read(mask)
    return written
