"""Domain lists in, one validated row at a time.

    action = resolve("AddLiveSnapshotNotifyConfig")
    overrides = parse_overrides(["NotifyUrl=https://cb.example.com/snap", "NotifyAuthKey=@/run/secrets/key"], action)
    for item in read_rows(Path("domains.csv"), action, overrides=overrides):
        if isinstance(item, Row):
            send(item.params)
        else:
            print(f"line {item.line}: {item.reason}")

Three formats, chosen by extension: ``.csv`` (a header row naming API
parameters), ``.jsonl``/``.ndjson`` (one object per line) and anything else
as a plain list (one domain per line, ``#`` comments). UTF-8 with or without
a BOM, LF or CRLF line ends. No parameter can hold a line break, so each
record is exactly one physical line: a CSV quote left open makes that line
bad and reading goes on with the next one. Every physical line is a row, a
bad row, or a blank, comment or header line, and ``validate_file`` counts
each kind. Domain names are compared and sent in their DNS form (see
``actions.normalize_domain``); a ``RegionId`` column is checked and sent per
row; a ``Profile`` column names the aliyun CLI profile whose credentials send
the row (checked against the names the caller passes as ``profiles``, and
never sent). Files are streamed: memory stays flat whatever their size, but for 25
to 50 bytes a domain to find the ones listed twice. ``read_rows_at`` re-reads
chosen lines by their byte offsets, for a resume. Problems with the whole
file raise ``InputError`` (exit 2 before any call); problems with one row
come back as a ``BadRow`` with its line number. No message ever holds a
secret value.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import itertools
import os
import re
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import orjson

from .actions import SECRET_PARAMS, Action, InvalidParams, Param, check_region, normalize_domain, plain_values
from .credentials import fingerprint
from .files import write_atomic

__all__ = [
    "BadRow",
    "Format",
    "InputChanged",
    "InputError",
    "Row",
    "ValidationSummary",
    "detect_format",
    "file_sha256",
    "literal_secrets",
    "parse_overrides",
    "read_rows",
    "read_rows_at",
    "validate_file",
    "write_rows",
]

#: bad rows a ValidationSummary keeps for display; all are counted
KEEP_BAD = 1000
# Longer physical lines are one bad row, so a file without line breaks cannot fill the memory.
_MAX_LINE = 1 << 20
# A --set value read from a file is one value: a key or a URL, not a document.
_MAX_VALUE_FILE = 8192
_BOM = b"\xef\xbb\xbf"
_T = TypeVar("_T")
# Text shaped like these is echoed in messages; anything else might be data, even a key,
# and so is anything shaped like a key: a secret typed in the wrong place.
_NAME = re.compile(r"[A-Za-z_][A-Za-z_ -]{0,39}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_PATH = re.compile(r"[^\x00-\x1f\x7f]{1,4096}")
_KEY_SHAPED = re.compile(r"[A-Za-z0-9]{16,32}")
# The names bulk takes for an aliyun CLI profile. Cells holding one are valid exactly as written and hold
# no comma, quote or white space, as the quick path needs (see actions.plain_values).
_PROFILE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class InputError(Exception):
    """The input as a whole cannot be used; nothing is sent."""


class InputChanged(InputError):
    """``read_rows_at`` found the file is not the one its lines and offsets were taken from."""


class Format(Enum):
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


@dataclass(slots=True)
class ValidationSummary:
    """Every physical line of a file: ``lines == header + blank + total``."""

    #: records: valid plus bad
    total: int = 0
    valid: int = 0
    #: the first KEEP_BAD bad rows
    bad: list[BadRow] = field(default_factory=list)
    bad_count: int = 0
    lines: int = 0
    #: the CSV header line, or a plain list's leading "DomainName"
    header: int = 0
    #: blank lines and comment lines
    blank: int = 0

    def describe(self) -> str:
        """One line of totals that adds up to the file's line count."""
        parts = [f"{self.header} header"] if self.header else []
        if self.blank:
            parts.append(f"{self.blank} blank or comment")
        parts.append(f"{self.total} rows: {self.valid} valid, {self.bad_count} invalid")
        return f"{self.lines} lines: {', '.join(parts)}"


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


# -- overrides ---------------------------------------------------------------------------------


def parse_overrides(
    pairs: Sequence[str], action: Action, *, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """``["Name=Value", ...]`` checked against the action; InputError on any mistake.

    A value ``@PATH`` is read from that file and ``@env:VARIABLE`` from
    ``environ``: no parameter of these actions can start with ``@``, so
    neither form is ambiguous. Whitespace around any value is dropped, a
    file's trailing line break too (as curl and httpie drop it). No message
    shows a secret value, nor a file's content.
    """
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
        if name == "RegionId":
            raise InputError("--set RegionId: no such parameter for --set; give --region for the run, "
                             "or a RegionId column for each row")
        if name == "Profile":
            raise InputError("--set Profile: no such parameter for --set; give --profile for the run, "
                             "or a Profile column for each row")
        param = known.get(name)
        if param is None:
            raise InputError(f"--set {_shown(name, f'number {number}')}: {action.name} has no such parameter; "
                             f"it takes {', '.join(known)}")
        if name in out:
            raise InputError(f"--set {name} is given twice")
        value = _value_of(name, value.strip(), environ).strip()
        problem = param.check(value)
        if problem:
            raise InputError(f"--set {name}={_shown_value(param, value)}: {name} {problem}")
        out[name] = value
    return out


def literal_secrets(pairs: Sequence[str], action: Action) -> list[str]:
    """Secret parameters among ``pairs`` given as a literal value (visible in ``ps`` and shell history)."""
    names: list[str] = []
    secret = action.secret_names | SECRET_PARAMS
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if sep and name in secret and value and not value.startswith("@") and name not in names:
            names.append(name)
    return names


def _value_of(name: str, value: str, environ: Mapping[str, str]) -> str:
    """A --set value, read from a file or the environment when it says so."""
    if not value.startswith("@"):
        return value
    if value.startswith("@env:"):
        variable = value[5:]
        shown = _shown(variable, "(name not shown)", shape=_VARIABLE)
        if not variable:
            raise InputError(f"--set {name}=@env: names no environment variable (e.g. {name}=@env:BULK_{name.upper()})")
        if variable not in environ:
            raise InputError(f"--set {name}: environment variable {shown} is not set")
        if not environ[variable].strip():
            raise InputError(f"--set {name}: environment variable {shown} is empty")
        return environ[variable]
    path = value[1:]
    if not path:
        raise InputError(f"--set {name}=@ names no file (e.g. {name}=@/run/secrets/{name.lower()})")
    shown = _shown(path, "(path not shown)", shape=_PATH)
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_VALUE_FILE + 1)
    except OSError as exc:
        raise InputError(f"--set {name}: cannot read file {shown}: {exc.strerror}") from None
    if len(data) > _MAX_VALUE_FILE:
        raise InputError(f"--set {name}: file {shown} is larger than {_MAX_VALUE_FILE} bytes; it should hold one value")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"--set {name}: file {shown} is not UTF-8 text") from None
    if not text.strip():
        raise InputError(f"--set {name}: file {shown} is empty")
    return text


def _shown(text: str, instead: str, *, shape: re.Pattern[str] = _NAME) -> str:
    """``text`` quoted for a message, or ``instead`` when it might be a secret typed in the wrong place."""
    return repr(text) if shape.fullmatch(text) and not _KEY_SHAPED.fullmatch(text) else instead


def _shown_value(param: Param, value: str) -> str:
    if param.secret or param.name in SECRET_PARAMS or _KEY_SHAPED.fullmatch(value):
        return fingerprint(value)
    return repr(value)


# -- reading -----------------------------------------------------------------------------------


def read_rows(
    path: Path,
    action: Action,
    *,
    overrides: Mapping[str, str] | None = None,
    profiles: Collection[str] | None = None,
) -> Iterator[Row | BadRow]:
    """Every record of ``path`` in file order, validated for ``action`` with ``overrides`` applied.

    ``profiles`` are the aliyun CLI profile names a row's Profile may take
    (``credentials.profile_names()``). None takes no Profile at all: a CSV
    with a Profile column is an InputError, a JSONL record naming one a bad
    row. Lazy: InputError comes from the first ``next()``, before any row.
    """
    return _items(path, action, dict(overrides or {}), _names(profiles), Row, _Tally())


def read_rows_at(
    path: Path,
    action: Action,
    at: Iterable[tuple[int, int]],
    *,
    overrides: Mapping[str, str] | None = None,
    profiles: Collection[str] | None = None,
) -> Iterator[Row | BadRow]:
    """The records at ``(line, offset)`` (from ``Row.line``/``Row.offset``), as ``read_rows`` gives them.

    Only those lines are read (a CSV header too), in the order given, so a
    resume need not read the whole file again. No domain is found listed
    twice here: that verdict belongs to the first full read. InputChanged
    when an offset is not the start of a record: the file changed (the
    caller's SHA-256 check catches every other change).
    """
    overrides = dict(overrides or {})
    fmt = detect_format(path)
    with _open(path) as handle:
        lines = _lines(handle, path)
        parser = _parser(fmt, lines, path, action, overrides, _names(profiles), _Tally())
        if fmt is not Format.CSV:
            next(lines, None)  # the checks of a file's first line (encoding, line ends), as read_rows makes them
        parser.header_passed = True
        size = os.fstat(handle.fileno()).st_size
        for line, offset in at:
            if not 0 <= offset < size or (offset and not _after_newline(handle, offset)):
                raise InputChanged(f"{path}: line {line} no longer starts at byte {offset}: the file changed")
            handle.seek(offset)
            one = _lines(handle, path, line - 1, offset, limit=1)
            items = list(_validated(one, parser, _Tally(), action, overrides, Row, dedupe=False, json=fmt is Format.JSONL))
            if not items:
                raise InputChanged(f"{path}: line {line} (byte {offset}) holds no record: the file changed")
            yield from items


def validate_file(
    path: Path,
    action: Action,
    *,
    overrides: Mapping[str, str] | None = None,
    profiles: Collection[str] | None = None,
) -> ValidationSummary:
    """Counts of every kind of line (``describe()`` says them), and the first KEEP_BAD bad rows.

    ``profiles`` as for ``read_rows``.
    """
    summary = ValidationSummary()
    tally = _Tally()
    # Valid rows are only counted: a million frozen dataclasses cost a second.
    for bad in _items(path, action, dict(overrides or {}), _names(profiles), None, tally):
        summary.bad_count += 1
        if len(summary.bad) < KEEP_BAD:
            summary.bad.append(bad)  # type: ignore[arg-type]
    summary.valid, summary.total = tally.valid, tally.valid + summary.bad_count
    summary.lines, summary.header = tally.lines, tally.header
    summary.blank = tally.skipped - tally.header
    return summary


def write_rows(
    path: Path, fmt: Format, rows: Iterable[Mapping[str, str]], *, columns: Sequence[str] | None = None
) -> None:
    """Write rows in an input format (atomically), so that ``read_rows`` reads them back as they were.

    CSV columns are ``columns``, else the first row's keys; a row with any
    other key, or a CSV value with a line break (which no CSV input can
    hold), is a ValueError. A LIST keeps DomainName only.
    """
    out = io.StringIO(newline="")
    if fmt is Format.CSV:
        it = iter(rows)
        first = next(it, None)
        names = list(columns or (first.keys() if first else ["DomainName"]))
        # CRLF, as Excel writes: the csv module then quotes any value holding \r.
        writer = csv.DictWriter(out, fieldnames=names, lineterminator="\r\n")
        writer.writeheader()
        for row in it if first is None else itertools.chain((first,), it):
            if any("\n" in v for v in row.values()):
                raise ValueError("a CSV value cannot hold a line break: each record is one line")
            writer.writerow(row)
    elif fmt is Format.JSONL:
        for row in rows:
            out.write(orjson.dumps(dict(row)).decode())
            out.write("\n")
    else:
        for row in rows:
            out.write(row["DomainName"])
            out.write("\n")
    write_atomic(path, out.getvalue().encode())


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def _names(profiles: Collection[str] | None) -> frozenset[str] | None:
    return None if profiles is None else frozenset(profiles)


def _items(
    path: Path,
    action: Action,
    overrides: dict[str, str],
    profiles: frozenset[str] | None,
    row: Callable[..., _T] | None,
    tally: _Tally,
) -> Iterator[_T | BadRow]:
    """read_rows, with ``row(line, domain, params, raw, offset, given, profile)`` making each valid item."""
    fmt = detect_format(path)
    with _open(path) as handle:
        lines = _lines(handle, path)
        parser = _parser(fmt, lines, path, action, overrides, profiles, tally)
        yield from _validated(
            lines, parser, tally, action, overrides, row,
            dedupe=True, json=fmt is Format.JSONL, file_size=os.fstat(handle.fileno()).st_size,
        )


def _after_newline(handle: BinaryIO, offset: int) -> bool:
    handle.seek(offset - 1)
    return handle.read(1) == b"\n"


# -- physical lines ----------------------------------------------------------------------------


class _Tally:
    """What a reading saw besides the rows it gave (complete once the reading is)."""

    __slots__ = ("header", "lines", "skipped", "valid")

    def __init__(self) -> None:
        self.lines = 0
        #: blank, comment and header lines
        self.skipped = 0
        self.header = 0
        #: valid rows not given (``row`` is None)
        self.valid = 0


# (line number, byte offset, text, problem): a line that is not UTF-8 or longer than _MAX_LINE
# bytes comes as "" with the problem, and is one bad row: it does not stop the reading.
_Line = tuple[int, int, str, str | None]


def _lines(handle: BinaryIO, path: Path, line: int = 0, offset: int = 0, *, limit: int = -1) -> Iterator[_Line]:
    """The physical lines of ``handle`` from ``offset`` on (``line`` lines before it), at most ``limit``.

    The file's first line carries the checks for the whole file.
    """
    read = handle.readline
    while limit:
        limit -= 1
        try:
            raw = read(_MAX_LINE)
        except OSError as exc:
            raise InputError(f"cannot read {path} after line {line}: {exc.strerror}") from None
        if not raw:
            return
        line += 1
        start, offset = offset, offset + len(raw)
        if start == 0 or len(raw) == _MAX_LINE:
            text, problem, offset = _unusual_line(handle, path, raw, line, start, offset)
            yield line, start, text, problem
            continue
        try:
            yield line, start, raw.decode("utf-8"), None
        except UnicodeDecodeError:
            yield line, start, "", f"line {line} is not UTF-8 text"


def _unusual_line(handle: BinaryIO, path: Path, raw: bytes, line: int, start: int, end: int) -> tuple[str, str | None, int]:
    """A file's first line, or one of _MAX_LINE bytes: (text, problem, where the next line starts)."""
    if start == 0:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise InputError(f"{path} is UTF-16 text; save it as UTF-8")
        if b"\r" in raw.rstrip(b"\r\n"):  # the file's first line holds them all
            raise InputError(f"{path} ends its lines with CR alone; save it with LF or CRLF line ends")
    if len(raw) == _MAX_LINE and not raw.endswith(b"\n"):
        while more := handle.readline(_MAX_LINE):
            end += len(more)
            if more.endswith(b"\n"):
                break
        problem, hint = f"line {line} is longer than {_MAX_LINE // 1024} KiB", "is this a domain list?"
    else:
        try:
            return raw.removeprefix(_BOM if start == 0 else b"").decode("utf-8"), None, end
        except UnicodeDecodeError:
            problem, hint = f"line {line} is not UTF-8 text", "save the file as UTF-8"
    if start == 0:
        raise InputError(f"{path}: {problem}; {hint}")
    return "", problem, end


# -- formats: one physical line in, a record (dict), a reason it is bad (str), or None to skip --

class _Parser:
    __slots__ = ("header_passed", "profiled", "profiles", "quick", "regions")

    def __init__(self, profiles: frozenset[str] | None = None) -> None:
        self.header_passed = False
        #: whether a record may hold a RegionId, a Profile
        self.regions = True
        self.profiled = True
        #: the profile names a Profile may take (None: none may be given)
        self.profiles = profiles
        #: (raw, params, profile) of a line whose values need no check one by one, else None
        self.quick: Callable[[str], tuple[dict[str, str], dict[str, str], str | None] | None] | None = None

    def parse(self, text: str) -> dict[str, Any] | str | None:
        raise NotImplementedError


def _parser(
    fmt: Format,
    lines: Iterator[_Line],
    path: Path,
    action: Action,
    overrides: Mapping[str, str],
    profiles: frozenset[str] | None,
    tally: _Tally,
) -> _Parser:
    if fmt is Format.CSV:
        return _CsvParser(lines, path, action, overrides, tally, profiles=profiles)
    if fmt is Format.JSONL:
        return _JsonlParser(overrides, profiles)
    return _ListParser(tally)


class _OneLine:
    """Feeds a csv reader one line, then ends: a quote left open cannot take in the next line."""

    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text: str | None = None

    def __iter__(self) -> _OneLine:
        return self

    def __next__(self) -> str:
        text, self.text = self.text, None
        if text is None:
            raise StopIteration
        return text


class _CsvParser(_Parser):
    __slots__ = ("_auth", "_feed", "_header", "_plain", "_plan", "_profile_at", "_reader", "_width")

    def __init__(
        self,
        lines: Iterator[_Line],
        path: Path,
        action: Action,
        overrides: Mapping[str, str],
        tally: _Tally,
        *,
        profiles: frozenset[str] | None = None,
    ) -> None:
        super().__init__(profiles)
        self._feed = _OneLine()
        # strict: a stray quote is an error, not a guess (one reader, reused: it resets after an error)
        self._reader = csv.reader(self._feed, strict=True)
        self._header = self._read_header(lines, path, action, overrides, tally)
        self._width = len(self._header)
        self.regions = "RegionId" in self._header
        self.profiled = "Profile" in self._header
        self._plan_quick_lines(action, overrides)

    def fields(self, text: str) -> list[str]:
        """The fields of one line, exactly as the csv module reads them; csv.Error if it cannot."""
        body = text.rstrip("\r\n")
        # The csv module splits a line with neither quotes nor CR in the way just so, only slower.
        return body.split(",") if '"' not in body and "\r" not in body else self._csv(text)

    def parse(self, text: str) -> dict[str, Any] | str | None:
        body = text.rstrip("\r\n")
        try:  # fields(), inlined: it runs for every line
            values = body.split(",") if '"' not in body and "\r" not in body else self._csv(text)
        except csv.Error as exc:
            return _csv_problem(exc)
        if not (values and values[0].strip()) and not "".join(values).strip():
            return None
        if len(values) == self._width:
            return dict(zip(self._header, values))
        return f"has {len(values)} field(s), the header has {self._width}"

    def _plan_quick_lines(self, action: Action, overrides: Mapping[str, str]) -> None:
        """One regex for a whole line of plain values (see actions.plain_values), and how its groups make params.

        Such a line gets exactly what parse() and Action.validate() would give
        it, in about half the time; any other line goes the long way.
        """
        plain, header = {**plain_values(action), "Profile": _PROFILE.pattern}, self._header
        required = {p.name for p in action.params if p.required}
        if any(n not in header and n not in overrides for n in required) or not overrides.keys() <= set(plain):
            return  # every row is bad: the long way says why
        fields = ",".join(f"({plain[n]})" if n in required else f"({plain[n]}|)" for n in header)
        # Without a Profile column, a last group that always matches empty stands for it: one code path.
        self._profile_at = header.index("Profile") if self.profiled else len(header)
        self._plain = re.compile(fields + ("" if self.profiled else "()") + r"\r?\n?").fullmatch
        # In the order Action.validate gives them (the catalogue's, then RegionId): (name, group or -1, --set value).
        names = [n for n in action.param_names if n in header or n in overrides]
        names += ["RegionId"] if "RegionId" in header else []
        self._plan = tuple((n, header.index(n) if n in header else -1, overrides.get(n, "")) for n in names)
        self._auth = action.auth_pair
        self.quick = self._quick

    def _quick(self, text: str) -> tuple[dict[str, str], dict[str, str], str | None] | None:
        match = self._plain(text)
        if match is None:
            return None
        values = match.groups()
        params = {}
        for name, index, fixed in self._plan:
            if value := values[index] if index >= 0 else fixed:
                params[name] = value
        if self._auth and params.get(self._auth[0]) == "yes" and self._auth[1] not in params:
            return None  # the long way says what is missing
        profile = values[self._profile_at]
        if profile and profile not in self.profiles:  # type: ignore[operator]  (a Profile column needs profiles)
            return None  # the long way says it is unknown
        return dict(zip(self._header, values)), params, profile or None

    def _csv(self, text: str) -> list[str]:
        self._feed.text = text
        try:
            return next(self._reader, [])
        finally:
            self._feed.text = None

    def _read_header(
        self, lines: Iterator[_Line], path: Path, action: Action, overrides: Mapping[str, str], tally: _Tally
    ) -> list[str]:
        header: list[str] | None = None
        for line, _, text, problem in lines:
            if problem:
                raise InputError(f"{path}: {problem}; the header must be UTF-8 text")
            try:
                header = self.fields(text)
            except csv.Error as exc:
                raise InputError(f"{path}: line {line}: {_csv_problem(exc)}") from None
            tally.skipped += 1
            tally.lines = line
            if "".join(header).strip():
                break
        else:
            raise InputError(
                f"{path} is empty: a CSV input needs a header row naming the parameters, e.g. DomainName,NotifyUrl"
            )
        tally.header = 1
        header = [h.strip() for h in header]
        allowed = (*action.param_names, "RegionId", "Profile")
        unknown = [(i, h) for i, h in enumerate(header, 1) if h not in allowed]
        if unknown:
            if "." in header[0]:
                raise InputError(
                    f"{path}: line {line} looks like data, not a header: a CSV input starts with a header row "
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
        if "Profile" in header and self.profiles is None:
            raise InputError(f"{path}: a Profile column names aliyun CLI profiles, and none were given to check "
                             f"them against (read_rows(..., profiles=credentials.profile_names()))")
        return header


def _csv_problem(exc: csv.Error) -> str:
    if str(exc) == "unexpected end of data":
        return "a quoted field is not closed on its line (no value can span lines)"
    if str(exc).startswith("new-line character"):
        return "unreadable CSV line: a carriage return (CR) inside the line"
    return f"unreadable CSV line: {exc}"


def _describe_column(index: int, name: str, allowed: Sequence[str]) -> str:
    if not name:
        return f"column {index} (no name: a trailing comma?)"
    shown = _shown(name, "")
    shown = f"column {shown}" if shown else f"column {index} (name not shown)"
    close = difflib.get_close_matches(name, allowed, n=1)
    return f"{shown} (did you mean {close[0]}?)" if close else shown


class _JsonlParser(_Parser):
    __slots__ = ("_overrides",)

    def __init__(self, overrides: Mapping[str, str], profiles: frozenset[str] | None) -> None:
        super().__init__(profiles)
        self._overrides = overrides

    def parse(self, text: str) -> dict[str, Any] | str | None:
        if not text.strip():
            return None
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError:
            return "not valid JSON"
        if not isinstance(record, dict):
            return "not a JSON object"
        both = sorted(record.keys() & self._overrides.keys())
        if both:
            return f"{', '.join(both)} is given both in the row and by --set"
        return record


class _ListParser(_Parser):
    __slots__ = ("_tally",)

    def __init__(self, tally: _Tally) -> None:
        super().__init__()
        self._tally = tally
        self.regions = self.profiled = False

    def parse(self, text: str) -> dict[str, Any] | str | None:
        # A domain never holds '#', so a comment may also end a line.
        name = text.partition("#")[0].strip()
        if not name:
            return None
        if not self.header_passed:
            self.header_passed = True
            if name == "DomainName":  # a one-column CSV saved as a list
                self._tally.header = 1
                return None
        return {"DomainName": name}


# -- validation --------------------------------------------------------------------------------


class _FirstSeen:
    """Hashes of domain names -> the line each was first seen on.

    Two flat arrays with open addressing, 12 bytes a slot, at most half the
    slots in use: 25 to 50 bytes a domain, where a dict of Python ints would
    take about 100 (a million domains would not fit the memory goal). A
    false "listed twice" needs two names with the same 64-bit ``hash()``:
    about 3e-8 for a million domains (and the hash is seeded per process, so
    it would not repeat on the next reading). Given the file's size, the
    table grows to what the file needs at the density read so far (at most
    16 times larger at once, in case the first lines are unusually short):
    each growth moves every name, in Python.
    """

    __slots__ = ("_count", "_file_size", "_keys", "_lines", "_mask")

    def __init__(self, *, file_size: int = 0) -> None:
        self._file_size = file_size
        self._count = 0
        self._alloc(1 << 14)

    def _alloc(self, size: int) -> None:
        # Repeated in place: array("Q", bytes(n)) would first build a bytes object as big.
        self._keys = array("Q", [0]) * size  # 0 marks a free slot
        self._lines = array("I", [0]) * size
        self._mask = size - 1

    def first(self, name: str, line: int, offset: int) -> int:
        """The line ``name`` (in its DNS form) was first seen on (``line``, at byte ``offset``, if new)."""
        key = hash(name) & 0xFFFF_FFFF_FFFF_FFFF or 1
        keys, mask = self._keys, self._mask
        i = key & mask
        while k := keys[i]:
            if k == key:
                return self._lines[i]
            i = (i + 1) & mask
        keys[i] = key
        self._lines[i] = line
        self._count += 1
        if self._count * 2 > mask:
            self._grow(self._count * self._file_size // offset if offset else 0)
        return line

    def _grow(self, expected: int) -> None:
        old_keys, old_lines = self._keys, self._lines
        size = len(old_keys)
        self._alloc(min(max(size * 2, 1 << (2 * expected).bit_length()), size * 16))
        keys, lines, mask = self._keys, self._lines, self._mask
        for key, line in zip(old_keys, old_lines, strict=True):
            if key:  # every key is new here: find a free slot, as first() does
                i = key & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i] = key
                lines[i] = line


def _validated(
    lines: Iterator[_Line],
    parser: _Parser,
    tally: _Tally,
    action: Action,
    overrides: Mapping[str, str],
    row: Callable[..., _T] | None,
    *,
    dedupe: bool,
    json: bool,
    file_size: int = 0,
) -> Iterator[_T | BadRow]:
    """Each record of ``lines`` checked: a BadRow, or ``row(line, domain, params, raw, offset, given, profile)``.

    With ``row`` None, valid rows are only counted in ``tally``.
    """
    first = _FirstSeen(file_size=file_size).first if dedupe else None
    parse, validate, regions, quick = parser.parse, action.validate, parser.regions, parser.quick
    profiled, profiles = parser.profiled, parser.profiles
    line, valid, skipped = tally.lines, 0, 0
    for line, offset, text, problem in lines:
        if problem:
            yield BadRow(line, problem, offset=offset)
            continue
        if quick and (plain := quick(text)):
            raw, params, profile = plain
        else:
            record = parse(text)
            if record is None:
                skipped += 1
                continue
            if isinstance(record, str):
                yield BadRow(line, record, offset=offset)
                continue
            raw = _as_text(record) if json else record
            profile = None
            try:
                if profiled and "Profile" in record:
                    record = dict(record)  # raw keeps it: a failures file feeds it back
                    profile = _profile(record.pop("Profile"), profiles)
                params = validate({**record, **overrides} if overrides else record)
                if regions and (region := record.get("RegionId")) is not None:
                    _add_region(params, region)
            except InvalidParams as exc:
                given = raw.get("DomainName", "").strip()
                if given and first:  # a domain listed twice with different mistakes is still listed twice
                    first(normalize_domain(given) or given.lower(), line, offset)
                yield BadRow(line, str(exc), given or None, raw, offset, profile=profile)
                continue
        name = params["DomainName"]
        given = raw["DomainName"]
        if given == name or (given := given.strip()) == name:
            given = None
        if first and (seen := first(name, line, offset)) != line:
            yield BadRow(line, f"DomainName listed twice (first at line {seen})", name, raw, offset, given, profile)
        elif row is None:
            valid += 1
        else:
            yield row(line, name, params, raw, offset, given, profile)
    tally.lines, tally.valid = line, valid
    tally.skipped += skipped


def _add_region(params: dict[str, str], value: object) -> None:
    """A row's RegionId, checked, to be sent in place of the run's --region (which is kept when it is empty)."""
    if not isinstance(value, str):
        raise InvalidParams("MalformedParam", "RegionId must be a string")
    value = value.strip()
    if value:
        if problem := check_region(value):
            raise InvalidParams("MalformedParam", f"RegionId {problem}")
        params["RegionId"] = value


def _profile(value: object, profiles: frozenset[str] | None) -> str | None:
    """A row's Profile, checked: the aliyun CLI profile to send it with, or None (empty) for the run's credentials."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParams("MalformedParam", "Profile must be a string")
    name = value.strip()
    if not name:
        return None
    if profiles is None:
        raise InvalidParams("MalformedParam", "Profile cannot be used here: no aliyun CLI profile names were "
                                              "given to check it against")
    if not _PROFILE.fullmatch(name):
        raise InvalidParams("MalformedParam", "Profile is not an aliyun CLI profile name "
                                              "(1 to 64 letters, digits, '.', '_', '@' or '-')")
    if name not in profiles:
        shown = _shown(name, "(name not shown: it looks like a key)", shape=_PROFILE)
        raise InvalidParams("MalformedParam", f"Profile {shown} is not a profile in ~/.aliyun/config.json")
    return name


def _as_text(record: Mapping[str, object]) -> dict[str, str]:
    """A JSON record's values as text, for a failures file (a number stays readable)."""
    return {k: v if isinstance(v, str) else "" if v is None else orjson.dumps(v).decode() for k, v in record.items()}
