"""Backups and rollback over real sockets: each domain's prior state recorded before its first write, put back exactly.

The fleets mix every starting point a migration meets: no config, the same
config, another URL, another key, and auth off with no key at all (which an
Update cannot restore: the rollback deletes and adds it again).
"""

from __future__ import annotations

import os
import signal
import stat
from collections import Counter
from pathlib import Path

import orjson
import pytest
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import (
    ADD,
    KINDS,
    add_args,
    bulk,
    domains_csv,
    new_key,
    notify_fleet,
    old_key,
    run_engine,
    settle,
    simulator,
    start_bulk,
    wait_until,
)
from support import ROLLBACK_NEW_URL as NEW_URL
from support import ROLLBACK_OLD_URL as OLD_URL

from bulk.checkpoint import Checkpoint, RowState
from bulk.client import LiveClient
from bulk.credentials import Credentials, StaticCredentials
from bulk.engine import run
from bulk.options import Tuning
from bulk.paths import backup_path
from bulk.rollback import plan_rollback
from bulk.sim import SimConfig, Simulator

DESCRIBE = "DescribeLiveSnapshotNotifyConfig"
async def killed(sim: Simulator, args: list[str], *, once) -> str:  # type: ignore[no-untyped-def]
    """Run bulk with ``args``, kill -9 it as soon as ``once()`` holds, let its calls land; its output."""
    proc = await start_bulk(*args)
    await wait_until(once)
    proc.kill()
    output = b"".join(await proc.communicate()).decode()
    assert proc.returncode == -signal.SIGKILL
    await settle(sim)
    return output


def readable_by_others(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o077]


async def test_rollback_after_add_with_update_restores_the_seeded_fleet_across_a_kill_9(tmp_path: Path) -> None:
    """The issue's test: Add --if-exists update, then a rollback killed with SIGKILL and resumed."""
    src = tmp_path / "fleet.csv"
    ckpt = tmp_path / "fleet.ckpt"
    rollback = ["rollback", str(ckpt), "--report", str(tmp_path / "rollback.csv"),
                "--log-file", str(tmp_path / "rollback-log.jsonl")]
    async with simulator(latency_ms=10) as sim:
        seeded = notify_fleet(sim, src, 200)
        code, out, err = await bulk(*add_args(src, sim, "--qps", "1000", "--checkpoint", str(ckpt),
                                              "--log-file", str(tmp_path / "run-log.jsonl")))
        assert code == 0, err
        assert all(c["NotifyUrl"] == NEW_URL and c["NotifyAuthKey"] == new_key(int(d[-16:-12]))
                   for d, c in sim.notify_configs.items()) and len(sim.notify_configs) == 200
        before = Counter(sim.applied)

        outputs = [await killed(sim, [*rollback, "--endpoint", sim.url, "--qps", "40", "--quiet"],
                                once=lambda: sum((Counter(sim.applied) - before).values()) >= 30)]
        assert sum((Counter(sim.applied) - before).values()) < 200  # killed in the middle
        code, out, err = await bulk(*rollback, "--endpoint", sim.url, "--qps", "1000")
        outputs.append(out + err)
        assert code == 0, err
        assert sim.notify_configs == seeded  # URLs, auth switches and keys, and no config where there was none
        rolled = Counter(sim.applied) - before
        code, out, err = await bulk("verify", f"{tmp_path / 'fleet.rollback.ckpt'}", "--endpoint", sim.url,
                                    "--qps", "1000", "--quiet")
        outputs.append(out + err)
    # Only what the difference needed, each call applied once though the rollback was killed.
    assert set(rolled.values()) == {1}
    by_kind = Counter((action, domain[:-16]) for action, domain in rolled)
    assert by_kind == {("DeleteLiveSnapshotNotifyConfig", "none"): 40, ("UpdateLiveSnapshotNotifyConfig", "url"): 40,
                       ("UpdateLiveSnapshotNotifyConfig", "key"): 40, ("DeleteLiveSnapshotNotifyConfig", "off"): 40,
                       ("AddLiveSnapshotNotifyConfig", "off"): 40}
    assert code == 0 and "200 in sync" in out, out + err
    # The old keys are in the backup (mode 0600) and nowhere else that anyone else may read.
    backup = backup_path(ckpt)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert all(old_key(i).encode() in backup.read_bytes() for i in range(3, 200, 5))
    exposed = readable_by_others(tmp_path)
    assert src in exposed  # the scan sees the files others may read; bulk's own are 0600 (issue 20, finding 9)
    assert tmp_path / "rollback.csv" not in exposed and tmp_path / "rollback-log.jsonl" not in exposed
    for path in exposed:
        data = path.read_bytes()
        assert not any(old_key(i).encode() in data for i in range(200)), path
    assert not any(old_key(i) in text for text in outputs for i in range(200))


async def test_a_resumed_run_never_records_its_own_change_as_the_prior_state(tmp_path: Path) -> None:
    """Killed with calls in flight (and answers lost): every domain is recorded once, as it was before.

    150 rows, 30 of each seeded kind; at 150 calls a second answered after 80 ms, a dozen are in flight at the kill."""
    src = tmp_path / "fleet.csv"
    ckpt = tmp_path / "fleet.ckpt"
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=2000, latency_ms=80, seed=3, error_rate=0.1,
                       fault_kinds=("internal_after", "drop"))
    async with Simulator(config) as sim:
        seeded = notify_fleet(sim, src, 150)
        await killed(sim, add_args(src, sim, "--qps", "150", "--checkpoint", str(ckpt)),
                     once=lambda: len(sim.applied) >= 50)
        assert len(sim.applied) < 150
        code, _, err = await bulk(*add_args(src, sim, "--qps", "1000", "--checkpoint", str(ckpt)))
        assert code == 0, err
        header, *records = [orjson.loads(line) for line in backup_path(ckpt).read_bytes().splitlines()]
        code, _, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--qps", "1000", "--quiet")
        assert code == 0, err
        assert sim.notify_configs == seeded
    assert len(records) == 150 and len({r["DomainName"] for r in records}) == 150
    assert "rollback" in header["Keep"] and header["Backup"]
    expected = {d: {k: v for k, v in c.items() if v} for d, c in seeded.items()}
    # The state before the write, then where the row was sent and what its write set.
    assert all({k: v for k, v in r.items() if k not in ("RegionId", "Wrote")}
               == expected.get(r["DomainName"], {"DomainName": r["DomainName"]}) for r in records)
    assert all(r["RegionId"] == "cn-shanghai" and r["Wrote"]["NotifyUrl"] == NEW_URL for r in records)
    assert all(r["Wrote"]["NotifyAuthKey"].startswith("fp:") for r in records)  # the new keys are not kept


async def test_a_run_killed_midway_is_rolled_back_without_resuming_it(tmp_path: Path) -> None:
    """Rows in flight at the kill may or may not have landed: the rollback reads each and puts it back."""
    src = tmp_path / "fleet.csv"
    ckpt = tmp_path / "fleet.ckpt"
    async with simulator(latency_ms=60, qps=100) as sim:
        seeded = notify_fleet(sim, src, 150)
        await killed(sim, add_args(src, sim, "--qps", "100", "--checkpoint", str(ckpt)),
                     once=lambda: len(sim.applied) >= 40)
        with Checkpoint.open_readonly(ckpt) as c:
            assert c.counts()["pending"] > 0
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--qps", "1000")
        assert code == 0, err
        assert sim.notify_configs == seeded


@pytest.mark.parametrize("via", ["set-callback-auth", "update-notify-config"])
async def test_a_rotation_is_rolled_back_to_the_old_keys(tmp_path: Path, via: str) -> None:
    fleet = tmp_path / "fleet.txt"
    fleet.write_text("".join(f"r{i}.example.com\n" for i in range(12)))
    async with simulator() as sim:
        for i in range(12):
            domain = f"r{i}.example.com"
            sim.notify_configs[domain] = {"DomainName": domain, "NotifyUrl": OLD_URL, "NotifyReqAuth": "yes",
                                          "NotifyAuthKey": old_key(i)}
            if i % 3:  # a third of the domains had no callback auth before the rotation
                sim.callback_auth[domain] = {"DomainName": domain, "CallbackReqAuth": "yes",
                                             "CallbackAuthKey": old_key(100 + i)}
        seeded = ({d: dict(c) for d, c in sim.notify_configs.items()},
                  {d: dict(c) for d, c in sim.callback_auth.items()})
        keys = tmp_path / "keys-2026-11.csv"
        code, _, err = await bulk("rotate", "--yes", str(fleet), "--keys-out", str(keys), "--via", via,
                                  "--endpoint", sim.url, "--qps", "500", "--quiet")
        assert code == 0, err
        assert (sim.notify_configs, sim.callback_auth) != seeded
        # In the state directory, not beside the keys file.
        ckpt = next(tmp_path.glob("state/keys-2026-11.csv.*/*.ckpt"))
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--qps", "500", "--quiet")
        assert code == 0, out + err
        assert (sim.notify_configs, sim.callback_auth) == seeded
    for path in readable_by_others(tmp_path):
        assert not any(old_key(i).encode() in path.read_bytes() for i in range(112)), path


async def test_no_backup_writes_none_and_leaves_nothing_to_roll_back(tmp_path: Path) -> None:
    src = tmp_path / "fleet.csv"
    ckpt = tmp_path / "fleet.ckpt"
    async with simulator() as sim:
        notify_fleet(sim, src, 10)
        code, _, err = await bulk(*add_args(src, sim, "--qps", "500", "--checkpoint", str(ckpt), "--no-backup"))
        assert code == 0, err
        assert sim.stats()["calls"][DESCRIBE] == {"OK": 8}  # only the read-backs of the eight 409s
        code, _, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url)
    assert not backup_path(ckpt).exists()
    assert code == 2 and "--no-backup" in err


async def test_a_rollback_waits_for_the_run_to_stop(tmp_path: Path) -> None:
    src = domains_csv(tmp_path / "d.csv", 3)
    async with simulator() as sim:
        result = await run_engine(sim, src, qps=500)
        with Checkpoint.open(result.checkpoint):
            code, _, err = await bulk("rollback", str(result.checkpoint), "--endpoint", sim.url)
        calls = sim.stats()["total"]
        assert code == 4 and "in use" in err
        assert calls == sim.stats()["total"]


async def test_the_backup_is_owner_only_from_creation_and_the_checkpoint_holds_no_key(tmp_path: Path) -> None:
    src = tmp_path / "fleet.csv"
    async with simulator() as sim:
        notify_fleet(sim, src, 20)
        old_umask = os.umask(0)  # files created without an explicit mode would be world-readable
        try:
            result = await run_engine(sim, src, overrides={"NotifyUrl": NEW_URL, "NotifyReqAuth": "yes"},
                                      if_exists="update", qps=500)
        finally:
            os.umask(old_umask)
    assert result.exit_code == 0
    backup = backup_path(result.checkpoint)
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert old_key(3).encode() in backup.read_bytes()
    for path in tmp_path.glob("fleet.ckpt*"):
        assert b"Old0" not in path.read_bytes(), path


async def test_a_missing_domain_fails_at_its_backup_read_and_nothing_is_sent(tmp_path: Path) -> None:
    src = domains_csv(tmp_path / "d.csv", 3, extra=["gone.missing.example.com\n"])
    async with simulator(missing_domains=("*.missing.example.com",)) as sim:
        result = await run_engine(sim, src, qps=500)
        calls = sim.stats()["calls"]
    assert result.exit_code == 1 and result.counts["done"] == 3
    with Checkpoint.open_readonly(result.checkpoint) as c:
        row = next(iter(c.rows(states=[RowState.FAILED])))
    assert row["domain"] == "gone.missing.example.com" and row["code"] == "InvalidDomain.NotFound"
    assert row["action"] == DESCRIBE and row["attempts"] == 0 and row["request_id"]
    assert calls[ADD] == {"OK": 3} and calls[DESCRIBE] == {"OK": 3, "InvalidDomain.NotFound": 1}


async def test_domains_changed_without_a_backup_are_named_and_left_as_they_are(tmp_path: Path) -> None:
    """A canary made with --no-backup, the rest with one: the rollback puts back what it can and exits 1."""
    src = tmp_path / "fleet.csv"
    ckpt = tmp_path / "fleet.ckpt"
    async with simulator() as sim:
        seeded = notify_fleet(sim, src, 10)
        code, out, err = await bulk(*add_args(src, sim, "--qps", "500", "--checkpoint", str(ckpt), "--canary", "4",
                                              "--no-backup"))
        assert code == 0, out + err
        code, _, err = await bulk(*add_args(src, sim, "--qps", "500", "--checkpoint", str(ckpt)))
        assert code == 0, err
        changed = {d: dict(c) for d, c in sim.notify_configs.items()}
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--qps", "500", "--quiet")
        held = sim.notify_configs
    first = [f"{KINDS[i]}{i:04d}.example.com" for i in range(4)]
    assert code == 1
    assert "4 domain(s) the run changed have no recorded prior state" in err and all(d in err for d in first)
    assert {d: held.get(d) for d in first} == {d: changed.get(d) for d in first}  # left as the run made them
    assert {d: c for d, c in held.items() if d not in first} == {d: c for d, c in seeded.items() if d not in first}


async def test_a_delete_run_is_rolled_back_through_the_library_by_adding_each_config_again(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.txt"
    async with simulator() as sim:
        seeded = notify_fleet(sim, tmp_path / "fleet.csv", 20)
        fleet.write_text("".join(f"{KINDS[i % 5]}{i:04d}.example.com\n" for i in range(20)))
        deleted = await run_engine(sim, fleet, action="DeleteLiveSnapshotNotifyConfig", overrides={}, qps=500)
        assert deleted.exit_code == 0 and not sim.notify_configs
        with plan_rollback(deleted.checkpoint, tuning=Tuning(qps=500)) as rollback:
            assert rollback.rows == 20 and not rollback.unrecorded
            creds = StaticCredentials(Credentials(TEST_AK_ID, TEST_AK_SECRET))
            async with LiveClient(credentials=creds, endpoint=sim.url) as client:
                result = await run(rollback.options, client=client)
        assert result.exit_code == 0 and sim.notify_configs == seeded
    with Checkpoint.open_readonly(result.checkpoint) as c:
        actions = Counter(r["action"] for r in c.rows())
    # Where there was no config, nothing to do; the others are added again, keys and all.
    assert actions == {"DescribeLiveSnapshotNotifyConfig": 4, "AddLiveSnapshotNotifyConfig": 16}
