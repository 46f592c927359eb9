"""Domain lists in, one validated row at a time.

    action = resolve("AddLiveSnapshotNotifyConfig")
    overrides = parse_overrides(["NotifyUrl=https://cb.example.com/snap"], action)
    for item in read_rows(Path("domains.csv"), action, overrides=overrides):
        if isinstance(item, Row):
            send(item.params)
        else:
            print(f"line {item.line}: {item.reason}")

Three formats, chosen by extension: ``.csv`` (a header row naming API
parameters), ``.jsonl``/``.ndjson`` (one object per line) and anything else
as a plain list (one domain per line, ``#`` comments). UTF-8 with or without
a BOM, LF or CRLF line ends. Files are streamed: memory stays flat whatever
their size, but for 25 to 50 bytes a domain to find the ones listed twice.
Problems with the whole file raise ``InputError`` (exit 2 before any call);
problems with one row come back as a ``BadRow`` with its line number. No
message ever holds a secret value.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import re
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import orjson

from .actions import SECRET_PARAMS, Action, InvalidParams
from .credentials import fingerprint
from .files import write_atomic

__all__ = [
    "BadRow",
    "Format",
    "InputError",
    "Row",
    "ValidationSummary",
    "detect_format",
    "file_sha256",
    "parse_overrides",
    "read_rows",
    "validate_file",
    "write_rows",
]

#: bad rows a ValidationSummary keeps for display; all are counted
KEEP_BAD = 1000
# Longer physical lines are one bad row, so a file without line breaks cannot fill the memory.
_MAX_LINE = 1 << 20
_BOM = b"\xef\xbb\xbf"
_T = TypeVar("_T")
# A header cell shaped like this is echoed in messages; anything else might be data, even a key.
_SHOWABLE = re.compile(r"[A-Za-z_][A-Za-z_ -]{0,39}")


class InputError(Exception):
    """The input as a whole cannot be used; nothing is sent."""


class Format(Enum):
    CSV = "csv"
    JSONL = "jsonl"
    LIST = "list"


@dataclass(frozen=True, slots=True)
class Row:
    """A valid record: ``params`` are ready to send, ``raw`` is the record as read."""

    line: int
    domain: str
    params: dict[str, str] = field(repr=False)
    raw: dict[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class BadRow:
    """A record that is never sent, and why (the reason holds no secret value)."""

    line: int
    reason: str
    domain: str | None = None
    raw: dict[str, str] | None = field(default=None, repr=False)


@dataclass(slots=True)
class ValidationSummary:
    total: int = 0
    valid: int = 0
    #: the first KEEP_BAD bad rows
    bad: list[BadRow] = field(default_factory=list)
    bad_count: int = 0


def detect_format(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return Format.CSV
    if suffix in (".jsonl", ".ndjson"):
        return Format.JSONL
    return Format.LIST


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    return digest.hexdigest()


def parse_overrides(pairs: Sequence[str], action: Action) -> dict[str, str]:
    """``["Name=Value", ...]`` checked against the action; InputError on any mistake."""
    known = {p.name: p for p in action.params if p.name != "DomainName"}
    out: dict[str, str] = {}
    for number, pair in enumerate(pairs, 1):
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            # Not echoed: a mistyped pair may be a bare secret.
            raise InputError(f"--set number {number} is not Name=Value (e.g. --set NotifyUrl=https://cb.example.com/snap)")
        if name == "DomainName":
            raise InputError("DomainName cannot be given with --set: it comes from the input, one per row")
        param = known.get(name)
        if param is None:
            shown = repr(name) if _SHOWABLE.fullmatch(name) else f"number {number}"
            raise InputError(f"--set {shown}: {action.name} has no such parameter; it takes {', '.join(known)}")
        if name in out:
            raise InputError(f"--set {name} is given twice")
        value = value.strip()
        problem = param.check(value)
        if problem:
            secret = param.secret or name in SECRET_PARAMS
            raise InputError(f"--set {name}={fingerprint(value) if secret else repr(value)}: {name} {problem}")
        out[name] = value
    return out


def read_rows(path: Path, action: Action, *, overrides: Mapping[str, str] | None = None) -> Iterator[Row | BadRow]:
    """Every record of ``path`` in file order, validated for ``action`` with ``overrides`` applied.

    Lazy: InputError comes from the first ``next()``, before any row.
    """
    return _items(path, action, dict(overrides or {}), Row)


def validate_file(path: Path, action: Action, *, overrides: Mapping[str, str] | None = None) -> ValidationSummary:
    """Counts of valid and bad rows, and the first KEEP_BAD bad ones."""
    summary = ValidationSummary()
    # No Row is built for a valid row: a million frozen dataclasses cost a second.
    for item in _items(path, action, dict(overrides or {}), _no_row):
        summary.total += 1
        if item is None:
            summary.valid += 1
        else:
            summary.bad_count += 1
            if len(summary.bad) < KEEP_BAD:
                summary.bad.append(item)
    return summary


def write_rows(
    path: Path, fmt: Format, rows: Iterable[Mapping[str, str]], *, columns: Sequence[str] | None = None
) -> None:
    """Write rows in an input format (atomically), so that ``read_rows`` reads them back as they were.

    CSV columns are ``columns``, else the first row's keys; a row with any
    other key is a ValueError. A LIST keeps DomainName only.
    """
    out = io.StringIO(newline="")
    if fmt is Format.CSV:
        it = iter(rows)
        first = next(it, None)
        names = list(columns or (first.keys() if first else ["DomainName"]))
        # CRLF, as Excel writes: the csv module then quotes any value holding \r or \n.
        writer = csv.DictWriter(out, fieldnames=names, lineterminator="\r\n")
        writer.writeheader()
        if first is not None:
            writer.writerow(first)
            writer.writerows(it)
    elif fmt is Format.JSONL:
        for row in rows:
            out.write(orjson.dumps(dict(row)).decode())
            out.write("\n")
    else:
        for row in rows:
            out.write(row["DomainName"])
            out.write("\n")
    write_atomic(path, out.getvalue().encode())


def _no_row(line: int, domain: str, params: dict[str, str], raw: dict[str, str]) -> None:
    return None


def _items(
    path: Path, action: Action, overrides: dict[str, str], row: Callable[[int, str, dict[str, str], dict[str, str]], _T]
) -> Iterator[_T | BadRow]:
    """read_rows, with ``row(line, domain, params, raw)`` making each valid item."""
    fmt = detect_format(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        lines = _Lines(handle, path)
        if fmt is Format.CSV:
            records = _csv_records(lines, path, action, overrides)
        elif fmt is Format.JSONL:
            records = _jsonl_records(lines, overrides)
        else:
            records = _list_records(lines)
        yield from _validated(records, action, overrides, row, json_values=fmt is Format.JSONL)


# -- physical lines ----------------------------------------------------------------------------


class _Lines:
    """A binary file's lines as text, counted, BOM removed, at most _MAX_LINE bytes each.

    A line that is not UTF-8 or too long does not stop the reading: it is
    noted for the record it belongs to (``take_problem``), and the text given
    in its place is still one line, so that a CSV record spanning it stays
    whole and the records after it are read as they are.
    """

    __slots__ = ("_path", "_problem", "_read", "line")

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self._read = handle.readline
        self._path = path
        self.line = 0
        self._problem: str | None = None

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            raw = self._read(_MAX_LINE)
        except OSError as exc:
            raise InputError(f"cannot read {self._path} after line {self.line}: {exc.strerror}") from None
        if not raw:
            raise StopIteration
        self.line += 1
        if self.line == 1:
            if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise InputError(f"{self._path} is UTF-16 text; save it as UTF-8")
            if b"\r" in raw.rstrip(b"\r\n"):  # the file's first line holds them all
                raise InputError(f"{self._path} ends its lines with CR alone; save it with LF or CRLF line ends")
            raw = raw.removeprefix(_BOM)
        if len(raw) == _MAX_LINE and not raw.endswith(b"\n"):
            while (more := self._read(_MAX_LINE)) and not more.endswith(b"\n"):
                pass
            self._note(f"line {self.line} is longer than {_MAX_LINE // 1024} KiB", "is this a domain list?")
            return "\n"
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self._note(f"line {self.line} is not UTF-8 text", "save the file as UTF-8")
            # Decoded all the same so that CSV quoting still finds the record's end.
            return raw.decode("utf-8", errors="replace")

    def _note(self, reason: str, hint: str) -> None:
        if self.line == 1:
            raise InputError(f"{self._path}: {reason}; {hint}")
        if self._problem is None:
            self._problem = reason

    def take_problem(self) -> str | None:
        """The first problem since the last call, if any."""
        problem, self._problem = self._problem, None
        return problem


# -- readers: (line, record or reason) ---------------------------------------------------------

_Record = tuple[int, dict[str, Any] | str]


def _csv_records(lines: _Lines, path: Path, action: Action, overrides: Mapping[str, str]) -> Iterator[_Record]:
    # strict: a stray quote or a quoted field left open at the end is a bad record, not a guess.
    reader = csv.reader(lines, strict=True)
    header = _csv_header(reader, lines, path, action, overrides)
    width = len(header)
    start = lines.line + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            lines.take_problem()  # the CSV error is the reason given for this record
            yield start, f"unreadable CSV record: {exc}"
            start = lines.line + 1
            continue
        line, start = start, lines.line + 1
        if problem := lines.take_problem():
            yield line, problem
        elif not "".join(values).strip():
            continue
        elif len(values) == width:
            yield line, dict(zip(header, values, strict=True))
        else:
            yield line, f"has {len(values)} field(s), the header has {width}"


def _csv_header(
    reader: Iterator[list[str]], lines: _Lines, path: Path, action: Action, overrides: Mapping[str, str]
) -> list[str]:
    try:
        header: list[str] | None = next(reader, None)
        while header is not None and not "".join(header).strip():  # blank lines before it
            header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{path}: line {lines.line}: {exc}") from None
    if header is None:
        raise InputError(
            f"{path} is empty: a CSV input needs a header row naming the parameters, e.g. DomainName,NotifyUrl"
        )
    if problem := lines.take_problem():
        raise InputError(f"{path}: {problem}; the header must be UTF-8 text")
    header = [h.strip() for h in header]
    allowed = (*action.param_names, "RegionId")
    unknown = [(i, h) for i, h in enumerate(header, 1) if h not in allowed]
    if unknown:
        if "." in header[0]:
            raise InputError(
                f"{path}: line {lines.line} looks like data, not a header: a CSV input starts with a header row "
                f"naming the parameters, e.g. DomainName,NotifyUrl"
            )
        raise InputError(
            f"{path}: {'; '.join(_describe_column(i, h, allowed) for i, h in unknown)} "
            f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of {action.name}, "
            f"which takes: {', '.join(allowed)}"
        )
    if "DomainName" not in header:
        raise InputError(f"{path}: no DomainName column; {action.name} needs one domain per row")
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise InputError(f"{path}: column {', '.join(twice)} appears twice in the header")
    both = sorted(set(header) & overrides.keys())
    if both:
        raise InputError(f"{path}: {', '.join(both)} is given both by a column and by --set; keep one")
    return header


def _describe_column(index: int, name: str, allowed: Sequence[str]) -> str:
    if not name:
        return f"column {index} (no name: a trailing comma?)"
    shown = f"column {name!r}" if _SHOWABLE.fullmatch(name) else f"column {index} (name not shown)"
    close = difflib.get_close_matches(name, allowed, n=1)
    return f"{shown} (did you mean {close[0]}?)" if close else shown


def _jsonl_records(lines: _Lines, overrides: Mapping[str, str]) -> Iterator[_Record]:
    for text in lines:
        line = lines.line
        if problem := lines.take_problem():
            yield line, problem
            continue
        if not text.strip():
            continue
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError:
            yield line, "not valid JSON"
            continue
        if not isinstance(record, dict):
            yield line, "not a JSON object"
            continue
        both = sorted(record.keys() & overrides.keys())
        if both:
            yield line, f"{', '.join(both)} is given both in the row and by --set"
            continue
        yield line, record


def _list_records(lines: _Lines) -> Iterator[_Record]:
    header_seen = False
    for text in lines:
        if problem := lines.take_problem():
            yield lines.line, problem
            continue
        # A domain never holds '#', so a comment may also end a line.
        name = text.partition("#")[0].strip()
        if not name:
            continue
        if not header_seen and name == "DomainName":  # a one-column CSV saved as a list
            header_seen = True
            continue
        header_seen = True
        yield lines.line, {"DomainName": name}


# -- validation --------------------------------------------------------------------------------


class _FirstSeen:
    """64-bit digests of domain names -> the line each was first seen on.

    Two flat arrays with open addressing, 12 bytes a slot, at most half the
    slots in use: 25 to 50 bytes a domain, where a dict of Python ints would
    take about 100 (a million domains would not fit the memory goal). blake2b rather than
    ``hash()``: the verdict must not change between the run that ingests a
    file and the process that resumes it. A false "listed twice" needs two
    names with the same 64-bit digest: about 3e-8 for a million domains.
    """

    __slots__ = ("_count", "_keys", "_lines", "_mask")

    def __init__(self, size: int = 1 << 14) -> None:
        self._alloc(size)

    def _alloc(self, size: int) -> None:
        # Repeated in place: array("Q", bytes(n)) would first build a bytes object as big.
        self._keys = array("Q", [0]) * size  # 0 marks a free slot
        self._lines = array("I", [0]) * size
        self._mask = size - 1
        self._count = 0

    def first(self, name: str, line: int) -> int:
        """The line ``name`` was first seen on (``line`` itself if new)."""
        digest = hashlib.blake2b(name.lower().encode(), digest_size=8).digest()
        return self._insert(int.from_bytes(digest, "little") or 1, line)

    def _insert(self, key: int, line: int) -> int:
        keys, mask = self._keys, self._mask
        i = key & mask
        while (k := keys[i]) != 0:
            if k == key:
                return self._lines[i]
            i = (i + 1) & mask
        keys[i] = key
        self._lines[i] = line
        self._count += 1
        if self._count * 2 > len(keys):
            self._grow()
        return line

    def _grow(self) -> None:
        keys, lines = self._keys, self._lines
        self._alloc(len(keys) * 2)
        for key, line in zip(keys, lines, strict=True):
            if key:
                self._insert(key, line)


def _validated(
    records: Iterator[_Record],
    action: Action,
    overrides: Mapping[str, str],
    row: Callable[[int, str, dict[str, str], dict[str, str]], _T],
    *,
    json_values: bool,
) -> Iterator[_T | BadRow]:
    seen = _FirstSeen()
    for line, record in records:
        if isinstance(record, str):
            yield BadRow(line, record)
            continue
        raw = _as_text(record) if json_values else record
        domain = raw.get("DomainName", "").strip() or None
        try:
            params = action.validate({**record, **overrides} if overrides else record)
        except InvalidParams as exc:
            if domain:  # a domain listed twice with different mistakes is still listed twice
                seen.first(domain, line)
            yield BadRow(line, str(exc), domain, raw)
            continue
        name = params["DomainName"]
        first = seen.first(name, line)
        if first != line:
            yield BadRow(line, f"DomainName listed twice (first at line {first})", name, raw)
        else:
            yield row(line, name, params, raw)


def _as_text(record: Mapping[str, object]) -> dict[str, str]:
    """A JSON record's values as text, for a failures file (a number stays readable)."""
    return {k: v if isinstance(v, str) else "" if v is None else orjson.dumps(v).decode() for k, v in record.items()}
