"""Who is calling: the simulator's check of both signature schemes, nonces and timestamps.

    auth = Authenticator({"LTAIdemo": "secret"}, max_skew_s=900)
    access_key = auth.verify_v3(request, authorization, query, body)   # or Reject("SignatureDoesNotMatch")
    access_key = auth.verify_v1(request, params)
    keys = read_access_keys(Path("accounts.csv"))                      # AccessKeyId,AccessKeySecret, mode 0600
    secret = read_secret("@/run/secrets/sim-secret")                   # a secret off the command line

ACS3-HMAC-SHA256 and HMAC-SHA1 are checked with the functions bulk signs
with (``bulk.signing``), which the tests hold byte for byte against the
official SDKs: the simulator's second opinion is on parameters, not on
signing. A nonce is refused when seen again while its signed time is still
within the accepted skew, and only that long is it remembered. The V1
mismatch message shows the server's string to sign, as the service does,
with secret values masked.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import hmac
import io
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from ..keys import KeysFileError, _read_private
from ..signing import (
    V3_ALGORITHM,
    canonical_query,
    percent_encode,
    v1_signature,
    v3_signature,
)
from .constraints import ERRORS, SECRET_PARAMS, Reject

__all__ = ["Authenticator", "parse_access_key", "read_access_keys", "read_secret"]

_V3_AUTH = re.compile(rf"{V3_ALGORITHM} Credential=([^,\s]+),SignedHeaders=([^,\s]+),Signature=([0-9a-fA-F]+)")
_MASKED = SECRET_PARAMS | {"SecurityToken"}
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_ACCESS_KEYS_HEADER = ["AccessKeyId", "AccessKeySecret"]


class Authenticator:
    """Accepted AccessKeys, and the nonces seen within the accepted clock skew."""

    __slots__ = ("access_keys", "max_skew_s", "_wall", "_nonces", "_nonce_expiry")

    def __init__(
        self, access_keys: Mapping[str, str], *, max_skew_s: float, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.access_keys = access_keys
        self.max_skew_s = max_skew_s
        self._wall = wall_clock
        self._nonces: set[tuple[str, str]] = set()
        self._nonce_expiry: collections.deque[tuple[float, tuple[str, str]]] = collections.deque()

    def verify_v3(self, request: web.Request, authorization: str, query: Mapping[str, str], body: bytes) -> str:
        """The AccessKey that signed an ACS3-HMAC-SHA256 request, or Reject."""
        match = _V3_AUTH.fullmatch(authorization)
        if match is None:
            raise Reject("IncompleteSignature")
        access_key, signed, signature = match.groups()
        secret = self._secret(access_key)
        headers = request.headers
        date = headers.get("x-acs-date")
        nonce = headers.get("x-acs-signature-nonce")
        if not date:
            raise Reject("MissingParam", "x-acs-date is mandatory for this action.")
        if not nonce:
            raise Reject("MissingParam", "x-acs-signature-nonce is mandatory for this action.")
        when = self._check_time(date)
        payload = headers.get("x-acs-content-sha256", "")
        if payload != (hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256):
            raise Reject("SignatureDoesNotMatch", "x-acs-content-sha256 does not match the request body.")
        values: dict[str, str] = {}
        for name in signed.split(";"):
            value = headers.get(name)
            if value is None:
                raise Reject("SignatureDoesNotMatch", f"Signed header {name} is missing from the request.")
            values[name] = value
        _, expected = v3_signature(
            secret, method=request.method, path=request.path, query=query, headers=values, payload_sha256=payload
        )
        if not hmac.compare_digest(expected, signature.lower()):
            raise Reject("SignatureDoesNotMatch")
        self._use_nonce(access_key, nonce, when)
        return access_key

    def verify_v1(self, request: web.Request, params: Mapping[str, str]) -> str:
        """The AccessKey that signed an HMAC-SHA1 request, or Reject."""
        for name in ("AccessKeyId", "Signature", "SignatureNonce", "Timestamp"):
            if not params.get(name):
                raise Reject("MissingParam", f"{name} is mandatory for this action.")
        access_key = params["AccessKeyId"]
        secret = self._secret(access_key)
        when = self._check_time(params["Timestamp"])
        expected = v1_signature(secret, method=request.method, params=params)
        if not hmac.compare_digest(expected, params["Signature"]):
            raise Reject("SignatureDoesNotMatch", _v1_mismatch(request.method, params))
        self._use_nonce(access_key, params["SignatureNonce"], when)
        return access_key

    def _secret(self, access_key: str) -> str:
        secret = self.access_keys.get(access_key)
        if secret is None:
            raise Reject("InvalidAccessKeyId.NotFound")
        return secret

    def _check_time(self, value: str) -> float:
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise Reject("InvalidTimeStamp.Format") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        when = stamp.timestamp()
        if abs(self._wall() - when) > self.max_skew_s:
            raise Reject("InvalidTimeStamp.Expired")
        return when

    def _use_nonce(self, access_key: str, nonce: str, when: float) -> None:
        # A nonce only needs remembering while its signed time would still pass _check_time.
        now = self._wall()
        expiry = self._nonce_expiry
        while expiry and expiry[0][0] < now:
            self._nonces.discard(expiry.popleft()[1])
        key = (access_key, nonce)
        if key in self._nonces:
            raise Reject("SignatureNonceUsed")
        self._nonces.add(key)
        expiry.append((when + self.max_skew_s, key))


def _v1_mismatch(method: str, params: Mapping[str, str]) -> str:
    """The service's message, which aliyun-python-sdk-core parses (it splits on the colon).

    The service shows its string to sign; secret values in it are masked here.
    """
    shown = {k: "******" if k in _MASKED else v for k, v in params.items() if k != "Signature"}
    to_sign = f"{method}&%2F&{percent_encode(canonical_query(shown))}"
    return f"{ERRORS['SignatureDoesNotMatch'][1]} server string to sign is:{to_sign}"


def parse_access_key(pair: str) -> tuple[str, str]:
    """``ID:SECRET`` or ``ID:@FILE`` (``bulk sim serve --access-key``) as (ID, secret).

    ValueError never shows the secret.
    """
    key_id, sep, secret = pair.partition(":")
    if not sep:
        raise ValueError("is not ID:SECRET")
    key_id, secret = key_id.strip(), read_secret(secret.strip())
    if problem := _access_key_problem(key_id, secret):
        raise ValueError(problem)
    return key_id, secret


def read_secret(value: str) -> str:
    """``@FILE``: the secret that FILE holds (one line, owner-only); any other value is the secret itself.

    A secret typed on a command line is visible in ``ps`` and kept in shell
    history; one in a file is not. ValueError names the file, never a secret.
    """
    if not value.startswith("@"):
        return value
    if not value[1:]:
        raise ValueError("@ names no file (e.g. @/run/secrets/sim-secret)")
    path = Path(value[1:])
    try:
        data = _read_private(path)
    except KeysFileError as exc:
        raise ValueError(str(exc)) from None  # it names the file, and chmod 600 when others may read it
    try:
        secret = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        raise ValueError(f"secret file {path} is not UTF-8") from None
    if not secret or any(c.isspace() for c in secret):
        raise ValueError(f"secret file {path} must hold one secret on one line")
    return secret


def read_access_keys(path: Path) -> dict[str, str]:
    """AccessKey ID -> secret from a CSV file with the header ``AccessKeyId,AccessKeySecret``.

    The file holds secrets: one that group or others may read is refused, as
    keys files are. ValueError names the file and the line, never a secret.
    """
    try:
        data = _read_private(path)
    except KeysFileError as exc:
        raise ValueError(str(exc)) from None  # it names the file, and chmod 600 when others may read it
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"access keys file {path} is not UTF-8 (byte {exc.start})") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    if [h.strip() for h in next(rows, [])] != _ACCESS_KEYS_HEADER:
        raise ValueError(f"access keys file {path} must start with the line {','.join(_ACCESS_KEYS_HEADER)}")
    keys: dict[str, str] = {}
    for line, row in enumerate(rows, 2):
        if not "".join(row).strip():
            continue
        if len(row) != 2:
            raise ValueError(f"access keys file {path}: line {line} must have two fields")
        key_id, secret = row[0].strip(), row[1].strip()
        if problem := _access_key_problem(key_id, secret):
            raise ValueError(f"access keys file {path}: line {line}: {problem}")
        if key_id in keys:
            raise ValueError(f"access keys file {path}: line {line}: {key_id} is listed twice")
        keys[key_id] = secret
    if not keys:
        raise ValueError(f"access keys file {path} holds no AccessKey")
    return keys


def _access_key_problem(key_id: str, secret: str) -> str | None:
    if _ACCESS_KEY_ID.fullmatch(key_id) is None:
        return "the AccessKey ID must be 1 to 128 letters, digits, '.', '_' or '-'"
    if not secret or any(c.isspace() for c in secret):
        return "the secret must not be empty nor hold white space"
    return None
