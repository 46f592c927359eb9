"""``bulk sim serve``: the local Live API, for rehearsals, demos and tests.

    bulk sim serve --port 8787 --qps 30 --latency-ms 200 --error-rate 0.05 --seed 1 --streams 20
    bulk sim serve --access-keys-file accounts.csv    # many accounts: AccessKeyId,AccessKeySecret per line
    bulk sim serve --access-key-id LTAIsim --access-key-secret @/run/secrets/sim-secret --bind 0.0.0.0

A secret is best given from a file (``@FILE``, mode 0600), the environment
(BULK_SIM_ACCESS_KEY_SECRET) or an access keys file: one typed on the
command line is visible to other users in ``ps`` and stays in the shell's
history, and ``sim serve`` says so on stderr.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..sim import FAULT_KINDS
from . import examples
from .common import err, errors, fail, out, sim_app

# The panels of `sim serve`'s options.
_LISTEN, _KEYS, _SERVICE, _FAULTS, _STREAMS = "Listening", "Credentials", "Service", "Faults", "Streams"


@sim_app.command("serve", epilog=examples.SIM_SERVE)
def sim_serve(
    ctx: typer.Context,
    bind: Annotated[str, typer.Option(
        metavar="ADDRESS", rich_help_panel=_LISTEN, help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        metavar="PORT", rich_help_panel=_LISTEN, help="Port (0 = any free port).")] = 8787,
    qps: Annotated[float, typer.Option(
        metavar="N", rich_help_panel=_SERVICE, help="Quota: calls per second per AccessKey and action.")] = 30.0,
    latency_ms: Annotated[float, typer.Option(
        metavar="MS", rich_help_panel=_SERVICE, help="Mean added latency, in milliseconds.")] = 0.0,
    latency_jitter_ms: Annotated[float, typer.Option(
        metavar="MS", rich_help_panel=_SERVICE, help="Spread of the added latency, in milliseconds.")] = 0.0,
    arrival_jitter_ms: Annotated[float, typer.Option(
        metavar="MS", rich_help_panel=_SERVICE,
        help="Network jitter: a random delay up to this before each request is counted.")] = 0.0,
    error_rate: Annotated[float, typer.Option(
        metavar="SHARE", rich_help_panel=_FAULTS, help="Share of calls that get an injected fault.")] = 0.0,
    faults: Annotated[str, typer.Option(
        metavar="KIND,...", rich_help_panel=_FAULTS,
        help=f"Fault kinds, comma-separated, of {', '.join(FAULT_KINDS)}; a kind listed twice gets twice the share.",
    )] = "internal_before,internal_after,unavailable,throttle,drop",
    throttle_codes: Annotated[str, typer.Option(
        metavar="CODE,CODE", rich_help_panel=_FAULTS,
        help="Codes an injected throttle answers, in turn: Throttling.User (HTTP 400), Throttling (503).",
    )] = "Throttling.User",
    seed: Annotated[int | None, typer.Option(
        metavar="N", rich_help_panel=_FAULTS, help="Seed for faults and latency.")] = None,
    missing: Annotated[list[str] | None, typer.Option(
        metavar="PATTERN", rich_help_panel=_SERVICE, help="Domain pattern that does not exist (repeatable).")] = None,
    access_key_id: Annotated[str | None, typer.Option(
        metavar="ID", rich_help_panel=_KEYS, help="Accepted AccessKey ID (default: generated).")] = None,
    access_key_secret: Annotated[str | None, typer.Option(
        metavar="SECRET", rich_help_panel=_KEYS,
        help="Its secret, or @FILE to read it from a file (default: generated).",
        envvar="BULK_SIM_ACCESS_KEY_SECRET")] = None,
    access_key: Annotated[list[str] | None, typer.Option(
        metavar="ID:SECRET", rich_help_panel=_KEYS,
        help="Another accepted AccessKey, as ID:SECRET or ID:@FILE (repeatable).")] = None,
    access_keys_file: Annotated[Path | None, typer.Option(
        metavar="PATH", rich_help_panel=_KEYS,
        help="Accepted AccessKeys: a CSV file, AccessKeyId,AccessKeySecret, mode 0600.")] = None,
    state: Annotated[Path | None, typer.Option(
        "--state-file", metavar="PATH", rich_help_panel=_SERVICE,
        help="Keep configs in this file across restarts.")] = None,
    streams: Annotated[int, typer.Option(
        metavar="N", rich_help_panel=_STREAMS,
        help="Live streams posting signed snapshot callbacks to their domain's NotifyUrl.")] = 0,
    stream_uptime_mean: Annotated[float, typer.Option(
        metavar="SECONDS", rich_help_panel=_STREAMS,
        help="Mean seconds a stream stays up before it is pushed again.")] = 3600.0,
    stream_interval: Annotated[float, typer.Option(
        metavar="SECONDS", rich_help_panel=_STREAMS, help="Seconds between two callbacks of a stream.")] = 5.0,
    allow_remote_callbacks: Annotated[bool, typer.Option(
        rich_help_panel=_STREAMS, help="Let streams post to NotifyUrls that are not loopback addresses.")] = False,
) -> None:
    """Serve the snapshot-callback API on BIND:PORT until Ctrl-C."""
    import secrets

    from ..sim import (
        SimConfig,
        StreamsConfig,
        parse_access_key,
        read_access_keys,
        read_secret,
        serve_forever,
    )

    keys: dict[str, str] = {}

    def accept(key_id: str, secret: str) -> None:
        """Add one AccessKey to the simulator's; an id given twice is a usage error."""
        if key_id in keys:
            fail(f"AccessKey {key_id} is given twice")
        keys[key_id] = secret

    # By name: typer has vendored click's ParameterSource since 0.2x, older typers use click's own.
    source = ctx.get_parameter_source("access_key_secret")
    typed = source is not None and source.name == "COMMANDLINE"
    if typed and _literal(access_key_secret or ""):
        warn_literal_secret("--access-key-secret")
    if any(_literal(pair.partition(":")[2]) for pair in access_key or ()):
        warn_literal_secret("--access-key")
    if access_key_id is not None or access_key_secret is not None:
        if not (access_key_id and access_key_secret):
            fail("give both --access-key-id and --access-key-secret, or neither")
        try:
            accept(access_key_id, read_secret(access_key_secret))
        except ValueError as exc:
            fail(f"--access-key-secret: {exc}")
    for number, pair in enumerate(access_key or (), 1):
        try:
            accept(*parse_access_key(pair))
        except ValueError as exc:  # the pair is not echoed: it holds a secret
            fail(f"--access-key number {number}: {exc}")
    if access_keys_file is not None:
        try:
            for key_id, secret in read_access_keys(access_keys_file).items():
                accept(key_id, secret)
        except ValueError as exc:
            fail(str(exc))
    generated = not keys
    if generated:
        access_key_id, access_key_secret = "LTAIsim" + secrets.token_hex(6), secrets.token_urlsafe(24)
        keys[access_key_id] = access_key_secret
    with errors():
        config = SimConfig(
            access_keys=keys,
            qps=qps, latency_ms=latency_ms, latency_jitter_ms=latency_jitter_ms, arrival_jitter_ms=arrival_jitter_ms,
            error_rate=error_rate,
            fault_kinds=tuple(f.strip() for f in faults.split(",") if f.strip()), seed=seed,
            throttle_codes=tuple(c.strip() for c in throttle_codes.split(",") if c.strip()),
            missing_domains=tuple(missing or ()), state_file=state,
            streams=StreamsConfig(count=streams, uptime_mean=stream_uptime_mean, interval=stream_interval,
                                  seed=seed, allow_remote=allow_remote_callbacks) if streams else None,
        )

    def ready(url: str) -> None:
        """Print the URL (and generated throwaway credentials) at once: a script reads them from a pipe."""
        out.print(url)
        if generated:
            # Throwaway credentials made up for this simulator only: printing them is the point.
            out.print(f"export ALIBABA_CLOUD_ACCESS_KEY_ID={access_key_id}")
            out.print(f"export ALIBABA_CLOUD_ACCESS_KEY_SECRET={access_key_secret}")
        sys.stdout.flush()

    try:
        asyncio.run(serve_forever(config, host=bind, port=port, on_ready=ready))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass  # Ctrl-C or SIGTERM: the state was saved on the way out
    except OSError as exc:
        fail(f"cannot listen on {bind}:{port}: {exc.strerror}")


def warn_literal_secret(option: str) -> None:
    """A secret typed on the command line is in ``ps`` and the shell's history: say so (never the secret)."""
    err.print(f"bulk: warning: a secret given literally to {option} is visible to other users (ps) and kept in "
              f"shell history; give it as @FILE, in BULK_SIM_ACCESS_KEY_SECRET or with --access-keys-file",
              soft_wrap=True)


def _literal(secret: str) -> bool:
    """Whether ``secret`` is the secret itself rather than ``@FILE``."""
    return bool(secret.strip()) and not secret.strip().startswith("@")
