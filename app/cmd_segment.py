"""`irplan segment PATH --tumor-seed X,Y,Z ... --out DIR`: semi-automatic segmentation.

Seeds are LPS mm (DICOM patient coordinates, as shown by the viewers). Writes NIfTI
masks on the CT grid into DIR (tumor.nii.gz, liver.nii.gz, vessels.nii.gz, bone.nii.gz,
lung.nii.gz; with ``--calibre`` also vessels_diameter_mm.nii.gz) and prints volume (mL)
and largest diameter (mm) of each. A negative first coordinate needs no quoting
(``--tumor-seed -70,4,-5``); ``--tumor-seed=-70,4,-5`` works as well.
With ``--background-seed`` (repeatable) the tumour seeds are inside scribbles of one lesion
and the background seeds outside ones (random walker, issue 17).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from irplan.app.cli_types import finite_float
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume

_POINT = r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"


def _point(text: str) -> np.ndarray:
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) != 3 or not np.all(np.isfinite(vals)) or np.any(np.abs(vals) > 10_000):
        raise argparse.ArgumentTypeError(f"'{text[:60]}' is not an LPS point X,Y,Z in mm "
                                         "(three finite numbers within +-10 m)")
    return np.array(vals)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # let "-70,4,-5" be a value, not an option (argparse only knows plain negative numbers)
    if hasattr(parser, "_negative_number_matcher"):
        parser._negative_number_matcher = re.compile(  # noqa: SLF001
            rf"^{_POINT}(,\s*{_POINT}){{0,2}}$")
    parser.add_argument("path", help="planning CT: DICOM folder/DICOMDIR, or a NIfTI/NRRD "
                        "volume in HU")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--tumor-seed", action="append", type=_point, default=[],
                        metavar="X,Y,Z", help="click inside a hypodense lesion (LPS mm); "
                        "repeat for several lesions (all go into tumor.nii.gz)")
    parser.add_argument("--background-seed", action="append", type=_point, default=[],
                        metavar="X,Y,Z", help="scribble point outside the lesion (LPS mm); "
                        "repeatable. With it, every --tumor-seed is an inside scribble of ONE "
                        "lesion, grown from seeds by a random walker")
    parser.add_argument("--tumor-radius-mm",
                        type=finite_float(0, 150, lo_open=True, unit="mm"),
                        default=None, metavar="R",
                        help="approximate lesion radius (the GUI's drag), bounds the result")
    parser.add_argument("--liver-seed", action="append", type=_point, default=[],
                        metavar="X,Y,Z", help="seed in the liver parenchyma; repeatable "
                        "(the segmented tumour is counted as liver)")
    parser.add_argument("--vessel-seed", action="append", type=_point, default=[],
                        metavar="X,Y,Z", help="seed in an enhanced vessel lumen; repeatable "
                        "(limited to the liver +10 mm when a liver is segmented)")
    parser.add_argument("--vessel-threshold-hu",
                        type=finite_float(-1024, 3071, unit="HU"), default=None, metavar="HU",
                        help="lower HU threshold of the vessel tool (default: half way "
                        "between the seed's vessel and the liver)")
    parser.add_argument("--vesselness", action="store_true",
                        help="add thin branches by Hessian vesselness inside the liver")
    parser.add_argument("--calibre", action="store_true",
                        help="also write the local vessel diameter map (mm)")
    parser.add_argument("--bone", action="store_true", help="segment bone automatically")
    parser.add_argument("--lung", action="store_true", help="segment the lungs automatically")
    parser.add_argument("--json", action="store_true", help="print a JSON summary")


def _load(path: str) -> Volume:
    from irplan.io.masks import is_mask_file, read_volume_file

    p = Path(path)
    if p.is_file() and is_mask_file(p):
        return read_volume_file(p)
    from irplan.io.dicom_load import load_ct

    return load_ct(p)


def run(args: argparse.Namespace) -> int:
    from irplan.io.masks import write_mask, write_volume_file
    from irplan.planning import segmentation as seg
    from irplan.planning.mask_ops import max_diameter_mm, volume_ml

    if args.background_seed and not args.tumor_seed:
        raise InputError("--background-seed needs at least one --tumor-seed (inside point)")
    if not (args.tumor_seed or args.liver_seed or args.vessel_seed or args.bone or args.lung):
        raise InputError("nothing to do: give --tumor-seed, --liver-seed, --vessel-seed, "
                         "--bone and/or --lung")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: --out must be a folder, it is a file")
    ct = _load(args.path)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from irplan.io.atomic_write import output_error

        raise output_error(out_dir, exc, "cannot create the folder") from None
    results: dict[str, Volume] = {}
    timing: dict[str, float] = {}

    def timed(key: str, fn, *a, **kw) -> Volume:  # noqa: ANN001
        t0 = time.perf_counter()
        vol = fn(*a, **kw)
        timing[key] = time.perf_counter() - t0
        return vol

    if args.tumor_seed and args.background_seed:
        results["tumor"] = timed("tumor", seg.segment_tumor_scribbles, ct, args.tumor_seed,
                                 args.background_seed)
    elif args.tumor_seed:
        masks = [timed("tumor", seg.segment_tumor, ct, s, radius_mm=args.tumor_radius_mm)
                 for s in args.tumor_seed]
        union = masks[0].copy()
        for m in masks[1:]:
            union.array |= m.array
        results["tumor"] = union
    if args.liver_seed:
        results["liver"] = timed("liver", seg.segment_liver, ct, args.liver_seed,
                                 include=results.get("tumor"))
    if args.vessel_seed:
        results["vessels"] = timed("vessels", seg.segment_vessels, ct, args.vessel_seed,
                                   liver=results.get("liver"),
                                   use_vesselness=args.vesselness,
                                   lower_hu=args.vessel_threshold_hu)
    if args.bone:
        results["bone"] = timed("bone", seg.segment_bone, ct)
    if args.lung:
        results["lung"] = timed("lung", seg.segment_lung, ct)

    summary = []
    for key, mask in results.items():
        path = write_mask(mask, out_dir / f"{key}.nii.gz")
        row = {"structure": key, "file": str(path), "volume_ml": round(volume_ml(mask), 2),
               "max_diameter_mm": round(max_diameter_mm(mask), 1),
               "hu_window": mask.metadata.get("hu_window"),
               "seconds": round(timing.get(key, 0.0), 2)}
        if mask.metadata.get("warning"):
            row["warning"] = mask.metadata["warning"]
        summary.append(row)
    if args.calibre and "vessels" in results:
        from irplan.planning.vessel_calibre import vessel_calibre

        cal = vessel_calibre(results["vessels"])
        p = write_volume_file(cal.diameter_mm, out_dir / "vessels_diameter_mm.nii.gz")
        dmax = float(cal.centreline_diameter_mm.max()) if len(cal.centreline_diameter_mm) else 0
        summary.append({"structure": "vessel calibre", "file": str(p),
                        "max_diameter_mm": round(dmax, 1)})
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for row in summary:
        if "volume_ml" in row:
            hu = row["hu_window"]
            hu_txt = f"  HU window {hu[0]}..{hu[1]}" if hu else ""
            print(f"{row['structure']:<8} {row['volume_ml']:9.1f} mL  max diameter "
                  f"{row['max_diameter_mm']:6.1f} mm  ({row['seconds']:.1f} s){hu_txt}  "
                  f"-> {row['file']}")
        else:
            print(f"{row['structure']}: largest diameter {row['max_diameter_mm']} mm "
                  f"-> {row['file']}")
        if row.get("warning"):
            print(f"  warning: {row['warning']}")
    return 0
