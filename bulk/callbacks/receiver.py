"""A snapshot-callback receiver that knows which key generation signed each callback.

    async with Receiver([Path("keys/")], forward_url="http://127.0.0.1:9000/snapshots") as receiver:
        url = receiver.url                         # give it as NotifyUrl (behind your TLS proxy)
        ...
        receiver.stats()["accepted"]                # {"keys-2026-10": 1234, "keys-2026-11": 56}

Every POST is one callback. Its domain is the ``DomainName`` field of the
JSON body (the snapshot callback carries it); the signature is checked
with ``bulk.callbacks.verify`` against that domain's keys only, one per
generation that lists it, so a key of one domain never passes a callback of
another. The body is not signed: a domain's key can only vouch for that
domain's callbacks, which is exactly what this check enforces. When two
generations give a domain the same key, the callback counts for the older
one (the cautious answer for draining).

Counts: accepted callbacks per (domain, generation) with the time of the
last one, rejected ones per reason. ``GET /metrics`` serves them in the
Prometheus text format, ``GET /_bulk/stats`` as JSON, and
``GET /_bulk/drain?generation=G&window=SECONDS`` answers ``bulk callback
drain`` (see ``bulk.callbacks.drain``).

Keys files are re-read on ``request_reload()`` (SIGHUP under ``bulk callback
serve``) and whenever one changes (inode, mtime or size, polled). A new
``KeyRing`` is built aside and swapped in whole; a file that does not load
keeps the current keys, and the reason (never a key) is logged.

An accepted callback goes to ``forward_url`` (same body, its Content-Type
and ALI-LIVE-* headers, plus ``X-Bulk-Key-Generation``) or to ``hook``; the
downstream's answer is passed back. When the downstream fails (an error
status, no answer within ``forward_timeout``, or a hook that raises), the
caller gets 502 so that the service sends the callback again. Without either,
an accepted callback gets 200 ``ok``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from ..keys import KeysFileError
from .drain import DrainReport, UnknownGeneration, assess
from .guard import ConnectionGuard, Limits
from .keyring import KeyRing, load_keyring, sources_signature
from .metrics import CONTENT_TYPE, Family, render
from .replay import LogThrottle, ReplayCache
from .signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, host_of, verify

__all__ = ["Callback", "GENERATION_HEADER", "Receiver", "serve_forever"]

log = logging.getLogger("bulk.receiver")

GENERATION_HEADER = "X-Bulk-Key-Generation"
#: the only request header passed downstream: the signature headers would hand out replayable signatures
_FORWARDED = ("Content-Type",)
#: the body of every rejection: which check failed goes to the metrics and the log, not to the sender
REJECTED = "rejected"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
#: connections to the downstream at most
_FORWARD_POOL = 32


@dataclass(frozen=True, slots=True)
class Callback:
    """An accepted callback, as a hook receives it."""

    domain: str
    generation: str
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)


Hook = Callable[[Callback], Awaitable[object]]


class _DownstreamError(Exception):
    """The forward URL answered with an error status."""


class _Reject(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _reason_code(reason: str) -> str:
    """A bounded metric label from a verdict's reason: "timestamp too old (skew 400 s > 300 s)" -> "timestamp_too_old"."""
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
    __slots__ = (
        "url", "_sources", "_hosts", "_forward_url", "_hook", "_max_skew", "_poll", "_forward_timeout", "_clock",
        "_ring", "_signature", "_loaded_at", "_started_at", "_accepted", "_last_seen", "_rejected", "_reloads",
        "_last_reload_error", "_forward_failures", "_runner", "_session", "_watcher", "_reload_now", "_reload_lock",
        "_limits", "_guard", "_replays", "_in_flight", "_duplicates", "_log_rejections",
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
        limits: Limits = Limits(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``sources``: keys files or directories of them (read now: a bad one raises KeysFileError).
        ``callback_hosts``: your NotifyUrl (or its host) that the service signs; several while a URL
        migration is in progress. Required to listen beyond loopback; on loopback the default is the
        listening address. Never taken from a request's Host header, which the sender chooses.
        ``max_skew``: seconds a timestamp may be off; also how long a forwarded callback is remembered
        so that the same one is not forwarded twice (at most ``replay_capacity`` of them).
        ``poll_interval``: seconds between checks for changed keys files (0: only on request).
        ``limits``: deadlines, connection cap and body size of the listener (see ``bulk.callbacks.guard``)."""
        if forward_url is not None and hook is not None:
            raise ValueError("give forward_url or hook, not both")
        if poll_interval < 0:
            raise ValueError(f"poll_interval must be 0 or more, got {poll_interval}")
        self.url = ""
        self._sources = tuple(Path(s) for s in sources)
        self._hosts = tuple(dict.fromkeys(host_of(h) for h in callback_hosts if host_of(h)))
        if len(self._hosts) != len(callback_hosts):
            raise ValueError("every callback host must be a NotifyUrl or a host name")
        self._forward_url = forward_url
        self._hook = hook
        self._max_skew = max_skew
        self._poll = poll_interval
        self._forward_timeout = forward_timeout
        self._clock = clock
        self._signature = sources_signature(self._sources)
        self._ring: KeyRing = load_keyring(self._sources)
        self._started_at = clock()
        self._loaded_at: dict[str, float] = dict.fromkeys(self._ring.names, self._started_at)
        self._accepted: collections.Counter[tuple[str, str]] = collections.Counter()
        self._last_seen: dict[tuple[str, str], float] = {}
        self._rejected: collections.Counter[str] = collections.Counter()
        self._reloads: collections.Counter[str] = collections.Counter()
        self._last_reload_error: str | None = None
        self._forward_failures = 0
        self._replays = ReplayCache(capacity=replay_capacity)
        self._in_flight: dict[bytes, asyncio.Future[bool]] = {}
        self._duplicates = 0
        self._log_rejections = LogThrottle()
        self._limits = limits
        self._guard: ConnectionGuard | None = None
        self._runner: web.ServerRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._reload_now = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        log.info("keys loaded: %s", self._describe())

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port); return the base URL."""
        if host_of(host) not in _LOOPBACK and not self._hosts:
            raise ValueError(f"listening on {host} needs the callback host (--callback-host): the host "
                             "the service signs, from your NotifyUrl")
        self._hosts = self._hosts or (host_of(host),)
        # Descriptors beside the callers': the downstream's pool, the admin listener, listeners, files, logs.
        self._guard = ConnectionGuard(self._limits, reserve=_FORWARD_POOL + 48)
        self._runner = web.ServerRunner(self._guard.server(self._route, access_log=None), shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        if self._forward_url is not None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._forward_timeout),
                                                  connector=aiohttp.TCPConnector(limit=_FORWARD_POOL))
        self._watcher = asyncio.create_task(self._watch())
        bound = self._runner.addresses[0]
        self.url = f"http://{host}:{bound[1]}"
        return self.url

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- keys --------------------------------------------------------------------------------

    @property
    def keyring(self) -> KeyRing:
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
                ring = await asyncio.to_thread(load_keyring, self._sources)
            except KeysFileError as exc:
                self._signature = signature  # retried at the next change or request, not at every poll
                self._reloads["failed"] += 1
                self._last_reload_error = str(exc)
                log.error("keeping the current keys (%s): %s", ", ".join(self._ring.names), exc)
                return False
            self._install(ring, signature)
            return True

    def _install(self, ring: KeyRing, signature: tuple[tuple[str, int, int, int], ...]) -> None:
        before = set(self._ring.names)
        now = self._clock()
        for name in ring.names:
            self._loaded_at.setdefault(name, now)
        self._ring = ring  # one assignment: a request sees the old keys or the new ones
        self._signature = signature
        self._reloads["ok"] += 1
        self._last_reload_error = None
        added, dropped = set(ring.names) - before, before - set(ring.names)
        log.info("keys reloaded: %s%s%s", self._describe(),
                 f"; new: {', '.join(sorted(added))}" if added else "",
                 f"; retired: {', '.join(sorted(dropped))}" if dropped else "")

    def _describe(self) -> str:
        return ", ".join(f"{g.name} ({len(g.keys)} domains, {g.column})" for g in self._ring.generations)

    async def _watch(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload_now.wait(), self._poll or None)
            forced = self._reload_now.is_set()
            self._reload_now.clear()
            if forced or await asyncio.to_thread(sources_signature, self._sources) != self._signature:
                await self.reload()

    # -- callbacks ---------------------------------------------------------------------------

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "POST":
            return await self._receive(request)
        handler = self._routes.get(request.path) if request.method == "GET" else None
        return await handler(self, request) if handler else web.Response(status=404, text="not found")

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
            self._rejected[reject.code] += 1
            left_out = self._log_rejections.allow()
            if left_out is not None:
                log.warning("rejected a callback from %s: %s%s", request.remote, reject.reason,
                            f" ({left_out} more rejections not logged)" if left_out else "")
            return web.Response(status=401, text=REJECTED)
        key = ReplayCache.key(domain, stamp.strip(), given.strip(), body)
        while (pending := self._in_flight.get(key)) is not None:
            await asyncio.shield(pending)  # the same callback is being forwarded: its outcome decides
        if self._replays.seen(key, now=self._clock()):
            self._duplicates += 1
            return web.Response(text="ok")
        generation = entries[verdict.key_index][0]
        self._accepted[(domain, generation)] += 1
        self._last_seen[(domain, generation)] = self._clock()
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
        except Exception as exc:  # a failing downstream must not lose the callback: the service retries on 502
            self._forward_failures += 1
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
        per_generation: collections.Counter[str] = collections.Counter()
        domains: dict[str, dict[str, dict[str, float]]] = {}
        for (domain, generation), count in sorted(self._accepted.items()):
            per_generation[generation] += count
            seen = {"count": count, "last_seen": self._last_seen[(domain, generation)]}
            domains.setdefault(domain, {})[generation] = seen
        return {
            "now": self._clock(),
            "started_at": self._started_at,
            "generations": [
                {"name": g.name, "path": str(g.path), "column": g.column, "domains": len(g.keys),
                 "loaded_at": self._loaded_at[g.name]}
                for g in self._ring.generations
            ],
            "accepted": {g: per_generation[g] for g in sorted({*self._ring.names, *per_generation})},
            "domains": domains,
            "rejected": dict(self._rejected),
            "reloads": {"ok": self._reloads["ok"], "failed": self._reloads["failed"]},
            "last_reload_error": self._last_reload_error,
            "forward_failures": self._forward_failures,
            "duplicates": self._duplicates,
            "connections": {"open": self._guard.open if self._guard else 0,
                            "closed": dict(self._guard.closed) if self._guard else {}},
        }

    def metrics(self) -> str:
        """The counts in the Prometheus text format."""
        accepted = Family("bulk_receiver_callbacks_accepted_total", "counter",
                          "Callbacks whose signature matched, by key generation and domain.")
        last_seen = Family("bulk_receiver_callback_last_seen_timestamp_seconds", "gauge",
                           "Unix time of the last accepted callback, by key generation and domain.")
        for (domain, generation), count in sorted(self._accepted.items()):
            accepted.add(count, generation=generation, domain=domain)
            last_seen.add(self._last_seen[(domain, generation)], generation=generation, domain=domain)
        rejected = Family("bulk_receiver_callbacks_rejected_total", "counter", "Callbacks refused, by reason.")
        for reason, count in sorted(self._rejected.items()):
            rejected.add(count, reason=reason)
        domains = Family("bulk_receiver_generation_domains", "gauge", "Domains in each loaded keys file.")
        loaded = Family("bulk_receiver_generation_loaded_timestamp_seconds", "gauge",
                        "Unix time at which this receiver first loaded each key generation.")
        for g in self._ring.generations:
            domains.add(len(g.keys), generation=g.name)
            loaded.add(self._loaded_at[g.name], generation=g.name)
        reloads = Family("bulk_receiver_key_reloads_total", "counter", "Keys file reloads, by result.")
        for result in ("ok", "failed"):
            reloads.add(self._reloads[result], result=result)
        failures = Family("bulk_receiver_forward_failures_total", "counter",
                          "Accepted callbacks that the downstream did not take (answered 502).")
        failures.add(self._forward_failures)
        duplicates = Family("bulk_receiver_callbacks_duplicate_total", "counter",
                            "Callbacks identical to one already forwarded within the clock-skew window "
                            "(answered 200, not forwarded again).")
        duplicates.add(self._duplicates)
        connections = Family("bulk_receiver_connections_open", "gauge", "Connections open on the callback port.")
        closed = Family("bulk_receiver_connections_closed_total", "counter",
                        "Connections the receiver closed: past a deadline, or to make room at the cap (evicted).")
        guard = self._guard
        connections.add(guard.open if guard else 0)
        for reason in ("header_timeout", "body_timeout", "idle_timeout", "evicted", "refused"):
            closed.add(guard.closed[reason] if guard else 0, reason=reason)
        return render([accepted, last_seen, rejected, domains, loaded, reloads, failures, duplicates, connections,
                       closed])

    def drain(self, generation: str, window: float) -> DrainReport:
        """This receiver's answer to ``bulk callback drain`` (raises UnknownGeneration)."""
        return assess(
            generation=generation, window=window, now=self._clock(),
            domains={g.name: g.domains for g in self._ring.generations},
            loaded_at=self._loaded_at, last_seen=self._last_seen,
        )

    async def _metrics_handler(self, request: web.BaseRequest) -> web.Response:
        return web.Response(body=self.metrics().encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _stats_handler(self, request: web.BaseRequest) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")

    async def _drain_handler(self, request: web.BaseRequest) -> web.Response:
        try:
            window = float(request.query.get("window", "86400"))
            if not window > 0:
                raise ValueError
        except ValueError:
            return _json_error(400, "window must be a positive number of seconds")
        try:
            report = self.drain(request.query.get("generation", ""), window)
        except UnknownGeneration as exc:
            return _json_error(404, str(exc))
        return web.Response(body=orjson.dumps(report.to_json()), content_type="application/json")


    _routes: Mapping[str, Callable[[Receiver, web.BaseRequest], Awaitable[web.Response]]] = {
        "/metrics": _metrics_handler, "/_bulk/stats": _stats_handler, "/_bulk/drain": _drain_handler,
    }


def _json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json")


async def serve_forever(receiver: Receiver, *, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Run until cancelled (Ctrl-C or SIGTERM); SIGHUP re-reads the keys files."""
    url = await receiver.start(host, port)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    handlers = {signal.SIGTERM: task.cancel, signal.SIGHUP: receiver.request_reload}  # type: ignore[union-attr]
    for sig, handler in handlers.items():
        with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
            loop.add_signal_handler(sig, handler)
    try:
        on_ready(f"bulk receiver listening on {url}")
        await asyncio.Event().wait()
    finally:
        for sig in handlers:
            with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
                loop.remove_signal_handler(sig)
        await receiver.stop()
