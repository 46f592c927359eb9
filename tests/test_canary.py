"""--canary N: the first N rows still to send, each read back; then the same command without it resumes."""

from __future__ import annotations

from pathlib import Path

from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import ADD, URL, bulk, domains_csv, run_engine, simulator

from bulk.actions import resolve
from bulk.checkpoint import Checkpoint
from bulk.paths import default_checkpoint
from bulk.sim import SimConfig, Simulator

DESCRIBE = "DescribeLiveSnapshotNotifyConfig"


async def test_a_canary_applies_and_verifies_n_rows_then_the_same_command_continues(tmp_path: Path) -> None:
    src = domains_csv(tmp_path / "d.csv", 50)
    args = ["run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--qps", "500", "--quiet"]
    async with simulator() as sim:
        code, out, err = await bulk(*args, "--endpoint", sim.url, "--canary", "5")
        assert code == 0, err
        assert ("canary ok: 5/5 applied and verified; run the same command without --canary to continue"
                in out.splitlines()), out
        assert sorted(d for _, d in sim.applied) == [f"d{i:04d}.example.com" for i in range(5)]
        # Each canary row read twice: its backup before the Add, its check after.
        assert sim.stats()["calls"][DESCRIBE] == {"OK": 10}
        ckpt = default_checkpoint(src, resolve(ADD))
        with Checkpoint.open_readonly(ckpt) as c:
            counts = c.counts()
        assert counts["done"] == 5 and counts["pending"] == 45

        code, out, err = await bulk(*args, "--endpoint", sim.url)
        assert code == 0, err
        assert "canary" not in out
        assert len(sim.applied) == 50 and set(sim.applied.values()) == {1}


async def test_a_canary_row_that_fails_exits_1_and_sends_nothing_more(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("DomainName\n" + "".join(f"d{i}.example.com\n" for i in range(2))
                   + "gone.missing.example.com\n" + "".join(f"d{i}.example.com\n" for i in range(2, 20)))
    async with simulator(missing_domains=("*.missing.example.com",)) as sim:
        code, out, err = await bulk("run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--qps", "500",
                                    "--quiet", "--endpoint", sim.url, "--canary", "3")
        applied = sorted(d for _, d in sim.applied)
    assert code == 1, err
    assert "canary failed: 2/3 applied and verified; nothing more was sent" in out.splitlines(), out
    assert "line 4: gone.missing.example.com: failed: InvalidDomain.NotFound" in out, out
    assert applied == ["d0.example.com", "d1.example.com"]


class _AcksWithoutHolding(Simulator):
    """A service that answers OK to one domain's Add but keeps nothing: no simulator switch does that."""

    __slots__ = ()

    def _apply(self, spec, params):  # type: ignore[no-untyped-def]
        answer = super()._apply(spec, params)
        if spec.name == ADD and params.get("DomainName") == "d0001.example.com":
            self.notify_configs.pop("d0001.example.com")
        return answer


async def test_a_canary_row_answered_ok_but_not_held_is_failed(tmp_path: Path) -> None:
    async with _AcksWithoutHolding(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000)) as sim:
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 10), qps=500, canary=3)
    assert result.exit_code == 1 and result.canary is not None and not result.canary.ok
    assert [r.problem is None for r in result.canary.rows] == [True, False, True]
    assert "a read-back differs in NotifyUrl" in (result.canary.rows[1].problem or "")
    with Checkpoint.open_readonly(result.checkpoint) as c:
        row = next(r for r in c.rows() if r["domain"] == "d0001.example.com")
    assert row["state"] == "failed" and row["code"] == "NotHeld"  # the record says what the service holds
    assert result.counts["pending"] == 7
