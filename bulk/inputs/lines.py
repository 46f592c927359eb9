"""The physical lines of an input file: its encoding and line ends checked once, long lines bounded.

    with open_input(path) as handle:
        for line, offset, text, problem in read_lines(handle, path):
            ...   # problem: this line alone is bad (not UTF-8, too long); the reading goes on

A problem with the whole file (UTF-16, CR line ends, an unreadable first
line) raises InputError before any row; a problem with one line comes with
that line. ``Tally`` counts what a reading saw besides the rows it gave.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .model import InputError

__all__ = ["MAX_LINE", "Line", "Tally", "after_newline", "open_input", "read_lines"]

# Longer physical lines are one bad row, so a file without line breaks cannot fill the memory.
MAX_LINE = 1 << 20


_BOM = b"\xef\xbb\xbf"


def open_input(path: Path) -> BinaryIO:
    """``path`` opened for binary reading (InputError if it cannot be)."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def after_newline(handle: BinaryIO, offset: int) -> bool:
    """Whether ``offset`` starts a line (the byte before it is a newline); moves the handle."""
    handle.seek(offset - 1)
    return handle.read(1) == b"\n"


class Tally:
    """What a reading saw besides the rows it gave (complete once the reading is)."""

    __slots__ = ("header", "lines", "skipped", "valid")

    def __init__(self) -> None:
        self.lines = 0
        #: blank, comment and header lines
        self.skipped = 0
        self.header = 0
        #: valid rows not given (``row`` is None)
        self.valid = 0


# (line number, byte offset, text, problem): a line that is not UTF-8 or longer than MAX_LINE
# bytes comes as "" with the problem, and is one bad row: it does not stop the reading.
Line = tuple[int, int, str, str | None]


def read_lines(handle: BinaryIO, path: Path, line: int = 0, offset: int = 0, *, limit: int = -1) -> Iterator[Line]:
    """The physical lines of ``handle`` from ``offset`` on (``line`` lines before it), at most ``limit``.

    The file's first line carries the checks for the whole file.
    """
    read = handle.readline
    while limit:
        limit -= 1
        try:
            raw = read(MAX_LINE)
        except OSError as exc:
            raise InputError(f"cannot read {path} after line {line}: {exc.strerror}") from None
        if not raw:
            return
        line += 1
        start, offset = offset, offset + len(raw)
        if start == 0 or len(raw) == MAX_LINE:
            text, problem, offset = _unusual_line(handle, path, raw, line, start, offset)
            yield line, start, text, problem
            continue
        try:
            yield line, start, raw.decode("utf-8"), None
        except UnicodeDecodeError:
            yield line, start, "", f"line {line} is not UTF-8 text"


def _unusual_line(
    handle: BinaryIO, path: Path, raw: bytes, line: int, start: int, end: int
) -> tuple[str, str | None, int]:
    """A file's first line, or one of MAX_LINE bytes: (text, problem, where the next line starts)."""
    if start == 0:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise InputError(f"{path} is UTF-16 text; save it as UTF-8")
        if b"\r" in raw.rstrip(b"\r\n"):  # the file's first line holds them all
            raise InputError(f"{path} ends its lines with CR alone; save it with LF or CRLF line ends")
    if len(raw) == MAX_LINE and not raw.endswith(b"\n"):
        while more := handle.readline(MAX_LINE):
            end += len(more)
            if more.endswith(b"\n"):
                break
        problem, hint = f"line {line} is longer than {MAX_LINE // 1024} KiB", "is this a domain list?"
    else:
        try:
            return raw.removeprefix(_BOM if start == 0 else b"").decode("utf-8"), None, end
        except UnicodeDecodeError:
            problem, hint = f"line {line} is not UTF-8 text", "save the file as UTF-8"
    if start == 0:
        raise InputError(f"{path}: {problem}; {hint}")
    return "", problem, end
