"""Read and write structure masks as NIfTI / NRRD (SimpleITK), as LPS Volumes.

SimpleITK converts NIfTI's RAS header to LPS on read and back on write, so a mask
written here and read by any ITK-based tool lands on the same voxels.

Strict reading (every refusal is an :class:`InputError` naming the file):

- the file is verified before SimpleITK reads it: a gzip stream (``.nii.gz``, ``.gz``)
  must decompress to its end-of-stream marker with a correct CRC, and a NIfTI file must
  hold the ``dim x bitpix`` bytes its header announces (SimpleITK reads a truncated
  ``.nii.gz`` without an error and fills the rest with zeros);
- :func:`read_mask` accepts binary masks only: values {0, v} (one non-zero value, e.g.
  0/1 or 0/255). A labelmap (several integer labels) is refused unless ``label`` picks
  one; a map with fractional values (a probability map) is refused unless ``threshold``
  is given (inside = value >= threshold). The rule used is recorded in
  ``metadata["mask_rule"]`` for the caller to report. Empty masks are read (``metadata
  ["empty"]`` True); callers for which an empty mask is meaningless refuse it with
  :func:`require_nonempty`.

Writing goes through :mod:`irplan.io.atomic_write` (temp file, fsync, rename): a failed
or interrupted write leaves the previous file.
"""

from __future__ import annotations

import errno
import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from irplan.io.atomic_write import atomic_write
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume

MASK_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
# NIfTI-1 datatype code -> bits per voxel (NIfTI-1 header, nifti1.h)
_NIFTI_BITPIX = {2: 8, 4: 16, 8: 32, 16: 32, 64: 64, 256: 8, 512: 16, 768: 32,
                 1024: 64, 1280: 64, 128: 24, 32: 64, 2304: 32}
_CHUNK = 1 << 20


def is_mask_file(path: str | Path) -> bool:
    name = str(path).lower()
    return any(name.endswith(s) for s in MASK_SUFFIXES)


def _gzip_payload_size(p: Path) -> tuple[int, bytes]:
    """Decompress the whole gzip stream: (its size in bytes, its first 540 bytes).
    InputError when truncated or corrupt (CRC, bad deflate data)."""
    n = 0
    head = b""
    try:
        with gzip.open(p, "rb") as fh:
            while True:
                block = fh.read(_CHUNK)
                if not block:
                    break
                if n < 540:
                    head += block[:540 - n]
                n += len(block)
    except EOFError:
        raise InputError(f"{p}: truncated gzip file (the compressed data end early; "
                         "the file was cut off while copying or writing)") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise InputError(f"{p}: corrupt gzip data ({exc})") from None
    return n, head


# NIfTI-1 (348-byte header) and NIfTI-2 (540): where dim, datatype/bitpix and vox_offset are
_NIFTI_LAYOUTS = {348: ("8h", 40, 70, "f", 108), 540: ("8q", 16, 12, "q", 168)}


def _nifti_needed_bytes(header: bytes) -> int | None:
    """Bytes a NIfTI-1/2 file must hold (vox_offset + voxels x bitpix/8), or None when
    the header is not NIfTI."""
    if len(header) >= 348:
        for endian in "<>":
            (hsize,) = struct.unpack(endian + "i", header[:4])
            layout = _NIFTI_LAYOUTS.get(hsize)
            if layout is None or len(header) < hsize:
                continue
            dim_fmt, dim_at, type_at, off_fmt, off_at = layout
            dim = struct.unpack(endian + dim_fmt, header[dim_at:dim_at + struct.calcsize(dim_fmt)])
            (datatype, bitpix) = struct.unpack(endian + "hh", header[type_at:type_at + 4])
            (vox_offset,) = struct.unpack(endian + off_fmt,
                                          header[off_at:off_at + struct.calcsize(off_fmt)])
            nd = dim[0]
            if not 1 <= nd <= 7 or any(d < 0 for d in dim[1:nd + 1]):
                raise InputError("bad NIfTI dimensions")
            voxels = int(np.prod([max(int(d), 1) for d in dim[1:nd + 1]], dtype=np.int64))
            bits = bitpix or _NIFTI_BITPIX.get(datatype, 0)
            return int(vox_offset) + voxels * bits // 8
    return None


def verify_image_file(path: str | Path) -> None:
    """Check a NIfTI/NRRD/MetaImage file is complete before reading it (see module doc).
    Raises InputError naming the file."""
    p = Path(path)
    name = p.name.lower()
    try:
        with open(p, "rb") as fh:
            magic = fh.read(2)
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    gz = magic == b"\x1f\x8b"
    if name.endswith(".gz") and not gz:
        raise InputError(f"{p}: not gzip data although the name ends in .gz")
    if gz:
        size, header = _gzip_payload_size(p)
    else:
        size = p.stat().st_size
        with open(p, "rb") as fh:
            header = fh.read(540)
    if name.endswith((".nii", ".nii.gz")):
        try:
            need = _nifti_needed_bytes(header)
        except InputError as exc:
            raise InputError(f"{p}: {exc}") from None
        if need is None:
            raise InputError(f"{p}: not a NIfTI file (no NIfTI-1/2 header)")
        if size < need:
            raise InputError(f"{p}: truncated NIfTI file ({size} of {need} bytes of image "
                             "data; the file was cut off while copying or writing)")


def read_volume_file(path: str | Path) -> Volume:
    """Read a NIfTI/NRRD/MetaImage file into a Volume (LPS). Raises InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, expected a NIfTI/NRRD/MetaImage file")
    if not is_mask_file(p):
        raise InputError(f"{p}: not a NIfTI/NRRD/MetaImage file (expected one of "
                         f"{', '.join(MASK_SUFFIXES)})")
    verify_image_file(p)
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK warnings never reach stderr
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise InputError(f"{p}: cannot read image ({first[:200]})") from None
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    if img.GetDimension() != 3:
        raise InputError(f"{p}: expected a 3-D image, got {img.GetDimension()}-D")
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{p}: {img.GetNumberOfComponentsPerPixel()} components per voxel; "
                         "expected a scalar image")
    return Volume.from_sitk(img, {"source_path": str(p)})


def mask_values(vol: Volume) -> np.ndarray:
    """The distinct non-zero values of a volume (sorted)."""
    a = vol.array
    if a.size == 0:
        return np.zeros(0, a.dtype)
    lo, hi = a.min(), a.max()
    if lo == 0 or hi == 0 or lo == hi:   # fast path: {0, v} (a binary mask) or one value
        v = hi if hi != 0 else lo
        if v == 0:
            return np.zeros(0, a.dtype)
        if lo == hi or not np.any((a != 0) & (a != v)):
            return np.array([v], a.dtype)
    vals = np.unique(a)   # labelmaps, probability maps: rare, the slow path
    return vals[vals != 0]


def read_mask(path: str | Path, *, threshold: float | None = None,
              label: int | None = None) -> Volume:
    """Read a binary mask (uint8 0/1). See the module doc for the rules: values {0, v}
    are read as is; a labelmap needs ``label``, a probability map ``threshold``.
    ``metadata["mask_rule"]`` says which rule made the mask (None for a binary file)."""
    p = Path(path)
    vol = read_volume_file(p)
    a = vol.array
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
        raise InputError(f"{p}: holds NaN or infinite values; not a mask")
    rule = None
    if threshold is not None:
        if not np.isfinite(threshold):
            raise InputError(f"{p}: mask threshold {threshold} is not a finite number")
        out = (a >= threshold).astype(np.uint8)
        rule = f"{p.name}: inside where value >= {threshold:g}"
    else:
        vals = mask_values(vol)
        fractional = (np.issubdtype(a.dtype, np.floating)
                      and not np.array_equal(vals, np.round(vals)))
        if fractional:
            raise InputError(
                f"{p}: fractional values {float(vals.min()):.3g}..{float(vals.max()):.3g} "
                "(a probability map?) are not a binary mask; give a binary mask, or a "
                "threshold where the command has one (evaluate --mask-threshold P: inside "
                "where value >= P)")
        if len(vals) > 1 and label is None:
            shown = ", ".join(f"{v:g}" for v in vals[:8]) + (" ..." if len(vals) > 8 else "")
            raise InputError(f"{p}: a labelmap with {len(vals)} labels ({shown}), not one "
                             "binary mask; give one file per structure (the GUI's mask "
                             "import makes one structure per label)")
        if label is not None:
            if label not in set(vals.tolist()):
                raise InputError(f"{p}: label {label} not found (labels: "
                                 f"{', '.join(f'{v:g}' for v in vals[:8])})")
            out = (a == label).astype(np.uint8)
            rule = f"{p.name}: label {label} of {len(vals)}"
        elif a.dtype == np.uint8 and (len(vals) == 0 or vals[0] == 1):
            out = a   # already 0/1 uint8: no copy
        else:
            out = (a != 0).astype(np.uint8)
    m = vol.with_array(out)
    m.metadata["mask_rule"] = rule
    m.metadata["empty"] = not bool(out.any())
    return m


def require_nonempty(mask: Volume, what: str, path: str | Path | None = None) -> Volume:
    """InputError when ``mask`` has no voxel inside (an empty tumour cannot be evaluated,
    covered or exported)."""
    if not np.any(mask.array):
        where = f"{path}: " if path else ""
        raise InputError(f"{where}{what} mask is empty (no voxel inside)")
    return mask


def require_overlap(mask: Volume, reference: Volume, what: str,
                    path: str | Path | None = None) -> None:
    """InputError when ``mask``'s box does not meet ``reference``'s (another frame of
    reference or another patient position): such a mask is refused, never dropped."""
    lo_m, hi_m = mask.bounds_lps()
    lo_r, hi_r = reference.bounds_lps()
    if np.any(hi_m < lo_r) or np.any(hi_r < lo_m):
        where = f"{path}: " if path else ""
        raise InputError(f"{where}{what} mask does not overlap the image (another frame "
                         "of reference?)")


def write_volume_file(volume: Volume, path: str | Path, compress: bool = True) -> Path:
    """Write a Volume to NIfTI/NRRD (format from the suffix), atomically. Returns the path.
    InputError (naming the path) when it cannot be written."""
    p = Path(path)
    if not is_mask_file(p):
        raise InputError(f"{p}: unsupported suffix (use one of {', '.join(MASK_SUFFIXES)})")
    if p.name.lower().endswith((".nhdr", ".mhd")):
        raise InputError(f"{p}: detached-header formats write two files; use .nrrd, .mha "
                         "or .nii.gz")
    img = volume.to_sitk()

    def _w(tmp: Path) -> None:
        sitk.WriteImage(img, str(tmp), compress)
        try:
            verify_image_file(tmp)   # ITK may leave a short file without an error
        except InputError:
            raise OSError(errno.EIO, "the written file is incomplete") from None

    return atomic_write(p, _w)


def write_mask(mask: Volume, path: str | Path) -> Path:
    """Write a binary mask as uint8 0/1 (atomically)."""
    return write_volume_file(mask.with_array((mask.array != 0).astype(np.uint8)), path)
