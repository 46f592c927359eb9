"""Request signing, byte-for-byte as Alibaba Cloud's official SDKs do it.

    >>> creds = Credentials("AKID", "secret")
    >>> req = sign_v3("DescribeLiveSnapshotNotifyConfig", {"DomainName": "a.example.com"},
    ...               creds, host="live.aliyuncs.com", nonce="n1", date="2026-01-01T00:00:00Z")
    >>> req.headers["Authorization"].split(",")[0]
    'ACS3-HMAC-SHA256 Credential=AKID'

Two schemes: V3 ``ACS3-HMAC-SHA256`` (the default, as ``alibabacloud-live20161101``)
and V1 RPC ``HMAC-SHA1`` (as ``aliyun-python-sdk-core``). The low-level
``v3_signature`` and ``v1_signature`` are shared with the simulator, which
verifies what the client signs. Nonce and time are arguments so that every
attempt is signed afresh by the caller and tests can pin them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote

from .actions import API_VERSION
from .credentials import Credentials

__all__ = [
    "SignedRequest",
    "V3_ALGORITHM",
    "canonical_query",
    "new_nonce",
    "percent_encode",
    "sign",
    "sign_v1",
    "sign_v3",
    "timestamp",
    "v1_signature",
    "v3_signature",
]

V3_ALGORITHM = "ACS3-HMAC-SHA256"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What goes on the wire: ``method /?query`` with these headers and body."""

    method: str
    query: str
    headers: dict[str, str]
    body: bytes = b""


def percent_encode(value: str) -> str:
    """RFC 3986 encoding of UTF-8 text; only unreserved characters stay."""
    if _UNRESERVED.fullmatch(value):
        return value  # a domain name, a key, an action: nothing to encode
    return _encoded(value)


@lru_cache(maxsize=4096)
def _encoded(value: str) -> str:
    # Most encoded values repeat from call to call (a NotifyUrl given with --set, a region).
    return quote(value, safe="~", encoding="utf-8")


_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")


def canonical_query(params: Mapping[str, str]) -> str:
    """Sorted ``k=v`` pairs joined by ``&``, both sides percent-encoded."""
    return "&".join([f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items())])


def new_nonce() -> str:
    """A fresh signature nonce: the service refuses one it has seen before (SignatureNonceUsed)."""
    # 32 hex digits like uuid4().hex (which fixes 6 of its 128 bits), at a quarter of its cost.
    return os.urandom(16).hex()


def timestamp(now: datetime | None = None) -> str:
    """UTC time in the ``YYYY-MM-DDThh:mm:ssZ`` form both schemes use."""
    if now is not None:
        return now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return _this_second(int(time.time()))


@lru_cache(maxsize=2)
def _this_second(second: int) -> str:
    # One formatting a second, however many calls are signed in it.
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v3_signature(
    secret: str,
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
) -> tuple[str, str]:
    """Sign the given headers (names lower-case); return (signed names, hex signature)."""
    return _v3_signature(secret, method, path, canonical_query(query), headers, payload_sha256)


def _v3_signature(
    secret: str, method: str, path: str, query: str, headers: Mapping[str, str], payload_sha256: str
) -> tuple[str, str]:
    names = sorted(headers)
    canonical_headers = "".join(f"{n}:{headers[n].strip()}\n" for n in names)
    signed = ";".join(names)
    canonical_request = "\n".join((method, path or "/", query, canonical_headers, signed, payload_sha256))
    to_sign = f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    return signed, hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def v1_signature(secret: str, *, method: str, params: Mapping[str, str]) -> str:
    """RPC HMAC-SHA1 over every parameter except ``Signature`` itself."""
    signed = {k: v for k, v in params.items() if k != "Signature"}
    to_sign = f"{method}&%2F&{percent_encode(canonical_query(signed))}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def sign_v3(
    action: str,
    params: Mapping[str, str],
    credentials: Credentials,
    *,
    host: str,
    nonce: str,
    date: str,
    version: str = API_VERSION,
    method: str = "POST",
) -> SignedRequest:
    """An RPC call signed with ACS3-HMAC-SHA256: parameters in the query, empty body."""
    token = credentials.security_token or None
    head, middle, tail, authorization = _v3_template(method, host, action, version, credentials.access_key_id, token)
    query = canonical_query(params)
    # The canonical request of ``_v3_signature``, its constant parts made once per endpoint, action and key.
    token_line = f"\nx-acs-security-token:{token.strip()}" if token else ""
    canonical_request = f"{head}{query}{middle}{date.strip()}{token_line}\nx-acs-signature-nonce:{nonce.strip()}{tail}"
    to_sign = f"{V3_ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    signature = hmac.new(credentials.access_key_secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": date,
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": _EMPTY_SHA256,
    }
    if token:
        headers["x-acs-accesskey-id"] = credentials.access_key_id
        headers["x-acs-security-token"] = token
    headers["Authorization"] = authorization + signature
    return SignedRequest(method, query, headers)


@lru_cache(maxsize=64)
def _v3_template(
    method: str, host: str, action: str, version: str, key_id: str, token: str | None
) -> tuple[str, str, str, str]:
    """What ``sign_v3`` signs around the query, the date, the token and the nonce, and the Authorization prefix.

    The headers in their canonical (sorted) order: host, [x-acs-accesskey-id], x-acs-action,
    x-acs-content-sha256, x-acs-date, [x-acs-security-token], x-acs-signature-nonce, x-acs-version.
    """
    names = ["host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version"]
    key_line = ""
    if token:
        names[1:1] = ["x-acs-accesskey-id"]
        names[-2:-2] = ["x-acs-security-token"]
        key_line = f"x-acs-accesskey-id:{key_id.strip()}\n"
    signed = ";".join(names)
    head = f"{method}\n/\n"
    middle = (f"\nhost:{host.strip()}\n{key_line}x-acs-action:{action.strip()}\n"
              f"x-acs-content-sha256:{_EMPTY_SHA256}\nx-acs-date:")
    tail = f"\nx-acs-version:{version.strip()}\n\n{signed}\n{_EMPTY_SHA256}"
    return head, middle, tail, f"{V3_ALGORITHM} Credential={key_id},SignedHeaders={signed},Signature="


def sign_v1(
    action: str,
    params: Mapping[str, str],
    credentials: Credentials,
    *,
    nonce: str,
    date: str,
    version: str = API_VERSION,
    method: str = "POST",
) -> SignedRequest:
    """An RPC call signed with HMAC-SHA1: common and action parameters in a form body."""
    full = {
        **params,
        "Action": action,
        "Version": version,
        "Format": "JSON",
        "AccessKeyId": credentials.access_key_id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce,
        "Timestamp": date,
    }
    if credentials.security_token:
        full["SecurityToken"] = credentials.security_token
    full["Signature"] = v1_signature(credentials.access_key_secret, method=method, params=full)
    body = canonical_query(full).encode()
    return SignedRequest(method, "", {"content-type": "application/x-www-form-urlencoded"}, body)


def sign(
    scheme: str,
    action: str,
    params: Mapping[str, str],
    credentials: Credentials,
    *,
    host: str,
    nonce: str | None = None,
    date: str | None = None,
) -> SignedRequest:
    """Sign with ``scheme`` ("v3" or "v1") using a fresh nonce and time unless given."""
    nonce = nonce or new_nonce()
    date = date or timestamp()
    if scheme == "v3":
        return sign_v3(action, params, credentials, host=host, nonce=nonce, date=date)
    if scheme == "v1":
        return sign_v1(action, params, credentials, nonce=nonce, date=date)
    raise ValueError(f"unknown signature scheme {scheme!r}; expected v3 or v1")
