"""A rollback restores exactly the state just before our write, or says why not, over real sockets.

Each test is one way a backup used to lie: a stale record kept across a
resume, another client's change clobbered, a lost backup file replaced by
our own changes, a forward run racing its rollback, the wrong region, and a
domain left with no config by a Delete-then-Add whose Add failed.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import (
    KINDS,
    add_args,
    bulk,
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

import bulk.backup as backup_module
from bulk.backup import Backup, new_identity
from bulk.checkpoint import Checkpoint, RowState
from bulk.credentials import fingerprint
from bulk.files import LocalFault
from bulk.jobs import apply as apply_module
from bulk.paths import backup_path, rollback_checkpoint, rollback_input
from bulk.sim import Simulator

THIRD_URL = "https://cb.example.com/third-party"
SETS = {"NotifyUrl": NEW_URL, "NotifyReqAuth": "yes"}


def domain(i: int) -> str:
    return f"{KINDS[i % 5]}{i:04d}.example.com"


def rollback_rows(ckpt: Path) -> dict[str, dict[str, object]]:
    with Checkpoint.open_readonly(rollback_checkpoint(ckpt)) as c:
        return {str(r["domain"]): dict(r) for r in c.rows()}


def _claimed_by_a_dead_run(ckpt: Path, domain: str) -> int:
    """Leave ``domain``'s row as a run that claimed it and died leaves it; the backup's mark at that claim."""
    mark = len(backup_path(ckpt).read_bytes().splitlines()) - 1  # the records on disk (the first line is the id)
    with Checkpoint.open(ckpt) as c:
        line = next(r["line"] for r in c.rows() if r["domain"] == domain)
        c.claim([(line, False)], mark=mark)
    return mark


async def _refused_then_changed_by_another(
    tmp_path: Path, sim: Simulator
) -> tuple[Path, Path, str, dict[str, str], dict[str, dict[str, str]]]:
    """A run refused by ConfigAlreadyExists (nothing written, the domain recorded); another client's config
    for it; and the fleet as seeded."""
    src, ckpt = tmp_path / "fleet.csv", tmp_path / "fleet.ckpt"
    seeded = notify_fleet(sim, src, 10)
    first = add_args(src, sim, "--checkpoint", str(ckpt))
    first[first.index("--if-exists") + 1] = "fail"
    code, _, err = await bulk(*first)
    assert code == 1, err  # the domains with another config: ConfigAlreadyExists, nothing written to them
    url_domain = domain(2)  # seeded with another URL: recorded, refused, not written
    assert sim.notify_configs[url_domain] == seeded[url_domain]
    return src, ckpt, url_domain, {**seeded[url_domain], "NotifyUrl": THIRD_URL}, seeded


@pytest.mark.parametrize(("dead_run", "to_ours"), [(False, False), (True, False), (True, True)],
                         ids=["resumed", "claimed-by-a-dead-run", "claimed-by-a-dead-run-then-set-as-ours"])
async def test_a_backup_is_read_again_when_the_earlier_write_provably_did_not_land(
    tmp_path: Path, dead_run: bool, to_ours: bool
) -> None:
    """The issue's scenario: a conflict records A, another client sets B, a resume sets C: rollback gives B back.

    Also when a run killed after claiming the row, before its read, came in between: no record since the
    claim proves it sent nothing, so the resume records the domain again (chaos seed 57); even when the other
    client set the very config the row sets, so that the resume sends nothing: the rollback leaves theirs."""
    async with simulator() as sim:
        src, ckpt, url_domain, third, seeded = await _refused_then_changed_by_another(tmp_path, sim)
        if to_ours:
            third = {**third, "NotifyUrl": NEW_URL}
        if dead_run:
            _claimed_by_a_dead_run(ckpt, url_domain)
        sim.notify_configs[url_domain] = dict(third)  # another team changes it meanwhile
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--retry-failed"))
        assert code == 0, err
        assert sim.notify_configs[url_domain]["NotifyUrl"] == NEW_URL
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--quiet")
        assert code == 0, out + err
        assert sim.notify_configs[url_domain] == third  # the state right before our write, not the first one read
        assert {d: c for d, c in sim.notify_configs.items() if d != url_domain} == \
            {d: c for d, c in seeded.items() if d != url_domain}


async def test_a_row_a_dead_run_recorded_after_its_claim_keeps_that_record(tmp_path: Path) -> None:
    """Killed after the record, with its write landed: the resume must not record our own change as the prior
    state; the rollback gives back what the dead run recorded."""
    async with simulator() as sim:
        src, ckpt, url_domain, third, _ = await _refused_then_changed_by_another(tmp_path, sim)
        _claimed_by_a_dead_run(ckpt, url_domain)
        lines = backup_path(ckpt).read_bytes().splitlines()
        earlier = orjson.loads(next(x for x in lines[1:] if orjson.loads(x)["DomainName"] == url_domain))
        with backup_path(ckpt).open("ab") as f:  # the dead run's record: the state it read before its write
            f.write(orjson.dumps({**earlier, "NotifyUrl": THIRD_URL}) + b"\n")
        ours = {**third, "NotifyUrl": NEW_URL}
        sim.notify_configs[url_domain] = dict(ours)  # its write landed
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--retry-failed"))
        assert code == 0, err
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--quiet")
        assert code == 0, out + err
        assert sim.notify_configs[url_domain] == third


async def test_a_dead_runs_record_whose_write_was_never_sent_is_not_restored_over_another_clients_change(
    tmp_path: Path,
) -> None:
    """Killed after the row's record, before its write went out (waiting for its admission): the record is past
    the claim's mark, so the row may have been written; another client changes the domain meanwhile. The resume
    reads a state that is neither the recorded one nor ours, records it again before its write, and the
    rollback gives the other client's change back, not the dead run's record."""
    src, ckpt = tmp_path / "fleet.csv", tmp_path / "fleet.ckpt"
    async with simulator() as sim:
        seeded = notify_fleet(sim, src, 10)
        first = add_args(src, sim, "--checkpoint", str(ckpt))
        first[first.index("--if-exists") + 1] = "fail"
        code, _, err = await bulk(*first)
        assert code == 1, err  # ConfigAlreadyExists: recorded, nothing written
        url_domain = domain(2)
        lines = backup_path(ckpt).read_bytes().splitlines()
        with Checkpoint.open(ckpt) as c:  # the dead run: the claim, then the record of what it read
            line = next(r["line"] for r in c.rows() if r["domain"] == url_domain)
            c.claim([(line, False)], mark=len(lines) - 1)
        earlier = next(x for x in lines[1:] if orjson.loads(x)["DomainName"] == url_domain)
        with backup_path(ckpt).open("ab") as f:
            f.write(earlier + b"\n")  # ... and its write never went out
        third = {**seeded[url_domain], "NotifyUrl": THIRD_URL}
        sim.notify_configs[url_domain] = dict(third)  # another client, between the runs
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--retry-failed"))
        assert code == 0, err
        assert sim.notify_configs[url_domain]["NotifyUrl"] == NEW_URL
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--quiet")
        assert code == 0, out + err
        assert sim.notify_configs[url_domain] == third


async def test_more_unknown_rows_than_a_claim_chunk_are_each_sent_once_and_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows whose read was refused (unknown, nothing sent), more than a claim chunk of them. The resume sends
    them first, then its pass over pending and sending rows met the ones already claimed ('sending' now) and
    sent them a second time, taken for never written (no record of theirs synced yet): that second send read
    and recorded our own change as the prior state, and the rollback left the domain as we set it."""
    dispatched: collections.Counter[int] = collections.Counter()
    run = apply_module.ApplyJob.run

    async def counting(self: apply_module.ApplyJob, row: Any, calls: Any) -> Any:
        dispatched[row.line] += 1
        return await run(self, row, calls)

    src, ckpt = tmp_path / "fleet.csv", tmp_path / "fleet.ckpt"
    async with simulator() as sim:
        seeded = notify_fleet(sim, src, 60)
        sim.config.forbidden_actions = ("DescribeLiveSnapshotNotifyConfig",)
        await run_engine(sim, src, checkpoint=ckpt, if_exists="update", overrides=SETS, max_failure_rate=1.0,
                         qps=500)
        with Checkpoint.open_readonly(ckpt) as c:
            assert c.counts()[RowState.UNKNOWN] == 60  # each read refused: nothing was sent
        sim.config.forbidden_actions = ()
        monkeypatch.setattr(apply_module.ApplyJob, "run", counting)
        result = await run_engine(sim, src, checkpoint=ckpt, if_exists="update", overrides=SETS, qps=500)
        assert result.counts[RowState.DONE] == 60, result.counts
        assert [line for line, n in dispatched.items() if n > 1] == []
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--quiet", "--qps", "500")
        assert code == 0, out + err
        assert sim.notify_configs == seeded


@pytest.mark.parametrize("cut", [0, 10], ids=["nothing-written", "cut-short"])
async def test_a_record_after_a_failed_sync_never_passes_the_records_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: int
) -> None:
    """A sync that fails drops its records; a row recording after it (its read was in flight) used to have its
    own synced and counted with them: the checkpoint then counted more records than the file holds, and every
    resume was refused (BackupError, "not the whole backup"); the marks claims carry passed the file too. A
    failed write cut short mid-line, with a record appended after it, was a broken line in the middle."""
    path, kept = tmp_path / "c.backup.jsonl", {}
    identity = new_identity()
    backup = Backup.open(path, complete=True, identity=identity, claimed=False, keep=kept.update)
    real = backup_module._write_and_sync

    def full(fd: int, data: bytes) -> None:
        os.write(fd, data[:cut])
        raise OSError(errno.ENOSPC, "No space left on device")

    state, wrote = {"NotifyUrl": "https://a.example.com/x"}, {"NotifyUrl": NEW_URL}
    await backup.record("a.example.com", state, region=None, wrote=wrote)
    monkeypatch.setattr(backup_module, "_write_and_sync", full)
    with pytest.raises(LocalFault):
        await backup.record("b.example.com", state, region=None, wrote=wrote)
    monkeypatch.setattr(backup_module, "_write_and_sync", real)  # the disk has room again
    with contextlib.suppress(LocalFault):  # a row whose read was in flight (the run is stopping)
        await backup.record("c.example.com", state, region=None, wrote=wrote)
    on_disk = path.read_bytes().count(b"\n") - 1  # whole records (the first line is the id)
    assert backup.mark == on_disk
    await backup.close()
    assert kept["records"] == on_disk
    again = Backup.open(path, complete=True, identity=kept, claimed=True, keep=kept.update)  # not refused
    assert again.mark == on_disk and again.written_since("a.example.com", 0)
    await again.close()


async def test_a_field_the_run_did_not_set_changed_since_is_a_conflict_too(tmp_path: Path) -> None:
    """An Update set only NotifyUrl; another client then changed the key: restoring the record would undo
    their change, so the domain is left as it is (conflict, exit 1), and --force restores it anyway."""
    d = "a.example.com"
    old = {"DomainName": d, "NotifyUrl": OLD_URL, "NotifyReqAuth": "yes", "NotifyAuthKey": "Old00001abcdefghijklmn"}
    src, ckpt = tmp_path / "f.csv", tmp_path / "f.ckpt"
    src.write_text(f"DomainName\n{d}\n")
    async with simulator() as sim:
        sim.notify_configs[d] = dict(old)
        code, out, err = await bulk("run", str(src), "--action", "UpdateLiveSnapshotNotifyConfig", "--set",
                                    f"NotifyUrl={NEW_URL}", "--endpoint", sim.url, "--quiet", "--checkpoint", str(ckpt))
        assert code == 0, out + err
        theirs = {**old, "NotifyUrl": NEW_URL, "NotifyAuthKey": "Their0001abcdefghijklm"}
        sim.notify_configs[d] = dict(theirs)  # another client, another field
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--quiet")
        assert code == 1, out + err
        assert sim.notify_configs[d] == theirs
        row = rollback_rows(ckpt)[d]
        assert row["state"] == "conflict" and "NotifyAuthKey: the run did not set it" in str(row["message"])
        assert "Their0001" not in str(row["message"]) and "Old00001" not in str(row["message"])
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--quiet", "--force")
        assert code == 0, out + err
        assert sim.notify_configs[d] == old


async def test_a_domain_changed_since_our_write_is_left_as_a_conflict_and_force_restores_it(tmp_path: Path) -> None:
    src, ckpt = tmp_path / "fleet.csv", tmp_path / "fleet.ckpt"
    async with simulator() as sim:
        seeded = notify_fleet(sim, src, 10)
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt)))
        assert code == 0, err
        changed, theirs = domain(3), "Their0003abcdefghijklmn"  # a domain of kind "key": it had an old key
        sim.notify_configs[changed] = {**sim.notify_configs[changed], "NotifyAuthKey": theirs}
        now = dict(sim.notify_configs[changed])
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--report",
                                    str(tmp_path / "rollback.csv"))
        assert code == 1, out + err
        assert sim.notify_configs[changed] == now  # another client's change is not clobbered
        assert {d: c for d, c in sim.notify_configs.items() if d != changed} == \
            {d: c for d, c in seeded.items() if d != changed}
        row = rollback_rows(ckpt)[changed]
        assert row["state"] == "conflict" and row["code"] == "ChangedSince"
        message = str(row["message"])
        # Both values, each key as its fingerprint and never itself.
        assert fingerprint(new_key(3)) in message and fingerprint(theirs) in message and "NotifyAuthKey" in message
        assert "1 domain(s) were changed by another client" in err and "--force" in err
        report = (tmp_path / "rollback.csv").read_text()
        for text in (out, err, report, message):
            assert theirs not in text and new_key(3) not in text and old_key(3) not in text
        with Checkpoint.open_readonly(rollback_checkpoint(ckpt)) as c:
            assert c.counts()["conflict"] == 1
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--force", "--quiet")
        assert code == 0, out + err
        assert sim.notify_configs == seeded
        assert rollback_rows(ckpt)[changed]["state"] == "done"


async def test_a_lost_backup_file_is_refused_before_any_call(tmp_path: Path) -> None:
    """A canary's backup deleted (or swapped) before the resume:
    the resume and the rollback both exit 2, sending nothing.
    """
    src, ckpt = tmp_path / "fleet.csv", tmp_path / "fleet.ckpt"
    async with simulator() as sim:
        seeded = notify_fleet(sim, src, 20)
        code, out, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--canary", "5"))
        assert code == 0, out + err
        code, out, _ = await bulk("status", str(ckpt), "--json")
        assert orjson.loads(out)["backup"] == {"path": str(backup_path(ckpt)), "state": "kept", "records": 5}
        saved = backup_path(ckpt).read_bytes()
        backup_path(ckpt).unlink()
        calls = sim.stats()["total"]
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt)))
        assert code == 2 and "backup file" in err and "missing" in err, err
        code, _, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url)
        assert code == 2 and "missing" in err, err
        code, out, _ = await bulk("status", str(ckpt))
        assert "missing" in out, out
        # Another run's backup in its place is refused just the same.
        other = tmp_path / "other.ckpt"
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(other), "--canary", "5"))
        assert code == 0, err
        backup_path(ckpt).write_bytes(backup_path(other).read_bytes())
        calls = sim.stats()["total"]
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt)))
        assert code == 2 and "is not the backup" in err, err
        code, _, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url)
        assert code == 2 and "is not the backup" in err, err
        assert sim.stats()["total"] == calls
        # Its own file back (even cut short of its last record, as a crash leaves it, it is refused: counted 5).
        backup_path(ckpt).write_bytes(saved[: saved.rindex(b"\n", 0, len(saved) - 1) + 1])
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt)))
        assert code == 2 and "holds 4 record(s)" in err, err
        backup_path(ckpt).write_bytes(saved)
        backup_path(ckpt).chmod(0o600)
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt)))
        assert code == 0, err
        code, _, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--quiet")
        assert code == 0, err
        assert sim.notify_configs == seeded


async def test_a_rollback_holds_the_run_and_a_later_forward_run_is_refused(tmp_path: Path) -> None:
    """The CronJob's forward retry during the rollback waits (exit 4), and after it is refused (exit 2)."""
    src, ckpt = tmp_path / "fleet.csv", tmp_path / "fleet.ckpt"
    async with simulator(latency_ms=40) as sim:
        seeded = notify_fleet(sim, src, 40)
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--qps", "500", "--canary", "30"))
        assert code == 0, err
        before = dict(sim.applied)
        rollback = await start_bulk("rollback", str(ckpt), "--endpoint", sim.url, "--qps", "6", "--quiet")
        await wait_until(lambda: sum(sim.applied.values()) - sum(before.values()) >= 3)
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--qps", "500"))
        assert rollback.returncode is None  # still rolling back
        assert code == 4 and "in use" in err, err
        out, err_b = await rollback.communicate()
        assert rollback.returncode == 0, (out + err_b).decode()
        await settle(sim)
        assert sim.notify_configs == seeded  # not split between the two
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--qps", "500"))
        assert code == 2 and "rolled back" in err and "new --checkpoint" in err, err
        assert sim.notify_configs == seeded
        code, out, _ = await bulk("status", str(ckpt))
        assert "rolled back by" in out
    # The rollback read a frozen copy, owner-only, never the run's own backup.
    frozen = rollback_input(ckpt)
    assert stat.S_IMODE(frozen.stat().st_mode) == 0o600
    with Checkpoint.open_readonly(rollback_checkpoint(ckpt)) as c:
        assert (c.meta() or {})["input_path"] == str(frozen.resolve())
    assert len(frozen.read_bytes().splitlines()) == 30


async def test_rollback_and_its_verify_go_to_the_region_each_row_was_sent_to(tmp_path: Path) -> None:
    src, ckpt = tmp_path / "fleet.csv", tmp_path / "fleet.ckpt"
    regions = (("none*", "cn-hangzhou"), ("*.example.com", "cn-beijing"))
    async with simulator(domain_regions=regions) as sim:
        seeded = notify_fleet(sim, src, 10)
        # The rows of kind "none" name their region in a column; the others go to the run's --region.
        lines = src.read_text().splitlines()
        src.write_text("\n".join([lines[0] + ",RegionId", *(f"{line},{'cn-hangzhou' if line.startswith('none') else ''}"
                                                              for line in lines[1:])]) + "\n")
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--region", "cn-beijing"))
        assert code == 0, err
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--quiet")
        assert code == 0, out + err
        assert sim.notify_configs == seeded
        code, out, err = await bulk("verify", str(rollback_checkpoint(ckpt)), "--endpoint", sim.url, "--quiet")
        assert code == 0 and "10 in sync" in out, out + err


async def test_a_delete_then_add_whose_add_fails_reports_the_domain_left_without_config(tmp_path: Path) -> None:
    src, ckpt = tmp_path / "fleet.csv", tmp_path / "fleet.ckpt"
    async with simulator() as sim:
        seeded = notify_fleet(sim, src, 5)  # one of each kind; "off" (auth off, no key) needs Delete then Add back
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt)))
        assert code == 0, err
        sim.config.forbidden_actions = ("AddLiveSnapshotNotifyConfig",)  # a policy that lost the Add
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url)
        assert code == 1, out + err
        off = domain(4)
        assert off not in sim.notify_configs  # deleted, not added back
        row = rollback_rows(ckpt)[off]
        assert row["state"] == "failed" and row["code"] == "NoConfigLeft", row
        assert f"NotifyUrl={OLD_URL}" in str(row["message"]) and "NotifyReqAuth=no" in str(row["message"])
        assert "no config now" in str(row["message"]) and "Forbidden.RAM" in str(row["message"])
        assert "1 domain(s) were deleted and could not be given their config back" in err and off in err
        sim.config.forbidden_actions = ()
        code, _, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--retry-failed", "--quiet")
        assert code == 0, err
        assert sim.notify_configs == seeded


async def test_status_says_whether_a_run_still_has_its_backup(tmp_path: Path) -> None:
    src, ckpt = tmp_path / "fleet.csv", tmp_path / "fleet.ckpt"
    async with simulator() as sim:
        notify_fleet(sim, src, 5)
        loud = [a for a in add_args(src, sim, "--checkpoint", str(ckpt)) if a != "--quiet"]
        code, _, err = await bulk(*loud)
        assert code == 0 and "keep it for as long as the run may have to be rolled back" in err, err
        code, out, _ = await bulk("status", str(ckpt))
        assert f"{backup_path(ckpt)}: 5 domain(s); keep it while the run may have to be rolled back" in out, out
        bare = tmp_path / "bare.ckpt"
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(bare), "--no-backup"))
        assert code == 0, err
        code, out, _ = await bulk("status", str(bare), "--json")
        assert orjson.loads(out)["backup"]["state"] == "none"


@pytest.mark.parametrize("landed", [True, False], ids=["ours-landed-then-url-moved", "never-landed-theirs-alike"])
async def test_a_domain_recorded_again_gives_back_what_our_write_replaced_and_nothing_of_theirs(
    tmp_path: Path, landed: bool
) -> None:
    """A dead run recorded the domain, then (``landed``) its write landed: our new key; another client then
    changed only the NotifyUrl. The resume reads neither the record nor the row's change and records the
    domain again: that state holds their URL and our new key, and the rollback must give back their URL with
    the old key, not leave our key in place and call it done. Where the write never landed, another client's
    whole config that merely shares our NotifyReqAuth=yes is theirs alike, and comes back as it was."""
    async with simulator() as sim:
        src, ckpt = tmp_path / "fleet.csv", tmp_path / "fleet.ckpt"
        seeded = notify_fleet(sim, src, 10)
        first = add_args(src, sim, "--checkpoint", str(ckpt))
        first[first.index("--if-exists") + 1] = "fail"
        code, _, err = await bulk(*first)
        assert code == 1, err  # ConfigAlreadyExists: recorded, nothing written
        # "key": the row's URL and an old key; "off": another URL, auth off, no key
        target = domain(3) if landed else domain(4)
        _claimed_by_a_dead_run(ckpt, target)
        lines = backup_path(ckpt).read_bytes().splitlines()
        earlier = next(x for x in lines[1:] if orjson.loads(x)["DomainName"] == target)
        with backup_path(ckpt).open("ab") as f:  # the dead run's record, before its write
            f.write(earlier + b"\n")
        if landed:
            sim.notify_configs[target] = {**seeded[target], "NotifyAuthKey": new_key(3), "NotifyUrl": THIRD_URL}
            theirs = {**seeded[target], "NotifyUrl": THIRD_URL}  # their URL, the key as before our write
        else:
            theirs = {**seeded[target], "NotifyUrl": THIRD_URL, "NotifyReqAuth": "yes",
                      "NotifyAuthKey": "Their0004abcdefghijklm"}
            sim.notify_configs[target] = dict(theirs)
        code, _, err = await bulk(*add_args(src, sim, "--checkpoint", str(ckpt), "--retry-failed"))
        assert code == 0, err
        assert sim.notify_configs[target]["NotifyUrl"] == NEW_URL
        code, out, err = await bulk("rollback", str(ckpt), "--endpoint", sim.url, "--quiet")
        assert code == 0, out + err
        assert sim.notify_configs[target] == theirs
