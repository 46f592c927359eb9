"""Files that are either wholly old or wholly new, never half-written.

    write_atomic(Path("keys-2026-11.csv"), data)   # mode 0600, on disk when it returns

The keys file, the failures file and the simulator's state all hold what a
crash must not corrupt, and two of them hold secrets: one helper writes them
all, to a temporary file beside the target (owner-only, as ``mkstemp``
creates it), synced, then renamed over it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .redact import error_kind

__all__ = ["LocalFault", "write_atomic"]


class LocalFault(Exception):
    """A file of ours could not be written or read back (disk full, permissions, sqlite).

    Not the service's doing and not the row's: the run stops cleanly, rows in
    flight stay ``sending``, and the same command resumes once the file is fixed.
    The message names the file and the error, never a secret.
    """

    def __init__(self, path: object, error: BaseException | str) -> None:
        # An OS error's own words (they name no file: the message does); else only the kind, never a library's text.
        reason = error if isinstance(error, str) else (getattr(error, "strerror", None) or error_kind(error))
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename itself must reach the disk too.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
