"""The run's memory: one SQLite file that survives kill -9.

    with Checkpoint.open(Path("domains.csv.ckpt")) as ckpt:   # CheckpointBusy if another run has it
        ckpt.init_meta({"action": "AddLiveSnapshotNotifyConfig", ...})
        ckpt.add_rows([(2, "a.example.com", "pending", None)])
        ckpt.claim([2])                                 # committed before the call is sent
        ckpt.record(RowResult(line=2, state="done", attempts=1, request_id="..."))
        ckpt.flush()

Rows move ``pending -> sending -> done | skipped | failed``; ``invalid``
rows never move. ``claim`` commits at once, so after a crash every row that
may have reached the service is still ``sending`` and is read back before
it is sent again. Results are buffered and committed in small batches: a
crash loses at most those, and they are exactly such ``sending`` rows.

Secrets are never written here: the input is read again on resume, and its
SHA-256 (kept in ``meta``) proves it is the same file. WAL mode lets
``bulk status`` read while a run writes. A lock file held with ``flock``
keeps a second run out; the kernel releases it when the holder dies.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Checkpoint", "CheckpointBusy", "CheckpointError", "RowResult", "STATES"]

STATES = ("pending", "sending", "done", "skipped", "failed", "invalid")
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
    finished REAL
);
"""


class CheckpointError(Exception):
    """The checkpoint cannot be used for this run (the message says why)."""


class CheckpointBusy(CheckpointError):
    """Another run holds the checkpoint."""


@dataclass(frozen=True, slots=True)
class RowResult:
    line: int
    state: str
    attempts: int
    action: str | None = None
    code: str | None = None
    message: str | None = None
    status: int | None = None
    request_id: str | None = None
    transient: bool = False


class Checkpoint:
    __slots__ = ("path", "_db", "_lock_fd", "_buffer", "_batch", "_interval", "_last_flush", "_clock")

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
        self._buffer: list[RowResult] = []
        self._batch = batch
        self._interval = interval
        self._last_flush = clock()
        self._clock = clock

    @classmethod
    def open(cls, path: Path, *, clock: Callable[[], float] = time.time) -> Checkpoint:
        """Open (or create) for writing; raise CheckpointBusy if another run holds it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise CheckpointBusy(f"checkpoint {path} is in use by another run") from None
        try:
            db = _connect(path)
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            os.close(lock_fd)
            raise CheckpointError(f"{path} is not a bulk checkpoint ({exc})") from None
        os.chmod(path, 0o600)
        return cls(path, db, lock_fd, clock=clock)

    @classmethod
    def open_readonly(cls, path: Path) -> Checkpoint:
        """Open an existing checkpoint for reading, even while a run writes it."""
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}")
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            db.execute("SELECT 1 FROM meta LIMIT 1")
        except sqlite3.DatabaseError as exc:
            raise CheckpointError(f"{path} is not a bulk checkpoint ({exc})") from None
        return cls(path, db, None)

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._lock_fd is not None:
            self.flush()
        self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- run metadata -------------------------------------------------------

    def meta(self) -> dict[str, Any] | None:
        rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {k: orjson.loads(v) for k, v in rows} if rows else None

    def set_meta(self, values: dict[str, Any]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, orjson.dumps(v).decode()) for k, v in values.items()],
            )

    # -- rows ----------------------------------------------------------------

    def add_rows(self, rows: Iterable[tuple[int, str | None, str, str | None]], *, chunk: int = 5000) -> None:
        """Insert (line, domain, state, message) rows, committing every ``chunk``."""
        sql = "INSERT OR IGNORE INTO rows (line, domain, state, message, code) VALUES (?, ?, ?, ?, ?)"
        batch: list[tuple[Any, ...]] = []
        for line, domain, state, message in rows:
            batch.append((line, domain, state, message, "InvalidRow" if state == "invalid" else None))
            if len(batch) >= chunk:
                with self._db:
                    self._db.executemany(sql, batch)
                batch.clear()
        with self._db:
            self._db.executemany(sql, batch)

    def states(self) -> Iterator[tuple[int, str, int]]:
        """(line, state, attempts) of every row, in line order."""
        return iter(self._db.execute("SELECT line, state, attempts FROM rows ORDER BY line"))

    def claim(self, lines: list[int]) -> None:
        """Mark rows as possibly reaching the service; committed before any is sent."""
        now = self._clock()
        with self._db:
            self._db.executemany(
                "UPDATE rows SET state = 'sending', started = COALESCE(started, ?) WHERE line = ?",
                [(now, line) for line in lines],
            )

    def record(self, result: RowResult) -> None:
        self._buffer.append(result)
        if len(self._buffer) >= self._batch or self._clock() - self._last_flush >= self._interval:
            self.flush()

    def flush(self) -> None:
        self._last_flush = self._clock()
        if not self._buffer:
            return
        now = self._clock()
        with self._db:
            self._db.executemany(
                "UPDATE rows SET state = ?, attempts = ?, action = ?, code = ?, message = ?, status = ?,"
                " request_id = ?, transient = ?, finished = ? WHERE line = ?",
                [
                    (r.state, r.attempts, r.action, r.code, r.message, r.status, r.request_id, int(r.transient),
                     now if r.state not in ("pending", "sending") else None, r.line)
                    for r in self._buffer
                ],
            )
        self._buffer.clear()

    def reopen_failed(self, *, all_failed: bool) -> int:
        """Put failed rows back to pending: those that gave up on transient errors, or all."""
        where = "state = 'failed'" + ("" if all_failed else " AND transient = 1")
        with self._db:
            return self._db.execute(f"UPDATE rows SET state = 'pending' WHERE {where}").rowcount

    # -- reading -------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        counts.update(self._db.execute("SELECT state, COUNT(*) FROM rows GROUP BY state").fetchall())
        return counts

    def error_counts(self) -> dict[str, int]:
        sql = "SELECT code, COUNT(*) FROM rows WHERE state IN ('failed', 'invalid') GROUP BY code ORDER BY 2 DESC"
        return dict(self._db.execute(sql).fetchall())

    def rows(self, *, states: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
        sql = "SELECT * FROM rows"
        args: list[str] = []
        if states is not None:
            args = list(states)
            sql += f" WHERE state IN ({','.join('?' * len(args))})"
        cursor = self._db.execute(sql + " ORDER BY line", args)
        names = [d[0] for d in cursor.description]
        for values in cursor:
            yield dict(zip(names, values, strict=True))


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level="DEFERRED")
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable against a killed process (the WAL is in the OS cache);
    # only a power cut could lose the last commits, and those rows are re-read.
    db.execute("PRAGMA synchronous=NORMAL")
    return db
