"""A receiver's drain counters on disk, so that a restart does not forget what it watched.

    counters = CountersFile.claim(Path("~/.local/state/bulk/receiver"))   # one receiver per directory
    counters.restore(tally)                                               # before the first callback
    await counters.keep(tally, interval=5.0)                              # saves until cancelled, then once more

A drain answer needs two things a fresh process does not have: when this
receiver first loaded each generation (``watched``), and when each domain
last called back with each generation (``still_on``). Without them, a
restarted receiver cannot say "drained" for a whole window. They are saved
every few seconds and on stop, written whole and renamed into place
(``bulk.files.write_atomic``, mode 0600: the file names every domain);
a crash loses at most the last few seconds, which only delays a verdict by
that much. The directory is claimed with a lock: two receivers sharing one
file would each restore the other's history as their own.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any, Self

import orjson

from ..errors import BulkError
from ..files import private_dir, write_atomic
from .tally import Tally

__all__ = ["COUNTERS_FILE", "CountersError", "CountersFile"]

#: the file's name in the receiver's state directory
COUNTERS_FILE = "receiver-counters.json"
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

    def restore(self, tally: Tally) -> None:
        """Put the saved first-load times and last callbacks into a fresh ``tally`` (nothing if no file yet).
        A generation keeps the earlier of the saved and the current first-load time."""
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
            loaded_at = {str(g): float(at) for g, at in data["loaded_at"].items()}
            seen = [(str(d), str(g), float(at), int(n)) for d, g, at, n in data["last_seen"]]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CountersError(f"the receiver's counters {self.path} are not in this version's shape; move the "
                                "file aside to start afresh") from None
        for generation, at in loaded_at.items():
            tally.loaded_at[generation] = min(at, tally.loaded_at.get(generation, at))
        for domain, generation, at, count in seen:
            tally.last_seen[(domain, generation)] = at
            tally.accepted[(domain, generation)] += count

    def save(self, tally: Tally) -> None:
        """Write the counters whole (mode 0600)."""
        write_atomic(self.path, orjson.dumps(_state(tally)))

    async def keep(self, tally: Tally, *, interval: float = 5.0) -> None:
        """Save every ``interval`` seconds when something changed, and once more when cancelled."""
        saved: dict[str, Any] | None = None
        try:
            while True:
                await asyncio.sleep(interval)
                state = _state(tally)
                if state != saved:
                    await asyncio.to_thread(write_atomic, self.path, orjson.dumps(state))
                    saved = state
        finally:
            self.save(tally)


def _state(tally: Tally) -> dict[str, Any]:
    return {
        "version": _VERSION,
        "loaded_at": dict(tally.loaded_at),
        "last_seen": [[d, g, at, tally.accepted[(d, g)]] for (d, g), at in sorted(tally.last_seen.items())],
    }
