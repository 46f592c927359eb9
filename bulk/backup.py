"""Each domain's state right before a run's write changed it: the way back for ``bulk rollback``.

    backup = Backup.open(paths.backup_path(checkpoint), complete=True, identity=meta[IDENTITY_KEY],
                         claimed=ckpt.claimed(), keep=lambda identity: ckpt.set_meta({IDENTITY_KEY: identity}))
    if backup.wants(row.domain, reached=row.reached):
        current = await read(row)                  # the read-back action's answer
        await backup.record(row.domain, current, region="cn-shanghai", wrote=action.expect(params))
    ...                                            # only now is the row's write sent
    await backup.close()
    priors = read_backup(path, meta.get(IDENTITY_KEY))   # the latest record per domain (bulk rollback)

The file sits next to the checkpoint (``paths.backup_path``: ``x.ckpt`` ->
``x.backup.jsonl``), never inside it: it holds the old auth keys. It is
created with mode 0600. Its first line says whose it is and how long to keep
it (``{"Backup": "<random id>", "Created": ..., "Keep": ...}``); every other
line is one domain's state as the read showed it, empty fields left out,
with the RegionId its row was sent with, the row's ``Profile`` if it named
one, and ``Wrote``: what the run's write sets (the read-back action's fields,
``""`` for a field it clears, a key as its fingerprint: the new keys are
not kept here), so that a rollback can tell whether the domain still holds it.

The checkpoint records the file's identity: its id, committed before the
file is made (``new_identity``), and how many records it holds, committed at
the end of each run (a run killed midway leaves a lower count, never a
higher one; and its claimed rows show that records may have been made). A resume or a rollback
refuses a backup file that is missing, or another one, before any call
(``BackupError``), rather than take our own change for the prior state.

Each record reaches the disk before the row's write is sent (the records
made meanwhile are written and synced together, off the event loop: one
write and one fsync for them all). A domain is read and recorded again
whenever its earlier writes provably did not land (the row was never
``reached``): another client may have changed it since, and the backup must
be the state just before the write that changed it. A row a dead run left
claimed had its write sent only if that run recorded its domain after the
claim: each claim carries the backup's ``mark`` (records on disk then), and
``written_since`` tells. Once a write may have landed, the earliest record is
kept (a read after it could capture our own change), unless a read shows
neither the recorded state nor the row's change: another client changed it
since, and it is recorded again (``wants``). A domain without a record was
never written by a run that kept a backup, so it may still be read even if
its row was in flight when a run died, as long as every run of the
checkpoint kept one (``complete``); otherwise its prior state is unknown and
it gets no record.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .checkpoint import CheckpointError
from .credentials import fingerprint
from .files import LocalFault
from .redact import SECRET_NAMES

__all__ = ["IDENTITY_KEY", "KEEP", "META_KEY", "Backup", "BackupError", "BackupState", "Prior", "as_kept",
           "backup_state", "check_backup", "new_identity", "read_backup"]

#: checkpoint metadata: True while every run of the checkpoint kept a backup
META_KEY = "backup_complete"
#: checkpoint metadata: the backup file's identity, ``{"id": "...", "records": n}``
IDENTITY_KEY = "backup"
#: how long to keep a backup, as its first line and the end of a run say
KEEP = "keep this file, mode 0600, for as long as the run may have to be rolled back (bulk rollback needs it)"


class BackupError(CheckpointError):
    """The backup file is missing or is not the one the checkpoint's runs wrote: nothing was sent."""


@dataclass(frozen=True, slots=True)
class Prior:
    """One domain's record: its state before the run's write, where it was sent, and what the write sets."""

    domain: str
    #: the fields the read showed (empty ones left out)
    state: dict[str, str]
    #: the RegionId the row was sent with (None: the client's default, when it had none)
    region: str | None
    profile: str | None
    #: the read-back fields the write sets ("" for one it clears; a secret as its fingerprint)
    wrote: dict[str, str]


class Backup:
    """The backup of one checkpoint, open for appending (``open``, then ``record`` per domain, then ``close``)."""

    __slots__ = ("_broken", "_complete", "_counted", "_fd", "_id", "_keep", "_latest", "_queued", "_synced",
                 "_syncing", "_written", "path")

    def __init__(self, path: Path, fd: int, ident: str, latest: dict[str, tuple[int, int]], count: int, *,
                 complete: bool, keep: Callable[[dict[str, Any]], None]) -> None:
        self.path = path
        self._fd = fd
        self._id = ident
        #: each recorded domain's latest record: its place in the file (0 for the first record), and ``_seen``
        #: of the state it holds
        self._latest = latest
        self._complete = complete
        self._keep = keep
        #: the records the checkpoint counts (committed at close)
        self._written = self._synced = self._counted = count
        self._syncing: asyncio.Future[None] | None = None
        #: records made since the last write: the next sync writes them, then syncs them, off the event loop
        self._queued: list[bytes] = []
        #: why a sync failed: its records were dropped, so no later one is made (the count and marks would pass
        #: the records on disk)
        self._broken: OSError | None = None

    @classmethod
    def open(cls, path: Path, *, complete: bool, identity: Mapping[str, Any], claimed: bool,
             keep: Callable[[dict[str, Any]], None]) -> Backup:
        """Open (or create, mode 0600) for appending.

        ``complete``: every earlier run of the checkpoint kept a backup, so a
        domain without a record was never written by any of them.
        ``identity``: what the checkpoint records of the file (``new_identity``
        before it is made); ``claimed``: a run of the checkpoint claimed rows
        (then records may have been made, and a missing file is refused even
        if none was counted yet); ``keep`` commits the count of records to the
        checkpoint at close. BackupError if the file is missing or another (a
        file left by another run included); LocalFault if it cannot be read or
        written.
        """
        ident, count = str(identity["id"]), int(identity["records"])
        if count == 0 and not claimed:
            # No record was ever made: no file yet, or one a kill cut short while its first line was written
            # (started again in place: the path may be a mount point, or a file the operator placed there).
            cut = path.is_file() and not path.is_symlink() and b"\n" not in _head(path)
            if cut or not path.exists():
                return cls._create(path, ident, complete=complete, keep=keep, again=cut)
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise BackupError(_missing(path, count)) from None
        except OSError as exc:
            raise LocalFault(path, exc) from None
        try:
            os.fchmod(fd, 0o600)  # a file that existed with wider access (copied in) is narrowed first
            found, records = _scan(fd, path, truncate=True)
            _check(path, found, records, ident, count)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, ident, {r.domain: (i, _seen(r.state)) for i, r in enumerate(records)}, len(records),
                   complete=complete, keep=keep)

    @classmethod
    def _create(cls, path: Path, ident: str, *, complete: bool, keep: Callable[[dict[str, Any]], None],
                again: bool = False) -> Backup:
        header = {"Backup": ident, "Created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "Keep": KEEP}
        fresh = os.O_TRUNC if again else os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(path, os.O_RDWR | fresh | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise LocalFault(path, exc) from None
        try:
            os.fchmod(fd, 0o600)  # a file started again in place keeps its mode otherwise
            _write(fd, orjson.dumps(header) + b"\n")
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            raise LocalFault(path, exc) from None
        return cls(path, fd, ident, {}, 0, complete=complete, keep=keep)

    def wants(self, domain: str, *, reached: bool, current: Mapping[str, str] | None = None) -> bool:
        """Whether to record ``domain``'s state before writing to it.

        Always when no earlier write of the row may have landed: the state
        may have changed since any earlier record. Once one may have, a
        domain without a record, only if every run kept a backup (which
        proves none of its writes landed before); and, given the state a read
        shows now (``current``: a forward run's read, which does not hold the
        row's change), a domain whose state is no longer the one recorded:
        another client changed it since, whether our write landed before or
        never did, and a rollback must not undo their change.
        """
        if not reached:
            return True
        latest = self._latest.get(domain)
        if latest is None:
            return self._complete
        return current is not None and latest[1] != _seen(current)

    async def theirs(self, domain: str, current: Mapping[str, str]) -> dict[str, str]:
        """``current`` with our own change taken out, to record once ``wants`` saw another client's change
        after a write of ours that may have landed: each field that still holds what the write after
        ``domain``'s latest record set gets that record's value back (their fields stay theirs, ours go back
        to what we replaced), once the new key that write set proves it landed. Reads the file, off the event
        loop: only such rows call it."""
        try:
            _, records = await asyncio.to_thread(_scan, self._fd, self.path, truncate=False)
        except OSError as exc:
            raise LocalFault(self.path, exc) from None
        prior = next((r for r in reversed(records) if r.domain == domain), None)
        if prior is None:
            return dict(current)
        ours = [f for f, v in prior.wrote.items() if as_kept(f, current.get(f, "")) == v]
        if not any(f in SECRET_NAMES and prior.wrote[f] for f in ours):
            return dict(current)  # nothing proves our write landed: a field alike (a yes, a URL) may be theirs
        return {**current, **{f: prior.state.get(f, "") for f in ours}}

    @property
    def mark(self) -> int:
        """The records on disk now; a row claimed at this mark goes with it (``written_since``)."""
        return self._synced

    def written_since(self, domain: str, mark: int) -> bool:
        """Whether a write to ``domain`` may have been sent since the file held ``mark`` records.

        For a row a dead run left claimed at ``mark``: its read and record come
        before its write, and a row never reached is always recorded, so no
        record of its domain past the mark proves the run sent nothing to it.
        """
        return domain in self._latest and self._latest[domain][0] >= mark

    async def record(self, domain: str, state: Mapping[str, str], *, region: str | None,
                     wrote: Mapping[str, str], profile: str | None = None) -> None:
        """Append ``domain``'s state, the region its row is sent to and what its write sets.

        Returns once the record is on disk; LocalFault if it cannot be, or if an earlier sync failed.
        """
        entry: dict[str, Any] = {
            "DomainName": domain, **{k: v for k, v in state.items() if v and k not in ("DomainName", "Profile")}}
        if region:
            entry["RegionId"] = region
        if profile is not None:
            entry["Profile"] = profile
        # What our write set, each secret as its fingerprint: enough to tell it apart, and no new key kept here.
        entry["Wrote"] = {k: as_kept(k, v) for k, v in wrote.items()}
        self._queued.append(orjson.dumps(entry))
        self._written += 1
        mine = self._written
        while self._synced < mine:
            if self._syncing is None:
                if self._broken is not None:  # its records were dropped: one written now would pass the count
                    raise LocalFault(self.path, self._broken)
                self._syncing = asyncio.ensure_future(self._sync())
            # Shielded: a row cancelled while waiting must not cancel the others' fsync.
            await asyncio.shield(self._syncing)
        self._latest[domain] = (mine - 1, _seen(state))

    async def _sync(self) -> None:
        """Write the records queued so far and sync them, in one hand-off to a thread (one fsync covers them all)."""
        upto, data = self._written, b"\n".join(self._queued) + b"\n"
        self._queued = []
        try:
            await asyncio.to_thread(_write_and_sync, self._fd, data)
        except OSError as exc:
            self._broken = exc
            raise LocalFault(self.path, exc) from None
        finally:
            self._syncing = None
        self._synced = upto

    async def close(self) -> None:
        """Wait for a sync under way (its records must land), have the checkpoint count them, then close.

        Records still queued belong to rows that stopped before their write was sent: they are not written.

        LocalFault if the checkpoint cannot be written.
        """
        try:
            if self._syncing is not None:
                await asyncio.gather(self._syncing, return_exceptions=True)
            if self._synced > self._counted:
                self._keep({"id": self._id, "records": self._synced})
        finally:
            os.close(self._fd)


def new_identity() -> dict[str, Any]:
    """The identity of a backup file still to be made (committed to the checkpoint before it is)."""
    return {"id": secrets.token_hex(16), "records": 0}


def read_backup(path: Path, identity: Mapping[str, Any] | None) -> dict[str, Prior]:
    """The latest record of each domain in the backup the checkpoint's ``identity`` names.

    BackupError if the file is missing or is not that one; LocalFault if it cannot be read.
    """
    if identity is None:
        raise BackupError(f"the checkpoint records no backup file, so {path} cannot be trusted as its runs' "
                          "prior states")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise BackupError(_missing(path, int(identity["records"]))) from None
    except OSError as exc:
        raise LocalFault(path, exc) from None
    try:
        found, records = _scan(fd, path, truncate=False)
    finally:
        os.close(fd)
    _check(path, found, records, str(identity["id"]), int(identity["records"]))
    return {r.domain: r for r in records}  # a later record of a domain replaces an earlier one


def check_backup(path: Path, identity: Mapping[str, Any] | None, *, claimed: bool) -> None:
    """BackupError if the backup the checkpoint names is missing or another file (nothing to check: none yet)."""
    if identity is not None and (int(identity["records"]) or claimed or path.exists()):
        read_backup(path, identity)


@dataclass(frozen=True, slots=True)
class BackupState:
    """What ``bulk status`` says of a run's backup."""

    path: Path
    #: "none" (no run kept one, or none recorded anything yet), "kept", "missing" or "differs"
    state: str
    records: int
    #: why it cannot be used (missing or differs)
    problem: str | None = None


def backup_state(path: Path, identity: Mapping[str, Any] | None, *, claimed: bool) -> BackupState:
    """Whether the backup the checkpoint names is still there, whole and the same (``claimed``: as for ``open``)."""
    if identity is None or not (path.exists() or int(identity["records"]) or claimed):
        return BackupState(path, "none", 0)
    try:
        records = len(read_backup(path, identity))
    except BackupError as exc:
        return BackupState(path, "missing" if not path.exists() else "differs", 0, str(exc))
    except LocalFault as exc:
        return BackupState(path, "differs", 0, str(exc))
    return BackupState(path, "kept", records)


def _missing(path: Path, count: int) -> str:
    return (f"the backup file {path} is missing (the checkpoint counted {count} record(s) in it): without it the "
            "run cannot be rolled back, and a new one would record our own changes as the prior state; put it "
            "back, resume with --no-backup to go on without a way back, or start over with a new --checkpoint")


def _check(path: Path, found: str | None, records: list[Prior], ident: str, count: int) -> None:
    if found != ident:
        raise BackupError(f"{path} is not the backup this checkpoint's runs wrote (its id differs); put the right "
                          "file back, or start over with a new --checkpoint")
    if len(records) < count:
        raise BackupError(f"{path} holds {len(records)} record(s), the checkpoint counted {count}: it is not the "
                          "whole backup; put the right file back, or start over with a new --checkpoint")


def _head(path: Path) -> bytes:
    """The first bytes of ``path`` (enough to hold its first line); LocalFault if it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            return os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError as exc:
        raise LocalFault(path, exc) from None


def as_kept(field: str, value: str) -> str:
    """A value as a backup keeps what a write set: a secret as its fingerprint."""
    return fingerprint(value) if value and field in SECRET_NAMES else value


def _seen(state: Mapping[str, str]) -> int:
    """A domain's state as a record holds it (empty fields left out), reduced to compare it with another."""
    return hash(frozenset((k, v) for k, v in state.items() if v and k not in ("DomainName", "Profile")))


def _write(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _write_and_sync(fd: int, data: bytes) -> None:
    _write(fd, data)
    os.fsync(fd)


def _scan(fd: int, path: Path, *, truncate: bool) -> tuple[str | None, list[Prior]]:
    """The file's id and records; a last line cut short by a crash is dropped (and cut off if ``truncate``).

    Such a record was never fsynced, so its row's write was never sent.
    """
    ident: str | None = None
    records: list[Prior] = []
    whole = 0
    with os.fdopen(os.dup(fd), "rb") as f:
        f.seek(0)
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break
            whole += len(line)
            try:
                entry = orjson.loads(line)
                if number == 1:
                    ident = str(entry["Backup"])
                    continue
                records.append(_prior(entry))
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise BackupError(f"{path}: line {number} is not a backup record") from None
    if truncate and whole < os.fstat(fd).st_size:
        try:
            os.ftruncate(fd, whole)
        except OSError as exc:
            raise LocalFault(path, exc) from None
    return ident, records


def _prior(entry: dict[str, Any]) -> Prior:
    wrote = entry.pop("Wrote")
    region, profile = entry.pop("RegionId", None), entry.pop("Profile", None)
    if not isinstance(wrote, dict) or not all(isinstance(v, str) for v in (*entry.values(), *wrote.values())):
        raise TypeError("not a backup record")
    return Prior(entry["DomainName"], entry, region, profile, wrote)
