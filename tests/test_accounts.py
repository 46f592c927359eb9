"""Many accounts in one run, over real sockets: a Profile column, a lane per account, one record.

The aliyun CLI config lives in a temporary HOME with three profiles: an
AccessKey (acct-a), an STS token (acct-b) and an AccessKey whose secret the
service does not hold (acct-c). Rows without a Profile use the run's own
credentials (the test AccessKey in the environment).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import orjson
import pytest
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import ACCOUNTS_CONFIG, WRONG_SECRET, bulk, settle, start_bulk, wait_until

from bulk.actions import resolve
from bulk.checkpoint import Checkpoint
from bulk.client import LiveClient
from bulk.credentials import (
    Credentials,
    ProfileSources,
    StaticCredentials,
    profile_names,
)
from bulk.engine import RunOptions, run
from bulk.errors import Exit
from bulk.safety import META_KEY, tripped
from bulk.sim import SimConfig, Simulator, max_in_window

ADD = "AddLiveSnapshotNotifyConfig"
URL = "https://cb.example.com/snap"
KEY_OF = {None: TEST_AK_ID, "acct-a": "LTAIacctA", "acct-b": "STS.acctB", "acct-c": "LTAIacctC"}


def home_with_profiles(tmp_path: Path) -> dict[str, str]:
    """The environment of a run: the CLI config in a temp HOME, the test AccessKey, no metadata service."""
    (tmp_path / ".aliyun").mkdir()
    (tmp_path / ".aliyun" / "config.json").write_text(json.dumps(ACCOUNTS_CONFIG))
    return {**os.environ, "HOME": str(tmp_path)}


def fleet(path: Path, n: int, profiles: tuple[str | None, ...]) -> dict[str, str | None]:
    """n rows, profiles in turn (None: no Profile); domain -> profile."""
    rows = {f"d{i:04d}.example.com": profiles[i % len(profiles)] for i in range(n)}
    path.write_text("DomainName,Profile\n" + "".join(f"{d},{p or ''}\n" for d, p in rows.items()))
    return rows


def simulator(**config: object) -> Simulator:
    keys = {TEST_AK_ID: TEST_AK_SECRET, "LTAIacctA": "secret-a", "STS.acctB": "secret-b",
            "LTAIacctC": "the-real-secret-c"}
    return Simulator(SimConfig(access_keys=keys, **config))  # type: ignore[arg-type]


def adds_by_key(sim: Simulator) -> Counter[str]:
    return Counter(key for _, key, action in sim.arrivals() if action == ADD)


def describes(sim: Simulator) -> Counter[str]:
    return Counter(key for _, key, action in sim.arrivals() if action == "DescribeLiveSnapshotNotifyConfig")


async def test_a_refused_account_stops_alone_across_a_kill_9_and_a_resume_applies_each_row_once(
    tmp_path: Path,
) -> None:
    env = home_with_profiles(tmp_path)
    src, ckpt = tmp_path / "fleet.csv", tmp_path / "fleet.ckpt"
    rows = fleet(src, 240, (None, "acct-a", "acct-b", "acct-c"))
    with src.open("a") as f:
        f.write("gone.example.com,acct-gone\n")  # a profile the config does not have: line 242, never sent
    args = ["run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--checkpoint", str(ckpt),
            "--qps", "60", "--no-backup", "--quiet"]
    async with simulator(qps=60, latency_ms=20) as sim:
        proc = await start_bulk(*args, "--endpoint", sim.url, env=env)
        await wait_until(lambda: len(sim.applied) >= 60)
        proc.kill()
        await proc.communicate()
        await settle(sim)
        killed_at = len(sim.applied)
        assert killed_at < 180  # killed in the middle

        code, out, err = await bulk(*args, "--endpoint", sim.url, env=env)
        assert code == Exit.USAGE, err  # something stopped: acct-c's credentials
        assert "account acct-c: the service refused the credentials (SignatureDoesNotMatch" in err, err
        assert WRONG_SECRET not in out + err
        with Checkpoint.open_readonly(ckpt) as c:
            by_profile = c.counts_by_profile()
            states = {r["domain"]: (r["state"], r["profile"]) for r in c.rows()}
        # Still to send: claimed rows the killed run had not recorded stay 'sending', to be read back.
        c_rows = by_profile["acct-c"]
        assert c_rows["pending"] + c_rows["sending"] == 60 and c_rows["done"] == c_rows["failed"] == 0, by_profile
        for profile in (None, "acct-a", "acct-b"):
            assert by_profile[profile]["done"] == 60, (profile, by_profile)
        assert states["gone.example.com"] == ("invalid", None)
        assert all(states[d][1] == p for d, p in rows.items())  # names only: the checkpoint holds no secret
        assert WRONG_SECRET.encode() not in ckpt.read_bytes()

        # The operator fixes acct-c's secret; the same command finishes it.
        sim.config.access_keys["LTAIacctC"] = WRONG_SECRET
        code, out, err = await bulk(*args, "--endpoint", sim.url, env=env)
        assert code == Exit.FAILED, err  # the invalid row
        code, status_out, _ = await bulk("status", str(ckpt), "--json", env=env)
        failures = (tmp_path / "fleet.failures.csv").read_text()
        applied = dict(sim.applied)
        adds = adds_by_key(sim)
        # verify reads each row back with its own account's credentials.
        read_before = describes(sim)
        verify = await bulk("verify", str(ckpt), "--endpoint", sim.url, "--qps", "60", "--quiet", env=env)
        read_by_verify = describes(sim) - read_before
        report = await bulk("report", str(ckpt), env=env)
    assert verify[0] == Exit.OK and "240 in sync" in verify[1], verify
    assert read_by_verify == adds
    assert {r["domain"]: r["profile"] for r in csv.DictReader(report[1].splitlines()) if r["outcome"] == "done"} == \
        {d: p or "" for d, p in rows.items()}
    assert all(n == 1 for n in applied.values()) and len(applied) == 240
    # Each row was sent by its own account, once: the Adds each AccessKey made.
    assert adds == Counter(KEY_OF[p] for p in rows.values())
    status = orjson.loads(status_out)
    done = {"total": 60, "done": 60, "skipped": 0, "failed": 0, "invalid": 0, "unknown": 0, "pending": 0,
            "sending": 0}
    # The row whose Profile is what is wrong counts with the rows that name none.
    assert status["accounts"] == {"": {**done, "total": 61, "invalid": 1}, "acct-a": done, "acct-b": done,
                                  "acct-c": done}
    assert status["invalid"] == 1 and status["done"] == 240
    # The failures file takes the bad row back as written, Profile included.
    assert list(csv.DictReader(failures.splitlines())) == [{"DomainName": "gone.example.com", "Profile": "acct-gone"}]


@pytest.mark.realtime
async def test_each_account_is_paced_on_its_own_at_the_quota_and_all_at_once(tmp_path: Path) -> None:
    """Three accounts at 30 calls/s: each keeps its quota at the server, and they run side by side."""
    env = home_with_profiles(tmp_path)
    src = tmp_path / "fleet.csv"
    rows = fleet(src, 270, (None, "acct-a", "acct-b"))
    options = RunOptions(action=resolve(ADD), input_path=src, checkpoint_path=tmp_path / "fleet.ckpt",
                         overrides={"NotifyUrl": URL}, qps=30, backup=False,
                         profiles=profile_names(environ=env))
    sources = ProfileSources(environ=env)
    async with simulator(qps=30, latency_ms=40) as sim:
        async with LiveClient(credentials=StaticCredentials(Credentials(TEST_AK_ID, TEST_AK_SECRET)),
                              endpoint=sim.url) as client:
            result = await run(options, client=client, sources=sources.source)
        arrivals = sim.arrivals()
    assert result.exit_code == Exit.OK and result.counts["done"] == 270 and result.stopped == {}
    spans = {}
    for profile in (None, "acct-a", "acct-b"):
        times = [t for t, key, action in arrivals if key == KEY_OF[profile] and action == ADD]
        assert len(times) == 90
        assert max_in_window(times) <= 30
        assert 89 / (times[-1] - times[0]) >= 0.9 * 30, profile  # each at its own full pace
        spans[profile] = (times[0], times[-1])
    # Side by side, not one after the other: every account was sending while every other was.
    assert max(first for first, _ in spans.values()) < min(last for _, last in spans.values())
    assert len(set(rows.values())) == 3


def test_safety_stop_codes_of_old_and_new_checkpoints() -> None:
    """A checkpoint of a single-account bulk holds one code; a run across accounts may record several."""
    assert tripped({META_KEY: "Forbidden.RAM"}) == ["Forbidden.RAM"]
    assert tripped({META_KEY: ["Forbidden.RAM", "InvalidTimeStamp.Expired"]}) == ["Forbidden.RAM",
                                                                                 "InvalidTimeStamp.Expired"]
    assert tripped({META_KEY: None}) == tripped({}) == tripped(None) == []
