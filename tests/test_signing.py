"""Signing, byte for byte against the official SDKs' own functions and real requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import pytest
from aiohttp import web
from alibabacloud_tea_openapi.utils import Utils
from aliyunsdkcore.auth.composer import rpc_signature_composer
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk.credentials import Credentials
from bulk.signing import canonical_query, sign, sign_v1, sign_v3, v1_signature, v3_signature

AK, SECRET, TOKEN = "LTAIsigningTest", "s3cr~t&=/+ é", "STS.token/with+odd=chars"
DATE, NONCE = "2026-11-22T10:20:30Z", "3f2c8e1a-fixed-nonce"
AWKWARD = [
    "plain", "with space", "a&b=c", "tilde~star*plus+", "slash/percent%25", "é中文🎥", "", "http://cb.example.com/x?y=1&z=a b",
]
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def _sdk_v3_authorization(req_headers: dict[str, str], query: dict[str, str], secret: str) -> str:
    request = SimpleNamespace(pathname="/", query=dict(query), headers=dict(req_headers), method="POST")
    return Utils.get_authorization(request, "ACS3-HMAC-SHA256", req_headers["x-acs-content-sha256"], AK, secret)


@pytest.mark.parametrize("value", AWKWARD)
@pytest.mark.parametrize("token", [None, TOKEN])
def test_v3_matches_tea_openapi(value: str, token: str | None) -> None:
    params = {"DomainName": "a.example.com", "NotifyUrl": value, "NotifyAuthKey": value}
    req = sign_v3("AddLiveSnapshotNotifyConfig", params, Credentials(AK, SECRET, token),
                  host="live.aliyuncs.com", nonce=NONCE, date=DATE)
    headers = {k: v for k, v in req.headers.items() if k != "Authorization"}
    if token:
        assert headers["x-acs-security-token"] == token
    assert req.headers["Authorization"] == _sdk_v3_authorization(headers, params, SECRET)


@pytest.mark.parametrize("value", AWKWARD)
@pytest.mark.parametrize("token", [None, TOKEN])
def test_v1_matches_both_official_sdks(value: str, token: str | None) -> None:
    params = {"DomainName": "a.example.com", "NotifyUrl": value}
    req = sign_v1("AddLiveSnapshotNotifyConfig", params, Credentials(AK, SECRET, token), nonce=NONCE, date=DATE)
    sent = dict(parse_qsl(req.body.decode(), keep_blank_values=True))
    signature = sent.pop("Signature")
    if token:
        assert sent["SecurityToken"] == token
    # alibabacloud-tea-openapi (what the V3 SDK uses for its RPC signature)
    assert signature == Utils.get_rpcsignature(sent, "POST", SECRET)
    # aliyun-python-sdk-core (the classic V1 client)
    composer = vars(rpc_signature_composer)
    to_sign = composer["__compose_string_to_sign"]("POST", sent)
    assert signature == composer["__get_signature"](to_sign, SECRET)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9._~-]{0,15}", fullmatch=True), text, min_size=1, max_size=5), text)
def test_property_any_text_signs_like_the_sdks(params: dict[str, str], secret: str) -> None:
    headers = {"host": "h", "x-acs-date": DATE, "x-acs-signature-nonce": NONCE,
               "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
    names, ours = v3_signature(secret, method="POST", path="/", query=params, headers=headers,
                               payload_sha256=headers["x-acs-content-sha256"])
    sdk = _sdk_v3_authorization(headers, params, secret)
    assert sdk.endswith(f"SignedHeaders={names},Signature={ours}")
    assert v1_signature(secret, method="GET", params=params) == Utils.get_rpcsignature(params, "GET", secret)


def test_every_signing_gets_a_fresh_nonce_and_date() -> None:
    creds = Credentials(AK, SECRET)
    a = sign("v3", "DescribeLiveSnapshotNotifyConfig", {"DomainName": "a.example.com"}, creds, host="h")
    b = sign("v3", "DescribeLiveSnapshotNotifyConfig", {"DomainName": "a.example.com"}, creds, host="h")
    assert a.headers["x-acs-signature-nonce"] != b.headers["x-acs-signature-nonce"]
    assert a.headers["x-acs-date"].endswith("Z")
    c = sign("v1", "DescribeLiveSnapshotNotifyConfig", {"DomainName": "a.example.com"}, creds, host="h")
    d = sign("v1", "DescribeLiveSnapshotNotifyConfig", {"DomainName": "a.example.com"}, creds, host="h")
    assert dict(parse_qsl(c.body.decode()))["SignatureNonce"] != dict(parse_qsl(d.body.decode()))["SignatureNonce"]
    with pytest.raises(ValueError):
        sign("v2", "X", {}, creds, host="h")


# -- what the official clients really send, re-signed by bulk ---------------------------------


async def _recorder() -> AsyncIterator[tuple[str, list[web.Request], list[bytes]]]:
    seen: list[web.Request] = []
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request)
        bodies.append(await request.read())
        return web.json_response({"RequestId": "REC-1"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}", seen, bodies
    finally:
        await runner.cleanup()


recorder = pytest.fixture(_recorder)


async def test_real_v3_client_request_verifies_with_bulk(recorder: tuple[str, list[web.Request], list[bytes]]) -> None:
    from alibabacloud_live20161101 import models
    from alibabacloud_live20161101.client import Client
    from alibabacloud_tea_openapi.models import Config

    endpoint, seen, _ = recorder
    client = Client(Config(access_key_id=AK, access_key_secret=SECRET, endpoint=endpoint, protocol="http"))
    request = models.AddLiveSnapshotNotifyConfigRequest(
        domain_name="a.example.com", notify_url="http://cb.example.com/a b&c=d~*é", notify_req_auth="no"
    )
    await client.add_live_snapshot_notify_config_async(request)
    got = seen[0]
    match = got.headers["Authorization"].split("SignedHeaders=")[1]
    names, signature = match.split(",Signature=")
    headers = {n: got.headers[n] for n in names.split(";")}
    query = dict(parse_qsl(urlsplit(str(got.rel_url)).query, keep_blank_values=True))
    _, ours = v3_signature(SECRET, method=got.method, path=got.path, query=query, headers=headers,
                           payload_sha256=got.headers["x-acs-content-sha256"])
    assert ours == signature
    # And bulk signing the same call with that nonce and date gives the same signature.
    mine = sign_v3("AddLiveSnapshotNotifyConfig", query, Credentials(AK, SECRET), host=got.headers["host"],
                   nonce=got.headers["x-acs-signature-nonce"], date=got.headers["x-acs-date"])
    assert canonical_query(query) == mine.query
    subset = {n: mine.headers[n] for n in mine.headers if n != "Authorization"}
    assert set(subset) <= set(headers)


async def test_real_v1_client_request_verifies_with_bulk(recorder: tuple[str, list[web.Request], list[bytes]]) -> None:
    from aliyunsdkcore.client import AcsClient
    from aliyunsdklive.request.v20161101.AddLiveSnapshotNotifyConfigRequest import AddLiveSnapshotNotifyConfigRequest

    endpoint, seen, bodies = recorder
    client = AcsClient(AK, SECRET, "cn-shanghai", auto_retry=False, timeout=5)
    request = AddLiveSnapshotNotifyConfigRequest()
    request.set_endpoint(endpoint)
    request.set_protocol_type("http")
    request.set_DomainName("a.example.com")
    request.set_NotifyUrl("http://cb.example.com/a b&c=d~*é")
    await asyncio.to_thread(client.do_action_with_exception, request)
    got = seen[0]
    params = dict(parse_qsl(got.query_string, keep_blank_values=True))
    params.update(parse_qsl(bodies[0].decode(), keep_blank_values=True))
    assert params.pop("Signature") == v1_signature(SECRET, method=got.method, params=params)
