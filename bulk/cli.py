"""The ``bulk`` command: a thin typer layer over the library.

    bulk run domains.csv --action AddLiveSnapshotNotifyConfig --set NotifyUrl=https://cb.example.com/snap
    bulk status domains.csv.add-live-snapshot-notify-config.ckpt --json

Exit codes: 0 every valid row done; 1 some rows failed or were invalid;
2 usage, input, credential or configuration error before any call;
3 interrupted (resumable); 4 checkpoint in use by another run.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
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
from .inputs import InputError, Row, detect_format, file_sha256, parse_overrides, read_rows, validate_file
from .keys import KEY_COLUMNS, KeysFileError, load_or_create_keys, read_keys_file
from .pacing import Pacer
from .plan import KINDS, PlanEntry, PlanError, PlanHeader, read_plan
from .progress import show_progress
from .report import failures_path, plan_from_checkpoint, summary_table, write_failures, write_report

__all__ = ["app", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_BUSY = 0, 1, 2, 3, 4

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Apply snapshot-callback changes to thousands of ApsaraVideo Live domains, paced, retried, resumable.",
)
sim_app = typer.Typer(no_args_is_help=True, help="A local simulator of the Live API, for rehearsals and tests.")
app.add_typer(sim_app, name="sim")

# No markup: row reasons and file names are data, and may hold brackets.
out = Console(highlight=False, markup=False)
err = Console(stderr=True, highlight=False, markup=False)


def main() -> None:
    app()


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    err.print(f"[bold red]bulk: error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _action(name: str) -> Action:
    try:
        return resolve(name)
    except KeyError as exc:
        _fail(str(exc.args[0]))


# Options shared by the commands that call the API.
ActionOpt = Annotated[str, typer.Option("--action", "-a", help="API action, e.g. AddLiveSnapshotNotifyConfig or add-live-snapshot-notify-config.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Name=Value given to every row (repeatable).")]
CheckpointOpt = Annotated[Path | None, typer.Option(help="Checkpoint file (default: derived from INPUT).")]
QpsOpt = Annotated[float, typer.Option(help="Calls per second allowed per account and operation.")]
ConcurrencyOpt = Annotated[int | None, typer.Option(help="Ceiling of calls in flight (default: from --qps and --timeout).")]
EndpointOpt = Annotated[str, typer.Option(help="API endpoint URL.")]
RegionOpt = Annotated[str, typer.Option(help="RegionId sent with every call.")]
SignatureOpt = Annotated[str, typer.Option(help="Signature scheme: v3 (ACS3-HMAC-SHA256) or v1 (HMAC-SHA1).")]
ProfileOpt = Annotated[str | None, typer.Option(help="aliyun CLI profile to take credentials from.")]
AttemptsOpt = Annotated[int, typer.Option(help="Attempts per row for transient errors.")]
TimeoutOpt = Annotated[float, typer.Option(help="Seconds per attempt.")]
ReportOpt = Annotated[Path | None, typer.Option(help="Write the per-row report here (.csv or .jsonl).")]
LogOpt = Annotated[Path | None, typer.Option(help="Append one JSON line per attempt here.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]


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
    if_exists: Annotated[str, typer.Option(help="On 409 at a first attempt: fail, skip or update.")] = "fail",
    report: ReportOpt = None,
    log_file: LogOpt = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and show the plan; send nothing.")] = False,
    strict: Annotated[bool, typer.Option(help="Refuse the whole run if any row is invalid.")] = False,
    retry_failed: Annotated[bool, typer.Option(help="On resume, send rows that failed permanently again too.")] = False,
    plan: Annotated[Path | None, typer.Option(help="Apply a plan made by `bulk plan`: only its create and update rows.")] = None,
    max_plan_age: Annotated[float, typer.Option(help="Refuse a plan older than this many minutes.")] = 60.0,
    quiet: QuietOpt = False,
) -> None:
    """Apply ACTION to every row of INPUT; run it again to resume."""
    extra: dict[str, Any] = {}
    if plan is not None:
        header, entries = _load_plan(plan, input, action, max_plan_age)
        input, action = Path(header.input_path) if input is None else input, header.action
        default_ckpt = plan.with_name(plan.name + ".ckpt")
        extra = {"plan": entries, "extra_meta": {"plan_sha256": file_sha256(plan)}}
    if input is None or action is None:
        _fail("give INPUT and --action (or --plan PLAN)")
    act = _action(action)
    options = _options(
        act, input, set_, checkpoint or (default_ckpt if plan else None), qps=qps, concurrency=concurrency,
        max_attempts=max_attempts, timeout=timeout, if_exists=if_exists, strict=strict, retry_failed=retry_failed,
        log_file=log_file, **extra,
    )
    if dry_run:
        raise typer.Exit(_dry_run(options))
    connection = _Connection(endpoint, region, signature, profile)
    raise typer.Exit(_run_async(lambda stop: _execute(options, stop, connection, report=report, quiet=quiet)))


def _load_plan(path: Path, input: Path | None, action: str | None, max_age_min: float) -> tuple[PlanHeader, dict[int, PlanEntry]]:
    try:
        header, entries = read_plan(path, max_age=max_age_min * 60)
    except PlanError as exc:
        _fail(str(exc))
    if action is not None and _action(action).name != header.action:
        _fail(f"plan {path} is for {header.action}, not {_action(action).name}")
    source = input or Path(header.input_path)
    if not source.is_file() or file_sha256(source) != header.input_sha256:
        _fail(f"the input {source} changed since plan {path} was made; make a new plan")
    return header, entries


def _options(
    action: Action, input: Path, pairs: list[str] | None, checkpoint: Path | None, **kwargs: Any
) -> engine.RunOptions:
    try:
        overrides = parse_overrides(pairs or [], action)
    except InputError as exc:
        _fail(str(exc))
    ckpt = checkpoint or engine.default_checkpoint(input, action)
    try:
        return engine.RunOptions(action=action, input_path=input, checkpoint_path=ckpt, overrides=overrides, **kwargs)
    except ValueError as exc:
        _fail(str(exc))


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


@dataclass(frozen=True, slots=True)
class _Connection:
    endpoint: str
    region: str
    signature: str
    profile: str | None


async def _execute(
    options: engine.RunOptions,
    stop: asyncio.Event,
    connection: _Connection,
    *,
    report: Path | None,
    quiet: bool,
    summary: Callable[[engine.RunResult], int] | None = None,
) -> int:
    """Credentials, client, progress and the engine; then the report and the summary."""
    if not options.input_path.is_file():
        _fail(f"input file {options.input_path} does not exist")
    try:
        credentials = await load_credentials(profile=connection.profile)
        client = LiveClient(credentials=credentials, endpoint=connection.endpoint, region=connection.region,
                            signature=connection.signature, timeout=options.timeout, connections=options.workers)
    except (CredentialsError, ValueError) as exc:
        _fail(str(exc))
    if not quiet:
        err.print(f"bulk: checkpoint {options.checkpoint_path}")
    stats = engine.RunStats()
    try:
        async with client, show_progress(stats, mode="quiet" if quiet else "auto"):
            result = await engine.run(options, client=client, stop=stop, stats=stats)
    except CheckpointBusy as exc:
        _fail(str(exc), EXIT_BUSY)
    except (CheckpointError, InputError) as exc:
        _fail(str(exc))
    if result.fatal:
        _fail(f"the service refused the credentials ({result.fatal}); nothing more was sent. "
              "Fix them and run the same command again to resume.")
    if summary is not None:
        return summary(result)
    _finish(result, options, report=report, quiet=quiet)
    return result.exit_code


def _finish(result: engine.RunResult, options: engine.RunOptions, *, report: Path | None, quiet: bool) -> None:
    with Checkpoint.open_readonly(result.checkpoint) as ckpt:
        if report:
            write_report(ckpt, report, fmt="jsonl" if report.suffix == ".jsonl" else "csv")
        failures = 0
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


def _dry_run(options: engine.RunOptions) -> int:
    path = options.checkpoint_path
    if path.exists():
        with Checkpoint.open_readonly(path) as ckpt:
            counts = ckpt.counts()
        to_send = counts["pending"] + counts["sending"]
        out.print(f"checkpoint {path}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    else:
        try:
            summary = validate_file(options.input_path, options.action, overrides=options.overrides)
        except InputError as exc:
            _fail(str(exc))
        counts = {"pending": summary.valid, "invalid": summary.bad_count}
        to_send = summary.valid
        _print_bad(summary.bad, summary.bad_count)
        out.print(f"{summary.total} rows: {summary.valid} valid, {summary.bad_count} invalid")
    seconds = to_send / Pacer(options.qps).full_rate
    out.print(f"dry run: {to_send} {options.action.name} call(s) to send, about {seconds:.0f} s at {options.qps:g} calls/s; nothing sent")
    return EXIT_FAILED if counts.get("invalid") else EXIT_OK


def _print_bad(bad: list[Any], count: int) -> None:
    for row in bad:
        out.print(f"line {row.line}: {row.reason}", soft_wrap=True)
    if count > len(bad):
        out.print(f"... and {count - len(bad)} more invalid row(s)")


@app.command("validate")
def validate_cmd(
    input: Annotated[Path, typer.Argument(help="Domain list: .csv or .jsonl.")],
    action: ActionOpt,
    set_: SetOpt = None,
) -> None:
    """Check every row of INPUT for ACTION; print each bad row. Sends nothing."""
    act = _action(action)
    try:
        overrides = parse_overrides(set_ or [], act)
        summary = validate_file(input, act, overrides=overrides)
    except InputError as exc:
        _fail(str(exc))
    _print_bad(summary.bad, summary.bad_count)
    out.print(f"{summary.total} rows: {summary.valid} valid, {summary.bad_count} invalid")
    raise typer.Exit(EXIT_FAILED if summary.bad_count else EXIT_OK)


@app.command("status")
def status_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file of a run.")],
    json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Counts by outcome of a run (also while it runs)."""
    try:
        with Checkpoint.open_readonly(checkpoint) as ckpt:
            meta = ckpt.meta() or {}
            counts = ckpt.counts()
            errors = ckpt.error_counts()
    except CheckpointError as exc:
        _fail(str(exc))
    status = {
        "action": meta.get("action"),
        "input": meta.get("input_path"),
        "total": sum(counts.values()),
        "done": counts["done"],
        "skipped": counts["skipped"],
        "failed": counts["failed"],
        "invalid": counts["invalid"],
        "pending": counts["pending"] + counts["sending"],
        "errors": errors,
    }
    if json:
        sys.stdout.write(orjson.dumps(status).decode() + "\n")
        return
    out.print(f"{status['action']} on {status['input']}")
    for key in ("total", "done", "skipped", "failed", "invalid", "pending"):
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
    if format not in ("csv", "jsonl"):
        _fail("--format must be csv or jsonl")
    try:
        with Checkpoint.open_readonly(checkpoint) as ckpt:
            write_report(ckpt, output, fmt=format, failed_only=failed_only)
    except CheckpointError as exc:
        _fail(str(exc))


@sim_app.command("serve")
def sim_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8787,
    qps: Annotated[float, typer.Option(help="Quota per AccessKey and action.")] = 30.0,
    latency_ms: Annotated[float, typer.Option(help="Mean added latency.")] = 0.0,
    latency_jitter_ms: Annotated[float, typer.Option(help="Spread of the added latency.")] = 0.0,
    arrival_jitter_ms: Annotated[float, typer.Option(help="Network jitter: a random delay up to this before each request is counted.")] = 0.0,
    error_rate: Annotated[float, typer.Option(help="Share of calls that get an injected fault.")] = 0.0,
    faults: Annotated[str, typer.Option(help="Fault kinds, comma-separated; a kind listed twice gets twice the share.")] = "internal_before,internal_after,unavailable,throttle,drop",
    seed: Annotated[int | None, typer.Option(help="Seed for faults and latency.")] = None,
    missing: Annotated[list[str] | None, typer.Option(help="Domain pattern that does not exist (repeatable).")] = None,
    access_key_id: Annotated[str | None, typer.Option(help="Accepted AccessKey ID (default: generated).")] = None,
    access_key_secret: Annotated[str | None, typer.Option(help="Its secret (default: generated).", envvar="BULK_SIM_ACCESS_KEY_SECRET")] = None,
    state: Annotated[Path | None, typer.Option(help="Keep configs in this file across restarts.")] = None,
) -> None:
    """Serve the snapshot-callback API on HOST:PORT until Ctrl-C."""
    from .simulator import SimConfig, serve_forever

    generated = access_key_id is None and access_key_secret is None
    if generated:
        import secrets

        access_key_id = "LTAIsim" + secrets.token_hex(6)
        access_key_secret = secrets.token_urlsafe(24)
    elif not (access_key_id and access_key_secret):
        _fail("give both --access-key-id and --access-key-secret, or neither")
    config = SimConfig(
        access_keys={access_key_id: access_key_secret},
        qps=qps, latency_ms=latency_ms, latency_jitter_ms=latency_jitter_ms, arrival_jitter_ms=arrival_jitter_ms,
        error_rate=error_rate,
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
    act = _action(action)
    plan_path = output or input.with_name(f"{input.name}.{act.kebab}.plan.jsonl")
    # Not PLAN.ckpt: that one belongs to `bulk run --plan PLAN`.
    ckpt = checkpoint or plan_path.with_name(plan_path.name + ".reads.ckpt")
    _drop_finished(ckpt)
    options = _options(act, input, set_, ckpt, qps=qps, concurrency=concurrency, max_attempts=max_attempts,
                       timeout=timeout, log_file=log_file, mode="plan")

    def summary(result: engine.RunResult) -> int:
        """A plan that was made exits 0, conflicts or not: they are in it for the operator."""
        if result.interrupted:
            err.print(f"bulk: interrupted; run the same command again to finish the plan (checkpoint {ckpt})")
            return EXIT_INTERRUPTED
        with Checkpoint.open_readonly(ckpt) as c:
            kinds = plan_from_checkpoint(c, plan_path)
        table = Table(title=f"bulk plan: {act.name}", header_style="bold")
        table.add_column("rows")
        table.add_column("count", justify="right")
        for kind in KINDS:
            table.add_row(kind, str(kinds.get(kind, 0)))
        out.print(table)
        out.print(f"plan written to {plan_path}; apply it with: bulk run --plan {plan_path}")
        return EXIT_OK

    connection = _Connection(endpoint, region, signature, profile)
    code = _run_async(lambda stop: _execute(options, stop, connection, report=None, quiet=quiet, summary=summary))
    raise typer.Exit(code)


def _drop_finished(ckpt: Path) -> None:
    """A plan describes the state now: a finished plan run is not resumed but made anew."""
    if not ckpt.exists():
        return
    try:
        with Checkpoint.open_readonly(ckpt) as c:
            counts = c.counts()
    except CheckpointError as exc:
        _fail(str(exc))
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
    try:
        with Checkpoint.open_readonly(checkpoint) as c:
            meta = c.meta() or {}
            done = frozenset(r["line"] for r in c.rows(states=["done"]))
    except CheckpointError as exc:
        _fail(str(exc))
    if "action" not in meta:
        _fail(f"{checkpoint} holds no run")
    act = _action(meta["action"])
    overrides = _recover_overrides(act, meta.get("overrides", {}), set_ or [])
    verify_ckpt = checkpoint.with_name(checkpoint.name + ".verify")
    engine.remove_checkpoint(verify_ckpt)
    try:
        options = engine.RunOptions(
            action=act, input_path=Path(meta["input_path"]), checkpoint_path=verify_ckpt, overrides=overrides,
            qps=qps, concurrency=concurrency, max_attempts=max_attempts, timeout=timeout, mode="verify",
            only_lines=done, keep_current=tuple(meta.get("keep_current", ())),
        )
    except ValueError as exc:
        _fail(str(exc))

    def summary(result: engine.RunResult) -> int:
        with Checkpoint.open_readonly(verify_ckpt) as c:
            drift = list(c.rows(states=["failed"]))
            if report:
                write_report(c, report, fmt="jsonl" if report.suffix == ".jsonl" else "csv")
        for row in drift:
            out.print(f"line {row['line']}: {row['domain']}: {row['code']}: {row['message']}", soft_wrap=True)
        out.print(f"verified {result.counts['done'] + len(drift)} row(s): {result.counts['done']} in sync, {len(drift)} drifted or unreadable")
        return result.exit_code

    connection = _Connection(endpoint, region, signature, profile)
    code = _run_async(lambda stop: _execute(options, stop, connection, report=None, quiet=quiet, summary=summary))
    raise typer.Exit(code)


def _recover_overrides(action: Action, stored: dict[str, str], pairs: list[str]) -> dict[str, str]:
    """The run's --set values: stored ones as they are, secret ones given again and checked."""
    try:
        given = parse_overrides(pairs, action)
    except InputError as exc:
        _fail(str(exc))
    overrides = {k: v for k, v in stored.items() if k not in action.secret_names}
    for name in action.secret_names & stored.keys():
        if name not in given:
            _fail(f"the run set {name} with --set; give it again with --set {name}=... (secrets are not stored)")
        if engine.redact_overrides(action, {name: given[name]})[name] != stored[name]:
            _fail(f"--set {name} differs from the value the run used ({stored[name]})")
        overrides[name] = given[name]
    return overrides


_VIA = {
    "set-callback-auth": ("SetSnapshotCallbackAuth", {"CallbackReqAuth": "yes"}, ()),
    "update-notify-config": ("UpdateLiveSnapshotNotifyConfig", {"NotifyReqAuth": "yes"}, ("NotifyUrl",)),
}


@app.command("rotate")
def rotate_cmd(
    input: Annotated[Path, typer.Argument(help="Domains: .csv with DomainName, .jsonl, or one name per line.")],
    keys_out: Annotated[Path, typer.Option(help="Keys file to write (CSV, mode 0600), e.g. keys-2026-11.csv.")],
    key_length: Annotated[int, typer.Option(help="Key length, 16 to 32.")] = 32,
    same_key: Annotated[bool, typer.Option(help="One key for every domain.")] = False,
    via: Annotated[str, typer.Option(help="set-callback-auth or update-notify-config.")] = "set-callback-auth",
    checkpoint: CheckpointOpt = None,
    qps: QpsOpt = 30.0,
    concurrency: ConcurrencyOpt = None,
    endpoint: EndpointOpt = DEFAULT_ENDPOINT,
    region: RegionOpt = DEFAULT_REGION,
    signature: SignatureOpt = "v3",
    profile: ProfileOpt = None,
    max_attempts: AttemptsOpt = 8,
    timeout: TimeoutOpt = 10.0,
    report: ReportOpt = None,
    log_file: LogOpt = None,
    prepare: Annotated[bool, typer.Option(help="Only write the keys file and the checkpoint; send nothing. Run again without it to apply.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Give every domain a new callback auth key: keys file first, then the calls.

    Safe order: `--prepare`, give the receiver the new keys file, run the same
    command without `--prepare`, check with `bulk verify`, then retire the old keys.
    """
    if via not in _VIA:
        _fail(f"--via must be one of {', '.join(_VIA)}")
    if keys_out.suffix != ".csv":
        _fail("--keys-out must be a .csv file")
    name, overrides, keep = _VIA[via]
    act = resolve(name)
    domains = _rotation_domains(input)
    ckpt = checkpoint or engine.default_checkpoint(keys_out, act)
    expected = None
    if ckpt.exists():
        with Checkpoint.open_readonly(ckpt) as c:
            expected = (c.meta() or {}).get("input_sha256")
    try:
        _, digest = load_or_create_keys(keys_out, domains, length=key_length, same_key=same_key,
                                        column=KEY_COLUMNS[via], expected_digest=expected)
    except (KeysFileError, ValueError) as exc:
        _fail(str(exc))
    if not quiet:
        err.print(f"bulk: keys file {keys_out} ({len(domains)} domain(s), mode 0600, sha256 {digest[:12]})")
    try:
        options = engine.RunOptions(
            action=act, input_path=keys_out, checkpoint_path=ckpt, overrides=overrides, keep_current=keep,
            qps=qps, concurrency=concurrency, max_attempts=max_attempts, timeout=timeout, log_file=log_file,
            strict=True, extra_meta={"domains_sha256": file_sha256(input), "keep_current": list(keep)},
        )
    except ValueError as exc:
        _fail(str(exc))
    if prepare:
        try:
            with Checkpoint.open(ckpt) as c:
                engine.prepare(c, options)
        except CheckpointBusy as exc:
            _fail(str(exc), EXIT_BUSY)
        except CheckpointError as exc:
            _fail(str(exc))
        out.print(f"prepared: give the receiver {keys_out}, then run this command again without --prepare")
        raise typer.Exit(EXIT_OK)
    connection = _Connection(endpoint, region, signature, profile)
    raise typer.Exit(_run_async(lambda stop: _execute(options, stop, connection, report=report, quiet=quiet)))


def _rotation_domains(path: Path) -> list[str]:
    """Every domain of the input; a rotation refuses an input with bad rows."""
    domains, bad = [], []
    try:
        for item in read_rows(path, resolve("DescribeLiveSnapshotNotifyConfig")):
            (domains.append(item.domain) if isinstance(item, Row) else bad.append(item))
    except InputError as exc:
        _fail(str(exc))
    if bad:
        _print_bad(bad[:20], len(bad))
        _fail(f"{len(bad)} bad row(s) in {path}; a rotation needs a clean list")
    if not domains:
        _fail(f"no domains in {path}")
    return domains


callback_app = typer.Typer(no_args_is_help=True, help="Snapshot callback signatures: check a receiver, make test headers.")
app.add_typer(callback_app, name="callback")


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
    try:
        for path in keys_file or []:
            keys.extend(read_keys_file(path)[1].values())
    except KeysFileError as exc:
        _fail(str(exc))
    if not keys:
        _fail("give --key or --keys-file")
    verdict = callback.verify(callback.host_of(host), timestamp, signature, keys, max_skew=max_skew)
    if verdict.ok:
        out.print("valid")
        return
    err.print(f"invalid: {verdict.reason}")
    raise typer.Exit(EXIT_FAILED)


@callback_app.command("sign")
def callback_sign(
    host: Annotated[str, typer.Option(help="Host part of the NotifyUrl.")],
    key: Annotated[str, typer.Option(help="The key.", envvar="BULK_CALLBACK_KEY")],
    timestamp: Annotated[int | None, typer.Option(help="Unix seconds (default: now).")] = None,
) -> None:
    """Print the two headers a callback to HOST would carry, for testing a receiver."""
    for name, value in callback.sign(callback.host_of(host), key, timestamp=timestamp).items():
        out.print(f"{name}: {value}")
