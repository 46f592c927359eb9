"""Pacing logic on a virtual clock: the quota in every window, the pace, jitter, stalls, throttling episodes.

Every test runs on ``virtual_time.VirtualTimeLoop``: aiolimiter, the guard and
the throttling policy all read the loop's clock, so a scenario of minutes
takes milliseconds and its timings are exact. What must be measured by a
server over real sockets is in test_pacing_wire.py and test_engine.py.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Callable

import pytest
from virtual_time import run_virtual, virtual_loop

from bulk.pacing import DEFAULT_MARGIN, Pacer, Pacers, RateLimiter
from bulk.sim import max_in_window


async def paced_sends(pacer: Pacer, n: int, *, to_wire: Callable[[], float] = lambda: 0.0) -> list[float]:
    """Admit n calls one after another (as the dispatcher does); each reaches the wire after ``to_wire()`` s."""
    loop = virtual_loop()
    sends: list[float] = []

    async def call(delay: float) -> None:
        await asyncio.sleep(delay)
        await pacer.at_wire()
        sends.append(loop.time())

    tasks = []
    for _ in range(n):
        await pacer.admit()
        tasks.append(asyncio.create_task(call(to_wire())))
    await asyncio.gather(*tasks)
    return sorted(sends)


def pace(times: list[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


def spans(times: list[float], n: int) -> list[float]:
    """How long each run of n + 1 consecutive sends takes."""
    return [times[i + n] - times[i] for i in range(len(times) - n)]


# -- the pace and the quota ------------------------------------------------------------------------


def test_full_pace_is_the_quota_less_the_margin_and_never_above_it() -> None:
    async def scenario() -> None:
        pacer = Pacer(30)
        sends = await paced_sends(pacer, 600)
        assert pacer.full_rate == pytest.approx(30 / (1 + DEFAULT_MARGIN))
        assert max_in_window(sends) == 30
        # Any 31 consecutive sends span the window plus the margin...
        assert min(spans(sends, 30)) >= 1 + DEFAULT_MARGIN - 1e-9
        # ...and no more: the pace is the full pace (0.988 of the quota), the first second included.
        assert pace(sends) >= 0.999 * pacer.full_rate
        # The figure the README states for the starting margin: 0.988 of the quota, at the server.
        assert round(pace(sends[1:]) / 30, 3) == 0.988  # (the bucket starts with two calls)

    run_virtual(scenario())


def test_many_callers_at_once_get_no_burst() -> None:
    """Twenty tasks racing for a 20/s pacer from a standstill: a bucket that starts full would let 20 through."""
    async def scenario() -> None:
        loop = virtual_loop()
        pacer = Pacer(20)
        sends: list[float] = []

        async def worker() -> None:
            for _ in range(3):
                await pacer.admit()
                await pacer.at_wire()
                sends.append(loop.time())

        await asyncio.gather(*(worker() for _ in range(20)))
        assert max_in_window(sends) <= 20
        assert sum(1 for t in sends if t - sends[0] < 1.0) <= 20

    run_virtual(scenario())


def test_late_wakeups_do_not_cost_pace() -> None:
    """The process keeps stalling for a few ms; a two-call bucket catches up, a one-call bucket would not."""
    async def scenario(burst: float | None) -> float:
        loop = virtual_loop()
        pacer = Pacer(30)
        if burst is not None:
            pacer._limiter = RateLimiter(pacer.full_rate, burst=burst)
        rng = random.Random(1)

        async def stalls() -> None:
            while True:
                await asyncio.sleep(rng.uniform(0.01, 0.05))
                loop.stall(rng.uniform(0.001, 0.008))

        staller = asyncio.create_task(stalls())
        sends = await paced_sends(pacer, 300)
        staller.cancel()
        return pace(sends) / pacer.full_rate

    assert run_virtual(scenario(None)) >= 0.999
    # The same with aiolimiter's usual single-call bucket: every wake-up delay is lost for good.
    assert run_virtual(scenario(1)) < 0.995


def test_guard_keeps_the_quota_when_calls_reach_the_wire_bunched() -> None:
    """New connections take 100-300 ms to be ready, pooled ones none: calls admitted evenly arrive bunched."""
    async def scenario() -> None:
        rng = random.Random(7)
        pacer = Pacer(30)

        def to_wire() -> float:
            return rng.uniform(0.1, 0.3) if rng.random() < 0.3 else 0.0

        sends = await paced_sends(pacer, 450, to_wire=to_wire)
        assert max_in_window(sends) == 30
        assert min(spans(sends, 30)) >= 1 + DEFAULT_MARGIN - 1e-9
        # Held calls wait at the wire, not for good: the pace stays the full pace.
        assert pace(sends) >= 0.99 * pacer.full_rate

    run_virtual(scenario())


@pytest.mark.parametrize(("jitter", "holds"), [(DEFAULT_MARGIN, True), (3 * DEFAULT_MARGIN, False)])
def test_the_margin_absorbs_arrival_jitter_up_to_its_size(jitter: float, holds: bool) -> None:
    """Between the guard's decision and the server's count: up to the margin is safe, beyond it is not."""
    async def scenario() -> int:
        rng = random.Random(3)
        sends = await paced_sends(Pacer(30), 900)
        return max_in_window([t + rng.uniform(0, jitter) for t in sends])

    assert (run_virtual(scenario()) <= 30) is holds


def test_a_stall_cannot_squeeze_a_window() -> None:
    """The process freezes for 400 ms: the slots and wire waits that fell due go together, the guard holds."""
    async def scenario() -> None:
        loop = virtual_loop()
        pacer = Pacer(20)

        async def stall() -> None:
            await asyncio.sleep(0.5)
            loop.stall(0.4)

        sends, _ = await asyncio.gather(paced_sends(pacer, 60), stall())
        assert max_in_window(sends) <= 20
        assert min(spans(sends, 20)) >= 1 + DEFAULT_MARGIN - 1e-9

    run_virtual(scenario())


def test_a_stall_right_after_a_send_moves_that_send_later() -> None:
    """A server on this machine stamps a request only after our stall: the guard counts it from there."""
    async def scenario() -> None:
        loop = virtual_loop()
        pacer = Pacer(2, margin=0.0)
        await pacer.at_wire()
        first = loop.time()
        loop.stall(0.05)  # frozen before the request could be read at the other end
        await pacer.at_wire()
        await pacer.at_wire()  # the third of a 2/s quota waits for the first to leave the window
        # Counted from the end of the stall, less the 2 ms a send is given to settle; not from the decision.
        assert loop.time() == pytest.approx(first + 0.05 - 0.002 + 1.0, abs=1e-4)

    run_virtual(scenario())


def test_a_stall_after_several_sends_moves_each_of_them_later() -> None:
    """Sends made in one turn of the loop share one settle timer: a stall after them moves every one."""
    async def scenario() -> None:
        loop = virtual_loop()
        pacer = Pacer(5, margin=0.0)
        first = loop.time()
        for _ in range(3):
            await pacer.at_wire()
            loop.stall(0.001)  # a millisecond apart, nothing run in between
        loop.stall(0.05)
        for _ in range(2):  # the loop comes round (the timer runs after this task's turn): it fires late by the stall
            await asyncio.sleep(0)
        # The guard's record of sends (a private look: what it counts each send from).
        assert [t for (t,) in pacer._sent] == pytest.approx([first + 0.053 - 0.002] * 3, abs=1e-4)

    run_virtual(scenario())


def test_pacers_are_per_account_and_operation() -> None:
    pacers = Pacers(30)
    a = pacers.get("AK1", "AddLiveSnapshotNotifyConfig")
    assert pacers.get("AK1", "AddLiveSnapshotNotifyConfig") is a
    assert pacers.get("AK1", "DescribeLiveSnapshotNotifyConfig") is not a
    assert pacers.get("AK2", "AddLiveSnapshotNotifyConfig") is not a
    assert a.quota == 30


def test_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="quota"):
        Pacer(0)
    with pytest.raises(ValueError, match="margin"):
        Pacer(30, margin=1.5)
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)


# -- aiolimiter with a rate that changes -----------------------------------------------------------


def test_a_rate_change_applies_from_that_instant() -> None:
    """Rate 10/s, one-call bucket: a waiter due at 0.100. At 0.050 the rate doubles: the half-drained
    bucket drains the rest at 20/s, so the waiter goes at 0.075, neither at 0.100 nor retroactively at 0.050."""
    async def scenario() -> None:
        loop = virtual_loop()
        limiter = RateLimiter(10, burst=1)
        start = loop.time()
        await limiter.acquire()

        async def speed_up() -> None:
            await asyncio.sleep(0.05)
            limiter.rate = 20

        changer = asyncio.create_task(speed_up())
        await limiter.acquire()
        assert loop.time() - start == pytest.approx(0.075, abs=1e-4)
        assert limiter.rate == 20 and limiter.time_period == pytest.approx(1 / 20)
        await changer
        with pytest.raises(ValueError):
            limiter.rate = -1

    run_virtual(scenario())


# -- throttling ------------------------------------------------------------------------------------


class Service:
    """A quota-keeping service on the virtual clock: one sliding-window count per account and operation,
    shared with other users of the account (``others``: their calls/s at a time), plus random throttling."""

    def __init__(self, *, quota: int = 30, latency: float = 0.1, random_throttling: float = 0.0,
                 others: Callable[[float], float] = lambda t: 0.0, arrival_jitter: float = 0.0, seed: int = 1) -> None:
        """``arrival_jitter``: a uniform delay up to this between our send and the service's count."""
        self.quota, self.latency, self.random_throttling, self.others = quota, latency, random_throttling, others
        self.arrival_jitter = arrival_jitter
        self.rng = random.Random(seed)
        self.jitter_rng = random.Random(seed + 1)
        self.window: collections.deque[float] = collections.deque()
        self.ours: list[tuple[float, bool]] = []  # (arrival, throttled)
        self.refused: list[float] = []  # arrivals refused for the quota (not at random)

    def _count(self, now: float) -> bool:
        while self.window and self.window[0] + 1.0 <= now:
            self.window.popleft()
        if len(self.window) >= self.quota:
            return False
        self.window.append(now)
        return True

    async def _others(self, until: float) -> None:
        loop = virtual_loop()
        while loop.time() < until:
            rate = self.others(loop.time())
            await asyncio.sleep(1.0 / rate if rate else 0.05)
            if rate:
                self._count(loop.time())

    async def call(self, pacer: Pacer) -> None:
        await pacer.at_wire()
        if self.arrival_jitter:
            await asyncio.sleep(self.jitter_rng.uniform(0, self.arrival_jitter))
        now = virtual_loop().time()
        refused = not self._count(now)
        if refused:
            self.refused.append(now)
        throttled = refused or self.rng.random() < self.random_throttling
        self.ours.append((now, throttled))
        await asyncio.sleep(self.latency)
        if throttled:
            pacer.throttled()

    async def run(self, pacer: Pacer, seconds: float) -> None:
        """Send as fast as the pacer admits (a throttled call's retry is just another call) for ``seconds``."""
        loop = virtual_loop()
        others = asyncio.create_task(self._others(seconds))
        calls: set[asyncio.Task[None]] = set()
        while loop.time() < seconds:
            await pacer.admit()
            task = asyncio.create_task(self.call(pacer))
            calls.add(task)
            task.add_done_callback(calls.discard)
        await asyncio.gather(*calls, others)

    def per_second(self, start: float, end: float, *, accepted: bool = True) -> float:
        return sum(1 for t, throttled in self.ours if start <= t < end and not (accepted and throttled)) / (end - start)

    def throttled_share(self, start: float, end: float) -> float:
        seen = [throttled for t, throttled in self.ours if start <= t < end]
        return sum(seen) / len(seen)


def test_a_burst_of_throttling_answers_is_one_episode_cut_by_its_size() -> None:
    async def scenario() -> None:
        loop = virtual_loop()
        pacer = Pacer(30)
        await paced_sends(pacer, 90)
        full = pacer.full_rate
        for _ in range(5):  # five answers from one over-quota burst
            pacer.throttled()
        window = 1 + DEFAULT_MARGIN
        # 30 sent in the last window, 5 refused: the service sustained 25 per window.
        assert pacer.rate == pytest.approx(25 / window)
        await asyncio.sleep(0.5)
        pacer.throttled()  # still the same episode: its sixth answer, not a new cut of the cut
        assert pacer.rate == pytest.approx(24 / window)
        await asyncio.sleep(window)  # the episode is over: the climb back has begun
        assert 24 / window < pacer.rate < full
        started = loop.time()
        while pacer.rate < full:
            await asyncio.sleep(0.05)
        assert loop.time() - started <= pacer.recovery * (6 / full) ** 0.5 + 0.05
        pacer.throttled()  # a new episode, measured afresh
        assert pacer.rate < full

    run_virtual(scenario())


def test_a_lone_throttling_answer_costs_about_two_calls() -> None:
    async def scenario() -> None:
        loop = virtual_loop()
        pacer = Pacer(30)
        await paced_sends(pacer, 60)
        pacer.throttled()
        cut_at = loop.time()
        sends = await paced_sends(pacer, 120)
        # At full pace these 120 would take 120 / full seconds after the cut.
        lost = (sends[-1] - cut_at) * pacer.full_rate - 120
        assert 0.5 < lost < 2.5

    run_virtual(scenario())


def test_random_throttling_costs_little() -> None:
    """1 % of answers throttled at random (not for our pace): each is one small, brief episode."""
    async def scenario() -> None:
        service = Service(latency=0.12, random_throttling=0.01, seed=2)
        pacer = Pacer(30)
        await service.run(pacer, 120)
        assert service.throttled_share(5, 120) < 0.015
        assert service.per_second(5, 120, accepted=False) >= 0.97 * pacer.full_rate

    run_virtual(scenario())


@pytest.mark.parametrize("latency", [0.1, 1.5])
def test_persistent_throttling_settles_at_what_the_service_sustains_and_recovers_when_it_stops(latency: float) -> None:
    """Another client takes 10/s of the account's 30/s from t=20 to t=60.

    Measured: 19.5/s of the 20/s left, 2.3 % of calls throttled with 0.1 s latency;
    18.3/s and 12.5 % with 1.5 s, where each answer tells of a pace 1.5 s old.
    """
    async def scenario() -> None:
        service = Service(latency=latency, others=lambda t: 10.0 if 20 <= t < 60 else 0.0, seed=4)
        pacer = Pacer(30)
        await service.run(pacer, 90)
        full = pacer.full_rate
        assert service.per_second(0, 20) >= 0.99 * full
        # Settled: most of the 20/s left to us, few calls wasted on throttling answers.
        assert service.per_second(30, 60) >= (0.95 if latency < 1 else 0.9) * 20
        assert service.throttled_share(30, 60) <= (0.03 if latency < 1 else 0.13)
        # Back to the full pace within seconds of the other client stopping.
        assert service.per_second(66, 90) >= 0.99 * full

    run_virtual(scenario())


# -- throttling at the quota: jitter beyond the margin ---------------------------------------------


async def sends_at(pacer: Pacer, n: int, *, every: float = 0.0) -> None:
    """Send n calls from this task (so that ``throttled()`` here answers the last), ``every`` s apart at most."""
    for _ in range(n):
        await pacer.admit()
        await pacer.at_wire()
        await asyncio.sleep(every)


def test_a_throttle_while_at_the_quota_widens_the_margin_and_keeps_the_pace() -> None:
    async def scenario() -> None:
        pacer = Pacer(30)
        await sends_at(pacer, 60)
        pacer.throttled()  # the answer to a call sent with 30 in its second: a send jittered over
        margin = 2 * DEFAULT_MARGIN
        assert pacer.margin == pytest.approx(margin)
        # Not cut: the full pace at the wider margin (a cut would be 29 per window).
        assert pacer.rate == pytest.approx(30 / (1 + margin))
        sends = await paced_sends(pacer, 120)
        assert min(spans(sends, 30)) >= 1 + margin - 1e-9  # the guard keeps the wider margin
        assert pace(sends[1:]) >= 0.999 * 30 / (1 + margin)

    run_virtual(scenario())


def test_a_throttle_while_under_the_quota_cuts_the_pace_and_keeps_the_margin() -> None:
    async def scenario() -> None:
        pacer = Pacer(30)
        await sends_at(pacer, 40, every=1 / 25)  # 25 calls a second: under the quota of 30
        pacer.throttled()  # so something else spends the quota: contention
        assert pacer.margin == DEFAULT_MARGIN
        assert pacer.rate < 0.9 * pacer.full_rate

    run_virtual(scenario())


def test_a_third_answer_in_the_episode_is_contention_and_takes_the_widening_back() -> None:
    async def scenario() -> None:
        pacer = Pacer(30)
        await sends_at(pacer, 60)
        pacer.throttled()
        await sends_at(pacer, 2)
        pacer.throttled()  # a jitter spike can move two sends over: still jitter, still the full pace
        assert pacer.margin == pytest.approx(2 * DEFAULT_MARGIN)
        assert pacer.rate == pytest.approx(pacer.full_rate)
        await sends_at(pacer, 2)
        pacer.throttled()  # within the same window: three refused, the quota is spent elsewhere
        assert pacer.margin == pytest.approx(DEFAULT_MARGIN)
        assert pacer.rate == pytest.approx((30 - 3) / (1 + DEFAULT_MARGIN))

    run_virtual(scenario())


def test_the_margin_never_widens_past_the_bound() -> None:
    """Throttling at random while at the quota looks like jitter: it may cost the bound, 0.975 of the quota, no more."""
    async def scenario() -> None:
        pacer = Pacer(30)
        for _ in range(20):
            await sends_at(pacer, 40)
            pacer.throttled()
        assert pacer.margin == pytest.approx(1 / 0.975 - 1)
        assert pacer.full_rate == pytest.approx(0.975 * 30)
        # At the bound a lone answer sent at the quota cuts nothing either.
        assert pacer.rate == pytest.approx(pacer.full_rate)
        sends = await paced_sends(pacer, 120)
        assert pace(sends[1:]) >= 0.999 * 0.975 * 30

    run_virtual(scenario())


def test_what_one_operation_learns_of_the_jitter_the_account_s_other_operations_keep_too() -> None:
    """The Adds reach the quota seconds after their backup reads: they start from the margin the reads learned."""
    async def scenario() -> None:
        pacers = Pacers(30)
        reads = pacers.get("AK1", "DescribeLiveSnapshotNotifyConfig")
        writes = pacers.get("AK1", "AddLiveSnapshotNotifyConfig")
        elsewhere = pacers.get("AK2", "DescribeLiveSnapshotNotifyConfig")
        await sends_at(reads, 60)
        reads.throttled()  # at the quota: jitter beyond the margin, on the account's path
        margin = 2 * DEFAULT_MARGIN
        assert writes.margin == pytest.approx(margin) and writes.rate == pytest.approx(30 / (1 + margin))
        assert pacers.get("AK1", "SetSnapshotCallbackAuth").margin == pytest.approx(margin)  # one made later too
        assert elsewhere.margin == DEFAULT_MARGIN  # another account's path learned nothing
        sends = await paced_sends(writes, 120)
        assert min(spans(sends, 30)) >= 1 + margin - 1e-9  # the writes' guard keeps the wider margin
        assert pace(sends[1:]) >= 0.999 * 30 / (1 + margin)
        # Two more answers in one episode: contention after all, and the widening is taken back for every operation.
        pacers = Pacers(30)
        reads = pacers.get("AK1", "DescribeLiveSnapshotNotifyConfig")
        writes = pacers.get("AK1", "AddLiveSnapshotNotifyConfig")
        await sends_at(reads, 60)
        for _ in range(3):
            reads.throttled()
            await sends_at(reads, 2)
        assert writes.margin == pytest.approx(DEFAULT_MARGIN) and reads.margin == pytest.approx(DEFAULT_MARGIN)

    run_virtual(scenario())


@pytest.mark.parametrize("random_throttling", [0.0, 0.01])
def test_arrival_jitter_beyond_the_margin_is_outgrown_within_seconds(random_throttling: float) -> None:
    """0-20 ms between our send and the service's count (the 12 ms margin covers 12): the user's job, at 30/s."""
    async def scenario() -> None:
        service = Service(latency=0.12, arrival_jitter=0.02, random_throttling=random_throttling, seed=5)
        pacer = Pacer(30)
        await service.run(pacer, 120)
        # Refused for the quota only in the first seconds (without random answers, the margin is outgrown
        # by what it let through; with them, it may widen before any call is refused).
        assert all(t < 10 for t in service.refused) and (service.refused or random_throttling)
        assert service.per_second(10, 120, accepted=False) >= 0.95 * 30
        assert pacer.margin <= 1 / 0.975 - 1 + 1e-12

    run_virtual(scenario())
