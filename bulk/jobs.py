"""What a run does with one row, one job per mode: apply, plan, verify, rollback (and a canary around one).

    job = make_job(options)
    first = job.first_call(row)               # the dispatcher takes this call's pacer admission
    outcome = await job.run(row, calls)       # None: stopped, or a read-back to retry next run
    # -> RowOutcome(RowState.DONE, "AddLiveSnapshotNotifyConfig", request_id=...)

A job only decides: it calls through ``RowCalls`` (paced, retried, logged,
with the row's attempt count and whether a changing call may have landed)
and returns what to record. The dispatcher records it. A new mode is a new
job class, and ``first_call`` comes from the job itself, so the admission
the dispatcher takes for a row cannot drift from what the row sends.

The apply job keeps the record truthful:
- a row that may have reached the service before (a crash, a lost answer,
  a failed run), or whose outcome a run could not learn (``unknown``), is
  read back before anything is sent again;
- a failure after an attempt that may have landed is read back too: the
  row is ``done`` if the service holds the change and ``failed`` only if it
  does not. A read-back that keeps failing leaves the row ``sending`` for
  the next run; a refused one (no permission to read) leaves it ``unknown``,
  and so does a write that timed out and is still absent when read again a
  call timeout later, with no attempt left: it may still land;
- run --plan reads each row first, and does not write one whose live state
  is no longer the one the plan read;
- a create that meets an existing, different config follows ``--if-exists``,
  whether the 409 came at once or the read-back found it;
- with a backup (``bulk.backup``), a row's state is read and recorded
  right before its write, on the read-back action's own quota (again on a
  resume, unless an earlier write may have landed).

The rollback job puts each domain back as the backup recorded it, if it
still holds what the run wrote (else the row is a ``conflict``): it reads
the live state and sends only what the difference needs (Delete, the
create or the update action). The canary job wraps another and reads back
every row it took to ``done``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from .actions import Action
from .attempts import Caller, Prepaid, Tried
from .backup import Backup
from .checkpoint import PLAN_CONFLICT, RowOutcome, RowState
from .client import Failure, Success
from .credentials import fingerprint
from .options import CanaryRow, IfExists, Mode, RunOptions
from .plan import classify, state_seen
from .redact import SECRET_NAMES
from .rows import WorkRow

__all__ = ["NO_CONFIG_LEFT", "ApplyJob", "CanaryJob", "Job", "PlanJob", "RollbackJob", "RowCalls", "VerifyJob",
           "make_job"]

_EXISTS = "ConfigAlreadyExists"
#: answers that prove the service cannot hold the row's change: no read-back needed to say failed
_CANNOT_HOLD = frozenset({"InvalidDomain.NotFound", "MissingParam", "MalformedParam"})


class RowCalls:
    """One row's calls: each through the Caller, counted, the first one on the dispatcher's admission."""

    __slots__ = ("_caller", "_count_reads", "_prepaid", "attempts", "reached", "row")

    def __init__(self, caller: Caller, row: WorkRow, prepaid: Prepaid, *, count_reads: bool = False) -> None:
        self._caller = caller
        self._prepaid = prepaid
        self._count_reads = count_reads
        self.row = row
        #: calls that sent the row's change (or, for a job that only reads, its reads)
        self.attempts = 0
        #: a changing call of this run may have reached the service
        self.reached = False

    async def call(self, action: Action, params: Mapping[str, str], *, tried_before: int = 0) -> Tried:
        tried = await self._caller.call(action, params, line=self.row.line, domain=self.row.domain,
                                        prepaid=self._prepaid, tried_before=tried_before)
        if not action.read_only:
            self.attempts += tried.attempts
            self.reached = self.reached or tried.reached
        elif self._count_reads:
            self.attempts += tried.attempts
        return tried

    def may_retry(self, failure: Failure, attempts: int) -> bool:
        return self._caller.may_retry(failure, attempts)

    async def wait(self, seconds: float) -> bool:
        """Wait ``seconds``; True if the run was stopped meanwhile."""
        return await self._caller.wait(seconds)

    @property
    def region(self) -> str | None:
        """The RegionId the row's calls go to: its own, else the client's default."""
        return self.row.params.get("RegionId") or self._caller.region

    @property
    def may_have_landed(self) -> bool:
        """A changing call of this row, in this run or an earlier one, may have reached the service."""
        return self.row.reached or self.reached

    async def read(self, action: Action) -> dict[str, str] | Failure | None:
        """The live state ``action`` changes; the Failure if unreadable; None if stopped."""
        reader = _reader(action)
        params = {"DomainName": self.row.domain}
        if region := self.row.params.get("RegionId"):
            params["RegionId"] = region  # the row's region, for its read as for its change
        tried = await self.call(reader, params)
        if tried.outcome is None or isinstance(tried.outcome, Failure):
            return tried.outcome
        return reader.read(tried.outcome.body)


class Job(Protocol):
    @property
    def reads_only(self) -> bool:
        """True for a job that only reads (plan, verify): its reads are the row's attempts."""

    def first_call(self, row: WorkRow) -> Action:
        """The action of the row's first call: the dispatcher takes its pacer admission."""

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
        """Take the row to an outcome; None when stopped or when a read-back is to be retried next run."""


class ApplyJob:
    """Send each row's action; read back whatever may already have landed."""

    __slots__ = ("_backup", "_if_exists", "_keep", "_planned", "_settle_after")
    reads_only = False

    def __init__(
        self, *, if_exists: IfExists, keep_current: tuple[str, ...] = (), backup: Backup | None = None,
        settle_after: float = 0.0, planned: Action | None = None,
    ) -> None:
        """``settle_after``: how long a write that got no answer may still take to land (the call timeout);
        ``planned``: run --plan, the action the plan was made for (each row is checked against its verdict)."""
        self._if_exists = if_exists
        self._keep = keep_current
        self._backup = backup
        self._settle_after = settle_after
        self._planned = planned

    def _reads_first(self, row: WorkRow) -> bool:
        if row.action.reader is None:
            return False
        return (row.reached or row.unknown or row.plan is not None or bool(self._keep)
                or _wanting(self._backup, row) is not None)

    def first_call(self, row: WorkRow) -> Action:
        return _reader(row.action) if self._reads_first(row) else row.action

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
        action, params = row.action, row.params
        if self._reads_first(row):
            backup = _wanting(self._backup, row)
            current = await calls.read(action)
            if not isinstance(current, dict):
                return _unread(action, current, reached=row.reached or row.unknown, fresh=bool(self._keep))
            if self._keep:
                missing = [k for k in self._keep if not current.get(k)]
                if missing:
                    return RowOutcome(RowState.FAILED, action.name, "NoCurrentConfig",
                                      f"no current config to keep ({', '.join(missing)})")
                params = {**params, **{k: current[k] for k in self._keep}}
            if row.plan is not None and self._planned is not None:
                if not row.reached and (verdict := _against_plan(self._planned, row.plan, params, current)):
                    return verdict
                if action is not self._planned:
                    params = _as_update(self._planned, params)
            if backup is not None:
                await backup.record(row.domain, current, region=calls.region, wrote=_expected(action, params),
                                    profile=row.profile)
            if row.reached or row.unknown:
                diffs = action.differences(params, current)
                if not diffs:
                    how = "read back before resending" if row.reached else "already configured, read back"
                    return RowOutcome(RowState.DONE, action.name, message=f"applied ({how})")
                if not action.idempotent and _exists(action, current):
                    return await self._exists(row, calls, params, diffs)
        return await self.send(row, calls, action, params)

    async def send(self, row: WorkRow, calls: RowCalls, action: Action, params: dict[str, str]) -> RowOutcome | None:
        """Send ``action`` until the service holds it (done) or a read-back shows it does not (failed).

        A write that timed out may still be under way at the service: a
        read-back that finds nothing is made again once ``settle_after`` has
        passed, and if the write is still absent when no attempt is left, its
        outcome is unknown, not failed.
        """
        tries = 0
        while True:
            tried = await calls.call(action, params, tried_before=tries)
            tries += tried.attempts
            outcome = tried.outcome
            if outcome is None:
                return None
            if isinstance(outcome, Success):
                return RowOutcome(RowState.DONE, action.name, request_id=outcome.request_id)
            conflict = outcome.code == _EXISTS and not action.idempotent
            if outcome.code in _CANNOT_HOLD and not calls.may_have_landed:
                return RowOutcome.failed(action.name, outcome)
            # Whatever else went wrong, the row is failed only if the service does not hold its change.
            late = outcome.code == "Timeout"  # no answer in time: the write may still be under way
            for reading in range(2 if late else 1):
                if reading and await calls.wait(self._settle_after):
                    return None
                current = await calls.read(action)
                if not isinstance(current, dict):
                    return _unknown(action, outcome, current)
                diffs = action.differences(params, current)
                if not diffs:
                    how = (f"read back after {outcome.code}" if calls.may_have_landed
                           else "already configured, read back")
                    return RowOutcome(RowState.DONE, action.name, message=f"applied ({how})")
                if not action.idempotent and _exists(action, current) and (conflict or calls.may_have_landed):
                    return await self._exists(row, calls, params, diffs, outcome)
            if not (outcome.maybe_applied and calls.may_retry(outcome, tries)):
                if late:
                    return RowOutcome(RowState.UNKNOWN, action.name, outcome.code,
                                      "no answer in time, and not applied when read back "
                                      f"{self._settle_after:g} s later: "
                                      "the write may still land; the next run reads it back first",
                                      transient=True)
                note = "read back: not applied" if calls.may_have_landed else None
                return RowOutcome.failed(action.name, outcome, note)

    async def _exists(
        self, row: WorkRow, calls: RowCalls, params: dict[str, str], diffs: list[str],
        failure: Failure | None = None,
    ) -> RowOutcome | None:
        """An existing config that differs from the row's: --if-exists decides."""
        action = row.action
        if self._if_exists is IfExists.SKIP:
            return RowOutcome(RowState.SKIPPED, action.name, _EXISTS,
                              f"config already exists (differs in {', '.join(diffs)})",
                              failure.status if failure else None, failure.request_id if failure else None)
        if self._if_exists is IfExists.UPDATE and action.update is not None:
            return await self.send(row, calls, action.update, _as_update(action, params))
        note = f"conflict: an existing config differs in {', '.join(diffs)}"
        if failure is None:
            return RowOutcome(RowState.FAILED, action.name, _EXISTS, note)
        return RowOutcome.failed(action.name, failure, note)


class PlanJob:
    """Read each domain's live state and classify the row: create, update, noop or conflict."""

    __slots__ = ()
    reads_only = True

    def first_call(self, row: WorkRow) -> Action:
        return _reader(row.action)

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
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
        return RowOutcome(RowState.DONE, reader, plan_kind=kind, plan_fields=",".join(fields),
                          plan_send=send, plan_seen=state_seen(current))


class VerifyJob:
    """Read back each row a run recorded done; drift is a failure."""

    __slots__ = ()
    reads_only = True

    def first_call(self, row: WorkRow) -> Action:
        return _reader(row.action)

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
        reader = _reader(row.action).name
        current = await calls.read(row.action)
        if current is None:
            return None
        if isinstance(current, Failure):
            return RowOutcome.failed(reader, current)
        diffs = row.action.differences(row.params, current)
        if diffs:
            return RowOutcome(RowState.FAILED, reader, "Drift", f"live state differs in {', '.join(diffs)}")
        return RowOutcome(RowState.DONE, reader, message="in sync")


class RollbackJob:
    """Put each domain back as the backup shows it, if it still holds what the run wrote.

    The row is the recorded state (its action is a family's ``restore``);
    ``undo`` gives, per domain, what the undone run's write set. A domain
    that holds something else now was changed by another client since: it
    is left as it is and the row ends ``conflict`` (unless ``force``). A
    domain that had no config gets Delete; one that had a config gets the
    create action if it has none now, the update action if it has one, or
    Delete then create when a field must become empty again (an update
    cannot clear a key). Every row is read first, so a resumed rollback
    needs no special case.
    """

    __slots__ = ("_apply", "_backup", "_force", "_undo")
    reads_only = False

    def __init__(self, *, undo: Mapping[str, Mapping[str, str]] | None = None, force: bool = False,
                 backup: Backup | None = None, settle_after: float = 0.0) -> None:
        self._apply = ApplyJob(if_exists=IfExists.UPDATE, settle_after=settle_after)
        self._undo = undo or {}
        self._force = force
        self._backup = backup

    def first_call(self, row: WorkRow) -> Action:
        return _reader(row.action)

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
        current = await calls.read(row.action)
        if not isinstance(current, dict):
            return _unread(row.action, current, reached=row.reached)
        reader = _reader(row.action)
        steps = _restore_steps(row.action, row.params, current)
        if not steps:
            return RowOutcome(RowState.DONE, reader.name, message="already as before")
        # After our own Delete of a Delete-then-create, the domain holds no config: that is ours, not another's.
        ours_midway = row.reached and not reader.exists(current)
        wrote = self._undo.get(row.domain)
        if wrote is not None and not self._force and not ours_midway:
            changed = [f for f, v in wrote.items() if _as_kept(f, current.get(f, "")) != v]
            if changed:
                return RowOutcome(RowState.CONFLICT, reader.name, "ChangedSince",
                                  "changed by another client since the run wrote it "
                                  f"({_compared(changed, wrote, current)});"
                                  " left as it is (bulk rollback --force restores it anyway)")
        if (backup := _wanting(self._backup, row)) is not None:  # the rollback's own way back
            await backup.record(row.domain, current, region=calls.region, wrote=_expected(row.action, row.params),
                                profile=row.profile)
        outcome: RowOutcome | None = None
        for i, (action, params) in enumerate(steps):
            outcome = await self._apply.send(row, calls, action, params)
            if outcome is not None and outcome.state is not RowState.DONE and i:
                # The Delete landed and the create did not: the domain is left with no config.
                return replace(outcome, code=NO_CONFIG_LEFT, message=(
                    f"deleted, then {action.name} failed ({outcome.code}: {outcome.message}): the domain has no "
                    f"config now; its prior config was {_spelled(row.params)}"))
            if outcome is None or outcome.state is not RowState.DONE:
                return outcome
        return outcome


#: a rollback row whose Delete landed and whose create failed: the domain has no config
NO_CONFIG_LEFT = "NoConfigLeft"


def _restore_steps(
    restore: Action, prior: dict[str, str], current: Mapping[str, str]
) -> list[tuple[Action, dict[str, str]]]:
    """The calls that turn ``current`` back into ``prior`` (none if it already is), each to the row's region."""
    family = restore.family
    if family is None or restore.expect is None:
        raise ValueError(f"{restore.name} is not a restore action")
    if not restore.differences(prior, current):
        return []
    where = {"RegionId": prior["RegionId"]} if "RegionId" in prior else {}
    delete = (family.delete, {"DomainName": prior["DomainName"], **where})
    if not family.read.exists(prior):
        return [delete]
    create = (family.create, prior)
    if not family.read.exists(current):
        return [create]
    if any(not want and current.get(f) for f, want in restore.expect(prior).items()):
        return [delete, create]
    return [(family.update, prior)]


def _expected(action: Action, params: Mapping[str, str]) -> dict[str, str]:
    """What the read-back action shows once ``action`` has set ``params`` ("" for a field it clears)."""
    if action.expect is None:
        raise ValueError(f"{action.name} has no read-back")
    return action.expect(params)


def _as_kept(field: str, value: str) -> str:
    """A value as a backup keeps what a write set: a secret as its fingerprint."""
    return fingerprint(value) if value and field in SECRET_NAMES else value


def _compared(fields: list[str], wrote: Mapping[str, str], current: Mapping[str, str]) -> str:
    """Per field, what the run set and what the domain holds now; secrets as fingerprints."""
    return "; ".join(f"{f}: the run set {wrote[f] or '(none)'}, now {_as_kept(f, current.get(f, '')) or '(none)'}"
                     for f in fields)


def _spelled(state: Mapping[str, str]) -> str:
    """A recorded state in full, secrets as fingerprints."""
    return ", ".join(f"{k}={_as_kept(k, v)}" for k, v in state.items() if k != "DomainName" and v)


class CanaryJob:
    """Another job's rows, each read back once it is done: ``results`` says which hold their change."""

    __slots__ = ("_inner", "results")

    def __init__(self, inner: Job) -> None:
        self._inner = inner
        self.results: dict[int, CanaryRow] = {}

    @property
    def reads_only(self) -> bool:
        return self._inner.reads_only

    def first_call(self, row: WorkRow) -> Action:
        return self._inner.first_call(row)

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
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


def make_job(options: RunOptions, *, backup: Backup | None = None) -> Job:
    if options.mode is Mode.PLAN:
        return PlanJob()
    if options.mode is Mode.VERIFY:
        return VerifyJob()
    job: Job
    if options.mode is Mode.ROLLBACK:
        job = RollbackJob(undo=options.undo, force=options.force, backup=backup, settle_after=options.timeout)
    else:
        job = ApplyJob(if_exists=options.if_exists, keep_current=options.keep_current, backup=backup,
                       settle_after=options.timeout, planned=options.action if options.plan_path else None)
    return CanaryJob(job) if options.canary else job


def _exists(action: Action, current: Mapping[str, str]) -> bool:
    return _reader(action).exists(current)


def _as_update(create: Action, params: Mapping[str, str]) -> dict[str, str]:
    """A create's parameters sent as an update: every field the create sets, its defaults included
    (an update keeps what it is not given, and the create's config is the whole of it)."""
    return {**params, **(create.expect(params) if create.expect is not None else {})}


def _wanting(backup: Backup | None, row: WorkRow) -> Backup | None:
    """``backup`` if it wants ``row``'s state recorded before the row's first write, else None."""
    return backup if backup is not None and backup.wants(row.domain, reached=row.reached) else None


def _reader(action: Action) -> Action:
    """The action that reads back what ``action`` changes (a run that reads first checks it has one)."""
    if action.reader is None:
        raise ValueError(f"{action.name} changes nothing: it has no read-back")
    return action.reader


def _unread(action: Action, outcome: Failure | None, *, reached: bool, fresh: bool = False) -> RowOutcome | None:
    """The read before sending did not answer: stopped or left to the next run (None), unknown, or failed.

    Nothing was sent in this run. A row that may have landed before is
    ``_unknown``. Otherwise the domain may hold the change already (it may
    have been there before): a transient failure leaves the row to the next
    run, and a refused read leaves it unknown, naming the read. Only where
    the change cannot be there (``fresh``: a rotation's new keys; an answer
    such as InvalidDomain.NotFound) is the row failed, with nothing sent.
    """
    if outcome is None:
        return None
    if reached:
        return _unknown(action, outcome, outcome)
    if fresh or outcome.code in _CANNOT_HOLD:
        return RowOutcome.failed(_reader(action).name, outcome, "cannot read the current config; nothing was sent")
    if outcome.transient:
        return None
    return RowOutcome(RowState.UNKNOWN, _reader(action).name, outcome.code,
                      f"cannot read the current config ({outcome.message}); nothing was sent, and whether the "
                      "domain holds the change already is unknown", outcome.status, outcome.request_id)


def _unknown(action: Action, failure: Failure, read: Failure | None) -> RowOutcome | None:
    """A call failed and the read-back that would tell whether the service holds the change did not answer.

    Stopped, or a transient read failure: record nothing yet (the row stays
    pending, or ``sending`` if a change may have landed) and let the next run
    read again. A refused read (say, no permission to Describe) cannot settle
    it: the row is ``unknown``, recorded with the refusal (the read action and
    its code), which counts towards the safety stop like any other refusal.
    """
    if read is None or read.transient:
        return None
    if read.code in _CANNOT_HOLD:
        return RowOutcome.failed(_reader(action).name, read, "the read-back shows the service cannot hold it")
    said = f"{action.name} answered {failure.code}" if failure is not read else "an earlier write may have landed"
    return RowOutcome(RowState.UNKNOWN, _reader(action).name, read.code,
                      f"{said}, and the read-back was refused ({read.message}): whether the service holds the "
                      "change is unknown", read.status, read.request_id)


def _against_plan(
    planned: Action, plan: tuple[str, str, str | None], params: Mapping[str, str], current: Mapping[str, str]
) -> RowOutcome | None:
    """run --plan: a row whose live state is no longer the one the plan read is not written (failed);
    a noop row that still is, is skipped; None: send as planned."""
    kind, fields, seen = plan
    now_kind, now_fields, _ = classify(planned, params, current)
    if (now_kind, ",".join(now_fields)) != (kind, fields) or (seen is not None and seen != state_seen(current)):
        was = f"{kind} ({fields})" if fields else kind
        now = f"{now_kind} ({','.join(now_fields)})" if now_fields else now_kind
        return RowOutcome(RowState.FAILED, _reader(planned).name, PLAN_CONFLICT,
                          f"changed since plan: planned {was}, the live state now makes it {now}; nothing was sent")
    if kind == "noop":
        return RowOutcome(RowState.SKIPPED, _reader(planned).name, message="noop in the plan, read back unchanged")
    return None
