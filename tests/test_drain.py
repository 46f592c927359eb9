"""When an old key generation has drained: the rule on a fake clock, then asked of a real receiver."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from bulk.callbacks import (
    SNAPSHOT_INTERVAL_MAX,
    DrainError,
    DrainReport,
    Receiver,
    UnknownGeneration,
    assess,
    check_window,
    generation_name,
    merge,
    parse_window,
    query_drain,
    sign,
)
from bulk.keys import write_keys_file

OLD, NEW = "keys-2026-10", "keys-2026-11"
DOMAINS = {OLD: frozenset({"a", "b", "c"}), NEW: frozenset({"a", "b", "c", "d"})}


def at(now: float, last_seen: dict[tuple[str, str], float], *, generation: str = OLD, window: float = 100,
       loaded_at: dict[str, float] | None = None, domains: dict[str, frozenset[str]] = DOMAINS) -> DrainReport:
    return assess(generation=generation, window=window, now=now, domains=domains,
                  loaded_at=loaded_at or {OLD: 0.0, NEW: 500.0}, last_seen=last_seen)


def test_a_domain_signing_with_the_old_keys_within_the_window_holds_it_back() -> None:
    seen = {("a", OLD): 950.0, ("a", NEW): 990.0, ("b", OLD): 880.0, ("b", NEW): 995.0, ("c", NEW): 600.0}
    report = at(1000, seen)
    # a: a second stream still on the old key, seen 50 s ago. b: last old callback 120 s ago, outside.
    assert report.still_on == {"a": 50.0}
    assert not report.drained and report.blockers() == [f"1 domain(s) still on {OLD}"]
    assert report.newer == (NEW,) and report.since_rotation == 500 and report.watched == 1000
    assert report.unseen == ("d",)  # in the new keys file, no callback since the new keys were loaded
    assert at(1051, seen).drained  # a's last old callback is now 101 s old
    assert at(1050, seen).still_on == {"a": 100.0}  # the window's edge still counts


def test_unseen_means_no_callback_at_all_since_the_newer_generation_was_loaded() -> None:
    seen = {("a", OLD): 499.0, ("b", OLD): 500.0, ("c", NEW): 700.0}
    report = at(1000, seen)
    assert report.unseen == ("a", "d")  # a's only callback came before the rotation
    assert report.drained  # unseen domains are reported, they do not hold the answer back


def test_no_newer_generation_and_a_short_watch_are_not_drained() -> None:
    report = at(1000, {}, domains={OLD: DOMAINS[OLD]}, loaded_at={OLD: 0.0})
    assert not report.drained and report.newer == () and report.unseen == () and report.since_rotation is None
    assert report.blockers() == [f"no generation newer than {OLD} is loaded: give the receiver the new keys first"]
    # A receiver restarted 60 s ago has seen nothing of the window before: no answer yet.
    report = at(1000, {}, window=100, loaded_at={OLD: 940.0, NEW: 940.0})
    assert not report.drained
    assert report.blockers() == [
        f"the receiver has watched {OLD} for 60.0 s, less than the 100 s window: ask again later"
    ]
    # The newest generation has nothing newer to drain to.
    assert at(1000, {}, generation=NEW).newer == ()
    with pytest.raises(UnknownGeneration, match="keys-2099-01 is not loaded"):
        at(1000, {}, generation="keys-2099-01")


def test_merge_across_receivers() -> None:
    one = at(1000, {("a", OLD): 990.0, ("c", NEW): 800.0})
    two = at(1000, {("a", OLD): 995.0, ("b", OLD): 960.0, ("d", NEW): 900.0}, loaded_at={OLD: 300.0, NEW: 600.0})
    merged = merge([one, two])
    assert merged.still_on == {"a": 5.0, "b": 40.0}
    # Unseen by one: b, d; by two (rotated at 600): c. No domain is unseen by both.
    assert one.unseen == ("b", "d") and two.unseen == ("c",) and merged.unseen == ()
    assert merged.watched == 700 and merged.since_rotation == 400
    lagging = at(1000, {}, domains={OLD: DOMAINS[OLD]}, loaded_at={OLD: 0.0})
    assert merge([at(2000, {}), lagging]).newer == ()  # one receiver lacks the new keys: not drained
    assert not merge([at(2000, {}), lagging]).drained and merge([at(2000, {}), at(2000, {})]).drained
    assert DrainReport.from_json(merged.to_json()) == merged


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("1.5m", 90), ("24h", 86400), (" 7D ", 604800)])
def test_parse_window(text: str, seconds: float) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "-5m", "soon", "5 minutes", "1h30m"])
def test_parse_window_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="positive duration"):
        parse_window(text)


@pytest.mark.parametrize("text", ["24", "90", "1.5"])
def test_a_window_without_its_unit_is_refused_not_read_as_seconds(text: str) -> None:
    with pytest.raises(ValueError, match="positive duration with its unit such as 90s, 30m, 24h or 7d"):
        parse_window(text)


def test_a_window_covers_at_least_one_snapshot_interval() -> None:
    assert check_window(3600) == 3600 == SNAPSHOT_INTERVAL_MAX  # the default floor: the longest interval allowed
    with pytest.raises(ValueError, match=r"a window of 3599 s is shorter than the snapshot interval \(3600 s\)"):
        check_window(3599)
    assert check_window(parse_window("2s"), snapshot_interval=parse_window("0.25s")) == 2
    with pytest.raises(ValueError, match="shorter than the snapshot interval"):
        check_window(parse_window("30s"), snapshot_interval=parse_window("1m"))


def test_generation_names() -> None:
    assert generation_name("keys-2026-10.csv") == generation_name("/srv/keys/keys-2026-10.CSV") == "keys-2026-10"
    assert generation_name("keys-2026-10") == "keys-2026-10"


async def test_asked_of_a_receiver_on_its_clock(tmp_path: Path) -> None:
    keys = {"a.example.com": "aOldKey0123456789abcdef", "b.example.com": "bOldKey0123456789abcdef"}
    write_keys_file(tmp_path / f"{OLD}.csv", keys)
    now = [2_000_000_000.0]
    receiver = Receiver([tmp_path], clock=lambda: now[0], poll_interval=0)
    async with receiver, aiohttp.ClientSession() as session:
        url, admin = receiver.url, receiver.admin_url

        async def callback(domain: str) -> None:
            async with session.post(f"{url}/cb", data=b'{"DomainName": "%s"}' % domain.encode(),
                                    headers=sign("127.0.0.1", keys[domain], now=lambda: now[0])) as resp:
                assert resp.status == 200

        await callback("a.example.com")
        now[0] += 3600
        write_keys_file(tmp_path / f"{NEW}.csv", {d: k.replace("Old", "New") for d, k in keys.items()})
        assert await receiver.reload()
        now[0] += 60
        await callback("a.example.com")  # a stream up since before the rotation
        report = await query_drain([admin], generation=OLD, window=parse_window("1h"))
        assert report.still_on == {"a.example.com": 0.0} and report.unseen == ("b.example.com",)
        assert report.since_rotation == 60 and report.watched == 3660 and not report.drained
        now[0] += 3601
        report = await query_drain([admin, admin], generation=OLD, window=3600)
        assert report.drained and report.still_on == {}
        with pytest.raises(UnknownGeneration, match="keys-2099-01 is not loaded"):
            await query_drain([admin], generation="keys-2099-01", window=60)
        async with session.get(f"{admin}/_bulk/drain", params={"generation": OLD, "window": "-1"}) as resp:
            assert resp.status == 400
    with pytest.raises(DrainError, match="cannot ask receiver"):
        await query_drain([admin], generation=OLD, window=60, timeout=2)
