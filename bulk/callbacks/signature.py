"""Snapshot callback authentication: what the operator's receiver checks.

    headers = sign("cb.example.com", key)                  # what the service sends
    verdict = verify("cb.example.com", headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER],
                     [old_key, new_key])                     # accept both during a rotation
    assert verdict.ok

With auth on, each callback carries ``ALI-LIVE-TIMESTAMP`` (Unix seconds)
and ``ALI-LIVE-SIGNATURE``, the hex MD5 of ``host|timestamp|key``, where the
host is the host part of the NotifyUrl. Comparisons run in constant time
and every key is tried, so timing tells nothing about which key (if any)
nearly matched. Reasons never contain a key.

``sign`` and ``verify`` use ``host`` exactly as given. ``host_of`` turns a
NotifyUrl or a ``Host`` header (``host[:port]``, as a receiver behind a proxy
may see it) into the bare, lower-case host name to give them: host names are
case-insensitive, and the port is not part of what the service signs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "Verdict", "host_of", "sign", "signature", "verify"]

TIMESTAMP_HEADER = "ALI-LIVE-TIMESTAMP"
SIGNATURE_HEADER = "ALI-LIVE-SIGNATURE"

# ASCII digits only: int() would also take "+17e8"-like spellings, "1_700" and
# non-ASCII digits, none of which the service sends.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")


@dataclass(frozen=True, slots=True)
class Verdict:
    """A callback's signature checked: accepted or not, and why (the reason goes to logs and metrics only)."""

    ok: bool
    reason: str
    #: which of the keys matched (0 = first), when ok
    key_index: int | None = None


def host_of(url_or_host: str) -> str:
    """The bare, lower-case host of a URL or a ``host[:port]`` header value ("" if none)."""
    text = url_or_host.strip()
    parts = urlsplit(text if "://" in text else f"//{text}")
    return (parts.hostname or "").lower()


def signature(host: str, timestamp: int | str, key: str) -> str:
    """Hex MD5 of ``host|timestamp|key``."""
    return hashlib.md5(f"{host}|{timestamp}|{key}".encode()).hexdigest()


_signature = signature  # verify() names its parameter after the header, shadowing this


def sign(host: str, key: str, *, timestamp: int | None = None, now: Callable[[], float] = time.time) -> dict[str, str]:
    """The two headers a callback to ``host`` carries."""
    ts = int(now()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(host, ts, key)}


def verify(
    host: str,
    timestamp: str | int,
    signature: str,
    keys: Sequence[str],
    *,
    now: float | None = None,
    max_skew: int = 300,
) -> Verdict:
    """Check a callback's headers against any of ``keys`` (old and new during a rotation)."""
    stamp = str(timestamp).strip()
    given = signature.strip()
    if not stamp:
        return Verdict(False, "missing timestamp")
    if not given:
        return Verdict(False, "missing signature")
    if not _TIMESTAMP.fullmatch(stamp):
        return Verdict(False, "malformed timestamp")
    if not _MD5_HEX.fullmatch(given):
        return Verdict(False, "malformed signature")
    if not keys:
        return Verdict(False, "no keys to check against")
    skew = int(stamp) - (time.time() if now is None else now)
    if skew > max_skew:
        return Verdict(False, f"timestamp in the future (skew {skew:.0f} s > {max_skew} s)")
    if -skew > max_skew:
        return Verdict(False, f"timestamp too old (skew {-skew:.0f} s > {max_skew} s)")
    expected = given.lower().encode()
    matched: int | None = None
    for index, key in enumerate(keys):
        # The timestamp as received is what was signed. No early exit: every
        # key costs the same, matched or not.
        if hmac.compare_digest(_signature(host, stamp, key).encode(), expected) and matched is None:
            matched = index
    if matched is None:
        return Verdict(False, "signature matches no key")
    return Verdict(True, "valid", matched)
