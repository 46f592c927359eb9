"""A snapshot-callback receiver that accepts the old and the new keys during a rotation.

    python samples/receiver.py --keys keys-2026-10.csv --keys keys-2026-11.csv --port 8080

Each POST is checked with ``bulk.callback.verify`` against every key the
keys files hold for any domain (a key file per rotation; drop the old one
once ``bulk verify`` shows the rotation complete). 200 when valid, 401 with
the reason otherwise. Keys are never logged.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from bulk.callback import SIGNATURE_HEADER, TIMESTAMP_HEADER, host_of, verify
from bulk.keys import read_keys_file


def make_app(keys: Sequence[str], *, host: str | None = None) -> web.Application:
    """``host``: the host of your NotifyUrl; default: the Host header of each request."""
    accepted = list(dict.fromkeys(keys))  # de-duplicated, order kept

    async def receive(request: web.Request) -> web.Response:
        verdict = verify(
            host or host_of(request.host),
            request.headers.get(TIMESTAMP_HEADER, ""),
            request.headers.get(SIGNATURE_HEADER, ""),
            accepted,
        )
        if not verdict.ok:
            return web.Response(status=401, text=verdict.reason)
        await request.read()  # the snapshot event itself; store or forward it here
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", action="append", type=Path, required=True, help="keys file (repeatable)")
    parser.add_argument("--host", help="host part of your NotifyUrl (default: the request's Host header)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--bind", default="127.0.0.1")
    args = parser.parse_args(argv)
    keys = [key for path in args.keys for key in read_keys_file(path)[1].values()]
    web.run_app(make_app(keys, host=args.host), host=args.bind, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
