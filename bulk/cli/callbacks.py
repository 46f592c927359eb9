"""``bulk callback``: a receiver that knows which key generation signed each callback, and drain checks.

    bulk callback serve --keys keys/ --port 8080 --forward http://127.0.0.1:9000/snapshots   # admin: 127.0.0.1:8081
    bulk callback drain --receiver http://127.0.0.1:8081 --generation keys-2026-10.csv --window 24h
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from .. import callbacks
from ..callbacks.admin import ADMIN_PORT, TOKEN_ENV
from ..errors import Exit
from ..keys import KeysFileError, read_keys_file
from . import examples
from .common import callback_app, err, fail, out

KEY_ENV = "BULK_CALLBACK_KEY"
# The panels of `callback serve`'s options.
_KEYS, _LISTEN, _ADMIN, _FORWARD, _LIMITS = "Keys and signatures", "Listening", "Admin listener", "Forwarding", "Limits"
_KEY_HELP = f"@FILE reads it from a file (first line); ${KEY_ENV} works too. A literal key is visible in ps."


def _keys_given(ctx: typer.Context, values: list[str]) -> list[str]:
    """``--key`` values: ``@FILE`` read from the file; a literal typed on the command line gets a warning."""
    keys: list[str] = []
    for value in values:
        if value.startswith("@"):
            try:
                key = Path(value[1:]).read_text(encoding="utf-8").partition("\n")[0].strip()
            except (OSError, UnicodeDecodeError) as exc:
                fail(f"--key {value}: cannot read the file: {getattr(exc, 'strerror', None) or 'not UTF-8'}")
            if not key:
                fail(f"--key {value}: the file's first line is empty")
            keys.append(key)
            continue
        source = ctx.get_parameter_source("key")
        if source is not None and source.name == "COMMANDLINE":  # not from the environment variable
            err.print(f"bulk: warning: a key given literally on the command line is visible to other users (ps) and "
                      f"kept in shell history; use --key @FILE or ${KEY_ENV}", soft_wrap=True)
        keys.append(value)
    return keys


@callback_app.command("verify", epilog=examples.CALLBACK_VERIFY)
def callback_verify(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--callback-host", metavar="HOST", help="The NotifyUrl or its host.")],
    timestamp: Annotated[str, typer.Option(metavar="UNIX_TIME", help="ALI-LIVE-TIMESTAMP value.")],
    signature: Annotated[str, typer.Option("--live-signature", metavar="HEX", help="ALI-LIVE-SIGNATURE value.")],
    key: Annotated[list[str] | None, typer.Option(
        metavar="KEY", help=f"A key to accept (repeatable). {_KEY_HELP}", envvar=KEY_ENV)] = None,
    keys_file: Annotated[list[Path] | None, typer.Option(
        metavar="PATH", help="A keys file whose keys to accept (repeatable).")] = None,
    max_skew: Annotated[int, typer.Option(metavar="SECONDS", help="Seconds a timestamp may be off.")] = 300,
) -> None:
    """Exit 0 when the signature is valid for one of the keys; 1 with the reason otherwise."""
    keys = _keys_given(ctx, key or [])
    try:
        for path in keys_file or []:
            keys.extend(read_keys_file(path)[1].values())
    except KeysFileError as exc:
        fail(str(exc))
    if not keys:
        fail("give --key or --keys-file")
    verdict = callbacks.verify(callbacks.host_of(host), timestamp, signature, keys, max_skew=max_skew)
    if verdict.ok:
        out.print("valid")
        return
    err.print(f"invalid: {verdict.reason}")
    raise typer.Exit(Exit.FAILED)


@callback_app.command("sign", epilog=examples.CALLBACK_SIGN)
def callback_sign(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--callback-host", metavar="HOST", help="The NotifyUrl or its host.")],
    key: Annotated[str, typer.Option(metavar="KEY", help=f"The key. {_KEY_HELP}", envvar=KEY_ENV)],
    timestamp: Annotated[int | None, typer.Option(metavar="UNIX_TIME", help="Unix seconds (default: now).")] = None,
) -> None:
    """Print the two headers a callback to --callback-host would carry, for testing a receiver."""
    (secret,) = _keys_given(ctx, [key])
    for name, value in callbacks.sign(callbacks.host_of(host), secret, timestamp=timestamp).items():
        out.print(f"{name}: {value}")


def _host_port(text: str, *, option: str) -> tuple[str, int]:
    """``127.0.0.1:8081``, ``[::1]:8081`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        fail(f"{option} must be HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


@callback_app.command("serve", epilog=examples.CALLBACK_SERVE)
def callback_serve(
    keys: Annotated[list[Path], typer.Option(
        "--keys", metavar="PATH", rich_help_panel=_KEYS,
        help="A keys file (a key generation) or a directory of them, where only keys-YYYY-MM*.csv files are read "
             "(repeatable).")],
    port: Annotated[int, typer.Option(
        metavar="PORT", rich_help_panel=_LISTEN, help="Callback port (0 = any free port).")] = 8080,
    bind: Annotated[str, typer.Option(
        metavar="ADDRESS", rich_help_panel=_LISTEN, help="Address the callback port listens on.")] = "127.0.0.1",
    callback_host: Annotated[list[str] | None, typer.Option(
        "--callback-host", metavar="HOST", rich_help_panel=_KEYS,
        help="Your NotifyUrl or its host, as the service signs it (repeatable during a URL migration; required "
             "with a --bind beyond loopback; default: the --bind address). Never taken from the request.")] = None,
    forward: Annotated[str | None, typer.Option(
        metavar="URL", rich_help_panel=_FORWARD,
        help="Pass accepted callbacks on to this URL (502 to the caller when it fails); required unless "
             "--no-forward.")] = None,
    no_forward: Annotated[bool, typer.Option(
        "--no-forward", rich_help_panel=_FORWARD,
        help="Accept callbacks and drop them (count only: a rehearsal, or a receiver kept for drain "
             "answers).")] = False,
    state_dir: Annotated[Path | None, typer.Option(
        metavar="DIR", rich_help_panel=_ADMIN,
        help="Where the drain counters survive a restart, one directory per receiver (default: "
             "receiver/ in $BULK_STATE_DIR, else the user state directory).")] = None,
    max_skew: Annotated[int, typer.Option(
        metavar="SECONDS", rich_help_panel=_KEYS,
        help="Seconds a timestamp may be off; an identical callback is forwarded at most once within this "
             "window.")] = 120,
    poll: Annotated[float, typer.Option(
        metavar="SECONDS", rich_help_panel=_KEYS,
        help="Seconds between checks for changed keys files (0: SIGHUP only).")] = 2.0,
    admin_bind: Annotated[str, typer.Option(
        metavar="HOST:PORT", rich_help_panel=_ADMIN,
        help="Where the admin listener listens (/metrics, /_bulk/stats, /_bulk/drain, /_bulk/generations, "
             "/healthz, /readyz).")] = f"127.0.0.1:{ADMIN_PORT}",
    admin_token_file: Annotated[Path | None, typer.Option(
        metavar="PATH", rich_help_panel=_ADMIN,
        help="A file holding the bearer token the admin listener asks for (required beyond loopback).")] = None,
    tls_cert: Annotated[Path | None, typer.Option(
        metavar="PATH", rich_help_panel=_LISTEN,
        help="Serve the callback port over TLS: certificate chain (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(
        metavar="PATH", rich_help_panel=_LISTEN, help="The TLS certificate's private key (PEM).")] = None,
    behind_tls_proxy: Annotated[bool, typer.Option(
        "--behind-tls-proxy", rich_help_panel=_LISTEN,
        help="A TLS terminator is in front: allow a --bind beyond loopback without TLS.")] = False,
    header_timeout: Annotated[float, typer.Option(
        metavar="SECONDS", rich_help_panel=_LIMITS, help="Seconds a client has to send a request's head.")] = 10.0,
    body_timeout: Annotated[float, typer.Option(
        metavar="SECONDS", rich_help_panel=_LIMITS, help="Seconds a client has to send a request's body.")] = 10.0,
    idle_timeout: Annotated[float, typer.Option(
        metavar="SECONDS", rich_help_panel=_LIMITS, help="Seconds a keep-alive connection may stay idle.")] = 30.0,
    max_connections: Annotated[int, typer.Option(
        metavar="N", rich_help_panel=_LIMITS,
        help="Open connections at most (kept below the descriptor limit); at the cap the oldest idle or slowest "
             "one is closed.")] = 1024,
) -> None:
    """Receive snapshot callbacks: each checked against its own domain's keys, counted per key generation.

    The callback port takes POSTs only. Counts, drain answers and probes are on the admin listener:
    GET /metrics (Prometheus), /_bulk/stats (JSON), /_bulk/drain, /_bulk/generations, /healthz, /readyz.
    Refuses to start without --forward unless --no-forward says to drop accepted callbacks.
    SIGHUP or a changed keys file reloads the keys.
    """
    import logging
    import ssl

    from ..callbacks import Limits, Listen, Receiver, read_token, serve_forever
    from ..callbacks.counters import CountersError, CountersFile
    from ..paths import state_dir as default_state_dir

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if (forward is None) == (not no_forward):
        fail("give --forward URL (where accepted callbacks go) or, to accept and drop them, --no-forward"
             if forward is None else "give --forward or --no-forward, not both")
    admin_host, admin_port = _host_port(admin_bind, option="--admin-bind")
    if (tls_cert is None) != (tls_key is None):
        fail("give --tls-cert and --tls-key together")
    tls = None
    try:
        if tls_cert is not None and tls_key is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(tls_cert, tls_key)
        token = read_token(admin_token_file) if admin_token_file else None
        limits = Limits(header_timeout=header_timeout, body_timeout=body_timeout, idle_timeout=idle_timeout,
                        max_connections=max_connections)
        counters = CountersFile.claim(state_dir or default_state_dir() / "receiver")
        receiver = Receiver(keys, callback_hosts=callback_host or (), forward_url=forward, max_skew=max_skew,
                            poll_interval=poll, limits=limits, admin_token=token, counters=counters)
    except CountersError as exc:
        fail(str(exc))
    except (ssl.SSLError, OSError) as exc:
        fail(f"cannot load the TLS certificate or key: {getattr(exc, 'strerror', None) or type(exc).__name__}")
    except (KeysFileError, ValueError) as exc:
        fail(str(exc))
    listen = Listen(host=bind, port=port, admin_host=admin_host, admin_port=admin_port, tls=tls,
                    behind_tls_proxy=behind_tls_proxy)

    def ready(line: str) -> None:
        """Print a listening address at once: a script waiting on a pipe reads it as it comes."""
        out.print(line)
        sys.stdout.flush()

    try:
        asyncio.run(serve_forever(receiver, listen, on_ready=ready))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot listen on {bind}:{port} or {admin_bind}: {exc.strerror}")


@callback_app.command("drain", epilog=examples.CALLBACK_DRAIN)
def callback_drain(
    receiver: Annotated[list[str], typer.Option(
        "--receiver", metavar="URL", help="Base URL of a receiver's admin listener (repeatable: ask them all).")],
    generation: Annotated[str, typer.Option(
        metavar="NAME", help="The old generation: its keys file name, e.g. keys-2026-10.csv.")],
    window: Annotated[str, typer.Option(
        metavar="DURATION",
        help="How long without a callback signed with it, with its unit: 90s, 30m, 24h, 7d; at least the snapshot "
             "interval, better the longest stream's uptime.")] = "24h",
    snapshot_interval: Annotated[str, typer.Option(
        metavar="DURATION",
        help="Your snapshot template's interval, the window's floor (default: the longest the service "
             "allows).")] = "1h",
    json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="After the verdict, the domains still on the "
                                                                  "generation and those not seen since.")] = False,
    admin_token_file: Annotated[Path | None, typer.Option(
        metavar="PATH", help=f"A file holding the receivers' admin token (default: ${TOKEN_ENV}, if set).")] = None,
) -> None:
    """Exit 0 when no callback signed with GENERATION arrived within the window at any receiver: its keys may go.

    The verdict comes first, in one line; --verbose lists the domains behind it.
    """
    from ..callbacks import (
        DrainError,
        check_window,
        generation_name,
        parse_window,
        query_drain,
        read_token,
    )

    try:
        seconds = check_window(parse_window(window), snapshot_interval=parse_window(snapshot_interval))
        token = read_token(admin_token_file)
    except ValueError as exc:
        fail(str(exc))
    try:
        report = asyncio.run(query_drain(receiver, generation=generation_name(generation), window=seconds,
                                         token=token))
    except DrainError as exc:
        fail(str(exc))
    if json:
        sys.stdout.write(orjson.dumps(report.to_json()).decode() + "\n")
    else:
        out.print(f"{report.generation}: drained at {len(receiver)} receiver(s), its keys may go" if report.drained
                  else f"{report.generation}: not drained: " + "; ".join(report.blockers()), soft_wrap=True)
        if verbose:
            for domain, age in report.still_on.items():
                out.print(f"still on {report.generation}: {domain} (last callback {age:.0f} s ago)")
            for domain in report.unseen:
                out.print(f"not seen since the rotation: {domain}")
        elif report.still_on or report.unseen:
            out.print(f"({len(report.still_on)} domain(s) still on it, {len(report.unseen)} not seen since the "
                      "rotation: --verbose lists them)")
    raise typer.Exit(Exit.OK if report.drained else Exit.FAILED)
