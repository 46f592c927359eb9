"""Putting back what a run changed, from its backup: ``bulk rollback CHECKPOINT``.

    rollback = plan_rollback(Path("domains.csv.add-live-snapshot-notify-config.ckpt"))
    result = await engine.run(rollback.options, client=client)   # paced, retried, resumable like any run
    # rollback.unrecorded: domains the run may have changed with no prior state recorded

A rollback is an engine run in rollback mode (``jobs.RollbackJob``). Its
input is the run's backup file (``bulk.backup``: each domain's state before
the run first wrote to it, old keys included, mode 0600), its rows only
those of domains the run changed or may have changed: ``done``, still
``sending``, or reached by a changing call. Each row is read and put back
with whatever call the difference needs. It has its own checkpoint
(``x.rollback.ckpt`` beside ``x.ckpt``), report and backup, so ``bulk
verify`` works on it, and so does another rollback. A rotation is rolled
back the same way: the old keys come back from its backup.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .actions import recorded_action
from .backup import META_KEY as BACKUP_META
from .checkpoint import Checkpoint, CheckpointBusy, CheckpointError, RowState
from .errors import BulkError
from .inputs import read_rows
from .options import Mode, RunOptions, Tuning
from .paths import backup_path, rollback_checkpoint

__all__ = ["Rollback", "RollbackError", "plan_rollback"]

#: rows that hold, or may hold, the run's change
_CHANGED = (RowState.DONE, RowState.SENDING)


class RollbackError(BulkError):
    """The run cannot be rolled back (the message says why)."""


@dataclass(frozen=True, slots=True)
class Rollback:
    options: RunOptions
    #: domains to put back (rows of the rollback)
    rows: int
    #: domains the run changed, or may have, whose prior state was never recorded (--no-backup)
    unrecorded: tuple[str, ...]


def plan_rollback(
    checkpoint: Path,
    *,
    output: Path | None = None,
    tuning: Tuning | None = None,
    retry_failed: bool = False,
    backup: bool = True,
    profiles: frozenset[str] | None = None,
) -> Rollback:
    """The options of the run that puts back what ``checkpoint``'s run changed.

    ``output`` is the rollback's checkpoint (default ``paths.rollback_checkpoint``);
    Raises RollbackError, CheckpointBusy or CheckpointError; sends nothing.
    """
    if Checkpoint.in_use(checkpoint):
        raise CheckpointBusy(f"checkpoint {checkpoint} is in use by a run; roll back once it has stopped")
    with Checkpoint.open_readonly(checkpoint) as c:
        meta = c.meta() or {}
        changed = {r["domain"] for r in c.rows() if r["domain"] and (r["state"] in _CHANGED or r["reached"])}
    if "action" not in meta:
        raise CheckpointError(f"{checkpoint} holds no run")
    action = recorded_action(meta["action"])
    if meta.get("mode", Mode.APPLY) not in (Mode.APPLY, Mode.ROLLBACK) or action.family is None or action.read_only:
        raise RollbackError(f"the run of {checkpoint} changed nothing ({meta.get('mode')} {action.name}): "
                            "nothing to roll back")
    backup_file = backup_path(checkpoint)
    if not backup_file.is_file():
        raise RollbackError(f"no backup {backup_file} next to {checkpoint}: the run was made with --no-backup, "
                            "so its prior states are unknown")
    restore = action.family.restore
    lines, recorded = set(), set()
    for item in read_rows(backup_file, restore, profiles=profiles):
        if item.domain in changed:
            lines.add(item.line)
            recorded.add(item.domain)
    options = RunOptions(action=restore, input_path=backup_file, checkpoint_path=output or rollback_checkpoint(checkpoint),
                         mode=Mode.ROLLBACK, only_lines=frozenset(lines),
                         extra_meta={"rollback_of": str(checkpoint.resolve())},
                         retry_failed=retry_failed, backup=backup, profiles=profiles, **(tuning or Tuning()).fields())
    # While every run kept a backup, a row without a record was never written (it was claimed, then stopped).
    unrecorded = () if meta.get(BACKUP_META) else tuple(sorted(changed - recorded))
    return Rollback(options, len(lines), unrecorded)
