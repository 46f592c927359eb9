"""Reading a domain list: every record in file order, chosen records by offset, or the counts alone.

    for item in read_rows(Path("domains.csv"), action, overrides=overrides):
        if isinstance(item, Row):
            send(item.params)
        else:
            print(f"line {item.line}: {item.reason}")

Files are streamed: memory stays flat whatever their size, but for 25 to 50
bytes a domain to find the ones listed twice. ``read_rows_at`` re-reads
chosen lines by their byte offsets, for a resume. Problems with the whole
file raise ``InputError`` (exit 2 before any call); problems with one row
come back as a ``BadRow`` with its line number.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from ..actions import Action
from .formats import make_parser
from .lines import Tally, after_newline, open_input, read_lines
from .model import BadRow, ErrorTally, Format, InputChanged, Row, ValidationSummary, detect_format
from .validation import validated

__all__ = ["KEEP_BAD", "read_rows", "read_rows_at", "validate_file"]

#: bad rows a ValidationSummary keeps for display; all are counted
KEEP_BAD = 1000

_T = TypeVar("_T")


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
    return _items(path, action, dict(overrides or {}), _names(profiles), Row, Tally())


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
    with open_input(path) as handle:
        lines = read_lines(handle, path)
        parser = make_parser(fmt, lines, path, action, overrides, _names(profiles), Tally())
        if fmt is not Format.CSV:
            next(lines, None)  # the checks of a file's first line (encoding, line ends), as read_rows makes them
        parser.header_passed = True
        size = os.fstat(handle.fileno()).st_size
        for line, offset in at:
            if not 0 <= offset < size or (offset and not after_newline(handle, offset)):
                raise InputChanged(f"{path}: line {line} no longer starts at byte {offset}: the file changed")
            handle.seek(offset)
            one = read_lines(handle, path, line - 1, offset, limit=1)
            items = list(validated(one, parser, Tally(), action, overrides, Row, dedupe=False,
                                   json=fmt is Format.JSONL))
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
    tally = Tally()
    # Valid rows are only counted: a million frozen dataclasses cost a second.
    reasons = ErrorTally()
    for bad in _items(path, action, dict(overrides or {}), _names(profiles), None, tally):
        summary.bad_count += 1
        reasons.add(bad.line, bad.reason)
        if len(summary.bad) < KEEP_BAD:
            summary.bad.append(bad)
    summary.errors = reasons.groups()
    summary.valid, summary.total = tally.valid, tally.valid + summary.bad_count
    summary.lines, summary.header = tally.lines, tally.header
    summary.blank = tally.skipped - tally.header
    return summary


def _names(profiles: Collection[str] | None) -> frozenset[str] | None:
    return None if profiles is None else frozenset(profiles)


def _items(
    path: Path,
    action: Action,
    overrides: dict[str, str],
    profiles: frozenset[str] | None,
    row: Callable[..., _T] | None,
    tally: Tally,
) -> Iterator[_T | BadRow]:
    """read_rows, with ``row(line, domain, params, raw, offset, given, profile)`` making each valid item."""
    fmt = detect_format(path)
    with open_input(path) as handle:
        lines = read_lines(handle, path)
        parser = make_parser(fmt, lines, path, action, overrides, profiles, tally)
        yield from validated(
            lines, parser, tally, action, overrides, row,
            dedupe=True, json=fmt is Format.JSONL, file_size=os.fstat(handle.fileno()).st_size,
        )
