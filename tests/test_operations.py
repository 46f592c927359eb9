"""What an operator does around a run: look at it while it runs, start it twice, fill a disk, mistype a path.

    .venv/bin/python -m pytest -q -p no:randomly tests/test_operations.py

Real processes of ``bulk`` against the simulator over loopback sockets, and
real full file systems: a 64 KiB tmpfs (CI runs as root, so ``mount`` works
and file modes cannot make a path unwritable; an unwritable path here is one
under a regular file, which no one can create a directory in).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from support import ADD, URL, bulk, domains_csv, simulator, start_bulk

from bulk.checkpoint import Checkpoint
from bulk.paths import backup_path
from bulk.sim import Simulator

DESCRIBE = "DescribeLiveSnapshotNotifyConfig"
STATES = ("done", "skipped", "failed", "invalid", "pending", "sending")
#: the tmpfs a "disk" is made of; its pages are what a write can run out of
DISK = 64 * 1024
PAGE = resource.getpagesize()


@pytest.fixture(autouse=True)
def _debug_logs_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An internal error writes a debug log to the temporary directory: this test's own, not /tmp.
    monkeypatch.setenv("TMPDIR", str(tmp_path))


def run_args(src: Path, sim: Simulator, ckpt: Path, *more: str) -> list[str]:
    return ["run", str(src), "--action", ADD, "--set", f"NotifyUrl={URL}", "--endpoint", sim.url,
            "--checkpoint", str(ckpt), "--quiet", *more]


def changed(sim: Simulator) -> set[str]:
    """The domains the simulator applied an Add to."""
    return {domain for action, domain in sim.applied if action == ADD}


def calls(sim: Simulator, action: str) -> int:
    return sum(sim.stats()["calls"].get(action, {}).values())


def checkpoint_rows(path: Path) -> dict[str, dict]:
    with Checkpoint.open_readonly(path) as ckpt:
        return {r["domain"]: r for r in ckpt.rows() if r["domain"]}


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], check=False, capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True)


@contextlib.contextmanager
def small_disk(directory: Path, *, free: int) -> Iterator[Path]:
    """A 64 KiB tmpfs mounted at ``directory`` with only ``free`` bytes (whole pages) left; unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    directory.mkdir()
    _mount("-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(directory))
    try:
        (directory / "filler").write_bytes(b"\0" * (DISK - free))
        yield directory
    finally:
        _unmount(directory)


@contextlib.contextmanager
def bound(source: Path, target: Path) -> Iterator[None]:
    """``source`` bind-mounted onto ``target`` (both created empty): writes to ``target`` land in ``source``."""
    source.touch()
    target.touch()
    _mount("--bind", str(source), str(target))
    try:
        yield
    finally:
        _unmount(target)


def blocked(tmp_path: Path, name: str) -> Path:
    """A path no one can create, not even root: its parent is a regular file."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where a directory is expected\n")
    return blocker / name


# -- looking at a run while it runs --------------------------------------------------------------


#: the three ways to look at a run, taken in turn
LOOKS = (("status", "--json"), ("report", "--format", "jsonl"), ("status",))


async def _look(ckpt: Path, sim: Simulator, how: tuple[str, ...]) -> tuple[dict[str, int], int, int]:
    """One of ``LOOKS`` at the checkpoint: its counts by state, and the simulator's Adds before and after it.

    It must answer (no "in use", no SQLite busy error) while the run holds and writes the checkpoint.
    """
    before = len(changed(sim))
    code, out, err = await bulk(how[0], str(ckpt), *how[1:])
    after = changed(sim)
    assert code == 0, err
    assert "in use" not in err and "locked" not in err and "busy" not in err, err
    if how == ("status", "--json"):
        status = orjson.loads(out)
        return {s: status[s] for s in ("total", *STATES)}, before, len(after)
    if how[0] == "status":
        words = [line.split() for line in out.splitlines()]
        return {w[0]: int(w[1]) for w in words if len(w) == 2 and w[0] in ("total", *STATES)}, before, len(after)
    report = [orjson.loads(line) for line in out.splitlines()]
    assert {r["domain"] for r in report if r["outcome"] == "done"} <= after
    assert all(r["request_id"] for r in report if r["outcome"] == "done")
    counts = {s: sum(r["outcome"] == s for r in report) for s in STATES}
    return {"total": len(report), **counts}, before, len(after)


async def _read_beside(ckpt: Path, sim: Simulator, ended: asyncio.Future[tuple[bytes, bytes]]) -> int:
    """Read the checkpoint as ``bulk status`` and ``bulk report`` do, every 20 ms until the run ends;
    the count of reads.

    Nothing is awaited between the read and the look at the simulator (which runs in this event loop), so the
    record must match what the service holds at that very moment. Timed here, where a process start does not
    blur it: a reader held up by the run's lock would wait SQLite's busy timeout, 5 s.
    """
    reads = 0
    while not ended.done():
        held = changed(sim)
        started = time.monotonic()
        with Checkpoint.open_readonly(ckpt) as c:
            counts, rows = c.counts(), list(c.rows())
        took = time.monotonic() - started
        assert took < 1.0, took
        done = {r["domain"] for r in rows if r["state"] == "done"}
        sending = {r["domain"] for r in rows if r["state"] == "sending"}
        # Done only once the service holds it; every row the service changed was claimed before it was sent.
        assert done <= held <= done | sending, (counts, len(held))
        assert (counts["done"], counts["sending"]) == (len(done), len(sending))
        reads += 1
        await asyncio.sleep(0.02)
    return reads


@pytest.mark.realtime  # a read held up by the run's lock is told apart from a slow one by wall time
async def test_status_and_report_answer_while_a_run_writes_the_checkpoint(tmp_path: Path) -> None:
    n = 200
    src = domains_csv(tmp_path / "d.csv", n)
    ckpt = tmp_path / "d.ckpt"
    # Four rows at a time, each call answered after 100 ms: the run writes about 20 rows a second for as long as
    # the looks take, however busy the machine; then the service answers at once and the run ends.
    async with simulator(latency_ms=100) as sim:
        proc = await start_bulk(*run_args(src, sim, ckpt, "--qps", "400", "--concurrency", "4"))
        ended = asyncio.ensure_future(proc.communicate())
        while not changed(sim) and not ended.done():
            await asyncio.sleep(0.02)
        reading = asyncio.ensure_future(_read_beside(ckpt, sim, ended))
        live = 0
        while not ended.done():
            counts, before, after = await _look(ckpt, sim, LOOKS[live % len(LOOKS)])
            assert counts["total"] == n == sum(counts[s] for s in STATES), counts
            assert counts["failed"] == counts["invalid"] == counts["skipped"] == 0, counts
            # Done only once the service holds it; every row the service changed was claimed before it was sent.
            assert counts["done"] <= after, (counts, after)
            assert before <= counts["done"] + counts["sending"], (counts, before)
            live += counts["done"] < n
            if live == len(LOOKS):
                sim.config.latency_ms = 0
        _, err = await ended
        reads = await reading
    assert proc.returncode == 0, err.decode()
    assert reads >= 20
    assert live >= len(LOOKS)  # each look taken while rows were still to send
    assert changed(sim) == {f"d{i:04d}.example.com" for i in range(n)}
    assert set(sim.applied.values()) == {1}
    assert {r["state"] for r in checkpoint_rows(ckpt).values()} == {"done"}


# -- two runs started at once on a checkpoint that does not exist yet ----------------------------


async def test_two_runs_racing_to_create_one_checkpoint_send_each_row_once(tmp_path: Path) -> None:
    n, raced = 30, 0
    domains: set[str] = set()
    async with simulator() as sim:
        for round_ in range(3):
            src = tmp_path / f"r{round_}.csv"
            names = [f"r{round_}-d{i:03d}.example.com" for i in range(n)]
            src.write_text("DomainName\n" + "".join(f"{d}\n" for d in names))
            domains.update(names)
            ckpt = tmp_path / "new" / f"r{round_}.ckpt"
            args = run_args(src, sim, ckpt, "--qps", "60")
            procs = [await start_bulk(*args), await start_bulk(*args)]
            errs = [e.decode() for _, e in await asyncio.gather(*(p.communicate() for p in procs))]
            codes = [await p.wait() for p in procs]
            assert sorted(codes) in ([0, 4], [0, 0]), errs
            if 4 in codes:
                raced += 1
                busy = errs[codes.index(4)]
                assert f"checkpoint {ckpt} is in use by another run" in busy
            with sqlite3.connect(f"file:{ckpt}?mode=ro", uri=True) as db:
                assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert [r["state"] for r in checkpoint_rows(ckpt).values()] == ["done"] * n
        # Never both sending: one backup read and one Add per domain, over every round.
        assert changed(sim) == domains and set(sim.applied.values()) == {1}
        assert calls(sim, ADD) == calls(sim, DESCRIBE) == len(domains)
    assert raced >= 1  # the runs did overlap: one of them found the other holding the checkpoint


# -- full disks -----------------------------------------------------------------------------------


async def test_a_full_backup_disk_stops_the_run_before_any_write_it_could_not_back_up(tmp_path: Path) -> None:
    n = 300
    src = domains_csv(tmp_path / "d.csv", n)
    ckpt = tmp_path / "d.ckpt"
    backup = backup_path(ckpt)
    async with simulator() as sim:
        args = run_args(src, sim, ckpt, "--qps", "2000")
        # One page left: about a hundred records fit, then every write to the backup fails with ENOSPC.
        with small_disk(tmp_path / "disk", free=PAGE) as disk, bound(disk / "backup.jsonl", backup):
            code, _, err = await bulk(*args)
            held = backup.read_bytes()
        assert code == 3, err
        assert "Traceback" not in err
        stopped = [line for line in err.splitlines() if line.startswith("bulk: stopped:")]
        assert len(stopped) == 1 and f"cannot write {backup}: No space left on device" in stopped[0], err
        records = prior_records(held)
        # Each domain's prior state (no config at all) is on disk before its first write was sent.
        assert all(r == {"DomainName": r["DomainName"]} for r in records)
        assert 0 < len(changed(sim)) < n
        landed = changed(sim)
        assert changed(sim) <= {r["DomainName"] for r in records}
        rows = checkpoint_rows(ckpt)
        assert {d for d, r in rows.items() if r["state"] == "done"} <= changed(sim)
        assert all(rows[d]["state"] in ("done", "sending") for d in changed(sim))
        assert not any(r["state"] == "failed" for r in rows.values())
        # Space freed: the file keeps what reached it, and the same command finishes the run.
        backup.write_bytes(held)
        code, _, err = await bulk(*args)
        assert code == 0, err
        assert changed(sim) == set(rows) and set(sim.applied.values()) == {1}
    records = prior_records(backup.read_bytes())
    recorded = Counter(r["DomainName"] for r in records)
    assert recorded.keys() == rows.keys()
    # Read again only where no write had landed (the state right before the write that changed it); a domain
    # whose write landed in the first run is never read again, which would take our change for its prior state.
    assert all(n == 1 for d, n in recorded.items() if d in landed), recorded
    assert all(r == {"DomainName": r["DomainName"]} for r in records)


def prior_records(data: bytes) -> list[dict[str, str]]:
    """The backup's whole records, each as the prior state read (its header line, region and written state aside)."""
    records = [orjson.loads(line) for line in data.splitlines(keepends=True) if line.endswith(b"\n")]
    assert records and "Backup" in records[0]  # whose file it is, and how long to keep it
    return [{k: v for k, v in r.items() if k not in ("RegionId", "Wrote", "Profile")} for r in records[1:]]


async def _run_with_report_on_a_full_disk(tmp_path: Path, sim: Simulator, n: int) -> tuple[int, str, Path]:
    src = domains_csv(tmp_path / "d.csv", n)
    ckpt = tmp_path / "d.ckpt"
    # One page left: the report (about 250 bytes a row) runs out of it part way.
    with small_disk(tmp_path / "disk", free=PAGE) as disk:
        report = disk / "report.jsonl"
        code, _, err = await bulk(*run_args(src, sim, ckpt, "--qps", "2000", "--report", str(report)))
        assert sorted(os.listdir(disk)) == ["filler"]  # no half report, no temporary file left behind
    return code, err, ckpt


async def test_a_full_report_disk_fails_the_command_and_loses_nothing_of_the_run(tmp_path: Path) -> None:
    n = 60
    async with simulator() as sim:
        code, err, ckpt = await _run_with_report_on_a_full_disk(tmp_path, sim, n)
        assert code != 0, err
        assert len(changed(sim)) == n and set(sim.applied.values()) == {1}
    rows = checkpoint_rows(ckpt)
    assert sorted(rows) == sorted(changed(sim))
    assert all(r["state"] == "done" and r["request_id"] for r in rows.values())
    good = tmp_path / "report.jsonl"
    code, _, err = await bulk("report", str(ckpt), "--format", "jsonl", "--output", str(good))
    assert code == 0, err
    report = [orjson.loads(line) for line in good.read_text().splitlines()]
    assert [(r["domain"], r["outcome"], r["request_id"]) for r in report] == \
        [(d, "done", rows[d]["request_id"]) for d in sorted(rows)]


async def test_a_full_report_disk_is_one_clear_line(tmp_path: Path) -> None:
    async with simulator() as sim:
        code, err, _ = await _run_with_report_on_a_full_disk(tmp_path, sim, 60)
    assert code not in (0, 70), err
    assert "internal error" not in err and "Traceback" not in err
    assert f"cannot write {tmp_path / 'disk' / 'report.jsonl'}: No space left on device" in err


# -- paths no one can write -------------------------------------------------------------------------


@pytest.mark.parametrize(("option", "name"), [
    pytest.param("--checkpoint", "d.ckpt", id="checkpoint"),
    pytest.param("--log-file", "calls.jsonl", id="log-file"),
    pytest.param("--report", "report.jsonl", id="report"),
])
async def test_an_unwritable_path_is_a_usage_error_before_the_first_call(
    tmp_path: Path, option: str, name: str
) -> None:
    src = domains_csv(tmp_path / "d.csv", 5)
    path = blocked(tmp_path, name)
    ckpt = path if option == "--checkpoint" else tmp_path / "d.ckpt"
    async with simulator() as sim:
        args = run_args(src, sim, ckpt)
        if option != "--checkpoint":
            args += [option, str(path)]
        code, _, err = await bulk(*args)
        sent = sim.stats()["total"]
    assert sent == 0, err  # not even a backup read
    assert "Traceback" not in err and "internal error" not in err
    assert [line for line in err.splitlines() if line.startswith("bulk: error:") and str(path) in line], err
    assert code == 2, err
