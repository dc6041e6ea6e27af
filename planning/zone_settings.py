"""Named IRE zone-model settings (``resources/zone_settings.json``) and calibrated
parameter files (``irplan calibrate --out PARAMS.json``).

A setting is a lethal-field threshold (V/cm) with its source: "conservative" (637 V/cm,
Miklavčič 2000), "human fit" (550 V/cm, PMID 41105588), "in vivo porcine fit" (350 V/cm,
fitted to Ben-David 2012). The band (inner = smallest plausible zone, outer = largest) is
two settings of the same file. Every zone IRPlan shows names its setting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from irplan.planning.errors import InputError


@dataclass(frozen=True)
class ZoneSetting:
    """One named setting. ``threshold_v_per_cm`` is the IRE lethal field."""

    id: str
    name: str
    threshold_v_per_cm: float
    source: str
    range_v_per_cm: tuple[float, float] | None = None
    conductivity: str = "static"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "name": self.name,
                             "threshold_v_per_cm": self.threshold_v_per_cm,
                             "conductivity": self.conductivity, "source": self.source}
        if self.range_v_per_cm is not None:
            d["range_v_per_cm"] = list(self.range_v_per_cm)
        return d


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, Any]:
    text = resources.files("irplan.resources").joinpath("zone_settings.json").read_text("utf-8")
    return json.loads(text)


def _parse(d: dict[str, Any]) -> ZoneSetting:
    rng = d.get("range_v_per_cm")
    return ZoneSetting(str(d["id"]), str(d["name"]), float(d["threshold_v_per_cm"]),
                       str(d["source"]), tuple(float(v) for v in rng) if rng else None,
                       str(d.get("conductivity", "static")))


def settings() -> list[ZoneSetting]:
    """All named settings, in file order."""
    return [_parse(d) for d in _catalogue()["settings"]]


def get_setting(name: str) -> ZoneSetting:
    """A setting by id or display name (case-insensitive); InputError listing the known ones."""
    key = name.strip().lower()
    for s in settings():
        if key in (s.id.lower(), s.name.lower()):
            return s
    known = ", ".join(f"{s.id} ({s.name})" for s in settings())
    raise InputError(f"unknown zone setting {name!r} (known: {known})")


def default_setting() -> ZoneSetting:
    return get_setting(_catalogue()["default"])


def band_settings() -> tuple[ZoneSetting, ZoneSetting]:
    """(inner, outer): the settings of the smallest and the largest plausible zone."""
    b = _catalogue()["band"]
    return get_setting(b["inner"]), get_setting(b["outer"])


def custom_setting(threshold_v_per_cm: float, source: str = "user-supplied threshold"
                   ) -> ZoneSetting:
    """A setting for a threshold the user typed (no published source)."""
    return ZoneSetting("custom", f"custom {threshold_v_per_cm:g} V/cm",
                       float(threshold_v_per_cm), source)


def read_param_file(path: str | Path) -> dict[str, Any]:
    """The JSON object of a calibrated parameter file (``irplan calibrate --out``), with a
    ``parameters`` object; InputError naming the file otherwise."""
    p = Path(path)
    try:
        data = json.loads(p.read_text("utf-8"))
    except OSError as exc:
        raise InputError(f"{p}: cannot read the parameter file ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not JSON ({exc.msg}, line {exc.lineno})") from None
    params = data.get("parameters") if isinstance(data, dict) else None
    if not isinstance(params, dict):
        raise InputError(f"{p}: no 'parameters' object (write it with irplan calibrate --out)")
    return data


def load_params(path: str | Path) -> ZoneSetting:
    """A calibrated IRE parameter file (``irplan calibrate --out``) as a setting.

    Format: ``{"parameters": {"threshold_v_per_cm": 480.0, ...}, "cohort": "...", ...}``."""
    p = Path(path)
    data = read_param_file(p)
    t = data["parameters"].get("threshold_v_per_cm")
    if t is None and "zone_scale" in data["parameters"]:
        raise InputError(f"{p}: fitted on a thermal cohort (zone_scale), not usable for IRE")
    if not isinstance(t, (int, float)) or not 50.0 <= float(t) <= 5000.0:
        raise InputError(f"{p}: parameters.threshold_v_per_cm must be a number in 50-5000 V/cm, "
                         f"got {t!r}")
    cohort = data.get("cohort", "?")
    n = data.get("n_cases", "?")
    return ZoneSetting("calibrated", f"calibrated ({p.name})", float(t),
                       f"fitted by irplan calibrate on {cohort} ({n} cases); file {p.name}")


def load_thermal_scale(path: str | Path) -> tuple[float, dict[str, Any]]:
    """(zone scale, setting dict) of a thermal parameter file (``irplan calibrate --out``)."""
    p = Path(path)
    data = read_param_file(p)
    sc = data["parameters"].get("zone_scale")
    if sc is None:
        raise InputError(f"{p}: has no parameters.zone_scale (fitted on an IRE cohort?)")
    if not isinstance(sc, (int, float)) or not 0.2 <= float(sc) <= 5.0:
        raise InputError(f"{p}: parameters.zone_scale must be a number in 0.2-5, got {sc!r}")
    return float(sc), {"id": "calibrated", "name": f"calibrated ({p.name})",
                       "zone_scale": float(sc),
                       "source": f"fitted by irplan calibrate on {data.get('cohort', '?')} "
                                 f"({data.get('n_cases', '?')} cases); file {p.name}"}


# ---------------------------------------------------------------- the plan's own choice
ZONE_MODEL_KEY = "zone_model"
"""Plan JSON key of the IRE model a plan was made with: ``{"setting": id,
"threshold_v_per_cm": float}`` (id of zone_settings.json, "custom" or "calibrated"; a
calibrated one also has ``"params_path"``, relative to the plan file's folder or absolute).
Absent: the default setting. The GUI writes it; ``irplan zone``/``check``/``report`` use it
when no ``--setting``/``--threshold-v-per-cm``/``--params`` is given, so the report shows
the zone that was on screen."""


def model_record(setting: ZoneSetting, params_path: str | None = None) -> dict[str, Any]:
    """The plan's ``zone_model`` value for ``setting``."""
    rec: dict[str, Any] = {"setting": setting.id,
                           "threshold_v_per_cm": float(setting.threshold_v_per_cm)}
    if params_path:
        rec["params_path"] = str(params_path)
    return rec


def plan_model(extra: dict[str, Any], plan_dir: str | Path = "") -> ZoneSetting | None:
    """The setting a plan records under ``zone_model`` (None when absent); InputError naming
    the field when it is malformed or names an unknown setting. A calibrated file that is
    gone is refused, not replaced by another threshold."""
    rec = extra.get(ZONE_MODEL_KEY) if isinstance(extra, dict) else None
    if rec is None:
        return None
    if not isinstance(rec, dict):
        raise InputError(f"{ZONE_MODEL_KEY}: expected an object, got {type(rec).__name__}")
    sid = rec.get("setting")
    t = rec.get("threshold_v_per_cm")
    if not isinstance(sid, str) or not sid:
        raise InputError(f"{ZONE_MODEL_KEY}.setting: expected a setting id, got {sid!r}")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 50.0 <= float(t) <= 5000.0:
        raise InputError(f"{ZONE_MODEL_KEY}.threshold_v_per_cm: must be a number in 50-5000 "
                         f"V/cm, got {t!r}")
    if sid == "calibrated":
        p = rec.get("params_path")
        if not isinstance(p, str) or not p:
            raise InputError(f"{ZONE_MODEL_KEY}.params_path: a calibrated model needs its "
                             "parameter file")
        path = Path(p) if Path(p).is_absolute() or not plan_dir else Path(plan_dir) / p
        st = _load_params_cached(path)
        if st.threshold_v_per_cm != float(t):
            raise InputError(f"{ZONE_MODEL_KEY}: {path} now says {st.threshold_v_per_cm:g} "
                             f"V/cm, the plan was made with {float(t):g} V/cm")
        return st
    if sid == "custom":
        return custom_setting(float(t))
    st = get_setting(sid)
    if st.threshold_v_per_cm != float(t):
        raise InputError(f"{ZONE_MODEL_KEY}: setting {sid!r} is {st.threshold_v_per_cm:g} V/cm "
                         f"in this version, the plan was made with {float(t):g} V/cm")
    return st


def _load_params_cached(path: Path) -> ZoneSetting:
    """:func:`load_params`, read again only when the file changed (the live zone asks at
    every plan edit, e.g. each step of a needle drag)."""
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        return load_params(path)          # names the file and the problem
    return _params_by_stamp(str(path), stamp)


@lru_cache(maxsize=16)
def _params_by_stamp(path: str, _stamp: tuple[int, int]) -> ZoneSetting:
    return load_params(path)


def plan_model_options(extra: dict[str, Any], plan_dir: str | Path = "") -> dict[str, Any]:
    """ZoneOptions fields for the plan's recorded model ({} when it records none):
    ``setting`` for a named one, ``threshold_v_per_cm`` for a custom one, ``params_path``
    (resolved) for a calibrated file. Validated by :func:`plan_model`."""
    st = plan_model(extra, plan_dir)
    if st is None:
        return {}
    if st.id == "calibrated":
        p = Path(extra[ZONE_MODEL_KEY]["params_path"])
        return {"params_path": str(p if p.is_absolute() or not plan_dir
                                   else Path(plan_dir) / p)}
    if st.id == "custom":
        return {"threshold_v_per_cm": st.threshold_v_per_cm}
    return {"setting": st.id}
