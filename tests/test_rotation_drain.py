"""A key rotation under live streams, end to end: simulator streams -> receiver, rotated by `bulk rotate`.

The documented flow (prepare, give the receiver the new keys, apply, verify,
drain, and only then retire the old keys) rejects no callback at all. The
same rotation with the old keys retired right after `verify` rejects the
callbacks of streams that were not pushed again yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import bulk

from bulk.actions import resolve
from bulk.callbacks import DrainReport, Receiver, query_drain
from bulk.keys import generate_keys, write_keys_file
from bulk.paths import default_checkpoint
from bulk.sim import SimConfig, Simulator, StreamsConfig

DOMAINS = [f"live{i:02d}.example.com" for i in range(16)]
OLD, NEW = "keys-2026-10", "keys-2026-11"


@dataclass
class Fleet:
    sim: Simulator
    receiver: Receiver
    keys: Path
    domains_file: Path

    def rotate_args(self, *more: str, keys: str = "--keys-out") -> list[str]:
        return ["rotate", str(self.domains_file), keys, str(self.keys / f"{NEW}.csv"),
                "--endpoint", self.sim.url, "--qps", "500", "--quiet", *more]

    async def until(self, check: str, condition: object, limit: float = 10.0) -> None:
        for _ in range(int(limit / 0.02)):
            if condition():  # type: ignore[operator]
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"timed out waiting for {check}: {self.receiver.stats()}")

    async def rotate_and_verify(self) -> float:
        """Prepare, apply and verify; returns the loop time at which the apply began."""
        code, _, err = await bulk(*self.rotate_args("--prepare"))
        assert code == 0, err
        # The receiver picks the new keys file up by itself (it polls for changes).
        await self.until("the new generation", lambda: self.receiver.keyring.names == (OLD, NEW))
        applied_at = asyncio.get_running_loop().time()
        # The apply step as in production: the prepared file only, once the receiver has loaded it.
        code, _, err = await bulk(*self.rotate_args("--require-receivers", self.receiver.admin_url, keys="--keys"))
        assert code == 0, err
        assert {d: c["CallbackAuthKey"] for d, c in self.sim.callback_auth.items()} == {
            d: k for d, k in self.receiver.keyring.generations[1].keys.items()}
        ckpt = default_checkpoint(self.keys / f"{NEW}.csv", resolve("SetSnapshotCallbackAuth"))
        code, out, err = await bulk("verify", str(ckpt), "--endpoint", self.sim.url, "--qps", "500", "--quiet")
        assert code == 0 and f"{len(DOMAINS)} in sync" in out, out + err
        return applied_at

    async def retire_old(self) -> None:
        (self.keys / f"{OLD}.csv").unlink()
        await self.until("the old generation to go", lambda: self.receiver.keyring.names == (NEW,))


@asynccontextmanager
async def fleet(tmp_path: Path, *, uptime_mean: float) -> AsyncIterator[Fleet]:
    """16 domains signed with keys-2026-10, 20 live streams on them, a receiver holding that generation."""
    keys = tmp_path / "keys"
    old_keys = generate_keys(DOMAINS)
    write_keys_file(keys / f"{OLD}.csv", old_keys)
    domains_file = tmp_path / "fleet.txt"
    domains_file.write_text("\n".join(DOMAINS) + "\n")
    streams = StreamsConfig(count=20, uptime_mean=uptime_mean, interval=0.05, seed=2026)
    async with Receiver([keys], poll_interval=0.05) as receiver:
        sim = Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=500, streams=streams))
        # The fleet as it is today: every domain's callbacks go to the receiver, signed with the old keys.
        for domain, key in old_keys.items():
            sim.notify_configs[domain] = {"DomainName": domain, "NotifyUrl": f"{receiver.url}/snapshots",
                                          "NotifyReqAuth": "no", "NotifyAuthKey": ""}
            sim.callback_auth[domain] = {"DomainName": domain, "CallbackReqAuth": "yes", "CallbackAuthKey": key}
        async with sim:
            state = Fleet(sim, receiver, keys, domains_file)
            await state.until("every domain on the old keys", lambda: len(receiver.stats()["domains"]) == len(DOMAINS))
            yield state


async def test_the_documented_rotation_rejects_no_callback(tmp_path: Path) -> None:
    async with fleet(tmp_path, uptime_mean=0.4) as f:
        applied_at = await f.rotate_and_verify()
        # The window reaches back to the apply, however long the apply and verify took on a busy
        # machine: streams up then signed with the old keys, so the first answer cannot be "drained".
        window = 1.5 + asyncio.get_running_loop().time() - applied_at
        answers: list[DrainReport] = []
        while not answers or not answers[-1].drained:
            assert len(answers) < 40 * (window + 5), answers[-1]  # polled every 50 ms or more
            answers.append(await query_drain([f.receiver.admin_url], generation=OLD, window=window))
            await asyncio.sleep(0.05)
        await f.retire_old()  # at once: the drain's answer is all that protects the streams still up
        # Right after verify, streams pushed before the rotation still signed with the old keys.
        assert answers[0].still_on and not answers[0].drained
        await asyncio.sleep(0.3)  # traffic goes on with the new keys alone
    stats = f.receiver.stats()
    streams = f.sim.stats()["streams"]
    assert stats["rejected"] == {}
    assert stats["accepted"][NEW] > 0 and stats["domains"].keys() == set(DOMAINS)
    assert all(NEW in seen for seen in stats["domains"].values())
    assert sum(g.get(OLD, {}).get("count", 0) for g in stats["domains"].values()) > 0
    # Every callback the streams sent was answered, and accepted.
    assert streams["sent"] == streams["answers"]["200"] > 0 and streams["errors"] == 0


async def test_retiring_the_old_keys_right_after_verify_rejects_callbacks(tmp_path: Path) -> None:
    # Streams stay up for seconds (mean 5 s): most outlive the apply and the verify, as 24/7 channels would.
    async with fleet(tmp_path, uptime_mean=5.0) as f:
        await f.rotate_and_verify()
        await f.retire_old()
        await f.until("a rejection", lambda: f.receiver.stats()["rejected"], limit=5)
    stats = f.receiver.stats()
    assert stats["rejected"]["signature_matches_no_key"] > 0
    assert f.sim.stats()["streams"]["answers"]["401"] == stats["rejected"]["signature_matches_no_key"]
