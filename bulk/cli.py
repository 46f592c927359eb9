"""The ``bulk`` command: arguments and printing over the library.

    bulk run domains.csv --action AddLiveSnapshotNotifyConfig --set NotifyUrl=https://cb.example.com/snap
    bulk status domains.csv.add-live-snapshot-notify-config.ckpt --json

Exit codes (``bulk.options.Exit``): 0 every valid row done; 1 some rows
failed or were invalid; 2 usage, input, credential or configuration error
(before any call, or a set-up the service refuses); 3 stopped before the
end (interrupted, a local fault such as a full disk, or outcomes still to
be read back): run the same command again to resume; 4 checkpoint in use by
another run; 70 internal error (a bug; the checkpoint stays consistent); 130 aborted
(a second Ctrl-C; the checkpoint stays consistent).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import callback, engine
from .actions import Action, resolve
from .checkpoint import Checkpoint, CheckpointBusy, CheckpointError
from .client import DEFAULT_ENDPOINT, DEFAULT_REGION, LiveClient
from .credentials import CredentialsError, load_credentials
from .files import LocalFault
from .inputs import BadRow, InputError, detect_format, file_sha256, parse_overrides, validate_file
from .keys import KeysFileError, read_keys_file
from .options import Exit, HaltKind, Mode, RunOptions, RunResult, RunStats
from .plan import KINDS, PlanError, check_plan, read_plan
from .progress import show_progress
from .report import failures_path, plan_from_checkpoint, summary_table, write_failures, write_report
from .rotate import VIA, RotationError, plan_rotation, prepare_rotation
from .verify import VerifyError, drifted, verify_options

__all__ = ["app", "main"]

EXIT_INTERNAL = 70

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    help="Apply snapshot-callback changes to thousands of ApsaraVideo Live domains, paced, retried, resumable.",
)
sim_app = typer.Typer(no_args_is_help=True, help="A local simulator of the Live API, for rehearsals and tests.")
callback_app = typer.Typer(no_args_is_help=True, help="Snapshot callback signatures: check a receiver, make test headers.")
app.add_typer(sim_app, name="sim")
app.add_typer(callback_app, name="callback")

# No markup: row reasons and file names are data, and may hold brackets.
out = Console(highlight=False, markup=False)
err = Console(stderr=True, highlight=False, markup=False)


def main() -> None:
    """Entry point: an unexpected error is one line and a debug log, never a screen of locals."""
    try:
        app()
    except KeyboardInterrupt:  # before the command's own handler was in place: nothing was sent
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001  (the last line of defence)
        fd, path = tempfile.mkstemp(prefix="bulk-debug-", suffix=".log")  # owner-only
        with os.fdopen(fd, "w") as log:
            log.write(f"bulk {' '.join(sys.argv[1:2])} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
            traceback.print_exception(exc, file=log)  # no locals: the traceback holds code, not values
        err.print(f"bulk: internal error: {type(exc).__name__}; the checkpoint is consistent. Details: {path}")
        sys.exit(EXIT_INTERNAL)


def _fail(message: str, code: int = Exit.USAGE) -> NoReturn:
    err.print(f"[bold red]bulk: error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Library errors -> one line and the exit code that says what to do."""
    try:
        yield
    except CheckpointBusy as exc:
        _fail(str(exc), Exit.BUSY)
    except LocalFault as exc:
        _fail(f"{exc}; fix it and run the same command again", Exit.INTERRUPTED)
    except RotationError as exc:
        _print_bad(exc.bad[:20], len(exc.bad))
        _fail(str(exc))
    except (CheckpointError, CredentialsError, InputError, KeysFileError, PlanError, VerifyError, ValueError) as exc:
        _fail(str(exc))
    except KeyError as exc:  # resolve(): an unknown action
        _fail(str(exc.args[0]))


def _print_bad(bad: list[BadRow], count: int) -> None:
    for row in bad:
        out.print(f"line {row.line}: {row.reason}", soft_wrap=True)
    if count > len(bad):
        out.print(f"... and {count - len(bad)} more invalid row(s)")


# Options shared by the commands that call the API.
ActionOpt = Annotated[str, typer.Option("--action", "-a", help="API action, e.g. AddLiveSnapshotNotifyConfig or add-live-snapshot-notify-config.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Name=Value given to every row (repeatable); Name=@FILE or Name=@env:VAR for secrets.")]
CheckpointOpt = Annotated[Path | None, typer.Option(help="Checkpoint file (default: derived from INPUT).")]
QpsOpt = Annotated[float, typer.Option(help="Calls per second allowed per account and operation.")]
ConcurrencyOpt = Annotated[int | None, typer.Option(help="Ceiling of calls in flight (default: from --qps and --timeout).")]
EndpointOpt = Annotated[str, typer.Option(help="API endpoint URL.")]
RegionOpt = Annotated[str, typer.Option(help="RegionId sent with every call (a RegionId column overrides it).")]
SignatureOpt = Annotated[str, typer.Option(help="Signature scheme: v3 (ACS3-HMAC-SHA256) or v1 (HMAC-SHA1).")]
ProfileOpt = Annotated[str | None, typer.Option(help="aliyun CLI profile to take credentials from.")]
AttemptsOpt = Annotated[int, typer.Option(help="Attempts per call for transient errors.")]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds per attempt.")]
ReportOpt = Annotated[Path | None, typer.Option(help="Write the per-row report here (.csv or .jsonl).")]
LogOpt = Annotated[Path | None, typer.Option(help="Append one JSON line per attempt here.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
RetryOpt = Annotated[bool, typer.Option(help="On resume, send rows that failed permanently again too.")]


@dataclass(frozen=True, slots=True)
class _Connection:
    endpoint: str
    region: str
    signature: str
    profile: str | None


def _run_async(body: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    """Run with Ctrl-C / SIGTERM turned into a graceful stop; a second one aborts."""

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                raise KeyboardInterrupt
            err.print("bulk: stopping: finishing calls in flight (press Ctrl-C again to abort)")
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        return await body(stop)

    return asyncio.run(main())


def _execute(options: RunOptions, connection: _Connection, *, quiet: bool,
             summary: Callable[[RunResult], int]) -> int:
    """Credentials, client, progress and the engine; then ``summary`` prints and picks the exit code."""

    async def body(stop: asyncio.Event) -> int:
        with _errors():
            credentials = await load_credentials(profile=connection.profile)
            client = LiveClient(credentials=credentials, endpoint=connection.endpoint, region=connection.region,
                                signature=connection.signature, timeout=options.timeout, connections=options.workers)
            if not quiet:
                err.print(f"bulk: checkpoint {options.checkpoint_path}")
            stats = RunStats()
            async with client, show_progress(stats, mode="quiet" if quiet else "auto"):
                result = await engine.run(options, client=client, stop=stop, stats=stats)
        if result.halt is not None and result.halt.kind is not HaltKind.INTERRUPTED:
            _print_halt(result)
        with _errors():
            return summary(result)

    return _run_async(body)


def _print_halt(result: RunResult) -> None:
    assert result.halt is not None
    kind, message = result.halt.kind, result.halt.message
    then = "fix it and run the same command again to resume"
    if kind is HaltKind.LOCAL_FAULT:
        err.print(f"bulk: stopped: {message}; rows in flight will be read back. {then.capitalize()}.", soft_wrap=True)
    else:
        err.print(f"bulk: error: {message}; nothing more was sent. {then.capitalize()}.", soft_wrap=True)


def _finish(result: RunResult, options: RunOptions, *, report: Path | None, quiet: bool) -> int:
    """The report, the failures file and the summary of an apply run."""
    path, failures = None, 0
    with Checkpoint.open_readonly(result.checkpoint) as ckpt:
        if report:
            write_report(ckpt, report, fmt="jsonl" if report.suffix == ".jsonl" else "csv")
        if result.counts.get("failed") or result.counts.get("invalid"):
            path = failures_path(result.checkpoint, detect_format(options.input_path))
            failures = write_failures(ckpt, path)
    if not quiet:
        err.print(summary_table(result.counts, result.errors))
        err.print(f"{result.calls} calls in {result.elapsed:.1f} s, {result.pace:.1f} calls/s")
        if report:
            err.print(f"bulk: report written to {report}")
        if failures:
            err.print(f"bulk: {failures} failed or invalid row(s) written to {path}")
    if result.interrupted:
        err.print(f"bulk: interrupted; run the same command again to resume (checkpoint {result.checkpoint})")
    elif result.halt is None and result.unfinished:
        err.print(f"bulk: {result.unfinished} row(s) could not be read back to settle whether their change landed; "
                  "run the same command again to settle them")
    return result.exit_code


def _options(action: Action, input: Path, pairs: list[str] | None, checkpoint: Path | None, **kwargs: Any) -> RunOptions:
    with _errors():
        overrides = parse_overrides(pairs or [], action)
        ckpt = checkpoint or engine.default_checkpoint(input, action)
        return RunOptions(action=action, input_path=input, checkpoint_path=ckpt, overrides=overrides, **kwargs)


@app.command("run")
def run_cmd(
    input: Annotated[Path | None, typer.Argument(help="Domain list: .csv with a header, or .jsonl.")] = None,
    action: Annotated[str | None, typer.Option("--action", "-a", help="API action, e.g. AddLiveSnapshotNotifyConfig or add-live-snapshot-notify-config.")] = None,
    set_: SetOpt = None,
    checkpoint: CheckpointOpt = None,
    qps: QpsOpt = 30.0,
    concurrency: ConcurrencyOpt = None,
    endpoint: EndpointOpt = DEFAULT_ENDPOINT,
    region: RegionOpt = DEFAULT_REGION,
    signature: SignatureOpt = "v3",
    profile: ProfileOpt = None,
    max_attempts: AttemptsOpt = 8,
    timeout: TimeoutOpt = 10.0,
    if_exists: Annotated[str, typer.Option(help="When a config already exists (409): fail, skip or update.")] = "fail",
    report: ReportOpt = None,
    log_file: LogOpt = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and show the plan; send nothing.")] = False,
    strict: Annotated[bool, typer.Option(help="Refuse the whole run if any row is invalid.")] = False,
    retry_failed: RetryOpt = False,
    plan: Annotated[Path | None, typer.Option(help="Apply a plan made by `bulk plan`: only its create and update rows.")] = None,
    max_plan_age: Annotated[float, typer.Option(help="Refuse to start from a plan older than this many minutes.")] = 60.0,
    quiet: QuietOpt = False,
) -> None:
    """Apply ACTION to every row of INPUT; run it again to resume."""
    extra: dict[str, Any] = {}
    if plan is not None:
        with _errors():
            header, _ = read_plan(plan)
        input, action = input or Path(header.input_path), action or header.action
        checkpoint = checkpoint or plan.with_name(plan.name + ".ckpt")
        extra = {"plan_path": plan, "extra_meta": {"plan_sha256": file_sha256(plan)}}
    if input is None or action is None:
        _fail("give INPUT and --action (or --plan PLAN)")
    with _errors():
        act = resolve(action)
    options = _options(act, input, set_, checkpoint, qps=qps, concurrency=concurrency, max_attempts=max_attempts,
                       timeout=timeout, if_exists=if_exists, strict=strict, retry_failed=retry_failed,
                       log_file=log_file, **extra)
    if plan is not None:
        with _errors():
            _check_plan_fits(plan, options, max_plan_age * 60)
    if dry_run:
        raise typer.Exit(_print_dry_run(options))
    connection = _Connection(endpoint, region, signature, profile)
    raise typer.Exit(_execute(options, connection, quiet=quiet,
                              summary=lambda r: _finish(r, options, report=report, quiet=quiet)))


def _check_plan_fits(plan: Path, options: RunOptions, max_age: float) -> None:
    header, _ = read_plan(plan)
    if options.action.name != header.action:
        raise PlanError(f"plan {plan} is for {header.action}, not {options.action.name}")
    if not options.input_path.is_file() or file_sha256(options.input_path) != header.input_sha256:
        raise PlanError(f"the input {options.input_path} changed since plan {plan} was made; make a new plan")
    started = options.checkpoint_path.exists()  # a started run resumes whatever the plan's age
    check_plan(plan, header, overrides=engine.redact_overrides(options.action, options.overrides),
               max_age=None if started else max_age)


def _print_dry_run(options: RunOptions) -> int:
    with _errors():
        estimate = engine.dry_run(options)
    if estimate.resumed:
        out.print(f"checkpoint {options.checkpoint_path}: " + ", ".join(f"{k} {v}" for k, v in estimate.counts.items()))
    else:
        _print_bad(estimate.bad, estimate.counts["invalid"])
        total = estimate.counts["pending"] + estimate.counts["invalid"]
        out.print(f"{total} rows: {estimate.counts['pending']} valid, {estimate.counts['invalid']} invalid")
    out.print(f"dry run: {estimate.to_send} {options.action.name} call(s) to send, about {estimate.seconds:.0f} s "
              f"at {options.qps:g} calls/s; nothing sent")
    return Exit.FAILED if estimate.counts.get("invalid") else Exit.OK


@app.command("validate")
def validate_cmd(input: Annotated[Path, typer.Argument(help="Domain list: .csv or .jsonl.")], action: ActionOpt,
                 set_: SetOpt = None) -> None:
    """Check every row of INPUT for ACTION; print each bad row. Sends nothing."""
    with _errors():
        act = resolve(action)
        summary = validate_file(input, act, overrides=parse_overrides(set_ or [], act))
    _print_bad(summary.bad, summary.bad_count)
    out.print(f"{summary.total} rows: {summary.valid} valid, {summary.bad_count} invalid")
    raise typer.Exit(Exit.FAILED if summary.bad_count else Exit.OK)


@app.command("status")
def status_cmd(checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file of a run.")],
               json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False) -> None:
    """Counts by outcome of a run (also while it runs)."""
    with _errors(), Checkpoint.open_readonly(checkpoint) as ckpt:
        meta, counts, errors = ckpt.meta() or {}, ckpt.counts(), ckpt.error_counts()
    status = {"action": meta.get("action"), "input": meta.get("input_path"), "total": sum(counts.values()),
              **{k: counts[k] for k in ("done", "skipped", "failed", "invalid", "pending", "sending")},
              "errors": errors}
    if json:
        sys.stdout.write(orjson.dumps(status).decode() + "\n")
        return
    out.print(f"{status['action']} on {status['input']}")
    for key in ("total", "done", "skipped", "failed", "invalid", "pending", "sending"):
        out.print(f"  {key:8} {status[key]}")
    for code, n in errors.items():
        out.print(f"  error {code}: {n}")


@app.command("report")
def report_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file of a run.")],
    failed_only: Annotated[bool, typer.Option(help="Only failed and invalid rows.")] = False,
    format: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Per-row outcomes of a run, with RequestIds."""
    with _errors(), Checkpoint.open_readonly(checkpoint) as ckpt:
        write_report(ckpt, output, fmt=format, failed_only=failed_only)


@app.command("plan")
def plan_cmd(
    input: Annotated[Path, typer.Argument(help="Domain list: .csv or .jsonl, as for run.")],
    action: ActionOpt,
    set_: SetOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Plan file (default: INPUT.<action>.plan.jsonl).")] = None,
    checkpoint: CheckpointOpt = None,
    qps: QpsOpt = 30.0,
    concurrency: ConcurrencyOpt = None,
    endpoint: EndpointOpt = DEFAULT_ENDPOINT,
    region: RegionOpt = DEFAULT_REGION,
    signature: SignatureOpt = "v3",
    profile: ProfileOpt = None,
    max_attempts: AttemptsOpt = 8,
    timeout: TimeoutOpt = 10.0,
    log_file: LogOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Read every domain's current state and write what ACTION would change: create, update, noop, conflict."""
    with _errors():
        act = resolve(action)
    plan_path = output or input.with_name(f"{input.name}.{act.kebab}.plan.jsonl")
    # Not PLAN.ckpt: that one belongs to `bulk run --plan PLAN`.
    ckpt = checkpoint or plan_path.with_name(plan_path.name + ".reads.ckpt")
    with _errors():
        _drop_finished(ckpt)
    options = _options(act, input, set_, ckpt, qps=qps, concurrency=concurrency, max_attempts=max_attempts,
                       timeout=timeout, log_file=log_file, mode=Mode.PLAN)

    def summary(result: RunResult) -> int:
        """A plan that was made exits 0, conflicts or not: they are in it for the operator."""
        if result.halt is not None or result.unfinished:
            err.print(f"bulk: the plan is not complete; run the same command again to finish it (checkpoint {ckpt})")
            return result.exit_code
        with Checkpoint.open_readonly(ckpt) as c:
            kinds = plan_from_checkpoint(c, plan_path)
        table = Table(title=f"bulk plan: {act.name}", header_style="bold")
        table.add_column("rows")
        table.add_column("count", justify="right")
        for kind in KINDS:
            table.add_row(kind, str(kinds.get(kind, 0)))
        out.print(table)
        out.print(f"plan written to {plan_path}; apply it with: bulk run --plan {plan_path}")
        return Exit.OK

    raise typer.Exit(_execute(options, _Connection(endpoint, region, signature, profile), quiet=quiet, summary=summary))


def _drop_finished(ckpt: Path) -> None:
    """A plan describes the state now: a finished plan run is not resumed but made anew."""
    if ckpt.exists():
        with Checkpoint.open_readonly(ckpt) as c:
            counts = c.counts()
        if counts["pending"] + counts["sending"] == 0:
            engine.remove_checkpoint(ckpt)


@app.command("verify")
def verify_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint of a finished run.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Secret --set values of the run, given again (they are never stored).")] = None,
    qps: QpsOpt = 30.0,
    concurrency: ConcurrencyOpt = None,
    endpoint: EndpointOpt = DEFAULT_ENDPOINT,
    region: RegionOpt = DEFAULT_REGION,
    signature: SignatureOpt = "v3",
    profile: ProfileOpt = None,
    max_attempts: AttemptsOpt = 8,
    timeout: TimeoutOpt = 10.0,
    report: ReportOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Read back every row a run recorded done; report drift (exit 1 if any)."""
    with _errors():
        options = verify_options(checkpoint, given=set_ or [], qps=qps, concurrency=concurrency,
                                 max_attempts=max_attempts, timeout=timeout)

    def summary(result: RunResult) -> int:
        if report:
            with Checkpoint.open_readonly(options.checkpoint_path) as c:
                write_report(c, report, fmt="jsonl" if report.suffix == ".jsonl" else "csv")
        drift = list(drifted(options.checkpoint_path))
        for row in drift:
            out.print(f"line {row['line']}: {row['domain']}: {row['code']}: {row['message']}", soft_wrap=True)
        out.print(f"verified {result.counts['done'] + len(drift)} row(s): {result.counts['done']} in sync, "
                  f"{len(drift)} drifted or unreadable")
        return result.exit_code

    raise typer.Exit(_execute(options, _Connection(endpoint, region, signature, profile), quiet=quiet, summary=summary))


@app.command("rotate")
def rotate_cmd(
    input: Annotated[Path, typer.Argument(help="Domains: .csv with DomainName, .jsonl, or one name per line.")],
    keys_out: Annotated[Path, typer.Option(help="Keys file to write (CSV, mode 0600), e.g. keys-2026-11.csv.")],
    key_length: Annotated[int, typer.Option(help="Key length, 16 to 32.")] = 32,
    same_key: Annotated[bool, typer.Option(help="One key for every domain.")] = False,
    via: Annotated[str, typer.Option(help=f"{' or '.join(VIA)}.")] = "set-callback-auth",
    checkpoint: CheckpointOpt = None,
    qps: QpsOpt = 30.0,
    concurrency: ConcurrencyOpt = None,
    endpoint: EndpointOpt = DEFAULT_ENDPOINT,
    region: RegionOpt = DEFAULT_REGION,
    signature: SignatureOpt = "v3",
    profile: ProfileOpt = None,
    max_attempts: AttemptsOpt = 8,
    timeout: TimeoutOpt = 10.0,
    retry_failed: RetryOpt = False,
    report: ReportOpt = None,
    log_file: LogOpt = None,
    prepare: Annotated[bool, typer.Option(help="Only write the keys file and the checkpoint; send nothing. Run again without it to apply.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Give every domain a new callback auth key: keys file first, then the calls.

    Safe order: `--prepare`, give the receiver the new keys file, run the same
    command without `--prepare`, check with `bulk verify`, then wait for the old
    keys to drain (`bulk callback drain`) before retiring them.
    """
    with _errors():
        rotation = plan_rotation(input, keys_out, via=via, key_length=key_length, same_key=same_key,
                                 checkpoint=checkpoint, qps=qps, concurrency=concurrency, max_attempts=max_attempts,
                                 timeout=timeout, log_file=log_file, retry_failed=retry_failed)
    if not quiet:
        err.print(f"bulk: keys file {keys_out} ({rotation.domains} domain(s), mode 0600, "
                  f"sha256 {rotation.keys_sha256[:12]})")
    options = rotation.options
    if prepare:
        with _errors():
            prepare_rotation(rotation)
        out.print(f"prepared: give the receiver {keys_out}, then run this command again without --prepare")
        raise typer.Exit(Exit.OK)
    raise typer.Exit(_execute(options, _Connection(endpoint, region, signature, profile), quiet=quiet,
                              summary=lambda r: _finish(r, options, report=report, quiet=quiet)))


@sim_app.command("serve")
def sim_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8787,
    qps: Annotated[float, typer.Option(help="Quota per AccessKey and action.")] = 30.0,
    latency_ms: Annotated[float, typer.Option(help="Mean added latency.")] = 0.0,
    latency_jitter_ms: Annotated[float, typer.Option(help="Spread of the added latency.")] = 0.0,
    error_rate: Annotated[float, typer.Option(help="Share of calls that get an injected fault.")] = 0.0,
    faults: Annotated[str, typer.Option(help="Fault kinds, comma-separated.")] = "internal_before,internal_after,unavailable,throttle,drop",
    seed: Annotated[int | None, typer.Option(help="Seed for faults and latency.")] = None,
    missing: Annotated[list[str] | None, typer.Option(help="Domain pattern that does not exist (repeatable).")] = None,
    access_key_id: Annotated[str | None, typer.Option(help="Accepted AccessKey ID (default: generated).")] = None,
    access_key_secret: Annotated[str | None, typer.Option(help="Its secret (default: generated).", envvar="BULK_SIM_ACCESS_KEY_SECRET")] = None,
    state: Annotated[Path | None, typer.Option(help="Keep configs in this file across restarts.")] = None,
) -> None:
    """Serve the snapshot-callback API on HOST:PORT until Ctrl-C."""
    import secrets

    from .simulator import SimConfig, serve_forever

    generated = access_key_id is None and access_key_secret is None
    if generated:
        access_key_id, access_key_secret = "LTAIsim" + secrets.token_hex(6), secrets.token_urlsafe(24)
    elif not (access_key_id and access_key_secret):
        _fail("give both --access-key-id and --access-key-secret, or neither")
    with _errors():
        config = SimConfig(
            access_keys={access_key_id: access_key_secret},  # type: ignore[dict-item]
            qps=qps, latency_ms=latency_ms, latency_jitter_ms=latency_jitter_ms, error_rate=error_rate,
            fault_kinds=tuple(f.strip() for f in faults.split(",") if f.strip()), seed=seed,
            missing_domains=tuple(missing or ()), state_file=state,
        )

    def ready(url: str) -> None:
        out.print(url)
        if generated:
            # Throwaway credentials made up for this simulator only: printing them is the point.
            out.print(f"export ALIBABA_CLOUD_ACCESS_KEY_ID={access_key_id}")
            out.print(f"export ALIBABA_CLOUD_ACCESS_KEY_SECRET={access_key_secret}")
        sys.stdout.flush()

    try:
        asyncio.run(serve_forever(config, host=host, port=port, on_ready=ready))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass  # Ctrl-C or SIGTERM: the state was saved on the way out
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror}")


@callback_app.command("verify")
def callback_verify(
    host: Annotated[str, typer.Option(help="Host part of the NotifyUrl.")],
    timestamp: Annotated[str, typer.Option(help="ALI-LIVE-TIMESTAMP value.")],
    signature: Annotated[str, typer.Option(help="ALI-LIVE-SIGNATURE value.")],
    key: Annotated[list[str] | None, typer.Option(help="A key to accept (repeatable).", envvar="BULK_CALLBACK_KEY")] = None,
    keys_file: Annotated[list[Path] | None, typer.Option(help="A keys file whose keys to accept (repeatable).")] = None,
    max_skew: Annotated[int, typer.Option(help="Seconds a timestamp may be off.")] = 300,
) -> None:
    """Exit 0 when the signature is valid for one of the keys; 1 with the reason otherwise."""
    keys = list(key or [])
    with _errors():
        for path in keys_file or []:
            keys.extend(read_keys_file(path)[1].values())
    if not keys:
        _fail("give --key or --keys-file")
    verdict = callback.verify(callback.host_of(host), timestamp, signature, keys, max_skew=max_skew)
    if verdict.ok:
        out.print("valid")
        return
    err.print(f"invalid: {verdict.reason}")
    raise typer.Exit(Exit.FAILED)


@callback_app.command("sign")
def callback_sign(
    host: Annotated[str, typer.Option(help="Host part of the NotifyUrl.")],
    key: Annotated[str, typer.Option(help="The key.", envvar="BULK_CALLBACK_KEY")],
    timestamp: Annotated[int | None, typer.Option(help="Unix seconds (default: now).")] = None,
) -> None:
    """Print the two headers a callback to HOST would carry, for testing a receiver."""
    for name, value in callback.sign(callback.host_of(host), key, timestamp=timestamp).items():
        out.print(f"{name}: {value}")
