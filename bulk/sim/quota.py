"""The simulator's quota per (AccessKey, action), what it saw of the pace, and its seeded faults.

    quota = Quota(keep=100_000)
    quota.arrive("LTAIdemo", "AddLiveSnapshotNotifyConfig", now)   # every authenticated call
    if not quota.admit("LTAIdemo", "AddLiveSnapshotNotifyConfig", now, limit=30):
        ...                                                          # Throttling.User
    faults = Faults(SimConfig(access_keys={...}, error_rate=0.05, seed=7))
    kind, after = faults.draw("AddLiveSnapshotNotifyConfig")         # None, or the fault this call gets

The service counts 30 calls per second per account and per operation, as a
sliding window, and refuses (does not queue) what goes over: so does this
quota, over half-open one-second windows. Arrivals are stamped after
authentication and before the quota, so that ``max_window`` shows what the
client sent and ``max_window_accepted`` what the quota let through; the
calls it refused are counted apart from injected faults, with when the
last of them came (``refused``, ``last_refused``: seconds after the first
arrival), so that a benchmark can tell a start-up refusal from a late one.

Memory stays bounded however long it runs: per (AccessKey, action) only
the last second's stamps and a few running figures are kept (count, first
and last arrival, peak windows), and the list of arrivals that tests read
holds only the latest ``keep``. Actions are known names (or ``?``) and
AccessKeys authenticated ones, so what a stranger sends adds no key.

Faults, latency and arrival jitter draw from generators seeded by ``seed``,
jitter from its own, so that adding jitter leaves the fault sequence as it
was: the same seed gives the same faults, whatever the interleaving.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .constraints import ERRORS

if TYPE_CHECKING:
    from .config import SimConfig

__all__ = ["FAULT_KINDS", "Faults", "Quota", "max_in_window"]

#: "late": held until the client gives up (its timeout), then carried out: a write that lands after the
#: client's read-back may already have said "not applied"
FAULT_KINDS = ("internal_before", "internal_after", "unavailable", "throttle", "drop", "hang", "late")

#: the answer each fault kind that answers at all gives, before the call is applied (a throttle: see below)
FAULT_CODES = {"internal_before": "InternalError", "unavailable": "ServiceUnavailable"}
#: what an injected throttle may answer (``SimConfig.throttle_codes``): 400 Throttling.User, 503 Throttling
THROTTLE_CODES = tuple(code for code in ERRORS if code.startswith("Throttling"))


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The largest number of ``times`` inside any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        # Written as the window's own bound, s + window <= t, so float rounding agrees with it.
        while ordered[start] + window <= t:
            start += 1
        best = max(best, end - start + 1)
    return best


class _Window:
    """Times of one stream of events within the last second, and the most ever seen at once."""

    __slots__ = ("times", "peak")

    def __init__(self) -> None:
        self.times: collections.deque[float] = collections.deque()
        self.peak = 0

    def count_after_prune(self, now: float) -> int:
        """How many events share the window ending at ``now``."""
        # Half-open windows: an event exactly one second old no longer shares a window with now.
        times = self.times
        while times and times[0] + 1.0 <= now:
            times.popleft()
        return len(times)

    def add(self, now: float) -> None:
        """Count an event at ``now`` (after ``count_after_prune(now)``)."""
        self.times.append(now)
        self.peak = max(self.peak, len(self.times))


class _Span:
    """Arrivals of one (AccessKey, action): how many, the first and the last."""

    __slots__ = ("calls", "first", "last", "refused", "last_refused")

    def __init__(self, now: float) -> None:
        self.calls = self.refused = 0
        self.first = self.last = now
        self.last_refused: float | None = None


class Quota:
    """Per (AccessKey, action): a sliding one-second quota, and the pace seen at arrival."""

    __slots__ = ("_arrivals", "_arrival_windows", "_quota_windows", "_spans")

    def __init__(self, *, keep: int) -> None:
        """``keep``: how many of the latest arrivals ``arrivals()`` shows; every figure counts them all."""
        if keep < 1:
            raise ValueError(f"arrivals kept must be at least 1, got {keep}")
        self._arrivals: collections.deque[tuple[float, str, str]] = collections.deque(maxlen=keep)
        self._arrival_windows: dict[tuple[str, str], _Window] = collections.defaultdict(_Window)
        self._quota_windows: dict[tuple[str, str], _Window] = collections.defaultdict(_Window)
        self._spans: dict[tuple[str, str], _Span] = {}

    def arrive(self, access_key: str, action: str, now: float) -> None:
        """Stamp an authenticated call's arrival."""
        key = (access_key, action)
        self._arrivals.append((now, access_key, action))
        window = self._arrival_windows[key]
        window.count_after_prune(now)
        window.add(now)
        span = self._spans.get(key)
        if span is None:
            span = self._spans[key] = _Span(now)
        span.calls += 1
        span.last = now

    def admit(self, access_key: str, action: str, now: float, *, limit: float) -> bool:
        """Whether a quota of ``limit`` calls per second lets this call through (and count it if so)."""
        window = self._quota_windows[(access_key, action)]
        if window.count_after_prune(now) + 1 > limit:
            span = self._spans.get((access_key, action))
            if span is not None:  # (arrive() made it, unless a caller skipped it)
                span.refused += 1
                span.last_refused = now
            return False
        window.add(now)
        return True

    def arrivals(self) -> list[tuple[float, str, str]]:
        """(time, AccessKey, action) of the latest ``keep`` arrivals, oldest first."""
        return list(self._arrivals)

    def stats(self) -> dict[str, Any]:
        """The most arrivals (and accepted calls) in any window, the pace per key and action, calls per key."""
        by_key: collections.Counter[str] = collections.Counter()
        for (access_key, _), span in self._spans.items():
            by_key[access_key] += span.calls
        return {
            "max_window": max((w.peak for w in self._arrival_windows.values()), default=0),
            "max_window_accepted": max((w.peak for w in self._quota_windows.values()), default=0),
            "pace": self._pace(),
            "by_access_key": dict(by_key),
        }

    def _pace(self) -> dict[str, dict[str, float | None]]:
        """Per "AccessKey/Action": arrivals, their rate between the first and the last, the
        most in any one-second window (all arrivals, and those accepted by the quota), and the
        calls refused for the quota (how many; the last, in seconds after the first arrival)."""
        return {
            f"{access_key}/{action}": {
                "calls": span.calls,
                "seconds": span.last - span.first,
                "per_second": (span.calls - 1) / (span.last - span.first) if span.last > span.first else 0.0,
                "max_window": _peak(self._arrival_windows, (access_key, action)),
                "max_window_accepted": _peak(self._quota_windows, (access_key, action)),
                "refused": span.refused,
                "last_refused": None if span.last_refused is None else span.last_refused - span.first,
            }
            for (access_key, action), span in self._spans.items()
        }


class Faults:
    """Seeded draws: which fault a call gets, its added latency, and the network's arrival jitter.

    The rates are read from ``config`` at every draw: a test may turn faults off mid-run.
    """

    __slots__ = ("config", "_rng", "_jitter", "counts")

    def __init__(self, config: SimConfig) -> None:
        unknown = sorted(set(config.fault_kinds) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; expected some of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= config.error_rate <= 1.0:
            raise ValueError(f"error_rate must be between 0 and 1, got {config.error_rate}")
        if config.error_rate and not config.fault_kinds:
            raise ValueError("error_rate > 0 needs at least one fault kind")
        wrong = [code for code in config.throttle_codes if not code.startswith("Throttling") or code not in ERRORS]
        if wrong or not config.throttle_codes:
            raise ValueError(f"throttle codes must be some of {', '.join(THROTTLE_CODES)}, got {', '.join(wrong)}")
        if config.arrival_jitter_ms < 0:
            raise ValueError(f"arrival_jitter_ms must not be negative, got {config.arrival_jitter_ms}")
        self.config = config
        seed = config.seed
        self._rng = random.Random(seed)
        self._jitter = random.Random(None if seed is None else f"arrival-jitter/{seed}")
        #: faults injected so far, per kind
        self.counts: collections.Counter[str] = collections.Counter()

    def throttle_code(self) -> str:
        """The code of the injected throttle just drawn: ``throttle_codes`` one after another."""
        codes = self.config.throttle_codes
        return codes[(self.counts["throttle"] - 1) % len(codes)]

    def draw(self, action: str) -> tuple[str | None, bool]:
        """Which fault this call gets (or None) and, for a drop, whether it comes after applying."""
        config = self.config
        rate = config.error_rate
        if not rate or (config.fault_actions and action not in config.fault_actions):
            return None, False
        roll = self._rng.random()
        if roll >= rate:
            return None, False
        kinds = config.fault_kinds
        kind = kinds[min(int(roll / rate * len(kinds)), len(kinds) - 1)]
        self.counts[kind] += 1
        return kind, kind == "drop" and self._rng.random() < 0.5

    def latency(self) -> float:
        """Seconds to hold this call's answer."""
        mean, jitter = self.config.latency_ms, self.config.latency_jitter_ms
        if jitter:
            return max(0.0, self._rng.gauss(mean, jitter)) / 1000.0
        return mean / 1000.0

    def arrival_delay(self) -> float:
        """Seconds of network jitter before a request is counted and stamped."""
        most = self.config.arrival_jitter_ms
        return self._jitter.uniform(0.0, most) / 1000.0 if most else 0.0


def _peak(windows: dict[tuple[str, str], _Window], key: tuple[str, str]) -> int:
    window = windows.get(key)
    return window.peak if window is not None else 0
