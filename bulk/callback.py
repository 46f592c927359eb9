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
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "Verdict", "host_of", "sign", "signature", "verify"]

TIMESTAMP_HEADER = "ALI-LIVE-TIMESTAMP"
SIGNATURE_HEADER = "ALI-LIVE-SIGNATURE"


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str
    #: which of the keys matched (0 = first), when ok
    key_index: int | None = None


def host_of(url_or_host: str) -> str:
    """The bare, lower-case host of a URL or a ``host[:port]`` header value."""
    text = url_or_host.strip()
    parts = urlsplit(text if "://" in text else f"//{text}")
    return (parts.hostname or "").lower()


def signature(host: str, timestamp: int | str, key: str) -> str:
    return hashlib.md5(f"{host}|{timestamp}|{key}".encode()).hexdigest()


def sign(host: str, key: str, *, timestamp: int | None = None, now: Callable[[], float] = time.time) -> dict[str, str]:
    """The two headers a callback to ``host`` carries."""
    ts = int(now()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(host, ts, key)}


def verify(
    host: str,
    timestamp: str | int,
    signature_: str,
    keys: Sequence[str],
    *,
    now: float | None = None,
    max_skew: int = 300,
) -> Verdict:
    """Check a callback's headers against any of ``keys`` (old and new during a rotation)."""
    if not signature_:
        return Verdict(False, "missing signature")
    if not keys:
        return Verdict(False, "no keys to check against")
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return Verdict(False, "malformed timestamp")
    skew = ts - (time.time() if now is None else now)
    if skew > max_skew:
        return Verdict(False, f"timestamp in the future (skew {skew:.0f} s > {max_skew} s)")
    if -skew > max_skew:
        return Verdict(False, f"timestamp too old (skew {-skew:.0f} s > {max_skew} s)")
    given = signature_.strip().lower().encode()
    matched: int | None = None
    for index, key in enumerate(keys):
        # No early exit: every key costs the same, matched or not.
        if hmac.compare_digest(signature(host, ts, key).encode(), given) and matched is None:
            matched = index
    if matched is None:
        return Verdict(False, "signature matches no key")
    return Verdict(True, "valid", matched)
