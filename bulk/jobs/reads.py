"""The jobs that read: plan (classify each row), verify (read back what is done), canary (read back after another
job), export (keep what every family's read shows).

    job = CanaryJob(ApplyJob(if_exists=IfExists.FAIL))
    outcome = await job.run(row, calls)
    job.results[row.line]                     # CanaryRow: None if the row holds its change, else why not
"""

from __future__ import annotations

from ..actions import FAMILIES, SECRET_PARAMS, Action
from ..checkpoint import RowOutcome, RowState
from ..client import Failure
from ..options import CanaryRow
from ..plan import changes, classify, shown, state_seen
from ..rows import WorkRow
from .calls import Job, RowCalls, _reader

__all__ = ["CanaryJob", "ExportJob", "PlanJob", "VerifyJob"]


class _ReadBack:
    """A job that reads each row's domain with the row action's read partner, and sends nothing."""

    __slots__ = ()
    reads_only = True

    def first_call(self, row: WorkRow) -> Action:
        """The action of the row\'s first call (the dispatcher takes its admission)."""
        return _reader(row.action)


class PlanJob(_ReadBack):
    """Read each domain's live state and classify the row: create, update, noop or conflict."""

    __slots__ = ()

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
        """Take the row to an outcome; None when stopped or when its outcome must wait for the next run."""
        reader = _reader(row.action).name
        current = await calls.read(row.action)
        if current is None:
            return None
        if isinstance(current, Failure):
            if current.transient:
                return RowOutcome.failed(reader, current, "cannot read the current state")
            return RowOutcome(RowState.DONE, reader, current.code,
                              f"cannot read the current state: {current.code}: {current.message}", current.status,
                              current.request_id, plan_kind="conflict")
        kind, fields, send = classify(row.action, row.params, current)
        shown = changes(row.action, row.params, current) if fields else None
        return RowOutcome(RowState.DONE, reader, message=shown, plan_kind=kind, plan_fields=",".join(fields),
                          plan_send=send, plan_seen=state_seen(current))


class VerifyJob(_ReadBack):
    """Read back each row a run recorded done; drift is a failure."""

    __slots__ = ()

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
        """Take the row to an outcome; None when stopped or when its outcome must wait for the next run."""
        reader = _reader(row.action).name
        current = await calls.read(row.action)
        if current is None:
            return None
        if isinstance(current, Failure):
            return RowOutcome.failed(reader, current)
        diffs = row.action.differences(row.params, current)
        if diffs:
            # live -> what the run set, field by field (keys as fingerprints)
            return RowOutcome(RowState.FAILED, reader, "Drift", f"live state differs in {', '.join(diffs)}: "
                              f"{changes(row.action, row.params, current)} (live -> as the run set it)")
        return RowOutcome(RowState.DONE, reader, message="in sync")


class CanaryJob:
    """Another job's rows, each read back once it is done: ``results`` says which hold their change."""

    __slots__ = ("_inner", "results")

    def __init__(self, inner: Job) -> None:
        self._inner = inner
        self.results: dict[int, CanaryRow] = {}

    @property
    def reads_only(self) -> bool:
        """Whether the wrapped job only reads."""
        return self._inner.reads_only

    def first_call(self, row: WorkRow) -> Action:
        """The action of the row\'s first call (the dispatcher takes its admission)."""
        return self._inner.first_call(row)

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
        """Take the row to an outcome; None when stopped or when its outcome must wait for the next run."""
        outcome = await self._inner.run(row, calls)
        if outcome is None:
            return None
        problem = None
        if outcome.state is not RowState.DONE:
            problem = ": ".join(str(part) for part in (outcome.state, outcome.code, outcome.message) if part)
        if problem is None:
            current = await calls.read(row.action)
            if current is None:
                return outcome  # stopped: the row is done, its check not finished
            if isinstance(current, Failure):
                problem = f"done, but the read-back failed: {current.code}: {current.message}"
            elif diffs := row.action.differences(row.params, current):
                # The service answered OK and does not hold the change: the row is failed, and says why.
                problem = f"the service answered OK, but a read-back differs in {', '.join(diffs)}"
                outcome = RowOutcome(RowState.FAILED, outcome.action, "NotHeld", problem, request_id=outcome.request_id)
        self.results[row.line] = CanaryRow(row.line, row.domain, problem)
        return outcome


class ExportJob:
    """Read each domain's config in every family and keep the answer: ``results``, keys as fingerprints.

    A run with it keeps what a plain Describe run throws away. A row whose
    read fails is failed, and has no entry.
    """

    __slots__ = ("results",)
    reads_only = True

    def __init__(self) -> None:
        #: line -> DomainName and each family's fields; a key ``Name`` as ``NameFingerprint`` (``plan.shown``)
        self.results: dict[int, dict[str, str]] = {}

    def first_call(self, row: WorkRow) -> Action:
        """The action of the row\'s first call (the dispatcher takes its admission)."""
        return FAMILIES[0].read

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
        """Read every family's config of the row's domain; None when stopped."""
        kept = {"DomainName": row.domain}
        for family in FAMILIES:
            current = await calls.state(family.read)
            if current is None:
                return None
            if isinstance(current, Failure):
                return RowOutcome.failed(family.read.name, current, "cannot read the current config")
            for name in family.read.returns[1:]:
                value = current.get(name, "")
                if name in SECRET_PARAMS:
                    kept[f"{name}Fingerprint"] = shown(name, value) if value else ""
                else:
                    kept[name] = value
        self.results[row.line] = kept
        return RowOutcome(RowState.DONE, FAMILIES[-1].read.name, message="read")
