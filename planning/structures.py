"""Standard structure types (tumour, liver, vessels, ...): colours, labels, name mapping.

Several lesions (issue 17): ``tumor`` is the first lesion (plans, masks and CLI flags
that know one tumour keep working), further lesions are ``tumor_2``, ``tumor_3``, ...
("Tumour 2", ...), each its own type with a colour and a labelmap value
(``resources/structures.json``, section ``lesions``). Every lesion key classifies as the
kind ``tumor`` (:func:`classify_structure_name`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
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
    doc = json.loads(text)
    data = doc["structures"]
    out = {
        k: StructureType(k, v["name"], tuple(v["color"]), float(v["opacity"]), int(v["label"]),
                         tuple(v["aliases"]))
        for k, v in data.items()
    }
    les = doc.get("lesions")
    if les:
        colors = [tuple(c) for c in les["colors"]]
        for n in range(2, int(les["count"]) + 1):
            key = lesion_key(n)
            out[key] = StructureType(key, les["name"].format(n=n), colors[(n - 2) % len(colors)],
                                     float(les["opacity"]), int(les["first_label"]) + n - 2, ())
    return out


# ------------------------------------------------------------------ lesions
LESION_KIND = "tumor"
_LESION_KEY = re.compile(r"^tumor(?:_(\d+))?$")


def lesion_key(n: int) -> str:
    """The key of lesion number ``n`` (1-based): 1 -> "tumor", 2 -> "tumor_2", ..."""
    if n < 1:
        raise ValueError(f"lesion number {n} < 1")
    return LESION_KIND if n == 1 else f"{LESION_KIND}_{n}"


def lesion_number(key: str) -> int | None:
    """"tumor" -> 1, "tumor_2" -> 2, ...; None for a key that is not a lesion key."""
    m = _LESION_KEY.match(key)
    if m is None:
        return None
    if m.group(1) is None:
        return 1
    n = int(m.group(1))
    return n if n >= 2 and m.group(1) == str(n) else None   # "tumor_1", "tumor_02": no


def is_lesion_key(key: str) -> bool:
    return lesion_number(key) is not None


def lesion_keys(keys: Iterable[str]) -> list[str]:
    """The lesion keys among ``keys``, in lesion order (tumor, tumor_2, tumor_3, ...)."""
    return sorted((k for k in keys if is_lesion_key(k)), key=lambda k: lesion_number(k) or 0)


def next_lesion_key(keys: Iterable[str]) -> str:
    """The first lesion key not in ``keys`` ("tumor" when there is no lesion yet)."""
    taken = set(keys)
    n = 1
    while lesion_key(n) in taken:
        n += 1
    return lesion_key(n)


def lesion_name(key: str) -> str:
    """A lesion as listed among several: "tumor" -> "Tumour 1", "tumor_2" -> "Tumour 2"."""
    n = lesion_number(key)
    if n is None:
        raise ValueError(f"{key!r} is not a lesion key")
    types = structure_types()
    if key in types and n > 1:
        return types[key].name
    return f"{types[LESION_KIND].name} {n}"


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
    st = types.get(key)
    if st is None and is_lesion_key(key):   # more lesions than the table: colours repeat
        les = [t for k, t in types.items() if k != LESION_KIND and is_lesion_key(k)]
        st = les[((lesion_number(key) or 2) - 2) % len(les)] if les else types[LESION_KIND]
    return (st or types["other"]).color
