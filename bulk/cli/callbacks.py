"""``bulk callback``: a receiver that knows which key generation signed each callback, and drain checks.

    bulk callback serve --keys keys/ --port 8080
    bulk callback drain --receiver http://127.0.0.1:8080 --generation keys-2026-10.csv --window 24h
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from .. import callbacks
from ..keys import KeysFileError, read_keys_file
from ..options import Exit
from .common import callback_app, err, fail, out


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
        fail(str(exc))
    if not keys:
        fail("give --key or --keys-file")
    verdict = callbacks.verify(callbacks.host_of(host), timestamp, signature, keys, max_skew=max_skew)
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
    for name, value in callbacks.sign(callbacks.host_of(host), key, timestamp=timestamp).items():
        out.print(f"{name}: {value}")


@callback_app.command("serve")
def callback_serve(
    keys: Annotated[list[Path], typer.Option("--keys", help="A keys file (a key generation) or a directory of them (repeatable).")],
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8080,
    bind: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    callback_host: Annotated[list[str] | None, typer.Option(
        "--callback-host", help="Your NotifyUrl or its host, as the service signs it (repeatable during a URL "
                                "migration; required with a --bind beyond loopback; default: the --bind address). "
                                "Never taken from the request.")] = None,
    forward: Annotated[str | None, typer.Option(help="Pass accepted callbacks on to this URL (502 to the caller when it fails).")] = None,
    max_skew: Annotated[int, typer.Option(help="Seconds a timestamp may be off; an identical callback is "
                                               "forwarded at most once within this window.")] = 120,
    poll: Annotated[float, typer.Option(help="Seconds between checks for changed keys files (0: SIGHUP only).")] = 2.0,
    header_timeout: Annotated[float, typer.Option(help="Seconds a client has to send a request's head.")] = 10.0,
    body_timeout: Annotated[float, typer.Option(help="Seconds a client has to send a request's body.")] = 10.0,
    idle_timeout: Annotated[float, typer.Option(help="Seconds a keep-alive connection may stay idle.")] = 30.0,
    max_connections: Annotated[int, typer.Option(help="Open connections at most (kept below the descriptor limit); "
                                                      "at the cap the oldest idle or slowest one is closed.")] = 1024,
) -> None:
    """Receive snapshot callbacks: each checked against its own domain's keys, counted per key generation.

    GET /metrics (Prometheus), /_bulk/stats (JSON). SIGHUP or a changed keys file reloads the keys.
    """
    import logging

    from ..callbacks import Limits, Receiver, serve_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        limits = Limits(header_timeout=header_timeout, body_timeout=body_timeout, idle_timeout=idle_timeout,
                        max_connections=max_connections)
        receiver = Receiver(keys, callback_hosts=callback_host or (), forward_url=forward, max_skew=max_skew, poll_interval=poll, limits=limits)
    except (KeysFileError, ValueError) as exc:
        fail(str(exc))

    def ready(line: str) -> None:
        out.print(line)
        sys.stdout.flush()

    try:
        asyncio.run(serve_forever(receiver, host=bind, port=port, on_ready=ready))
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot listen on {bind}:{port}: {exc.strerror}")


@callback_app.command("drain")
def callback_drain(
    receiver: Annotated[list[str], typer.Option("--receiver", help="Base URL of a receiver (repeatable: ask them all).")],
    generation: Annotated[str, typer.Option(help="The old generation: its keys file name, e.g. keys-2026-10.csv.")],
    window: Annotated[str, typer.Option(help="How long without a callback signed with it: 90s, 30m, 24h, 7d.")] = "24h",
    json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Exit 0 when no callback signed with GENERATION arrived within the window: its keys may go."""
    from ..callbacks import DrainError, generation_name, parse_window, query_drain

    try:
        seconds = parse_window(window)
    except ValueError as exc:
        fail(str(exc))
    try:
        report = asyncio.run(query_drain(receiver, generation=generation_name(generation), window=seconds))
    except DrainError as exc:
        fail(str(exc))
    if json:
        sys.stdout.write(orjson.dumps(report.to_json()).decode() + "\n")
    else:
        for domain, age in report.still_on.items():
            out.print(f"still on {report.generation}: {domain} (last callback {age:.0f} s ago)")
        for domain in report.unseen:
            out.print(f"not seen since the rotation: {domain}")
        out.print(f"{report.generation}: drained, its keys may go" if report.drained
                  else f"{report.generation}: not drained: " + "; ".join(report.blockers()), soft_wrap=True)
    raise typer.Exit(Exit.OK if report.drained else Exit.FAILED)
