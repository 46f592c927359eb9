"""What a run is asked to do, and what it reports back.

    options = RunOptions(action=resolve("AddLiveSnapshotNotifyConfig"),
                         input_path=Path("domains.csv"), checkpoint_path=Path("domains.ckpt"),
                         overrides={"NotifyUrl": "https://cb.example.com/snap"}, if_exists=IfExists.UPDATE)
    result = await engine.run(options, client=client)
    sys.exit(result.exit_code)

A row moves as ``bulk.checkpoint.RowState`` says. The exit code is derived from the
final counts, so no path can end 0 with a row unaccounted for; the one run
that ends 0 with rows left ``pending`` is a canary, which says so.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .actions import Action
from .checkpoint import RowState
from .errors import Exit, UsageError
from .identity import Identity
from .timeline import Timeline

if TYPE_CHECKING:
    from .client import Outcome

__all__ = [
    "Canary",
    "CanaryRow",
    "Halt",
    "HaltKind",
    "IfExists",
    "Mode",
    "RunOptions",
    "RunResult",
    "RunStats",
    "Tuning",
]


class Mode(StrEnum):
    """What a run does with each row: change it, or only read its live state."""

    APPLY = "apply"
    PLAN = "plan"
    VERIFY = "verify"
    #: put each domain back as a run's backup recorded it (``bulk rollback``)
    ROLLBACK = "rollback"


class IfExists(StrEnum):
    """What an existing, different config means for a create (a 409 ConfigAlreadyExists)."""

    FAIL = "fail"
    SKIP = "skip"
    UPDATE = "update"


class HaltKind(StrEnum):
    """Why a run stopped before every row was finished."""

    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM
    CREDENTIALS_REFUSED = "credentials refused"  # the service refused the AccessKey or signature
    CREDENTIALS_UNAVAILABLE = "credentials unavailable"  # the credential chain kept failing
    ENDPOINT_UNREACHABLE = "endpoint unreachable"  # no connection at all since the start
    LOCAL_FAULT = "local fault"  # a file of ours could not be written: disk full, sqlite error
    SAFETY_STOP = "safety stop"  # too many rows failed alike: the account or the set-up is wrong, not the rows

    @property
    def per_account(self) -> bool:
        """Whether it is about one account's credentials or failures: in a run across accounts, the others go on."""
        return self in (HaltKind.CREDENTIALS_REFUSED, HaltKind.CREDENTIALS_UNAVAILABLE, HaltKind.SAFETY_STOP)

    @property
    def exit_code(self) -> Exit:
        """3 (run again to resume) for an interruption or a local fault, 5 for a safety stop, else 2."""
        if self in (HaltKind.INTERRUPTED, HaltKind.LOCAL_FAULT):
            return Exit.INTERRUPTED
        if self is HaltKind.SAFETY_STOP:
            return Exit.SAFETY_STOP
        return Exit.USAGE


@dataclass(frozen=True, slots=True)
class Halt:
    """Why a run (or one account's lane) stopped early, told to the operator."""

    kind: HaltKind
    #: one line for the operator: what happened and what to do (never a secret)
    message: str
    #: the service's error code behind the halt, when there is one
    code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Tuning:
    """How a run calls the API: the options every command that calls it shares.

        tuning = Tuning(qps=20, timeout=5.0)
        options = RunOptions(action=..., input_path=..., checkpoint_path=..., **tuning.fields())
    """

    qps: float = 30.0
    concurrency: int | None = None
    max_attempts: int = 8
    timeout: float = 10.0
    #: the safety stop's failure rate (1 turns it off)
    max_failure_rate: float = 0.5
    log_file: Path | None = None

    def fields(self) -> dict[str, Any]:
        """As RunOptions keyword arguments."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """Everything a run needs, checked when made (UsageError); its repr names no value."""

    action: Action
    input_path: Path
    checkpoint_path: Path
    #: --set values; secret ones are shown as fingerprints in the repr, never stored
    overrides: dict[str, str] = field(default_factory=dict, repr=False)
    qps: float = 30.0
    concurrency: int | None = None
    max_attempts: int = 8
    timeout: float = 10.0
    if_exists: IfExists = IfExists.FAIL
    strict: bool = False
    retry_failed: bool = False
    log_file: Path | None = None
    grace: float = 5.0
    #: extra checkpoint metadata that must match on resume (e.g. a keys file digest)
    extra_meta: dict[str, Any] = field(default_factory=dict)
    mode: Mode = Mode.APPLY
    #: run --plan: the plan file, whose rows say which action each line gets
    plan_path: Path | None = None
    #: parameters taken from the live config right before sending (a rotation keeping NotifyUrl)
    keep_current: tuple[str, ...] = ()
    #: only these input lines take part (verify: the rows a run recorded done)
    only_lines: frozenset[int] | None = field(default=None, repr=False)
    #: the safety stop: halt once more than this share of the last 100 finished rows failed
    #: permanently, or 10 in a row failed with one code; 1 turns it off
    max_failure_rate: float = 0.5
    #: take only the first N rows still to send, read each back, and stop
    canary: int | None = None
    #: record each domain's state before its first write, for ``bulk rollback``
    backup: bool = True
    #: the aliyun CLI profile names a row's Profile may take (``credentials.profile_names()``);
    #: None takes no Profile column
    profiles: frozenset[str] | None = field(default=None, repr=False)
    #: where and as whom the run sends: recorded by a new run, checked by a resume (None: neither)
    identity: Identity | None = None
    #: a rollback: per domain, what the undone run's write set (read-back fields, "" for one it cleared);
    #: a domain that holds something else now is left alone (``RowState.CONFLICT``)
    undo: Mapping[str, Mapping[str, str]] | None = field(default=None, repr=False)
    #: a rollback: restore even the domains another client changed since (``--force``)
    force: bool = False

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "if_exists", IfExists(self.if_exists))
        except ValueError:
            raise UsageError(f"--if-exists must be one of {', '.join(IfExists)}, got {self.if_exists!r}") from None
        object.__setattr__(self, "mode", Mode(self.mode))
        if self.qps <= 0:
            raise UsageError("--qps must be positive")
        if self.max_attempts < 1:
            raise UsageError("--max-attempts must be at least 1")
        if self.timeout <= 0:
            raise UsageError("--timeout must be positive")
        if self.mode is not Mode.APPLY and self.action.reader is None:
            raise UsageError(f"{self.action.name} changes nothing: there is nothing to plan or verify")
        if not 0 < self.max_failure_rate <= 1:
            raise UsageError("--max-failure-rate must be above 0 and at most 1 (1 turns the safety stop off)")
        if self.canary is not None and self.canary < 1:
            raise UsageError("--canary must be at least 1")

    def __repr__(self) -> str:
        # Names only: values may be secrets, and a repr ends up in tracebacks.
        return (f"RunOptions(action={self.action.name}, input={self.input_path}, mode={self.mode}, "
                f"overrides=[{', '.join(self.overrides)}])")

    @property
    def changes(self) -> bool:
        """Whether the run sends changing calls (apply or rollback of a changing action)."""
        return self.mode in (Mode.APPLY, Mode.ROLLBACK) and not self.action.read_only

    @property
    def row_action(self) -> Action:
        """The action rows are validated against: kept parameters come later, from the service."""
        if not self.keep_current:
            return self.action
        params = tuple(replace(p, required=False) if p.name in self.keep_current else p for p in self.action.params)
        return replace(self.action, params=params)

    @property
    def workers(self) -> int:
        """In-flight ceiling: enough for the quota even if every call takes the whole timeout.

        Calls in flight follow the pace times the service's latency by themselves
        (a row starts only once its first call is admitted by the pacer); this
        only bounds sockets when the quota is huge.
        """
        if self.concurrency:
            return self.concurrency
        return max(8, min(1024, math.ceil(self.qps * self.timeout)))


@dataclass(slots=True)
class RunStats:
    """Live counters of a run, read by the progress display."""

    total: int = 0
    to_send: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    invalid: int = 0
    unknown: int = 0
    conflict: int = 0
    calls: int = 0
    retrying: int = 0
    started: float = field(default_factory=time.monotonic)
    errors: Counter[str] = field(default_factory=Counter)
    #: rows an earlier run had already settled when this one began (not counted in this run's pace)
    settled_before: int = 0
    #: the run's per-second aggregates, kept in the checkpoint (``bulk.timeline``)
    timeline: Timeline = field(default_factory=Timeline)
    #: calls answered, by answer: "OK" for a success, else the error code (the service's, or bulk's own)
    answers: Counter[str] = field(default_factory=Counter)
    #: throttling episodes met (one cut of the pace each; see ``bulk.pacing``)
    throttling_episodes: int = 0

    @property
    def finished(self) -> int:
        """Rows the run is through with, whatever their outcome."""
        return self.done + self.skipped + self.failed + self.invalid + self.unknown + self.conflict

    @property
    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    @property
    def pace(self) -> float:
        """Calls per second so far."""
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds until the rows still to send are settled, at this run's pace in rows (a row may take two
        calls or more); None before the first row settled, 0 once all have."""
        this_run = self.finished - self.settled_before
        left = self.to_send - this_run
        if left <= 0:
            return 0.0
        return left * self.elapsed / this_run if this_run > 0 else None

    def answered(self, action: str, outcome: Outcome) -> None:
        """Count one call that was sent (its answer, or its timeout)."""
        self.calls += 1
        self.timeline.answered(action, outcome)

    def count(self, state: RowState, code: str | None) -> None:
        """Count one finished row by its state, and the code of a failed or unknown one."""
        self.timeline.finished(failed=state is RowState.FAILED or state is RowState.UNKNOWN)
        if state is RowState.DONE:
            self.done += 1
        elif state is RowState.SKIPPED:
            self.skipped += 1
        elif state is RowState.FAILED or state is RowState.UNKNOWN:
            if state is RowState.FAILED:
                self.failed += 1
            else:
                self.unknown += 1
            if code:
                self.errors[code] += 1
        elif state is RowState.CONFLICT:
            self.conflict += 1


@dataclass(frozen=True, slots=True)
class CanaryRow:
    """One row a canary took, and whether it holds its change."""

    line: int
    domain: str
    #: why the row does not count as applied and verified; None when it does
    problem: str | None


@dataclass(frozen=True, slots=True)
class Canary:
    """The rows a canary took, in line order, and whether each holds its change."""

    rows: tuple[CanaryRow, ...]

    @property
    def verified(self) -> int:
        """How many of the canary's rows hold their change."""
        return sum(r.problem is None for r in self.rows)

    @property
    def ok(self) -> bool:
        """Whether every row of the canary holds its change."""
        return self.verified == len(self.rows)


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended: rows by state, errors by code, calls made, time taken, and why it stopped early."""

    counts: dict[str, int]
    errors: dict[str, int]
    calls: int
    elapsed: float
    checkpoint: Path
    #: why the run stopped early, if it did
    halt: Halt | None = None
    #: a canary run's verdict (``--canary``)
    canary: Canary | None = None
    #: a run across accounts: the accounts (profile names; "" for rows that name none) that
    #: stopped on their own while the others went on, and why
    stopped: dict[str, Halt] = field(default_factory=dict)
    #: why the checkpoint, left by a run that never sent a call, was started anew (None: it was not)
    restarted: str | None = None
    #: this run's calls by answer: "OK" for a success, else the error code
    answers: dict[str, int] = field(default_factory=dict)
    #: throttling episodes this run met
    throttling_episodes: int = 0

    @property
    def pace(self) -> float:
        """Calls per second over the whole run."""
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def unfinished(self) -> int:
        """Rows left pending or sending: the next run takes them up."""
        return self.counts.get(RowState.PENDING, 0) + self.counts.get(RowState.SENDING, 0)

    @property
    def unknown(self) -> int:
        """Rows whose outcome the run tried and could not learn: the next run reads them back first."""
        return self.counts.get(RowState.UNKNOWN, 0)

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl-C or SIGTERM stopped the run."""
        return self.halt is not None and self.halt.kind is HaltKind.INTERRUPTED

    @property
    def exit_code(self) -> Exit:
        """What the run's end means to the operator (``Exit``).

        A halt's code first; then 3 while outcomes are unknown or rows
        unfinished; a canary's verdict; else 1 if any row failed, was invalid
        or conflicted, and 0.
        """
        if self.halt is not None:
            return self.halt.kind.exit_code
        if self.stopped:
            return next(iter(self.stopped.values())).kind.exit_code
        if self.unknown:
            # Outcomes still to be read back: never 0 (nor 1, which says every row is settled).
            return Exit.INTERRUPTED
        if self.canary is not None:
            # Rows after the canary's are left pending on purpose; its own rows are all done when it is ok.
            return Exit.OK if self.canary.ok else Exit.FAILED
        if self.unfinished:
            # Rows whose outcome could not be settled (a read-back that kept failing):
            # never 0, and the next run reads them back.
            return Exit.INTERRUPTED
        settled_badly = (RowState.FAILED, RowState.INVALID, RowState.CONFLICT)
        return Exit.FAILED if any(self.counts.get(s) for s in settled_badly) else Exit.OK
