"""Simulated live streams: the key of the last push, seeded restarts, loopback only."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
from aiohttp import web
from conftest import TEST_AK_ID, TEST_AK_SECRET, serving

from bulk.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from bulk.sim import LiveStreams, SimConfig, Simulator, StreamsConfig, is_loopback, uptimes

K1, K2, K3 = "FirstKey0123456789abcd", "SecondKey0123456789abc", "ThirdKey0123456789abcd"


@asynccontextmanager
async def capture() -> AsyncIterator[tuple[str, list[tuple[float, dict[str, str], dict[str, object]]]]]:
    """A plain endpoint that keeps every callback: (arrival, headers, body)."""
    got: list[tuple[float, dict[str, str], dict[str, object]]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((time.monotonic(), dict(request.headers), orjson.loads(await request.read())))
        return web.Response(text="ok")

    async with serving(handle) as endpoint:
        yield f"http://{endpoint}/snap", got


def signed_with(headers: dict[str, str], keys: tuple[str, ...]) -> str | None:
    if SIGNATURE_HEADER not in headers:
        return None
    matches = [k for k in keys if signature("127.0.0.1", headers[TIMESTAMP_HEADER], k) == headers[SIGNATURE_HEADER]]
    assert len(matches) == 1, headers
    return matches[0]


def notify(domain: str, url: str, *, auth: str = "no", key: str = "") -> dict[str, str]:
    return {"DomainName": domain, "NotifyUrl": url, "NotifyReqAuth": auth, "NotifyAuthKey": key}


@pytest.mark.realtime  # streams restart on wall-clock uptimes within the sleeps below
async def test_each_stream_signs_with_the_key_of_its_last_push() -> None:
    domains = [f"d{i}.example.com" for i in range(3)]
    async with capture() as (url, got):
        notify_configs = {d: notify(d, url) for d in domains}
        auth = {d: {"DomainName": d, "CallbackReqAuth": "yes", "CallbackAuthKey": K1} for d in domains}
        streams = LiveStreams(StreamsConfig(count=6, uptime_mean=0.3, interval=0.02, seed=11),
                              notify_configs=notify_configs, callback_auth=auth)
        await streams.start()
        await asyncio.sleep(0.4)
        switched = time.monotonic()
        for d in domains:
            auth[d] = {**auth[d], "CallbackAuthKey": K2}  # what a rotation does to the service's config
        # Seed 11 restarts every stream within 0.9 s of the start (uptimes() is deterministic).
        await asyncio.sleep(1.2)
        await streams.stop()
        stats = streams.stats()
    by_stream: dict[str, list[tuple[float, str | None]]] = {}
    for arrived, headers, body in got:
        by_stream.setdefault(str(body["StreamName"]), []).append((arrived, signed_with(headers, (K1, K2))))
    assert sorted(by_stream) == [f"stream-{i:03d}" for i in range(6)]
    old_after_switch = 0
    for stream, seen in by_stream.items():
        keys = [k for _, k in seen]
        # K1 until the stream is pushed again, then K2 for good: never back, never a mix.
        assert keys == sorted(keys, key=lambda k: k == K2), stream
        assert keys[-1] == K2, stream
        old_after_switch += sum(1 for t, k in seen if t > switched + 0.05 and k == K1)
    assert old_after_switch > 0  # streams up at the switch kept signing with the old key
    assert stats["pushes"] > 6 and stats["sent"] == len(got) == stats["answers"]["200"]
    assert stats["errors"] == 0 and stats["skipped"] == {}


async def test_which_key_a_stream_uses() -> None:
    async with capture() as (url, got):
        notify_configs = {
            "both.example.com": notify("both.example.com", url, auth="yes", key=K1),
            "notify.example.com": notify("notify.example.com", url, auth="yes", key=K2),
            "off.example.com": notify("off.example.com", url, key=K3),
        }
        auth = {
            "both.example.com": {"CallbackReqAuth": "yes", "CallbackAuthKey": K3},
            "notify.example.com": {"CallbackReqAuth": "no", "CallbackAuthKey": K1},
        }
        streams = LiveStreams(StreamsConfig(count=3, interval=0.05), notify_configs=notify_configs, callback_auth=auth)
        await streams.start()
        while len({body["DomainName"] for _, _, body in got}) < 3:
            await asyncio.sleep(0.02)
        await streams.stop()
    used = {body["DomainName"]: signed_with(headers, (K1, K2, K3)) for _, headers, body in got}
    assert used == {"both.example.com": K3, "notify.example.com": K2, "off.example.com": None}


async def test_the_callback_body_has_the_snapshot_fields() -> None:
    async with capture() as (url, got):
        streams = LiveStreams(StreamsConfig(count=1, interval=10),
                              notify_configs={"a.example.com": notify("A.example.com", url)},
                              callback_auth={}, wall_clock=lambda: 1_767_225_600.7)
        await streams.start()
        while not got:
            await asyncio.sleep(0.01)
        await streams.stop()
    _, headers, body = got[0]
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "DomainName": "A.example.com", "AppName": "live", "StreamName": "stream-000",
        "OssEndpoint": "oss-cn-shanghai.aliyuncs.com", "OssBucket": "bulk-sim-snapshots",
        "OssObject": "snapshot/live/stream-000/1767225600.jpg", "CreateTime": "2026-01-01T00:00:00Z",
    }


async def test_a_notify_url_that_is_not_loopback_is_never_posted_to() -> None:
    # 192.0.2.0/24 is TEST-NET-1: nothing answers there, and nothing must be sent.
    notify_configs = {"a.example.com": notify("a.example.com", "http://192.0.2.10/snap"),
                      "b.example.com": notify("b.example.com", "https://callback.example.com/snap")}
    streams = LiveStreams(StreamsConfig(count=2, interval=0.02, uptime_mean=0.05), notify_configs=notify_configs,
                          callback_auth={})
    await streams.start()
    await asyncio.sleep(0.3)
    stats = streams.stats()
    await streams.stop()
    assert stats["sent"] == 0 and stats["answers"] == {} and stats["errors"] == 0
    assert stats["skipped"]["not_loopback"] >= 10


@pytest.mark.parametrize(
    ("url", "loopback"),
    [("http://127.0.0.1:8080/x", True), ("http://127.8.9.1/x", True), ("http://[::1]:80/", True),
     ("http://localhost/x", True), ("http://LOCALHOST:1/", True), ("http://10.0.0.1/", False),
     ("https://cb.example.com/", False), ("http://127.0.0.1.nip.io/", False), ("", False)],
)
def test_is_loopback(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback


def test_uptimes_are_seeded_per_stream() -> None:
    first = list(itertools.islice(uptimes(7, 3, 2.0), 2000))
    assert first == list(itertools.islice(uptimes(7, 3, 2.0), 2000))
    assert first != list(itertools.islice(uptimes(7, 4, 2.0), 2000))
    assert 1.8 < sum(first) / len(first) < 2.2  # exponential, mean 2 (standard error 0.045)
    assert list(itertools.islice(uptimes(None, 3, 2.0), 5)) != list(itertools.islice(uptimes(None, 3, 2.0), 5))


async def test_streams_wait_for_a_configured_domain_and_stop_with_the_simulator() -> None:
    async with capture() as (url, got):
        config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET},
                           streams=StreamsConfig(count=2, interval=0.02, seed=1))
        async with Simulator(config) as sim:
            await asyncio.sleep(0.1)
            assert got == [] and sim.stats()["streams"]["pushes"] == 0
            sim.notify_configs["a.example.com"] = notify("a.example.com", url, auth="yes", key=K1)
            while len(got) < 4:
                await asyncio.sleep(0.02)
            stats = sim.stats()["streams"]
        count = len(got)
        await asyncio.sleep(0.1)
        assert len(got) == count  # stopped with the simulator
    assert stats["streams"] == 2 and stats["pushes"] == 2
    assert {signed_with(headers, (K1,)) for _, headers, _ in got} == {K1}
    with pytest.raises(ValueError, match="more than 0"):
        StreamsConfig(count=1, interval=0)
