"""The batch engine: every row of an input, paced, signed, retried, recorded.

    options = RunOptions(action=resolve("AddLiveSnapshotNotifyConfig"),
                         input_path=Path("domains.csv"), checkpoint_path=Path("domains.ckpt"),
                         overrides={"NotifyUrl": "https://cb.example.com/snap"})
    async with LiveClient(credentials=source, endpoint=url) as client:
        result = await run(options, client=client)
    sys.exit(result.exit_code)

A run has two phases. *Prepare* (``bulk.prepare``) records the run in its
checkpoint and ingests the input (``bulk.rows``) before any call is made.
*Send* hands the rows still to do, read again from the input, to the
dispatcher (``bulk.dispatch``), which runs each through the job of the
run's mode (``bulk.jobs``). This module only orchestrates the send phase.

Rows that name a ``Profile`` are sent with that aliyun CLI profile's
credentials. Each account (each profile, and the run's own credentials for
rows that name none) is a lane (``bulk.lanes``, below the run's): its own
dispatcher over its own rows, paced per (AccessKey, operation), so N
accounts go N times as fast. A lane stops alone on what concerns its
account (refused or unavailable credentials, the safety stop) while the
others go on; a signal or a local fault stops the run's lane, and so all.

A run that changes the service keeps each domain's prior state in a backup
file beside the checkpoint (``bulk.backup``) and watches its failures with
the safety stop (``bulk.safety``); a resumed run reopens the rows that
failed with the code that tripped the last stop. A canary (``--canary N``)
hands the dispatcher only the first N rows still to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from typing import cast

from .attempts import Caller, CallLog, Health
from .backup import IDENTITY_KEY, Backup, check_backup
from .backup import META_KEY as BACKUP_META
from .checkpoint import ANY_PROFILE, Checkpoint, profile_order
from .client import LiveClient
from .credentials import CredentialsError, CredentialSource, ProfileSources
from .dispatch import Dispatcher
from .files import LocalFault, check_writable
from .jobs import CanaryJob, Job, make_job
from .lanes import Lane
from .options import Canary, CanaryRow, Halt, HaltKind, RunOptions, RunResult, RunStats
from .pacing import Pacers
from .paths import backup_path
from .prepare import prepare_run
from .retry import RetryPolicy
from .rows import RowSource, WorkRow
from .safety import SafetyStop

__all__ = ["run"]


async def run(
    options: RunOptions,
    *,
    client: LiveClient,
    stop: asyncio.Event | None = None,
    stats: RunStats | None = None,
    retry: RetryPolicy | None = None,
    health: Callable[[], Health] | None = None,
    sources: Callable[[str], CredentialSource] | None = None,
    job: Job | None = None,
) -> RunResult:
    """Apply ``options.action`` to every valid row; resume if the checkpoint has begun.

    Raises CheckpointBusy, CheckpointError, StrictModeError, PlanError,
    inputs.InputError or UsageError (a --log-file that cannot be written)
    before any call is made. ``stop`` asks for a graceful
    stop; why the run stopped early is in ``RunResult.halt`` (and, for
    accounts that stopped alone, ``RunResult.stopped``). ``retry`` and
    ``health`` (one per account) replace the default policy and thresholds.
    ``sources`` gives the credentials of a row's ``Profile`` (default: that
    aliyun CLI profile); rows without one use ``client``'s. ``job`` replaces
    the one of ``options``' mode (``jobs.make_job``): one whose answers the
    caller keeps, such as an ``ExportJob``.
    """
    stats = stats or RunStats()
    halt: Halt | None = None
    stopped: dict[str, Halt] = {}
    canary: Canary | None = None
    if options.log_file is not None:
        check_writable(options.log_file)
    ckpt = Checkpoint.open(options.checkpoint_path)
    try:
        # Rows claimed under a backup made before this run: its records may be lost if it is gone.
        recorded_before = IDENTITY_KEY in (ckpt.meta() or {})
        counts, restarted = prepare_run(ckpt, options)
        claimed = recorded_before and ckpt.claimed()
        stats.total = sum(counts.values())
        stats.done, stats.skipped = counts["done"], counts["skipped"]
        stats.failed, stats.invalid = counts["failed"], counts["invalid"]
        stats.to_send = counts["pending"] + counts["sending"] + counts["unknown"]
        stats.settled_before = stats.total - stats.to_send
        if options.canary:
            stats.to_send = min(stats.to_send, options.canary)
            canary = Canary(())
        stats.started = time.monotonic()
        # Per-second aggregates, committed with the outcomes (bulk.timeline): what `bulk report --html` draws.
        stats.timeline.quota = options.qps
        ckpt.timeline = stats.timeline
        if options.changes and options.backup and not stats.to_send:
            # Nothing to send, but a missing or foreign backup is said all the same (BackupError).
            check_backup(backup_path(options.checkpoint_path), (ckpt.meta() or {}).get(IDENTITY_KEY),
                         claimed=claimed)
        if stats.to_send:
            with Lane().following(stop) as lane:
                send = _Send(options, ckpt, lane, client=client, stats=stats, claimed=claimed,
                             retry=retry or RetryPolicy(max_attempts=options.max_attempts),
                             health=health or (lambda: Health(endpoint=client.endpoint)),
                             sources=sources or ProfileSources().source, job=job)
                halt, stopped, canary = await send.run()
        try:
            ckpt.flush()
        except LocalFault as fault:
            halt = halt or Halt(HaltKind.LOCAL_FAULT, str(fault))
        return RunResult(counts=ckpt.counts(), errors=ckpt.error_counts(), calls=stats.calls,
                         elapsed=stats.elapsed, checkpoint=options.checkpoint_path, halt=halt, canary=canary,
                         stopped=stopped, restarted=restarted, answers=dict(stats.answers),
                         throttling_episodes=stats.throttling_episodes)
    finally:
        with contextlib.suppress(LocalFault):
            ckpt.close()


class _Send:
    """The send phase of one run: one lane per account below the run's ``lane``, sharing the files and pacers."""

    __slots__ = ("_chosen", "_ckpt", "_claimed", "_client", "_health", "_job", "_lane", "_log", "_options",
                 "_pacers", "_retry", "_sources", "_stats", "_taken")

    def __init__(
        self, options: RunOptions, ckpt: Checkpoint, lane: Lane, *, client: LiveClient, stats: RunStats,
        retry: RetryPolicy, health: Callable[[], Health], sources: Callable[[str], CredentialSource],
        claimed: bool = False, job: Job | None = None,
    ) -> None:
        """``claimed``: rows were claimed under the backup the checkpoint names (``Backup.open``); ``job``
        replaces the one of the run's mode."""
        self._options = options
        self._claimed = claimed
        self._ckpt = ckpt
        self._lane = lane
        self._client = client
        self._stats = stats
        self._retry = retry
        self._health = health
        self._sources = sources
        self._job = job
        self._pacers = Pacers(options.qps)
        self._log: CallLog | None = None
        #: a canary's rows: their lines and profiles, and the rows taken
        self._chosen: dict[int, str | None] | None = None
        self._taken: list[WorkRow] = []

    async def run(self) -> tuple[Halt | None, dict[str, Halt], Canary | None]:
        """Send every lane; why the run stopped, the accounts that stopped alone, and a canary's verdict."""
        options, ckpt = self._options, self._ckpt
        if options.canary:
            self._chosen = {t.line: t.profile for t in ckpt.todo(limit=options.canary)}
            profiles = sorted(set(self._chosen.values()), key=profile_order)
        else:
            profiles = ckpt.profiles_to_send()
        backup: Backup | None = None
        try:
            if options.changes and options.backup:
                meta = ckpt.meta() or {}
                # BackupError (the file is missing, or another) is raised from here: nothing was sent.
                backup = Backup.open(backup_path(options.checkpoint_path), complete=bool(meta.get(BACKUP_META)),
                                     identity=meta[IDENTITY_KEY], claimed=self._claimed,
                                     keep=lambda identity: ckpt.set_meta({IDENTITY_KEY: identity}))
            self._log = CallLog(options.log_file) if options.log_file else None
        except LocalFault as fault:
            if backup is not None:
                with contextlib.suppress(LocalFault):  # nothing was recorded: there is nothing to count
                    await backup.close()
            return Halt(HaltKind.LOCAL_FAULT, str(fault)), {}, None
        job = self._job or make_job(options, backup=backup)
        many = len(profiles) > 1
        try:
            # Every lane ends before the files they share are closed, whatever happens in one of them.
            ended = await asyncio.gather(*(
                self._send_lane(self._lane.child(), job, profile, rows_of=profile if many else ANY_PROFILE,
                                backup=backup)
                for profile in profiles), return_exceptions=True)
        finally:
            if backup is not None:
                try:
                    await backup.close()
                except LocalFault as fault:
                    self._lane.stop(Halt(HaltKind.LOCAL_FAULT, str(fault)))
            if self._log is not None:
                try:
                    self._log.close()
                except LocalFault as fault:
                    self._lane.stop(Halt(HaltKind.LOCAL_FAULT, str(fault)))
        for error in ended:
            if isinstance(error, BaseException):
                raise error
        halts = cast(list[Halt | None], ended)
        canary = None
        if isinstance(job, CanaryJob):
            unfinished = "not finished: the run stopped first"
            canary = Canary(tuple(job.results.get(r.line, CanaryRow(r.line, r.domain, unfinished))
                                  for r in sorted(self._taken, key=lambda r: r.line)))
        if not many:
            return self._lane.halt or halts[0], {}, canary
        stopped = {p or "": h for p, h in zip(profiles, halts, strict=True) if h is not None and h.kind.per_account}
        interrupted = Halt(HaltKind.INTERRUPTED, "interrupted") if self._lane.stopping else None
        return self._lane.halt or interrupted, stopped, canary

    async def _send_lane(self, lane: Lane, job: Job, profile: str | None, *, rows_of: object,
                         backup: Backup | None) -> Halt | None:
        """One account's rows (``rows_of``: the profile, or ANY_PROFILE when it is the only lane), sent by
        their own dispatcher in their own ``lane``; why the lane stopped early, if it did."""
        options, ckpt = self._options, self._ckpt
        client = self._client if profile is None else self._client.with_credentials(self._sources(profile))
        try:
            account = await client.access_key_id()
        except CredentialsError as exc:
            lane.stop(Halt(HaltKind.CREDENTIALS_UNAVAILABLE, str(exc)))
            return lane.halt
        caller = Caller(client=client, pacers=self._pacers, account=account, retry=self._retry, lane=lane,
                        stats=self._stats, health=self._health(), log=self._log)
        rows = RowSource(options, written_since=backup.written_since if backup else None).to_send(
            ckpt, profile=rows_of, chosen=self._chosen)
        if self._chosen is not None:
            rows = _taking(rows, self._taken)
        safety = SafetyStop(max_failure_rate=options.max_failure_rate) if options.changes else None
        dispatcher = Dispatcher(options=options, ckpt=ckpt, rows=rows, job=job, caller=caller, pacers=self._pacers,
                                account=account, lane=lane, stats=self._stats, safety=safety, backup=backup)
        try:
            return await dispatcher.run()
        except Exception:
            self._lane.stop()  # a bug in one lane stops them all, cleanly, before it is raised
            raise


def _taking(rows: Iterator[list[WorkRow]], taken: list[WorkRow]) -> Iterator[list[WorkRow]]:
    """``rows``, each also appended to ``taken`` (a canary's)."""
    for batch in rows:
        taken.extend(batch)
        yield batch
