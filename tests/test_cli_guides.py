"""Commands that work as printed (issue 22): a corrected command restarts a run that never sent, messages a
person can read, outputs checked before the first call, errors grouped, a semicolon CSV."""

from __future__ import annotations

from pathlib import Path

from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import bulk, csv_of

from bulk.sim import SimConfig, Simulator

ADD = "AddLiveSnapshotNotifyConfig"
URL = "https://callback.example.com/snapshots"


async def test_a_run_that_never_sent_is_restarted_by_the_corrected_command(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 5)
    ckpt = tmp_path / "d.ckpt"
    common = ["run", str(src), "--action", ADD, "--checkpoint", str(ckpt)]
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        # The NotifyUrl forgotten: every row invalid, nothing sent, a checkpoint left behind.
        code, _, err = await bulk(*common, "--endpoint", sim.url, "--quiet")
        assert code == 1, err
        assert ckpt.exists() and not sim.applied
        code, _, err = await bulk(*common, "--set", f"NotifyUrl={URL}", "--endpoint", sim.url, "--quiet")
        assert code == 0, err
        assert "never sent a call: started anew" in err
        assert "no --set values" in err and f"--set NotifyUrl={URL}" in err
        assert "overrides=" not in err and "{" not in err
        assert len(sim.applied) == 5
        # A run that did send is resumed, never started anew: other values are refused, said plainly.
        code, _, err = await bulk(*common, "--set", "NotifyUrl=https://other.example.com/x", "--endpoint", sim.url)
        assert code == 2, err
        assert f"was started with --set NotifyUrl={URL}" in err and "started anew" not in err
        assert "overrides=" not in err and "{" not in err and "'" not in err
