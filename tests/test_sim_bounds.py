"""The simulator's memory stays bounded, and its streams never leave loopback by a redirect."""

from __future__ import annotations

import asyncio
import secrets
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from conftest import TEST_AK_ID, TEST_AK_SECRET, serving
from yarl import URL

from bulk.credentials import Credentials
from bulk.signing import new_nonce, sign, timestamp
from bulk.sim import LiveStreams, SimConfig, Simulator, StreamsConfig

CREDS = Credentials(TEST_AK_ID, TEST_AK_SECRET)
KNOWN = {
    "AddLiveSnapshotNotifyConfig", "UpdateLiveSnapshotNotifyConfig", "DescribeLiveSnapshotNotifyConfig",
    "DeleteLiveSnapshotNotifyConfig", "SetSnapshotCallbackAuth", "QuerySnapshotCallbackAuth",
    "DeleteSnapshotCallbackAuth",
}


async def call(s: aiohttp.ClientSession, url: str, action: str, params: dict[str, str],
               creds: Credentials = CREDS) -> tuple[int, dict]:
    req = sign("v3", action, params, creds, host=urlsplit(url).netloc)
    target = URL(f"{url}/" + (f"?{req.query}" if req.query else ""), encoded=True)
    async with s.request(req.method, target, headers=req.headers, data=req.body or None) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_action_names_from_strangers_add_no_stats_entry() -> None:
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim, aiohttp.ClientSession() as s:
        for _ in range(50):
            junk = "Junk" + secrets.token_hex(8)
            # Signed by an AccessKey the simulator does not know (V3), and not signed at all (V1).
            status, _ = await call(s, sim.url, junk, {"DomainName": "a.example.com"},
                                   creds=Credentials("LTAIstranger", "x"))
            assert status == 404
            params = {"Action": junk, "Version": "2016-11-01", "AccessKeyId": "LTAIstranger", "Signature": "x",
                      "SignatureNonce": new_nonce(), "Timestamp": timestamp()}
            async with s.post(f"{sim.url}/", data=params) as resp:
                assert resp.status == 404
        # An authenticated call of an action the API does not have is counted, but not by its name.
        status, body = await call(s, sim.url, "Junk" + secrets.token_hex(8), {"DomainName": "a.example.com"})
        assert (status, body["Code"]) == (404, "InvalidAction.NotFound")
        assert (await call(s, sim.url, "QuerySnapshotCallbackAuth", {"DomainName": "a.example.com"}))[0] == 200
    stats = sim.stats()
    assert stats["total"] == 102
    assert stats["calls"] == {"?": {"InvalidAccessKeyId.NotFound": 100, "InvalidAction.NotFound": 1},
                              "QuerySnapshotCallbackAuth": {"OK": 1}}
    assert set(stats["pace"]) == {f"{TEST_AK_ID}/?", f"{TEST_AK_ID}/QuerySnapshotCallbackAuth"}
    assert {action for _, _, action in sim.arrivals()} <= KNOWN | {"?"}


async def test_arrivals_kept_are_the_latest_and_the_figures_count_them_all() -> None:
    now = [1000.0]
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000, arrivals_kept=5)
    async with Simulator(config, clock=lambda: now[0]) as sim, aiohttp.ClientSession() as s:
        for i in range(12):
            now[0] = 1000.0 + i * 0.25  # 4 a second: at most 4 in any one-second window
            status, _ = await call(s, sim.url, "QuerySnapshotCallbackAuth", {"DomainName": "b.example.com"})
            assert status == 200
    assert [t for t, _, _ in sim.arrivals()] == [1000.0 + i * 0.25 for i in range(7, 12)]
    stats = sim.stats()
    assert stats["pace"][f"{TEST_AK_ID}/QuerySnapshotCallbackAuth"] == {
        "calls": 12, "seconds": 2.75, "per_second": 4.0, "max_window": 4, "max_window_accepted": 4,
        "refused": 0, "last_refused": None}
    assert stats["by_access_key"] == {TEST_AK_ID: 12}
    assert stats["max_window"] == 4


async def test_a_stream_does_not_follow_a_redirect() -> None:
    """A loopback NotifyUrl that redirects elsewhere: the 3xx is the answer; the target is never posted to."""
    landed: list[str] = []
    redirected = asyncio.Event()
    answered = 0

    async def target(request: web.Request) -> web.Response:
        landed.append(request.path)
        return web.Response(text="ok")

    async with serving(target) as elsewhere:
        async def redirect(request: web.Request) -> web.Response:
            nonlocal answered
            answered += 1
            if answered >= 3:
                redirected.set()
            raise web.HTTPTemporaryRedirect(f"http://{elsewhere}/landed")

        async with serving(redirect) as endpoint:
            notify_configs = {"r.example.com": {"DomainName": "r.example.com", "NotifyUrl": f"http://{endpoint}/snap",
                                                "NotifyReqAuth": "no", "NotifyAuthKey": ""}}
            streams = LiveStreams(StreamsConfig(count=1, interval=0.02), notify_configs=notify_configs,
                                  callback_auth={})
            await streams.start()
            await asyncio.wait_for(redirected.wait(), 10)
            await streams.stop()  # every callback sent has had its answer
            stats = streams.stats()
    assert landed == []
    assert stats["sent"] == answered and stats["answers"] == {"307": answered} and stats["errors"] == 0
