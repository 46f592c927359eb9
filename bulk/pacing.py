"""Pacing: never more calls in any one-second window than the quota allows.

    pacer = Pacer(rate=30)
    for call in calls:
        await pacer.acquire()     # returns when this call may be sent
        await send(call)

Each ``acquire`` reserves the next slot of a fixed schedule, ``interval =
(1 + margin) / rate`` apart, and sleeps until it. So any ``rate + 1``
consecutive calls span at least ``1 + margin`` seconds: the margin absorbs
the delay between a slot and the moment the request reaches the server, at
a cost of ``margin`` in throughput.

Two things a plain leaky bucket gets wrong here. One that starts full lets
``max_rate`` calls through at once on top of the rate, which a server that
counts calls in a sliding window sees as a breach. One that holds a single
call (aiolimiter's ``AsyncLimiter(1, interval)``) spaces calls from the
moment each waiter actually woke up, so every wake-up delay is lost for
good: measured here, 0.95 of the quota instead of 0.975. A schedule keeps
its slots where they were; a late waker does not push the next one back.
An idle pacer restarts its schedule from now, so a pause never buys a burst.

A schedule alone trusts that every waiter wakes on time. When the process
stalls (a busy machine, a long garbage collection), several overdue slots
wake together; so each send is also checked against the actual times of the
sends before it, and waits if the last ``rate`` of them would share one
window. That guard is idle in steady state and costs no pace.

After a throttling answer the pace drops (``throttled()``) and recovers
linearly: slots are simply reserved further apart meanwhile.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["Pacer", "Pacers"]


class Pacer:
    __slots__ = (
        "rate", "margin", "_next", "_sent", "_window", "_factor_at_throttle", "_throttled_at", "_recovery",
        "_clock", "_sleep",
    )

    def __init__(
        self,
        rate: float,
        *,
        margin: float = 0.025,
        recovery: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.margin = margin
        self._next = float("-inf")
        # The guard remembers the last n sends: n in (1 + margin) * n / rate seconds at most,
        # n capped so an uncapped run does not keep a million timestamps.
        n = max(1, min(math.floor(rate), 256))
        self._sent: deque[float] = deque(maxlen=n)
        self._window = (1 + margin) * n / rate
        self._factor_at_throttle = 1.0
        self._throttled_at: float | None = None
        self._recovery = recovery
        self._clock = clock
        self._sleep = sleep

    @property
    def factor(self) -> float:
        """The share of the full pace currently allowed, in (0, 1]."""
        if self._throttled_at is None:
            return 1.0
        elapsed = self._clock() - self._throttled_at
        if elapsed >= self._recovery:
            self._throttled_at = None
            return 1.0
        start = self._factor_at_throttle
        return start + (1.0 - start) * elapsed / self._recovery

    @property
    def interval(self) -> float:
        return (1 + self.margin) / (self.rate * self.factor)

    def throttled(self) -> None:
        """The service said we are too fast: halve the pace, then recover."""
        self._factor_at_throttle = max(0.1, self.factor / 2)
        self._throttled_at = self._clock()

    #: the engine's two-step interface (admission, then the wire); the wire check is inside acquire() here
    at_wire = None

    async def admit(self) -> None:
        await self.acquire()

    async def acquire(self) -> None:
        # Reserve before sleeping: slots go out in call order, no lock needed.
        now = self._clock()
        slot = max(self._next, now)
        self._next = slot + self.interval
        if slot > now:
            await self._sleep(slot - now)
        sent = self._sent
        while len(sent) == sent.maxlen and (late := sent[0] + self._window - self._clock()) > 0:
            await self._sleep(late)
        sent.append(self._clock())


class Pacers:
    """One pacer per (AccessKey, action): the quota is per account and per operation."""

    __slots__ = ("_rate", "_margin", "_clock", "_pacers")

    def __init__(self, rate: float, *, margin: float = 0.025, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._margin = margin
        self._clock = clock
        self._pacers: dict[tuple[str, str], Pacer] = {}

    def get(self, access_key_id: str, action: str) -> Pacer:
        key = (access_key_id, action)
        pacer = self._pacers.get(key)
        if pacer is None:
            pacer = self._pacers[key] = Pacer(self._rate, margin=self._margin, clock=self._clock)
        return pacer
