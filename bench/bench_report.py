"""Time the report / export / PACS pipeline on the phantom case and print the figures.

    .venv/bin/python bench/bench_report.py [--size 256,256,128] [--orthanc]

Stages: plan + CT + masks load, zone prediction + margin, safety checks, each picture,
PDF layout, SEG export; with ``--orthanc`` (needs /usr/sbin/Orthanc; loopback only) the
C-STORE / C-FIND / C-GET / C-MOVE round trip of the planning series.
Wall-clock seconds (the machine may be shared: compare CPU time too).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def _t(label: str, fn, *a, **k):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*a, **k)
    print(f"{label:34s} {time.perf_counter() - w0:7.2f} s wall  "
          f"{time.process_time() - c0:7.2f} s cpu")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="256,256,128")
    ap.add_argument("--orthanc", action="store_true")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split(","))
    from irplan.app.cmd_report import make_pictures
    from irplan.io.dicom_export import export_seg, load_source_series
    from irplan.io.phantom_writer import write_phantom_case
    from irplan.io.report_content import build_report_content, load_case
    from irplan.io.report_pdf import write_report_pdf

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spacing = tuple(s0 * 256 / s if i < 2 else 2.0 * 128 / s
                        for i, (s0, s) in enumerate(zip((1.5, 1.5, 2.0), size)))
        case_dir = _t("phantom write", write_phantom_case, root / "case", 0, size=size,
                      spacing_mm=spacing)
        plan = case_dir / "plan.irplan.json"
        case = _t("load plan+CT+masks", load_case, plan, compute=False)
        from irplan.io.report_content import _predict_zone, _run_safety

        _t("zone + margin", _predict_zone, case)
        case.findings = _t("safety checks", _run_safety, case)
        pics, status, _ = _t("pictures (all)", make_pictures, case, root / "pics")
        print(f"  {len(pics)} pictures {status}")
        rc = build_report_content(case, pictures=pics)
        pdf = _t("PDF layout", write_report_pdf, rc, root / "r.pdf")
        print(f"  PDF {pdf.stat().st_size / 1e6:.2f} MB")
        src = _t("source series read", load_source_series, case_dir / "planning")
        masks = dict(case.structures)
        if case.zone is not None:
            masks["predicted_zone"] = case.zone
        seg = _t("SEG export", export_seg, src, masks, root / "seg.dcm")
        print(f"  SEG {seg.stat().st_size / 1e6:.2f} MB, {len(masks)} segments")
        if args.orthanc:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from orthanc_server import OrthancServer

            from irplan.io import pacs

            srv = _t("Orthanc start", OrthancServer(root / "orthanc").start)
            try:
                node = pacs.PacsNode(srv.aet, "127.0.0.1", srv.dicom_port)
                kw = {"calling_aet": srv.client_aet, "timeout_s": 10.0}
                _t("C-ECHO", pacs.echo, node, **kw)
                _t(f"C-STORE {len(src.files)} files", pacs.store, node, src.files, **kw)
                st = _t("C-FIND study", pacs.find_studies, node,
                        patient_id=str(src.first.PatientID), **kw)
                _t("C-GET series", pacs.retrieve, node, root / "get",
                   study_uid=st[0].study_uid, **kw)
                _t("C-MOVE series", pacs.retrieve, node, root / "move",
                   study_uid=st[0].study_uid, method="move", move_port=srv.client_port,
                   move_bind_host="127.0.0.1", **kw)
            finally:
                srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
