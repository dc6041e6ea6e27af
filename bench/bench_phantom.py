"""Time phantom generation and DICOM/NIfTI/SEG writing (prints figures; not a test).

Usage: python bench/bench_phantom.py [X,Y,Z] [SX,SY,SZ]
(default 256,256,128 at 1.5,1.5,2.0 mm; e.g. 512,512,300 0.75,0.75,1.0 for the big case)
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

from irplan.io.dicom_write import read_series_headers, write_ct_series
from irplan.io.masks import write_mask
from irplan.io.phantom_writer import write_phantom_case
from irplan.io.seg_write import write_seg
from irplan.planning import phantom as ph


class _Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self, label: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        print(f"{label:<48} {wall - self.wall:7.2f} s wall {cpu - self.cpu:7.2f} s CPU")
        self.wall, self.cpu = wall, cpu


def main() -> None:
    size = tuple(int(v) for v in sys.argv[1].split(",")) if len(sys.argv) > 1 else None
    spacing = tuple(float(v) for v in sys.argv[2].split(",")) if len(sys.argv) > 2 else None
    grid = ph.phantom_grid("axial", size, spacing)
    nvox = grid.array.size
    print(f"grid {grid.size_xyz} spacing {grid.spacing_mm.tolist()} mm: {nvox / 1e6:.1f} M voxels")
    print("(wall s / CPU s of this process; CPU is the figure on a shared machine)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        clock = _Clock()
        truth = ph.make_truth(0)
        clock.lap("truth (needle path search, exact MAM/coverage)")
        ct, masks, ict = ph.make_planning_and_intraop(grid, truth, 0)
        clock.lap("planning + intra-op CT and 7 masks")
        fct, fmasks = ph.make_followup(ph.followup_grid(grid), truth, 0)
        clock.lap("follow-up CT (deformed) and 2 masks")
        paths = write_ct_series(ct, out / "planning")
        clock.lap(f"write CT series uncompressed ({ct.array.nbytes / 1e6:.0f} MB)")
        write_ct_series(ct, out / "planning_rle", transfer_syntax="rle")
        clock.lap("write CT series RLE lossless")
        for key, m in masks.items():
            write_mask(m, out / f"{key}.nii.gz")
        clock.lap("write 7 NIfTI masks (gzip)")
        write_seg(masks, read_series_headers(paths), out / "seg.dcm")
        clock.lap("write DICOM SEG (7 segments)")
        del ct, masks, ict, fct, fmasks
        write_phantom_case(out / "case", seed=0, size=size, spacing_mm=spacing)
        clock.lap("whole case (write_phantom_case)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MB ({peak / (nvox * 2 / 1e6):.1f}x one int16 volume)")


if __name__ == "__main__":
    main()
