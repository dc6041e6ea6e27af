"""The treatment plan: modality, needles, device parameters and structures. LPS mm.

This module holds the data; editing goes through commands (undo/redo) and change
notification is added on top. JSON (de)serialisation lives in ``irplan.io.plan_file``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODALITIES = ("IRE", "MWA", "RFA", "cryo")

# Standard structure keys of plan files (a free name is allowed too).
STANDARD_STRUCTURES = ("tumor", "liver", "portal_vein", "hepatic_vein", "artery",
                       "bile_duct", "bone", "lung")


@dataclass
class Needle:
    """One IRE electrode or thermal applicator.

    ``tip_lps_mm``: needle tip; ``entry_lps_mm``: skin entry point; ``exposure_mm``:
    active (uninsulated) length back from the tip, for IRE electrodes (None for thermal).
    ``device``: an id from the device catalogue.
    """

    device: str
    tip_lps_mm: np.ndarray
    entry_lps_mm: np.ndarray
    exposure_mm: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.tip_lps_mm = np.asarray(self.tip_lps_mm, dtype=np.float64).reshape(3)
        self.entry_lps_mm = np.asarray(self.entry_lps_mm, dtype=np.float64).reshape(3)

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


@dataclass
class IreParams:
    """IRE pulse protocol (per electrode pair). ``voltage_v`` None = derive from spacing."""

    voltage_v: float | None = None
    pulses: int = 90
    pulse_width_us: float = 90.0


@dataclass
class ThermalParams:
    """Thermal applicator setting: generator power (W) and time (s)."""

    power_w: float | None = None
    time_s: float | None = None


@dataclass
class ImageRef:
    """The planning CT: last known path plus UIDs to re-locate it when moved."""

    path: str = ""
    series_uid: str = ""
    frame_of_reference_uid: str = ""


@dataclass
class Plan:
    """A whole plan. ``structures`` maps a structure key to a mask file path."""

    modality: str = "IRE"
    image: ImageRef = field(default_factory=ImageRef)
    margin_mm: float = 5.0
    needles: list[Needle] = field(default_factory=list)
    ire: IreParams = field(default_factory=IreParams)
    thermal: ThermalParams = field(default_factory=ThermalParams)
    structures: dict[str, str] = field(default_factory=dict)
