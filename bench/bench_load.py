"""Benchmark: load a 512 x 512 x 300 CT series with IRPlan and with bare SimpleITK.

Prints the median wall time of each loader (same process, alternating order, repeated),
their ratio, and the peak memory of each loader measured in its own subprocess
(ru_maxrss growth during the load) against the size of the volume.
Targets (issue 2): IRPlan <= 1.3 x SimpleITK ImageSeriesReader; peak < 2.5 x volume.

    .venv/bin/python bench/bench_load.py [--slices 300] [--size 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_hu(size: int, slices: int, seed: int = 0) -> np.ndarray:
    """A body-like int16 HU volume [k, j, i]: air, soft tissue ellipse, bright spine, noise."""
    rng = np.random.default_rng(seed)
    j, i = np.mgrid[0:size, 0:size]
    c = size / 2
    body = ((i - c) / (0.42 * size)) ** 2 + ((j - c) / (0.32 * size)) ** 2 <= 1
    spine = (i - c) ** 2 + (j - 0.7 * size) ** 2 <= (0.05 * size) ** 2
    base = np.where(body, 40, -1000).astype(np.int16)
    base[spine] = 700
    vol = np.empty((slices, size, size), dtype=np.int16)
    for k in range(slices):
        vol[k] = base + rng.normal(0, 12, (size, size)).astype(np.int16)
    return vol


def write_series_pydicom(hu: np.ndarray, folder: Path, spacing_mm=(0.75, 0.75, 1.0)) -> None:
    """Plain CT series (stored = HU + 1024, slope 1, intercept -1024), one file per slice."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(hu.shape[0]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"ct_{k:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.PatientName, ds.PatientID = "Bench^Load", "BENCH"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-192.0, -192.0, -150.0 + k * spacing_mm[2]]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing_mm[1], spacing_mm[0]]
        ds.SliceThickness = spacing_mm[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.PixelData = (hu[k].astype(np.int32) + 1024).astype("<i2").tobytes()
        ds.save_as(path, enforce_file_format=True)


def write_series(hu: np.ndarray, folder: Path) -> str:
    """Write with irplan.io.dicom_write.write_ct_series when available, else pydicom."""
    try:
        from irplan.io.dicom_write import write_ct_series  # type: ignore[attr-defined]
        from irplan.planning.volume import Volume

        vol = Volume(hu, np.array([-192.0, -192.0, -150.0]), np.array([0.75, 0.75, 1.0]))
        write_ct_series(vol, folder)
        if any(folder.rglob("*")):
            return "irplan.io.dicom_write.write_ct_series"
    except (ImportError, TypeError) as exc:
        print(f"(write_ct_series not usable here: {type(exc).__name__}: {exc}; "
              f"writing with pydicom)")
    write_series_pydicom(hu, folder)
    return "pydicom (bench writer)"


def compress_series(folder: Path, codec: str) -> None:
    import pydicom
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

    uid = {"rle": RLELossless, "jpegls": JPEGLSLossless, "jpeg2000": JPEG2000Lossless}[codec]
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            ds = pydicom.dcmread(f)
            ds.compress(uid)
            ds.save_as(f)


# ------------------------------------------------------------------ loaders
def load_irplan(folder: str) -> np.ndarray:
    from irplan.io.dicom_load import load_series
    from irplan.io.dicom_scan import scan_dicom

    info = scan_dicom(folder).ct_candidates()[0]
    return load_series(info).array


class _SitkArray:
    """A SimpleITK image kept alive with a zero-copy numpy view of its buffer."""

    def __init__(self, image) -> None:
        import SimpleITK as sitk

        self.image = image
        self.array = sitk.GetArrayViewFromImage(image)
        self.nbytes = self.array.nbytes


def load_sitk(folder: str) -> _SitkArray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    return _SitkArray(reader.Execute())


LOADERS: dict = {"irplan": load_irplan, "sitk": load_sitk}


def _timed_stages(name: str, folder: str) -> list[tuple[str, float, float]]:
    """Run one loader; (stage, wall s, CPU s) for its file-finding and pixel-reading parts."""
    out = []

    def clock() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    if name == "irplan":
        from irplan.io.dicom_load import load_series
        from irplan.io.dicom_scan import scan_dicom

        w0, c0 = clock()
        info = scan_dicom(folder).ct_candidates()[0]
        w1, c1 = clock()
        arr = load_series(info).array
        w2, c2 = clock()
        out = [("irplan scan", w1 - w0, c1 - c0), ("irplan load", w2 - w1, c2 - c1)]
    else:
        import SimpleITK as sitk

        w0, c0 = clock()
        reader = sitk.ImageSeriesReader()
        names = reader.GetGDCMSeriesFileNames(folder)
        w1, c1 = clock()
        reader.SetFileNames(names)
        arr = reader.Execute()
        w2, c2 = clock()
        out = [("sitk names", w1 - w0, c1 - c0), ("sitk read", w2 - w1, c2 - c1)]
    del arr
    return out


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(loader: str, folder: str) -> None:
    """Run one loader in a fresh process; print JSON with time and peak RSS growth.

    Peak = VmHWM (kernel high-water mark of resident memory) after the load minus VmRSS
    before it; the mark is reset after imports by writing 5 to /proc/self/clear_refs."""
    import SimpleITK  # noqa: F401 - import everything first so the baseline includes it

    import irplan.io.dicom_load  # noqa: F401

    Path("/proc/self/clear_refs").write_text("5")
    base_kb = _status_kb("VmRSS")
    t = time.perf_counter()
    arr = LOADERS[loader](folder)
    dt = time.perf_counter() - t
    peak_kb = _status_kb("VmHWM")
    print(json.dumps({"seconds": dt, "peak_growth_bytes": (peak_kb - base_kb) * 1024,
                      "nbytes": int(arr.nbytes)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--codec", choices=["none", "rle", "jpegls", "jpeg2000"], default="none",
                    help="re-encode the written series with this lossless codec (pydicom)")
    ap.add_argument("--child", nargs=2, metavar=("LOADER", "FOLDER"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="irplan_bench_") as tmp:
        folder = Path(tmp) / "ct"
        hu = synthetic_hu(args.size, args.slices)
        t = time.perf_counter()
        how = write_series(hu, folder)
        print(f"wrote {args.size}x{args.size}x{args.slices} series with {how} in "
              f"{time.perf_counter() - t:.1f} s ({hu.nbytes / 2**20:.0f} MiB as int16)")
        if args.codec != "none":
            t = time.perf_counter()
            compress_series(folder, args.codec)
            print(f"re-encoded as {args.codec} in {time.perf_counter() - t:.1f} s")
        # correctness first: both loaders give the same HU array
        a, b = load_irplan(str(folder)), load_sitk(str(folder))
        same = a.shape == b.array.shape and np.array_equal(a, b.array)
        print(f"arrays identical: {same} (IRPlan {a.dtype}, SimpleITK {b.array.dtype})")
        del a, b
        # wall and CPU time per stage; the machine may be shared, so CPU time is the
        # steadier figure and the minimum the least disturbed run
        stages = ["irplan scan", "irplan load", "sitk names", "sitk read"]
        wall: dict[str, list[float]] = {k: [] for k in stages}
        cpu: dict[str, list[float]] = {k: [] for k in stages}
        for r in range(args.repeat):
            order = ["irplan", "sitk"] if r % 2 == 0 else ["sitk", "irplan"]
            for name in order:
                for stage, seconds, cpu_s in _timed_stages(name, str(folder)):
                    wall[stage].append(seconds)
                    cpu[stage].append(cpu_s)
        print(f"{'stage':14s} {'wall median':>12s} {'wall min':>9s} {'cpu median':>11s}")
        for st in stages:
            print(f"{st:14s} {statistics.median(wall[st]):11.3f}s {min(wall[st]):8.3f}s "
                  f"{statistics.median(cpu[st]):10.3f}s")
        for label, d in (("wall", wall), ("cpu", cpu)):
            tot_i = [a + b for a, b in zip(d["irplan scan"], d["irplan load"])]
            tot_s = [a + b for a, b in zip(d["sitk names"], d["sitk read"])]
            mi, ms = statistics.median(tot_i), statistics.median(tot_s)
            li, ls = statistics.median(d["irplan load"]), statistics.median(d["sitk read"])
            print(f"{label:4s} median: IRPlan scan+load {mi:.3f} s vs SimpleITK names+read "
                  f"{ms:.3f} s -> ratio {mi / ms:.2f} (target <= 1.30); pixel load only "
                  f"{li:.3f} vs {ls:.3f} s -> {li / ls:.2f}")
        for name in ("irplan", "sitk"):
            res = subprocess.run([sys.executable, __file__, "--child", name, str(folder)],
                                 capture_output=True, text=True, check=True)
            m = json.loads(res.stdout.strip().splitlines()[-1])
            ratio = m["peak_growth_bytes"] / m["nbytes"]
            print(f"peak memory {name:6s}: +{m['peak_growth_bytes'] / 2**20:.0f} MiB during "
                  f"load = {ratio:.2f} x volume ({m['nbytes'] / 2**20:.0f} MiB); "
                  f"fresh-process time {m['seconds']:.3f} s"
                  + ("  (target < 2.5)" if name == "irplan" else ""))


if __name__ == "__main__":
    main()
