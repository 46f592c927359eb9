"""What happened to each row, for people and for the next run.

    with Checkpoint.open_readonly(Path("domains.csv.add-live-snapshot-notify-config.ckpt")) as ckpt:
        write_report(ckpt, Path("report.csv"))                 # one line per row, with RequestId
        write_failures(ckpt, Path("failures.csv"))             # failed rows in the input's own format

Both read only the checkpoint (and, for the failures file, the input file it
names), so they can be produced at any time, also for a run still going.
Neither ever holds a secret: the checkpoint has none, and secret columns of
the input are left out of the failures file.

Both are opened in spreadsheets, and a cell that starts with ``= + - @``, a
tab or a CR is a formula there (``=HYPERLINK(...)`` in a domain cell of an
invalid row). Every such cell of a CSV report gets a leading ``'``; so does
every such cell of an invalid row in a CSV failures file. The valid rows of a
failures file are left as read, so that they read back the same: their cells
passed validation (domain names, URLs, yes/no, regions, profile names) and
can hold no formula call. Keys files are machine-read, and hold only
validated domains and keys of letters and digits: they are left alone.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

import orjson
from rich.table import Table

from .actions import recorded_action
from .checkpoint import Checkpoint, CheckpointError, RowState
from .errors import UsageError
from .files import atomic_file
from .identity import recorded_connection
from .inputs import BadRow, Format, InputError, read_rows, read_rows_at, write_rows
from .options import Halt
from .plan import PlanEntry, PlanHeader, write_plan
from .redact import error_kind, redact

__all__ = [
    "REPORT_COLUMNS",
    "accounts_table",
    "plan_from_checkpoint",
    "report_rows",
    "spreadsheet_safe",
    "summary_table",
    "write_failures",
    "write_report",
]

REPORT_COLUMNS = (
    "line", "domain", "action", "outcome", "attempts", "error_code", "error_message", "request_id", "finished_at",
    "given_domain", "profile",
)
_FAILED = (RowState.FAILED, RowState.INVALID)
#: what ``--failed-only`` lists: the failed and invalid rows, and those whose outcome is unknown
_ATTENTION = (*_FAILED, RowState.UNKNOWN)
# What makes a spreadsheet cell a formula (OWASP's list).
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def report_rows(ckpt: Checkpoint, *, failed_only: bool = False) -> Iterator[dict[str, Any]]:
    """One dict of ``REPORT_COLUMNS`` per checkpoint row, in line order, messages redacted.

    ``failed_only`` keeps the rows that need attention: failed, invalid or unknown.
    """
    meta = ckpt.meta() or {}
    for r in ckpt.rows(states=_ATTENTION if failed_only else None):
        yield {
            "line": r["line"],
            "domain": r["domain"] or "",
            "action": r["action"] or meta.get("action", ""),
            # 'sending' or 'unknown': the row may or may not hold its change; the next run reads it back.
            "outcome": r["state"],
            "attempts": r["attempts"],
            "error_code": r["code"] or "",
            "error_message": redact(r["message"] or ""),
            "request_id": r["request_id"] or "",
            "finished_at": _iso(r["finished"]),
            # The domain as the input wrote it, when it was normalised before sending.
            "given_domain": r["given"] or "",
            # The aliyun CLI profile (the account) that sent it; empty: the run's credentials.
            "profile": r["profile"] or "",
        }


def spreadsheet_safe(cell: object) -> object:
    """``cell`` as a spreadsheet shows it as text: a string that would start a formula gets a leading ``'``."""
    return "'" + cell if isinstance(cell, str) and cell.startswith(_FORMULA) else cell


def write_report(ckpt: Checkpoint, path: Path | None, *, fmt: str = "csv", failed_only: bool = False) -> int:
    """Write the per-row report to ``path`` (stdout when None); return the row count."""
    if fmt not in ("csv", "jsonl"):
        raise UsageError("report format must be csv or jsonl")
    if path is None:
        return _write_report(ckpt, sys.stdout, fmt, failed_only)
    # Written whole: a temporary file (0600, never a link) renamed into place.
    with atomic_file(path) as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        count = _write_report(ckpt, out, fmt, failed_only)
        out.flush()
        out.detach()  # atomic_file syncs and closes the file itself
    return count


def _write_report(ckpt: Checkpoint, out: TextIO, fmt: str, failed_only: bool) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS)
        writer.writeheader()
        for row in report_rows(ckpt, failed_only=failed_only):
            writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
            count += 1
    else:
        for row in report_rows(ckpt, failed_only=failed_only):
            out.write(orjson.dumps(row).decode() + "\n")
            count += 1
    return count


def write_failures(ckpt: Checkpoint, path: Path) -> int:
    """Write failed and invalid rows in the input's own format, ready to be fed back.

    Never a row whose outcome is unknown: it may hold its change, and only a
    resume of its own checkpoint reads it back before sending it again.
    Only the action's non-secret parameters are kept; give secrets again with
    --set, or resume the original input with ``--retry-failed``. A row that
    lists a domain done on another line is left out: its domain needs nothing
    more. With no row to write, a failures file left at ``path`` by an earlier
    run is removed, so the file never lists a row that is done since.
    """
    meta = ckpt.meta()
    if not meta:
        raise CheckpointError(f"{ckpt.path} holds no run")
    failed = list(ckpt.rows(states=_FAILED))
    listed = {r["line"]: (r["domain"] or "").strip().lower() for r in failed}
    wanted = set(listed.values())
    done = ckpt.done_domains(wanted) if listed else set()
    lines = {line for line, domain in listed.items() if domain not in done}
    if not lines:
        path.unlink(missing_ok=True)
        return 0
    action = recorded_action(meta["action"])
    fmt = Format(meta["format"])
    input_path = Path(meta["input_path"])
    # The profiles the run took: each failed row goes back with its own, as written.
    profiles = frozenset(p for p in ckpt.counts_by_profile() if p)
    # Only those lines, each at its offset, unless a checkpoint from before offsets lacks one: a resume that
    # leaves a few failed rows of a million must not read and check the whole input again.
    at = [(r["line"], r["offset"]) for r in failed if r["line"] in lines]
    try:
        items = read_rows(input_path, action, profiles=profiles) if any(o is None for _, o in at) else \
            read_rows_at(input_path, action, cast(list[tuple[int, int]], at), profiles=profiles)
        public = [n for n in (*action.param_names, "RegionId", "Profile") if n not in action.secret_names]
        rows = [_only(_guarded(item.raw) if fmt is Format.CSV and isinstance(item, BadRow) else item.raw, public)
                for item in items if item.line in lines and item.raw]
    except InputError as exc:
        raise CheckpointError(f"cannot read the input {input_path} for the failures file: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read the input {input_path} for the failures file: {error_kind(exc)}") from None
    write_rows(path, fmt, rows, columns=_columns(rows) or None)
    return len(rows)


def plan_from_checkpoint(ckpt: Checkpoint, path: Path) -> dict[str, int]:
    """Write the plan file of a finished plan run; return the count of rows per kind."""
    meta = ckpt.meta()
    if not meta:
        raise CheckpointError(f"{ckpt.path} holds no run")
    entries = []
    for r in ckpt.rows():
        if r["state"] == "invalid":
            entries.append(PlanEntry(r["line"], r["domain"] or "", "invalid", reason=redact(r["message"] or "")))
        elif r["plan_kind"] == "conflict" or r["state"] == "failed":
            entries.append(PlanEntry(r["line"], r["domain"] or "", "conflict", reason=redact(r["message"] or "")))
        elif r["plan_kind"]:
            fields = tuple(f for f in (r["plan_fields"] or "").split(",") if f)
            entries.append(PlanEntry(r["line"], r["domain"] or "", r["plan_kind"], fields, r["plan_send"],
                                     seen=r["plan_seen"], changes=redact(r["message"] or "") if fields else ""))
    # The plan is as old as its first read, not as its file.
    header = PlanHeader(meta["action"], meta["input_path"], meta["input_sha256"], meta["created"],
                        meta.get("overrides") or {}, *recorded_connection(meta))
    write_plan(path, header, entries)
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.kind] = counts.get(entry.kind, 0) + 1
    return counts


def accounts_table(
    by_profile: Mapping[str | None, Mapping[str, int]], stopped: Mapping[str, Halt] | None = None
) -> Table:
    """Rows by outcome per account (``Checkpoint.counts_by_profile``), and why an account stopped alone."""
    table = Table(title="bulk: by account", show_header=True, header_style="bold")
    for column in ("profile", "done", "skipped", "failed", "invalid", "unknown", "to send"):
        table.add_column(column, justify="left" if column == "profile" else "right")
    table.add_column("stopped")
    for profile, counts in by_profile.items():
        halt = (stopped or {}).get(profile or "")
        table.add_row(profile or "(run's credentials)",
                      *(str(counts[k]) for k in ("done", "skipped", "failed", "invalid", "unknown")),
                      str(counts["pending"] + counts["sending"]),
                      f"{halt.kind}: exit {halt.kind.exit_code:d}" if halt else "")
    return table


def summary_table(counts: Mapping[str, int], errors: Mapping[str, int]) -> Table:
    """Rows by outcome, then failed, invalid and unknown rows by error code."""
    table = Table(title="bulk: summary", show_header=True, header_style="bold")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    for state in ("done", "skipped", "failed", "invalid"):
        table.add_row(state, str(counts.get(state, 0)))
    for state, label in (("unknown", "unknown (read back first next run)"),
                         ("conflict", "conflict (changed by another client: left as it is)"), ("pending", "pending"),
                         ("sending", "sending (read back next run)")):
        if counts.get(state):
            table.add_row(label, str(counts[state]))
    for code, n in errors.items():
        table.add_row(f"  error {code}", str(n))
    return table


def _guarded(raw: Mapping[str, str]) -> dict[str, str]:
    return {k: str(spreadsheet_safe(v)) for k, v in raw.items()}


def _only(raw: Mapping[str, str], names: list[str]) -> dict[str, str]:
    # A whitelist, not a blacklist: a misspelt secret column must not slip through either.
    return {k: raw[k] for k in names if k in raw}


def _columns(rows: list[dict[str, str]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _iso(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else ""
