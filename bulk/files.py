"""Our files: either wholly old or wholly new, or appended to; never through a planted link, never readable by others.

    write_atomic(Path("keys-2026-11.csv"), data)   # mode 0600, on disk when it returns
    with atomic_file(Path("report.csv")) as out:   # the same, written as it goes
        out.write(b"line,domain\n")
    log = open_append(Path("calls.log"))           # O_APPEND, mode 0600; UnsafeFile if others could read it

The keys file, the failures file, reports, plans and the simulator's state
hold what a crash must not corrupt, and some hold secrets: a file written
whole goes to a temporary file beside the target (``mkstemp``: mode 0600,
``O_EXCL``, which never follows a link), synced, then renamed over it; a
link planted at the target is replaced, its own target left alone. A file
appended across runs (``--log-file``) is opened with ``O_NOFOLLOW`` and
created 0600; one that exists with looser modes, or belongs to another
user, is refused rather than trusted or silently narrowed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .errors import BulkError, Exit, UsageError
from .redact import error_kind

__all__ = ["LocalFault", "UnsafeFile", "atomic_file", "check_writable", "open_append", "private_dir", "write_atomic"]


class LocalFault(BulkError):
    """A file of ours could not be written or read back (disk full, permissions, sqlite).

    Not the service's doing and not the row's: the run stops cleanly, rows in
    flight stay ``sending``, and the same command resumes once the file is fixed.
    The message names the file and the error, never a secret.
    """

    exit_code = Exit.INTERRUPTED

    def __init__(self, path: object, error: BaseException | str) -> None:
        # An OS error's own words (they name no file: the message does); else only the kind, never a library's text.
        reason = error if isinstance(error, str) else (getattr(error, "strerror", None) or error_kind(error))
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path


class UnsafeFile(BulkError):
    """A file to append to exists with modes looser than 0600, or another user's: nothing was written to it."""


def private_dir(path: Path) -> None:
    """Make directory ``path`` with any missing parent, each one made owner-only (0700); existing ones are left as
    they are. A run's state directory holds backups, and so the keys a rotation replaced."""
    missing: list[Path] = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another run made it meanwhile
            each.mkdir(mode=0o700)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``path`` whole (mode 0600): a reader sees the old file or the new one, never half of it."""
    with atomic_file(path, mode=mode) as out:
        out.write(data)


@contextlib.contextmanager
def atomic_file(path: Path, *, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A file to write ``path`` with; it replaces ``path`` (synced, mode 0600) only if the block ends without error.

    A write that fails (a full disk, a folder that is a file) is a LocalFault naming ``path``; the old file stays.
    ``mode``: another mode, for a file that holds nothing secret and that another user's process must read
    (a metrics textfile, which node_exporter reads).
    """
    try:
        private_dir(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600, O_EXCL | O_NOFOLLOW
    except OSError as exc:
        raise LocalFault(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as out:
            if mode != 0o600:
                os.fchmod(out.fileno(), mode)
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise LocalFault(path, exc) from None
        raise
    # The rename itself must reach the disk too.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def check_writable(path: Path) -> None:
    """UsageError unless a file can be written at ``path``: checked before a run sends its first call."""
    try:
        private_dir(path.parent)  # a missing folder made owner-only, as a run's state directory is
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or error_kind(exc)} (a parent is not a folder "
                         "that can be made)") from None
    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: {path.parent} is not a folder")
    if path.is_dir():
        raise UsageError(f"cannot write {path}: it is a folder")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write {path}: its folder {path.parent} is not writable")


def open_append(path: Path) -> BinaryIO:
    """``path`` opened to append (created 0600), never through a link; UnsafeFile if others may read or own it.

    Any other OSError as ``open`` raises it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(f"{path} is a symbolic link, which is not followed; give the file itself") from None
        raise
    try:
        info = os.fstat(fd)
        if stat.S_ISCHR(info.st_mode):
            return os.fdopen(fd, "ab")  # a device (/dev/null, a terminal) keeps nothing for others to read
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise UnsafeFile(f"{path} belongs to another user (uid {info.st_uid}); give a file of your own")
        if info.st_mode & 0o077:
            raise UnsafeFile(f"{path} has mode {stat.S_IMODE(info.st_mode):04o}, and others may read it; "
                             f"make it 0600 (chmod 600 {path}) or give another file")
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise
