"""The device catalogue (``resources/devices.json``): IRE electrodes and thermal applicators.

A plan's needle ``device`` is a catalogue ``id``. Lengths/diameters in mm. Every entry
carries its ``source``; numbers no public source confirms are marked "user-supplied".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from irplan.planning.errors import InputError
from irplan.planning.plan import MODALITIES


@dataclass(frozen=True)
class Device:
    """One catalogue entry. ``exposure_range_mm`` (min, max) for adjustable/active tips."""

    id: str
    modality: str
    name: str
    manufacturer: str | None
    gauge: int | None
    shaft_diameter_mm: float
    lengths_mm: tuple[float, ...]
    exposure_range_mm: tuple[float, float] | None
    exposure_default_mm: float | None
    zone_table: str | None
    source: str

    @property
    def radius_mm(self) -> float:
        return self.shaft_diameter_mm / 2.0

    @property
    def max_length_mm(self) -> float:
        """Longest usable shaft length (mm): the deepest insertion the device allows."""
        return max(self.lengths_mm)

    @property
    def unverified(self) -> bool:
        """True when the source says some figures are user-supplied / not verified."""
        s = self.source.lower()
        return "user-supplied" in s or "not verified" in s

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "modality": self.modality, "name": self.name,
                "source": self.source}


def _parse(entry: dict[str, Any], where: str) -> Device:
    try:
        exp = entry.get("exposure_mm")
        dev = Device(
            id=str(entry["id"]),
            modality=str(entry["modality"]),
            name=str(entry["name"]),
            manufacturer=entry.get("manufacturer"),
            gauge=entry.get("gauge"),
            shaft_diameter_mm=float(entry["shaft_diameter_mm"]),
            lengths_mm=tuple(float(v) for v in entry["length_mm"]),
            exposure_range_mm=(float(exp["min"]), float(exp["max"])) if exp else None,
            exposure_default_mm=float(exp["default"]) if exp and "default" in exp else None,
            zone_table=entry.get("zone_table"),
            source=str(entry["source"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: invalid device entry ({type(exc).__name__}: {exc})") from None
    if dev.modality not in MODALITIES:
        raise InputError(f"{where}: modality {dev.modality!r} not one of {MODALITIES}")
    if not dev.source.strip():
        raise InputError(f"{where}: device {dev.id!r} has no source")
    if dev.shaft_diameter_mm <= 0 or not dev.lengths_mm or min(dev.lengths_mm) <= 0:
        raise InputError(f"{where}: device {dev.id!r} needs positive diameter and lengths")
    return dev


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Device]:
    """All devices of ``resources/devices.json`` keyed by id (read once)."""
    text = resources.files("irplan.resources").joinpath("devices.json").read_text("utf-8")
    data = json.loads(text)
    out: dict[str, Device] = {}
    for i, entry in enumerate(data["devices"]):
        dev = _parse(entry, f"devices.json: devices[{i}]")
        if dev.id in out:
            raise InputError(f"devices.json: duplicate device id {dev.id!r}")
        out[dev.id] = dev
    return out


def device_ids() -> list[str]:
    return list(catalogue())


def get_device(device_id: str) -> Device:
    """The device with this id; InputError naming the known ids otherwise."""
    dev = catalogue().get(device_id)
    if dev is None:
        raise InputError(f"unknown device id {device_id!r} (known: {', '.join(catalogue())})")
    return dev


def default_device(modality: str) -> Device:
    """The first catalogue device of a modality."""
    for dev in catalogue().values():
        if dev.modality == modality:
            return dev
    raise InputError(f"no device for modality {modality!r} in the catalogue")
