"""Pacing: never more calls in any one-second window than the quota allows.

    pacer = Pacer(rate=30)
    for call in calls:
        await pacer.acquire()     # returns when this call may be sent
        await send(call)

A leaky bucket that starts full lets ``max_rate`` calls through at once on
top of the steady rate, and a server that counts calls in a sliding
one-second window sees that burst as a breach. So the bucket here holds a
single call (``aiolimiter.AsyncLimiter(1, interval)``): sends are spaced at
least ``interval`` apart from the very first one, and any ``rate + 1``
consecutive sends span at least ``(1 + margin)`` seconds. The margin absorbs
scheduling jitter between our clock and the server's (a call delayed by up
to ``margin`` seconds after its slot cannot push a window over the quota)
at a cost of ``margin`` in throughput.

After a throttling answer the pace drops (``throttled()``) and recovers
linearly. Slowing down never swaps the limiter: a slowed call takes extra,
unused slots from the same bucket, so every send still owns a distinct slot
and the quota holds across the transition.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter

__all__ = ["Pacer", "Pacers"]


class Pacer:
    __slots__ = ("rate", "margin", "_limiter", "_debt", "_factor_at_throttle", "_throttled_at", "_recovery", "_clock")

    def __init__(
        self,
        rate: float,
        *,
        margin: float = 0.02,
        recovery: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.margin = margin
        self._limiter = AsyncLimiter(1, (1 + margin) / rate)
        self._debt = 0.0
        self._factor_at_throttle = 1.0
        self._throttled_at: float | None = None
        self._recovery = recovery
        self._clock = clock

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
    def effective_rate(self) -> float:
        return self.rate * self.factor / (1 + self.margin)

    def throttled(self) -> None:
        """The service said we are too fast: halve the pace, then recover."""
        self._factor_at_throttle = max(0.1, self.factor / 2)
        self._throttled_at = self._clock()

    async def acquire(self) -> None:
        # A factor f spends 1/f slots per call; the fractional part carries over.
        self._debt += 1.0 / self.factor - 1.0
        while self._debt >= 1.0:
            self._debt -= 1.0
            await self._limiter.acquire()
        await self._limiter.acquire()


class Pacers:
    """One pacer per (AccessKey, action): the quota is per account and per operation."""

    __slots__ = ("_rate", "_margin", "_clock", "_pacers")

    def __init__(self, rate: float, *, margin: float = 0.02, clock: Callable[[], float] = time.monotonic) -> None:
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
