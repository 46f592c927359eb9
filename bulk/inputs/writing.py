"""Rows written back in an input format, so that ``read_rows`` reads them as they were.

    write_rows(Path("failed.csv"), Format.CSV, (bad.raw for bad in failed), columns=header)

A failures file is fed back as the next input: it is written whole, in the
format of the input it came from, atomically.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import orjson

from ..files import write_atomic
from .model import Format

__all__ = ["write_rows"]


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
