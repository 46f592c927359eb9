"""The fleet-wide safety stop: its two rules, and a run that stops on a missing RAM permission and resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import ADD, URL, bulk, domains_csv, run_engine, simulator

from bulk.checkpoint import Checkpoint, RowOutcome, RowState
from bulk.options import HaltKind
from bulk.safety import META_KEY, SafetyStop, fix_for

DESCRIBE = "DescribeLiveSnapshotNotifyConfig"


def failed(code: str, *, transient: bool = False, message: str = "no", action: str = ADD) -> RowOutcome:
    return RowOutcome(RowState.FAILED, action, code, message, 403, "RID", transient)


DONE = RowOutcome(RowState.DONE, ADD)


def feed(stop: SafetyStop, outcomes: list[RowOutcome]) -> int | None:
    """The 1-based position of the outcome that tripped the stop, if one did."""
    for n, settled in enumerate(outcomes, 1):
        if stop.observe(settled) is not None:
            return n
    return None


# -- the rules ----------------------------------------------------------------------------------


def test_ten_rows_in_a_row_with_one_code_trip_the_stop_and_nine_do_not() -> None:
    assert feed(SafetyStop(), [failed("Forbidden.RAM")] * 9) is None
    assert feed(SafetyStop(), [failed("Forbidden.RAM")] * 12) == 10
    # Anything else in between starts the streak again: a done row, or another code.
    assert feed(SafetyStop(), [failed("A")] * 9 + [DONE] + [failed("A")] * 9) is None
    assert feed(SafetyStop(), [failed("A")] * 9 + [failed("B")] + [failed("A")] * 9) is None


def test_more_than_the_rate_of_the_last_100_trips_once_20_have_finished() -> None:
    # Alternating codes never make a streak: the rate rule alone decides.
    mix = [failed("A"), failed("B")]
    assert feed(SafetyStop(), mix * 9 + [DONE]) is None                       # 18 of 19: too few finished
    assert feed(SafetyStop(), mix * 10) == 20                                 # 20 of 20 > 0.5
    half = [DONE, failed("A")] * 10                                           # 10 of 20: not more than half
    assert feed(SafetyStop(), half) is None
    assert feed(SafetyStop(), half + [failed("B")]) == 21                     # 11 of 21
    assert feed(SafetyStop(max_failure_rate=0.1), [DONE] * 18 + [failed("A"), failed("B"), failed("A")]) == 21


def test_the_window_forgets_rows_older_than_the_last_100() -> None:
    stop = SafetyStop()
    assert feed(stop, [DONE, failed("A"), DONE, failed("B")] * 25 + [DONE] * 100) is None  # never more than half
    # 51 failures in the last 100 trip it, though they are 101 of the 251 rows seen so far.
    assert feed(stop, [failed("A"), failed("B")] * 30) == 51


def test_transient_failures_do_not_count_and_a_rate_of_1_turns_the_stop_off() -> None:
    assert feed(SafetyStop(), [failed("ServiceUnavailable", transient=True)] * 200) is None
    assert feed(SafetyStop(max_failure_rate=1), [failed("Forbidden.RAM")] * 200) is None
    with pytest.raises(ValueError):
        SafetyStop(max_failure_rate=0)


def test_the_halt_names_the_code_the_service_message_and_the_fix_and_comes_once() -> None:
    stop = SafetyStop()
    outcomes = [failed("Forbidden.RAM", message="User not authorized to operate on the specified resource.")] * 10
    assert feed(stop, outcomes) == 10
    halt = stop.tripped
    assert halt is not None and halt.kind is HaltKind.SAFETY_STOP and halt.kind.exit_code == 5
    assert halt.code == "Forbidden.RAM"
    assert "User not authorized to operate on the specified resource." in halt.message
    assert f"live:{ADD}" in halt.message and "10 rows in a row" in halt.message
    assert stop.observe(failed("Other")) is None  # tripped once; what is still in flight changes nothing


def test_fixes_come_from_the_most_specific_entry() -> None:
    assert "live:DeleteLiveSnapshotNotifyConfig" in fix_for("Forbidden.RAM", "DeleteLiveSnapshotNotifyConfig")
    assert "RAM" in fix_for("Forbidden.AccessDenied", ADD)  # the Forbidden family
    assert "clock" in fix_for("InvalidTimeStamp.Expired", ADD)
    assert "--set" in fix_for("MalformedParam", ADD)
    assert "documentation" in fix_for("SomethingNew.Odd", ADD)


# -- over real sockets ----------------------------------------------------------------------------


async def test_a_missing_ram_permission_stops_3000_rows_early_and_a_resume_applies_each_once(tmp_path: Path) -> None:
    """The issue's test: 403 Forbidden.RAM on Add; exit 5 within 100 calls; lift the switch, resume."""
    src = domains_csv(tmp_path / "d.csv", 3000)
    ckpt = tmp_path / "d.ckpt"
    args = ["run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--checkpoint", str(ckpt), "--quiet"]
    async with simulator(latency_ms=20, qps=1_000_000, forbidden_actions=(ADD,)) as sim:
        code, out, err = await bulk(*args, "--endpoint", sim.url)  # at the default pace, 30 calls/s
        calls = sim.stats()["total"]
        assert code == 5, err
        assert calls <= 100, calls
        line = [x for x in err.splitlines() if x.startswith("bulk: safety stop on Forbidden.RAM")]
        assert len(line) == 1, err
        assert "User not authorized" in line[0] and f"live:{ADD}" in line[0], line[0]
        with Checkpoint.open_readonly(ckpt) as c:
            counts, meta = c.counts(), c.meta() or {}
            codes = {r["code"] for r in c.rows(states=[RowState.FAILED])}
        assert meta[META_KEY] == ["Forbidden.RAM"]
        assert codes == {"Forbidden.RAM"} and 10 <= counts["failed"] <= 50
        assert counts["pending"] == 3000 - counts["failed"] and counts["sending"] == 0 and counts["done"] == 0
        assert not sim.applied

        sim.config.forbidden_actions = ()  # the permission is granted
        sim.config.latency_ms = 0
        code, out, err = await bulk(*args, "--endpoint", sim.url, "--qps", "100000")
        assert code == 0, err
        assert len(sim.notify_configs) == 3000 and len(sim.applied) == 3000 and set(sim.applied.values()) == {1}
    with Checkpoint.open_readonly(ckpt) as c:
        assert c.counts()["done"] == 3000 and (c.meta() or {})[META_KEY] is None


async def test_a_missing_read_permission_stops_the_run_naming_the_read(tmp_path: Path) -> None:
    """With a backup, each domain is read before it is written: a policy without Describe stops the run too."""
    async with simulator(forbidden_actions=(DESCRIBE,)) as sim:
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 200), qps=200)
    assert result.halt is not None and result.halt.kind is HaltKind.SAFETY_STOP and result.exit_code == 5
    assert f"live:{DESCRIBE}" in result.halt.message
    assert not sim.applied and ADD not in sim.stats()["calls"]


async def test_a_few_row_failures_do_not_stop_a_run(tmp_path: Path) -> None:
    """Missing domains spread through a fleet (5%) are the rows' own failures: the run goes to the end."""
    rows = tmp_path / "d.csv"
    rows.write_text("DomainName\n" + "".join(f"gone{i}.missing.example.com\n" if i % 20 == 19 else f"d{i}.example.com\n"
                                             for i in range(200)))
    async with simulator(missing_domains=("*.missing.example.com",)) as sim:
        result = await run_engine(sim, rows, qps=500)
    assert result.halt is None and result.exit_code == 1
    assert result.counts["done"] == 190 and result.counts["failed"] == 10


async def test_a_rate_of_1_lets_every_row_fail(tmp_path: Path) -> None:
    async with simulator(forbidden_actions=(ADD,)) as sim:
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 40), qps=500, max_failure_rate=1.0)
    assert result.halt is None and result.exit_code == 1 and result.counts["failed"] == 40
