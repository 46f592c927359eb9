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
import os
import secrets
import stat
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .actions import FAMILIES
from .errors import BulkError, UsageError
from .files import write_atomic

__all__ = [
    "ALPHABET",
    "KEY_COLUMNS",
    "KeysFileError",
    "generate_key",
    "generate_keys",
    "keys_digest",
    "load_or_create_keys",
    "parse_keys_file",
    "read_keys_file",
    "write_keys_file",
]

ALPHABET = string.ascii_letters + string.digits
#: --via -> the column of the keys file: the parameter that holds the key (``actions.KeyRotation``)
KEY_COLUMNS = {r.via: r.key for f in FAMILIES if (r := f.rotation) is not None}


class KeysFileError(BulkError):
    """The keys file is missing, malformed, unsafe or not the one expected (never shows a key)."""


def _check_length(length: int) -> None:
    if not 16 <= length <= 32:
        raise UsageError(f"key length must be 16 to 32, got {length}")


def _valid_key(key: str) -> bool:
    return 16 <= len(key) <= 32 and all(c in ALPHABET for c in key)


def generate_key(length: int = 32) -> str:
    """A random key of ``length`` letters and digits (UsageError unless 16 to 32)."""
    _check_length(length)
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def generate_keys(domains: Iterable[str], *, length: int = 32, same_key: bool = False) -> dict[str, str]:
    """One key per domain (all different), or one shared key with ``same_key``."""
    _check_length(length)
    shared = generate_key(length) if same_key else None
    keys: dict[str, str] = {}
    used: set[str] = set()
    for domain in domains:
        key = shared
        # A repeat is astronomically unlikely at 62**16 and up, but two domains
        # sharing a key by accident would defeat asking for one key each.
        while key is None or (not same_key and key in used):
            key = generate_key(length)
        used.add(key)
        keys[domain] = key
    return keys


def write_keys_file(path: Path, keys: Mapping[str, str], *, column: str = "CallbackAuthKey") -> str:
    """Write ``DomainName,<column>`` atomically with mode 0600; return the content's SHA-256."""
    if column not in KEY_COLUMNS.values():
        raise UsageError(f"key column must be one of {', '.join(KEY_COLUMNS.values())}, got {column!r}")
    bad = [domain for domain, key in keys.items() if not domain or not _valid_key(key)]
    if bad:
        raise KeysFileError(f"not writing {path}: {len(bad)} entry(ies) without a domain or with a key "
                            f"that is not 16 to 32 letters or digits (e.g. domain {bad[0]!r})")
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["DomainName", column])
    writer.writerows(keys.items())
    data = buffer.getvalue().encode()
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def keys_digest(path: Path) -> str:
    """SHA-256 of the file's bytes, as the checkpoint records it."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_private(path: Path) -> bytes:
    """The file's bytes, refused if group or others have any access to it."""
    try:
        # One descriptor for the mode check and the read: no swap in between.
        with path.open("rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeysFileError(
                    f"keys file {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
                    f"it holds secrets: run chmod 600 {path}"
                )
            return f.read()
    except OSError as exc:
        raise KeysFileError(f"cannot read keys file {path}: {exc.strerror}") from None


def parse_keys_file(path: Path, data: bytes) -> tuple[str, dict[str, str]]:
    """(key column, domain -> key) from a keys file's bytes; ``path`` names it in errors."""
    try:
        text = data.decode("utf-8-sig")  # tolerate the BOM a spreadsheet adds
    except UnicodeDecodeError as exc:
        raise KeysFileError(f"keys file {path} is not UTF-8 (byte {exc.start})") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    header = next(rows, None)
    if not header or len(header) != 2 or header[0] != "DomainName" or header[1] not in KEY_COLUMNS.values():
        raise KeysFileError(f"keys file {path} must start with DomainName,CallbackAuthKey or DomainName,NotifyAuthKey")
    keys: dict[str, str] = {}
    seen: set[str] = set()
    for line, row in enumerate(rows, 2):
        if not row:
            continue  # a blank line
        if len(row) != 2:
            raise KeysFileError(f"keys file {path}: line {line} must have two fields")
        domain, key = row[0].strip(), row[1].strip()
        if not domain:
            raise KeysFileError(f"keys file {path}: line {line} has no domain")
        if domain.lower() in seen:
            raise KeysFileError(f"keys file {path}: line {line}: {domain} listed twice")
        if not _valid_key(key):
            raise KeysFileError(f"keys file {path}: line {line}: the key must be 16 to 32 letters or digits")
        seen.add(domain.lower())
        keys[domain] = key
    return header[1], keys


def read_keys_file(path: Path) -> tuple[str, dict[str, str]]:
    """(key column, domain -> key); refuses a file others can access, or a malformed one."""
    return parse_keys_file(path, _read_private(path))


def load_or_create_keys(
    path: Path,
    domains: Sequence[str],
    *,
    length: int,
    same_key: bool,
    column: str,
    expected_digest: str | None,
) -> tuple[dict[str, str], str]:
    """Start a rotation (``expected_digest=None``: write new keys) or resume one (reuse the very same file).

    Starting never overwrites a file: it may hold keys the service already
    has. Resuming needs the file whose SHA-256 the checkpoint recorded, with
    the same column and every domain of the input.
    """
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
    data = _read_private(path)
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_digest:
        raise KeysFileError(f"keys file {path} changed since the rotation started; refusing to apply other keys")
    found_column, keys = parse_keys_file(path, data)
    if found_column != column:
        raise KeysFileError(f"keys file {path} holds {found_column}, this rotation needs {column}")
    missing = [d for d in domains if d not in keys]
    if missing:
        raise KeysFileError(
            f"{len(missing)} domain(s) of the input are not in keys file {path} (e.g. {missing[0]}); "
            "the domain list changed since the rotation started"
        )
    return keys, digest
