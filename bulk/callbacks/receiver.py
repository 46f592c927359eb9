"""A snapshot-callback receiver that knows which key generation signed each callback.

    receiver = Receiver([Path("keys/")], callback_hosts=["https://cb.example.com/snapshots"],
                        forward_url="http://127.0.0.1:9000/snapshots")
    await receiver.start(Listen(host="0.0.0.0", port=8080, tls=tls_context))
    receiver.admin_url                              # http://127.0.0.1:<port>: metrics, stats, drain, probes
    receiver.stats()["accepted"]                    # {"keys-2026-10": 1234, "keys-2026-11": 56}

Every POST is one callback. Its domain is the ``DomainName`` field of the
JSON body (the snapshot callback carries it); the signature is checked
with ``bulk.callbacks.verify`` against that domain's keys only, one per
generation that lists it, so a key of one domain never passes a callback of
another. The body is not signed: a domain's key can only vouch for that
domain's callbacks, which is exactly what this check enforces. When two
generations give a domain the same key, the callback counts for the older
one (the cautious answer for draining).

The signed host is the NotifyUrl's, from ``callback_hosts``, never from the
request's Host header (the sender chooses that). Every rejection gets the
same 401 body; the reason goes to the counts and to a log whose lines are
rate-limited. A callback identical to one already forwarded (same domain,
timestamp, signature and body) within the clock-skew window is answered
200 and counted, not forwarded again (see ``bulk.callbacks.replay``).

The callback port serves POSTs only, behind a guard with deadlines and a
connection cap (``bulk.callbacks.guard``); counts, drain answers and probes are
on a separate admin listener (``bulk.callbacks.admin``); its drain counters can
outlive a restart (``bulk.callbacks.counters``). Beyond loopback it wants TLS
(``Listen.tls``) or the word that a TLS terminator is in front
(``Listen.behind_tls_proxy``).

Keys files are re-read on ``request_reload()`` (SIGHUP under ``bulk callback
serve``) and whenever a change to them is finished (``look()``, polled: a
rename into place at once, a file written in place once it looks the same
twice). A new ``KeyRing`` is built aside and swapped in whole. A file that does
not load, or that others could have written or may read (see
``bulk.callbacks.keyring``), is left out, logged and counted (the file and the
reason, never a key), and its generation keeps its current keys; the other
files load as usual. The receiver refuses to start only when no generation
loads.

An accepted callback goes to ``forward_url`` (same body, its Content-Type, plus
``X-Bulk-Key-Generation``; never the ALI-LIVE-* headers, which a downstream log
would turn into replayable signatures) or to ``hook``; the downstream's answer
is passed back. When the downstream fails (an error status, no answer within
``forward_timeout``, or a hook that raises), the caller gets 502 so that the
service sends the callback again. Without either, an accepted callback gets 200
``ok``. """

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import aiohttp
import orjson
from aiohttp import web

from ..keys import KeysFileError
from .admin import Admin
from .counters import CountersFile
from .drain import DrainReport, assess
from .guard import ACCEPT_BACKLOG, ConnectionGuard, Limits
from .keyring import KeyRing, Signature, generation_name, load_keyring, settled, sources_signature
from .listen import LOOPBACK, Listen
from .metrics import exposition, private_registry
from .replay import LogThrottle, ReplayCache
from .series import Snapshot
from .signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, host_of, verify
from .tally import Tally

__all__ = ["GENERATION_HEADER", "REJECTED", "Callback", "Receiver", "serve_forever"]

log = logging.getLogger("bulk.receiver")

GENERATION_HEADER = "X-Bulk-Key-Generation"
#: the only request header passed downstream: the signature headers would hand out replayable signatures
_FORWARDED = ("Content-Type",)
#: the body of every rejection: which check failed goes to the metrics and the log, not to the sender
REJECTED = "rejected"
#: connections to the downstream at most
_FORWARD_POOL = 32
#: connections to the admin listener at most
_ADMIN_CONNECTIONS = 16


@dataclass(frozen=True, slots=True)
class Callback:
    """An accepted callback, as a hook receives it."""

    domain: str
    generation: str
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)


Hook = Callable[[Callback], Awaitable[object]]


DEFAULT_LIMITS = Limits()


class _DownstreamError(Exception):
    """The forward URL answered with an error status."""


class _Reject(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _reason_code(reason: str) -> str:
    """A bounded metric label from a verdict's reason.

    "timestamp too old (skew 400 s > 300 s)" -> "timestamp_too_old"
    """
    return reason.partition(" (")[0].replace(" ", "_")


def _domain_of(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _Reject("malformed_body", "the body is not JSON") from None
    domain = data.get("DomainName") if isinstance(data, dict) else None
    if not isinstance(domain, str) or not domain.strip():
        raise _Reject("no_domain", "no DomainName in the body")
    return domain.strip().lower()


class Receiver:
    """Checks each callback against its own domain's keys, counts it per key generation, passes it on."""

    __slots__ = (
        "_admin_token", "_clock", "_counters", "_forward_timeout", "_forward_url", "_guard", "_hook", "_hosts",
        "_in_flight", "_keeper", "_limits", "_log_rejections", "_max_skew", "_poll", "_previous_look", "_registry",
        "_reload_lock", "_reload_now", "_replays", "_ring", "_runners", "_session", "_signature", "_sources", "_tally",
        "_watcher", "admin_url", "url",
    )

    def __init__(
        self,
        sources: Sequence[Path],
        *,
        callback_hosts: Sequence[str] = (),
        forward_url: str | None = None,
        hook: Hook | None = None,
        max_skew: int = 120,
        replay_capacity: int = 100_000,
        poll_interval: float = 2.0,
        forward_timeout: float = 4.0,
        limits: Limits = DEFAULT_LIMITS,
        admin_token: str | None = None,
        counters: CountersFile | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``sources``: keys files or directories of them (read now: a bad file is left out and counted;
        KeysFileError if no generation loads).
        ``callback_hosts``: your NotifyUrl (or its host) that the service signs; several while a URL
        migration is in progress. Required to listen beyond loopback; on loopback the default is the
        listening address. Never taken from a request's Host header, which the sender chooses.
        ``max_skew``: seconds a timestamp may be off; also how long a forwarded callback is remembered
        so that the same one is not forwarded twice (at most ``replay_capacity`` of them).
        ``poll_interval``: seconds between checks for changed keys files (0: only on request).
        ``limits``: deadlines, connection cap and body size of the callback port (``bulk.callbacks.guard``).
        ``admin_token``: the admin listener's bearer token (None: none, loopback only). ``counters``: where
        the drain counters survive a restart (restored now, saved while running)."""
        if forward_url is not None and hook is not None:
            raise ValueError("give forward_url or hook, not both")
        if poll_interval < 0:
            raise ValueError(f"poll_interval must be 0 or more, got {poll_interval}")
        self.url = ""
        self.admin_url = ""
        self._hosts = tuple(dict.fromkeys(host_of(h) for h in callback_hosts if host_of(h)))
        if len(self._hosts) != len(callback_hosts):
            raise ValueError("every callback host must be a NotifyUrl or a host name")
        self._forward_url = forward_url
        self._hook = hook
        self._max_skew = max_skew
        self._poll = poll_interval
        self._forward_timeout = forward_timeout
        self._limits = limits
        self._admin_token = admin_token
        self._counters = counters
        self._clock = clock
        self._sources = tuple(Path(s) for s in sources)
        self._signature = sources_signature(self._sources)
        self._previous_look: Signature | None = None
        self._ring: KeyRing = load_keyring(self._sources)
        self._tally = Tally(started_at=clock(), generations=self._ring.names)
        if counters is not None:
            counters.restore(self._tally, now=clock())
        self._note_rejected(self._ring)
        # Read at each scrape: the counts and the keys as they are then (a reload swaps the ring).
        self._registry = private_registry(lambda: self._tally.families(self._ring, self._guard))
        self._replays = ReplayCache(capacity=replay_capacity)
        self._in_flight: dict[bytes, asyncio.Future[bool]] = {}
        self._log_rejections = LogThrottle()
        self._guard: ConnectionGuard | None = None
        self._runners: list[web.ServerRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._reload_now = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        log.info("keys loaded: %s", self._describe())

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, listen: Listen = LOOPBACK) -> str:
        """Open the callback port and the admin listener (port 0 picks a free one); return the callback URL."""
        listen.check(callback_hosts=self._hosts, admin_token=self._admin_token is not None)
        self._hosts = self._hosts or (host_of(listen.host),)
        # Descriptors beside the callers': the downstream's pool, the admin listener, listeners, files, logs.
        self._guard = ConnectionGuard(self._limits, reserve=_FORWARD_POOL + _ADMIN_CONNECTIONS + 32)
        try:
            port = await self._open(self._guard, self._route, listen.host, listen.port, listen.tls)
            self.url = f"{'https' if listen.tls else 'http'}://{_url_host(listen.host)}:{port}"
            if listen.admin_port is not None:
                admin = Admin(self, token=self._admin_token)
                guard = ConnectionGuard(Limits(max_connections=_ADMIN_CONNECTIONS), reserve=0)
                port = await self._open(guard, admin.handle, listen.admin_host, listen.admin_port, None)
                self.admin_url = f"http://{_url_host(listen.admin_host)}:{port}"
        except BaseException:
            await self.stop()
            raise
        if self._forward_url is not None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._forward_timeout),
                                                  connector=aiohttp.TCPConnector(limit=_FORWARD_POOL))
        self._watcher = asyncio.create_task(self._watch())
        if self._counters is not None:
            self._keeper = asyncio.create_task(self._counters.keep(self._tally, clock=self._clock))
        return self.url

    async def _open(self, guard: ConnectionGuard, handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
                    host: str, port: int, tls: ssl.SSLContext | None) -> int:
        runner = web.ServerRunner(guard.server(handler, access_log=None), shutdown_timeout=2.0)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, host, port, ssl_context=tls, backlog=ACCEPT_BACKLOG).start()
        return int(runner.addresses[-1][1])

    async def stop(self) -> None:
        """Close the listeners, the watcher, the counters' keeper (saving them) and the downstream session."""
        for task in filter(None, (self._watcher, self._keeper)):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watcher = self._keeper = None
        while self._runners:
            await self._runners.pop().cleanup()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ready(self) -> bool:
        """Keys are loaded and the callback port listens."""
        return bool(self._ring.generations) and bool(self.url)

    # -- keys --------------------------------------------------------------------------------

    @property
    def keyring(self) -> KeyRing:
        """The keys in use now."""
        return self._ring

    def request_reload(self) -> None:
        """Re-read the keys files soon, changed or not (what SIGHUP does)."""
        self._reload_now.set()

    async def reload(self) -> bool:
        """Re-read the keys files now; False (and the current keys kept) if they do not load."""
        async with self._reload_lock:
            # The signature is taken before reading: a change during the read shows at the next poll.
            signature = await asyncio.to_thread(sources_signature, self._sources)
            try:
                ring = await asyncio.to_thread(load_keyring, self._sources, current=self._ring)
            except KeysFileError as exc:
                self._signature = signature  # retried at the next change or request, not at every poll
                self._tally.reloads["failed"] += 1
                self._tally.last_reload_error = str(exc)
                log.error("keeping the current keys (%s): %s", ", ".join(self._ring.names), exc)
                return False
            self._note_rejected(ring)
            self._install(ring, signature)
            return not ring.rejected

    def _note_rejected(self, ring: KeyRing) -> None:
        for rejected in ring.rejected:
            self._tally.files_rejected[(rejected.file, rejected.kind)] += 1
            kept = f"; keeping the current keys of {generation_name(rejected.file)}" if rejected.kept else ""
            log.error("keys file %s not loaded (%s): %s%s", rejected.file, rejected.kind, rejected.reason, kept)

    def _install(self, ring: KeyRing, signature: Signature) -> None:
        """Swap ``ring`` in; a reload that left a file out counts as failed (and the reason is kept)."""
        before = set(self._ring.names)
        now = self._clock()
        for name in ring.names:
            self._tally.loaded_at.setdefault(name, now)
        self._ring = ring  # one assignment: a request sees the old keys or the new ones
        self._signature = signature
        self._tally.reloads["failed" if ring.rejected else "ok"] += 1
        self._tally.last_reload_error = "; ".join(r.reason for r in ring.rejected) or None
        added, dropped = set(ring.names) - before, before - set(ring.names)
        log.info("keys reloaded: %s%s%s", self._describe(),
                 f"; new: {', '.join(sorted(added))}" if added else "",
                 f"; retired: {', '.join(sorted(dropped))}" if dropped else "")

    def _describe(self) -> str:
        return ", ".join(f"{g.name} ({len(g.keys)} domains, {g.column})" for g in self._ring.generations)

    async def look(self) -> bool:
        """One look at the keys files, as taken every ``poll_interval``: reload them if they changed and
        the change is finished (``keyring.settled``); True if that happened."""
        now = await asyncio.to_thread(sources_signature, self._sources)
        if now == self._signature:
            self._previous_look = None
            return False
        if not settled(self._signature, now, self._previous_look):
            self._previous_look = now  # still being written, perhaps: wait for the next look
            return False
        self._previous_look = None
        return await self.reload()

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload_now.wait(), self._poll or None)
            if self._reload_now.is_set():
                self._reload_now.clear()
                await self.reload()
            else:
                await self.look()

    # -- callbacks ---------------------------------------------------------------------------

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, text="method not allowed", headers={"Allow": "POST"})
        return await self._receive(request)

    async def _receive(self, request: web.BaseRequest) -> web.Response:
        body = await request.read()
        ring = self._ring  # the same keys for the whole request, whatever a reload does meanwhile
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        given = request.headers.get(SIGNATURE_HEADER, "")
        try:
            domain = _domain_of(body)
            entries = ring.keys_for(domain)
            if not entries:
                raise _Reject("unknown_domain", "no key for this domain")
            keys = [key for _, key in entries]
            for host in self._hosts:
                verdict = verify(host, stamp, given, keys, now=self._clock(), max_skew=self._max_skew)
                if verdict.ok or verdict.reason != "signature matches no key":
                    break
            if not verdict.ok or verdict.key_index is None:
                raise _Reject(_reason_code(verdict.reason), verdict.reason)
        except _Reject as reject:
            self._tally.rejected[reject.code] += 1
            left_out = self._log_rejections.allow()
            if left_out is not None:
                log.warning("rejected a callback from %s: %s%s", request.remote, reject.reason,
                            f" ({left_out} more rejections not logged)" if left_out else "")
            return web.Response(status=401, text=REJECTED)
        key = ReplayCache.key(domain, stamp.strip(), given.strip(), body)
        while (pending := self._in_flight.get(key)) is not None:
            await asyncio.shield(pending)  # the same callback is being forwarded: its outcome decides
        if self._replays.seen(key, now=self._clock()):
            self._tally.duplicates += 1
            return web.Response(text="ok")
        generation = entries[verdict.key_index][0]
        self._tally.accept(domain, generation, now=self._clock())
        headers = {k: v for k, v in request.headers.items() if not k.upper().startswith("ALI-LIVE-")}
        done = self._in_flight[key] = asyncio.get_running_loop().create_future()
        try:
            response = await self._deliver(Callback(domain, generation, body, headers))
            if response.status < 300:
                self._replays.remember(key, expires=int(stamp) + self._max_skew)
        finally:
            del self._in_flight[key]
            done.set_result(True)
        return response

    async def _deliver(self, callback: Callback) -> web.Response:
        try:
            if self._hook is not None:
                await self._hook(callback)
            elif self._session is not None and self._forward_url is not None:
                return await self._forward(self._session, self._forward_url, callback)
        except Exception as exc:  # noqa: BLE001
            # A failing downstream must not lose the callback: the 502 makes the service send it again.
            self._tally.forward_failures += 1
            # Keys never reach a hook or the downstream, so their errors cannot hold one.
            log.error("downstream failed for a callback of %s: %s: %s", callback.domain, type(exc).__name__, exc)
            return web.Response(status=502, text="downstream failed")
        return web.Response(text="ok")

    async def _forward(self, session: aiohttp.ClientSession, url: str, callback: Callback) -> web.Response:
        headers = {name: callback.headers[name] for name in _FORWARDED if name in callback.headers}
        headers[GENERATION_HEADER] = callback.generation
        async with session.post(url, data=callback.body, headers=headers) as resp:
            answer = await resp.read()
            if resp.status >= 300:
                raise _DownstreamError(f"HTTP {resp.status}")
            return web.Response(status=resp.status, body=answer, content_type=resp.content_type)

    # -- observations ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The counts as one JSON-ready dict (what ``/_bulk/stats`` serves)."""
        return self._tally.stats(self._ring, self._guard, now=self._clock())

    def generations(self) -> list[dict[str, Any]]:
        """The loaded generations with their files' SHA-256 (``/_bulk/generations``)."""
        return self._tally.generations(self._ring)

    def metrics(self) -> str:
        """The counts in the Prometheus text format (what ``/metrics`` serves)."""
        return exposition(self._registry).decode()

    def drain_series(self) -> Snapshot:
        """Accepted callbacks per generation per minute, up to now on the receiver's clock: the drain page's."""
        return self._tally.series.snapshot(now=self._clock())

    def drain(self, generation: str, window: float) -> DrainReport:
        """This receiver's answer to ``bulk callback drain`` (raises UnknownGeneration)."""
        return assess(
            generation=generation, window=window, now=self._clock(),
            domains={g.name: g.domains for g in self._ring.generations},
            loaded_at=self._tally.loaded_at, last_seen=self._tally.last_seen,
        )


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


async def serve_forever(receiver: Receiver, listen: Listen, *, on_ready: Callable[[str], None]) -> None:
    """Run until cancelled (Ctrl-C or SIGTERM); SIGHUP re-reads the keys files."""
    url = await receiver.start(listen)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    handlers = {signal.SIGTERM: task.cancel, signal.SIGHUP: receiver.request_reload}  # type: ignore[union-attr]
    for sig, handler in handlers.items():
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(sig, handler)
    try:
        on_ready(f"bulk receiver listening on {url}")
        if receiver.admin_url:
            on_ready(f"bulk receiver admin on {receiver.admin_url}")
        await asyncio.Event().wait()
    finally:
        for sig in handlers:
            with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
                loop.remove_signal_handler(sig)
        await receiver.stop()
