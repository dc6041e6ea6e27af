"""User-facing names for internal identifiers (issue 12: messages showed ``portal_vein``,
``needles[0]``, ``path_crosses``).

Only text for people goes through here (status lines, panels, tooltips, the report);
JSON keys, finding codes in ``--json`` output and plan fields stay as they are (contract).
"""

from __future__ import annotations

import re
from typing import Any

NEEDLE_WORD = {"IRE": "Electrode", "MWA": "Antenna", "RFA": "Electrode", "cryo": "Probe"}
_FIELD_WORDS = {"tip_lps_mm": "tip", "entry_lps_mm": "entry", "exposure_mm": "exposure",
                "device": "device", "name": "name"}
_NEEDLE_REF = re.compile(r"\bneedles\[(\d+)\](?:\.(\w+))?")
_IDENT = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def structure_name(key: str) -> str:
    """"portal_vein" -> "portal vein" (the structure catalogue's name when it has one);
    lesions "tumor_2" -> "Tumour 2", also beyond the catalogue's lesion types (issue 17)."""
    from irplan.planning.safety import structure_display_name
    from irplan.planning.structures import is_lesion_key, lesion_name, structure_types

    if key != "tumor" and key not in structure_types() and is_lesion_key(key):
        return lesion_name(key)
    return structure_display_name(key)


def needle_name(index: int, modality: str = "") -> str:
    """0-based ``index`` -> "Electrode 1" (IRE), "Antenna 1" (MWA), ... "Needle 1"."""
    return f"{NEEDLE_WORD.get(modality, 'Needle')} {index + 1}"


def needle_label(needle: Any, index: int) -> str:
    """The short label of a needle, the same on screen and in the report: its own name,
    else "N1", "N2", ... (0-based ``index``)."""
    return str(getattr(needle, "name", "") or f"N{index + 1}")


def code_text(code: str) -> str:
    """A finding code for people: "path_crosses" -> "path crosses"."""
    return code.replace("_", " ")


def user_text(message: str, modality: str = "") -> str:
    """``message`` with internal ids replaced: ``needles[0].exposure_mm`` -> "Electrode 1
    exposure", known structure keys -> their names, other snake_case ids -> words.
    Quoted strings ('...'), file paths and numbers with units are left alone."""
    def needle(m: re.Match) -> str:
        text = needle_name(int(m.group(1)), modality)
        if m.group(2):
            text += " " + _FIELD_WORDS.get(m.group(2), m.group(2).replace("_", " "))
        return text

    out = _NEEDLE_REF.sub(needle, message)
    out = re.sub(r"\b(thermal|ire|plan|image)\.(?=[a-z])", r"\1 ", out)
    parts = re.split(r"('[^']*'|\"[^\"]*\"|\S*/\S*)", out)   # keep quotes and paths as is
    for k in range(0, len(parts), 2):
        parts[k] = _IDENT.sub(lambda m: _ident_text(m.group(0)), parts[k])
    return "".join(parts)


def _ident_text(ident: str) -> str:
    if ident.endswith(("_mm", "_ml", "_v", "_s", "_w", "_a", "_deg")):
        stem, unit = ident.rsplit("_", 1)
        return f"{stem.replace('_', ' ')} ({unit})"
    return structure_name(ident)
