"""Lanes stop as nested scopes: a lane alone, a parent with every lane below it, the first halt reported."""

from __future__ import annotations

import asyncio

from bulk.lanes import Lane
from bulk.options import Halt, HaltKind

SAFETY = Halt(HaltKind.SAFETY_STOP, "safety stop on Forbidden.RAM", code="Forbidden.RAM")
REFUSED = Halt(HaltKind.CREDENTIALS_REFUSED, "the service refused the credentials")
FAULT = Halt(HaltKind.LOCAL_FAULT, "cannot write d.ckpt: No space left on device")


async def stopped_soon(lane: Lane) -> bool:
    """Whether a waiter on ``lane`` wakes (it must not hang when the lane is stopped)."""
    try:
        await asyncio.wait_for(lane.wait(), 1.0)
    except TimeoutError:
        return False
    return True


async def test_a_lanes_stop_does_not_stop_its_siblings_or_its_parent() -> None:
    run = Lane()
    a, b = run.child(), run.child()
    waiting = asyncio.ensure_future(b.wait())
    a.stop(SAFETY)
    assert a.stopping and await stopped_soon(a)
    assert not b.stopping and not run.stopping
    assert b.halt is None and run.halt is None
    await asyncio.sleep(0)
    assert not waiting.done()
    waiting.cancel()


async def test_a_parents_stop_stops_every_lane_below_it_even_one_made_later() -> None:
    run = Lane()
    a, b = run.child(), run.child()
    below_a = a.child()
    waiters = [asyncio.ensure_future(lane.wait()) for lane in (a, b, below_a)]
    run.stop()
    assert all(lane.stopping for lane in (run, a, b, below_a))
    await asyncio.wait_for(asyncio.gather(*waiters), 1.0)
    late = run.child()
    assert late.stopping and await stopped_soon(late)
    # Stopped from above: no lane below claims a reason of its own.
    assert a.halt is b.halt is below_a.halt is None


async def test_the_first_halt_wins() -> None:
    run = Lane()
    a = run.child()
    a.stop(REFUSED)
    a.stop(SAFETY)
    assert a.halt == REFUSED
    run.stop(FAULT)
    run.stop(Halt(HaltKind.ENDPOINT_UNREACHABLE, "cannot connect"))
    assert run.halt == FAULT and a.halt == REFUSED


async def test_a_halt_not_about_the_account_stops_the_whole_run() -> None:
    run = Lane()
    a, b = run.child(), run.child()
    b.stop(FAULT)
    assert run.stopping and a.stopping and b.stopping
    assert run.halt == FAULT and b.halt == FAULT and a.halt is None


async def test_a_lane_follows_a_signals_event_only_while_the_block_runs() -> None:
    signal = asyncio.Event()
    run = Lane()
    with run.following(signal) as lane:
        a = lane.child()
        signal.set()
        assert await stopped_soon(a)
    assert run.stopping and run.halt is None
    late = asyncio.Event()
    other = Lane()
    with other.following(late):
        pass
    late.set()
    await asyncio.sleep(0)
    assert not other.stopping
