"""A receiver's drain counters on disk, so that a restart does not forget what it watched.

    counters = CountersFile.claim(Path("~/.local/state/bulk/receiver"))   # one receiver per directory
    counters.restore(tally, now=time.time())                             # before the first callback
    await counters.keep(tally, clock=time.time)                          # saves until cancelled, then once more

A drain answer needs two things a fresh process does not have: when this
receiver first loaded each generation (``watched``), and when each domain
last called back with each generation (``still_on``). Without them, a
restarted receiver cannot say "drained" for a whole window. The time it was
down is time it did not watch: a restart within ``BRIDGE`` seconds moves
each generation's first-load time forward by the gap, so ``watched`` counts
only the time it listened; after a longer outage the watch starts again (the
last callbacks are kept), since a stream on the old keys may have called
back, unseen, all that time. The counters are saved every few seconds and
on stop, written whole and renamed into place
(``bulk.files.write_atomic``, mode 0600: the file names every domain);
a crash loses at most the last few seconds, which only delays a verdict by
that much. The directory is claimed with a lock: two receivers sharing one
file would each restore the other's history as their own.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import orjson

from ..errors import BulkError
from ..files import LocalFault, private_dir, write_atomic
from .tally import Tally

__all__ = ["BRIDGE", "COUNTERS_FILE", "CountersError", "CountersFile"]

log = logging.getLogger("bulk.receiver")

#: the file's name in the receiver's state directory
COUNTERS_FILE = "receiver-counters.json"
#: seconds of outage a restart may bridge and go on watching (minus the gap); past it, the watch starts again
BRIDGE = 300.0
_VERSION = 1


class CountersError(BulkError):
    """The state directory cannot be claimed, or its counters file cannot be read."""


class CountersFile:
    """The counters file of one receiver, in a directory it holds a lock on."""

    __slots__ = ("_lock", "path")

    def __init__(self, path: Path, lock: int) -> None:
        self.path = path
        self._lock = lock

    @classmethod
    def claim(cls, directory: Path) -> Self:
        """Lock ``directory`` (made 0700 if missing) for this receiver; CountersError if another holds it."""
        try:
            private_dir(directory)
            fd = os.open(directory / f"{COUNTERS_FILE}.lock",
                         os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise CountersError(f"cannot use the state directory {directory}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise CountersError(f"another receiver keeps its counters in {directory}; give each receiver its own "
                                "--state-dir") from None
        return cls(directory / COUNTERS_FILE, fd)

    def release(self) -> None:
        """Drop the lock (closing its descriptor)."""
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1

    def restore(self, tally: Tally, *, now: float) -> None:
        """Put the saved first-load times and last callbacks into a fresh ``tally`` (nothing if no file yet).
        The first-load times move forward by the time the receiver was down, or to ``now`` past ``BRIDGE``."""
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, orjson.JSONDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not JSON"
            raise CountersError(f"cannot read the receiver's counters {self.path}: {reason}; move it "
                                "aside to start afresh (drain answers then wait a full window)") from None
        try:
            if data["version"] != _VERSION:
                raise ValueError
            gap = max(0.0, now - float(data["saved_at"]))
            loaded_at = {str(g): float(at) + gap for g, at in data["loaded_at"].items()}
            seen = [(str(d), str(g), float(at), int(n)) for d, g, at, n in data["last_seen"]]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CountersError(f"the receiver's counters {self.path} are not in this version's shape; move the "
                                "file aside to start afresh") from None
        for generation, at in loaded_at.items() if gap <= BRIDGE else ():
            tally.loaded_at[generation] = min(at, tally.loaded_at.get(generation, at))
        for domain, generation, at, count in seen:
            tally.last_seen[(domain, generation)] = at
            tally.accepted[(domain, generation)] += count

    def save(self, tally: Tally, *, now: float) -> None:
        """Write the counters whole (mode 0600); a failure is logged (the file and why), not raised."""
        self._write(orjson.dumps(_state(tally, now)))

    async def keep(self, tally: Tally, *, clock: Callable[[], float], interval: float = 5.0) -> None:
        """Save every ``interval`` seconds (read on the loop, written in a thread), and once more when cancelled."""
        try:
            while True:
                await asyncio.sleep(interval)
                await asyncio.to_thread(self._write, orjson.dumps(_state(tally, clock())))
        finally:
            self.save(tally, now=clock())

    def _write(self, data: bytes) -> None:
        try:
            write_atomic(self.path, data)
        except LocalFault as exc:
            log.error("drain counters not saved: %s", exc)


def _state(tally: Tally, now: float) -> dict[str, Any]:
    return {
        "version": _VERSION,
        "saved_at": now,
        "loaded_at": dict(tally.loaded_at),
        "last_seen": [[d, g, at, tally.accepted[(d, g)]] for (d, g), at in sorted(tally.last_seen.items())],
    }
