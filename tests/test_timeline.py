"""The run's per-second timeline: counted as calls are answered, committed with the outcomes, read back."""

from __future__ import annotations

from pathlib import Path

from support import domains_csv, run_engine, simulator

from bulk.checkpoint import Checkpoint
from bulk.client import Failure, Success
from bulk.timeline import OK_CODE, Timeline, percentile

ADD = "AddLiveSnapshotNotifyConfig"


def ok(latency: float) -> Success:
    return Success("req", {}, 200, latency)


def refused(code: str, latency: float = 0.01) -> Failure:
    return Failure(code, "no", 503, "req", True, latency)


def test_a_second_is_handed_over_once_it_is_over_with_its_percentiles() -> None:
    now = [100.2]
    timeline = Timeline(quota=30, clock=lambda: now[0])
    for ms in range(1, 101):
        timeline.answered(ADD, ok(ms / 1000))
    timeline.answered(ADD, refused("Throttling.User"))
    timeline.finished(failed=False)
    timeline.finished(failed=True)
    assert timeline.take() == []  # the second is not over
    now[0] = 101.0
    timeline.answered("DescribeLiveSnapshotNotifyConfig", ok(0.5))
    [second] = timeline.take()
    assert second.at == 100 and second.quota == 30
    assert second.calls == {ADD: 101}
    assert second.codes == {OK_CODE: 100, "Throttling.User": 1}
    assert second.throttled == 1 and second.finished == 2 and second.failed == 1
    assert (second.p50, second.p90, second.p99, second.max) == (0.05, 0.09, 0.099, 0.1)
    assert timeline.take() == []
    [last] = timeline.take(final=True)
    assert last.at == 101 and last.calls == {"DescribeLiveSnapshotNotifyConfig": 1} and last.p99 == 0.5


def test_percentile_is_nearest_rank() -> None:
    assert percentile([1.0], 0.99) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.9) == 4.0


async def test_a_run_records_its_timeline_in_the_checkpoint(tmp_path: Path) -> None:
    csv = domains_csv(tmp_path / "d.csv", 70)
    ckpt = tmp_path / "d.ckpt"
    async with simulator(missing_domains=("d000[0-4].example.com",)) as sim:
        result = await run_engine(sim, csv, checkpoint=ckpt, qps=40)
    with Checkpoint.open_readonly(ckpt) as c:
        seconds = c.seconds()
    assert len(seconds) >= 2  # 70 calls at 40/s span two seconds at least
    assert [s.at for s in seconds] == sorted({s.at for s in seconds})
    assert sum(sum(s.calls.values()) for s in seconds) == result.calls
    assert sum(sum(s.codes.values()) for s in seconds) == result.calls
    assert sum(s.codes.get("InvalidDomain.NotFound", 0) for s in seconds) == 5
    assert sum(s.finished for s in seconds) == 70 and sum(s.failed for s in seconds) == 5
    assert {s.quota for s in seconds} == {40}
    assert all(s.p50 is not None and 0 <= s.p50 <= s.p90 <= s.p99 <= s.max for s in seconds if s.calls)  # type: ignore[operator]


async def test_a_resume_adds_to_the_timeline(tmp_path: Path) -> None:
    csv = domains_csv(tmp_path / "d.csv", 10)
    ckpt = tmp_path / "d.ckpt"
    async with simulator(missing_domains=("d000[0-4].example.com",)) as sim:
        first = await run_engine(sim, csv, checkpoint=ckpt, qps=200)
        again = await run_engine(sim, csv, checkpoint=ckpt, qps=200, retry_failed=True)
    with Checkpoint.open_readonly(ckpt) as c:
        seconds = c.seconds()
    assert sum(sum(s.calls.values()) for s in seconds) == first.calls + again.calls
    assert sum(s.finished for s in seconds) == 15
