"""The checkpoint file itself: SQLite in WAL mode, held by one run at a time through a ``flock``-ed lock file.

    with Checkpoint.open(path) as ckpt:       # CheckpointBusy if another run has it
        ckpt.claim([(2, False)])              # committed, and synced, before the call is sent

Why it is written the way it is, is in ``bulk.checkpoint``.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

from ..errors import BulkError, Exit
from ..files import LocalFault, private_dir
from ..inputs import BadRow, Row
from ..paths import checkpoint_files, lock_path
from ..redact import error_kind, redact
from ..timeline import Second
from .shapes import ANY_PROFILE, PLAN_CONFLICT, RowOutcome, RowState, StoredRow, TodoRow, profile_order

if TYPE_CHECKING:
    from ..timeline import Timeline

__all__ = ["LAST_RUN", "Checkpoint", "CheckpointBusy", "CheckpointError", "remove_checkpoint"]

#: meta key: how the checkpoint's last run ended (exit code, times, halts), kept by the CLI for ``bulk status``
LAST_RUN = "last_run"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    line INTEGER PRIMARY KEY,
    domain TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    action TEXT,
    code TEXT,
    message TEXT,
    status INTEGER,
    request_id TEXT,
    transient INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    reached INTEGER NOT NULL DEFAULT 0,
    offset INTEGER,
    given TEXT,
    plan_kind TEXT,
    plan_fields TEXT,
    plan_send TEXT,
    profile TEXT,
    plan_seen TEXT,
    claim_mark INTEGER
);
CREATE TABLE IF NOT EXISTS timeline (
    second INTEGER PRIMARY KEY,
    calls TEXT NOT NULL,
    codes TEXT NOT NULL,
    throttled INTEGER NOT NULL,
    finished INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    p50 REAL, p90 REAL, p99 REAL, max REAL,
    quota REAL
);
"""
# Columns added after the first release; older checkpoints get them on open.
_ADDED = {
    "reached": "INTEGER NOT NULL DEFAULT 0", "offset": "INTEGER", "given": "TEXT",
    "plan_kind": "TEXT", "plan_fields": "TEXT", "plan_send": "TEXT", "profile": "TEXT", "plan_seen": "TEXT",
    "claim_mark": "INTEGER",
}
#: the timeline's latency columns: a second stored twice (a resume within it) keeps the worse of each
_PERCENTILES = ("p50", "p90", "p99", "max")
_TO_SEND = ("pending", "sending", "unknown")  #: rows a run still has to take to an outcome


class CheckpointError(BulkError):
    """The checkpoint cannot be used for this run (the message says why)."""


class CheckpointBusy(CheckpointError):
    """Another run holds the checkpoint."""

    exit_code = Exit.BUSY


class Checkpoint:
    """The SQLite record of one run: ``open`` to write it (one run at a time), ``open_readonly`` to read it."""

    __slots__ = ("path", "_db", "_lock_fd", "_buffer", "_batch", "_interval", "_last_flush", "_clock", "timeline")

    def __init__(
        self,
        path: Path,
        db: sqlite3.Connection,
        lock_fd: int | None,
        *,
        batch: int = 100,
        interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._db = db
        self._lock_fd = lock_fd
        self._buffer: list[RowOutcome] = []
        self._batch = batch
        self._interval = interval
        self._last_flush = clock()
        self._clock = clock
        #: the run's per-second aggregates: each flush writes the seconds that are over with the outcomes
        self.timeline: Timeline | None = None

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], float] = time.time) -> Checkpoint:
        """Open (or create) for writing; raise CheckpointBusy if another run holds it."""
        try:
            private_dir(path.parent)
            lock_fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise CheckpointError(f"cannot open checkpoint {path}: {exc.strerror}") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise CheckpointBusy(f"checkpoint {path} is in use by another run") from None
        try:
            # Which process holds it, for `bulk status`: read only while the lock is held.
            os.ftruncate(lock_fd, 0)
            os.pwrite(lock_fd, f"{os.getpid()}\n".encode(), 0)
            # Created owner-only from the start: the file never exists with wider access.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            db = _connect(path)
            db.executescript(_SCHEMA)
            _migrate(db)
            os.chmod(path, 0o600)
        except (sqlite3.DatabaseError, OSError) as exc:
            os.close(lock_fd)
            raise CheckpointError(f"{path} is not a usable bulk checkpoint ({error_kind(exc)})") from None
        return cls(path, db, lock_fd, clock=clock)

    @classmethod
    def open_readonly(cls, path: Path) -> Checkpoint:
        """Open an existing checkpoint for reading, even while a run writes it.

        The view reads one snapshot, taken as it opens: its counts and its rows agree, though the run
        commits meanwhile (a report's totals are those of its rows). Views are short-lived (``with``).
        """
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}")
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            db.execute("BEGIN")  # one read transaction for the view: its first read fixes the snapshot
            db.execute("SELECT 1 FROM meta LIMIT 1")
            present = {r[1] for r in db.execute("PRAGMA table_info(rows)")}
        except sqlite3.DatabaseError as exc:
            raise CheckpointError(f"{path} is not a bulk checkpoint ({error_kind(exc)})") from None
        if not present >= _ADDED.keys():
            db.close()
            raise CheckpointError(f"{path} was written by an older bulk; resume it once with this version first")
        return cls(path, db, None)

    @staticmethod
    def in_use(path: Path) -> bool:
        """Whether a run holds the checkpoint at ``path`` right now."""
        try:
            fd = os.open(lock_path(path), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing the descriptor drops the shared lock, if taken
        return False

    @staticmethod
    def holder(path: Path) -> int | None:
        """The process id of the run that holds the checkpoint at ``path`` right now; None if none does."""
        if not Checkpoint.in_use(path):
            return None
        try:
            text = lock_path(path).read_text()
        except OSError:
            return None
        return int(text) if text.strip().isdigit() else None

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush what is buffered, fold the WAL back in, let the lock go (a read-only view just closes)."""
        try:
            if self._lock_fd is not None:
                self.flush(final=True)
                # Fold the WAL back into the file: a finished checkpoint is one file.
                self._write(lambda: self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        finally:
            self._db.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _write(self, body: Callable[[], Any]) -> Any:
        """Run ``body`` in one transaction; any failure is the run's LocalFault."""
        try:
            with self._db:
                return body()
        except (sqlite3.Error, OSError) as exc:
            raise LocalFault(self.path, exc) from exc

    # -- run metadata -------------------------------------------------------

    def meta(self) -> dict[str, Any] | None:
        """The run's metadata (action, input digest, identity, backup, safety stops...); None before a run began."""
        rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {k: orjson.loads(v) for k, v in rows} if rows else None

    def set_meta(self, values: dict[str, Any]) -> None:
        """Record ``values`` in the run's metadata (each key replaced whole), committed at once."""
        self._write(lambda: self._db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [(k, orjson.dumps(v).decode()) for k, v in values.items()],
        ))

    # -- rows ----------------------------------------------------------------

    def add_rows(self, rows: Iterable[Row | BadRow], *, chunk: int = 5000) -> None:
        """Insert the input's rows (valid ones pending, bad ones invalid), committing every ``chunk``.

        Each keeps the byte offset of its line, to be read again when it is sent.
        """
        sql = ("INSERT OR IGNORE INTO rows (line, domain, state, message, code, offset, given, profile)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        batch: list[tuple[Any, ...]] = []

        def commit() -> None:
            """Write the rows batched so far, in one transaction."""
            self._write(lambda: self._db.executemany(sql, batch))
            batch.clear()

        for r in rows:
            if isinstance(r, Row):
                batch.append((r.line, r.domain, RowState.PENDING.value, None, None, r.offset, r.given, r.profile))
            else:
                batch.append((r.line, r.domain, RowState.INVALID.value, redact(r.reason), "InvalidRow", r.offset,
                              r.given, r.profile))
            if len(batch) >= chunk:
                commit()
        commit()

    def todo(
        self, *, after: int = 0, limit: int = 512, profile: object = ANY_PROFILE, states: tuple[str, ...] = _TO_SEND
    ) -> list[TodoRow]:
        """The next rows still to send (``states``: pending, sending, unknown) after line ``after``, in line order.

        ``profile`` keeps only the rows of one profile (None: rows that name none).
        A short read, fetched whole: a cursor left open across the send phase
        would keep SQLite from folding the WAL back and let it grow with the run.
        """
        where, args = ("line > ?", (after, limit)) if profile is ANY_PROFILE else \
            ("profile IS ? AND line > ?", (profile, after, limit))
        found = self._db.execute(
            "SELECT line, offset, state, attempts, reached, plan_send, profile, plan_kind, plan_fields, plan_seen,"
            f" claim_mark FROM rows WHERE {where} AND state IN ({','.join('?' * len(states))}) ORDER BY line LIMIT ?",
            (*args[:-1], *states, args[-1]),
        ).fetchall()
        return [TodoRow(line, offset, RowState(state), attempts, bool(reached), send, profile,
                        (kind, fields or "", seen) if kind else None, mark)
                for line, offset, state, attempts, reached, send, profile, kind, fields, seen, mark in found]

    def claim(self, rows: Iterable[tuple[int, bool]], *, mark: int | None = None) -> None:
        """Mark rows, ``(line, reached)``, as possibly reaching the service; committed, and on the disk,
        before any is sent. ``reached`` is kept with the claim (a run that dies leaves it); ``mark``: the
        backup's (``Backup.mark``), if the run keeps one, so the next run can tell whether a write went out.

        The one commit made with ``synchronous=FULL`` (its cost: docs/record.md): under NORMAL a power
        cut can take back a claim, and its row would go out again unread. A result lost so leaves its
        row claimed, and so read back: results stay NORMAL.
        """
        now, db = self._clock(), self._db

        def durable() -> None:
            """The claim, committed with synchronous=FULL: a power cut cannot take it back."""
            db.execute("PRAGMA synchronous=FULL")
            try:
                with db:  # committed here, while FULL holds; it also syncs every commit before it
                    db.executemany(
                        "UPDATE rows SET state = 'sending', started = COALESCE(started, ?), reached = MAX(reached, ?),"
                        " claim_mark = ? WHERE line = ?", [(now, int(reached), mark, line) for line, reached in rows])
            finally:
                db.execute("PRAGMA synchronous=NORMAL")

        self._write(durable)

    def record(self, outcome: RowOutcome) -> None:
        """Buffer a row's outcome; committed in batches (``flush``)."""
        self._buffer.append(outcome)
        if len(self._buffer) >= self._batch or self._clock() - self._last_flush >= self._interval:
            self.flush()

    def flush(self, *, final: bool = False) -> None:
        """Commit the buffered outcomes and the timeline's seconds that are over (``final``: all of them).

        One transaction: a crash loses at most those not flushed yet.
        """
        self._last_flush = self._clock()
        seconds = self.timeline.take(final=final) if self.timeline is not None else []
        if not self._buffer and not seconds:
            return
        now = self._clock()
        buffer, self._buffer = self._buffer, []

        def write() -> None:
            """The outcomes and the seconds, in one transaction."""
            self._db.executemany(
                "UPDATE rows SET state = ?, attempts = ?, action = ?, code = ?, message = ?, status = ?,"
                " request_id = ?, transient = ?, finished = ?, reached = MAX(reached, ?),"
                " plan_kind = COALESCE(?, plan_kind), plan_fields = COALESCE(?, plan_fields),"
                " plan_send = COALESCE(?, plan_send), plan_seen = COALESCE(?, plan_seen) WHERE line = ?",
                [
                    (r.state.value, r.attempts, r.action, r.code, r.message and redact(r.message), r.status,
                     r.request_id, int(r.transient), now if r.state.finished else None, int(r.reached), r.plan_kind,
                     r.plan_fields, r.plan_send, r.plan_seen, r.line)
                    for r in buffer
                ],
            )
            if seconds:
                _add_seconds(self._db, seconds)

        self._write(write)

    def set_plan(self, entries: Iterable[tuple[int, str, str, str | None, str | None]]) -> None:
        """Store a plan's verdict per line: (line, kind, fields, action to send, fingerprint of the state read)."""
        self._write(lambda: self._db.executemany(
            "UPDATE rows SET plan_kind = ?, plan_fields = ?, plan_send = ?, plan_seen = ? WHERE line = ?",
            [(kind, fields, send, seen, line) for line, kind, fields, send, seen in entries],
        ))

    def reopen_failed(self, *, all_failed: bool = False, code: str | None = None) -> int:
        """Put failed rows back to pending: those that gave up on transient errors, or failed with ``code``, or all.

        A row the plan marked as a conflict is never reopened: no plan says to send it.
        ``reached`` is kept, so a reopened row that may have landed is read back first.
        """
        where, args = "state = 'failed' AND COALESCE(code, '') != ?", [PLAN_CONFLICT]
        if code is not None:
            where, args = f"{where} AND code = ?", [*args, code]
        elif not all_failed:
            where += " AND transient = 1"
        return int(self._write(lambda: self._db.execute(
            f"UPDATE rows SET state = 'pending', finished = NULL WHERE {where}", args).rowcount))

    def reopen_conflicts(self) -> int:
        """Put a rollback's conflict rows back to pending (``bulk rollback --force``)."""
        return int(self._write(lambda: self._db.execute(
            "UPDATE rows SET state = 'pending', finished = NULL WHERE state = 'conflict'").rowcount))

    # -- reading -------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Rows by state, every state present (0 where none)."""
        counts = dict.fromkeys((s.value for s in RowState), 0)
        # Not one GROUP BY state: its sort of every row takes 0.4 s at a million rows. The two states that
        # hold nearly all rows are counted in one pass, the few others grouped in a second (about half the time).
        counts["done"], counts["pending"] = self._db.execute(
            "SELECT COUNT(*) FILTER (WHERE state = 'done'), COUNT(*) FILTER (WHERE state = 'pending') FROM rows"
        ).fetchone()
        counts.update(self._db.execute(
            "SELECT state, COUNT(*) FROM rows WHERE state NOT IN ('done', 'pending') GROUP BY state").fetchall())
        return counts

    def _names_profiles(self) -> bool:
        """Whether any row names a profile: one look into the index of profiles, not a scan."""
        return self._db.execute("SELECT 1 FROM rows WHERE profile IS NOT NULL LIMIT 1").fetchone() is not None

    def claimed(self) -> bool:
        """Whether a run of the checkpoint ever claimed a row (and so may have sent something)."""
        return self._db.execute("SELECT 1 FROM rows WHERE started IS NOT NULL LIMIT 1").fetchone() is not None

    def reset(self) -> None:
        """Forget the run: its metadata and rows (only for one that never claimed a row, so never sent)."""
        if self.claimed():
            raise CheckpointError(f"checkpoint {self.path} has sent calls: it is resumed, never started anew")
        self._write(lambda: self._db.executescript("DELETE FROM rows; DELETE FROM meta;"))

    def profiles_to_send(self) -> list[str | None]:
        """The profiles of the rows still to send (None: rows that name none), None first, then by name."""
        if not self._names_profiles():
            left = "SELECT 1 FROM rows WHERE state IN ('pending', 'sending', 'unknown') LIMIT 1"
            return [None] if self._db.execute(left).fetchone() is not None else []
        found = self._db.execute(
            "SELECT DISTINCT profile FROM rows WHERE state IN ('pending', 'sending', 'unknown')").fetchall()
        return sorted((p for (p,) in found), key=profile_order)

    def done_domains(self, among: Collection[str], *, batch: int = 20000) -> set[str]:
        """Which of the domains ``among`` (lower case) a row done lists: one pass over the column, in short
        batches, without making a dict of every row."""
        found: set[str] = set()
        after = 0
        while got := self._db.execute("SELECT line, domain FROM rows WHERE state = 'done' AND line > ?"
                                      " ORDER BY line LIMIT ?", (after, batch)).fetchall():
            found.update(low for _, domain in got if domain and (low := domain.lower()) in among)
            after = got[-1][0]
        return found

    def counts_by_profile(self) -> dict[str | None, dict[str, int]]:
        """``counts()`` per profile (None: rows that name none); empty when no row names one."""
        if not self._names_profiles():
            return {}
        found = self._db.execute("SELECT profile, state, COUNT(*) FROM rows GROUP BY profile, state").fetchall()
        counts: dict[str | None, dict[str, int]] = {}
        for profile, state, n in found:
            counts.setdefault(profile, dict.fromkeys((s.value for s in RowState), 0))[state] = n
        return dict(sorted(counts.items(), key=lambda item: profile_order(item[0])))

    def error_counts(self) -> dict[str, int]:
        """Failed, invalid and unknown rows by error code, the commonest first."""
        sql = ("SELECT code, COUNT(*) FROM rows WHERE state IN ('failed', 'invalid', 'unknown') GROUP BY code"
               " ORDER BY 2 DESC")
        return dict(self._db.execute(sql).fetchall())

    def seconds(self) -> list[Second]:
        """The run's timeline (``bulk.timeline``), oldest second first; empty for a checkpoint without one."""
        kept = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'timeline'"
        if self._db.execute(kept).fetchone() is None:
            return []
        found = self._db.execute("SELECT second, calls, codes, throttled, finished, failed, p50, p90, p99, max, quota"
                                 " FROM timeline ORDER BY second").fetchall()
        return [Second(at, orjson.loads(calls), orjson.loads(codes), *rest) for at, calls, codes, *rest in found]

    def rows(self, *, states: Iterable[RowState] | None = None, batch: int = 2000) -> Iterator[StoredRow]:
        """Every row (or those in ``states``) as a dict, in line order, read in short batches."""
        wanted = [str(s) for s in states] if states is not None else None
        if wanted == []:
            return
        where = f" AND state IN ({','.join('?' * len(wanted))})" if wanted else ""
        after = 0
        while True:
            cursor = self._db.execute(
                f"SELECT * FROM rows WHERE line > ?{where} ORDER BY line LIMIT ?", (after, *(wanted or ()), batch))
            names = [d[0] for d in cursor.description]
            found = cursor.fetchall()
            if not found:
                return
            for values in found:
                yield cast(StoredRow, dict(zip(names, values, strict=True)))
            after = found[-1][0]


def _add_seconds(db: sqlite3.Connection, seconds: list[Second]) -> None:
    """Store the timeline's seconds; a second already there (a resume within it) is added to."""
    have = {at: (orjson.loads(calls), orjson.loads(codes)) for at, calls, codes in db.execute(
        "SELECT second, calls, codes FROM timeline WHERE second >= ?", (seconds[0].at,))}
    rows = []
    for s in seconds:
        calls, codes = have.get(s.at, ({}, {}))
        calls = {k: calls.get(k, 0) + s.calls.get(k, 0) for k in {*calls, *s.calls}}
        codes = {k: codes.get(k, 0) + s.codes.get(k, 0) for k in {*codes, *s.codes}}
        rows.append((s.at, orjson.dumps(calls).decode(), orjson.dumps(codes).decode(), s.throttled, s.finished,
                     s.failed, s.p50, s.p90, s.p99, s.max, s.quota))
    worst = ", ".join(f"{c} = COALESCE(MAX({c}, excluded.{c}), {c}, excluded.{c})" for c in _PERCENTILES)
    db.executemany(
        "INSERT INTO timeline (second, calls, codes, throttled, finished, failed, p50, p90, p99, max, quota)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (second) DO UPDATE SET calls = excluded.calls,"
        " codes = excluded.codes, throttled = throttled + excluded.throttled, finished = finished + excluded.finished,"
        f" failed = failed + excluded.failed, quota = excluded.quota, {worst}", rows)


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint and its WAL, shared-memory and lock files."""
    for each in checkpoint_files(path):
        each.unlink(missing_ok=True)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level="DEFERRED")
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable against a killed process (the WAL is in the OS cache); a power cut
    # could lose the last commits: results, whose rows are then read back, but a claim is
    # synced on its own (``Checkpoint.claim``).
    db.execute("PRAGMA synchronous=NORMAL")
    # Fold the WAL back every 256 pages (1 MiB) and cut it back to that size after:
    # a million-row run keeps a WAL of about a megabyte, not of the run.
    db.execute("PRAGMA wal_autocheckpoint=256")
    db.execute("PRAGMA journal_size_limit=1048576")
    return db


def _migrate(db: sqlite3.Connection) -> None:
    present = {r[1] for r in db.execute("PRAGMA table_info(rows)")}
    with db:
        for name, decl in _ADDED.items():
            if name not in present:
                db.execute(f"ALTER TABLE rows ADD COLUMN {name} {decl}")
        # Each account's rows to send, in line order, without a scan of every other account's.
        db.execute("CREATE INDEX IF NOT EXISTS rows_by_profile ON rows (profile, line)")
