"""The rotation's gates over real sockets: receivers must hold the new keys, the apply takes a prepared file only,
a non-interactive apply says so, a serve without a forward target says so, drain answers for every replica and
keeps its counters across a restart."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import bulk

from bulk.callbacks import Receiver, query_drain, sign
from bulk.callbacks.counters import COUNTERS_FILE, CountersError, CountersFile
from bulk.files import write_atomic
from bulk.keys import write_keys_file
from bulk.sim import SimConfig, Simulator

OLD, NEW = "keys-2026-10", "keys-2026-11"
DOMAINS = ("a.example.com", "b.example.com")
OLD_KEYS = {"a.example.com": "aOldKey0123456789abcdef", "b.example.com": "bOldKey0123456789abcdef"}
NEW_KEYS = {d: k.replace("Old", "New") for d, k in OLD_KEYS.items()}
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens


def fleet(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.txt"
    path.write_text("".join(f"{d}\n" for d in DOMAINS))
    return path


def keys_dir(path: Path, *generations: dict[str, str]) -> Path:
    for name, keys in zip((OLD, NEW), generations, strict=False):
        write_keys_file(path / f"{name}.csv", keys)
    return path


@asynccontextmanager
async def receivers(*dirs: Path, token: str | None = None) -> AsyncIterator[list[Receiver]]:
    started = [Receiver([d], poll_interval=0, admin_token=token) for d in dirs]
    try:
        for receiver in started:
            await receiver.start()
        yield started
    finally:
        for receiver in started:
            await receiver.stop()


async def prepared(tmp_path: Path, sim: Simulator) -> tuple[Path, Path]:
    """A keys directory with last month's keys and a prepared rotation to this month's; (keys dir, new file)."""
    keys = keys_dir(tmp_path / "keys", OLD_KEYS)
    new = keys / f"{NEW}.csv"
    code, out, err = await bulk("rotate", str(fleet(tmp_path)), "--keys-out", str(new), "--prepare",
                                "--endpoint", sim.url, "--quiet")
    assert code == 0 and f"apply it with --keys {new}" in out, err
    return keys, new


def simulator() -> Simulator:
    return Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}))


async def test_a_receiver_without_the_new_keys_blocks_the_apply_and_nothing_is_sent(tmp_path: Path) -> None:
    async with simulator() as sim:
        keys, new = await prepared(tmp_path, sim)
        lagging = keys_dir(tmp_path / "other-replica", OLD_KEYS)  # a replica whose volume has not synced yet
        async with receivers(keys, lagging) as (ready, behind):
            assert await ready.reload()
            apply = ["rotate", str(tmp_path / "fleet.txt"), "--keys", str(new), "--endpoint", sim.url, "--quiet",
                     "--require-receivers", ready.admin_url, "--require-receivers", behind.admin_url,
                     "--require-receivers", NOWHERE]
            code, _, err = await bulk(*apply)
            assert code == 2, err
            assert f"receiver {behind.admin_url} has not loaded it (loaded: {OLD})" in err
            assert f"receiver {NOWHERE} cannot be asked" in err
            verdict = err.rsplit("error:", 1)[1]
            assert "2 of 3 receiver(s) have not loaded keys-2026-11.csv" in verdict and "nothing sent" in verdict
            assert behind.admin_url in verdict and NOWHERE in verdict and ready.admin_url not in verdict
            assert sim.arrivals() == [] and sim.stats()["total"] == 0 and sim.callback_auth == {}

            write_atomic(lagging / new.name, new.read_bytes())  # the same file reaches the other replica
            assert await behind.reload()
            code, _, err = await bulk(*apply[:-2])
            assert code == 0, err
            assert "all 2 receiver(s) have loaded keys-2026-11.csv" in err
            assert {d: c["CallbackAuthKey"] for d, c in sim.callback_auth.items()} == dict(
                ready.keyring.generations[1].keys)


async def test_a_receiver_asks_for_its_admin_token_and_gets_it_from_the_environment(tmp_path: Path) -> None:
    async with simulator() as sim:
        keys, new = await prepared(tmp_path, sim)
        async with receivers(keys, token="gate-admin-token") as (receiver,):
            assert await receiver.reload()
            apply = ["rotate", str(tmp_path / "fleet.txt"), "--keys", str(new), "--endpoint", sim.url, "--quiet",
                     "--require-receivers", receiver.admin_url]
            code, _, err = await bulk(*apply, env={k: v for k, v in os.environ.items() if k != "BULK_ADMIN_TOKEN"})
            assert code == 2 and f"receiver {receiver.admin_url} wants its admin token" in err, err
            assert sim.stats()["total"] == 0
            code, _, err = await bulk(*apply, env={**os.environ, "BULK_ADMIN_TOKEN": "gate-admin-token"})
            assert code == 0, err
            assert len(sim.callback_auth) == 2 and "gate-admin-token" not in err


async def test_the_generations_answer_carries_each_files_sha256(tmp_path: Path) -> None:
    import hashlib

    keys = keys_dir(tmp_path / "keys", OLD_KEYS, NEW_KEYS)
    async with receivers(keys) as (receiver,), aiohttp.ClientSession() as session:
        async with session.get(f"{receiver.admin_url}/_bulk/generations") as resp:
            body = await resp.json()
    assert [(g["name"], g["sha256"]) for g in body["generations"]] == [
        (name, hashlib.sha256((keys / f"{name}.csv").read_bytes()).hexdigest()) for name in (OLD, NEW)]


async def test_the_apply_step_takes_a_prepared_file_only_and_never_generates_one(tmp_path: Path) -> None:
    new = tmp_path / "keys" / f"{NEW}.csv"
    async with simulator() as sim:
        code, _, err = await bulk("rotate", str(fleet(tmp_path)), "--keys", str(new), "--yes", "--endpoint", sim.url)
        assert code == 2 and f"no rotation of {new} was prepared" in err and "--prepare" in err, err
        assert not new.exists() and sim.stats()["total"] == 0
        write_keys_file(new, NEW_KEYS)  # a keys file no prepare recorded (by hand, or from another state dir)
        code, _, err = await bulk("rotate", str(fleet(tmp_path)), "--keys", str(new), "--yes", "--endpoint", sim.url)
        assert code == 2 and "was prepared" in err and sim.stats()["total"] == 0
        code, _, err = await bulk("rotate", str(fleet(tmp_path)), "--keys", str(new), "--prepare")
        assert code == 2 and "give it --keys-out, not --keys" in err


async def test_without_a_terminal_an_apply_needs_yes_or_the_receivers(tmp_path: Path) -> None:
    new = tmp_path / "keys" / f"{NEW}.csv"
    async with simulator() as sim:
        code, _, err = await bulk("rotate", str(fleet(tmp_path)), "--keys-out", str(new), "--endpoint", sim.url)
        assert code == 2 and "without a terminal to confirm, give --require-receivers" in err, err
        assert not new.exists() and sim.stats()["total"] == 0  # refused before any key was made
        code, _, err = await bulk("rotate", str(fleet(tmp_path)), "--keys-out", str(new), "--endpoint", sim.url,
                                  "--require-receivers", NOWHERE)
        assert code == 2 and "gates the apply of a prepared keys file" in err and not new.exists()
        code, _, err = await bulk("rotate", str(fleet(tmp_path)), "--keys-out", str(new), "--endpoint", sim.url,
                                  "--yes", "--quiet")
        assert code == 0 and len(sim.callback_auth) == 2, err


def test_on_a_terminal_a_no_sends_nothing_and_leaves_the_rotation_prepared(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from bulk.cli import app, rotation

    monkeypatch.setattr(rotation, "interactive", lambda: True)
    new = tmp_path / "keys" / f"{NEW}.csv"
    # Nothing listens at the endpoint: a call sent would fail the run, and the answer "n" must come first.
    args = ["rotate", str(fleet(tmp_path)), "--keys-out", str(new), "--endpoint", NOWHERE, "--quiet"]
    result = CliRunner().invoke(app, args, input="n\n")
    assert result.exit_code == 2, result.output
    assert f"Apply the keys of {new}" in result.output and "not applied; nothing sent" in result.output
    assert f"Apply later with --keys {new}" in result.output
    # The keys made for the question stay usable: the apply step takes them.
    result = CliRunner().invoke(app, ["rotate", str(tmp_path / "fleet.txt"), "--keys", str(new), "--endpoint",
                                      NOWHERE, "--quiet"], input="n\n")
    assert result.exit_code == 2 and "not applied; nothing sent" in result.output, result.output


async def test_serve_without_a_forward_target_is_refused(tmp_path: Path) -> None:
    keys = keys_dir(tmp_path / "keys", OLD_KEYS)
    code, _, err = await bulk("callback", "serve", "--keys", str(keys), "--port", "0", "--admin-bind", "127.0.0.1:0")
    assert code == 2 and "give --forward URL" in err and "--no-forward" in err, err
    code, _, err = await bulk("callback", "serve", "--keys", str(keys), "--port", "0", "--admin-bind", "127.0.0.1:0",
                              "--forward", "http://127.0.0.1:9/", "--no-forward")
    assert code == 2 and "not both" in err, err


async def test_drained_only_when_every_replica_agrees_verdict_first(tmp_path: Path) -> None:
    now = [2_000_000_000.0]
    keys = keys_dir(tmp_path / "keys", OLD_KEYS, NEW_KEYS)
    quiet, busy = (Receiver([keys], poll_interval=0, clock=lambda: now[0]) for _ in range(2))
    async with quiet, busy, aiohttp.ClientSession() as session:
        now[0] += 7200  # both have watched the old generation for two hours
        async with session.post(f"{busy.url}/cb", data=b'{"DomainName": "a.example.com"}',
                                headers=sign("127.0.0.1", OLD_KEYS["a.example.com"], now=lambda: now[0])) as resp:
            assert resp.status == 200  # one replica still sees a stream on the old key
        drain = ["callback", "drain", "--generation", f"{OLD}.csv", "--window", "1h"]
        code, out, err = await bulk(*drain, "--receiver", quiet.admin_url, "--receiver", busy.admin_url)
        assert code == 1, out + err
        lines = out.splitlines()
        assert lines[0] == f"{OLD}: not drained: 1 domain(s) still on {OLD}"
        assert "a.example.com" not in out and "--verbose lists them" in lines[1]
        code, out, _ = await bulk(*drain, "--receiver", quiet.admin_url, "--receiver", busy.admin_url, "--verbose")
        assert code == 1 and out.splitlines()[1] == f"still on {OLD}: a.example.com (last callback 0 s ago)"
        code, out, err = await bulk(*drain, "--receiver", quiet.admin_url)
        assert code == 0 and out.splitlines()[0] == f"{OLD}: drained at 1 receiver(s), its keys may go", out + err
        code, _, err = await bulk(*drain[:-1], "24", "--receiver", quiet.admin_url)
        assert code == 2 and "with its unit" in err
        code, _, err = await bulk(*drain[:-1], "30m", "--receiver", quiet.admin_url)
        assert code == 2 and "shorter than the snapshot interval (3600 s)" in err


async def test_drain_counters_survive_a_restart_of_the_receiver(tmp_path: Path) -> None:
    t0 = 2_000_000_000.0
    now = [t0]
    keys = keys_dir(tmp_path / "keys", OLD_KEYS, NEW_KEYS)
    state = tmp_path / "state"
    counters = CountersFile.claim(state)
    async with Receiver([keys], poll_interval=0, clock=lambda: now[0], counters=counters) as receiver:
        now[0] = t0 + 100  # a stream still on the old key calls back
        async with aiohttp.ClientSession() as session, session.post(
                f"{receiver.url}/cb", data=b'{"DomainName": "a.example.com"}',
                headers=sign("127.0.0.1", OLD_KEYS["a.example.com"], now=lambda: now[0])) as resp:
            assert resp.status == 200
        with pytest.raises(CountersError, match="another receiver keeps its counters in"):
            CountersFile.claim(state)
        now[0] = t0 + 3000  # stopped after watching for 3000 s
    counters.release()
    assert (state / COUNTERS_FILE).stat().st_mode & 0o777 == 0o600

    now[0] = t0 + 3060  # back a minute later: the minute it was down does not count as watched
    counters = CountersFile.claim(state)
    async with Receiver([keys], poll_interval=0, clock=lambda: now[0], counters=counters) as again:
        report = await query_drain([again.admin_url], generation=OLD, window=3600)
        assert report.watched == 3000 and report.still_on == {"a.example.com": 2960.0} and not report.drained
        now[0] = t0 + 3760  # 700 s after the restart: a receiver that forgot would wait till t0 + 6660
        report = await query_drain([again.admin_url], generation=OLD, window=3600)
        assert report.drained and report.watched == 3700 and report.still_on == {}
        assert again.stats()["accepted"] == {OLD: 1, NEW: 0}
    counters.release()

    now[0] += 3600  # down for an hour: it may have missed anything, so it watches afresh, its history kept
    async with Receiver([keys], poll_interval=0, clock=lambda: now[0], counters=CountersFile.claim(state)) as late:
        report = await query_drain([late.admin_url], generation=OLD, window=3600)
        assert report.watched == 0 and not report.drained and late.stats()["accepted"] == {OLD: 1, NEW: 0}
