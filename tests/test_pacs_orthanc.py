"""End-to-end PACS exchange against a real Orthanc server on loopback (127.0.0.1 only).

Upload the phantom planning CT (C-STORE), query it (C-FIND by patient ID, name, date,
accession), retrieve it (C-GET and C-MOVE) and compare pixel data with the originals,
send exports back (SEG + Encapsulated PDF) and find them; then the failures a user meets:
server stopped, wrong port, wrong called AE title, a hung server (timeout) — each a clear
message, and no file lost.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orthanc_server import ORTHANC_BIN, OrthancServer  # noqa: E402

from irplan.io import pacs  # noqa: E402
from irplan.planning.errors import InputError  # noqa: E402

pytestmark = [
    pytest.mark.pacs,
    pytest.mark.skipif(not ORTHANC_BIN.exists(),
                       reason="Orthanc is not installed (/usr/sbin/Orthanc; "
                              "packaging/test.sh installs it on Debian as root)"),
]

TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    server = OrthancServer(tmp_path_factory.mktemp("orthanc")).start()
    yield server
    server.stop()


def _kw(server: OrthancServer) -> dict:
    return {"calling_aet": server.client_aet, "timeout_s": TIMEOUT_S}


def _node(server: OrthancServer) -> pacs.PacsNode:
    return pacs.PacsNode(server.aet, "127.0.0.1", server.dicom_port)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def planning_series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The phantom's planning CT files (irplan.io.phantom_writer), on a coarse grid
    (128 x 128 x 64 voxels) to keep the network round trips short."""
    from irplan.io.phantom_writer import write_phantom_case

    out = tmp_path_factory.mktemp("phantom_pacs") / "case"
    write_phantom_case(out, seed=0, size=(128, 128, 64), spacing_mm=(3.0, 3.0, 4.0))
    files = sorted(p for p in (out / "planning").rglob("*") if p.is_file())
    assert files
    # the phantom study has no accession number; give this copy one to query by
    for p in files:
        ds = dcmread(p)
        if not ds.get("AccessionNumber"):
            ds.AccessionNumber = "IRPLANACC1"
            ds.save_as(p)
    return files


@pytest.fixture(scope="module")
def uploaded(orthanc: OrthancServer, planning_series: list[Path]) -> dict:
    res = pacs.store(_node(orthanc), planning_series, **_kw(orthanc))
    assert len(res.sent) == len(planning_series) and not res.failed
    ds = dcmread(planning_series[0], stop_before_pixels=True)
    return {"ds": ds, "files": planning_series}


def test_echo_answers_quickly(orthanc: OrthancServer) -> None:
    rtt_s = pacs.echo(_node(orthanc), **_kw(orthanc))
    assert 0 < rtt_s < TIMEOUT_S


def test_uploaded_series_is_in_orthanc(orthanc: OrthancServer, uploaded: dict) -> None:
    series = orthanc.http_get("/series?expand")
    uids = {s["MainDicomTags"]["SeriesInstanceUID"]: s for s in series}
    ds = uploaded["ds"]
    assert str(ds.SeriesInstanceUID) in uids
    assert len(uids[str(ds.SeriesInstanceUID)]["Instances"]) == len(uploaded["files"])


@pytest.mark.parametrize("key", ["patient_id", "patient_name", "study_date", "accession"])
def test_find_study_by_each_key(orthanc: OrthancServer, uploaded: dict, key: str) -> None:
    ds = uploaded["ds"]
    value = {"patient_id": str(ds.PatientID), "patient_name": str(ds.PatientName),
             "study_date": str(ds.StudyDate), "accession": str(ds.AccessionNumber)}[key]
    if not value:
        pytest.skip(f"the phantom has no {key}")
    studies = pacs.find_studies(_node(orthanc), **{key: value}, **_kw(orthanc))
    assert [s.study_uid for s in studies] == [str(ds.StudyInstanceUID)]
    st = studies[0]
    assert st.patient_id == str(ds.PatientID)
    assert st.n_instances is not None and st.n_instances >= len(uploaded["files"])


def test_find_with_wildcard_and_no_match(orthanc: OrthancServer, uploaded: dict) -> None:
    ds = uploaded["ds"]
    prefix = str(ds.PatientName)[:3] + "*"
    assert any(s.study_uid == ds.StudyInstanceUID
               for s in pacs.find_studies(_node(orthanc), patient_name=prefix, **_kw(orthanc)))
    assert pacs.find_studies(_node(orthanc), patient_id="NO-SUCH-PATIENT", **_kw(orthanc)) == []
    with pytest.raises(InputError, match="YYYYMMDD"):
        pacs.find_studies(_node(orthanc), study_date="1.1.2024", **_kw(orthanc))


def test_find_series_of_study(orthanc: OrthancServer, uploaded: dict) -> None:
    ds = uploaded["ds"]
    series = pacs.find_series(_node(orthanc), str(ds.StudyInstanceUID), **_kw(orthanc))
    match = [s for s in series if s.series_uid == ds.SeriesInstanceUID]
    assert match and match[0].modality == "CT"
    assert match[0].n_instances == len(uploaded["files"])


def _pixels_by_sop(paths: list[Path]) -> dict[str, np.ndarray]:
    out = {}
    for p in paths:
        d = dcmread(p)
        out[str(d.SOPInstanceUID)] = d.pixel_array
    return out


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieve_gives_identical_pixels(orthanc: OrthancServer, uploaded: dict,
                                         tmp_path: Path, method: str) -> None:
    ds = uploaded["ds"]
    kwargs = {"move_port": orthanc.client_port, "move_bind_host": "127.0.0.1"} \
        if method == "move" else {}
    res = pacs.retrieve(_node(orthanc), tmp_path / "in", study_uid=str(ds.StudyInstanceUID),
                        series_uid=str(ds.SeriesInstanceUID), method=method,
                        **_kw(orthanc), **kwargs)
    assert len(res.files) == len(uploaded["files"]) and res.failed == 0
    got = _pixels_by_sop(res.files)
    want = _pixels_by_sop(uploaded["files"])
    assert got.keys() == want.keys()
    for sop, arr in want.items():
        assert np.array_equal(got[sop], arr), sop


def test_store_exports_back_and_find_them(orthanc: OrthancServer, uploaded: dict,
                                          tmp_path: Path) -> None:
    from irplan.io.dicom_export import (
        export_encapsulated_pdf,
        export_seg,
        load_source_series,
    )

    src = load_source_series(uploaded["files"][0].parent)
    mask = np.zeros(src.volume.array.shape, np.uint8)
    k, j, i = (np.asarray(mask.shape) // 2)
    mask[k - 1:k + 2, j - 3:j + 4, i - 3:i + 4] = 1
    seg = export_seg(src, {"tumor": src.volume.with_array(mask)}, tmp_path / "seg.dcm")
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    enc = export_encapsulated_pdf(src, pdf, tmp_path / "pdf.dcm")
    res = pacs.store(_node(orthanc), [seg, enc], **_kw(orthanc))
    assert res.sent == [seg, enc]
    series = pacs.find_series(_node(orthanc), str(uploaded["ds"].StudyInstanceUID),
                              **_kw(orthanc))
    mods = {s.series_uid: s.modality for s in series}
    assert mods[str(dcmread(seg).SeriesInstanceUID)] == "SEG"
    assert mods[str(dcmread(enc).SeriesInstanceUID)] == "DOC"
    study = pacs.find_studies(_node(orthanc), patient_id=str(uploaded["ds"].PatientID),
                              **_kw(orthanc))[0]
    assert {"CT", "SEG", "DOC"} <= set(study.modalities.split("\\"))


# ------------------------------------------------------------------ failures
def test_retrieve_unknown_study_says_so(orthanc: OrthancServer, tmp_path: Path) -> None:
    with pytest.raises(pacs.PacsError, match=r"C-GET of study 1\.2\.3\.999.*is the UID on "
                                             r"this server"):
        pacs.retrieve(_node(orthanc), tmp_path / "x", study_uid="1.2.3.999", **_kw(orthanc))



def test_wrong_called_ae_title_is_rejected_clearly(orthanc: OrthancServer) -> None:
    bad = pacs.PacsNode("NOTORTHANC", "127.0.0.1", orthanc.dicom_port)
    with pytest.raises(pacs.PacsError) as ei:
        pacs.echo(bad, **_kw(orthanc))
    msg = str(ei.value)
    assert "NOTORTHANC@127.0.0.1" in msg and "rejected" in msg
    assert "Called AE title not recognised" in msg


def test_wrong_port_is_connection_refused(orthanc: OrthancServer, tmp_path: Path) -> None:
    from orthanc_server import free_port

    port = free_port()
    node = pacs.PacsNode(orthanc.aet, "127.0.0.1", port)
    with pytest.raises(pacs.PacsError, match=f"127.0.0.1:{port}.*connection refused"):
        pacs.echo(node, **_kw(orthanc))


def test_hung_server_times_out_and_keeps_files(orthanc: OrthancServer, uploaded: dict) -> None:
    files = uploaded["files"][:3]
    before = [_sha(p) for p in files]
    orthanc.pause()
    try:
        with pytest.raises(pacs.PacsError, match=r"did not answer .* within 2 s"):
            pacs.echo(_node(orthanc), calling_aet=orthanc.client_aet, timeout_s=2)
        with pytest.raises(pacs.PacsError) as ei:
            pacs.store(_node(orthanc), files, calling_aet=orthanc.client_aet, timeout_s=2)
    finally:
        orthanc.resume()
    assert set(ei.value.failed) == set(files) and ei.value.sent == []
    assert "kept" in str(ei.value)
    assert [_sha(p) for p in files] == before


def test_non_dicom_service_that_hangs_up_is_reported(tmp_path: Path) -> None:
    """A service on the port that accepts the connection and closes it at once (e.g. a
    web server, or a DICOM server dropping unknown callers): "aborted", no traceback."""
    import socket
    import threading

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        node = pacs.PacsNode("ANY", "127.0.0.1", srv.getsockname()[1])
        with pytest.raises(pacs.PacsError, match=r"ANY@127\.0\.0\.1:\d+: .*aborted"):
            pacs.echo(node, calling_aet="IRPLANTEST", timeout_s=3)
    finally:
        stop.set()
        t.join(timeout=2)
        srv.close()


def test_unknown_calling_ae_cannot_query(orthanc: OrthancServer) -> None:
    with pytest.raises(pacs.PacsError, match="STRANGER"):
        pacs.find_studies(_node(orthanc), patient_id="*", calling_aet="STRANGER",
                          timeout_s=TIMEOUT_S)


def test_partial_store_says_which_failed(orthanc: OrthancServer, uploaded: dict,
                                         tmp_path: Path) -> None:
    junk = tmp_path / "notes.dcm"
    junk.write_text("not dicom")
    good = uploaded["files"][:2]
    with pytest.raises(pacs.PacsError, match=r"1 of 3 files were not stored.*notes\.dcm"
                       ) as ei:
        pacs.store(_node(orthanc), [*good, junk], **_kw(orthanc))
    assert ei.value.sent == good and list(ei.value.failed) == [junk]
    assert junk.read_text() == "not dicom"


def test_stopped_server_gives_clear_message_and_loses_nothing(
        tmp_path: Path, uploaded: dict) -> None:
    server = OrthancServer(tmp_path / "o2").start()
    node = _node(server)
    pacs.echo(node, **_kw(server))
    server.stop()
    files = uploaded["files"][:2]
    before = [_sha(p) for p in files]
    with pytest.raises(pacs.PacsError, match="connection refused.*is the server running"):
        pacs.echo(node, **_kw(server))
    with pytest.raises(pacs.PacsError, match="Nothing was sent") as ei:
        pacs.store(node, files, **_kw(server))
    assert set(ei.value.failed) == set(files)
    assert [_sha(p) for p in files] == before


# ------------------------------------------------------------------ node config
def test_nodes_saved_as_json_in_config_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("IRPLAN_CONFIG_DIR", str(tmp_path / "cfg"))
    node = pacs.PacsNode.parse("PACS1@127.0.0.1:4242")
    path = pacs.save_node("main", node)
    assert path == tmp_path / "cfg" / "pacs_nodes.json"
    assert pacs.load_nodes() == {"main": node}
    assert pacs.resolve_node("main") == node
    assert pacs.remove_node("main") and pacs.load_nodes() == {}
    for bad in ("PACS1@host", "@h:1", "A@h:70000", "TOOLONGAETITLE1234@h:1"):
        with pytest.raises(InputError):
            pacs.PacsNode.parse(bad)
    path.write_text("{nope")
    with pytest.raises(InputError, match="pacs_nodes.json"):
        pacs.load_nodes()


# ------------------------------------------------------------------ command line
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "irplan.app.cli", "pacs", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_echo_find_send_and_errors(orthanc: OrthancServer, uploaded: dict,
                                       tmp_path: Path) -> None:
    node = f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"
    aet = ["--aet", orthanc.client_aet, "--timeout", "5"]
    res = _cli("echo", "--node", node, *aet)
    assert res.returncode == 0 and "C-ECHO ok" in res.stdout, res.stderr
    ds = uploaded["ds"]
    res = _cli("find", "--node", node, *aet, "--patient-id", str(ds.PatientID))
    assert res.returncode == 0 and str(ds.StudyInstanceUID) in res.stdout
    res = _cli("nodes", "add", "test", node)
    assert res.returncode == 0
    res = _cli("find", "--node", "test", *aet, "--study", str(ds.StudyInstanceUID))
    assert str(ds.SeriesInstanceUID) in res.stdout and "CT" in res.stdout
    res = _cli("echo", "--node", f"WRONGAE@127.0.0.1:{orthanc.dicom_port}", *aet)
    assert res.returncode == 2 and "rejected" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = _cli("get", "--node", node, *aet, "--study", str(ds.StudyInstanceUID),
               "--series", str(ds.SeriesInstanceUID), "--out", str(tmp_path / "got"))
    assert res.returncode == 0 and f"retrieved {len(uploaded['files'])} files" in res.stdout
    from orthanc_server import free_port

    closed = f"{orthanc.aet}@127.0.0.1:{free_port()}"
    files = [str(p) for p in uploaded["files"][:2]]
    res = _cli("send", "--node", closed, *aet, *files)
    assert res.returncode == 2 and "connection refused" in res.stderr
    assert res.stderr.count("not sent (kept)") == 2
