"""A snapshot-callback receiver in front of your own handler, built on ``bulk.callbacks``.

    python samples/receiver.py --keys keys/ --port 8080      # keys/keys-2026-10.csv, keys/keys-2026-11.csv

Each callback is checked against the keys of its own domain, in every key
generation the keys files hold (old and new during a rotation); a good one
reaches ``store`` below, a bad one gets 401 (the reason is in the log and the metrics). Counts per key
generation are at ``/metrics`` and ``/_bulk/stats``; ``bulk callback drain``
says when the old keys may go. Add or drop a keys file (or send SIGHUP):
the receiver reloads without a restart. Keys are never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

import orjson

from bulk.callbacks import Callback, Receiver, serve_forever
from bulk.keys import KeysFileError

log = logging.getLogger("receiver")


async def store(callback: Callback) -> None:
    """Your handler. Raise to have the service send the callback again (the caller gets 502)."""
    event = orjson.loads(callback.body)
    log.info("snapshot of %s/%s on %s, signed with %s: %s", event.get("AppName"), event.get("StreamName"),
             callback.domain, callback.generation, event.get("OssObject"))


def make_receiver(keys: Sequence[Path], *, callback_hosts: Sequence[str] = ()) -> Receiver:
    """``keys``: keys files or directories of them. ``callback_hosts``: your NotifyUrl or its host
    (default: the listening address, loopback only)."""
    return Receiver(keys, callback_hosts=callback_hosts, hook=store)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", action="append", type=Path, required=True, help="keys file or directory (repeatable)")
    parser.add_argument("--callback-host", action="append", default=[],
                        help="your NotifyUrl or its host, as the service signs it (repeatable)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--bind", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        receiver = make_receiver(args.keys, callback_hosts=args.callback_host)
    except KeysFileError as exc:
        parser.exit(2, f"receiver: {exc}\n")
    try:
        asyncio.run(serve_forever(receiver, host=args.bind, port=args.port, on_ready=print))
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        parser.exit(2, f"receiver: {exc}\n")


if __name__ == "__main__":
    main()
