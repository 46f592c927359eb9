"""The rollback job: put each domain back as the backup recorded it, with only the calls the difference needs.

    job = RollbackJob(undo={"example.com": {"NotifyUrl": "https://..."}}, backup=backup)
    outcome = await job.run(row, calls)       # done, conflict (changed since), failed (NO_CONFIG_LEFT), ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..actions import Action
from ..backup import Backup, as_kept
from ..checkpoint import RowOutcome, RowState
from ..options import IfExists
from ..rows import WorkRow
from .apply import ApplyJob
from .calls import RowCalls, _expected, _reader, _unread, _wanting

__all__ = ["NO_CONFIG_LEFT", "RollbackJob"]


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
        """The action of the row\'s first call (the dispatcher takes its admission)."""
        return _reader(row.action)

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
        """Take the row to an outcome; None when stopped or when its outcome must wait for the next run."""
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
            changed = [f for f, v in wrote.items() if as_kept(f, current.get(f, "")) != v]
            if any(wrote.values()):  # not a Delete, which clears the fields it does not name as well
                # A field the run did not set that no longer holds what was recorded: another client's change.
                changed += [f for f in reader.returns[1:]
                            if f not in wrote and current.get(f, "") != row.params.get(f, "")]
            if changed:
                return RowOutcome(RowState.CONFLICT, reader.name, "ChangedSince",
                                  "changed by another client since the run wrote it "
                                  f"({_compared(changed, wrote, row.params, current)});"
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


def _compared(fields: list[str], wrote: Mapping[str, str], prior: Mapping[str, str],
              current: Mapping[str, str]) -> str:
    """Per field, what the run set (or, for a field it did not set, what was recorded) and what the domain
    holds now; secrets as fingerprints."""
    def then(f: str) -> str:
        if f in wrote:
            return f"the run set {wrote[f] or '(none)'}"
        return f"the run did not set it, recorded {as_kept(f, prior.get(f, '')) or '(none)'}"

    return "; ".join(f"{f}: {then(f)}, now {as_kept(f, current.get(f, '')) or '(none)'}" for f in fields)


def _spelled(state: Mapping[str, str]) -> str:
    """A recorded state in full, secrets as fingerprints."""
    return ", ".join(f"{k}={as_kept(k, v)}" for k, v in state.items() if k != "DomainName" and v)
