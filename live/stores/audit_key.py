"""The audit ledger's key: `TRADEOS_AUDIT_KEY`, or else one random key generated once in `TRADEOS_HOME/audit.key`
(0600, owner only). It lives outside PostgreSQL, Redis and DuckDB, so whoever can write to the record cannot seal
a forged entry; it is never logged."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from pydantic import SecretStr

KEY_FILE = "audit.key"
_KEY_BYTES = 32


class AuditKeyError(ValueError):
    """The key cannot be had safely; the message names the variable or the file."""


def audit_key(configured: SecretStr | None, home: Path, *, create: bool = True) -> bytes:
    """The HMAC key: the UTF-8 bytes of `TRADEOS_AUDIT_KEY` when set, else of the key file's text, generated
    when missing (`create`; a check of an existing ledger never makes a new key)."""
    if configured is not None:
        return configured.get_secret_value().encode("utf-8")
    path = home / KEY_FILE
    if not path.exists() and not path.is_symlink():
        if not create:
            raise AuditKeyError(
                f"TRADEOS_AUDIT_KEY is unset and there is no {path}: the ledger's key is unknown"
            )
        _create(path)
    return _read(path)


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise AuditKeyError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise AuditKeyError(f"{path}: not a regular file")
        if info.st_uid != os.geteuid():
            raise AuditKeyError(f"{path}: owned by another user; the key must be the service account's alone")
        if info.st_mode & 0o077:
            raise AuditKeyError(
                f"{path}: mode {stat.S_IMODE(info.st_mode):04o} lets others read it; refused (chmod 600 it, and "
                "treat the key as leaked)"
            )
        text = os.read(fd, 4096).decode("utf-8", errors="strict").strip()
    finally:
        os.close(fd)
    if len(text) < 2 * _KEY_BYTES:
        raise AuditKeyError(f"{path}: holds no key (expected {2 * _KEY_BYTES} hex characters)")
    return text.encode("utf-8")


def _create(path: Path) -> None:
    """Written whole to a private temporary file, then linked into place: no other process ever sees a partial
    key, and of two starting at once the first link wins and both use its key."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{KEY_FILE}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, (secrets.token_hex(_KEY_BYTES) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
