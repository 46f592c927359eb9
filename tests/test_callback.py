"""Callback signatures: sign/verify, key overlap during a rotation, and the sample receiver."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulk.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, Verdict, host_of, sign, signature, verify
from bulk.keys import ALPHABET, write_keys_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "samples"))
import receiver  # noqa: E402

OLD, NEW, WRONG = "OldKey0123456789abcd", "NewKey0123456789ABCDEFGH", "WrongKey0123456789xx"
HOST, NOW = "cb.example.com", 1_700_000_000


def _check(headers: dict[str, str], keys: list[str], *, host: str = HOST, now: float = NOW) -> Verdict:
    return verify(host, headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, ""), keys, now=now)


def test_known_vector() -> None:
    # The documented recipe, by hand; the literal is `printf '%s' 'cb.example.com|1700000000|key' | md5sum`.
    expected = hashlib.md5(b"cb.example.com|1700000000|key").hexdigest()
    assert expected == "c857ec55b54f70f40ef2b3dde56440cc"
    assert signature(HOST, NOW, "key") == expected
    assert signature(HOST, "1700000000", "key") == expected
    assert sign(HOST, "key", timestamp=NOW) == {TIMESTAMP_HEADER: "1700000000", SIGNATURE_HEADER: expected}
    assert sign(HOST, "key", now=lambda: NOW + 0.9)[TIMESTAMP_HEADER] == "1700000000"  # whole seconds


def test_either_key_is_accepted_during_a_rotation() -> None:
    for index, key in enumerate((OLD, NEW)):
        verdict = _check(sign(HOST, key, now=lambda: NOW), [OLD, NEW])
        assert verdict == Verdict(True, "valid", index)


@pytest.mark.parametrize(
    ("signed_host", "ts", "key", "reason"),
    [
        (HOST, NOW, WRONG, "signature matches no key"),
        ("evil.example.com", NOW, OLD, "signature matches no key"),  # tampered host
        (HOST, NOW - 400, OLD, "timestamp too old (skew 400 s > 300 s)"),
        (HOST, NOW + 400, OLD, "timestamp in the future (skew 400 s > 300 s)"),
    ],
)
def test_rejections(signed_host: str, ts: int, key: str, reason: str) -> None:
    verdict = _check(sign(signed_host, key, timestamp=ts), [OLD, NEW])
    assert verdict == Verdict(False, reason, None)


def test_the_skew_limit_is_inclusive() -> None:
    for ts in (NOW - 300, NOW + 300):
        assert _check(sign(HOST, OLD, timestamp=ts), [OLD]).ok
    assert verify(HOST, NOW - 60, signature(HOST, NOW - 60, OLD), [OLD], now=NOW, max_skew=59).reason.startswith(
        "timestamp too old"
    )


def test_a_tampered_timestamp_breaks_the_signature() -> None:
    headers = sign(HOST, OLD, timestamp=NOW)
    assert verify(HOST, NOW + 1, headers[SIGNATURE_HEADER], [OLD], now=NOW).reason == "signature matches no key"


@pytest.mark.parametrize(
    ("timestamp", "sig", "reason"),
    [
        ("", "0" * 32, "missing timestamp"),
        (NOW, "", "missing signature"),
        ("soon", "0" * 32, "malformed timestamp"),
        ("-1700000000", "0" * 32, "malformed timestamp"),
        ("+1700000000", "0" * 32, "malformed timestamp"),
        ("1_700_000_000", "0" * 32, "malformed timestamp"),
        ("١٧٠٠٠٠٠٠٠٠", "0" * 32, "malformed timestamp"),  # digits int() would take, the service never sends
        ("1" + "0" * 12, "0" * 32, "malformed timestamp"),  # 13 digits: not Unix seconds for 30,000 years
        ("9" * 5000, "0" * 32, "malformed timestamp"),
        (NOW, "not-hex", "malformed signature"),
        (NOW, "0" * 31, "malformed signature"),
    ],
)
def test_malformed_and_missing(timestamp: str | int, sig: str, reason: str) -> None:
    assert verify(HOST, timestamp, sig, [OLD], now=NOW) == Verdict(False, reason, None)


def test_no_keys_is_never_valid() -> None:
    assert not _check(sign(HOST, OLD, timestamp=NOW), []).ok


def test_upper_case_hex_and_whitespace_are_tolerated() -> None:
    sig = signature(HOST, NOW, OLD).upper()
    assert verify(HOST, f" {NOW} ", f" {sig} ", [OLD], now=NOW).ok


@given(
    st.text(alphabet=ALPHABET, min_size=16, max_size=32),
    st.text(alphabet=ALPHABET, min_size=16, max_size=32),
    st.integers(-1000, 1000),
    st.sampled_from(["right", "wrong", "host"]),
)
def test_reasons_never_contain_a_key(key: str, other: str, shift: int, tamper: str) -> None:
    signed_with = other if tamper == "wrong" else key
    headers = sign("x.example.com" if tamper == "host" else HOST, signed_with, timestamp=NOW + shift)
    verdict = _check(headers, [key])
    assert key not in verdict.reason and other not in verdict.reason
    if tamper == "right" and abs(shift) <= 300:
        assert verdict.ok


@given(st.text(alphabet=ALPHABET, min_size=16, max_size=32), st.integers(0, 10**12 - 1))
def test_round_trip_property(key: str, ts: int) -> None:
    assert _check(sign(HOST, key, timestamp=ts), [WRONG, key], now=ts) == Verdict(True, "valid", 1)


@pytest.mark.parametrize(
    ("given_", "host"),
    [
        ("https://CB.example.com:8443/snap?x=1", "cb.example.com"),
        ("http://cb.example.com/snap", "cb.example.com"),
        ("cb.example.com:8080", "cb.example.com"),
        ("  Cb.Example.com  ", "cb.example.com"),
        ("http://user:pw@cb.example.com/", "cb.example.com"),
        ("[::1]:8080", "::1"),
        ("", ""),
    ],
)
def test_host_of(given_: str, host: str) -> None:
    assert host_of(given_) == host


async def _post(url: str, headers: dict[str, str]) -> tuple[int, str]:
    body = b'{"DomainName":"a.example.com"}'
    async with aiohttp.ClientSession() as session, session.post(url, headers=headers, data=body) as resp:
        return resp.status, await resp.text()


async def test_sample_receiver_accepts_old_and_new_keys_files_and_rejects_others(tmp_path: Path) -> None:
    old_file, new_file = tmp_path / "keys-2026-10.csv", tmp_path / "keys-2026-11.csv"
    write_keys_file(old_file, {"a.example.com": OLD, "b.example.com": OLD})
    write_keys_file(new_file, {"a.example.com": NEW})
    async with receiver.make_receiver([old_file, new_file]) as running:
        url = f"{running.url}/snapshot"
        # Default host on loopback: the listening address. Every rejection has the same body.
        for key, expected in ((OLD, (200, "ok")), (NEW, (200, "ok")), (WRONG, (401, "rejected"))):
            assert await _post(url, sign("127.0.0.1", key)) == expected
        assert await _post(url, {}) == (401, "rejected")
        stale = sign("127.0.0.1", NEW, timestamp=NOW)
        assert await _post(url, stale) == (401, "rejected")
        assert running.stats()["accepted"] == {"keys-2026-10": 1, "keys-2026-11": 1}
        assert running.stats()["rejected"] == {"signature_matches_no_key": 1, "missing_timestamp": 1,
                                               "timestamp_too_old": 1}


async def test_sample_receiver_checks_the_notify_url_host_when_given(tmp_path: Path) -> None:
    write_keys_file(tmp_path / "keys-2026-11.csv", {"a.example.com": NEW, "b.example.com": OLD})
    async with receiver.make_receiver([tmp_path], callback_hosts=["https://CB.example.com/snap"]) as running:
        url = f"{running.url}/snapshot"
        assert await _post(url, sign(HOST, NEW)) == (200, "ok")
        # Signed for the address the request happened to reach, not the NotifyUrl host: refused.
        assert await _post(url, sign("127.0.0.1", NEW)) == (401, "rejected")
        # Signed with another domain's key: refused too.
        assert await _post(url, sign(HOST, OLD)) == (401, "rejected")
        assert running.stats()["rejected"] == {"signature_matches_no_key": 2}


def test_cli_sign_and_verify_take_the_key_from_a_file_and_warn_on_a_literal(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bulk.cli import app

    runner = CliRunner()
    key_file = tmp_path / "key"
    key_file.write_text(f"{NEW}\n")
    env = {"BULK_CALLBACK_KEY": ""}
    sign = ["callback", "sign", "--callback-host", HOST, "--timestamp", str(NOW)]
    quiet = runner.invoke(app, [*sign, "--key", f"@{key_file}"], env=env)
    assert quiet.exit_code == 0, quiet.output
    assert signature(HOST, NOW, NEW) in quiet.stdout and "warning" not in quiet.stderr
    assert NEW not in quiet.output
    loud = runner.invoke(app, [*sign, "--key", NEW], env=env)
    assert loud.exit_code == 0 and loud.stdout == quiet.stdout
    assert "warning: a key given literally on the command line is visible" in loud.stderr
    from_env = runner.invoke(app, sign, env={"BULK_CALLBACK_KEY": NEW})
    assert from_env.stdout == quiet.stdout and "warning" not in from_env.stderr
    check = ["callback", "verify", "--callback-host", HOST, "--timestamp", str(NOW), "--max-skew", "999999999",
             "--live-signature", signature(HOST, NOW, NEW)]
    verified = runner.invoke(app, [*check, "--key", f"@{key_file}", "--key", f"@{tmp_path / 'none'}"], env=env)
    assert verified.exit_code == 2 and "cannot read the file" in verified.stderr
    verified = runner.invoke(app, [*check, "--key", OLD, "--key", f"@{key_file}"], env=env)
    assert verified.exit_code == 0 and "valid" in verified.stdout and "warning" in verified.stderr
