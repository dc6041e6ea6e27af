"""PACS security (issue 13, cause 3): what a hostile or careless peer can make IRPlan do.

- a C-GET peer (pynetdicom) that sends SeriesInstanceUID ".." / "../x" / "/abs" and SOP
  UIDs with path parts: every file lands inside ``--out`` under a UID-derived name;
- the C-MOVE receiver listens on loopback by default and refuses calling AE titles it
  was not told to accept (real Orthanc moving to it: accepted with the node's AE title,
  refused when the accepted list does not hold it);
- server text (error comments) reaches the terminal without escape sequences.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orthanc_server import ORTHANC_BIN, OrthancServer, free_port  # noqa: E402

from irplan.io import pacs  # noqa: E402
from irplan.planning.errors import InputError  # noqa: E402

HOSTILE_SERIES = ["..", "../x", "/tmp/irplan-evil", ".", "1.2.3/../../..", "\x1b[31m"]


def _ct(series_uid: str, sop_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1", series_uid
    ds.PatientID, ds.PatientName, ds.Modality = "X", "Evil^Peer", "CT"
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = b"\0" * 8
    return ds


def _peer(on_get):
    """A pynetdicom Q/R SCP on loopback answering C-GET with ``on_get``."""
    ae = AE(ae_title="EVILPACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
    for c in pacs.RETRIEVE_STORAGE_CLASSES:
        ae.add_supported_context(c, list(pacs.RETRIEVE_TRANSFER_SYNTAXES), scu_role=True,
                                 scp_role=True)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_GET, on_get)])
    return server, pacs.PacsNode("EVILPACS", "127.0.0.1", port)


@pytest.fixture()
def hostile_get_peer():
    """C-GET answered with objects whose UIDs are path-like."""
    dsets = [_ct(s, sop) for s, sop in zip(HOSTILE_SERIES,
                                           ["../../evil", "..", generate_uid(), "/etc/x",
                                            generate_uid(), generate_uid()])]

    def on_get(event):
        yield len(dsets)
        for ds in dsets:
            yield 0xFF00, ds

    server, node = _peer(on_get)
    yield node
    server.shutdown()


@pytest.fixture()
def escaping_get_peer():
    """C-GET refused with an error comment full of terminal escape sequences."""
    def on_get(event):
        yield 1
        status = Dataset()
        status.Status = 0xA701
        status.ErrorComment = "\x1b]0;pwned\x07\x1b[2Jgone"
        yield status, None

    server, node = _peer(on_get)
    yield node
    server.shutdown()


def test_hostile_uids_never_write_outside_out(hostile_get_peer, tmp_path: Path) -> None:
    out = tmp_path / "a" / "out"
    out.parent.mkdir()
    before = {p for p in tmp_path.rglob("*")}
    res = pacs.retrieve(hostile_get_peer, out, study_uid="1.2.3", timeout_s=5)
    assert len(res.files) == len(HOSTILE_SERIES)
    new = {p for p in tmp_path.rglob("*")} - before
    for p in new:                                 # everything new is inside out/
        assert p.resolve().is_relative_to(out.resolve()), p
    assert not Path("/tmp/irplan-evil").exists()
    for p in res.files:
        assert p.parent.parent == out and p.suffix == ".dcm"
        assert p.parent.name.startswith("invalid-uid-") or p.parent.name[0].isdigit()
        assert dcmread(p).Modality == "CT"


def test_server_error_comment_has_no_terminal_escapes(escaping_get_peer,
                                                      tmp_path: Path) -> None:
    with pytest.raises(pacs.PacsError) as exc:
        pacs.retrieve(escaping_get_peer, tmp_path / "o", study_uid="1.2.3", timeout_s=5)
    msg = str(exc.value)
    assert "gone" in msg and "\x1b" not in msg and "\x07" not in msg
    node = f"EVILPACS@127.0.0.1:{escaping_get_peer.port}"
    res = subprocess.run([sys.executable, "-m", "irplan.app.cli", "pacs", "get", "--node",
                          node, "--study", "1.2.3", "--out", str(tmp_path / "c"),
                          "--timeout", "5"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "gone" in res.stderr and "\x1b" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_uid_file_name() -> None:
    assert pacs.uid_file_name("1.2.840.10008.5.1") == "1.2.840.10008.5.1"
    for bad in ("..", ".", "", None, "../x", "1..2", "1.2.", "a.b", "1" * 65, "1.2/3"):
        name = pacs.uid_file_name(bad)
        assert name.startswith("invalid-uid-") and "/" not in name and ".." not in name


def _listening(port: int) -> list[str]:
    """Local addresses with a TCP socket listening on ``port`` (from ss)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                         text=True).stdout
    return [line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()]


def test_move_receiver_binds_loopback_and_accepts_configured_aes(tmp_path: Path) -> None:
    port = free_port()
    server, saver = pacs.start_move_receiver(tmp_path / "in", "IRPLAN", port=port,
                                             accept_aets=["GOODPACS"], timeout_s=5)
    try:
        assert server.server_address[0] == "127.0.0.1"
        try:
            addrs = _listening(port)
        except FileNotFoundError:
            addrs = ["127.0.0.1"]
        assert addrs and all(a in ("127.0.0.1", "[::ffff:127.0.0.1]") for a in addrs)
        ds = _ct(generate_uid(), generate_uid())

        def send(calling: str) -> bool:
            ae = AE(ae_title=calling)
            ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
            assoc = ae.associate("127.0.0.1", port, ae_title="IRPLAN")
            if not assoc.is_established:
                return False
            status = assoc.send_c_store(ds)
            assoc.release()
            return int(status.Status) == 0

        assert not send("EVILPACS")           # not on the list: association rejected
        assert saver.files == []
        assert send("GOODPACS")
        assert len(saver.files) == 1
    finally:
        server.shutdown()
    with pytest.raises(InputError, match="accept"):
        pacs.start_move_receiver(tmp_path, "IRPLAN", port=port, accept_aets=[])


def test_printable_strips_terminal_escapes() -> None:
    assert pacs.printable("a\x1b[2Jb\x07c\u202ed\x9b") == "a?[2Jb?c?d?"
    assert len(pacs.printable("x" * 10000)) < 600


# ------------------------------------------------------------------ real Orthanc
_no_orthanc = pytest.mark.skipif(not ORTHANC_BIN.exists(),
                                 reason="Orthanc is not installed (/usr/sbin/Orthanc)")


def needs_orthanc(fn):
    """Marks a test that uses the real Orthanc server (marker ``pacs``)."""
    return pytest.mark.pacs(_no_orthanc(fn))


@pytest.fixture(scope="module")
def orthanc_with_ct(tmp_path_factory: pytest.TempPathFactory):
    if not ORTHANC_BIN.exists():
        pytest.skip("Orthanc is not installed")
    server = OrthancServer(tmp_path_factory.mktemp("orthanc_sec"),
                           client_port=free_port()).start()
    import numpy as np

    from irplan.io.dicom_write import write_ct_series
    from irplan.planning.volume import Volume

    vol = Volume(np.zeros((3, 8, 8), np.float32), np.zeros(3), np.ones(3))
    files = write_ct_series(vol, tmp_path_factory.mktemp("ct"), patient_id="SEC1",
                            study_description="evil\x1b]0;pwned\x07\x1b[2Jdesc")
    node = pacs.PacsNode(server.aet, "127.0.0.1", server.dicom_port)
    pacs.store(node, files, calling_aet=server.client_aet, timeout_s=5)
    yield server, node, dcmread(files[0], stop_before_pixels=True)
    server.stop()


@needs_orthanc
def test_orthanc_move_accepted_only_from_configured_ae(orthanc_with_ct, tmp_path: Path) -> None:
    server, node, ds = orthanc_with_ct
    kw = {"study_uid": str(ds.StudyInstanceUID), "series_uid": str(ds.SeriesInstanceUID),
          "method": "move", "calling_aet": server.client_aet, "timeout_s": 5,
          "move_port": server.client_port}
    res = pacs.retrieve(node, tmp_path / "ok", **kw)          # default: the node's AE
    assert len(res.files) == 3
    with pytest.raises(pacs.PacsError, match="failed") as exc:
        pacs.retrieve(node, tmp_path / "refused", move_accept_aets=["SOMEONEELSE"], **kw)
    assert exc.value.received == []
    assert not any((tmp_path / "refused").rglob("*.dcm"))


@needs_orthanc
def test_cli_get_move_defaults_to_loopback(orthanc_with_ct, tmp_path: Path) -> None:
    server, node, ds = orthanc_with_ct
    res = subprocess.run(
        [sys.executable, "-m", "irplan.app.cli", "pacs", "get", "--node",
         f"{server.aet}@127.0.0.1:{server.dicom_port}", "--aet", server.client_aet,
         "--timeout", "5", "--study", str(ds.StudyInstanceUID), "--move", "--port",
         str(server.client_port), "--accept-ae", "NOTORTHANC", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.stderr


@needs_orthanc
def test_cli_find_prints_server_text_without_escapes(orthanc_with_ct) -> None:
    server, node, ds = orthanc_with_ct
    res = subprocess.run(
        [sys.executable, "-m", "irplan.app.cli", "pacs", "find", "--node",
         f"{server.aet}@127.0.0.1:{server.dicom_port}", "--aet", server.client_aet,
         "--timeout", "5", "--patient-id", "SEC1"], capture_output=True, text=True,
        timeout=120)
    assert res.returncode == 0, res.stderr
    assert str(ds.StudyInstanceUID) in res.stdout and "desc" in res.stdout
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout
