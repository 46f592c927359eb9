"""What the checkpoint holds: a row's state, its outcome, and the rows as they are read back.

    RowOutcome(RowState.DONE, "AddLiveSnapshotNotifyConfig", request_id="...")
    RowState.SENDING.finished                 # False: the row may have reached the service

The states and how a row moves between them are in ``bulk.checkpoint``.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from ..client import Failure

__all__ = ["ANY_PROFILE", "PLAN_CONFLICT", "RowOutcome", "RowState", "StoredRow", "TodoRow", "profile_order"]

#: ``todo(profile=ANY_PROFILE)``: rows of every profile
ANY_PROFILE = object()


def profile_order(profile: str | None) -> tuple[bool, str]:
    """Sort key of profiles as bulk lists them: rows that name none first, then by name."""
    return profile is not None, profile or ""


#: a plan's verdict that a row must not be sent; --retry-failed leaves it alone
PLAN_CONFLICT = "PlanConflict"


class RowState(StrEnum):
    """Where a row stands (the diagram in ``bulk.checkpoint``)."""

    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    INVALID = "invalid"
    #: the run tried and could not learn whether the service holds the change
    UNKNOWN = "unknown"
    #: a rollback left the domain alone: another client changed it since the run wrote it
    CONFLICT = "conflict"

    @property
    def finished(self) -> bool:
        """Whether the row has an outcome (not pending, not sending)."""
        return self not in (RowState.PENDING, RowState.SENDING)


@dataclass(frozen=True, slots=True)
class TodoRow:
    """A row still to send, as the checkpoint knows it."""

    line: int
    offset: int | None
    state: RowState
    attempts: int
    #: an earlier changing call may have reached the service: read back first
    reached: bool
    #: run --plan: the action the plan chose for this row
    plan_send: str | None
    #: the aliyun CLI profile that sends it (None: the run's credentials)
    profile: str | None
    #: run --plan: the plan's verdict (kind, differing fields, ``plan.state_seen`` of the state it read)
    plan: tuple[str, str, str | None] | None = None
    #: the backup's mark when the row was last claimed (None: by a run without a backup)
    claim_mark: int | None = None


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """What became of a row: what a job decides (``state`` to ``plan_send``), and, once the
    dispatcher has attached it to its row, the row's ``line``, ``attempts`` and ``reached``."""

    state: RowState
    #: the call whose answer decided it
    action: str | None = None
    code: str | None = None
    message: str | None = None
    status: int | None = None
    request_id: str | None = None
    transient: bool = False
    #: a plan run's verdict: its kind, the fields that differ, the action to send, the state it read
    plan_kind: str | None = None
    plan_fields: str | None = None
    plan_send: str | None = None
    plan_seen: str | None = None
    _: KW_ONLY
    line: int = 0
    #: changing calls sent for the row so far (a read-only run: its reads)
    attempts: int = 0
    #: a changing call may have reached the service (never unset once set)
    reached: bool = False

    def of_row(self, *, line: int, attempts: int, reached: bool) -> RowOutcome:
        """This outcome attached to its row (what ``dataclasses.replace`` would make, at a fraction of its cost)."""
        return RowOutcome(self.state, self.action, self.code, self.message, self.status, self.request_id,
                          self.transient, self.plan_kind, self.plan_fields, self.plan_send, self.plan_seen,
                          line=line, attempts=attempts, reached=reached)

    @classmethod
    def failed(cls, action: str, failure: Failure, note: str | None = None) -> RowOutcome:
        """The row failed with ``failure``'s answer; ``note`` says more."""
        message = f"{failure.message} ({note})" if note and failure.message else (note or failure.message)
        return cls(RowState.FAILED, action, failure.code, message, failure.status, failure.request_id,
                   failure.transient)


class StoredRow(TypedDict):
    """A row as the checkpoint holds it (``Checkpoint.rows``)."""

    line: int
    domain: str | None
    state: str
    attempts: int
    action: str | None
    code: str | None
    message: str | None
    status: int | None
    request_id: str | None
    transient: int
    started: float | None
    finished: float | None
    reached: int
    offset: int | None
    #: the domain as written in the input, when normalising changed it
    given: str | None
    plan_kind: str | None
    plan_fields: str | None
    plan_send: str | None
    #: the aliyun CLI profile that sends the row (None: the run's credentials); a name, never a secret
    profile: str | None
    #: a fingerprint of the live state the plan read (never the state: it holds keys)
    plan_seen: str | None
    #: the backup's mark when the row was last claimed (``Backup.mark``; None: no backup kept then)
    claim_mark: int | None
