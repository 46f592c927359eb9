"""The batch engine: every row of an input, paced, signed, retried, recorded.

    options = RunOptions(action=resolve("AddLiveSnapshotNotifyConfig"),
                         input_path=Path("domains.csv"), checkpoint_path=Path("domains.ckpt"),
                         overrides={"NotifyUrl": "https://cb.example.com/snap"})
    async with LiveClient(credentials=source, endpoint=url) as client:
        result = await run(options, client=client)
    sys.exit(result.exit_code)

A run has two phases. *Ingest* streams the input once, validates every row
and records it in the checkpoint (``pending`` or ``invalid``, with the byte
offset of its line) before any call is made. *Send* hands the rows still to
do to the dispatcher (``bulk.dispatch``), which runs each through the job of
the run's mode (``bulk.jobs``). Secrets are never stored, so the send phase
reads each row's line from the input again; the input's SHA-256 proves it
is the file that was ingested.

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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .actions import ACTIONS, Action
from .attempts import CallLog, Caller, Health
from .backup import META_KEY as BACKUP_META
from .backup import Backup
from .checkpoint import (
    ANY_PROFILE, Checkpoint, CheckpointError, IngestedRow, RowResult, TodoRow, profile_order, remove_checkpoint,
)
from .client import LiveClient
from .credentials import CredentialsError, CredentialSource, ProfileSources, fingerprint
from .dispatch import Dispatcher
from .files import LocalFault
from .inputs import (
    BadRow, InputError, Row, ValidationSummary, detect_format, file_sha256, read_rows, read_rows_at, validate_file,
)
from .jobs import CanaryJob, Job, WorkRow, make_job
from .options import Canary, CanaryRow, Halt, HaltKind, RowState, RunOptions, RunResult, RunStats
from .pacing import Pacer, Pacers
from .paths import backup_path
from .plan import PlanError, read_plan
from .retry import RetryPolicy
from .safety import META_KEY as SAFETY_META
from .safety import SafetyStop, tripped

__all__ = ["DryRun", "StrictModeError", "dry_run", "prepare", "redact_overrides", "run"]


class StrictModeError(CheckpointError):
    """--strict and at least one invalid row: nothing was sent."""


def redact_overrides(action: Action, overrides: dict[str, str]) -> dict[str, str]:
    """--set values as they may be stored and shown: secrets become fingerprints."""
    return {k: fingerprint(v) if k in action.secret_names else v for k, v in overrides.items()}


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
        counts = _prepare_or_discard(ckpt, options)
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


def _prepare_or_discard(ckpt: Checkpoint, options: RunOptions) -> dict[str, int]:
    new = ckpt.meta() is None
    try:
        prepare(ckpt, options)
        counts = ckpt.counts()
        if options.strict and counts["invalid"]:
            bad = ckpt.rows(states=["invalid"])
            lines = "; ".join(f"line {r['line']}: {r['message']}" for r, _ in zip(bad, range(10), strict=False))
            raise StrictModeError(f"--strict: {counts['invalid']} invalid row(s), nothing sent ({lines})")
    except (InputError, StrictModeError, PlanError, LocalFault):
        if new:
            # Nothing was sent: leave no checkpoint that would refuse the corrected file.
            ckpt.close()
            remove_checkpoint(options.checkpoint_path)
        raise
    return counts


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
    rows = _work_rows(options, ckpt, profile=rows_of, chosen=chosen)
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


def prepare(ckpt: Checkpoint, options: RunOptions) -> None:
    """Record the run (or check it matches the one recorded) and ingest the input."""
    action, path = options.action, options.input_path
    if not path.is_file():
        raise CheckpointError(f"input file {path} does not exist")
    wanted: dict[str, Any] = {
        "action": action.name,
        "mode": options.mode.value,
        "input_sha256": file_sha256(path),
        "overrides": redact_overrides(action, options.overrides),
        **options.extra_meta,
    }
    meta = ckpt.meta()
    fresh = meta is None
    if meta is None:
        ckpt.set_meta({**wanted, "input_path": str(path.resolve()), "format": detect_format(path).value,
                       "created": time.time(), "ingested": False})
    else:
        _check_same_run(meta, wanted, ckpt.path)
    if not (meta or {}).get("ingested"):
        ckpt.add_rows(_ingest(path, options.row_action, options.overrides, options.only_lines, options.profiles))
        if options.plan_path is not None:
            _apply_plan(ckpt, options.plan_path)
        ckpt.set_meta({"ingested": True})
    if options.changes:
        # Complete only while every run kept a backup: then a domain without a record was never written.
        ckpt.set_meta({BACKUP_META: options.backup and (fresh or bool(meta and meta.get(BACKUP_META)))})
    if options.retry_failed:
        ckpt.reopen_failed(all_failed=True)
    elif not fresh:
        ckpt.reopen_failed(all_failed=False)
        for code in tripped(meta):
            # The last run's safety stops: their cause has been fixed (or a stop trips again at once).
            ckpt.reopen_failed(code=code)
    if tripped(meta):
        ckpt.set_meta({SAFETY_META: None})


def _check_same_run(meta: dict[str, Any], wanted: dict[str, Any], path: Path) -> None:
    if meta.get("action") != wanted["action"]:
        raise CheckpointError(f"checkpoint {path} belongs to a {meta.get('action')} run, not {wanted['action']}")
    if meta.get("input_sha256") != wanted["input_sha256"]:
        raise CheckpointError(
            f"the input changed since checkpoint {path} was started (SHA-256 differs); "
            "restore the original file or start over with a new --checkpoint"
        )
    for key, value in wanted.items():
        if key not in ("action", "input_sha256") and meta.get(key, value if key == "mode" else None) != value:
            raise CheckpointError(
                f"checkpoint {path} was started with {key}={meta.get(key)!r}, this run has {value!r}; "
                "run the same command again to resume, or use a new --checkpoint"
            )


def _ingest(
    path: Path, action: Action, overrides: dict[str, str], only: frozenset[int] | None,
    profiles: frozenset[str] | None,
) -> Iterator[IngestedRow]:
    for item in read_rows(path, action, overrides=overrides, profiles=profiles):
        if only is not None and item.line not in only:
            continue
        if isinstance(item, Row):
            yield IngestedRow(item.line, item.domain, RowState.PENDING, offset=item.offset, given=item.given,
                              profile=item.profile)
        else:
            yield IngestedRow(item.line, item.domain, RowState.INVALID, item.reason, offset=item.offset,
                              given=item.given, profile=item.profile)


def _apply_plan(ckpt: Checkpoint, plan_path: Path) -> None:
    """Store the plan's verdict per row; rows it sends nothing for are settled at once."""
    _, entries = read_plan(plan_path)
    lines = [r["line"] for r in ckpt.rows(states=["pending"])]
    ckpt.set_plan((line, e.kind, ",".join(e.fields), e.send) for line in lines if (e := entries.get(line)))
    for line in lines:
        entry = entries.get(line)
        if entry is None:
            ckpt.record(RowResult(line, RowState.SKIPPED, 0, message="not in the plan"))
        elif entry.kind == "conflict":
            ckpt.record(RowResult(line, RowState.FAILED, 0, code="PlanConflict",
                                  message=entry.reason or "conflict in the plan"))
        elif not entry.send:
            ckpt.record(RowResult(line, RowState.SKIPPED, 0, message=f"{entry.kind} in the plan"))
    ckpt.flush()


def _work_rows(
    options: RunOptions, ckpt: Checkpoint, *, profile: object = ANY_PROFILE, chosen: Mapping[int, object] | None = None
) -> Iterator[list[WorkRow]]:
    """The rows still to send (of ``profile``; only the ``chosen`` lines if given), in line order and short
    batches, with their values read again from the input.

    Each row's line is read at the byte offset recorded at ingest, so a resume
    reads only what is left to send. A checkpoint written before offsets were
    recorded is joined with one pass over the input instead.
    """
    stream: Iterator[Row | BadRow] | None = None
    item: Row | BadRow | None = None
    after = 0
    last = max(chosen, default=0) if chosen is not None else None
    while todo := ckpt.todo(after=after, profile=profile):
        after = todo[-1].line
        if chosen is not None:
            todo = [t for t in todo if t.line in chosen]
        if all(t.offset is not None for t in todo):
            found = {r.line: r for r in read_rows_at(options.input_path, options.row_action,
                                                     [(t.line, t.offset) for t in todo],  # type: ignore[misc]
                                                     overrides=options.overrides, profiles=options.profiles)}
        else:
            if stream is None:
                stream = iter(read_rows(options.input_path, options.row_action, overrides=options.overrides,
                                        profiles=options.profiles))
                item = next(stream, None)
            found = {}
            for t in todo:
                while item is not None and item.line < t.line:
                    item = next(stream, None)
                if item is not None and item.line == t.line:
                    found[t.line] = item
        batch = []
        for t in todo:
            row = found.get(t.line)
            if isinstance(row, Row):
                batch.append(_work_row(options, t, row))
            else:
                _unreadable(ckpt, t, row)
        yield batch
        if last is not None and after >= last:
            return


def _work_row(options: RunOptions, todo: TodoRow, row: Row) -> WorkRow:
    action = ACTIONS[todo.plan_send] if todo.plan_send else options.action
    # 'sending' at the start of a run: the last run died with the row in flight.
    reached = todo.reached or todo.state is RowState.SENDING
    return WorkRow(todo.line, row.domain, row.params, action, reached, todo.attempts, row.profile)


def _unreadable(ckpt: Checkpoint, todo: TodoRow, item: Row | BadRow | None) -> None:
    """A row the checkpoint holds but the input no longer yields (validation rules changed)."""
    why = item.reason if isinstance(item, BadRow) else "line not found"
    if todo.reached or todo.state is RowState.SENDING:
        ckpt.record(RowResult(todo.line, RowState.FAILED, todo.attempts, code="InputChanged", reached=True,
                              message=f"the input row can no longer be read ({why}); outcome unknown"))
    else:
        ckpt.record(RowResult(todo.line, RowState.INVALID, todo.attempts, code="InvalidRow", message=why))


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a run would do: rows by state, the calls to send and how long they would take."""

    counts: dict[str, int]
    to_send: int
    seconds: float
    #: the input's validation, when the run has not started (else the counts are the checkpoint's)
    validation: ValidationSummary | None


def dry_run(options: RunOptions) -> DryRun:
    """Validate (or read the checkpoint of a started run) and estimate; send nothing."""
    path = options.checkpoint_path
    if path.exists():
        with Checkpoint.open_readonly(path) as ckpt:
            counts = ckpt.counts()
        to_send = counts["pending"] + counts["sending"]
        return DryRun(counts, to_send, to_send / Pacer(options.qps).full_rate, None)
    summary = validate_file(options.input_path, options.row_action, overrides=options.overrides,
                            profiles=options.profiles)
    counts = {"pending": summary.valid, "invalid": summary.bad_count}
    return DryRun(counts, summary.valid, summary.valid / Pacer(options.qps).full_rate, summary)
