"""What reading a domain list gives: rows, bad rows, their counts, and the errors of a whole file.

    item = next(read_rows(Path("domains.csv"), action))
    if isinstance(item, BadRow):
        print(f"line {item.line}: {item.reason}")   # the reason holds no secret value

The types every part of the input layer shares, and ``shown``, which
decides what text read from a file or the command line a message may echo.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from ..credentials import fingerprint
from ..errors import BulkError

__all__ = [
    "KEY_SHAPED",
    "PROFILE",
    "BadRow",
    "ErrorGroup",
    "Format",
    "InputChanged",
    "InputError",
    "Row",
    "ValidationSummary",
    "ErrorTally",
    "detect_format",
    "file_sha256",
    "masked",
    "shown",
]

# Text shaped like these is echoed in messages; anything else might be data, even a key,
# and so is anything shaped like a key: a secret typed in the wrong place.
_NAME = re.compile(r"[A-Za-z_][A-Za-z_ -]{0,39}")
KEY_SHAPED = re.compile(r"[A-Za-z0-9]{16,32}")
# The names bulk takes for an aliyun CLI profile. Cells holding one are valid exactly as written and hold
# no comma, quote or white space, as the quick path needs (see actions.plain_values).
PROFILE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
# A key-shaped word inside a longer text: not part of a longer run of letters and digits.
_KEY_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{16,32}(?![A-Za-z0-9])")


def shown(text: str, instead: str, *, shape: re.Pattern[str] = _NAME) -> str:
    """``text`` quoted for a message, or ``instead`` when it might be a secret typed in the wrong place."""
    return repr(text) if shape.fullmatch(text) and not KEY_SHAPED.fullmatch(text) else instead


def masked(text: str) -> str:
    """``text`` with each key-shaped word (16 to 32 letters or digits) replaced by its fingerprint.

    A bad row's cells are kept as read for the checkpoint, the report and the
    failures file; a row shifted by a missing or extra cell puts its key in a
    column that is not secret, where nothing else would hide it.
    """
    return _KEY_WORD.sub(lambda m: fingerprint(m[0]), text)


class InputError(BulkError):
    """The input as a whole cannot be used; nothing is sent."""


class InputChanged(InputError):
    """``read_rows_at`` found the file is not the one its lines and offsets were taken from."""


class Format(Enum):
    """The input formats, told apart by the file's suffix (``detect_format``)."""

    CSV = "csv"
    JSONL = "jsonl"
    LIST = "list"


@dataclass(frozen=True, slots=True)
class Row:
    """A valid record: ``params`` are ready to send, ``raw`` is the record as read.

    ``domain`` is the DomainName as sent (its DNS form); ``given`` is the
    name as written when that differs. ``offset`` is the byte offset where
    the record's line starts, for ``read_rows_at``. ``profile`` is the
    aliyun CLI profile whose credentials send it (None: the run's); it is
    never among ``params``.
    """

    line: int
    domain: str
    params: dict[str, str] = field(repr=False)
    raw: dict[str, str] = field(repr=False)
    offset: int = 0
    given: str | None = None
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class BadRow:
    """A record that is never sent, and why (the reason holds no secret value).

    ``profile`` is the row's profile when that is valid, and None when the
    row names none or its Profile is what is wrong (``raw`` has it as written).
    """

    line: int
    reason: str
    domain: str | None = None
    raw: dict[str, str] | None = field(default=None, repr=False)
    offset: int = 0
    given: str | None = None
    profile: str | None = None


#: how many lines an ``ErrorGroup`` names
SHOWN_LINES = 5
# An aside that differs from row to row, "(first at line 12)": one error, whichever line it points at.
_ASIDE = re.compile(r"\s*\([^()]*\d[^()]*\)")


@dataclass(slots=True)
class ErrorGroup:
    """Bad rows that fail alike: the reason, how many, and the first few lines."""

    reason: str
    count: int = 0
    lines: list[int] = field(default_factory=list)

    def add(self, line: int) -> None:
        """Count one more row, naming its line while fewer than SHOWN_LINES are named."""
        self.count += 1
        if len(self.lines) < SHOWN_LINES:
            self.lines.append(line)

    def describe(self) -> str:
        """``4 row(s): NotifyUrl is required (lines 2, 4, 5, 7, 9, ...)``."""
        more = ", ..." if self.count > len(self.lines) else ""
        return f"{self.count} row(s): {self.reason} (line{'s' if self.count > 1 else ''} " \
               f"{', '.join(map(str, self.lines))}{more})"


class ErrorTally:
    """Bad rows counted by distinct reason as they come: memory for the reasons, not for the rows."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[str, ErrorGroup] = {}

    def add(self, line: int, reason: str) -> None:
        """Count the bad row at ``line`` under its reason (an aside such as "(first at line 4)" left out)."""
        key = _ASIDE.sub("", reason)
        (self._groups.get(key) or self._groups.setdefault(key, ErrorGroup(key))).add(line)

    def groups(self) -> list[ErrorGroup]:
        """One group per distinct reason, the most frequent first."""
        return sorted(self._groups.values(), key=lambda g: -g.count)


@dataclass(slots=True)
class ValidationSummary:
    """Every physical line of a file: ``lines == header + blank + total``."""

    #: records: valid plus bad
    total: int = 0
    valid: int = 0
    #: the first reading.KEEP_BAD bad rows
    bad: list[BadRow] = field(default_factory=list)
    bad_count: int = 0
    lines: int = 0
    #: the CSV header line, or a plain list's leading "DomainName"
    header: int = 0
    #: blank lines and comment lines
    blank: int = 0
    #: every bad row, one group per distinct reason
    errors: list[ErrorGroup] = field(default_factory=list)

    def describe(self) -> str:
        """One line of totals that adds up to the file's line count."""
        parts = [f"{self.header} header"] if self.header else []
        if self.blank:
            parts.append(f"{self.blank} blank or comment")
        parts.append(f"{self.total} rows: {self.valid} valid, {self.bad_count} invalid")
        return f"{self.lines} lines: {', '.join(parts)}"


def detect_format(path: Path) -> Format:
    """CSV for .csv, JSONL for .jsonl and .ndjson, else a plain list of domains."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return Format.CSV
    if suffix in (".jsonl", ".ndjson"):
        return Format.JSONL
    return Format.LIST


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file, recorded so that a resume can tell it changed (InputError if unreadable)."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    return digest.hexdigest()
