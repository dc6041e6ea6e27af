"""``irplan pacs echo|find|get|send|nodes`` — exchange with a PACS node.

``--node`` is ``AE@host:port`` or the name of a node saved with ``irplan pacs nodes add``
(stored in ``$IRPLAN_CONFIG_DIR/pacs_nodes.json``). Network problems print one line naming
the node and the problem (exit 2); files that could not be sent are listed and kept.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from irplan.app.cli_types import bounded_int, finite_float
from irplan.io import pacs
from irplan.planning.errors import InputError


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node", required=True, help="AE@host:port or a saved node name")
    p.add_argument("--aet", default=os.environ.get("IRPLAN_AE_TITLE", pacs.DEFAULT_LOCAL_AE),
                   help="this computer's (calling) AE title (default %(default)s, "
                        "or $IRPLAN_AE_TITLE)")
    p.add_argument("--timeout",
                   type=finite_float(0, 3600, lo_open=True, unit="s"),
                   default=pacs.DEFAULT_TIMEOUT_S,
                   help="network timeout in seconds (default %(default)s)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("echo", help="C-ECHO: is the node reachable?")
    _common(p)
    p = sub.add_parser("find", help="C-FIND studies (or the series of one study)")
    _common(p)
    p.add_argument("--patient-id")
    p.add_argument("--patient-name", help="e.g. 'DOE^J*' (wildcards * and ?)")
    p.add_argument("--date", help="study date YYYYMMDD or range YYYYMMDD-YYYYMMDD")
    p.add_argument("--accession")
    p.add_argument("--study", help="list the series of this StudyInstanceUID")
    p = sub.add_parser("get", help="retrieve a study or series into a folder")
    _common(p)
    p.add_argument("--study", required=True, help="StudyInstanceUID")
    p.add_argument("--series", help="SeriesInstanceUID (default: the whole study)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--move", action="store_true",
                   help="use C-MOVE to this computer (default: C-GET)")
    p.add_argument("--port", type=bounded_int(1, 65535), default=11112,
                   help="local storage port for C-MOVE (default %(default)s)")
    p.add_argument("--bind", default=os.environ.get("IRPLAN_MOVE_BIND", pacs.DEFAULT_MOVE_BIND),
                   metavar="ADDRESS",
                   help="address the C-MOVE receiver listens on (default %(default)s, or "
                        "$IRPLAN_MOVE_BIND; give this computer's address for a PACS on "
                        "another computer)")
    p.add_argument("--accept-ae", action="append", default=None, metavar="AE",
                   help="calling AE title allowed to send the C-MOVE objects (repeatable; "
                        "default: the node's AE title)")
    p = sub.add_parser("send", help="C-STORE DICOM files or folders")
    _common(p)
    p.add_argument("paths", nargs="+", help="DICOM files or folders (searched recursively)")
    p = sub.add_parser("nodes", help="list, add or remove saved nodes")
    p.add_argument("op", choices=("list", "add", "remove"))
    p.add_argument("name", nargs="?")
    p.add_argument("spec", nargs="?", help="AE@host:port (for add)")


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for s in paths:
        p = Path(s)
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    if not out:
        raise InputError(f"no files under {', '.join(paths)}")
    return out


def check_host(node: pacs.PacsNode) -> None:
    """InputError (one line) when the node's host name cannot be resolved."""
    try:
        socket.getaddrinfo(node.host, node.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else str(exc)
        raise InputError(f"PACS node {node}: unknown host {node.host!r} ({why})") from None


def sendable(files: list[Path]) -> tuple[list[Path], dict[Path, str]]:
    """(files that are complete DICOM objects, {skipped file: reason}): a truncated file,
    or one without a transfer syntax, is never sent (it would be stored as a success)."""
    from irplan.io.dicom_scan import verify_dicom_file

    ok: list[Path] = []
    bad: dict[Path, str] = {}
    for p in files:
        why = verify_dicom_file(p)
        if why is None:
            ok.append(p)
        else:
            bad[p] = why
    return ok, bad


def run(args: argparse.Namespace) -> int:
    if args.action == "nodes":
        return _nodes(args)
    node = pacs.resolve_node(args.node)
    check_host(node)
    kw = {"calling_aet": args.aet, "timeout_s": args.timeout}
    if args.action == "echo":
        rtt = pacs.echo(node, **kw)
        print(f"{node}: C-ECHO ok ({rtt * 1000:.0f} ms)")
    elif args.action == "find":
        if args.study:
            for s in pacs.find_series(node, args.study, **kw):
                print(_p(f"{s.series_uid}  {s.modality:4s} #{s.number or '-':>4s} "
                         f"{s.n_instances if s.n_instances is not None else '?':>5} images  "
                         f"{s.description}"))
        else:
            studies = pacs.find_studies(node, patient_id=args.patient_id,
                                        patient_name=args.patient_name, study_date=args.date,
                                        accession=args.accession, **kw)
            for st in studies:
                print(_p(f"{st.study_uid}  {st.study_date or '-':8s}  {st.patient_id or '-'}  "
                         f"{st.patient_name or '-'}  acc {st.accession or '-'}  "
                         f"{st.modalities or '-'}  {st.description}"))
            print(f"{len(studies)} studies", file=sys.stderr)
    elif args.action == "get":
        res = pacs.retrieve(node, args.out, study_uid=args.study, series_uid=args.series,
                            method="move" if args.move else "get", move_port=args.port,
                            move_bind_host=args.bind, move_accept_aets=args.accept_ae, **kw)
        print(f"retrieved {len(res.files)} files into {args.out}")
    elif args.action == "send":
        all_files = _files(args.paths)
        files, skipped = sendable(all_files)
        for p, why in skipped.items():
            print(f"not sent (skipped, kept): {p}: {why}", file=sys.stderr)
        if not files:
            raise InputError(f"nothing sent: none of the {len(all_files)} file(s) is a "
                             "complete DICOM object")
        try:
            res = pacs.store(node, files, **kw)
        except pacs.PacsError as exc:
            for p, why in exc.failed.items():
                print(f"not sent (kept): {p}: {_p(why)}", file=sys.stderr)
            if exc.sent:
                print(f"sent {len(exc.sent)} of {len(all_files)} files", file=sys.stderr)
            raise
        print(f"sent {len(res.sent)} files to {node}")
        if skipped:
            raise InputError(f"{len(skipped)} of {len(all_files)} file(s) skipped (not "
                             f"complete DICOM objects), e.g. {next(iter(skipped))}")
    return 0


def _p(text: str) -> str:
    """A line with server-sent text: no control or escape characters."""
    return pacs.printable(text, 2000)


def _nodes(args: argparse.Namespace) -> int:
    if args.op == "list":
        for name, node in sorted(pacs.load_nodes().items()):
            print(f"{name}: {node}")
        return 0
    if not args.name:
        raise InputError(f"irplan pacs nodes {args.op}: give a node name")
    if args.op == "add":
        if not args.spec:
            raise InputError("irplan pacs nodes add NAME AE@host:port")
        path = pacs.save_node(args.name, pacs.PacsNode.parse(args.spec))
        print(f"saved {args.name} in {path}")
    elif not pacs.remove_node(args.name):
        raise InputError(f"no saved PACS node named {args.name!r}")
    else:
        print(f"removed {args.name}")
    return 0
