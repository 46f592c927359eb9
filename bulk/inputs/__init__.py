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
a BOM, LF or CRLF line ends. Every physical line is a row, a bad row, or a
blank, comment or header line, and ``validate_file`` counts each kind. No
message ever holds a secret value.

The parts, each in its module: ``overrides`` (``--set`` parsing and the
literal-secret warning), ``lines`` (physical lines, encodings), ``formats``
(the CSV, JSONL and plain-list parsers), ``dedupe`` (domains listed twice),
``validation`` (a record checked against the action), ``reading`` (the
readers) and ``writing`` (a failures file in an input format).
"""

from __future__ import annotations

from .model import (
    BadRow,
    ErrorGroup,
    ErrorTally,
    Format,
    InputChanged,
    InputError,
    Row,
    ValidationSummary,
    detect_format,
    file_sha256,
)
from .overrides import literal_secrets, parse_overrides
from .reading import read_rows, read_rows_at, validate_file
from .writing import write_rows

__all__ = [
    "BadRow",
    "ErrorGroup",
    "ErrorTally",
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
