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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .actions import ACTIONS, Action
from .attempts import CallLog, Caller, Health
from .backup import META_KEY as BACKUP_META
from .backup import Backup, backup_path
from .checkpoint import Checkpoint, CheckpointError, IngestedRow, RowResult, TodoRow
from .client import LiveClient
from .credentials import fingerprint
from .dispatch import Dispatcher
from .files import LocalFault
from .inputs import (
    BadRow, InputError, Row, ValidationSummary, detect_format, file_sha256, read_rows, read_rows_at, validate_file,
)
from .jobs import CanaryJob, WorkRow, make_job
from .options import Canary, CanaryRow, Halt, HaltKind, RowState, RunOptions, RunResult, RunStats
from .pacing import Pacer, Pacers
from .plan import PlanError, read_plan
from .retry import RetryPolicy
from .safety import META_KEY as SAFETY_META
from .safety import SafetyStop

__all__ = ["DryRun", "StrictModeError", "default_checkpoint", "dry_run", "prepare", "redact_overrides",
           "remove_checkpoint", "run"]


class StrictModeError(CheckpointError):
    """--strict and at least one invalid row: nothing was sent."""


def default_checkpoint(input_path: Path, action: Action) -> Path:
    """``domains.csv`` + Add... -> ``domains.csv.add-live-snapshot-notify-config.ckpt``."""
    return input_path.with_name(f"{input_path.name}.{action.kebab}.ckpt")


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
    health: Health | None = None,
) -> RunResult:
    """Apply ``options.action`` to every valid row; resume if the checkpoint has begun.

    Raises CheckpointBusy, CheckpointError, StrictModeError, PlanError or
    inputs.InputError before any call is made. ``stop`` asks for a graceful
    stop; why the run stopped early is in ``RunResult.halt``. ``retry`` and
    ``health`` replace the default policy and thresholds.
    """
    stats = stats or RunStats()
    stop = stop or asyncio.Event()
    halt: Halt | None = None
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
            health = health or Health(endpoint=client.endpoint)
            halt, canary = await _send(options, ckpt, client, stop, stats, retry, health)
        try:
            ckpt.flush()
        except LocalFault as fault:
            halt = halt or Halt(HaltKind.LOCAL_FAULT, str(fault))
        return RunResult(counts=ckpt.counts(), errors=ckpt.error_counts(), calls=stats.calls,
                         elapsed=stats.elapsed, checkpoint=options.checkpoint_path, halt=halt, canary=canary)
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


async def _send(
    options: RunOptions, ckpt: Checkpoint, client: LiveClient, stop: asyncio.Event, stats: RunStats,
    retry: RetryPolicy | None, health: Health,
) -> tuple[Halt | None, Canary | None]:
    account = await client.access_key_id()
    pacers = Pacers(options.qps)
    backup: Backup | None = None
    try:
        log = CallLog(options.log_file) if options.log_file else None
        if options.changes and options.backup:
            complete = bool((ckpt.meta() or {}).get(BACKUP_META))
            backup = Backup.open(backup_path(options.checkpoint_path), complete=complete)
    except LocalFault as fault:
        return Halt(HaltKind.LOCAL_FAULT, str(fault)), None
    dispatcher: Dispatcher | None = None

    def halt(reason: Halt) -> None:
        assert dispatcher is not None
        dispatcher.stop_with(reason)

    caller = Caller(client=client, pacers=pacers, account=account,
                    retry=retry or RetryPolicy(max_attempts=options.max_attempts), stop=stop, halt=halt,
                    stats=stats, health=health, log=log)
    job = make_job(options, backup=backup)
    rows = _work_rows(options, ckpt)
    taken: list[WorkRow] = []
    if options.canary:
        rows = _first(rows, options.canary, taken)
    stopper = SafetyStop(max_failure_rate=options.max_failure_rate) if options.changes else None
    dispatcher = Dispatcher(options=options, ckpt=ckpt, rows=rows, job=job, caller=caller, pacers=pacers,
                            account=account, stop=stop, stats=stats, safety=stopper)
    try:
        result = await dispatcher.run()
    finally:
        if backup is not None:
            await backup.close()
        if log is not None:
            try:
                log.close()
            except LocalFault as fault:
                dispatcher.stop_with(Halt(HaltKind.LOCAL_FAULT, str(fault)))
    canary = None
    if isinstance(job, CanaryJob):
        unfinished = "not finished: the run stopped first"
        canary = Canary(tuple(job.results.get(r.line, CanaryRow(r.line, r.domain, unfinished)) for r in taken))
    return dispatcher.halt or result, canary


def _first(rows: Iterator[list[WorkRow]], n: int, taken: list[WorkRow]) -> Iterator[list[WorkRow]]:
    """The first ``n`` rows of ``rows`` (a canary's), each also appended to ``taken``."""
    for batch in rows:
        batch = batch[:n - len(taken)]
        taken.extend(batch)
        if batch:
            yield batch
        if len(taken) >= n:
            return


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
        ckpt.add_rows(_ingest(path, options.row_action, options.overrides, options.only_lines))
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
        if tripped := (meta or {}).get(SAFETY_META):
            # The last run's safety stop: its cause has been fixed (or the stop trips again at once).
            ckpt.reopen_failed(code=tripped)
    if (meta or {}).get(SAFETY_META):
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
    path: Path, action: Action, overrides: dict[str, str], only: frozenset[int] | None
) -> Iterator[IngestedRow]:
    for item in read_rows(path, action, overrides=overrides):
        if only is not None and item.line not in only:
            continue
        if isinstance(item, Row):
            yield IngestedRow(item.line, item.domain, RowState.PENDING, offset=item.offset, given=item.given)
        else:
            yield IngestedRow(item.line, item.domain, RowState.INVALID, item.reason, offset=item.offset,
                              given=item.given)


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


def _work_rows(options: RunOptions, ckpt: Checkpoint) -> Iterator[list[WorkRow]]:
    """The rows still to send, in line order and short batches, with their values read again from the input.

    Each row's line is read at the byte offset recorded at ingest, so a resume
    reads only what is left to send. A checkpoint written before offsets were
    recorded is joined with one pass over the input instead.
    """
    stream: Iterator[Row | BadRow] | None = None
    item: Row | BadRow | None = None
    after = 0
    while todo := ckpt.todo(after=after):
        after = todo[-1].line
        if all(t.offset is not None for t in todo):
            found = {r.line: r for r in read_rows_at(options.input_path, options.row_action,
                                                     [(t.line, t.offset) for t in todo],  # type: ignore[misc]
                                                     overrides=options.overrides)}
        else:
            if stream is None:
                stream = iter(read_rows(options.input_path, options.row_action, overrides=options.overrides))
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


def _work_row(options: RunOptions, todo: TodoRow, row: Row) -> WorkRow:
    action = ACTIONS[todo.plan_send] if todo.plan_send else options.action
    # 'sending' at the start of a run: the last run died with the row in flight.
    reached = todo.reached or todo.state is RowState.SENDING
    return WorkRow(todo.line, row.domain, row.params, action, reached, todo.attempts)


def _unreadable(ckpt: Checkpoint, todo: TodoRow, item: Row | BadRow | None) -> None:
    """A row the checkpoint holds but the input no longer yields (validation rules changed)."""
    why = item.reason if isinstance(item, BadRow) else "line not found"
    if todo.reached or todo.state is RowState.SENDING:
        ckpt.record(RowResult(todo.line, RowState.FAILED, todo.attempts, code="InputChanged", reached=True,
                              message=f"the input row can no longer be read ({why}); outcome unknown"))
    else:
        ckpt.record(RowResult(todo.line, RowState.INVALID, todo.attempts, code="InvalidRow", message=why))


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint and its WAL, shared-memory and lock files."""
    for suffix in ("", "-wal", "-shm", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


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
    summary = validate_file(options.input_path, options.row_action, overrides=options.overrides)
    counts = {"pending": summary.valid, "invalid": summary.bad_count}
    return DryRun(counts, summary.valid, summary.valid / Pacer(options.qps).full_rate, summary)
