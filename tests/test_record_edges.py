"""The record at its edges: outcomes bulk cannot learn, writes that land late, and plans the fleet outgrew.

Each test drives the engine or the command against the simulator over real
sockets and compares what bulk recorded with what the service holds.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import ADD, KEY, NEW_URL, URL, bulk, domains_csv, fleet, fleet_csv, run_engine, simulator, start_bulk

from bulk.checkpoint import Checkpoint, CheckpointError
from bulk.paths import plan_run_checkpoint
from bulk.sim import SimConfig, Simulator

DESCRIBE = "DescribeLiveSnapshotNotifyConfig"
SET, QUERY = "SetSnapshotCallbackAuth", "QuerySnapshotCallbackAuth"


def rows_of(path: Path) -> dict[str, dict]:
    with Checkpoint.open_readonly(path) as ckpt:
        return {r["domain"]: r for r in ckpt.rows() if r["domain"]}


def holds(sim: Simulator, domain: str) -> bool:
    return sim.notify_configs.get(domain, {}).get("NotifyUrl") == URL


# -- 1. a read-back that is refused ----------------------------------------------------------------------


async def test_a_refused_read_back_leaves_the_row_unknown_and_the_next_run_reads_it_first(tmp_path: Path) -> None:
    """Each Add lands and answers 500; Describe is refused (a policy without it). Then the policy is fixed."""
    csv = domains_csv(tmp_path / "d.csv", 5)
    ckpt = tmp_path / "d.ckpt"
    async with simulator(error_rate=1.0, fault_kinds=("internal_after",), fault_actions=(ADD,),
                         forbidden_actions=(DESCRIBE,)) as sim:
        first = await run_engine(sim, csv, checkpoint=ckpt, qps=500, max_attempts=1, backup=False,
                                 max_failure_rate=1.0)
        rows = rows_of(ckpt)
        assert all(holds(sim, d) for d in rows) and len(rows) == 5
        assert first.counts["unknown"] == 5 and first.counts["failed"] == 0, first.counts
        assert first.exit_code == 3
        assert {r["code"] for r in rows.values()} == {"Forbidden.RAM"}
        assert all("unknown" in r["message"] for r in rows.values())

        code, out, err = await bulk("status", str(ckpt), "--json")
        assert code == 0 and orjson.loads(out)["unknown"] == 5, out + err
        code, out, err = await bulk("report", str(ckpt), "--failed-only")
        assert code == 0 and out.count(",unknown,") == 5, out + err

        # Lines 2 and 3 as if never sent (pending), ahead of the unknown ones in line order.
        with sqlite3.connect(ckpt) as db:
            db.execute("UPDATE rows SET state = 'pending', reached = 0 WHERE line IN (2, 3)")
        sim.config.forbidden_actions = ()
        sim.config.error_rate = 0
        adds, seen = sim.stats()["calls"][ADD].get("InternalError"), len(sim.arrivals())
        # --retry-failed too: an unknown row is read back, never sent again blindly, and before anything else.
        again = await run_engine(sim, csv, checkpoint=ckpt, qps=500, backup=False, retry_failed=True, concurrency=1)
        calls = [action for _, _, action in sim.arrivals()[seen:]]
        assert calls[:3] == [DESCRIBE] * 3, calls
        assert calls.count(ADD) == 2 and sim.stats()["calls"][ADD].get("InternalError") == adds  # lines 2 and 3 only
    assert again.exit_code == 0 and again.counts["done"] == 5
    assert set(sim.applied.values()) == {1}


async def test_a_policy_without_describe_stops_the_run_early_naming_the_permission(tmp_path: Path) -> None:
    """The writes land and answer 500; every read-back is refused: the safety stop, not a fleet of 'failed'."""
    csv = domains_csv(tmp_path / "d.csv", 40)
    ckpt = tmp_path / "d.ckpt"
    async with simulator(error_rate=1.0, fault_kinds=("internal_after",), fault_actions=(ADD,),
                         forbidden_actions=(DESCRIBE,)) as sim:
        code, out, err = await bulk("run", str(csv), "--action", ADD, "--set", f"NotifyUrl={URL}", "--endpoint",
                                    sim.url, "--qps", "20", "--max-attempts", "1", "--no-backup",
                                    "--checkpoint", str(ckpt), "--concurrency", "1")
        applied = len(sim.applied)
    assert code == 5, out + err
    assert "live:DescribeLiveSnapshotNotifyConfig" in err
    assert applied < 40
    counts = {r["state"] for r in rows_of(ckpt).values()}
    assert "failed" not in counts and "unknown" in counts


# -- 2. a write that lands after its read-back ---------------------------------------------------------


@pytest.mark.parametrize("fault", ["late", "hang"])
async def test_a_timed_out_write_is_read_again_after_the_timeout_and_never_failed_while_it_may_land(
    tmp_path: Path, fault: str
) -> None:
    """late: each Add is held until the client gives up, then carried out; hang: never carried out."""
    csv = domains_csv(tmp_path / "d.csv", 8)
    async with simulator(error_rate=1.0, fault_kinds=(fault,), fault_actions=(ADD,)) as sim:
        result = await run_engine(sim, csv, qps=500, timeout=0.5, max_attempts=1, backup=False)
        await _settled(sim)  # a held call ends once its client is gone: anything still to land has landed
        rows = rows_of(result.checkpoint)
    for domain, row in rows.items():
        assert row["state"] != "failed", (domain, row)
        assert (row["state"] == "done") == holds(sim, domain), (domain, row)
    if fault == "late":
        assert result.exit_code == 0 and result.counts["done"] == 8
    else:
        assert result.counts["unknown"] == 8 and result.exit_code == 3
        assert all(r["code"] == "Timeout" for r in rows.values())


# -- 3. other answers that may have landed ---------------------------------------------------------------


class _LandsThenAnswers(Simulator):
    """Carries out each domain's first Set, then answers as ``answer`` says (a gateway after forwarding)."""

    answer: str = ""
    seen: set[str]

    def _ok(self, action: str, fields: dict[str, str]) -> web.Response:
        if action != SET or self.answer == "throttling":
            return super()._ok(action, fields)
        if self.answer == "unreadable":
            return web.Response(status=200, body=b"<html>ok</html>", content_type="text/html")
        if self.answer == "unavailable":
            body = orjson.dumps({"RequestId": "R", "Code": "ServiceUnavailable", "Message": "try later"})
            return web.Response(status=503, body=body, content_type="application/json")
        return web.Response(status=503, body=b"Service Unavailable", content_type="text/plain")

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        domain = request.query.get("DomainName", "")
        if self.answer == "throttling" and request.headers.get("x-acs-action") == SET and domain not in self.seen:
            self.seen.add(domain)  # refused, not carried out
            body = orjson.dumps({"RequestId": "R", "Code": "Throttling", "Message": "slow down"})
            return web.Response(status=503, body=body, content_type="application/json")
        return await super()._answer(request)


@pytest.mark.parametrize("answer", ["unreadable", "unavailable", "gateway", "throttling"])
async def test_answers_that_may_follow_a_landed_write_are_read_back_before_anything_is_resent(
    tmp_path: Path, answer: str
) -> None:
    src = tmp_path / "s.csv"
    src.write_text("DomainName,CallbackReqAuth,CallbackAuthKey\n"
                   + "".join(f"s{i}.example.com,yes,Key{i:04d}abcdefghijklm\n" for i in range(4)))
    sim = _LandsThenAnswers(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000))
    sim.answer, sim.seen = answer, set()
    async with sim:
        result = await run_engine(sim, src, action=SET, overrides={}, qps=500, backup=False)
        reads = sum(sim.stats()["calls"].get(QUERY, {}).values())
    assert result.exit_code == 0 and result.counts["done"] == 4
    assert set(sim.applied.values()) == {1}  # never carried out twice
    # Read back once per row where the answer may follow a landed write; a throttling answer is a plain refusal.
    assert reads == (0 if answer == "throttling" else 4)


# -- 10. what "already configured" means for an Add ------------------------------------------------------


@pytest.mark.parametrize(("if_exists", "state"), [("fail", "failed"), ("skip", "skipped"), ("update", "done")])
async def test_an_add_meeting_the_same_url_with_other_auth_settings_is_not_done(
    tmp_path: Path, if_exists: str, state: str
) -> None:
    """The row omits NotifyReqAuth: its config is the documented default, auth off."""
    csv = domains_csv(tmp_path / "d.csv", 2)
    async with simulator() as sim:
        sim.notify_configs["d0000.example.com"] = {"DomainName": "d0000.example.com", "NotifyUrl": URL,
                                                   "NotifyReqAuth": "yes", "NotifyAuthKey": "Old0000abcdefghijklm"}
        sim.notify_configs["d0001.example.com"] = {"DomainName": "d0001.example.com", "NotifyUrl": URL,
                                                   "NotifyReqAuth": "no", "NotifyAuthKey": "Any0000abcdefghijklm"}
        result = await run_engine(sim, csv, qps=500, if_exists=if_exists)
        rows = rows_of(result.checkpoint)
        code, out, err = await bulk("verify", str(result.checkpoint), "--endpoint", sim.url, "--quiet")
        auth = sim.notify_configs["d0000.example.com"]["NotifyReqAuth"]
    assert rows["d0000.example.com"]["state"] == state, rows["d0000.example.com"]
    assert rows["d0001.example.com"]["state"] == "done"  # auth off: the key is not compared
    assert auth == ("no" if state == "done" else "yes")
    assert code == 0 and "in sync" in out, out + err
    if state != "done":
        assert "NotifyReqAuth" in rows["d0000.example.com"]["message"]


# -- 11. a plan applied after the fleet changed ----------------------------------------------------------


async def test_rows_changed_since_the_plan_are_not_written_and_verify_covers_noop_rows(tmp_path: Path) -> None:
    src = fleet_csv(tmp_path / "fleet.csv")
    plan = tmp_path / "fleet.plan.jsonl"
    ckpt = plan_run_checkpoint(plan)
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=200, missing_domains=("*.missing.example.com",))
    hand = "https://hand-edited.example.com/x"
    async with Simulator(config) as sim:
        fleet(sim)
        code, _, err = await bulk("plan", str(src), "--action", ADD, "-o", str(plan), "--endpoint", sim.url,
                                  "--quiet")
        assert code == 0, err
        # Another team changes a domain the plan updates, and one the plan found in place (noop).
        sim.notify_configs["url.example.com"]["NotifyUrl"] = hand
        sim.notify_configs["same.example.com"]["NotifyAuthKey"] = "Theirs0123456789abcd"
        code, _, err = await bulk("run", "--plan", str(plan), "--endpoint", sim.url, "--quiet")
        assert code == 1, err
        rows = rows_of(ckpt)
        for domain in ("url.example.com", "same.example.com"):
            assert rows[domain]["state"] == "failed" and rows[domain]["code"] == "PlanConflict", rows[domain]
            assert "changed since plan" in rows[domain]["message"]
        assert sim.notify_configs["url.example.com"]["NotifyUrl"] == hand  # not written
        assert sim.notify_configs["same.example.com"]["NotifyAuthKey"] == "Theirs0123456789abcd"
        assert rows["key.example.com"]["state"] == "done" and rows["new.example.com"]["state"] == "done"

        # A fresh plan, applied at once: its noop row is read, skipped, and covered by verify.
        sim.notify_configs["same.example.com"]["NotifyAuthKey"] = KEY
        sim.notify_configs["url.example.com"]["NotifyUrl"] = NEW_URL
        plan2 = tmp_path / "again.plan.jsonl"
        code, _, err = await bulk("plan", str(src), "--action", ADD, "-o", str(plan2), "--endpoint", sim.url,
                                  "--quiet")
        assert code == 0, err
        code, _, err = await bulk("run", "--plan", str(plan2), "--endpoint", sim.url, "--quiet")
        ckpt2 = plan_run_checkpoint(plan2)
        assert rows_of(ckpt2)["same.example.com"]["state"] == "skipped"
        sim.notify_configs["same.example.com"]["NotifyUrl"] = hand
        code, out, err = await bulk("verify", str(ckpt2), "--endpoint", sim.url, "--quiet")
    assert code == 1, out + err
    assert "same.example.com" in out and "NotifyUrl" in out


async def test_max_plan_age_holds_until_a_write_was_sent(tmp_path: Path) -> None:
    """A first run of the plan that only met a dead endpoint sent nothing: the plan's age still counts."""
    src = fleet_csv(tmp_path / "fleet.csv")
    plan = tmp_path / "fleet.plan.jsonl"
    ckpt = plan_run_checkpoint(plan)
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=200)) as sim:
        fleet(sim)
        code, _, err = await bulk("plan", str(src), "--action", ADD, "-o", str(plan), "--endpoint", sim.url,
                                  "--quiet")
        assert code == 0, err
        with socket.socket() as dead:
            dead.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
            proc = await start_bulk("run", "--plan", str(plan), "--endpoint", f"http://127.0.0.1:{dead.getsockname()[1]}",
                                    "--quiet")
            while not _ingested(ckpt):
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            await proc.communicate()
        assert proc.returncode == 3
        code, _, err = await bulk("run", "--plan", str(plan), "--endpoint", sim.url, "--max-plan-age", "0")
        writes = {a for a in sim.stats()["calls"] if not a.startswith("Describe")}
    assert code == 2 and "old" in err, err
    assert not writes


async def _settled(sim: Simulator) -> None:
    while sim.in_flight:
        await asyncio.sleep(0.01)


def _ingested(ckpt: Path) -> bool:
    try:
        with Checkpoint.open_readonly(ckpt) as c:
            return bool((c.meta() or {}).get("ingested"))
    except CheckpointError:
        return False


# -- a read-back compares every field the row sets ------------------------------------------------------------------

UPDATE = "UpdateLiveSnapshotNotifyConfig"


async def test_a_lost_update_at_a_domain_that_differs_only_in_its_key_is_sent_again(tmp_path: Path) -> None:
    """A 500 before applying leaves the old config, whose URL and switch match the row: only the key tells."""
    rows = ["DomainName,NotifyUrl,NotifyReqAuth,NotifyAuthKey"]
    rows += [f"d{i:02d}.example.com,{NEW_URL},yes,{KEY}" for i in range(40)]
    src = tmp_path / "d.csv"
    src.write_text("\n".join(rows) + "\n")
    async with simulator(error_rate=0.3, fault_kinds=("internal_before",), fault_actions=(UPDATE,)) as sim:
        for i in range(40):
            domain = f"d{i:02d}.example.com"
            sim.notify_configs[domain] = {"DomainName": domain, "NotifyUrl": NEW_URL, "NotifyReqAuth": "yes",
                                          "NotifyAuthKey": "OldKey0123456789abcdef"}
        result = await run_engine(sim, src, action=UPDATE, overrides={})
        assert sim.stats()["faults"].get("internal_before", 0) >= 5
        held = {d: c["NotifyAuthKey"] for d, c in sim.notify_configs.items()}
    assert result.exit_code == 0 and result.counts["done"] == 40, result
    assert held == {f"d{i:02d}.example.com": KEY for i in range(40)}  # the literal key, not bulk's own comparison
