"""Pace decided at the wire, over real sockets, counted by the simulator."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from conftest import TEST_AK_ID, TEST_AK_SECRET
from slow_tls_proxy import SlowTlsProxy

from bulk.actions import resolve
from bulk.client import Failure, LiveClient
from bulk.credentials import Credentials, StaticCredentials
from bulk.engine import RunOptions, run
from bulk.pacing import DEFAULT_MARGIN, Pacer
from bulk.retry import RetryPolicy
from bulk.sim import SimConfig, Simulator, max_in_window

# Real-time pace at the server: run alone, in the serial phase of `make test`.
pytestmark = pytest.mark.realtime

ADD = "AddLiveSnapshotNotifyConfig"
DESCRIBE = "DescribeLiveSnapshotNotifyConfig"
CREDS = StaticCredentials(Credentials(TEST_AK_ID, TEST_AK_SECRET))


async def test_slow_new_connections_then_pooled_ones_never_exceed_the_quota(tmp_path: Path) -> None:
    """Each new connection takes 100-300 ms to be ready (a TLS handshake far away), pooled ones none.

    Calls admitted evenly reach the wire bunched: one that waited for its handshake
    lands next to calls that went out on pooled connections after it. Taking the
    slot at admission (as before) put 37 requests in one second at the endpoint
    here (measured); the guard at the wire counts the actual sends. No backup:
    the proxy cannot tell operations apart, and only the Adds are measured.
    """
    rows = tmp_path / "d.csv"
    rows.write_text("DomainName\n" + "".join(f"d{i:03d}.example.com\n" for i in range(110)))
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=30, latency_ms=250, latency_jitter_ms=150, seed=3)
    async with Simulator(config) as sim, SlowTlsProxy(upstream=sim.url, delay=(0.1, 0.3), seed=5) as proxy:
        options = RunOptions(action=resolve(ADD), input_path=rows, checkpoint_path=tmp_path / "d.ckpt",
                             overrides={"NotifyUrl": "https://cb.example.com/x"}, qps=30, timeout=5.0,
                             backup=False)
        async with LiveClient(credentials=CREDS, endpoint=proxy.url, ssl_context=proxy.client_context) as client:
            result = await run(options, client=client, retry=RetryPolicy(base=0.01, throttle_base=0.05, cap=0.2))
        calls = len(sim.arrivals())
    assert result.exit_code == 0 and result.counts["done"] == 110
    # The pool grew while calls were in flight: many calls waited for a slow handshake.
    assert proxy.handshakes >= 10
    # Counted where the requests arrive: the TLS endpoint, as it decrypts each one.
    assert len(proxy.arrivals) == calls >= 110
    assert max_in_window(proxy.arrivals) <= 30
    # Not by holding back: the pace at the endpoint stays close to the quota.
    assert (calls - 1) / (proxy.arrivals[-1] - proxy.arrivals[0]) >= 0.9 * 30


@pytest.mark.parametrize("signature", ["v3", "v1"])
async def test_at_wire_is_awaited_once_per_request_when_the_connection_is_ready(signature: str) -> None:
    """New connection: after its (slow) handshake. Pooled connection: too. Never twice."""
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=100)) as sim, \
            SlowTlsProxy(upstream=sim.url, delay=(0.2, 0.2)) as proxy:
        waits: list[float] = []
        started = 0.0

        async def at_wire() -> None:
            waits.append(time.monotonic() - started)

        async with LiveClient(credentials=CREDS, endpoint=proxy.url, ssl_context=proxy.client_context,
                              signature=signature) as client:
            for _ in range(3):
                started = time.monotonic()
                outcome = await client.call(DESCRIBE, {"DomainName": "a.example.com"}, at_wire=at_wire)
                assert outcome.ok
        assert sim.stats()["total"] == 3
    assert proxy.handshakes == 1
    assert len(waits) == 3
    assert waits[0] >= 0.2  # only once the handshake was done
    assert max(waits[1:]) < 0.2  # pooled: at once


async def test_a_throttling_answer_reaches_the_pacer_with_what_the_guard_noted_at_its_send() -> None:
    """The note "sent at the quota" crosses aiohttp's connector back to the calling task. A 3/s pacer sends
    three calls, then a fourth once the guard allows; the service's clock stands still (as if the first three
    reached it a second late), so it refuses the fourth: sent at the quota, that answer widens the margin."""
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=3)
    async with Simulator(config, clock=lambda: 1000.0) as sim:
        pacer = Pacer(3)
        async with LiveClient(credentials=CREDS, endpoint=sim.url) as client:
            outcomes = [await client.call(DESCRIBE, {"DomainName": "a.example.com"}, at_wire=pacer.at_wire)
                        for _ in range(4)]
        assert [o.code if isinstance(o, Failure) else "OK" for o in outcomes] == ["OK"] * 3 + ["Throttling.User"]
        pacer.throttled()
        assert pacer.margin == pytest.approx(2 * DEFAULT_MARGIN)
        assert pacer.rate == pytest.approx(pacer.full_rate)  # not cut


async def test_a_call_that_times_out_at_the_wire_sends_nothing_and_returns_its_connection() -> None:
    """Held at the wire past its timeout: never written, and the connection is reused by the next call."""
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=100)) as sim, \
            SlowTlsProxy(upstream=sim.url, delay=(0.05, 0.05)) as proxy:

        async def too_late() -> None:
            await asyncio.sleep(5)

        async with LiveClient(credentials=CREDS, endpoint=proxy.url, ssl_context=proxy.client_context,
                              timeout=0.5) as client:
            assert (await client.call(DESCRIBE, {"DomainName": "a.example.com"})).ok
            held = await client.call(DESCRIBE, {"DomainName": "a.example.com"}, at_wire=too_late)
            assert not held.ok and held.code == "Timeout"
            assert (await client.call(DESCRIBE, {"DomainName": "a.example.com"})).ok
        assert sim.stats()["total"] == 2
    assert proxy.handshakes == 1


async def test_5xx_answers_that_are_not_throttling_do_not_slow_the_pace(tmp_path: Path) -> None:
    """30 % of calls get a 500 InternalError or a 503 ServiceUnavailable: retried, at the full pace.

    No backup, and attempts to spare: with 30 % faults a row can rightly spend its eight attempts
    (reads back included) and be left to the next run; the Adds' pace is what is measured.
    """
    rows = tmp_path / "d.csv"
    rows.write_text("DomainName\n" + "".join(f"d{i:03d}.example.com\n" for i in range(90)))
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=30, error_rate=0.3,
                       fault_kinds=("internal_before", "unavailable"), seed=2)
    async with Simulator(config) as sim:
        options = RunOptions(action=resolve(ADD), input_path=rows, checkpoint_path=tmp_path / "d.ckpt",
                             overrides={"NotifyUrl": "https://cb.example.com/x"}, qps=30, timeout=5.0,
                             backup=False)
        async with LiveClient(credentials=CREDS, endpoint=sim.url) as client:
            result = await run(options, client=client, retry=RetryPolicy(base=0.01, cap=0.05, max_attempts=30))
        stats = sim.stats()
    assert result.counts["done"] == 90, (result, stats["calls"])
    assert stats["calls"][ADD]["ServiceUnavailable"] >= 10
    times = sorted(t for t, _, action in sim.arrivals() if action == ADD)
    # While new rows and retries keep the pacer busy (the first three seconds), the pace is the full pace,
    # 88 calls in 3 s at 30 / 1.012 a second, less what a loaded machine takes; cut at every 503, 38 (measured).
    assert sum(1 for t in times if t < times[0] + 3.0) >= 0.9 * 3 * 30 / 1.012
    assert stats["pace"][f"{TEST_AK_ID}/{ADD}"]["max_window"] <= 30
