"""The simulator's own opinion of the API: each documented refusal, over real sockets, whatever bulk thinks.

Requests are signed with bulk.signing (held byte for byte against the
official SDKs elsewhere) and sent raw, so nothing here passes through
bulk's parameter validation. The expected codes and statuses come from the
API reference (shared/reference/live-api.md and the operations' pages),
not from bulk.actions.
"""

from __future__ import annotations

import ast
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
from conftest import TEST_AK_ID, TEST_AK_SECRET
from yarl import URL

import bulk.actions
import bulk.sim
from bulk.credentials import Credentials
from bulk.signing import sign
from bulk.sim import SimConfig, Simulator

CREDS = Credentials(TEST_AK_ID, TEST_AK_SECRET)
ADD, UPDATE, DESCRIBE, DELETE = ("AddLiveSnapshotNotifyConfig", "UpdateLiveSnapshotNotifyConfig",
                                 "DescribeLiveSnapshotNotifyConfig", "DeleteLiveSnapshotNotifyConfig")
SET, QUERY, UNSET = "SetSnapshotCallbackAuth", "QuerySnapshotCallbackAuth", "DeleteSnapshotCallbackAuth"
KEY16, KEY32 = "a1B2c3D4e5F6g7H8", "0123456789abcdefghijABCDEFGHIJkl"
CB = "https://cb.example.com/snap"
# The documented message of the notify family's pages: "%s, please check and try again later."
NOTIFY_MESSAGE = re.compile(r".+, please check and try again later\.")


@pytest_asyncio.fixture
async def service() -> AsyncIterator[Simulator]:
    """A simulator whose quota is out of reach: these tests are about parameters."""
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=100_000)) as sim:
        yield sim


async def call(url: str, action: str, params: dict[str, str], *, scheme: str = "v3") -> tuple[int, dict]:
    """One raw signed call; (HTTP status, JSON body)."""
    req = sign(scheme, action, params, CREDS, host=urlsplit(url).netloc)
    target = URL(f"{url}/" + (f"?{req.query}" if req.query else ""), encoded=True)
    async with aiohttp.ClientSession() as s, s.request(req.method, target, headers=req.headers,
                                                       data=req.body or None) as resp:
        return resp.status, await resp.json(content_type=None)


def notify(domain: str = "a.example.com", **extra: str) -> dict[str, str]:
    return {"DomainName": domain, "NotifyUrl": CB, **extra}


def auth(domain: str = "a.example.com", **extra: str) -> dict[str, str]:
    return {"DomainName": domain, **extra}


# (action, parameters, HTTP status, code): every refusal the reference documents for a parameter.
REFUSALS = [
    # Required parameters: DomainName everywhere, NotifyUrl for Add, all of SetSnapshotCallbackAuth's.
    *((action, {}, 400, "MissingParam") for action in (ADD, UPDATE, DESCRIBE, DELETE, SET, QUERY, UNSET)),
    (ADD, {"NotifyUrl": CB}, 400, "MissingParam"),
    (ADD, {"DomainName": "a.example.com"}, 400, "MissingParam"),
    (ADD, notify(NotifyUrl=""), 400, "MissingParam"),  # an empty value is no value
    (SET, auth(CallbackAuthKey=KEY16), 400, "MissingParam"),
    (SET, auth(CallbackReqAuth="no"), 400, "MissingParam"),  # required even with authentication off
    # NotifyAuthKey is required when NotifyReqAuth is yes (Add, and Update, which takes the same parameters).
    (ADD, notify(NotifyReqAuth="yes"), 400, "MissingParam"),
    (UPDATE, auth(NotifyReqAuth="yes"), 400, "MissingParam"),
    # NotifyUrl: a valid URL of at most 500 characters.
    (ADD, notify(NotifyUrl="https://cb.example.com/" + "x" * 478), 400, "MalformedParam"),  # 501
    (ADD, notify(NotifyUrl="ftp://cb.example.com/snap"), 400, "MalformedParam"),
    (ADD, notify(NotifyUrl="cb.example.com/snap"), 400, "MalformedParam"),
    (ADD, notify(NotifyUrl="https:///snap"), 400, "MalformedParam"),
    (ADD, notify(NotifyUrl="https://cb.example.com/a b"), 400, "MalformedParam"),
    (UPDATE, auth(NotifyUrl="gopher://cb.example.com/"), 400, "MalformedParam"),
    # The yes/no switches.
    (ADD, notify(NotifyReqAuth="Yes", NotifyAuthKey=KEY16), 400, "MalformedParam"),
    (ADD, notify(NotifyReqAuth="true"), 400, "MalformedParam"),
    (SET, auth(CallbackReqAuth="maybe", CallbackAuthKey=KEY16), 400, "MalformedParam"),
    (SET, auth(CallbackReqAuth=" yes", CallbackAuthKey=KEY16), 400, "MalformedParam"),
    # Auth keys: 16 to 32 characters, letters and digits only.
    (ADD, notify(NotifyReqAuth="yes", NotifyAuthKey=KEY16[:15]), 400, "MalformedParam"),
    (ADD, notify(NotifyReqAuth="yes", NotifyAuthKey=KEY32 + "m"), 400, "MalformedParam"),
    (ADD, notify(NotifyReqAuth="yes", NotifyAuthKey=KEY16[:15] + "-"), 400, "MalformedParam"),
    (ADD, notify(NotifyReqAuth="yes", NotifyAuthKey=f" {KEY16} "), 400, "MalformedParam"),
    (ADD, notify(NotifyAuthKey="ä" * 16), 400, "MalformedParam"),
    (SET, auth(CallbackReqAuth="yes", CallbackAuthKey="short"), 400, "MalformedParam"),
    (SET, auth(CallbackReqAuth="no", CallbackAuthKey=KEY16 + "_"), 400, "MalformedParam"),
]


@pytest.mark.parametrize("scheme", ["v3", "v1"])
async def test_each_documented_refusal(service: Simulator, scheme: str) -> None:
    for action, params, status, code in REFUSALS:
        got, body = await call(service.url, action, params, scheme=scheme)
        assert (got, body["Code"]) == (status, code), (action, params)
        assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
        for secret in (params.get("NotifyAuthKey"), params.get("CallbackAuthKey")):
            assert not secret or secret.strip() not in body["Message"]
        if action in (ADD, UPDATE):
            assert NOTIFY_MESSAGE.fullmatch(body["Message"]), body["Message"]
    assert service.notify_configs == {} and service.callback_auth == {}  # nothing refused was kept


async def test_what_the_documentation_allows_is_accepted(service: Simulator) -> None:
    url500 = "https://cb.example.com/" + "x" * 477
    assert len(url500) == 500
    accepted = [
        (ADD, notify("u500.example.com", NotifyUrl=url500)),
        (ADD, notify("k16.example.com", NotifyReqAuth="yes", NotifyAuthKey=KEY16)),
        (ADD, notify("k32.example.com", NotifyReqAuth="no", NotifyAuthKey=KEY32)),  # a key without the switch
        (ADD, notify("plain.example.com", NotifyUrl="http://127.0.0.1:8080/cb?x=1")),
        (UPDATE, auth("k16.example.com", NotifyReqAuth="no")),  # Update's NotifyUrl is optional
        (SET, auth("k16.example.com", CallbackReqAuth="no", CallbackAuthKey=KEY32)),
        (ADD, notify("region.example.com", RegionId="cn-shanghai")),
    ]
    for action, params in accepted:
        status, body = await call(service.url, action, params)
        assert status == 200, (action, params, body)
    assert service.notify_configs["u500.example.com"]["NotifyReqAuth"] == "no"  # the documented default
    assert service.notify_configs["k16.example.com"] == {
        "DomainName": "k16.example.com", "NotifyUrl": CB, "NotifyReqAuth": "no", "NotifyAuthKey": KEY16}
    status, body = await call(service.url, ADD, notify("k16.example.com"))
    assert (status, body["Code"]) == (409, "ConfigAlreadyExists")
    assert NOTIFY_MESSAGE.fullmatch(body["Message"])


@pytest.fixture
def loosened_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    """bulk's own validation, wrong on purpose: any key, any URL, any switch, nothing required."""
    monkeypatch.setattr(bulk.actions, "_KEY", re.compile(r".*"))
    monkeypatch.setattr(bulk.actions, "_URL_MAX", 100_000)
    monkeypatch.setattr(bulk.actions.Action, "validate", lambda self, row: dict(row))
    monkeypatch.setattr(bulk.actions, "ACTIONS", {})


@pytest.mark.usefixtures("loosened_bulk")
async def test_a_rule_loosened_in_bulk_is_still_refused_by_the_simulator(service: Simulator) -> None:
    short = notify(NotifyReqAuth="yes", NotifyAuthKey="short-key")
    assert bulk.actions.Action.validate(None, short) == short  # type: ignore[arg-type]  # bulk lets it through
    cases = [
        (ADD, short, "MalformedParam"),
        (ADD, notify(NotifyUrl="https://cb.example.com/" + "x" * 600), "MalformedParam"),
        (ADD, notify(NotifyReqAuth="yes"), "MissingParam"),
        (SET, auth(CallbackReqAuth="on", CallbackAuthKey=KEY16), "MalformedParam"),
        (SET, auth(CallbackReqAuth="yes"), "MissingParam"),
    ]
    for action, params, code in cases:
        status, body = await call(service.url, action, params)
        assert (status, body["Code"]) == (400, code), (action, params)
    # And what is right still works: the simulator's table, not bulk's catalogue, names the actions.
    assert (await call(service.url, ADD, notify("ok.example.com")))[0] == 200
    status, body = await call(service.url, DESCRIBE, auth("ok.example.com"))
    assert (status, body["NotifyUrl"]) == (200, CB)


def test_the_simulator_imports_nothing_of_bulks_validation() -> None:
    """Only signing (held against the official SDKs), files, keys and callbacks may be shared."""
    shared = {"signing", "files", "keys", "callback", "callbacks"}
    package = Path(bulk.sim.__file__).parent
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 2:  # from ..x import y
                assert (node.module or "").split(".")[0] in shared, (path.name, node.module)
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                assert not (node.module or "").startswith("bulk"), (path.name, node.module)
            if isinstance(node, ast.Import):
                assert not any(alias.name.startswith("bulk") for alias in node.names), path.name
