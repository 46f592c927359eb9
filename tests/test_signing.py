"""Signing, byte for byte against the official SDKs' own functions and the requests their clients send."""

from __future__ import annotations

import asyncio
import hashlib
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from alibabacloud_tea_openapi.utils import Utils
from aliyunsdkcore.auth.composer import rpc_signature_composer
from aliyunsdkcore.utils import parameter_helper
from conftest import serving
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk.credentials import Credentials
from bulk.signing import (
    canonical_query,
    percent_encode,
    sign,
    sign_v1,
    sign_v3,
    v1_signature,
    v3_signature,
)

ADD = "AddLiveSnapshotNotifyConfig"
AK, SECRET, TOKEN = "LTAIsigningTest", "s3cr~t&=/+ é", "STS.token/with+odd=chars"
DATE, NONCE = "2026-11-22T10:20:30Z", "3f2c8e1a-fixed-nonce"
# Every kind of character that needs (or must not get) percent-encoding.
AWKWARD = [
    "plain", "with space", "a&b=c", "tilde~star*plus+", "slash/percent%25", "é", "中文", "🎥", "",
    "http://cb.example.com/x?y=1&z=a b",
]
AWKWARD_URL = "http://cb.example.com/a b&c=d~*+/%é中文🎥"
TOKENS = pytest.mark.parametrize("token", [None, TOKEN], ids=["ak", "sts"])

any_text = st.text(st.characters(codec="utf-8"), max_size=30)  # any code point UTF-8 can carry
# V3 names: as every Live API parameter name, nothing that needs encoding (see test_canonical_query_known_answers).
v3_names = st.text(string.ascii_letters + string.digits + "-_.~", min_size=1, max_size=12)


def tea_v3_authorization(headers: dict[str, str], query: dict[str, str], secret: str) -> str:
    """alibabacloud-tea-openapi's V3 Authorization for a POST / with an empty body."""
    request = SimpleNamespace(pathname="/", query=dict(query), headers=dict(headers), method="POST")
    return Utils.get_authorization(request, "ACS3-HMAC-SHA256", headers["x-acs-content-sha256"], AK, secret)


def sdkcore_v1_signature(params: dict[str, str], secret: str, method: str = "POST") -> str:
    """aliyun-python-sdk-core's RPC composer, through its own (module-private) helpers."""
    composer = vars(rpc_signature_composer)
    return composer["__get_signature"](composer["__compose_string_to_sign"](method, params), secret)


def sent_params(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True))


# -- known answers ------------------------------------------------------------------------------


def test_percent_encoding_known_answers() -> None:
    assert percent_encode("a b&c=d~e*f+g/h%i") == "a%20b%26c%3Dd~e%2Af%2Bg%2Fh%25i"
    assert percent_encode("é中文🎥") == "%C3%A9%E4%B8%AD%E6%96%87%F0%9F%8E%A5"
    assert percent_encode("AZaz09-_.~") == "AZaz09-_.~"


def test_canonical_query_known_answers() -> None:
    assert canonical_query({"b": "2", "a": "x y", "Tag.1.Key": ""}) == "Tag.1.Key=&a=x%20y&b=2"
    # Names are encoded too, as the V3 and V1 documents say. (alibabacloud-tea-openapi's V3 helper
    # leaves names as they are; no Live API parameter name has a character where that differs.)
    assert canonical_query({"a b": "1"}) == "a%20b=1"


# -- the SDKs' signing functions, same inputs ---------------------------------------------------


@pytest.mark.parametrize("value", AWKWARD)
@TOKENS
def test_v3_matches_tea_openapi(value: str, token: str | None) -> None:
    params = {"DomainName": "a.example.com", "NotifyUrl": value, "NotifyAuthKey": value}
    req = sign_v3(ADD, params, Credentials(AK, SECRET, token), host="live.aliyuncs.com", nonce=NONCE, date=DATE)
    headers = {k: v for k, v in req.headers.items() if k != "Authorization"}
    assert headers["x-acs-signature-nonce"] == NONCE and headers["x-acs-date"] == DATE
    if token:
        assert headers["x-acs-security-token"] == token and headers["x-acs-accesskey-id"] == AK
    else:
        assert "x-acs-security-token" not in headers
    assert req.headers["Authorization"] == tea_v3_authorization(headers, params, SECRET)
    assert req.query == canonical_query(params)


@pytest.mark.parametrize("value", AWKWARD)
@TOKENS
def test_v1_matches_both_official_sdks(value: str, token: str | None) -> None:
    params = {"DomainName": "a.example.com", "NotifyUrl": value}
    req = sign_v1(ADD, params, Credentials(AK, SECRET, token), nonce=NONCE, date=DATE)
    sent = sent_params(req.body)
    signature = sent.pop("Signature")
    assert sent["SignatureNonce"] == NONCE and sent["Timestamp"] == DATE and sent["NotifyUrl"] == value
    assert sent.get("SecurityToken") == token
    assert signature == Utils.get_rpcsignature(sent, "POST", SECRET)  # alibabacloud-tea-openapi
    assert signature == sdkcore_v1_signature(sent, SECRET)  # aliyun-python-sdk-core


@pytest.mark.parametrize("value", AWKWARD)
@TOKENS
def test_v1_matches_sdkcore_signed_url(value: str, token: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    # The core SDK's whole composition, its nonce and clock pinned to ours.
    monkeypatch.setattr(parameter_helper, "get_uuid", lambda: NONCE)
    monkeypatch.setattr(parameter_helper, "get_iso_8061_date", lambda: DATE)
    action = {"DomainName": "a.example.com", "NotifyUrl": value}
    theirs = {**action, "Action": ADD, "Version": "2016-11-01", **({"SecurityToken": token} if token else {})}
    url, _ = rpc_signature_composer.get_signed_url(theirs, AK, SECRET, "JSON", "POST", {})
    # The core SDK also sends an empty SignatureType; given that as a parameter, bulk sends the same set.
    mine = sign_v1(ADD, {**action, "SignatureType": ""}, Credentials(AK, SECRET, token), nonce=NONCE, date=DATE)
    assert sent_params(mine.body) == dict(parse_qsl(url.removeprefix("/?"), keep_blank_values=True))


@settings(max_examples=200, deadline=None)
@given(params=st.dictionaries(v3_names, any_text, max_size=5), secret=any_text,
       token=st.none() | any_text.filter(str.strip))
def test_property_v3_any_values(params: dict[str, str], secret: str, token: str | None) -> None:
    req = sign_v3(ADD, params, Credentials(AK, secret, token), host="live.aliyuncs.com", nonce=NONCE, date=DATE)
    headers = {k: v for k, v in req.headers.items() if k != "Authorization"}
    assert req.headers["Authorization"] == tea_v3_authorization(headers, params, secret)


@settings(max_examples=200, deadline=None)
@given(params=st.dictionaries(any_text.filter(bool), any_text, max_size=5), secret=any_text,
       token=st.none() | any_text.filter(bool))
def test_property_v1_any_names_and_values(params: dict[str, str], secret: str, token: str | None) -> None:
    req = sign_v1(ADD, params, Credentials(AK, secret, token), nonce=NONCE, date=DATE)
    sent = sent_params(req.body)
    signature = sent.pop("Signature")
    assert signature == v1_signature(secret, method="POST", params=sent)
    assert signature == Utils.get_rpcsignature(sent, "POST", secret)
    assert signature == sdkcore_v1_signature(sent, secret)


def test_every_signing_gets_a_fresh_nonce_and_date() -> None:
    creds, params = Credentials(AK, SECRET), {"DomainName": "a.example.com"}
    for scheme, nonce_date in (
        ("v3", lambda r: (r.headers["x-acs-signature-nonce"], r.headers["x-acs-date"])),
        ("v1", lambda r: (sent_params(r.body)["SignatureNonce"], sent_params(r.body)["Timestamp"])),
    ):
        (n1, d1), (n2, d2) = (nonce_date(sign(scheme, ADD, params, creds, host="h")) for _ in range(2))
        assert n1 != n2
        for date in (d1, d2):
            age = datetime.now(UTC) - datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            assert abs(age.total_seconds()) < 5
        assert nonce_date(sign(scheme, ADD, params, creds, host="h", nonce=NONCE, date=DATE)) == (NONCE, DATE)
    with pytest.raises(ValueError):
        sign("v2", ADD, params, creds, host="h")


# -- what the official clients really send, checked by bulk -------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[str, list[Seen]]]:
    """A local endpoint that records every request and answers like the service."""
    seen: list[Seen] = []

    async def handle(request: web.Request) -> web.Response:
        query = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen.append(Seen(request.method, request.path, query, headers, await request.read()))
        return web.json_response({"RequestId": "REC-1"})

    async with serving(handle) as endpoint:
        yield endpoint, seen


@pytest.mark.parametrize(("mode", "token"), [("async", None), ("sync", TOKEN)], ids=["async-ak", "sync-sts"])
async def test_official_v3_client_request_resigns_identically(
    recorder: tuple[str, list[Seen]], mode: str, token: str | None
) -> None:
    from alibabacloud_live20161101 import models
    from alibabacloud_live20161101.client import Client
    from alibabacloud_tea_openapi.models import Config
    from alibabacloud_tea_util.models import RuntimeOptions

    endpoint, seen = recorder
    client = Client(Config(access_key_id=AK, access_key_secret=SECRET, security_token=token,
                           endpoint=endpoint, protocol="http"))
    request = models.AddLiveSnapshotNotifyConfigRequest(
        domain_name="a.example.com", notify_url=AWKWARD_URL, notify_req_auth="yes", notify_auth_key="k" * 16
    )
    runtime = RuntimeOptions(autoretry=False, max_attempts=0, connect_timeout=5000, read_timeout=5000)
    if mode == "async":
        await client.add_live_snapshot_notify_config_with_options_async(request, runtime)
    else:
        await asyncio.to_thread(client.add_live_snapshot_notify_config_with_options, request, runtime)
    (got,) = seen
    assert got.query == {"DomainName": "a.example.com", "NotifyUrl": AWKWARD_URL, "NotifyReqAuth": "yes",
                         "NotifyAuthKey": "k" * 16}
    head, signature = got.headers["authorization"].split(",Signature=")
    credential, names = head.removeprefix("ACS3-HMAC-SHA256 Credential=").split(",SignedHeaders=")
    assert credential == AK
    signed = {n: got.headers[n] for n in names.split(";")}
    if token:
        assert signed["x-acs-security-token"] == token
    payload = hashlib.sha256(got.body).hexdigest()
    assert signed["x-acs-content-sha256"] == payload

    # bulk's V3 signature over exactly the headers the SDK signed:
    assert v3_signature(SECRET, method=got.method, path=got.path, query=got.query, headers=signed,
                        payload_sha256=payload) == (names, signature)

    # bulk's own request for this call, nonce and time: it signs exactly the headers the protocol
    # defines that the SDK signed (host and every x-acs-* but the SDK's own provider tag; not the
    # SDK's accept and user-agent), with the same values, and its Authorization is the SDK function's.
    mine = sign_v3(ADD, got.query, Credentials(AK, SECRET, token), host=got.headers["host"],
                   nonce=signed["x-acs-signature-nonce"], date=signed["x-acs-date"])
    mine_headers = {k: v for k, v in mine.headers.items() if k != "Authorization"}
    protocol = {n: v for n, v in signed.items()
                if (n == "host" or n.startswith("x-acs-")) and n != "x-acs-credentials-provider"}
    assert mine_headers == protocol
    assert mine.headers["Authorization"] == tea_v3_authorization(mine_headers, got.query, SECRET)


@TOKENS
async def test_official_v1_client_request_resigns_identically(
    recorder: tuple[str, list[Seen]], token: str | None
) -> None:
    from aliyunsdkcore.auth.credentials import AccessKeyCredential, StsTokenCredential
    from aliyunsdkcore.client import AcsClient
    from aliyunsdklive.request.v20161101.AddLiveSnapshotNotifyConfigRequest import (
        AddLiveSnapshotNotifyConfigRequest,
    )

    endpoint, seen = recorder
    credential = StsTokenCredential(AK, SECRET, token) if token else AccessKeyCredential(AK, SECRET)
    client = AcsClient(region_id="cn-shanghai", credential=credential, auto_retry=False, max_retry_time=0,
                       connect_timeout=5, timeout=5)
    request = AddLiveSnapshotNotifyConfigRequest()
    request.set_endpoint(endpoint)
    request.set_protocol_type("http")
    request.set_DomainName("a.example.com")
    request.set_NotifyUrl(AWKWARD_URL)
    request.set_NotifyAuthKey("k" * 16)
    await asyncio.to_thread(client.do_action_with_exception, request)
    (got,) = seen
    params = {**got.query, **dict(parse_qsl(got.body.decode(), keep_blank_values=True))}  # query ∪ form body
    signature = params.pop("Signature")
    assert params["NotifyUrl"] == AWKWARD_URL and params.get("SecurityToken") == token
    assert v1_signature(SECRET, method=got.method, params=params) == signature
    # As the simulator verifies it: over everything received, Signature left out by v1_signature itself.
    assert v1_signature(SECRET, method=got.method, params={**params, "Signature": signature}) == signature

    # bulk's own request with that nonce and time carries the very same parameters, Signature included,
    # given the two the core SDK adds on its own (RegionId and an empty SignatureType).
    own = {"Action", "Version", "Format", "AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce",
           "Timestamp", "SecurityToken"}
    mine = sign_v1(params["Action"], {k: v for k, v in params.items() if k not in own}, Credentials(AK, SECRET, token),
                   nonce=params["SignatureNonce"], date=params["Timestamp"], method=got.method)
    assert sent_params(mine.body) == {**params, "Signature": signature}
