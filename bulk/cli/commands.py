"""The commands that change or read the fleet: run, validate, report, plan, verify, rollback.

    bulk run domains.csv --action AddLiveSnapshotNotifyConfig --set NotifyUrl=https://cb.example.com/snap
    bulk verify domains.csv.add-live-snapshot-notify-config.ckpt --json

Each parses its arguments, calls the library and prints; what the run does is in the library.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table

from ..actions import Action, recorded_action, resolve
from ..checkpoint import Checkpoint, CheckpointError, RowState, remove_checkpoint
from ..credentials import profile_names
from ..errors import Exit
from ..identity import recorded_connection
from ..inputs import ErrorTally, detect_format, file_sha256, parse_overrides, validate_file
from ..jobs import NO_CONFIG_LEFT
from ..options import IfExists, Mode, RunOptions, RunResult, Tuning
from ..paths import (
    backup_path,
    default_checkpoint,
    failures_path,
    plan_reads_checkpoint,
    plan_run_checkpoint,
    run_checkpoint,
)
from ..paths import plan_path as default_plan_path
from ..plan import KINDS, PlanError, check_plan, plan_overrides, read_plan
from ..prepare import dry_run
from ..redact import redact_overrides
from ..report import (
    accounts_table,
    plan_from_checkpoint,
    summary_table,
    write_failures,
    write_report,
)
from ..report_html import write_html
from ..rollback import Rollback, plan_rollback
from ..textfile import RunTextfile
from ..verify import drifted, verify_action, verify_options
from . import examples
from .common import (
    app,
    err,
    errors,
    execute,
    fail,
    leaves_metrics,
    out,
    print_errors,
    print_json,
    warn_literal_secrets,
)
from .shared import INPUT, OUTPUTS, SAFETY, SEND, STATE, Connection, calls_the_api

# Options shared by the commands that call the API.
ActionOpt = Annotated[str, typer.Option(
    "--action", "-a", metavar="ACTION", rich_help_panel=SEND,
    help="API action, e.g. AddLiveSnapshotNotifyConfig or add-live-snapshot-notify-config.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", metavar="NAME=VALUE", rich_help_panel=SEND,
    help="Name=Value given to every row (repeatable); Name=@FILE or Name=@env:VAR for secrets.")]
CheckpointOpt = Annotated[Path | None, typer.Option(
    metavar="PATH", rich_help_panel=STATE,
    help="Checkpoint file (default: derived from INPUT, in the state directory); "
         "its backup and failures file go beside it.")]
RunCheckpointArg = Annotated[Path, typer.Argument(
    metavar="CHECKPOINT",
    help="Checkpoint file of a run, or its run's directory in the state directory.", callback=run_checkpoint)]
StateDirOpt = Annotated[Path | None, typer.Option(
    metavar="DIR", rich_help_panel=STATE,
    help="Where runs keep their state, one directory per input and action "
         "(default: $BULK_STATE_DIR, else the user state directory, ~/.local/state/bulk on Linux).")]
ReportOpt = Annotated[Path | None, typer.Option(
    metavar="PATH", rich_help_panel=OUTPUTS, help="Write the per-row report here (.csv or .jsonl).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", rich_help_panel=OUTPUTS, help="No progress output.")]
RetryOpt = Annotated[bool, typer.Option(
    rich_help_panel=STATE, help="On resume, send rows that failed permanently again too.")]
BackupOpt = Annotated[bool, typer.Option(
    "--backup/--no-backup", rich_help_panel=SAFETY,
    help="Record each domain's state before its first write, next to the checkpoint (mode 0600), for `bulk rollback`.")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", rich_help_panel=OUTPUTS, help="Print one JSON object to stdout (shapes: docs/json.md).")]
CanaryOpt = Annotated[int | None, typer.Option(
    metavar="N", rich_help_panel=SAFETY,
    help="Apply only the first N rows still to send, read each back, and stop (exit 0 if all hold the change).")]


def finish_apply(result: RunResult, options: RunOptions, *, report: Path | None, quiet: bool,
                 textfile: RunTextfile | None = None) -> int:
    """The report, the failures file and the summary of an apply run (and its result to the metrics textfile)."""
    if textfile is not None:
        textfile.result = result
    path = failures_path(result.checkpoint, detect_format(options.input_path))
    with Checkpoint.open_readonly(result.checkpoint) as ckpt:
        if report:
            write_report(ckpt, report, fmt="jsonl" if report.suffix == ".jsonl" else "csv")
        # Written anew by every run, or removed: a stale one would list rows that are done since.
        failures = write_failures(ckpt, path)
        by_profile = ckpt.counts_by_profile()
        invalid = ErrorTally()
        for row in ckpt.rows(states=[RowState.INVALID]):
            invalid.add(row["line"], row["message"] or "")
    if not quiet:
        err.print(summary_table(result.counts, result.errors))
        for group in invalid.groups():
            err.print(f"bulk: invalid: {group.describe()}", soft_wrap=True)
        if by_profile:
            err.print(accounts_table(by_profile, result.stopped))
        err.print(f"{result.calls} calls in {result.elapsed:.1f} s, {result.pace:.1f} calls/s")
        if report:
            err.print(f"bulk: report written to {report}")
        if failures:
            err.print(f"bulk: {failures} failed or invalid row(s) written to {path}")
        if options.changes and options.backup and (kept := backup_path(result.checkpoint)).exists():
            err.print(f"bulk: backup {kept} (mode 0600): keep it for as long as the run may have to be rolled "
                      "back; `bulk rollback` needs it", soft_wrap=True)
    if result.unknown:
        err.print(f"bulk: {result.unknown} row(s) with an unknown outcome: bulk could not learn whether the service "
                  "holds their change (see `bulk report --failed-only`); they are not in the failures file. Run the "
                  "same command again to read them back before anything is sent", soft_wrap=True)
    if result.canary is not None and result.halt is None:
        _print_canary(result)
    elif result.interrupted:
        err.print(f"bulk: interrupted; run the same command again to resume (checkpoint {result.checkpoint})")
    elif result.halt is None and result.unfinished:
        err.print(f"bulk: {result.unfinished} row(s) could not be read (to back them up, or to settle whether their "
                  "change landed); run the same command again to settle them")
    return result.exit_code


def _print_canary(result: RunResult) -> None:
    assert result.canary is not None
    canary = result.canary
    for row in canary.rows:
        verdict = "applied and verified" if row.problem is None else row.problem
        out.print(f"canary: line {row.line}: {row.domain}: {verdict}", soft_wrap=True)
    if not canary.rows:
        out.print("canary: no rows left to send")
    elif canary.ok:
        out.print(f"canary ok: {canary.verified}/{len(canary.rows)} applied and verified; "
                  "run the same command without --canary to continue", soft_wrap=True)
    else:
        out.print(f"canary failed: {canary.verified}/{len(canary.rows)} applied and verified; nothing more was sent",
                  soft_wrap=True)


def _options(action: Action, input: Path, pairs: list[str] | None, checkpoint: Path | None, tuning: Tuning, *,
             state: Path | None = None, **kwargs: Any) -> RunOptions:
    warn_literal_secrets(pairs or [], action)
    with errors():
        overrides = parse_overrides(pairs or [], action)
        ckpt = checkpoint or default_checkpoint(input, action, state=state)
        return RunOptions(action=action, input_path=input, checkpoint_path=ckpt, overrides=overrides,
                          profiles=profile_names(), **tuning.fields(), **kwargs)


@app.command("run", epilog=examples.RUN)
@calls_the_api
@leaves_metrics("run")
def run_cmd(
    input: Annotated[Path | None, typer.Argument(
        metavar="INPUT", help="Domain list: .csv with a header, or .jsonl.")] = None,
    action: Annotated[str | None, typer.Option(
        "--action", "-a", metavar="ACTION", rich_help_panel=SEND,
        help="API action, e.g. AddLiveSnapshotNotifyConfig or add-live-snapshot-notify-config.")] = None,
    set_: SetOpt = None,
    checkpoint: CheckpointOpt = None,
    state_dir: StateDirOpt = None,
    if_exists: Annotated[IfExists, typer.Option(
        rich_help_panel=SEND, help="When a config already exists (409): fail, skip or update.")] = IfExists.FAIL,
    report: ReportOpt = None,
    dry_run: Annotated[bool, typer.Option(
        rich_help_panel=SAFETY, help="Validate and show the plan; send nothing.")] = False,
    strict: Annotated[bool, typer.Option(
        rich_help_panel=INPUT, help="Refuse the whole run if any row is invalid.")] = False,
    retry_failed: RetryOpt = False,
    plan: Annotated[Path | None, typer.Option(
        metavar="PATH", rich_help_panel=INPUT,
        help="Apply a plan made by `bulk plan`: only its create and update rows.")] = None,
    max_plan_age: Annotated[float, typer.Option(
        metavar="MINUTES", rich_help_panel=INPUT,
        help="Refuse to start from a plan older than this many minutes.")] = 60.0,
    canary: CanaryOpt = None,
    backup: BackupOpt = True,
    quiet: QuietOpt = False,
    *,
    tuning: Tuning,
    connection: Connection,
    textfile: RunTextfile | None,
) -> None:
    """Apply ACTION to every row of INPUT; run it again to resume."""
    extra: dict[str, Any] = {}
    if plan is not None:
        with errors():
            header, _ = read_plan(plan)
        input, action = input or Path(header.input_path), action or header.action
        # The plan describes the fleet it was made against: the rows go there unless told otherwise.
        connection = connection.filled(header.endpoint, header.region)
        checkpoint = checkpoint or plan_run_checkpoint(plan, state=state_dir)
        extra = {"plan_path": plan, "extra_meta": {"plan_sha256": file_sha256(plan)}}
    if input is None or action is None:
        fail("give INPUT and --action (or --plan PLAN)")
    with errors():
        act = resolve(action)
    options = _options(act, input, set_, checkpoint, tuning, state=state_dir, if_exists=if_exists, strict=strict,
                       retry_failed=retry_failed, canary=canary, backup=backup, **extra)
    if plan is not None:
        with errors():
            # The plan carries its --set values: only its secrets are given again, and checked.
            options = replace(options, overrides=plan_overrides(plan, act, read_plan(plan)[0], options.overrides))
            _check_plan_fits(plan, options, max_plan_age * 60)
    if dry_run:
        raise typer.Exit(_print_dry_run(options))
    raise typer.Exit(execute(options, connection, quiet=quiet,
                              summary=lambda r: finish_apply(r, options, report=report, quiet=quiet,
                                                             textfile=textfile),
                              outputs=(report,)))


def _recorded(checkpoint: Path, connection: Connection) -> Connection:
    """The connection of a command on a finished run: the endpoint and region it recorded, unless given."""
    with errors(), Checkpoint.open_readonly(checkpoint) as ckpt:
        return connection.filled(*recorded_connection(ckpt.meta()))


def _check_plan_fits(plan: Path, options: RunOptions, max_age: float) -> None:
    header, _ = read_plan(plan)
    if options.action.name != header.action:
        raise PlanError(f"plan {plan} is for {header.action}, not {options.action.name}")
    if not options.input_path.is_file() or file_sha256(options.input_path) != header.input_sha256:
        raise PlanError(f"the input {options.input_path} changed since plan {plan} was made; make a new plan")
    check_plan(plan, header, overrides=redact_overrides(options.action, options.overrides),
               max_age=None if _wrote(options.checkpoint_path) else max_age)


def _wrote(checkpoint: Path) -> bool:
    """Whether a run of ``checkpoint`` has sent a write: it resumes whatever the plan's age (not one that
    only ingested its rows, or only met a dead endpoint)."""
    if not checkpoint.exists():
        return False
    try:
        with Checkpoint.open_readonly(checkpoint) as ckpt:
            return any(r["attempts"] or r["reached"] for r in ckpt.rows())
    except CheckpointError:
        return True  # started by an older bulk, which cannot say: it resumes as it would have



def _print_dry_run(options: RunOptions) -> int:
    with errors():
        estimate = dry_run(options)
    if estimate.validation is None:
        out.print(f"checkpoint {options.checkpoint_path}: " + ", ".join(f"{k} {v}" for k, v in estimate.counts.items()))
    else:
        print_errors(estimate.validation.errors)
        out.print(estimate.validation.describe())
    out.print(f"dry run: {estimate.to_send} {options.action.name} call(s) to send, about {estimate.seconds:.0f} s "
              f"at {options.qps:g} calls/s; nothing sent")
    return Exit.FAILED if estimate.counts.get("invalid") else Exit.OK


@app.command("validate", epilog=examples.VALIDATE)
def validate_cmd(input: Annotated[Path, typer.Argument(metavar="INPUT", help="Domain list: .csv or .jsonl.")],
                 action: ActionOpt,
                 set_: SetOpt = None) -> None:
    """Check every row of INPUT for ACTION; print each bad row. Sends nothing."""
    with errors():
        act = resolve(action)
        summary = validate_file(input, act, overrides=parse_overrides(set_ or [], act), profiles=profile_names())
    print_errors(summary.errors)
    out.print(summary.describe())
    raise typer.Exit(Exit.FAILED if summary.bad_count else Exit.OK)


@app.command("report", epilog=examples.REPORT)
def report_cmd(
    checkpoint: RunCheckpointArg,
    failed_only: Annotated[bool, typer.Option(help="Only failed, invalid and unknown rows.")] = False,
    format: Annotated[Literal["csv", "jsonl"], typer.Option("--format", help="csv or jsonl.")] = "csv",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="PATH", help="File to write (default: stdout).")] = None,
    html: Annotated[Path | None, typer.Option(
        metavar="PATH",
        help="Write the run as one self-contained HTML page: timeline charts, summary, rows that need attention "
             "(needs bulk[report]); the per-row report then goes only to --output, if given.")] = None,
) -> None:
    """Per-row outcomes of a run, with RequestIds."""
    with errors(), Checkpoint.open_readonly(checkpoint) as ckpt:
        if html is not None:
            write_html(ckpt, html)
            err.print(f"bulk: HTML report written to {html}")
        if html is None or output is not None:
            write_report(ckpt, output, fmt=format, failed_only=failed_only)


@app.command("plan", epilog=examples.PLAN)
@calls_the_api
def plan_cmd(
    input: Annotated[Path, typer.Argument(metavar="INPUT", help="Domain list: .csv or .jsonl, as for run.")],
    action: ActionOpt,
    set_: SetOpt = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="PATH", rich_help_panel=OUTPUTS,
        help="Plan file (default: INPUT.ACTION.plan.jsonl in the state directory).")] = None,
    checkpoint: CheckpointOpt = None,
    state_dir: StateDirOpt = None,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
    *,
    tuning: Tuning,
    connection: Connection,
) -> None:
    """Read every domain's current state and write what ACTION would change: create, update, noop, conflict."""
    with errors():
        act = resolve(action)
    plan_path = output or default_plan_path(input, act, state=state_dir)
    # Not PLAN.ckpt: that one belongs to `bulk run --plan PLAN`.
    ckpt = checkpoint or plan_reads_checkpoint(plan_path, state=state_dir)
    with errors():
        _drop_finished(ckpt)
    options = _options(act, input, set_, ckpt, tuning, mode=Mode.PLAN)

    def summary(result: RunResult) -> int:
        """A plan that was made exits 0, conflicts or not: they are in it for the operator."""
        if result.halt is not None or result.unfinished:
            err.print(f"bulk: the plan is not complete; run the same command again to finish it (checkpoint {ckpt})")
            return result.exit_code
        with Checkpoint.open_readonly(ckpt) as c:
            kinds = plan_from_checkpoint(c, plan_path)
        if json:
            print_json({"plan": str(plan_path), "action": act.name, "input": str(input),
                        "rows": {kind: kinds.get(kind, 0) for kind in KINDS},
                        "apply": f"bulk run --plan {plan_path}"})
            return Exit.OK
        for entry in read_plan(plan_path)[1].values():  # old -> new, field by field, keys as fingerprints
            if entry.changes:
                out.print(f"line {entry.line}: {entry.domain}: {entry.kind}: {entry.changes}", soft_wrap=True)
        table = Table(title=f"bulk plan: {act.name}", header_style="bold")
        table.add_column("rows")
        table.add_column("count", justify="right")
        for kind in KINDS:
            table.add_row(kind, str(kinds.get(kind, 0)))
        out.print(table)
        out.print(f"plan written to {plan_path}; apply it with: bulk run --plan {plan_path}")
        return Exit.OK

    raise typer.Exit(execute(options, connection, quiet=quiet, summary=summary, outputs=(plan_path,)))


def _drop_finished(ckpt: Path) -> None:
    """A plan describes the state now: a finished plan run is not resumed but made anew."""
    if ckpt.exists():
        with Checkpoint.open_readonly(ckpt) as c:
            counts = c.counts()
        if counts["pending"] + counts["sending"] == 0:
            remove_checkpoint(ckpt)


@app.command("verify", epilog=examples.VERIFY)
@calls_the_api
def verify_cmd(
    checkpoint: Annotated[Path, typer.Argument(
        metavar="CHECKPOINT", help="Checkpoint of a finished run, or its run's directory.", callback=run_checkpoint)],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="NAME=VALUE", rich_help_panel=INPUT,
        help="Secret --set values of the run, given again (they are never stored).")] = None,
    report: ReportOpt = None,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
    *,
    tuning: Tuning,
    connection: Connection,
) -> None:
    """Read back every row a run recorded done; report drift (exit 1 if any)."""
    with errors():
        warn_literal_secrets(set_ or [], recorded_action(verify_action(checkpoint)))
        options = verify_options(checkpoint, given=set_ or [], tuning=tuning, profiles=profile_names())

    def summary(result: RunResult) -> int:
        """Write the report, list each drifted row and the totals; return the run's exit code."""
        if report:
            with Checkpoint.open_readonly(options.checkpoint_path) as c:
                write_report(c, report, fmt="jsonl" if report.suffix == ".jsonl" else "csv")
        drift = list(drifted(options.checkpoint_path))
        if json:
            print_json({"checkpoint": str(checkpoint), "verified": result.counts["done"] + len(drift),
                        "in_sync": result.counts["done"], "complete": result.halt is None and not result.unfinished,
                        "drifted": [{k: row[k] for k in ("line", "domain", "code", "message")} for row in drift],
                        "exit_code": int(result.exit_code)})
            return result.exit_code
        for row in drift:
            out.print(f"line {row['line']}: {row['domain']}: {row['code']}: {row['message']}", soft_wrap=True)
        out.print(f"verified {result.counts['done'] + len(drift)} row(s): {result.counts['done']} in sync, "
                  f"{len(drift)} drifted or unreadable")
        return result.exit_code

    raise typer.Exit(execute(options, _recorded(checkpoint, connection), quiet=quiet, summary=summary,
                             outputs=(report,)))


@app.command("rollback", epilog=examples.ROLLBACK)
@calls_the_api
@leaves_metrics("rollback")
def rollback_cmd(
    checkpoint: Annotated[Path, typer.Argument(
        metavar="CHECKPOINT",
        help="Checkpoint of the run (or rotation) to undo, or its run's directory.", callback=run_checkpoint)],
    output: Annotated[Path | None, typer.Option(
        "--checkpoint", metavar="PATH", rich_help_panel=STATE,
        help="The rollback's own checkpoint (default: CHECKPOINT with .rollback.ckpt).")] = None,
    retry_failed: RetryOpt = False,
    backup: BackupOpt = True,
    force: Annotated[bool, typer.Option(
        "--force", rich_help_panel=SAFETY,
        help="Restore also the domains another client changed since the run wrote them "
             "(rows left 'conflict').")] = False,
    report: ReportOpt = None,
    quiet: QuietOpt = False,
    *,
    tuning: Tuning,
    connection: Connection,
    textfile: RunTextfile | None,
) -> None:
    """Put every domain a run changed back as its backup recorded it; run it again to resume.

    A domain that had no config gets Delete, one that had a config gets it
    back (old keys included), if it still holds what the run wrote: one that
    another client changed since is left alone and reported as a conflict
    (exit 1; --force restores it anyway). The run is marked rolled back and
    is never resumed. Check the result with `bulk verify` on the rollback's
    checkpoint.
    """
    with errors():
        rollback = plan_rollback(checkpoint, output=output, force=force, tuning=tuning, retry_failed=retry_failed,
                                 backup=backup,
                                 profiles=profile_names())
    with rollback:  # the undone run's checkpoint stays held until the rollback ends
        raise typer.Exit(_roll_back(rollback, _recorded(checkpoint, connection), report=report, quiet=quiet,
                                    textfile=textfile))


def _roll_back(rollback: Rollback, connection: Connection, *, report: Path | None, quiet: bool,
               textfile: RunTextfile | None) -> int:
    options = rollback.options
    if not quiet:
        err.print(f"bulk: rolling back {rollback.rows} domain(s) from {options.input_path}")
    if rollback.unrecorded:
        shown = ", ".join(rollback.unrecorded[:5]) + (", ..." if len(rollback.unrecorded) > 5 else "")
        err.print(f"bulk: {len(rollback.unrecorded)} domain(s) the run changed have no recorded prior state "
                  f"(a run with --no-backup) and are left as they are: {shown}", soft_wrap=True)

    def summary(result: RunResult) -> int:
        """Sum up as an apply run does, then the conflicts and the domains left with no config.

        An otherwise clean rollback exits 1 when some domains had no recorded prior state.
        """
        code = finish_apply(result, options, report=report, quiet=quiet, textfile=textfile)
        with Checkpoint.open_readonly(result.checkpoint) as c:
            emptied = [r for r in c.rows(states=[RowState.FAILED]) if r["code"] == NO_CONFIG_LEFT]
        if conflicts := result.counts.get("conflict"):
            err.print(f"bulk: {conflicts} domain(s) were changed by another client since the run wrote them and "
                      "were left as they are (rows 'conflict', both values in the report); `bulk rollback --force` "
                      "restores them anyway", soft_wrap=True)
        if emptied:
            shown = ", ".join(r["domain"] or "" for r in emptied[:5]) + (", ..." if len(emptied) > 5 else "")
            err.print(f"bulk: {len(emptied)} domain(s) were deleted and could not be given their config back: they "
                      f"have NO config now ({shown}); the report spells out each one's prior config. Run the same "
                      "command again to retry them", soft_wrap=True)
        return Exit.FAILED if code == Exit.OK and rollback.unrecorded else code

    return execute(options, connection, quiet=quiet, summary=summary, outputs=(report,))
