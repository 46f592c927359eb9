"""The options every command that calls the API takes, declared once.

    @app.command("verify")
    @calls_the_api
    def verify_cmd(checkpoint: Path, *, tuning: Tuning, connection: Connection) -> None:
        options = verify_options(checkpoint, tuning=tuning)
        ...

typer has no dependency injection: a command's options are its parameters.
``calls_the_api`` adds the shared ones (pace, retries, safety stop, call log,
endpoint and credentials) to the command's signature, where typer reads
them, and hands the command what they build: a ``Tuning`` and a
``Connection``. Each flag is spelled, typed and documented here only, so it
means the same in run, plan, verify, rotate and rollback.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from ..client import DEFAULT_ENDPOINT, DEFAULT_REGION
from ..options import Tuning

__all__ = ["CONNECTION", "INPUT", "OUTPUTS", "PACING", "PANELS", "SAFETY", "SEND", "STATE", "Connection",
           "calls_the_api"]


@dataclass(frozen=True, slots=True)
class Connection:
    """Where and as whom a command calls the API; no endpoint or region: not given on the command line."""

    endpoint: str | None = None
    region: str | None = None
    signature: str = "v3"
    profile: str | None = None

    def filled(self, endpoint: str | None = None, region: str | None = None) -> Connection:
        """What was given, else ``endpoint`` and ``region`` (a run's or a plan's record)."""
        return replace(self, endpoint=self.endpoint or endpoint, region=self.region or region)

    def target(self) -> tuple[str, str]:
        """The endpoint and region to call: as given or recorded, else the defaults."""
        return self.endpoint or DEFAULT_ENDPOINT, self.region or DEFAULT_REGION


# The panels a command's options are grouped in, in its help.
INPUT = "Input"
SEND = "What to send"
STATE = "Checkpoint and resume"
PACING = "Pacing and retries"
SAFETY = "Safety"
OUTPUTS = "Outputs"
CONNECTION = "Connection"
#: the order the panels are shown in; any other panel comes after them
PANELS = (INPUT, SEND, SAFETY, STATE, PACING, OUTPUTS, CONNECTION)

_TUNING: dict[str, tuple[Any, Any]] = {
    "qps": (Annotated[float, typer.Option(
        metavar="N", rich_help_panel=PACING, help="Calls per second allowed per account and operation.")], 30.0),
    "concurrency": (Annotated[int | None, typer.Option(
        metavar="N", rich_help_panel=PACING,
        help="Ceiling of calls in flight (default: from --qps and --timeout).")], None),
    "max_attempts": (Annotated[int, typer.Option(
        metavar="N", rich_help_panel=PACING, help="Attempts per call for transient errors.")], 8),
    "timeout": (Annotated[float, typer.Option(
        metavar="SECONDS", rich_help_panel=PACING, help="Seconds per attempt.")], 10.0),
    "max_failure_rate": (Annotated[float, typer.Option(
        metavar="SHARE", rich_help_panel=SAFETY,
        help="Safety stop (exit 5): halt once more than this share of the last 100 finished rows failed, "
             "or 10 in a row failed alike; 1 turns it off.")], 0.5),
    "log_file": (Annotated[Path | None, typer.Option(
        metavar="PATH", rich_help_panel=OUTPUTS, help="Append one JSON line per attempt here.")], None),
}
_CONNECTION: dict[str, tuple[Any, Any]] = {
    "endpoint": (Annotated[str | None, typer.Option(
        metavar="URL", rich_help_panel=CONNECTION,
        help=f"API endpoint URL (default: the one the run or plan recorded, else {DEFAULT_ENDPOINT}).")], None),
    "region": (Annotated[str | None, typer.Option(
        metavar="REGION", rich_help_panel=CONNECTION,
        help=f"RegionId sent with every call (default: the one the run or plan recorded, else {DEFAULT_REGION}; "
             "a RegionId column overrides it).")], None),
    "signature": (Annotated[Literal["v3", "v1"], typer.Option(
        rich_help_panel=CONNECTION, help="Signature scheme: v3 (ACS3-HMAC-SHA256) or v1 (HMAC-SHA1).")], "v3"),
    "profile": (Annotated[str | None, typer.Option(
        metavar="NAME", rich_help_panel=CONNECTION, help="aliyun CLI profile to take credentials from.")], None),
}


def calls_the_api(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the shared options; it takes them as keyword arguments ``tuning`` and ``connection``."""
    hints = typing.get_type_hints(command, include_extras=True)
    own = [p.replace(annotation=hints.get(p.name, p.annotation))
           for p in inspect.signature(command).parameters.values() if p.name not in ("tuning", "connection")]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
              for name, (annotation, default) in (_TUNING | _CONNECTION).items()]

    @functools.wraps(command)
    def with_shared(**given: Any) -> None:
        """The command as typer calls it: the shared options gathered into ``tuning`` and ``connection``."""
        tuning = Tuning(**{name: given.pop(name) for name in _TUNING})
        connection = Connection(**{name: given.pop(name) for name in _CONNECTION})
        command(**given, tuning=tuning, connection=connection)

    with_shared.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
    with_shared.__annotations__ = {p.name: p.annotation for p in (*own, *shared)}
    return with_shared
