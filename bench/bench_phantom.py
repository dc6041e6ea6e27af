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


def main() -> None:
    size = tuple(int(v) for v in sys.argv[1].split(",")) if len(sys.argv) > 1 else None
    spacing = tuple(float(v) for v in sys.argv[2].split(",")) if len(sys.argv) > 2 else None
    grid = ph.phantom_grid("axial", size, spacing)
    nvox = grid.array.size
    print(f"grid {grid.size_xyz} spacing {grid.spacing_mm.tolist()} mm: {nvox / 1e6:.1f} M voxels")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        truth = ph.make_truth(0)
        t1 = time.perf_counter()
        ct, masks, ict = ph.make_planning_and_intraop(grid, truth, 0)
        t2 = time.perf_counter()
        fct, fmasks = ph.make_followup(ph.followup_grid(grid), truth, 0)
        t3 = time.perf_counter()
        paths = write_ct_series(ct, out / "planning")
        t4 = time.perf_counter()
        write_ct_series(ct, out / "planning_rle", transfer_syntax="rle")
        t5 = time.perf_counter()
        for key, m in masks.items():
            write_mask(m, out / f"{key}.nii.gz")
        t6 = time.perf_counter()
        write_seg(masks, read_series_headers(paths), out / "seg.dcm")
        t7 = time.perf_counter()
        mb = ct.array.nbytes / 1e6
        print(f"truth (needle path search, exact MAM/coverage): {t1 - t0:6.2f} s")
        print(f"planning + intra-op CT and 7 masks:            {t2 - t1:6.2f} s")
        print(f"follow-up CT (deformed) and 2 masks:           {t3 - t2:6.2f} s")
        print(f"write CT series, uncompressed ({mb:.0f} MB):     {t4 - t3:6.2f} s "
              f"({mb / (t4 - t3):.0f} MB/s)")
        print(f"write CT series, RLE lossless:                 {t5 - t4:6.2f} s")
        print(f"write 7 NIfTI masks (gzip):                    {t6 - t5:6.2f} s")
        print(f"write DICOM SEG (7 segments):                  {t7 - t6:6.2f} s")
        del ct, masks, ict, fct, fmasks
        t8 = time.perf_counter()
        write_phantom_case(out / "case", seed=0, size=size, spacing_mm=spacing)
        t9 = time.perf_counter()
        print(f"whole case (write_phantom_case):               {t9 - t8:6.2f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory {peak:.0f} MB ({peak / (nvox * 2 / 1e6):.1f}x one int16 volume)")


if __name__ == "__main__":
    main()
