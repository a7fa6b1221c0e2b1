"""Ed25519 keys and signatures for audit bundles (the `cryptography` package).

Keys are PEM files: the private key PKCS#8 (unencrypted, so it must stay 0600 and off shared disks),
the public key SubjectPublicKeyInfo. A bundle's manifest carries the raw public key and its
fingerprint, so anyone can check a signature; whether that key is the committee's is what
``audit verify --pubkey`` settles.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from monitor.errors import ReadinessError


class SigningKeyError(ReadinessError):
    """A key file is missing, unreadable, of the wrong kind or unsafe."""


def generate_keypair(private_path: str | Path, public_path: str | Path, *, force: bool = False) -> str:
    """Write a new Ed25519 key pair (private 0600, public 0644); return the public key's fingerprint.

    Refuses to overwrite existing files unless ``force``.
    """
    private_path, public_path = Path(private_path), Path(public_path)
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise SigningKeyError(f"{path} exists: refusing to overwrite a key (use --force)")
    _write(private_path, private_pem, 0o600)
    _write(public_path, public_pem, 0o644)
    return fingerprint(key.public_key())


def _write(path: Path, data: bytes, mode: int) -> None:
    # Create with the final mode (no window in which a private key is world-readable), replace atomically.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away; never added any
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key; refuse a file that others can read (as ssh does)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read signing key {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(f"signing key {path} is accessible by others (mode {stat.S_IMODE(mode):04o}): "
                        f"chmod 600 {path}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key (PEM, or the raw base64 form a manifest carries)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read public key {path}: {exc.strerror or exc}") from exc
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = public_key_from_text(data.decode("ascii").strip())
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"{path} is not a public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key")
    return key


def public_key_text(key: Ed25519PublicKey) -> str:
    """Return the raw 32-byte public key, base64."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Inverse of `public_key_text`; ValueError if it is not 32 base64 bytes."""
    raw = base64.b64decode(text, validate=True)
    return Ed25519PublicKey.from_public_bytes(raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """Return ``SHA256:<base64>`` of the raw public key (the form ssh-keygen -l prints)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode("ascii").rstrip("=")


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    """Return the Ed25519 signature of ``data``, base64."""
    return base64.b64encode(key.sign(data)).decode("ascii")


def verify(key: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    """Return whether ``signature`` (base64) is ``key``'s signature of ``data``."""
    try:
        key.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def load_trusted_keys(path: str | Path) -> dict[str, str]:
    """Read a trusted-keys file; return fingerprint -> how the file names the key.

    One key per line, as ``readiness audit keygen`` gives them: the fingerprint (``SHA256:…``) or the
    base64 public key, optionally followed by a label; PEM public-key blocks may be pasted whole;
    ``#`` starts a comment. A file with no key in it, or a line that is not a key, is an error.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"cannot read trusted keys {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    keys: dict[str, str] = {}
    pem: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip() if pem is None else line.strip()
        if pem is not None:
            pem.append(line)
            if line.startswith("-----END"):
                try:
                    key = serialization.load_pem_public_key("\n".join(pem).encode("ascii"))
                except (ValueError, TypeError, UnicodeEncodeError) as exc:
                    raise SigningKeyError(f"{path} line {number}: not a PEM public key ({exc})") from exc
                if not isinstance(key, Ed25519PublicKey):
                    raise SigningKeyError(f"{path} line {number}: not an Ed25519 public key")
                keys[fingerprint(key)] = f"{path.name} line {number}"
                pem = None
            continue
        if not line:
            continue
        if line.startswith("-----BEGIN"):
            pem = [line]
            continue
        token, _, label = line.partition(" ")
        label = label.strip() or f"{path.name} line {number}"
        if token.startswith("SHA256:"):
            keys[token] = label
            continue
        try:
            keys[fingerprint(public_key_from_text(token))] = label
        except ValueError as exc:
            raise SigningKeyError(f"{path} line {number}: not a fingerprint (SHA256:…) or a base64 Ed25519 public "
                                  f"key ({exc})") from exc
    if pem is not None:
        raise SigningKeyError(f"{path}: a PEM block is not closed")
    if not keys:
        raise SigningKeyError(f"{path} holds no key: it trusts nobody")
    return keys
