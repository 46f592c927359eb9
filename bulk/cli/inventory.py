"""The inventory commands: ``bulk domains`` (the account's domains) and ``bulk export`` (their callback configs).

    bulk domains --status online --out domains.csv      # DomainName,RegionId: an input of bulk run
    bulk export domains.csv --out callbacks.csv         # URL, auth switches, key fingerprints per domain

Each parses its arguments, calls ``bulk.inventory`` and prints; the calls go
through the engine's client, pacer, retry policy and call log.
"""

from __future__ import annotations

import asyncio
import csv
import io
import sys
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ..attempts import CallLog
from ..checkpoint import Checkpoint, RowState, remove_checkpoint
from ..client import LiveClient
from ..credentials import load_credentials, profile_names
from ..errors import Exit
from ..files import check_writable
from ..inputs import Format
from ..inventory import (
    DETAIL_COLUMNS,
    DOMAIN_COLUMNS,
    EXPORT_COLUMNS,
    DomainFilter,
    export_options,
    export_rows,
    list_domains,
    table_format,
    write_table,
)
from ..jobs import ExportJob
from ..options import RunResult, Tuning
from ..paths import export_checkpoint
from ..retry import RetryPolicy
from . import examples
from .common import app, err, errors, execute, fail, print_halt, run_async
from .shared import INPUT, OUTPUTS, STATE, Connection, calls_the_api


class TableFormat(StrEnum):
    """The formats of a written table."""

    CSV = "csv"
    JSONL = "jsonl"


class DomainType(StrEnum):
    """LiveDomainType: streaming or edge ingest domains."""

    LIVE_VIDEO = "liveVideo"
    LIVE_EDGE = "liveEdge"


class DomainStatus(StrEnum):
    """DomainStatus."""

    ONLINE = "online"
    OFFLINE = "offline"
    CONFIGURING = "configuring"


class SearchType(StrEnum):
    """DomainSearchType: how --name matches."""

    FUZZY = "fuzzy_match"
    PREFIX = "pre_match"
    SUFFIX = "suf_match"
    FULL = "full_match"


OutOpt = Annotated[Path | None, typer.Option(
    "--out", "-o", metavar="PATH", rich_help_panel=OUTPUTS,
    help="File to write, .csv or .jsonl (mode 0600; default: CSV on stdout).")]
FormatOpt = Annotated[TableFormat | None, typer.Option(
    "--format", rich_help_panel=OUTPUTS, help="csv or jsonl (default: by --out's suffix).")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", rich_help_panel=OUTPUTS, help="Print one JSON document on stdout (see docs/inventory.md).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", rich_help_panel=OUTPUTS, help="No progress output.")]


@app.command("domains", epilog=examples.DOMAINS)
@calls_the_api
def domains_cmd(
    out: OutOpt = None,
    format: FormatOpt = None,
    domain_type: Annotated[DomainType | None, typer.Option(
        "--type", rich_help_panel=INPUT, help="Only this LiveDomainType.")] = None,
    status: Annotated[DomainStatus | None, typer.Option(
        rich_help_panel=INPUT, help="Only domains in this state.")] = None,
    name: Annotated[str | None, typer.Option(
        metavar="TEXT", rich_help_panel=INPUT, help="Only domain names that match this (see --match).")] = None,
    match: Annotated[SearchType | None, typer.Option(
        rich_help_panel=INPUT, help="How --name matches (default: fuzzy_match, a part of the name).")] = None,
    domain_region: Annotated[str | None, typer.Option(
        metavar="REGION", rich_help_panel=INPUT, help="Only domains in this region (RegionName).")] = None,
    details: Annotated[bool, typer.Option(
        rich_help_panel=OUTPUTS,
        help="Add type, status, CNAME, dates, description and resource group (bulk run refuses such a file).")
    ] = False,
    json_: JsonOpt = False,
    *,
    tuning: Tuning,
    connection: Connection,
) -> None:
    """List the account's live domains (DescribeLiveUserDomains, paged) as an input of bulk run."""
    filters = DomainFilter(domain_type=domain_type, status=status, name=name, search=match, region=domain_region)
    columns = (*DOMAIN_COLUMNS, *DETAIL_COLUMNS) if details or json_ else DOMAIN_COLUMNS
    endpoint, region = connection.target()

    async def body(stop: asyncio.Event) -> int:
        """List every page, then write the table."""
        with errors():
            if out is not None:
                check_writable(out)
            credentials = await load_credentials(profile=connection.profile)
            log = CallLog(tuning.log_file) if tuning.log_file else None
            try:
                async with LiveClient(credentials=credentials, endpoint=endpoint, region=region,
                                      signature=connection.signature, timeout=tuning.timeout) as client:
                    listed = await list_domains(client, filters, stop=stop, log=log,
                                                retry=RetryPolicy(max_attempts=tuning.max_attempts))
            finally:
                if log is not None:
                    log.close()
        if listed.halt is not None:
            print_halt(listed.halt)
            return listed.halt.kind.exit_code
        if listed.failure is not None:
            f = listed.failure
            fail(f"DescribeLiveUserDomains failed after {listed.pages} page(s): {f.code}: {f.message}; "
                 "nothing was written", Exit.FAILED)
        rows = [d.details if columns != DOMAIN_COLUMNS else d.row for d in listed.domains]
        with errors():
            _emit(rows, columns, out=out, fmt=format, json_=json_, document={"total": listed.total})
        err.print(f"bulk: {len(rows)} domain(s) listed in {listed.pages} page(s)"
                  + (f", written to {out}" if out else ""), soft_wrap=True)
        return Exit.OK

    raise typer.Exit(run_async(body))


@app.command("export", epilog=examples.EXPORT)
@calls_the_api
def export_cmd(
    input: Annotated[Path, typer.Argument(
        metavar="INPUT", help="Domain list, as bulk domains writes it: .csv, .jsonl or a name a line.")],
    out: OutOpt = None,
    format: FormatOpt = None,
    json_: JsonOpt = False,
    state_dir: Annotated[Path | None, typer.Option(
        metavar="DIR", rich_help_panel=STATE,
        help="Where the export's reads keep their checkpoint (default: $BULK_STATE_DIR, else the user state "
             "directory).")] = None,
    quiet: QuietOpt = False,
    *,
    tuning: Tuning,
    connection: Connection,
) -> None:
    """Read every domain's snapshot-callback config and callback auth: URL, auth switches, key fingerprints."""
    ckpt = export_checkpoint(input, state=state_dir)
    with errors():
        remove_checkpoint(ckpt)  # an export is the state now: made anew each time
        options = export_options(input, checkpoint=ckpt, tuning=tuning, profiles=profile_names())
    job = ExportJob()

    def summary(result: RunResult) -> int:
        """Write the table of what was read; list each domain that could not be read."""
        if result.halt is not None or result.unfinished:
            err.print("bulk: the export is not complete (the run stopped first); nothing was written", soft_wrap=True)
            return result.exit_code
        with Checkpoint.open_readonly(ckpt) as c:
            unread = [{"line": r["line"], "domain": r["domain"] or "", "code": r["code"] or r["state"],
                       "message": r["message"] or ""} for r in c.rows(states=[RowState.FAILED, RowState.INVALID])]
        for row in unread:
            err.print(f"bulk: line {row['line']}: {row['domain']}: {row['code']}: {row['message']}", soft_wrap=True)
        rows = export_rows(job)
        _emit(rows, EXPORT_COLUMNS, out=out, fmt=format, json_=json_, document={"unreadable": unread})
        err.print(f"bulk: exported {len(rows)} domain(s), {len(unread)} unreadable"
                  + (f", written to {out}" if out else ""), soft_wrap=True)
        return result.exit_code

    raise typer.Exit(execute(options, connection, quiet=quiet or out is None, summary=summary, outputs=(out,),
                             job=job))


def _emit(rows: list[dict[str, str]], columns: Sequence[str], *, out: Path | None, fmt: TableFormat | None,
          json_: bool, document: Mapping[str, Any]) -> None:
    """The table to ``out`` (CSV or JSONL), else on stdout: CSV, or with ``json_`` one JSON document."""
    if json_:
        if out is not None:
            write_table(out, rows, columns=columns, fmt=table_format(out, fmt))
        sys.stdout.write(orjson.dumps({"domains": rows, **document}, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif out is not None:
        write_table(out, rows, columns=columns, fmt=table_format(out, fmt))
    elif table_format(None, fmt) is Format.JSONL:
        sys.stdout.write("".join(orjson.dumps(row).decode() + "\n" for row in rows))
    else:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(text.getvalue())
