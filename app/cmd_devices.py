"""`irplan devices [--json]`: list the device catalogue (resources/devices.json).

``--json`` prints a list of ``{"id", "modality", "name", "source"}``; a plan's needle
``device`` is one of these ids.
"""

from __future__ import annotations

import argparse
import json
import sys

from irplan.planning.devices import catalogue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--modality", choices=("IRE", "MWA", "RFA", "cryo"),
                        help="only devices of this modality")


def run(args: argparse.Namespace) -> int:
    devs = [d for d in catalogue().values()
            if args.modality is None or d.modality == args.modality]
    if args.json:
        json.dump([d.summary() for d in devs], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for d in devs:
        lengths = "/".join(f"{v / 10:g}" for v in d.lengths_mm)
        exp = (f", exposure {d.exposure_range_mm[0]:g}-{d.exposure_range_mm[1]:g} mm"
               if d.exposure_range_mm else "")
        flag = "  [figures partly user-supplied]" if d.unverified else ""
        print(f"{d.id:20s}{d.modality:6s}{d.name}: {d.gauge} G, "
              f"{d.shaft_diameter_mm:g} mm, {lengths} cm{exp}{flag}")
        print(f"{'':26s}source: {d.source}")
    return 0
