"""The fleet's inventory: bulk domains (the account's list, paged), bulk export (each domain's callback config,
keys as fingerprints), and plan/verify showing old -> new per field; all against the simulator over sockets."""

from __future__ import annotations

from pathlib import Path

import orjson
from aiohttp import web
from conftest import TEST_AK_ID, TEST_AK_SECRET, serving
from support import KEY, NEW_URL, OLD_KEY, URL, bulk, fleet, fleet_csv, run_engine, simulator

from bulk.actions import LIST_DOMAINS
from bulk.checkpoint import Checkpoint, RowState
from bulk.client import LiveClient
from bulk.credentials import Credentials, StaticCredentials, fingerprint
from bulk.engine import run
from bulk.inventory import DomainFilter, export_options, export_rows, list_domains
from bulk.jobs import ExportJob
from bulk.options import Mode
from bulk.retry import RetryPolicy
from bulk.sim import Simulator
from bulk.verify import verify_options

CREDS = StaticCredentials(Credentials(TEST_AK_ID, TEST_AK_SECRET))
AUTH_KEY = "ExportKey0123456789abcd"


def _names(listed: object) -> set[str]:
    return {d.name for d in listed.domains}  # type: ignore[attr-defined]


async def test_listing_pages_beyond_50_as_documented() -> None:
    domains = tuple({"DomainName": f"d{i:03d}.example.com"} for i in range(130))
    async with simulator(domains=domains) as sim, LiveClient(credentials=CREDS, endpoint=sim.url) as client:
        first = await client.call(LIST_DOMAINS.name, {})
        assert first.ok and first.body["PageSize"] == 20 and first.body["PageNumber"] == 1  # documented default
        assert first.body["TotalCount"] == 130 and len(first.body["Domains"]["PageData"]) == 20
        third = await client.call(LIST_DOMAINS.name, {"PageSize": "50", "PageNumber": "3"})
        assert [d["DomainName"] for d in third.body["Domains"]["PageData"]] == [
            f"d{i:03d}.example.com" for i in range(100, 130)]
        beyond = await client.call(LIST_DOMAINS.name, {"PageSize": "50", "PageNumber": "4"})
        assert beyond.body["TotalCount"] == 130 and beyond.body["Domains"]["PageData"] == []
        too_big = await client.call(LIST_DOMAINS.name, {"PageSize": "51"})
        assert not too_big.ok and too_big.status == 400 and too_big.code == "MalformedParam"  # type: ignore[union-attr]

        before = sum(sim.stats()["calls"][LIST_DOMAINS.name].values())
        listed = await list_domains(client)
        assert listed.complete and listed.total == 130 and listed.pages == 3
        assert _names(listed) == {f"d{i:03d}.example.com" for i in range(130)}
        assert sum(sim.stats()["calls"][LIST_DOMAINS.name].values()) - before == 3  # 50 a page: three calls


async def test_listing_filters_by_type_status_name_and_region() -> None:
    domains = (
        {"DomainName": "a.video.example.com", "LiveDomainType": "liveVideo", "LiveDomainStatus": "online"},
        {"DomainName": "b.video.example.com", "LiveDomainType": "liveVideo", "LiveDomainStatus": "offline"},
        {"DomainName": "push.edge.example.com", "LiveDomainType": "liveEdge", "LiveDomainStatus": "online"},
        {"DomainName": "eu.example.net", "RegionName": "eu-central-1", "LiveDomainStatus": "configuring"},
    )
    async with simulator(domains=domains) as sim, LiveClient(credentials=CREDS, endpoint=sim.url) as client:
        sim.notify_configs["configured.example.org"] = {"DomainName": "configured.example.org", "NotifyUrl": URL,
                                                        "NotifyReqAuth": "no", "NotifyAuthKey": ""}

        async def names(**given: str) -> set[str]:
            listed = await list_domains(client, DomainFilter(**given))
            assert listed.complete
            return _names(listed)

        every = {d["DomainName"] for d in domains} | {"configured.example.org"}
        assert await names() == every  # a domain that holds a config is the account's too
        assert await names(domain_type="liveEdge") == {"push.edge.example.com"}
        assert await names(status="online") == {"a.video.example.com", "push.edge.example.com",
                                                "configured.example.org"}
        assert await names(status="offline") == {"b.video.example.com"}
        assert await names(region="eu-central-1") == {"eu.example.net"}
        assert await names(name="video") == {"a.video.example.com", "b.video.example.com"}
        assert await names(name="push", search="pre_match") == {"push.edge.example.com"}
        assert await names(name="video", search="pre_match") == set()
        assert await names(name=".net", search="suf_match") == {"eu.example.net"}
        assert await names(name="eu.example.net", search="full_match") == {"eu.example.net"}
        assert await names(name="eu.example", search="full_match") == set()


async def test_listing_has_its_own_quota() -> None:
    # The account's quota of every other action is 2 calls/s here: the listing's own, 100/s, lets six pages through
    # at once, at the client's pace and at the simulator's.
    domains = tuple({"DomainName": f"q{i:03d}.example.com"} for i in range(300))
    async with simulator(domains=domains, qps=2) as sim, LiveClient(credentials=CREDS, endpoint=sim.url) as client:
        listed = await list_domains(client)
        assert listed.complete and len(listed.domains) == 300 and listed.pages == 6
        assert sim.stats()["calls"][LIST_DOMAINS.name] == {"OK": 6}
        assert sim.stats()["pace"][f"{TEST_AK_ID}/{LIST_DOMAINS.name}"]["max_window"] == 6


async def test_domains_output_feeds_bulk_run(tmp_path: Path) -> None:
    domains = (
        *({"DomainName": f"on{i:02d}.example.com"} for i in range(60)),
        {"DomainName": "off.example.com", "LiveDomainStatus": "offline"},
        {"DomainName": "eu.example.com", "RegionName": "eu-central-1"},
    )
    listing = tmp_path / "domains.csv"
    # eu.example.com answers only in its own region: the RegionId column of the listing sends it there.
    async with simulator(domains=domains, domain_regions=(("eu.example.com", "eu-central-1"),)) as sim:
        code, out, err = await bulk("domains", "--status", "online", "--out", str(listing), "--endpoint", sim.url)
        assert code == 0, err
        assert "62 domain(s)" not in err and "61 domain(s) listed in 2 page(s)" in err
        lines = listing.read_text().splitlines()
        assert lines[0] == "DomainName,RegionId" and len(lines) == 62
        assert "eu.example.com,eu-central-1" in lines and not any(line.startswith("off.") for line in lines)
        assert listing.stat().st_mode & 0o077 == 0

        code, out, err = await bulk("run", str(listing), "--action", "add-live-snapshot-notify-config", "--set",
                                    f"NotifyUrl={URL}", "--endpoint", sim.url, "--qps", "500", "--quiet")
        assert code == 0, err + out
        assert set(sim.notify_configs) == {f"on{i:02d}.example.com" for i in range(60)} | {"eu.example.com"}

        code, out, err = await bulk("domains", "--json", "--type", "liveVideo", "--name", "eu.",
                                    "--endpoint", sim.url)
        assert code == 0, err
        document = orjson.loads(out)
        assert document["total"] == 1
        assert [(d["DomainName"], d["RegionId"], d["LiveDomainStatus"]) for d in document["domains"]] == [
            ("eu.example.com", "eu-central-1", "online")]


async def _export(sim: Simulator, src: Path) -> tuple[ExportJob, object]:
    job = ExportJob()
    options = export_options(src, checkpoint=src.with_suffix(".export.ckpt"))
    async with LiveClient(credentials=CREDS, endpoint=sim.url) as client:
        return job, await run(options, client=client, job=job)


def _configure(sim: Simulator) -> None:
    sim.notify_configs["a.example.com"] = {"DomainName": "a.example.com", "NotifyUrl": URL, "NotifyReqAuth": "yes",
                                           "NotifyAuthKey": AUTH_KEY}
    sim.callback_auth["a.example.com"] = {"DomainName": "a.example.com", "CallbackReqAuth": "yes",
                                          "CallbackAuthKey": KEY}


async def test_export_keeps_each_answer_with_fingerprints_never_keys(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("DomainName\na.example.com\nb.example.com\ngone.missing.example.com\n")
    async with simulator(missing_domains=("*.missing.example.com",)) as sim:
        _configure(sim)
        job, result = await _export(sim, src)
    rows = export_rows(job)
    assert rows == [
        {"DomainName": "a.example.com", "CallbackReqAuth": "yes", "CallbackAuthKeyFingerprint": fingerprint(KEY),
         "NotifyUrl": URL, "NotifyReqAuth": "yes", "NotifyAuthKeyFingerprint": fingerprint(AUTH_KEY)},
        {"DomainName": "b.example.com", "CallbackReqAuth": "", "CallbackAuthKeyFingerprint": "",
         "NotifyUrl": "", "NotifyReqAuth": "", "NotifyAuthKeyFingerprint": ""},
    ]
    assert result.counts["done"] == 2 and result.counts["failed"] == 1  # type: ignore[attr-defined]
    with Checkpoint.open_readonly(src.with_suffix(".export.ckpt")) as c:
        assert [r["code"] for r in c.rows(states=[RowState.FAILED])] == ["InvalidDomain.NotFound"]


async def test_export_command_never_writes_a_key(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("DomainName\na.example.com\n")
    table = tmp_path / "callbacks.jsonl"
    async with simulator() as sim:
        _configure(sim)
        code, out, err = await bulk("export", str(src), "--out", str(table), "--json", "--endpoint", sim.url)
    assert code == 0, err
    written = table.read_text()
    for text in (written, out, err):
        assert KEY not in text and AUTH_KEY not in text
    assert orjson.loads(written.splitlines()[0])["NotifyAuthKeyFingerprint"] == fingerprint(AUTH_KEY)
    document = orjson.loads(out)
    assert document["unreadable"] == []
    assert document["domains"][0]["CallbackAuthKeyFingerprint"] == fingerprint(KEY)
    assert document["domains"][0]["NotifyUrl"] == URL
    assert table.stat().st_mode & 0o077 == 0


async def test_plan_shows_old_and_new_values(tmp_path: Path) -> None:
    src = fleet_csv(tmp_path / "fleet.csv")
    plan = tmp_path / "fleet.plan.jsonl"
    async with simulator(missing_domains=("*.missing.example.com",)) as sim:
        fleet(sim)
        code, out, err = await bulk("plan", str(src), "--action", "AddLiveSnapshotNotifyConfig", "-o", str(plan),
                                    "--endpoint", sim.url)
    assert code == 0, err
    assert f'url.example.com: update: NotifyUrl "https://old.cb.example.com/snap" -> "{NEW_URL}"' in out
    assert f"key.example.com: update: NotifyAuthKey {fingerprint(OLD_KEY)} -> {fingerprint(KEY)}" in out
    assert f'new.example.com: create: NotifyUrl (none) -> "{NEW_URL}"' in out
    assert "same.example.com" not in out  # a noop changes nothing
    assert KEY not in out and OLD_KEY not in out and KEY not in plan.read_text()
    entries = {e["domain"]: e for e in map(orjson.loads, plan.read_bytes().splitlines()[1:])}
    assert entries["key.example.com"]["changes"] == f"NotifyAuthKey {fingerprint(OLD_KEY)} -> {fingerprint(KEY)}"


async def test_verify_shows_live_and_wanted_values(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("DomainName\nurl.example.com\nkey.example.com\n")
    ckpt = tmp_path / "d.ckpt"
    wanted = {"NotifyUrl": URL, "NotifyReqAuth": "yes", "NotifyAuthKey": KEY}
    async with simulator() as sim:
        assert (await run_engine(sim, src, checkpoint=ckpt, overrides=wanted)).exit_code == 0
        sim.notify_configs["url.example.com"]["NotifyUrl"] = "https://drifted.example.com/x"
        sim.notify_configs["key.example.com"]["NotifyAuthKey"] = OLD_KEY
        options = verify_options(ckpt, given=[f"NotifyAuthKey={KEY}"])
        assert options.mode is Mode.VERIFY
        async with LiveClient(credentials=CREDS, endpoint=sim.url) as client:
            result = await run(options, client=client)
    assert result.exit_code == 1
    with Checkpoint.open_readonly(options.checkpoint_path) as c:
        messages = {r["domain"]: r["message"] or "" for r in c.rows(states=[RowState.FAILED])}
    assert f'NotifyUrl "https://drifted.example.com/x" -> "{URL}"' in messages["url.example.com"]
    assert f"NotifyAuthKey {fingerprint(OLD_KEY)} -> {fingerprint(KEY)}" in messages["key.example.com"]
    assert all(KEY not in m and OLD_KEY not in m for m in messages.values())



class _Listing:
    """A DescribeLiveUserDomains of ``count`` domains; ``answer(call, page, size, names)`` may break any page."""

    def __init__(self, count: int, answer: object = None) -> None:
        self.domains = [f"p{i:03d}.example.com" for i in range(count)]
        self.calls = 0
        self._answer = answer

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        page, size = int(request.query["PageNumber"]), int(request.query["PageSize"])
        names = self.domains[(page - 1) * size:page * size]
        body: dict[str, object] = {"RequestId": f"r{self.calls}", "PageNumber": page, "PageSize": size,
                                   "TotalCount": len(self.domains)}
        if self._answer is not None:
            names = self._answer(self.calls, page, names, body)  # type: ignore[operator]
        body["Domains"] = {"PageData": [{"DomainName": n, "RegionName": "cn-shanghai"} for n in names]}
        return web.Response(body=orjson.dumps(body), content_type="application/json")


async def _list(listing: _Listing) -> object:
    async with serving(listing.handle) as endpoint, LiveClient(credentials=CREDS, endpoint=f"http://{endpoint}",
                                                               timeout=5) as client:
        return await list_domains(client, retry=RetryPolicy(max_attempts=1))


async def test_listing_reads_past_a_short_or_empty_page_up_to_the_total() -> None:
    # TotalCount is the contract: a page shorter than PageSize (here the second of three, once empty, once short)
    # is not the end, and a listing that stopped there would pass a partial fleet off as the account's.
    for broken in ([], lambda names: names[:7]):
        def answer(call: int, page: int, names: list[str], body: dict[str, object], broken: object = broken) -> object:
            if call == 2:
                return broken if isinstance(broken, list) else broken(names)  # type: ignore[operator]
            return names

        listing = _Listing(130, answer)
        listed = await _list(listing)
        assert listed.complete, listed.failure  # type: ignore[attr-defined]
        assert _names(listed) == set(listing.domains) and listed.total == 130  # type: ignore[attr-defined]


async def test_listing_that_never_adds_up_is_incomplete() -> None:
    # A page that stays short on every read: the list is reported incomplete, never written as the fleet.
    def answer(call: int, page: int, names: list[str], body: dict[str, object]) -> object:
        return names[:-1] if page == 2 else names

    listing = _Listing(130, answer)
    listed = await _list(listing)
    assert not listed.complete and listed.failure.code == "IncompleteListing"  # type: ignore[attr-defined]
    assert listing.calls == 9  # three reads of the three pages, then it gives up


async def test_listing_that_changes_while_read_is_read_again() -> None:
    # A domain deleted between the first and the second page shifts the next one back onto the page already read;
    # the changed TotalCount says so, and the list is read again rather than losing that domain.
    def answer(call: int, page: int, names: list[str], body: dict[str, object]) -> object:
        if call == 1:
            listing.domains.remove("p010.example.com")
        return names

    listing = _Listing(130, answer)
    listed = await _list(listing)
    assert listed.complete and _names(listed) >= set(listing.domains)  # type: ignore[attr-defined]
    assert "p050.example.com" in _names(listed)


async def test_listing_takes_a_total_as_text_and_pages_on_without_one() -> None:
    for total in ("130", None):
        def answer(call: int, page: int, names: list[str], body: dict[str, object], total: object = total) -> object:
            if total is None:
                del body["TotalCount"]
            else:
                body["TotalCount"] = total
            return names

        listed = await _list(_Listing(130, answer))
        assert listed.complete and len(_names(listed)) == 130, total  # type: ignore[attr-defined]
