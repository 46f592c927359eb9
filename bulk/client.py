"""An async client for the Live API's RPC endpoint, one signed call at a time.

    async with LiveClient(credentials=source, endpoint="http://127.0.0.1:8787") as client:
        outcome = await client.call("DescribeLiveSnapshotNotifyConfig", {"DomainName": "a.example.com"})
        if outcome.ok:
            print(outcome.request_id, outcome.body["NotifyUrl"])

Every call is signed afresh (new nonce and time) and ends in a typed
outcome, never an exception: ``Success`` or ``Failure``, the latter
classified ``transient`` (worth retrying) or permanent. One aiohttp session
with keep-alive serves the whole run. Pacing and retries are the caller's.

``call(..., at_wire=pacer.at_wire)`` awaits ``at_wire()`` once the
connection is ready and right before the request is written. The session's
connector awaits it when ``connect()`` returns: after DNS and the TCP and
TLS handshakes of a new connection (through a proxy's tunnel too), or at
once for a pooled one. aiohttp then writes the request without awaiting
anything else (verified in aiohttp 3.14's ClientSession._request and
ClientRequest.send: a request without a body, as ACS3 signs them, goes out
in that same step; an HMAC-SHA1 form body is written by a task of aiohttp's
own, a loop turn later on Python 3.11). The callable reaches the connector
through a context variable of the calling task. (Trace hooks would do the
same, at the cost of a dozen awaited signals on every request.)

The timeout (``timeout``, aiohttp's ``total``) covers the whole call,
including the wait at the wire (it would count against aiohttp's ``connect``
timeout too, which is not set). The pacer holds a call there only until the
oldest of the last ``quota`` sends leaves the window: never more than about
a second, and usually not at all, since admission already keeps the pace.
Keep the timeout well above a second. A call that times out while waiting
there was never sent; it still reads as a ``Timeout``, which the engine
treats as possibly sent: the safe reading.
"""

from __future__ import annotations

import copy
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from yarl import URL

from .credentials import CredentialsError, CredentialSource
from .errors import UsageError
from .proxies import proxy_for
from .redact import error_kind, redact, secret_values
from .signing import sign

__all__ = [
    "CONNECT_FAILED",
    "CREDENTIALS_UNAVAILABLE",
    "DEFAULT_ENDPOINT",
    "DEFAULT_REGION",
    "Failure",
    "LiveClient",
    "Outcome",
    "Success",
    "is_transient",
]

DEFAULT_ENDPOINT = "https://live.aliyuncs.com"
CREDENTIALS_UNAVAILABLE = "CredentialsUnavailable"
CONNECT_FAILED = "ConnectFailed"
DEFAULT_REGION = "cn-shanghai"


@dataclass(frozen=True, slots=True)
class Success:
    """A 200 answer with a JSON object body that has a RequestId and no Code; ``latency`` is the call's seconds."""

    request_id: str
    body: dict[str, Any] = field(repr=False)
    status: int
    latency: float
    ok: bool = field(default=True, init=False)


@dataclass(frozen=True, slots=True)
class Failure:
    """A call without success: the service's code and message, or bulk's own (Timeout, ConnectFailed, ...).

    ``transient`` says whether another attempt may succeed.
    """

    code: str
    message: str
    status: int | None
    request_id: str | None
    transient: bool
    latency: float
    #: False only when the request certainly never left (no credentials, no connection)
    sent: bool = True
    ok: bool = field(default=False, init=False)

    @property
    def throttled(self) -> bool:
        """A ``Throttling*`` code (Throttling, Throttling.User, Throttling.Api; HTTP 400 or 503).

        Not a plain 503 ServiceUnavailable: both official SDKs retry it as a normal
        error (aliyun-python-sdk-core's retry table lists it with InternalError under
        RetryableNormalErrors and only ``Throttling`` under RetryableThrottlingErrors;
        the Tea SDK calls an answer throttling only when it carries x-acs-retry-after).
        A 5xx that is not throttling is retried and never slows the pace.
        """
        return self.code.startswith("Throttling")

    @property
    def maybe_applied(self) -> bool:
        """Whether the call may have changed the service anyway: no clear refusal came back.

        A 4xx and a throttling answer (``Throttling*``, on a 400 or a 503) are
        refusals. Any other 5xx (a 503 ServiceUnavailable too, and a 503
        without an API error body, as a gateway may answer after forwarding),
        a 2xx that is not the service's success (a body that cannot be read,
        an error code, no RequestId), a timeout or a dropped connection after
        sending could have come after the change was made.
        """
        if not self.sent or self.throttled:
            return False
        return self.status is None or self.status >= 500 or self.status < 300

    @property
    def unanswered(self) -> bool:
        """Whether no answer says the service is done with a call that may have changed it: a timeout, a
        dropped connection, a gateway's page (every answer of the service's own carries a RequestId), a 2xx
        that is not its success (a 202 taken for later). The call may still be under way there."""
        return self.maybe_applied and (self.request_id is None or (self.status is not None and self.status < 300))

    @property
    def local(self) -> str | None:
        """"credentials" or "connect" for a failure on our side before sending, else None."""
        if self.sent:
            return None
        return {CREDENTIALS_UNAVAILABLE: "credentials", CONNECT_FAILED: "connect"}.get(self.code)

    @property
    def fatal(self) -> bool:
        """The account or the credentials are refused: every other call would fail the same way."""
        return self.code in _FATAL or self.code.startswith(("InvalidAccessKeyId", "InvalidSecurityToken"))


Outcome = Success | Failure


_FATAL = frozenset({"SignatureDoesNotMatch", "IncompleteSignature", "Forbidden.AccessKeyDisabled"})


def is_transient(status: int | None, code: str) -> bool:
    """5xx and any Throttling* code (whatever the status) are worth retrying."""
    return code.startswith("Throttling") or status is None or status >= 500


AtWire = Callable[[], Awaitable[None]]
#: the calling task's ``at_wire``, for the connector (each call runs in its row's own task)
_AT_WIRE: ContextVar[AtWire | None] = ContextVar("bulk_at_wire", default=None)


class _WireConnector(aiohttp.TCPConnector):
    """A connector that hands the calling task's ``at_wire`` the connection's last moment before the write."""

    async def connect(self, req: Any, traces: Any, timeout: aiohttp.ClientTimeout) -> Any:
        """The connection, once the calling task's ``at_wire`` (if any) lets the request go."""
        conn = await super().connect(req, traces, timeout)
        if (at_wire := _AT_WIRE.get()) is not None:
            try:
                await at_wire()
            except BaseException:
                conn.release()  # cancelled while waiting (a stop, a timeout): the connection goes back
                raise
        return conn


class LiveClient:
    """Signs and sends Live API calls over one keep-alive session; see the module docstring."""

    __slots__ = ("_credentials", "_base", "_host", "_region", "_scheme", "_timeout", "_session", "_limit", "_proxy",
                 "_ssl", "_owner")

    def __init__(
        self,
        *,
        credentials: CredentialSource,
        endpoint: str = DEFAULT_ENDPOINT,
        region: str | None = DEFAULT_REGION,
        signature: str = "v3",
        timeout: float = 10.0,
        connections: int = 100,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``ssl_context`` replaces the system's trust store (a private CA; a TLS test server)."""
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if parts.username is not None or parts.password is not None:
            # Never echoed: the user info may hold a password.
            raise UsageError("endpoint must be a host (such as live.aliyuncs.com), without user info")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"endpoint must be an http(s) URL, got {endpoint!r}")
        if signature not in ("v3", "v1"):
            raise UsageError(f"signature must be v3 or v1, got {signature!r}")
        self._credentials = credentials
        self._base = f"{parts.scheme}://{parts.netloc}/"
        self._host = parts.netloc
        self._region = region
        self._scheme = signature
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limit = connections
        self._proxy = proxy_for(self._base)  # HTTPS_PROXY, HTTP_PROXY, NO_PROXY
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None
        self._owner: LiveClient | None = None

    @property
    def region(self) -> str | None:
        """The RegionId sent with a call whose parameters name none."""
        return self._region

    def with_credentials(self, credentials: CredentialSource) -> LiveClient:
        """The same client signing with other credentials (another account), on this client's connections.

        The new one is closed with this one; closing it alone does nothing.
        """
        other = copy.copy(self)
        other._credentials = credentials
        other._owner = self._owner or self
        other._session = None
        return other

    async def __aenter__(self) -> LiveClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session; only the client that owns it does (one from ``with_credentials`` shares it)."""
        if self._owner is None and self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._owner is not None:
            return self._owner._get_session()
        if self._session is None:
            # Created lazily so the session binds to the loop that uses it.
            connector = _WireConnector(limit=self._limit, limit_per_host=self._limit, keepalive_timeout=30,
                                       ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, proxy=self._proxy[0])
        return self._session

    async def access_key_id(self) -> str:
        """The AccessKey calls are signed with: pacing is kept per account."""
        return (await self._credentials.get()).access_key_id

    @property
    def endpoint(self) -> str:
        """The endpoint's scheme and host, without the trailing slash."""
        return self._base.rstrip("/")

    async def call(self, action: str, params: Mapping[str, str], *, at_wire: AtWire | None = None) -> Outcome:
        """Sign and send one call; classify whatever comes back.

        ``at_wire`` is awaited right before the request is written (see the module docstring).
        """
        full = dict(params)
        if self._region and "RegionId" not in full:
            full["RegionId"] = self._region
        try:
            creds = await self._credentials.get()
        except CredentialsError as exc:
            # The chain itself failed (an STS or metadata endpoint): ours, not the service's, and worth a retry.
            return Failure(CREDENTIALS_UNAVAILABLE, str(exc), None, None, True, 0.0, sent=False)
        request = sign(self._scheme, action, full, creds, host=self._host)
        url = URL(self._base + ("?" + request.query if request.query else ""), encoded=True)
        wire = _AT_WIRE.set(at_wire)
        started = time.monotonic()
        try:
            async with self._get_session().request(
                request.method, url, headers=request.headers, data=request.body or None, proxy_headers=self._proxy[1]
            ) as response:
                raw = await response.read()
                status = response.status
        except TimeoutError:
            return Failure("Timeout", "no response within the timeout", None, None, True, time.monotonic() - started)
        except aiohttp.ClientConnectorError as exc:
            # No connection was made, so nothing was sent.
            return Failure(CONNECT_FAILED, f"cannot connect to {self._host}: {error_kind(exc.os_error)}", None, None,
                           True, time.monotonic() - started, sent=False)
        except aiohttp.ClientError as exc:
            # Never the exception's text: aiohttp's holds the whole URL, and a V3 URL every parameter.
            return Failure("ConnectionError", _client_error(exc, self._host), None, None, True,
                           time.monotonic() - started)
        finally:
            _AT_WIRE.reset(wire)
        return _classify(status, raw, time.monotonic() - started, full)


def _client_error(exc: aiohttp.ClientError, host: str) -> str:
    """What bulk knows of a call that ended without a readable answer: the error's kind and status, never its text."""
    status = getattr(exc, "status", None)
    said = f", HTTP status {status}" if isinstance(status, int) and status else ""
    return f"{error_kind(exc)}{said}: no readable answer from {host}; the call may have reached the service"


def _classify(status: int, raw: bytes, latency: float, sent: Mapping[str, str]) -> Outcome:
    try:
        body = orjson.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except ValueError:
        return Failure("BadResponse", f"HTTP {status} with a body that is not a JSON object", status, None, True,
                       latency)
    request_id = str(body.get("RequestId") or "") or None
    said = redact(str(body.get("Code") or ""), secrets=secret_values(sent))
    if status < 300:
        if status == 200 and request_id is not None and not said:
            return Success(request_id, body, status, latency)
        # Not the service's success (a 200 with a RequestId and no Code): an error body at a 2xx, a proxy's
        # answer, a write taken for later (202). It proves nothing, either way.
        what = f"the error code {said}" if said else "no RequestId" if request_id is None else "no 200"
        return Failure("BadResponse", f"HTTP {status} with {what}: not the service's answer of success", status,
                       request_id, True, latency)
    code = said or f"HTTP{status}"
    message = redact(str(body.get("Message") or ""), secrets=secret_values(sent))
    return Failure(code, message, status, request_id, is_transient(status, code), latency)

