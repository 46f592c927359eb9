"""SIGTERM (what systemd, Kubernetes and `kill` send) stops every mode that writes as Ctrl-C does.

The README promises a graceful stop: calls in flight finish, the record is
written, the command exits 3 and names the resume; the same command then
finishes the job, each change applied once.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import pytest
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import bulk, csv_of, start_bulk

from bulk.checkpoint import Checkpoint
from bulk.paths import rollback_checkpoint
from bulk.sim import SimConfig, Simulator

URL = "https://callback.example.com/snapshots"
ROWS = 150


async def _terminated(args: list[str], *, sim: Simulator, applied: int) -> str:
    """Start bulk, send SIGTERM once ``applied`` new changes landed; its stderr, after it exited 3."""
    before = sum(sim.applied.values())
    proc = await start_bulk(*args)
    await wait_for_applied_since(sim, before, applied)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 3, err.decode()
    return err.decode()


async def wait_for_applied_since(sim: Simulator, before: int, count: int, limit: float = 20.0) -> None:
    for _ in range(int(limit / 0.02)):
        if sum(sim.applied.values()) - before >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"only {sum(sim.applied.values()) - before} applied")


@pytest.mark.parametrize("mode", ["run", "rotate", "rollback"])
async def test_sigterm_stops_gracefully_with_exit_3_and_the_same_command_resumes(tmp_path: Path, mode: str) -> None:
    src = csv_of(tmp_path / "d.csv", ROWS)
    ckpt = tmp_path / "state" / "d.ckpt"  # not beside the keys file of a rotation
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=1000)) as sim:
        forward = ["run", str(src), "--action", "add-live-snapshot-notify-config", "--set", f"NotifyUrl={URL}",
                   "--endpoint", sim.url, "--checkpoint", str(ckpt), "--qps", "30"]
        if mode == "run":
            args = forward
        elif mode == "rotate":
            args = ["rotate", "--yes", str(src), "--keys-out", str(tmp_path / "keys.csv"), "--endpoint", sim.url,
                    "--checkpoint", str(ckpt), "--qps", "30"]
        else:
            code, _, err = await bulk(*forward[:-1], "1000", "--quiet")
            assert code == 0, err
            args = ["rollback", str(ckpt), "--endpoint", sim.url, "--qps", "30"]
        before = Counter(sim.applied)
        err = await _terminated(args, sim=sim, applied=20)
        assert "resume" in err and "stopping" in err
        # What landed was recorded before the exit.
        recorded = ckpt if mode != "rollback" else rollback_checkpoint(ckpt)
        with Checkpoint.open_readonly(recorded) as c:
            counts = c.counts()
        assert 20 <= counts["done"] < ROWS
        assert counts["done"] == sum((Counter(sim.applied) - before).values())
        code, _, err = await bulk(*args[:-1], "1000", "--quiet")
        assert code == 0, err
        changed = Counter(sim.applied) - before
        assert sum(changed.values()) == ROWS and set(changed.values()) == {1}
        if mode == "rollback":
            assert sim.notify_configs == {}
        elif mode == "rotate":
            assert len(sim.callback_auth) == ROWS
        else:
            assert len(sim.notify_configs) == ROWS
