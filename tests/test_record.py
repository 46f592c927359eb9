"""The record is the truth: every path where the checkpoint could disagree with the service.

Each test drives the engine (or the command) against the simulator over real
sockets and then compares what bulk recorded with what the service holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import ADD, FAST_RETRY, URL, bulk, domains_csv, run_engine, simulator

from bulk.actions import resolve
from bulk.attempts import Health
from bulk.checkpoint import Checkpoint, RowOutcome, RowState
from bulk.client import Failure, LiveClient
from bulk.credentials import ChainCredentials, Credentials, StaticCredentials
from bulk.engine import run
from bulk.options import Halt, HaltKind, RunOptions
from bulk.retry import RetryPolicy
from bulk.sim import Simulator

DESCRIBE = "DescribeLiveSnapshotNotifyConfig"
UPDATE = "UpdateLiveSnapshotNotifyConfig"


def rows_of(path: Path) -> dict[str, dict]:
    with Checkpoint.open_readonly(path) as ckpt:
        return {r["domain"]: r for r in ckpt.rows() if r["domain"]}


def applied_once(sim: Simulator) -> bool:
    return set(sim.applied.values()) <= {1}


# -- 1. a transient failure after the service applied the row, then a resume -----------------


async def test_lost_answers_and_resumes_never_turn_into_false_failures(tmp_path: Path) -> None:
    """30% of calls apply and then answer 500; one attempt per call; run until nothing is left to settle."""
    csv = domains_csv(tmp_path / "d.csv", 60)
    async with simulator(error_rate=0.3, fault_kinds=("internal_after",)) as sim:
        codes = []
        for _ in range(10):
            result = await run_engine(sim, csv, qps=1000, max_attempts=1)
            codes.append(result.exit_code)
            if result.exit_code != 3:
                break
        held = {d for d, c in sim.notify_configs.items() if c["NotifyUrl"] == URL}
    assert result.exit_code == 0, (codes, result.errors)
    assert 3 in codes  # some outcomes were unknown after a run, and were settled by the next one
    assert len(held) == 60 and applied_once(sim)
    rows = rows_of(result.checkpoint)
    assert {r["state"] for r in rows.values()} == {"done"}
    assert not any(r["code"] == "ConfigAlreadyExists" for r in rows.values())
    assert sum("read back" in (r["message"] or "") for r in rows.values()) >= 5


async def test_a_create_that_answered_500_is_sent_again_and_read_back_only_after_a_409(tmp_path: Path) -> None:
    """Adds answer 500 before or after applying; the resend tells which, and only a 409 costs a Describe."""
    csv = domains_csv(tmp_path / "d.csv", 40)
    log = tmp_path / "calls.jsonl"
    async with simulator(error_rate=0.3, fault_kinds=("internal_before", "internal_after"),
                         fault_actions=(ADD,)) as sim:
        result = await run_engine(sim, csv, qps=1000, backup=False, log_file=log)
        held = {d for d, c in sim.notify_configs.items() if c["NotifyUrl"] == URL}
    assert result.exit_code == 0 and result.counts["done"] == 40, result.counts
    assert len(held) == 40 and applied_once(sim)
    calls: dict[str, list[str]] = {}
    for entry in map(orjson.loads, log.read_bytes().splitlines()):
        calls.setdefault(entry["domain"], []).append((entry.get("code") or "OK") if entry["action"] == ADD else "read")
    answered = [code for seen in calls.values() for code in seen]
    assert answered.count("InternalError") > answered.count("ConfigAlreadyExists") > 0, answered
    # A 500 is followed by the resend, never by a read; a read follows only a 409 (the first's own config).
    for seen in calls.values():
        assert seen[-1] in ("OK", "read") and all(b != "read" or a == "ConfigAlreadyExists"
                                                  for a, b in zip(seen, seen[1:], strict=False)), seen
    messages = [r["message"] for r in rows_of(result.checkpoint).values() if r["message"]]
    assert messages == ["applied (read back after ConfigAlreadyExists)"] * answered.count("read")


async def test_a_failed_row_that_may_have_landed_is_read_back_before_it_is_resent(tmp_path: Path) -> None:
    """A row recorded failed (transient) after a possible landing keeps 'reached': resume reads first."""
    csv = domains_csv(tmp_path / "d.csv", 4)
    ckpt = tmp_path / "d.ckpt"
    async with simulator() as sim:
        await run_engine(sim, csv, checkpoint=ckpt, qps=500)
        # As an older bulk would have left it: applied at the service, recorded failed (transient).
        with Checkpoint.open(ckpt) as c:
            c.record(RowOutcome(RowState.FAILED, code="InternalError", transient=True, line=2, attempts=3,
                                reached=True))
        before = sim.stats()["calls"][ADD]
        read_before = sim.stats()["calls"][DESCRIBE]["OK"]  # the first run's backup reads
        result = await run_engine(sim, csv, checkpoint=ckpt, qps=500)
        after = sim.stats()["calls"][ADD]
        describes = sim.stats()["calls"][DESCRIBE]
    assert result.exit_code == 0 and result.counts["done"] == 4
    assert after == before and describes == {"OK": read_before + 1}
    assert applied_once(sim)


# -- 2. local faults: stop cleanly, one line, resumable ----------------------------------------


async def test_a_full_disk_for_the_log_stops_the_run_and_a_resume_applies_everything_once(tmp_path: Path) -> None:
    csv = domains_csv(tmp_path / "d.csv", 300)
    ckpt = tmp_path / "d.ckpt"
    async with simulator(latency_ms=20) as sim:
        result = await run_engine(sim, csv, checkpoint=ckpt, qps=300, log_file=Path("/dev/full"))
        assert result.halt is not None and result.halt.kind is HaltKind.LOCAL_FAULT
        assert "/dev/full" in result.halt.message and "No space left on device" in result.halt.message
        assert result.exit_code == 3
        assert result.unfinished > 0  # stopped early, not every row failed
        assert result.counts["failed"] == 0
        again = await run_engine(sim, csv, checkpoint=ckpt, qps=1000)
    assert again.exit_code == 0 and again.counts["done"] == 300
    assert len(sim.notify_configs) == 300 and applied_once(sim)


async def test_a_full_disk_is_one_line_and_exit_3_from_the_command(tmp_path: Path) -> None:
    csv = domains_csv(tmp_path / "d.csv", 50)
    async with simulator(latency_ms=10) as sim:
        code, _, err = await bulk("run", str(csv), "--action", ADD, "--set", f"NotifyUrl={URL}",
                                  "--endpoint", sim.url, "--qps", "200", "--quiet", "--log-file", "/dev/full")
    assert code == 3, err
    assert "Traceback" not in err
    stopped = [line for line in err.splitlines() if line.startswith("bulk: stopped:")]
    assert len(stopped) == 1 and "cannot write /dev/full: No space left on device" in stopped[0]


async def test_a_checkpoint_that_cannot_be_written_stops_the_run_and_loses_nothing(tmp_path: Path) -> None:
    csv = domains_csv(tmp_path / "d.csv", 1000)
    ckpt = tmp_path / "d.ckpt"
    args = ["run", str(csv), "--action", ADD, "--set", f"NotifyUrl={URL}", "--qps", "2000", "--quiet",
            "--checkpoint", str(ckpt)]
    async with simulator() as sim:
        # A file-size limit makes every write past it fail with EFBIG, as a full disk does with ENOSPC
        # (the interpreter ignores SIGXFSZ, so the write fails instead of killing the process). The ingest and
        # the first commits of 1,000 rows take some 160 KiB of WAL: the limit lets a few claims through.
        limit = {resource.RLIMIT_FSIZE: (176 * 1024, 176 * 1024)}
        code, _, err = await bulk(*args, "--endpoint", sim.url, limits=limit)
        assert code == 3, err
        assert "Traceback" not in err
        assert [line for line in err.splitlines() if line.startswith("bulk: stopped: cannot write")]
        partial = len(sim.applied)
        assert 0 < partial < 1000
        code, _, err = await bulk(*args, "--endpoint", sim.url)
    assert code == 0, err
    assert len(sim.notify_configs) == 1000 and applied_once(sim)


# -- 3. a stop during a read-back --------------------------------------------------------------


async def test_a_stop_during_a_read_back_leaves_the_row_unfinished_not_failed(tmp_path: Path) -> None:
    """A rotation via Update reads each NotifyUrl first; Ctrl-C while those reads back off."""
    src = tmp_path / "keys.csv"
    src.write_text("DomainName,NotifyAuthKey\n"
                   + "".join(f"d{i}.example.com,Key{i:04d}abcdefghijklm\n" for i in range(5)))
    options = dict(action=UPDATE, overrides={"NotifyReqAuth": "yes"}, keep_current=("NotifyUrl",))
    async with simulator(error_rate=1.0, fault_kinds=("unavailable",), fault_actions=(DESCRIBE,)) as sim:
        for i in range(5):
            sim.notify_configs[f"d{i}.example.com"] = {"DomainName": f"d{i}.example.com", "NotifyUrl": URL,
                                                      "NotifyReqAuth": "no", "NotifyAuthKey": ""}
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        opts = RunOptions(action=resolve(UPDATE), input_path=src, checkpoint_path=tmp_path / "k.ckpt",
                          overrides=options["overrides"], keep_current=("NotifyUrl",), qps=500)
        creds = StaticCredentials(Credentials(TEST_AK_ID, TEST_AK_SECRET))
        async with LiveClient(credentials=creds, endpoint=sim.url) as client:
            result = await run(opts, client=client, stop=stop, retry=RetryPolicy(max_attempts=50, base=0.1))
        assert result.exit_code == 3 and result.interrupted
        assert result.counts["failed"] == 0 and result.counts["pending"] == 5
        sim.config.error_rate = 0
        async with LiveClient(credentials=creds, endpoint=sim.url) as client:
            again = await run(opts, client=client)
    assert again.exit_code == 0 and again.counts["done"] == 5
    assert all(c["NotifyAuthKey"].startswith("Key") and c["NotifyUrl"] == URL for c in sim.notify_configs.values())


async def test_a_read_back_that_keeps_failing_is_a_transient_failure_and_is_retried(tmp_path: Path) -> None:
    src = tmp_path / "keys.csv"
    src.write_text("DomainName,NotifyAuthKey\nd0.example.com,Key0000abcdefghijklm\n")
    async with simulator(error_rate=1.0, fault_kinds=("unavailable",), fault_actions=(DESCRIBE,)) as sim:
        sim.notify_configs["d0.example.com"] = {"DomainName": "d0.example.com", "NotifyUrl": URL,
                                                "NotifyReqAuth": "no", "NotifyAuthKey": ""}
        opts = RunOptions(action=resolve(UPDATE), input_path=src, checkpoint_path=tmp_path / "k.ckpt",
                          overrides={"NotifyReqAuth": "yes"}, keep_current=("NotifyUrl",), qps=500, max_attempts=2)
        creds = StaticCredentials(Credentials(TEST_AK_ID, TEST_AK_SECRET))
        async with LiveClient(credentials=creds, endpoint=sim.url) as client:
            first = await run(opts, client=client, retry=RetryPolicy(max_attempts=2, **FAST_RETRY))
            row = rows_of(opts.checkpoint_path)["d0.example.com"]
            assert first.exit_code == 1 and row["code"] == "ServiceUnavailable" and row["transient"] == 1
            assert row["code"] != "NoCurrentConfig"
            sim.config.error_rate = 0
            again = await run(opts, client=client)
    assert again.counts["done"] == 1
    assert sim.notify_configs["d0.example.com"]["NotifyAuthKey"] == "Key0000abcdefghijklm"


# -- 6 and 7. partial Update semantics; --if-exists after a possible landing ------------------


async def test_an_update_that_leaves_a_field_out_keeps_it_and_reads_back_in_sync(tmp_path: Path) -> None:
    src = tmp_path / "u.csv"
    src.write_text(f"DomainName,NotifyUrl\nd0.example.com,{URL}\n")
    async with simulator() as sim:
        sim.notify_configs["d0.example.com"] = {"DomainName": "d0.example.com", "NotifyUrl": "https://old.example.com/x",
                                                "NotifyReqAuth": "yes", "NotifyAuthKey": "Keep0000abcdefghijkl"}
        result = await run_engine(sim, src, action=UPDATE, overrides={}, qps=500)
        code, out, err = await bulk("verify", str(result.checkpoint), "--endpoint", sim.url, "--quiet")
        stored = dict(sim.notify_configs["d0.example.com"])
    assert result.exit_code == 0
    assert stored == {"DomainName": "d0.example.com", "NotifyUrl": URL, "NotifyReqAuth": "yes",
                      "NotifyAuthKey": "Keep0000abcdefghijkl"}
    assert code == 0 and "1 in sync" in out, (out, err)


@pytest.mark.parametrize(("if_exists", "state", "url"), [("update", "done", URL), ("skip", "skipped", "https://other.example.com/x")])
async def test_if_exists_decides_for_a_possibly_landed_row_that_meets_another_config(
    tmp_path: Path, if_exists: str, state: str, url: str
) -> None:
    csv = domains_csv(tmp_path / "d.csv", 2)
    ckpt = tmp_path / "d.ckpt"
    async with simulator() as sim:
        await run_engine(sim, csv, checkpoint=ckpt, qps=500, if_exists=if_exists)
        # The first row was in flight when the last run died; somebody else configured the domain since.
        with Checkpoint.open(ckpt) as c:
            c.record(RowOutcome(RowState.SENDING, line=2, attempts=1, reached=True))
        sim.notify_configs["d0000.example.com"]["NotifyUrl"] = "https://other.example.com/x"
        result = await run_engine(sim, csv, checkpoint=ckpt, qps=500, if_exists=if_exists)
        held = sim.notify_configs["d0000.example.com"]["NotifyUrl"]
    assert rows_of(ckpt)["d0000.example.com"]["state"] == state
    assert held == url and result.exit_code == 0


# -- 8 and #11: our side failing: credentials and the endpoint ----------------------------------


@contextlib.asynccontextmanager
async def credentials_server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """An ALIBABA_CLOUD_CREDENTIALS_URI endpoint: STS-style answers, failing while state["fail"] is set."""
    state = {"fail": 0, "served": 0, "refused": 0}

    async def answer(request: web.Request) -> web.Response:
        if state["fail"]:
            state["refused"] += 1
            return web.Response(status=500, text="credential service down")
        state["served"] += 1
        # Expiring in under 15 minutes: the provider asks again for every call, so each call sees the outage.
        soon = datetime.fromtimestamp(time.time() + 600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return web.json_response({"Code": "Success", "AccessKeyId": TEST_AK_ID, "AccessKeySecret": TEST_AK_SECRET,
                                  "SecurityToken": "sts-token", "Expiration": soon})

    app = web.Application()
    app.router.add_get("/creds", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/creds", state
    finally:
        await runner.cleanup()


async def _run_with_uri_credentials(tmp_path: Path, sim: Simulator, uri: str, n: int, health: Health):
    creds = ChainCredentials(environ={"ALIBABA_CLOUD_CREDENTIALS_URI": uri, "HOME": str(tmp_path),
                                      "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"})
    opts = RunOptions(action=resolve(ADD), input_path=domains_csv(tmp_path / "d.csv", n),
                      checkpoint_path=tmp_path / "d.ckpt", overrides={"NotifyUrl": URL}, qps=20)
    async with LiveClient(credentials=creds, endpoint=sim.url) as client:
        return await run(opts, client=client, retry=RetryPolicy(**FAST_RETRY), health=lambda: health)


async def test_a_credential_hiccup_is_retried_and_the_run_completes(tmp_path: Path) -> None:
    async with simulator() as sim, credentials_server() as (uri, state):

        async def outage() -> None:
            """Down once the run is under way, up again after three refused look-ups: on the run's own clock."""
            while len(sim.applied) < 5:
                await asyncio.sleep(0.005)
            state["fail"] = 1
            while state["refused"] < 3:
                await asyncio.sleep(0.005)
            state["fail"] = 0

        hiccup = asyncio.create_task(outage())
        result = await _run_with_uri_credentials(tmp_path, sim, uri, 30, Health(endpoint=sim.url))
        await asyncio.wait_for(hiccup, 1)  # the outage did happen, and ended, while the run went on
    assert state["refused"] >= 3
    assert result.exit_code == 0 and result.counts["done"] == 30 and applied_once(sim)


@pytest.mark.realtime
async def test_concurrent_credential_lookups_during_a_refresh_never_freeze_the_loop(tmp_path: Path) -> None:
    """The package's async refresh blocks on a threading lock for up to 5 s when two refreshes overlap."""
    async with credentials_server() as (uri, state):
        creds = ChainCredentials(environ={"ALIBABA_CLOUD_CREDENTIALS_URI": uri, "HOME": str(tmp_path),
                                          "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"})
        started = time.monotonic()
        got = await asyncio.gather(*(creds.get() for _ in range(8)))
        took = time.monotonic() - started
    assert {c.access_key_id for c in got} == {TEST_AK_ID} and state["served"] == 8
    assert took < 2.0, took


async def test_credentials_that_stay_unavailable_stop_the_run_saying_so(tmp_path: Path) -> None:
    async with simulator() as sim, credentials_server() as (uri, state):
        asyncio.get_running_loop().call_later(0.3, state.update, {"fail": 1})
        health = Health(endpoint=sim.url, credential_failures=5, credential_seconds=1.0)
        result = await _run_with_uri_credentials(tmp_path, sim, uri, 100, health)
    assert result.halt is not None and result.halt.kind is HaltKind.CREDENTIALS_UNAVAILABLE
    assert "could not obtain credentials" in result.halt.message and "refused" not in result.halt.message
    assert result.exit_code == 2
    assert result.counts["failed"] == 0 and result.counts["done"] == len(sim.applied) < 100
    assert result.counts["pending"] + result.counts["done"] == 100  # nothing was sent without credentials


@pytest.mark.realtime
async def test_an_endpoint_that_never_answers_stops_the_run_naming_it(tmp_path: Path) -> None:
    with contextlib.closing(__import__("socket").socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        endpoint = f"http://127.0.0.1:{port}"
        opts = RunOptions(action=resolve(ADD), input_path=domains_csv(tmp_path / "d.csv", 40),
                          checkpoint_path=tmp_path / "d.ckpt", overrides={"NotifyUrl": URL}, qps=100)
        creds = StaticCredentials(Credentials(TEST_AK_ID, TEST_AK_SECRET))
        started = time.monotonic()
        async with LiveClient(credentials=creds, endpoint=endpoint) as client:
            result = await run(opts, client=client, retry=RetryPolicy(**FAST_RETRY),
                               health=lambda: Health(endpoint=endpoint, connect_seconds=1.0))
        took = time.monotonic() - started
    assert result.halt is not None and result.halt.kind is HaltKind.ENDPOINT_UNREACHABLE
    assert endpoint in result.halt.message and result.exit_code == 2
    assert 1.0 <= took < 4.0
    assert result.counts["pending"] == 40  # nothing was sent, nothing failed


async def test_by_default_an_endpoint_is_given_up_on_after_10_seconds_without_an_answer(tmp_path: Path) -> None:
    """The default Health, on an injected clock that moves a second at each failed connection."""
    with contextlib.closing(__import__("socket").socket()) as s:
        s.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, never listening: refused
        opts = RunOptions(action=resolve(ADD), input_path=domains_csv(tmp_path / "d.csv", 5),
                          checkpoint_path=tmp_path / "d.ckpt", overrides={"NotifyUrl": URL}, qps=100)
        creds = StaticCredentials(Credentials(TEST_AK_ID, TEST_AK_SECRET))
        readings: list[float] = []

        def clock() -> float:
            readings.append(float(len(readings)))  # 0, 1, 2, ... seconds
            return readings[-1]

        halts: list[float] = []

        class Watched(Health):
            """The default Health; notes the clock's reading at each halt it returns."""

            def local_failure(self, failure: Failure) -> Halt | None:
                halt = super().local_failure(failure)
                if halt is not None:
                    halts.append(readings[-1])
                return halt

        async with LiveClient(credentials=creds, endpoint=endpoint) as client:
            result = await run(opts, client=client, retry=RetryPolicy(**FAST_RETRY),
                               health=lambda: Watched(endpoint=endpoint, clock=clock))
    assert result.halt is not None and result.halt.kind is HaltKind.ENDPOINT_UNREACHABLE
    # The first refusal at 0 s, the halt at the first reading 10 s later: not one earlier, not one later
    # (calls still in flight when it halts may fail, and read the clock, after it).
    assert readings[0] == 0.0 and halts[0] == 10.0
    assert result.exit_code == 2 and result.counts["pending"] == 5


# -- 9. the WAL stays bounded ------------------------------------------------------------------


async def test_the_wal_stays_small_during_a_long_run(tmp_path: Path) -> None:
    """2,500 rows: without the checkpoint's own WAL limits (SQLite's default folds it back at 4 MB) its WAL
    reaches some 1.9 MB, past the bound asserted here; with them it stays near 1 MB however long the run."""
    csv = domains_csv(tmp_path / "d.csv", 2500)
    ckpt = tmp_path / "d.ckpt"
    wal = Path(f"{ckpt}-wal")
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            with contextlib.suppress(FileNotFoundError):
                peak = max(peak, wal.stat().st_size)
            await asyncio.sleep(0.01)

    async with simulator(qps=1_000_000) as sim:
        watcher = asyncio.create_task(watch())
        # No backup: its reads would double the calls, and the backup file is not the checkpoint's WAL.
        result = await run_engine(sim, csv, checkpoint=ckpt, qps=100000, backup=False)
        watcher.cancel()
    assert result.counts["done"] == 2500
    # Folded back into the file at every checkpoint of SQLite's, and truncated when the run ends.
    assert 0 < peak <= 1_200_000, peak
    assert not wal.exists() or wal.stat().st_size == 0
