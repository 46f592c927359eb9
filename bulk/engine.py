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
rows that name none) is a lane: its own dispatcher over its own rows, paced
per (AccessKey, operation), so N accounts go N times as fast. A lane stops
alone on what concerns its account (refused or unavailable credentials, the
safety stop) while the others go on; a signal or a local fault stops all.

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
from dataclasses import dataclass
from typing import cast

from .attempts import Caller, CallLog, Health
from .backup import META_KEY as BACKUP_META
from .backup import Backup
from .checkpoint import ANY_PROFILE, Checkpoint, profile_order
from .client import LiveClient
from .credentials import CredentialsError, CredentialSource, ProfileSources
from .dispatch import Dispatcher
from .files import LocalFault
from .jobs import CanaryJob, Job, make_job
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
) -> RunResult:
    """Apply ``options.action`` to every valid row; resume if the checkpoint has begun.

    Raises CheckpointBusy, CheckpointError, StrictModeError, PlanError or
    inputs.InputError before any call is made. ``stop`` asks for a graceful
    stop; why the run stopped early is in ``RunResult.halt`` (and, for
    accounts that stopped alone, ``RunResult.stopped``). ``retry`` and
    ``health`` (one per account) replace the default policy and thresholds.
    ``sources`` gives the credentials of a row's ``Profile`` (default: that
    aliyun CLI profile); rows without one use ``client``'s.
    """
    stats = stats or RunStats()
    stop = stop or asyncio.Event()
    halt: Halt | None = None
    stopped: dict[str, Halt] = {}
    canary: Canary | None = None
    ckpt = Checkpoint.open(options.checkpoint_path)
    try:
        counts = prepare_run(ckpt, options)
        stats.total = sum(counts.values())
        stats.done, stats.skipped = counts["done"], counts["skipped"]
        stats.failed, stats.invalid = counts["failed"], counts["invalid"]
        stats.to_send = counts["pending"] + counts["sending"]
        if options.canary:
            stats.to_send = min(stats.to_send, options.canary)
            canary = Canary(())
        stats.started = time.monotonic()
        if stats.to_send:
            lanes = _Lanes(client=client, stop=stop, sources=sources or ProfileSources().source,
                           health=health or (lambda: Health(endpoint=client.endpoint)))
            halt, stopped, canary = await _send(options, ckpt, lanes, stats, retry)
        try:
            ckpt.flush()
        except LocalFault as fault:
            halt = halt or Halt(HaltKind.LOCAL_FAULT, str(fault))
        return RunResult(counts=ckpt.counts(), errors=ckpt.error_counts(), calls=stats.calls,
                         elapsed=stats.elapsed, checkpoint=options.checkpoint_path, halt=halt, canary=canary,
                         stopped=stopped)
    finally:
        with contextlib.suppress(LocalFault):
            ckpt.close()


@dataclass(slots=True)
class _Lanes:
    """What each account's lane is made from, and the run-wide stop every lane obeys."""

    client: LiveClient
    stop: asyncio.Event
    sources: Callable[[str], CredentialSource]
    health: Callable[[], Health]
    #: the first halt that stopped every lane (a local fault, an endpoint that never answers)
    halt: Halt | None = None

    def escalate(self, halt: Halt) -> None:
        self.halt = self.halt or halt
        self.stop.set()


async def _send(
    options: RunOptions, ckpt: Checkpoint, lanes: _Lanes, stats: RunStats, retry: RetryPolicy | None
) -> tuple[Halt | None, dict[str, Halt], Canary | None]:
    chosen: dict[int, str | None] | None = None
    if options.canary:
        chosen = {t.line: t.profile for t in ckpt.todo(limit=options.canary)}
        profiles = sorted(set(chosen.values()), key=profile_order)
    else:
        profiles = ckpt.profiles_to_send()
    pacers = Pacers(options.qps)
    backup: Backup | None = None
    try:
        log = CallLog(options.log_file) if options.log_file else None
        if options.changes and options.backup:
            complete = bool((ckpt.meta() or {}).get(BACKUP_META))
            backup = Backup.open(backup_path(options.checkpoint_path), complete=complete)
    except LocalFault as fault:
        return Halt(HaltKind.LOCAL_FAULT, str(fault)), {}, None
    job = make_job(options, backup=backup)
    taken: list[WorkRow] = []
    retry = retry or RetryPolicy(max_attempts=options.max_attempts)
    many = len(profiles) > 1
    with _stopping_all(lanes.stop) as lane_stops:
        try:
            # Every lane ends before the files they share are closed, whatever happens in one of them.
            ended = await asyncio.gather(*(
                _lane(options, ckpt, lanes, profile, lane_stops, job, pacers, stats, retry, log, chosen, taken,
                      rows_of=profile if many else ANY_PROFILE, escalate=lanes.escalate if many else None)
                for profile in profiles), return_exceptions=True)
        finally:
            if backup is not None:
                await backup.close()
            if log is not None:
                try:
                    log.close()
                except LocalFault as fault:
                    lanes.escalate(Halt(HaltKind.LOCAL_FAULT, str(fault)))
    for error in ended:
        if isinstance(error, BaseException):
            raise error
    halts = cast(list[Halt | None], ended)
    canary = None
    if isinstance(job, CanaryJob):
        unfinished = "not finished: the run stopped first"
        canary = Canary(tuple(job.results.get(r.line, CanaryRow(r.line, r.domain, unfinished))
                              for r in sorted(taken, key=lambda r: r.line)))
    if not many:
        return lanes.halt or halts[0], {}, canary
    stopped = {p or "": h for p, h in zip(profiles, halts, strict=True) if h is not None and h.kind.per_account}
    halt = lanes.halt or (Halt(HaltKind.INTERRUPTED, "interrupted") if lanes.stop.is_set() else None)
    return halt, stopped, canary


@contextlib.contextmanager
def _stopping_all(stop: asyncio.Event) -> Iterator[list[asyncio.Event]]:
    """Lane stops (appended by each lane) that are all set once ``stop`` is."""
    lane_stops: list[asyncio.Event] = []

    async def relay() -> None:
        await stop.wait()
        for each in lane_stops:
            each.set()

    relaying = asyncio.ensure_future(relay())
    try:
        yield lane_stops
    finally:
        relaying.cancel()


async def _lane(
    options: RunOptions, ckpt: Checkpoint, lanes: _Lanes, profile: str | None, lane_stops: list[asyncio.Event],
    job: Job, pacers: Pacers, stats: RunStats, retry: RetryPolicy, log: CallLog | None,
    chosen: dict[int, str | None] | None, taken: list[WorkRow], *, rows_of: object,
    escalate: Callable[[Halt], None] | None,
) -> Halt | None:
    """One account's rows (``rows_of``: the profile, or ANY_PROFILE when it is the only lane), sent by
    their own dispatcher; why the lane stopped early, if it did."""
    stop = asyncio.Event()
    if lanes.stop.is_set():
        stop.set()
    lane_stops.append(stop)
    client = lanes.client if profile is None else lanes.client.with_credentials(lanes.sources(profile))
    try:
        account = await client.access_key_id()
    except CredentialsError as exc:
        return Halt(HaltKind.CREDENTIALS_UNAVAILABLE, str(exc))
    dispatcher: Dispatcher | None = None

    def halt(reason: Halt) -> None:
        assert dispatcher is not None
        dispatcher.stop_with(reason)

    caller = Caller(client=client, pacers=pacers, account=account, retry=retry, stop=stop, halt=halt,
                    stats=stats, health=lanes.health(), log=log)
    rows = RowSource(options).to_send(ckpt, profile=rows_of, chosen=chosen)
    if chosen is not None:
        rows = _taking(rows, taken)
    stopper = SafetyStop(max_failure_rate=options.max_failure_rate) if options.changes else None
    dispatcher = Dispatcher(options=options, ckpt=ckpt, rows=rows, job=job, caller=caller, pacers=pacers,
                            account=account, stop=stop, stats=stats, safety=stopper, escalate=escalate)
    try:
        result = await dispatcher.run()
    except Exception:
        lanes.stop.set()  # a bug in one lane stops them all, cleanly, before it is raised
        raise
    return dispatcher.halt or result


def _taking(rows: Iterator[list[WorkRow]], taken: list[WorkRow]) -> Iterator[list[WorkRow]]:
    """``rows``, each also appended to ``taken`` (a canary's)."""
    for batch in rows:
        taken.extend(batch)
        yield batch
