"""Pacing: the quota holds in every one-second window, from the very first call."""

from __future__ import annotations

import asyncio
import time

from bulk.pacing import Pacer, Pacers
from bulk.simulator import max_in_window


async def _acquire_times(pacer: Pacer, n: int, *, tasks: int = 1) -> list[float]:
    times: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            await pacer.acquire()
            times.append(time.monotonic())

    await asyncio.gather(*(worker(n // tasks) for _ in range(tasks)))
    return sorted(times)


async def test_no_burst_at_start_and_never_above_rate() -> None:
    # 20 concurrent callers racing for a 20/s pacer: a bucket that starts full
    # would let 20 through at once on top of the rate.
    times = await _acquire_times(Pacer(20), 60, tasks=20)
    assert max_in_window(times) <= 20
    first_second = [t for t in times if t - times[0] < 1.0]
    assert len(first_second) <= 20
    # Any rate+1 consecutive grants span the window plus the margin (less a wake-up delay).
    spans = [times[i + 20] - times[i] for i in range(len(times) - 20)]
    assert min(spans) >= 1.02 - 0.01


async def test_margin_leaves_room_for_jitter() -> None:
    times = await _acquire_times(Pacer(25, margin=0.04), 50)
    # Any rate+1 consecutive grants span at least 1 + margin seconds.
    spans = [times[i + 25] - times[i] for i in range(len(times) - 25)]
    assert min(spans) >= 1.04 * 0.99


async def test_throttled_slows_then_recovers() -> None:
    now = [0.0]
    pacer = Pacer(30, recovery=10.0, clock=lambda: now[0])
    assert pacer.factor == 1.0
    pacer.throttled()
    assert pacer.factor == 0.5
    pacer.throttled()
    assert pacer.factor == 0.25
    now[0] = 5.0
    assert 0.25 < pacer.factor < 1.0
    now[0] = 10.0
    assert pacer.factor == 1.0


async def test_slowed_pacer_spends_extra_slots() -> None:
    pacer = Pacer(40, recovery=60.0)
    pacer.throttled()  # half pace for the whole test
    times = await _acquire_times(pacer, 20)
    elapsed = times[-1] - times[0]
    # 19 gaps at half of 40/1.02 per second take about 0.97 s; full pace would be 0.48 s.
    assert elapsed >= 0.9


async def test_schedule_keeps_slots_and_never_banks_idle_time() -> None:
    """With a fake clock: late wake-ups are not lost, and a pause buys no burst."""
    now = [100.0]
    grants: list[float] = []

    async def sleep(seconds: float) -> None:
        now[0] += seconds + 0.004  # every wake-up 4 ms late

    pacer = Pacer(10, margin=0.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(11):
        await pacer.acquire()
        grants.append(now[0])
    # Slots stay 0.1 s apart on the schedule: 10 intervals take 1.0 s (+ one late wake), not 1.04 s.
    assert grants[-1] - grants[0] <= 1.0 + 0.004 + 1e-9
    now[0] += 60.0  # idle for a minute
    start = now[0]
    for _ in range(3):
        await pacer.acquire()
    assert now[0] - start >= 0.2  # the first is at once, the next two wait their slots


async def test_a_stall_cannot_squeeze_a_window() -> None:
    """Overdue slots woken together by a stalled process still respect the window."""
    pacer = Pacer(20)

    async def stall() -> None:
        await asyncio.sleep(0.5)
        time.sleep(0.4)  # the whole process freezes, as under a busy machine

    times, _ = await asyncio.gather(_acquire_times(pacer, 60, tasks=60), stall())
    # Without the guard, the eight slots that fell due during the freeze go out at once
    # and the window that starts with them holds 28 calls (measured).
    assert max_in_window(times) <= 20


def test_pacers_are_per_account_and_action() -> None:
    pacers = Pacers(30)
    a = pacers.get("AK1", "AddLiveSnapshotNotifyConfig")
    assert pacers.get("AK1", "AddLiveSnapshotNotifyConfig") is a
    assert pacers.get("AK1", "DescribeLiveSnapshotNotifyConfig") is not a
    assert pacers.get("AK2", "AddLiveSnapshotNotifyConfig") is not a
