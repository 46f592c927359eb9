"""The whole state machine under chaos: seeded random fleets, faults, kill -9 and Ctrl-C, then a resume.

Each scenario seeds a simulator fleet (no config, the row's own config, another
URL, another key), injects random faults (500 before and after applying, 503,
throttling, dropped and hung connections, writes carried out only after the
client gave up on them), refuses the read-back action in some (a policy
without Describe), lets another client change domains bulk has not written yet
between runs in some, runs the real `bulk run` command in child processes that
it kills (SIGKILL) or interrupts (SIGINT) at random moments with random
--max-attempts and --if-exists, and finishes with a clean resume on a healthy
service. Then every row's recorded state must agree with what the simulator
holds:

- done    <=> the domain holds the row's config;
- failed  <=> it does not, and the row says why;
- skipped  => the domain still holds the config it had before (seeded, or the other client's);
- unknown  => the last answer proved nothing: a refused read-back, or a write
  that timed out and may still land; and the run did not exit 0 or 1;
- no domain had a change applied twice, no row is left pending, sending or
  unknown, every line of the input is accounted for, and no run exited 0
  with a row unfinished.

Most scenarios keep a backup (the default); they end with `bulk rollback`,
killed at a random moment in some of them and resumed, after which the
simulator must hold exactly the fleet as it was just before bulk wrote to it
(seeded, or as the other client left it before our write), no call of the
rollback applied twice. In some, another client changes domains after the
run and before the rollback: the rollback leaves each such domain it would
restore as it is and records a conflict (exit 1), and `bulk rollback --force`
then restores them. In some the backup file is lost before the final resume:
if it may hold records, the resume and the rollback are refused (exit 2)
before any call. In some the rollback starts together with the final resume:
whichever holds the checkpoint first, the fleet ends as it was and the run is
never resumed after its rollback. The others run with --no-backup and leave
no backup file.

`make test` runs the few seeds that between them reach every scenario kind
twice over (``covering_seeds``); `make test-slow` runs seeds 0-119, and
`pytest -m slow tests/test_chaos.py --chaos-scenarios 1000` runs more.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.process
import multiprocessing.synchronize
import os
import random
import signal
from dataclasses import dataclass, replace
from multiprocessing.connection import wait as wait_for_ready
from pathlib import Path

import chaos_child
import pytest
from conftest import TEST_AK_ID, TEST_AK_SECRET

from bulk.checkpoint import Checkpoint, CheckpointError, RowState
from bulk.sim import FAULT_KINDS, SimConfig, Simulator

ADD, SET = "AddLiveSnapshotNotifyConfig", "SetSnapshotCallbackAuth"
READER = {ADD: "DescribeLiveSnapshotNotifyConfig", SET: "QuerySnapshotCallbackAuth"}
#: the fault kinds the first scenarios drew from: a kind added since is drawn last, so old seeds keep theirs
FIRST_KINDS = ("internal_before", "internal_after", "unavailable", "throttle", "drop", "hang")
URL, OTHER_URL = "https://cb.example.com/new", "https://cb.example.com/old"
THIRD_URL = "https://cb.example.com/third-party"

# Children are forked from a server that has imported bulk once: a run starts in milliseconds. With bulk.cli, what
# typer and rich import only when a command line is parsed or printed (as tests/zygote.py does): pydantic alone
# costs a child some 0.15 s of CPU, some sixty children a batch. The children's code is in chaos_child, which
# imports nothing of the tests.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["chaos_child", "bulk.cli", "typer._adapters", "typer._click.decorators", "pydantic",
                                 "zoneinfo", "rich._emoji_codes", "sysconfig"])


@dataclass(frozen=True)
class Scenario:
    seed: int
    action: str
    rows: dict[str, dict[str, str]]
    seeded: dict[str, dict[str, str]]
    if_exists: str
    sim: SimConfig
    runs: list[tuple[int, str | None, float]]  # (max attempts, interruption, after seconds)
    backup: bool
    rollback_kill: float | None  # kill -9 the rollback after this many seconds (then resume it)
    refuse_reads: bool  # the read-back action is refused (403 Forbidden.RAM) until the final resume
    meddle: bool  # another client changes domains bulk has not written yet, between runs
    lost_backup: bool  # the backup file is deleted before the final resume
    race: bool  # the rollback starts together with the final resume
    third_party: tuple[str, ...]  # domains another client changes after the final resume, before the rollback


def scenario(seed: int) -> Scenario:
    rng = random.Random(seed)
    action = rng.choice([ADD, ADD, SET])
    rows, seeded = {}, {}
    for i in range(rng.randint(6, 18)):
        domain = f"s{seed}-{i}.example.com"
        key = f"Key{seed:04d}{i:04d}abcdefghij"
        if action == ADD:
            rows[domain] = {"NotifyUrl": URL, "NotifyReqAuth": "yes", "NotifyAuthKey": key}
            other = {"none": None, "same": rows[domain], "url": {**rows[domain], "NotifyUrl": OTHER_URL},
                     "key": {**rows[domain], "NotifyAuthKey": "Old" + key[3:]}}[
                rng.choice(["none", "same", "url", "key"])]
        else:
            rows[domain] = {"CallbackReqAuth": "yes", "CallbackAuthKey": key}
            other = rng.choice([None, rows[domain], {"CallbackReqAuth": "yes", "CallbackAuthKey": "Old" + key[3:]}])
        if other is not None:
            seeded[domain] = {"DomainName": domain, **other}
    error_rate = rng.choice([0.0, 0.15, 0.3, 0.45])
    kinds = tuple(rng.sample(FIRST_KINDS, rng.randint(1, len(FIRST_KINDS))))
    sim = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=2000, seed=seed, error_rate=error_rate,
                    fault_kinds=kinds, latency_ms=rng.choice([0, 3, 15]))
    runs = [(rng.randint(1, 4), rng.choice(["kill", "int", None]), rng.uniform(0.05, 0.5))
            for _ in range(rng.randint(0, 3))]
    if_exists = rng.choice(["fail", "skip", "update"])
    # Drawn last, so that the scenarios of every seed are those they were before backups existed.
    backup = rng.random() < 0.8
    rollback_kill = rng.choice([None, rng.uniform(0.02, 0.3)])
    # Drawn after those, for the same reason: writes that land late, refused read-backs, another client.
    if rng.random() < 0.3:
        sim = replace(sim, fault_kinds=(*kinds, "late"))
    refuse_reads = rng.random() < 0.25
    meddle = rng.random() < 0.4
    # Drawn after those, for the same reason: a lost backup, a rollback racing the resume, changes before it.
    lost_backup = backup and rng.random() < 0.2
    race = backup and not lost_backup and rng.random() < 0.25
    third = tuple(rng.sample(sorted(rows), rng.randint(1, 3))) if rng.random() < 0.35 else ()
    third_party = third if backup and not (lost_backup or race) else ()
    return Scenario(seed, action, rows, seeded, if_exists, sim, runs, backup, rollback_kill, refuse_reads, meddle,
                    lost_backup, race, third_party)


async def _run(argv: list[str], interruption: str | None, after: float) -> int | None:
    started = _CONTEXT.Event()
    proc = _CONTEXT.Process(target=chaos_child.bulk, args=(argv, started))
    proc.start()
    if interruption is not None:
        # Signals go to bulk, not to the child's start-up (an operator's Ctrl-C reaches a running command).
        assert await asyncio.to_thread(started.wait, 30)
        if not await _exited(proc, after):
            # It may end on its own between the check and the signal (its forkserver reaps it at once): it is
            # then a run that ended just before it was interrupted.
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL if interruption == "kill" else signal.SIGINT)
    assert await _exited(proc, 60), "bulk did not stop"
    return proc.exitcode


async def _exited(proc: multiprocessing.process.BaseProcess, timeout: float) -> bool:
    """Whether the child ends within ``timeout``; its exit status is read on the event loop's thread only.

    Every Process.start() polls the children started before it. A join in a
    worker thread that polled the same child at that moment would read its
    status from the forkserver twice: the second read meets EOF, and records 255.
    """
    await asyncio.to_thread(wait_for_ready, [proc.sentinel], timeout)
    return not proc.is_alive()


def _unfinished(ckpt: Path) -> int:
    with Checkpoint.open_readonly(ckpt) as c:
        counts = c.counts()
    return counts["pending"] + counts["sending"]


async def _settle(sim: Simulator) -> None:
    """A killed run's requests may still be in flight at the service: let them land first.

    In flight is not enough: what the run wrote just before it died may still wait, unread, in
    the simulator's sockets (seed 38 once counted 7 such calls after a settle that saw none in
    flight). Every run here is a process that has exited, so once the simulator has closed all
    its connections it has read, and answered, all they sent. A connection the run opened last
    may still wait to be accepted, and accepting, reading and handling take the loop a few turns
    each: so the simulator must stay quiet (nothing in flight, nothing open, no new call) for
    ten turns in a row.
    """
    quiet, total = 0, -1
    for _ in range(500):
        now = sim.stats()["total"]
        quiet = quiet + 1 if sim.in_flight == 0 and sim.connections == 0 and now == total else 0
        if quiet == 10:
            return
        total = now
        await asyncio.sleep(0.01)
    raise AssertionError(f"simulator requests never finished ({sim.in_flight} in flight, {sim.connections} open)")


def kinds(case: Scenario) -> set[tuple[object, ...]]:
    """What a scenario exercises: its action, fleet states, faults, interruptions and options."""
    reached: set[tuple[object, ...]] = {
        ("action", case.action), ("if-exists", case.if_exists), ("backup", case.backup),
        ("rollback killed", case.rollback_kill is not None), ("error rate", case.sim.error_rate),
        ("latency", case.sim.latency_ms), ("runs before the resume", len(case.runs)),
        ("refused read-backs", case.refuse_reads), ("another client", case.meddle),
        ("lost backup", case.lost_backup), ("rollback races the resume", case.race),
        ("third party", bool(case.third_party)),
    }
    reached |= {("fault", kind) for kind in case.sim.fault_kinds}
    reached |= {("interruption", interruption) for _, interruption, _ in case.runs}
    reached |= {("max attempts", attempts) for attempts, _, _ in case.runs}
    for domain, row in case.rows.items():
        held = case.seeded.get(domain)
        state = ("none" if held is None else "same" if all(held.get(f) == v for f, v in row.items())
                 else "url" if held.get("NotifyUrl", row.get("NotifyUrl")) != row.get("NotifyUrl") else "key")
        reached.add(("seeded", case.action, state))
    return reached


def covering_seeds(times: int = 2, pool: range = range(100)) -> list[int]:
    """Few seeds of ``pool`` that between them reach every kind its scenarios reach, each ``times`` times."""
    reached = {seed: kinds(scenario(seed)) for seed in pool}
    owed = {kind: times for seed in pool for kind in reached[seed]}
    chosen: list[int] = []
    while owed:
        best = max((s for s in pool if s not in chosen), key=lambda s: len(reached[s] & owed.keys()))
        chosen.append(best)
        for kind in reached[best] & owed.keys():
            owed[kind] -= 1
            if not owed[kind]:
                del owed[kind]
    return sorted(chosen)


def test_scenarios_cover_every_case() -> None:
    """The generator reaches every fleet state, fault kind, interruption and --if-exists."""
    cases = [scenario(seed) for seed in range(100)]
    covering = [scenario(seed) for seed in covering_seeds()]
    assert set().union(*map(kinds, covering)) == set().union(*map(kinds, cases))
    assert {c.action for c in cases} == {ADD, SET}
    assert {c.if_exists for c in cases} == {"fail", "skip", "update"}
    assert {kind for c in cases for kind in c.sim.fault_kinds} == set(FAULT_KINDS)
    assert {i for c in cases for _, i, _ in c.runs} == {"kill", "int", None}
    assert sum(bool(c.seeded) for c in cases) > 90 and sum(len(c.seeded) < len(c.rows) for c in cases) > 90
    assert 10 <= sum(not c.backup for c in cases) <= 30
    assert {c.rollback_kill is None for c in cases if c.backup} == {True, False}
    assert {c.refuse_reads for c in cases if c.runs} == {c.meddle for c in cases if c.runs} == {True, False}
    assert 5 <= sum(c.lost_backup for c in cases) and 5 <= sum(c.race for c in cases)
    assert 10 <= sum(bool(c.third_party) for c in cases)


async def test_record_agrees_with_the_service(tmp_path: Path, chaos_seeds: list[int]) -> None:
    """A batch of scenarios, run side by side: they spend most of their time in backoff sleeps."""
    await _check_all(tmp_path, chaos_seeds)


@pytest.mark.slow
async def test_record_agrees_with_the_service_over_many_seeds(tmp_path: Path, chaos_many_seeds: list[int]) -> None:
    """Seeds 0 to --chaos-scenarios - 1 (120 unless given), ten at a time."""
    await _check_all(tmp_path, chaos_many_seeds)


async def _check_all(tmp_path: Path, chaos_seeds: list[int]) -> None:
    results = await asyncio.gather(*(_check(seed, tmp_path / str(seed)) for seed in chaos_seeds),
                                   return_exceptions=True)
    failures = {seed: r for seed, r in zip(chaos_seeds, results, strict=True) if r is not None}
    assert not failures, "\n".join(f"seed {seed}: {type(e).__name__}: {e}" for seed, e in failures.items())


async def _check(seed: int, tmp_path: Path) -> None:
    case = scenario(seed)
    tmp_path.mkdir()
    columns = ["DomainName", *next(iter(case.rows.values()))]
    src = tmp_path / "fleet.csv"
    src.write_text("\n".join([",".join(columns), *(",".join([d, *r.values()]) for d, r in case.rows.items())]) + "\n")
    ckpt = tmp_path / "fleet.ckpt"
    #: each domain's config before bulk wrote to it: as seeded, or as the other client left it
    theirs = {d: dict(c) for d, c in case.seeded.items()}
    others = random.Random(f"another client/{seed}")
    async with Simulator(case.sim) as sim:
        store = sim.notify_configs if case.action == ADD else sim.callback_auth
        store.update({d: dict(c) for d, c in case.seeded.items()})
        if case.refuse_reads:
            sim.config.forbidden_actions = (READER[case.action],)
        base = ["run", str(src), "--action", case.action, "--endpoint", sim.url, "--checkpoint", str(ckpt),
                "--qps", "1000", "--timeout", "0.5", "--if-exists", case.if_exists, "--quiet",
                *([] if case.backup else ["--no-backup"])]
        codes: list[int | None] = []
        for attempts, interruption, after in case.runs:
            codes.append(await _run([*base, "--max-attempts", str(attempts)], interruption, after))
            await _settle(sim)
            if _ingested(ckpt):
                _agrees(case, ckpt, store, theirs, codes)
                if case.meddle:
                    _another_client(case, ckpt, store, theirs, others)
            else:  # killed before the input was recorded, which comes before any call
                assert sim.stats()["total"] == 0, codes
        sim.config.error_rate = 0.0  # the final resume, on a healthy service
        sim.config.forbidden_actions = ()
        rollback = ["rollback", str(ckpt), "--endpoint", sim.url, "--qps", "1000", "--timeout", "0.5", "--quiet"]
        backup_file = ckpt.with_name("fleet.backup.jsonl")
        if case.lost_backup and await _lose_backup(ckpt, backup_file, sim, base, rollback, codes):
            return
        if case.race:
            await _race(ckpt, sim, store, theirs, base, rollback, codes)
            return
        codes.append(await _run([*base, "--max-attempts", "8"], None, 0))
        assert codes[-1] in (0, 1), codes
        _agrees(case, ckpt, store, theirs, codes)
        _applied_once(sim, codes)
        if not case.backup:
            assert not backup_file.exists()
            return
        # Another client changes some domains after our run: a rollback must not clobber those it would restore.
        thirds = {domain: _third(case, domain) for domain in case.third_party}
        store.update({domain: dict(config) for domain, config in thirds.items()})
        restored = _rolled_back(ckpt)
        conflicts = set(thirds) & restored
        before = dict(sim.applied)
        if case.rollback_kill is not None:
            codes.append(await _run(rollback, "kill", case.rollback_kill))
            await _settle(sim)
        codes.append(await _run(rollback, None, 0))
        assert codes[-1] == (1 if conflicts else 0), codes
        # Exactly the fleet as it was just before bulk wrote to it, keys and all, but what another client changed
        # since: left as it is.
        assert store == {**theirs, **thirds}, codes
        assert all(n - before.get(key, 0) <= 1 for key, n in sim.applied.items()), codes
        with Checkpoint.open_readonly(ckpt.with_name("fleet.rollback.ckpt")) as c:
            assert {r["domain"] for r in c.rows(states=[RowState.CONFLICT])} == conflicts, codes
        if conflicts:
            before = dict(sim.applied)
            codes.append(await _run([*rollback, "--force"], None, 0))
            assert codes[-1] == 0, codes
            assert store == {**theirs, **{d: thirds[d] for d in set(thirds) - restored}}, codes
            assert all(n - before.get(key, 0) <= 1 for key, n in sim.applied.items()), codes


def _applied_once(sim: Simulator, codes: list[int | None]) -> None:
    """No domain had a change applied twice."""
    per_domain: dict[str, int] = {}
    for (_, domain), n in sim.applied.items():
        per_domain[domain] = per_domain.get(domain, 0) + n
    assert all(n == 1 for n in per_domain.values()), (per_domain, codes)


def _third(case: Scenario, domain: str) -> dict[str, str]:
    """The config another client gives ``domain`` before the rollback: unlike any the scenario seeds or writes."""
    if case.action == ADD:
        return {"DomainName": domain, "NotifyUrl": THIRD_URL, "NotifyReqAuth": "yes",
                "NotifyAuthKey": "Third0000abcdefghijklmn"}
    return {"DomainName": domain, "CallbackReqAuth": "yes", "CallbackAuthKey": "Third0000abcdefghijklmn"}


def _rolled_back(ckpt: Path) -> set[str]:
    """The domains a rollback of ``ckpt`` puts back: those its run changed or may have."""
    with Checkpoint.open_readonly(ckpt) as c:
        return {r["domain"] for r in c.rows() if r["domain"] and (r["state"] in ("done", "sending") or r["reached"])}


def _recorded(ckpt: Path) -> bool:
    """Whether the backup may hold records: the checkpoint counted some, or a run claimed rows."""
    if not _ingested(ckpt):
        return False
    with Checkpoint.open_readonly(ckpt) as c:
        return bool(((c.meta() or {}).get("backup") or {}).get("records")) or c.claimed()


async def _lose_backup(ckpt: Path, backup_file: Path, sim: Simulator, base: list[str], rollback: list[str],
                       codes: list[int | None]) -> bool:
    """Delete the backup: a resume and a rollback are refused before any call. True if they were."""
    recorded = _recorded(ckpt)
    backup_file.unlink(missing_ok=True)
    if not recorded:
        return False  # no record was ever made: a resume starts the file again
    calls = sim.stats()["total"]
    codes.append(await _run([*base, "--max-attempts", "8"], None, 0))
    assert codes[-1] == 2 and sim.stats()["total"] == calls, codes
    codes.append(await _run(rollback, None, 0))
    assert codes[-1] == 2 and sim.stats()["total"] == calls, codes
    return True


async def _race(ckpt: Path, sim: Simulator, store: dict[str, dict[str, str]], theirs: dict[str, dict[str, str]],
                base: list[str], rollback: list[str], codes: list[int | None]) -> None:
    """The final resume and a rollback at once: whichever holds the checkpoint first, the fleet is never split."""
    forward, back = await asyncio.gather(_run([*base, "--max-attempts", "8"], None, 0), _run(rollback, None, 0))
    codes += [forward, back]
    await _settle(sim)
    if back == 0:
        # The rollback went first (the resume waited, exit 4, or was refused after, exit 2), or last.
        assert forward in (0, 1, 2, 4), codes
    else:
        # The resume went first (the rollback waited, or found no run or backup yet), or each kept the other out.
        assert back in (2, 4) and forward in (0, 1, 4), codes
        if forward == 4:
            codes.append(await _run([*base, "--max-attempts", "8"], None, 0))
            assert codes[-1] in (0, 1), codes
        codes.append(await _run(rollback, None, 0))
        assert codes[-1] == 0, codes
    assert store == theirs, codes  # every change put back, to the state just before our write; none made after
    codes.append(await _run([*base, "--max-attempts", "8"], None, 0))
    assert codes[-1] == 2, codes  # the run was rolled back: never resumed


def _ingested(ckpt: Path) -> bool:
    """Whether a run got as far as recording every line of the input."""
    if not ckpt.exists():
        return False
    try:
        with Checkpoint.open_readonly(ckpt) as c:
            return bool((c.meta() or {}).get("ingested"))
    except CheckpointError:  # killed before the schema was committed
        return False


def _another_client(case: Scenario, ckpt: Path, store: dict[str, dict[str, str]],
                    theirs: dict[str, dict[str, str]], rng: random.Random) -> None:
    """Another client changes up to two domains bulk never wrote to: no write of their rows reached the
    service. A backup record taken of such a domain before is stale now: the backup must be read again right
    before our write, and a rollback restore the other client's change."""
    with Checkpoint.open_readonly(ckpt) as c:
        untouched = sorted(r["domain"] for r in c.rows(states=[RowState.PENDING, RowState.UNKNOWN]) if not r["reached"])
    for domain in rng.sample(untouched, min(len(untouched), rng.randint(0, 2))):
        row = case.rows[domain]
        other = {**row, "NotifyUrl": OTHER_URL} if case.action == ADD else {**row, "CallbackAuthKey": "Their" + row[
            "CallbackAuthKey"][5:]}
        change = rng.choice([None, row, other])
        if change is None:
            store.pop(domain, None)
            theirs.pop(domain, None)
        else:
            store[domain] = {"DomainName": domain, **change}
            theirs[domain] = dict(store[domain])


def _agrees(case: Scenario, ckpt: Path, store: dict[str, dict[str, str]], theirs: dict[str, dict[str, str]],
            codes: list[int | None]) -> None:
    """What the checkpoint says of each row is what the service holds, after any run, however it ended."""
    with Checkpoint.open_readonly(ckpt) as c:
        recorded = {r["domain"]: r for r in c.rows()}
        counts = c.counts()
    if codes[-1] == 0:
        assert counts["pending"] + counts["sending"] == 0, codes
    assert set(recorded) == set(case.rows)  # every line accounted for
    for domain, row in recorded.items():
        held = store.get(domain, {})
        # Judged field by field against the row as written, not with the product's own comparison.
        holds = all(held.get(field, "") == value for field, value in case.rows[domain].items())
        state = row["state"]
        context = (domain, state, row["code"], row["message"], case.seeded.get(domain), codes)
        if state == "done":
            assert holds, context
        elif state == "failed":
            assert not holds and row["code"], context
        elif state == "skipped":
            assert case.if_exists == "skip" and held == theirs[domain], context
        elif state == "unknown":
            # The last answer proved nothing: a refused read-back, or a write the service never answered (it timed
            # out, or its connection dropped) that may still land.
            refused = case.refuse_reads and row["code"] == "Forbidden.RAM" and row["action"] == READER[case.action]
            assert refused or row["code"] in ("Timeout", "ConnectionError"), context
            assert codes[-1] not in (0, 1), context
        else:
            assert codes[-1] not in (0, 1), context  # a run that ends 0 or 1 has settled every row
