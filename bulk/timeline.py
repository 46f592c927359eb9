"""A run's timeline: a few numbers per second (calls, answers by code, throttling, latency, rows finished).

    timeline = Timeline(quota=30)
    timeline.answered("AddLiveSnapshotNotifyConfig", outcome)   # each answer: O(1)
    timeline.finished(failed=False)                             # each row taken to an outcome
    seconds = timeline.take(now=time.time())                    # the seconds that are over, summarised
    ckpt.timeline = timeline                                     # or let the checkpoint take them as it commits

Why: ``bulk report --html`` draws the run from these, for any run, with or
without ``--log-file``, so they live in the checkpoint. The checkpoint takes
the seconds that are over each time it commits a batch of row outcomes
(``Checkpoint.flush``), in the same transaction: no commit of its own, no
sync. A crash loses at most the seconds since the last commit, as it does
the outcomes. Only the current second's latencies are held; a second that
is over keeps its percentiles, so memory does not grow with the rate.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .client import Failure, Outcome

__all__ = ["OK_CODE", "Second", "Timeline", "percentile"]

#: the code a success is counted under in ``Second.codes``
OK_CODE = "OK"


def percentile(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile ``share`` (0..1) of an ascending, non-empty list."""
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


@dataclass(frozen=True, slots=True)
class Second:
    """One second of a run, summarised: what the checkpoint's ``timeline`` table holds per row."""

    #: whole seconds since the epoch (UTC)
    at: int
    #: calls answered (or timed out) in this second, per action
    calls: dict[str, int]
    #: answers by code: ``OK_CODE`` for a success, else the error code (Throttling.User, Timeout...)
    codes: dict[str, int]
    #: answers with a throttling code
    throttled: int
    #: rows taken to an outcome, and how many of them failed or ended unknown
    finished: int
    failed: int
    #: latency percentiles of the second's answers, in seconds (None without an answer)
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
    #: calls per second allowed per account and operation, as the run was given
    quota: float | None


class _Open:
    """The second being counted."""

    __slots__ = ("at", "calls", "codes", "failed", "finished", "latencies", "throttled")

    def __init__(self, at: int) -> None:
        self.at = at
        self.calls: Counter[str] = Counter()
        self.codes: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.throttled = self.finished = self.failed = 0

    def close(self, quota: float | None) -> Second:
        ordered = sorted(self.latencies)
        p50, p90, p99, top = ((percentile(ordered, 0.5), percentile(ordered, 0.9), percentile(ordered, 0.99),
                               ordered[-1]) if ordered else (None, None, None, None))
        return Second(self.at, dict(self.calls), dict(self.codes), self.throttled, self.finished, self.failed,
                      p50, p90, p99, top, quota)


class Timeline:
    """Counts a run's answers and finished rows per second; ``take`` hands over the seconds that are over."""

    __slots__ = ("_clock", "_done", "_open", "quota")

    def __init__(self, *, quota: float | None = None, clock: Callable[[], float] = time.time) -> None:
        self.quota = quota
        self._clock = clock
        self._open: _Open | None = None
        self._done: list[Second] = []

    def _now(self) -> _Open:
        at = int(self._clock())
        current = self._open
        if current is None or current.at != at:
            if current is not None:
                self._done.append(current.close(self.quota))
            current = self._open = _Open(at)
        return current

    def answered(self, action: str, outcome: Outcome) -> None:
        """Count one answer of ``action`` (a success, the service's refusal, or a timeout)."""
        current = self._now()
        current.calls[action] += 1
        if isinstance(outcome, Failure):
            current.codes[outcome.code] += 1
            current.throttled += outcome.throttled
        else:
            current.codes[OK_CODE] += 1
        current.latencies.append(outcome.latency)

    def finished(self, *, failed: bool) -> None:
        """Count one row taken to an outcome (``failed``: failed or unknown)."""
        current = self._now()
        current.finished += 1
        current.failed += failed

    def take(self, *, final: bool = False) -> list[Second]:
        """The seconds that are over, oldest first (``final``: the current one too), handed over once."""
        if self._open is not None and (final or self._open.at != int(self._clock())):
            self._done.append(self._open.close(self.quota))
            self._open = None
        done, self._done = self._done, []
        return done
