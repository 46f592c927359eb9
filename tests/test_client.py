"""The client's typed outcomes, against a tiny local server that misbehaves on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bulk.client import Failure, LiveClient, Success
from bulk.credentials import Credentials, StaticCredentials

SECRET_KEY = "SecretKey0123456789abcdef"


def _answer(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")


BEHAVIOUR = {
    "ok": lambda: _answer(200, b'{"RequestId":"R-OK","NotifyUrl":"https://x.example.com"}'),
    "html": lambda: web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html"),
    "garbage": lambda: _answer(200, b"not json at all"),
    "throttle400": lambda: _answer(400, b'{"RequestId":"R-T","Code":"Throttling.User","Message":"flow control"}'),
    "throttle503": lambda: _answer(503, b'{"RequestId":"R-T5","Code":"Throttling.Api","Message":"slow down"}'),
    "internal": lambda: _answer(500, b'{"RequestId":"R-500","Code":"InternalError","Message":"oops"}'),
    "unavailable": lambda: _answer(503, b'{"RequestId":"R-503","Code":"ServiceUnavailable","Message":"try later"}'),
    "malformed": lambda: _answer(400, b'{"RequestId":"R-400","Code":"MalformedParam","Message":"NotifyAuthKey '
                                 + SECRET_KEY.encode() + b' is malformed"}'),
}


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.StreamResponse:
        kind = request.query.get("DomainName", "").split(".")[0]
        if kind == "hang":
            await asyncio.sleep(5)
        if kind == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return BEHAVIOUR[kind]()

    app = web.Application()
    app.router.add_route("*", "/", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def call(url: str, kind: str, **params: str) -> Success | Failure:
    creds = StaticCredentials(Credentials("AKID", "secret"))
    async with LiveClient(credentials=creds, endpoint=url, timeout=0.5) as client:
        return await client.call("AddLiveSnapshotNotifyConfig", {"DomainName": f"{kind}.example.com", **params})


@pytest.mark.parametrize(
    ("kind", "code", "transient", "status"),
    [
        ("html", "BadResponse", True, 502),
        ("garbage", "BadResponse", True, 200),
        ("throttle400", "Throttling.User", True, 400),
        ("throttle503", "Throttling.Api", True, 503),
        ("internal", "InternalError", True, 500),
        ("unavailable", "ServiceUnavailable", True, 503),
        ("malformed", "MalformedParam", False, 400),
        ("hang", "Timeout", True, None),
        ("reset", "ConnectionError", True, None),
    ],
)
async def test_failures_are_typed_and_classified(server: str, kind: str, code: str, transient: bool, status: int | None) -> None:
    outcome = await call(server, kind, NotifyAuthKey=SECRET_KEY)
    assert isinstance(outcome, Failure)
    assert (outcome.code, outcome.transient, outcome.status) == (code, transient, status)
    assert SECRET_KEY not in outcome.message  # echoed parameters are redacted
    if kind.startswith(("throttle", "internal", "unavailable", "malformed")):
        assert outcome.request_id and outcome.request_id.startswith("R-")
    # Throttling is the code, whatever the status: a 503 ServiceUnavailable is retried, never a reason to slow down.
    assert outcome.throttled == code.startswith("Throttling")


async def test_success_keeps_request_id_and_body(server: str) -> None:
    outcome = await call(server, "ok")
    assert isinstance(outcome, Success)
    assert outcome.request_id == "R-OK" and outcome.body["NotifyUrl"] == "https://x.example.com"


def test_endpoint_and_signature_are_checked() -> None:
    creds = StaticCredentials(Credentials("AKID", "secret"))
    with pytest.raises(ValueError):
        LiveClient(credentials=creds, endpoint="ftp://x")
    with pytest.raises(ValueError):
        LiveClient(credentials=creds, signature="v2")
