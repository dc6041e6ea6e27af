"""Keyed pseudonyms of patient identifiers (HMAC-SHA256 with a per-installation secret).

The anonymised report and ``irplan export --anonymize`` never show a PatientID; they may
show a pseudonym that lets one installation recognise the same patient again without
revealing who it is. An unkeyed hash would not do: the PatientID space is small (an
8-digit MRN is 10^8 values, hashed in about two minutes), so a plain SHA-256 is reversed
by trying every ID. The pseudonym here is ``HMAC-SHA256(secret, "patient\\0" + ID)``,
first 16 hex digits (64 bits), with a 256-bit random secret created on first use in
``$IRPLAN_CONFIG_DIR/pseudonym.key`` (default ``~/.config/irplan``), mode 0600 in a 0700
folder. Without the secret file nobody, the installation's user included, can map a
pseudonym back except by holding the secret *and* the patient list.

When no secret can be created or read (read-only home, a damaged key file), there is no
pseudonym at all and :attr:`Pseudonymizer.status` says why; a damaged key file is never
replaced silently (that would change every pseudonym).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

KEY_FILE = "pseudonym.key"
PSEUDONYM_HEX = 16
METHOD = "HMAC-SHA256 with this installation's secret key"


def config_dir() -> Path:
    """IRPlan's settings folder: ``$IRPLAN_CONFIG_DIR`` or ``$XDG_CONFIG_HOME/irplan``
    (default ``~/.config/irplan``); the same folder as :func:`irplan.io.pacs.config_dir`."""
    env = os.environ.get("IRPLAN_CONFIG_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "irplan"


@dataclass(frozen=True)
class Pseudonymizer:
    """Keyed pseudonyms; ``key`` None = no secret (then :meth:`pseudonym` returns "")."""

    key: bytes | None
    status: str

    @property
    def available(self) -> bool:
        return self.key is not None

    def pseudonym(self, value: str, kind: str = "patient") -> str:
        """16 hex digits of HMAC-SHA256(secret, kind NUL value); "" without secret or value."""
        if self.key is None or not value:
            return ""
        mac = hmac.new(self.key, f"{kind}\0{value}".encode(), hashlib.sha256)
        return mac.hexdigest()[:PSEUDONYM_HEX]

    def uid(self, uid: str, salt: str = "") -> str:
        """A new DICOM UID (2.25 form) standing for ``uid``: the same input gives the same
        UID on this installation (objects exported on different days stay linked); with
        no secret, ``salt`` (e.g. random per export) keeps the mapping consistent within
        one export only."""
        key = self.key if self.key is not None else b""
        mac = hmac.new(key, f"uid\0{salt}\0{uid}".encode(), hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(mac[:16], 'big')}"  # PS3.5 B.2: UUID-derived UID


def _read_key(path: Path) -> bytes:
    text = path.read_text("ascii").strip()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError("not 64 hexadecimal digits")
    return bytes.fromhex(text)


def _create_key(path: Path) -> None:
    """Write a new random key with mode 0600; never overwrite (a concurrent creator's key
    wins)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, fails when the key exists
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def installation_pseudonymizer(create: bool = True) -> Pseudonymizer:
    """The pseudonymizer of this installation (its secret created on first use when
    ``create``). Never raises: without a usable secret ``key`` is None and ``status``
    says why (no path in it: the config path may carry the user's name)."""
    path = config_dir() / KEY_FILE
    try:
        if not path.exists():
            if not create:
                return Pseudonymizer(None, "no pseudonym: no installation secret yet")
            _create_key(path)
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            return Pseudonymizer(None, "no pseudonym: the installation secret is not a file")
        if st.st_mode & 0o077:
            os.chmod(path, 0o600)
        return Pseudonymizer(_read_key(path), f"keyed pseudonym ({METHOD})")
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return Pseudonymizer(None, f"no pseudonym: the installation secret could not be "
                                   f"created or read ({why})")
