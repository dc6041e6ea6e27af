"""Import structure masks onto the planning CT grid (uint8 0/1 Volumes, LPS mm).

Formats:

* NIfTI / NRRD / MetaImage (one binary mask, or a labelmap: one structure per label),
  resampled by physical position with nearest neighbour;
* DICOM SEG (highdicom), one structure per segment, named by its SegmentLabel;
* DICOM RTSTRUCT (pydicom), every closed planar contour rasterised in the CT's exact
  geometry: contour points (LPS mm) -> CT index via ``Volume.lps_to_index``, polygon fill
  of voxel centres per slice, nested contours combined by XOR (holes);
* 3D-IRCADb style folders: ``MASKS_DICOM/<structure>/image_N`` (one DICOM series per
  structure, values 0/255), or the ``MASKS_DICOM.zip`` as shipped by IRCAD.

Structure names map to the standard keys with
:func:`irplan.planning.structures.classify_structure_name`; the user's own table
(``structure_aliases.json`` in the config folder, or the ``aliases`` argument) wins.
Refused with :class:`InputError`: different frame of reference (when both files state
one), no overlap with the CT, contours off the CT slice planes. Masks partly outside the
CT are clipped and say so in ``metadata["warnings"]``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from irplan.io.masks import is_mask_file, read_volume_file
from irplan.planning.errors import InputError
from irplan.planning.structures import classify_structure_name
from irplan.planning.volume import Volume

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
ALIASES_FILE = "structure_aliases.json"


@dataclass
class ImportedMask:
    """One imported structure: its name in the file, the standard key, the mask on the
    CT grid, and where it came from."""

    name: str
    key: str
    mask: Volume
    source: str
    warnings: list[str] = field(default_factory=list)

    @property
    def volume_ml(self) -> float:
        return float(np.count_nonzero(self.mask.array)) * self.mask.voxel_volume_ml


# ------------------------------------------------------------------ name table
def _norm(name: str) -> str:
    return re.sub(r"[\d\s_\-\.]+", "", name.lower())


def user_aliases_path() -> Path:
    """The user's alias table: ``$IRPLAN_CONFIG_DIR/structure_aliases.json`` (or
    ``~/.config/irplan/``). JSON object: structure name -> standard key."""
    base = os.environ.get("IRPLAN_CONFIG_DIR") or Path.home() / ".config" / "irplan"
    return Path(base) / ALIASES_FILE


def load_user_aliases(path: str | Path | None = None) -> dict[str, str]:
    """Read the user's name -> key table (normalised names); {} when absent."""
    p = Path(path) if path else user_aliases_path()
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: not a readable JSON alias table ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise InputError(f"{p}: expected a JSON object mapping structure names to keys")
    return {_norm(k): v for k, v in data.items()}


def save_user_aliases(aliases: dict[str, str], path: str | Path | None = None) -> Path:
    """Write the user's name -> key table (merged with what is there)."""
    p = Path(path) if path else user_aliases_path()
    table = load_user_aliases(p) if p.exists() else {}
    table.update({_norm(k): v for k, v in aliases.items()})
    from irplan.io.atomic_write import atomic_write_text

    return atomic_write_text(p, json.dumps(table, indent=2, sort_keys=True))


def _classify(name: str, aliases: dict[str, str] | None) -> str:
    table = load_user_aliases()
    if aliases:
        table.update({_norm(k): v for k, v in aliases.items()})
    return classify_structure_name(name, table)


# ------------------------------------------------------------------ geometry checks
def _check_frame(ct: Volume, uid: str | None, path: Path) -> None:
    ct_uid = ct.metadata.get("frame_of_reference_uid")
    if uid and ct_uid and str(uid) != str(ct_uid):
        raise InputError(f"{path}: frame of reference {uid} differs from the CT's {ct_uid}; "
                         "the masks belong to another scan (register it first)")


def _onto_ct(mask: Volume, ct: Volume, path: Path, name: str) -> tuple[Volume, list[str]]:
    """Resample a binary/label mask onto the CT grid (nearest neighbour), with checks."""
    arr = mask.array != 0
    n_in = int(np.count_nonzero(arr))
    if n_in == 0:
        return ct.with_array(np.zeros(ct.array.shape, np.uint8)), [f"{name}: empty mask"]
    if mask.same_geometry(ct, tol_mm=1e-3):
        out = arr.astype(np.uint8)
    else:
        src = mask.with_array(arr.astype(np.uint8))
        out = src.resample_like(ct, "nearest", 0).array.astype(np.uint8)
    warnings: list[str] = []
    ml_in = n_in * mask.voxel_volume_ml
    ml_out = float(np.count_nonzero(out)) * ct.voxel_volume_ml
    if ml_out == 0:
        lo, hi = _fg_bounds(mask)
        clo, chi = ct.bounds_lps()
        raise InputError(
            f"{path}: structure '{name}' does not overlap the CT (mask at "
            f"{np.round(lo, 1).tolist()}..{np.round(hi, 1).tolist()} mm, CT "
            f"{np.round(clo, 1).tolist()}..{np.round(chi, 1).tolist()} mm LPS)")
    inside = _fraction_inside(mask, ct)
    if inside < 0.999:
        warnings.append(f"{name}: {100 * (1 - inside):.1f} % of the mask lies outside the "
                        f"CT and was clipped ({ml_in:.1f} -> {ml_out:.1f} mL)")
    return ct.with_array(out), warnings


def _fg_bounds(mask: Volume) -> tuple[np.ndarray, np.ndarray]:
    kji = np.argwhere(mask.array != 0)
    pts = mask.index_to_lps(np.stack([kji.min(0), kji.max(0)])[:, ::-1].astype(float))
    return pts.min(0), pts.max(0)


def _fraction_inside(mask: Volume, ct: Volume) -> float:
    kji = np.argwhere(mask.array != 0)
    if len(kji) > 200_000:
        kji = kji[np.random.default_rng(0).choice(len(kji), 200_000, replace=False)]
    pts = mask.index_to_lps(kji[:, ::-1].astype(float))
    return float(np.mean(ct.contains_lps(pts)))


def _result(name: str, mask: Volume, ct: Volume, path: Path, source: str,
            aliases: dict[str, str] | None, warnings: list[str] | None = None) -> ImportedMask:
    on_ct, w = _onto_ct(mask, ct, path, name)
    key = _classify(name, aliases)
    on_ct.metadata = {"structure": key, "name": name, "source_path": str(path),
                      "source_format": source}
    ws = list(warnings or []) + w
    if ws:
        on_ct.metadata["warnings"] = ws
    return ImportedMask(name, key, on_ct, source, ws)


# ------------------------------------------------------------------ NIfTI / NRRD
def import_mask_file(path: str | Path, ct: Volume, name: str | None = None,
                     labels: dict[int, str] | None = None,
                     aliases: dict[str, str] | None = None) -> list[ImportedMask]:
    """A NIfTI/NRRD/MetaImage mask onto the CT grid.

    A file with values {0, v} is one structure named ``name`` (default: the file name
    without suffix). More than one non-zero value is a labelmap: one structure per label,
    named by ``labels`` (label -> name) or "<stem>_<label>".
    These formats carry no frame of reference: only physical position is checked.
    """
    p = Path(path)
    vol = read_volume_file(p)
    stem = re.sub(r"\.(nii(\.gz)?|nrrd|nhdr|mha|mhd)$", "", p.name, flags=re.I)
    values = np.unique(vol.array)
    values = values[values != 0]
    if len(values) == 0:
        raise InputError(f"{p}: the mask is empty (all voxels 0)")
    rule: list[str] = []
    if not np.issubdtype(vol.array.dtype, np.integer) and not np.allclose(values,
                                                                          np.round(values)):
        # fractional/probability map: inside where >= 0.5, and the rule is stated
        rule = [f"{p.name}: fractional values {float(values.min()):.3g}.."
                f"{float(values.max()):.3g} (a probability map) read as inside where "
                "value >= 0.5"]
        vol = vol.with_array((vol.array >= 0.5).astype(np.uint8))
        values = np.array([1])
    if len(values) == 1:
        return [_result(name or stem, vol.with_array(vol.array != 0), ct, p, "nifti", aliases,
                        rule)]
    if len(values) > 255:
        raise InputError(f"{p}: {len(values)} distinct values - not a mask or labelmap")
    out = []
    for v in values:
        lab = (labels or {}).get(int(v), f"{stem}_{int(v)}")
        out.append(_result(lab, vol.with_array(vol.array == v), ct, p, "nifti", aliases))
    return out


# ------------------------------------------------------------------ DICOM SEG
def import_seg(path: str | Path, ct: Volume,
               aliases: dict[str, str] | None = None) -> list[ImportedMask]:
    """A DICOM SEG file onto the CT grid, one structure per segment (SegmentLabel)."""
    import highdicom as hd

    p = Path(path)
    try:
        seg = hd.seg.segread(str(p))
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's problem
        raise InputError(f"{p}: not a readable DICOM SEG ({type(exc).__name__}: {exc})") from None
    _check_frame(ct, getattr(seg, "FrameOfReferenceUID", None), p)
    out = []
    for item in seg.SegmentSequence:
        number = int(item.SegmentNumber)
        label = str(getattr(item, "SegmentLabel", "") or f"segment {number}")
        try:
            hv = seg.get_volume(segment_numbers=[number], combine_segments=False)
            hv = hv.squeeze_channel()
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{p}: segment {number} '{label}' does not form a regular 3-D "
                             f"volume ({exc})") from None
        img = hv.to_simpleitk() if hasattr(hv, "to_simpleitk") else None
        if img is None:  # pragma: no cover - older highdicom
            raise InputError(f"{p}: highdicom too old to read SEG volumes")
        vol = Volume.from_sitk(img)
        # FRACTIONAL segments come rescaled to 0..1: inside where >= 0.5
        inside = vol.array >= 0.5 if np.issubdtype(vol.array.dtype, np.floating) \
            else vol.array != 0
        vol = vol.with_array(inside.astype(np.uint8))
        if not vol.array.any():
            continue
        out.append(_result(label, vol, ct, p, "dicom-seg", aliases))
    if not out:
        raise InputError(f"{p}: the SEG holds no non-empty segment")
    return out


# ------------------------------------------------------------------ RTSTRUCT
def rasterise_contours(ct: Volume, contours_lps_mm: list[np.ndarray], where: str = "contour",
                       slice_tol_vox: float = 0.25) -> np.ndarray:
    """Fill closed planar contours (each (N, 3) LPS mm) on the CT grid: bool [k, j, i].

    Each contour must lie in one CT slice plane (within ``slice_tol_vox`` of a slice);
    voxel centres inside the polygon are set, and contours on the same slice combine by
    XOR, so a contour inside another one is a hole (and one inside a hole an island).
    """
    from skimage.draw import polygon as fill_polygon

    shape = ct.array.shape
    out = np.zeros(shape, dtype=bool)
    for n, pts in enumerate(contours_lps_mm):
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
        if len(pts) < 3:
            continue
        idx = ct.lps_to_index(pts)
        k = idx[:, 2]
        k0 = float(np.median(k))
        if np.max(np.abs(k - k0)) > slice_tol_vox or abs(k0 - round(k0)) > slice_tol_vox:
            raise InputError(
                f"{where}: contour {n + 1} is not in a CT slice plane (slice index "
                f"{k.min():.2f}..{k.max():.2f}); the structure set was drawn on another "
                "image geometry")
        kk = int(round(k0))
        if not 0 <= kk < shape[0]:
            continue
        rr, cc = fill_polygon(idx[:, 1], idx[:, 0], shape=shape[1:])
        sl = np.zeros(shape[1:], dtype=bool)
        sl[rr, cc] = True
        out[kk] ^= sl
    return out


def import_rtstruct(path: str | Path, ct: Volume,
                    aliases: dict[str, str] | None = None) -> list[ImportedMask]:
    """A DICOM RTSTRUCT onto the CT grid: every ROI with closed planar contours."""
    import pydicom

    p = Path(path)
    try:
        ds = pydicom.dcmread(str(p))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{p}: not a readable DICOM file ({exc})") from None
    if str(getattr(ds, "SOPClassUID", "")) != RTSTRUCT_SOP_CLASS:
        raise InputError(f"{p}: not an RT Structure Set (SOP class "
                         f"{getattr(ds, 'SOPClassUID', '?')})")
    names: dict[int, str] = {}
    frames: dict[int, str] = {}
    for roi in getattr(ds, "StructureSetROISequence", []):
        names[int(roi.ROINumber)] = str(getattr(roi, "ROIName", f"ROI {roi.ROINumber}"))
        if "ReferencedFrameOfReferenceUID" in roi:
            frames[int(roi.ROINumber)] = str(roi.ReferencedFrameOfReferenceUID)
    out = []
    for rc in getattr(ds, "ROIContourSequence", []):
        num = int(rc.ReferencedROINumber)
        name = names.get(num, f"ROI {num}")
        _check_frame(ct, frames.get(num), p)
        contours = []
        skipped = 0
        for c in getattr(rc, "ContourSequence", []):
            kind = str(getattr(c, "ContourGeometricType", "CLOSED_PLANAR"))
            if kind != "CLOSED_PLANAR":
                skipped += 1
                continue
            contours.append(np.asarray(c.ContourData, dtype=np.float64).reshape(-1, 3))
        if not contours:
            continue
        arr = rasterise_contours(ct, contours, where=f"{p} ROI '{name}'")
        if not arr.any():
            raise InputError(f"{p}: ROI '{name}' does not overlap the CT")
        warnings = [f"{name}: {skipped} non-closed contour(s) (points/lines) ignored"] \
            if skipped else []
        out.append(_result(name, ct.with_array(arr.astype(np.uint8)), ct, p, "rtstruct",
                           aliases, warnings))
    if not out:
        raise InputError(f"{p}: the structure set holds no closed planar contour")
    return out


# ------------------------------------------------------------------ IRCADb folders
def _read_dicom_series(folder: Path) -> Volume:
    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder))
    if not files:
        raise InputError(f"{folder}: no DICOM series found")
    reader.SetFileNames(files)
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"{folder}: cannot read the DICOM series "
                         f"({str(exc).strip().splitlines()[-1]})") from None
    return Volume.from_sitk(img, {"source_path": str(folder)})


def import_ircadb_masks(path: str | Path, ct: Volume,
                        aliases: dict[str, str] | None = None,
                        only: list[str] | None = None) -> list[ImportedMask]:
    """3D-IRCADb masks: a ``MASKS_DICOM`` folder (one sub-folder per structure holding a
    DICOM series, 0/255) or the ``MASKS_DICOM.zip``. ``only``: structure names to read."""
    p = Path(path)
    if p.is_file() and zipfile.is_zipfile(p):
        with tempfile.TemporaryDirectory(prefix="irplan_masks_") as tmp:
            with zipfile.ZipFile(p) as z:
                members = [m for m in z.namelist()
                           if only is None or any(f"/{s}/" in f"/{m}" for s in only)]
                z.extractall(tmp, members)
            root = Path(tmp)
            inner = [d for d in root.rglob("*") if d.is_dir() and d.name == "MASKS_DICOM"]
            res = import_ircadb_masks(inner[0] if inner else root, ct, aliases, only)
            for r in res:
                r.mask.metadata["source_path"] = str(p)
            return res
    if not p.is_dir():
        raise InputError(f"{p}: not a MASKS_DICOM folder or zip")
    subs = sorted(d for d in p.iterdir() if d.is_dir())
    if only is not None:
        subs = [d for d in subs if d.name in only]
    out = []
    for d in subs:
        if not any(f.is_file() for f in d.iterdir()):
            continue
        vol = _read_dicom_series(d)
        out.append(_result(d.name, vol.with_array((vol.array != 0).astype(np.uint8)), ct, d,
                           "ircadb-dicom", aliases))
    if not out:
        raise InputError(f"{p}: no structure folders with DICOM masks found")
    return out


# ------------------------------------------------------------------ dispatcher
def _dicom_sop_class(path: Path) -> str | None:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True,
                             specific_tags=["SOPClassUID"])
    except Exception:  # noqa: BLE001 - not DICOM
        return None
    return str(getattr(ds, "SOPClassUID", "")) or None


def import_masks(path: str | Path, ct: Volume,
                 aliases: dict[str, str] | None = None) -> list[ImportedMask]:
    """Import every structure in ``path`` onto the CT grid, whatever the format:
    NIfTI/NRRD file, DICOM SEG or RTSTRUCT file, IRCADb MASKS_DICOM folder or zip, or a
    folder of NIfTI/NRRD masks (one structure per file)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file or folder not found")
    if p.is_file():
        if is_mask_file(p):
            return import_mask_file(p, ct, aliases=aliases)
        if zipfile.is_zipfile(p):
            return import_ircadb_masks(p, ct, aliases)
        sop = _dicom_sop_class(p)
        if sop == SEG_SOP_CLASS:
            return import_seg(p, ct, aliases)
        if sop == RTSTRUCT_SOP_CLASS:
            return import_rtstruct(p, ct, aliases)
        raise InputError(f"{p}: not a mask file (NIfTI/NRRD, DICOM SEG, RTSTRUCT or "
                         "MASKS_DICOM.zip)" + (f"; DICOM SOP class {sop}" if sop else ""))
    files = sorted(f for f in p.iterdir() if f.is_file() and is_mask_file(f))
    if files:
        return [m for f in files for m in import_mask_file(f, ct, aliases=aliases)]
    if (p / "MASKS_DICOM").is_dir():
        return import_ircadb_masks(p / "MASKS_DICOM", ct, aliases)
    if any(d.is_dir() for d in p.iterdir()):
        return import_ircadb_masks(p, ct, aliases)
    raise InputError(f"{p}: no masks found (expected NIfTI/NRRD files or per-structure "
                     "DICOM folders)")


def split_lesions(tumour: Volume, key: str = "tumor") -> dict[str, Volume]:
    """One structure per lesion: the 26-connected components of a (multi-lesion) tumour
    mask, largest first, keyed ``tumor``, ``tumor_2``, ... and named "Tumour 1", ... with
    their volume (mL) in ``metadata["volume_ml"]``."""
    from scipy.ndimage import label

    lab, n = label(tumour.array != 0, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(lab.ravel())[1:]
    out: dict[str, Volume] = {}
    for rank, i in enumerate(np.argsort(-sizes, kind="stable"), 1):
        m = tumour.with_array((lab == i + 1).astype(np.uint8))
        m.metadata = dict(tumour.metadata)
        m.metadata.update({"structure": key, "name": f"Tumour {rank}",
                           "volume_ml": round(float(sizes[i]) * tumour.voxel_volume_ml, 2)})
        out[key if rank == 1 else f"{key}_{rank}"] = m
    return out


def lesions_of(tumours: list[ImportedMask]) -> tuple[dict[str, Volume], list[str]]:
    """The lesions of the imported tumour structures, keyed ``tumor``, ``tumor_2``, ...
    and named "Tumour 1", ... (``metadata["volume_ml"]`` in mL, ``metadata["source_name"]``
    the name in the file); and warnings for the user (lesions that overlap).

    Several tumour structures (IRCADb ``livertumor1``/``livertumor2``, labels of a
    labelmap, SEG segments, RTSTRUCT ROIs): one lesion each, as the expert outlined it,
    largest first. One tumour structure: its connected components
    (:func:`split_lesions`), largest first.
    """
    from irplan.planning.structures import lesion_key

    notes: list[str] = []   # warnings
    if not tumours:
        return {}, notes
    if len(tumours) == 1:
        lesions = split_lesions(tumours[0].mask)
        for m in lesions.values():
            m.metadata["source_name"] = tumours[0].name
        return lesions, notes
    sizes = [int(np.count_nonzero(t.mask.array)) for t in tumours]
    order = sorted(range(len(tumours)), key=lambda i: -sizes[i])
    out: dict[str, Volume] = {}
    for rank, i in enumerate(order, 1):
        t = tumours[i]
        m = t.mask.with_array((t.mask.array != 0).astype(np.uint8))
        m.metadata = dict(t.mask.metadata)
        m.metadata.update({"structure": "tumor", "name": f"Tumour {rank}", "source_name": t.name,
                           "volume_ml": round(sizes[i] * t.mask.voxel_volume_ml, 2)})
        out[lesion_key(rank)] = m
    keys = list(out)
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            both = int(np.count_nonzero(out[keys[a]].array & out[keys[b]].array))
            if both:
                notes.append(f"{out[keys[a]].metadata['source_name']} and "
                             f"{out[keys[b]].metadata['source_name']} overlap by "
                             f"{both * tumours[0].mask.voxel_volume_ml:.2f} mL (kept as two "
                             "lesions)")
    return out, notes


def merge_by_key(imported: list[ImportedMask],
                 lesions_apart: bool = False) -> dict[str, Volume]:
    """Union of the imported masks per standard key (e.g. livertumor1 + livertumor2 ->
    tumor). Structures mapped to "other" keep their own name as key. ``lesions_apart``:
    one structure per lesion (:func:`lesions_of`: ``tumor``, ``tumor_2``, ...) instead of
    one merged tumour; the lesions come first."""
    if not lesions_apart:
        return _merge(imported)
    lesions, _ = lesions_of([m for m in imported if m.key == "tumor"])
    return {**lesions, **_merge([m for m in imported if m.key != "tumor"])}


def _merge(imported: list[ImportedMask]) -> dict[str, Volume]:
    out: dict[str, Volume] = {}
    for m in imported:
        key = m.key if m.key != "other" else _norm(m.name) or "other"
        if key in out:
            merged = out[key].with_array(((out[key].array != 0) | (m.mask.array != 0))
                                         .astype(np.uint8))
            merged.metadata["name"] = f"{out[key].metadata.get('name')} + {m.name}"
            out[key] = merged
        else:
            out[key] = m.mask
    return out


def import_structures(path: str | Path, ct: Volume, aliases: dict[str, str] | None = None
                      ) -> tuple[dict[str, Volume], list[str]]:
    """:func:`import_masks` with the lesions kept apart (``tumor``, ``tumor_2``, ...; see
    :func:`lesions_of`) and the other structures merged by key; (masks, warnings)."""
    imported = import_masks(path, ct, aliases)
    lesions, notes = lesions_of([m for m in imported if m.key == "tumor"])
    masks = {**lesions, **_merge([m for m in imported if m.key != "tumor"])}
    return masks, [w for m in imported for w in m.warnings] + notes


def import_summary(masks: dict[str, Volume]) -> str:
    """One line for the user: "2 lesions: Tumour 1 85.6 mL, Tumour 2 78.6 mL; Liver
    1520.3 mL, ..." (volumes of the masks on the CT grid)."""
    from irplan.planning.safety import structure_display_name
    from irplan.planning.structures import is_lesion_key, lesion_keys, lesion_name

    def ml(m: Volume) -> float:
        return float(np.count_nonzero(m.array)) * m.voxel_volume_ml

    les = lesion_keys(masks)
    parts = []
    if len(les) > 1:
        parts.append(f"{len(les)} lesions: " + ", ".join(
            f"{lesion_name(k)} {ml(masks[k]):.1f} mL" for k in les))
    elif les:
        parts.append(f"1 lesion: {structure_display_name(les[0])} {ml(masks[les[0]]):.1f} mL")
    rest = ", ".join(f"{structure_display_name(k)} {ml(m):.1f} mL" for k, m in masks.items()
                     if not is_lesion_key(k))
    if rest:
        parts.append(rest)
    return "; ".join(parts)
