"""A TLS front for a local server whose new connections take 100-300 ms to become ready.

    async with SlowTlsProxy(upstream=sim.url, delay=(0.1, 0.3), seed=1) as proxy:
        client = LiveClient(credentials=..., endpoint=proxy.url, ssl_context=proxy.client_context)
        ...
    max_in_window(proxy.arrivals)   # requests as the TLS endpoint decrypted them

What a real endpoint looks like from here: every new connection pays a TLS
handshake over a long round trip, pooled connections pay nothing. The proxy
accepts at once but leaves the client's hello unread in the socket for a
seeded random delay, then completes the handshake, decrypts and pipes bytes
both ways without touching them. ``arrivals`` has the time each request
was decrypted: where a real endpoint's front end would count it, one turn of
the loop after the client wrote it. (The server behind counts later still,
after the forwarding: in one process under CPU load that adds tens of
milliseconds of jitter that belongs to this rig, not to the client.) Certificates come
from trustme: a throwaway CA that only this proxy's client trusts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit

import trustme


class SlowTlsProxy:
    __slots__ = ("url", "client_context", "handshakes", "arrivals", "_upstream", "_delay", "_rng", "_server_context",
                 "_listener", "_pipes")

    def __init__(self, *, upstream: str, delay: tuple[float, float], seed: int = 0) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname == "127.0.0.1" and parts.port
        self._upstream = (parts.hostname, parts.port)
        self._delay = delay
        self._rng = random.Random(seed)
        ca = trustme.CA()
        self._server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self._server_context)
        self.client_context = ssl.create_default_context()
        ca.configure_trust(self.client_context)
        self.handshakes = 0
        self.arrivals: list[float] = []
        self.url = ""
        self._listener = socket.socket()
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> SlowTlsProxy:
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self._spawn(self._accept())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        self._listener.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._pipes.add(task)
        task.add_done_callback(self._pipes.discard)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sock, _ = await loop.sock_accept(self._listener)
            self._spawn(self._serve(sock, self._rng.uniform(*self._delay)))

    async def _serve(self, sock: socket.socket, delay: float) -> None:
        loop = asyncio.get_running_loop()
        # The way on to the server is open before the handshake ends, so a request goes
        # straight through: the delay is the handshake's alone.
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        await asyncio.sleep(delay)
        reader = asyncio.StreamReader()
        protocol = _Stamping(reader, self.arrivals)
        try:
            transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock, ssl=self._server_context)
        except (OSError, ssl.SSLError):
            sock.close()
            up_writer.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        self.handshakes += 1
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, ssl.SSLError):
            pass
        finally:
            writer.close()


class _Stamping(asyncio.StreamReaderProtocol):
    """Stamps each request as it is decrypted (HTTP/1.1 without pipelining: one request per chunk that
    starts with a method)."""

    def __init__(self, reader: asyncio.StreamReader, arrivals: list[float]) -> None:
        super().__init__(reader)
        self._arrivals = arrivals

    def data_received(self, data: bytes) -> None:
        if data.startswith((b"POST ", b"GET ")):
            self._arrivals.append(asyncio.get_running_loop().time())
        super().data_received(data)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
