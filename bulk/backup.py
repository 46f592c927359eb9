"""Each domain's state before a run first changes it: the way back for ``bulk rollback``.

    backup = Backup.open(paths.backup_path(checkpoint), complete=True)
    if backup.wants(row.domain, reached=row.reached):
        current = await read(row)                  # the read-back action's answer
        await backup.record(row.domain, current)   # on disk (fsynced) when it returns
    ...                                            # only now is the row's first write sent
    await backup.close()

The file sits next to the checkpoint (``paths.backup_path``: ``x.ckpt`` -> ``x.backup.jsonl``),
never inside it: it holds the old auth keys. It is created with mode 0600,
and every record is one JSON object of API parameters as the read showed
them, empty fields left out: ``{"DomainName": "a.example.com", "NotifyUrl":
"https://...", "NotifyReqAuth": "yes", "NotifyAuthKey": "..."}``, or the
DomainName alone for a domain that had no config, with the row's
``Profile`` when it named one. So ``bulk rollback`` reads it as an ordinary
input, and puts each domain back through its own account.

Each record reaches the disk before the row's first write is sent (one
fsync, off the event loop, covers every record written meanwhile). Hence:
a domain with a record is never read again, since a read after a possible
landing would capture our own change; and a domain without one was never
written by a run that kept a backup, so it may still be read, even if its
row was in flight when a run died, as long as every run of the checkpoint
kept a backup (``complete``). Otherwise such a row's prior state is unknown
and it gets no record.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

import orjson

from .files import LocalFault

__all__ = ["META_KEY", "Backup"]

#: checkpoint metadata: True while every run of the checkpoint kept a backup
META_KEY = "backup_complete"


class Backup:
    __slots__ = ("_complete", "_fd", "_recorded", "_synced", "_syncing", "_written", "path")

    def __init__(self, path: Path, fd: int, recorded: set[str], *, complete: bool) -> None:
        self.path = path
        self._fd = fd
        self._recorded = recorded
        self._complete = complete
        self._written = self._synced = 0
        self._syncing: asyncio.Future[None] | None = None

    @classmethod
    def open(cls, path: Path, *, complete: bool) -> Backup:
        """Open (or create, mode 0600) for appending; LocalFault if that fails.

        ``complete``: every earlier run of the checkpoint kept a backup, so a
        domain without a record was never written by any of them.
        """
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise LocalFault(path, exc) from None
        try:
            os.fchmod(fd, 0o600)  # a file that existed with wider access (copied in) is narrowed first
            recorded = _recorded(fd)
        except OSError as exc:
            os.close(fd)
            raise LocalFault(path, exc) from None
        return cls(path, fd, recorded, complete=complete)

    def wants(self, domain: str, *, reached: bool) -> bool:
        """Whether to record ``domain``'s state before writing to it.

        Not if it is recorded already; not if an earlier write may have
        landed (``reached``) unless every run kept a backup, which proves none did.
        """
        return domain not in self._recorded and (self._complete or not reached)

    async def record(self, domain: str, state: Mapping[str, str], *, profile: str | None = None) -> None:
        """Append ``domain``'s state (and the profile whose account holds it); returns once it is on disk.

        LocalFault if it cannot be.
        """
        entry = {"DomainName": domain, **{k: v for k, v in state.items() if v and k not in ("DomainName", "Profile")}}
        if profile is not None:
            entry["Profile"] = profile
        data = orjson.dumps(entry) + b"\n"
        try:
            while data:
                data = data[os.write(self._fd, data):]
        except OSError as exc:
            raise LocalFault(self.path, exc) from None
        self._written += 1
        mine = self._written
        while self._synced < mine:
            if self._syncing is None:
                self._syncing = asyncio.ensure_future(self._sync())
            # Shielded: a row cancelled while waiting must not cancel the others' fsync.
            await asyncio.shield(self._syncing)
        self._recorded.add(domain)

    async def _sync(self) -> None:
        upto = self._written
        try:
            await asyncio.to_thread(os.fsync, self._fd)
        except OSError as exc:
            raise LocalFault(self.path, exc) from None
        finally:
            self._syncing = None
        self._synced = upto

    async def close(self) -> None:
        """Wait for an fsync under way (its records must land), then close."""
        try:
            if self._syncing is not None:
                await asyncio.gather(self._syncing, return_exceptions=True)
        finally:
            os.close(self._fd)


def _recorded(fd: int) -> set[str]:
    """The domains of the records in the file; a last record cut short by a crash is dropped.

    Such a record was never fsynced, so its row's write was never sent.
    """
    recorded: set[str] = set()
    whole = 0
    with os.fdopen(os.dup(fd), "rb") as f:
        f.seek(0)
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break
            whole += len(line)
            try:
                recorded.add(orjson.loads(line)["DomainName"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                raise OSError(f"line {number} is not a backup record") from None
    if whole < os.fstat(fd).st_size:
        os.ftruncate(fd, whole)
    return recorded
