"""`irplan phantom OUTDIR`: write a synthetic case with exact ground truth."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from irplan.app.cli_types import non_negative_int
from irplan.planning.errors import InputError
from irplan.planning.phantom import SCENARIOS, VARIANTS


def _triple(text: str, what: str, cast: type) -> tuple:
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        vals = tuple(cast(p) for p in parts)
    except ValueError:
        raise InputError(f"--{what} '{text}': expected numbers like 256,256,128") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or any(v <= 0 for v in vals):
        raise InputError(f"--{what} '{text}': expected three positive numbers (x,y,z)")
    return vals


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("outdir", help="folder to write the case into (new, empty, or a "
                        "phantom case whose plan was not edited)")
    parser.add_argument("--seed",
                        type=non_negative_int(2**32 - 1), default=0, help="random seed (default 0)")
    parser.add_argument("--scenario", choices=SCENARIOS, default="margin_ok",
                        help="follow-up ablation zone: true MAM >= 5 mm (margin_ok), "
                             "0-5 mm (margin_at_risk) or < 0 (incomplete)")
    parser.add_argument("--variant", choices=VARIANTS, default="axial",
                        help="planning grid orientation (same anatomy in LPS)")
    parser.add_argument("--size", metavar="X,Y,Z",
                        help="voxels per axis (default 256,256,128); e.g. 512,512,300")
    parser.add_argument("--spacing-mm", metavar="SX,SY,SZ",
                        help="voxel size in mm (default 1.5,1.5,2.0); one value = isotropic")
    parser.add_argument("--force", action="store_true",
                        help="overwrite a case folder whose plan.irplan.json was edited "
                             "(default: refused, the edited plan is kept)")
    parser.add_argument("--compress", choices=("rle", "jpegls", "j2k"),
                        help="write the DICOM pixels losslessly compressed")


def run(args: argparse.Namespace) -> int:
    from irplan.io.phantom_writer import load_truth, write_phantom_case

    size = _triple(args.size, "size", int) if args.size else None
    spacing = _triple(args.spacing_mm, "spacing-mm", float) if args.spacing_mm else None
    t0 = time.perf_counter()
    out = write_phantom_case(Path(args.outdir), seed=args.seed, scenario=args.scenario,
                             variant=args.variant, size=size, spacing_mm=spacing,
                             transfer_syntax=args.compress, force=args.force)
    truth = load_truth(out)
    g = truth.grids["planning"] if truth.grids else None
    size = "x".join(str(n) for n in g.size) if g else "?"
    spacing = "x".join(f"{s:g}" for s in g.spacing_mm) if g else "?"
    print(f"phantom case written to {out} in {time.perf_counter() - t0:.1f} s")
    print(f"  planning/  intraop/  followup/   DICOM CT, {size} voxels, {spacing} mm, "
          f"variant {truth.variant}")
    print("  masks/planning/*.nii.gz  masks/followup/*.nii.gz  seg/planning_structures.dcm")
    print("  plan.irplan.json (reference IRE plan)  truth.json (exact ground truth)")
    t = truth.tumor
    c = ", ".join(f"{v:.1f}" for v in t.center_lps_mm)
    print(f"  tumour: {t.diameter_mm:.1f} mm, {t.volume_ml:.2f} ml at LPS ({c}) mm; "
          f"nearest vessel {truth.nearest_vessel.name} "
          f"{truth.nearest_vessel_distance_mm:.1f} mm")
    print(f"  scenario {truth.scenario}: true minimal margin "
          f"{truth.minimal_margin_mm:.2f} mm, tumour coverage "
          f"{truth.tumor_coverage_percent:.2f} %")
    return 0
