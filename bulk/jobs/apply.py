"""The apply job: send each row's action, reading back whatever may already have landed.

    job = ApplyJob(if_exists=IfExists.FAIL, settle_after=10.0)
    outcome = await job.run(row, calls)       # done, failed, skipped, unknown, or None (stopped)

Why it reads back, and when, is in ``bulk.jobs``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..actions import Action
from ..backup import Backup
from ..checkpoint import PLAN_CONFLICT, RowOutcome, RowState
from ..client import Failure, Success
from ..options import IfExists
from ..plan import classify, state_seen
from ..rows import WorkRow
from .calls import _CANNOT_HOLD, RowCalls, _exists, _expected, _reader, _unknown, _unread, _wanting

__all__ = ["ApplyJob"]

_EXISTS = "ConfigAlreadyExists"


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
        """The action of the row\'s first call (the dispatcher takes its admission)."""
        return _reader(row.action) if self._reads_first(row) else row.action

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
        """Take the row to an outcome; None when stopped or when its outcome must wait for the next run."""
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
            before: Mapping[str, str] = current
            if backup is None and row.reached and action.differences(params, current):
                backup = _wanting(self._backup, row, current)  # another client changed it since its record
                if backup is not None:  # what of it our earlier write set is not theirs: it goes back
                    before = await backup.theirs(row.domain, current)
            if backup is not None:
                await backup.record(row.domain, before, region=calls.region, wrote=_expected(action, params),
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

        A create that got an answer proving nothing is sent again while the
        policy allows, without a read first (``_resend_reads``): the service
        refuses a second create, and that refusal is read back.
        A write the service itself never answered (a timeout, a dropped
        connection, a gateway's page) may still be under way there: a
        read-back that finds nothing is made again once ``settle_after`` has
        passed (after a timeout or a Delete's; after another such answer when
        no attempt is left), and if the write is still absent when no attempt is left, its
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
            if outcome.maybe_applied and _resend_reads(action, outcome) and calls.may_retry(outcome, tries):
                continue  # the resend's answer is the read-back: OK, or 409 and read back below
            # Whatever else went wrong, the row is failed only if the service does not hold its change.
            # No answer of the service's own: the write may still be under way. After a timeout, or a Delete (a
            # rollback adds the config back after it: a late Delete would take that away), it is read again once
            # it has had time; after another such answer, before the row would be called failed.
            late = outcome.unanswered and (outcome.code == "Timeout" or action.deletes
                                           or not calls.may_retry(outcome, tries))
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
                                      f"no answer from the service ({outcome.message}), and not applied when "
                                      f"read back {self._settle_after:g} s later: "
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


def _resend_reads(action: Action, failure: Failure) -> bool:
    """Whether sending ``action`` again settles ``failure`` as a read-back would, with the same truth.

    So for a create the service will not apply twice (a second one is refused
    with 409 ConfigAlreadyExists, which is then read back), after an answer
    that proves nothing but did come: the resend's own answer tells whether
    the first landed, and the read-back quota, which the backup's reads
    share, is spent only when it does. Not after a timeout: that write may
    still be under way, and is read back, then again once it has had time.
    """
    return not action.idempotent and action.create is action and failure.code != "Timeout"


def _as_update(create: Action, params: Mapping[str, str]) -> dict[str, str]:
    """A create's parameters sent as an update: every field the create sets, its defaults included
    (an update keeps what it is not given, and the create's config is the whole of it)."""
    return {**params, **(create.expect(params) if create.expect is not None else {})}


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
