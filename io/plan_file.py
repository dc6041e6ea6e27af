"""Plan files (``.irplan.json``): load, validate, migrate, save atomically.

Schema 1 (stable; coordinates LPS mm, DICOM patient frame)::

    {"schema": 1,
     "modality": "IRE" | "MWA" | "RFA" | "cryo",
     "image": {"path": "planning", "series_uid": "1.2...", "frame_of_reference_uid": "..."},
     "margin_mm": 5,
     "needles": [{"device": "ire-19g-monopolar", "tip_lps_mm": [x, y, z],
                  "entry_lps_mm": [x, y, z], "exposure_mm": 20, "name": "E1"}],
     "ire": {"voltage_v": 2250, "pulses": 90, "pulse_width_us": 90},
     "thermal": {"power_w": null, "time_s": null},
     "structures": {"tumor": "masks/planning/tumor.nii.gz", ...},
     "targets": ["tumor"],                         (optional; default: all tumours)
     "target_structure": "tumor_2"}                (optional; default "tumor": the lesion
                                                   whose coverage/margin the plan is for)

Rules (every violation is an :class:`InputError` whose message names the file and the
field, e.g. ``plan.irplan.json: needles[2].tip_lps_mm: expected 3 numbers, got "abc"``):

- required: ``schema``, ``modality``, ``image`` (``path`` non-empty, ``series_uid``
  string, may be "" for non-DICOM images), ``needles`` (may be empty). ``margin_mm``
  defaults to 5 mm (issue 5), ``ire``/``thermal``/``structures`` to empty settings.
- numbers are JSON numbers (not strings/booleans), finite (NaN/Infinity refused);
  ``margin_mm`` 0-30 mm; ``exposure_mm`` > 0 and required for IRE electrodes;
  tip and entry at least 0.5 mm apart; coordinates within +-10 m.
- a needle's ``device`` must be an id of the device catalogue whose modality matches the
  plan's. **Unknown device ids are errors, not warnings**: without the device the
  needle's radius, usable length and exposure range are unknown, so the safety checks
  could not run, and IRPlan never falls back silently.
- ``structures`` values are mask files (NIfTI/NRRD/MetaImage/DICOM SEG ``.dcm``).
- duplicate keys in any JSON object are refused (the JSON standard leaves them undefined).
- keys not listed here (e.g. ``"evaluations"``, ``"zone"``, ``"notes"``, and unknown keys
  inside ``image``/``needles[i]``/``ire``/``thermal``) are kept and written back unchanged.
- relative paths are relative to the plan file's folder. The strings are kept as written
  (``Plan.structures``, ``Plan.image.path``); :func:`structure_paths` / :func:`image_path`
  resolve them. Saving into another folder rewrites relative paths so they still point
  to the same files.
- when ``load_plan(check_files=True)`` (default), every structure file must exist, and
  the image must exist or be re-located: if its path is gone, the folders under the
  plan's folder are searched for a DICOM series with the stored ``series_uid``; when
  found, ``image.path`` is updated and a note is returned by :func:`load_plan_with_notes`.

Schema 0 (the prototype form, migrated on load to schema 1; saved as schema 1)::

    {"version": 0, "modality": "IRE", "ct": "planning", "series_uid": "1.2...",
     "margin": 5, "needles": [{"device": "...", "tip": [x,y,z], "entry": [x,y,z],
     "exposure": 20}], "voltage": 2250, "pulses": 90, "pulse_width": 90,
     "power": null, "time": null, "masks": {"tumor": "tumor.nii.gz"}}

(``"schema": 0`` is accepted in place of ``"version": 0``.)
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from irplan.planning.errors import InputError
from irplan.planning.plan import (
    MODALITIES,
    ImageRef,
    IreParams,
    Needle,
    Plan,
    ThermalParams,
)
from irplan.planning.volume import Volume

SCHEMA_VERSION = 1
PLAN_SUFFIX = ".irplan.json"
MAX_PLAN_BYTES = 20 * 1024 * 1024
MAX_INT_DIGITS = 20      # JSON integers longer than this are refused (issue 13)
MAX_JSON_DEPTH = 64      # nesting depth of a plan file (schema 1 needs 4)
MAX_MARGIN_MM = 30.0
MAX_EXPOSURE_MM = 100.0
MAX_COORD_MM = 10_000.0
MIN_TIP_ENTRY_MM = 0.5
STRUCTURE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")

_TOP_KEYS = ("schema", "modality", "image", "margin_mm", "needles", "ire", "thermal",
             "structures", "targets")
_IMAGE_KEYS = ("path", "series_uid", "frame_of_reference_uid")
_NEEDLE_KEYS = ("device", "tip_lps_mm", "entry_lps_mm", "exposure_mm", "name")
_IRE_KEYS = ("voltage_v", "pulses", "pulse_width_us")
_THERMAL_KEYS = ("power_w", "time_s")


class PlanFileError(InputError):
    """An invalid plan file; ``problems`` lists every problem found (one line each)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        msg = problems[0]
        if len(problems) > 1:
            msg += f" (and {len(problems) - 1} more problem(s): " + "; ".join(problems[1:]) + ")"
        super().__init__(msg)


# ----------------------------------------------------------------------------- helpers
def _show(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_number(problems: list[str], where: str, v: Any, *, lo: float | None = None,
                  hi: float | None = None, lo_open: bool = False, integer: bool = False,
                  unit: str = "") -> bool:
    kind = "an integer" if integer else "a number"
    if not _is_number(v) or (integer and not isinstance(v, int)):
        problems.append(f"{where}: expected {kind}, got {_show(v)}")
        return False
    if not math.isfinite(v):
        problems.append(f"{where}: expected a finite number, got {_show(v)}")
        return False
    u = f" {unit}" if unit else ""
    if lo is not None and (v <= lo if lo_open else v < lo):
        problems.append(f"{where}: must be {'>' if lo_open else '>='} {lo:g}{u}, got {v:g}")
        return False
    if hi is not None and v > hi:
        problems.append(f"{where}: must be <= {hi:g}{u}, got {v:g}")
        return False
    return True


def _check_point(problems: list[str], where: str, v: Any) -> bool:
    if (not isinstance(v, list) or len(v) != 3 or not all(_is_number(c) for c in v)):
        problems.append(f"{where}: expected 3 numbers [L, P, S] in mm, got {_show(v)}")
        return False
    if not all(math.isfinite(c) for c in v):
        problems.append(f"{where}: coordinates must be finite, got {_show(v)}")
        return False
    if any(abs(c) > MAX_COORD_MM for c in v):
        problems.append(f"{where}: coordinate beyond +-{MAX_COORD_MM:g} mm, got {_show(v)}")
        return False
    return True


def _check_optional_positive(problems: list[str], where: str, v: Any, unit: str,
                             integer: bool = False) -> None:
    if v is not None:
        _check_number(problems, where, v, lo=0, lo_open=True, integer=integer, unit=unit)


class _LongInteger(ValueError):
    def __init__(self, digits: int) -> None:
        super().__init__(digits)
        self.digits = digits


def _parse_int(text: str) -> int:
    """JSON integers: at most MAX_INT_DIGITS digits (a 400-digit integer is no plan value
    and overflows every float conversion)."""
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _LongInteger(digits)
    return int(text)


def _json_depth(data: Any) -> int:
    """Nesting depth of parsed JSON (iterative: no recursion limit)."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if d > MAX_JSON_DEPTH:
                return d
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


# ----------------------------------------------------------------------------- migration
def _migrate_0_to_1(d: dict[str, Any]) -> dict[str, Any]:
    """Prototype form (schema 0, see module docstring) -> schema 1."""
    renames = {"ct": None, "series_uid": None, "margin": "margin_mm", "masks": "structures"}
    out: dict[str, Any] = {"schema": 1}
    for k, v in d.items():
        if k in ("version", "schema", "ct", "series_uid", "voltage", "pulses", "pulse_width",
                 "power", "time", "needles"):
            continue
        out[renames.get(k) or k] = v
    out["image"] = {"path": d.get("ct"), "series_uid": d.get("series_uid", "")}
    ire = {k1: d[k0] for k0, k1 in (("voltage", "voltage_v"), ("pulses", "pulses"),
                                     ("pulse_width", "pulse_width_us")) if k0 in d}
    if ire:
        out["ire"] = ire
    thermal = {k1: d[k0] for k0, k1 in (("power", "power_w"), ("time", "time_s")) if k0 in d}
    if thermal:
        out["thermal"] = thermal
    needles = d.get("needles", [])
    if isinstance(needles, list):
        new = []
        for n in needles:
            if isinstance(n, dict):
                m = {{"tip": "tip_lps_mm", "entry": "entry_lps_mm",
                      "exposure": "exposure_mm"}.get(k, k): v for k, v in n.items()}
                new.append(m)
            else:
                new.append(n)
        out["needles"] = new
    else:
        out["needles"] = needles
    return out


# version -> function turning that version's dict into the next version's dict
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _migrate_0_to_1}


def migrate_plan_dict(d: dict[str, Any], source: str) -> dict[str, Any]:
    """Bring a plan dict of any known schema version to :data:`SCHEMA_VERSION`.

    Raises InputError for a missing, non-integer, unknown or newer version.
    """
    if "schema" not in d and "version" in d:
        version = d["version"]
    elif "schema" in d:
        version = d["schema"]
    else:
        raise PlanFileError([f"{source}: schema: missing (expected \"schema\": "
                             f"{SCHEMA_VERSION})"])
    if not isinstance(version, int) or isinstance(version, bool):
        raise PlanFileError([f"{source}: schema: expected an integer version, got "
                             f"{_show(version)}"])
    if version > SCHEMA_VERSION:
        raise PlanFileError([f"{source}: schema: version {version} was written by a newer "
                             f"IRPlan; this one reads versions up to {SCHEMA_VERSION}"])
    if version < 0 or (version < SCHEMA_VERSION and version not in MIGRATIONS):
        raise PlanFileError([f"{source}: schema: unknown version {version}"])
    out = copy.deepcopy(d)
    while version < SCHEMA_VERSION:
        out = MIGRATIONS[version](out)
        version += 1
        out["schema"] = version
    return out


# ----------------------------------------------------------------------------- validation
def validate_plan_dict(d: Any, source: str, *, check_devices: bool = True) -> list[str]:
    """Every problem of a schema-1 plan dict, one line each (empty list = valid).

    ``source`` (the file name) starts each message. File existence is not checked here.
    """
    problems: list[str] = []
    if not isinstance(d, dict):
        return [f"{source}: expected a JSON object {{...}} at the top level, got "
                f"{type(d).__name__ if not isinstance(d, list) else 'a list'}"]
    s = source
    schema = d.get("schema")
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        problems.append(f"{s}: schema: expected {SCHEMA_VERSION}, got {_show(schema)}")
    for key in ("modality", "image", "needles"):
        if key not in d:
            problems.append(f"{s}: {key}: missing (required)")

    modality = d.get("modality")
    if "modality" in d and modality not in MODALITIES:
        hint = ""
        if isinstance(modality, str):
            for m in MODALITIES:
                if m.lower() == modality.lower():
                    hint = f" (did you mean {m!r}?)"
        problems.append(f"{s}: modality: expected one of {', '.join(MODALITIES)}, got "
                        f"{_show(modality)}{hint}")

    img = d.get("image")
    if "image" in d:
        if not isinstance(img, dict):
            problems.append(f"{s}: image: expected an object with path and series_uid, got "
                            f"{_show(img)}")
        else:
            p = img.get("path")
            if not isinstance(p, str) or not p.strip():
                problems.append(f"{s}: image.path: expected a non-empty path string, got "
                                f"{_show(p)}")
            if "series_uid" not in img:
                problems.append(f"{s}: image.series_uid: missing (required; \"\" when the "
                                "image is not DICOM)")
            elif not isinstance(img["series_uid"], str):
                problems.append(f"{s}: image.series_uid: expected a string, got "
                                f"{_show(img['series_uid'])}")
            f = img.get("frame_of_reference_uid", "")
            if not isinstance(f, str):
                problems.append(f"{s}: image.frame_of_reference_uid: expected a string, got "
                                f"{_show(f)}")

    if "margin_mm" in d:
        _check_number(problems, f"{s}: margin_mm", d["margin_mm"], lo=0, hi=MAX_MARGIN_MM,
                      unit="mm")

    needles = d.get("needles")
    if "needles" in d:
        if not isinstance(needles, list):
            problems.append(f"{s}: needles: expected a list, got {_show(needles)}")
        else:
            for i, n in enumerate(needles):
                _validate_needle(problems, f"{s}: needles[{i}]", n,
                                 modality if modality in MODALITIES else None, check_devices)

    for key, fields_, units in (("ire", _IRE_KEYS, ("V", "", "us")),
                                ("thermal", _THERMAL_KEYS, ("W", "s"))):
        if key not in d:
            continue
        sub = d[key]
        if not isinstance(sub, dict):
            problems.append(f"{s}: {key}: expected an object, got {_show(sub)}")
            continue
        for name, unit in zip(fields_, units):
            if name in sub:
                if name == "voltage_v" or key == "thermal":
                    _check_optional_positive(problems, f"{s}: {key}.{name}", sub[name], unit)
                else:
                    _check_number(problems, f"{s}: {key}.{name}", sub[name], lo=0,
                                  lo_open=True, integer=(name == "pulses"), unit=unit)

    if "structures" in d:
        st = d["structures"]
        if not isinstance(st, dict):
            problems.append(f"{s}: structures: expected an object {{key: mask path}}, got "
                            f"{_show(st)}")
        else:
            for key, path in st.items():
                if not key.strip():
                    problems.append(f"{s}: structures: empty structure key")
                if not isinstance(path, str) or not path.strip():
                    problems.append(f"{s}: structures.{key}: expected a mask file path, got "
                                    f"{_show(path)}")
                elif not path.lower().endswith(STRUCTURE_SUFFIXES):
                    problems.append(f"{s}: structures.{key}: {path!r} is not a mask file "
                                    f"(expected {', '.join(STRUCTURE_SUFFIXES)})")
    if "target_structure" in d:   # issue 17: the target lesion (tumor, tumor_2, ...)
        from irplan.planning.structures import is_lesion_key

        ts = d["target_structure"]
        if not isinstance(ts, str) or not is_lesion_key(ts):
            problems.append(f"{s}: target_structure: expected a lesion key (tumor, tumor_2, "
                            f"...), got {_show(ts)}")
    if "targets" in d:
        t = d["targets"]
        st = d.get("structures", {}) if isinstance(d.get("structures", {}), dict) else {}
        if not isinstance(t, list):
            problems.append(f"{s}: targets: expected a list of structure keys, got {_show(t)}")
        else:
            for i, key in enumerate(t):
                if not isinstance(key, str) or key not in st:
                    problems.append(f"{s}: targets[{i}]: {_show(key)} is not a key of "
                                    "structures")
    return problems


def _validate_needle(problems: list[str], w: str, n: Any, modality: str | None,
                     check_devices: bool) -> None:
    if not isinstance(n, dict):
        problems.append(f"{w}: expected an object with device, tip_lps_mm, entry_lps_mm, "
                        f"got {_show(n)}")
        return
    for key in ("device", "tip_lps_mm", "entry_lps_mm"):
        if key not in n:
            problems.append(f"{w}.{key}: missing (required)")
    dev = n.get("device")
    if "device" in n:
        if not isinstance(dev, str) or not dev.strip():
            problems.append(f"{w}.device: expected a device id string, got {_show(dev)}")
        elif check_devices:
            from irplan.planning.devices import catalogue

            cat = catalogue()
            if dev not in cat:
                problems.append(f"{w}.device: unknown device id {dev!r} (known: "
                                f"{', '.join(cat)}; see `irplan devices`)")
            elif modality is not None and cat[dev].modality != modality:
                problems.append(f"{w}.device: {dev!r} is a {cat[dev].modality} device but "
                                f"the plan's modality is {modality}")
    ok_tip = "tip_lps_mm" in n and _check_point(problems, f"{w}.tip_lps_mm", n["tip_lps_mm"])
    ok_entry = "entry_lps_mm" in n and _check_point(problems, f"{w}.entry_lps_mm",
                                                   n["entry_lps_mm"])
    if ok_tip and ok_entry:
        dist = math.dist(n["tip_lps_mm"], n["entry_lps_mm"])
        if dist < MIN_TIP_ENTRY_MM:
            problems.append(f"{w}: tip_lps_mm and entry_lps_mm are the same point "
                            f"({dist:.2f} mm apart; need >= {MIN_TIP_ENTRY_MM} mm)")
    exp = n.get("exposure_mm")
    if exp is None:
        if modality == "IRE":
            problems.append(f"{w}.exposure_mm: required for IRE electrodes (active length, mm)")
    else:
        _check_number(problems, f"{w}.exposure_mm", exp, lo=0, lo_open=True,
                      hi=MAX_EXPOSURE_MM, unit="mm")
    name = n.get("name", "")
    if not isinstance(name, str):
        problems.append(f"{w}.name: expected a string, got {_show(name)}")


# ----------------------------------------------------------------------------- dict <-> Plan
def _extra(d: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in d.items() if k not in known}


def plan_from_dict(d: Any, source: str = "plan", file_dir: str | Path = "", *,
                   check_devices: bool = True) -> Plan:
    """A Plan from a plan dict of any known schema version; PlanFileError if invalid."""
    if not isinstance(d, dict):
        raise PlanFileError(validate_plan_dict(d, source))
    d = migrate_plan_dict(d, source)
    problems = validate_plan_dict(d, source, check_devices=check_devices)
    if problems:
        raise PlanFileError(problems)
    img = d["image"]
    ire = d.get("ire", {})
    th = d.get("thermal", {})
    needles = [
        Needle(device=n["device"], tip_lps_mm=n["tip_lps_mm"], entry_lps_mm=n["entry_lps_mm"],
               exposure_mm=None if n.get("exposure_mm") is None else float(n["exposure_mm"]),
               name=n.get("name", ""), extra=_extra(n, _NEEDLE_KEYS))
        for n in d["needles"]
    ]
    return Plan(
        modality=d["modality"],
        image=ImageRef(img["path"], img["series_uid"], img.get("frame_of_reference_uid", ""),
                       _extra(img, _IMAGE_KEYS)),
        margin_mm=float(d.get("margin_mm", 5.0)),
        needles=needles,
        ire=IreParams(
            voltage_v=None if ire.get("voltage_v") is None else float(ire["voltage_v"]),
            pulses=int(ire.get("pulses", IreParams.pulses)),
            pulse_width_us=float(ire.get("pulse_width_us", IreParams.pulse_width_us)),
            extra=_extra(ire, _IRE_KEYS)),
        thermal=ThermalParams(
            power_w=None if th.get("power_w") is None else float(th["power_w"]),
            time_s=None if th.get("time_s") is None else float(th["time_s"]),
            extra=_extra(th, _THERMAL_KEYS)),
        structures=dict(d.get("structures", {})),
        extra=_extra(d, _TOP_KEYS),
        file_dir=str(file_dir),
        targets=list(d.get("targets", [])),
    )


def _num(v: float | None) -> float | int | None:
    if v is None:
        return None
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _rebase(path_str: str, old_dir: str, new_dir: Path | None) -> str:
    """A relative path written for ``old_dir`` rewritten relative to ``new_dir``."""
    if new_dir is None or not path_str or os.path.isabs(path_str):
        return path_str
    old = Path(old_dir) if old_dir else Path.cwd()
    if old.resolve() == new_dir.resolve():
        return path_str
    target = (old / path_str).resolve()
    try:
        return Path(os.path.relpath(target, new_dir.resolve())).as_posix()
    except ValueError:  # other drive (Windows)
        return str(target)


def plan_to_dict(plan: Plan, file_dir: str | Path | None = None) -> dict[str, Any]:
    """The schema-1 dict of a plan. Relative paths are rebased onto ``file_dir`` when it
    differs from ``plan.file_dir`` (None = keep the strings as they are)."""
    new_dir = Path(file_dir) if file_dir is not None else None
    image = {"path": _rebase(plan.image.path, plan.file_dir, new_dir),
             "series_uid": plan.image.series_uid}
    if plan.image.frame_of_reference_uid:
        image["frame_of_reference_uid"] = plan.image.frame_of_reference_uid
    image.update(copy.deepcopy(plan.image.extra))
    needles = []
    for n in plan.needles:
        nd: dict[str, Any] = {"device": n.device,
                              "tip_lps_mm": [float(c) for c in n.tip_lps_mm],
                              "entry_lps_mm": [float(c) for c in n.entry_lps_mm],
                              "exposure_mm": _num(n.exposure_mm)}
        if n.name:
            nd["name"] = n.name
        nd.update(copy.deepcopy(n.extra))
        needles.append(nd)
    ire = {"voltage_v": _num(plan.ire.voltage_v), "pulses": int(plan.ire.pulses),
           "pulse_width_us": _num(plan.ire.pulse_width_us)}
    ire.update(copy.deepcopy(plan.ire.extra))
    thermal = {"power_w": _num(plan.thermal.power_w), "time_s": _num(plan.thermal.time_s)}
    thermal.update(copy.deepcopy(plan.thermal.extra))
    out: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "modality": plan.modality,
        "image": image,
        "margin_mm": _num(plan.margin_mm),
        "needles": needles,
        "ire": ire,
        "thermal": thermal,
        "structures": {k: _rebase(v, plan.file_dir, new_dir)
                       for k, v in plan.structures.items()},
    }
    if plan.targets:
        out["targets"] = list(plan.targets)
    for k, v in plan.extra.items():
        if k not in out:
            out[k] = copy.deepcopy(v)
    return out


# ----------------------------------------------------------------------------- paths
def resolve_plan_path(plan: Plan, path_str: str) -> Path:
    """A path string of the plan resolved against the plan file's folder."""
    p = Path(path_str).expanduser()
    if p.is_absolute():
        return p
    base = Path(plan.file_dir) if plan.file_dir else Path.cwd()
    return base / p


def structure_paths(plan: Plan) -> dict[str, Path]:
    """Structure key -> mask file path (resolved)."""
    return {k: resolve_plan_path(plan, v) for k, v in plan.structures.items()}


def image_path(plan: Plan) -> Path:
    """The planning image's path (resolved; may not exist, see :func:`relocate_image`)."""
    return resolve_plan_path(plan, plan.image.path)


def find_series_folder(root: Path, series_uid: str) -> Path | None:
    """The folder under ``root`` holding the DICOM series ``series_uid`` (the deepest
    folder containing all its files), or None. Uses :func:`irplan.io.dicom_scan.scan_dicom`
    (headers only)."""
    from irplan.io.dicom_scan import scan_dicom

    if not series_uid or not root.is_dir():
        return None
    for info in scan_dicom(root).series:
        if info.series_uid == series_uid and info.files:
            return Path(os.path.commonpath([str(f.parent) for f in info.files]))
    return None


def set_image_folder(plan: Plan, folder: Path) -> None:
    """Point ``plan.image.path`` at ``folder`` (relative to the plan's folder when inside
    it, else absolute)."""
    base = Path(plan.file_dir) if plan.file_dir else None
    if base is not None:
        try:
            plan.image.path = folder.resolve().relative_to(base.resolve()).as_posix()
            return
        except ValueError:
            pass
    plan.image.path = str(folder.resolve())


def relocate_image(plan: Plan, search_root: Path | None = None) -> Path | None:
    """Find a moved planning image by its series UID under ``search_root`` (default: the
    plan's folder). Updates ``plan.image.path`` (relative to the plan's folder when
    possible) and returns the new path, or None when not found."""
    root = search_root or (Path(plan.file_dir) if plan.file_dir else None)
    if root is None:
        return None
    found = find_series_folder(root, plan.image.series_uid)
    if found is not None:
        set_image_folder(plan, found)
    return found


# ----------------------------------------------------------------------------- load / save
def read_plan_json(path: str | Path) -> dict[str, Any]:
    """Parse a plan file into a dict (no validation). PlanFileError when unreadable."""
    p = Path(path)
    src = str(path)
    if not p.exists():
        raise PlanFileError([f"{src}: file not found"])
    if p.is_dir():
        raise PlanFileError([f"{src}: is a folder, expected a {PLAN_SUFFIX} file"])
    try:
        size = p.stat().st_size
        if size > MAX_PLAN_BYTES:
            raise PlanFileError([f"{src}: {size / 1e6:.0f} MB is too large for a plan file "
                                 f"(limit {MAX_PLAN_BYTES / 1e6:.0f} MB)"])
        raw = p.read_bytes()
    except OSError as exc:
        raise PlanFileError([f"{src}: cannot read ({exc.strerror or exc})"]) from None
    if not raw.strip():
        raise PlanFileError([f"{src}: file is empty (expected a JSON plan)"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PlanFileError([f"{src}: not UTF-8 text (byte {exc.start}); a plan file is "
                             "JSON"]) from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_int=_parse_int)
    except _DuplicateKey as exc:
        raise PlanFileError([f"{src}: duplicate key {exc.key!r} in a JSON object"]) from None
    except _LongInteger as exc:
        raise PlanFileError([f"{src}: an integer with {exc.digits} digits (a plan holds "
                             f"numbers of at most {MAX_INT_DIGITS} digits)"]) from None
    except json.JSONDecodeError as exc:
        raise PlanFileError([f"{src}: not valid JSON: {exc.msg} at line {exc.lineno} "
                             f"column {exc.colno}"]) from None
    except RecursionError:
        raise PlanFileError([f"{src}: JSON nested too deeply"]) from None
    except ValueError as exc:  # e.g. Python's limit on integer digits
        raise PlanFileError([f"{src}: not a usable JSON number ({exc})"]) from None
    depth = _json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise PlanFileError([f"{src}: JSON nested {depth} levels deep (a plan needs at most "
                             f"{MAX_JSON_DEPTH})"])
    if not isinstance(data, dict):
        raise PlanFileError(validate_plan_dict(data, src))
    return data


def load_plan_with_notes(path: str | Path, *, check_files: bool = True,
                         relocate: bool = True) -> tuple[Plan, list[str]]:
    """:func:`load_plan` plus notes for the user (e.g. "image re-located to ...")."""
    p = Path(path)
    src = str(path)
    data = read_plan_json(p)
    plan = plan_from_dict(data, src, file_dir=p.resolve().parent)
    notes: list[str] = []
    if check_files:
        problems = []
        for key, mp in structure_paths(plan).items():
            if not mp.exists():
                problems.append(f"{src}: structures.{key}: mask file {str(mp)!r} not found")
        ip = image_path(plan)
        if not ip.exists():
            old = plan.image.path
            found = relocate_image(plan) if relocate else None
            if found is not None:
                notes.append(f"{src}: image.path: {old!r} not found; re-located series "
                             f"{plan.image.series_uid} at {str(found)!r}")
            else:
                why = (f"no folder under {str(p.resolve().parent)!r} holds series "
                       f"{plan.image.series_uid}" if plan.image.series_uid and relocate
                       else "no series_uid to re-locate it")
                problems.append(f"{src}: image.path: {str(ip)!r} not found and {why}")
        if problems:
            raise PlanFileError(problems)
    return plan, notes


def load_plan(path: str | Path, *, check_files: bool = True, relocate: bool = True) -> Plan:
    """Read, migrate and validate a ``.irplan.json`` file. Raises PlanFileError
    (an InputError) naming the file and field of the first problem, never a traceback.

    ``check_files``: require the structure masks and the image to exist (re-locating a
    moved DICOM image by its series UID when ``relocate``).
    """
    return load_plan_with_notes(path, check_files=check_files, relocate=relocate)[0]


def dumps_plan(plan: Plan, file_dir: str | Path | None = None) -> str:
    """The plan as JSON text (schema 1, indented, NaN refused)."""
    try:
        text = json.dumps(plan_to_dict(plan, file_dir), indent=2, allow_nan=False,
                          ensure_ascii=False)
    except ValueError as exc:
        raise InputError(f"plan cannot be saved: {exc} (NaN or infinite number)") from None
    except TypeError as exc:
        raise InputError(f"plan cannot be saved: {exc}") from None
    # one line per coordinate triple / number list, for people reading the file
    return _NUMBER_LIST.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(","))
                            + "]", text) + "\n"


# only multi-line lists (a newline cannot occur inside a JSON string, so text is safe)
_NUMBER_LIST = re.compile(r"\[\n\s+((?:-?[\d.eE+-]+,\n\s+)*-?[\d.eE+-]+)\n\s*\]")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:mod:`irplan.io.atomic_write`: temp file in
    the same folder, fsync, rename; the file keeps its mode). A crash leaves the old file
    or the new one; errors are InputErrors naming the path."""
    from irplan.io.atomic_write import atomic_write_text as _write

    return _write(path, text)


def save_plan(plan: Plan, path: str | Path, *, validate: bool = True) -> Path:
    """Write a plan atomically as schema 1. Relative paths are rebased onto the new
    folder; afterwards ``plan.file_dir`` is that folder (and the strings updated).

    ``validate``: refuse (InputError) a plan that could not be loaded again.
    """
    p = Path(path)
    new_dir = p.resolve().parent
    d = plan_to_dict(plan, new_dir)
    if validate:
        problems = validate_plan_dict(d, str(p))
        if problems:
            raise PlanFileError(problems)
    text = dumps_plan(plan, new_dir)
    atomic_write_text(p, text)
    plan.image.path = d["image"]["path"]
    plan.structures = dict(d["structures"])
    plan.file_dir = str(new_dir)
    return p


# ----------------------------------------------------------------------------- data
def load_plan_image(plan: Plan) -> Volume:
    """The plan's planning image as a Volume (HU, LPS): its own series by
    ``plan.image.series_uid`` (re-located by UID under the plan's folder when moved),
    its Frame of Reference checked, or a NIfTI/NRRD/MetaImage file. InputError when the
    series is nowhere or on another frame. (:func:`irplan.io.case_loader.load_plan_image`)
    """
    from irplan.io.case_loader import load_plan_image as _load

    return _load(plan)[0]


def load_plan_structures(plan: Plan, reference: Volume | None = None
                         ) -> tuple[dict[str, Volume], list[str]]:
    """The plan's structure masks (uint8 0/1), resampled onto ``reference``'s grid when
    theirs differs; (masks, notes). NIfTI/NRRD/MetaImage, DICOM SEG and RTSTRUCT
    (:func:`irplan.io.case_loader.read_plan_structures`)."""
    from irplan.io.case_loader import read_plan_structures

    return read_plan_structures(plan, reference)
