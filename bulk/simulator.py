"""A local ApsaraVideo Live API: signed, quota-bound, stateful and fault-injecting.

    async with Simulator(SimConfig(access_keys={"LTAIdemo": "secret"}, qps=30, seed=7)) as sim:
        async with LiveClient(credentials=source, endpoint=sim.url) as client:
            await client.call("AddLiveSnapshotNotifyConfig", {...})
        print(sim.stats()["pace"])  # per "AccessKey/Action": calls, per_second, max_window
        print(sim.stats()["by_access_key"])  # {"LTAIdemo": 1}: arrivals per AccessKey

In the spirit of moto/LocalStack but stricter: it speaks the RPC protocol at
``/`` (GET or POST, parameters in the query or a form body), verifies both
ACS3-HMAC-SHA256 and HMAC-SHA1 signatures with the same functions the client
signs with, rejects replayed nonces and stale timestamps, enforces the
per-(AccessKey, action) quota over a sliding one-second window, keeps the
seven snapshot-callback actions' state, and injects seeded faults. Every
answer has the service's shape. ``GET /_sim/stats`` reports what happened.
Any number of AccessKeys (accounts) may be accepted at once; an access keys
file (``read_access_keys``) holds them off the command line.

Per call the order is: arrival jitter, authenticate, quota (the arrival is
stamped here), fault decision, latency, then validate and apply. Jitter,
faults and latency draw from generators seeded by ``seed``, jitter from its
own so that adding it leaves the fault sequence as it was. Secrets (AccessKey secrets, auth keys) are never
logged; the aiohttp access log is off because the query carries them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import csv
import fnmatch
import hashlib
import hmac
import io
import random
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from .actions import ACTIONS, API_VERSION, SECRET_PARAMS, Action, InvalidParams
from .files import write_atomic
from .keys import KeysFileError, _read_private
from .signing import V3_ALGORITHM, canonical_query, percent_encode, v1_signature, v3_signature
from .streams import LiveStreams, StreamsConfig

__all__ = [
    "FAULT_KINDS", "SimConfig", "Simulator", "max_in_window", "parse_access_key", "read_access_keys", "serve_forever",
]

FAULT_KINDS = ("internal_before", "internal_after", "unavailable", "throttle", "drop", "hang")

#: code -> (HTTP status, message), as the service words them
_ERRORS: dict[str, tuple[int, str]] = {
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "SignatureDoesNotMatch": (400, "Specified signature is not matched with our calculation."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "InvalidTimeStamp.Format": (400, "Specified time stamp or date value is not well formatted."),
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "InvalidAction.NotFound": (404, "Specified api is not found, please check your url and method."),
    "MissingParam": (400, "Parameter is missing, please check and try again."),
    "MalformedParam": (400, "Invalid parameter, please check and try again."),
    "ConfigAlreadyExists": (409, "Configuration already exists, please check and try again."),
    "ConfigNotFound": (400, "Configuration does not exist, please check and try again."),
    "InvalidDomain.NotFound": (404, "The domain provided does not belong to you."),
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Forbidden.RAM": (403, "User not authorized to operate on the specified resource, or this API doesn't support RAM."),
    "InternalError": (500, "The request processing has failed due to some unknown error, exception or failure."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
}

#: common parameters of both signature schemes, never passed to the action's validation
_COMMON = frozenset({
    "Action", "Version", "Format", "AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce",
    "SignatureType", "Timestamp", "Signature", "SecurityToken", "OwnerId",
})
_V3_AUTH = re.compile(rf"{V3_ALGORITHM} Credential=([^,\s]+),SignedHeaders=([^,\s]+),Signature=([0-9a-fA-F]+)")
_MASKED = SECRET_PARAMS | {"SecurityToken"}
_FORM = "application/x-www-form-urlencoded"
_STATE_VERSION = 1
_SAVE_EVERY_S = 5.0
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# RFC 4122 version 4: the version nibble and the variant bits of a random 128-bit number.
_UUID4_CLEAR, _UUID4_SET = 0xF000 << 64 | 0xC000 << 48, 0x4000 << 64 | 0x8000 << 48
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_ACCESS_KEYS_HEADER = ["AccessKeyId", "AccessKeySecret"]


@dataclass(slots=True)
class SimConfig:
    access_keys: dict[str, str]
    qps: float = 30.0
    latency_ms: float = 0.0
    #: standard deviation of a normal distribution around latency_ms, clipped at 0
    latency_jitter_ms: float = 0.0
    #: network jitter before a request arrives: a uniform delay in [0, this] before it is
    #: counted against the quota and stamped, so calls sent evenly can arrive bunched
    arrival_jitter_ms: float = 0.0
    #: total probability of an injected fault per call that passed the quota
    error_rate: float = 0.0
    #: error_rate is split evenly among these; a kind listed twice gets twice the share
    fault_kinds: tuple[str, ...] = ("internal_before", "internal_after", "unavailable", "throttle", "drop")
    seed: int | None = None
    #: fnmatch patterns (case-insensitive) of domains that do not exist on the account
    missing_domains: tuple[str, ...] = ()
    state_file: Path | None = None
    max_skew_s: float = 900.0
    #: injected faults hit only these actions (empty: every action)
    fault_actions: tuple[str, ...] = ()
    #: actions answered 403 Forbidden.RAM, as when the RAM policy lacks them (a switch tests can flip)
    forbidden_actions: tuple[str, ...] = ()
    #: live streams posting snapshot callbacks to the configured NotifyUrls (see bulk.streams)
    streams: StreamsConfig | None = None


class _Reject(Exception):
    """An API error answer; ``detail`` replaces the generic message (never a secret)."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The largest number of ``times`` inside any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        # Written as the window's own bound, s + window <= t, so float rounding agrees with it.
        while ordered[start] + window <= t:
            start += 1
        best = max(best, end - start + 1)
    return best


class _Window:
    """Times of one stream of events within the last second, and the most ever seen at once."""

    __slots__ = ("times", "peak")

    def __init__(self) -> None:
        self.times: collections.deque[float] = collections.deque()
        self.peak = 0

    def count_after_prune(self, now: float) -> int:
        # Half-open windows: an event exactly one second old no longer shares a window with now.
        times = self.times
        while times and times[0] + 1.0 <= now:
            times.popleft()
        return len(times)

    def add(self, now: float) -> None:
        self.times.append(now)
        self.peak = max(self.peak, len(self.times))


class Simulator:
    __slots__ = (
        "config", "url", "notify_configs", "callback_auth", "applied", "_clock", "_wall", "_rng", "_ids",
        "_jitter", "_arrivals", "_arrival_windows", "_quota_windows", "_nonces", "_nonce_expiry", "_calls", "_faults",
        "_total", "_missing", "_stopping", "_runner", "_saver", "_dirty", "in_flight", "_streams",
    )

    def __init__(
        self,
        config: SimConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = sorted(set(config.fault_kinds) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; expected some of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= config.error_rate <= 1.0:
            raise ValueError(f"error_rate must be between 0 and 1, got {config.error_rate}")
        if config.error_rate and not config.fault_kinds:
            raise ValueError("error_rate > 0 needs at least one fault kind")
        if config.qps < 1:
            raise ValueError(f"qps must be at least 1, got {config.qps}")
        if config.arrival_jitter_ms < 0:
            raise ValueError(f"arrival_jitter_ms must not be negative, got {config.arrival_jitter_ms}")
        self.config = config
        self.url = ""
        self.notify_configs: dict[str, dict[str, str]] = {}
        self.callback_auth: dict[str, dict[str, str]] = {}
        self.applied: collections.Counter[tuple[str, str]] = collections.Counter()
        self._clock = clock
        self._wall = wall_clock
        self._rng = random.Random(config.seed)
        self._jitter = random.Random(None if config.seed is None else f"arrival-jitter/{config.seed}")
        # Request ids come from their own generator so they never shift the seeded fault sequence.
        self._ids = random.Random()
        self._arrivals: list[tuple[float, str, str]] = []
        self._arrival_windows: dict[tuple[str, str], _Window] = collections.defaultdict(_Window)
        self._quota_windows: dict[tuple[str, str], _Window] = collections.defaultdict(_Window)
        self._nonces: set[tuple[str, str]] = set()
        self._nonce_expiry: collections.deque[tuple[float, tuple[str, str]]] = collections.deque()
        self._calls: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self._faults: collections.Counter[str] = collections.Counter()
        self._total = 0
        #: requests being handled right now (a killed client's may still land)
        self.in_flight = 0
        patterns = "|".join(fnmatch.translate(p.lower()) for p in config.missing_domains)
        self._missing = re.compile(patterns) if patterns else None
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._saver: asyncio.Task[None] | None = None
        self._dirty = False
        self._streams: LiveStreams | None = None
        if config.state_file is not None:
            self._load(Path(config.state_file))

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port); return the base URL."""
        app = web.Application()
        app.router.add_get("/_sim/stats", self._stats_handler)
        app.router.add_route("*", "/", self._handle)
        # No access log: request lines carry auth keys in the query string.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.url = f"http://{host}:{bound[1]}"
        if self.config.state_file is not None:
            self._saver = asyncio.create_task(self._save_periodically())
        if self.config.streams is not None:
            self._streams = LiveStreams(self.config.streams, notify_configs=self.notify_configs,
                                        callback_auth=self.callback_auth, wall_clock=self._wall)
            await self._streams.start()
        return self.url

    async def stop(self) -> None:
        """Release hanging requests, close the server and save the state."""
        self._stopping.set()
        if self._streams is not None:
            await self._streams.stop()  # kept: stats() still tells what the streams did
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.config.state_file is not None:
            await self._save()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- observations ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        applied: collections.Counter[str] = collections.Counter()
        for (action, _domain), n in self.applied.items():
            applied[action] += n
        return {
            "total": self._total,
            "qps": self.config.qps,
            "calls": {action: dict(codes) for action, codes in self._calls.items()},
            "max_window": max((w.peak for w in self._arrival_windows.values()), default=0),
            "max_window_accepted": max((w.peak for w in self._quota_windows.values()), default=0),
            "faults": dict(self._faults),
            "configs": {"notify": len(self.notify_configs), "callback_auth": len(self.callback_auth)},
            "applied": dict(applied),
            "in_flight": self.in_flight,
            "pace": self._pace(),
            "by_access_key": dict(collections.Counter(access_key for _, access_key, _ in self._arrivals)),
            "streams": self._streams.stats() if self._streams is not None else None,
        }

    def _pace(self) -> dict[str, dict[str, float]]:
        """Per "AccessKey/Action": arrivals, their rate between the first and the last, and the
        most in any one-second window (all arrivals, and those accepted by the quota)."""
        spans: dict[tuple[str, str], list[float]] = {}
        for t, access_key, action in self._arrivals:
            span = spans.setdefault((access_key, action), [0, t, t])
            span[0] += 1
            span[2] = t
        return {
            f"{access_key}/{action}": {
                "calls": n,
                "seconds": last - first,
                "per_second": (n - 1) / (last - first) if last > first else 0.0,
                "max_window": _peak(self._arrival_windows, (access_key, action)),
                "max_window_accepted": _peak(self._quota_windows, (access_key, action)),
            }
            for (access_key, action), (n, first, last) in spans.items()
        }

    def arrivals(self) -> list[tuple[float, str, str]]:
        return list(self._arrivals)

    async def _stats_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")

    # -- the RPC endpoint --------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        self._total += 1
        action = "?"
        if self.config.arrival_jitter_ms:
            await asyncio.sleep(self._jitter.uniform(0.0, self.config.arrival_jitter_ms) / 1000.0)
        try:
            body = await request.read()
            query = dict(request.query)
            params = query
            if body and request.content_type == _FORM:
                params = dict(query)
                params.update(parse_qsl(body.decode(), keep_blank_values=True))
            authorization = request.headers.get("Authorization", "")
            if authorization.startswith(V3_ALGORITHM):
                action = request.headers.get("x-acs-action") or "?"
                access_key = self._verify_v3(request, authorization, query, body)
                version = request.headers.get("x-acs-version")
            else:
                action = params.get("Action") or "?"
                access_key = self._verify_v1(request, params)
                version = params.get("Version")
            now = self._clock()
            self._arrivals.append((now, access_key, action))
            arrivals = self._arrival_windows[(access_key, action)]
            arrivals.count_after_prune(now)
            arrivals.add(now)
            spec = _resolve(action, version)
            quota = self._quota_windows[(access_key, action)]
            if quota.count_after_prune(now) + 1 > self.config.qps:
                raise _Reject("Throttling.User")
            quota.add(now)
            if action in self.config.forbidden_actions:
                raise _Reject("Forbidden.RAM")
        except _Reject as reject:
            return self._error(request, action, reject)

        fault, after = self._draw_fault(action)
        delay = self._draw_latency()
        if delay:
            await asyncio.sleep(delay)
        if fault is not None:
            self._faults[fault] += 1
            if fault == "hang":
                await self._hang(request)
                return self._drop(request, action, fault)
            if fault == "drop" and not after:
                return self._drop(request, action, fault)
            code = {"internal_before": "InternalError", "unavailable": "ServiceUnavailable",
                    "throttle": "Throttling.User"}.get(fault)
            if code is not None:
                return self._error(request, action, _Reject(code))
        try:
            body_out = self._apply(spec, params)
        except _Reject as reject:
            answer: web.Response = self._error(request, action, reject)
        else:
            answer = self._ok(action, body_out)
        if fault == "internal_after":
            return self._error(request, action, _Reject("InternalError"))
        if fault == "drop":
            return self._drop(request, action, fault)
        return answer

    def _verify_v3(self, request: web.Request, authorization: str, query: dict[str, str], body: bytes) -> str:
        match = _V3_AUTH.fullmatch(authorization)
        if match is None:
            raise _Reject("IncompleteSignature")
        access_key, signed, signature = match.groups()
        secret = self._secret(access_key)
        headers = request.headers
        date = headers.get("x-acs-date")
        nonce = headers.get("x-acs-signature-nonce")
        if not date:
            raise _Reject("MissingParam", "x-acs-date is mandatory for this action.")
        if not nonce:
            raise _Reject("MissingParam", "x-acs-signature-nonce is mandatory for this action.")
        when = self._check_time(date)
        payload = headers.get("x-acs-content-sha256", "")
        if payload != (hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256):
            raise _Reject("SignatureDoesNotMatch", "x-acs-content-sha256 does not match the request body.")
        values: dict[str, str] = {}
        for name in signed.split(";"):
            value = headers.get(name)
            if value is None:
                raise _Reject("SignatureDoesNotMatch", f"Signed header {name} is missing from the request.")
            values[name] = value
        _, expected = v3_signature(
            secret, method=request.method, path=request.path, query=query, headers=values, payload_sha256=payload
        )
        if not hmac.compare_digest(expected, signature.lower()):
            raise _Reject("SignatureDoesNotMatch")
        self._use_nonce(access_key, nonce, when)
        return access_key

    def _verify_v1(self, request: web.Request, params: dict[str, str]) -> str:
        for name in ("AccessKeyId", "Signature", "SignatureNonce", "Timestamp"):
            if not params.get(name):
                raise _Reject("MissingParam", f"{name} is mandatory for this action.")
        access_key = params["AccessKeyId"]
        secret = self._secret(access_key)
        when = self._check_time(params["Timestamp"])
        expected = v1_signature(secret, method=request.method, params=params)
        if not hmac.compare_digest(expected, params["Signature"]):
            raise _Reject("SignatureDoesNotMatch", _v1_mismatch(request.method, params))
        self._use_nonce(access_key, params["SignatureNonce"], when)
        return access_key

    def _secret(self, access_key: str) -> str:
        secret = self.config.access_keys.get(access_key)
        if secret is None:
            raise _Reject("InvalidAccessKeyId.NotFound")
        return secret

    def _check_time(self, value: str) -> float:
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            raise _Reject("InvalidTimeStamp.Format") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        when = stamp.timestamp()
        if abs(self._wall() - when) > self.config.max_skew_s:
            raise _Reject("InvalidTimeStamp.Expired")
        return when

    def _use_nonce(self, access_key: str, nonce: str, when: float) -> None:
        # A nonce only needs remembering while its signed time would still pass _check_time.
        now = self._wall()
        expiry = self._nonce_expiry
        while expiry and expiry[0][0] < now:
            self._nonces.discard(expiry.popleft()[1])
        key = (access_key, nonce)
        if key in self._nonces:
            raise _Reject("SignatureNonceUsed")
        self._nonces.add(key)
        expiry.append((when + self.config.max_skew_s, key))

    # -- faults and latency ------------------------------------------------------------------

    def _draw_fault(self, action: str) -> tuple[str | None, bool]:
        """Which fault this call gets (or None) and, for a drop, whether it comes after applying."""
        rate = self.config.error_rate
        if not rate or (self.config.fault_actions and action not in self.config.fault_actions):
            return None, False
        roll = self._rng.random()
        if roll >= rate:
            return None, False
        kinds = self.config.fault_kinds
        kind = kinds[min(int(roll / rate * len(kinds)), len(kinds) - 1)]
        return kind, kind == "drop" and self._rng.random() < 0.5

    def _draw_latency(self) -> float:
        mean, jitter = self.config.latency_ms, self.config.latency_jitter_ms
        if jitter:
            return max(0.0, self._rng.gauss(mean, jitter)) / 1000.0
        return mean / 1000.0

    async def _hang(self, request: web.Request) -> None:
        """Hold the request until the client gives up or the simulator stops."""
        while not self._stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.25)

    # -- state -------------------------------------------------------------------------------

    def _apply(self, spec: Action, params: dict[str, str]) -> dict[str, str]:
        try:
            # A V3 call carries its common parameters in headers: nothing to take out.
            values = spec.validate(params if _COMMON.isdisjoint(params) else
                                   {k: v for k, v in params.items() if k not in _COMMON})
        except InvalidParams as exc:
            raise _Reject(exc.code, str(exc)) from None
        domain = values["DomainName"]
        key = domain.lower()
        if self._missing is not None and self._missing.match(key):
            raise _Reject("InvalidDomain.NotFound")
        name = spec.name
        if spec.read_only:
            store = self.notify_configs if name == "DescribeLiveSnapshotNotifyConfig" else self.callback_auth
            # The docs list no not-found error for reads; an unconfigured domain reads as empty fields.
            found = store.get(key) or {}
            return {field: found.get(field, domain if field == "DomainName" else "") for field in spec.returns}
        if name == "AddLiveSnapshotNotifyConfig":
            if key in self.notify_configs:
                raise _Reject("ConfigAlreadyExists", f"A snapshot callback config already exists for {domain}.")
            self.notify_configs[key] = _notify_record(values, {})
        elif name == "UpdateLiveSnapshotNotifyConfig":
            current = self.notify_configs.get(key)
            if current is None:
                raise _Reject("ConfigNotFound", f"No snapshot callback config exists for {domain}.")
            self.notify_configs[key] = _notify_record(values, current)
        elif name == "DeleteLiveSnapshotNotifyConfig":
            self.notify_configs.pop(key, None)
        elif name == "SetSnapshotCallbackAuth":
            self.callback_auth[key] = {
                "DomainName": domain,
                "CallbackReqAuth": values["CallbackReqAuth"],
                "CallbackAuthKey": values["CallbackAuthKey"],
            }
        else:  # DeleteSnapshotCallbackAuth
            self.callback_auth.pop(key, None)
        self.applied[(name, key)] += 1
        self._dirty = True
        return {}

    def _load(self, path: Path) -> None:
        if not path.exists():
            return
        data = orjson.loads(path.read_bytes())
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"{path}: unsupported simulator state version {data.get('version')!r}")
        self.notify_configs = {k: dict(v) for k, v in data.get("notify", {}).items()}
        self.callback_auth = {k: dict(v) for k, v in data.get("callback_auth", {}).items()}

    async def _save(self) -> None:
        path = self.config.state_file
        if path is None:
            return
        # Serialise on the loop (the dicts change under a thread), write off it.
        blob = orjson.dumps(
            {"version": _STATE_VERSION, "notify": self.notify_configs, "callback_auth": self.callback_auth},
            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
        )
        self._dirty = False
        await asyncio.to_thread(write_atomic, Path(path), blob)

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(_SAVE_EVERY_S)
            if self._dirty:
                await self._save()

    # -- answers -----------------------------------------------------------------------------

    def _ok(self, action: str, fields: dict[str, str]) -> web.Response:
        self._calls[action]["OK"] += 1
        body = {"RequestId": self._request_id(), **fields}
        return web.Response(body=orjson.dumps(body), content_type="application/json", charset="utf-8")

    def _error(self, request: web.Request, action: str, reject: _Reject) -> web.Response:
        self._calls[action][reject.code] += 1
        status, message = _ERRORS[reject.code]
        request_id = self._request_id()
        body = {
            "RequestId": request_id,
            "HostId": request.host,
            "Code": reject.code,
            "Message": reject.detail or message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={reject.code}&product=live&requestId={request_id}",
        }
        return web.Response(
            body=orjson.dumps(body), status=status, content_type="application/json", charset="utf-8"
        )

    def _drop(self, request: web.Request, action: str, fault: str) -> web.Response:
        self._calls[action][fault] += 1
        if request.transport is not None:
            request.transport.close()
        # aiohttp quietly discards a response for a closed transport.
        return web.Response(status=500)

    def _request_id(self) -> str:
        # str(uuid.UUID(int=n, version=4)).upper(), at a third of its cost: it is made for every answer.
        h = f"{self._ids.getrandbits(128) & ~_UUID4_CLEAR | _UUID4_SET:032X}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def parse_access_key(pair: str) -> tuple[str, str]:
    """``ID:SECRET`` (``bulk sim serve --access-key``) as (ID, secret); ValueError never shows the secret."""
    key_id, sep, secret = pair.partition(":")
    if not sep:
        raise ValueError("is not ID:SECRET")
    key_id, secret = key_id.strip(), secret.strip()
    if problem := _access_key_problem(key_id, secret):
        raise ValueError(problem)
    return key_id, secret


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


def _peak(windows: dict[tuple[str, str], _Window], key: tuple[str, str]) -> int:
    window = windows.get(key)
    return window.peak if window is not None else 0


def _resolve(action: str, version: str | None) -> Action:
    if action == "?":
        raise _Reject("MissingParam", "Action is mandatory for this request.")
    if not version:
        raise _Reject("MissingParam", "Version is mandatory for this request.")
    if version != API_VERSION:
        raise _Reject("InvalidVersion")
    spec = ACTIONS.get(action)
    if spec is None:
        raise _Reject("InvalidAction.NotFound")
    return spec


def _v1_mismatch(method: str, params: dict[str, str]) -> str:
    """The service's message, which aliyun-python-sdk-core parses (it splits on the colon).

    The service shows its string to sign; secret values in it are masked here.
    """
    shown = {k: "******" if k in _MASKED else v for k, v in params.items() if k != "Signature"}
    to_sign = f"{method}&%2F&{percent_encode(canonical_query(shown))}"
    return f"{_ERRORS['SignatureDoesNotMatch'][1]} server string to sign is:{to_sign}"


def _notify_record(values: dict[str, str], current: dict[str, str]) -> dict[str, str]:
    """A stored notify config: given fields win, absent ones keep their current value."""
    return {
        "DomainName": values["DomainName"],
        "NotifyUrl": values.get("NotifyUrl", current.get("NotifyUrl", "")),
        "NotifyReqAuth": values.get("NotifyReqAuth", current.get("NotifyReqAuth", "no")),
        "NotifyAuthKey": values.get("NotifyAuthKey", current.get("NotifyAuthKey", "")),
    }


async def serve_forever(
    config: SimConfig, *, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Run a simulator until cancelled (Ctrl-C or SIGTERM); the state is saved on the way out."""
    simulator = Simulator(config)
    url = await simulator.start(host, port)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)  # type: ignore[union-attr]
    try:
        on_ready(f"bulk simulator listening on {url}")
        await asyncio.Event().wait()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.remove_signal_handler(signal.SIGTERM)
        await simulator.stop()
