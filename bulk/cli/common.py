"""What every ``bulk`` command shares: the app, output, errors to exit codes, running the engine.

    @app.command("status")
    def status_cmd(checkpoint: Path) -> None:
        with errors(), Checkpoint.open_readonly(checkpoint) as ckpt:
            out.print(ckpt.counts())

Exit codes (``bulk.options.Exit``): 0 every valid row done (a canary: its
rows applied and verified); 1 some rows failed or were invalid (a canary:
one of its rows does not hold the change); 2 usage, input, credential or
configuration error (before any call, or a set-up the service refuses); 3
stopped before the end (interrupted, a local fault such as a full disk, or
outcomes still to be read back): run the same command again to resume; 4
checkpoint in use by another run; 5 safety stop (too many rows failed
alike; fix the cause and run the same command again); 70 internal error (a
bug; the checkpoint stays consistent); 130 aborted (a second Ctrl-C; the
checkpoint stays consistent).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import os
import signal
import sys
import tempfile
import time
import traceback
import typing
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandFunctionType

from .. import __version__, engine
from ..actions import Action
from ..checkpoint import LAST_RUN, Checkpoint, CheckpointError
from ..client import LiveClient
from ..credentials import (
    ChainCredentials,
    CredentialsError,
    CredentialSource,
    load_credentials,
)
from ..errors import BulkError, Exit
from ..files import LocalFault, check_writable
from ..identity import run_identity
from ..inputs import BadRow, ErrorGroup, detect_format, literal_secrets
from ..jobs import Job
from ..options import Halt, HaltKind, Mode, RunOptions, RunResult, RunStats
from ..paths import backup_path, failures_path
from ..progress import show_progress
from ..redact import redact
from ..rotate import RotationError
from ..textfile import RunTextfile
from . import examples
from .shared import OUTPUTS, PANELS, Connection

__all__ = [
    "app", "callback_app", "err", "errors", "execute", "fail", "leaves_metrics", "main", "out", "print_bad",
    "print_errors", "print_json", "record_end", "sim_app", "warn_literal_secrets",
]


class _Option(TyperOption):
    """An option whose help says what goes there: ``--report PATH``, ``--if-exists [fail|skip|update]``, a bare
    ``--dry-run``; never typer's ``<str>``."""

    def display_type_rich(self, ctx: Any) -> str | None:
        """The placeholder: none for a flag, the choices of an enum, else the declared ``metavar``."""
        if self.is_flag:
            return None
        if self.metavar is None and self.type_descriptor.is_choice:
            return f"[{self.display_type(ctx)[1:-1]}]"
        return super().display_type_rich(ctx)


class _Argument(TyperArgument):
    """An argument whose name (``INPUT``) is its placeholder, with no ``<path>`` after it."""

    def display_type_rich(self, ctx: Any) -> str | None:
        """No type: the name says what goes there."""
        return None


def _placeholders(params: list[Any]) -> list[Any]:
    """typer builds its own parameter classes: give each parameter the help display above, and put the
    options in the order of their panels (``PANELS``: input first, connection last); arguments stay first."""
    for param in params:
        if isinstance(param, TyperArgument):
            param.__class__ = _Argument
        elif isinstance(param, TyperOption):
            param.__class__ = _Option

    def panel(param: Any) -> int:
        """Where ``param`` is shown: arguments first, then the panels in order, any other panel last."""
        if isinstance(param, TyperArgument):
            return -1
        name = getattr(param, "rich_help_panel", None)
        return PANELS.index(name) if name in PANELS else len(PANELS)

    return sorted(params, key=panel)


class _Command(TyperCommand):
    """A ``bulk`` command: placeholders that say what goes where."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The parameters, each shown with its placeholder (the help option's included)."""
        return _placeholders(super().get_params(ctx))


class _Group(TyperGroup):
    """A ``bulk`` group: placeholders that say what goes where."""

    def get_params(self, ctx: Any) -> list[Any]:
        """The parameters, each shown with its placeholder (the help and completion options' included)."""
        return _placeholders(super().get_params(ctx))


class _App(typer.Typer):
    """A typer app whose groups and commands take ``-h`` as well as ``--help`` and show placeholders."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]},
                         no_args_is_help=True, **kwargs)

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[CommandFunctionType], CommandFunctionType]:
        """``typer.Typer.command`` with bulk's command class."""
        return super().command(name, cls=_Command, **kwargs)


app = _App(
    pretty_exceptions_show_locals=False,
    help="Apply snapshot-callback changes to thousands of ApsaraVideo Live domains, paced, retried, resumable.",
    epilog=examples.ROOT,
)
sim_app = _App(help="A local simulator of the Live API, for rehearsals and tests.")
callback_app = _App(help="Snapshot callbacks: a receiver that counts key generations, drain checks, test signatures.")
app.add_typer(sim_app, name="sim")
app.add_typer(callback_app, name="callback")


def _print_version(value: bool) -> None:
    """``--version``: print it and exit before any command runs."""
    if value:
        out.print(f"bulk {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print bulk's version and exit.")] = False) -> None:
    """Options before the command: --version."""


class _RedactingConsole(Console):
    """A console whose text passes the redactor: a new message to the terminal cannot forget it.

    Not on a terminal (cron, a pipe, a log), a table is printed as ``key=value`` lines and no line is
    wrapped: each stays whole for grep.
    """

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Print as ``Console.print`` does, every string passed through the redactor first."""
        if not self.is_terminal:
            kwargs["soft_wrap"] = True
            objects = tuple(line for o in objects for line in (plain_table(o) if isinstance(o, Table) else [o]))
        super().print(*(redact(o) if isinstance(o, str) else o for o in objects), **kwargs)


def plain_table(table: Table) -> list[str]:
    """A table as greppable lines, ``title column=value ...``: one per row, or one in all for a table of
    names and counts (two columns)."""
    title = str(table.title or "").strip()
    columns = [(_word(str(c.header)), [str(v) for v in c.cells]) for c in table.columns]
    rows = list(zip(*(cells for _, cells in columns), strict=True))
    if len(columns) == 2:
        return [" ".join([title, *(f"{_word(name)}={_value(value)}" for name, value in rows)])]
    return [" ".join([title, *(f"{name}={_value(v)}" for (name, _), v in zip(columns, row, strict=True))])
            for row in rows]


def _word(label: str) -> str:
    """A label as a key: what comes before a parenthesis, spaces as underscores."""
    return "_".join(label.split(" (")[0].split())


def _value(value: str) -> str:
    """A value as one word: quoted (as JSON) if it holds a space or is empty."""
    return value if value and " " not in value and '"' not in value else orjson.dumps(value).decode()


def _console(*, stderr: bool = False) -> _RedactingConsole:
    """A console as the commands print to: it reads the environment (NO_COLOR, COLUMNS, ...) when made."""
    # No markup: row reasons and file names are data, and may hold brackets.
    return _RedactingConsole(stderr=stderr, highlight=False, markup=False)


out, err = _console(), _console(stderr=True)


def main() -> None:
    """Entry point: an unexpected error is one line and a debug log, never a screen of locals."""
    # An uncapped run keeps thousands of short-lived objects in flight (requests, futures, rows): at
    # Python's default of 700 allocations the youngest generation is collected every few calls, a
    # tenth of the run's CPU; at 10,000, a few times a run.
    gc.set_threshold(10_000, 10, 10)
    try:
        app()
    except KeyboardInterrupt:  # before the command's own handler was in place: nothing was sent
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001  (the last line of defence)
        fd, path = tempfile.mkstemp(prefix="bulk-debug-", suffix=".log")  # owner-only
        with os.fdopen(fd, "w") as log:
            log.write(f"bulk {' '.join(sys.argv[1:2])} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
            # No locals: the traceback holds code, not values; its exception texts pass the redactor.
            log.write(redact("".join(traceback.format_exception(exc))))
        err.print(f"bulk: internal error: {type(exc).__name__}; the checkpoint is consistent. Details: {path}")
        sys.exit(Exit.INTERNAL)


def fail(message: str, code: int = Exit.USAGE) -> NoReturn:
    """Print one error line to stderr and exit with ``code`` (a usage error by default)."""
    err.print(f"[bold red]bulk: error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def errors() -> Iterator[None]:
    """Library errors -> one line and the exit code that says what to do."""
    try:
        yield
    except LocalFault as exc:
        fail(f"{exc}; fix it and run the same command again", exc.exit_code)
    except RotationError as exc:
        print_bad(exc.bad[:20], len(exc.bad))
        fail(str(exc), exc.exit_code)
    except BulkError as exc:  # nothing else: any other exception is a bug, and exits 70
        fail(str(exc), exc.exit_code)


MetricsTextfileOpt = Annotated[Path | None, typer.Option(
    "--metrics-textfile", metavar="PATH", rich_help_panel=OUTPUTS,
    help="When the command ends, leave its metrics here (rows by outcome, calls by answer, throttling, pace, "
         "duration, exit code) for node_exporter's textfile collector: a .prom file in its directory, replaced by "
         "rename, mode 0644.")]


def leaves_metrics(command: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command ``--metrics-textfile``; it gets the file (None: not asked for) as keyword argument ``textfile``.

    The path is checked before anything is done, and the file is written however the command ends, with its
    exit code: a gate that refuses, or a usage error, is a failed job to the alert rules as well.
    """

    def decorate(function: Callable[..., None]) -> Callable[..., None]:
        hints = typing.get_type_hints(function, include_extras=True)
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(function).parameters.values() if p.name != "textfile"]
        option = inspect.Parameter("metrics_textfile", inspect.Parameter.KEYWORD_ONLY, annotation=MetricsTextfileOpt,
                                   default=None)

        @functools.wraps(function)
        def leaving(*, metrics_textfile: Path | None = None, **given: Any) -> None:
            """The command as typer calls it, inside its metrics textfile."""
            with _metrics_textfile(metrics_textfile, command=command) as textfile:
                function(**given, textfile=textfile)

        leaving.__signature__ = inspect.Signature([*own, option])  # type: ignore[attr-defined]
        leaving.__annotations__ = {p.name: p.annotation for p in (*own, option)}
        return leaving

    return decorate


@contextlib.contextmanager
def _metrics_textfile(path: Path | None, *, command: str) -> Iterator[RunTextfile | None]:
    """The textfile at ``path``, checked writable now and written with the exit code when the block ends."""
    if path is None:
        yield None
        return
    with errors():
        check_writable(path)
    textfile = RunTextfile(path, command=command)
    code: int = Exit.INTERNAL
    try:
        yield textfile
        code = Exit.OK
    except typer.Exit as exc:
        code = exc.exit_code
        raise
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else Exit.USAGE
        raise
    except KeyboardInterrupt:
        code = 130
        raise
    finally:
        try:
            textfile.write(code)
        except LocalFault as exc:
            err.print(f"bulk: warning: the metrics textfile was not written: {exc}", soft_wrap=True)


def warn_literal_secrets(pairs: Sequence[str], action: Action) -> None:
    """A secret typed on the command line is in ``ps`` and the shell's history: say so."""
    for name in literal_secrets(pairs, action):
        err.print(f"bulk: warning: {name} given literally on the command line is visible to other users (ps) and "
                  f"kept in shell history; use --set {name}=@FILE or --set {name}=@env:VARIABLE", soft_wrap=True)


def print_bad(bad: list[BadRow], count: int) -> None:
    """List invalid rows (line and reason), and how many of the ``count`` are left out."""
    for row in bad:
        out.print(f"line {row.line}: {row.reason}", soft_wrap=True)
    if count > len(bad):
        out.print(f"... and {count - len(bad)} more invalid row(s)")


def print_json(document: dict[str, Any]) -> None:
    """One JSON object on one line of stdout (``--json``; the shapes are in docs/json.md), through the redactor."""
    sys.stdout.write(redact(orjson.dumps(document).decode()) + "\n")
    sys.stdout.flush()


def print_errors(groups: Sequence[ErrorGroup]) -> None:
    """One line per distinct reason rows are invalid: how many, and the first few lines."""
    for group in groups:
        out.print(f"invalid: {group.describe()}", soft_wrap=True)


def run_async(body: Callable[[asyncio.Event], Coroutine[Any, Any, int]]) -> int:
    """Run with Ctrl-C / SIGTERM turned into a graceful stop; a second one aborts."""

    async def main() -> int:
        """Run ``body`` with the signal handlers in place; its result is the exit code."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            """A first signal asks ``body`` to stop gracefully; a second aborts (KeyboardInterrupt)."""
            if stop.is_set():
                raise KeyboardInterrupt
            err.print("bulk: stopping: finishing calls in flight (press Ctrl-C again to abort)")
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        return await body(stop)

    return asyncio.run(main())


def execute(options: RunOptions, connection: Connection, *, quiet: bool,
             summary: Callable[[RunResult], int], outputs: Sequence[Path | None] = (), job: Job | None = None) -> int:
    """Credentials, client, progress and the engine (with ``job`` instead of the mode's, if given); then
    ``summary`` prints and picks the exit code.

    ``outputs`` (the report) are checked before anything is done: a path that cannot be written is a usage
    error, not a failure found after every row was sent.
    """

    endpoint, region = connection.target()

    async def body(stop: asyncio.Event) -> int:
        """Credentials, client and identity, the engine run, its halts; ``summary`` picks the exit code."""
        with errors():
            for path in (*outputs, *_written(options)):
                if path is not None:
                    check_writable(path)
            credentials = await _run_credentials(connection.profile, deferred=bool(options.profiles))
            client = LiveClient(credentials=credentials, endpoint=endpoint, region=region,
                                signature=connection.signature, timeout=options.timeout, connections=options.workers)
            identity = await run_identity(client, profile=connection.profile, region=region)
            # Where the run's state is, even when quiet: the next command needs it.
            err.print(f"bulk: checkpoint {options.checkpoint_path}", soft_wrap=True)
            if not quiet:
                err.print(f"bulk: endpoint {identity.endpoint}, region {identity.region}"
                          + (f", account {identity.account}" if identity.account else ""), soft_wrap=True)
            stats = RunStats()
            async with client, show_progress(stats, mode="quiet" if quiet else "auto"):
                result = await engine.run(replace(options, identity=identity), client=client, stop=stop,
                                          stats=stats, job=job)
        if result.restarted:
            err.print(f"bulk: {result.restarted}", soft_wrap=True)
        for profile, halt in result.stopped.items():
            print_halt(halt, account=profile or "(the run's credentials)")
        if result.halt is not None and result.halt.kind is not HaltKind.INTERRUPTED:
            print_halt(result.halt)
        with errors():
            code = summary(result)
        record_end(options.checkpoint_path, code, result, started=started)
        return code

    started = time.time()
    return run_async(body)


def record_end(checkpoint: Path, code: int, result: RunResult, *, started: float) -> None:
    """Keep in the checkpoint how its last run ended, for ``bulk status``: exit code, times, why it stopped.

    Best effort: the run's outcome is recorded already, and a run that took the checkpoint since has its own.
    """
    def halt(h: Halt | None) -> dict[str, str] | None:
        return None if h is None else {"kind": str(h.kind), "message": redact(h.message)}

    last = {"exit_code": int(code), "started": started, "ended": time.time(), "halt": halt(result.halt),
            "stopped": {profile: halt(h) for profile, h in result.stopped.items()}}
    if checkpoint.exists():
        with contextlib.suppress(CheckpointError, LocalFault), Checkpoint.open(checkpoint) as ckpt:
            ckpt.set_meta({LAST_RUN: last})


def _written(options: RunOptions) -> list[Path]:
    """The files a run writes: its checkpoint, call log, failures file and backup."""
    paths = [options.checkpoint_path] + ([options.log_file] if options.log_file is not None else [])
    if options.mode in (Mode.APPLY, Mode.ROLLBACK):
        paths.append(failures_path(options.checkpoint_path, detect_format(options.input_path)))
    if options.changes and options.backup:
        paths.append(backup_path(options.checkpoint_path))
    return paths


async def _run_credentials(profile: str | None, *, deferred: bool) -> CredentialSource:
    """The run's own credentials, checked before anything is done.

    ``deferred``: rows may name their own profile, and then the run's own may
    not be needed at all; if they cannot be had, only rows without a Profile
    stop, each account on its own.
    """
    try:
        return await load_credentials(profile=profile)
    except CredentialsError:
        if not deferred:
            raise
        return ChainCredentials(profile=profile)


def print_halt(halt: Halt, *, account: str | None = None) -> None:
    """Why the run (or, in a run across accounts, one ``account``'s rows) stopped, and what to do."""
    kind, message = halt.kind, halt.message
    then = "fix it and run the same command again to resume"
    if account is not None:
        err.print(f"bulk: account {account}: {message}; its rows not yet sent stay pending while the other "
                  f"accounts went on. {then.capitalize()}.", soft_wrap=True)
    elif kind is HaltKind.LOCAL_FAULT:
        err.print(f"bulk: stopped: {message}; rows in flight will be read back. {then.capitalize()}.", soft_wrap=True)
    elif kind is HaltKind.SAFETY_STOP:
        err.print(f"bulk: {message}.", soft_wrap=True)
    else:
        err.print(f"bulk: error: {message}; nothing more was sent. {then.capitalize()}.", soft_wrap=True)


