"""The `bulk` command as operators run it: real processes, real signals, the simulator over sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import bulk, csv_of, start_bulk, wait_for_applied

from bulk.actions import resolve
from bulk.checkpoint import Checkpoint
from bulk.inputs import Format
from bulk.paths import default_checkpoint, failures_path
from bulk.sim import SimConfig, Simulator

ADD = "AddLiveSnapshotNotifyConfig"
URL = "https://callback.example.com/snapshots"


def run_args(src: Path, sim: Simulator, *more: str) -> list[str]:
    return ["run", str(src), "--action", "add-live-snapshot-notify-config", "--set", f"NotifyUrl={URL}",
            "--endpoint", sim.url, *more]


async def test_kill_9_then_resume_applies_every_row_exactly_once(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 300)
    # Latency keeps many calls in flight at the moment of the kill.
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=150, latency_ms=80, seed=3,
                       error_rate=0.1, fault_kinds=("internal_after", "drop"))
    async with Simulator(config) as sim:
        proc = await start_bulk(*run_args(src, sim, "--qps", "150", "--quiet"))
        await wait_for_applied(sim, 100)
        proc.kill()
        await proc.wait()
        assert proc.returncode == -signal.SIGKILL
        applied_before = len(sim.applied)
        assert applied_before < 300
        code, out, err = await bulk(*run_args(src, sim, "--qps", "150", "--quiet"))
        assert code == 0, err
        assert len(sim.notify_configs) == 300
        assert set(sim.applied.values()) == {1}
        assert all(a == ADD for a, _ in sim.applied)
    code, out, _ = await bulk("status", str(default_checkpoint(src, resolve(ADD))), "--json")
    status = orjson.loads(out)
    assert code == 0
    assert status["total"] == 300 and status["done"] == 300 and status["pending"] == 0 and status["failed"] == 0


async def test_sigint_stops_gracefully_exit_3_and_resume_finishes(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 200)
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=30)) as sim:
        proc = await start_bulk(*run_args(src, sim))
        await wait_for_applied(sim, 20)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 3, err.decode()
        assert "resume" in err.decode()
        ckpt = default_checkpoint(src, resolve(ADD))
        with Checkpoint.open_readonly(ckpt) as c:
            counts = c.counts()
        assert 20 <= counts["done"] < 200
        assert counts["done"] == len(sim.applied)  # everything applied was recorded
        sim.config.qps = 200  # the resume's own pace, not throttled by the first run's quota
        code, _, err = await bulk(*run_args(src, sim, "--qps", "200", "--quiet"))
        assert code == 0, err
        assert len(sim.applied) == 200 and set(sim.applied.values()) == {1}


async def test_second_run_on_a_checkpoint_in_use_exits_4(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 3)
    ckpt = tmp_path / "held.ckpt"
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        with Checkpoint.open(ckpt):
            code, _, err = await bulk(*run_args(src, sim, "--checkpoint", str(ckpt)))
        assert code == 4 and "in use" in err
        assert sim.stats()["total"] == 0


async def test_missing_credentials_exit_2_before_any_call(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_ACCESS_KEY")}
    env["HOME"] = str(tmp_path)  # no aliyun CLI profile either
    env["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        code, _, err = await bulk(*run_args(src, sim), env=env)
        assert sim.stats()["total"] == 0
    assert code == 2
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in err and "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in err


async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 3)
    code, _, err = await bulk("run", str(src), "--action", "NoSuchAction")
    assert code == 2 and "unknown action" in err
    code, _, err = await bulk("run", str(src), "--action", ADD, "--set", "Bogus=1")
    assert code == 2
    code, _, err = await bulk("run", str(tmp_path / "missing.csv"), "--action", ADD, "--set", f"NotifyUrl={URL}")
    assert code == 2 and "does not exist" in err


async def test_validate_and_dry_run_send_nothing(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("DomainName\na.example.com\nnot a domain\nb.example.com\n")
    code, out, _ = await bulk("validate", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}")
    assert code == 1 and "line 3" in out
    code, out, _ = await bulk("validate", str(csv_of(tmp_path / "ok.csv", 5)), "--action", ADD,
                              "--set", f"NotifyUrl={URL}")
    assert code == 0
    code, out, _ = await bulk("run", str(tmp_path / "ok.csv"), "--action", ADD, "--set", f"NotifyUrl={URL}",
                              "--dry-run", "--endpoint", "http://127.0.0.1:9")
    assert code == 0 and "5 AddLiveSnapshotNotifyConfig call(s) to send" in out
    assert not default_checkpoint(tmp_path / "ok.csv", resolve(ADD)).exists()


async def test_report_command_and_log_file(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 4)
    log = tmp_path / "log.jsonl"
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, missing_domains=("d0002.*",))) as sim:
        code, _, err = await bulk(*run_args(src, sim, "--log-file", str(log), "--report", str(tmp_path / "r.jsonl")))
    assert code == 1, err
    ckpt = default_checkpoint(src, resolve(ADD))
    code, out, _ = await bulk("report", str(ckpt), "--failed-only", "--format", "jsonl")
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [r["domain"] for r in rows] == ["d0002.example.com"]
    assert rows[0]["error_code"] == "InvalidDomain.NotFound" and rows[0]["request_id"]
    full = [orjson.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(full) == 4 and all(r["request_id"] for r in full)
    failures = failures_path(ckpt, Format.CSV)
    assert failures.read_text().splitlines() == ["DomainName", "d0002.example.com"]
    # One line per call: four backup reads (the missing domain fails at its read) and three Adds.
    assert len(log.read_text().splitlines()) == 7
    assert TEST_AK_SECRET not in err + out + log.read_text()


async def test_rejected_credentials_stop_the_run_at_once(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 50)
    env = {**os.environ, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "a-wrong-secret-value"}
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        code, out, err = await bulk(*run_args(src, sim, "--quiet"), env=env)
        calls = sim.stats()["calls"]
    assert code == 2 and "SignatureDoesNotMatch" in err
    assert sum(sum(c.values()) for c in calls.values()) < 5  # not one failure per row
    assert "a-wrong-secret-value" not in out + err


async def test_a_literal_secret_warns_and_a_secret_from_a_file_does_not(tmp_path: Path) -> None:
    src = csv_of(tmp_path / "d.csv", 2)
    key = "Literal0123456789abcdef"
    (tmp_path / "key").write_text(key + "\n")
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        args = ["run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--set", "NotifyReqAuth=yes",
                "--endpoint", sim.url, "--quiet"]
        code, out, err = await bulk(*args, "--set", f"NotifyAuthKey={key}", "--checkpoint", str(tmp_path / "a.ckpt"))
        assert code == 0, err
        assert "warning: NotifyAuthKey given literally" in err and key not in err + out
        code, out, err = await bulk(*args, "--set", f"NotifyAuthKey=@{tmp_path / 'key'}",
                                    "--checkpoint", str(tmp_path / "b.ckpt"), "--if-exists", "update")
        assert code == 0, err
        assert "warning" not in err
        assert {c["NotifyAuthKey"] for c in sim.notify_configs.values()} == {key}


async def test_validate_totals_add_up_and_the_report_shows_the_domain_as_written(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("DomainName\nLive.Example.COM.\n\n\"broken.example.com\nbücher.example.com\n")
    code, out, _ = await bulk("validate", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}")
    assert code == 1
    assert out.splitlines()[-1] == "5 lines: 1 header, 1 blank or comment, 3 rows: 2 valid, 1 invalid"
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        code, _, err = await bulk(*run_args(src, sim, "--quiet", "--report", str(tmp_path / "r.jsonl")))
        assert code == 1, err
        assert set(sim.notify_configs) == {"live.example.com", "xn--bcher-kva.example.com"}
    report = {r["domain"]: r for r in map(orjson.loads, (tmp_path / "r.jsonl").read_text().splitlines())}
    assert report["live.example.com"]["given_domain"] == "Live.Example.COM."
    assert report["xn--bcher-kva.example.com"]["given_domain"] == "bücher.example.com"


async def test_a_resume_reads_each_row_at_its_offset(tmp_path: Path) -> None:
    """Rows to send are read again where ingest found them, not by reading the whole input."""
    src = csv_of(tmp_path / "d.csv", 40)
    ckpt = tmp_path / "d.ckpt"
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=5)) as sim:
        proc = await start_bulk("run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--endpoint", sim.url,
                                "--checkpoint", str(ckpt), "--qps", "5", "--quiet")
        await wait_for_applied(sim, 5)
        proc.send_signal(signal.SIGINT)
        assert await proc.wait() == 3
        with Checkpoint.open_readonly(ckpt) as c:
            offsets = {r["line"]: r["offset"] for r in c.rows()}
        lines = src.read_bytes().splitlines(keepends=True)
        assert all(offsets[n] == sum(map(len, lines[: n - 1])) for n in offsets)
        sim.config.qps = 1000  # the resume's own pace, not throttled by the first run's quota
        code, _, err = await bulk("run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--endpoint",
                                  sim.url, "--checkpoint", str(ckpt), "--qps", "1000", "--quiet")
        assert code == 0, err
        assert len(sim.notify_configs) == 40 and set(sim.applied.values()) == {1}


def test_the_installed_entry_points_start_in_a_new_interpreter() -> None:
    """``python -m bulk`` and the ``bulk`` script as a user starts them; every other test forks a warm interpreter.

    The top-level help lists every command: it imports all that ``validate --help`` does, at 0.15 s less CPU."""
    script = Path(sys.executable).with_name("bulk")
    for command in ([sys.executable, "-m", "bulk", "--help"], [str(script), "--help"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert "Usage:" in done.stdout and "validate" in done.stdout
