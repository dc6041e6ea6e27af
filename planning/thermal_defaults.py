"""The "table default" power and time of a thermal applicator.

A thermal plan without ``thermal.power_w`` / ``thermal.time_s`` cannot be predicted (the
zone tables are indexed by them; ``irplan zone`` refuses such a plan, naming the field).
The GUI shows "table default" for an unset value; this module says what that default is,
so the GUI fills it in and the zone computes (issue 12).

Default of a table (design value, not a clinical recommendation): the middle row, i.e.
the upper median power and, at that power, the upper median time. For the illustrative
MWA table that is 100 W x 300 s, the setting of the aspect-ratio figure its source cites
(PMC3721053, 100 W x 5 min); RFA 200 W x 720 s; cryo (no power) 600 s.
"""

from __future__ import annotations

import copy

from irplan.planning.plan import Plan, ThermalParams


def table_default(device_id: str) -> tuple[float | None, float]:
    """(power W or None for cryo, time s) of ``device_id``'s zone table (InputError when
    the device or its table is unknown)."""
    from irplan.planning.devices import get_device
    from irplan.planning.thermal_zone import load_tables, table_for_device

    dev = get_device(device_id)
    table = table_for_device(dev.id, dev.modality, load_tables(), dev.zone_table)
    rows = list(table.rows)
    power = None
    if not table.is_cryo:
        powers = sorted({float(r["power_w"]) for r in rows})
        power = powers[len(powers) // 2]
        rows = [r for r in rows if float(r["power_w"]) == power]
    times = sorted({float(r["time_s"]) for r in rows})
    return power, times[len(times) // 2]


def plan_device(plan: Plan) -> str:
    """The device whose table gives the defaults: the first needle's of the plan's
    modality, else the modality's default device."""
    from irplan.planning.devices import catalogue, default_device

    cat = catalogue()
    for n in plan.needles:
        dev = cat.get(n.device)
        if dev is not None and dev.modality == plan.modality:
            return dev.id
    return default_device(plan.modality).id


def resolve_thermal(plan: Plan) -> tuple[ThermalParams, list[str]]:
    """``plan.thermal`` with unset power/time replaced by the table default (a copy; IRE
    plans unchanged), and notes saying which values were filled in."""
    th = copy.deepcopy(plan.thermal)
    if plan.is_ire or (th.time_s is not None and th.power_w is not None):
        return th, []
    try:
        power, time_s = table_default(plan_device(plan))
    except Exception:  # noqa: BLE001 - unknown device: the zone model names the problem
        return th, []
    notes = []
    if th.power_w is None and power is not None:
        th.power_w = power
        notes.append(f"power: table default {power:g} W")
    if th.time_s is None:
        th.time_s = time_s
        notes.append(f"time: table default {time_s:g} s")
    return th, notes
