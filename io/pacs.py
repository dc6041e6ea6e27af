"""PACS exchange over DICOM networking (pynetdicom): echo, query, retrieve, send.

* :class:`PacsNode` — a remote DICOM node (AE title, host, port); nodes are saved by name
  in ``$IRPLAN_CONFIG_DIR/pacs_nodes.json`` (default ``~/.config/irplan``).
* :func:`echo` (C-ECHO), :func:`find_studies` (C-FIND, STUDY level, Study Root),
  :func:`find_series` (C-FIND, SERIES level), :func:`retrieve` (C-GET with the storage
  SCP role in the same association, or C-MOVE to a storage SCP started here), and
  :func:`store` (C-STORE).

Security: received objects are written to ``<out>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``
only when both are syntactically valid UIDs (else a hash-derived name): a peer cannot
write outside ``out`` with a UID such as ``..``. The C-MOVE receiver listens on loopback
unless told otherwise and accepts associations only from the configured calling AE titles
(by default the node that was asked to move). Text sent by a server (error comments,
rejection reasons, descriptions) is shown without control or escape characters
(:func:`printable`).

Every network problem (connection refused, unknown host, no answer within the timeout,
association rejected e.g. for a wrong called AE title, association aborted, failure
statuses) raises :class:`PacsError` whose message names the node and the problem.
Nothing is lost: :func:`store` never moves or deletes the files it sends, and says which
files failed (``PacsError.failed``); :func:`retrieve` keeps every file received so far.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_role, evt
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (
    CTImageStorage,
    EncapsulatedPDFStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    UltrasoundImageStorage,
    Verification,
    XRayAngiographicImageStorage,
)
from pynetdicom.status import code_to_category

from irplan.planning.errors import InputError, IrplanError

DEFAULT_LOCAL_AE = "IRPLAN"
DEFAULT_TIMEOUT_S = 10.0
MAX_FIND_RESULTS = 1000

# Storage classes accepted when retrieving with C-GET (SCP role negotiated per class).
RETRIEVE_STORAGE_CLASSES = (
    CTImageStorage, EnhancedCTImageStorage, MRImageStorage, EnhancedMRImageStorage,
    SegmentationStorage, EncapsulatedPDFStorage, SecondaryCaptureImageStorage,
    RTStructureSetStorage, UltrasoundImageStorage, XRayAngiographicImageStorage,
    PositronEmissionTomographyImageStorage,
)
# Transfer syntaxes offered for received objects: uncompressed plus the common lossless
# and lossy compressions that pydicom/pylibjpeg decode (kept as received, never transcoded).
RETRIEVE_TRANSFER_SYNTAXES = (
    ExplicitVRLittleEndian, ImplicitVRLittleEndian,
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.5",     # RLE lossless
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
)

_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # printable ASCII without backslash
_UID_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)*$")
# C0/C1 controls, DEL, and the Unicode bidi/format characters that reorder terminal text
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
DEFAULT_MOVE_BIND = "127.0.0.1"


def printable(text: object, limit: int = 500) -> str:
    """Server-sent text made safe for a terminal: control and escape characters (ESC
    sequences, bidi overrides) become "?", and it is cut to ``limit`` characters."""
    s = _CONTROL_RE.sub("?", "" if text is None else str(text))
    return s if len(s) <= limit else s[:limit] + "..."


class PacsError(IrplanError):
    """A DICOM network operation failed; the message names the node and the problem.

    ``sent``/``failed``: for C-STORE, the files delivered and ``{path: reason}`` of those
    not delivered (still on disk). ``received``: for retrieval, files saved so far.
    """

    def __init__(self, message: str, *, sent: list[Path] | None = None,
                 failed: dict[Path, str] | None = None,
                 received: list[Path] | None = None) -> None:
        super().__init__(message)
        self.sent = list(sent or [])
        self.failed = dict(failed or {})
        self.received = list(received or [])


# --------------------------------------------------------------------------- nodes
@dataclass(frozen=True)
class PacsNode:
    """A remote DICOM application entity: called AE title, host name/address, TCP port."""

    ae_title: str
    host: str
    port: int

    def __post_init__(self) -> None:
        _check_ae(self.ae_title, "AE title")
        if not self.host or any(c.isspace() for c in self.host):
            raise InputError(f"PACS node host {self.host!r} is empty or contains spaces")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise InputError(f"PACS node port {self.port!r} must be an integer 1-65535")

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"

    @classmethod
    def parse(cls, spec: str) -> PacsNode:
        """Parse ``AE@host:port`` (e.g. ``ORTHANC@127.0.0.1:4242``)."""
        m = re.fullmatch(r"\s*([^@]+)@([^:@\s]+):(\d+)\s*", spec or "")
        if not m:
            raise InputError(f"PACS node {spec!r}: expected AE@host:port, "
                             "e.g. ORTHANC@127.0.0.1:4242")
        return cls(m.group(1), m.group(2), int(m.group(3)))


def _check_ae(value: str, what: str) -> None:
    if not isinstance(value, str) or not _AE_RE.match(value) or not value.strip():
        raise InputError(f"{what} {value!r} is not a valid DICOM AE title "
                         "(1-16 printable ASCII characters, no backslash)")


def config_dir() -> Path:
    """IRPlan's settings folder: ``$IRPLAN_CONFIG_DIR`` or ``~/.config/irplan``."""
    env = os.environ.get("IRPLAN_CONFIG_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "irplan"


def nodes_file() -> Path:
    return config_dir() / "pacs_nodes.json"


def load_nodes(path: str | Path | None = None) -> dict[str, PacsNode]:
    """The saved PACS nodes by name (empty when no file). Raises InputError if invalid."""
    p = Path(path) if path else nodes_file()
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: cannot read PACS node list ({exc})") from None
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, dict):
        raise InputError(f"{p}: expected an object with a 'nodes' object")
    out: dict[str, PacsNode] = {}
    for name, v in nodes.items():
        if not isinstance(v, dict):
            raise InputError(f"{p}: nodes.{name} must be an object with ae_title, host, port")
        try:
            out[name] = PacsNode(str(v["ae_title"]), str(v["host"]), v["port"])
        except KeyError as exc:
            raise InputError(f"{p}: nodes.{name} lacks field {exc.args[0]!r}") from None
        except InputError as exc:
            raise InputError(f"{p}: nodes.{name}: {exc}") from None
    return out


def save_node(name: str, node: PacsNode, path: str | Path | None = None) -> Path:
    """Add or replace a named node in the node list (atomic write). Returns the file."""
    if not name or not name.strip():
        raise InputError("PACS node name must not be empty")
    p = Path(path) if path else nodes_file()
    nodes = load_nodes(p)
    nodes[name] = node
    _write_nodes(p, nodes)
    return p


def remove_node(name: str, path: str | Path | None = None) -> bool:
    """Remove a named node; True when it existed."""
    p = Path(path) if path else nodes_file()
    nodes = load_nodes(p)
    if nodes.pop(name, None) is None:
        return False
    _write_nodes(p, nodes)
    return True


def _write_nodes(p: Path, nodes: dict[str, PacsNode]) -> None:
    from irplan.io.atomic_write import atomic_write_text

    atomic_write_text(p, json.dumps({"schema": 1, "nodes": {k: asdict(v)
                                                            for k, v in nodes.items()}},
                                    indent=2))


def resolve_node(spec: str | PacsNode) -> PacsNode:
    """A node from ``AE@host:port`` or from the name of a saved node."""
    if isinstance(spec, PacsNode):
        return spec
    if "@" in spec:
        return PacsNode.parse(spec)
    nodes = load_nodes()
    if spec in nodes:
        return nodes[spec]
    known = ", ".join(sorted(nodes)) or "none saved"
    raise InputError(f"PACS node {spec!r}: not AE@host:port and not a saved node "
                     f"(saved: {known}; file {nodes_file()})")


# --------------------------------------------------------------------------- results
@dataclass
class StudyInfo:
    """One study found by C-FIND (strings as the server sent them)."""

    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    accession: str = ""
    description: str = ""
    modalities: str = ""
    n_series: int | None = None
    n_instances: int | None = None


@dataclass
class SeriesInfo:
    """One series found by C-FIND."""

    series_uid: str
    study_uid: str
    modality: str = ""
    number: str = ""
    description: str = ""
    n_instances: int | None = None


@dataclass
class RetrieveResult:
    """Files saved by a retrieval and the server's sub-operation counts."""

    files: list[Path] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    warning: int = 0


@dataclass
class StoreResult:
    """C-STORE outcome: files delivered and ``{path: reason}`` of files not delivered."""

    sent: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- plumbing
class _Watch:
    """Collects what happened on an association (rejection reason, abort)."""

    def __init__(self) -> None:
        self.reject_reason = ""
        self.aborted = False

    def on_acse(self, event: Any) -> None:
        prim = event.primitive
        if getattr(prim, "result", None) in (0x01, 0x02):
            try:
                self.reject_reason = printable(
                    f"{prim.reason_str} ({prim.result_str}, {prim.source_str})")
            except Exception:  # noqa: BLE001 - a reason string is a nicety
                self.reject_reason = "rejected"

    def on_abort(self, event: Any) -> None:
        self.aborted = True

    def handlers(self) -> list[tuple[Any, Any]]:
        return [(evt.EVT_ACSE_RECV, self.on_acse), (evt.EVT_ABORTED, self.on_abort)]


def _make_ae(calling_aet: str, timeout_s: float) -> AE:
    _check_ae(calling_aet, "local (calling) AE title")
    if not 0 < timeout_s <= 600:
        raise InputError(f"network timeout {timeout_s!r} s: use a value in (0, 600] s")
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = timeout_s
    ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    return ae


def _diagnose(node: PacsNode, timeout_s: float, watch: _Watch, elapsed_s: float,
              calling_aet: str) -> str:
    """Why an association to ``node`` could not be established, in words."""
    if watch.reject_reason:
        return (f"PACS node {node} rejected the association: {watch.reject_reason}. "
                f"Check the node's AE title '{node.ae_title}' and that this computer's AE "
                f"title '{calling_aet}' is registered on the server")
    try:
        with socket.create_connection((node.host, node.port), timeout=min(timeout_s, 5.0)):
            pass
    except socket.gaierror:
        return f"PACS node {node}: unknown host '{node.host}'"
    except ConnectionRefusedError:
        return (f"PACS node {node}: connection refused — no DICOM server is listening on "
                f"{node.host}:{node.port} (is the server running and the port right?)")
    except TimeoutError:
        return (f"PACS node {node}: no answer from {node.host}:{node.port} within "
                f"{timeout_s:g} s (host down, firewall or wrong address)")
    except OSError as exc:
        return f"PACS node {node}: cannot connect ({exc.strerror or exc})"
    if elapsed_s >= timeout_s * 0.9:
        return (f"PACS node {node}: the server accepted the connection but did not answer "
                f"the association request within {timeout_s:g} s (server hung or busy)")
    return (f"PACS node {node}: the association was aborted by the server "
            "(is it a DICOM server on this port, and does it accept this AE title?)")


@contextmanager
def _associate(node: PacsNode, contexts: list[Any], calling_aet: str, timeout_s: float,
               roles: list[Any] | None = None,
               extra_handlers: list[tuple[Any, Any]] | None = None,
               ) -> Iterator[tuple[Any, _Watch]]:
    ae = _make_ae(calling_aet, timeout_s)
    ae.requested_contexts = contexts
    for attempt in range(2):
        watch = _Watch()
        t0 = time.monotonic()
        assoc = ae.associate(node.host, node.port, ae_title=node.ae_title,
                             ext_neg=roles or None,
                             evt_handlers=watch.handlers() + list(extra_handlers or []))
        elapsed = time.monotonic() - t0
        if assoc.is_established:
            break
        # A server that rejects and closes at once can lose the A-ASSOCIATE-RJ in a race
        # with the connection close; one more quick attempt usually reads the reason.
        if attempt == 0 and not watch.reject_reason and elapsed < 0.5 * timeout_s:
            continue
        ae.shutdown()
        raise PacsError(_diagnose(node, timeout_s, watch, elapsed, calling_aet))
    try:
        yield assoc, watch
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _lost(node: PacsNode, what: str, timeout_s: float, t0: float, calling_aet: str = "") -> str:
    if time.monotonic() - t0 >= timeout_s * 0.9:
        return (f"PACS node {node}: no response to {what} within {timeout_s:g} s; "
                "the association was aborted")
    hint = (f" (the server may not allow calling AE title '{calling_aet}' to do this)"
            if calling_aet else "")
    return f"PACS node {node}: the association was aborted during {what}{hint}"


def _status_text(status: Dataset) -> str:
    code = int(getattr(status, "Status", -1))
    comment = printable(getattr(status, "ErrorComment", "") or "", 200)
    return f"status 0x{code:04X} ({code_to_category(code)}{': ' + comment if comment else ''})"


# --------------------------------------------------------------------------- services
def echo(node: PacsNode | str, *, calling_aet: str = DEFAULT_LOCAL_AE,
         timeout_s: float = DEFAULT_TIMEOUT_S) -> float:
    """C-ECHO the node. Returns the round-trip time in seconds. Raises PacsError."""
    node = resolve_node(node)
    t0 = time.monotonic()
    with _associate(node, [build_context(Verification)], calling_aet, timeout_s) as (assoc, _w):
        t1 = time.monotonic()
        status = assoc.send_c_echo()
        if assoc.is_aborted or "Status" not in status:
            raise PacsError(_lost(node, "C-ECHO", timeout_s, t1))
        if int(status.Status) != 0:
            raise PacsError(f"PACS node {node}: C-ECHO failed with {_status_text(status)}")
    return time.monotonic() - t0


def _check_date(value: str) -> None:
    if not re.fullmatch(r"\d{8}(-\d{8})?|\d{8}-|-\d{8}", value):
        raise InputError(f"study date {value!r}: use YYYYMMDD or a range YYYYMMDD-YYYYMMDD")


def _find(node: PacsNode, query: Dataset, calling_aet: str, timeout_s: float,
          limit: int) -> list[Dataset]:
    ctx = [build_context(StudyRootQueryRetrieveInformationModelFind)]
    out: list[Dataset] = []
    with _associate(node, ctx, calling_aet, timeout_s) as (assoc, _w):
        t0 = time.monotonic()
        for status, ident in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            if "Status" not in status:
                raise PacsError(_lost(node, "C-FIND", timeout_s, t0, calling_aet))
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                if ident is not None:
                    out.append(ident)
                if len(out) >= limit:
                    break
                t0 = time.monotonic()
            elif code == 0x0000:
                break
            else:
                raise PacsError(f"PACS node {node}: C-FIND refused with {_status_text(status)} "
                                "(is this computer's AE title allowed to query?)")
        if assoc.is_aborted:
            raise PacsError(_lost(node, "C-FIND", timeout_s, t0, calling_aet))
    return out


def _multi(v: Any) -> str:
    """A possibly multi-valued string element as ``A\\B``."""
    if v is None or v == "":
        return ""
    if isinstance(v, str):
        return v
    return "\\".join(str(x) for x in v)


def _int_or_none(ds: Dataset, keyword: str) -> int | None:
    v = ds.get(keyword)
    try:
        return int(v) if v not in (None, "") else None
    except (TypeError, ValueError):
        return None


def find_studies(node: PacsNode | str, *, patient_id: str | None = None,
                 patient_name: str | None = None, study_date: str | None = None,
                 accession: str | None = None, calling_aet: str = DEFAULT_LOCAL_AE,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 limit: int = MAX_FIND_RESULTS) -> list[StudyInfo]:
    """C-FIND at STUDY level. Empty keys match anything; ``*``/``?`` wildcards allowed in
    names/IDs; ``study_date`` is ``YYYYMMDD`` or a range ``YYYYMMDD-YYYYMMDD``."""
    node = resolve_node(node)
    if study_date:
        _check_date(study_date)
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = ""
    q.PatientID = patient_id or ""
    q.PatientName = patient_name or ""
    q.StudyDate = study_date or ""
    q.AccessionNumber = accession or ""
    q.StudyDescription = ""
    q.ModalitiesInStudy = ""
    q.NumberOfStudyRelatedSeries = ""
    q.NumberOfStudyRelatedInstances = ""
    found = _find(node, q, calling_aet, timeout_s, limit)
    return [StudyInfo(
        study_uid=str(d.get("StudyInstanceUID", "")), patient_id=str(d.get("PatientID", "")),
        patient_name=str(d.get("PatientName", "")), study_date=str(d.get("StudyDate", "")),
        accession=str(d.get("AccessionNumber", "")),
        description=str(d.get("StudyDescription", "")),
        modalities=_multi(d.get("ModalitiesInStudy")),
        n_series=_int_or_none(d, "NumberOfStudyRelatedSeries"),
        n_instances=_int_or_none(d, "NumberOfStudyRelatedInstances"),
    ) for d in found]


def find_series(node: PacsNode | str, study_uid: str, *, calling_aet: str = DEFAULT_LOCAL_AE,
                timeout_s: float = DEFAULT_TIMEOUT_S,
                limit: int = MAX_FIND_RESULTS) -> list[SeriesInfo]:
    """C-FIND at SERIES level within one study."""
    node = resolve_node(node)
    if not study_uid:
        raise InputError("find_series needs a StudyInstanceUID")
    q = Dataset()
    q.QueryRetrieveLevel = "SERIES"
    q.StudyInstanceUID = study_uid
    q.SeriesInstanceUID = ""
    q.Modality = ""
    q.SeriesNumber = ""
    q.SeriesDescription = ""
    q.NumberOfSeriesRelatedInstances = ""
    found = _find(node, q, calling_aet, timeout_s, limit)
    return [SeriesInfo(
        series_uid=str(d.get("SeriesInstanceUID", "")),
        study_uid=str(d.get("StudyInstanceUID", study_uid)), modality=str(d.get("Modality", "")),
        number=str(d.get("SeriesNumber", "") or ""),
        description=str(d.get("SeriesDescription", "")),
        n_instances=_int_or_none(d, "NumberOfSeriesRelatedInstances"),
    ) for d in found]


class _Saver:
    """C-STORE SCP handler: writes each received object to ``dest/<series>/<sop>.dcm``."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.files: list[Path] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> int:
        try:
            ds = event.dataset
            series = uid_file_name(ds.get("SeriesInstanceUID"))
            sop = uid_file_name(ds.get("SOPInstanceUID"))
            folder = self.dest / series
            path = folder / f"{sop}.dcm"
            root = self.dest.resolve()
            if path.resolve().parent.parent != root:  # belt and braces: never outside
                raise OSError(f"refused file name outside {root}")
            from irplan.io.atomic_write import atomic_write_bytes

            # bytes as received (with file meta), atomically: never a partial file
            atomic_write_bytes(path, event.encoded_dataset())
            with self.lock:
                self.files.append(path)
            return 0x0000
        except Exception as exc:  # noqa: BLE001 - report to the sender as a failure
            with self.lock:
                self.errors.append(str(exc))
            return 0xA700  # out of resources


def uid_file_name(uid: object) -> str:
    """A file/folder name from a UID sent by a peer: the UID itself when it is a valid
    UID (digits and single dots, at most 64 characters; so never ``.`` or ``..``),
    else ``invalid-uid-<first 16 hex digits of its SHA-256>``."""
    s = "" if uid is None else str(uid).strip().rstrip("\0")
    if 0 < len(s) <= 64 and _UID_RE.match(s):
        return s
    return "invalid-uid-" + hashlib.sha256(s.encode("utf-8", "replace")).hexdigest()[:16]


def start_move_receiver(dest: str | Path, calling_aet: str, *,
                        bind_host: str = DEFAULT_MOVE_BIND, port: int = 11112,
                        accept_aets: Iterable[str] = (),
                        timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[Any, _Saver]:
    """The storage SCP a C-MOVE sends to: listens on ``bind_host:port`` (loopback by
    default), answers only to called AE ``calling_aet`` and only to calling AE titles in
    ``accept_aets`` (required, at least one). Returns (server, saver); stop it with
    ``server.shutdown()``. Raises PacsError when the port cannot be opened."""
    accept = [a for a in accept_aets if a]
    if not accept:
        raise InputError("C-MOVE receiver: give at least one calling AE title to accept")
    for a in accept:
        _check_ae(a, "accepted calling AE title")
    saver = _Saver(Path(dest))
    scp_ae = _make_ae(calling_aet, timeout_s)
    scp_ae.require_called_aet = True
    scp_ae.require_calling_aet = accept
    for c in RETRIEVE_STORAGE_CLASSES:
        scp_ae.add_supported_context(c, list(RETRIEVE_TRANSFER_SYNTAXES))
    try:
        server = scp_ae.start_server((bind_host, port), block=False,
                                     evt_handlers=[(evt.EVT_C_STORE, saver)])
    except (OSError, OverflowError) as exc:
        raise PacsError(f"cannot start the local storage SCP for C-MOVE on "
                        f"{bind_host}:{port} ({getattr(exc, 'strerror', None) or exc})"
                        ) from None
    return server, saver


def _retrieve_query(study_uid: str, series_uid: str | None) -> Dataset:
    if not study_uid:
        raise InputError("retrieve needs a StudyInstanceUID")
    q = Dataset()
    q.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    q.StudyInstanceUID = study_uid
    if series_uid:
        q.SeriesInstanceUID = series_uid
    return q


def retrieve(node: PacsNode | str, dest_dir: str | Path, *, study_uid: str,
             series_uid: str | None = None, method: str = "get",
             calling_aet: str = DEFAULT_LOCAL_AE, timeout_s: float = DEFAULT_TIMEOUT_S,
             move_port: int = 11112, move_bind_host: str = DEFAULT_MOVE_BIND,
             move_accept_aets: Iterable[str] | None = None) -> RetrieveResult:
    """Retrieve a study (or one series) into ``dest_dir/<SeriesInstanceUID>/<SOP>.dcm``.

    ``method="get"``: C-GET, the server sends the objects back over the same association.
    ``method="move"``: C-MOVE to this computer's AE title ``calling_aet``; a storage SCP is
    started on ``move_bind_host:move_port`` (loopback by default: give the interface's
    address for a PACS on another computer) that accepts only the calling AE titles
    ``move_accept_aets`` (default: the node's own AE title); the server must know
    ``calling_aet`` at that address. Raises PacsError on any failure; files received so
    far are kept and listed in ``PacsError.received``.
    """
    node = resolve_node(node)
    if method not in ("get", "move"):
        raise InputError(f"retrieve method {method!r}: use 'get' or 'move'")
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    saver = _Saver(dest)
    what_uid = [u for u in (study_uid, series_uid) if u and not _UID_RE.match(str(u))]
    if what_uid:
        raise InputError(f"retrieve: {what_uid[0]!r} is not a DICOM UID (digits and dots)")
    query = _retrieve_query(study_uid, series_uid)
    what = f"series {series_uid}" if series_uid else f"study {study_uid}"
    result = RetrieveResult()
    server = None
    if method == "get":
        model = StudyRootQueryRetrieveInformationModelGet
        ctx = [build_context(model)] + [build_context(c, list(RETRIEVE_TRANSFER_SYNTAXES))
                                        for c in RETRIEVE_STORAGE_CLASSES]
        roles = [build_role(c, scp_role=True) for c in RETRIEVE_STORAGE_CLASSES]
        handlers = [(evt.EVT_C_STORE, saver)]
    else:
        model = StudyRootQueryRetrieveInformationModelMove
        ctx = [build_context(model)]
        roles, handlers = [], []
        accept = list(move_accept_aets) if move_accept_aets else [node.ae_title]
        server, saver = start_move_receiver(dest, calling_aet, bind_host=move_bind_host,
                                            port=move_port, accept_aets=accept,
                                            timeout_s=timeout_s)
    op = "C-GET" if method == "get" else "C-MOVE"
    try:
        with _associate(node, ctx, calling_aet, timeout_s, roles, handlers) as (assoc, _w):
            t0 = time.monotonic()
            if method == "get":
                responses = assoc.send_c_get(query, model)
            else:
                responses = assoc.send_c_move(query, calling_aet, model)
            final: Dataset | None = None
            for status, _ident in responses:
                if "Status" not in status:
                    raise PacsError(_lost(node, f"{op} of {what}", timeout_s, t0, calling_aet),
                                    received=list(saver.files))
                t0 = time.monotonic()
                code = int(status.Status)
                if code in (0xFF00, 0xFF01):
                    continue
                final = status
            if assoc.is_aborted:
                raise PacsError(_lost(node, f"{op} of {what}", timeout_s, t0, calling_aet),
                                received=list(saver.files))
    finally:
        if server is not None:
            server.shutdown()
    if final is None:
        raise PacsError(f"PACS node {node}: {op} of {what} ended without a final status",
                        received=list(saver.files))
    result.files = sorted(saver.files)
    result.completed = int(final.get("NumberOfCompletedSuboperations", len(saver.files)) or 0)
    result.failed = int(final.get("NumberOfFailedSuboperations", 0) or 0)
    result.warning = int(final.get("NumberOfWarningSuboperations", 0) or 0)
    code = int(final.Status)
    if code == 0xC000 or code_to_category(code) == "Failure" or result.failed:
        extra = f"; local write errors: {saver.errors[0]}" if saver.errors else ""
        if not saver.files and not result.failed and not result.completed:
            extra += " (nothing was sent: is the UID on this server?)"
        raise PacsError(f"PACS node {node}: {op} of {what} failed with {_status_text(final)}, "
                        f"{result.failed} sub-operations failed, {len(saver.files)} files "
                        f"saved in {dest}{extra}", received=result.files)
    if not result.files:
        raise PacsError(f"PACS node {node}: {op} of {what} returned no objects "
                        "(unknown UID, or the server cannot reach this computer for C-MOVE)")
    return result


def store(node: PacsNode | str, paths: Iterable[str | Path], *,
          calling_aet: str = DEFAULT_LOCAL_AE,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> StoreResult:
    """C-STORE DICOM files to the node. Files are never moved or deleted.

    Raises PacsError when any file was not delivered; ``PacsError.sent`` and
    ``PacsError.failed`` (``{path: reason}``) say which; the message lists the failures.
    """
    node = resolve_node(node)
    files = [Path(p) for p in paths]
    if not files:
        raise InputError("nothing to send: no files given")
    res = StoreResult()
    datasets: list[tuple[Path, Dataset]] = []
    for p in files:
        try:
            ds = dcmread(p)
            _ = ds.SOPClassUID, ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID
            datasets.append((p, ds))
        except (OSError, InvalidDicomError, AttributeError) as exc:
            res.failed[p] = f"not a readable DICOM file ({exc})"
    pairs: dict[str, set[str]] = {}
    for _p, ds in datasets:
        pairs.setdefault(str(ds.SOPClassUID), set()).add(str(ds.file_meta.TransferSyntaxUID))
    if len(pairs) > 120:
        raise InputError(f"too many different object types ({len(pairs)}) for one association")
    ctx = []
    for sop, tss in sorted(pairs.items()):
        ctx.append(build_context(sop, sorted(tss | {ExplicitVRLittleEndian,
                                                    ImplicitVRLittleEndian})))
    try:
        if datasets:
            with _associate(node, ctx, calling_aet, timeout_s) as (assoc, _w):
                for p, ds in datasets:
                    if not assoc.is_established:
                        res.failed[p] = "not sent: the association was lost"
                        continue
                    t0 = time.monotonic()
                    try:
                        status = assoc.send_c_store(ds)
                    except (ValueError, RuntimeError) as exc:
                        res.failed[p] = f"not sent: {exc}"
                        continue
                    if "Status" not in status:
                        res.failed[p] = _lost(node, "C-STORE", timeout_s, t0)
                    elif code_to_category(int(status.Status)) in ("Success", "Warning"):
                        res.sent.append(p)
                    else:
                        res.failed[p] = f"refused with {_status_text(status)}"
    except PacsError as exc:
        for p, _ds in datasets:
            if p not in res.sent and p not in res.failed:
                res.failed[p] = str(exc)
        raise PacsError(f"{exc}. Nothing was sent; all {len(files)} files are kept.",
                        sent=res.sent, failed=res.failed) from None
    if res.failed:
        lines = "; ".join(f"{p.name}: {why}" for p, why in list(res.failed.items())[:5])
        more = f" (and {len(res.failed) - 5} more)" if len(res.failed) > 5 else ""
        raise PacsError(f"PACS node {node}: {len(res.failed)} of {len(files)} files were not "
                        f"stored (kept on disk): {lines}{more}", sent=res.sent,
                        failed=res.failed)
    return res
