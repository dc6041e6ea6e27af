"""Standard structure types (tumour, liver, vessels, ...): colours, labels, name mapping."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class StructureType:
    key: str
    name: str
    color: tuple[float, float, float]
    opacity: float
    label: int
    aliases: tuple[str, ...]


@lru_cache(maxsize=1)
def structure_types() -> dict[str, StructureType]:
    """The standard table from ``resources/structures.json``, keyed by type key."""
    text = resources.files("irplan.resources").joinpath("structures.json").read_text("utf-8")
    data = json.loads(text)["structures"]
    return {
        k: StructureType(k, v["name"], tuple(v["color"]), float(v["opacity"]), int(v["label"]),
                         tuple(v["aliases"]))
        for k, v in data.items()
    }


def classify_structure_name(name: str, extra_aliases: dict[str, str] | None = None) -> str:
    """Map a free structure name (e.g. IRCADb 'livertumor01') to a standard key.

    ``extra_aliases`` (normalised name -> key) is the user's own table and wins.
    Unknown names map to "other".
    """
    norm = re.sub(r"[\d\s_\-\.]+", "", name.lower())
    if extra_aliases and norm in extra_aliases:
        return extra_aliases[norm]
    for key, st in structure_types().items():
        if norm == key.replace("_", "") or norm in st.aliases:
            return key
    return "other"


def structure_color(key: str) -> tuple[float, float, float]:
    """RGB (0-1) for a structure key; free names get the 'other' colour."""
    types = structure_types()
    return (types.get(key) or types["other"]).color
