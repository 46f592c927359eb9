"""When to try a failed call again, and how long to wait first.

    policy = RetryPolicy(max_attempts=8)
    if policy.should_retry(failure, attempt):
        await asyncio.sleep(policy.delay(attempt, throttled=failure.throttled))

Exponential backoff with full jitter (a uniform draw between zero and the
exponential ceiling) spreads retries of many rows that failed together, so
they don't come back as one burst. Throttling starts from a longer base:
the service has just said we are too fast.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .client import Failure

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many attempts a call gets, and the backoff between them; see the module docstring."""

    max_attempts: int = 8
    base: float = 0.2
    throttle_base: float = 1.0
    cap: float = 20.0
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def should_retry(self, failure: Failure, attempt: int) -> bool:
        """``attempt`` is the number of attempts made so far (1 after the first)."""
        return failure.transient and attempt < self.max_attempts

    def delay(self, attempt: int, *, throttled: bool = False) -> float:
        """Seconds to wait before the next attempt: full jitter under a ceiling that doubles up to ``cap``."""
        base = self.throttle_base if throttled else self.base
        ceiling = min(self.cap, base * 2 ** (attempt - 1))
        return self.rng.uniform(0, ceiling)
