"""`bulk status` (issue 22 item 3): when the run started, whether and by whom it is held, how it last ended."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import bulk, csv_of

from bulk.checkpoint import Checkpoint
from bulk.cli.common import record_end
from bulk.options import Halt, HaltKind, RunResult
from bulk.sim import SimConfig, Simulator

ADD = "AddLiveSnapshotNotifyConfig"
URL = "https://callback.example.com/snapshots"


async def test_status_says_when_who_and_how_the_last_run_ended(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 3)
    ckpt = tmp_path / "d.ckpt"
    args = ["run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--checkpoint", str(ckpt), "--quiet"]
    wrong = {**os.environ, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "a-wrong-secret-value"}
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        code, _, err = await bulk(*args, "--endpoint", sim.url, env=wrong)
        assert code == 2, err
        code, out, _ = await bulk("status", str(ckpt), "--json")
        status = orjson.loads(out)
        assert status["last_run"]["exit_code"] == 2
        assert status["last_run"]["halt"]["kind"] == "credentials refused"
        assert status["started"].endswith("Z") and status["running"] is False and status["pid"] is None
        code, _, err = await bulk(*args, "--endpoint", sim.url)
        assert code == 0, err
    code, out, _ = await bulk("status", str(ckpt), "--json")
    assert orjson.loads(out)["last_run"]["exit_code"] == 0 and orjson.loads(out)["last_run"]["halt"] is None
    code, out, _ = await bulk("status", str(ckpt))
    assert "  running  no" in out.splitlines() and "last run exit 0 at " in out

    # Held by a run (this process): running, and by which process.
    with Checkpoint.open(ckpt):
        code, out, _ = await bulk("status", str(ckpt), "--json")
        assert (orjson.loads(out)["running"], orjson.loads(out)["pid"]) == (True, os.getpid())
        code, out, _ = await bulk("status", str(ckpt))
        assert f"  running  yes, by process {os.getpid()}" in out.splitlines()

    # An account that stopped alone, and why.
    halt = Halt(HaltKind.SAFETY_STOP, "safety stop: 10 rows in a row failed with Forbidden.RAM")
    result = RunResult(counts={}, errors={}, calls=0, elapsed=0.0, checkpoint=ckpt, stopped={"prod": halt})
    record_end(ckpt, 5, result, started=0.0)
    code, out, _ = await bulk("status", str(ckpt))
    assert "  account prod stopped: safety stop: safety stop: 10 rows in a row failed with Forbidden.RAM" in out
    status = orjson.loads((await bulk("status", str(ckpt), "--json"))[1])
    assert status["last_run"]["stopped"]["prod"]["kind"] == "safety stop"
    assert status["last_run"]["started"] == "1970-01-01T00:00:00Z"
