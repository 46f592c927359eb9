"""The client's typed outcomes, against a tiny local server that misbehaves on purpose."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from conftest import TEST_AK_ID, TEST_AK_SECRET
from yarl import URL

from bulk.client import Failure, LiveClient, Success
from bulk.credentials import Credentials, StaticCredentials
from bulk.errors import UsageError
from bulk.proxies import proxy_for
from bulk.sim import Simulator

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
async def test_failures_are_typed_and_classified(
    server: str, kind: str, code: str, transient: bool, status: int | None
) -> None:
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



async def test_an_endpoint_with_user_credentials_is_refused_without_showing_them(sim: Simulator) -> None:
    # The service's endpoint is a host (live.aliyuncs.com): user:password@ in it is no form of it. Taken, it went
    # into the signed host header and aiohttp refused the call with an exception instead of an outcome.
    creds = StaticCredentials(Credentials(TEST_AK_ID, TEST_AK_SECRET))
    endpoint = sim.url.replace("http://", "http://user:pa55word@")
    for signature in ("v3", "v1"):
        with pytest.raises(UsageError) as refused:
            LiveClient(credentials=creds, endpoint=endpoint, signature=signature)
        assert "pa55word" not in str(refused.value) and "user info" in str(refused.value)

# -- proxies ----------------------------------------------------------------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "transfer-encoding",
               "content-length"}


class ForwardingProxy:
    """An HTTP proxy on 127.0.0.1 that forwards absolute-form requests and records each request line.

    CONNECT (the tunnel an https:// endpoint needs) is recorded and refused: nothing leaves the machine.
    """

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.proxy_auth: list[str | None] = []
        self.url = ""

    async def __aenter__(self) -> ForwardingProxy:
        self._upstream = aiohttp.ClientSession()  # no trust_env: it connects directly
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._upstream.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")[:-2]
                method, target, _ = head[0].split(" ")
                headers = dict(line.split(": ", 1) for line in head[1:])
                self.requests.append(f"{method} {target}")
                self.proxy_auth.append(headers.get("Proxy-Authorization"))
                if method == "CONNECT":
                    writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    break
                body = await reader.readexactly(int(headers.get("Content-Length", 0)))
                forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
                async with self._upstream.request(method, URL(target, encoded=True), headers=forwarded,
                                                  data=body or None) as response:
                    data = await response.read()
                writer.write(f"HTTP/1.1 {response.status} {response.reason}\r\n"
                             f"Content-Type: {response.content_type}\r\nContent-Length: {len(data)}\r\n\r\n"
                             .encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


async def sim_calls(sim: Simulator, endpoint: str, n: int) -> list[Success | Failure]:
    creds = StaticCredentials(Credentials(TEST_AK_ID, TEST_AK_SECRET))
    async with LiveClient(credentials=creds, endpoint=endpoint, timeout=5) as client:
        return [await client.call("DescribeLiveSnapshotNotifyConfig", {"DomainName": f"d{i}.example.com"})
                for i in range(n)]


async def test_calls_go_through_http_proxy(sim: Simulator, no_proxy_env: pytest.MonkeyPatch) -> None:
    async with ForwardingProxy() as proxy:
        no_proxy_env.setenv("HTTP_PROXY", proxy.url)
        outcomes = await sim_calls(sim, sim.url, 3)
    assert all(o.ok for o in outcomes), outcomes
    assert len(proxy.requests) == 3 and all(r.startswith(f"POST {sim.url}/") or r.startswith(f"GET {sim.url}/")
                                            for r in proxy.requests), proxy.requests
    assert len(sim.arrivals()) == 3


async def test_no_proxy_bypasses_it(sim: Simulator, no_proxy_env: pytest.MonkeyPatch) -> None:
    async with ForwardingProxy() as proxy:
        no_proxy_env.setenv("http_proxy", proxy.url)
        no_proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
        outcomes = await sim_calls(sim, sim.url, 2)
    assert all(o.ok for o in outcomes) and proxy.requests == [] and len(sim.arrivals()) == 2


async def test_an_https_endpoint_is_tunnelled_through_https_proxy_with_its_credentials(
    sim: Simulator, no_proxy_env: pytest.MonkeyPatch
) -> None:
    async with ForwardingProxy() as proxy:
        no_proxy_env.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://ops:pa%20ss@"))
        no_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # for http:// URLs only: never used here
        port = sim.url.rsplit(":", 1)[1]
        (outcome,) = await sim_calls(sim, f"https://127.0.0.1:{port}", 1)
    assert isinstance(outcome, Failure) and outcome.code == "ConnectionError"  # the test proxy refuses tunnels
    assert proxy.requests == [f"CONNECT 127.0.0.1:{port}"]
    assert proxy.proxy_auth == ["Basic " + base64.b64encode(b"ops:pa ss").decode()]
    assert "pa ss" not in outcome.message and "pa%20ss" not in outcome.message
    assert sim.arrivals() == []


def test_proxy_settings_are_checked(no_proxy_env: pytest.MonkeyPatch) -> None:
    creds = StaticCredentials(Credentials("AKID", "secret"))
    no_proxy_env.setenv("HTTPS_PROXY", "https://ops:hunter2@proxy.example.com:3128")
    with pytest.raises(ValueError, match="not an http:// proxy URL") as info:
        LiveClient(credentials=creds, endpoint="https://live.aliyuncs.com")
    assert "hunter2" not in str(info.value)
    no_proxy_env.setenv("HTTPS_PROXY", "proxy.example.com:3128")  # no scheme: http://, as curl takes it
    assert proxy_for("https://live.aliyuncs.com/") == (URL("http://proxy.example.com:3128"), None)
    no_proxy_env.setenv("NO_PROXY", ".aliyuncs.com")
    assert proxy_for("https://live.aliyuncs.com/") == (None, None)


async def test_the_default_client_refuses_a_certificate_from_an_untrusted_ca() -> None:
    """No ssl_context given: the system's trust store decides, so a private CA's certificate is refused."""
    import ssl

    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    answered: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        answered.append(request.path)
        return _answer(200, b'{"RequestId":"R-TLS"}')

    app = web.Application()
    app.router.add_route("*", "/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context).start()
    endpoint = f"https://127.0.0.1:{runner.addresses[0][1]}"
    creds = StaticCredentials(Credentials("AKID", "secret"))
    try:
        async with LiveClient(credentials=creds, endpoint=endpoint, timeout=5) as client:
            refused = await client.call("DescribeLiveSnapshotNotifyConfig", {"DomainName": "a.example.com"})
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        async with LiveClient(credentials=creds, endpoint=endpoint, timeout=5, ssl_context=trusting) as client:
            trusted = await client.call("DescribeLiveSnapshotNotifyConfig", {"DomainName": "a.example.com"})
    finally:
        await runner.cleanup()
    assert isinstance(refused, Failure) and refused.code == "ConnectFailed" and not refused.sent
    # The same server, its CA trusted: the refusal was the certificate's, and it is the only one.
    assert trusted.ok and answered == ["/"]
