"""The batch engine: every row of an input, paced, signed, retried, recorded.

    options = RunOptions(action=resolve("AddLiveSnapshotNotifyConfig"),
                         input_path=Path("domains.csv"), checkpoint_path=Path("domains.ckpt"),
                         overrides={"NotifyUrl": "https://cb.example.com/snap"})
    async with LiveClient(credentials=source, endpoint=url) as client:
        result = await run(options, client=client)
    sys.exit(result.exit_code)

A run has two phases. *Ingest* streams the input once, validates every row
and records it in the checkpoint (``pending`` or ``invalid``) before any call
is made. *Send* streams the input again (secrets are never stored, so this
is where they come from), joins it with the checkpoint by line and sends the
rows still to do. The dispatcher is admitted by the pacer before it starts a
row, so the number of calls in flight follows the quota times the service's
latency by itself; ``concurrency`` is only a ceiling. The quota itself is
kept at the wire: the client awaits the pacer's guard right before writing
each request (``bulk.pacing``).

Rows that may already have reached the service (``sending`` in the
checkpoint after a crash) are read back before anything is sent again, and
an Add that meets 409 after an earlier attempt is read back too: a row is
never applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import orjson

from .actions import ACTIONS, Action
from .checkpoint import Checkpoint, CheckpointError, RowResult
from .client import Failure, LiveClient, Outcome, Success
from .credentials import fingerprint
from .inputs import BadRow, InputError, Row, detect_format, file_sha256, read_rows
from .pacing import Pacers
from .plan import PlanEntry, classify
from .retry import RetryPolicy

__all__ = ["RunOptions", "RunResult", "RunStats", "StrictModeError", "default_checkpoint", "redact_overrides", "remove_checkpoint", "run"]

IF_EXISTS = ("fail", "skip", "update")
MODES = ("apply", "plan", "verify")
_CLAIM_CHUNK = 32
_UPDATE = "UpdateLiveSnapshotNotifyConfig"


class StrictModeError(CheckpointError):
    """--strict and at least one invalid row: nothing was sent."""


def default_checkpoint(input_path: Path, action: Action) -> Path:
    """``domains.csv`` + Add... -> ``domains.csv.add-live-snapshot-notify-config.ckpt``."""
    return input_path.with_name(f"{input_path.name}.{action.kebab}.ckpt")


def redact_overrides(action: Action, overrides: dict[str, str]) -> dict[str, str]:
    """--set values as they may be stored and shown: secrets become fingerprints."""
    return {k: fingerprint(v) if k in action.secret_names else v for k, v in overrides.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    action: Action
    input_path: Path
    checkpoint_path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    qps: float = 30.0
    concurrency: int | None = None
    max_attempts: int = 8
    timeout: float = 10.0
    if_exists: str = "fail"
    strict: bool = False
    retry_failed: bool = False
    log_file: Path | None = None
    grace: float = 5.0
    #: extra checkpoint metadata that must match on resume (e.g. a keys file digest)
    extra_meta: dict[str, str] = field(default_factory=dict)
    #: "apply" sends the action; "plan" and "verify" only read each domain's live state
    mode: str = "apply"
    #: run --plan: line -> entry; only create/update rows are sent, each with its entry's action
    plan: Mapping[int, PlanEntry] | None = None
    #: parameters taken from the live config right before sending (a rotation keeping NotifyUrl)
    keep_current: tuple[str, ...] = ()
    #: only these input lines take part (verify: the rows a run recorded done)
    only_lines: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if self.if_exists not in IF_EXISTS:
            raise ValueError(f"--if-exists must be one of {', '.join(IF_EXISTS)}")
        if self.qps <= 0:
            raise ValueError("--qps must be positive")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if self.mode != "apply" and not self.action.readback:
            raise ValueError(f"{self.action.name} changes nothing: there is nothing to plan or verify")

    @property
    def row_action(self) -> Action:
        """The action rows are validated against: kept parameters come later, from the service."""
        if not self.keep_current:
            return self.action
        params = tuple(replace(p, required=False) if p.name in self.keep_current else p for p in self.action.params)
        return replace(self.action, params=params)

    @property
    def workers(self) -> int:
        """In-flight ceiling: enough for the quota even if every call takes the whole timeout.

        Calls in flight follow the pace times the service's latency by themselves
        (the pacer admits a row before the dispatcher starts it); this only
        bounds sockets when the quota is huge.
        """
        if self.concurrency:
            return self.concurrency
        return max(8, min(1024, math.ceil(self.qps * self.timeout)))


@dataclass(slots=True)
class RunStats:
    total: int = 0
    to_send: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    invalid: int = 0
    calls: int = 0
    retrying: int = 0
    started: float = field(default_factory=time.monotonic)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def finished(self) -> int:
        return self.done + self.skipped + self.failed + self.invalid

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def pace(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class RunResult:
    counts: dict[str, int]
    errors: dict[str, int]
    calls: int
    elapsed: float
    interrupted: bool
    checkpoint: Path
    #: why the run stopped early when the service refused the credentials themselves
    fatal: str | None = None

    @property
    def pace(self) -> float:
        return self.calls / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def exit_code(self) -> int:
        if self.fatal:
            return 2
        if self.interrupted:
            return 3
        return 1 if self.counts.get("failed", 0) or self.counts.get("invalid", 0) else 0


async def run(
    options: RunOptions,
    *,
    client: LiveClient,
    stop: asyncio.Event | None = None,
    stats: RunStats | None = None,
    retry: RetryPolicy | None = None,
) -> RunResult:
    """Apply ``options.action`` to every valid row; resume if the checkpoint has begun.

    Raises CheckpointBusy, CheckpointError, StrictModeError or inputs.InputError
    before any call is made. ``stop`` asks for a graceful stop (exit code 3).
    """
    stats = stats or RunStats()
    stop = stop or asyncio.Event()
    with Checkpoint.open(options.checkpoint_path) as ckpt:
        new = ckpt.meta() is None
        try:
            prepare(ckpt, options)
            counts = ckpt.counts()
            if options.strict and counts["invalid"]:
                bad = ckpt.rows(states=["invalid"])
                lines = "; ".join(f"line {r['line']}: {r['message']}" for r, _ in zip(bad, range(10), strict=False))
                raise StrictModeError(f"--strict: {counts['invalid']} invalid row(s), nothing sent ({lines})")
        except (InputError, StrictModeError):
            if new:
                # Nothing was sent: leave no checkpoint that would refuse the corrected file.
                ckpt.close()
                remove_checkpoint(options.checkpoint_path)
            raise
        stats.total = sum(counts.values())
        stats.done, stats.skipped = counts["done"], counts["skipped"]
        stats.failed, stats.invalid = counts["failed"], counts["invalid"]
        stats.to_send = counts["pending"] + counts["sending"]
        stats.started = time.monotonic()
        sender = _Sender(options, ckpt, client, stats, stop, retry or RetryPolicy(max_attempts=options.max_attempts))
        await sender.send_all()
        ckpt.flush()
        fatal = sender.fatal
        return RunResult(
            counts=ckpt.counts(),
            errors=ckpt.error_counts(),
            calls=stats.calls,
            elapsed=stats.elapsed,
            interrupted=stop.is_set() and not fatal,
            checkpoint=options.checkpoint_path,
            fatal=f"{fatal.code}: {fatal.message}" if fatal else None,
        )


def prepare(ckpt: Checkpoint, options: RunOptions) -> None:
    """Record the run (or check it matches the one recorded) and ingest the input."""
    action, path = options.action, options.input_path
    if not path.is_file():
        raise CheckpointError(f"input file {path} does not exist")
    digest = file_sha256(path)
    wanted = {
        "action": action.name,
        "input_sha256": digest,
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
        if options.plan is not None:
            _mark_planned(ckpt, options.plan)
        ckpt.set_meta({"ingested": True})
    if options.retry_failed:
        ckpt.reopen_failed(all_failed=True)
    elif not fresh:
        ckpt.reopen_failed(all_failed=False)


def _check_same_run(meta: dict[str, Any], wanted: dict[str, Any], path: Path) -> None:
    if meta.get("action") != wanted["action"]:
        raise CheckpointError(f"checkpoint {path} belongs to a {meta.get('action')} run, not {wanted['action']}")
    if meta.get("input_sha256") != wanted["input_sha256"]:
        raise CheckpointError(
            f"the input changed since checkpoint {path} was started (SHA-256 differs); "
            "restore the original file or start over with a new --checkpoint"
        )
    for key, value in wanted.items():
        if key not in ("action", "input_sha256") and meta.get(key) != value:
            raise CheckpointError(
                f"checkpoint {path} was started with {key}={meta.get(key)!r}, this run has {value!r}; "
                "run the same command again to resume, or use a new --checkpoint"
            )


def _ingest(
    path: Path, action: Action, overrides: dict[str, str], only: frozenset[int] | None
) -> Iterator[tuple[int, str | None, str, str | None]]:
    for item in read_rows(path, action, overrides=overrides):
        if only is not None and item.line not in only:
            continue
        if isinstance(item, Row):
            yield item.line, item.domain, "pending", None
        else:
            yield item.line, item.domain, "invalid", item.reason


def _mark_planned(ckpt: Checkpoint, plan: Mapping[int, PlanEntry]) -> None:
    """Rows the plan sends nothing for are settled at once: noop skipped, conflict failed."""
    for line, state, _ in list(ckpt.states()):
        entry = plan.get(line)
        if state != "pending" or (entry and entry.send):
            continue
        if entry is None:
            ckpt.record(RowResult(line, "skipped", 0, message="not in the plan"))
        elif entry.kind == "conflict":
            ckpt.record(RowResult(line, "failed", 0, code="PlanConflict", message=entry.reason or "conflict in the plan"))
        else:
            ckpt.record(RowResult(line, "skipped", 0, message=f"{entry.kind} in the plan"))
    ckpt.flush()


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint and its WAL, shared-memory and lock files."""
    for suffix in ("", "-wal", "-shm", ".lock"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


class _Sender:
    """The send phase of one run."""

    def __init__(
        self,
        options: RunOptions,
        ckpt: Checkpoint,
        client: LiveClient,
        stats: RunStats,
        stop: asyncio.Event,
        retry: RetryPolicy,
    ) -> None:
        self.options = options
        self.action = options.action
        self.ckpt = ckpt
        self.client = client
        self.stats = stats
        self.stop = stop
        self.retry = retry
        self.pacers = Pacers(options.qps)
        self.account = ""
        self.log: IO[bytes] | None = None
        self.fatal: Failure | None = None

    async def send_all(self) -> None:
        if self.stats.to_send == 0:
            return
        self.account = await self.client.access_key_id()
        with contextlib.ExitStack() as stack:
            if self.options.log_file:
                self.log = stack.enter_context(self.options.log_file.open("ab"))
            await self._dispatch()

    async def _dispatch(self) -> None:
        slots = asyncio.Semaphore(self.options.workers)
        tasks: set[asyncio.Task[None]] = set()

        def started(task: asyncio.Task[None]) -> None:
            tasks.add(task)
            task.add_done_callback(lambda t: (tasks.discard(t), slots.release()))

        await self._start_rows(slots, started)
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            while tasks and not stopped.done():
                await asyncio.wait({*tasks, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if tasks:
                # Stopping: give calls in flight a moment, then abandon them. Their
                # rows stay 'sending' and are read back on resume.
                _, late = await asyncio.wait(set(tasks), timeout=self.options.grace)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        finally:
            stopped.cancel()

    async def _start_rows(self, slots: asyncio.Semaphore, started: Callable[[asyncio.Task[None]], None]) -> None:
        """Claim rows in small chunks and start each when a worker is free and the pacer admits it."""
        for chunk in _chunks(self._todo(), _CLAIM_CHUNK):
            if self.stop.is_set():
                return
            self.ckpt.claim([row.line for row, _, _ in chunk])
            for i, (row, reached, attempts) in enumerate(chunk):
                got_slot = await self._acquire_unless_stopped(slots)
                first = self._first_call(row, reached)
                if got_slot:
                    await self.pacers.get(self.account, first).admit()
                if self.stop.is_set():
                    if got_slot:
                        slots.release()
                    for unsent, was_reached, n in chunk[i:]:
                        # Claimed but never sent: plain pending again.
                        self.ckpt.record(RowResult(unsent.line, "sending" if was_reached else "pending", n))
                    return
                started(asyncio.create_task(self._row(row, reached, attempts, _Prepaid(first))))

    async def _acquire_unless_stopped(self, slots: asyncio.Semaphore) -> bool:
        if not slots.locked():
            await slots.acquire()
            return True
        # All workers busy (slow service): don't let a stop wait for one of them.
        acquire = asyncio.ensure_future(slots.acquire())
        stopped = asyncio.ensure_future(self.stop.wait())
        await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if acquire.done():
            return True
        acquire.cancel()
        return False

    def _todo(self) -> Iterator[tuple[Row, bool, int]]:
        """Rows still to send, with whether an earlier attempt may have reached the service."""
        states = self.ckpt.states()
        current = next(states, None)
        for item in read_rows(self.options.input_path, self.options.row_action, overrides=self.options.overrides):
            if isinstance(item, BadRow):
                continue
            while current is not None and current[0] < item.line:
                current = next(states, None)
            if current is None or current[0] != item.line:
                continue
            _, state, attempts = current
            if state in ("pending", "sending"):
                yield item, state == "sending", attempts

    def _action_for(self, row: Row) -> Action:
        entry = self.options.plan.get(row.line) if self.options.plan else None
        return ACTIONS[entry.send] if entry and entry.send else self.action

    def _first_call(self, row: Row, reached: bool) -> str:
        """The action of a row's first call, whose pacer admits the row."""
        action = self._action_for(row)
        if self.options.mode != "apply" or reached or self.options.keep_current:
            assert action.readback is not None or self.options.mode == "apply"
            return action.readback or action.name
        return action.name

    # -- one row -------------------------------------------------------------

    async def _row(self, row: Row, reached: bool, attempts: int, prepaid: _Prepaid) -> None:
        if self.options.mode != "apply":
            await self._inspect(row, attempts, prepaid)
            return
        action = self._action_for(row)
        params = row.params
        if action.readback and (reached or self.options.keep_current):
            current, n = await self._read(action, row, prepaid)
            attempts += n
            if self.options.keep_current:
                missing = [k for k in self.options.keep_current if not (current or {}).get(k)]
                if current is None or missing:
                    why = "could not read the current config" if current is None else "no current config to keep"
                    self._finish(row, "failed", attempts, action.name, code="NoCurrentConfig",
                                 message=f"{why} ({', '.join(self.options.keep_current)})")
                    return
                params = {**params, **{k: current[k] for k in self.options.keep_current}}
            if reached and current is not None and not action.differences(params, current):
                self._finish(row, "done", attempts, action.name, message="already applied (read back)")
                return
        outcome, n = await self._attempts(action.name, params, row, prepaid)
        attempts += n
        if outcome is None:  # stopped during backoff: the row stays 'sending'
            self.ckpt.record(RowResult(row.line, "sending", attempts))
            return
        if isinstance(outcome, Failure) and outcome.code == "ConfigAlreadyExists" and not action.idempotent:
            if n > 1 or reached:
                await self._settle_conflict(action, row, params, attempts, outcome, prepaid)
                return
            if self.options.if_exists == "skip":
                self._finish(row, "skipped", attempts, action.name, outcome, message="config already exists")
                return
            if self.options.if_exists == "update":
                action = ACTIONS[_UPDATE]
                outcome, n = await self._attempts(action.name, params, row, prepaid)
                attempts += n
                if outcome is None:
                    self.ckpt.record(RowResult(row.line, "sending", attempts))
                    return
        self._finish_outcome(row, attempts, action.name, outcome)

    async def _settle_conflict(
        self, action: Action, row: Row, params: dict[str, str], attempts: int, conflict: Failure, prepaid: _Prepaid
    ) -> None:
        """409 after an attempt that may have landed: ours, or somebody else's?"""
        current, n = await self._read(action, row, prepaid)
        attempts += n
        if current is None:
            self._finish(row, "failed", attempts, action.name, conflict,
                         message="409 on retry and the read-back failed; state unknown")
            return
        diffs = action.differences(params, current)
        if diffs:
            self._finish(row, "failed", attempts, action.name, conflict,
                         message=f"conflict: an existing config differs in {', '.join(diffs)}")
        else:
            self._finish(row, "done", attempts, action.name, message="applied (409 on retry, read back matches)")

    async def _read(self, action: Action, row: Row, prepaid: _Prepaid) -> tuple[dict[str, str] | None, int]:
        """The live state ``action`` changes (None if unreadable), and the attempts it took."""
        assert action.readback is not None
        reader = ACTIONS[action.readback]
        outcome, n = await self._attempts(reader.name, {"DomainName": row.domain}, row, prepaid)
        return (reader.read(outcome.body) if isinstance(outcome, Success) else None), n

    async def _inspect(self, row: Row, attempts: int, prepaid: _Prepaid) -> None:
        """plan / verify: read one domain's live state and judge it against the row."""
        action = self.action
        assert action.readback is not None
        reader = ACTIONS[action.readback]
        outcome, n = await self._attempts(reader.name, {"DomainName": row.domain}, row, prepaid)
        attempts += n
        if outcome is None:
            self.ckpt.record(RowResult(row.line, "sending", attempts))
        elif isinstance(outcome, Failure):
            if self.options.mode == "plan":
                self._finish(row, "done", attempts, None, code="conflict", request_id=outcome.request_id,
                             message=f"cannot read the current state: {outcome.code}: {outcome.message}")
            else:
                self._finish(row, "failed", attempts, reader.name, outcome)
        elif self.options.mode == "plan":
            kind, fields, send = classify(action, row.params, reader.read(outcome.body))
            self._finish(row, "done", attempts, send, code=kind, message=",".join(fields),
                         request_id=outcome.request_id)
        else:
            diffs = action.differences(row.params, reader.read(outcome.body))
            if diffs:
                self._finish(row, "failed", attempts, reader.name, code="Drift", request_id=outcome.request_id,
                             message=f"live state differs in {', '.join(diffs)}")
            else:
                self._finish(row, "done", attempts, reader.name, request_id=outcome.request_id,
                             message="in sync")

    async def _attempts(
        self, name: str, params: dict[str, str], row: Row, prepaid: _Prepaid
    ) -> tuple[Outcome | None, int]:
        """Send until success, a permanent error or the last attempt; None if stopped."""
        pacer = self.pacers.get(self.account, name)
        attempt = 0
        while True:
            attempt += 1
            if not (attempt == 1 and prepaid.use(name)):
                if self.stop.is_set():
                    return None, attempt - 1
                await pacer.admit()
            outcome = await self.client.call(name, params, at_wire=pacer.at_wire)
            self.stats.calls += 1
            self._log(row, name, attempt, outcome)
            if isinstance(outcome, Failure) and outcome.fatal:
                # Wrong key or secret: stop the whole run rather than fail every row alike.
                self.fatal = self.fatal or outcome
                self.stop.set()
                return None, attempt
            if isinstance(outcome, Failure) and outcome.throttled:
                pacer.throttled()
            if isinstance(outcome, Success) or not self.retry.should_retry(outcome, attempt):
                return outcome, attempt
            self.stats.retrying += 1
            try:
                if await _sleep_or_stop(self.retry.delay(attempt, throttled=outcome.throttled), self.stop):
                    return None, attempt
            finally:
                self.stats.retrying -= 1

    def _finish_outcome(self, row: Row, attempts: int, action: str, outcome: Outcome | None) -> None:
        if isinstance(outcome, Success):
            self._finish(row, "done", attempts, action, request_id=outcome.request_id)
        else:
            assert outcome is not None
            self._finish(row, "failed", attempts, action, outcome)

    def _finish(
        self,
        row: Row,
        state: str,
        attempts: int,
        action: str | None,
        failure: Failure | None = None,
        *,
        code: str | None = None,
        message: str | None = None,
        request_id: str | None = None,
    ) -> None:
        if failure is not None:
            code, request_id = failure.code, failure.request_id
            message = f"{failure.message} ({message})" if message and failure.message else (message or failure.message)
        if state == "failed" and code:
            self.stats.errors[code] += 1
        setattr(self.stats, state, getattr(self.stats, state) + 1)
        self.ckpt.record(
            RowResult(
                line=row.line,
                state=state,
                attempts=attempts,
                action=action,
                code=code,
                message=message,
                status=failure.status if failure else None,
                request_id=request_id,
                transient=bool(failure and failure.transient),
            )
        )

    def _log(self, row: Row, action: str, attempt: int, outcome: Outcome) -> None:
        if self.log is None:
            return
        entry: dict[str, Any] = {
            "time": time.time(),
            "line": row.line,
            "domain": row.domain,
            "action": action,
            "attempt": attempt,
            "ok": outcome.ok,
            "latency_ms": round(outcome.latency * 1000, 1),
        }
        if isinstance(outcome, Success):
            entry["request_id"] = outcome.request_id
            entry["status"] = outcome.status
        else:
            entry.update(request_id=outcome.request_id, status=outcome.status, code=outcome.code,
                         message=outcome.message, transient=outcome.transient)
        self.log.write(orjson.dumps(entry) + b"\n")


class _Prepaid:
    """The admission the dispatcher took for a row's first call, usable once."""

    __slots__ = ("action",)

    def __init__(self, action: str) -> None:
        self.action: str | None = action

    def use(self, action: str) -> bool:
        if self.action == action:
            self.action = None
            return True
        return False


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _sleep_or_stop(delay: float, stop: asyncio.Event) -> bool:
    """Sleep; True if ``stop`` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)
    return stop.is_set()
