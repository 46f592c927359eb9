"""The engine against the simulator over real sockets: pacing, retries, 409s, bad rows, secrets."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from conftest import TEST_AK_SECRET
from support import ADD, URL, domains_csv, run_engine, simulator

from bulk.checkpoint import Checkpoint, CheckpointError, RowOutcome, RowState
from bulk.prepare import StrictModeError
from bulk.sim import Simulator, max_in_window


def add_times(sim: Simulator, action: str = ADD) -> list[float]:
    return sorted(t for t, _, a in sim.arrivals() if a == action)


# -- pacing, measured at the server ---------------------------------------------------------


@pytest.mark.realtime
@pytest.mark.parametrize("latency_ms", [0, 400])
async def test_pace_never_exceeds_quota_and_stays_close(tmp_path: Path, latency_ms: int) -> None:
    """50 rows: the first second's burst and every window after it over some 1.7 s (75 rows took 0.8 s more)."""
    async with simulator(qps=30, latency_ms=latency_ms) as sim:
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 50), qps=30)
        stats = sim.stats()
    assert result.exit_code == 0 and result.counts["done"] == 50
    times = add_times(sim)
    # Counting the very first second, at the server.
    assert max_in_window(times) <= 30
    assert stats["max_window"] <= 30
    assert "Throttling.User" not in stats["calls"][ADD]
    # Keeping up with the quota even when every call takes 400 ms: not a fixed small pool.
    pace = (len(times) - 1) / (times[-1] - times[0])
    assert pace >= 0.9 * 30, pace


async def test_retries_transient_faults_and_applies_each_row_once(tmp_path: Path) -> None:
    log = tmp_path / "attempts.jsonl"
    csv, ckpt = domains_csv(tmp_path / "d.csv", 120), tmp_path / "d.ckpt"
    kinds = ("internal_before", "internal_after", "unavailable", "throttle", "drop")
    # Paced at 5000 a second: each throttling answer cuts the pace (to 5% of it at worst), and at 500 the run spent
    # eight seconds waiting on its own pacer; what is asserted is what the faults did, not the pace.
    async with simulator(error_rate=0.35, fault_kinds=kinds, qps=100_000) as sim:
        result = await run_engine(sim, csv, checkpoint=ckpt, qps=5000, log_file=log)
        # A read-back can fail eight times in a row here (about 1 in 4000): the row's outcome is then
        # unknown, it stays 'sending' and the run exits 3. Never a false failure; the next run settles it.
        assert result.counts["failed"] == 0
        for _ in range(2):
            if result.exit_code != 3:
                break
            result = await run_engine(sim, csv, checkpoint=ckpt, qps=5000, log_file=log)
        stats = sim.stats()
    assert result.exit_code == 0, result
    assert result.counts["done"] == 120
    # Every kind of fault happened and was survived...
    assert set(stats["faults"]) == {"internal_before", "internal_after", "unavailable", "throttle", "drop"}
    # ...and no domain got its config twice, even when a 500 or a drop came after the change.
    applied = [n for (a, _), n in sim.applied.items() if a == ADD]
    assert len(applied) == 120 and set(applied) == {1}
    assert len(sim.notify_configs) == 120
    entries = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    codes = {e.get("code") for e in entries if not e["ok"]}
    assert {"InternalError", "ServiceUnavailable", "Throttling.User", "ConnectionError"} <= codes
    # A 409 after a lost success was settled by reading the config back.
    assert any(e["action"] == "DescribeLiveSnapshotNotifyConfig" for e in entries)
    assert all(e["request_id"] for e in entries if e["ok"])


async def test_timeouts_are_retried(tmp_path: Path) -> None:
    async with simulator(error_rate=0.2, fault_kinds=("hang",)) as sim:
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 30), qps=500, timeout=0.5)
        faults = sim.stats()["faults"]
    assert result.counts["done"] == 30
    assert faults.get("hang", 0) >= 1


async def test_permanent_errors_are_not_retried(tmp_path: Path) -> None:
    extra = ["gone1.missing.example.com\n", "gone2.missing.example.com\n"]
    async with simulator(missing_domains=("*.missing.example.com",)) as sim:
        # No backup: with one, a missing domain already fails at its read, before any Add.
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 10, extra=extra), qps=500, backup=False)
        calls = sim.stats()["calls"][ADD]
    assert result.exit_code == 1
    assert result.counts == {**result.counts, "done": 10, "failed": 2}
    with Checkpoint.open_readonly(result.checkpoint) as ckpt:
        failed = list(ckpt.rows(states=[RowState.FAILED]))
    assert {r["domain"] for r in failed} == {"gone1.missing.example.com", "gone2.missing.example.com"}
    assert all(r["attempts"] == 1 and r["code"] == "InvalidDomain.NotFound" and r["request_id"] for r in failed)
    assert calls["InvalidDomain.NotFound"] == 2


async def test_max_attempts_gives_up_as_transient_failure(tmp_path: Path) -> None:
    # The Add is turned away every time; the read-back that proves it did not land answers.
    async with simulator(error_rate=1.0, fault_kinds=("unavailable",), fault_actions=(ADD,)) as sim:
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 3), qps=500, max_attempts=3)
    assert result.counts["failed"] == 3
    with Checkpoint.open_readonly(result.checkpoint) as ckpt:
        rows = list(ckpt.rows())
    assert all(r["attempts"] == 3 and r["code"] == "ServiceUnavailable" and r["transient"] == 1 for r in rows)


async def test_a_failure_that_cannot_be_read_back_is_left_unfinished_not_failed(tmp_path: Path) -> None:
    """The service down for reads too: whether a domain already holds the config is unknown."""
    async with simulator(error_rate=1.0, fault_kinds=("unavailable",)) as sim:
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 3), qps=500, max_attempts=3)
    assert result.counts["failed"] == 0 and result.counts["pending"] == 3
    assert result.exit_code == 3


# -- 409 ConfigAlreadyExists ----------------------------------------------------------------


def _preexisting(sim: Simulator, domain: str, url: str) -> None:
    sim.notify_configs[domain] = {"DomainName": domain, "NotifyUrl": url, "NotifyReqAuth": "no", "NotifyAuthKey": ""}


@pytest.mark.parametrize(
    ("if_exists", "state", "final_url"),
    [("fail", "failed", "https://old.example.com/cb"), ("skip", "skipped", "https://old.example.com/cb"),
     ("update", "done", URL)],
)
async def test_409_on_first_attempt_follows_if_exists(
    tmp_path: Path, if_exists: str, state: str, final_url: str
) -> None:
    async with simulator() as sim:
        _preexisting(sim, "d0001.example.com", "https://old.example.com/cb")
        # No backup: its reads would add one Describe per row to the count below.
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 4), qps=500, if_exists=if_exists, backup=False)
        assert sim.notify_configs["d0001.example.com"]["NotifyUrl"] == final_url
        describes = sim.stats()["calls"].get("DescribeLiveSnapshotNotifyConfig", {})
    assert result.counts[state] == (4 if state == "done" else 1)
    # The 409 is read back once, to tell an identical config (done) from a different one (the operator's call).
    assert describes == {"OK": 1}
    with Checkpoint.open_readonly(result.checkpoint) as ckpt:
        row = next(r for r in ckpt.rows() if r["domain"] == "d0001.example.com")
    assert row["state"] == state
    if if_exists == "update":
        assert row["action"] == "UpdateLiveSnapshotNotifyConfig"
    else:
        assert row["code"] == "ConfigAlreadyExists"
    assert result.exit_code == (1 if state == "failed" else 0)


@pytest.mark.parametrize("if_exists", ["fail", "skip", "update"])
async def test_409_on_an_identical_config_is_done_whatever_if_exists(tmp_path: Path, if_exists: str) -> None:
    """done means the service holds the row's config: one already in place counts, not as a failure."""
    async with simulator() as sim:
        _preexisting(sim, "d0001.example.com", URL)
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 3), qps=500, if_exists=if_exists)
        updates = sim.stats()["calls"].get("UpdateLiveSnapshotNotifyConfig", {})
    assert result.exit_code == 0 and result.counts["done"] == 3
    assert not updates
    with Checkpoint.open_readonly(result.checkpoint) as ckpt:
        row = next(r for r in ckpt.rows() if r["domain"] == "d0001.example.com")
    assert row["state"] == "done" and "already configured" in row["message"]


async def test_409_after_a_possible_earlier_attempt_is_read_back(tmp_path: Path) -> None:
    """Rows left 'sending' by a crash: ours -> done; somebody else's -> a clear conflict."""
    csv = domains_csv(tmp_path / "d.csv", 3)
    ckpt_path = tmp_path / "d.ckpt"
    async with simulator() as sim:
        # A first run records everything, then we pretend it crashed with rows in flight.
        await run_engine(sim, csv, checkpoint=ckpt_path, qps=500)
        with Checkpoint.open(ckpt_path) as ckpt:
            for line in (2, 3, 4):
                ckpt.record(RowOutcome(RowState.SENDING, line=line, attempts=1))
        _preexisting(sim, "d0002.example.com", "https://someone-else.example.com/cb")
        before = sum(n for (a, _), n in sim.applied.items() if a == ADD)
        result = await run_engine(sim, csv, checkpoint=ckpt_path, qps=500)
        after = sum(n for (a, _), n in sim.applied.items() if a == ADD)
    assert after == before  # nothing applied twice
    assert result.counts["done"] == 2 and result.counts["failed"] == 1
    with Checkpoint.open_readonly(ckpt_path) as ckpt:
        row = next(r for r in ckpt.rows() if r["domain"] == "d0002.example.com")
    assert row["code"] == "ConfigAlreadyExists" and "conflict" in row["message"] and "NotifyUrl" in row["message"]
    assert "someone-else" not in row["message"]


# -- input problems, strict mode, resume checks ---------------------------------------------


async def test_bad_rows_are_recorded_and_never_sent(tmp_path: Path) -> None:
    extra = ["not a domain\n", "d0003.example.com\n", "\n"]
    async with simulator() as sim:
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 5, extra=extra), qps=500)
        sent = {d for (_, d) in sim.applied}
    assert result.exit_code == 1
    assert result.counts["done"] == 5 and result.counts["invalid"] == 2
    assert "not a domain" not in sent
    with Checkpoint.open_readonly(result.checkpoint) as ckpt:
        invalid = {r["line"]: r["message"] for r in ckpt.rows(states=[RowState.INVALID])}
    assert set(invalid) == {7, 8}
    assert "DomainName" in invalid[7] and "twice" in invalid[8]


async def test_strict_refuses_before_any_call(tmp_path: Path) -> None:
    csv = domains_csv(tmp_path / "d.csv", 5, extra=["bad domain\n"])
    async with simulator() as sim:
        with pytest.raises(StrictModeError, match="line 7"):
            await run_engine(sim, csv, qps=500, strict=True)
        assert sim.stats()["total"] == 0
    # The refused run leaves no checkpoint behind: fix the file and run again.
    assert not csv.with_suffix(".ckpt").exists()


async def test_changed_input_is_refused_on_resume(tmp_path: Path) -> None:
    csv = domains_csv(tmp_path / "d.csv", 3)
    async with simulator() as sim:
        await run_engine(sim, csv, qps=500)
        csv.write_text(csv.read_text() + "new.example.com\n")
        with pytest.raises(CheckpointError, match="input changed"):
            await run_engine(sim, csv, qps=500)
        with pytest.raises(CheckpointError, match="NotifyUrl"):
            domains_csv(csv, 3)
            await run_engine(sim, csv, qps=500, overrides={"NotifyUrl": "https://other.example.com/x"})


async def test_resume_sends_only_what_is_left(tmp_path: Path) -> None:
    csv = domains_csv(tmp_path / "d.csv", 6)
    ckpt_path = tmp_path / "d.ckpt"
    async with simulator() as sim:
        first = await run_engine(sim, csv, checkpoint=ckpt_path, qps=500)
        again = await run_engine(sim, csv, checkpoint=ckpt_path, qps=500)
        calls = sum(sim.stats()["calls"][ADD].values())
    assert first.counts["done"] == again.counts["done"] == 6
    assert again.calls == 0 and calls == 6


# -- other actions, V1, JSONL and secrets ---------------------------------------------------


async def test_jsonl_set_callback_auth_with_v1_keeps_secrets_out_of_outputs(tmp_path: Path) -> None:
    keys = {f"k{i}.example.com": f"SecretKey{i:04d}abcdefghijXYZ" for i in range(8)}
    lines = [orjson.dumps({"DomainName": d, "CallbackReqAuth": "yes", "CallbackAuthKey": k}) for d, k in keys.items()]
    lines.append(b'{"DomainName": "bad.example.com", "CallbackReqAuth": "yes", "CallbackAuthKey": "short"}')
    lines.append(b"{broken json")
    src = tmp_path / "keys.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    log = tmp_path / "log.jsonl"
    async with simulator(missing_domains=("k7.example.com",)) as sim:
        result = await run_engine(sim, src, action="SetSnapshotCallbackAuth", signature="v1", qps=500, log_file=log)
        stored = {d: c["CallbackAuthKey"] for d, c in sim.callback_auth.items()}
    assert result.counts["done"] == 7 and result.counts["failed"] == 1 and result.counts["invalid"] == 2
    assert stored == {d: k for d, k in keys.items() if d != "k7.example.com"}
    from bulk.report import write_failures, write_report

    report, failures = tmp_path / "report.csv", tmp_path / "failures.jsonl"
    with Checkpoint.open_readonly(result.checkpoint) as ckpt:
        write_report(ckpt, report)
        assert write_failures(ckpt, failures) == 2  # k7 failed + the short-key row (the broken line can't be)
    outputs = [report, failures, log, *tmp_path.glob("keys.ckpt*")]
    blob = b"".join(p.read_bytes() for p in outputs)
    for secret in [*keys.values(), TEST_AK_SECRET]:
        assert secret.encode() not in blob
    assert b"k7.example.com" in failures.read_bytes()


async def test_the_failures_file_reads_only_the_lines_it_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each failed or invalid line is read again at its offset: a resume that leaves a few failed rows of a
    million spent some 25 s reading and checking the whole input for them."""
    import bulk.report
    from bulk.report import write_failures

    src = tmp_path / "d.csv"
    good = [f"d{i}.example.com,https://cb.example.com/x" for i in range(30)]
    bad, gone = "bad..example.com,https://cb.example.com/x", "gone.example.com,https://cb.example.com/y"
    src.write_text("\n".join(["DomainName,NotifyUrl", *good, bad, gone]) + "\n")
    async with simulator(missing_domains=("gone.example.com",)) as sim:
        result = await run_engine(sim, src, qps=500, overrides={})
    assert result.counts["done"] == 30 and result.counts["failed"] == result.counts["invalid"] == 1

    def whole_input(*args: object, **kwargs: object) -> None:
        raise AssertionError("the whole input was read again")

    monkeypatch.setattr(bulk.report, "read_rows", whole_input)
    failures = tmp_path / "failures.csv"
    with Checkpoint.open_readonly(result.checkpoint) as ckpt:
        assert write_failures(ckpt, failures) == 2
    assert failures.read_text().splitlines() == ["DomainName,NotifyUrl", bad, gone]


async def test_a_refused_input_leaves_no_checkpoint_behind(tmp_path: Path) -> None:
    from bulk.inputs import InputError

    csv = tmp_path / "d.csv"
    csv.write_text("DomainName,NotifyURL\na.example.com,https://x.example.com\n")  # misspelt column
    async with simulator() as sim:
        with pytest.raises(InputError, match="NotifyURL"):
            await run_engine(sim, csv, qps=500, overrides={})
        assert not csv.with_suffix(".ckpt").exists()
        csv.write_text("DomainName,NotifyUrl\na.example.com,https://x.example.com\n")
        result = await run_engine(sim, csv, qps=500, overrides={})
    assert result.counts["done"] == 1
