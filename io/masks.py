"""Read and write structure masks as NIfTI / NRRD (SimpleITK), as LPS Volumes.

SimpleITK converts NIfTI's RAS header to LPS on read and back on write, so a mask
written here and read by any ITK-based tool lands on the same voxels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from irplan.planning.errors import InputError
from irplan.planning.volume import Volume

MASK_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def is_mask_file(path: str | Path) -> bool:
    name = str(path).lower()
    return any(name.endswith(s) for s in MASK_SUFFIXES)


def read_volume_file(path: str | Path) -> Volume:
    """Read a NIfTI/NRRD/MetaImage file into a Volume (LPS). Raises InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if not is_mask_file(p):
        raise InputError(f"{p}: not a NIfTI/NRRD/MetaImage file (expected one of "
                         f"{', '.join(MASK_SUFFIXES)})")
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise InputError(f"{p}: cannot read image ({first})") from None
    if img.GetDimension() != 3:
        raise InputError(f"{p}: expected a 3-D image, got {img.GetDimension()}-D")
    return Volume.from_sitk(img, {"source_path": str(p)})


def read_mask(path: str | Path) -> Volume:
    """Read a binary mask: any non-zero voxel is inside. Array dtype uint8 (0/1)."""
    vol = read_volume_file(path)
    return vol.with_array((vol.array != 0).astype(np.uint8))


def write_volume_file(volume: Volume, path: str | Path, compress: bool = True) -> Path:
    """Write a Volume to NIfTI/NRRD (format from the suffix). Returns the path."""
    p = Path(path)
    if not is_mask_file(p):
        raise InputError(f"{p}: unsupported suffix (use one of {', '.join(MASK_SUFFIXES)})")
    p.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume.to_sitk(), str(p), compress)
    return p


def write_mask(mask: Volume, path: str | Path) -> Path:
    """Write a binary mask as uint8 0/1."""
    return write_volume_file(mask.with_array((mask.array != 0).astype(np.uint8)), path)
