"""Domain lists in, one validated row at a time.

    for item in read_rows(Path("domains.csv"), resolve("AddLiveSnapshotNotifyConfig"),
                          overrides={"NotifyUrl": "https://cb.example.com/snap"}):
        if isinstance(item, Row):
            send(item.params)
        else:
            print(f"line {item.line}: {item.reason}")

Three formats, chosen by extension: ``.csv`` (a header row naming API
parameters), ``.jsonl``/``.ndjson`` (one object per line) and anything else
as a plain list (one domain per line, ``#`` comments). Files are streamed:
memory stays flat whatever their size. Problems with the whole file raise
``InputError`` (exit 2 before any call); problems with one row come back as
a ``BadRow`` with its line number, and never contain a secret value.
"""

from __future__ import annotations

import csv
import hashlib
import io
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import orjson

from .actions import Action, InvalidParams
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

_KEEP_BAD = 1000


class InputError(Exception):
    """The input as a whole cannot be used; nothing is sent."""


class Format(Enum):
    CSV = "csv"
    JSONL = "jsonl"
    LIST = "list"


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    domain: str
    params: dict[str, str] = field(repr=False)
    raw: dict[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str
    domain: str | None = None
    raw: dict[str, str] | None = field(default=None, repr=False)


@dataclass(slots=True)
class ValidationSummary:
    total: int = 0
    valid: int = 0
    bad_count: int = 0
    bad: list[BadRow] = field(default_factory=list)


def detect_format(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return Format.CSV
    if suffix in (".jsonl", ".ndjson"):
        return Format.JSONL
    return Format.LIST


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def parse_overrides(pairs: Sequence[str], action: Action) -> dict[str, str]:
    """``["Name=Value", ...]`` checked against the action; InputError on any mistake."""
    known = {p.name: p for p in action.params}
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--set takes Name=Value, got {pair.split('=')[0]!r}")
        param = known.get(name)
        if param is None:
            raise InputError(f"--set {name}: {action.name} has no such parameter (it has {', '.join(known)})")
        value = value.strip()
        problem = param.check(value)
        if problem:
            shown = fingerprint(value) if param.secret else repr(value)
            raise InputError(f"--set {name}={shown}: {name} {problem}")
        out[name] = value
    return out


def read_rows(path: Path, action: Action, *, overrides: Mapping[str, str] | None = None) -> Iterator[Row | BadRow]:
    """Every record of ``path``, validated for ``action`` with ``overrides`` applied."""
    overrides = dict(overrides or {})
    fmt = detect_format(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        if fmt is Format.CSV:
            records = _csv_records(handle, path, action, overrides)
        elif fmt is Format.JSONL:
            records = _jsonl_records(handle, overrides)
        else:
            records = _list_records(handle)
        yield from _validated(records, action, overrides)


def validate_file(path: Path, action: Action, *, overrides: Mapping[str, str] | None = None) -> ValidationSummary:
    summary = ValidationSummary()
    for item in read_rows(path, action, overrides=overrides):
        summary.total += 1
        if isinstance(item, Row):
            summary.valid += 1
        else:
            summary.bad_count += 1
            if len(summary.bad) < _KEEP_BAD:
                summary.bad.append(item)
    return summary


def write_rows(
    path: Path, fmt: Format, rows: Iterable[Mapping[str, str]], *, columns: Sequence[str] | None = None
) -> None:
    """Write rows in an input format (atomically), so that they can be read back as input."""
    out = io.StringIO(newline="")
    if fmt is Format.CSV:
        rows = list(rows)
        names = list(columns or (rows[0].keys() if rows else ["DomainName"]))
        writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    elif fmt is Format.JSONL:
        for row in rows:
            out.write(orjson.dumps(dict(row)).decode() + "\n")
    else:
        for row in rows:
            out.write(row["DomainName"] + "\n")
    write_atomic(path, out.getvalue().encode())


# -- readers: (line, record or reason) ---------------------------------------------------------

_Record = tuple[int, dict[str, str] | str]


def _csv_records(handle: object, path: Path, action: Action, overrides: Mapping[str, str]) -> Iterator[_Record]:
    # Undecodable bytes become lone surrogates, so that one bad line is one bad row, not a dead file.
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="", errors="surrogateescape")  # type: ignore[arg-type]
    reader = csv.reader(text)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{path}: line 1: {exc}") from None
    if not header:
        raise InputError(f"{path} is empty: a CSV input needs a header row naming the parameters")
    if not _is_utf8(header):
        raise InputError(f"{path} is not UTF-8 text")
    header = [h.strip() for h in header]
    allowed = set(action.param_names) | {"RegionId"}
    unknown = [h for h in header if h not in allowed]
    if unknown:
        raise InputError(
            f"{path}: column(s) {', '.join(map(repr, unknown))} are not parameters of {action.name} "
            f"(expected: {', '.join(action.param_names)})"
        )
    if "DomainName" not in header:
        raise InputError(f"{path}: no DomainName column")
    both = sorted(set(header) & set(overrides))
    if both:
        raise InputError(f"{path}: {', '.join(both)} given both by a column and by --set; keep one")
    if len(set(header)) != len(header):
        raise InputError(f"{path}: a column name appears twice in the header")
    start = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"unreadable CSV record: {exc}"
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not values or all(not v.strip() for v in values):
            continue
        if not _is_utf8(values):
            yield line, "not UTF-8 text"
            continue
        if len(values) != len(header):
            yield line, f"has {len(values)} field(s), the header has {len(header)}"
            continue
        yield line, dict(zip(header, values, strict=True))


def _is_utf8(values: list[str]) -> bool:
    joined = "".join(values)
    if joined.isascii():
        return True
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: bytes that were not UTF-8
        return False
    return True


def _jsonl_records(handle: Iterable[bytes], overrides: Mapping[str, str]) -> Iterator[_Record]:
    for line, raw in enumerate(handle, 1):
        if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            yield line, "not valid JSON"
            continue
        if not isinstance(record, dict):
            yield line, "not a JSON object"
            continue
        both = sorted(set(record) & set(overrides))
        if both:
            yield line, f"{', '.join(both)} given both in the row and by --set"
            continue
        yield line, record


def _list_records(handle: Iterable[bytes]) -> Iterator[_Record]:
    for line, raw in enumerate(handle, 1):
        if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            yield line, "not UTF-8 text"
            continue
        if text and not text.startswith("#"):
            yield line, {"DomainName": text}


class _FirstSeen:
    """64-bit digests of domain names -> the line they first appeared on.

    Two flat arrays with open addressing: 12 bytes an entry at most twice
    over, where a dict of Python ints takes about 100 bytes an entry (a
    million domains would not fit the memory goal).
    """

    __slots__ = ("_keys", "_lines", "_mask", "_count")

    def __init__(self, size: int = 1 << 16) -> None:
        self._alloc(size)

    def _alloc(self, size: int) -> None:
        self._keys = array("Q", bytes(8 * size))  # 0 marks a free slot
        self._lines = array("I", bytes(4 * size))
        self._mask = size - 1
        self._count = 0

    def first(self, name: str, line: int) -> int:
        """The line ``name`` was first seen on (``line`` itself if new)."""
        key = int.from_bytes(hashlib.blake2b(name.lower().encode(), digest_size=8).digest()) or 1
        return self._insert(key, line)

    def _insert(self, key: int, line: int) -> int:
        keys, i = self._keys, key & self._mask
        while (k := keys[i]) != 0:
            if k == key:
                return self._lines[i]
            i = (i + 1) & self._mask
        keys[i], self._lines[i] = key, line
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


def _validated(records: Iterator[_Record], action: Action, overrides: Mapping[str, str]) -> Iterator[Row | BadRow]:
    seen = _FirstSeen()
    for line, record in records:
        if isinstance(record, str):
            yield BadRow(line, record)
            continue
        domain = record.get("DomainName")
        domain = domain.strip() if isinstance(domain, str) else None
        try:
            params = action.validate({**record, **overrides})
        except InvalidParams as exc:
            yield BadRow(line, str(exc), domain, _as_text(record))
            continue
        first = seen.first(params["DomainName"], line)
        if first != line:
            yield BadRow(line, f"DomainName listed twice (first at line {first})", domain, _as_text(record))
            continue
        yield Row(line, params["DomainName"], params, _as_text(record))


def _as_text(record: Mapping[str, object]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in record.items()}
