"""`bulk rotate` against the simulator: the keys file is the truth, before, during and after a crash."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import bulk, start_bulk

from bulk.keys import ALPHABET, read_keys_file
from bulk.sim import SimConfig, Simulator


async def test_rotation_survives_kill_9_and_applies_exactly_the_keys_file(tmp_path: Path) -> None:
    domains = [f"r{i:03d}.example.com" for i in range(300)]
    src = tmp_path / "domains.txt"
    src.write_text("# fleet\n" + "\n".join(domains) + "\n")
    keys_path = tmp_path / "keys-2026-11.csv"
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=200, latency_ms=50, seed=5,
                       error_rate=0.05, fault_kinds=("internal_after", "drop"))
    async with Simulator(config) as sim:
        args = ["rotate", "--yes", str(src), "--keys-out", str(keys_path), "--endpoint", sim.url, "--qps", "200",
                "--quiet"]
        proc = await start_bulk(*args)
        while len(sim.callback_auth) < 60:
            await asyncio.sleep(0.05)
        assert keys_path.exists()
        before = keys_path.read_bytes()
        proc.kill()
        assert await proc.wait() == -signal.SIGKILL
        code, _, err = await bulk(*args)
        assert code == 0, err
        column, keys = read_keys_file(keys_path)
        assert keys_path.read_bytes() == before  # resuming never re-keys
        assert column == "CallbackAuthKey" and list(keys) == domains
        assert {d: c["CallbackAuthKey"] for d, c in sim.callback_auth.items()} == keys
        assert all(c["CallbackReqAuth"] == "yes" for c in sim.callback_auth.values())
    assert oct(keys_path.stat().st_mode & 0o777) == "0o600"
    assert len(set(keys.values())) == 300
    assert all(len(k) == 32 and set(k) <= set(ALPHABET) for k in keys.values())
    for key in list(keys.values())[:50]:
        assert key not in err


async def test_changed_keys_file_is_refused_on_resume(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_text("DomainName\na.example.com\nb.example.com\n")
    keys_path = tmp_path / "keys.csv"
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        args = ["rotate", "--yes", str(src), "--keys-out", str(keys_path), "--endpoint", sim.url, "--quiet",
                "--key-length", "20"]
        code, _, err = await bulk(*args)
        assert code == 0, err
        text = keys_path.read_text()
        keys_path.write_text(text.replace(text.splitlines()[1].split(",")[1], "X" * 20))
        code, _, err = await bulk(*args)
        assert code == 2 and "changed" in err


async def test_rotation_via_update_keeps_each_notify_url(tmp_path: Path) -> None:
    src = tmp_path / "d.txt"
    src.write_text("a.example.com\nb.example.com\nnone.example.com\n")
    keys_path = tmp_path / "keys.csv"
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        for d in ("a.example.com", "b.example.com"):
            sim.notify_configs[d] = {"DomainName": d, "NotifyUrl": f"https://{d[0]}.cb.example.com/x",
                                     "NotifyReqAuth": "no", "NotifyAuthKey": ""}
        code, out, err = await bulk("rotate", "--yes", str(src), "--keys-out", str(keys_path), "--endpoint", sim.url,
                                    "--via", "update-notify-config", "--same-key")
        _, keys = read_keys_file(keys_path)
        assert code == 1, err  # none.example.com has no config to keep
        for d in ("a.example.com", "b.example.com"):
            config = sim.notify_configs[d]
            assert config["NotifyUrl"] == f"https://{d[0]}.cb.example.com/x"
            assert config["NotifyReqAuth"] == "yes" and config["NotifyAuthKey"] == keys[d]
        assert "none.example.com" not in sim.notify_configs
    assert len(set(keys.values())) == 1
    assert "NoCurrentConfig" in err


async def test_prepare_writes_keys_first_and_sends_nothing(tmp_path: Path) -> None:
    src = tmp_path / "d.txt"
    src.write_text("a.example.com\nb.example.com\n")
    keys_path = tmp_path / "keys.csv"
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET})) as sim:
        args = ["rotate", "--yes", str(src), "--keys-out", str(keys_path), "--endpoint", sim.url, "--quiet"]
        code, out, err = await bulk(*args, "--prepare")
        assert code == 0, err
        assert sim.stats()["total"] == 0 and keys_path.exists()
        prepared = keys_path.read_bytes()
        code, _, err = await bulk(*args)
        assert code == 0, err
        _, keys = read_keys_file(keys_path)
        assert keys_path.read_bytes() == prepared
        assert {d: c["CallbackAuthKey"] for d, c in sim.callback_auth.items()} == keys
