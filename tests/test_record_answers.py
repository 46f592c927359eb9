"""The record against answers that are not the service's documented ones: each odd answer proves nothing.

A service (or what stands in front of it) may answer a 200 that carries an
error code, a 200 that is no API answer at all, or a read about another
domain. Each test answers so once per domain, from a simulator that keeps
the truth, and compares what bulk recorded with what the service holds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import URL, bulk, run_engine

from bulk.actions import API_VERSION
from bulk.checkpoint import Checkpoint
from bulk.sim import SimConfig, Simulator
from bulk.sim.constraints import resolve as sim_resolve

SET, QUERY = "SetSnapshotCallbackAuth", "QuerySnapshotCallbackAuth"
UPDATE, DESCRIBE = "UpdateLiveSnapshotNotifyConfig", "DescribeLiveSnapshotNotifyConfig"
OLD_URL = "https://old.example.com/snap"


def rows_of(path: Path) -> dict[str, dict[str, object]]:
    with Checkpoint.open_readonly(path) as ckpt:
        return {str(r["domain"]): dict(r) for r in ckpt.rows() if r["domain"]}


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


class _OddOnce(Simulator):
    """Answers each domain's first call of ``action`` with ``odd(domain)``, without carrying it out."""

    action = ""
    seen: set[str]

    def odd(self, domain: str) -> web.Response:
        raise NotImplementedError

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        domain = request.query.get("DomainName", "")
        if request.headers.get("x-acs-action") == self.action and domain not in self.seen:
            self.seen.add(domain)
            return self.odd(domain)
        return await super()._answer(request)


def _odd(action: str, answer: object) -> _OddOnce:
    class Odd(_OddOnce):
        def odd(self, domain: str) -> web.Response:
            return _json(answer(domain) if callable(answer) else answer)

    sim = Odd(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000))
    sim.action, sim.seen = action, set()
    return sim


def _set_rows(path: Path, n: int, *, key: str | None = None) -> Path:
    path.write_text("DomainName,CallbackReqAuth,CallbackAuthKey\n"
                    + "".join(f"s{i}.example.com,yes,{key or f'Key{i:04d}abcdefghijklm'}\n" for i in range(n)))
    return path


# -- a 200 that is not the service's OK --------------------------------------------------------------------


async def test_a_200_carrying_an_error_code_is_no_proof_that_a_write_landed(tmp_path: Path) -> None:
    """Each first Set is answered 200 with an error body and not carried out: no row may be done for it."""
    error = {"RequestId": "R", "HostId": "live.aliyuncs.com", "Code": "InternalError", "Message": "try later"}
    async with _odd(SET, error) as sim:
        result = await run_engine(sim, _set_rows(tmp_path / "s.csv", 4), action=SET, overrides={}, qps=500,
                                  backup=False, max_attempts=1, timeout=0.5)
        held = {d for d, c in sim.callback_auth.items() if c.get("CallbackReqAuth") == "yes"}
    rows = rows_of(result.checkpoint)
    assert all((r["state"] == "done") == (d in held) for d, r in rows.items()), (rows, held)
    assert result.counts["done"] == len(held) and result.exit_code != 0, result.counts


async def test_a_200_without_a_request_id_is_no_proof_that_a_write_landed(tmp_path: Path) -> None:
    """``{}`` (a proxy's answer, not the API's: its every answer has a RequestId) after a Set not carried out."""
    async with _odd(SET, {}) as sim:
        result = await run_engine(sim, _set_rows(tmp_path / "s.csv", 4), action=SET, overrides={}, qps=500,
                                  backup=False, max_attempts=1, timeout=0.5)
        held = {d for d, c in sim.callback_auth.items() if c.get("CallbackReqAuth") == "yes"}
    rows = rows_of(result.checkpoint)
    assert all((r["state"] == "done") == (d in held) for d, r in rows.items()), (rows, held)
    assert result.exit_code != 0, result.counts


# -- a read that is not this domain's state ----------------------------------------------------------------


def _old(i: int) -> dict[str, str]:
    return {"DomainName": f"u{i}.example.com", "NotifyUrl": f"https://old{i}.example.com/snap",
            "NotifyReqAuth": "yes", "NotifyAuthKey": f"Old{i:04d}abcdefghijklm"}


@pytest.mark.parametrize("answer", ["another domain", "a boolean switch"])
async def test_a_read_that_is_not_the_domains_state_is_never_recorded_as_its_prior_state(
    tmp_path: Path, answer: str
) -> None:
    """Each domain's first Describe (the backup's read) answers with another domain's config, or with
    NotifyReqAuth as a JSON true: a rollback must still give every domain back its own config."""
    def odd(domain: str) -> dict[str, object]:
        i = int(domain[1])
        if answer == "another domain":
            return {"RequestId": "R", **_old((i + 1) % 3)}
        return {"RequestId": "R", **_old(i), "NotifyReqAuth": True}

    src = tmp_path / "u.csv"
    src.write_text("DomainName\n" + "".join(f"u{i}.example.com\n" for i in range(3)))
    async with _odd(DESCRIBE, odd) as sim:
        for i in range(3):
            sim.notify_configs[f"u{i}.example.com"] = _old(i)
        result = await run_engine(sim, src, action=UPDATE, overrides={"NotifyUrl": URL}, qps=500)
        assert result.exit_code == 0 and result.counts["done"] == 3, result.counts
        code, out, err = await bulk("rollback", str(result.checkpoint), "--endpoint", sim.url, "--quiet")
        held = {d: dict(c) for d, c in sim.notify_configs.items()}
    assert code == 0, out + err
    assert held == {f"u{i}.example.com": _old(i) for i in range(3)}


# -- a read that does not show the key -----------------------------------------------------------------------


class _HidesKeys(Simulator):
    """Shows each NotifyAuthKey masked (``mask``) or leaves it out (``None``) in Describe answers."""

    mask: str | None = None

    def _ok(self, action: str, fields: dict[str, object]) -> web.Response:
        if action == DESCRIBE and fields.get("NotifyAuthKey"):
            fields = {k: v for k, v in fields.items() if k != "NotifyAuthKey"}
            if self.mask is not None:
                fields["NotifyAuthKey"] = self.mask
        return super()._ok(action, fields)


@pytest.mark.parametrize("mask", ["****", None])
async def test_a_read_back_that_hides_the_key_settles_no_row_that_sets_one(tmp_path: Path, mask: str | None) -> None:
    """Each Update lands and answers 500; its read-back shows the key masked, or not at all: bulk cannot tell
    whether the key is the row's, so no row is failed (nor done) on that read."""
    src = tmp_path / "u.csv"
    src.write_text("DomainName,NotifyReqAuth,NotifyAuthKey\n"
                   + "".join(f"u{i}.example.com,yes,New{i:04d}abcdefghijklm\n" for i in range(3)))
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000, error_rate=1.0,
                       fault_kinds=("internal_after",), fault_actions=(UPDATE,))
    async with _HidesKeys(config) as sim:
        sim.mask = mask
        for i in range(3):
            sim.notify_configs[f"u{i}.example.com"] = _old(i)
        result = await run_engine(sim, src, action=UPDATE, overrides={}, qps=500, backup=False, max_attempts=1)
        held = {d for d, c in sim.notify_configs.items() if c["NotifyAuthKey"].startswith("New")}
    rows = rows_of(result.checkpoint)
    assert held == set(rows)  # every Update landed
    assert {r["state"] for r in rows.values()} == {"unknown"}, rows
    assert result.exit_code in (3, 5), result


# -- a write still under way when the gateway gave up ------------------------------------------------------


class _LandsLater(Simulator):
    """Each domain's first Set: a gateway answers ``answer`` at once, and the service carries it out a little
    later (its upstream was still working on it)."""

    answer = ""
    seen: set[str]
    landing: set[asyncio.Task[None]]

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        domain = request.query.get("DomainName", "")
        if request.headers.get("x-acs-action") != SET or domain in self.seen:
            return await super()._answer(request)
        self.seen.add(domain)
        task = asyncio.create_task(self._land(dict(request.query)))
        self.landing.add(task)
        task.add_done_callback(self.landing.discard)
        if self.answer == "reset":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never sent: the connection is gone
        return web.Response(status=504, text="<html><body>504 Gateway Time-out</body></html>",
                            content_type="text/html")

    async def _land(self, params: dict[str, str]) -> None:
        await asyncio.sleep(0.3)
        self._apply(sim_resolve(SET, API_VERSION), params)


@pytest.mark.parametrize("answer", ["gateway 504", "reset"])
async def test_a_write_the_service_never_answered_is_not_failed_while_it_may_still_land(
    tmp_path: Path, answer: str
) -> None:
    """A 504 from a gateway, or a connection reset after the request went out: the upstream may still be
    carrying the write out, as after a timeout. Read back at once it is absent; it lands 0.3 s later."""
    sim = _LandsLater(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000))
    sim.answer, sim.seen, sim.landing = answer, set(), set()
    async with sim:
        result = await run_engine(sim, _set_rows(tmp_path / "s.csv", 3), action=SET, overrides={}, qps=500,
                                  backup=False, max_attempts=1, timeout=1.0)
        await asyncio.gather(*sim.landing)
        held = {d for d, c in sim.callback_auth.items() if c.get("CallbackReqAuth") == "yes"}
    rows = rows_of(result.checkpoint)
    assert held == set(rows)
    assert {r["state"] for r in rows.values()} == {"done"}, rows
    assert result.exit_code == 0


async def test_a_202_accepted_is_no_proof_that_a_write_landed(tmp_path: Path) -> None:
    """Each first Set is answered 202 (taken for later, as a queue in front of the service may say) and then
    lost: the service's success is a 200, so no row may be done for it."""
    class Accepted(_OddOnce):
        def odd(self, domain: str) -> web.Response:
            return _json({"RequestId": "R"}, status=202)

    sim = Accepted(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000))
    sim.action, sim.seen = SET, set()
    async with sim:
        result = await run_engine(sim, _set_rows(tmp_path / "s.csv", 3), action=SET, overrides={}, qps=500,
                                  backup=False, max_attempts=1, timeout=0.5)
        held = {d for d, c in sim.callback_auth.items() if c.get("CallbackReqAuth") == "yes"}
    rows = rows_of(result.checkpoint)
    assert not held and {r["state"] for r in rows.values()} == {"unknown"}, rows
    assert result.exit_code == 3


# -- a read that leaves out a field at its documented default ----------------------------------------------


class _LeavesOutDefaults(Simulator):
    """Describe leaves NotifyReqAuth out where it is ``no``, its documented default (and an unset key)."""

    def _ok(self, action: str, fields: dict[str, object]) -> web.Response:
        if action == DESCRIBE:
            fields = {k: v for k, v in fields.items() if v not in ("", "no")}
        return super()._ok(action, fields)


async def test_a_read_that_leaves_out_a_default_field_still_shows_the_rows_config(tmp_path: Path) -> None:
    """Each Add lands and answers 500: the read-back shows the URL and no NotifyReqAuth, which is the config
    the row makes (auth off by default). The rows are done, and verify finds them in sync."""
    src = tmp_path / "d.csv"
    src.write_text("DomainName\n" + "".join(f"d{i}.example.com\n" for i in range(3)))
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000, error_rate=1.0,
                       fault_kinds=("internal_after",), fault_actions=("AddLiveSnapshotNotifyConfig",))
    async with _LeavesOutDefaults(config) as sim:
        result = await run_engine(sim, src, qps=500, max_attempts=2)
        held = {d for d, c in sim.notify_configs.items() if c["NotifyUrl"] == URL}
        sim.config.error_rate = 0
        code, out, err = await bulk("verify", str(result.checkpoint), "--endpoint", sim.url, "--quiet")
    rows = rows_of(result.checkpoint)
    assert held == set(rows) and {r["state"] for r in rows.values()} == {"done"}, rows
    assert code == 0 and "in sync" in out, out + err


# -- a read-back refused for its own parameters -------------------------------------------------------------


class _LandsThenReadRefused(Simulator):
    """Each Set is carried out and answered 500; each Query is refused 400 MalformedParam (its own rules)."""

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("x-acs-action") == QUERY:
            return _json({"RequestId": "R", "Code": "MalformedParam", "Message": "RegionId is malformed"}, 400)
        answer = await super()._answer(request)
        if request.headers.get("x-acs-action") == SET:
            return _json({"RequestId": "R", "Code": "InternalError", "Message": "try later"}, 500)
        return answer


async def test_a_read_back_refused_as_malformed_says_nothing_of_the_write_it_follows(tmp_path: Path) -> None:
    """The write may have landed (it did): a read refused for its own parameters cannot show it absent."""
    async with _LandsThenReadRefused(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000)) as sim:
        result = await run_engine(sim, _set_rows(tmp_path / "s.csv", 3), action=SET, overrides={}, qps=500,
                                  backup=False, max_attempts=1, max_failure_rate=1.0)
        held = {d for d, c in sim.callback_auth.items() if c.get("CallbackReqAuth") == "yes"}
    rows = rows_of(result.checkpoint)
    assert held == set(rows) and {r["state"] for r in rows.values()} == {"unknown"}, rows
    assert result.exit_code == 3


class _DeleteLandsLater(_LandsLater):
    """Each domain's first Delete: a gateway's 504 at once, carried out 0.3 s later."""

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        domain = request.query.get("DomainName", "")
        if request.headers.get("x-acs-action") != "DeleteLiveSnapshotNotifyConfig" or domain in self.seen:
            return await Simulator._answer(self, request)
        self.seen.add(domain)
        task = asyncio.create_task(self._land(dict(request.query)))
        self.landing.add(task)
        task.add_done_callback(self.landing.discard)
        return web.Response(status=504, text="504 Gateway Time-out", content_type="text/plain")

    async def _land(self, params: dict[str, str]) -> None:
        await asyncio.sleep(0.3)
        self._apply(sim_resolve("DeleteLiveSnapshotNotifyConfig", API_VERSION), params)


async def test_a_late_delete_never_lands_after_the_config_the_rollback_adds_back(tmp_path: Path) -> None:
    """The run turned auth on; its rollback must clear the key, so it deletes the config and adds the recorded
    one. The Delete is answered by a gateway and lands later: the Add must not go before it, or the late
    Delete takes the restored config away from a row recorded done."""
    src = tmp_path / "u.csv"
    src.write_text("DomainName,NotifyReqAuth,NotifyAuthKey\n"
                   + "".join(f"u{i}.example.com,yes,New{i:04d}abcdefghijklm\n" for i in range(2)))
    before = {f"u{i}.example.com": {"DomainName": f"u{i}.example.com", "NotifyUrl": OLD_URL,
                                    "NotifyReqAuth": "no", "NotifyAuthKey": ""} for i in range(2)}
    sim = _DeleteLandsLater(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000))
    sim.seen, sim.landing = set(), set()
    async with sim:
        for domain, config in before.items():
            sim.notify_configs[domain] = dict(config)
        result = await run_engine(sim, src, action=UPDATE, overrides={}, qps=500)
        assert result.exit_code == 0, result.counts
        code, out, err = await bulk("rollback", str(result.checkpoint), "--endpoint", sim.url, "--quiet",
                                    "--timeout", "1")
        await asyncio.gather(*sim.landing)
        held = {d: {k: v for k, v in c.items() if v} for d, c in sim.notify_configs.items()}
    assert code == 0, out + err
    assert held == {d: {k: v for k, v in c.items() if v} for d, c in before.items()}
