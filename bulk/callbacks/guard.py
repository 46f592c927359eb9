"""Deadlines and a connection cap over an aiohttp server, so that slow or silent clients cannot starve good ones.

    guard = ConnectionGuard(Limits(header_timeout=10, body_timeout=10, idle_timeout=30), reserve=80)
    server = guard.server(handler)                       # an aiohttp ``web.Server``
    await asyncio.get_running_loop().create_server(server, "0.0.0.0", 8080)
    guard.closed                                         # Counter: {"header_timeout": 3, "evicted": 120, ...}

aiohttp's server has no deadline for a request's head, none for its body,
and no cap on open connections: a few hundred half-sent requests hold as
many file descriptors for as long as their senders like, and once the
process runs out of descriptors a valid callback is refused. The guard
follows each connection through four states, each with its own deadline:

- ``head``: connected, or the first byte of a request arrived, and the
  request head is not complete yet: ``header_timeout`` from then;
- ``body``: the head is complete and the body is being read: ``body_timeout``;
- ``busy``: the whole request is in and the handler works (its own
  timeouts bound it): no deadline, and never closed to make room;
- ``idle``: a keep-alive connection between requests: ``idle_timeout``.

The cap (``max_connections``, kept ``reserve`` plus ``ACCEPT_BACKLOG`` below
the process's descriptor limit, RLIMIT_NOFILE) is enforced when a connection arrives:
the new one is kept and the oldest idle connection closed, else the one
whose unfinished request (head or body) began first. A client that sends
its request at once is never the one chosen, however many hostile
connections keep coming.
Bodies are capped at ``max_body`` bytes (413 beyond).
"""

from __future__ import annotations

import asyncio
import collections
import resource
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = ["ACCEPT_BACKLOG", "ConnectionGuard", "Limits", "descriptor_limit"]

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

HEAD, BODY, BUSY, IDLE = "head", "body", "busy", "idle"
#: the close reason counted when a connection overstays a state with a deadline
_OVERSTAYED = {HEAD: "header_timeout", BODY: "body_timeout", IDLE: "idle_timeout"}


@dataclass(frozen=True, slots=True)
class Limits:
    """Deadlines (seconds) and sizes for one listener."""

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    idle_timeout: float = 30.0
    #: open connections at most (lowered to stay below the descriptor limit)
    max_connections: int = 1024
    #: bytes of a request body at most (a snapshot callback is well under 4 KiB)
    max_body: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "idle_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0 seconds, got {getattr(self, name)}")
        if self.max_connections < 1 or self.max_body < 1:
            raise ValueError("max_connections and max_body must be 1 or more")


#: a listener's backlog: asyncio accepts up to this many connections in one go, before the guard sees any of
#: them, so the cap keeps that many descriptors free too; else an accept fails with EMFILE and asyncio stops
#: accepting for a whole second (a valid callback then waits that long)
ACCEPT_BACKLOG = 64


def descriptor_limit() -> int:
    """The process's soft limit on open file descriptors (RLIMIT_NOFILE)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class _Connection:
    __slots__ = ("since", "state", "timer", "transport")

    def __init__(self, transport: asyncio.Transport, since: float) -> None:
        self.transport = transport
        self.state = HEAD
        #: when the current request began (connected, or its first byte arrived)
        self.since = since
        self.timer: asyncio.TimerHandle | None = None


class ConnectionGuard:
    """Watches one server's connections: closes them at their deadline, and the oldest idle or slowest at the cap."""

    __slots__ = ("_by_state", "_connections", "_loop", "cap", "closed", "limits")

    def __init__(self, limits: Limits, *, reserve: int = 64) -> None:
        """``reserve``: descriptors kept free for everything else (listeners, the downstream, files, logs)."""
        self.limits = limits
        self.cap = max(1, min(limits.max_connections, descriptor_limit() - reserve - ACCEPT_BACKLOG))
        #: connections the guard closed, by reason (header_timeout, body_timeout, idle_timeout, evicted)
        self.closed: collections.Counter[str] = collections.Counter()
        self._connections: dict[RequestHandler, _Connection] = {}
        # Per state, connections in the order they entered it: the first is the oldest.
        self._by_state: dict[str, dict[RequestHandler, None]] = {state: {} for state in (HEAD, BODY, BUSY, IDLE)}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def open(self) -> int:
        """Connections open now."""
        return len(self._connections)

    def server(self, handler: Handler, **kwargs: Any) -> web.Server:
        """An aiohttp low-level server running ``handler`` under this guard."""
        return _GuardedServer(self, self._wrap(handler), **kwargs)

    # -- states --------------------------------------------------------------------------------

    def _enter(self, protocol: RequestHandler, state: str) -> None:
        conn = self._connections.get(protocol)
        if conn is None:
            return
        del self._by_state[conn.state][protocol]
        self._by_state[state][protocol] = None
        conn.state = state
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        timeout = {HEAD: self.limits.header_timeout, BODY: self.limits.body_timeout,
                   IDLE: self.limits.idle_timeout}.get(state)
        if timeout is not None and self._loop is not None:
            conn.timer = self._loop.call_later(timeout, self._close, protocol, _OVERSTAYED[state])

    def _close(self, protocol: RequestHandler, reason: str) -> None:
        conn = self._connections.get(protocol)
        if conn is None:
            return
        self.closed[reason] += 1
        self._forget(protocol)
        if conn.state == IDLE:
            conn.transport.close()  # nothing in flight: a clean close
        else:
            conn.transport.abort()  # a stalled client: no lingering, the descriptor is freed now

    def _forget(self, protocol: RequestHandler) -> None:
        conn = self._connections.pop(protocol, None)
        if conn is None:
            return
        self._by_state[conn.state].pop(protocol, None)
        if conn.timer is not None:
            conn.timer.cancel()

    # -- events from the server ------------------------------------------------------------------

    def _opened(self, protocol: RequestHandler, transport: asyncio.Transport) -> None:
        self._loop = self._loop or asyncio.get_running_loop()
        if len(self._connections) >= self.cap:
            victim = self._victim()
            if victim is None:  # every connection is busy with a whole request: this one must wait its turn
                self.closed["refused"] += 1
                transport.abort()
                return
            self._close(victim, "evicted")
        conn = _Connection(transport, self._loop.time())
        self._connections[protocol] = conn
        self._by_state[HEAD][protocol] = None
        conn.timer = self._loop.call_later(self.limits.header_timeout, self._close, protocol, _OVERSTAYED[HEAD])

    def _victim(self) -> RequestHandler | None:
        """The oldest idle connection, else the one whose unfinished request began first (head or body)."""
        if self._by_state[IDLE]:
            return next(iter(self._by_state[IDLE]))
        # Each state's first connection is its oldest; a body's request began before its head ended.
        firsts = [next(iter(self._by_state[state])) for state in (HEAD, BODY) if self._by_state[state]]
        return min(firsts, key=lambda p: self._connections[p].since, default=None)

    def _data(self, protocol: RequestHandler) -> None:
        conn = self._connections.get(protocol)
        if conn is not None and conn.state == IDLE:
            conn.since = asyncio.get_running_loop().time()
            self._enter(protocol, HEAD)  # the next request's first bytes: its head has header_timeout

    def _wrap(self, handler: Handler) -> Handler:
        async def guarded(request: web.BaseRequest) -> web.StreamResponse:
            protocol = request.protocol
            self._enter(protocol, BODY)
            try:
                try:
                    await request.read()  # kept by the request: the handler's read() returns it at once
                except web.HTTPRequestEntityTooLarge:
                    return web.Response(status=413, text="request body too large")
                except ConnectionError:  # closed at its deadline or to make room: nobody to answer
                    return web.Response(status=408)
                self._enter(protocol, BUSY)
                return await handler(request)
            finally:
                self._enter(protocol, IDLE)

        return guarded


class _GuardedHandler(RequestHandler):
    __slots__ = ("_guard",)

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard

    def data_received(self, data: bytes) -> None:
        self._guard._data(self)
        super().data_received(data)


class _GuardedServer(web.Server):
    """aiohttp's low-level server, with connections made by the guard's protocol and a capped body size."""

    def __init__(self, guard: ConnectionGuard, handler: Handler, **kwargs: Any) -> None:
        # aiohttp's own keep-alive timer closes idle connections too; the guard's is the one that counts.
        kwargs.setdefault("keepalive_timeout", guard.limits.idle_timeout + 1)
        super().__init__(handler, request_factory=self._request, **kwargs)
        self._guard = guard

    def _request(self, message: Any, payload: Any, protocol: RequestHandler, writer: Any,
                 task: asyncio.Task[None]) -> web.BaseRequest:
        return web.BaseRequest(message, payload, protocol, writer, task, self._loop,
                               client_max_size=self._guard.limits.max_body)

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, self._guard, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._guard._opened(handler, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._guard._forget(handler)
        super().connection_lost(handler, exc)

