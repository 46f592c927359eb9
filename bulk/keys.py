"""Callback auth keys: generated, written before use, never lost.

    keys, digest = load_or_create_keys(Path("keys-2026-11.csv"), ["a.example.com"],
                                       length=32, same_key=False, column="CallbackAuthKey",
                                       expected_digest=None)

A rotation writes its keys file *before* the first call, atomically and with
mode 0600, so the receiver can be given the new keys first and no key the
service holds is ever unknown. Resuming reuses the file as it is: its
SHA-256 is recorded by the checkpoint, and a file that changed is refused
rather than silently re-keyed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
import stat
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .files import write_atomic

__all__ = [
    "ALPHABET",
    "KEY_COLUMNS",
    "KeysFileError",
    "generate_key",
    "generate_keys",
    "keys_digest",
    "load_or_create_keys",
    "read_keys_file",
    "write_keys_file",
]

ALPHABET = string.ascii_letters + string.digits
KEY_COLUMNS = {"set-callback-auth": "CallbackAuthKey", "update-notify-config": "NotifyAuthKey"}


class KeysFileError(Exception):
    """The keys file is missing, malformed, unsafe or not the one expected (never shows a key)."""


def generate_key(length: int = 32) -> str:
    if not 16 <= length <= 32:
        raise ValueError(f"key length must be 16 to 32, got {length}")
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def generate_keys(domains: Iterable[str], *, length: int = 32, same_key: bool = False) -> dict[str, str]:
    """One key per domain (all different), or one shared key with ``same_key``."""
    shared = generate_key(length) if same_key else None
    keys: dict[str, str] = {}
    used: set[str] = set()
    for domain in domains:
        key = shared
        while key is None or (not same_key and key in used):
            key = generate_key(length)
        used.add(key)
        keys[domain] = key
    return keys


def write_keys_file(path: Path, keys: Mapping[str, str], *, column: str = "CallbackAuthKey") -> str:
    """Write ``DomainName,<column>`` atomically with mode 0600; return the content's SHA-256."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["DomainName", column])
    writer.writerows(keys.items())
    data = buffer.getvalue().encode()
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def keys_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_keys_file(path: Path) -> tuple[str, dict[str, str]]:
    """(key column, domain -> key); refuses a file others can read, or a malformed one."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeysFileError(f"cannot read keys file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeysFileError(f"keys file {path} is readable by others; run: chmod 600 {path}")
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if not header or len(header) != 2 or header[0] != "DomainName" or header[1] not in KEY_COLUMNS.values():
        raise KeysFileError(f"keys file {path} must start with DomainName,CallbackAuthKey or DomainName,NotifyAuthKey")
    keys: dict[str, str] = {}
    seen: set[str] = set()
    for line, row in enumerate(rows, 2):
        if len(row) != 2:
            raise KeysFileError(f"keys file {path}: line {line} must have two fields")
        domain, key = row[0].strip(), row[1].strip()
        if domain.lower() in seen:
            raise KeysFileError(f"keys file {path}: line {line}: {domain} listed twice")
        if not (16 <= len(key) <= 32 and all(c in ALPHABET for c in key)):
            raise KeysFileError(f"keys file {path}: line {line}: the key must be 16 to 32 letters or digits")
        seen.add(domain.lower())
        keys[domain] = key
    return header[1], keys


def load_or_create_keys(
    path: Path,
    domains: Sequence[str],
    *,
    length: int,
    same_key: bool,
    column: str,
    expected_digest: str | None,
) -> tuple[dict[str, str], str]:
    """Start a rotation (write new keys) or resume one (reuse the very same file)."""
    if expected_digest is None:
        if path.exists():
            raise KeysFileError(
                f"keys file {path} already exists and no rotation in progress uses it; "
                "pick a new (dated) --keys-out so that no key in use is overwritten"
            )
        keys = generate_keys(domains, length=length, same_key=same_key)
        return keys, write_keys_file(path, keys, column=column)
    if not path.exists():
        raise KeysFileError(f"the rotation in progress needs its keys file {path}, which is gone")
    found_column, keys = read_keys_file(path)
    digest = keys_digest(path)
    if digest != expected_digest:
        raise KeysFileError(f"keys file {path} changed since the rotation started; refusing to apply other keys")
    if found_column != column:
        raise KeysFileError(f"keys file {path} holds {found_column}, this rotation needs {column}")
    missing = [d for d in domains if d not in keys]
    if missing:
        raise KeysFileError(
            f"{len(missing)} domain(s) of the input are not in keys file {path} (e.g. {missing[0]}); "
            "the domain list changed since the rotation started"
        )
    return keys, digest
