"""Forward each callback at most once, and log rejections at a bounded rate.

    replays = ReplayCache(capacity=100_000)
    key = replays.key("a.example.com", "1767225600", signature, body)
    if replays.seen(key, now=time.time()):
        ...                                  # answered 200, counted, not forwarded again
    ...                                      # forward; only once that succeeded:
    replays.remember(key, expires=1767225600 + 120)

The signature covers the NotifyUrl's host, the timestamp and the key, not
the body, and several streams of one domain may call back within one
second with the same signature: a cache of signatures alone would refuse
real callbacks. The cache therefore holds (domain, timestamp, signature,
body digest), and only until the timestamp leaves the accepted clock-skew
window (after that the signature check refuses the callback anyway). It is
filled only after a successful forward, so that the service's retry after a
failed one goes through. At ``capacity`` the entries closest to expiry go
first: memory stays bounded whatever a sender does.
"""

from __future__ import annotations

import collections
import hashlib
import time
from collections.abc import Callable

__all__ = ["LogThrottle", "ReplayCache"]


class ReplayCache:
    """Callbacks already forwarded, each until its timestamp leaves the window."""

    __slots__ = ("_entries", "capacity")

    def __init__(self, *, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be 1 or more, got {capacity}")
        self.capacity = capacity
        # key -> expiry; insertion order is close to expiry order (timestamps lie within the window)
        self._entries: collections.OrderedDict[bytes, float] = collections.OrderedDict()

    @staticmethod
    def key(domain: str, timestamp: str, signature: str, body: bytes) -> bytes:
        """What makes two callbacks identical: the domain, the signed headers and the body."""
        digest = hashlib.sha256()
        for part in (domain.encode(), timestamp.encode(), signature.lower().encode()):
            digest.update(len(part).to_bytes(4, "big") + part)
        digest.update(body)
        return digest.digest()

    def seen(self, key: bytes, *, now: float) -> bool:
        """True if this callback was forwarded already and its timestamp is still within the window."""
        self._expire(now)
        expiry = self._entries.get(key)
        return expiry is not None and expiry >= now

    def remember(self, key: bytes, *, expires: float) -> None:
        """Record a forwarded callback until ``expires`` (its timestamp plus the window)."""
        self._entries[key] = expires
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def _expire(self, now: float) -> None:
        while self._entries:
            key, expiry = next(iter(self._entries.items()))
            if expiry >= now:
                return
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class LogThrottle:
    """At most ``burst`` lines, then one per ``1 / rate`` seconds; says how many were left out."""

    __slots__ = ("_clock", "_last", "_suppressed", "_tokens", "burst", "rate")

    def __init__(self, *, rate: float = 1.0, burst: int = 10, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._suppressed = 0

    def allow(self) -> int | None:
        """None: leave this line out. Else the number of lines left out since the last one written."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            self._suppressed += 1
            return None
        self._tokens -= 1
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed
