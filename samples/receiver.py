"""A snapshot-callback receiver that accepts the old and the new keys during a rotation.

    python samples/receiver.py --keys keys-2026-10.csv --keys keys-2026-11.csv --port 8080

Each POST is checked with ``bulk.callback.verify`` against every key the
keys files hold, whichever the domain (the signature binds the receiver's
host, not the streaming domain). Give it a keys file per rotation in
progress, and drop the old one once ``bulk verify`` shows the rotation
complete. 200 when valid, 401 with the reason otherwise. Keys are never
logged; rejections are, with their reason.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from aiohttp import web

from bulk.callback import SIGNATURE_HEADER, TIMESTAMP_HEADER, host_of, verify
from bulk.keys import KeysFileError, read_keys_file

log = logging.getLogger("receiver")


def load_keys(paths: Iterable[Path]) -> list[str]:
    """Every key of the keys files, in order, each once."""
    return list(dict.fromkeys(key for path in paths for key in read_keys_file(path)[1].values()))


def make_app(keys: Mapping[str, str] | Iterable[str], *, host: str | None = None) -> web.Application:
    """``keys``: domain -> key, or the keys themselves. ``host``: your NotifyUrl or its host
    (default: the Host header of each request, without its port)."""
    accepted = list(dict.fromkeys(keys.values() if isinstance(keys, Mapping) else keys))
    fixed_host = host_of(host) if host else None

    async def receive(request: web.Request) -> web.Response:
        verdict = verify(
            fixed_host or host_of(request.host),
            request.headers.get(TIMESTAMP_HEADER, ""),
            request.headers.get(SIGNATURE_HEADER, ""),
            accepted,
        )
        if not verdict.ok:
            log.warning("rejected a callback from %s: %s", request.remote, verdict.reason)
            return web.Response(status=401, text=verdict.reason)
        await request.read()  # the snapshot event itself; store or forward it here
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", action="append", type=Path, required=True, help="keys file (repeatable)")
    parser.add_argument("--host", help="your NotifyUrl or its host (default: each request's Host header)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--bind", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        keys = load_keys(args.keys)
    except KeysFileError as exc:
        parser.exit(2, f"receiver: {exc}\n")
    log.info("accepting %d key(s) from %d keys file(s)", len(keys), len(args.keys))
    web.run_app(make_app(keys, host=args.host), host=args.bind, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
