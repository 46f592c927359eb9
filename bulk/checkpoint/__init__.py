"""The run's memory: one SQLite file that survives kill -9.

    with Checkpoint.open(Path("domains.csv.ckpt")) as ckpt:   # CheckpointBusy if another run has it
        ckpt.set_meta({"action": "AddLiveSnapshotNotifyConfig", ...})
        ckpt.add_rows(read_rows(Path("domains.csv"), action))   # Row -> pending, BadRow -> invalid
        ckpt.claim([(2, False)])                        # committed before the call is sent
        ckpt.record(RowOutcome(RowState.DONE, request_id="...", line=2, attempts=1, reached=True))
        ckpt.flush()

A row moves through ``RowState``::

    pending --claim--> sending --> done | skipped | failed | unknown (read back first by the next run)
       ^                  +--> sending (stopped, or a read-back to retry: read back on resume)
       +-- failed (reopened: transient, or every one with --retry-failed)

``done``: the service holds the row's change; ``failed``: it does not;
``sending``: it may (a claim a stopped or dead run left behind); ``unknown``:
the run tried and could not learn which (a refused read-back, a write that
may land late). The next run reads those two back before sending anything.
``invalid`` rows never move. ``claim`` commits at once, so after a crash
every row that may have reached the service is still ``sending``; ``reached``
stays set once any changing call of the row may have reached the service.
Results are committed in small batches: a crash loses at most those, and
they are exactly such ``sending`` rows.
A rollback's row may also end ``conflict`` (``bulk rollback``): the domain no
longer holds what the undone run wrote, so it was left as it is; ``bulk
rollback --force`` reopens such rows.

Secrets are never written here: the input is read again on resume (each row
by its byte offset), and its SHA-256 (kept in ``meta``) proves it is the
same file. WAL mode lets ``bulk status`` read while a run writes; rows to
send are read in short batches, so no reader pins the WAL and it stays
small. A lock file held with ``flock`` keeps a second run out; the kernel
releases it when the holder dies. It holds the holder's process id. Any SQLite or OS error while writing is
raised as ``LocalFault`` naming the file.
"""

from .shapes import ANY_PROFILE, PLAN_CONFLICT, RowOutcome, RowState, StoredRow, TodoRow, profile_order
from .store import LAST_RUN, Checkpoint, CheckpointBusy, CheckpointError, remove_checkpoint

__all__ = ["ANY_PROFILE", "LAST_RUN", "PLAN_CONFLICT", "Checkpoint", "CheckpointBusy", "CheckpointError", "RowOutcome",
           "RowState", "StoredRow", "TodoRow", "profile_order", "remove_checkpoint"]
