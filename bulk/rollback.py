"""Putting back what a run changed, from its backup: ``bulk rollback CHECKPOINT``.

    with plan_rollback(Path("domains.csv.add-live-snapshot-notify-config.ckpt")) as rollback:
        result = await engine.run(rollback.options, client=client)   # paced, retried, resumable like any run
    # rollback.unrecorded: domains the run may have changed with no prior state recorded

A rollback is an engine run in rollback mode (``jobs.RollbackJob``). It
holds the run's own checkpoint (its lock) from start to end, and marks it
rolled back before anything is sent: no forward run of it can start
meanwhile, or after (a resume of the run it undoes would split the fleet).
It checks the run's backup (``bulk.backup``) is the very file the run wrote,
and reads a frozen copy of it (``paths.rollback_input``, mode 0600): each
domain the run changed or may have changed (``done``, still ``sending``, or
reached by a changing call), as recorded right before the run's write, with
the RegionId the row was sent with. Each domain is read, and put back with
whatever call the difference needs, but only if it still holds what the run
wrote: one that another client changed since is left alone and its row ends
``conflict`` (``force`` restores it anyway). A rollback has its own
checkpoint (``x.rollback.ckpt`` beside ``x.ckpt``), report and backup, so
``bulk verify`` works on it, and so does another rollback. A rotation is
rolled back the same way: the old keys come back from its backup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import orjson

from .actions import recorded_action
from .backup import IDENTITY_KEY, Prior, read_backup
from .backup import META_KEY as BACKUP_META
from .checkpoint import Checkpoint, CheckpointError, RowState
from .errors import BulkError
from .files import write_atomic
from .options import Mode, RunOptions, Tuning
from .paths import backup_path, rollback_checkpoint, rollback_input

__all__ = ["ROLLED_BACK", "Rollback", "RollbackError", "plan_rollback"]

#: rows that hold, or may hold, the run's change
_CHANGED = (RowState.DONE, RowState.SENDING)
#: checkpoint metadata: the run was rolled back (by which rollback checkpoint, when); it is never resumed
ROLLED_BACK = "rolled_back"


class RollbackError(BulkError):
    """The run cannot be rolled back (the message says why)."""


@dataclass(frozen=True, slots=True)
class Rollback:
    """A rollback ready to run; it holds the undone run's checkpoint until ``close`` (or the ``with`` ends)."""

    options: RunOptions
    #: domains to put back (rows of the rollback)
    rows: int
    #: domains the run changed, or may have, whose prior state was never recorded (--no-backup)
    unrecorded: tuple[str, ...]
    _held: Checkpoint = field(repr=False)

    def close(self) -> None:
        """Let the undone run's checkpoint go (it stays marked rolled back)."""
        self._held.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plan_rollback(
    checkpoint: Path,
    *,
    output: Path | None = None,
    force: bool = False,
    tuning: Tuning | None = None,
    retry_failed: bool = False,
    backup: bool = True,
    profiles: frozenset[str] | None = None,
) -> Rollback:
    """The rollback of ``checkpoint``'s run, holding that checkpoint (close the Rollback when done).

    ``output`` is the rollback's checkpoint (default ``paths.rollback_checkpoint``);
    ``force`` restores domains another client changed since; ``backup`` keeps
    the rollback's own way back; ``profiles`` are the aliyun CLI profile names
    its rows may name. Raises
    RollbackError, CheckpointBusy, CheckpointError (BackupError: the backup
    is missing or another file) or LocalFault; sends nothing.
    """
    if not checkpoint.is_file():
        raise CheckpointError(f"no checkpoint at {checkpoint}")
    held = Checkpoint.open(checkpoint)  # CheckpointBusy while the run goes on; held until the rollback ends
    try:
        run = dict(force=force, retry_failed=retry_failed, backup=backup, profiles=profiles,
                   **(tuning or Tuning()).fields())
        return _plan(held, checkpoint, output or rollback_checkpoint(checkpoint), run)
    except BaseException:
        held.close()
        raise


def _plan(held: Checkpoint, checkpoint: Path, output: Path, run: dict[str, Any]) -> Rollback:
    meta = held.meta() or {}
    if "action" not in meta:
        raise CheckpointError(f"{checkpoint} holds no run")
    action = recorded_action(meta["action"])
    if meta.get("mode", Mode.APPLY) not in (Mode.APPLY, Mode.ROLLBACK) or action.family is None or action.read_only:
        raise RollbackError(f"the run of {checkpoint} changed nothing ({meta.get('mode')} {action.name}): "
                            "nothing to roll back")
    backup_file = backup_path(checkpoint)
    if not backup_file.exists() and IDENTITY_KEY not in meta:
        raise RollbackError(f"no backup {backup_file} next to {checkpoint}: the run was made with --no-backup, "
                            "so its prior states are unknown")
    changed = {r["domain"] for r in held.rows() if r["domain"] and (r["state"] in _CHANGED or r["reached"])}
    priors = read_backup(backup_file, meta.get(IDENTITY_KEY))  # BackupError: missing, or not the run's own
    chosen = [p for d, p in sorted(priors.items()) if d in changed]
    # The frozen copy the rollback reads, made once (a resumed rollback reads the same): nothing appends to it.
    target = rollback_input(checkpoint)
    if not (output.exists() and target.exists()):
        write_atomic(target, b"".join(orjson.dumps(_restore_row(p)) + b"\n" for p in chosen))
    options = RunOptions(action=action.family.restore, input_path=target, checkpoint_path=output,
                         mode=Mode.ROLLBACK, extra_meta={"rollback_of": str(checkpoint.resolve())},
                         undo={p.domain: p.wrote for p in chosen}, **run)
    # While every run kept a backup, a row without a record was never written (it was claimed, then stopped).
    unrecorded = () if meta.get(BACKUP_META) else tuple(sorted(changed - priors.keys()))
    if not meta.get(ROLLED_BACK):
        held.set_meta({ROLLED_BACK: {"by": str(output.resolve()), "at": time.time()}})
    return Rollback(options, len(chosen), unrecorded, held)


def _restore_row(prior: Prior) -> dict[str, str]:
    """A record as the rollback reads it: the prior state, with the row's RegionId and Profile."""
    record = dict(prior.state)
    if prior.region:
        record["RegionId"] = prior.region
    if prior.profile is not None:
        record["Profile"] = prior.profile
    return record
