"""A local ApsaraVideo Live API: signed, quota-bound, stateful and fault-injecting.

    async with Simulator(SimConfig(access_keys={"LTAIdemo": "secret"}, qps=30, seed=7)) as sim:
        async with LiveClient(credentials=source, endpoint=sim.url) as client:
            await client.call("AddLiveSnapshotNotifyConfig", {...})
        print(sim.stats()["pace"])  # per "AccessKey/Action": calls, per_second, max_window
        print(sim.stats()["by_access_key"])  # {"LTAIdemo": 1}: arrivals per AccessKey

In the spirit of moto/LocalStack but stricter: it speaks the RPC protocol at
``/`` (GET or POST, parameters in the query or a form body), verifies both
signature schemes (``auth``), enforces the per-(AccessKey, action) quota
over a sliding one-second window (``quota``), checks parameters against its
own reading of the documentation (``constraints``), keeps the snapshot-callback
families' state (``state``), and injects seeded faults. Every answer has the
service's shape. ``GET /_sim/stats`` reports what happened. Any number of
AccessKeys (accounts) may be accepted at once.

Per call the order is: arrival jitter, authenticate, quota (the arrival is
stamped here), fault decision, latency, then check and apply. Secrets
(AccessKey secrets, auth keys) are never logged; the aiohttp access log is
off because the query carries them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fnmatch
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from ..signing import V3_ALGORITHM
from .auth import Authenticator
from .config import SimConfig
from .constraints import ERRORS, OPERATIONS, Operation, Reject, Verb, check, check_listing, resolve
from .quota import FAULT_CODES, Faults, Quota
from .state import State
from .streams import LiveStreams

__all__ = ["Simulator", "serve_forever"]

_FORM = "application/x-www-form-urlencoded"
_SAVE_EVERY_S = 5.0
# RFC 4122 version 4: the version nibble and the variant bits of a random 128-bit number.
_UUID4_CLEAR, _UUID4_SET = 0xF000 << 64 | 0xC000 << 48, 0x4000 << 64 | 0x8000 << 48


class Simulator:
    """The simulated Live API of one or more accounts, on a local port."""

    __slots__ = (
        "config", "url", "state", "in_flight", "_clock", "_wall", "_ids", "_auth", "_quota", "_faults", "_calls",
        "_total", "_stopping", "_runner", "_saver", "_streams",
    )

    def __init__(
        self,
        config: SimConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._faults = Faults(config)
        if config.qps < 1:
            raise ValueError(f"qps must be at least 1, got {config.qps}")
        self.config = config
        self.url = ""
        self.state = State(missing_domains=config.missing_domains, domain_regions=config.domain_regions)
        for domain in config.domains:
            self.state.add_domain(domain)
        #: requests being handled right now (a killed client's may still land)
        self.in_flight = 0
        self._clock = clock
        self._wall = wall_clock
        # Request ids come from their own generator so they never shift the seeded fault sequence.
        self._ids = random.Random()
        self._auth = Authenticator(config.access_keys, max_skew_s=config.max_skew_s, wall_clock=wall_clock)
        self._quota = Quota(keep=config.arrivals_kept)
        self._calls: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self._total = 0
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._saver: asyncio.Task[None] | None = None
        self._streams: LiveStreams | None = None
        if config.state_file is not None:
            self.state.load(Path(config.state_file))

    @property
    def notify_configs(self) -> dict[str, dict[str, str]]:
        """Snapshot-callback configs (AddLiveSnapshotNotifyConfig's family), lower-case domain -> fields."""
        return self.state.configs("notify")

    @property
    def callback_auth(self) -> dict[str, dict[str, str]]:
        """Callback authentication (SetSnapshotCallbackAuth's family), lower-case domain -> fields."""
        return self.state.configs("callback_auth")

    @property
    def applied(self) -> collections.Counter[tuple[str, str]]:
        """(action, lower-case domain) -> how many times a change was applied."""
        return self.state.applied

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
            self._saver = asyncio.create_task(self._save_periodically(Path(self.config.state_file)))
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
            await self.state.save(Path(self.config.state_file))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- observations ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Calls and their answers per action, the quota's view of the pace, faults, configs, streams."""
        applied: collections.Counter[str] = collections.Counter()
        for (action, _domain), n in self.state.applied.items():
            applied[action] += n
        seen = self._quota.stats()
        return {
            "total": self._total,
            "qps": self.config.qps,
            "calls": {action: dict(codes) for action, codes in self._calls.items()},
            "max_window": seen["max_window"],
            "max_window_accepted": seen["max_window_accepted"],
            "faults": dict(self._faults.counts),
            "configs": self.state.counts(),
            "applied": dict(applied),
            "in_flight": self.in_flight,
            "pace": seen["pace"],
            "by_access_key": seen["by_access_key"],
            "streams": self._streams.stats() if self._streams is not None else None,
        }

    @property
    def connections(self) -> int:
        """Client connections open now: a client that died is off this count once everything it sent is answered."""
        server = self._runner.server if self._runner is not None else None
        return len(server.connections) if server is not None else 0

    def arrivals(self) -> list[tuple[float, str, str]]:
        """(time, AccessKey, action) of the latest ``config.arrivals_kept`` authenticated arrivals, oldest first."""
        return self._quota.arrivals()

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
        if delay := self._faults.arrival_delay():
            await asyncio.sleep(delay)
        try:
            body = await request.read()
            query = dict(request.query)
            params = query
            if body and request.content_type == _FORM:
                params = dict(query)
                params.update(parse_qsl(body.decode(), keep_blank_values=True))
            authorization = request.headers.get("Authorization", "")
            v3 = authorization.startswith(V3_ALGORITHM)
            named = request.headers.get("x-acs-action") if v3 else params.get("Action")
            # Counted by name only when it names a known action: stats stay bounded whatever is sent.
            action = named if named in OPERATIONS else "?"
            if v3:
                access_key = self._auth.verify_v3(request, authorization, query, body)
                version = request.headers.get("x-acs-version")
            else:
                access_key = self._auth.verify_v1(request, params)
                version = params.get("Version")
            now = self._clock()
            self._quota.arrive(access_key, action, now)
            operation = resolve(named, version)
            limit = self.config.qps if operation.quota is None else operation.quota
            if not self._quota.admit(access_key, action, now, limit=limit):
                raise Reject("Throttling.User")
            if action in self.config.forbidden_actions:
                raise Reject("Forbidden.RAM")
        except Reject as reject:
            return self._error(request, action, reject)

        fault, after = self._faults.draw(action)
        if delay := self._faults.latency():
            await asyncio.sleep(delay)
        if fault is not None:
            if fault in ("hang", "late"):
                await self._hang(request)  # until the client gives up; a late call is then carried out
            if fault == "hang":
                return self._drop(request, action, fault)
            if fault == "drop" and not after:
                return self._drop(request, action, fault)
            if fault == "throttle":
                return self._error(request, action, Reject(self._faults.throttle_code()))
            if code := FAULT_CODES.get(fault):
                return self._error(request, action, Reject(code))
        try:
            body_out = self._apply(operation, params)
        except Reject as reject:
            answer: web.Response = self._error(request, action, reject)
        else:
            answer = self._ok(action, body_out)
        if fault == "internal_after":
            return self._error(request, action, Reject("InternalError"))
        if fault in ("drop", "late"):
            return self._drop(request, action, fault)
        return answer

    def _apply(self, operation: Operation, params: dict[str, str]) -> dict[str, Any]:
        """Check a call's parameters and carry it out: the answer's fields, or Reject."""
        if operation.verb is Verb.LIST:
            return self.state.listing(check_listing(params))
        domain = params.get("DomainName", "").lower()
        for pattern, region in self.config.domain_regions:  # the first pattern that matches says where it is
            if fnmatch.fnmatchcase(domain, pattern.lower()):
                if params.get("RegionId") != region:
                    raise Reject("InvalidDomain.NotFound")  # the domain is in another region
                break
        return self.state.apply(operation, check(operation, params))

    async def _hang(self, request: web.Request) -> None:
        """Hold the request until the client gives up or the simulator stops."""
        while not self._stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.25)

    async def _save_periodically(self, path: Path) -> None:
        while True:
            await asyncio.sleep(_SAVE_EVERY_S)
            if self.state.dirty:
                await self.state.save(path)

    # -- answers -----------------------------------------------------------------------------

    def _ok(self, action: str, fields: dict[str, Any]) -> web.Response:
        self._calls[action]["OK"] += 1
        body = {"RequestId": self._request_id(), **fields}
        return web.Response(body=orjson.dumps(body), content_type="application/json", charset="utf-8")

    def _error(self, request: web.Request, action: str, reject: Reject) -> web.Response:
        self._calls[action][reject.code] += 1
        status, message = ERRORS[reject.code]
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
