"""The Live API simulator, driven over real loopback sockets.

Clients are Alibaba Cloud's official SDKs (V3 via alibabacloud-live20161101,
V1 via aliyun-python-sdk-core) and raw aiohttp requests signed with
bulk.signing when a nonce or timestamp has to be pinned.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
import pytest
from conftest import TEST_AK_ID, TEST_AK_SECRET
from hypothesis import given
from hypothesis import strategies as st
from support import start_bulk
from yarl import URL

from bulk.credentials import Credentials
from bulk.signing import canonical_query, new_nonce, sign, timestamp, v1_signature
from bulk.sim import (
    SimConfig,
    Simulator,
    max_in_window,
    parse_access_key,
    read_access_keys,
    serve_forever,
)

CREDS = Credentials(TEST_AK_ID, TEST_AK_SECRET)
KEY_A = "abcdefghij0123456789"
KEY_B = "ZYXWVUTSRQ9876543210abc"
ERROR_FIELDS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


async def call(
    session: aiohttp.ClientSession,
    url: str,
    action: str,
    params: dict[str, str],
    *,
    scheme: str = "v3",
    creds: Credentials = CREDS,
    nonce: str | None = None,
    date: str | None = None,
) -> tuple[int, dict]:
    """One signed call; (HTTP status, JSON body)."""
    req = sign(scheme, action, params, creds, host=urlsplit(url).netloc, nonce=nonce, date=date)
    target = URL(f"{url}/" + (f"?{req.query}" if req.query else ""), encoded=True)
    async with session.request(req.method, target, headers=req.headers, data=req.body or None) as resp:
        return resp.status, await resp.json(content_type=None)


def notify(domain: str, **extra: str) -> dict[str, str]:
    return {"DomainName": domain, "NotifyUrl": "https://cb.example.com/snap", **extra}


# -- max_in_window --------------------------------------------------------------------------


def test_max_in_window_is_half_open() -> None:
    assert max_in_window([]) == 0
    assert max_in_window([5.0]) == 1
    assert max_in_window([0.0, 0.5, 0.999, 1.0]) == 3  # 1.0 is outside [0, 1)
    assert max_in_window([1.0, 0.0, 0.999, 0.5]) == 3  # order does not matter
    assert max_in_window([0.0, 0.1, 0.2, 0.3], window=0.25) == 3
    assert max_in_window([2.0, 2.0, 2.0]) == 3


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=60))
def test_max_in_window_matches_brute_force(ticks: list[int]) -> None:
    # Hundredths make many pairs exactly one window apart, where float rounding could bite.
    times = [t / 100 for t in ticks]
    brute = max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)
    assert max_in_window(times) == brute


# -- the official SDKs as clients -------------------------------------------------------------


def _v3_session(port: str, secret: str = TEST_AK_SECRET):
    from alibabacloud_live20161101 import models
    from alibabacloud_live20161101.client import Client
    from alibabacloud_tea_openapi.models import Config

    client = Client(Config(
        access_key_id=TEST_AK_ID, access_key_secret=secret, endpoint=f"127.0.0.1:{port}", protocol="http",
    ))
    return client, models


def _v3_error(fn, *args) -> tuple[int, str]:
    from alibabacloud_tea_openapi.exceptions import ClientException

    with pytest.raises(ClientException) as info:
        fn(*args)
    return info.value.status_code, info.value.code


def _v3_scenario(port: str) -> dict:
    client, m = _v3_session(port)
    add = m.AddLiveSnapshotNotifyConfigRequest(
        domain_name="v3.example.com", notify_url="http://cb.example.com/x", notify_req_auth="yes",
        notify_auth_key=KEY_A,
    )
    first = client.add_live_snapshot_notify_config(add)
    described = client.describe_live_snapshot_notify_config(
        m.DescribeLiveSnapshotNotifyConfigRequest(domain_name="v3.example.com")
    ).body
    again = _v3_error(client.add_live_snapshot_notify_config, add)
    bad_key = _v3_error(client.set_snapshot_callback_auth, m.SetSnapshotCallbackAuthRequest(
        domain_name="v3.example.com", callback_req_auth="yes", callback_auth_key="short!"))
    client.set_snapshot_callback_auth(m.SetSnapshotCallbackAuthRequest(
        domain_name="v3.example.com", callback_req_auth="yes", callback_auth_key=KEY_B))
    queried = client.query_snapshot_callback_auth(
        m.QuerySnapshotCallbackAuthRequest(domain_name="v3.example.com")).body
    client.update_live_snapshot_notify_config(m.UpdateLiveSnapshotNotifyConfigRequest(
        domain_name="v3.example.com", notify_url="https://new.example.com/y"))
    updated = client.describe_live_snapshot_notify_config(
        m.DescribeLiveSnapshotNotifyConfigRequest(domain_name="v3.example.com")).body
    wrong_client, _ = _v3_session(port, secret="not-the-secret")
    wrong = _v3_error(wrong_client.describe_live_snapshot_notify_config,
                      m.DescribeLiveSnapshotNotifyConfigRequest(domain_name="v3.example.com"))
    return {
        "first": (first.status_code, first.body.request_id), "described": described, "again": again,
        "bad_key": bad_key, "queried": queried, "updated": updated, "wrong": wrong,
    }


async def test_v3_sdk_against_simulator(sim: Simulator) -> None:
    port = sim.url.rsplit(":", 1)[1]
    out = await asyncio.to_thread(_v3_scenario, port)
    status, request_id = out["first"]
    assert status == 200 and len(request_id) == 36 and request_id == request_id.upper()
    d = out["described"]
    assert (d.domain_name, d.notify_url, d.notify_req_auth, d.notify_auth_key) == (
        "v3.example.com", "http://cb.example.com/x", "yes", KEY_A)
    assert out["again"] == (409, "ConfigAlreadyExists")
    assert out["bad_key"] == (400, "MalformedParam")
    q = out["queried"]
    assert (q.domain_name, q.callback_req_auth, q.callback_auth_key) == ("v3.example.com", "yes", KEY_B)
    u = out["updated"]  # Update changes the URL and keeps what it was not given
    assert (u.notify_url, u.notify_req_auth, u.notify_auth_key) == ("https://new.example.com/y", "yes", KEY_A)
    assert out["wrong"] == (400, "SignatureDoesNotMatch")
    assert sim.applied[("AddLiveSnapshotNotifyConfig", "v3.example.com")] == 1
    assert sim.notify_configs["v3.example.com"]["NotifyUrl"] == "https://new.example.com/y"


def _v1_scenario(port: str) -> dict:
    import orjson
    from aliyunsdkcore.acs_exception.exceptions import ServerException
    from aliyunsdkcore.client import AcsClient
    from aliyunsdklive.request.v20161101 import (
        AddLiveSnapshotNotifyConfigRequest,
        DescribeLiveSnapshotNotifyConfigRequest,
        QuerySnapshotCallbackAuthRequest,
        SetSnapshotCallbackAuthRequest,
    )

    def run(client: AcsClient, request):
        request.set_endpoint(f"127.0.0.1:{port}")
        request.set_protocol_type("http")
        try:
            return 200, orjson.loads(client.do_action_with_exception(request))
        except ServerException as exc:
            return exc.get_http_status(), exc.get_error_code()

    client = AcsClient(TEST_AK_ID, TEST_AK_SECRET, "cn-shanghai", auto_retry=False)

    def add():
        r = AddLiveSnapshotNotifyConfigRequest.AddLiveSnapshotNotifyConfigRequest()
        r.set_DomainName("v1.example.com")
        r.set_NotifyUrl("http://cb.example.com/v1")
        return r

    def describe():
        r = DescribeLiveSnapshotNotifyConfigRequest.DescribeLiveSnapshotNotifyConfigRequest()
        r.set_DomainName("v1.example.com")
        return r

    def set_auth(key: str):
        r = SetSnapshotCallbackAuthRequest.SetSnapshotCallbackAuthRequest()
        r.set_DomainName("v1.example.com")
        r.set_CallbackReqAuth("yes")
        r.set_CallbackAuthKey(key)
        return r

    query = QuerySnapshotCallbackAuthRequest.QuerySnapshotCallbackAuthRequest()
    query.set_DomainName("v1.example.com")
    wrong = AcsClient(TEST_AK_ID, "not-the-secret", "cn-shanghai", auto_retry=False)
    return {
        "add": run(client, add()),
        "again": run(client, add()),
        "describe": run(client, describe()),
        "bad_key": run(client, set_auth("has spaces in it!")),
        "set": run(client, set_auth(KEY_B)),
        "query": run(client, query),
        "wrong": run(wrong, describe()),
    }


async def test_v1_sdk_against_simulator(sim: Simulator) -> None:
    port = sim.url.rsplit(":", 1)[1]
    out = await asyncio.to_thread(_v1_scenario, port)
    assert out["add"][0] == 200 and set(out["add"][1]) == {"RequestId"}
    assert out["again"] == (409, "ConfigAlreadyExists")
    status, body = out["describe"]
    assert status == 200
    assert {k: body[k] for k in ("DomainName", "NotifyUrl", "NotifyReqAuth", "NotifyAuthKey")} == {
        "DomainName": "v1.example.com", "NotifyUrl": "http://cb.example.com/v1", "NotifyReqAuth": "no",
        "NotifyAuthKey": "",
    }
    assert out["bad_key"] == (400, "MalformedParam")
    assert out["set"][0] == 200
    status, body = out["query"]
    assert (body["CallbackReqAuth"], body["CallbackAuthKey"]) == ("yes", KEY_B)
    # The core SDK recognises the service's "server string to sign is:" message and, when its own
    # string to sign is the same, reports the wrong secret as such.
    assert out["wrong"] == (400, "InvalidAccessKeySecret")
    assert sim.stats()["calls"]["DescribeLiveSnapshotNotifyConfig"]["SignatureDoesNotMatch"] == 1


# -- signatures, raw ------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["v3", "v1"])
async def test_signature_failures(sim: Simulator, scheme: str) -> None:
    params = {"DomainName": "sig.example.com"}
    action = "DescribeLiveSnapshotNotifyConfig"
    async with aiohttp.ClientSession() as s:
        status, body = await call(s, sim.url, action, params, scheme=scheme,
                                  creds=Credentials("LTAIunknown", TEST_AK_SECRET))
        assert (status, body["Code"]) == (404, "InvalidAccessKeyId.NotFound")
        assert set(body) == ERROR_FIELDS and body["Recommend"].endswith(body["RequestId"])

        status, body = await call(s, sim.url, action, params, scheme=scheme,
                                  creds=Credentials(TEST_AK_ID, TEST_AK_SECRET + "x"))
        assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")

        nonce = new_nonce()
        status, _ = await call(s, sim.url, action, params, scheme=scheme, nonce=nonce)
        assert status == 200
        status, body = await call(s, sim.url, action, params, scheme=scheme, nonce=nonce)
        assert (status, body["Code"]) == (400, "SignatureNonceUsed")

        stale = timestamp(datetime.now(UTC) - timedelta(minutes=16))
        status, body = await call(s, sim.url, action, params, scheme=scheme, date=stale)
        assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")
        fine = timestamp(datetime.now(UTC) - timedelta(minutes=14))
        status, _ = await call(s, sim.url, action, params, scheme=scheme, date=fine)
        assert status == 200
    # Only the two good calls were authenticated: a replay fails authentication.
    assert [a for _, _, a in sim.arrivals()] == [action] * 2
    assert "sig.example.com" not in sim.notify_configs


async def test_v3_body_hash_and_signed_headers_are_checked(sim: Simulator) -> None:
    host = urlsplit(sim.url).netloc
    req = sign("v3", "DescribeLiveSnapshotNotifyConfig", {"DomainName": "h.example.com"}, CREDS, host=host)
    target = URL(f"{sim.url}/?{req.query}", encoded=True)
    async with aiohttp.ClientSession() as s:
        # The same signed headers with a body the signature does not cover.
        async with s.post(target, headers=req.headers, data=b"DomainName=other.example.com") as resp:
            assert (resp.status, (await resp.json())["Code"]) == (400, "SignatureDoesNotMatch")
        tampered = {**req.headers, "x-acs-action": "DeleteLiveSnapshotNotifyConfig"}
        async with s.post(target, headers=tampered) as resp:
            assert (resp.status, (await resp.json())["Code"]) == (400, "SignatureDoesNotMatch")
        # A V3 request can also carry its parameters in a form body, covered by the payload hash.
        import hashlib

        from bulk.signing import v3_signature

        form = canonical_query({"DomainName": "form.example.com"}).encode()
        headers = {
            "host": host, "x-acs-action": "DescribeLiveSnapshotNotifyConfig", "x-acs-version": "2016-11-01",
            "x-acs-date": timestamp(), "x-acs-signature-nonce": new_nonce(),
            "x-acs-content-sha256": hashlib.sha256(form).hexdigest(),
            "content-type": "application/x-www-form-urlencoded",
        }
        signed, sig = v3_signature(TEST_AK_SECRET, method="POST", path="/", query={}, headers=headers,
                                   payload_sha256=headers["x-acs-content-sha256"])
        headers["Authorization"] = f"ACS3-HMAC-SHA256 Credential={TEST_AK_ID},SignedHeaders={signed},Signature={sig}"
        async with s.post(f"{sim.url}/", headers=headers, data=form) as resp:
            assert resp.status == 200
            assert (await resp.json())["DomainName"] == "form.example.com"


async def test_v1_get_with_query_is_accepted(sim: Simulator) -> None:
    params = {
        "Action": "QuerySnapshotCallbackAuth", "Version": "2016-11-01", "Format": "JSON",
        "AccessKeyId": TEST_AK_ID, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
        "SignatureNonce": new_nonce(), "Timestamp": timestamp(), "DomainName": "get.example.com",
    }
    params["Signature"] = v1_signature(TEST_AK_SECRET, method="GET", params=params)
    async with aiohttp.ClientSession() as s:
        async with s.get(URL(f"{sim.url}/?{canonical_query(params)}", encoded=True)) as resp:
            body = await resp.json()
    assert resp.status == 200
    assert body["DomainName"] == "get.example.com" and body["CallbackAuthKey"] == ""


# -- parameters, actions, domains ---------------------------------------------------------------


async def test_parameter_checks(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as s:
        cases = [
            ("AddLiveSnapshotNotifyConfig", {"NotifyUrl": "https://cb.example.com/x"}, 400, "MissingParam"),
            ("AddLiveSnapshotNotifyConfig", notify("a.example.com", NotifyReqAuth="yes"), 400, "MissingParam"),
            ("AddLiveSnapshotNotifyConfig", {"DomainName": "a.example.com", "NotifyUrl": "ftp://x"}, 400,
             "MalformedParam"),
            ("AddLiveSnapshotNotifyConfig", notify("not a domain"), 400, "MalformedParam"),
            ("SetSnapshotCallbackAuth", {"DomainName": "a.example.com", "CallbackReqAuth": "maybe",
                                         "CallbackAuthKey": KEY_A}, 400, "MalformedParam"),
            ("SetSnapshotCallbackAuth", {"DomainName": "a.example.com", "CallbackReqAuth": "yes"}, 400,
             "MissingParam"),
            ("AddLiveSnapshotNotifyConfig", notify("a.example.com", Colour="blue"), 400, "MalformedParam"),
            ("DescribeLiveStreamsOnline", {"DomainName": "a.example.com"}, 404, "InvalidAction.NotFound"),
        ]
        for action, params, want_status, want_code in cases:
            status, body = await call(s, sim.url, action, params)
            assert (status, body["Code"]) == (want_status, want_code), (action, params)
            assert KEY_A not in body["Message"]
        # RegionId and OwnerId are common parameters, not unknown ones.
        status, _ = await call(s, sim.url, "AddLiveSnapshotNotifyConfig",
                               notify("ok.example.com", RegionId="cn-shanghai", OwnerId="1"))
        assert status == 200
        # V1 without Version, and with another version.
        for version, want in ((None, "MissingParam"), ("2014-11-11", "InvalidVersion")):
            params = {
                "Action": "DescribeLiveSnapshotNotifyConfig", "AccessKeyId": TEST_AK_ID,
                "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": new_nonce(),
                "Timestamp": timestamp(), "DomainName": "a.example.com",
            }
            if version:
                params["Version"] = version
            params["Signature"] = v1_signature(TEST_AK_SECRET, method="POST", params=params)
            async with s.post(f"{sim.url}/", data=params) as resp:
                assert (resp.status, (await resp.json())["Code"]) == (400, want)
    assert sim.applied == {("AddLiveSnapshotNotifyConfig", "ok.example.com"): 1}


async def test_state_rules(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as s:
        # Reads of an unconfigured domain: the domain with empty fields.
        status, body = await call(s, sim.url, "DescribeLiveSnapshotNotifyConfig", {"DomainName": "n.example.com"})
        assert status == 200
        assert {k: body[k] for k in ("DomainName", "NotifyUrl", "NotifyReqAuth", "NotifyAuthKey")} == {
            "DomainName": "n.example.com", "NotifyUrl": "", "NotifyReqAuth": "", "NotifyAuthKey": ""}
        status, body = await call(s, sim.url, "UpdateLiveSnapshotNotifyConfig", notify("n.example.com"))
        assert (status, body["Code"]) == (400, "ConfigNotFound")
        for action in ("DeleteLiveSnapshotNotifyConfig", "DeleteSnapshotCallbackAuth"):
            status, _ = await call(s, sim.url, action, {"DomainName": "n.example.com"})
            assert status == 200  # idempotent
        # Domain names are case-insensitive: a second Add in other case is still a conflict.
        assert (await call(s, sim.url, "AddLiveSnapshotNotifyConfig", notify("C.example.com")))[0] == 200
        status, body = await call(s, sim.url, "AddLiveSnapshotNotifyConfig", notify("c.EXAMPLE.com"))
        assert (status, body["Code"]) == (409, "ConfigAlreadyExists")
        assert (await call(s, sim.url, "DeleteLiveSnapshotNotifyConfig", {"DomainName": "c.example.com"}))[0] == 200
        assert "c.example.com" not in sim.notify_configs
        assert (await call(s, sim.url, "AddLiveSnapshotNotifyConfig", notify("c.example.com")))[0] == 200
    assert sim.applied[("AddLiveSnapshotNotifyConfig", "c.example.com")] == 2


async def test_missing_domains() -> None:
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, missing_domains=("*.gone.example.com",
                                                                                   "Dead.Example.com"))
    async with Simulator(config) as sim, aiohttp.ClientSession() as s:
        for domain in ("x.gone.example.com", "Y.GONE.example.com", "dead.example.com"):
            for action, params in (("AddLiveSnapshotNotifyConfig", notify(domain)),
                                   ("QuerySnapshotCallbackAuth", {"DomainName": domain})):
                status, body = await call(s, sim.url, action, params)
                assert (status, body["Code"]) == (404, "InvalidDomain.NotFound")
        assert (await call(s, sim.url, "AddLiveSnapshotNotifyConfig", notify("alive.example.com")))[0] == 200
        assert (await call(s, sim.url, "AddLiveSnapshotNotifyConfig", notify("gone.example.com")))[0] == 200
    assert set(sim.notify_configs) == {"alive.example.com", "gone.example.com"}


# -- stats and state ------------------------------------------------------------------------------


async def test_stats_endpoint(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as s:
        await call(s, sim.url, "AddLiveSnapshotNotifyConfig", notify("s.example.com"))
        await call(s, sim.url, "AddLiveSnapshotNotifyConfig", notify("s.example.com"))
        await call(s, sim.url, "SetSnapshotCallbackAuth",
                   {"DomainName": "s.example.com", "CallbackReqAuth": "no", "CallbackAuthKey": KEY_A})
        await call(s, sim.url, "QuerySnapshotCallbackAuth", {"DomainName": "s.example.com"},
                   creds=Credentials(TEST_AK_ID, "wrong"))
        async with s.get(f"{sim.url}/_sim/stats") as resp:
            stats = await resp.json()
    assert stats == sim.stats()
    assert stats["calls"] == {
        "AddLiveSnapshotNotifyConfig": {"OK": 1, "ConfigAlreadyExists": 1},
        "SetSnapshotCallbackAuth": {"OK": 1},
        "QuerySnapshotCallbackAuth": {"SignatureDoesNotMatch": 1},
    }
    assert stats["total"] == 4
    assert stats["max_window"] == 2 and stats["max_window_accepted"] == 2
    assert stats["configs"] == {"notify": 1, "callback_auth": 1}
    assert stats["applied"] == {"AddLiveSnapshotNotifyConfig": 1, "SetSnapshotCallbackAuth": 1}
    assert stats["faults"] == {}


async def test_state_file_survives_restart(tmp_path) -> None:
    state = tmp_path / "sub" / "sim-state.json"
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, state_file=state)
    async with Simulator(config) as sim, aiohttp.ClientSession() as s:
        await call(s, sim.url, "AddLiveSnapshotNotifyConfig",
                   notify("p.example.com", NotifyReqAuth="yes", NotifyAuthKey=KEY_A))
        await call(s, sim.url, "SetSnapshotCallbackAuth",
                   {"DomainName": "p.example.com", "CallbackReqAuth": "yes", "CallbackAuthKey": KEY_B})
    assert state.exists() and stat.S_IMODE(os.stat(state).st_mode) == 0o600
    assert [p.name for p in state.parent.iterdir()] == [state.name]  # no temp file left behind
    async with Simulator(config) as sim, aiohttp.ClientSession() as s:
        _, body = await call(s, sim.url, "DescribeLiveSnapshotNotifyConfig", {"DomainName": "p.example.com"})
        assert (body["NotifyUrl"], body["NotifyAuthKey"]) == ("https://cb.example.com/snap", KEY_A)
        _, body = await call(s, sim.url, "QuerySnapshotCallbackAuth", {"DomainName": "p.example.com"})
        assert body["CallbackAuthKey"] == KEY_B
        status, body = await call(s, sim.url, "AddLiveSnapshotNotifyConfig", notify("p.example.com"))
        assert (status, body["Code"]) == (409, "ConfigAlreadyExists")
        await call(s, sim.url, "DeleteSnapshotCallbackAuth", {"DomainName": "p.example.com"})
    async with Simulator(config) as sim:
        assert set(sim.notify_configs) == {"p.example.com"} and sim.callback_auth == {}


async def test_serve_forever_reports_and_saves(tmp_path) -> None:
    state = tmp_path / "state.json"
    ready: asyncio.Queue[str] = asyncio.Queue()
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, state_file=state)
    task = asyncio.create_task(serve_forever(config, host="127.0.0.1", port=0, on_ready=ready.put_nowait))
    line = await asyncio.wait_for(ready.get(), 5)
    assert line.startswith("bulk simulator listening on http://127.0.0.1:")
    url = line.rsplit(" ", 1)[1]
    async with aiohttp.ClientSession() as s:
        assert (await call(s, url, "AddLiveSnapshotNotifyConfig", notify("f.example.com")))[0] == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "f.example.com" in state.read_text()


async def test_secrets_never_logged(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, error_rate=0.5, seed=3)
    async with Simulator(config) as sim, aiohttp.ClientSession() as s:
        for i in range(30):
            try:
                await call(s, sim.url, "AddLiveSnapshotNotifyConfig",
                           notify(f"l{i}.example.com", NotifyReqAuth="yes", NotifyAuthKey=KEY_A))
            except aiohttp.ClientError:
                pass
        # A mismatch on a call that carries a key: the V1 message shows the string to sign, masked.
        status, body = await call(s, sim.url, "SetSnapshotCallbackAuth",
                                  {"DomainName": "l.example.com", "CallbackReqAuth": "yes", "CallbackAuthKey": KEY_B},
                                  scheme="v1", creds=Credentials(TEST_AK_ID, "wrong"))
        assert body["Code"] == "SignatureDoesNotMatch" and "server string to sign is:" in body["Message"]
        assert KEY_B not in body["Message"]
        assert "CallbackAuthKey%3D%252A%252A%252A%252A%252A%252A%26" in body["Message"]  # "******", encoded twice
    for secret in (TEST_AK_SECRET, KEY_A, KEY_B):
        assert secret not in caplog.text


# -- the quota ------------------------------------------------------------------------------------


async def test_quota_holds_under_a_burst(sim: Simulator) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as s:
        results = await asyncio.gather(*(
            call(s, sim.url, "SetSnapshotCallbackAuth",
                 {"DomainName": f"b{i}.example.com", "CallbackReqAuth": "yes", "CallbackAuthKey": KEY_A})
            for i in range(100)
        ))
    ok = [b for st_, b in results if st_ == 200]
    throttled = [(st_, b) for st_, b in results if st_ != 200]
    assert all(st_ == 400 and b["Code"] == "Throttling.User" for st_, b in throttled)
    assert all(b["Message"] == "Request was denied due to user flow control." for _, b in throttled)
    stats = sim.stats()
    assert stats["max_window_accepted"] <= 30
    assert stats["max_window"] == max_in_window([t for t, _, _ in sim.arrivals()])
    if stats["max_window"] == 100:  # the whole burst landed within one second, as it should on loopback
        assert len(ok) == 30
    assert len(ok) >= 30
    assert len(sim.callback_auth) == len(ok)  # throttled calls change nothing
    assert stats["calls"]["SetSnapshotCallbackAuth"] == {"OK": len(ok), "Throttling.User": len(throttled)}


async def test_quota_is_a_sliding_window_per_key_and_action() -> None:
    now = [1000.0]
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET, "LTAIother": "other-secret"}, qps=5)
    async with Simulator(config, clock=lambda: now[0]) as sim, aiohttp.ClientSession() as s:
        async def codes(n: int, action: str = "QuerySnapshotCallbackAuth", creds: Credentials = CREDS) -> list:
            out = []
            for _ in range(n):
                status, body = await call(s, sim.url, action, {"DomainName": "w.example.com"}, creds=creds)
                out.append("OK" if status == 200 else body["Code"])
            return out

        assert await codes(6) == ["OK"] * 5 + ["Throttling.User"]
        # Another action and another AccessKey each have their own quota.
        assert await codes(5, action="DescribeLiveSnapshotNotifyConfig") == ["OK"] * 5
        assert await codes(5, creds=Credentials("LTAIother", "other-secret")) == ["OK"] * 5
        now[0] = 1000.999
        assert await codes(1) == ["Throttling.User"]
        now[0] = 1001.0  # the five accepted at 1000.0 have left the half-open window
        assert await codes(6) == ["OK"] * 5 + ["Throttling.User"]
    assert sim.stats()["max_window_accepted"] == 5
    assert sim.stats()["max_window"] == 7  # arrivals at 1000.999 and 1001.0 x6 share a window
    # The same, per AccessKey and action.
    pace = sim.stats()["pace"]
    assert pace[f"{TEST_AK_ID}/QuerySnapshotCallbackAuth"] == {
        "calls": 13, "seconds": 1.0, "per_second": 12.0, "max_window": 7, "max_window_accepted": 5,
        "refused": 3, "last_refused": 1.0,  # refused for the quota at 1000.0, at 1000.999 and at 1001.0
    }
    for key in (f"{TEST_AK_ID}/DescribeLiveSnapshotNotifyConfig", "LTAIother/QuerySnapshotCallbackAuth"):
        assert pace[key] == {"calls": 5, "seconds": 0.0, "per_second": 0.0, "max_window": 5, "max_window_accepted": 5,
                             "refused": 0, "last_refused": None}


# -- faults and latency ---------------------------------------------------------------------------


async def test_injected_throttles_answer_the_codes_given_in_turn() -> None:
    """Throttling.User on a 400 and Throttling on a 503, as the reference has both; neither counts as refused."""
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=100, error_rate=1.0, fault_kinds=("throttle",),
                       throttle_codes=("Throttling.User", "Throttling"), seed=1)
    async with Simulator(config) as sim, aiohttp.ClientSession() as s:
        answers = [await call(s, sim.url, "QuerySnapshotCallbackAuth", {"DomainName": "t.example.com"})
                   for _ in range(4)]
    assert [(status, body["Code"]) for status, body in answers] == [(400, "Throttling.User"), (503, "Throttling")] * 2
    assert sim.stats()["pace"][f"{TEST_AK_ID}/QuerySnapshotCallbackAuth"]["refused"] == 0
    with pytest.raises(ValueError, match="throttle codes"):
        Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, throttle_codes=("ServiceUnavailable",)))


async def _fault_run(seed: int, n: int = 400) -> tuple[Simulator, list[tuple[str, object]]]:
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=100_000, error_rate=0.5, seed=seed)
    results: list[tuple[str, object]] = []
    async with Simulator(config) as sim:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=20)) as s:
            sem = asyncio.Semaphore(20)

            async def one(i: int) -> None:
                domain = f"f{i}.example.com"
                async with sem:
                    try:
                        status, body = await call(s, sim.url, "SetSnapshotCallbackAuth",
                                                  {"DomainName": domain, "CallbackReqAuth": "yes",
                                                   "CallbackAuthKey": KEY_A})
                        results.append((domain, (status, body.get("Code"))))
                    except aiohttp.ClientError:
                        results.append((domain, "dropped"))

            await asyncio.gather(*(one(i) for i in range(n)))
    return sim, results


async def test_fault_kinds_at_the_configured_rate() -> None:
    sim, results = await _fault_run(seed=20240601)
    faults = sim.stats()["faults"]
    kinds = ("internal_before", "internal_after", "unavailable", "throttle", "drop")
    assert set(faults) == set(kinds)
    # 400 calls x 0.5 / 5 kinds = 40 expected each (sd ~6); total 200 (sd 10).
    for kind in kinds:
        assert 20 <= faults[kind] <= 60, faults
    assert 160 <= sum(faults.values()) <= 240

    by = {"ok": [], "500": [], "503": [], "throttle": [], "dropped": []}
    for domain, outcome in results:
        if outcome == "dropped":
            by["dropped"].append(domain)
        elif outcome == (200, None):
            by["ok"].append(domain)
        elif outcome == (500, "InternalError"):
            by["500"].append(domain)
        elif outcome == (503, "ServiceUnavailable"):
            by["503"].append(domain)
        else:
            assert outcome == (400, "Throttling.User")
            by["throttle"].append(domain)
    applied = sim.callback_auth
    assert all(d in applied for d in by["ok"])
    assert not any(d in applied for d in by["503"] + by["throttle"])
    # 500s: "after" ones were applied, "before" ones were not.
    assert sum(d in applied for d in by["500"]) == faults["internal_after"]
    assert len(by["500"]) == faults["internal_before"] + faults["internal_after"]
    assert len(by["503"]) == faults["unavailable"] and len(by["throttle"]) == faults["throttle"]
    # Drops: the client gets no answer; about half were applied first.
    assert len(by["dropped"]) == faults["drop"]
    dropped_applied = sum(d in applied for d in by["dropped"])
    assert 0.15 * faults["drop"] <= dropped_applied <= 0.85 * faults["drop"]
    assert sim.stats()["applied"]["SetSnapshotCallbackAuth"] == len(applied)

    # The same seed gives the same faults, whatever the interleaving.
    again, again_results = await _fault_run(seed=20240601)
    assert again.stats()["faults"] == faults
    assert sum(d in again.callback_auth for d, o in again_results if o == "dropped") == dropped_applied


@pytest.mark.realtime
async def test_hang_holds_until_the_client_gives_up_and_stop_releases() -> None:
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, error_rate=1.0, fault_kinds=("hang",), seed=1)
    sim = Simulator(config)
    await sim.start()
    async with aiohttp.ClientSession() as s:
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call(s, sim.url, "QuerySnapshotCallbackAuth", {"DomainName": "h.example.com"}), 0.5)
        assert time.monotonic() - started >= 0.45
        pending = asyncio.create_task(call(s, sim.url, "QuerySnapshotCallbackAuth", {"DomainName": "h.example.com"}))
        await asyncio.sleep(0.2)
        assert not pending.done()
        started = time.monotonic()
        await asyncio.wait_for(sim.stop(), 5)
        assert time.monotonic() - started < 3
        with pytest.raises(aiohttp.ClientError):
            await asyncio.wait_for(pending, 5)
    assert sim.stats()["faults"] == {"hang": 2}
    assert sim.stats()["calls"]["QuerySnapshotCallbackAuth"] == {"hang": 2}


@pytest.mark.realtime
async def test_latency_follows_the_configured_distribution() -> None:
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, latency_ms=80, latency_jitter_ms=20, seed=5)
    async with Simulator(config) as sim, aiohttp.ClientSession() as s:
        async def timed() -> float:
            started = time.monotonic()
            status, _ = await call(s, sim.url, "QuerySnapshotCallbackAuth", {"DomainName": "t.example.com"})
            assert status == 200
            return time.monotonic() - started

        took = await asyncio.gather(*(timed() for _ in range(20)))
    mean = sum(took) / len(took)
    assert 0.06 <= mean <= 0.4, took
    assert max(took) - min(took) > 0.01  # jittered, not constant


@pytest.mark.realtime
async def test_arrival_jitter_delays_each_request_before_it_is_stamped() -> None:
    """Each request waits a seeded uniform draw in [0, 100 ms] before it is counted and stamped."""
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, arrival_jitter_ms=100, seed=9)
    async with Simulator(config) as sim, aiohttp.ClientSession() as s:
        waited = []
        for i in range(10):
            sent = time.monotonic()  # the simulator's clock too
            status, _ = await call(s, sim.url, "QuerySnapshotCallbackAuth", {"DomainName": f"j{i}.example.com"})
            assert status == 200
            waited.append(sim.arrivals()[-1][0] - sent)
    # Ten draws with this seed add up to 0.457 s; without jitter the stamps follow within a few ms.
    assert sum(waited) >= 0.45
    assert max(waited) - min(waited) >= 0.05


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Simulator(SimConfig(access_keys={}, fault_kinds=("meteor",)))
    with pytest.raises(ValueError, match="error_rate"):
        Simulator(SimConfig(access_keys={}, error_rate=1.5))
    with pytest.raises(ValueError, match="qps"):
        Simulator(SimConfig(access_keys={}, qps=0))
    with pytest.raises(ValueError, match="arrival_jitter_ms"):
        Simulator(SimConfig(access_keys={}, arrival_jitter_ms=-1))


# -- many AccessKeys (accounts) -----------------------------------------------------------------

ACCOUNTS = {f"LTAIacct{i:02d}": f"secret-of-account-{i:02d}" for i in range(5)}


async def test_several_accesskeys_each_signs_for_itself_and_stats_count_arrivals_per_key() -> None:
    config = SimConfig(access_keys=ACCOUNTS, qps=3)
    request_ids: list[str] = []
    async with Simulator(config, clock=lambda: 1000.0) as sim, aiohttp.ClientSession() as s:
        for i, (key_id, secret) in enumerate(ACCOUNTS.items()):
            for n in range(i + 1):
                scheme = "v1" if n % 2 else "v3"
                status, body = await call(s, sim.url, "DescribeLiveSnapshotNotifyConfig",
                                          {"DomainName": "a.example.com"}, creds=Credentials(key_id, secret),
                                          scheme=scheme)
                assert status == (200 if n < 3 else 400)  # the quota is each key's own: 3 at once
                request_ids.append(body["RequestId"])
        # Another account's secret does not sign for this one; nor does an unknown key.
        status, body = await call(s, sim.url, "DescribeLiveSnapshotNotifyConfig", {"DomainName": "a.example.com"},
                                  creds=Credentials("LTAIacct00", ACCOUNTS["LTAIacct01"]))
        assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")
        status, body = await call(s, sim.url, "DescribeLiveSnapshotNotifyConfig", {"DomainName": "a.example.com"},
                                  creds=Credentials("LTAInobody", "x"))
        assert (status, body["Code"]) == (404, "InvalidAccessKeyId.NotFound")
        async with s.get(f"{sim.url}/_sim/stats") as resp:
            stats = await resp.json()
    # Arrivals are counted for the AccessKey that signed them (refused signatures are no one's).
    assert stats["by_access_key"] == {"LTAIacct00": 1, "LTAIacct01": 2, "LTAIacct02": 3, "LTAIacct03": 4,
                                      "LTAIacct04": 5}
    assert stats["calls"]["DescribeLiveSnapshotNotifyConfig"] == {
        "OK": 12, "Throttling.User": 3, "SignatureDoesNotMatch": 1, "InvalidAccessKeyId.NotFound": 1}
    assert stats == sim.stats()
    assert not any(secret in str(stats) for secret in ACCOUNTS.values())
    # Request IDs as the service shows them: random version-4 UUIDs, in capitals.
    assert all(str(uuid.UUID(r)).upper() == r and uuid.UUID(r).version == 4 for r in request_ids)
    assert len(set(request_ids)) == len(request_ids) == 15


def write_private(path, text: str, mode: int = 0o600):
    path.write_text(text)
    path.chmod(mode)
    return path


def test_read_access_keys(tmp_path) -> None:
    path = write_private(tmp_path / "accounts.csv", "\ufeffAccessKeyId,AccessKeySecret\r\n"
                         + "".join(f"{k}, {v}\r\n" for k, v in ACCOUNTS.items()) + "\r\n")
    assert read_access_keys(path) == ACCOUNTS
    secret = "very-secret-value"
    for text, message in (
        ("AccessKeyId,Secret\nLTAIa,x\n", "must start with the line AccessKeyId,AccessKeySecret"),
        (f"AccessKeyId,AccessKeySecret\nLTAIa,{secret},x\n", "line 2 must have two fields"),
        (f"AccessKeyId,AccessKeySecret\nLTAI a,{secret}\n", "line 2: the AccessKey ID must be 1 to 128 letters"),
        ("AccessKeyId,AccessKeySecret\n\nLTAIa, \n", "line 3: the secret must not be empty"),
        (f"AccessKeyId,AccessKeySecret\nLTAIa,{secret} x\n", "line 2: the secret must not be empty nor hold white"),
        (f"AccessKeyId,AccessKeySecret\nLTAIa,{secret}\nLTAIa,{secret}2\n", "line 3: LTAIa is listed twice"),
        ("AccessKeyId,AccessKeySecret\n", "holds no AccessKey"),
    ):
        with pytest.raises(ValueError, match=message) as info:
            read_access_keys(write_private(path, text))
        assert secret not in str(info.value) and str(path) in str(info.value)
    path.write_bytes(b"AccessKeyId,AccessKeySecret\nLTAIa,\xff\n")
    with pytest.raises(ValueError, match="is not UTF-8"):
        read_access_keys(path)
    # Secrets others may read are refused, as keys files are.
    write_private(path, f"AccessKeyId,AccessKeySecret\nLTAIa,{secret}\n", 0o640)
    with pytest.raises(ValueError, match=r"accessible by group or others \(mode 0640\).*chmod 600"):
        read_access_keys(path)
    with pytest.raises(ValueError, match="cannot read"):
        read_access_keys(tmp_path / "missing.csv")


def test_parse_access_key() -> None:
    assert parse_access_key("LTAIa:s3cret") == ("LTAIa", "s3cret")
    assert parse_access_key(" STS.a-b_c : se:cret ") == ("STS.a-b_c", "se:cret")  # the first colon splits
    for pair, message in (("LTAIa-s3cret", "is not ID:SECRET"), (":s3cret", "AccessKey ID"), ("LTAIa:", "secret"),
                          ("LTAI/a:s3cret", "AccessKey ID")):
        with pytest.raises(ValueError, match=message) as info:
            parse_access_key(pair)
        assert "s3cret" not in str(info.value)


async def test_sim_serve_takes_several_accesskeys(tmp_path) -> None:
    keys_file = write_private(tmp_path / "accounts.csv", "AccessKeyId,AccessKeySecret\n"
                              + "".join(f"{k},{v}\n" for k, v in list(ACCOUNTS.items())[2:]))
    env = {k: v for k, v in os.environ.items() if k != "BULK_SIM_ACCESS_KEY_SECRET"}
    proc = await start_bulk(
        "sim", "serve", "--port", "0", "--access-key-id", TEST_AK_ID,
        "--access-key-secret", TEST_AK_SECRET, "--access-key", f"LTAIacct00:{ACCOUNTS['LTAIacct00']}",
        "--access-key", f"LTAIacct01:{ACCOUNTS['LTAIacct01']}", "--access-keys-file", str(keys_file), env=env)
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        url = first.rsplit(" ", 1)[1]
        async with aiohttp.ClientSession() as s:
            for key_id, secret in {TEST_AK_ID: TEST_AK_SECRET, **ACCOUNTS}.items():
                status, _ = await call(s, url, "DescribeLiveSnapshotNotifyConfig", {"DomainName": "a.example.com"},
                                       creds=Credentials(key_id, secret))
                assert status == 200, key_id
            async with s.get(f"{url}/_sim/stats") as resp:
                assert set((await resp.json())["by_access_key"]) == {TEST_AK_ID, *ACCOUNTS}
    finally:
        proc.terminate()
        out, _ = await proc.communicate()
    assert b"export" not in out  # keys given: none made up, none printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--access-key", "LTAIa-do-not-show"], "--access-key number 1: is not ID:SECRET"),
        (["--access-key", "LTAIa:x", "--access-key", "LTAIa:do-not-show"], "AccessKey LTAIa is given twice"),
        (["--access-key-id", "LTAIa", "--access-key", "LTAIa:do-not-show"], "give both --access-key-id and"),
        (["--access-keys-file", "{open}"], "accessible by group or others"),
    ],
)
async def test_sim_serve_refuses_unusable_accesskeys(tmp_path, args: list[str], message: str) -> None:
    opened = write_private(tmp_path / "open.csv", "AccessKeyId,AccessKeySecret\nLTAIa,do-not-show\n", 0o644)
    env = {k: v for k, v in os.environ.items() if k != "BULK_SIM_ACCESS_KEY_SECRET"}
    proc = await start_bulk("sim", "serve", "--port", "0", *(a.format(open=opened) for a in args), env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    text = " ".join(err.decode().split())  # rich wraps long lines
    assert message in text and "do-not-show" not in text + out.decode()
