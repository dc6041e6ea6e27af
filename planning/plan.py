"""The treatment plan: modality, needles, device parameters and structures. LPS mm.

This module holds the data; editing goes through commands (``irplan.planning.commands``,
undo/redo) which announce each change on :attr:`Plan.changed` (psygnal, no Qt).
JSON (de)serialisation lives in ``irplan.io.plan_file``.

Every object carries an ``extra`` dict: keys of the plan file that this version does
not interpret (e.g. ``"evaluations"``, ``"zone"``, ``"notes"``) are kept there and
written back unchanged, so a plan survives a round trip through an older IRPlan.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from psygnal import Signal

MODALITIES = ("IRE", "MWA", "RFA", "cryo")
THERMAL_MODALITIES = ("MWA", "RFA", "cryo")

# Standard structure keys of plan files (a free name is allowed too).
STANDARD_STRUCTURES = ("tumor", "liver", "portal_vein", "hepatic_vein", "artery",
                       "bile_duct", "bone", "lung")


@dataclass(eq=False)
class Needle:
    """One IRE electrode or thermal applicator.

    ``tip_lps_mm``: needle tip; ``entry_lps_mm``: skin entry point; ``exposure_mm``:
    active (uninsulated) length back from the tip, for IRE electrodes (None for thermal).
    ``device``: an id from the device catalogue (``irplan.planning.devices``).
    """

    device: str
    tip_lps_mm: np.ndarray
    entry_lps_mm: np.ndarray
    exposure_mm: float | None = None
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tip_lps_mm = np.asarray(self.tip_lps_mm, dtype=np.float64).reshape(3).copy()
        self.entry_lps_mm = np.asarray(self.entry_lps_mm, dtype=np.float64).reshape(3).copy()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Needle):
            return NotImplemented
        return (self.device == other.device
                and np.array_equal(self.tip_lps_mm, other.tip_lps_mm)
                and np.array_equal(self.entry_lps_mm, other.entry_lps_mm)
                and self.exposure_mm == other.exposure_mm
                and self.name == other.name and self.extra == other.extra)

    @property
    def length_mm(self) -> float:
        """Insertion depth: entry to tip (mm)."""
        return float(np.linalg.norm(self.tip_lps_mm - self.entry_lps_mm))

    @property
    def direction(self) -> np.ndarray:
        """Unit vector from entry towards tip (LPS)."""
        d = self.tip_lps_mm - self.entry_lps_mm
        n = np.linalg.norm(d)
        return d / n if n > 0 else np.array([0.0, 0.0, -1.0])

    def copy(self) -> Needle:
        return Needle(self.device, self.tip_lps_mm.copy(), self.entry_lps_mm.copy(),
                      self.exposure_mm, self.name, copy.deepcopy(self.extra))


@dataclass
class IreParams:
    """IRE pulse protocol (per electrode pair). ``voltage_v`` None = derive from spacing."""

    voltage_v: float | None = None
    pulses: int = 90
    pulse_width_us: float = 90.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ThermalParams:
    """Thermal applicator setting: generator power (W) and time (s)."""

    power_w: float | None = None
    time_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageRef:
    """The planning CT: last known path plus UIDs to re-locate it when moved.

    ``path`` is the string as written in the plan file (may be relative to the plan's
    folder); ``irplan.io.plan_file.image_path`` resolves it.
    """

    path: str = ""
    series_uid: str = ""
    frame_of_reference_uid: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class Plan:
    """A whole plan. ``structures`` maps a structure key to a mask file path (string as
    written in the plan file; relative paths are relative to ``file_dir``).

    ``targets``: structure keys to treat (e.g. ``["tumor"]``); empty = every structure
    classified as tumour. ``file_dir``: folder of the plan file it was loaded from /
    saved to ("" = none); not serialised. ``changed`` (psygnal) is emitted by commands with a short topic:
    ``"needles"``, ``"needle:<i>"``, ``"modality"``, ``"margin"``, ``"ire"``,
    ``"thermal"``, ``"structures"``, ``"image"``, ``"all"``.
    """

    changed = Signal(str)

    modality: str = "IRE"
    image: ImageRef = field(default_factory=ImageRef)
    margin_mm: float = 5.0
    needles: list[Needle] = field(default_factory=list)
    ire: IreParams = field(default_factory=IreParams)
    thermal: ThermalParams = field(default_factory=ThermalParams)
    structures: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    file_dir: str = ""
    targets: list[str] = field(default_factory=list)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self)
                   if f.name != "file_dir")

    @property
    def is_ire(self) -> bool:
        return self.modality == "IRE"

    def notify(self, topic: str) -> None:
        """Announce a change (called by commands after they edit the plan)."""
        self.changed.emit(topic)

    def copy(self) -> Plan:
        """A deep copy without signal connections."""
        return Plan(self.modality, copy.deepcopy(self.image), float(self.margin_mm),
                    [n.copy() for n in self.needles], copy.deepcopy(self.ire),
                    copy.deepcopy(self.thermal), dict(self.structures),
                    copy.deepcopy(self.extra), self.file_dir, list(self.targets))

    def __deepcopy__(self, memo: dict) -> Plan:
        return self.copy()   # no signal connections (they belong to the original)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("changed", None)   # the psygnal instance; a new one is made on access
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def assign_from(self, other: Plan) -> None:
        """Make this plan equal to ``other`` in place (keeps signal connections)."""
        src = other.copy()
        for f in fields(self):
            setattr(self, f.name, getattr(src, f.name))
        self.notify("all")
