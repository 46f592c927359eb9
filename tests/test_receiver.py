"""The callback receiver over real sockets: per-domain keys, counts, metrics, reloads, forwarding."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from conftest import serving
from support import bulk, start_bulk

from bulk.callbacks import (
    GENERATION_HEADER,
    SIGNATURE_HEADER,
    Callback,
    Listen,
    Receiver,
    sign,
)
from bulk.files import write_atomic
from bulk.keys import write_keys_file

A_OLD, A_NEW = "aOldKey0123456789abcdef", "aNewKey0123456789abcdef"
B_OLD, B_NEW = "bOldKey0123456789abcdef", "bNewKey0123456789abcdef"
ALL_KEYS = (A_OLD, A_NEW, B_OLD, B_NEW)


def two_generations(folder: Path) -> tuple[Path, Path]:
    old, new = folder / "keys-2026-10.csv", folder / "keys-2026-11.csv"
    write_keys_file(old, {"a.example.com": A_OLD, "b.example.com": B_OLD})
    write_keys_file(new, {"A.example.com": A_NEW, "b.example.com": B_NEW})
    return old, new


def body_of(domain: str, stream: str = "s1") -> bytes:
    return orjson.dumps({"DomainName": domain, "AppName": "live", "StreamName": stream, "OssObject": "x.jpg"})


async def post(session: aiohttp.ClientSession, url: str, domain: str, key: str | None,
               *, host: str = "127.0.0.1", stream: str = "s1", **sign_args: object) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", **(sign(host, key, **sign_args) if key else {})}
    async with session.post(f"{url}/snapshots", data=body_of(domain, stream), headers=headers) as resp:
        return resp.status, await resp.text()


@asynccontextmanager
async def running(receiver: Receiver) -> AsyncIterator[tuple[str, aiohttp.ClientSession, str]]:
    """The callback URL, a session, and the admin listener's URL."""
    async with receiver, aiohttp.ClientSession() as session:
        yield receiver.url, session, receiver.admin_url


async def test_each_callback_is_checked_against_its_own_domains_keys_only(tmp_path: Path) -> None:
    two_generations(tmp_path)
    async with running(Receiver([tmp_path])) as (url, session, admin):
        for key in (A_OLD, A_NEW):
            assert await post(session, url, "a.example.com", key) == (200, "ok")
        assert await post(session, url, "B.Example.com", B_NEW) == (200, "ok")
        # Keys the receiver holds, but of the other domain: refused, old and new generation alike.
        for key in (B_OLD, B_NEW):
            assert await post(session, url, "a.example.com", key) == (401, "rejected")
        assert await post(session, url, "b.example.com", A_OLD) == (401, "rejected")
        assert await post(session, url, "c.example.com", A_OLD) == (401, "rejected")
        stats = (await (await session.get(f"{admin}/_bulk/stats")).json())
    assert stats["accepted"] == {"keys-2026-10": 1, "keys-2026-11": 2}
    assert stats["rejected"] == {"signature_matches_no_key": 3, "unknown_domain": 1}
    assert {d: sorted(g) for d, g in stats["domains"].items()} == {
        "a.example.com": ["keys-2026-10", "keys-2026-11"], "b.example.com": ["keys-2026-11"]}


async def test_rejections_by_reason(tmp_path: Path) -> None:
    two_generations(tmp_path)
    async with running(Receiver([tmp_path], max_skew=60)) as (url, session, admin):
        # One body for every rejection: a scanner learns nothing of which check failed.
        assert await post(session, url, "a.example.com", None) == (401, "rejected")
        assert await post(session, url, "a.example.com", A_OLD, timestamp=1_000_000) == (401, "rejected")
        async with session.post(f"{url}/x", data=b"not json", headers=sign("127.0.0.1", A_OLD)) as resp:
            assert (resp.status, await resp.text()) == (401, "rejected")
        async with session.post(f"{url}/x", data=b'{"App": 1}', headers=sign("127.0.0.1", A_OLD)) as resp:
            assert (resp.status, await resp.text()) == (401, "rejected")
        # Signed for the NotifyUrl host, but the receiver checks its own: refused.
        assert await post(session, url, "a.example.com", A_OLD, host="cb.example.com") == (401, "rejected")
        stats = await (await session.get(f"{admin}/_bulk/stats")).json()
    assert stats["rejected"] == {"missing_timestamp": 1, "timestamp_too_old": 1, "malformed_body": 1,
                                 "no_domain": 1, "signature_matches_no_key": 1}
    assert stats["accepted"] == {"keys-2026-10": 0, "keys-2026-11": 0}


async def test_a_fixed_notify_url_host(tmp_path: Path) -> None:
    two_generations(tmp_path)
    async with running(Receiver([tmp_path], callback_hosts=["https://CB.example.com/snap"])) as (url, session, _):
        assert await post(session, url, "a.example.com", A_NEW, host="cb.example.com") == (200, "ok")
        assert await post(session, url, "a.example.com", A_NEW) == (401, "rejected")


def parse_exposition(text: str) -> tuple[dict[str, tuple[str, str]], dict[tuple[str, str], float]]:
    """(name -> (kind, help), (name, labels) -> value); fails on any line out of the format."""
    families: dict[str, tuple[str, str]] = {}
    samples: dict[tuple[str, str], float] = {}
    helps: dict[str, str] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            helps[name] = help_
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert name in helps and name not in families, line  # HELP first, one TYPE per family
            families[name] = (kind, helps[name])
        else:
            match = re.fullmatch(r'([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (\S+)', line)
            assert match, line
            assert match[1] in families, line  # samples follow their TYPE line
            samples[(match[1], match[2] or "")] = float(match[3])
    return families, samples


async def test_metrics_as_json_and_prometheus_text(tmp_path: Path) -> None:
    two_generations(tmp_path)
    odd = tmp_path / 'keys-"q"\\x.csv'
    write_keys_file(odd, {"c.example.com": "cOddKey0123456789abcdef"})
    now = [1_800_000_000.0]
    receiver = Receiver([tmp_path, odd], clock=lambda: now[0])  # named as a source: taken whatever its name
    async with running(receiver) as (url, session, admin):
        for stream in ("s1", "s2", "s3"):  # three streams, one second, one signature
            assert (await post(session, url, "a.example.com", A_OLD, stream=stream, now=lambda: now[0]))[0] == 200
        now[0] += 10
        assert (await post(session, url, "a.example.com", A_NEW, now=lambda: now[0]))[0] == 200
        assert (await post(session, url, "c.example.com", "cOddKey0123456789abcdef", now=lambda: now[0]))[0] == 200
        assert (await post(session, url, "b.example.com", A_NEW, now=lambda: now[0]))[0] == 401
        async with session.get(f"{admin}/metrics") as resp:
            assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            text = await resp.text()
        stats = await (await session.get(f"{admin}/_bulk/stats")).json()
    families, samples = parse_exposition(text)
    assert families["bulk_receiver_callbacks_accepted_total"][0] == "counter"
    assert families["bulk_receiver_callbacks_rejected_total"][0] == "counter"
    assert families["bulk_receiver_callback_last_seen_timestamp_seconds"][0] == "gauge"
    accepted = "bulk_receiver_callbacks_accepted_total"
    assert samples[(accepted, '{domain="a.example.com",generation="keys-2026-10"}')] == 3
    assert samples[(accepted, '{domain="a.example.com",generation="keys-2026-11"}')] == 1
    assert samples[(accepted, '{domain="c.example.com",generation="keys-\\"q\\"\\\\x"}')] == 1
    last_seen = "bulk_receiver_callback_last_seen_timestamp_seconds"
    assert samples[(last_seen, '{domain="a.example.com",generation="keys-2026-10"}')] == 1_800_000_000
    assert samples[(last_seen, '{domain="a.example.com",generation="keys-2026-11"}')] == 1_800_000_010
    assert samples[("bulk_receiver_callbacks_rejected_total", '{reason="signature_matches_no_key"}')] == 1
    assert samples[("bulk_receiver_generation_domains", '{generation="keys-2026-11"}')] == 2
    loaded_at = ("bulk_receiver_generation_loaded_timestamp_seconds", '{generation="keys-2026-10"}')
    assert samples[loaded_at] == 1_800_000_000
    assert samples[("bulk_receiver_key_reloads_total", '{result="failed"}')] == 0
    assert samples[("bulk_receiver_forward_failures_total", "")] == 0
    assert stats["accepted"] == {"keys-2026-10": 3, "keys-2026-11": 1, 'keys-"q"\\x': 1}
    assert stats["domains"]["a.example.com"] == {
        "keys-2026-10": {"count": 3, "last_seen": 1_800_000_000.0},
        "keys-2026-11": {"count": 1, "last_seen": 1_800_000_010.0},
    }
    assert [g["name"] for g in stats["generations"]] == ["keys-\"q\"\\x", "keys-2026-10", "keys-2026-11"]
    assert stats["rejected"] == {"signature_matches_no_key": 1}
    for key in (*ALL_KEYS, "cOddKey0123456789abcdef"):
        assert key not in text and key not in orjson.dumps(stats).decode()
    assert "Key" not in repr(receiver.keyring).replace("KeyRing", "")


async def test_a_keys_file_replaced_mid_traffic_loses_no_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = two_generations(tmp_path)
    versions = [
        b"DomainName,CallbackAuthKey\na.example.com,%s\nb.example.com,%s\nz.example.com,zKey0123456789abcdefgh\n"
        % (A_NEW.encode(), B_NEW.encode()),
        new.read_bytes(),
    ]
    caplog.set_level(logging.INFO, logger="bulk.receiver")
    receiver = Receiver([old, new], poll_interval=0.01)
    results: list[int] = []
    sent = 0
    done = asyncio.Event()

    async def client(session: aiohttp.ClientSession, url: str, worker: int) -> None:
        nonlocal sent
        while not done.is_set():
            domain, key = (("a.example.com", A_OLD), ("b.example.com", B_NEW), ("a.example.com", A_NEW))[sent % 3]
            sent += 1
            results.append((await post(session, url, domain, key))[0])

    def reloads() -> int:
        return sum(receiver.stats()["reloads"].values())

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(1000):  # 5 s at most: the receiver's work, not the machine's speed, sets the pace
            if condition():
                return
            await asyncio.sleep(0.005)
        raise AssertionError(receiver.stats())

    async with running(receiver) as (url, session, _):
        clients = [asyncio.create_task(client(session, url, i)) for i in range(4)]
        for round_ in range(24):
            seen, posted = reloads(), sent
            if round_ == 12:  # a broken file: the current keys stay
                write_atomic(new, b"DomainName,CallbackAuthKey\na.example.com,short\n")
            else:
                write_atomic(new, versions[round_ % 2])
            # Each version is taken in (or refused) while callbacks keep coming, before the next one is written.
            await until(lambda seen=seen, posted=posted: reloads() > seen and sent >= posted + 9)
        await until(lambda: sent > 210)
        done.set()
        await asyncio.gather(*clients)
        stats = receiver.stats()
        assert await post(session, url, "z.example.com", "zKey0123456789abcdefgh") == (401, "rejected")
    assert len(results) == sent > 200
    assert set(results) == {200}
    assert stats["rejected"] == {}
    assert stats["reloads"]["ok"] >= 15 and stats["reloads"]["failed"] >= 1
    logged = caplog.text
    assert "keeping the current keys" in logged and "line 2: the key must be 16 to 32 letters or digits" in logged
    for key in (*ALL_KEYS, "zKey0123456789abcdefgh"):
        assert key not in logged


async def test_a_broken_new_file_keeps_the_old_keys_until_it_is_fixed(tmp_path: Path) -> None:
    old, new = two_generations(tmp_path)
    new.unlink()
    receiver = Receiver([tmp_path], poll_interval=0)  # no polling: only an explicit reload
    async with running(receiver) as (url, session, _):
        write_atomic(new, b"DomainName,Key\n")
        assert not await receiver.reload()
        assert receiver.keyring.names == ("keys-2026-10",)
        assert receiver.stats()["last_reload_error"].endswith(
            "must start with DomainName,CallbackAuthKey or DomainName,NotifyAuthKey")
        assert await post(session, url, "a.example.com", A_OLD) == (200, "ok")
        write_keys_file(new, {"a.example.com": A_NEW})
        receiver.request_reload()
        for _ in range(100):
            if receiver.keyring.names == ("keys-2026-10", "keys-2026-11"):
                break
            await asyncio.sleep(0.01)
        assert await post(session, url, "a.example.com", A_NEW) == (200, "ok")
        assert receiver.stats()["reloads"] == {"ok": 1, "failed": 1}


@asynccontextmanager
async def downstream(status: int = 201) -> AsyncIterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((await request.read(), dict(request.headers)))
        return web.Response(status=status, text="stored")

    async with serving(handle) as endpoint:
        yield f"http://{endpoint}/in", seen


async def test_forwarding_passes_body_headers_and_answer(tmp_path: Path) -> None:
    two_generations(tmp_path)
    async with downstream() as (target, seen), running(Receiver([tmp_path], forward_url=target)) as (url, session, _):
        headers = {"Content-Type": "application/json", **sign("127.0.0.1", A_NEW)}
        async with session.post(f"{url}/cb", data=body_of("a.example.com"), headers=headers) as resp:
            assert (resp.status, await resp.text()) == (201, "stored")
        assert await post(session, url, "a.example.com", B_NEW) == (401, "rejected")
    assert len(seen) == 1  # a rejected callback is not passed on
    body, passed = seen[0]
    assert body == body_of("a.example.com")
    assert passed["Content-Type"] == "application/json"
    # A downstream's log must not hand out replayable signatures.
    assert not [name for name in passed if name.upper().startswith("ALI-LIVE-")]
    assert headers[SIGNATURE_HEADER] not in repr(passed)
    assert passed[GENERATION_HEADER] == "keys-2026-11"


async def test_a_failing_downstream_gets_the_caller_a_502(tmp_path: Path) -> None:
    two_generations(tmp_path)
    async with downstream(status=500) as (target, seen):
        async with running(Receiver([tmp_path], forward_url=target)) as (url, session, admin):
            assert await post(session, url, "a.example.com", A_NEW) == (502, "downstream failed")
    # The downstream is gone now: connection refused.
    async with running(Receiver([tmp_path], forward_url=target, forward_timeout=2)) as (url, session, admin):
        assert await post(session, url, "a.example.com", A_OLD) == (502, "downstream failed")
        stats = await (await session.get(f"{admin}/_bulk/stats")).json()
    assert len(seen) == 1
    # Accepted (the signature was good, drain must know) though not delivered.
    assert stats["accepted"]["keys-2026-10"] == 1 and stats["forward_failures"] == 1


async def test_a_hook_gets_each_accepted_callback(tmp_path: Path) -> None:
    two_generations(tmp_path)
    got: list[Callback] = []

    async def hook(callback: Callback) -> None:
        if callback.domain == "b.example.com":
            raise RuntimeError("store is down")
        got.append(callback)

    async with running(Receiver([tmp_path], hook=hook)) as (url, session, _):
        assert await post(session, url, "A.example.com", A_OLD) == (200, "ok")
        assert await post(session, url, "b.example.com", B_OLD) == (502, "downstream failed")
    expected = [("a.example.com", "keys-2026-10", body_of("A.example.com"))]
    assert [(c.domain, c.generation, c.body) for c in got] == expected
    assert not [name for name in got[0].headers if name.upper().startswith("ALI-LIVE-")]
    assert A_OLD not in repr(got[0])


def test_construction_errors(tmp_path: Path) -> None:
    from bulk.keys import KeysFileError

    with pytest.raises(KeysFileError, match="no keys files"):
        Receiver([tmp_path])
    two_generations(tmp_path)
    (tmp_path / "sub").mkdir()
    write_keys_file(tmp_path / "sub" / "keys-2026-10.csv", {"a.example.com": B_OLD})
    receiver = Receiver([tmp_path, tmp_path / "sub"])  # the first file of a generation wins, the later is counted
    assert [(r.file, r.kind) for r in receiver.keyring.rejected] == [("keys-2026-10.csv", "duplicate")]
    assert receiver.keyring.keys_for("a.example.com") == (("keys-2026-10", A_OLD), ("keys-2026-11", A_NEW))
    assert receiver.stats()["rejected_files"][0]["count"] == 1
    with pytest.raises(ValueError, match="not both"):
        Receiver([tmp_path], forward_url="http://127.0.0.1:1/", hook=lambda c: asyncio.sleep(0))
    bad = tmp_path / "sub" / "keys-2026-12.csv"
    write_keys_file(bad, {"a.example.com": A_OLD})
    os.chmod(bad, 0o644)
    with pytest.raises(KeysFileError, match="no keys file loads: keys file keys-2026-12.csv is accessible by group"):
        Receiver([bad])


async def _start_serve(*args: str) -> tuple[asyncio.subprocess.Process, str, str]:
    """``bulk callback serve`` on free ports: (process, callback URL, admin URL)."""
    proc = await start_bulk("callback", "serve", "--port", "0", "--admin-bind", "127.0.0.1:0",
                            *(() if "--forward" in args else ("--no-forward",)), *args)
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
    assert line.startswith("bulk receiver listening on http://127.0.0.1:"), line
    admin = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
    assert admin.startswith("bulk receiver admin on http://127.0.0.1:"), admin
    return proc, line.split()[-1], admin.split()[-1]


async def test_serve_reloads_on_sighup_and_drain_answers(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    write_keys_file(folder / "keys-2026-10.csv", {"a.example.com": A_OLD, "b.example.com": B_OLD})
    token = tmp_path / "admin-token"
    token.write_text("s3cret-admin-token\n")
    token.chmod(0o644)
    code, _, err = await bulk("callback", "serve", "--keys", str(folder), "--no-forward", "--admin-token-file",
                              str(token))
    assert code == 2 and "accessible by group or others (mode 0644)" in err and "s3cret" not in err, err
    token.chmod(0o600)
    proc, url, admin = await _start_serve("--keys", str(folder), "--poll", "0", "--admin-token-file", str(token))
    with_token = {**os.environ, "BULK_ADMIN_TOKEN": "s3cret-admin-token"}
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer s3cret-admin-token"}) as session:
            assert await post(session, url, "a.example.com", A_OLD) == (200, "ok")
            code, out, err = await bulk("callback", "drain", "--receiver", admin, "--generation", "keys-2026-10.csv",
                                        "--window", "1h", "--admin-token-file", str(token))
            assert code == 1 and "no generation newer than keys-2026-10 is loaded" in out, out + err
            write_keys_file(folder / "keys-2026-11.csv", {"a.example.com": A_NEW, "b.example.com": B_NEW})
            assert await post(session, url, "a.example.com", A_NEW) == (401, "rejected")
            proc.send_signal(signal.SIGHUP)
            for _ in range(200):
                stats = await (await session.get(f"{admin}/_bulk/stats")).json()
                if len(stats["generations"]) == 2:
                    break
                await asyncio.sleep(0.02)
            assert await post(session, url, "a.example.com", A_NEW) == (200, "ok")
            # A stream not pushed again yet (another snapshot: an identical one would be a duplicate).
            assert await post(session, url, "a.example.com", A_OLD, stream="s2") == (200, "ok")
            last_old = time.monotonic()
            # A window far longer than a command takes to start, however busy the machine: still on the old keys.
            code, out, err = await bulk("callback", "drain", "--receiver", admin, "--generation", "keys-2026-10",
                                        "--window", "30s", "--snapshot-interval", "1s", "--verbose", env=with_token)
            assert code == 1, out + err
            assert "still on keys-2026-10: a.example.com" in out and "1 domain(s) still on keys-2026-10" in out
            # A 1 s window once the last old callback is older than that (a slow start only makes it older).
            await asyncio.sleep(max(0.0, last_old + 1.2 - time.monotonic()))
            code, out, err = await bulk("callback", "drain", "--receiver", admin, "--receiver", admin,
                                        "--generation", "keys-2026-10.csv", "--window", "1s",
                                        "--snapshot-interval", "1s", "--json", env=with_token)
            assert code == 0, out + err
            report = orjson.loads(out)
            assert report["drained"] and report["still_on"] == {} and report["unseen"] == ["b.example.com"]
            code, _, err = await bulk("callback", "drain", "--receiver", admin, "--generation", "keys-2099-01",
                                      env=with_token)
            assert code == 2 and "generation keys-2099-01 is not loaded" in err
            code, _, err = await bulk("callback", "drain", "--receiver", admin, "--generation", "keys-2026-10",
                                      "--window", "soon")
            assert code == 2 and "window must be a positive duration" in err
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await proc.communicate()
    assert proc.returncode == 0
    log = err.decode()
    assert ("keys reloaded: keys-2026-10 (2 domains, CallbackAuthKey), keys-2026-11 (2 domains, CallbackAuthKey); "
            "new: keys-2026-11") in log
    for key in ALL_KEYS:
        assert key not in log


async def test_serve_refuses_a_bad_keys_file(tmp_path: Path) -> None:
    path = tmp_path / "keys-2026-10.csv"
    write_keys_file(path, {"a.example.com": A_OLD})
    os.chmod(path, 0o644)
    code, _, err = await bulk("callback", "serve", "--keys", str(path), "--port", "0", "--no-forward")
    assert code == 2 and "accessible by group or others" in err
    code, _, err = await bulk("callback", "drain", "--receiver", "http://127.0.0.1:9/", "--generation", "keys-2026-10")
    assert code == 2 and "cannot ask receiver http://127.0.0.1:9/" in err


async def test_a_replayed_callback_is_forwarded_once_and_the_host_header_is_not_trusted(tmp_path: Path) -> None:
    two_generations(tmp_path)
    async with downstream(status=200) as (target, seen):
        async with running(Receiver([tmp_path], forward_url=target)) as (url, session, admin):
            headers = {"Content-Type": "application/json", **sign("127.0.0.1", A_NEW)}
            for _ in range(50):
                async with session.post(f"{url}/cb", data=body_of("a.example.com"), headers=headers) as resp:
                    assert resp.status == 200
            # The same signature with another body is another callback (several streams share a second).
            async with session.post(f"{url}/cb", data=body_of("a.example.com", "s2"), headers=headers) as resp:
                assert resp.status == 200
            # A sender's Host header does not choose the signed host.
            forged = {**sign("cb.example.com", A_NEW), "Host": "cb.example.com"}
            async with session.post(f"{url}/cb", data=body_of("a.example.com", "s3"), headers=forged) as resp:
                assert (resp.status, await resp.text()) == (401, "rejected")
            stats = await (await session.get(f"{admin}/_bulk/stats")).json()
    assert len(seen) == 2
    assert stats["duplicates"] == 49 and stats["accepted"]["keys-2026-11"] == 2


async def test_a_failed_forward_is_not_remembered(tmp_path: Path) -> None:
    two_generations(tmp_path)
    async with downstream(status=500) as (target, seen):
        async with running(Receiver([tmp_path], forward_url=target)) as (url, session, _):
            headers = sign("127.0.0.1", A_NEW)
            for _ in range(3):  # the service sends it again after each 502: each try reaches the downstream
                async with session.post(f"{url}/cb", data=body_of("a.example.com"), headers=headers) as resp:
                    assert resp.status == 502
    assert len(seen) == 3


async def test_listening_beyond_loopback_needs_a_callback_host(tmp_path: Path) -> None:
    two_generations(tmp_path)
    with pytest.raises(ValueError, match="needs the callback host"):
        await Receiver([tmp_path]).start(Listen(host="0.0.0.0"))
    with pytest.raises(ValueError, match="without TLS: give --tls-cert and --tls-key, or say that a TLS terminator"):
        await Receiver([tmp_path], callback_hosts=["cb.example.com"]).start(Listen(host="0.0.0.0"))
    with pytest.raises(ValueError, match="admin listener on 0.0.0.0 needs a token"):
        await Receiver([tmp_path], callback_hosts=["cb.example.com"]).start(
            Listen(host="0.0.0.0", behind_tls_proxy=True, admin_host="0.0.0.0"))


async def test_rejections_are_logged_at_a_bounded_rate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    two_generations(tmp_path)
    caplog.set_level(logging.WARNING, logger="bulk.receiver")
    async with running(Receiver([tmp_path])) as (url, session, admin):
        for _ in range(300):
            assert await post(session, url, "a.example.com", B_OLD) == (401, "rejected")
        stats = await (await session.get(f"{admin}/_bulk/stats")).json()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rejected a callback")]
    assert stats["rejected"] == {"signature_matches_no_key": 300}
    assert 10 <= len(lines) < 40, len(lines)


async def test_admin_paths_live_on_their_own_listener_behind_a_token(tmp_path: Path) -> None:
    two_generations(tmp_path)
    async with running(Receiver([tmp_path], admin_token="adminToken-xyz")) as (url, session, admin):
        assert admin and admin != url
        for path in ("/metrics", "/_bulk/stats", "/_bulk/drain?generation=keys-2026-10", "/healthz"):
            async with session.get(f"{url}{path}") as resp:  # the callback port serves callbacks only
                assert resp.status == 405
            async with session.get(f"{admin}{path}") as resp:
                assert resp.status == (200 if path == "/healthz" else 401), path
        for token in ("wrong", "adminToken-xy", "adminToken-xyzz"):
            async with session.get(f"{admin}/_bulk/stats", headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 401
        bearer = {"Authorization": "Bearer adminToken-xyz"}
        async with session.get(f"{admin}/_bulk/stats", headers=bearer) as resp:
            assert resp.status == 200
            stats = await resp.json()
        async with session.get(f"{admin}/readyz") as resp:
            assert (resp.status, await resp.text()) == (200, "ready")
    # Stats name the keys files, not where they are.
    assert [g["file"] for g in stats["generations"]] == ["keys-2026-10.csv", "keys-2026-11.csv"]
    assert str(tmp_path) not in orjson.dumps(stats).decode()


async def test_tls_on_the_callback_port(tmp_path: Path) -> None:
    import ssl

    import trustme

    two_generations(tmp_path)
    authority = trustme.CA()
    cert = authority.issue_cert("cb.example.com")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    receiver = Receiver([tmp_path], callback_hosts=["https://cb.example.com/snapshots"])
    await receiver.start(Listen(host="127.0.0.1", tls=server_context))
    try:
        assert receiver.url.startswith("https://127.0.0.1:")
        port = receiver.url.rsplit(":", 1)[1]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_context)) as session:
            headers = sign("cb.example.com", A_NEW)
            async with session.post(f"https://127.0.0.1:{port}/snapshots", data=body_of("a.example.com"),
                                    headers=headers, server_hostname="cb.example.com") as resp:
                assert (resp.status, await resp.text()) == (200, "ok")
        # In clear text, the TLS port answers nothing useful.
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientError):
                async with session.post(f"http://127.0.0.1:{port}/snapshots", data=body_of("a.example.com"),
                                        headers=headers) as resp:
                    await resp.read()
        assert receiver.stats()["accepted"]["keys-2026-11"] == 1
    finally:
        await receiver.stop()


async def test_serve_refuses_beyond_loopback_without_tls_or_the_proxy_flag(tmp_path: Path) -> None:
    write_keys_file(tmp_path / "keys-2026-10.csv", {"a.example.com": A_OLD})
    code, _, err = await bulk("callback", "serve", "--keys", str(tmp_path), "--port", "0", "--no-forward",
                              "--bind", "0.0.0.0", "--callback-host", "cb.example.com", "--admin-bind", "127.0.0.1:0")
    assert code == 2 and "without TLS" in err and "--behind-tls-proxy" in err, err
    code, _, err = await bulk("callback", "serve", "--keys", str(tmp_path), "--port", "0", "--no-forward",
                              "--bind", "0.0.0.0", "--admin-bind", "127.0.0.1:0", "--behind-tls-proxy")
    assert code == 2 and "needs the callback host (--callback-host)" in err, err


def keys_dir_with_strays(folder: Path) -> None:
    """Two good keys files, beside a rotation's failures file, a stray CSV and a corrupt keys file."""
    folder.mkdir(mode=0o700)
    two_generations(folder)
    for stray in ("keys-2026-11.csv.set-snapshot-callback-auth.failures.csv", "domains.csv"):
        write_atomic(folder / stray, b"domain,state,error\na.example.com,failed,Throttling\n")
    write_atomic(folder / "keys-2026-12.csv", b"DomainName,CallbackAuthKey\na.example.com,short\n")


async def test_serve_loads_the_good_generations_beside_strays_and_a_corrupt_keys_file(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    keys_dir_with_strays(folder)
    proc, url, admin = await _start_serve("--keys", str(folder), "--poll", "0")
    try:
        async with aiohttp.ClientSession() as session:
            assert await post(session, url, "a.example.com", A_OLD) == (200, "ok")
            assert await post(session, url, "b.example.com", B_NEW) == (200, "ok")
            assert await post(session, url, "a.example.com", "aBadKey0123456789abcdef") == (401, "rejected")
            stats = await (await session.get(f"{admin}/_bulk/stats")).json()
            text = await (await session.get(f"{admin}/metrics")).text()
            # The corrupt file's own generation is fixed: a SIGHUP loads it, the strays stay unread.
            write_keys_file(folder / "keys-2026-12.csv", {"a.example.com": "aDecKey0123456789abcdef"})
            proc.send_signal(signal.SIGHUP)
            for _ in range(200):
                fixed = await (await session.get(f"{admin}/_bulk/stats")).json()
                if len(fixed["generations"]) == 3:
                    break
                await asyncio.sleep(0.02)
            assert await post(session, url, "a.example.com", "aDecKey0123456789abcdef") == (200, "ok")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await proc.communicate()
    assert proc.returncode == 0
    assert [g["name"] for g in stats["generations"]] == ["keys-2026-10", "keys-2026-11"]
    assert stats["accepted"] == {"keys-2026-10": 1, "keys-2026-11": 1}
    [rejected] = stats["rejected_files"]
    assert rejected["file"] == "keys-2026-12.csv" and rejected["kind"] == "malformed" and rejected["count"] == 1
    assert "line 2: the key must be 16 to 32 letters or digits" in rejected["reason"]
    assert str(folder) not in rejected["reason"]  # stats name keys files, not their paths
    _, samples = parse_exposition(text)
    assert samples[("bulk_receiver_keys_files_rejected_total", '{file="keys-2026-12.csv",reason="malformed"}')] == 1
    assert [s for s in samples if s[0] == "bulk_receiver_keys_files_rejected_total"] == [
        ("bulk_receiver_keys_files_rejected_total", '{file="keys-2026-12.csv",reason="malformed"}')]
    assert [g["name"] for g in fixed["generations"]] == ["keys-2026-10", "keys-2026-11", "keys-2026-12"]
    assert fixed["rejected_files"] == [] and fixed["reloads"] == {"ok": 1, "failed": 0}
    log = err.decode()
    assert "keys file keys-2026-12.csv not loaded (malformed)" in log
    assert "failures" not in log and "domains.csv" not in log
    for key in (*ALL_KEYS, "aDecKey0123456789abcdef"):
        assert key not in log and key not in text and key not in orjson.dumps(stats).decode()


async def test_serve_refuses_to_start_only_when_no_generation_loads(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    keys_dir_with_strays(folder)
    for name in ("keys-2026-10.csv", "keys-2026-11.csv"):
        (folder / name).unlink()
    code, _, err = await bulk("callback", "serve", "--keys", str(folder), "--port", "0", "--no-forward")
    assert code == 2 and "no keys file loads: " in err and "keys-2026-12.csv: line 2" in err, err
    (folder / "keys-2026-12.csv").unlink()
    code, _, err = await bulk("callback", "serve", "--keys", str(folder), "--port", "0", "--no-forward")
    assert code == 2 and "no keys files in" in err and "keys files are named keys-YYYY-MM.csv" in err, err


async def test_a_keys_file_gone_bad_keeps_its_generation_and_the_others(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "keys"
    keys_dir_with_strays(folder)
    (folder / "keys-2026-12.csv").unlink()
    receiver = Receiver([folder], poll_interval=0)
    write_keys_file(folder / "keys-2026-12.csv", {"a.example.com": "aDecKey0123456789abcdef"})
    os.chmod(folder / "keys-2026-11.csv", 0o644)  # readable by others: refused, its current keys stay
    async with running(receiver) as (url, session, admin):
        assert not await receiver.reload()
        assert receiver.keyring.names == ("keys-2026-10", "keys-2026-11", "keys-2026-12")
        for key in (A_OLD, A_NEW, "aDecKey0123456789abcdef"):
            assert await post(session, url, "a.example.com", key) == (200, "ok")
        stats = await (await session.get(f"{admin}/_bulk/stats")).json()
    [rejected] = stats["rejected_files"]
    assert rejected["file"] == "keys-2026-11.csv" and rejected["kind"] == "untrusted" and rejected["kept_current_keys"]
    assert stats["reloads"] == {"ok": 0, "failed": 1}
    assert "keys file keys-2026-11.csv not loaded (untrusted)" in caplog.text
    assert "keeping the current keys of keys-2026-11" in caplog.text
