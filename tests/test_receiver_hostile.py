"""The receiver under hostile connections, over real sockets, in a process with 256 file descriptors."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from support import start_bulk

from bulk.callbacks import sign
from bulk.keys import write_keys_file

KEY = "hostileKey0123456789abcdef"
DESCRIPTORS = 256
HOSTILE = 1000


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, *args: str) -> AsyncIterator[tuple[str, str]]:
    """``bulk callback serve`` with RLIMIT_NOFILE 256; yields (callback URL, admin URL)."""
    folder = tmp_path / "keys"
    folder.mkdir(exist_ok=True)
    write_keys_file(folder / "keys-2026-10.csv", {"a.example.com": KEY})
    limits = {resource.RLIMIT_NOFILE: (DESCRIPTORS, DESCRIPTORS)}
    proc = await start_bulk("callback", "serve", "--keys", str(folder), "--port", "0", "--no-forward",
                            "--admin-bind", "127.0.0.1:0", *args, limits=limits, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        assert line.startswith("bulk receiver listening on http://127.0.0.1:"), line
        admin = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        assert admin.startswith("bulk receiver admin on http://127.0.0.1:"), admin
        yield line.split()[-1], admin.split()[-1]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)


async def valid_callback(url: str) -> tuple[int, float]:
    """(status, seconds) of one signed callback on a fresh connection."""
    body = orjson.dumps({"DomainName": "a.example.com", "AppName": "live", "StreamName": "s"})
    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.post(f"{url}/snapshots", data=body, headers=sign("127.0.0.1", KEY)) as resp:
            await resp.read()
            return resp.status, time.monotonic() - started


async def hostile(port: int, kind: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """One connection that never finishes its request: silent, half a head, or a slow body."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    except (OSError, TimeoutError):
        return None
    if kind == 1:
        writer.write(b"POST /snapshots HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
    elif kind == 2:
        writer.write(b"POST /snapshots HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4000\r\n\r\n{\"DomainName\": ")
    return reader, writer


@pytest.mark.realtime  # answers and deadlines timed on the wall clock
async def test_a_valid_callback_is_answered_within_a_second_under_1000_hostile_connections(tmp_path: Path) -> None:
    # Deadlines far away: only the cap (kept below 256 descriptors) can make room.
    deadlines = ("--header-timeout", "60", "--body-timeout", "60", "--idle-timeout", "60")
    async with serve(tmp_path, *deadlines) as (url, admin):
        port = int(url.rsplit(":", 1)[1])
        held: list[asyncio.StreamWriter] = []
        answers: list[tuple[int, float]] = []
        for batch in range(HOSTILE // 50):
            opened = await asyncio.gather(*(hostile(port, i % 3) for i in range(50)))
            held.extend(w for _, w in filter(None, opened))
            if batch % 2:
                answers.append(await valid_callback(url))
        answers.append(await valid_callback(url))
        async with aiohttp.ClientSession() as session:
            stats = await (await session.get(f"{admin}/_bulk/stats")).json()
        # Keep pushing while the receiver is full: hostile connections keep arriving between good ones.
        for _ in range(5):
            more, answer = await asyncio.gather(asyncio.gather(*(hostile(port, 1) for _ in range(50))),
                                                valid_callback(url))
            answers.append(answer)
            held.extend(w for _, w in filter(None, more))
        for writer in held:
            writer.transport.abort()
    assert len(held) >= HOSTILE
    assert [status for status, _ in answers] == [200] * len(answers)
    assert max(seconds for _, seconds in answers) < 1.0, answers
    connections = stats["connections"]
    assert connections["open"] < DESCRIPTORS
    assert connections["closed"]["evicted"] >= HOSTILE - DESCRIPTORS


@pytest.mark.realtime  # answers and deadlines timed on the wall clock
async def test_deadlines_close_silent_half_sent_and_slow_connections(tmp_path: Path) -> None:
    deadlines = ("--header-timeout", "0.5", "--body-timeout", "0.5", "--idle-timeout", "0.5")
    async with serve(tmp_path, *deadlines) as (url, admin):
        port = int(url.rsplit(":", 1)[1])
        pairs = [p for p in await asyncio.gather(*(hostile(port, i % 3) for i in range(30))) if p is not None]
        assert len(pairs) == 30
        started = time.monotonic()

        async def closed_by_server(reader: asyncio.StreamReader) -> float:
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(reader.read(), 5)
            return time.monotonic() - started

        closed_after = await asyncio.gather(*(closed_by_server(r) for r, _ in pairs))
        assert max(closed_after) < 3.0, closed_after
        async with aiohttp.ClientSession() as session:
            # A body beyond the cap is refused at once.
            async with session.post(f"{url}/cb", data=b"x" * 70_000, headers=sign("127.0.0.1", KEY)) as resp:
                assert resp.status == 413
        # An idle keep-alive connection goes too, after answering its request.
        async with aiohttp.ClientSession() as session:
            body = orjson.dumps({"DomainName": "a.example.com"})
            async with session.post(f"{url}/cb", data=body, headers=sign("127.0.0.1", KEY)) as resp:
                assert resp.status == 200
            await asyncio.sleep(1.5)
            async with aiohttp.ClientSession() as other:
                stats = await (await other.get(f"{admin}/_bulk/stats")).json()
        for _, writer in pairs:
            writer.transport.abort()
    closed = stats["connections"]["closed"]
    assert closed["header_timeout"] >= 20 and closed["body_timeout"] >= 10, closed
    assert closed.get("idle_timeout", 0) >= 1, closed
