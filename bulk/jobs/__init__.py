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
  does not. A create is sent again instead (a timeout aside) while attempts
  are left, since the service refuses a second one (409 ConfigAlreadyExists,
  then read back): its answer settles the first without spending a read. A
  read-back that keeps failing leaves the row ``sending`` for the next run; a
  refused one (no permission to read) leaves it ``unknown``, and so does a
  write that timed out and is still absent when read again a call timeout
  later, with no attempt left: it may still land;
- run --plan reads each row first, and does not write one whose live state
  is no longer the one the plan read;
- a create that meets an existing, different config follows ``--if-exists``,
  whether the 409 came at once or the read-back found it;
- with a backup (``bulk.backup``), a row's state is read and recorded
  right before its write, on the read-back action's own quota (again on a
  resume, unless an earlier write may have landed).

The export job (``bulk export``, handed to ``engine.run`` as ``job``) reads
every family's config of each domain and keeps the answers, keys as
fingerprints. The rollback job puts each domain back as the backup recorded it, if it
still holds what the run wrote (else the row is a ``conflict``): it reads
the live state and sends only what the difference needs (Delete, the
create or the update action). The canary job wraps another and reads back
every row it took to ``done``.
"""

from __future__ import annotations

from ..backup import Backup
from ..options import Mode, RunOptions
from .apply import ApplyJob
from .calls import Job, RowCalls
from .reads import CanaryJob, ExportJob, PlanJob, VerifyJob
from .rollback import NO_CONFIG_LEFT, RollbackJob

__all__ = ["NO_CONFIG_LEFT", "ApplyJob", "CanaryJob", "ExportJob", "Job", "PlanJob", "RollbackJob", "RowCalls",
           "VerifyJob", "make_job"]


def make_job(options: RunOptions, *, backup: Backup | None = None) -> Job:
    """The job for ``options``' mode, inside a ``CanaryJob`` for a canary run."""
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
