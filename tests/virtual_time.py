"""An asyncio event loop on a virtual clock, for testing pacing without waiting.

    def test_something() -> None:
        async def scenario() -> None:
            await asyncio.sleep(3600)          # returns at once; loop.time() is now 3600 later
        run_virtual(scenario())

Each turn of the loop takes a microsecond of virtual time, and when nothing
is ready to run the clock jumps to the next timer, so timers fire on time,
in order, and a test measures the logic rather than the machine. ``stall(seconds)`` moves the
clock without running anything, as a frozen process would: every timer that
fell due meanwhile fires together on the next turn. aiolimiter reads
``loop.time()`` and schedules with ``loop.call_at``, so it runs on this
clock unchanged.

Why not a plugin: looptime does the same by patching pytest-asyncio's loops;
these tests want a loop they create and control (``stall`` in particular)
and nothing else in the suite affected, which forty lines give.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: virtual seconds one turn of the loop takes
TICK = 1e-6


class _Selector(selectors.DefaultSelector):
    """Polls for real I/O without blocking; when there is none, lets the loop's clock jump instead."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            # Nothing scheduled: only another thread can wake the loop (the executor at shutdown).
            return super().select(None)
        events = super().select(0)
        loop = self.loop
        if loop is not None:
            # Every turn of the loop takes a microsecond, as on a real machine: code that
            # re-checks the clock after a wake-up (aiolimiter does) must see it move.
            loop.now += TICK
            if not events and timeout > TICK:
                # Land on the timer itself: now + (when - now) can round to just short of it.
                loop.now = max(loop.now + timeout - TICK, loop._scheduled[0].when() if loop._scheduled else 0.0)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    _scheduled: list[asyncio.TimerHandle]  # asyncio's own heap of timers

    def __init__(self) -> None:
        selector = _Selector()
        super().__init__(selector)
        selector.loop = self
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def stall(self, seconds: float) -> None:
        """Freeze the 'process' for ``seconds``: nothing runs, the clock moves on."""
        self.now += seconds


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)


def virtual_loop() -> VirtualTimeLoop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    return loop
