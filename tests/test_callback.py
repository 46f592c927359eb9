"""Callback signatures: sign/verify, key overlap during a rotation, and the sample receiver."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from bulk.callback import SIGNATURE_HEADER, TIMESTAMP_HEADER, host_of, sign, signature, verify
from bulk.keys import ALPHABET

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "samples"))
import receiver  # noqa: E402

OLD, NEW, WRONG = "OldKey0123456789abcd", "NewKey0123456789ABCDEFGH", "WrongKey0123456789xx"
HOST, NOW = "cb.example.com", 1_700_000_000


def test_known_vector() -> None:
    expected = hashlib.md5(b"cb.example.com|1700000000|OldKey0123456789abcd").hexdigest()
    assert signature(HOST, NOW, OLD) == expected
    assert sign(HOST, OLD, timestamp=NOW) == {TIMESTAMP_HEADER: "1700000000", SIGNATURE_HEADER: expected}


def test_either_key_is_accepted_during_a_rotation() -> None:
    for index, key in enumerate((OLD, NEW)):
        headers = sign(HOST, key, now=lambda: NOW)
        verdict = verify(HOST, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], [OLD, NEW], now=NOW)
        assert verdict.ok and verdict.key_index == index


@pytest.mark.parametrize(
    ("host", "ts", "key", "now", "reason"),
    [
        (HOST, NOW, WRONG, NOW, "signature matches no key"),
        ("evil.example.com", NOW, OLD, NOW, "signature matches no key"),  # tampered host
        (HOST, NOW - 301, OLD, NOW, "timestamp too old"),
        (HOST, NOW + 301, OLD, NOW, "timestamp in the future"),
    ],
)
def test_rejections(host: str, ts: int, key: str, now: int, reason: str) -> None:
    headers = sign(host, key, timestamp=ts)
    verdict = verify(HOST, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], [OLD, NEW], now=now)
    assert not verdict.ok and verdict.reason.startswith(reason)
    assert OLD not in verdict.reason and NEW not in verdict.reason


def test_malformed_and_missing() -> None:
    assert verify(HOST, "soon", "abc", [OLD], now=NOW).reason == "malformed timestamp"
    assert verify(HOST, NOW, "", [OLD], now=NOW).reason == "missing signature"
    # The signature header may come in upper case.
    assert verify(HOST, NOW, signature(HOST, NOW, OLD).upper(), [OLD], now=NOW).ok


def test_host_of() -> None:
    assert host_of("https://CB.example.com:8443/snap?x=1") == "cb.example.com"
    assert host_of("cb.example.com:8080") == "cb.example.com"
    assert host_of("cb.example.com") == "cb.example.com"


@given(st.text(alphabet=ALPHABET, min_size=16, max_size=32), st.integers(0, 2**31))
def test_round_trip_property(key: str, ts: int) -> None:
    headers = sign(HOST, key, timestamp=ts)
    assert verify(HOST, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], [key], now=ts).ok


async def test_sample_receiver_accepts_old_and_new_and_rejects_others() -> None:
    runner = web.AppRunner(receiver.make_app([OLD, NEW]))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}/snapshot"
    try:
        async with aiohttp.ClientSession() as session:
            for key, status in ((OLD, 200), (NEW, 200), (WRONG, 401)):
                # The receiver checks against its own Host, as the service signs NotifyUrl's host.
                headers = sign("127.0.0.1", key)
                async with session.post(url, headers=headers, data=b'{"DomainName":"a.example.com"}') as resp:
                    assert resp.status == status, await resp.text()
                    if status == 401:
                        assert await resp.text() == "signature matches no key"
    finally:
        await runner.cleanup()
