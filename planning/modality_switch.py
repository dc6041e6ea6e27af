"""Commands for changing a plan's modality and placing a thermal applicator (issue 12).

- Switching IRE -> MWA used to leave the IRE electrodes as "wrong device" errors. Now the
  switch is one undo step that also deals with the needles of the wrong device type:
  ``"convert"`` (same tip/entry, the new modality's default device; IRE exposure: the
  electrode's own when it was one before, else the device default), ``"remove"``, or ``"keep"`` (the findings then name them); a thermal
  plan without power/time gets its table default (:mod:`irplan.planning.thermal_defaults`).
- "Place at tumour" for a thermal plan moves the selected (or only) applicator instead of
  adding a second one.
"""

from __future__ import annotations

from irplan.planning.commands import AddNeedle, Command, Macro, ReplaceNeedles, SetAttrs, SetNeedles
from irplan.planning.plan import Plan

SWITCH_ACTIONS = ("convert", "remove", "keep")
# an IRE electrode converted to a thermal applicator remembers its exposure (extra key of
# the needle in the plan file), so converting back restores it (IRE -> MWA -> IRE)
IRE_EXPOSURE_KEY = "ire_exposure_mm"
_PREFIX = {"IRE": "E", "MWA": "A", "RFA": "A", "cryo": "C"}


def wrong_device_needles(plan: Plan, modality: str) -> list[int]:
    """Indices of needles whose device is not a ``modality`` device (unknown ones too)."""
    from irplan.planning.devices import catalogue

    cat = catalogue()
    return [i for i, n in enumerate(plan.needles)
            if cat.get(n.device) is None or cat[n.device].modality != modality]


def switch_modality_command(plan: Plan, modality: str, action: str = "convert") -> Command:
    """One undo step: set ``plan.modality`` and convert/remove/keep the needles of another
    device type; thermal parameters left unset get the table default."""
    from irplan.planning.devices import default_device
    from irplan.planning.thermal_defaults import table_default

    if action not in SWITCH_ACTIONS:
        raise ValueError(f"action: expected one of {SWITCH_ACTIONS}, got {action!r}")
    cmds: list[Command] = [SetAttrs("plan", modality=modality)]
    wrong = set(wrong_device_needles(plan, modality))
    if wrong and action != "keep":
        dev = default_device(modality)
        kept = []
        for i, n in enumerate(plan.needles):
            if i not in wrong:
                kept.append(n.copy())
            elif action == "convert":
                c = n.copy()
                c.device = dev.id
                if modality == "IRE":   # the electrode's own exposure when it was one
                    c.exposure_mm = c.extra.pop(IRE_EXPOSURE_KEY, dev.exposure_default_mm)
                else:
                    if c.exposure_mm is not None:
                        c.extra[IRE_EXPOSURE_KEY] = c.exposure_mm
                    c.exposure_mm = None
                kept.append(c)
        for k, n in enumerate(kept):       # E1, E2 ... / A1 ... after the switch
            n.name = f"{_PREFIX.get(modality, 'N')}{k + 1}"
        cmds.append(ReplaceNeedles(kept, f"{action} needles for {modality}"))
    if modality != "IRE" and (plan.thermal.power_w is None or plan.thermal.time_s is None):
        probe = plan.copy()
        probe.modality = modality
        probe.needles = [n for i, n in enumerate(probe.needles) if i not in wrong]
        from irplan.planning.thermal_defaults import plan_device

        power, time_s = table_default(plan_device(probe))
        values = {}
        if plan.thermal.power_w is None and power is not None:
            values["power_w"] = power
        if plan.thermal.time_s is None:
            values["time_s"] = time_s
        if values:
            cmds.append(SetAttrs("thermal", **values))
    return Macro(cmds, f"switch to {modality}")


def place_applicator_command(plan: Plan, needle, selected: int | None) -> tuple[Command, int]:
    """Command placing thermal applicator ``needle`` (a Needle): it replaces the selected
    applicator, else the only one, else it is added. Returns (command, its index)."""
    n = len(plan.needles)
    index = selected if selected is not None and 0 <= selected < n else (0 if n == 1 else None)
    if index is None:
        needle.name = needle.name or f"A{n + 1}"
        return AddNeedle(needle), n
    old = plan.needles[index]
    needle.name = old.name or needle.name
    return SetNeedles({index: needle}, f"move applicator {index + 1} to the tumour"), index
