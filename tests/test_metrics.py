"""Metrics as a scraper reads them: the receiver's /metrics and a run's --metrics-textfile, by prometheus-client."""

from __future__ import annotations

import collections
import stat
from pathlib import Path

import aiohttp
import prometheus_client
from prometheus_client.parser import text_string_to_metric_families
from support import ADD, bulk, domains_csv, run_engine, simulator

from bulk.callbacks import Receiver, sign
from bulk.keys import write_keys_file
from bulk.pacing import Pacer
from bulk.textfile import RunTextfile

A_OLD, A_NEW = "aOldKey0123456789abcdef", "aNewKey0123456789abcdef"

#: every family the receiver serves: dashboards and alert rules use these names, which must not change
RECEIVER_FAMILIES = {
    "bulk_receiver_callbacks_accepted": "counter",
    "bulk_receiver_callback_last_seen_timestamp_seconds": "gauge",
    "bulk_receiver_callbacks_rejected": "counter",
    "bulk_receiver_callbacks_duplicate": "counter",
    "bulk_receiver_generation_domains": "gauge",
    "bulk_receiver_generation_loaded_timestamp_seconds": "gauge",
    "bulk_receiver_key_reloads": "counter",
    "bulk_receiver_keys_files_rejected": "counter",
    "bulk_receiver_forward_failures": "counter",
    "bulk_receiver_connections_open": "gauge",
    "bulk_receiver_connections_closed": "counter",
}


def parsed(text: str) -> tuple[dict[str, str], dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """(family -> type, (sample name, labels) -> value), as prometheus-client's own parser reads the text."""
    kinds: dict[str, str] = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        kinds[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return kinds, samples


def labels(**given: str) -> frozenset[tuple[str, str]]:
    return frozenset(given.items())


async def test_the_receivers_metrics_parse_with_their_names_kinds_and_values(tmp_path: Path) -> None:
    write_keys_file(tmp_path / "keys-2026-10.csv", {"a.example.com": A_OLD, "b.example.com": "bOldKey0123456789abcd"})
    write_keys_file(tmp_path / "keys-2026-11.csv", {"a.example.com": A_NEW})
    now = [1_800_000_000.0]
    body = b'{"DomainName": "a.example.com", "StreamName": "s1"}'
    async with Receiver([tmp_path], clock=lambda: now[0]) as receiver, aiohttp.ClientSession() as session:
        for key, times in ((A_OLD, 2), (A_NEW, 1), ("aBadKey0123456789abcdef", 3)):
            for i in range(times):
                headers = sign("127.0.0.1", key, now=lambda i=i: now[0] + i)
                async with session.post(f"{receiver.url}/cb", data=body, headers=headers) as resp:
                    await resp.read()
        async with session.get(f"{receiver.admin_url}/metrics") as resp:
            content_type, text = resp.headers["Content-Type"], await resp.text()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    kinds, samples = parsed(text)
    assert kinds == RECEIVER_FAMILIES
    assert samples[("bulk_receiver_callbacks_accepted_total", labels(generation="keys-2026-10",
                                                                      domain="a.example.com"))] == 2
    assert samples[("bulk_receiver_callbacks_accepted_total", labels(generation="keys-2026-11",
                                                                      domain="a.example.com"))] == 1
    assert samples[("bulk_receiver_callbacks_rejected_total", labels(reason="signature_matches_no_key"))] == 3
    assert samples[("bulk_receiver_generation_domains", labels(generation="keys-2026-10"))] == 2
    assert samples[("bulk_receiver_generation_domains", labels(generation="keys-2026-11"))] == 1
    assert samples[("bulk_receiver_key_reloads_total", labels(result="ok"))] == 0
    assert samples[("bulk_receiver_callbacks_duplicate_total", labels())] == 0
    assert samples[("bulk_receiver_connections_closed_total", labels(reason="evicted"))] == 0
    for key in (A_OLD, A_NEW):
        assert key not in text


async def test_each_receiver_has_its_own_registry(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    for folder, key in ((first, A_OLD), (second, A_NEW)):
        folder.mkdir(mode=0o700)
        write_keys_file(folder / "keys-2026-10.csv", {"a.example.com": key})
    body = b'{"DomainName": "a.example.com"}'
    async with Receiver([first]) as one, Receiver([second]) as two, aiohttp.ClientSession() as session:
        async with session.post(f"{one.url}/cb", data=body, headers=sign("127.0.0.1", A_OLD)) as resp:
            assert resp.status == 200
        _, mine = parsed(one.metrics())
        _, theirs = parsed(two.metrics())
    accepted = ("bulk_receiver_callbacks_accepted_total", labels(generation="keys-2026-10", domain="a.example.com"))
    assert mine[accepted] == 1 and accepted not in theirs
    # The library's global registry is left alone: no receiver metric is in it.
    assert not any(f.name.startswith("bulk_") for f in prometheus_client.REGISTRY.collect())


async def test_a_pacer_says_which_throttling_answer_opens_an_episode() -> None:
    now = [100.0]
    pacer = Pacer(10, clock=lambda: now[0])
    assert pacer.throttled() is True
    now[0] += 0.5  # within the same window: the same episode
    assert pacer.throttled() is False
    now[0] += 2.0
    assert pacer.throttled() is True


async def test_a_runs_calls_by_answer_and_throttling_match_the_services_count(tmp_path: Path) -> None:
    # Attempts to spare: a row needs two calls (the backup read, then the Add) out of its attempts, and with 30 %
    # throttled, 8 attempts leave one row of 40 unfinished about one run in twenty (exit 3, as it should be).
    async with simulator(error_rate=0.3, fault_kinds=("throttle",)) as sim:
        result = await run_engine(sim, domains_csv(tmp_path / "d.csv", 40), qps=1000, max_attempts=30)
        served: collections.Counter[str] = collections.Counter()
        for codes in sim.stats()["calls"].values():
            served.update(codes)
    assert result.exit_code == 0 and result.counts["done"] == 40
    assert result.answers == dict(served) and result.answers["OK"] >= 40
    throttled = sum(n for code, n in served.items() if code.startswith("Throttling"))
    assert throttled and 1 <= result.throttling_episodes <= throttled
    assert sum(result.answers.values()) == result.calls

    textfile = RunTextfile(tmp_path / "out" / "bulk-run.prom", command="run", clock=lambda: 1_800_000_000.0)
    textfile.result = result
    textfile.write(0)
    kinds, samples = parsed(textfile.path.read_text())
    assert set(kinds) == {"bulk_run_rows", "bulk_run_calls", "bulk_run_throttling_episodes",
                          "bulk_run_pace_calls_per_second", "bulk_run_duration_seconds", "bulk_run_exit_code",
                          "bulk_run_last_finished_timestamp_seconds"}
    assert set(kinds.values()) == {"gauge"}
    own = {"command": "run", "textfile": "bulk-run"}
    assert samples[("bulk_run_rows", labels(**own, outcome="done"))] == 40
    assert samples[("bulk_run_rows", labels(**own, outcome="failed"))] == 0
    for code, count in served.items():
        assert samples[("bulk_run_calls", labels(**own, code=code))] == count
    assert samples[("bulk_run_throttling_episodes", labels(**own))] == result.throttling_episodes
    assert samples[("bulk_run_pace_calls_per_second", labels(**own))] == result.pace > 0
    assert samples[("bulk_run_exit_code", labels(**own))] == 0
    assert samples[("bulk_run_last_finished_timestamp_seconds", labels(**own))] == 1_800_000_000
    # node_exporter runs as another user: the file is readable by it, and written by rename (no temporary left).
    assert stat.S_IMODE(textfile.path.stat().st_mode) == 0o644
    assert [p.name for p in textfile.path.parent.iterdir()] == ["bulk-run.prom"]


async def test_run_and_rotate_leave_their_textfile_with_the_exit_code(tmp_path: Path) -> None:
    src = domains_csv(tmp_path / "d.csv", 5)
    metrics = tmp_path / "textfile"
    async with simulator() as sim:
        code, _, err = await bulk("run", str(src), "--action", ADD, "--set", "NotifyUrl=https://cb.example.com/s",
                                  "--endpoint", sim.url, "--quiet", "--metrics-textfile", str(metrics / "run.prom"))
        assert code == 0, err
        # A command that stops before any call still says so: exit 2 for an input that is not there.
        code, _, err = await bulk("rotate", str(tmp_path / "missing.txt"), "--keys-out", str(tmp_path / "k.csv"),
                                  "--endpoint", sim.url, "--quiet", "--metrics-textfile", str(metrics / "rot.prom"))
        assert code == 2, err
        calls = sim.stats()["calls"]
    _, run = parsed((metrics / "run.prom").read_text())
    own = {"command": "run", "textfile": "run"}
    assert run[("bulk_run_rows", labels(**own, outcome="done"))] == 5
    assert run[("bulk_run_calls", labels(**own, code="OK"))] == sum(sum(c.values()) for c in calls.values())
    assert run[("bulk_run_exit_code", labels(**own))] == 0
    _, rotate = parsed((metrics / "rot.prom").read_text())
    own = {"command": "rotate", "textfile": "rot"}
    assert rotate[("bulk_run_exit_code", labels(**own))] == 2
    assert rotate[("bulk_run_rows", labels(**own, outcome="done"))] == 0


async def test_a_textfile_that_cannot_be_written_is_refused_before_any_call(tmp_path: Path) -> None:
    src = domains_csv(tmp_path / "d.csv", 3)
    (tmp_path / "a-file").write_text("")
    async with simulator() as sim:
        code, _, err = await bulk("run", str(src), "--action", ADD, "--set", "NotifyUrl=https://cb.example.com/s",
                                  "--endpoint", sim.url, "--quiet",
                                  "--metrics-textfile", str(tmp_path / "a-file" / "run.prom"))
        assert sim.stats()["total"] == 0
    assert code == 2 and "cannot write" in err and "a-file" in err, err
