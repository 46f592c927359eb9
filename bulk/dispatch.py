"""The send phase: claim rows, admit them at the pace, run each row's job, record its outcome.

    dispatcher = Dispatcher(options=options, ckpt=ckpt, rows=rows, job=make_job(options), caller=caller,
                            pacers=pacers, account=account, lane=lane, stats=stats)
    halt = await dispatcher.run()            # None when every row was taken to an outcome

Rows are claimed (committed ``sending``) in small chunks before any of them
is sent. A row starts only when a worker is free and its first call is
admitted by the pacer, so the calls in flight follow the pace times the
service's latency by themselves; the worker count is only a ceiling.

The dispatcher is also where a lane (``bulk.lanes``: one account's rows)
stops, for whatever reason: a signal,
an answer that refuses the credentials, a set-up that cannot work (no
credentials, no endpoint), too many rows failing alike (the safety stop,
``bulk.safety``, which sees every finished row and whose tripping code is
recorded in the checkpoint at once), or a local fault such as a full disk
(which stops every lane). It stops
starting rows, gives the calls in flight ``grace`` seconds, and abandons
the rest: their rows stay ``sending`` and are read back on resume. Claimed
rows it never started go back to the state they had. Nothing raised inside
a row is lost: a local fault halts the run with one line naming the file,
and anything else is re-raised once the run has stopped cleanly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator

from .attempts import Caller, Prepaid
from .backup import Backup
from .checkpoint import Checkpoint, RowOutcome, RowState
from .files import LocalFault
from .jobs import Job, RowCalls
from .lanes import Lane
from .options import Halt, HaltKind, RunOptions, RunStats
from .pacing import Pacers
from .rows import WorkRow
from .safety import META_KEY, SafetyStop, tripped

__all__ = ["Dispatcher"]

#: rows claimed per commit
CLAIM_CHUNK = 32


class Dispatcher:
    """Sends one lane's rows (``run``), each through the job, and records each outcome."""

    __slots__ = ("_account", "_backup", "_caller", "_ckpt", "_error", "_grace", "_job", "_lane", "_pacers", "_rows",
                 "_safety", "_stats", "_workers")

    def __init__(
        self,
        *,
        options: RunOptions,
        ckpt: Checkpoint,
        rows: Iterator[list[WorkRow]],
        job: Job,
        caller: Caller,
        pacers: Pacers,
        account: str,
        lane: Lane,
        stats: RunStats,
        safety: SafetyStop | None = None,
        backup: Backup | None = None,
    ) -> None:
        """``lane`` is the stop scope of these rows (one account's), the one their ``caller`` obeys too;
        ``backup``: the run's, whose mark goes with each claim."""
        self._ckpt = ckpt
        self._backup = backup
        self._rows = rows
        self._job = job
        self._caller = caller
        self._pacers = pacers
        self._account = account
        self._lane = lane
        self._stats = stats
        self._safety = safety
        self._workers = options.workers
        self._grace = options.grace
        self._error: BaseException | None = None

    async def run(self) -> Halt | None:
        """Send every row; the reason the run stopped early, if it did."""
        slots = asyncio.Semaphore(self._workers)
        tasks: set[asyncio.Task[None]] = set()
        try:
            await self._start_rows(slots, tasks)
        except LocalFault as fault:
            self._lane.stop(Halt(HaltKind.LOCAL_FAULT, str(fault)))
        except asyncio.CancelledError:
            # Aborted (a second Ctrl-C): no grace. Rows in flight stay 'sending'.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        except Exception as exc:  # noqa: BLE001  (a bug: stop cleanly, then report it)
            self._error = self._error or exc
            self._lane.stop()
        await self._drain(tasks)
        if self._error is not None:
            raise self._error
        if self._lane.stopping and self._lane.halt is None:
            return Halt(HaltKind.INTERRUPTED, "interrupted")
        return self._lane.halt

    async def _start_rows(self, slots: asyncio.Semaphore, tasks: set[asyncio.Task[None]]) -> None:
        for chunk in self._chunks():
            if self._lane.stopping:
                return
            self._ckpt.claim([(row.line, row.reached) for row in chunk],
                             mark=self._backup.mark if self._backup is not None else None)
            for i, row in enumerate(chunk):
                # All workers busy (a slow service): wait for one, unless the run stops first.
                started = await self._unless_stopped(slots.acquire()) if slots.locked() else await slots.acquire()
                first = self._job.first_call(row)
                if started:
                    pacer = self._pacers.get(self._account, first.name, quota=first.quota)
                    # A wait of a second or less is not worth watching for a stop (at 30 calls/s a wait is
                    # 33 ms): racing it costs two futures a row, a lane's whole CPU at 100 accounts.
                    await pacer.admit() if pacer.rate >= 1 else await self._unless_stopped(pacer.admit())
                if self._lane.stopping:
                    if started:
                        slots.release()
                    self._unclaim(chunk[i:])
                    return
                task = asyncio.create_task(self._row(row, Prepaid(first)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _: slots.release())

    def _chunks(self) -> Iterator[list[WorkRow]]:
        chunk: list[WorkRow] = []
        for batch in self._rows:
            for row in batch:
                chunk.append(row)
                if len(chunk) >= CLAIM_CHUNK:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk

    async def _unless_stopped(self, waiting: Awaitable[object]) -> bool:
        """Await ``waiting`` unless the run stops first; True if it completed."""
        wait = asyncio.ensure_future(waiting)
        if wait.done():
            return True
        stopped = asyncio.ensure_future(self._lane.wait())
        await asyncio.wait({wait, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if wait.done():
            return True
        wait.cancel()
        return False

    def _unclaim(self, rows: list[WorkRow]) -> None:
        """Claimed but never started: each row goes back to the state it had."""
        for row in rows:
            self._ckpt.record(_unsettled(row, reached=row.reached).of_row(line=row.line, attempts=row.attempts,
                                                                          reached=row.reached))

    async def _row(self, row: WorkRow, prepaid: Prepaid) -> None:
        calls = RowCalls(self._caller, row, prepaid, count_reads=self._job.reads_only)
        try:
            self._record(row, calls, await self._job.run(row, calls))
        except LocalFault as fault:
            # The row stays 'sending' in the checkpoint, to be read back on resume.
            self._lane.stop(Halt(HaltKind.LOCAL_FAULT, str(fault)))
        except Exception as exc:  # noqa: BLE001  (a bug must stop the run, not vanish in a task)
            if self._error is None:
                self._error = exc
            self._lane.stop()

    def _record(self, row: WorkRow, calls: RowCalls, outcome: RowOutcome | None) -> None:
        """Record the job's outcome as the row's, with this run's attempts and whether anything may have landed."""
        reached = row.reached or calls.reached
        # None: stopped, or a read-back to retry: 'sending' if anything may have landed.
        self._ckpt.record((outcome or _unsettled(row, reached=reached)).of_row(
            line=row.line, attempts=row.attempts + calls.attempts, reached=reached))
        if outcome is None:
            return
        self._stats.count(outcome.state, outcome.code)
        if self._safety is not None and (halt := self._safety.observe(outcome)) is not None:
            # Committed now: the next run reopens the rows that failed with this code, however this one ends.
            self._ckpt.set_meta({META_KEY: [*tripped(self._ckpt.meta()), halt.code]})
            self._lane.stop(halt)

    async def _drain(self, tasks: set[asyncio.Task[None]]) -> None:
        """Wait for the rows in flight; once stopping, give them ``grace`` seconds, then abandon them."""
        stopped = asyncio.ensure_future(self._lane.wait())
        try:
            while tasks and not stopped.done():
                await asyncio.wait({*tasks, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if tasks:
                _, late = await asyncio.wait(set(tasks), timeout=self._grace)
                for task in late:
                    task.cancel()
                await asyncio.gather(*late, return_exceptions=True)
        finally:
            stopped.cancel()


def _unsettled(row: WorkRow, *, reached: bool) -> RowOutcome:
    """What a row is left as when it got no outcome: ``sending`` (read back first next run) if a write may
    have landed or its outcome was unknown already, else ``pending``."""
    if reached or row.unknown:
        return RowOutcome(RowState.SENDING)
    return RowOutcome(RowState.PENDING)
