"""The fleet-wide safety stop: halt a run whose failures are about the account, not the rows.

    safety = SafetyStop(max_failure_rate=0.5)
    for outcome in outcomes:                      # every row the run takes to an outcome
        if (halt := safety.observe(outcome)) is not None:
            lane.stop(halt)                       # Halt(HaltKind.SAFETY_STOP, "...", code="Forbidden.RAM")

Some permanent errors are not about the row: a RAM policy without the
action (``Forbidden.RAM``), a clock off by more than 15 minutes
(``InvalidTimeStamp.Expired``), a NotifyUrl the service rejects for every
domain. Without a stop, such a run fails every row of the fleet one by one.
Like S3 Batch Operations, which fails a job once more than half of its tasks
fail, a run stops when either rule holds:

- more than ``max_failure_rate`` of the last ``window`` finished rows failed
  permanently, once at least ``min_rows`` have finished;
- ``streak`` finished rows in a row failed with the same code.

A ``max_failure_rate`` of 1 turns both rules off: a run that must go past
any number of failures (say, a list with many deleted domains) can. The
halt names the code, the service's message and the fix, and carries the
code: the engine records it, and the next run of the same command retries
the rows that failed with it. The state lives in this object: a run across
accounts keeps one per account, so one account's stop leaves the others going.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

from .checkpoint import RowOutcome, RowState
from .options import Halt, HaltKind

__all__ = ["META_KEY", "SafetyStop", "fix_for", "tripped"]

#: checkpoint metadata: the codes that tripped the last run's stops; their rows are reopened by the next run
META_KEY = "safety_stop"


def tripped(meta: Mapping[str, Any] | None) -> list[str]:
    """The codes recorded under META_KEY (one string in checkpoints of a single-account bulk)."""
    codes = (meta or {}).get(META_KEY) or []
    return [codes] if isinstance(codes, str) else list(codes)

#: what to do about an error code that fails every row; ``{action}`` is the call that failed
_FIXES: dict[str, str] = {
    "Forbidden": "grant the RAM user or role of these credentials the action live:{action} in its policy",
    "NoPermission": "grant the RAM user or role of these credentials the action live:{action} in its policy",
    "InvalidTimeStamp.Expired": "this machine's clock is more than 15 minutes off: synchronise it (NTP)",
    "SignatureNonceUsed": "something replays requests between bulk and the service: check proxies",
    "InvalidDomain.NotFound": "the domains are not in the account of these credentials: check the input and "
                              "--profile (to go on past such rows, run again with --max-failure-rate 1)",
    "MalformedParam": "the service rejects a value every row shares: check the --set values against its message",
    "MissingParam": "the service misses a parameter every row lacks: add it with --set",
    "InvalidParameter": "the service rejects a value every row shares: check the --set values against its message",
    "InvalidAction.NotFound": "the endpoint does not offer this action: check --endpoint",
    "InvalidVersion": "the endpoint does not speak the Live API 2016-11-01: check --endpoint",
    "KeyNotShown": "the endpoint's reads do not show the auth keys (the Live API's do), so no key can be read "
                   "back: check --endpoint and any proxy in between",
}
_DEFAULT_FIX = "look the code up in the Live API documentation and fix the cause"


def fix_for(code: str, action: str | None) -> str:
    """The fix for ``code``: the most specific entry of the table (``Forbidden.RAM`` falls back to ``Forbidden``)."""
    parts = code.split(".")
    for n in range(len(parts), 0, -1):
        fix = _FIXES.get(".".join(parts[:n]))
        if fix is not None:
            return fix.format(action=action or "the action this run calls")
    return _DEFAULT_FIX


class SafetyStop:
    """Watches every finished row of a run; ``observe`` returns the Halt once, when a rule trips."""

    __slots__ = ("_codes", "_examples", "_min_rows", "_rate", "_recent", "_streak", "_streak_code", "_streak_max",
                 "tripped")

    def __init__(
        self, *, max_failure_rate: float = 0.5, window: int = 100, min_rows: int = 20, streak: int = 10
    ) -> None:
        if not 0 < max_failure_rate <= 1:
            raise ValueError("max_failure_rate must be above 0 and at most 1")
        self._rate = max_failure_rate
        self._min_rows = min_rows
        self._streak_max = streak
        #: the code of each of the last ``window`` finished rows that failed permanently, else None
        self._recent: deque[str | None] = deque(maxlen=window)
        self._codes: Counter[str] = Counter()
        #: the last row that failed with each code: its message and action go into the halt
        self._examples: dict[str, RowOutcome] = {}
        self._streak = 0
        self._streak_code: str | None = None
        self.tripped: Halt | None = None

    @property
    def enabled(self) -> bool:
        """Whether the stop is on (a failure rate of 1 turns it off)."""
        return self._rate < 1

    def observe(self, outcome: RowOutcome) -> Halt | None:
        """Count one finished row; the Halt if this row trips the stop (only the first time)."""
        if self.tripped is not None or not self.enabled:
            return None
        # A refused read-back (unknown) is about the account as much as a refused write.
        refused = outcome.state in (RowState.FAILED, RowState.UNKNOWN) and not outcome.transient
        code = outcome.code if refused else None
        if len(self._recent) == self._recent.maxlen and (gone := self._recent[0]) is not None:
            self._codes[gone] -= 1
        self._recent.append(code)
        self._streak = self._streak + 1 if code is not None and code == self._streak_code else int(code is not None)
        self._streak_code = code
        if code is None:
            return None
        self._codes[code] += 1
        self._examples[code] = outcome
        if self._streak >= self._streak_max:
            return self._trip(code, f"{self._streak} rows in a row failed with it")
        failed, seen = sum(self._codes.values()), len(self._recent)
        if seen >= self._min_rows and failed > self._rate * seen:
            common, n = self._codes.most_common(1)[0]
            return self._trip(common, f"{failed} of the last {seen} finished rows failed (more than "
                                      f"{self._rate:.0%}), {n} of them with it")
        return None

    def _trip(self, code: str, why: str) -> Halt:
        example = self._examples[code]
        said = f' (the service said: "{example.message}")' if example.message else ""
        self.tripped = Halt(
            HaltKind.SAFETY_STOP,
            f"safety stop on {code}: {why}{said}. Fix: {fix_for(code, example.action)}. Rows not yet sent stay "
            f"pending; the next run of the same command retries the rows that failed with {code}",
            code=code,
        )
        return self.tripped
